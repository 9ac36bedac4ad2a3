// A fast SMTP sink for benchmarks, run as its own process: accepts messages on 127.0.0.1, discards
// the data, counts attempts, acceptances and distinct Message-IDs, and prints them on SIGTERM.
// With --scenario it misbehaves the way an overloaded relay does (bench/send.ts --faults):
//   npx tsx bench/smtp-sink.ts [--port 0] [--scenario NAME[=VALUE]]   (prints "listening <port>")
//   random-451[=0.1]   451 4.3.0 after the message to that share of messages, at random
//   rcpt-450[=0.3]     450 4.2.1 at RCPT to that share of recipients, at random
//   rate-limit-60      451 4.7.0 at MAIL FROM beyond 60 accepted in the last second, and 421 beyond
//                      3 connections
//   conn-limit-3       421 at the greeting beyond 3 connections
//   slow-final-reply   the reply to the final dot 3 s late for 2% of messages
//   session-limit-50   452 4.5.3 at MAIL FROM after 50 messages in one session
//   mixed              5% 451 4.3.0, 60/s and 3 connections, 452 4.5.3 after 50 a session, and 1%
//                      dropped after the body without a reply
import { parseArgs } from 'node:util';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, scenario: { type: 'string', default: 'none' } } });
const [name, valueText] = (values.scenario ?? 'none').split('=');
const value = valueText === undefined ? undefined : Number(valueText);

interface Faults {
  dataShare?: number;
  rcptShare?: number;
  perSecond?: number;
  connections?: number;
  slowShare?: number;
  perSession?: number;
  dropShare?: number;
}
const SCENARIOS: Record<string, Faults> = {
  none: {},
  'random-451': { dataShare: value ?? 0.1 },
  'rcpt-450': { rcptShare: value ?? 0.3 },
  'rate-limit-60': { perSecond: 60, connections: 3 },
  'conn-limit-3': { connections: 3 },
  'slow-final-reply': { slowShare: 0.02 },
  'session-limit-50': { perSession: 50 },
  mixed: { dataShare: 0.05, perSecond: 60, connections: 3, perSession: 50, dropShare: 0.01 },
};
const faults = SCENARIOS[name ?? 'none'];
if (faults === undefined) {
  process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}\n`);
  process.exit(2);
}

const counts = { attempts: 0, accepted: 0, refused: 0, dropped: 0, connectionsRefused: 0, firstAt: 0, lastAt: 0 };
/** Message-ID → copies answered 250 (or dropped after the body: perhaps delivered, RFC 1047). */
const seen = new Map<string, number>();
const acceptedAt: number[] = [];
const perSession = new Map<string, number>();
/** Date.now() of every MAIL FROM, and of every acceptance (acceptedAt only keeps the last second). */
const attemptAt: number[] = [];
const everAcceptedAt: number[] = [];
let open = 0;

const refuse = (text: string) => Object.assign(new Error(text.slice(4)), { responseCode: Number(text.slice(0, 3)) });

const server = new SMTPServer({
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  maxClients: 500,
  onConnect(_session, callback) {
    open++;
    if (faults.connections !== undefined && open > faults.connections) {
      counts.connectionsRefused++;
      return callback(refuse('421 4.7.0 Too many connections from your host'));
    }
    callback();
  },
  onClose(session) {
    open--;
    perSession.delete(session.id);
  },
  onMailFrom(_address, session, callback) {
    counts.attempts++;
    const now = Date.now();
    attemptAt.push(now);
    counts.firstAt ||= now;
    if (faults.perSession !== undefined && (perSession.get(session.id) ?? 0) >= faults.perSession) {
      counts.refused++;
      return callback(refuse('452 4.5.3 Too many messages in this session'));
    }
    if (faults.perSecond !== undefined) {
      while (acceptedAt.length > 0 && (acceptedAt[0] as number) <= now - 1000) acceptedAt.shift();
      if (acceptedAt.length >= faults.perSecond) {
        counts.refused++;
        return callback(refuse('451 4.7.0 Rate limit exceeded, slow down'));
      }
    }
    callback();
  },
  onRcptTo(_address, _session, callback) {
    if (faults.rcptShare !== undefined && Math.random() < faults.rcptShare) {
      counts.refused++;
      return callback(refuse('450 4.2.1 Mailbox busy, try again later'));
    }
    callback();
  },
  onData(stream, session: SMTPServerSession, callback) {
    let head = '';
    stream.on('data', (chunk: Buffer) => {
      if (head.length < 4096) head += chunk.toString('latin1');
    });
    stream.on('end', () => {
      const id = /^Message-ID:\s*(\S+)/im.exec(head)?.[1];
      const luck = Math.random();
      if (faults.dataShare !== undefined && luck < faults.dataShare) {
        counts.refused++;
        return callback(refuse('451 4.3.0 Temporary local problem, try again later'));
      }
      const accept = () => {
        counts.accepted++;
        counts.lastAt = Date.now();
        acceptedAt.push(counts.lastAt);
        everAcceptedAt.push(counts.lastAt);
        perSession.set(session.id, (perSession.get(session.id) ?? 0) + 1);
        if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
      };
      if (faults.dropShare !== undefined && Math.random() < faults.dropShare) {
        counts.dropped++;
        if (id) seen.set(id, (seen.get(id) ?? 0) + 1); // perhaps delivered
        for (const connection of server.connections) if (connection.id === session.id) connection._socket.destroy();
        return;
      }
      if (faults.slowShare !== undefined && Math.random() < faults.slowShare) {
        setTimeout(() => {
          accept();
          callback();
        }, 3_000);
        return;
      }
      accept();
      callback();
    });
  },
});

server.on('error', () => undefined); // clients that reset their connections
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : values.port}\n`);
});

process.on('SIGTERM', () => {
  const duplicates = [...seen.values()].filter((count) => count > 1).length;
  // The pace while there is a backlog: attempts per second until 95% of the acceptances (the rest
  // is the tail of retries, which must wait --retry-min whatever the pace).
  const until = everAcceptedAt[Math.max(0, Math.ceil(0.95 * everAcceptedAt.length) - 1)] ?? counts.firstAt;
  const attemptsTo95 = attemptAt.filter((at) => at <= until).length;
  const rateTo95 = until > counts.firstAt ? (attemptsTo95 * 1000) / (until - counts.firstAt) : 0;
  process.stdout.write(`${JSON.stringify({ ...counts, messages: counts.accepted, distinct: seen.size, duplicates, rateTo95 })}\n`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
