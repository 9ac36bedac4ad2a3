// The embedded default's life, with real bulletin processes on one data directory (whichever database
// the rest of the suite uses: these tests are about the embedded one): several at once (serve and a
// send), one server for commands started together, nothing left running after the last one, a send
// killed with -9 beside a running serve, two isolated claims, the socket inside the data directory and
// no TCP port, root and an ordinary user, `db status` / `db stop`, and the PGlite data of release 0.1.0
// moved over on the first run.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/app/config.js';
import type { App } from '../src/app/context.js';
import { createList } from '../src/app/lists.js';
import { addSubscriber } from '../src/app/subscribers.js';
import { realClock } from '../src/domain/clock.js';
import { openDatabase } from '../src/store/database.js';
import { embeddedCluster, embeddedConnection, postmasterPid, stopEmbeddedServer } from '../src/store/embedded-server.js';
import { applyMigrations } from '../src/store/migrations.js';
import { openPgliteDirectory } from '../src/store/pglite-upgrade.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
const relays: TestSmtpServer[] = [];
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const relay of relays) await relay.close();
  for (const dir of dirs) {
    await stopEmbeddedServer(join(dir, '.bulletin')).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

/** An empty working directory (searchable by others: the server runs as `postgres` under root). */
async function emptyFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-embedded-'));
  await chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

/** The environment of a bulletin child: no DATABASE_URL (the embedded default). */
function embeddedEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.DATABASE_URL;
  delete env.BULLETIN_DATA_DIR;
  return env;
}

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
  output(): string;
}

function bulletin(args: readonly string[], cwd: string, extra: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: embeddedEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stdout, stderr }));
  return { child, exited, output: () => stdout + stderr };
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** How many times a postmaster came up in this cluster (its log says so once per start). */
async function serverStarts(cwd: string): Promise<number> {
  const log = await readFile(join(embeddedCluster(join(cwd, '.bulletin')).clusterDir, 'server.log'), 'utf8').catch(() => '');
  return log.split('\n').filter((line) => line.includes('database system is ready to accept connections')).length;
}

const cli = (cwd: string) => ({ env: {}, cwd });

describe('the embedded PostgreSQL shared by several bulletin processes', () => {
  test('three commands started at once in an empty folder make one cluster and start one server; it stops when the last one ends', async () => {
    const cwd = await emptyFolder();
    // Three `serve`s: each keeps the database open until it is stopped, so all three overlap.
    const serves = [0, 1, 2].map(() => bulletin(['serve', '--port', '0'], cwd));
    await waitFor(() => serves.every((serve) => /Serving on http/.test(serve.output())), 'three serves to answer', 90_000);
    const created = serves.filter((serve) => /created an embedded PostgreSQL database/.test(serve.output()));
    assert.equal(created.length, 1, serves.map((serve) => serve.output()).join('\n---\n'));
    assert.equal(await serverStarts(cwd), 1, 'one postmaster came up for the three');
    const status = (await runOk(['db', 'status', '--json'], cli(cwd))) as { running: boolean; pid: number; processes: number };
    assert.equal(status.running, true);
    assert.equal(status.processes, 3, 'the three serves (`db status` itself neither starts nor joins it)');
    const pid = status.pid;
    for (const [index, serve] of serves.entries()) {
      serve.child.kill('SIGTERM');
      const result = await serve.exited;
      assert.equal(result.code, 0, result.stderr);
      if (index < 2) assert.equal(await postmasterPid(join(cwd, '.bulletin')), pid, 'still running for the others');
    }
    await waitFor(async () => (await postmasterPid(join(cwd, '.bulletin'))) === null, 'the server to stop after the last process', 10_000);
    assert.throws(() => process.kill(pid, 0), 'no postgres process is left');
  });

  test('`serve` answers unsubscribe links while `send` runs in another process; a send killed with -9 loses nobody and `status`/`resume` work beside the serve', async () => {
    const cwd = await emptyFolder();
    const relay = await startSmtpServer();
    relays.push(relay);
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], cli(cwd));
    const addresses = Array.from({ length: 400 }, (_, index) => `reader${index}@example.net`);
    await writeFile(join(cwd, 'readers.csv'), `email\n${addresses.join('\n')}\n`);
    await runOk(['subscribers', 'import', join(cwd, 'readers.csv'), '--list', 'news'], cli(cwd));
    await writeFile(join(cwd, 'notice.md'), '---\nsubject: Shared\n---\nHello {{subscriber.email}}.\n');
    const link = ((await runOk(['subscribers', 'unsubscribe-url', 'reader399@example.net', '--list', 'news', '--json'], cli(cwd))) as { url: string }).url;

    const serve = bulletin(['serve', '--port', '0'], cwd);
    await waitFor(() => /Serving on http/.test(serve.output()), 'serve to answer');
    const base = /Serving on (http:\/\/\S+?): unsubscribe/.exec(serve.output())![1]!;
    const send = bulletin(['send', 'notice.md', '--list', 'news', '--yes', '--rate', '100/s', '--connections', '3'], cwd, { SMTP_URL: relay.url });
    await waitFor(() => relay.received.length >= 60, '60 messages sent');
    // While the send runs, the unsubscribe page works (a POST unsubscribes; the path is the link's).
    const path = new URL(link).pathname;
    const page = await fetch(`${base}${path}`);
    assert.equal(page.status, 200);
    const unsubscribed = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.ok(unsubscribed.status < 400, `unsubscribe answered ${unsubscribed.status}`);
    send.child.kill('SIGKILL');
    const killed = await send.exited;
    assert.equal(killed.signal, 'SIGKILL');
    const sentBefore = relay.received.length;
    assert.ok(sentBefore < 400, `killed mid-send (${sentBefore} sent)`);

    const status = await runCli(['status', '--json'], cli(cwd));
    assert.equal(status.code, 0, status.stderr);
    const unfinished = JSON.parse(status.stdout) as { sends: { bulletinId: number; open: number; counts: { sent: number } }[]; latest: unknown };
    assert.deepEqual(
      unfinished.sends.map((each) => each.bulletinId),
      [1],
      'the killed send is listed among the unfinished sends',
    );
    assert.ok(unfinished.sends[0]!.open > 0 && unfinished.sends[0]!.counts.sent > 0, JSON.stringify(unfinished.sends[0]));
    assert.equal(unfinished.latest, null);
    const resumed = await runCli(['resume', '1', '--quiet'], { env: { SMTP_URL: relay.url }, cwd });
    assert.equal(resumed.code, 0, resumed.stderr);
    const recipients = new Set(relay.received.flatMap((message) => message.envelope.to));
    for (const address of addresses.slice(0, 399)) assert.ok(recipients.has(address), `${address} got the bulletin`);
    const counts = ((await runOk(['status', '1', '--json'], cli(cwd))) as { counts: Record<string, number> }).counts;
    assert.equal((counts.sent ?? 0) + (counts.skipped ?? 0), 400, JSON.stringify(counts));
    serve.child.kill('SIGTERM');
    assert.equal((await serve.exited).code, 0);
  });

  test('two processes claiming with FOR UPDATE SKIP LOCKED take disjoint rows, and an open transaction is not seen by the other', async () => {
    const cwd = await emptyFolder();
    const dataDir = join(cwd, '.bulletin');
    await runOk(['list', 'ls'], cli(cwd));
    const holder = await openDatabase({ kind: 'embedded', dataDir });
    try {
      await holder.query('CREATE TABLE jobs (id int PRIMARY KEY, owner text)');
      await holder.query('INSERT INTO jobs SELECT g, NULL FROM generate_series(1, 10) g');
      const script = `
        import pg from 'pg';
        const client = new pg.Client(${JSON.stringify(embeddedConnection(dataDir))});
        await client.connect();
        await client.query('BEGIN');
        const { rows } = await client.query('SELECT id FROM jobs WHERE owner IS NULL ORDER BY id LIMIT 3 FOR UPDATE SKIP LOCKED');
        await client.query("UPDATE jobs SET owner = 'child' WHERE id = ANY($1)", [rows.map((row) => row.id)]);
        console.log(JSON.stringify(rows.map((row) => row.id)));
        await new Promise((resolve) => process.stdin.once('data', resolve));
        await client.query('COMMIT');
        await client.end();`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      children.push(child);
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      const theirs = JSON.parse(line.toString()) as number[];
      const mine = await holder.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: number }>('SELECT id FROM jobs WHERE owner IS NULL ORDER BY id LIMIT 3 FOR UPDATE SKIP LOCKED');
        const { rows: seen } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM jobs WHERE owner = 'child'");
        assert.equal(seen[0]!.n, 0, 'the other process’s uncommitted update is not visible');
        return rows.map((row) => row.id);
      });
      assert.deepEqual(theirs, [1, 2, 3]);
      assert.deepEqual(mine, [4, 5, 6], 'SKIP LOCKED skipped the rows the other process holds');
      child.stdin!.end('commit\n');
      await once(child, 'exit');
      const { rows } = await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM jobs WHERE owner = 'child'");
      assert.equal(rows[0]!.n, 3);
      // COPY works both ways (PGlite 0.5.14 crashed on it).
      const { default: copyStreams } = await import('pg-copy-streams');
      await holder.withConnection(async (client) => {
        const stream = client.query(copyStreams.from('COPY jobs (id, owner) FROM STDIN'));
        stream.end('11\tcopied\n12\tcopied\n');
        await once(stream, 'finish');
      });
      assert.equal((await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM jobs WHERE owner = 'copied'")).rows[0]!.n, 2);
    } finally {
      await holder.close();
    }
  });

  test('a process arriving just as the last one stops the server starts it again (its own start is not mistaken for a failure)', async () => {
    const cwd = await emptyFolder();
    const dataDir = join(cwd, '.bulletin');
    await runOk(['list', 'ls'], cli(cwd));
    // Each round: the only process closes (it is the last: it stops the server) while another opens.
    // The newcomer's postmaster meets the old one's lock file and exits; the old one's shutdown lines
    // land in the shared log after that. Forty rounds, each must open and answer.
    let last = await openDatabase({ kind: 'embedded', dataDir });
    try {
      for (let round = 0; round < 40; round++) {
        await last.query('CREATE TABLE IF NOT EXISTS rounds (n int)');
        // Dirty pages make the old server's shutdown checkpoint take a while.
        await last.query('INSERT INTO rounds SELECT $1 FROM generate_series(1, 20000)', [round]);
        const [, next] = await Promise.all([last.close(), openDatabase({ kind: 'embedded', dataDir })]);
        last = next;
        const { rows } = await last.query<{ n: number }>('SELECT count(DISTINCT n)::int AS n FROM rounds');
        assert.equal(rows[0]!.n, round + 1, `round ${round}: every round written before the restart is there`);
      }
    } finally {
      await last.close();
    }
    assert.ok((await serverStarts(cwd)) >= 2, 'the server was stopped and started again in between');
  });

  test('the server listens on a Unix socket inside the data directory and on no TCP port', async () => {
    const cwd = await emptyFolder();
    const dataDir = join(cwd, '.bulletin');
    const db = await openDatabase({ kind: 'embedded', dataDir });
    try {
      const { rows } = await db.query<{ listen: string; sockets: string; port: number }>(
        "SELECT current_setting('listen_addresses') AS listen, current_setting('unix_socket_directories') AS sockets, current_setting('port')::int AS port",
      );
      assert.equal(rows[0]!.listen, '');
      const socket = join(embeddedCluster(dataDir).clusterDir, `.s.PGSQL.${rows[0]!.port}`);
      assert.ok((await stat(socket)).isSocket(), `${socket} is the server's socket`);
      assert.equal((await stat(embeddedCluster(dataDir).clusterDir)).mode & 0o077, 0, 'only its owner may enter the directory of the socket');
      const tcp = new pg.Client({ host: '127.0.0.1', port: rows[0]!.port, user: 'bulletin', database: 'postgres', connectionTimeoutMillis: 2_000 });
      tcp.on('error', () => undefined);
      // Port 5432 on loopback is the machine's own server (if any), never this one.
      const reached = await tcp.connect().then(
        async () => (await tcp.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir")).rows[0]!.dir,
        () => null,
      );
      await tcp.end().catch(() => undefined);
      assert.notEqual(reached, embeddedCluster(dataDir).clusterDir);
    } finally {
      await db.close();
    }
  });

  test('`db status` and `db stop`: a server left by a killed process is found and stopped', async () => {
    const cwd = await emptyFolder();
    const serve = bulletin(['serve', '--port', '0'], cwd);
    await waitFor(() => /Serving on http/.test(serve.output()), 'serve to answer');
    serve.child.kill('SIGKILL');
    await serve.exited;
    const running = await runCli(['db', 'status'], cli(cwd));
    assert.equal(running.code, 0, running.stderr);
    assert.match(running.stdout, /^The embedded PostgreSQL in \S+ is running \(pid \d+\), used by no other bulletin process\.\n/);
    const stopped = await runCli(['db', 'stop'], cli(cwd));
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped the embedded PostgreSQL/);
    assert.equal(await postmasterPid(join(cwd, '.bulletin')), null);
    const idle = await runCli(['db', 'status'], cli(cwd));
    assert.match(idle.stdout, /is not running/);
    // And the data is intact after the kill: the next command starts it again.
    await runOk(['list', 'ls'], cli(cwd));
  });
});

describe('who runs it', () => {
  test('as root the server runs as the `postgres` user; as an ordinary user (nobody) as that user, in a folder only it may enter', async () => {
    const cwd = await emptyFolder();
    // What an initdb killed midway leaves (its process gone) is cleared by the next one.
    const abandoned = join(cwd, '.bulletin', 'postgres.init-4194000');
    await mkdir(join(abandoned, 'base'), { recursive: true });
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], cli(cwd));
    assert.equal(existsSync(abandoned), false, 'the abandoned initdb directory was removed');
    const cluster = embeddedCluster(join(cwd, '.bulletin')).clusterDir;
    const owner = (await stat(cluster)).uid;
    if (process.getuid?.() === 0) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      assert.equal(owner, Number(stdout.trim()), 'as root, the cluster belongs to postgres');
      // An ordinary user: `nobody`, in a folder of its own that nobody else may enter.
      const home = await mkdtemp(join(tmpdir(), 'bulletin-nobody-'));
      dirs.push(home);
      const own = join(home, 'work');
      await mkdir(own, { mode: 0o700 });
      const { stdout: uid } = await run('id', ['-u', 'nobody']);
      const { stdout: gid } = await run('id', ['-g', 'nobody']);
      await chown(own, Number(uid), Number(gid));
      await chmod(home, 0o755);
      const env = embeddedEnv();
      const as = (args: string[]) => run('runuser', ['-u', 'nobody', '--', process.execPath, BIN, ...args], { cwd: own, env });
      const first = await as(['list', 'create', 'news', ...LIST_FLAGS]);
      assert.match(first.stderr, /created an embedded PostgreSQL database/);
      const listed = await as(['list', 'ls', '--json']);
      assert.deepEqual(
        (JSON.parse(listed.stdout) as { slug: string }[]).map((list) => list.slug),
        ['news'],
      );
      assert.equal((await stat(embeddedCluster(join(own, '.bulletin')).clusterDir)).uid, Number(uid));
      assert.equal(await postmasterPid(join(own, '.bulletin')), null, 'stopped after the last command');
    } else {
      assert.equal(owner, process.getuid?.(), 'the cluster belongs to the user who ran bulletin');
    }
    assert.equal(await postmasterPid(join(cwd, '.bulletin')), null, 'stopped after the last command');
  });
});

describe('a data directory made by release 0.1.0 (PGlite)', () => {
  test('is moved into the embedded PostgreSQL on the first run, said once; rows, ids and the installation carry over', async () => {
    const cwd = await emptyFolder();
    const dataDir = join(cwd, '.bulletin');
    // Made by 0.1.0's code path: PGlite in <data dir>/pgdata, migrated, lists and members added by the use cases.
    await mkdir(dataDir);
    const pglite = await openPgliteDirectory(join(dataDir, 'pgdata'));
    const config = loadConfig({ env: {}, cwd });
    const app: App = { config, db: pglite, clock: realClock, close: () => pglite.close() };
    try {
      await applyMigrations(pglite);
      await createList(app, 'news', {
        name: 'News',
        address: 'news@lists.example.net',
        from: 'News <noreply@example.net>',
        baseUrl: 'https://lists.example.net',
      });
      for (const address of ['ann@example.net', 'bob@example.net', 'cy@example.net'])
        await addSubscriber(app, 'news', { address, name: address.split('@')[0]! });
      await pglite.query(
        "UPDATE memberships SET status = 'unsubscribed', status_source = 'link' WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'bob@example.net')",
      );
    } finally {
      await pglite.close();
    }
    assert.equal((await readFile(join(dataDir, 'pgdata', 'PG_VERSION'), 'utf8')).trim(), '18');

    const first = await runCli(['subscribers', 'ls', '--list', 'news', '--json'], cli(cwd));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /moved the embedded database in \S+ from PGlite into PostgreSQL 18; the PGlite files are kept in \S+pgdata-pglite/);
    const members = JSON.parse(first.stdout) as { email: string; status: string }[];
    assert.deepEqual(members.map((member) => `${member.email} ${member.status}`).sort(), [
      'ann@example.net active',
      'bob@example.net unsubscribed',
      'cy@example.net active',
    ]);
    assert.ok(existsSync(join(dataDir, 'pgdata-pglite', 'PG_VERSION')) && !existsSync(join(dataDir, 'pgdata')));
    const again = await runCli(['subscribers', 'add', 'dee@example.net', '--list', 'news'], cli(cwd));
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /moved/, 'said once');
    const ids = (await runOk(['subscribers', 'ls', '--list', 'news', '--json'], cli(cwd))) as { email: string }[];
    assert.equal(ids.length, 4, 'a new subscriber gets an id after the old ones (the identity carried over)');
  });
});
