// The command line as a user meets it: help, lists, subscribers, --json, exit statuses, config.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { childEnv, runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

describe(`bulletin CLI (${DATABASE_KIND} database)`, () => {
  test('--help lists every command with a description and examples', async () => {
    const result = await runCli(['--help'], db);
    assert.equal(result.code, 0);
    for (const command of [
      'list create <slug>',
      'list ls',
      'list show <slug>',
      'list update <slug>',
      'subscribers add <address>',
      'subscribers remove <address>',
      'subscribers ls',
      'subscribers count',
      'subscribers export',
      'subscribers import <file>',
      'db migrate',
    ]) {
      assert.match(result.stdout, new RegExp(`^  ${command.replace(/[<>]/g, '.')}\\s+\\S`, 'm'), command);
    }
    assert.match(result.stdout, /Examples:\n  bulletin list create/);
    const importHelp = await runCli(['subscribers', 'import', '--help'], db);
    assert.match(importHelp.stdout, /--rejects <file>/);
    assert.match(importHelp.stdout, /Example:\n  bulletin subscribers import/);
  });

  test('usage errors exit 2, bad input 65, unknown list 66, each with one line on stderr', async () => {
    const unknown = await runCli(['subscribers', 'frobnicate'], db);
    assert.equal(unknown.code, 2);
    const missing = await runCli(['subscribers', 'count'], db);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /required option '--list <slug>' not specified/);
    const badSlug = await runCli(['list', 'create', 'Bad Slug!', ...LIST_FLAGS], db);
    assert.equal(badSlug.code, 65);
    assert.match(badSlug.stderr, /^bulletin: List slug "Bad Slug!" is not valid/);
    const noList = await runCli(['subscribers', 'count', '--list', 'nowhere'], db);
    assert.equal(noList.code, 66);
    assert.equal(noList.stderr, 'bulletin: There is no list "nowhere" (see `bulletin list ls`).\n');
    const badFrom = await runCli(['list', 'create', 'x', ...LIST_FLAGS, '--from', 'Evil\r\nBcc: a@b.c <x@example.net>'], db);
    assert.equal(badFrom.code, 65);
    const incomplete = await runCli(['list', 'create', 'incomplete', '--name', 'X'], db);
    assert.equal(incomplete.code, 2);
    assert.match(incomplete.stderr, /needs --address, --from, --base-url/);
  });

  test('list create, ls, show and update, as text and as JSON', async () => {
    await runOk(['list', 'create', 'news', ...LIST_FLAGS, '--description', 'Service notices'], db);
    const duplicate = await runCli(['list', 'create', 'news', ...LIST_FLAGS], db);
    assert.equal(duplicate.code, 65);
    assert.match(duplicate.stderr, /already exists/);

    const shown = (await runOk(['list', 'show', 'news', '--json'], db)) as Record<string, unknown>;
    assert.equal(shown.name, 'ExampleNet-Bulletins');
    assert.equal(shown.from, 'ExampleNet <noreply@example.net>');
    assert.equal(shown.subjectPrefix, '[ExampleNet-Bulletins]');
    assert.equal(shown.bounceAddress, 'bulletins-bounces@lists.example.net');
    assert.deepEqual(shown.counts, { active: 0, unsubscribed: 0, bounced: 0, removed: 0 });

    await runOk(['list', 'update', 'news', '--subject-prefix', '[News]', '--base-url', 'https://news.example.net/'], db);
    const updated = (await runOk(['list', 'show', 'news', '--json'], db)) as Record<string, unknown>;
    assert.equal(updated.subjectPrefix, '[News]');
    assert.equal(updated.baseUrl, 'https://news.example.net');
    const nothing = await runCli(['list', 'update', 'news'], db);
    assert.equal(nothing.code, 2);

    const table = (await runOk(['list', 'ls'], db)) as string;
    assert.match(table, /^SLUG\s+NAME\s+ADDRESS\s+ACTIVE\s+UNSUBSCRIBED\s+BOUNCED\s+REMOVED$/m);
    assert.match(table, /^news\s+ExampleNet-Bulletins\s+bulletins@lists\.example\.net\s+0\s+0\s+0\s+0$/m);
  });

  test('subscribers add, remove, ls, count and show the status, time and source of each change', async () => {
    await runOk(['list', 'create', 'people', ...LIST_FLAGS], db);
    const added = (await runOk(
      ['subscribers', 'add', 'Zoe@Bücher.Example', '--list', 'people', '--name', 'Zoë', '--attr', 'plan=adsl', '--attr', 'city=Perth', '--json'],
      db,
    )) as { email: string; list: string; outcome: string };
    assert.deepEqual(added, { email: 'zoe@xn--bcher-kva.example', list: 'people', outcome: 'added' });
    await runOk(['subscribers', 'add', 'yan@example.net', '--list', 'people'], db);
    await runOk(['subscribers', 'add', 'xu@example.net', '--list', 'people'], db);
    const again = (await runOk(['subscribers', 'add', 'YAN@example.net', '--list', 'people', '--json'], db)) as { outcome: string };
    assert.equal(again.outcome, 'already active');

    assert.equal(await runOk(['subscribers', 'count', '--list', 'people'], db), '3\n');
    await runOk(['subscribers', 'remove', 'yan@example.net', '--list', 'people'], db);
    assert.equal(await runOk(['subscribers', 'count', '--list', 'people'], db), '2\n');
    assert.equal(await runOk(['subscribers', 'count', '--list', 'people', '--status', 'unsubscribed'], db), '1\n');

    const listed = (await runOk(['subscribers', 'ls', '--list', 'people', '--json'], db)) as {
      email: string;
      status: string;
      statusSource: string;
      attributes: Record<string, string>;
    }[];
    assert.deepEqual(
      listed.map((member) => [member.email, member.status, member.statusSource]),
      [
        ['xu@example.net', 'active', 'command line'],
        ['yan@example.net', 'unsubscribed', 'command line'],
        ['zoe@xn--bcher-kva.example', 'active', 'command line'],
      ],
    );
    assert.deepEqual(listed[2]?.attributes, { plan: 'adsl', city: 'Perth' });

    const resubscribeRefused = await runCli(['subscribers', 'add', 'yan@example.net', '--list', 'people'], db);
    assert.equal(resubscribeRefused.code, 65);
    assert.match(resubscribeRefused.stderr, /is unsubscribed on "people".*--resubscribe/);

    const shown = (await runOk(['list', 'show', 'people', '--json'], db)) as { counts: Record<string, number> };
    assert.deepEqual(shown.counts, { active: 2, unsubscribed: 1, bounced: 0, removed: 0 });

    const page = (await runOk(['subscribers', 'ls', '--list', 'people', '--limit', '1'], db)) as string;
    assert.match(page, /\(more: add --after xu@example\.net\)/);
    const next = (await runOk(['subscribers', 'ls', '--list', 'people', '--limit', '1', '--after', 'xu@example.net'], db)) as string;
    assert.match(next, /yan@example\.net\s+unsubscribed/);
  });

  test('remove --purge erases the person everywhere and keeps only a hash', async () => {
    await runOk(['list', 'create', 'purge-a', ...LIST_FLAGS], db);
    await runOk(['list', 'create', 'purge-b', ...LIST_FLAGS], db);
    await runOk(['subscribers', 'add', 'wendy@example.net', '--list', 'purge-a', '--name', 'Wendy W', '--attr', 'city=Hobart'], db);
    await runOk(['subscribers', 'add', 'wendy@example.net', '--list', 'purge-b'], db);
    const erased = (await runOk(['subscribers', 'remove', 'wendy@example.net', '--list', 'purge-a', '--purge', '--json'], db)) as {
      membershipsErased: number;
    };
    assert.equal(erased.membershipsErased, 2);
    const leftovers = await rows(
      db,
      `SELECT (SELECT count(*) FROM subscribers WHERE email = 'wendy@example.net' OR name = 'Wendy W')::int AS people,
              (SELECT count(*) FROM suppressions WHERE email_sha256 = sha256('wendy@example.net'))::int AS hashes`,
    );
    assert.deepEqual(leftovers, [{ people: 0, hashes: 1 }]);
    const readd = await runCli(['subscribers', 'add', 'wendy@example.net', '--list', 'purge-b'], db);
    assert.equal(readd.code, 65);
    assert.match(readd.stderr, /erased on request/);
  });

  test('export writes CSV that import reads back unchanged', async () => {
    await runOk(['list', 'create', 'roundtrip', ...LIST_FLAGS], db);
    const source = join(db.cwd, 'source.csv');
    await writeFile(source, 'email,name,city,plan\nann@example.net,"Ann, A",Adelaide,adsl\nben@example.net,Ben,,nbn\n');
    await runOk(['subscribers', 'import', source, '--list', 'roundtrip'], db);
    const exported = (await runOk(['subscribers', 'export', '--list', 'roundtrip'], db)) as string;
    assert.equal(exported, 'email,name,city,plan\nann@example.net,"Ann, A",Adelaide,adsl\nben@example.net,Ben,,nbn\n');
    const out = join(db.cwd, 'exported.csv');
    const summary = (await runOk(['subscribers', 'export', '--list', 'roundtrip', '--out', out, '--json'], db)) as { count: number };
    assert.equal(summary.count, 2);
    assert.equal(await readFile(out, 'utf8'), exported);
    await runOk(['list', 'create', 'roundtrip-copy', ...LIST_FLAGS], db);
    await runOk(['subscribers', 'import', out, '--list', 'roundtrip-copy'], db);
    assert.equal(await runOk(['subscribers', 'export', '--list', 'roundtrip-copy'], db), exported);
  });

  test('configuration: flags over environment over .env, and clear errors for bad values', async () => {
    const badUrl = await runCli(['list', 'ls'], { env: { DATABASE_URL: 'mysql://nope' }, cwd: db.cwd });
    assert.equal(badUrl.code, 78);
    assert.match(badUrl.stderr, /DATABASE_URL must start with postgres:\/\//);
    const shortSecret = await runCli(['list', 'ls'], { env: { ...db.env, BULLETIN_SECRET: 'short' }, cwd: db.cwd });
    assert.equal(shortSecret.code, 78);
    assert.match(shortSecret.stderr, /BULLETIN_SECRET must be at least 32 characters/);
    const unreachable = await runCli(['list', 'ls', '--database-url', 'postgres://nobody@127.0.0.1:9/none'], { env: db.env, cwd: db.cwd });
    assert.equal(unreachable.code, 69);
    assert.match(unreachable.stderr, /^bulletin: Cannot connect to PostgreSQL at 127\.0\.0\.1:9\/none: /);
    // .env is read from the working directory; the real environment wins over it.
    await writeFile(join(db.cwd, '.env'), 'DATABASE_URL=postgres://dotenv@127.0.0.1:9/from_dotenv\n');
    const fromDotEnv = await runCli(['list', 'ls'], { env: {}, cwd: db.cwd });
    assert.equal(fromDotEnv.code, 69);
    assert.match(fromDotEnv.stderr, /from_dotenv/);
    const envWins = await runCli(['list', 'ls'], { env: { DATABASE_URL: 'postgres://env@127.0.0.1:9/from_env' }, cwd: db.cwd });
    assert.equal(envWins.code, 69);
    assert.match(envWins.stderr, /from_env/);
    // Set but blank is a mistake, never "use the embedded database" (which would keep the data here).
    for (const blank of ['', ' ', '\t']) {
      const refused = await runCli(['list', 'ls'], { env: { DATABASE_URL: blank }, cwd: db.cwd });
      assert.equal(refused.code, 78, refused.stderr);
      assert.equal(refused.stderr, 'bulletin: DATABASE_URL is set but blank; give a postgres:// URL, or unset it to use the embedded database.\n');
    }
    const blankFlag = await runCli(['list', 'ls', '--database-url', ' '], { env: db.env, cwd: db.cwd });
    assert.equal(blankFlag.code, 78);
    assert.match(blankFlag.stderr, /^bulletin: --database-url is set but blank/);
    await writeFile(join(db.cwd, '.env'), 'DATABASE_URL=\n');
    const blankDotEnv = await runCli(['list', 'ls'], { env: {}, cwd: db.cwd });
    assert.equal(blankDotEnv.code, 78);
    assert.match(blankDotEnv.stderr, /^bulletin: DATABASE_URL in .*\.env is set but blank/);
    await rm(join(db.cwd, '.env'));
    assert.ok(!existsSync(join(db.cwd, '.bulletin')), 'no embedded database was created in the working directory');
    // A malformed URL is a configuration error too (exit 78), and the sentence never repeats the URL (it may hold a password).
    for (const malformed of [
      'postgres://user:s3cret@db.example.net:99999/bulletin',
      'postgres://user:s3cret@[::1/bulletin',
      'postgres://user:s3cret@db example/bulletin',
      'postgres://user:s3cret@db.example.net/bulletin?connect_timeout=soon',
    ]) {
      const refused = await runCli(['list', 'ls'], { env: { DATABASE_URL: malformed }, cwd: db.cwd });
      assert.equal(refused.code, 78, `${malformed}: ${refused.stderr}`);
      assert.match(refused.stderr, /^bulletin: DATABASE_URL [^\n]+\.\n$/);
      assert.ok(!refused.stderr.includes('s3cret'), refused.stderr);
    }
  });
});

test(`a reader that goes away (bulletin status --watch | head -1) crashes nothing: the command carries on and ends as it would (${DATABASE_KIND} database)`, async () => {
  const bin = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'status', '--watch'], { env: childEnv(db.env), cwd: db.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  // Like `head -1`: read the first line, then close our end of the pipe; the next lines meet EPIPE.
  await once(child.stdout, 'data');
  child.stdout.destroy();
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.equal(child.exitCode, null, `still watching after two more lines to nobody: ${stderr}`);
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled 'error' event/);
});
