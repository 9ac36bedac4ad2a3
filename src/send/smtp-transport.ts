// A Transport over a pool of SMTP connections (nodemailer's SMTPConnection). Messages go as
// pre-built raw bytes with an explicit envelope (no composition here); each outcome is classified
// by failure.ts. Throttling is not the pool's job: the dispatcher paces sends with its own limiter.
//
//   SMTP_URL: see relay-url.ts.
//
// Why not nodemailer's own pool (`pool: true`): its send callback cannot tell whether the final dot
// had gone out when a connection died (failure.ts needs that to tell `deferred` from `uncertain`),
// and it builds a MimeNode even for a raw message (measured here: less than half the CPU per
// message without it). This pool keeps nodemailer's SMTP client and its PIPELINING.
//
// Messages already in SMTP DATA form (CRLF only, no line starting with a dot: what src/render
// produces) skip nodemailer's byte-by-byte dot-stuffing and go out with their terminator in one
// write (nodemailer-fast-path.ts). Anything else takes nodemailer's own path. The session limit is a
// semaphore (slots.ts).
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
import { BulletinError } from '../domain/errors.js';
import { classifyFailure, classifySuccess, outcomeOf, type SmtpErrorLike } from './failure.js';
import { OneBufferStream, PreparedSmtpConnection, smtpDataOf } from './nodemailer-fast-path.js';
import { parseRelayUrl, type RelayAddress } from './relay-url.js';
import { Slots } from './slots.js';
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

  /**
   * Sessions not broken: set up (idle or carrying a message) or still being set up. A relay that
   * refuses connections beyond a number often refuses before the first greetings of the others
   * are done: those still being set up are counted, as they are probably within the number.
   */
  function unbrokenSessions(): number {
    let count = 0;
    for (const session of sessions) if (!session.broken) count++;
    return count;
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
    const session: Session = {
      connection,
      sent: 0,
      share,
      broken: false,
      busy: true,
      ready: false,
      ended: new Promise<void>((resolve) => (markEnded = resolve)),
      maxSize: 0,
      readyAt: 0,
      renewing: false,
      replaced: false,
    };
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
        await Promise.race([
          setupFailed,
          new Promise<void>((resolve, reject) => connection.login(credentials, (error) => (error ? reject(error) : resolve()))),
        ]);
      }
    } catch (error) {
      session.broken = true;
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
    const reusable = !session.broken && !closed && hasBudget(session) && (outcome.kind === 'sent' || (outcome.kind !== 'uncertain' && (await reset(session))));
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
      if (closed) return outcomeOf.notSent('the SMTP transport was closed', relay.description);
      let refusals = 0;
      let freshSessions = 0;
      for (;;) {
        await slots.take();
        /** The session this message used, if any: its slot may outlive the message (see finally). */
        let used: Session | undefined;
        try {
          let session = idle.pop();
          while (session?.broken) session = idle.pop();
          if (session === undefined) {
            if (closed) return outcomeOf.notSent('the SMTP transport was closed', relay.description);
            try {
              session = await openSession();
            } catch (error) {
              const outcome = classifyFailure(error as SmtpErrorLike, false, relay.description, 'setup');
              // Refused beyond the sessions already open (421 "too many connections"): carry on with
              // those, and this message waits for one of them instead of being deferred.
              const others = unbrokenSessions();
              if (outcome.kind === 'deferred' && outcome.pushback === 'session' && others > 0 && ++refusals <= 3) {
                lowerConnections(others, outcome.reply);
                continue;
              }
              return outcome;
            }
          }
          if (session.maxSize > 0 && message.raw.length > session.maxSize) {
            idle.push(session);
            return outcomeOf.overSize(message.raw.length, session.maxSize, relay.description);
          }
          used = session;
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
          // Against a relay that counts connections, a retired session keeps its slot until its
          // connection has ended: a successor opened while the relay still counts the old one
          // (QUIT not yet answered) would be refused, and would lower the count further.
          if (used?.broken && refusedConnections && !closed) void Promise.race([used.ended, delay(CLOSE_GRACE_MS)]).then(() => slots.give());
          else slots.give();
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
