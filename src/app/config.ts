// Configuration: command-line flags over environment over `.env`, validated once with zod into a
// frozen object. Every variable is documented in `.env.example`.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import dotenv from 'dotenv';
import { z } from 'zod';
import { BulletinError } from '../domain/errors.js';
import { DEFAULT_RETRY_POLICY, parseDuration, type RetryPolicy } from '../domain/delivery.js';
import { checkHeloName } from '../domain/helo.js';
import { parseRate } from '../send/throttle.js';
import { databaseUrlProblem, type DatabaseTarget } from '../store/database.js';

export interface Config {
  /** Where the data lives: a PostgreSQL server, or the embedded PostgreSQL under `dataDir`. */
  readonly database: DatabaseTarget;
  /** Embedded database, generated secret, demo outbox. Absolute path. */
  readonly dataDir: string;
  /** Signs unsubscribe links; null means one is generated and kept in the data directory. */
  readonly secret: string | null;
  /** Older secrets whose links still verify (rotation). */
  readonly previousSecrets: readonly string[];
  /** The relay(s) to send through, `smtp://` or `smtps://`; null: `send` needs --outbox. */
  readonly smtpUrl: string | null;
  readonly smtpUser: string | null;
  readonly smtpPass: string | null;
  /** The EHLO name (SMTP_HELO); null: a relay's `helo=` option, else this machine's fully qualified name. */
  readonly smtpHelo: string | null;
  /** Sending rate, e.g. `50/s`, `3000/m`; the command line's --rate wins. */
  readonly rate: string;
  /** The adaptive pace never goes below this when a relay pushes back, e.g. `1/s`. */
  readonly rateFloor: string;
  /** Connections per relay. */
  readonly connections: number;
  /** How long to wait for the reply to the end of a message (and any reply), e.g. `10m`. */
  readonly dataTimeout: string;
  /**
   * DKIM signing of every message, when all three DKIM_* variables are set: one key, or an RSA and
   * an Ed25519 key (DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE then list two, comma-separated, in pairs).
   */
  readonly dkim: { readonly domain: string; readonly keys: readonly { readonly selector: string; readonly privateKeyFile: string }[] } | null;
  /** Retry schedule for temporary failures (durations like `5m`, `1h`, `5d`). */
  readonly retry: { readonly min: string; readonly max: string; readonly deadline: string };
  /** Where the static web archive is exported (`send` re-exports after a send; `serve` serves it); null: none. */
  readonly archiveDir: string | null;
  /** Hard bounces after which a membership becomes `bounced` (`bounces process --threshold` wins). */
  readonly bounceThreshold: number;
}

/** Flags that override the environment, as commander hands them over. */
export interface ConfigOverrides {
  readonly databaseUrl?: string;
  readonly dataDir?: string;
}

const optionalText = z
  .string()
  .transform((value) => value.trim())
  .optional()
  .transform((value) => (value === '' ? undefined : value));

const environmentSchema = z.object({
  DATABASE_URL: optionalText.superRefine((value, context) => {
    const problem = value === undefined ? null : databaseUrlProblem(value);
    if (problem !== null) context.addIssue({ code: 'custom', message: problem });
  }),
  BULLETIN_DATA_DIR: optionalText,
  BULLETIN_SECRET: optionalText.refine((value) => value === undefined || value.length >= 32, 'must be at least 32 characters (e.g. `openssl rand -base64 32`)'),
  BULLETIN_SECRET_PREVIOUS: optionalText,
  SMTP_URL: optionalText.refine(
    (value) => value === undefined || value.split(',').every((url) => /^smtps?:\/\//.test(url.trim())),
    'must be smtp://host[:port] or smtps://host[:port]',
  ),
  SMTP_USER: optionalText,
  SMTP_PASS: optionalText,
  SMTP_HELO: optionalText.superRefine((value, context) => {
    if (value === undefined) return;
    const checked = checkHeloName(value);
    if (!checked.ok) context.addIssue({ code: 'custom', message: checked.reason.replace(/^"[^"]*" /, '') });
  }),
  BULLETIN_RATE: optionalText,
  BULLETIN_RATE_FLOOR: optionalText,
  BULLETIN_CONNECTIONS: optionalText.refine(
    (value) => value === undefined || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 100),
    'must be a whole number from 1 to 100',
  ),
  DKIM_DOMAIN: optionalText,
  DKIM_SELECTOR: optionalText,
  DKIM_PRIVATE_KEY_FILE: optionalText,
  BULLETIN_DATA_TIMEOUT: optionalText,
  BULLETIN_RETRY_MIN: optionalText,
  BULLETIN_RETRY_MAX: optionalText,
  BULLETIN_RETRY_DEADLINE: optionalText,
  BULLETIN_ARCHIVE_DIR: optionalText,
  BULLETIN_BOUNCE_THRESHOLD: optionalText.refine(
    (value) => value === undefined || (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 1000),
    'must be a whole number from 1 to 1000',
  ),
});

/** Reads `.env` in `cwd` (if any) without touching process.env; the real environment wins over it. */
function readDotEnv(cwd: string): Record<string, string> {
  try {
    return dotenv.parse(readFileSync(resolve(cwd, '.env')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new BulletinError('CONFIG', `Cannot read ${resolve(cwd, '.env')}: ${(error as Error).message}.`);
  }
}

export function loadConfig(options: { env: NodeJS.ProcessEnv; cwd: string; overrides?: ConfigOverrides }): Config {
  const merged = { ...readDotEnv(options.cwd), ...definedOnly(options.env) };
  if (options.overrides?.databaseUrl !== undefined) merged.DATABASE_URL = options.overrides.databaseUrl;
  if (options.overrides?.dataDir !== undefined) merged.BULLETIN_DATA_DIR = options.overrides.dataDir;
  // Set but blank is a mistake (an unset variable substituted, a stray space), never "use the
  // embedded database": that would quietly keep the data in the working directory.
  if (merged.DATABASE_URL !== undefined && merged.DATABASE_URL.trim() === '') {
    const where =
      options.overrides?.databaseUrl !== undefined
        ? '--database-url'
        : options.env.DATABASE_URL !== undefined
          ? 'DATABASE_URL'
          : `DATABASE_URL in ${resolve(options.cwd, '.env')}`;
    throw new BulletinError('CONFIG', `${where} is set but blank; give a postgres:// URL, or unset it to use the embedded database.`);
  }
  const parsed = environmentSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BulletinError('CONFIG', `${String(issue?.path.join('.') ?? 'configuration')} ${issue?.message ?? 'is invalid'}.`);
  }
  const env = parsed.data;
  const dkimParts = [env.DKIM_DOMAIN, env.DKIM_SELECTOR, env.DKIM_PRIVATE_KEY_FILE];
  if (dkimParts.some((part) => part !== undefined) && dkimParts.some((part) => part === undefined)) {
    throw new BulletinError('CONFIG', 'DKIM signing needs all three of DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE.');
  }
  const dataDir = resolve(options.cwd, env.BULLETIN_DATA_DIR ?? '.bulletin');
  const database: DatabaseTarget = env.DATABASE_URL ? { kind: 'server', url: env.DATABASE_URL } : { kind: 'embedded', dataDir };
  return Object.freeze({
    database: Object.freeze(database),
    dataDir,
    secret: env.BULLETIN_SECRET ?? null,
    previousSecrets: Object.freeze(
      (env.BULLETIN_SECRET_PREVIOUS ?? '')
        .split(',')
        .map((secret) => secret.trim())
        .filter((secret) => secret !== ''),
    ),
    smtpUrl: env.SMTP_URL ?? null,
    smtpUser: env.SMTP_USER ?? null,
    smtpPass: env.SMTP_PASS ?? null,
    smtpHelo: env.SMTP_HELO === undefined ? null : (checkHeloName(env.SMTP_HELO) as { name: string }).name,
    rate: env.BULLETIN_RATE ?? '50/s',
    rateFloor: env.BULLETIN_RATE_FLOOR ?? '1/s',
    dkim: dkimKeys(env.DKIM_DOMAIN, env.DKIM_SELECTOR, env.DKIM_PRIVATE_KEY_FILE, options.cwd),
    connections: Number(env.BULLETIN_CONNECTIONS ?? 5),
    dataTimeout: env.BULLETIN_DATA_TIMEOUT ?? '10m',
    retry: Object.freeze({
      min: env.BULLETIN_RETRY_MIN ?? '5m',
      max: env.BULLETIN_RETRY_MAX ?? '1h',
      deadline: env.BULLETIN_RETRY_DEADLINE ?? '5d',
    }),
    archiveDir: env.BULLETIN_ARCHIVE_DIR ? resolve(options.cwd, env.BULLETIN_ARCHIVE_DIR) : null,
    bounceThreshold: Number(env.BULLETIN_BOUNCE_THRESHOLD ?? 3),
  });
}

/** DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE, paired in order: one key, or two (RSA and Ed25519). */
function dkimKeys(domain: string | undefined, selectors: string | undefined, files: string | undefined, cwd: string): Config['dkim'] {
  if (!domain || !selectors || !files) return null;
  const selectorList = selectors.split(',').map((part) => part.trim());
  const fileList = files.split(',').map((part) => part.trim());
  if (selectorList.length !== fileList.length || selectorList.length > 2 || [...selectorList, ...fileList].some((part) => part === '')) {
    throw new BulletinError(
      'CONFIG',
      'DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE must name one key each, or two in pairs (e.g. DKIM_SELECTOR=rsa2026,ed2026 and DKIM_PRIVATE_KEY_FILE=rsa.pem,ed25519.pem).',
    );
  }
  return Object.freeze({
    domain,
    keys: Object.freeze(selectorList.map((selector, index) => Object.freeze({ selector, privateKeyFile: resolve(cwd, fileList[index]!) }))),
  });
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** What a send may set on the command line over the configuration, as typed. */
export interface SendOverrides {
  readonly rate?: string;
  readonly rateFloor?: string;
  readonly connections?: number;
  readonly messagesPerConnection?: number;
  readonly retryMin?: string;
  readonly retryMax?: string;
  readonly retryDeadline?: string;
  readonly dataTimeout?: string;
  readonly lease?: string;
}

/** A send's rates and durations, parsed once (flags over configuration) into numbers. */
export interface SendSettings {
  /** The rate as configured or typed (`50/s`), for display. */
  readonly rateText: string;
  /** Messages per second. */
  readonly rate: number;
  /** The adaptive pace's floor, messages per second. */
  readonly floorRate: number;
  readonly connections: number;
  readonly messagesPerConnection: number;
  readonly retry: RetryPolicy;
  /** Wait this long for any reply, and for the reply to the end of a message. */
  readonly dataTimeoutMs: number;
  /** How long a claim stays a worker's without renewal; undefined: the dispatcher's default. */
  readonly leaseMs: number | undefined;
}

export function sendSettings(config: Config, overrides: SendOverrides): SendSettings {
  const rateText = overrides.rate ?? config.rate;
  return {
    rateText,
    ...parseRates(rateText, overrides.rateFloor ?? config.rateFloor),
    connections: overrides.connections ?? config.connections,
    messagesPerConnection: overrides.messagesPerConnection ?? 100,
    retry: retryPolicy(config, overrides),
    dataTimeoutMs: dataTimeoutMs(overrides.dataTimeout ?? config.dataTimeout),
    leaseMs: overrides.lease === undefined ? undefined : leaseMs(overrides.lease),
  };
}

/** A rate and its floor (`50/s`, `1/s`) in messages per second; the floor may not be above the rate. */
export function parseRates(rateText: string, floorText: string): { rate: number; floorRate: number } {
  const rate = parseRate(rateText);
  const floorRate = parseRate(floorText);
  if (floorRate > rate) throw new BulletinError('BAD_INPUT', `The rate floor (${floorText}) is above the rate (${rateText}).`);
  return { rate, floorRate };
}

export function dataTimeoutMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === null || ms < 1000) throw new BulletinError('BAD_INPUT', `--data-timeout "${text}" is not a duration of at least 1s (like 10m).`);
  return ms;
}

function leaseMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === null || ms < 1000) throw new BulletinError('BAD_INPUT', `--lease "${text}" is not a duration of at least 1s (like 30s or 2m).`);
  return ms;
}

function retryPolicy(config: Config, overrides: SendOverrides): RetryPolicy {
  const read = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === null || ms <= 0) throw new BulletinError('BAD_INPUT', `${name} "${value}" is not a duration like 90s, 5m, 1h or 5d.`);
    return ms;
  };
  const policy = {
    minDelayMs: read('--retry-min', overrides.retryMin ?? config.retry.min, DEFAULT_RETRY_POLICY.minDelayMs),
    maxDelayMs: read('--retry-max', overrides.retryMax ?? config.retry.max, DEFAULT_RETRY_POLICY.maxDelayMs),
    deadlineMs: read('--retry-deadline', overrides.retryDeadline ?? config.retry.deadline, DEFAULT_RETRY_POLICY.deadlineMs),
  };
  if (policy.maxDelayMs < policy.minDelayMs) throw new BulletinError('BAD_INPUT', '--retry-max must not be shorter than --retry-min.');
  return policy;
}
