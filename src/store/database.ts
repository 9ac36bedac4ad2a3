// Opens the one database bulletin keeps its state in: a PostgreSQL server (DATABASE_URL) through `pg`,
// or the embedded PGlite under the data directory through PGlite's node-postgres adapter, so every
// store function runs the same `pg` code on both. Also transactions and the embedded-directory lock.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { BulletinError } from '../domain/errors.js';

// bigint columns (ids, counts) as JavaScript numbers: bulletin never comes near 2^53 rows.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

/** What store functions need of a connection: run one statement. */
export interface Sql {
  query<Row extends object = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<{ rows: Row[]; rowCount: number | null }>;
}

/**
 * Whether an error means the database could not be reached or went away (refused, reset, server
 * shutting down or starting up), as opposed to a statement that failed: the send waits and retries
 * the former, and stops on the latter.
 */
export function isConnectionError(error: unknown): boolean {
  const failure = error as { code?: unknown; message?: unknown } | null;
  const code = typeof failure?.code === 'string' ? failure.code : '';
  if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code)) return true;
  // SQLSTATE class 08 (connection exception), 57P01–57P03 (admin/crash shutdown, cannot connect now).
  if (/^08...$/.test(code) || /^57P0[123]$/.test(code)) return true;
  const message = typeof failure?.message === 'string' ? failure.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection/i.test(message);
}

export type DatabaseTarget =
  | { readonly kind: 'server'; readonly url: string }
  | { readonly kind: 'embedded'; readonly dataDir: string };

export interface Database extends Sql {
  readonly target: DatabaseTarget;
  /** Where the data lives, for messages; never includes a password. */
  readonly description: string;
  /** True when this open created the embedded database (first run in this data directory). */
  readonly created: boolean;
  /** Runs `work` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  /** Lends one connection (for cursors and migrations). */
  withConnection<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function describeTarget(target: DatabaseTarget): string {
  if (target.kind === 'embedded') return `embedded PostgreSQL in ${join(target.dataDir, 'pgdata')}`;
  try {
    const url = new URL(target.url);
    const database = url.pathname.replace(/^\//, '') || '(default database)';
    return `PostgreSQL at ${url.hostname || 'localhost'}:${url.port || '5432'}/${database}`;
  } catch {
    return 'PostgreSQL at DATABASE_URL';
  }
}

export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  return target.kind === 'server' ? openServer(target) : openEmbedded(target);
}

async function openServer(target: DatabaseTarget & { kind: 'server' }): Promise<Database> {
  const description = describeTarget(target);
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({ connectionString: target.url, max: 10, application_name: 'bulletin' });
  } catch (error) {
    throw new BulletinError('CONFIG', `DATABASE_URL is not a valid PostgreSQL URL: ${(error as Error).message}.`);
  }
  // An idle client losing its server (a restart) must not crash the process.
  pool.on('error', () => undefined);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot connect to ${description}: ${(error as Error).message}.`, {
      cause: error,
    });
  }
  return wrapPool(pool, target, description, false, async () => pool.end());
}

async function openEmbedded(target: DatabaseTarget & { kind: 'embedded' }): Promise<Database> {
  const description = describeTarget(target);
  try {
    await mkdir(target.dataDir, { recursive: true });
  } catch (error) {
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot create the data directory ${target.dataDir}: ${(error as Error).message}.`);
  }
  const releaseLock = await lockDataDir(target.dataDir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const { createPgConfig } = await import('@electric-sql/pglite/node-postgres');
    const created = !existsSync(join(target.dataDir, 'pgdata', 'PG_VERSION'));
    const pglite = await PGlite.create(join(target.dataDir, 'pgdata'));
    // PGlite has one backend: one client at a time, so transactions never interleave.
    const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 } as pg.PoolConfig);
    pool.on('error', () => undefined);
    return wrapPool(pool, target, description, created, async () => {
      await pool.end();
      await pglite.close();
      await releaseLock();
    });
  } catch (error) {
    await releaseLock();
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot open the ${description}: ${(error as Error).message}.`, {
      cause: error,
    });
  }
}

function wrapPool(
  pool: pg.Pool,
  target: DatabaseTarget,
  description: string,
  created: boolean,
  close: () => Promise<void>,
): Database {
  let closed = false;
  return {
    target,
    description,
    created,
    query: (text, values) => pool.query(text, values as unknown[] | undefined) as never,
    async transaction(work) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work(client as unknown as Sql);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async withConnection(work) {
      const client = await pool.connect();
      try {
        return await work(client);
      } finally {
        client.release();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await close();
    },
  };
}

/**
 * PGlite is a single process's database: two bulletin processes on one data directory would corrupt
 * it. A lock file holding the owner's pid keeps the second one out; a lock left by a dead process
 * is taken over.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = join(dataDir, 'bulletin.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => rm(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && isProcessAlive(owner)) {
        throw new BulletinError(
          'DATABASE_UNAVAILABLE',
          owner === process.pid
            ? `The embedded database in ${dataDir} is already open in this process.`
            : `The embedded database in ${dataDir} is in use by another bulletin process (pid ${owner}); wait for it to finish or stop it.`,
        );
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot lock the embedded database in ${dataDir}.`);
}

/** Whether a process with this pid runs on this machine (lock files and claim owners name pids). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the database answers a trivial statement (`bulletin serve`'s /healthz); throws if not. */
export async function ping(sql: Sql): Promise<void> {
  await sql.query('SELECT 1');
}
