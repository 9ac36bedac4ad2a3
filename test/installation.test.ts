// One installation per database, wherever bulletin runs: its secret and id are kept in the database
// (generated once, even by processes racing), so processes in other working directories sign the
// same links; another installation's links never verify and its Message-IDs never collide, shared
// secret or not; and a database from before the upgrade adopts its `.bulletin/secret`, so links
// and Message-IDs already sent keep working.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { openApp } from '../src/app/context.js';
import { signLegacyToken, signToken } from '../src/domain/token.js';
import { stableMessageId } from '../src/render/message-id.js';
import { openDatabase } from '../src/store/database.js';
import { settleInstallation } from '../src/store/installation.js';
import { applyMigrations, MIGRATIONS_DIR } from '../src/store/migrations.js';
import { startWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { loadTemplateSet } from '../src/render/index.js';
import { childEnv, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const dropped: (() => Promise<void>)[] = [];
after(async () => {
  for (const drop of dropped) await drop().catch(() => undefined);
});

async function testDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const db = await createTestDatabase(options);
  dropped.push(() => db.drop());
  return db;
}

async function workingDirectory(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-elsewhere-'));
  dropped.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `bulletin <args> --json` as its own process, in `cwd`. */
async function runProcess(args: string[], env: Record<string, string>, cwd: string): Promise<unknown> {
  const child = spawn(process.execPath, [BIN, ...args, '--json'], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, stderr);
  return JSON.parse(stdout);
}

/** `bulletin serve --port 0` as its own process in `cwd`; returns its base URL and a stop function. */
async function serveProcess(env: Record<string, string>, cwd: string): Promise<{ base: string; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  while (!/Serving on (http:\/\/127\.0\.0\.1:\d+)/.test(stdout)) {
    if (child.exitCode !== null) assert.fail(`serve exited ${child.exitCode}: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    base: /Serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1] as string,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function oneClick(url: string): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
}

async function status(db: TestDatabase, address: string): Promise<string> {
  const members = (await runOk(['subscribers', 'ls', '--list', 'news', '--json'], db)) as { email: string; status: string }[];
  return members.find((member) => member.email === address)?.status ?? 'absent';
}

/** The Message-ID of every .eml in an outbox, by recipient. */
async function outboxIds(dir: string): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const name of (await readdir(dir)).filter((file) => file.endsWith('.eml'))) {
    const text = (await readFile(join(dir, name))).toString('latin1').replace(/\r\n[ \t]+/g, ' ');
    ids.set(/^To: .*?<?([^<>\s]+@[^<>\s]+)>?$/m.exec(text)?.[1] as string, /^Message-ID: (\S+)$/m.exec(text)?.[1] as string);
  }
  return ids;
}

describe(`one installation per database (${DATABASE_KIND} database)`, () => {
  test('two processes from two working directories on one server make the same link, and `serve` from a third accepts it', async () => {
    const db = await testDatabase();
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
    await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news'], db);
    const [first, second] = await Promise.all([workingDirectory(), workingDirectory()]);
    // Neither secret nor id exists yet: both processes race to make them, and agree.
    const [a, b] = (await Promise.all([
      runProcess(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news'], db.env, first as string),
      runProcess(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news'], db.env, second as string),
    ])) as { url: string }[];
    assert.match(a!.url, /^https:\/\/lists\.example\.net\/u\/[A-Za-z0-9_-]{40}$/);
    assert.equal(a!.url, b!.url);
    assert.ok(!existsSync(join(first as string, '.bulletin')) && !existsSync(join(second as string, '.bulletin')), 'no secret file is written anywhere');
    const third = await workingDirectory();
    const serve = await serveProcess(db.env, third);
    try {
      assert.equal((await oneClick(`${serve.base}${new URL(a!.url).pathname}`)).status, 200);
    } finally {
      await serve.stop();
    }
    assert.equal(await status(db, 'jo@example.net'), 'unsubscribed');
  });

  test('processes racing to fill in the installation all get the first one’s id and secret', async () => {
    const db = await testDatabase();
    const databases = await Promise.all(Array.from({ length: 6 }, () => openDatabase(db.config().database)));
    try {
      const rows = await Promise.all(
        databases.map((database, index) =>
          settleInstallation(database, { id: `00000000-0000-4000-8000-00000000000${index}`, secret: `candidate-secret-number-${index}-0123456789abcdef` }),
        ),
      );
      assert.equal(new Set(rows.map((row) => `${row.id} ${row.secret}`)).size, 1, 'one id and secret for all');
    } finally {
      await Promise.all(databases.map((database) => database.close()));
    }
  });

  test('two installations sharing BULLETIN_SECRET: distinct Message-IDs, and a link of one is "not valid" (404) at the other, nobody changes', async () => {
    const secret = 'a-secret-two-installations-share-0123456789';
    const installations = [await testDatabase(), await testDatabase()].map((db) => ({ ...db, env: { ...db.env, BULLETIN_SECRET: secret } }));
    const addresses = Array.from({ length: 50 }, (_, index) => `member${index}@example.net`);
    const outboxes: Map<string, string>[] = [];
    for (const db of installations) {
      await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
      await writeFile(join(db.cwd, 'members.csv'), `email\n${addresses.join('\n')}\n`);
      await runOk(['subscribers', 'import', join(db.cwd, 'members.csv'), '--list', 'news'], db);
      await writeFile(join(db.cwd, 'notice.md'), '---\nsubject: Same notice\n---\nHello.\n');
      await runOk(['send', join(db.cwd, 'notice.md'), '--list', 'news', '--yes', '--quiet', '--outbox', join(db.cwd, 'outbox')], db);
      outboxes.push(await outboxIds(join(db.cwd, 'outbox')));
    }
    const [ours, theirs] = outboxes as [Map<string, string>, Map<string, string>];
    assert.equal(ours.size, 50);
    const shared = [...ours.values()].filter((id) => [...theirs.values()].includes(id));
    assert.deepEqual(shared, [], 'no Message-ID of one installation is one of the other');
    // Same list id, same member id, same secret: the link still names one installation only.
    const here = installations[0] as TestDatabase;
    const there = installations[1] as TestDatabase;
    const link = ((await runOk(['subscribers', 'unsubscribe-url', 'member5@example.net', '--list', 'news', '--json'], here)) as { url: string }).url;
    const own = ((await runOk(['subscribers', 'unsubscribe-url', 'member5@example.net', '--list', 'news', '--json'], there)) as { url: string }).url;
    assert.notEqual(own, link, 'each installation signs its own links');
    const app = await openApp(there.config(there.env), { notice: () => undefined });
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const path = new URL(link).pathname;
      assert.equal((await fetch(`${server.url}${path}`)).status, 404);
      assert.equal((await oneClick(`${server.url}${path}`)).status, 404);
      assert.equal((await fetch(`${server.url}${new URL(own).pathname}`)).status, 200, 'its own link works');
    } finally {
      await server.close();
      await app.close();
    }
    assert.equal(await status(there, 'member5@example.net'), 'active', 'nobody at the other installation changed');
    assert.equal(await status(here, 'member5@example.net'), 'active');
  });

  test('a new installation never takes an old-style link, even one signed with its own secret', async () => {
    const secret = 'the-secret-of-a-new-installation-0123456789';
    const db = await testDatabase();
    const env = { ...db.env, BULLETIN_SECRET: secret };
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], { env, cwd: db.cwd });
    await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news'], { env, cwd: db.cwd });
    const link = ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], { env, cwd: db.cwd })) as { url: string }).url;
    const app = await openApp(db.config(env), { notice: () => undefined });
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const { rows } = await app.db.query<{ list: number; subscriber: number }>(`SELECT list_id AS list, subscriber_id::int AS subscriber FROM memberships`);
      const legacy = signLegacyToken('unsubscribe', { listId: rows[0]!.list, subscriberId: rows[0]!.subscriber }, secret);
      assert.equal((await oneClick(`${server.url}/u/${legacy}`)).status, 404);
      assert.equal((await fetch(`${server.url}${new URL(link).pathname}`)).status, 200);
    } finally {
      await server.close();
      await app.close();
    }
    assert.equal(await status({ ...db, env }, 'jo@example.net'), 'active');
  });

  test('upgrading a database from before installations: .bulletin/secret is adopted, old links and Message-IDs keep working, other directories’ secrets too', async () => {
    const db = await testDatabase({ migrated: false });
    // The schema as bulletin 0.1 left it (0001–0007), with a list, two members and an unfinished bulletin.
    const earlier = join(db.cwd, 'migrations-0.1');
    await mkdir(earlier);
    for (const name of (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql') && file < '0008'))
      await copyFile(join(MIGRATIONS_DIR, name), join(earlier, name));
    const config = db.config();
    const before = await openDatabase(config.database);
    let ids: { list: number; jo: number; sam: number; bulletin: number };
    try {
      await applyMigrations(before, earlier);
      const list = (
        await before.query<{ id: number }>(
          `INSERT INTO lists (slug, name, address, from_name, from_address, base_url) VALUES ('news', 'News', 'bulletins@lists.example.net', 'ExampleNet', 'noreply@example.net', 'https://lists.example.net') RETURNING id`,
        )
      ).rows[0]!.id;
      const people = (
        await before.query<{ id: number; email: string }>(`INSERT INTO subscribers (email) VALUES ('jo@example.net'), ('sam@example.net') RETURNING id, email`)
      ).rows;
      const jo = people.find((person) => person.email === 'jo@example.net')!.id;
      const sam = people.find((person) => person.email === 'sam@example.net')!.id;
      await before.query(
        `INSERT INTO memberships (list_id, subscriber_id, subscribed_source, status_source) SELECT $1, id, 'import', 'import' FROM subscribers`,
        [list],
      );
      const bulletin = (
        await before.query<{ id: number }>(
          `INSERT INTO bulletins (list_id, subject, source, source_name, templates) VALUES ($1, 'Begun before the upgrade', $2, 'old.md', $3::jsonb) RETURNING id`,
          [list, '---\nsubject: Begun before the upgrade\n---\nHello.\n', JSON.stringify(await loadTemplateSet(null))],
        )
      ).rows[0]!.id;
      await before.query(`INSERT INTO deliveries (bulletin_id, subscriber_id) SELECT $1, subscriber_id FROM memberships`, [bulletin]);
      ids = { list, jo, sam, bulletin };
    } finally {
      await before.close();
    }
    // Where bulletin 0.1 kept the secret it generated: one file here, another in a second directory.
    const fileSecret = 'generated-by-bulletin-0-1-in-this-directory-0123';
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(join(config.dataDir, 'secret'), `${fileSecret}\n`, { mode: 0o600 });
    const elsewhere = await workingDirectory();
    const otherSecret = 'generated-by-bulletin-0-1-on-another-machine-0123';
    await mkdir(join(elsewhere, '.bulletin'));
    await writeFile(join(elsewhere, '.bulletin', 'secret'), `${otherSecret}\n`);
    const oldLink = signLegacyToken('unsubscribe', { listId: ids.list, subscriberId: ids.jo }, fileSecret);
    const otherOldLink = signLegacyToken('unsubscribe', { listId: ids.list, subscriberId: ids.sam }, otherSecret);

    if (DATABASE_KIND === 'server') await runOk(['db', 'migrate'], db);
    const newLink = ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], db)) as { url: string }).url;
    assert.notEqual(new URL(newLink).pathname, `/u/${oldLink}`, 'new links are made the new way');
    if (DATABASE_KIND === 'server') {
      // The other directory's first run after the upgrade keeps its secret for its old links.
      await runOk(['subscribers', 'unsubscribe-url', 'sam@example.net', '--list', 'news'], { env: db.env, cwd: elsewhere });
    }

    // The bulletin begun before the upgrade is finished with its Message-IDs made the old way.
    await runOk(['resume', String(ids.bulletin), '--quiet', '--outbox', join(db.cwd, 'outbox')], db);
    const sent = await outboxIds(join(db.cwd, 'outbox'));
    const legacyKey = { secret: fileSecret, installationId: 'unused by version 1' };
    assert.equal(sent.get('jo@example.net'), stableMessageId(String(ids.bulletin), ids.jo, legacyKey, 'lists.example.net', 1));
    assert.equal(sent.get('sam@example.net'), stableMessageId(String(ids.bulletin), ids.sam, legacyKey, 'lists.example.net', 1));

    const app = await openApp(config, { notice: () => undefined });
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const { rows } = await app.db.query<{ secret: string; legacy_links: boolean }>('SELECT secret, legacy_links FROM installation');
      assert.deepEqual(rows, [{ secret: fileSecret, legacy_links: true }], 'the file’s secret was adopted');
      assert.equal((await fetch(`${server.url}/u/${oldLink}`)).status, 200, 'a link already sent still works');
      assert.equal((await fetch(`${server.url}${new URL(newLink).pathname}`)).status, 200);
      if (DATABASE_KIND === 'server') {
        assert.equal((await oneClick(`${server.url}/u/${otherOldLink}`)).status, 200, 'the other directory’s old link works too');
      }
      assert.equal((await oneClick(`${server.url}/u/${oldLink}`)).status, 200);
      // A new bulletin's ids are made the new way (with the installation id).
      const { rows: installation } = await app.db.query<{ id: string }>('SELECT id::text AS id FROM installation');
      const newKey = { secret: fileSecret, installationId: installation[0]!.id };
      assert.notEqual(stableMessageId('99', ids.jo, newKey, 'lists.example.net'), stableMessageId('99', ids.jo, newKey, 'lists.example.net', 1));
      assert.equal(new URL(newLink).pathname, `/u/${signToken('unsubscribe', { listId: ids.list, subscriberId: ids.jo }, newKey)}`);
    } finally {
      await server.close();
      await app.close();
    }
    assert.equal(await status(db, 'jo@example.net'), 'unsubscribed');
    if (DATABASE_KIND === 'server') assert.equal(await status(db, 'sam@example.net'), 'unsubscribed');
  });

  test('BULLETIN_SECRET overrides the kept secret, and BULLETIN_SECRET_PREVIOUS still verifies its links', async () => {
    const db = await testDatabase();
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
    await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news'], db);
    const kept = ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], db)) as { url: string }).url;
    const rotated = { ...db.env, BULLETIN_SECRET: 'a-new-secret-set-by-the-operator-0123456789' };
    const overridden = (
      (await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], { env: rotated, cwd: db.cwd })) as { url: string }
    ).url;
    assert.notEqual(overridden, kept);
    const app = await openApp(db.config(rotated), { notice: () => undefined });
    const { rows } = await app.db.query<{ secret: string }>('SELECT secret FROM installation');
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await fetch(`${server.url}${new URL(overridden).pathname}`)).status, 200);
      assert.equal((await fetch(`${server.url}${new URL(kept).pathname}`)).status, 404, 'the kept secret no longer signs nor verifies');
    } finally {
      await server.close();
      await app.close();
    }
    const withPrevious = { ...rotated, BULLETIN_SECRET_PREVIOUS: rows[0]!.secret };
    const again = await openApp(db.config(withPrevious), { notice: () => undefined });
    const second = await startWebServer(again, { host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await fetch(`${second.url}${new URL(kept).pathname}`)).status, 200, 'a previous secret verifies');
    } finally {
      await second.close();
      await again.close();
    }
  });
});
