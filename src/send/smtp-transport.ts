// A Transport over a pool of SMTP connections (nodemailer's SMTPConnection). Messages are sent as
// pre-built raw bytes with an explicit envelope (no composition here); each outcome is classified
// by failure.ts. Throttling is not the pool's job: the dispatcher paces sends with its own limiter.
//
// Relay URL: smtp://[user:pass@]host[:port] (default port 25; STARTTLS when offered) or
// smtps://…[:465] (TLS from the start). Query options: ?tls=off (never STARTTLS),
// ?tls=required (refuse a relay that does not offer STARTTLS).
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
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

/**
 * A pool of `connections` SMTP sessions (nodemailer's SMTPConnection), each carrying one message at
 * a time and renewed after `messagesPerConnection`. Measured here, this costs less than half the
 * CPU per message of nodemailer's own pool, which builds a MimeNode for every raw message.
 */
export function createSmtpTransport(options: SmtpTransportOptions): Transport {
  const relay = parseRelayUrl(options.url, options.user, options.password);
  const connectionOptions = {
    host: relay.host,
    port: relay.port,
    secure: relay.secure,
    ignoreTLS: relay.tls === 'off',
    requireTLS: relay.tls === 'required',
    connectionTimeout: options.timeoutsMs?.connect ?? 30_000,
    greetingTimeout: options.timeoutsMs?.greeting ?? 30_000,
    socketTimeout: options.timeoutsMs?.socket ?? 120_000,
    logger: false,
  };
  const idle: Session[] = [];
  const all = new Set<Session>();
  let closed = false;

  async function openSession(): Promise<Session> {
    const connection = new SMTPConnection(connectionOptions);
    const session: Session = { connection, sent: 0, broken: false };
    connection.on('error', () => (session.broken = true));
    connection.on('end', () => (session.broken = true));
    // Until the session is up, failures (refused, 421 at the greeting, timeouts) arrive as 'error'.
    let failSetup: (error: Error) => void = () => undefined;
    const setupFailed = new Promise<never>((_resolve, reject) => (failSetup = reject));
    setupFailed.catch(() => undefined);
    connection.once('error', (error: Error) => failSetup(error));
    try {
      await Promise.race([
        setupFailed,
        new Promise<void>((resolve, reject) => connection.connect((error?: Error) => (error ? reject(error) : resolve()))),
      ]);
      if (relay.user !== null) {
        await Promise.race([
          setupFailed,
          new Promise<void>((resolve, reject) =>
            connection.login({ user: relay.user as string, pass: relay.password ?? '' }, (error?: Error | null) => (error ? reject(error) : resolve())),
          ),
        ]);
      }
    } catch (error) {
      connection.close();
      throw error;
    }
    all.add(session);
    return session;
  }

  function retire(session: Session): void {
    all.delete(session);
    session.broken = true;
    try {
      session.connection.quit();
    } catch {
      session.connection.close();
    }
  }

  /** After a refused message the session is reusable once RSET succeeds. */
  function reset(session: Session): Promise<boolean> {
    return new Promise((resolve) => session.connection.reset((error?: Error | null) => resolve(!error)));
  }

  return {
    description: relay.description,
    concurrency: options.connections,
    async send(message: OutgoingMessage): Promise<SendOutcome> {
      let session = idle.pop();
      while (session && (session.broken || session.sent >= options.messagesPerConnection)) {
        retire(session);
        session = idle.pop();
      }
      if (!session) {
        try {
          session = await openSession();
        } catch (error) {
          return classifyFailure(error as SmtpErrorLike, false, relay.description);
        }
      }
      // Knowing when the whole message was handed to the connection tells a lost reply (perhaps
      // delivered: uncertain) from a connection lost mid-message (not delivered: deferred).
      let bodyWritten = false;
      const raw = new OneBufferStream(message.raw);
      raw.once('end', () => (bodyWritten = true));
      const current = session;
      const outcome = await new Promise<SendOutcome>((resolve) =>
        current.connection.send(
          { from: message.envelope.from, to: [...message.envelope.to] },
          raw,
          (error: Error | null, info?: { response?: string }) =>
            resolve(error ? classifyFailure(error as SmtpErrorLike, bodyWritten, relay.description) : classifySuccess(String(info?.response ?? '250'), relay.description)),
        ),
      );
      current.sent++;
      const reusable = !current.broken && !closed && (outcome.kind === 'sent' || (outcome.kind !== 'uncertain' && (await reset(current))));
      if (reusable) idle.push(current);
      else retire(current);
      return outcome;
    },
    async close() {
      closed = true;
      for (const session of all) retire(session);
      idle.length = 0;
    },
  };
}

/** The message as a stream (so its end is observable), without Readable.from's async-iterator machinery. */
class OneBufferStream extends Readable {
  constructor(private buffer: Buffer | null) {
    super();
  }

  override _read(): void {
    this.push(this.buffer);
    if (this.buffer !== null) {
      this.buffer = null;
      this.push(null);
    }
  }
}

interface Session {
  readonly connection: SMTPConnection;
  sent: number;
  broken: boolean;
}
