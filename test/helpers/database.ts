// Gives each test file a database of its own, already migrated: on the PostgreSQL server named by
// DATABASE_URL, a copy of a migrated template database; otherwise a copy of a migrated embedded
// PostgreSQL cluster (stopped). Templates are keyed by a hash of migrations/, so a new migration rebuilds them.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/app/config.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { embeddedCluster, embeddedUrl, stopEmbeddedServer } from '../../src/store/embedded-server.js';
import { applyMigrations, MIGRATIONS_DIR } from '../../src/store/migrations.js';

export const SERVER_URL = process.env.DATABASE_URL?.trim() || undefined;
export const DATABASE_KIND = SERVER_URL ? 'server' : 'embedded';

export interface TestDatabase {
  /** Environment variables that point bulletin at this database. */
  readonly env: Record<string, string>;
  /** A working directory of the test's own (no .env in it). */
  readonly cwd: string;
  config(extraEnv?: Record<string, string>): Config;
  /**
   * A postgres:// URL of this database, for tests that talk to it as a server (through a proxy, as
   * other roles): DATABASE_URL's, or the embedded PostgreSQL's socket (kept running until drop).
   */
  url(): Promise<string>;
  drop(): Promise<void>;
}

async function migrationsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(MIGRATIONS_DIR)).sort()) {
    hash.update(name).update(await readFile(join(MIGRATIONS_DIR, name)));
  }
  return hash.digest('hex').slice(0, 12);
}

export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const cwd = await mkdtemp(join(tmpdir(), 'bulletin-test-'));
  // Run as root, the embedded PostgreSQL runs as `postgres`, which must be able to enter the directory.
  await chmod(cwd, 0o755);
  const migrated = options.migrated ?? true;
  const env = SERVER_URL
    ? migrated
      ? await createServerDatabase(SERVER_URL)
      : await createEmptyServerDatabase(SERVER_URL)
    : migrated
      ? await createEmbeddedDatabase(cwd)
      : { BULLETIN_DATA_DIR: join(cwd, 'data') };
  let held: Database | null = null;
  return {
    env,
    cwd,
    config: (extraEnv = {}) => loadConfig({ env: { ...env, ...extraEnv }, cwd }),
    async url() {
      if (env.DATABASE_URL) return env.DATABASE_URL;
      held ??= await openDatabase({ kind: 'embedded', dataDir: env.BULLETIN_DATA_DIR as string });
      return embeddedUrl(env.BULLETIN_DATA_DIR as string);
    },
    async drop() {
      if (SERVER_URL && env.DATABASE_URL) await dropServerDatabase(SERVER_URL, env.DATABASE_URL);
      await held?.close();
      // A bulletin process killed by the test leaves the embedded server running: stop it.
      if (env.BULLETIN_DATA_DIR) await stopEmbeddedServer(env.BULLETIN_DATA_DIR);
      await stopEmbeddedServer(join(cwd, '.bulletin'));
      await rm(cwd, { recursive: true, force: true });
    },
  };
}

function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.href;
}

async function adminQuery<T extends object>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function createServerDatabase(serverUrl: string): Promise<Record<string, string>> {
  const template = `bulletin_template_${await migrationsHash()}`;
  const name = `bulletin_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(serverUrl, async (client) => {
    // One test process builds the template; the others wait on the lock, then copy it.
    await client.query('SELECT pg_advisory_lock(4242001)');
    try {
      const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
      if (rows.length === 0) {
        const building = `${template}_building`;
        await client.query(`DROP DATABASE IF EXISTS ${building}`);
        await client.query(`CREATE DATABASE ${building}`);
        const db = await openDatabase({ kind: 'server', url: withDatabaseName(serverUrl, building) });
        try {
          await applyMigrations(db);
        } finally {
          await db.close();
        }
        await client.query(`ALTER DATABASE ${building} RENAME TO ${template}`);
      }
      await client.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
    } finally {
      await client.query('SELECT pg_advisory_unlock(4242001)');
    }
    return {};
  });
  return { DATABASE_URL: withDatabaseName(serverUrl, name) };
}

/** A database with nothing in it, not even the migrations table. */
async function createEmptyServerDatabase(serverUrl: string): Promise<Record<string, string>> {
  const name = `bulletin_empty_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(serverUrl, async (client) => {
    await client.query(`CREATE DATABASE ${name}`);
    return {};
  });
  return { DATABASE_URL: withDatabaseName(serverUrl, name) };
}

/**
 * Drops a test's database. FORCE ends our own leftover connections; a process we may not signal (an
 * autovacuum worker, a connection of a role a test made) is waited for: it leaves by itself soon.
 */
async function dropServerDatabase(serverUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(serverUrl, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        return {};
      });
      return;
    } catch (error) {
      const code = (error as { code?: string }).code;
      // 42501: not allowed to end another role's process; 55006: still in use by one.
      if ((code !== '42501' && code !== '55006') || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** A migrated embedded cluster is built once per migrations hash and copied (stopped) for each test file. */
async function createEmbeddedDatabase(cwd: string): Promise<Record<string, string>> {
  const templateDir = join(tmpdir(), `bulletin-test-template-pg18-${await migrationsHash()}`);
  const ready = join(templateDir, 'ready');
  if (!(await exists(ready))) {
    const lockDir = `${templateDir}.lock`;
    let owner = false;
    try {
      await mkdir(lockDir);
      owner = true;
    } catch {
      while (!(await exists(ready))) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (owner) {
      try {
        if (!(await exists(ready))) {
          await rm(templateDir, { recursive: true, force: true });
          await mkdir(templateDir, { mode: 0o755 });
          const db = await openDatabase({ kind: 'embedded', dataDir: templateDir });
          try {
            await applyMigrations(db);
          } finally {
            // The last (only) process on it: closing stops its server.
            await db.close();
          }
          await mkdir(ready);
        }
      } finally {
        await rm(lockDir, { recursive: true, force: true });
      }
    }
  }
  const dataDir = join(cwd, 'data');
  await mkdir(dataDir);
  // cp -a keeps the owner (the `postgres` user when the suite runs as root) and the modes.
  await new Promise<void>((resolve, reject) =>
    execFile('cp', ['-a', embeddedCluster(templateDir).clusterDir, embeddedCluster(dataDir).clusterDir], (error) => (error ? reject(error) : resolve())),
  );
  return { BULLETIN_DATA_DIR: dataDir };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
