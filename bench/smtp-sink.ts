// A fast SMTP sink for benchmarks, run as its own process: accepts every message on 127.0.0.1,
// discards the data, counts messages and distinct Message-IDs, and prints them on SIGTERM.
//   npx tsx bench/smtp-sink.ts [--port 0]     (prints "listening <port>" on stdout when ready)
//   … --faults                                  answers 451 to 10% of messages and, for 1%, receives
//                                               the whole message and closes the connection unanswered
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, faults: { type: 'boolean', default: false } } });
let messages = 0;
let deferred = 0;
let dropped = 0;
/** Message-ID → copies answered 250 (or dropped after the body: perhaps delivered, RFC 1047). */
const seen = new Map<string, number>();

const server = new SMTPServer({
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  maxClients: 200,
  onData(stream, session, callback) {
    let head = '';
    stream.on('data', (chunk: Buffer) => {
      if (head.length < 4096) head += chunk.toString('latin1');
    });
    stream.on('end', () => {
      messages++;
      const id = /^Message-ID:\s*(\S+)/im.exec(head)?.[1];
      const luck = values.faults ? Math.random() : 1;
      if (luck < 0.1) {
        deferred++;
        return callback(Object.assign(new Error('4.3.0 Temporary failure, try again later'), { responseCode: 451 }));
      }
      if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
      if (luck < 0.11) {
        dropped++;
        for (const connection of server.connections) if (connection.id === session.id) connection._socket.destroy();
        return;
      }
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
  process.stdout.write(`${JSON.stringify({ messages, deferred, dropped, distinct: seen.size, duplicates })}\n`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
