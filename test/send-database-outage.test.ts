// A PostgreSQL restart in the middle of `bulletin send`: the sender pauses, keeps its unwritten
// outcomes, reconnects with backoff, writes them and carries on. Nobody is lost, nobody mailed twice,
// no crash. Runs against a server of the test's own (stopped and started by the test); the embedded
// database lives inside the process and cannot go away on its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { LIST_FLAGS } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { serverOnly } from './helpers/database.js';
import { startOwnPostgres, type OwnPostgres } from './helpers/own-postgres.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import pg from 'pg';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
let postgres: OwnPostgres | undefined;
let relay: TestSmtpServer | undefined;
let cwd: string | undefined;
after(async () => {
  await relay?.close();
  await postgres?.destroy();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('PostgreSQL restarted mid-send: the send pauses, reconnects and finishes; nobody lost, nobody mailed twice', { skip: serverOnly('the embedded database runs inside the bulletin process, so there is no server to stop and restart') }, async () => {
  postgres = await startOwnPostgres('bulletin_outage');
  relay = await startSmtpServer();
  cwd = await mkdtemp(join(tmpdir(), 'bulletin-outage-'));
  const env = { DATABASE_URL: postgres.url, SMTP_URL: relay.url };
  const options = { env, cwd };
  await runOk(['db', 'migrate'], options);
  await runOk(['list', 'create', 'outage', ...LIST_FLAGS], options);
  const addresses = Array.from({ length: 600 }, (_, index) => `reader${index}@example.net`);
  await writeFile(join(cwd, 'readers.csv'), `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', join(cwd, 'readers.csv'), '--list', 'outage'], options);
  await writeFile(join(cwd, 'notice.md'), '---\nsubject: Restart test\n---\nHello {{subscriber.email}}.\n');

  const child = spawn(process.execPath, [BIN, 'send', 'notice.md', '--list', 'outage', '--yes', '--json', '--rate', '150/s', '--connections', '3'], {
    env: { ...process.env, ...env },
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');

  await waitFor(() => relay!.acceptedAt.length >= 150, '150 messages before the restart');
  await postgres.stop();
  const acceptedWhileStopping = relay.acceptedAt.length;
  await new Promise((resolve) => setTimeout(resolve, 6_000)); // longer than one progress interval
  const acceptedDuringOutage = relay.acceptedAt.length - acceptedWhileStopping;
  await postgres.start();
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, stderr);

  const summary = JSON.parse(stdout) as { finished: boolean; counts: Record<string, number> };
  assert.equal(summary.finished, true);
  assert.equal(summary.counts.sent, 600);
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  const { rows } = await client.query<{ state: string; count: number }>(`SELECT state::text, count(*)::int AS count FROM deliveries GROUP BY state`);
  await client.end();
  assert.deepEqual(rows, [{ state: 'sent', count: 600 }]);

  const accepted = relay.received.filter((message) => message.accepted).flatMap((message) => message.envelope.to);
  assert.equal(accepted.length, 600, 'no duplicates');
  assert.deepEqual([...new Set(accepted)].sort(), [...addresses].sort());
  // Sending paused while the database was away (only messages already on the wire could finish).
  assert.ok(acceptedDuringOutage <= 20, `${acceptedDuringOutage} accepted while the database was down`);
  assert.match(stderr, /database unreachable since \d\d:\d\d:\d\d/, 'the progress line said why it paused');
});
