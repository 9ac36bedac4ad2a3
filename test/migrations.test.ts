// Schema migrations: applied by themselves on the embedded database (and said once), required
// explicitly with `bulletin db migrate` on a server, where other commands stop with a clear message.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { runCli } from './helpers/cli.js';
import { SERVER_URL } from './helpers/database.js';
import { MIGRATIONS_DIR } from '../src/store/migrations.js';

test('a fresh embedded database is created and migrated by any command, and says so once', async () => {
  const cwd = await mkdtemp(join(tmpdir(), 'bulletin-fresh-'));
  try {
    const first = await runCli(['list', 'ls', '--json'], { env: {}, cwd });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), []);
    assert.match(first.stderr, /created an embedded PostgreSQL database in .*\.bulletin \(set DATABASE_URL/);
    const second = await runCli(['list', 'ls', '--json'], { env: {}, cwd });
    assert.equal(second.code, 0);
    assert.equal(second.stderr, '', 'the notice is given once, when the database is created');
    const migrate = await runCli(['db', 'migrate', '--json'], { env: {}, cwd });
    assert.deepEqual(JSON.parse(migrate.stdout).applied, []);
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
});

test('on a server, commands refuse an unmigrated database and name `bulletin db migrate`', { skip: !SERVER_URL && 'needs DATABASE_URL' }, async () => {
  const serverUrl = SERVER_URL as string;
  const name = `bulletin_unmigrated_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const env = { DATABASE_URL: url.href };
  const cwd = tmpdir();
  const names = (await readdir(MIGRATIONS_DIR)).filter((name) => name.endsWith('.sql')).sort().map((name) => name.replace(/\.sql$/, ''));
  try {
    const refused = await runCli(['list', 'ls'], { env, cwd });
    assert.equal(refused.code, 78);
    assert.equal(
      refused.stderr,
      `bulletin: The PostgreSQL at ${url.hostname}:${url.port || '5432'}/${name} is missing ${names.length} migration(s) (${names.join(', ')}); run \`bulletin db migrate\` first.\n`,
    );
    const migrated = await runCli(['db', 'migrate'], { env, cwd });
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`Applied ${names.length} migration\\(s\\) .*${names.at(-1)}`));
    const again = await runCli(['db', 'migrate'], { env, cwd });
    assert.match(again.stdout, /is up to date/);
    const works = await runCli(['list', 'ls', '--json'], { env, cwd });
    assert.equal(works.code, 0, works.stderr);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
});
