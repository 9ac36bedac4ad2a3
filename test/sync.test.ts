// `bulletin subscribers sync`: a list made to match a CSV export — additions, updates, removals
// (status removed, source sync), protected unsubscribes, the removal guard, a dry run with counts
// and a sample, and an interrupted sync (a broken file, a killed process) leaving nothing changed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
let db: TestDatabase;
let lists = 0;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

async function writeCsv(content: string): Promise<string> {
  const path = join(db.cwd, `sync-${++lists}-${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(path, content);
  return path;
}

/** A list of `count` members person0… with name and plan. */
async function listWith(count: number): Promise<string> {
  const slug = `sync-${++lists}`;
  await runOk(['list', 'create', slug, ...LIST_FLAGS], db);
  const csv = await writeCsv(
    `email,name,plan\n${Array.from({ length: count }, (_, index) => `person${index}@example.net,Person ${index},basic`).join('\n')}\n`,
  );
  await runOk(['subscribers', 'import', csv, '--list', slug], db);
  return slug;
}

async function members(slug: string) {
  return rows<{ email: string; name: string | null; attributes: Record<string, string>; status: string; status_source: string; subscribed_source: string }>(
    db,
    `SELECT s.email, s.name, s.attributes, m.status::text, m.status_source, m.subscribed_source
       FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id JOIN lists l ON l.id = m.list_id
      WHERE l.slug = $1 ORDER BY s.email`,
    [slug],
  );
}

interface SyncJson {
  added: number;
  back: number;
  updated: number;
  removed: number;
  keptInactive: number;
  activeBefore: number;
  activeAfter: number;
  invalid: number;
  sample: { added: string[]; removed: string[] };
  refusal: string | null;
}

describe(`subscribers sync (${DATABASE_KIND} database)`, () => {
  test('adds, updates and removes; never brings back an unsubscribe; a later sync brings a removed member back', async () => {
    const slug = await listWith(20);
    await runOk(['subscribers', 'remove', 'person3@example.net', '--list', slug], db);
    // person0 removed from the file (1 of 19 active: 5%), person1 renamed and on another plan, person2's plan
    // emptied, person3 unsubscribed earlier, two newcomers.
    const keep = Array.from({ length: 16 }, (_, index) => `person${index + 4}@example.net,Person ${index + 4},basic`);
    const file = await writeCsv(
      `email,name,plan\nperson1@example.net,Person One,pro\nperson2@example.net,Person 2,\nperson3@example.net,Person 3,basic\n${keep.join('\n')}\nnew1@example.net,New One,pro\nNEW2@Example.net,,basic\n`,
    );
    const report = (await runOk(['subscribers', 'sync', file, '--list', slug, '--json'], db)) as SyncJson;
    assert.deepEqual(
      {
        added: report.added,
        back: report.back,
        updated: report.updated,
        removed: report.removed,
        keptInactive: report.keptInactive,
        activeBefore: report.activeBefore,
        activeAfter: report.activeAfter,
      },
      { added: 2, back: 0, updated: 2, removed: 1, keptInactive: 1, activeBefore: 19, activeAfter: 20 },
    );
    assert.deepEqual(report.sample.removed, ['person0@example.net']);
    assert.deepEqual(report.sample.added, ['new1@example.net', 'new2@example.net']);
    const after = new Map((await members(slug)).map((member) => [member.email, member]));
    assert.deepEqual([after.get('person0@example.net')!.status, after.get('person0@example.net')!.status_source], ['removed', 'sync']);
    assert.deepEqual([after.get('person1@example.net')!.name, after.get('person1@example.net')!.attributes], ['Person One', { plan: 'pro' }]);
    assert.deepEqual(after.get('person2@example.net')!.attributes, {}, 'an empty cell removes the attribute the file has a column for');
    assert.equal(after.get('person3@example.net')!.status, 'unsubscribed', 'an unsubscribe is never undone by a sync');
    assert.deepEqual([after.get('new1@example.net')!.status, after.get('new1@example.net')!.subscribed_source], ['active', 'sync']);

    // A removed member is never mailed: a send goes to the active members only.
    const count = (await runOk(['subscribers', 'count', '--list', slug, '--json'], db)) as { count: number };
    assert.equal(count.count, 20);
    assert.equal(((await runOk(['subscribers', 'count', '--list', slug, '--status', 'removed', '--json'], db)) as { count: number }).count, 1);

    // Running it again changes nothing; a later file with person0 brings them back; --resubscribe brings back person3.
    const again = (await runOk(['subscribers', 'sync', file, '--list', slug, '--json'], db)) as SyncJson;
    assert.deepEqual([again.added, again.back, again.updated, again.removed], [0, 0, 0, 0]);
    const withBoth = await writeCsv(
      `email,name,plan\nperson0@example.net,Person 0,basic\nperson1@example.net,Person One,pro\nperson2@example.net,Person 2,\nperson3@example.net,Person 3,basic\n${keep.join('\n')}\nnew1@example.net,New One,pro\nnew2@example.net,,basic\n`,
    );
    const back = (await runOk(['subscribers', 'sync', withBoth, '--list', slug, '--resubscribe', '--json'], db)) as SyncJson;
    assert.deepEqual([back.added, back.back, back.removed], [0, 2, 0]);
    const restored = new Map((await members(slug)).map((member) => [member.email, member]));
    assert.deepEqual([restored.get('person0@example.net')!.status, restored.get('person0@example.net')!.status_source], ['active', 'sync']);
    assert.equal(restored.get('person3@example.net')!.status, 'active');
  });

  test('a sync that would remove more than 10% is refused unless --max-removal allows it; --dry-run shows counts and a sample', async () => {
    const slug = await listWith(20);
    const truncated = await writeCsv(
      `email,name,plan\n${Array.from({ length: 15 }, (_, index) => `person${index}@example.net,Person ${index},basic`).join('\n')}\n`,
    );
    const refused = await runCli(['subscribers', 'sync', truncated, '--list', slug], db);
    assert.equal(refused.code, 65);
    assert.match(
      refused.stderr,
      /^bulletin: The sync would remove 5 of the 20 active members of "sync-\d+" \(25%\), more than the 10% allowed \(a truncated export\?\); nothing was changed — if it is right, run it again with --max-removal 25%\.\n$/,
    );
    assert.ok((await members(slug)).every((member) => member.status === 'active'));

    const dry = await runOk(['subscribers', 'sync', truncated, '--list', slug, '--dry-run', '--max-removal', '25%'], db);
    assert.match(
      String(dry),
      /Dry run \(nothing changed\): syncing would make "sync-\d+" with 15 rows: 20 active members before, 15 after\n {2}0 added, 0 back, 0 updated \(name or attributes\), 5 removed\n {2}removed, e\.g\.: person15@example\.net, person16@example\.net, person17@example\.net, person18@example\.net, person19@example\.net\n/,
    );
    assert.ok(
      (await members(slug)).every((member) => member.status === 'active'),
      'a dry run changes nothing',
    );
    const dryRefused = (await runOk(['subscribers', 'sync', truncated, '--list', slug, '--dry-run', '--json'], db)) as SyncJson;
    assert.match(dryRefused.refusal ?? '', /would remove 5 of the 20/);

    const tooLow = await runCli(['subscribers', 'sync', truncated, '--list', slug, '--max-removal', '24%'], db);
    assert.equal(tooLow.code, 65);
    const allowed = (await runOk(['subscribers', 'sync', truncated, '--list', slug, '--max-removal', '25%', '--json'], db)) as SyncJson;
    assert.equal(allowed.removed, 5);
    const empty = await writeCsv('email,name\n');
    const emptied = await runCli(['subscribers', 'sync', empty, '--list', slug], db);
    assert.equal(emptied.code, 65, 'a header-only export would empty the list');
    assert.match(emptied.stderr, /would remove 15 of the 15 active members .*\(100%\)/);
    const badShare = await runCli(['subscribers', 'sync', empty, '--list', slug, '--max-removal', 'lots'], db);
    assert.equal(badShare.code, 2);
  });

  test('a row rejected for a mistake keeps its member; an interrupted sync (a broken file) changes nothing', async () => {
    const slug = await listWith(30);
    const good = Array.from({ length: 30 }, (_, index) => `person${index}@example.net,Person ${index},basic`);
    good[4] = `person4@example.net,${'x'.repeat(1001)},basic`;
    const withReject = await writeCsv(`email,name,plan\n${good.join('\n')}\n`);
    const report = (await runOk(['subscribers', 'sync', withReject, '--list', slug, '--json'], db)) as SyncJson;
    assert.deepEqual([report.invalid, report.removed], [1, 0]);
    assert.equal((await members(slug)).find((member) => member.email === 'person4@example.net')!.status, 'active');

    const before = await members(slug);
    const many = Array.from({ length: 12_000 }, (_, index) => `other${index}@example.net,Other ${index},pro`);
    const broken = await writeCsv(`email,name,plan\n${good.slice(0, 10).join('\n')}\n${many.join('\n')}\n"unclosed@example.net,Oops\n`);
    const result = await runCli(['subscribers', 'sync', broken, '--list', slug, '--max-removal', '100%'], db);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /is not valid CSV/);
    assert.deepEqual(await members(slug), before, 'nothing changed: no additions, no removals, no updates');
  });

  test('a sync killed midway changes nothing', async () => {
    const slug = await listWith(100);
    const before = await members(slug);
    const file = await writeCsv(
      `email,name,plan\n${Array.from({ length: 300_000 }, (_, index) => `other${index}@example.net,Other ${index},pro`).join('\n')}\n`,
    );
    const child = spawn(process.execPath, [BIN, 'subscribers', 'sync', file, '--list', slug, '--max-removal', '100%'], {
      env: { ...process.env, ...db.env },
      cwd: db.cwd,
      stdio: 'ignore',
    });
    const exited = once(child, 'exit');
    // Killed once the sync has written rows in its transaction (new subscribers are visible to nobody else yet).
    const deadline = Date.now() + 60_000;
    let backends: { pid: number }[];
    while (
      (backends = await rows<{ pid: number }>(
        db,
        `SELECT pid FROM pg_stat_activity WHERE state <> 'idle' AND query LIKE '%import_rows%' AND pid <> pg_backend_pid()`,
      )).length === 0
    ) {
      if (Date.now() > deadline || child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGKILL');
    const [, signal] = await exited;
    assert.equal(signal, 'SIGKILL', 'the sync was still running when killed');
    // The server notices the connection is gone and rolls back: its backend ends once it has.
    const pids = backends.map(({ pid }) => pid);
    while ((await rows(db, 'SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).length > 0) {
      assert.ok(Date.now() < deadline + 30_000, 'the killed sync’s backend ended');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(await members(slug), before);
    assert.deepEqual(await rows(db, `SELECT 1 FROM subscribers WHERE email LIKE 'other%' LIMIT 1`), []);
  });
});

test('a member removed by a sync comes back with subscribers add, and subscribers remove makes them unsubscribed', async () => {
  const slug = await listWith(20);
  const file = await writeCsv(
    `email,name,plan\n${Array.from({ length: 19 }, (_, index) => `person${index + 1}@example.net,Person ${index + 1},basic`).join('\n')}\n`,
  );
  await runOk(['subscribers', 'sync', file, '--list', slug], db);
  const status = async (email: string) => (await members(slug)).find((member) => member.email === email)!.status;
  assert.equal(await status('person0@example.net'), 'removed');
  assert.match(String(await runOk(['subscribers', 'add', 'person0@example.net', '--list', slug], db)), /^Resubscribed person0@example\.net/);
  assert.equal(await status('person0@example.net'), 'active');
  await runOk(['subscribers', 'sync', file, '--list', slug], db);
  await runOk(['subscribers', 'remove', 'person0@example.net', '--list', slug], db);
  assert.equal(await status('person0@example.net'), 'unsubscribed');
});
