// Benchmark of `bulletin send` against a naive nodemailer pool, both into the same fast SMTP sink
// running in another process. Prints msgs/s, CPU seconds and peak RSS of each, and their ratio.
//   DATABASE_URL=postgres://… npx tsx bench/send.ts [--n 100000] [--connections 10] [--sink postfix|node]
//   npx tsx bench/send.ts --n 20000            (embedded database)
//   … --profile DIR                             (V8 CPU profile of the send process, for DevTools)
//   … --faults                                  (a sink answering 10% 451 and dropping 1% after the
//                                               body; reports delivered, duplicates, time to drain)
// The sink is Postfix's smtp-sink when installed (apt-get install postfix; postfix stop), else
// bench/smtp-sink.ts (which costs ~2 ms a round trip and then limits both sides).
// Uses GNU time (/usr/bin/time) for the CPU and peak RSS of each child process.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { measure, prepareDatabase, startSink, type Measured, type SinkCounts } from './harness.js';
const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    connections: { type: 'string', default: '10' },
    naive: { type: 'boolean', default: false },
    sink: { type: 'string', default: existsSync('/usr/sbin/smtp-sink') ? 'postfix' : 'node' },
    port: { type: 'string' },
    /** Write a V8 CPU profile of the `bulletin send` process into this directory. */
    profile: { type: 'string' },
    /** Into a sink answering 10% 451 and dropping 1% after the body: delivered, duplicates, time to drain. */
    faults: { type: 'boolean', default: false },
  },
});
const n = Number(values.n);
const connections = Number(values.connections);

const BODY = `Dear {{default subscriber.name "customer"}},

${'Our mail service had a rough week. Between Tuesday and Thursday, incoming junk mail peaked at many times its usual volume, and delivery of ordinary mail slowed down while the servers worked through it. '.repeat(6)}

## What we did

- Added a second tier of filtering in front of the mail servers.
- Added capacity to the mail cluster so the backlog cleared faster.
- Kept every message queued until it was delivered, rather than dropping any.

${'Some of you received a message twice: when a server is unsure whether a message arrived, it sends it again rather than risk losing it. '.repeat(3)}

Thank you for your patience, {{subscriber.email}}.
`;

if (values.naive) {
  await naiveSend(Number(values.port), n, connections);
  process.exit(0);
}

/** The baseline: a nodemailer pool composing every message itself (as most tools do). */
async function naiveSend(port: number, count: number, maxConnections: number): Promise<void> {
  const transport = nodemailer.createTransport({ pool: true, host: '127.0.0.1', port, secure: false, ignoreTLS: true, maxConnections, maxMessages: Infinity });
  let next = 0;
  const html = `<p>${BODY.replace(/\n\n/g, '</p><p>')}</p>`;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      await transport.sendMail({
        from: 'ExampleNet <noreply@example.net>',
        to: `customer${index}@example.net`,
        subject: '[Bench] Mail delays this week',
        text: BODY,
        html,
        headers: { 'List-Id': '<bench.lists.example.net>', Precedence: 'bulk' },
      });
    }
  };
  await Promise.all(Array.from({ length: maxConnections * 2 }, worker));
  transport.close();
}

const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-send-'));
try {
  const env = await prepareDatabase(dir, { n, name: "'Customer ' || g" });
  const file = join(dir, 'bulletin.md');
  await writeFile(file, `---\nsubject: Mail delays this week, and what we did about them\n---\n${BODY}`);

  if (values.faults) {
    const sink = await startSink(values.sink, true);
    const run = await measure(
      [process.execPath, 'bin/bulletin.js', 'send', file, '--list', 'bench', '--yes', '--json', '--quiet', '--rate', '1000000/s', '--connections', String(connections), '--retry-min', '1s', '--retry-max', '4s'],
      { ...env, SMTP_URL: `smtp://127.0.0.1:${sink.port}?tls=off` },
    );
    const counts = (await sink.stop()) as SinkCounts & { deferred: number; dropped: number };
    const summary = JSON.parse(run.output) as { counts: Record<string, number>; finished: boolean };
    console.log(`recipients: ${n.toLocaleString('en-US')}, connections: ${connections}, database: ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded'}, sink: node with faults (10% 451, 1% dropped after the body)`);
    console.log(`drained in ${run.seconds.toFixed(1)} s (CPU ${run.cpu.toFixed(1)} s, peak RSS ${run.maxRssMb.toFixed(0)} MB); finished: ${summary.finished}`);
    console.log(`database: ${JSON.stringify(summary.counts)}`);
    console.log(`sink: ${counts.messages} bodies received, ${counts.deferred} answered 451, ${counts.dropped} dropped unanswered; ${counts.distinct} distinct Message-IDs delivered, ${counts.duplicates} delivered twice (each a drop after the body: RFC 1047's window)`);
    await rm(dir, { recursive: true, force: true });
    process.exit(0);
  }

  let sink = await startSink(values.sink, false);
  const ours = await measure(
    [process.execPath, ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []), 'bin/bulletin.js', 'send', file, '--list', 'bench', '--yes', '--json', '--quiet', '--rate', '1000000/s', '--connections', String(connections)],
    { ...env, SMTP_URL: `smtp://127.0.0.1:${sink.port}?tls=off` },
  );
  const oursSink = await sink.stop();
  const summary = JSON.parse(ours.output) as { counts: Record<string, number> };

  sink = await startSink(values.sink, false);
  const naive = await measure(
    [process.execPath, '--import', 'tsx', 'bench/send.ts', '--naive', '--n', String(n), '--port', String(sink.port), '--connections', String(connections)],
    process.env,
  );
  const naiveSink = await sink.stop();

  const row = (name: string, measured: Measured, delivered: number) =>
    `${name.padEnd(34)} ${Math.round(delivered / measured.seconds).toLocaleString('en-US').padStart(8)} msg/s  ${measured.seconds.toFixed(1).padStart(6)} s  CPU ${measured.cpu.toFixed(1).padStart(6)} s  peak RSS ${measured.maxRssMb.toFixed(0).padStart(4)} MB`;
  console.log(`recipients: ${n.toLocaleString('en-US')}, connections: ${connections}, database: ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded'}, sink: ${values.sink}`);
  console.log(row('bulletin send (tracked)', ours, oursSink.messages));
  console.log(row('naive nodemailer pool (composing)', naive, naiveSink.messages));
  console.log(`ratio: ${((oursSink.messages / ours.seconds) / (naiveSink.messages / naive.seconds)).toFixed(2)}x`);
  console.log(`bulletin: sink received ${oursSink.messages}${oursSink.duplicates === null ? '' : `, ${oursSink.duplicates} duplicate Message-IDs`}; database says ${JSON.stringify(summary.counts)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
