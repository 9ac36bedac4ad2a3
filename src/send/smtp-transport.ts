// A Transport over a nodemailer SMTP connection pool. Messages are sent as pre-built raw bytes with
// an explicit envelope (no composition here); each outcome is classified by failure.ts. Throttling
// is not the pool's job: the dispatcher paces sends with its own limiter.
//
// Relay URL: smtp://[user:pass@]host[:port] (default port 25; STARTTLS when offered) or
// smtps://…[:465] (TLS from the start). Query options: ?tls=off (never STARTTLS),
// ?tls=required (refuse a relay that does not offer STARTTLS).
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import { BulletinError } from '../domain/errors.js';
import { classifyFailure, classifySuccess, type SmtpErrorLike } from './failure.js';
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';

export interface SmtpTransportOptions {
  readonly url: string;
  /** Override the URL's user and password (SMTP_USER, SMTP_PASS). */
  readonly user?: string | null;
  readonly password?: string | null;
  readonly connections: number;
  readonly messagesPerConnection: number;
  readonly timeoutsMs?: { readonly connect?: number; readonly greeting?: number; readonly socket?: number };
}

export interface RelayAddress {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly user: string | null;
  readonly password: string | null;
  readonly tls: 'opportunistic' | 'off' | 'required';
  /** For people and the database: never the password. */
  readonly description: string;
}

export function parseRelayUrl(text: string, user?: string | null, password?: string | null): RelayAddress {
  if (text.includes(',')) {
    throw new BulletinError('CONFIG', 'SMTP_URL names several relays; this version sends through one: name a single relay.');
  }
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
  const secure = url.protocol === 'smtps:';
  const port = url.port === '' ? (secure ? 465 : 25) : Number(url.port);
  const tlsOption = url.searchParams.get('tls') ?? 'opportunistic';
  if (!['opportunistic', 'off', 'required'].includes(tlsOption)) {
    throw new BulletinError('CONFIG', `SMTP_URL option tls=${tlsOption} is not one of off, required.`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    secure,
    host,
    port,
    user: user ?? (url.username === '' ? null : decodeURIComponent(url.username)),
    password: password ?? (url.password === '' ? null : decodeURIComponent(url.password)),
    tls: tlsOption as RelayAddress['tls'],
    description: `${url.protocol}//${url.hostname}:${port}`,
  };
}

function redact(text: string): string {
  return text.replace(/\/\/([^@/]*)@/, '//***@');
}

export function createSmtpTransport(options: SmtpTransportOptions): Transport {
  const relay = parseRelayUrl(options.url, options.user, options.password);
  const pool = nodemailer.createTransport({
    pool: true,
    host: relay.host,
    port: relay.port,
    secure: relay.secure,
    ignoreTLS: relay.tls === 'off',
    requireTLS: relay.tls === 'required',
    maxConnections: options.connections,
    maxMessages: options.messagesPerConnection,
    connectionTimeout: options.timeoutsMs?.connect ?? 30_000,
    greetingTimeout: options.timeoutsMs?.greeting ?? 30_000,
    socketTimeout: options.timeoutsMs?.socket ?? 120_000,
    logger: false,
    ...(relay.user !== null ? { auth: { user: relay.user, pass: relay.password ?? '' } } : {}),
  });
  return {
    description: relay.description,
    // Two per connection, so the pool always has the next message ready when a connection frees up.
    concurrency: options.connections * 2,
    async send(message: OutgoingMessage): Promise<SendOutcome> {
      // Knowing when the whole message was handed to the connection tells a lost reply (perhaps
      // delivered: uncertain) from a connection lost mid-message (not delivered: deferred).
      let bodyWritten = false;
      const raw = Readable.from([message.raw], { objectMode: false });
      raw.once('end', () => (bodyWritten = true));
      try {
        const info = await pool.sendMail({ raw, envelope: { from: message.envelope.from, to: [...message.envelope.to] } });
        return classifySuccess(String(info.response ?? '250'), relay.description);
      } catch (error) {
        return classifyFailure(error as SmtpErrorLike, bodyWritten, relay.description);
      }
    },
    async close() {
      pool.close();
    },
  };
}
