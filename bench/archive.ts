// Benchmark of `bulletin archive export`: N bulletins (default 10,000) over about two years, with
// follow-ups, exported once from scratch and once again (nothing changed). Prints seconds, files,
// bulletins per second and the export process's CPU and peak RSS (GNU time). Aim: 10,000 in < 10 s.
// The copies keep the archive rendering their send stored, as real sends do; `--backfill` also
// times an export that must render every body first (bulletins sent before renderings were kept).
//   DATABASE_URL=postgres://… npx tsx bench/archive.ts [--n 10000]
//   npx tsx bench/archive.ts --n 2000                       (embedded database)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openDatabase } from '../src/store/database.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, backfill: { type: 'boolean', default: false } } });
const n = Number(values.n);

async function bulletin(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpu: number; rssMb: number; stdout: string }> {
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', 'TIME %U %S %M', process.execPath, 'bin/bulletin.js', ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  const match = /TIME ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  if (code !== 0 || !match) throw new Error(`bulletin ${args.join(' ')} exited ${code}: ${stderr}`);
  return { seconds: (performance.now() - started) / 1000, cpu: Number(match[1]) + Number(match[2]), rssMb: Number(match[3]) / 1024, stdout };
}

const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-archive-'));
try {
  const serverUrl = process.env.DATABASE_URL?.trim();
  let env: NodeJS.ProcessEnv;
  if (serverUrl) {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query('DROP DATABASE IF EXISTS bulletin_bench_archive WITH (FORCE)');
    await admin.query('CREATE DATABASE bulletin_bench_archive');
    await admin.end();
    const url = new URL(serverUrl);
    url.pathname = '/bulletin_bench_archive';
    env = { ...process.env, DATABASE_URL: url.href };
    await bulletin(['db', 'migrate'], env);
  } else {
    // Unset, not blank: a blank DATABASE_URL is a configuration error.
    env = { ...process.env, BULLETIN_DATA_DIR: join(dir, 'data') };
    delete env.DATABASE_URL;
  }
  await bulletin(
    [
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
    ],
    env,
  );
  await bulletin(['subscribers', 'add', 'reader@example.net', '--list', 'bench'], env);
  const file = join(dir, 'seed.md');
  await writeFile(
    file,
    `---\nsubject: Seed bulletin\n---\n${'A paragraph of a service notice, long enough to look like one. '.repeat(12)}\n\n- one point\n- another point\n\n${'Closing words of the notice. '.repeat(6)}\n`,
  );
  await bulletin(['send', file, '--list', 'bench', '--outbox', join(dir, 'outbox'), '--yes', '--quiet'], env);
  // The other bulletins are copies of the first one's row (a benchmark fixture, not product code):
  // a send each would dominate the run. Every fifth one follows up the one before it.
  const copies = `INSERT INTO bulletins (list_id, subject, source, source_name, templates, verp, sent_date, archive_html, archive_text)
    SELECT list_id, 'Bulletin ' || g,
           replace(source, 'subject: Seed bulletin', 'subject: Bulletin ' || g || CASE WHEN g % 5 = 0 THEN E'\\nin-reply-to: ' || (g - 1) || '.md' ELSE '' END),
           g || '.md', templates, verp, timestamptz '2025-01-01' + g * interval '100 minutes', archive_html, archive_text
      FROM bulletins, generate_series(2, ${n}) g WHERE id = 1`;
  if (serverUrl) {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    await client.query(copies);
    await client.end();
  } else {
    const db = await openDatabase({ kind: 'embedded', dataDir: join(dir, 'data') });
    await db.query(copies);
    await db.close();
  }
  const out = join(dir, 'site');
  const first = await bulletin(['archive', 'export', '--list', 'bench', '--out', out, '--json'], env);
  const again = await bulletin(['archive', 'export', '--list', 'bench', '--out', out, '--json'], env);
  const files = (await readdir(out, { recursive: true })).length;
  const summary = JSON.parse(first.stdout) as { bulletins: number; months: number; written: number };
  const second = JSON.parse(again.stdout) as { written: number; unchanged: number };
  console.log(
    `bulletins: ${summary.bulletins.toLocaleString('en-US')} in ${summary.months} months, database: ${serverUrl ? 'PostgreSQL server' : 'embedded'}; ${files.toLocaleString('en-US')} files and directories`,
  );
  console.log(
    `first export:  ${first.seconds.toFixed(1)} s (${Math.round(summary.bulletins / first.seconds).toLocaleString('en-US')} bulletins/s), CPU ${first.cpu.toFixed(1)} s, peak RSS ${first.rssMb.toFixed(0)} MB, ${summary.written.toLocaleString('en-US')} files written`,
  );
  console.log(
    `second export: ${again.seconds.toFixed(1)} s, CPU ${again.cpu.toFixed(1)} s, peak RSS ${again.rssMb.toFixed(0)} MB, ${second.written} written, ${second.unchanged.toLocaleString('en-US')} unchanged`,
  );
  if (values.backfill) {
    const forget = 'UPDATE bulletins SET archive_html = NULL, archive_text = NULL';
    if (serverUrl) {
      const client = new pg.Client({ connectionString: env.DATABASE_URL });
      await client.connect();
      await client.query(forget);
      await client.end();
    } else {
      const db = await openDatabase({ kind: 'embedded', dataDir: join(dir, 'data') });
      await db.query(forget);
      await db.close();
    }
    const backfill = await bulletin(['archive', 'export', '--list', 'bench', '--out', out, '--json'], env);
    console.log(
      `backfill export (every body rendered first): ${backfill.seconds.toFixed(1)} s, CPU ${backfill.cpu.toFixed(1)} s, peak RSS ${backfill.rssMb.toFixed(0)} MB`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
