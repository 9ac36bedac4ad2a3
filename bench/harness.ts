// What the benchmarks share: running a command under GNU time (wall, CPU and peak RSS), an SMTP
// sink in its own process (Postfix's smtp-sink, or bench/smtp-sink.ts), and a database with a list
// of subscribers made straight in SQL.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../test/helpers/ports.js';
import { openDatabase } from '../src/store/database.js';

export const root = fileURLToPath(new URL('..', import.meta.url));

export interface Measured {
  seconds: number;
  cpu: number;
  maxRssMb: number;
  output: string;
}

/** Runs a command under GNU time; returns wall seconds, CPU seconds and peak RSS. */
export async function measure(command: string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', 'TIME %U %S %M', ...command], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  const seconds = (performance.now() - started) / 1000;
  const match = /TIME ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  if (code !== 0 || !match) throw new Error(`${command.join(' ')} exited ${code}:\n${stderr}`);
  return { seconds, cpu: Number(match[1]) + Number(match[2]), maxRssMb: Number(match[3]) / 1024, output: stdout };
}

export interface SinkCounts {
  messages: number;
  distinct: number | null;
  duplicates: number | null;
}

/**
 * A sink of `kind` (postfix or node); with a `scenario` (bench/smtp-sink.ts --scenario), always the
 * node sink, misbehaving as named.
 */
export async function startSink(kind: string, scenario?: string): Promise<{ port: number; stop(): Promise<SinkCounts> }> {
  if (kind === 'postfix' && scenario === undefined) {
    const port = await freePort();
    const child = spawn('/usr/sbin/smtp-sink', ['-u', 'postfix', '-c', `127.0.0.1:${port}`, '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => setTimeout(resolve, 300));
    return {
      port,
      async stop() {
        child.kill('SIGTERM');
        await once(child, 'exit');
        const counts = [...output.matchAll(/mesg=(\d+)/g)];
        return { messages: Number(counts.at(-1)?.[1] ?? 0), distinct: null, duplicates: null };
      },
    };
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/smtp-sink.ts', '--scenario', scenario ?? 'none'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  const port = Number(/listening (\d+)/.exec(String(first.value))?.[1]);
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      const result = await iterator.next();
      return JSON.parse(String(result.value)) as SinkCounts;
    },
  };
}

/** This run's own database on the server (another benchmark at the same time has its own). */
const BENCH_DATABASE = `bulletin_bench_${process.pid}`;

/** Drops this run's server database (a no-op on the embedded database). */
export async function dropBenchDatabase(): Promise<void> {
  const serverUrl = process.env.DATABASE_URL?.trim();
  if (!serverUrl) return;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${BENCH_DATABASE} WITH (FORCE)`);
  await admin.end();
}

/**
 * A database (this run's own on the server, or an embedded one under `dir`) with a list `bench`
 * and `n` active subscribers, their names given by a SQL expression of `g` (1…n).
 */
export async function prepareDatabase(dir: string, subscribers: { n: number; name: string }): Promise<NodeJS.ProcessEnv> {
  const { n } = subscribers;
  const serverUrl = process.env.DATABASE_URL?.trim();
  let env: NodeJS.ProcessEnv;
  if (serverUrl) {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${BENCH_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${BENCH_DATABASE}`);
    await admin.end();
    const url = new URL(serverUrl);
    url.pathname = `/${BENCH_DATABASE}`;
    env = { ...process.env, DATABASE_URL: url.href };
  } else {
    // Unset, not blank: a blank DATABASE_URL is a configuration error.
    env = { ...process.env, BULLETIN_DATA_DIR: join(dir, 'data') };
    delete env.DATABASE_URL;
  }
  const bulletin = (args: string[]) => measure([process.execPath, 'bin/bulletin.js', ...args], env);
  if (serverUrl) await bulletin(['db', 'migrate']);
  await bulletin([
    'list',
    'create',
    'bench',
    '--name',
    'Bench',
    '--address',
    'bench@lists.example.net',
    '--from',
    'ExampleNet <noreply@example.net>',
    '--base-url',
    'https://lists.example.net',
  ]);
  // Subscribers straight in SQL (a benchmark fixture, not product code): an import of 1M rows would dominate the run.
  const members = `INSERT INTO subscribers (email, name) SELECT 'customer' || g || '@example' || (g % 97) || '.net', ${subscribers.name} FROM generate_series(1, ${n}) g;
     INSERT INTO memberships (list_id, subscriber_id, subscribed_source, status_source) SELECT 1, id, 'import', 'import' FROM subscribers ORDER BY id;`;
  if (serverUrl) {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    await client.query(members);
    await client.end();
  } else {
    const db = await openDatabase({ kind: 'embedded', dataDir: join(dir, 'data') });
    await db.query(members);
    await db.close();
  }
  return env;
}
