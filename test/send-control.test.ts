// The operator's hands on a live send, from another terminal: three `bulletin` processes share one
// send into a recording SMTP server while `pause`, `unpause`, `pace` and `cancel` run in this
// process. The server's own clock judges them: after a pause no message starts more than a second
// later; after `pace 20/s` no second holds more than 21; after a cancel every process exits 0 within
// two seconds, nothing more arrives, and sent plus cancelled is every recipient.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openApp, type App } from '../src/app/context.js';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { childEnv, runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { waitFor } from './helpers/wait.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const RECIPIENTS = 1500;
let db: TestDatabase;
let relay: TestSmtpServer;
/** Defers a fifth of all attempts after the message (451), the same ones every run. */
let flaky: TestSmtpServer;
/**
 * Held open for the whole file: this process's many short looks at the database would otherwise
 * start and stop the embedded server (the last process leaving stops it) under the children's feet.
 */
let held: App;

before(async () => {
  db = await createTestDatabase();
  held = await openApp(db.config(), { notice: () => undefined });
  relay = await startSmtpServer();
  flaky = await startSmtpServer({ deferFraction: { fraction: 0.2, seed: 'cancel' } });
  await runOk(['list', 'create', 'control', ...LIST_FLAGS], db);
  const csv = join(db.cwd, 'control.csv');
  await writeFile(csv, `email\n${Array.from({ length: RECIPIENTS }, (_, index) => `member${index}@example.net`).join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', 'control'], db);
});
after(async () => {
  await relay?.close();
  await flaky?.close();
  await held?.close();
  await db?.drop();
});

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null; at: number; stdout: string; stderr: string }>;
}

function bulletin(args: readonly string[], rate: string, to: TestSmtpServer = relay): Child {
  // Retries of deferred deliveries come back within a second or two.
  const child = spawn(process.execPath, [BIN, ...args, '--json', '--rate', rate, '--connections', '3', '--retry-min', '1s', '--retry-max', '2s'], {
    env: childEnv(db.env, { SMTP_URL: to.url }),
    cwd: db.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    (child as ChildProcess & { said?: string }).said = stderr;
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as string | null,
    at: Date.now(),
    stdout,
    stderr,
  }));
  return { child, exited };
}

/** The send of `file` in one process and two workers joining it; resolves once all three beat on it. */
async function threeProcesses(file: string, rate: string, to: TestSmtpServer = relay): Promise<{ bulletinId: number; children: Child[] }> {
  const children = [bulletin(['send', file, '--list', 'control', '--yes'], rate, to)];
  let bulletinId = 0;
  await waitFor(async () => {
    const found = await rows<{ id: number }>(db, `SELECT id FROM bulletins WHERE source_name LIKE '%' || $1 ORDER BY id DESC LIMIT 1`, [file.split('/').pop()]);
    bulletinId = found[0]?.id ?? 0;
    return bulletinId > 0;
  }, 'the send to store its bulletin');
  children.push(bulletin(['worker', '--once'], rate, to), bulletin(['worker', '--once'], rate, to));
  await waitFor(
    async () =>
      (
        await rows<{ n: number }>(db, `SELECT count(*)::int AS n FROM send_processes WHERE bulletin_id = $1 AND heartbeat_at > now() - interval '2 seconds'`, [
          bulletinId,
        ])
      )[0]?.n === 3,
    'three processes beating on the send',
  );
  return { bulletinId, children };
}

/** The notes of the JSON progress lines a child wrote on stderr so far. */
function progressNotes(child: ChildProcess & { said?: string }): string[] {
  return (child.said ?? '')
    .split('\n')
    .filter((line) => line.startsWith('{"progress"'))
    .map((line) => (JSON.parse(line) as { progress: { note: string } }).progress.note);
}

/** The most messages the server accepted in any one-second window of these times. */
function busiestSecond(stamps: readonly number[]): number {
  let most = 0;
  for (let start = 0, end = 0; end < stamps.length; end++) {
    while ((stamps[end] as number) - (stamps[start] as number) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`pause, unpause and pace reach three processes on one send within a second; it finishes with everyone sent once (${DATABASE_KIND} database)`, async (t) => {
  const file = join(db.cwd, 'steered.md');
  await writeFile(file, '---\nsubject: Steered\n---\nHello {{subscriber.email}}.\n');
  const start = relay.received.length;
  const { bulletinId, children } = await threeProcesses(file, '100/s');
  await waitFor(() => relay.acceptedAt.length - start >= 100, 'a hundred messages');

  const paused = await runCli(['pause', String(bulletinId)], db);
  assert.equal(paused.code, 0, paused.stderr);
  const pausedAt = Date.now();
  assert.match(paused.stdout, /Paused bulletin \d+: .*3 processes are working on it now/);
  await sleep(2500);
  const lateStarts = relay.triedAt.filter((at) => at > pausedAt + 1000);
  t.diagnostic(`last message start ${Math.max(0, ...relay.triedAt.filter((at) => at > pausedAt - 1000)) - pausedAt} ms after the pause`);
  assert.deepEqual(lateStarts, [], 'no message started more than a second after the pause');
  assert.ok(
    children.every(({ child }) => child.exitCode === null),
    'every process stays up while paused',
  );
  const reported = await rows<{ paused: boolean; sending: number }>(
    db,
    `SELECT bool_and(p.paused) AS paused, (SELECT count(*)::int FROM deliveries WHERE bulletin_id = $1 AND state = 'sending') AS sending
       FROM send_processes p WHERE p.bulletin_id = $1`,
    [bulletinId],
  );
  assert.deepEqual(reported, [{ paused: true, sending: 0 }], 'each process says it is paused, and holds no claim');
  for (const { child } of children) {
    const said = progressNotes(child);
    assert.ok(
      said.some((note) => /paused since \d\d:\d\d:\d\d UTC by .+@.+ \(bulletin unpause \d+\)/.test(note)),
      `the progress of pid ${child.pid} says it is paused: ${said.join(' / ')}`,
    );
  }
  const status = (await runOk(['status', String(bulletinId), '--json'], db)) as { counts: Record<string, number> };
  assert.equal(status.counts.sending, 0);

  const acceptedBeforeUnpause = relay.acceptedAt.length;
  await runOk(['unpause', String(bulletinId)], db);
  const unpausedAt = Date.now();
  await waitFor(() => relay.acceptedAt.length > acceptedBeforeUnpause, 'the send to carry on after unpause', 10_000);
  t.diagnostic(`first message accepted ${Date.now() - unpausedAt} ms after the unpause`);
  assert.ok(Date.now() - unpausedAt < 2000, `it carried on ${Date.now() - unpausedAt} ms after the unpause`);

  await runOk(['pace', String(bulletinId), '20/s'], db);
  const pacedAt = Date.now();
  await sleep(6000);
  // When each message started at the server (its MAIL FROM): what the pace governs.
  const paced = relay.triedAt.filter((at) => at >= pacedAt + 2000 && at < pacedAt + 6000);
  t.diagnostic(`after pace 20/s: ${paced.length} messages started in seconds 2-6, the busiest second held ${busiestSecond(paced)}`);
  assert.ok(paced.length >= 40, `it kept sending at the new pace (${paced.length} in 4 s)`);
  assert.ok(busiestSecond(paced) <= 21, `a second held ${busiestSecond(paced)} messages after pace 20/s`);
  for (const { child } of children) {
    assert.ok(
      progressNotes(child).some((note) => /pace 20\/s set by .+@/.test(note)),
      `the progress of pid ${child.pid} shows the new pace and who set it`,
    );
  }
  const beat = await rows<{ pace: number }>(db, 'SELECT pace FROM send_processes WHERE bulletin_id = $1', [bulletinId]);
  assert.ok(
    beat.every((row) => row.pace !== null && row.pace <= 20),
    `every process keeps 20/s or less: ${JSON.stringify(beat)}`,
  );

  // Faster than the processes' own --rate: the operator's pace holds for all of them.
  await runOk(['pace', String(bulletinId), '400/s'], db);
  const ended = await Promise.all(children.map(({ exited }) => exited));
  for (const end of ended) assert.equal(end.code, 0, end.stderr);
  const states = await rows<{ state: string; count: number }>(
    db,
    'SELECT state::text, count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 GROUP BY state',
    [bulletinId],
  );
  assert.deepEqual(states, [{ state: 'sent', count: RECIPIENTS }]);
  const mine = relay.received.slice(start).filter((message) => message.accepted);
  const recipients = mine.map((message) => message.envelope.to[0]);
  assert.equal(recipients.length, RECIPIENTS, 'every recipient got one message');
  assert.equal(new Set(recipients).size, RECIPIENTS, 'nobody got two');
  const left = await rows(db, 'SELECT owner FROM send_processes WHERE bulletin_id = $1', [bulletinId]);
  assert.deepEqual(left, [], 'each process left the send when it ended');
});

test(`cancel stops three processes within two seconds, with a fifth of attempts deferred; sent plus cancelled is every recipient (${DATABASE_KIND} database)`, async (t) => {
  const file = join(db.cwd, 'cancelled.md');
  await writeFile(file, '---\nsubject: Wrong link\n---\nHello {{subscriber.email}}, see https://wrong.example.net/.\n');
  const relay = flaky;
  const start = relay.received.length;
  const { bulletinId, children } = await threeProcesses(file, '60/s', relay);
  await waitFor(() => relay.acceptedAt.length - start >= 60, 'sixty messages');
  await waitFor(
    async () => (await rows(db, `SELECT 1 FROM deliveries WHERE bulletin_id = $1 AND state = 'deferred'`, [bulletinId])).length > 0,
    'a deferred delivery, waiting for its retry',
  );

  const refused = await runCli(['cancel', String(bulletinId)], db);
  assert.equal(refused.code, 2, 'no confirmation off a terminal without --yes');
  assert.match(refused.stderr, /add --yes/);
  const cancelled = (await runOk(['cancel', String(bulletinId), '--yes', '--json'], db)) as { cancelled: number; unscheduled: boolean };
  const cancelledAt = Date.now();
  assert.equal(cancelled.unscheduled, false);
  assert.ok(cancelled.cancelled > 0 && cancelled.cancelled < RECIPIENTS, `cancelled ${cancelled.cancelled}`);
  const ended = await Promise.all(children.map(({ exited }) => exited));
  t.diagnostic(`the processes exited ${ended.map((end) => end.at - cancelledAt).join(', ')} ms after the cancel; ${cancelled.cancelled} cancelled`);
  for (const end of ended) {
    assert.equal(end.code, 0, end.stderr);
    assert.ok(end.at - cancelledAt <= 2500, `a process exited ${end.at - cancelledAt} ms after the cancel`);
  }
  const lateStarts = relay.triedAt.filter((at) => at > cancelledAt + 1000);
  assert.deepEqual(lateStarts, [], 'no message started more than a second after the cancel');
  const arrived = relay.received.length;
  await sleep(1000);
  assert.equal(relay.received.length, arrived, 'nothing more arrives');

  const counts = await rows<{ state: string; count: number }>(
    db,
    'SELECT state::text, count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 GROUP BY state ORDER BY 1',
    [bulletinId],
  );
  const byState = Object.fromEntries(counts.map((row) => [row.state, row.count]));
  assert.deepEqual(Object.keys(byState).sort(), ['cancelled', 'sent'], JSON.stringify(counts));
  assert.equal((byState.sent ?? 0) + (byState.cancelled ?? 0), RECIPIENTS);
  const accepted = relay.received.slice(start).filter((message) => message.accepted);
  assert.equal(accepted.length, byState.sent, 'every sent delivery is a message the server accepted, and no other arrived');
  const summary = JSON.parse(ended[0]!.stdout) as { end: string; cancelledBy: string | null };
  assert.equal(summary.end, 'cancelled');
  assert.match(summary.cancelledBy ?? '', /@/);

  const listed = (await runOk(['deliveries', String(bulletinId), '--state', 'cancelled', '--json', '--limit', '5000'], db)) as { state: string }[];
  assert.equal(listed.length, byState.cancelled);
  const resumed = await runCli(['resume', String(bulletinId)], { ...db, env: { ...db.env, SMTP_URL: relay.url } });
  assert.equal(resumed.code, 65, 'a cancelled send is not resumed');
  assert.match(resumed.stderr, /was cancelled by .*retry \d+ --state cancelled/);
  const again = await runCli(['pause', String(bulletinId)], db);
  assert.equal(again.code, 65);
  assert.match(again.stderr, /was cancelled/);

  // Asked explicitly, a retry still sends to the cancelled ones, once each.
  const retried = (await runOk(
    ['retry', String(bulletinId), '--state', 'cancelled', '--rate', '500/s', '--retry-min', '1s', '--retry-max', '2s', '--json', '--quiet'],
    {
      ...db,
      env: { ...db.env, SMTP_URL: relay.url },
    },
  )) as { requeued: number; finished: boolean };
  assert.equal(retried.requeued, byState.cancelled);
  assert.equal(retried.finished, true);
  const all = relay.received.slice(start).filter((message) => message.accepted);
  assert.equal(all.length, RECIPIENTS);
  assert.equal(new Set(all.map((message) => message.envelope.to[0])).size, RECIPIENTS, 'nobody got two');
});

test(`a pause while every relay is down: the messages waiting for it are given back, and none starts when it returns (${DATABASE_KIND} database)`, async () => {
  const down = await startSmtpServer();
  try {
    down.setBroken(true);
    const file = join(db.cwd, 'down.md');
    await writeFile(file, '---\nsubject: Relay down\n---\nHello {{subscriber.email}}.\n');
    const sender = bulletin(['send', file, '--list', 'control', '--yes'], '200/s', down);
    let bulletinId = 0;
    await waitFor(async () => {
      const waiting = await rows<{ id: number }>(
        db,
        `SELECT b.id FROM bulletins b JOIN deliveries d ON d.bulletin_id = b.id WHERE b.source_name = 'down.md' AND d.state = 'sending' LIMIT 1`,
      );
      bulletinId = waiting[0]?.id ?? 0;
      return bulletinId > 0;
    }, 'messages waiting for the relay');
    await runOk(['pause', String(bulletinId)], db);
    const pausedAt = Date.now();
    await waitFor(
      async () => (await rows(db, `SELECT 1 FROM deliveries WHERE bulletin_id = $1 AND state = 'sending'`, [bulletinId])).length === 0,
      'the claims waiting for the relay to be given back',
      3000,
    );
    assert.ok(Date.now() - pausedAt < 1500, `given back ${Date.now() - pausedAt} ms after the pause`);
    down.setBroken(false);
    await sleep(3000); // longer than the relay's first cool-down: a probe would have gone by now
    assert.deepEqual(down.triedAt, [], 'no message started while paused, though the relay came back');
    assert.equal(sender.child.exitCode, null, 'the sender stays up while paused');
    await runOk(['unpause', String(bulletinId)], db);
    const end = await sender.exited;
    assert.equal(end.code, 0, end.stderr);
    const recipients = down.received.filter((message) => message.accepted).map((message) => message.envelope.to[0]);
    assert.equal(recipients.length, RECIPIENTS);
    assert.equal(new Set(recipients).size, RECIPIENTS, 'nobody got two');
  } finally {
    await down.close();
  }
});

test(`a pace set by \`bulletin pace\` outlives the process: a later resume keeps it, whatever its --rate (${DATABASE_KIND} database)`, async () => {
  const file = join(db.cwd, 'kept.md');
  await writeFile(file, '---\nsubject: Kept pace\n---\nHello {{subscriber.email}}.\n');
  const first = bulletin(['send', file, '--list', 'control', '--yes'], '100/s');
  let bulletinId = 0;
  await waitFor(async () => {
    bulletinId = (await rows<{ id: number }>(db, `SELECT id FROM bulletins WHERE source_name = 'kept.md'`))[0]?.id ?? 0;
    return bulletinId > 0 && (await rows(db, 'SELECT 1 FROM send_processes WHERE bulletin_id = $1', [bulletinId])).length > 0;
  }, 'the send to start');
  await runOk(['pace', String(bulletinId), '10/s'], db);
  first.child.kill('SIGINT');
  assert.equal((await first.exited).code, 130);
  const resumed = bulletin(['resume', String(bulletinId)], '300/s');
  await waitFor(async () => (await rows(db, 'SELECT 1 FROM send_processes WHERE bulletin_id = $1', [bulletinId])).length > 0, 'the resume to start');
  const from = Date.now() + 1000;
  await sleep(4000);
  const started = relay.triedAt.filter((at) => at >= from && at < from + 3000);
  assert.ok(
    started.length >= 20 && busiestSecond(started) <= 11,
    `the resume kept 10/s: ${started.length} in 3 s, ${busiestSecond(started)} in its busiest second`,
  );
  await runOk(['pace', String(bulletinId), '400/s'], db);
  assert.equal((await resumed.exited).code, 0);
  const [row] = await rows<{ sent: number }>(db, `SELECT count(*)::int AS sent FROM deliveries WHERE bulletin_id = $1 AND state = 'sent'`, [bulletinId]);
  assert.equal(row?.sent, RECIPIENTS);
});

/** Runs `bulletin <args>` on a terminal (a pty from util-linux's `script`), answering `answer` once `prompt` shows. */
async function onTerminal(args: readonly string[], prompt: RegExp, answer: string): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, BIN, ...args].map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: childEnv(db.env), cwd: db.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let answered = false;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (!answered && prompt.test(output)) {
      answered = true;
      child.stdin.write(answer);
    }
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

test(`cancel asks on a terminal, showing what is still to go; only yes cancels (${DATABASE_KIND} database)`, async () => {
  const file = join(db.cwd, 'asked.md');
  await writeFile(file, '---\nsubject: Asked first\n---\nHello.\n');
  const stopped = bulletin(['send', file, '--list', 'control', '--yes', '--outbox', join(db.cwd, 'asked-outbox')], '20/s');
  let bulletinId = 0;
  await waitFor(async () => {
    bulletinId = (await rows<{ id: number }>(db, `SELECT id FROM bulletins WHERE source_name = 'asked.md'`))[0]?.id ?? 0;
    return bulletinId > 0 && (await rows(db, `SELECT 1 FROM deliveries WHERE bulletin_id = $1 AND state = 'sent'`, [bulletinId])).length > 0;
  }, 'the send to begin');
  stopped.child.kill('SIGINT');
  await stopped.exited;
  const [{ open } = { open: 0 }] = await rows<{ open: number }>(
    db,
    `SELECT count(*)::int AS open FROM deliveries WHERE bulletin_id = $1 AND state IN ('queued', 'sending', 'deferred', 'uncertain')`,
    [bulletinId],
  );
  assert.ok(open > 0);
  const prompt = new RegExp(`Cancel bulletin ${bulletinId} \\("Asked first"\\)\\? ${open.toLocaleString('en-US')} of its deliveries are still to go`);
  const declined = await onTerminal(['cancel', String(bulletinId)], prompt, 'n\n');
  assert.equal(declined.code, 2, declined.output);
  assert.match(declined.output, /Not cancelled: not confirmed/);
  const [still] = await rows<{ state: string }>(db, 'SELECT state::text FROM bulletins WHERE id = $1', [bulletinId]);
  assert.equal(still?.state, 'started');
  const confirmed = await onTerminal(['cancel', String(bulletinId)], prompt, 'y\n');
  assert.equal(confirmed.code, 0, confirmed.output);
  assert.match(confirmed.output, new RegExp(`Cancelled bulletin ${bulletinId} \\(by .+\\): ${open.toLocaleString('en-US')} deliveries cancelled`));
  const [cancelled] = await rows<{ n: number }>(db, `SELECT count(*)::int AS n FROM deliveries WHERE bulletin_id = $1 AND state = 'cancelled'`, [bulletinId]);
  assert.equal(cancelled?.n, open);
});

test(`the control commands refuse what they cannot do, each in one sentence (${DATABASE_KIND} database)`, async () => {
  const missing = await runCli(['pause', '999'], db);
  assert.equal(missing.code, 66);
  assert.match(missing.stderr, /There is no bulletin 999/);
  const file = join(db.cwd, 'later.md');
  await writeFile(file, '---\nsubject: Later\n---\nLater.\n');
  const scheduled = (await runOk(['send', file, '--list', 'control', '--at', '2099-01-01T09:00+10:30', '--yes', '--json'], db)) as { bulletinId: number };
  const badRate = await runCli(['pace', String(scheduled.bulletinId), 'fast'], db);
  assert.equal(badRate.code, 65);
  assert.match(badRate.stderr, /Rate "fast" is not valid/);
  await runOk(['pace', String(scheduled.bulletinId), '30/m'], db);
  const [row] = await rows<{ rate: number; rate_set_by: string }>(db, 'SELECT rate, rate_set_by FROM send_pacing WHERE bulletin_id = $1', [
    scheduled.bulletinId,
  ]);
  assert.equal(row?.rate, 0.5, 'a scheduled send can be paced before it starts');
  assert.match(row?.rate_set_by ?? '', /.@./);
  const unscheduled = (await runOk(['cancel', String(scheduled.bulletinId), '--yes', '--json'], db)) as { unscheduled: boolean };
  assert.equal(unscheduled.unscheduled, true, 'a scheduled send is unscheduled by cancel');
  const [state] = await rows<{ state: string }>(db, 'SELECT state::text FROM bulletins WHERE id = $1', [scheduled.bulletinId]);
  assert.equal(state?.state, 'unscheduled');
  const notPaused = await runOk(['unpause', String(scheduled.bulletinId)], db);
  assert.match(String(notPaused), /was not paused; nothing changed/);
});

test(`a worker leaves a paused send for one that is not, and the paused one carries on once unpaused (${DATABASE_KIND} database)`, async () => {
  const sentOf = async (bulletinId: number) =>
    (await rows<{ n: number }>(db, `SELECT count(*)::int AS n FROM deliveries WHERE bulletin_id = $1 AND state = 'sent'`, [bulletinId]))[0]?.n ?? 0;
  const started = async (name: string) => {
    let bulletinId = 0;
    await waitFor(async () => {
      bulletinId = (await rows<{ id: number }>(db, 'SELECT id FROM bulletins WHERE source_name = $1', [name]))[0]?.id ?? 0;
      return bulletinId > 0 && (await sentOf(bulletinId)) >= 50;
    }, `the send of ${name} to be under way`);
    return bulletinId;
  };
  // Send A, paused: its own process stays up, paused.
  const fileA = join(db.cwd, 'left.md');
  await writeFile(fileA, '---\nsubject: Left while paused\n---\nHello {{subscriber.email}}.\n');
  const first = bulletin(['send', fileA, '--list', 'control', '--yes'], '100/s');
  const paused = await started('left.md');
  await runOk(['pause', String(paused)], db);
  // Send B, stopped part way (Ctrl-C): unfinished and not paused.
  const fileB = join(db.cwd, 'other.md');
  await writeFile(fileB, '---\nsubject: The other one\n---\nHello {{subscriber.email}}.\n');
  const second = bulletin(['send', fileB, '--list', 'control', '--yes'], '100/s');
  const other = await started('other.md');
  second.child.kill('SIGINT');
  assert.equal((await second.exited).code, 130);
  await sleep(1500); // A's messages on the wire at the pause are written by now
  const pausedSent = await sentOf(paused);

  // The worker joins A first (the older), leaves it, and finishes B.
  const worker = bulletin(['worker', '--once'], '400/s');
  const end = await Promise.race([worker.exited, sleep(60_000).then(() => null)]);
  if (end === null) for (const { child } of [worker, first]) child.kill('SIGKILL');
  assert.ok(end, 'the worker finished within a minute: it did not wait on the paused send');
  assert.equal(end.code, 0, end.stderr);
  assert.match(end.stdout, new RegExp(`"bulletinId": ?${paused},[^]*?"end": ?"left paused"`), 'the worker says it left the paused send');
  assert.equal(await sentOf(other), RECIPIENTS, 'the worker finished the other send');
  assert.equal(await sentOf(paused), pausedSent, 'nothing of the paused send was sent meanwhile');
  assert.equal(first.child.exitCode, null, 'the paused send’s own process is still up, paused');

  await runOk(['unpause', String(paused)], db);
  assert.equal((await first.exited).code, 0);
  assert.equal(await sentOf(paused), RECIPIENTS);
  // At the relay: every recipient got each bulletin once.
  const copies = new Map<string, number>();
  for (const message of relay.received) {
    const subject = /^Subject: (.*)$/m.exec(message.raw.toString('latin1'))?.[1] ?? '';
    if (!message.accepted || !/Left while paused|The other one/.test(subject)) continue;
    for (const to of message.envelope.to) copies.set(`${subject} ${to}`, (copies.get(`${subject} ${to}`) ?? 0) + 1);
  }
  assert.equal(copies.size, 2 * RECIPIENTS, 'each of the two bulletins reached every recipient');
  assert.deepEqual(
    [...copies].filter(([, count]) => count > 1),
    [],
    'nobody got either bulletin twice',
  );
});

test(`a worker that keeps coming back to a paused send and one waiting for its retries reports each once, not every round (${DATABASE_KIND} database)`, async () => {
  // Send C, paused with nobody working on it.
  const fileC = join(db.cwd, 'quiet-paused.md');
  await writeFile(fileC, '---\nsubject: Quiet while paused\n---\nHello {{subscriber.email}}.\n');
  const first = bulletin(['send', fileC, '--list', 'control', '--yes'], '100/s');
  let pausedId = 0;
  await waitFor(async () => {
    pausedId = (await rows<{ id: number }>(db, 'SELECT id FROM bulletins WHERE source_name = $1', ['quiet-paused.md']))[0]?.id ?? 0;
    return pausedId > 0;
  }, 'the send of quiet-paused.md to start');
  await runOk(['pause', String(pausedId)], db);
  first.child.kill('SIGINT');
  assert.equal((await first.exited).code, 130);
  // Send D: every attempt deferred, its retries an hour away (unfinished, not paused, nothing to do now).
  const deferring = await startSmtpServer({ deferFraction: { fraction: 1, seed: 'quiet' } });
  try {
    const fileD = join(db.cwd, 'quiet-deferred.md');
    await writeFile(fileD, '---\nsubject: Quiet while deferred\n---\nHello {{subscriber.email}}.\n');
    const waiting = (await runOk(
      ['send', fileD, '--list', 'control', '--yes', '--json', '--quiet', '--no-wait', '--rate', '2000/s', '--retry-min', '1h', '--retry-max', '2h'],
      {
        ...db,
        env: { ...db.env, SMTP_URL: deferring.url },
      },
    )) as { bulletinId: number; end: string };
    assert.equal(waiting.end, 'waiting for deferred');

    // Three rounds at least (it looks every 5 s): each send is reported once.
    const worker = bulletin(['worker', '--log-format', 'json'], '100/s', deferring);
    await sleep(13_000);
    worker.child.kill('SIGTERM');
    const { code, stdout, stderr } = await worker.exited;
    const reports = [...stdout.matchAll(/"bulletinId": ?(\d+),[^]*?"end": ?"([^"]+)"/g)].map((match) => `${match[1]} ${match[2]}`);
    assert.deepEqual(reports.sort(), [`${pausedId} left paused`, `${waiting.bulletinId} waiting for deferred`].sort(), stdout);
    assert.ok(code === 0 || code === 130, `the worker ended with ${code}`);
    // Its log says the same once: one start, one pause, one end of each.
    const logged = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { event: string; bulletinId?: number; end?: string })
      .filter((line) => line.bulletinId === pausedId || line.bulletinId === waiting.bulletinId)
      .map((line) => `${line.bulletinId} ${line.event}${line.end ? ` ${line.end}` : ''}`);
    const expected = [
      `${pausedId} send started`,
      `${pausedId} paused`,
      `${pausedId} send ended left paused`,
      `${waiting.bulletinId} send started`,
      `${waiting.bulletinId} send ended waiting for deferred`,
    ];
    assert.deepEqual(logged.filter((line) => !line.endsWith('pace changed')).sort(), expected.sort(), stderr);
    await runOk(['cancel', String(waiting.bulletinId), '--yes'], db);
  } finally {
    await runOk(['cancel', String(pausedId), '--yes'], db);
    await deferring.close();
  }
});
