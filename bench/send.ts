// Benchmark of `bulletin send` against a naive nodemailer pool, both into the same fast SMTP sink
// running in another process. Prints msgs/s, CPU seconds and peak RSS of each, and their ratio.
//   DATABASE_URL=postgres://… npx tsx bench/send.ts [--n 100000] [--connections 10] [--sink postfix|node]
//   npx tsx bench/send.ts --n 20000            (embedded database)
//   … --profile DIR                             (V8 CPU profile of the send process, for DevTools)
//   … --faults [--scenario NAME]…               (named misbehaving relays, bench/smtp-sink.ts: per
//                                               scenario attempts/s, share accepted, time to drain,
//                                               duplicates at the sink, against the same send into a
//                                               sink without faults, measured in the same run;
//                                               --n defaults to 2000 here)
// The sink is Postfix's smtp-sink when installed (apt-get install postfix; postfix stop), else
// bench/smtp-sink.ts (which costs ~2 ms a round trip and then limits both sides).
// Uses GNU time (/usr/bin/time) for the CPU and peak RSS of each child process.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { dropBenchDatabase, measure, prepareDatabase, startSink, type Measured } from './harness.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string' },
    connections: { type: 'string', default: '10' },
    naive: { type: 'boolean', default: false },
    sink: { type: 'string', default: existsSync('/usr/sbin/smtp-sink') ? 'postfix' : 'node' },
    port: { type: 'string' },
    /** Write a V8 CPU profile of the `bulletin send` process into this directory. */
    profile: { type: 'string' },
    /** Into sinks that misbehave as named (bench/smtp-sink.ts), each against a no-fault baseline. */
    faults: { type: 'boolean', default: false },
    /** With --faults: only these scenarios (default: all). */
    scenario: { type: 'string', multiple: true },
  },
});
const n = Number(values.n ?? (values.faults ? 2000 : 100000));
const SUBSCRIBERS = { n, name: "'Customer ' || g" };
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

interface FaultCounts {
  attempts: number;
  accepted: number;
  refused: number;
  dropped: number;
  connectionsRefused: number;
  distinct: number;
  duplicates: number;
  /** Attempts per second until 95% of the acceptances: the pace while there is a backlog. */
  rateTo95: number;
}

/** The named scenarios, by the flags they are sent with; each group starts with its no-fault baseline. */
const FAULT_GROUPS: readonly { flags: readonly string[]; scenarios: readonly { label: string; sink: string }[] }[] = [
  {
    flags: ['--rate', '200/s'],
    scenarios: [
      { label: 'random-451 (10%)', sink: 'random-451=0.1' },
      { label: 'random-451 (20%)', sink: 'random-451=0.2' },
      { label: 'rcpt-450 (30%)', sink: 'rcpt-450=0.3' },
      { label: 'slow-final-reply', sink: 'slow-final-reply' },
    ],
  },
  {
    flags: ['--rate', '1000/s'],
    scenarios: [
      { label: 'rate-limit-60', sink: 'rate-limit-60' },
      { label: 'conn-limit-3', sink: 'conn-limit-3' },
      { label: 'session-limit-50', sink: 'session-limit-50' },
      { label: 'mixed', sink: 'mixed' },
    ],
  },
];

/** Each scenario's send (a fresh database each time) into its sink, beside its group's baseline. */
async function benchFaults(firstEnv: NodeJS.ProcessEnv, file: string): Promise<void> {
  const wanted = values.scenario;
  const rows: string[] = [];
  const scratch: string[] = [];
  let env: NodeJS.ProcessEnv | null = firstEnv;
  const sendInto = async (sink: string, flags: readonly string[]) => {
    if (env === null) {
      const fresh = await mkdtemp(join(tmpdir(), 'bulletin-bench-send-'));
      scratch.push(fresh);
      env = await prepareDatabase(fresh, SUBSCRIBERS);
    }
    const started = await startSink(values.sink, sink);
    let run: Measured;
    try {
      run = await measure(
        [
          process.execPath,
          'bin/bulletin.js',
          'send',
          file,
          '--list',
          'bench',
          '--yes',
          '--json',
          '--quiet',
          ...flags,
          '--connections',
          String(connections),
          '--retry-min',
          '1s',
          '--retry-max',
          '2s',
        ],
        { ...env, SMTP_URL: `smtp://127.0.0.1:${started.port}?tls=off` },
      );
    } catch (error) {
      await started.stop(); // no sink left behind
      throw error;
    }
    env = null; // the next send gets a fresh database
    const counts = (await started.stop()) as unknown as FaultCounts;
    const summary = JSON.parse(run.output) as { counts: Record<string, number>; finished: boolean };
    return { seconds: run.seconds, counts, summary };
  };
  const header = `${'scenario'.padEnd(20)} ${'flags'.padEnd(13)} ${'attempts/s'.padStart(10)} ${'vs baseline'.padStart(11)} ${'to 95%'.padStart(10)} ${'vs baseline'.padStart(11)} ${'accepted'.padStart(9)} ${'drained in'.padStart(10)} ${'duplicates'.padStart(10)}  finished`;
  for (const group of FAULT_GROUPS) {
    const scenarios = group.scenarios.filter(
      (scenario) => wanted === undefined || wanted.some((name) => scenario.sink.startsWith(name) || scenario.label.startsWith(name)),
    );
    if (scenarios.length === 0) continue;
    const baseline = await sendInto('none', group.flags);
    const baseRate = baseline.counts.attempts / baseline.seconds;
    const baseBusy = baseline.counts.rateTo95;
    const row = (label: string, result: typeof baseline) => {
      const rate = result.counts.attempts / result.seconds;
      const busy = result.counts.rateTo95;
      return `${label.padEnd(20)} ${group.flags.join(' ').padEnd(13)} ${rate.toFixed(1).padStart(10)} ${`${((100 * rate) / baseRate).toFixed(0)}%`.padStart(11)} ${busy.toFixed(1).padStart(10)} ${`${((100 * busy) / baseBusy).toFixed(0)}%`.padStart(11)} ${`${((100 * result.counts.accepted) / Math.max(1, result.counts.attempts)).toFixed(1)}%`.padStart(9)} ${`${result.seconds.toFixed(1)} s`.padStart(10)} ${String(result.counts.duplicates).padStart(10)}  ${result.summary.finished}`;
    };
    rows.push(row('no faults (baseline)', baseline));
    for (const scenario of scenarios) rows.push(row(scenario.label, await sendInto(scenario.sink, group.flags)));
  }
  console.log(
    `recipients: ${n.toLocaleString('en-US')} per send, connections: ${connections}, --retry-min 1s --retry-max 2s, database: ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded'}, sink: bench/smtp-sink.ts`,
  );
  console.log('attempts/s: MAIL FROMs at the sink per second of the whole send (until every recipient has an outcome, retry waits included);');
  console.log('to 95%: attempts/s until 95% of the messages were accepted (the pace while there is a backlog; the rest is the tail of retries, each');
  console.log('waiting --retry-min or more whatever the pace); accepted: share of attempts answered 250; duplicates: Message-IDs accepted twice');
  console.log(header);
  for (const line of rows) console.log(line);
  await Promise.all(scratch.map((path) => rm(path, { recursive: true, force: true })));
}

const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-send-'));
try {
  const env = await prepareDatabase(dir, SUBSCRIBERS);
  const file = join(dir, 'bulletin.md');
  await writeFile(file, `---\nsubject: Mail delays this week, and what we did about them\n---\n${BODY}`);

  if (values.faults) {
    await benchFaults(env, file);
    await rm(dir, { recursive: true, force: true });
    await dropBenchDatabase();
    process.exit(0);
  }

  let sink = await startSink(values.sink);
  const ours = await measure(
    [
      process.execPath,
      ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []),
      'bin/bulletin.js',
      'send',
      file,
      '--list',
      'bench',
      '--yes',
      '--json',
      '--quiet',
      '--rate',
      '1000000/s',
      '--connections',
      String(connections),
    ],
    { ...env, SMTP_URL: `smtp://127.0.0.1:${sink.port}?tls=off` },
  );
  const oursSink = await sink.stop();
  const summary = JSON.parse(ours.output) as { counts: Record<string, number> };

  sink = await startSink(values.sink);
  const naive = await measure(
    [process.execPath, '--import', 'tsx', 'bench/send.ts', '--naive', '--n', String(n), '--port', String(sink.port), '--connections', String(connections)],
    process.env,
  );
  const naiveSink = await sink.stop();

  const row = (name: string, measured: Measured, delivered: number) =>
    `${name.padEnd(34)} ${Math.round(delivered / measured.seconds)
      .toLocaleString('en-US')
      .padStart(
        8,
      )} msg/s  ${measured.seconds.toFixed(1).padStart(6)} s  CPU ${measured.cpu.toFixed(1).padStart(6)} s  peak RSS ${measured.maxRssMb.toFixed(0).padStart(4)} MB`;
  console.log(
    `recipients: ${n.toLocaleString('en-US')}, connections: ${connections}, database: ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded'}, sink: ${values.sink}`,
  );
  console.log(row('bulletin send (tracked)', ours, oursSink.messages));
  console.log(row('naive nodemailer pool (composing)', naive, naiveSink.messages));
  console.log(`ratio: ${(oursSink.messages / ours.seconds / (naiveSink.messages / naive.seconds)).toFixed(2)}x`);
  console.log(
    `bulletin: sink received ${oursSink.messages}${oursSink.duplicates === null ? '' : `, ${oursSink.duplicates} duplicate Message-IDs`}; database says ${JSON.stringify(summary.counts)}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
  await dropBenchDatabase();
}
