// A PostgreSQL server of the test's own (initdb in a temporary directory, on a free port), so a test
// can stop and restart it mid-send without disturbing the shared server other test files use. Uses
// Debian's server binaries (/usr/lib/postgresql/<version>/bin); as root, runs them as `postgres`.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface OwnPostgres {
  /** postgres://bulletin@127.0.0.1:<port>/<database> (trust authentication). */
  readonly url: string;
  /** The same database through the server's Unix socket (its file is gone while the server is stopped). */
  readonly socketUrl: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** The newest installed server's bin directory, or null when none is installed. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

export async function startOwnPostgres(database: string): Promise<OwnPostgres> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-own-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  // The server's locale is fixed, whatever locale the suite runs in (an uninstalled one makes initdb fail).
  const env = { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
  const exec = (program: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { env }) : run(join(bin, program), args, { env });
  const port = await freePort();
  const data = join(dir, 'data');
  await exec('initdb', ['-D', data, '-A', 'trust', '-U', 'bulletin', '--no-sync', '-E', 'UTF8']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off`;
  const start = async () => {
    await exec('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', 'start']);
  };
  await start();
  await run(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'bulletin', '-d', 'postgres', '-c', `CREATE DATABASE ${database}`]);
  return {
    url: `postgres://bulletin@127.0.0.1:${port}/${database}`,
    socketUrl: `postgres://bulletin@/${database}?host=${encodeURIComponent(dir)}&port=${port}`,
    stop: async () => {
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    start,
    destroy: async () => {
      await exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
