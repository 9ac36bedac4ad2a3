// Real SMTP servers (the smtp-server package) on 127.0.0.1 for tests, well-behaved or misbehaving
// on purpose: refusing recipients (550), deferring after the message (451), answering 421 at the
// greeting, or dropping the connection after the final dot without a reply. Each records what
// it received, accepted or not.
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

export interface ReceivedMessage {
  readonly envelope: { readonly from: string; readonly to: string[] };
  readonly raw: Buffer;
  readonly messageId: string;
  /** Whether the server answered 250 (false: deferred or dropped after receiving it). */
  readonly accepted: boolean;
}

export interface SmtpServerBehaviour {
  /** Recipients refused at RCPT with 550 5.1.1. */
  readonly reject?: readonly string[];
  /** Answer 451 after the message for these recipients, their first `times` attempts. */
  readonly deferAfterData?: { readonly addresses: readonly string[]; readonly times: number };
  /** Receive the whole message, then close the connection without a reply, the first `times` attempts. */
  readonly dropAfterData?: { readonly addresses: readonly string[]; readonly times: number };
  /** Answer 421 to every connection at the greeting. */
  readonly rejectGreeting?: boolean;
}

export interface TestSmtpServer {
  readonly port: number;
  /** For SMTP_URL. */
  readonly url: string;
  readonly received: ReceivedMessage[];
  close(): Promise<void>;
}

function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

export async function startSmtpServer(behaviour: SmtpServerBehaviour = {}): Promise<TestSmtpServer> {
  const received: ReceivedMessage[] = [];
  const attempts = new Map<string, number>();
  const server: SMTPServer = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    closeTimeout: 100,
    onConnect(_session, callback) {
      if (behaviour.rejectGreeting) return callback(smtpError(421, '4.3.2 Too busy, try again later'));
      callback();
    },
    onRcptTo(address, _session, callback) {
      if (behaviour.reject?.includes(address.address)) return callback(smtpError(550, `5.1.1 <${address.address}>: user unknown`));
      callback();
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const to = session.envelope.rcptTo.map((rcpt) => rcpt.address);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const messageId = /^Message-ID:\s*(\S+)/im.exec(raw.toString('latin1'))?.[1] ?? '';
        const attempt = (attempts.get(to[0] ?? '') ?? 0) + 1;
        attempts.set(to[0] ?? '', attempt);
        const matches = (rule?: { addresses: readonly string[]; times: number }) =>
          rule !== undefined && to.some((address) => rule.addresses.includes(address)) && attempt <= rule.times;
        if (matches(behaviour.dropAfterData)) {
          received.push({ envelope: { from, to }, raw, messageId, accepted: false });
          for (const connection of (server as unknown as { connections: Set<{ id: string; _socket: { destroy(): void } }> }).connections) {
            if (connection.id === session.id) connection._socket.destroy();
          }
          return; // no reply, ever
        }
        if (matches(behaviour.deferAfterData)) {
          received.push({ envelope: { from, to }, raw, messageId, accepted: false });
          return callback(smtpError(451, '4.3.0 Temporary failure, try again later'));
        }
        received.push({ envelope: { from, to }, raw, messageId, accepted: true });
        callback(null, 'Message queued as test');
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
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
