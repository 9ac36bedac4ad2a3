// Several `bulletin` processes on one send, against the PostgreSQL server (the embedded database
// admits one process): three workers keep the send's rate together, every recipient is sent once,
// and killing one mid-send loses nobody (its leases lapse and the others take its claims over).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, serverOnly, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { waitFor } from './helpers/wait.js';

/** Enough for about 12 seconds at the rate: time for all three to start and hold claims even on a busy machine. */
const RECIPIENTS = 1200;
const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const RATE = 100;
let db: TestDatabase;
let relay: TestSmtpServer;

before(async () => {
  db = await createTestDatabase();
  relay = await startSmtpServer();
});
after(async () => {
  await relay?.close();
  await db?.drop();
});

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
}

function bulletin(args: readonly string[]): Child {
  const child = spawn(process.execPath, [BIN, ...args, '--json', '--quiet', '--rate', `${RATE}/s`, '--lease', '2s', '--connections', '3'], {
    env: { ...process.env, ...db.env, SMTP_URL: relay.url },
    cwd: db.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stdout, stderr }));
  return { child, exited };
}

/** The most messages accepted in any one-second window. */
function busiestSecond(stamps: readonly number[]): number {
  let most = 0;
  for (let start = 0, end = 0; end < stamps.length; end++) {
    while ((stamps[end] as number) - (stamps[start] as number) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

test('three workers on one send keep its rate together; one killed mid-send loses nobody', { skip: serverOnly('the embedded database admits one bulletin process at a time') }, async () => {
  await runOk(['list', 'create', 'workers', ...LIST_FLAGS], db);
  const addresses = Array.from({ length: RECIPIENTS }, (_, index) => `worker${index}@example.net`);
  const csv = join(db.cwd, 'workers.csv');
  await writeFile(csv, `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', 'workers'], db);
  const file = join(db.cwd, 'workers.md');
  await writeFile(file, '---\nsubject: Shared send\n---\nHello {{subscriber.email}}.\n');

  const first = bulletin(['send', file, '--list', 'workers', '--yes']);
  await waitFor(async () => (await rows(db, 'SELECT 1 FROM bulletins')).length > 0, 'the send to store its bulletin');
  const second = bulletin(['worker', '--once']);
  const third = bulletin(['worker', '--once']);
  await waitFor(
    async () => (await rows<{ owners: number }>(db, `SELECT count(DISTINCT owner)::int AS owners FROM deliveries WHERE state = 'sending'`))[0]?.owners === 3,
    'all three workers to hold claims',
  );
  await new Promise((resolve) => setTimeout(resolve, 300)); // the one to be killed has messages in flight
  // Freeze it, note what it holds (in flight, or sent but not yet recorded), then kill it.
  second.child.kill('SIGSTOP');
  const acceptedAtKill = relay.acceptedAt.length;
  const held = await rows<{ email: string }>(
    db,
    `SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
      WHERE d.state = 'sending' AND d.owner LIKE '%:' || $1 || ':%'`,
    [String(second.child.pid)],
  );
  assert.ok(held.length > 0, 'the killed worker held claims');
  second.child.kill('SIGKILL');
  const [one, killed, three] = await Promise.all([first.exited, second.exited, third.exited]);
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(one.code, 0, one.stderr);
  assert.equal(three.code, 0, three.stderr);

  const states = await rows<{ state: string; count: number }>(db, `SELECT state::text, count(*)::int AS count FROM deliveries GROUP BY state`);
  assert.deepEqual(states, [{ state: 'sent', count: RECIPIENTS }], 'every delivery sent, including those the killed worker held');
  const finished = await rows<{ finished: boolean }>(db, `SELECT finished_at IS NOT NULL AS finished FROM bulletins`);
  assert.deepEqual(finished, [{ finished: true }]);

  // Each recipient accepted under one Message-ID; more than once only if the killed worker had it in flight.
  const copies = new Map<string, string[]>();
  for (const message of relay.received.filter((received) => received.accepted)) {
    const to = message.envelope.to[0] as string;
    copies.set(to, [...(copies.get(to) ?? []), message.messageId]);
  }
  for (const address of addresses) {
    const ids = copies.get(address) ?? [];
    assert.ok(ids.length >= 1, `${address} was mailed`);
    assert.equal(new Set(ids).size, 1, `${address}: every copy has the same Message-ID`);
  }
  const heldByKilled = new Set(held.map((row) => row.email));
  const duplicated = [...copies.entries()].filter(([, ids]) => ids.length > 1).map(([address]) => address);
  for (const address of duplicated) assert.ok(heldByKilled.has(address), `${address} got two copies but was not in the killed worker's hands`);

  // Together they kept the send's rate: a per-process limit would allow 3 × 100 = 300 a second.
  const busiest = busiestSecond(relay.acceptedAt);
  assert.ok(busiest <= Math.ceil(RATE * 1.05) + 1, `busiest second held ${busiest} messages (rate ${RATE}/s)`);
  const thisRun = (output: string) => (JSON.parse(output) as { thisRun: { sent: number } }).thisRun.sent;
  assert.ok(thisRun(one.stdout) > 0 && thisRun(three.stdout) > 0, 'both surviving workers sent');
  assert.ok(acceptedAtKill < RECIPIENTS, 'the worker was killed mid-send');
});
