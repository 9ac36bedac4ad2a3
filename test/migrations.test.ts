// Schema migrations: applied by themselves on the embedded database (and said once), required
// explicitly with `bulletin db migrate` on a server, where other commands stop with a clear message;
// shipped files never change; every schema an earlier 0.1 commit left behind upgrades to the
// baseline; a schema from a newer bulletin is refused in one sentence.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../src/app/config.js';
import { describeTarget, openDatabase, type Database } from '../src/store/database.js';
import { applyMigrations, MIGRATIONS_DIR } from '../src/store/migrations.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

/**
 * Every migration that has shipped, with the SHA-256 of its bytes. 0001–0006 as they are at release
 * 0.1.0 are its baseline. A new migration is added here once it is committed; none is ever edited.
 */
const SHIPPED: Record<string, string> = {
  '0001_lists_and_subscribers.sql': '2e6b606fbdc516b60ef5c4fc01476c9e3df486ea3b7d299cab6577dc4e43a8ad',
  '0002_bulletins_and_deliveries.sql': '31c7adedab7175446ed25ab7cb5d54113a367912071c693ed68e70c797c3bfa0',
  '0003_archive_numbers.sql': '23a14e0df07d4982cf21ddcc40e9196ccd58a04b2fb7d97ab7a9d7e060b85d9d',
  '0005_bounces.sql': '8a6505100b2cf2f343e6b4a3d297ea3bff1569ffccd3ac424658784c88f671be',
  '0006_send_pacing.sql': '5654b1bb11faebb7addf5fb5223c3b8e454e57e735e049ee046ec0a6bf53419e',
  '0007_baseline_repair.sql': 'b30506a74c001c38d5cd5e074b2583d2ab0fa77ee0f96a27dd21c96ddc7b9c04',
  '0008_installation.sql': 'c5b40963baaf1d0ca24b369c8d352eb342f72810418328127e406ecf18b5242d',
  '0009_smtp_bounces.sql': '0f3a09ce81503cec8ca43bddab0a0cb054e066bc5d659c76c4b2c1e0120227d3',
  '0013_ways_out.sql': '64761ad0c940d57b159b29c0887f5dd81b8fd2074b882a1737a1952a6e914d24',
  '0015_audiences_schedules_sync.sql': '52b76f471f57c2370f5a3c502cf4c948f91422cb7ab3c0d4ca72506c316efdea',
  '0017_send_control.sql': 'c734169359361d747fef8a63c4a3ac6dc6c55a697dcb1ae7e568b1794adb55d4',
};

const EARLIER = join(import.meta.dirname, 'fixtures', 'migrations-before-0.1');

/**
 * The migrations a database had applied at earlier commits before release 0.1.0: a file name means
 * the shipped file (the same bytes then, as SHIPPED proves), a path the file as it was then.
 */
const EARLIER_STATES: Record<string, readonly string[]> = {
  '5745d48 (the first schema, with an index 0001 later lost)': [join(EARLIER, '0001_lists_and_subscribers.sql')],
  '01e14d4 (0006 applied before 0003 and 0005 existed)': ['0001_lists_and_subscribers.sql', '0002_bulletins_and_deliveries.sql', '0006_send_pacing.sql'],
  'a229929 (0003 before it gained the archive bodies)': [
    '0001_lists_and_subscribers.sql',
    '0002_bulletins_and_deliveries.sql',
    join(EARLIER, '0003_archive_numbers.sql'),
    '0006_send_pacing.sql',
  ],
  '5775cac (0001–0003 and 0006)': ['0001_lists_and_subscribers.sql', '0002_bulletins_and_deliveries.sql', '0003_archive_numbers.sql', '0006_send_pacing.sql'],
};

test('no shipped migration was edited, renamed or deleted', async () => {
  const files = (await readdir(MIGRATIONS_DIR)).filter((name) => name.endsWith('.sql')).sort();
  for (const [name, sha256] of Object.entries(SHIPPED)) {
    assert.ok(files.includes(name), `migrations/${name} has shipped and is gone: migrations are only ever added; restore it and add a new migration instead`);
    const actual = createHash('sha256')
      .update(await readFile(join(MIGRATIONS_DIR, name)))
      .digest('hex');
    assert.equal(
      actual,
      sha256,
      `migrations/${name} changed after it shipped: databases migrated with it would never see the change; restore it and add a new migration instead`,
    );
  }
  const unrecorded = files.filter((name) => !(name in SHIPPED));
  assert.deepEqual(unrecorded, [], `record the SHA-256 of each new migration in SHIPPED (test/migrations.test.ts) once it is committed`);
});

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

test(`on a server, commands refuse an unmigrated database and name \`bulletin db migrate\` (${DATABASE_KIND} database: the embedded one through its socket)`, async () => {
  const db = await createTestDatabase({ migrated: false });
  const names = (await readdir(MIGRATIONS_DIR))
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => name.replace(/\.sql$/, ''));
  try {
    const server = { env: { DATABASE_URL: await db.url() }, cwd: db.cwd };
    const refused = await runCli(['list', 'ls'], server);
    assert.equal(refused.code, 78);
    assert.equal(
      refused.stderr,
      `bulletin: The ${describeTarget({ kind: 'server', url: server.env.DATABASE_URL })} is missing ${names.length} migration(s) (${names.join(', ')}); run \`bulletin db migrate\` first.\n`,
    );
    assert.match(refused.stderr, /The PostgreSQL at \S+:5432\/(bulletin_empty_\w+|postgres) is missing/);
    const migrated = await runCli(['db', 'migrate'], server);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`Applied ${names.length} migration\\(s\\) .*${names.at(-1)}`));
    const again = await runCli(['db', 'migrate'], server);
    assert.match(again.stdout, /is up to date/);
    const works = await runCli(['list', 'ls', '--json'], server);
    assert.equal(works.code, 0, works.stderr);
  } finally {
    await db.drop();
  }
});

/** Tables, columns, indexes and enum values of the public schema: what must match the baseline. */
async function schemaOf(db: Database): Promise<string[]> {
  const columns = await db.query<{ line: string }>(
    `SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type, is_nullable, coalesce(column_default, '')) AS line
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'pgmigrations'`,
  );
  const indexes = await db.query<{ line: string }>(
    `SELECT format('index %s', indexdef) AS line FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'pgmigrations'`,
  );
  const enums = await db.query<{ line: string }>(
    `SELECT format('enum %s %s', t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)) AS line
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`,
  );
  return [...columns.rows, ...indexes.rows, ...enums.rows].map((row) => row.line).sort();
}

async function openTest(db: TestDatabase): Promise<Database> {
  return openDatabase(loadConfig({ env: db.env, cwd: db.cwd }).database);
}

/** Applies just these migration files, as an earlier commit would have. */
async function migrateAsEarlier(db: TestDatabase, files: readonly string[]): Promise<void> {
  const dir = join(db.cwd, 'earlier-migrations');
  await mkdir(dir, { recursive: true });
  for (const file of files) await copyFile(file.includes('/') ? file : join(MIGRATIONS_DIR, file), join(dir, file.split('/').at(-1) as string));
  const database = await openTest(db);
  try {
    await applyMigrations(database, dir);
  } finally {
    await database.close();
  }
}

describe(`databases migrated before release 0.1.0 upgrade to its schema (${DATABASE_KIND} database)`, () => {
  let baseline: string[];

  test('the baseline: a database migrated from nothing', async () => {
    const db = await createTestDatabase({ migrated: false });
    try {
      await runOk(['db', 'migrate'], db);
      const database = await openTest(db);
      baseline = await schemaOf(database).finally(() => database.close());
      assert.ok(baseline.some((line) => line.startsWith('column bulletins.archive_html ')));
      assert.ok(!baseline.some((line) => line.includes('memberships_by_list_status')));
    } finally {
      await db.drop();
    }
  });

  for (const [commit, files] of Object.entries(EARLIER_STATES)) {
    test(`as migrated at ${commit}: \`db migrate\` applies the rest, and a send works`, async () => {
      const db = await createTestDatabase({ migrated: false });
      try {
        await migrateAsEarlier(db, files);
        const migrated = (await runOk(['db', 'migrate', '--json'], db)) as { applied: string[] };
        const had = files.map((file) => (file.split('/').at(-1) as string).replace(/\.sql$/, ''));
        assert.deepEqual(
          migrated.applied,
          Object.keys(SHIPPED)
            .map((name) => name.replace(/\.sql$/, ''))
            .filter((name) => !had.includes(name)),
        );
        const database = await openTest(db);
        assert.deepEqual(await schemaOf(database).finally(() => database.close()), baseline);
        await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
        await runOk(['subscribers', 'add', 'reader@example.net', '--list', 'news'], db);
        await writeFile(join(db.cwd, 'notice.md'), '---\nsubject: After the upgrade\n---\nAll is well.\n');
        const sent = (await runOk(
          ['send', join(db.cwd, 'notice.md'), '--list', 'news', '--outbox', join(db.cwd, 'outbox'), '--yes', '--quiet', '--json'],
          db,
        )) as { counts: { sent: number } };
        assert.equal(sent.counts.sent, 1);
        await runOk(['archive', 'export', '--list', 'news', '--out', join(db.cwd, 'site')], db);
      } finally {
        await db.drop();
      }
    });
  }

  test('a database migrated by a newer bulletin is refused with one sentence (exit 78), and left as it is', async () => {
    const db = await createTestDatabase({ migrated: false });
    try {
      await runOk(['db', 'migrate'], db);
      const database = await openTest(db);
      await database.query(`INSERT INTO pgmigrations (name, run_on) VALUES ('0099_from_a_newer_bulletin', now())`);
      await database.close();
      for (const args of [
        ['list', 'ls'],
        ['db', 'migrate'],
      ]) {
        const refused = await runCli(args, db);
        assert.equal(refused.code, 78, refused.stderr);
        assert.match(
          refused.stderr,
          /^bulletin: The .* was migrated by a newer bulletin \(it has 0099_from_a_newer_bulletin, which this version does not know\); run that version or a newer one\.\n$/,
        );
      }
    } finally {
      await db.drop();
    }
  });
});
