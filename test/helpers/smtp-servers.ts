// Real SMTP servers (the smtp-server package) on 127.0.0.1 for tests, well-behaved or misbehaving
// on purpose, the way overloaded relays do: refusing recipients (550), deferring after the message
// (451, for chosen addresses or a deterministic fraction) or at RCPT (450 4.2.1 to a fraction),
// 421 at the greeting or beyond N connections, a rate limit at MAIL FROM, a per-session message
// limit (452 4.5.3), 421 at MAIL FROM for the first N messages, dropping the connection during the
// envelope or after the final dot, greeting or replying slowly, refusing our login, our sender or
// every message's content, advertising a SIZE. Each records what it received, accepted or not.
import { createHash } from 'node:crypto';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

export interface ReceivedMessage {
  readonly envelope: { readonly from: string; readonly to: string[] };
  readonly raw: Buffer;
  /** The Message-ID header's value, angle brackets included; '' if there is none. */
  readonly messageId: string;
  /** Whether the server accepted it with 250 (false: deferred, or dropped after receiving it). */
  readonly accepted: boolean;
  readonly disposition: 'accepted' | 'deferred' | 'dropped';
}

export interface SmtpServerBehaviour {
  /** Recipients refused at RCPT with 550 5.1.1. */
  readonly reject?: readonly string[];
  /** Other replies at RCPT, by recipient: e.g. `{ 'x@example.net': '552 5.5.3 Too many recipients' }`. */
  readonly rcptReplies?: Readonly<Record<string, string>>;
  /** Answer 451 after the message for these recipients, their first `times` attempts. */
  readonly deferAfterData?: { readonly addresses: readonly string[]; readonly times: number };
  /**
   * Answer 451 after the message for about this fraction of attempts, decided by a hash of
   * (seed, recipient, attempt number): the same recipients every run, whatever the arrival order.
   */
  readonly deferFraction?: { readonly fraction: number; readonly seed?: string };
  /** Receive the whole message, then close the connection without a reply, the first `times` attempts. */
  readonly dropAfterData?: { readonly addresses: readonly string[]; readonly times: number };
  /** Close the connection without a reply when one of these recipients is named at RCPT (before the body). */
  readonly dropAtRcpt?: readonly string[];
  /** Answer 421 to every connection at the greeting. */
  readonly rejectGreeting?: boolean;
  /** Wait this long before answering the final dot. */
  readonly replyDelayMs?: number;
  /** Require AUTH (PLAIN/LOGIN, without TLS) with these credentials. */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Answer 421 4.7.0 at the greeting to every connection beyond this many open at once. */
  readonly maxConnections?: number;
  /** Answer 450 4.7.0 to MAIL FROM once this many messages were accepted in the last second. */
  readonly maxPerSecond?: number;
  /** The reply beyond `maxPerSecond` (default `450 4.7.0 Rate limit exceeded, slow down`). */
  readonly rateReply?: string;
  /** Answer about this fraction of RCPTs with `reply`, decided by a hash of (seed, recipient, attempt). */
  readonly rcptFraction?: { readonly fraction: number; readonly reply: string; readonly seed?: string };
  /** The reply of `deferFraction` (default `451 4.3.0 Temporary failure, try again later`). */
  readonly deferReply?: string;
  /** After this many messages on one connection, answer MAIL FROM with `reply` (default 452 4.5.3 Too many messages in this session). */
  readonly sessionLimit?: { readonly messages: number; readonly reply?: string };
  /** Answer 421 4.3.2 at MAIL FROM (and close) for the first this many transactions. */
  readonly closeAtMailFrom?: number;
  /** Wait this long before the greeting (a relay slow to set a session up). */
  readonly greetingDelayMs?: number;
  /** Refuse every MAIL FROM with this reply, e.g. `550 5.7.1 Sender address rejected`. */
  readonly mailFromReply?: string;
  /** Answer every message with this reply after the body, e.g. `554 5.7.1 Message content rejected`. */
  readonly dataReply?: string;
  /** Advertise this SIZE in EHLO (and refuse larger messages). */
  readonly size?: number;
}

export interface TestSmtpServer {
  readonly port: number;
  /** For SMTP_URL (no credentials in it). */
  readonly url: string;
  /** Every message whose body arrived in full, in arrival order. */
  readonly received: ReceivedMessage[];
  /** How many times a message with this Message-ID arrived (accepted or not). */
  copies(messageId: string): number;
  /** Connections opened so far, open now, the most open at once, and those refused at the greeting. */
  readonly connections: { readonly opened: number; readonly open: number; readonly mostAtOnce: number; readonly refused: number };
  /** Date.now() of each MAIL FROM, accepted or not: the pace at which the client tried. */
  readonly triedAt: number[];
  /** Each RCPT TO, in order: when, and the address. */
  readonly rcpts: { readonly at: number; readonly address: string }[];
  /** The SIZE= of each MAIL FROM (undefined when absent). */
  readonly mailFromSizes: (number | undefined)[];
  /** Messages answered 2xx in each connection, in the order the connections closed. */
  readonly perConnection: number[];
  /** Closes every open connection at once, without a word (a relay restarting, an idle timeout). */
  dropConnections(): void;
  /** Breaks the relay (every open connection dropped, 421 to every new one) or mends it. */
  setBroken(broken: boolean): void;
  /** Date.now() of each accepted message, in order: the rate as the server saw it. */
  readonly acceptedAt: number[];
  close(): Promise<void>;
}

function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/** An error carrying a whole reply like `554 5.7.1 Message content rejected`. */
function reply(text: string): Error {
  return smtpError(Number(text.slice(0, 3)), text.slice(4));
}

function headerMessageId(raw: Buffer): string {
  const text = raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const header = end < 0 ? text : text.slice(0, end);
  return /^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(\S+)/im.exec(header)?.[1] ?? '';
}

function hashFraction(seed: string, address: string, attempt: number): number {
  return createHash('sha256').update(`${seed}\0${address}\0${attempt}`).digest().readUInt32BE(0) / 2 ** 32;
}

export async function startSmtpServer(behaviour: SmtpServerBehaviour = {}): Promise<TestSmtpServer> {
  const received: ReceivedMessage[] = [];
  const acceptedAt: number[] = [];
  let broken = false;
  const attempts = new Map<string, number>();
  const connections = { opened: 0, open: 0, mostAtOnce: 0, refused: 0 };
  const triedAt: number[] = [];
  const rcpts: { at: number; address: string }[] = [];
  const rcptTries = new Map<string, number>();
  const mailFromSizes: (number | undefined)[] = [];
  const perConnection: number[] = [];
  /** Messages accepted on each open connection, by session id. */
  const accepted = new Map<string, number>();
  let transactions = 0;
  const dropConnection = (session: SMTPServerSession) => {
    for (const connection of server.connections) if (connection.id === session.id) connection._socket.destroy();
  };
  const server: SMTPServer = new SMTPServer({
    disabledCommands: behaviour.auth ? ['STARTTLS'] : ['AUTH', 'STARTTLS'],
    ...(behaviour.size === undefined ? {} : { size: behaviour.size }),
    authOptional: !behaviour.auth,
    allowInsecureAuth: true,
    logger: false,
    closeTimeout: 100,
    onConnect(_session, callback) {
      connections.opened++;
      connections.open++;
      connections.mostAtOnce = Math.max(connections.mostAtOnce, connections.open);
      if (behaviour.rejectGreeting || broken) {
        connections.refused++;
        return callback(smtpError(421, '4.3.2 Too busy, try again later'));
      }
      if (behaviour.maxConnections !== undefined && connections.open > behaviour.maxConnections) {
        connections.refused++;
        return callback(smtpError(421, '4.7.0 Too many connections from your host'));
      }
      if (behaviour.greetingDelayMs) setTimeout(() => callback(), behaviour.greetingDelayMs);
      else callback();
    },
    onMailFrom(address, session, callback) {
      triedAt.push(Date.now());
      const size = (address.args as Record<string, string> | false | undefined) || undefined;
      mailFromSizes.push(size?.SIZE === undefined ? undefined : Number(size.SIZE));
      if (behaviour.mailFromReply !== undefined) return callback(reply(behaviour.mailFromReply));
      if (behaviour.closeAtMailFrom !== undefined && transactions++ < behaviour.closeAtMailFrom) {
        callback(smtpError(421, '4.3.2 Service shutting down, closing transmission channel'));
        return setTimeout(() => dropConnection(session), 5);
      }
      if (behaviour.sessionLimit !== undefined && (accepted.get(session.id) ?? 0) >= behaviour.sessionLimit.messages) {
        return callback(reply(behaviour.sessionLimit.reply ?? '452 4.5.3 Too many messages in this session'));
      }
      if (behaviour.maxPerSecond !== undefined) {
        const now = Date.now();
        let recent = 0;
        for (let index = acceptedAt.length - 1; index >= 0 && (acceptedAt[index] as number) > now - 1000; index--) recent++;
        if (recent >= behaviour.maxPerSecond) return callback(reply(behaviour.rateReply ?? '450 4.7.0 Rate limit exceeded, slow down'));
      }
      callback();
    },
    onClose(session) {
      connections.open--;
      perConnection.push(accepted.get(session.id) ?? 0);
    },
    onAuth(auth, _session, callback) {
      if (behaviour.auth && auth.username === behaviour.auth.user && auth.password === behaviour.auth.pass) return callback(null, { user: auth.username });
      callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
    },
    onRcptTo(address, session, callback) {
      rcpts.push({ at: Date.now(), address: address.address });
      const tries = (rcptTries.get(address.address) ?? 0) + 1;
      rcptTries.set(address.address, tries);
      if (behaviour.dropAtRcpt?.includes(address.address)) return dropConnection(session); // no reply, ever
      const some = behaviour.rcptFraction;
      if (some !== undefined && hashFraction(some.seed ?? 'rcpt', address.address, tries) < some.fraction) return callback(reply(some.reply));
      if (behaviour.reject?.includes(address.address)) return callback(smtpError(550, `5.1.1 <${address.address}>: user unknown`));
      const answer = behaviour.rcptReplies?.[address.address];
      if (answer !== undefined) return callback(reply(answer));
      callback();
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const to = session.envelope.rcptTo.map((rcpt) => rcpt.address);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const messageId = headerMessageId(raw);
        const attemptOf = new Map(to.map((address) => [address, (attempts.get(address) ?? 0) + 1]));
        for (const [address, attempt] of attemptOf) attempts.set(address, attempt);
        const matches = (rule?: { addresses: readonly string[]; times: number }) =>
          rule !== undefined && to.some((address) => rule.addresses.includes(address) && (attemptOf.get(address) ?? 0) <= rule.times);
        const record = (disposition: ReceivedMessage['disposition']) =>
          received.push({ envelope: { from, to }, raw, messageId, accepted: disposition === 'accepted', disposition });
        if (matches(behaviour.dropAfterData)) {
          record('dropped');
          return dropConnection(session); // no reply, ever
        }
        const fraction = behaviour.deferFraction;
        const unlucky =
          fraction !== undefined && to.some((address) => hashFraction(fraction.seed ?? '', address, attemptOf.get(address) ?? 1) < fraction.fraction);
        if (matches(behaviour.deferAfterData) || unlucky) {
          record('deferred');
          return callback(reply(behaviour.deferReply ?? '451 4.3.0 Temporary failure, try again later'));
        }
        if (behaviour.dataReply !== undefined) {
          record('deferred');
          return callback(reply(behaviour.dataReply));
        }
        record('accepted');
        acceptedAt.push(Date.now());
        accepted.set(session.id, (accepted.get(session.id) ?? 0) + 1);
        if (behaviour.replyDelayMs) setTimeout(() => callback(null, 'Message queued as test'), behaviour.replyDelayMs);
        else callback(null, 'Message queued as test');
      });
    },
  });
  // A client killed mid-session (the crash tests) resets its connections: expected, not a failure.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: `smtp://127.0.0.1:${port}?tls=off`,
    received,
    copies: (messageId) => received.filter((message) => message.messageId === messageId).length,
    connections,
    dropConnections: () => {
      for (const connection of server.connections) connection._socket.destroy();
    },
    setBroken(value) {
      broken = value;
      if (value) for (const connection of server.connections) connection._socket.destroy();
    },
    acceptedAt,
    triedAt,
    rcpts,
    mailFromSizes,
    perConnection,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
