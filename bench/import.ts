// Benchmark of `subscribers import`: generates a CSV of N rows (~1% of them invalid) and imports it
// into a fresh database, printing rows/s, CPU seconds and peak RSS.
//   DATABASE_URL=postgres://… npx tsx bench/import.ts [--n 1000000]   (a server: the real target)
//   npx tsx bench/import.ts --n 100000                                  (the embedded database)
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../src/app/config.js';
import { withApp } from '../src/app/context.js';
import { importSubscribers } from '../src/app/import-subscribers.js';
import { createList } from '../src/app/lists.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '100000' } } });
const rows = Number(values.n);
const serverUrl = process.env.DATABASE_URL?.trim() || undefined;
const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-import-'));

async function generateCsv(path: string, count: number): Promise<void> {
  const out = createWriteStream(path);
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  await write('email,name,city,plan\n');
  const cities = ['Adelaide', 'Perth', 'Hobart', 'Darwin', 'Sydney, NSW'];
  for (let index = 0; index < count; index++) {
    const bad = index % 100 === 99; // ~1% invalid
    const email = bad ? `broken-${index}@@example` : `customer${index}@example${index % 97}.net`;
    await write(
      `${email},"Customer ${index}",${cities[index % cities.length]!.includes(',') ? '"Sydney, NSW"' : cities[index % cities.length]},plan${index % 7}\n`,
    );
  }
  out.end();
  await once(out, 'finish');
}

async function freshServerDatabase(url: string): Promise<string> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS bulletin_bench WITH (FORCE)');
  await admin.query('CREATE DATABASE bulletin_bench');
  await admin.end();
  const bench = new URL(url);
  bench.pathname = '/bulletin_bench';
  return bench.href;
}

try {
  const csv = join(dir, 'subscribers.csv');
  await generateCsv(csv, rows);
  const size = (await stat(csv)).size;
  const env = serverUrl ? { DATABASE_URL: await freshServerDatabase(serverUrl) } : { BULLETIN_DATA_DIR: join(dir, 'data') };
  const config = loadConfig({ env, cwd: dir });
  if (serverUrl)
    await withApp(config, { notice: () => undefined, skipMigrationCheck: true }, async (app) => {
      const { applyMigrations } = await import('../src/store/migrations.js');
      await applyMigrations(app.db);
    });
  await withApp(config, { notice: () => undefined }, async (app) => {
    await createList(app, 'bench', {
      name: 'Bench',
      address: 'bench@lists.example.net',
      from: 'Bench <noreply@example.net>',
      baseUrl: 'https://lists.example.net',
    });
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    const rssBefore = process.memoryUsage().rss;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const report = await importSubscribers(app, { list: 'bench', file: csv });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
    console.log(`database:        ${app.db.description}`);
    console.log(
      `rows:            ${rows.toLocaleString('en-US')} (${(size / 1024 / 1024).toFixed(1)} MB CSV), ${report.invalid} invalid, ${report.membershipsAdded.toLocaleString('en-US')} subscribed`,
    );
    console.log(`time:            ${seconds.toFixed(2)} s`);
    console.log(`throughput:      ${Math.round(rows / seconds).toLocaleString('en-US')} rows/s`);
    console.log(
      `CPU (this proc): ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, system ${(cpu.system / 1e6).toFixed(2)})`,
    );
    console.log(`RSS:             ${mb(rssBefore)} before, ${mb(peakRss)} peak during the import`);
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
