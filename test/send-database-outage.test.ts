// A PostgreSQL restart in the middle of `bulletin send`: the sender pauses, keeps its unwritten
// outcomes, reconnects with backoff, writes them and carries on. Nobody is lost, nobody mailed twice,
// no crash. And the same at other moments: while the send prepares, while it enqueues, during a
// flush, and behind the server's Unix socket. Runs against a server of the test's own (stopped and
// started by the test), whichever database the rest of the suite uses.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { startDatabaseProxy, type DatabaseProxy } from './helpers/db-proxy.js';
import { startOwnPostgres, type OwnPostgres } from './helpers/own-postgres.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import pg from 'pg';
import { waitFor } from './helpers/wait.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
let postgres: OwnPostgres | undefined;
let relay: TestSmtpServer | undefined;
let cwd: string | undefined;
const proxies: DatabaseProxy[] = [];
const sinks: TestSmtpServer[] = [];
const dirs: string[] = [];
after(async () => {
  await relay?.close();
  for (const proxy of proxies) await proxy.close();
  for (const sink of sinks) await sink.close();
  await postgres?.destroy();
  if (cwd) await rm(cwd, { recursive: true, force: true });
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test('PostgreSQL restarted mid-send: the send pauses, reconnects and finishes; nobody lost, nobody mailed twice', async () => {
  postgres ??= await startOwnPostgres('bulletin_outage');
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

/** A database of its own on the test's server, migrated, with a list of `count` members. */
async function freshDatabase(
  server: OwnPostgres,
  name: string,
  count: number,
  url = server.url,
): Promise<{ env: Record<string, string>; cwd: string; addresses: string[] }> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const withName = (base: string) => base.replace(/\/bulletin_outage(?=$|\?)/, `/${name}`);
  const dir = await mkdtemp(join(tmpdir(), `bulletin-${name}-`));
  dirs.push(dir);
  const direct = { env: { DATABASE_URL: withName(server.url) }, cwd: dir };
  await runOk(['db', 'migrate'], direct);
  await runOk(['list', 'create', 'outage', ...LIST_FLAGS], direct);
  const addresses = Array.from({ length: count }, (_, index) => `reader${index}@example.net`);
  await writeFile(join(dir, 'readers.csv'), `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', join(dir, 'readers.csv'), '--list', 'outage'], direct);
  await writeFile(join(dir, 'notice.md'), '---\nsubject: Restart test\n---\nHello {{subscriber.email}}.\n');
  return { env: { DATABASE_URL: withName(url) }, cwd: dir, addresses };
}

/** Stops the test's server (fast shutdown: sessions terminated), waits, starts it again. */
async function restart(server: OwnPostgres, downMs = 1500): Promise<void> {
  await server.stop();
  await new Promise((resolve) => setTimeout(resolve, downMs));
  await server.start();
}

function assertSentOnce(relay: TestSmtpServer, addresses: readonly string[], result: { code: number; stdout: string; stderr: string }): void {
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /internal error/);
  const summary = JSON.parse(result.stdout) as { finished: boolean; counts: Record<string, number> };
  assert.equal(summary.finished, true);
  assert.equal(summary.counts.sent, addresses.length);
  const accepted = relay.received.filter((message) => message.accepted).flatMap((message) => message.envelope.to);
  assert.equal(accepted.length, addresses.length, 'nobody twice');
  assert.deepEqual([...new Set(accepted)].sort(), [...addresses].sort(), 'nobody lost');
}

describe('PostgreSQL restarted at other moments of a send (the real server stopped and started)', () => {
  for (const [moment, text, name] of [
    ['while the send prepares (counting the members)', 'SELECT count(*)::int AS count FROM memberships', 'restart_prepare'],
    ['while it enqueues the deliveries', 'INSERT INTO deliveries (bulletin_id, subscriber_id)', 'restart_enqueue'],
    ['during a flush of outcomes', 'AS o (id, state, relay, reply, message_id, next_attempt_at)', 'restart_flush'],
  ] as const) {
    test(`restarted ${moment}: it waits, carries on and finishes; nobody lost, nobody twice`, async () => {
      postgres ??= await startOwnPostgres('bulletin_outage');
      const server = postgres;
      // The proxy only says when the statement goes out; it holds it while the server restarts.
      const proxy = await startDatabaseProxy(server.url);
      proxies.push(proxy);
      const setup = await freshDatabase(server, name, 200, proxy.url);
      const sink = await startSmtpServer();
      sinks.push(sink);
      const restarted = proxy.faultOn({ text, nth: text.startsWith('AS o') ? 2 : 1, hold: () => restart(server) });
      const result = await runCli(['send', join(setup.cwd, 'notice.md'), '--list', 'outage', '--yes', '--json', '--rate', '300/s', '--connections', '3'], {
        env: { ...setup.env, SMTP_URL: sink.url },
        cwd: setup.cwd,
      });
      const happened = await Promise.race([restarted.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000))]);
      assert.ok(happened, `the server was restarted ${moment}: ${result.stderr}`);
      // Before the progress display starts, the pause is said on stderr (with the server's own words or the refusal).
      if (!text.startsWith('AS o')) assert.match(result.stderr, /^bulletin: database unreachable since \d\d:\d\d:\d\d \(.+\); waiting for it before going on/m);
      assertSentOnce(sink, setup.addresses, result);
    });
  }

  test('the server restarted mid-send behind its Unix socket (the socket file gone meanwhile: ENOENT)', async () => {
    postgres ??= await startOwnPostgres('bulletin_outage');
    const server = postgres;
    const setup = await freshDatabase(server, 'restart_socket', 400, server.socketUrl);
    assert.match(setup.env.DATABASE_URL as string, /\?host=/);
    const sink = await startSmtpServer();
    sinks.push(sink);
    const child = spawn(process.execPath, [BIN, 'send', 'notice.md', '--list', 'outage', '--yes', '--json', '--rate', '150/s', '--connections', '3'], {
      env: { ...process.env, ...setup.env, SMTP_URL: sink.url },
      cwd: setup.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    await waitFor(() => sink.acceptedAt.length >= 100, '100 messages before the restart');
    await restart(server, 3000);
    const [code] = (await exited) as [number | null];
    assertSentOnce(sink, setup.addresses, { code: code ?? -1, stdout, stderr });
  });
});
