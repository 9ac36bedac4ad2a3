// Wiring of the send path's parts from configuration and flags: which transport (SMTP relay or
// .eml outbox), the throttle at the configured rate, and the retry policy.
import { lookup, lookupService } from 'node:dns/promises';
import { hostname } from 'node:os';
import { BulletinError } from '../domain/errors.js';
import { checkHeloName } from '../domain/helo.js';
import { DEFAULT_RETRY_POLICY, parseDuration, type RetryPolicy } from '../domain/delivery.js';
import { createOutboxTransport } from '../send/outbox-transport.js';
import { createRelayPool } from '../send/relay-pool.js';
import { createSmtpTransport, parseRelayList } from '../send/smtp-transport.js';
import { parseRate } from '../send/throttle.js';
import { AdaptivePace } from '../send/adaptive.js';
import type { Transport } from '../send/transport.js';
import type { Config } from './config.js';

export interface TransportFlags {
  readonly outbox?: string;
  readonly rate?: string;
  readonly rateFloor?: string;
  readonly connections?: number;
  readonly messagesPerConnection?: number;
  readonly retryMin?: string;
  readonly retryMax?: string;
  readonly retryDeadline?: string;
  readonly dataTimeout?: string;
}

export async function openTransport(config: Config, flags: TransportFlags): Promise<Transport> {
  if (flags.outbox !== undefined) return createOutboxTransport(flags.outbox);
  if (config.smtpUrl === null) {
    throw new BulletinError(
      'CONFIG',
      'No relay to send through: set SMTP_URL (e.g. smtp://relay.example.net:587), or write .eml files with --outbox DIR.',
    );
  }
  const relays = parseRelayList(config.smtpUrl, config.smtpUser, config.smtpPass);
  const dataTimeout = flags.dataTimeout ?? config.dataTimeout;
  const socketMs = parseDuration(dataTimeout);
  if (socketMs === null || socketMs < 1000) throw new BulletinError('BAD_INPUT', `--data-timeout "${dataTimeout}" is not a duration of at least 1s (like 10m).`);
  const helos = await Promise.all(relays.map((relay) => relay.helo ?? config.smtpHelo ?? machineHeloName(relay.host)));
  // Even one relay goes through the pool: when it is down, sends wait for it instead of deferring.
  return createRelayPool(
    relays.map((relay, index) => ({
      weight: relay.weight,
      transport: createSmtpTransport({
        url: relay.description,
        relay,
        helo: helos[index]!,
        connections: flags.connections ?? config.connections,
        messagesPerConnection: flags.messagesPerConnection ?? 100,
        timeoutsMs: { socket: socketMs },
      }),
    })),
  );
}

/**
 * The EHLO name when none is configured: this machine's fully qualified name (its host name if that
 * has a dot, else the name its address resolves back to). Without one, a relay on this machine
 * (loopback) is greeted as `localhost`; any other relay would see an address literal, so that is
 * refused with the setting to use instead.
 */
export async function machineHeloName(relayHost: string): Promise<string> {
  const candidates = [hostname()];
  try {
    const { address } = await lookup(hostname());
    candidates.push((await lookupService(address, 25)).hostname);
  } catch {
    // No address for this host name: only its own name can say.
  }
  for (const candidate of candidates) {
    const checked = checkHeloName(candidate);
    if (checked.ok) return checked.name;
  }
  if (isLoopback(relayHost)) return 'localhost';
  throw new BulletinError(
    'CONFIG',
    `This machine's name "${hostname()}" is not fully qualified, and receivers distrust an EHLO without one: set SMTP_HELO=mail.example.net (or ?helo= on the relay in SMTP_URL).`,
  );
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The configured rate (messages per second), and the adaptive pace that lowers it under relay pushback. */
export function createPacing(rate: string, floor: string): { rate: number; pace: AdaptivePace } {
  const maxRate = parseRate(rate);
  const floorRate = parseRate(floor);
  if (floorRate > maxRate) throw new BulletinError('BAD_INPUT', `The rate floor (${floor}) is above the rate (${rate}).`);
  return { rate: maxRate, pace: new AdaptivePace({ maxRate, floorRate }) };
}

export function retryPolicy(config: Config, flags: TransportFlags): RetryPolicy {
  const read = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === null || ms <= 0) throw new BulletinError('BAD_INPUT', `${name} "${value}" is not a duration like 90s, 5m, 1h or 5d.`);
    return ms;
  };
  const policy = {
    minDelayMs: read('--retry-min', flags.retryMin ?? config.retry.min, DEFAULT_RETRY_POLICY.minDelayMs),
    maxDelayMs: read('--retry-max', flags.retryMax ?? config.retry.max, DEFAULT_RETRY_POLICY.maxDelayMs),
    deadlineMs: read('--retry-deadline', flags.retryDeadline ?? config.retry.deadline, DEFAULT_RETRY_POLICY.deadlineMs),
  };
  if (policy.maxDelayMs < policy.minDelayMs) throw new BulletinError('BAD_INPUT', '--retry-max must not be shorter than --retry-min.');
  return policy;
}
