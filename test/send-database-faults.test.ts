// Database faults at every step of `bulletin send`, at moments the test chooses: a proxy between
// bulletin and PostgreSQL (TCP, or a Unix socket whose file disappears) is cut when bulletin sends
// the statement of one step, before the statement reaches the server or after it ran with its answer
// lost, and restored a moment later. Each time the send pauses, says so, carries on and exits 0:
// every recipient sent once (a database fault puts nothing back on the wire), one bulletin, nothing
// left in flight. Commands that are not sends say in one sentence that the database went away
// (exit 69); an interrupted import says nothing was imported and running it again is safe.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/app/config.js';
import { openApp } from '../src/app/context.js';
import { startWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk, type CliResult } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startDatabaseProxy, type DatabaseProxy, type StatementFault } from './helpers/db-proxy.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

const RECIPIENTS = 240;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

interface Setup {
  readonly db: TestDatabase;
  readonly proxy: DatabaseProxy;
  readonly relay: TestSmtpServer;
  readonly addresses: string[];
  readonly file: string;
  /** bulletin's environment through the proxy. */
  readonly env: Record<string, string>;
}

/** A database with a list of RECIPIENTS members (set up directly), a relay, and a proxy in between. */
async function setUp(options: { unixSocket?: boolean } = {}): Promise<Setup> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const relay = await startSmtpServer();
  cleanups.push(() => relay.close());
  const proxy = await startDatabaseProxy(await db.url(), options);
  cleanups.push(() => proxy.close());
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
  const addresses = Array.from({ length: RECIPIENTS }, (_, index) => `reader${index}@example.net`);
  await writeFile(join(db.cwd, 'readers.csv'), `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', join(db.cwd, 'readers.csv'), '--list', 'news'], db);
  const file = join(db.cwd, 'notice.md');
  await writeFile(file, '---\nsubject: Fault test\n---\nHello {{subscriber.email}}.\n');
  return { db, proxy, relay, addresses, file, env: { DATABASE_URL: proxy.url, SMTP_URL: relay.url } };
}

async function query<Row extends object>(db: TestDatabase, text: string): Promise<Row[]> {
  const client = new pg.Client({ connectionString: await db.url() });
  await client.connect();
  try {
    return (await client.query<Row>(text)).rows;
  } finally {
    await client.end();
  }
}

/** Sends through the proxy while `faults` are armed; every one must have happened. */
async function sendThrough(setup: Setup, faults: StatementFault[], extraArgs: string[] = []): Promise<CliResult> {
  const happened = faults.map((fault) => setup.proxy.faultOn(fault).then(() => true));
  const result = await runCli(['send', setup.file, '--list', 'news', '--yes', '--json', '--rate', '400/s', '--connections', '4', ...extraArgs], {
    env: setup.env,
    cwd: setup.db.cwd,
  });
  const fired = await Promise.all(happened.map((done) => Promise.race([done, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 100))])));
  assert.deepEqual(
    fired,
    faults.map(() => true),
    `every fault happened (${faults.map((fault) => fault.text).join(', ')})`,
  );
  return result;
}

/** Everyone sent exactly once, recorded sent, one bulletin, nothing in flight; exit 0. */
async function assertEveryoneOnce(setup: Setup, result: CliResult): Promise<void> {
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /internal error/);
  const summary = JSON.parse(result.stdout) as { finished: boolean; counts: Record<string, number> };
  assert.equal(summary.finished, true);
  assert.equal(summary.counts.sent, RECIPIENTS);
  const accepted = setup.relay.received.filter((message) => message.accepted).flatMap((message) => message.envelope.to);
  const copies = new Map<string, number>();
  for (const to of accepted) copies.set(to, (copies.get(to) ?? 0) + 1);
  assert.deepEqual([...copies.keys()].sort(), [...setup.addresses].sort(), 'every recipient reached the relay');
  assert.deepEqual(
    [...copies.entries()].filter(([, count]) => count > 1),
    [],
    'nobody twice: a database fault puts nothing back on the wire',
  );
  const states = await query<{ state: string; count: number }>(setup.db, `SELECT state::text, count(*)::int AS count FROM deliveries GROUP BY state`);
  assert.deepEqual(states, [{ state: 'sent', count: RECIPIENTS }]);
  const bulletins = await query<{ count: number; finished: number }>(
    setup.db,
    `SELECT count(*)::int AS count, count(finished_at)::int AS finished FROM bulletins`,
  );
  assert.deepEqual(bulletins, [{ count: 1, finished: 1 }], 'one bulletin, finished');
}

/** The statement each step of a send sends (what the proxy watches for). */
const STEP = {
  countMembers: 'SELECT count(*)::int AS count FROM memberships',
  installation: 'FROM installation',
  enqueue: 'INSERT INTO deliveries (bulletin_id, subscriber_id)',
  archiveBody: 'SET archive_html = $2',
  /** Claiming queued deliveries (the first claim of a send is for due retries: none). */
  claim: "d.state = 'queued' AND d.id > $7",
  outcomes: 'AS o (id, state, relay, reply, message_id, next_attempt_at)',
  leases: 'SET lease_until = now() + $2',
  pace: 'INSERT INTO send_pacing',
  finish: 'SET finished_at = COALESCE',
  counts: 'GROUP BY state',
} as const;

describe(`a database fault at every step of a send: pause, retry, carry on (proxy between bulletin and PostgreSQL; ${DATABASE_KIND} database)`, () => {
  test('opening: the database unreachable when the send starts (connection refused), back 1.5 s later', async () => {
    const setup = await setUp();
    await setup.proxy.cut('refuse');
    const restoring = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => setup.proxy.restore());
    const result = await runCli(['send', setup.file, '--list', 'news', '--yes', '--json', '--rate', '400/s'], { env: setup.env, cwd: setup.db.cwd });
    await restoring;
    assert.match(
      result.stderr,
      /^bulletin: database unreachable since \d\d:\d\d:\d\d \(connect ECONNREFUSED 127\.0\.0\.1:\d+\); waiting for it before going on, retrying in \d+ s$/m,
    );
    await assertEveryoneOnce(setup, result);
  });

  for (const [name, fault] of [
    ['preparing: counting the members, before the statement arrives', { text: STEP.countMembers }],
    ['preparing: reading the installation keys, connection reset', { text: STEP.installation, mode: 'reset' }],
    ['enqueueing: the INSERT of the deliveries never arrives', { text: STEP.enqueue }],
    ['storing the archive body, in the same transaction', { text: STEP.archiveBody }],
    [
      'enqueueing: the COMMIT runs but its answer is lost (the bulletin is saved; the retry must find it)',
      { text: 'COMMIT', after: STEP.enqueue, when: 'lost-reply' },
    ],
    ['claiming: the first claim runs but its answer is lost (the deliveries are ours, unknown to us)', { text: STEP.claim, when: 'lost-reply' }],
    ['claiming: a claim made ahead while sending runs, its answer lost', { text: STEP.claim, nth: 2, when: 'lost-reply' }],
    ['writing outcomes: a flush mid-dispatch never arrives', { text: STEP.outcomes, nth: 2 }],
    ['writing outcomes: a flush runs, its answer lost', { text: STEP.outcomes, nth: 2, when: 'lost-reply' }],
    ['reserving pace: a reservation mid-dispatch never arrives', { text: STEP.pace, nth: 3 }],
    ['reserving pace: a reservation runs, its answer lost', { text: STEP.pace, nth: 3, when: 'lost-reply' }],
    ['finishing: marking the bulletin finished runs, its answer lost', { text: STEP.finish, when: 'lost-reply' }],
    ['the final status: counting the states after finishing', { text: STEP.counts, after: STEP.finish }],
  ] as [string, StatementFault][]) {
    test(name, async () => {
      const setup = await setUp();
      const result = await sendThrough(setup, [fault]);
      await assertEveryoneOnce(setup, result);
    });
  }

  test('renewing leases: a renewal fails while the send goes on (lease 3 s, renewed every second)', async () => {
    const setup = await setUp();
    const result = await sendThrough(setup, [{ text: STEP.leases, downMs: 1000 }], ['--lease', '3s', '--rate', '80/s']);
    await assertEveryoneOnce(setup, result);
  });

  test('a Unix socket that disappears mid-dispatch (ENOENT), during a flush', async () => {
    const setup = await setUp({ unixSocket: true });
    assert.match(setup.env.DATABASE_URL as string, /\?host=/);
    const result = await sendThrough(setup, [{ text: STEP.outcomes, nth: 2, downMs: 2000 }]);
    await assertEveryoneOnce(setup, result);
  });

  test('a Unix socket that disappears while preparing (ENOENT), and the pause is said on stderr', async () => {
    const setup = await setUp({ unixSocket: true });
    const result = await sendThrough(setup, [{ text: STEP.countMembers }]);
    assert.match(result.stderr, /^bulletin: database unreachable since \d\d:\d\d:\d\d \(.*ENOENT.*\.s\.PGSQL\.5432.*; waiting for it/m);
    await assertEveryoneOnce(setup, result);
  });

  test('a server that accepts connections and never answers (connect timeout) mid-dispatch', async () => {
    const setup = await setUp();
    const result = await sendThrough(setup, [{ text: STEP.claim, nth: 2, mode: 'hang', downMs: 11_000 }]);
    await assertEveryoneOnce(setup, result);
  });

  test('several faults in one send: enqueue, a claim, a flush and the pace', async () => {
    const setup = await setUp();
    const result = await sendThrough(setup, [
      { text: STEP.enqueue, downMs: 800 },
      { text: STEP.claim, nth: 2, when: 'lost-reply', downMs: 800 },
      { text: STEP.outcomes, nth: 3, downMs: 800 },
      { text: STEP.pace, nth: 5, when: 'lost-reply', downMs: 800 },
    ]);
    await assertEveryoneOnce(setup, result);
  });
});

describe(`commands that are not sends: one sentence, exit 69, and nothing half done (${DATABASE_KIND} database)`, () => {
  test('list ls, subscribers ls, status, deliveries: a connection lost mid-command is one sentence (exit 69), never an internal error', async () => {
    const setup = await setUp();
    await runOk(['send', setup.file, '--list', 'news', '--yes', '--quiet', '--outbox', join(setup.db.cwd, 'outbox')], setup.db);
    const description = /PostgreSQL at 127\.0\.0\.1:\d+\/(?:bulletin_test_\w+|postgres)/.source;
    for (const [args, text] of [
      [['list', 'ls'], 'FROM lists'],
      [['subscribers', 'ls', '--list', 'news'], 'FROM memberships'],
      [['status'], STEP.counts],
      [['deliveries', '1', '--state', 'sent'], 'FROM deliveries d LEFT JOIN subscribers'],
    ] as [string[], string][]) {
      const fault = setup.proxy.faultOn({ text, mode: 'reset', downMs: 300 });
      const result = await runCli(args, { env: setup.env, cwd: setup.db.cwd });
      await fault;
      assert.equal(result.code, 69, `${args.join(' ')}: ${result.stderr}`);
      assert.match(
        result.stderr,
        new RegExp(`^bulletin: Lost the connection to the ${description} \\([^\\n]+\\); run the command again once the database answers\\.\\n$`),
        args.join(' '),
      );
    }
    // Refused outright, and a Unix socket that is not there: the same one sentence at opening.
    await setup.proxy.cut('refuse');
    const refused = await runCli(['status'], { env: setup.env, cwd: setup.db.cwd });
    assert.equal(refused.code, 69);
    assert.match(refused.stderr, /^bulletin: Cannot connect to PostgreSQL at 127\.0\.0\.1:\d+\/\S+: connect ECONNREFUSED [^\n]+\.\n$/);
    await setup.proxy.restore();
    const socket = await startDatabaseProxy(await setup.db.url(), { unixSocket: true });
    cleanups.push(() => socket.close());
    await socket.cut('refuse');
    const missing = await runCli(['list', 'ls'], { env: { DATABASE_URL: socket.url }, cwd: setup.db.cwd });
    assert.equal(missing.code, 69);
    assert.match(missing.stderr, /^bulletin: Cannot connect to PostgreSQL at \/\S+:5432\/\S+: connect ENOENT \S+\/\.s\.PGSQL\.5432\.\n$/);
  });

  test('`serve` while the database is away: 503 for links and /healthz, nothing changes, and it answers again once it is back', async () => {
    const setup = await setUp();
    const link = ((await runOk(['subscribers', 'unsubscribe-url', 'reader7@example.net', '--list', 'news', '--json'], setup.db)) as { url: string }).url;
    const app = await openApp(loadConfig({ env: setup.env, cwd: setup.db.cwd }), { notice: () => undefined });
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const path = new URL(link).pathname;
      assert.equal((await fetch(`${server.url}${path}`)).status, 200);
      await setup.proxy.cut('refuse');
      assert.equal((await fetch(`${server.url}/healthz`)).status, 503);
      const away = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(away.status, 503);
      await setup.proxy.restore();
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${server.url}${path}`)).status, 200);
    } finally {
      await server.close();
      await app.close();
    }
    const members = await query<{ status: string }>(
      setup.db,
      `SELECT m.status::text AS status FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id WHERE s.email = 'reader7@example.net'`,
    );
    assert.deepEqual(members, [{ status: 'active' }], 'nobody changed while the database was away');
  });

  test('an import the database went away from: nothing imported, says so, and running it again is safe', async () => {
    const setup = await setUp();
    await runOk(['list', 'create', 'more', ...LIST_FLAGS], setup.db);
    const csv = join(setup.db.cwd, 'more.csv');
    await writeFile(csv, `email,name\n${Array.from({ length: 7000 }, (_, index) => `more${index}@example.org,Reader ${index}`).join('\n')}\n`);
    // The second batch (rows 5001–7000) never reaches the server.
    const fault = setup.proxy.faultOn({ text: 'INSERT INTO import_rows', nth: 2, downMs: 300 });
    const cut = await runCli(['subscribers', 'import', csv, '--list', 'more'], { env: setup.env, cwd: setup.db.cwd });
    await fault;
    assert.equal(cut.code, 69, cut.stderr);
    assert.match(
      cut.stderr,
      /^bulletin: Lost the connection to the PostgreSQL at [^\n]+ after [\d,]+ rows \([^\n]+\): nothing was imported, and running the import again is safe\.\n$/,
    );
    const none = await query<{ count: number }>(setup.db, `SELECT count(*)::int AS count FROM subscribers WHERE email LIKE 'more%'`);
    assert.deepEqual(none, [{ count: 0 }]);
    // The COMMIT runs and its answer is lost: it may be saved; a second run is safe either way.
    const commit = setup.proxy.faultOn({ text: 'COMMIT', after: 'INSERT INTO import_rows', when: 'lost-reply', downMs: 300 });
    const unsure = await runCli(['subscribers', 'import', csv, '--list', 'more'], { env: setup.env, cwd: setup.db.cwd });
    await commit;
    assert.equal(unsure.code, 69, unsure.stderr);
    assert.match(unsure.stderr, /just as the import was being saved, so it may or may not have been; running the import again is safe/);
    const again = (await runOk(['subscribers', 'import', csv, '--list', 'more', '--json'], { env: setup.env, cwd: setup.db.cwd })) as {
      subscribersCreated: number;
      alreadyActive: number;
    };
    assert.equal(again.subscribersCreated + again.alreadyActive, 7000);
    const all = await query<{ count: number }>(setup.db, `SELECT count(*)::int AS count FROM subscribers WHERE email LIKE 'more%'`);
    assert.deepEqual(all, [{ count: 7000 }], 'each person once');
  });
});
