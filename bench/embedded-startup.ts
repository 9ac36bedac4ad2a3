// Start-up of the embedded default, as a user meets it: `bulletin --help` (the process and the
// sources, no database) as the baseline in the same run, the first command in an empty folder
// (creating the cluster: initdb, start, migrations), and later ones (start, presence, stop).
//   npx tsx bench/embedded-startup.ts [--runs 5]
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
const env = { ...process.env };
delete env.DATABASE_URL;
delete env.BULLETIN_DATA_DIR;

function timed(args: string[], cwd: string): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`bulletin ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return (performance.now() - started) / 1000;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const help: number[] = [];
const first: number[] = [];
const later: number[] = [];
for (let run = 0; run < runs; run++) {
  const cwd = await mkdtemp(join(tmpdir(), 'bulletin-bench-start-'));
  await chmod(cwd, 0o755);
  try {
    help.push(timed(['--help'], cwd));
    first.push(timed(['list', 'ls'], cwd));
    later.push(timed(['list', 'ls'], cwd));
    later.push(timed(['list', 'ls'], cwd));
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}
const f = (s: number) => `${s.toFixed(2)} s`;
console.log(`runs: ${runs}, load average at the end: ${loadavg()[0]!.toFixed(1)}`);
console.log(`bulletin --help (no database):           median ${f(median(help))}  [${help.map(f).join(', ')}]`);
console.log(`first command in an empty folder:        median ${f(median(first))}  (+${f(median(first) - median(help))} over --help)`);
console.log(`later commands (server started per run): median ${f(median(later))}  (+${f(median(later) - median(help))} over --help)`);
