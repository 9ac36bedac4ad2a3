// Opens the one database bulletin keeps its state in through `pg`: a PostgreSQL server (DATABASE_URL),
// or the embedded PostgreSQL under the data directory (embedded-server.ts), which every bulletin process
// on that directory shares. Also transactions, and the lock under which a data directory is set up.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as wait } from 'node:timers/promises';
import pg from 'pg';
import { BulletinError } from '../domain/errors.js';
import { createClusterIfMissing, embeddedCluster, embeddedConnection, ensureServerRunning, holdPresence, releasePresence } from './embedded-server.js';

// bigint columns (ids, counts) as JavaScript numbers: bulletin never comes near 2^53 rows.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

/** What store functions need of a connection: run one statement. */
export interface Sql {
  query<Row extends object = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<{ rows: Row[]; rowCount: number | null }>;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const CONNECTION_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|server closed the connection unexpectedly/i;

/**
 * Whether an error means the database could not be reached or went away, as opposed to a statement
 * that failed: refused, reset, a broken pipe, the Unix socket missing (ENOENT while connecting),
 * timeouts, SQLSTATE class 08 (connection exception), 57P01–57P03 (shut down by the administrator
 * or a crash, cannot connect now: starting up or shutting down), 53300 (no connection slot free).
 * A send waits and retries the former and stops on the latter; any other command says the database
 * is unavailable (exit 69). Looks through `cause` and AggregateError's `errors` (BulletinErrors
 * wrapping a failed connection, Node trying several addresses).
 */
export function isConnectionError(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 5) return false;
  const failure = error as { code?: unknown; message?: unknown; syscall?: unknown; address?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof failure.code === 'string' ? failure.code : '';
  if (CONNECTION_CODES.has(code)) return true;
  // A Unix socket that is not there (the server restarting, a proxy or container moving).
  if (code === 'ENOENT' && (failure.syscall === 'connect' || /\.s\.PGSQL\./.test(String(failure.address ?? failure.message ?? '')))) return true;
  if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
  const message = typeof failure.message === 'string' ? failure.message : '';
  if (CONNECTION_MESSAGES.test(message)) return true;
  if (Array.isArray(failure.errors) && failure.errors.some((inner) => isConnectionError(inner, depth + 1))) return true;
  return isConnectionError(failure.cause, depth + 1);
}

/** SQLSTATE 42501: the role lacks a privilege (on a table, sequence, schema, database). */
export function isPermissionError(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '42501';
}

/**
 * What is wrong with a DATABASE_URL, in a few words, or null when node-postgres can use it. The
 * URL itself is never repeated (it may hold a password).
 */
export function databaseUrlProblem(url: string): string | null {
  if (!/^postgres(ql)?:\/\//.test(url)) return 'must start with postgres:// or postgresql://';
  let parsed: { host: string; port: number };
  try {
    // node-postgres parses the URL when a client is made, before connecting (and throws then).
    parsed = new pg.Client({ connectionString: url }) as unknown as { host: string; port: number };
  } catch {
    return 'is not a valid URL (postgres://user:password@host:port/database; percent-encode special characters in the password)';
  }
  if (typeof parsed.host === 'string' && /\s/.test(parsed.host)) return 'names a host with a space in it';
  if (!Number.isInteger(Number(parsed.port)) || Number(parsed.port) < 1 || Number(parsed.port) > 65535)
    return 'has a port that is not a number from 1 to 65535';
  const timeout = new URLSearchParams(url.split('?')[1] ?? '').get('connect_timeout');
  if (timeout !== null && !/^\d+$/.test(timeout)) return 'has a connect_timeout that is not a whole number of seconds';
  return null;
}

/** Connecting gives up after this long (a host that drops packets), unless the URL says `connect_timeout`. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * A transaction whose COMMIT was sent but never answered (the connection broke): it may have been
 * saved or not. A connection error (see isConnectionError), so it is retried or reported as one;
 * work repeated after it must find out which (e.g. look for what it would have created).
 */
export class CommitUnknownError extends Error {
  constructor(cause: unknown) {
    super(`the connection broke while committing (${oneLine(cause)})`, { cause });
    this.name = 'CommitUnknownError';
  }
}

export type DatabaseTarget = { readonly kind: 'server'; readonly url: string } | { readonly kind: 'embedded'; readonly dataDir: string };

export interface Database extends Sql {
  readonly target: DatabaseTarget;
  /** Where the data lives, for messages; never includes a password. */
  readonly description: string;
  /** True when this open created the embedded database (first run in this data directory). */
  readonly created: boolean;
  /** True when this open moved the PGlite data of release 0.1.0 into the embedded PostgreSQL. */
  readonly upgraded?: boolean;
  /** Runs `work` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  /** Lends one connection (for cursors and migrations). */
  withConnection<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function describeTarget(target: DatabaseTarget): string {
  if (target.kind === 'embedded') return `embedded PostgreSQL in ${embeddedCluster(target.dataDir).clusterDir}`;
  try {
    // As node-postgres reads the URL (a Unix socket directory in `?host=` too), without the password.
    const parsed = new pg.Client({ connectionString: target.url }) as unknown as { host: string; port: number; database?: string };
    return `PostgreSQL at ${parsed.host}:${parsed.port}/${parsed.database || '(default database)'}`;
  } catch {
    return 'PostgreSQL at DATABASE_URL';
  }
}

export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  return target.kind === 'server' ? openServer(target) : openEmbedded(target);
}

async function openServer(target: DatabaseTarget & { kind: 'server' }): Promise<Database> {
  const description = describeTarget(target);
  const problem = databaseUrlProblem(target.url);
  if (problem !== null) throw new BulletinError('CONFIG', `DATABASE_URL ${problem}.`);
  const timeout = new URLSearchParams(target.url.split('?')[1] ?? '').get('connect_timeout');
  const pool = new pg.Pool({
    connectionString: target.url,
    max: 10,
    application_name: 'bulletin',
    connectionTimeoutMillis: timeout === null ? CONNECT_TIMEOUT_MS : Number(timeout) * 1000,
    // A server that vanished without closing the connection (a host gone, a network cut) is noticed.
    keepAlive: true,
  });
  // An idle client losing its server (a restart) must not crash the process.
  pool.on('error', () => undefined);
  const endPool = endingOf(pool);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot connect to ${description}: ${oneLine(error)}.`, {
      cause: error,
    });
  }
  return wrapPool(pool, target, description, false, endPool);
}

/** An error's message as one line without a trailing full stop, for the end of a sentence. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim().replace(/\.$/, '') || (error as { code?: string } | null)?.code || 'unknown error';
}

async function openEmbedded(target: DatabaseTarget & { kind: 'embedded' }): Promise<Database> {
  const description = describeTarget(target);
  const { dataDir } = target;
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (error) {
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot create the data directory ${dataDir}: ${(error as Error).message}.`);
  }
  let created = false;
  let upgraded = false;
  try {
    // Made once (or moved over from the PGlite of release 0.1.0), by one process: the others wait.
    if (needsSetup(dataDir)) {
      const releaseLock = await lockDataDir(dataDir);
      try {
        if (needsSetup(dataDir)) {
          created = await createClusterIfMissing(dataDir);
          if (existsSync(join(dataDir, 'pgdata', 'PG_VERSION'))) {
            await ensureServerRunning(dataDir);
            const presence = await holdPresence(dataDir);
            try {
              const { upgradeFromPglite } = await import('./pglite-upgrade.js');
              await upgradeFromPglite(dataDir, wrapEmbeddedPool(target, description, false));
              upgraded = true;
            } finally {
              await releasePresence(dataDir, presence);
            }
          }
        }
      } finally {
        await releaseLock();
      }
    }
    const presence = await joinServer(dataDir);
    const database = wrapEmbeddedPool(target, description, created, upgraded, presence);
    return database;
  } catch (error) {
    if (error instanceof BulletinError) throw error;
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot open the ${description}: ${oneLine(error)}.`, { cause: error });
  }
}

/** No cluster yet, or the PGlite directory of release 0.1.0 still to move over. */
function needsSetup(dataDir: string): boolean {
  return !existsSync(join(embeddedCluster(dataDir).clusterDir, 'PG_VERSION')) || existsSync(join(dataDir, 'pgdata', 'PG_VERSION'));
}

/**
 * Starts the server if needed and takes this process's presence on it. A server stopped by the
 * last process just as this one arrived is started again.
 */
async function joinServer(dataDir: string): Promise<pg.Client> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await ensureServerRunning(dataDir);
      return await holdPresence(dataDir);
    } catch (error) {
      if (!isConnectionError(error) || Date.now() > deadline) throw error;
    }
  }
}

/** A pool on the embedded server's socket; closing it ends this process's presence (the last one stops the server). */
function wrapEmbeddedPool(
  target: DatabaseTarget & { kind: 'embedded' },
  description: string,
  created: boolean,
  upgraded = false,
  presence?: pg.Client,
): Database {
  const pool = new pg.Pool({ ...embeddedConnection(target.dataDir), max: 10, application_name: 'bulletin' });
  pool.on('error', () => undefined);
  const endPool = endingOf(pool);
  const database = wrapPool(pool, target, description, created, async () => {
    await endPool();
    if (presence) await releasePresence(target.dataDir, presence);
  });
  return Object.assign(database, { upgraded });
}

/**
 * A client lent from the pool, with an error listener while it is out: a connection that breaks
 * then fails the statement running on it, and must not also crash the process as an unhandled
 * 'error' event (the pool listens only while a client is idle).
 */
async function lend(pool: pg.Pool): Promise<pg.PoolClient> {
  const client = await pool.connect();
  client.on('error', ignoreClientError);
  return client;
}

function ignoreClientError(): void {}

/** Returns a lent client; one whose connection broke is dropped from the pool, not lent again. */
function giveBack(client: pg.PoolClient, failure: unknown): void {
  client.off('error', ignoreClientError);
  client.release(isConnectionError(failure) ? (failure as Error) : undefined);
}

export function wrapPool(pool: pg.Pool, target: DatabaseTarget, description: string, created: boolean, close: () => Promise<void>): Database {
  let closed = false;
  return {
    target,
    description,
    created,
    query: (text, values) => pool.query(text, values as unknown[] | undefined) as never,
    async transaction(work) {
      const client = await lend(pool);
      let failure: unknown;
      try {
        await client.query('BEGIN');
        const result = await work(client as unknown as Sql);
        try {
          await client.query('COMMIT');
        } catch (error) {
          // The COMMIT went out and no answer came back: the work may or may not be saved.
          if (isConnectionError(error)) throw new CommitUnknownError(error);
          throw error;
        }
        return result;
      } catch (error) {
        failure = error;
        if (!(error instanceof CommitUnknownError)) await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        giveBack(client, failure);
      }
    },
    async withConnection(work) {
      const client = await lend(pool);
      let failure: unknown;
      try {
        return await work(client);
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        giveBack(client, failure);
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
 * How a pool is ended, made when it is created (it must see every connection). A pool ends once its
 * statements are answered; a server that took a statement and never answers (hung, or a network
 * that swallows packets) would keep the process up for ever after its work is done (Ctrl-C on
 * `status --watch` while the database hangs). After a grace its connections are cut, which fails
 * what was still waiting on them.
 */
function endingOf(pool: pg.Pool): () => Promise<void> {
  const connections = new Set<pg.Client>();
  pool.on('connect', (client) => connections.add(client));
  pool.on('remove', (client) => connections.delete(client));
  return async () => {
    const ended = pool.end();
    const settled = ended.then(
      () => true,
      () => true,
    );
    if (await Promise.race([settled, wait(CLOSE_GRACE_MS, false, { ref: false })])) return ended;
    // Those still connecting too (pg-pool lists them in `_clients` before its 'connect' event).
    const connecting = (pool as unknown as { _clients?: pg.Client[] })._clients ?? [];
    for (const client of new Set([...connections, ...connecting])) socketOf(client)?.destroy();
    await Promise.race([settled, wait(CLOSE_GRACE_MS, false, { ref: false })]);
  };
}

/** How long ending a pool waits for the server to answer what is in flight before cutting the connections. */
const CLOSE_GRACE_MS = 2_000;

/** node-postgres keeps a client's socket as `connection.stream`; there is no public way to cut it. */
function socketOf(client: pg.Client): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
}

/**
 * One process at a time sets the data directory up (creates the cluster, moves PGlite data over):
 * a lock file holding the owner's pid; the others wait for it, and a lock left by a dead process
 * is taken over. (Release 0.1.0 held the same file while it had PGlite open.)
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = join(dataDir, 'bulletin.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => rm(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (!(Number.isInteger(owner) && owner > 0 && isProcessAlive(owner))) {
        // Written a moment ago and not yet filled in, or left by a dead process.
        if (owner > 0 || Date.now() - (await mtimeMs(lockPath)) > 2_000) await rm(lockPath, { force: true });
      } else if (Date.now() > deadline) {
        throw new BulletinError(
          'DATABASE_UNAVAILABLE',
          `The embedded database in ${dataDir} is being set up by another bulletin process (pid ${owner}); run the command again when it has finished.`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function mtimeMs(path: string): Promise<number> {
  return stat(path).then(
    (info) => info.mtimeMs,
    () => 0,
  );
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

/** What a role lacks, found after a "permission denied" (SQLSTATE 42501): for the one sentence that names it. */
export interface MissingPrivilege {
  readonly role: string;
  /** `table deliveries`, `schema public`, `database bulletin`, `sequence subscribers_id_seq`. */
  readonly object: string;
  /** The privileges the role lacks on it (empty when they could not be found out). */
  readonly lacks: readonly string[];
}

const PRIVILEGES_BY_KIND: Readonly<Record<string, { readonly check: string; readonly privileges: readonly string[] }>> = {
  table: { check: 'has_table_privilege', privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] },
  sequence: { check: 'has_sequence_privilege', privileges: ['USAGE', 'SELECT', 'UPDATE'] },
  schema: { check: 'has_schema_privilege', privileges: ['USAGE', 'CREATE'] },
  database: { check: 'has_database_privilege', privileges: ['CONNECT', 'TEMPORARY', 'CREATE'] },
};

/**
 * Which privilege a "permission denied" error was about: the object from PostgreSQL's message, and
 * the rights on it the current role lacks (asked of the server, which still answers). Null for an
 * error that is not one.
 */
export async function findMissingPrivilege(sql: Sql, error: unknown): Promise<MissingPrivilege | null> {
  if (!isPermissionError(error)) return null;
  const message = oneLine(error);
  const owned = /must be owner of (table|sequence|schema|database|relation|type) "?([^"\s]+)"?/i.exec(message);
  const named = /permission denied for (table|sequence|schema|database|relation) "?([^"\s]+)"?/i.exec(message);
  const temporary = /permission denied to create temporary tables in database "?([^"\s]+)"?/i.exec(message);
  const kind = temporary ? 'database' : named?.[1]?.toLowerCase() === 'relation' ? 'table' : (named?.[1]?.toLowerCase() ?? null);
  const name = temporary?.[1] ?? named?.[2] ?? null;
  const { rows } = await sql.query<{ role: string }>('SELECT current_user::text AS role');
  const role = rows[0]?.role ?? '?';
  if (owned) return { role, object: `${owned[1]!.toLowerCase() === 'relation' ? 'table' : owned[1]!.toLowerCase()} ${owned[2]}`, lacks: ['OWNERSHIP'] };
  if (kind === null || name === null) return { role, object: message, lacks: [] };
  const spec = PRIVILEGES_BY_KIND[kind] as (typeof PRIVILEGES_BY_KIND)[string];
  const lacks: string[] = [];
  for (const privilege of spec.privileges) {
    // The function name comes from the table above, never from input.
    const { rows: checked } = await sql
      .query<{ granted: boolean }>(`SELECT ${spec.check}(current_user, $1, $2) AS granted`, [name, privilege])
      .catch(() => ({ rows: [] as { granted: boolean }[] }));
    if (checked[0]?.granted === false) lacks.push(privilege);
  }
  return { role, object: `${kind} ${name}`, lacks: temporary ? ['TEMPORARY'] : lacks };
}
