// A Transport over a pool of SMTP connections (nodemailer's SMTPConnection). Messages go as
// pre-built raw bytes with an explicit envelope (no composition here); each outcome is classified
// by failure.ts. Throttling is not the pool's job: the dispatcher paces sends with its own limiter.
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
//
// Why not nodemailer's own pool (`pool: true`): its send callback cannot tell whether the final dot
// had gone out when a connection died (failure.ts needs that to tell `deferred` from `uncertain`),
// and it builds a MimeNode even for a raw message (measured here: less than half the CPU per
// message without it). This pool keeps nodemailer's SMTP client and its PIPELINING.
//
// Messages already in SMTP DATA form (CRLF only, no line starting with a dot: what src/render
// produces) skip nodemailer's byte-by-byte dot-stuffing and go out with their terminator in one
// write (PreparedSmtpConnection). Anything else takes nodemailer's own path.
//
// Sessions: a session the relay says is spent (452 4.5.3 "too many messages", a 421 that is not
// about our pace) or that broke before the message was sent is retired, and the message goes at
// once on a fresh one (failure.ts rows 8, 17, 24), without a deferral. A relay that keeps cutting
// sessions after N messages gets sessions renewed after N. Renewals are spread out (the first
// sessions get a share of the budget each, so they never all renew at once) and a session near its
// end opens its successor first and carries on until it is ready, so a relay slow to greet never
// stalls the send (a connection more than configured for that moment; never against a relay that
// refused connections). The EHLO
// SIZE is read: a larger message is refused before anything is sent (failure.ts row 23), and MAIL
// FROM carries SIZE=.
import { Readable, type Transform } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { BulletinError } from '../domain/errors.js';
import { checkHeloName } from '../domain/helo.js';
import { classifyFailure, classifySuccess, type SmtpErrorLike } from './failure.js';
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';

export interface SmtpTransportOptions {
  readonly url: string;
  /** The relay already parsed (from parseRelayList); `url` is then only for messages. */
  readonly relay?: RelayAddress;
  /** Override the URL's user and password (SMTP_USER, SMTP_PASS). */
  readonly user?: string | null;
  readonly password?: string | null;
  /** Connections open at once, at most; also the transport's concurrency. */
  readonly connections: number;
  /** Messages sent over one connection before it is closed and a fresh one opened. */
  readonly messagesPerConnection: number;
  /** The name given in EHLO (nodemailer's `name`); default: the relay's `helo=`, else nodemailer's. */
  readonly helo?: string;
  /**
   * connect: TCP (and TLS) set-up, 30 s; greeting: the 220 banner, 30 s; socket: silence on an open
   * connection, including the wait for the reply to the final dot (--data-timeout), 10 min as RFC
   * 5321 4.5.3.2.6 asks: a shorter wait turns slow relays into `uncertain` outcomes and duplicates.
   */
  readonly timeoutsMs?: { readonly connect?: number; readonly greeting?: number; readonly socket?: number };
}

export const DEFAULT_SMTP_TIMEOUTS_MS = Object.freeze({ connect: 30_000, greeting: 30_000, socket: 600_000 });

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

/** Parses SMTP_URL (syntax at the top of this file); throws BulletinError('CONFIG') naming what is wrong. */
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

/**
 * A pool of at most `connections` SMTP sessions, each carrying one message at a time and replaced
 * after `messagesPerConnection` messages, after a lost connection or an unanswered message, and
 * after a refusal the relay will not RSET. `send()` never throws: it returns the classified outcome.
 */
export function createSmtpTransport(options: SmtpTransportOptions): Transport {
  const relay = options.relay ?? parseRelayUrl(options.url, options.user, options.password);
  const limit = wholeNumber(options.connections, 'connections');
  const messagesPerConnection = wholeNumber(options.messagesPerConnection, 'messages per connection');
  const helo = options.helo ?? relay.helo;
  const connectionOptions = {
    host: relay.host,
    port: relay.port,
    secure: relay.secure,
    ignoreTLS: relay.tls === 'off',
    requireTLS: relay.tls === 'required',
    ...(helo === null ? {} : { name: helo }),
    connectionTimeout: options.timeoutsMs?.connect ?? DEFAULT_SMTP_TIMEOUTS_MS.connect,
    greetingTimeout: options.timeoutsMs?.greeting ?? DEFAULT_SMTP_TIMEOUTS_MS.greeting,
    socketTimeout: options.timeoutsMs?.socket ?? DEFAULT_SMTP_TIMEOUTS_MS.socket,
    logger: false,
  };
  const idle: Session[] = [];
  /** Every session not yet ended: idle, busy or saying QUIT. */
  const sessions = new Set<Session>();
  const slots = new Slots(limit);
  let closed = false;
  /** Why fewer connections than configured are used, for the progress line. */
  let connectionNote: string | null = null;
  let lastConnectionChange = -Infinity;
  /** Messages a session may carry: the configured number, or fewer once the relay cut sessions short. */
  let sessionLimit = messagesPerConnection;
  let sessionNote: string | null = null;
  /** Drops of sessions after this many messages, to notice a relay cutting them at a count. */
  let lastDropAt = -1;
  /** Sessions opened so far: the first `limit` get a share of the budget each (renewals spread out). */
  let opened = 0;
  /** How long setting a session up took, last time (ms): how early a successor must be opened. */
  let setupMs = 0;
  /** Successors being opened ahead of renewals. */
  let successors = 0;
  /** The relay refused a connection once: never open one more than the configured number. */
  let refusedConnections = false;

  /** Messages this session may carry before it is renewed. */
  function budgetOf(session: Session): number {
    return Math.max(1, Math.round(sessionLimit * session.share));
  }

  /** The relay cut a session after `count` messages: renew before that from now on. */
  function learnSessionLimit(count: number, said: string | null): void {
    if (count < 1) return;
    if (said === null) {
      // A silent drop counts once it happens twice at the same count (a relay idling us out does not).
      const repeated = lastDropAt === count;
      lastDropAt = count;
      if (!repeated) return;
    }
    if (count >= sessionLimit) return;
    sessionLimit = count;
    sessionNote = `sessions renewed after ${count} messages: the relay ends them there${said ? ` (${said.slice(0, 60)})` : ''}`;
  }

  /** Sessions set up and not broken (idle or carrying a message). */
  function liveSessions(): number {
    let live = 0;
    for (const session of sessions) if (!session.broken && session.ready) live++;
    return live;
  }

  /** The relay refused a session beyond `open`: use that many from now on (at least one). */
  function lowerConnections(open: number, reply: string): void {
    const next = Math.max(1, Math.min(open, slots.limit));
    lastConnectionChange = performance.now();
    refusedConnections = true;
    if (next === slots.limit) return;
    slots.setLimit(next);
    connectionNote = `${next} of ${limit} connections: the relay refused more (${reply.slice(0, 60)})`;
  }

  /** After a quiet spell, probe one connection more, up to the configured number. */
  function raiseConnectionsWhenDue(): void {
    if (slots.limit >= limit || performance.now() - lastConnectionChange < CONNECTION_PROBE_MS) return;
    lastConnectionChange = performance.now();
    slots.setLimit(slots.limit + 1);
    connectionNote = slots.limit < limit ? `${slots.limit} of ${limit} connections: probing for more` : null;
  }

  async function openSession(): Promise<Session> {
    const connection = new PreparedSmtpConnection(connectionOptions);
    let markEnded: () => void = () => undefined;
    // The first sessions get a growing share of the budget (1/n, 2/n, … n/n), later ones all of it,
    // so they reach the end of their budgets one after the other, never all together.
    const share = opened < limit ? (opened + 1) / limit : 1;
    opened++;
    const started = performance.now();
    const session: Session = { connection, sent: 0, share, broken: false, busy: true, ready: false, ended: new Promise<void>((resolve) => (markEnded = resolve)), maxSize: 0, readyAt: 0, renewing: false, replaced: false };
    // Until the session is up, failures (refused, 421 at the greeting, timeouts) arrive as 'error';
    // afterwards an 'error' or 'end' only means the session is no longer usable.
    let failSetup: (error: Error) => void = () => undefined;
    const setupFailed = new Promise<never>((_resolve, reject) => (failSetup = reject));
    setupFailed.catch(() => undefined);
    connection.on('error', (error: Error) => {
      session.broken = true;
      failSetup(error);
    });
    connection.once('end', () => {
      session.broken = true;
      sessions.delete(session);
      markEnded();
    });
    sessions.add(session);
    try {
      await Promise.race([setupFailed, new Promise<void>((resolve, reject) => connection.connect((error) => (error ? reject(error) : resolve())))]);
      if (relay.user !== null) {
        const credentials = { user: relay.user, pass: relay.password ?? '' };
        await Promise.race([setupFailed, new Promise<void>((resolve, reject) => connection.login(credentials, (error) => (error ? reject(error) : resolve())))]);
      }
    } catch (error) {
      connection.close();
      throw error;
    }
    session.ready = true;
    session.readyAt = performance.now();
    session.maxSize = Number((connection as unknown as { _maxAllowedSize?: number })._maxAllowedSize ?? 0) || 0;
    setupMs = performance.now() - started;
    return session;
  }

  /**
   * Near the end of a session's budget, opens its successor in the background so the renewal costs
   * no wait: early enough for a session set-up as slow as the last one. Until the successor is
   * ready the old session carries on past its budget (never past twice it); then it retires.
   * At most one successor per session, `limit` at once.
   */
  function openSuccessorWhenDue(session: Session): void {
    // Only worth it against a relay slow to set a session up; a quick set-up costs less than a
    // successor idling. A few messages first, to know how fast this session goes.
    if (session.renewing || closed || refusedConnections || session.broken || setupMs < SLOW_SETUP_MS || session.sent < 3 || successors >= limit) return;
    const budget = budgetOf(session);
    const left = budget - session.sent;
    const perMessageMs = (performance.now() - session.readyAt) / Math.max(1, session.sent);
    const lead = Math.min(budget - 1, Math.ceil(setupMs / Math.max(1, perMessageMs)) + 1);
    if (left > lead) return;
    session.renewing = true;
    successors++;
    openSession()
      .then((fresh) => {
        fresh.busy = false;
        if (closed || fresh.broken) return retire(fresh);
        idle.unshift(fresh); // taken after the older idle ones: they finish their budgets first
        session.replaced = true;
        const at = idle.indexOf(session);
        if (at >= 0) {
          idle.splice(at, 1);
          retire(session);
        }
      })
      .catch((error: unknown) => {
        session.renewing = false;
        // Refused (421 too many connections): this relay counts connections; renew the plain way.
        if ((error as SmtpErrorLike).responseCode !== undefined) refusedConnections = true;
      })
      .finally(() => successors--);
  }

  /** Whether a session may carry one more message: within its budget, or past it while its successor is on its way. */
  function hasBudget(session: Session): boolean {
    const budget = budgetOf(session);
    return session.sent < budget || (session.renewing && !session.replaced && session.sent < 2 * budget);
  }

  function retire(session: Session): void {
    session.broken = true;
    try {
      session.connection.quit();
    } catch {
      session.connection.close();
    }
  }

  /** After a refused message the session is reusable once RSET succeeds. */
  function reset(session: Session): Promise<boolean> {
    return new Promise((resolve) => session.connection.reset((error) => resolve(!error)));
  }

  /** One message over one session; the session goes back to the pool or is retired. */
  async function transmit(session: Session, message: OutgoingMessage): Promise<SendOutcome> {
    // Knowing when the whole message was handed to the connection tells a lost reply (perhaps
    // delivered: uncertain) from a connection lost before or during the message (not delivered).
    session.busy = true;
    let bodyWritten = false;
    const data = smtpDataOf(message.raw);
    const raw = new OneBufferStream(data ?? message.raw);
    raw.once('end', () => (bodyWritten = true));
    const before = session.sent;
    const envelope = { from: message.envelope.from, to: [...message.envelope.to], size: message.raw.length };
    const outcome = await new Promise<SendOutcome>((resolve) =>
      session.connection.sendPrepared(envelope, raw, data !== null, (error, info) => {
        if (!error) return resolve(classifySuccess(String(info?.response ?? '250'), relay.description));
        resolve(classifyFailure(error as SmtpErrorLike, bodyWritten, relay.description, 'message', { messagesOnSession: before }));
      }),
    );
    session.sent++;
    if (outcome.kind === 'deferred' && outcome.resend === 'fresh-session') {
      // Spent or broken: no RSET, no reuse. A reply saying so teaches the relay's per-session count.
      learnSessionLimit(before, /^\d{3}/.test(outcome.reply) ? outcome.reply : null);
      session.busy = false;
      retire(session);
      return outcome;
    }
    if (outcome.kind === 'deferred' && outcome.resend === 'next-slot') {
      // Refused before the body because we go too fast. With PIPELINING the RCPT and DATA sent along
      // were refused too, and a relay counts every one as a client error: Postfix answers ever more
      // slowly after 10 of them (smtpd_soft_error_limit) until a message gets through. A fresh
      // session starts that count again; the pace, meanwhile, slows down.
      session.busy = false;
      retire(session);
      return outcome;
    }
    const reusable =
      !session.broken &&
      !closed &&
      hasBudget(session) &&
      (outcome.kind === 'sent' || (outcome.kind !== 'uncertain' && (await reset(session))));
    session.busy = false;
    // (checked again: close() may have come during the RSET)
    if (reusable && !session.broken && !closed) {
      idle.push(session);
      openSuccessorWhenDue(session);
    } else retire(session);
    return outcome;
  }

  return {
    description: relay.description,
    get concurrency() {
      return slots.limit;
    },
    note: () => [connectionNote, sessionNote].filter((note) => note !== null).join('; ') || null,
    async send(message: OutgoingMessage): Promise<SendOutcome> {
      if (closed) return { kind: 'deferred', reply: 'not sent: the SMTP transport was closed', relay: relay.description, resend: 'next-slot' };
      let refusals = 0;
      let freshSessions = 0;
      for (;;) {
        await slots.take();
        try {
          let session = idle.pop();
          while (session?.broken) session = idle.pop();
          if (session === undefined) {
            if (closed) return { kind: 'deferred', reply: 'not sent: the SMTP transport was closed', relay: relay.description, resend: 'next-slot' };
            try {
              session = await openSession();
            } catch (error) {
              const outcome = classifyFailure(error as SmtpErrorLike, false, relay.description, 'setup');
              // Refused beyond the sessions already open (421 "too many connections"): carry on with
              // those, and this message waits for one of them instead of being deferred.
              const others = liveSessions();
              if (outcome.kind === 'deferred' && outcome.pushback === 'session' && others > 0 && ++refusals <= 3) {
                lowerConnections(others, outcome.reply);
                continue;
              }
              return outcome;
            }
          }
          if (session.maxSize > 0 && message.raw.length > session.maxSize) {
            idle.push(session);
            return {
              kind: 'unusable',
              why: 'size',
              reply: `the message is ${message.raw.length.toLocaleString('en-US')} bytes; ${relay.description} takes at most ${session.maxSize.toLocaleString('en-US')} (its EHLO SIZE)`,
              relay: relay.description,
            };
          }
          const outcome = await transmit(session, message);
          // A session spent or broken before the message went: at once on a fresh one (a few times).
          if (outcome.kind === 'deferred' && outcome.resend === 'fresh-session') {
            if (!closed && ++freshSessions <= FRESH_SESSION_TRIES) continue;
            const { resend: _spent, ...deferred } = outcome;
            return deferred;
          }
          if (outcome.kind === 'sent') raiseConnectionsWhenDue();
          return outcome;
        } finally {
          slots.give();
        }
      }
    },
    async close() {
      closed = true;
      for (const session of idle.splice(0)) retire(session);
      // Sessions still busy are retired when their message is done (closing them now would leave
      // their send unanswered). Wait a little for the QUITs to be answered, then drop the rest.
      const ended = Promise.all([...sessions].filter((session) => !session.busy).map((session) => session.ended));
      await Promise.race([ended, delay(CLOSE_GRACE_MS)]);
      for (const session of sessions) if (!session.busy) session.connection.close();
    },
  };
}

const CLOSE_GRACE_MS = 2_000;
/** A session set-up slower than this is worth opening ahead of a renewal. */
const SLOW_SETUP_MS = 500;
/** Fresh sessions one message may be tried on after its session was spent or broke. */
const FRESH_SESSION_TRIES = 3;
/** How long the connection count stays lowered before one more is tried. */
const CONNECTION_PROBE_MS = 10_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function wholeNumber(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new BulletinError('CONFIG', `SMTP ${what} must be a whole number of at least 1, not ${value}.`);
  return value;
}

/** A counting semaphore whose limit can change: at most `limit` sends (so sessions) at once, in arrival order. */
class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(public limit: number) {}

  take(): Promise<void> {
    if (this.used < this.limit && this.waiting.length === 0) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    this.used--;
    this.wake();
  }

  setLimit(limit: number): void {
    this.limit = limit;
    this.wake();
  }

  private wake(): void {
    while (this.used < this.limit && this.waiting.length > 0) {
      this.used++;
      (this.waiting.shift() as () => void)();
    }
  }
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

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DATA_END = Buffer.from('.\r\n');

/**
 * The message with its end-of-data line (`.` CRLF) appended, when it is already in SMTP DATA form:
 * every line ends in CRLF (no bare CR or LF) and none starts with a dot. Null otherwise. The scan
 * jumps from line end to line end with Buffer.indexOf (native), a few microseconds a message where
 * a byte-by-byte loop in JavaScript takes tens.
 */
export function smtpDataOf(message: Buffer): Buffer | null {
  if (message.length < 2 || message[0] === DOT || message[message.length - 2] !== CR || message[message.length - 1] !== LF) return null;
  let lineFeeds = 0;
  for (let at = message.indexOf(LF); at !== -1; at = message.indexOf(LF, at + 1)) {
    if (message[at - 1] !== CR || message[at + 1] === DOT) return null;
    lineFeeds++;
  }
  // As many CRs as CRLFs: no bare CR anywhere.
  let carriageReturns = 0;
  for (let at = message.indexOf(CR); at !== -1; at = message.indexOf(CR, at + 1)) carriageReturns++;
  if (carriageReturns !== lineFeeds) return null;
  return Buffer.concat([message, DATA_END], message.length + DATA_END.length);
}

/**
 * nodemailer's SMTPConnection with a shortcut for messages already in DATA form (smtpDataOf): its
 * data stream passes them through untouched, where nodemailer would copy and scan every byte and
 * then write the terminator separately. This reaches into `_createSendStream`, an internal of
 * nodemailer 10.6 (pinned in package.json); test/smtp-transport*.test.ts run every path against
 * real servers. (nodemailer already corks a pipelined envelope into one write.)
 */
class PreparedSmtpConnection extends SMTPConnection {
  private prepared = false;

  sendPrepared(envelope: { from: string; to: string[]; size?: number }, message: Readable, prepared: boolean, done: (error: Error | null, info?: { response?: string }) => void): void {
    this.prepared = prepared;
    this.send(envelope, message, (error, info) => done(error, info));
  }

  /** Called by SMTPConnection once DATA is accepted; returns the stream piped into the socket. */
  _createSendStream(callback: unknown): Transform & { inByteCount: number; outByteCount: number } {
    const original = (SMTPConnection.prototype as unknown as { _createSendStream(this: SMTPConnection, callback: unknown): Transform & { inByteCount: number; outByteCount: number } })._createSendStream;
    const stream = original.call(this, callback);
    if (this.prepared) {
      stream._transform = (chunk: Buffer, _encoding, done) => {
        stream.inByteCount += chunk.length;
        stream.outByteCount += chunk.length;
        done(null, chunk);
      };
      stream._flush = (done) => done();
    }
    return stream;
  }
}

interface Session {
  readonly connection: PreparedSmtpConnection;
  sent: number;
  /** Share of the per-session budget this session may carry (see openSession). */
  readonly share: number;
  /** The relay's EHLO SIZE (0: none advertised). */
  maxSize: number;
  /** performance.now() when the session was ready. */
  readyAt: number;
  /** Its successor is being opened (see openSuccessorWhenDue); `replaced` once it is ready. */
  renewing: boolean;
  replaced: boolean;
  broken: boolean;
  /** Carrying a message (or still being set up): not to be closed under it. */
  busy: boolean;
  /** Set up (greeted, and logged in if needed). */
  ready: boolean;
  /** Resolves when the connection has ended, whatever the reason. */
  readonly ended: Promise<void>;
}
