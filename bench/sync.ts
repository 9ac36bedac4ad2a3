// Benchmark of `subscribers sync`: a list of N members (name and a `plan` attribute) synced against
// a file with 1% changes (0.5% missing → removed, 0.25% renamed or on another plan, 0.25% new),
// beside the baseline of the same file's `subscribers import --dry-run` in the same run (reading
// and merging the file without the removals). Prints wall time, CPU and peak RSS of each.
//   DATABASE_URL=postgres://… npx tsx bench/sync.ts [--n 1000000]   (a server: the real target)
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { dropBenchDatabase, measure, prepareDatabase } from './harness.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '1000000' } } });
const n = Number(values.n);
if (!process.env.DATABASE_URL?.trim()) throw new Error('bench/sync.ts needs DATABASE_URL (a PostgreSQL server)');
const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-sync-'));

const plan = (g: number) => `plan${g % 7}`;

async function writeFileWithChanges(path: string): Promise<{ removed: number; changed: number; added: number }> {
  const out = createWriteStream(path);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  await write('email,name,plan\n');
  let removed = 0;
  let changed = 0;
  let added = 0;
  for (let g = 1; g <= n; g++) {
    const email = `customer${g}@example${g % 97}.net`;
    if (g % 200 === 0) {
      removed++; // 0.5%: missing from the file
      continue;
    }
    if (g % 400 === 1) {
      changed++; // 0.25%: a new name and plan
      await write(`${email},Customer ${g} Jr,${plan(g + 1)}\n`);
    } else {
      await write(`${email},Customer ${g},${plan(g)}\n`);
    }
    if (g % 400 === 2) {
      added++; // 0.25%: new people
      await write(`newcomer${g}@example.org,Newcomer ${g},pro\n`);
    }
  }
  out.end();
  await once(out, 'finish');
  return { removed, changed, added };
}

try {
  const env = await prepareDatabase(dir, { n, name: `'Customer ' || g` });
  const client = new pg.Client({ connectionString: env.DATABASE_URL });
  await client.connect();
  await client.query(`UPDATE subscribers SET attributes = jsonb_build_object('plan', 'plan' || (id % 7))`);
  await client.query('VACUUM ANALYZE');
  await client.end();
  const file = join(dir, 'customers.csv');
  const changes = await writeFileWithChanges(file);
  const bulletin = (args: string[]) => measure([process.execPath, 'bin/bulletin.js', ...args], env);
  const baseline = await bulletin(['subscribers', 'import', file, '--list', 'bench', '--dry-run', '--json']);
  const sync = await bulletin(['subscribers', 'sync', file, '--list', 'bench', '--json']);
  const report = JSON.parse(sync.output) as { added: number; updated: number; removed: number; activeBefore: number; activeAfter: number };
  console.log(`members:  ${n.toLocaleString('en-US')}; file: ${changes.removed} missing, ${changes.changed} changed, ${changes.added} new`);
  console.log(`sync:     ${report.added} added, ${report.updated} updated, ${report.removed} removed (${report.activeBefore} → ${report.activeAfter} active)`);
  for (const [label, run] of [
    ['import --dry-run (baseline)', baseline],
    ['sync', sync],
  ] as const) {
    console.log(`${label.padEnd(28)} ${run.seconds.toFixed(1)} s wall, ${run.cpu.toFixed(1)} s CPU, ${run.maxRssMb.toFixed(0)} MB peak RSS`);
  }
} finally {
  await dropBenchDatabase();
  await rm(dir, { recursive: true, force: true });
}
