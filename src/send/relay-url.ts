// SMTP_URL: one relay or several, parsed into addresses (never a password in a description).
//
// Relay URL (SMTP_URL):
//   smtp://[user[:password]@]host[:port][?tls=off|required]    port 25 by default; STARTTLS when
//                                                               offered, never with tls=off, and a
//                                                               relay without it refused with
//                                                               tls=required
//   smtps://[user[:password]@]host[:port]                      port 465 by default; TLS from the start
//   ?helo=mail.example.net                                     the EHLO name for this relay (else
//                                                               SMTP_HELO, else the machine's name)
//   several relays: comma-separated, each with an optional ?weight=N (default 1), e.g.
//   smtp://a.example.net?weight=3,smtp://b.example.net         (see relay-pool.ts)
// User and password are percent-decoded; the `user`/`password` options (SMTP_USER, SMTP_PASS)
// take precedence over the URL's. Any other query option, a path, or port 0 is a CONFIG error.
import { BulletinError } from '../domain/errors.js';
import { checkHeloName } from '../domain/helo.js';

export interface RelayAddress {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly user: string | null;
  readonly password: string | null;
  readonly tls: 'opportunistic' | 'off' | 'required';
  /** Share of the traffic among several relays (?weight=N, default 1). */
  readonly weight: number;
  /** The EHLO name for this relay (?helo=name); null: the configured default. */
  readonly helo: string | null;
  /** For people and the database: `smtp://host:port`, never the user or password. */
  readonly description: string;
}

/** Parses SMTP_URL (syntax above); throws BulletinError('CONFIG') naming what is wrong. */
export function parseRelayUrl(text: string, user?: string | null, password?: string | null): RelayAddress {
  if (text.includes(',')) throw new BulletinError('CONFIG', 'parseRelayUrl takes one relay; use parseRelayList for several.');
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new BulletinError('CONFIG', `SMTP_URL "${redact(text)}" is not a URL like smtp://relay.example.net:587.`);
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new BulletinError('CONFIG', `SMTP_URL must start with smtp:// or smtps://, not ${url.protocol}//.`);
  }
  if (url.hostname === '') throw new BulletinError('CONFIG', 'SMTP_URL has no host.');
  if (url.pathname !== '' && url.pathname !== '/') {
    throw new BulletinError('CONFIG', `SMTP_URL has a path (${url.pathname}); a relay is smtp://host:port.`);
  }
  if (url.port === '0') throw new BulletinError('CONFIG', 'SMTP_URL has port 0.');
  for (const key of url.searchParams.keys()) {
    if (key !== 'tls' && key !== 'weight' && key !== 'helo') {
      throw new BulletinError('CONFIG', `SMTP_URL option "${key}" is not known; the options are tls=off|required, weight=N and helo=name.`);
    }
  }
  const heloText = url.searchParams.get('helo');
  const helo = heloText === null ? null : checkHeloName(heloText);
  if (helo !== null && !helo.ok) throw new BulletinError('CONFIG', `SMTP_URL helo=: ${helo.reason}.`);
  const weightText = url.searchParams.get('weight') ?? '1';
  if (!/^[1-9]\d{0,3}$/.test(weightText)) throw new BulletinError('CONFIG', `SMTP_URL weight=${weightText} is not a whole number from 1 to 9999.`);
  const secure = url.protocol === 'smtps:';
  const tls = url.searchParams.get('tls') ?? 'opportunistic';
  if (tls !== 'opportunistic' && tls !== 'off' && tls !== 'required') {
    throw new BulletinError('CONFIG', `SMTP_URL option tls=${tls} is not one of off, required.`);
  }
  if (secure && tls === 'off') throw new BulletinError('CONFIG', 'SMTP_URL smtps:// is TLS from the start: it cannot have tls=off (use smtp://).');
  const port = url.port === '' ? (secure ? 465 : 25) : Number(url.port);
  const urlUser = decodeCredential(url.username, 'user');
  const urlPassword = decodeCredential(url.password, 'password');
  const relay: RelayAddress = {
    secure,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    user: user ?? urlUser,
    password: password ?? urlPassword,
    tls,
    weight: Number(weightText),
    helo: helo?.ok ? helo.name : null,
    description: `${url.protocol}//${url.hostname}:${port}`,
  };
  if (relay.password !== null && relay.user === null) {
    throw new BulletinError('CONFIG', 'An SMTP password is set (SMTP_PASS or the URL) but no user: set SMTP_USER or put the user in SMTP_URL.');
  }
  return relay;
}

/** SMTP_URL with one or more comma-separated relays; the same relay twice is a CONFIG error. */
export function parseRelayList(text: string, user?: string | null, password?: string | null): RelayAddress[] {
  const relays = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => parseRelayUrl(part, user, password));
  if (relays.length === 0) throw new BulletinError('CONFIG', 'SMTP_URL names no relay.');
  const seen = new Set<string>();
  for (const relay of relays) {
    if (seen.has(relay.description)) throw new BulletinError('CONFIG', `SMTP_URL names ${relay.description} twice.`);
    seen.add(relay.description);
  }
  return relays;
}

function decodeCredential(text: string, what: string): string | null {
  if (text === '') return null;
  try {
    return decodeURIComponent(text);
  } catch {
    throw new BulletinError('CONFIG', `SMTP_URL has a badly percent-encoded ${what}.`);
  }
}

/** Everything between `//` and the last `@` (user, password) replaced: for error messages. */
function redact(text: string): string {
  return text.replace(/\/\/.*@/, '//***@');
}
