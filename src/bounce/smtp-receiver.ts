// The SMTP server of `bulletin inbound` (the smtp-server package): takes mail only for the addresses
// `recipientKind` says are ours, answers 550 to every other (it never relays), enforces its limits,
// and hands each message, whole, to `handle` before answering, so a message is acted on as it arrives.
// What the addresses are and what a message means is the caller's; this module only speaks SMTP.
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { InboundAddressKind } from './inbound-mail.js';

export interface InboundLimits {
  /** Largest message in bytes (SIZE, RFC 1870); a larger one is refused with 552. */
  readonly maxMessageBytes: number;
  /** Connections at once; one more is told 421 and closed. */
  readonly maxConnections: number;
  /** Accepted recipients per message; more are told 452 (RFC 5321 §4.5.3.1.10). */
  readonly maxRecipients: number;
  /** A connection silent for this long is closed. */
  readonly idleTimeoutMs: number;
}

/** The documented defaults (README, `bulletin inbound --help`). */
export const DEFAULT_INBOUND_LIMITS: InboundLimits = {
  maxMessageBytes: 10 * 1024 * 1024,
  maxConnections: 20,
  maxRecipients: 10,
  idleTimeoutMs: 60_000,
};

export interface InboundOptions {
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  /** Our name in the greeting and EHLO reply. */
  readonly hostname: string;
  readonly limits: InboundLimits;
  /** Which of our addresses this is (lower-cased by the caller as it likes), or null: not ours. */
  readonly recipientKind: (address: string) => Promise<InboundAddressKind | null>;
  /**
   * Acts on one message; resolves with what to log about it. A rejection is answered 451 (try again
   * later): the sender keeps the message and nothing is lost while, say, the database is down.
   */
  readonly handle: (message: { raw: Buffer; sentTo: readonly { address: string; kind: InboundAddressKind }[]; mailFrom: string }) => Promise<string>;
  /** One line per message handled or refused after DATA; never a token. */
  readonly log: (line: string) => void;
  /** Told of each refusal: a recipient not ours (550), a message too big (552), one not handled now (451). */
  readonly refused?: (why: InboundRefusal) => void;
}

export type InboundRefusal = 'not ours' | 'too big' | 'not handled';

export interface RunningInbound {
  readonly port: number;
  close(): Promise<void>;
}

interface Envelope {
  kinds: Map<string, InboundAddressKind>;
}

function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/** `bulletins-bounces+<token>@…` → `bulletins-bounces+…@…`: the log names the address, never the token. */
export function withoutToken(address: string): string {
  return address.replace(/\+[^@]*@/, '+…@');
}

export async function startInbound(options: InboundOptions): Promise<RunningInbound> {
  const { limits } = options;
  const envelopes = new WeakMap<SMTPServerSession, Envelope>();
  const envelopeOf = (session: SMTPServerSession): Envelope => {
    let envelope = envelopes.get(session);
    if (envelope === undefined) {
      envelope = { kinds: new Map() };
      envelopes.set(session, envelope);
    }
    return envelope;
  };

  const server = new SMTPServer({
    name: options.hostname,
    banner: "bulletin inbound: mail for this domain's lists only",
    // No AUTH (nobody sends through us) and no TLS of our own (the MX in front of us has it).
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    size: limits.maxMessageBytes,
    maxClients: limits.maxConnections,
    socketTimeout: limits.idleTimeoutMs,
    closeTimeout: 5_000,
    logger: false,
    disableReverseLookup: true,
    onMailFrom(_address, session, callback) {
      envelopes.set(session, { kinds: new Map() });
      callback();
    },
    onRcptTo(address: SMTPServerAddress, session, callback) {
      const envelope = envelopeOf(session);
      if (envelope.kinds.size >= limits.maxRecipients) {
        callback(smtpError(452, `4.5.3 Too many recipients (at most ${limits.maxRecipients} a message)`));
        return;
      }
      options.recipientKind(address.address).then(
        (kind) => {
          if (kind === null) {
            // Anything but our own lists' addresses: never relayed, never accepted.
            options.refused?.('not ours');
            callback(smtpError(550, "5.7.1 Relaying denied: this server takes mail only for its lists' own addresses"));
            return;
          }
          envelope.kinds.set(address.address, kind);
          callback();
        },
        () => callback(smtpError(451, '4.3.0 Temporary failure looking up the address; try again later')),
      );
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        if (!stream.sizeExceeded) chunks.push(chunk);
      });
      stream.on('end', () => {
        const envelope = envelopeOf(session);
        const sentTo = [...envelope.kinds].map(([address, kind]) => ({ address, kind }));
        const mailFrom = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        const names = `from=<${withoutToken(mailFrom)}> to=${sentTo.map((each) => `<${withoutToken(each.address)}>`).join(',')}`;
        if (stream.sizeExceeded) {
          options.log(`inbound: ${names} refused: over ${limits.maxMessageBytes} bytes (552)`);
          options.refused?.('too big');
          callback(smtpError(552, `5.3.4 Message too big (at most ${limits.maxMessageBytes} bytes)`));
          return;
        }
        const raw = Buffer.concat(chunks);
        options.handle({ raw, sentTo, mailFrom }).then(
          (outcome) => {
            options.log(`inbound: ${names} size=${raw.length}: ${outcome}`);
            callback(null, '2.0.0 Thank you');
          },
          (error: unknown) => {
            options.log(`inbound: ${names} size=${raw.length}: not handled, the sender will try again (451): ${(error as Error).message}`);
            options.refused?.('not handled');
            callback(smtpError(451, '4.3.0 Cannot take this message now; try again later'));
          },
        );
      });
    },
  });
  server.on('error', () => undefined); // a client's broken connection is its own business

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
  const address = server.server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
