// Peak memory of sending the largest bulletin bulletin allows, against a small one in the same run:
// a bulletin file of MAX_BULLETIN_BYTES with MAX_TEMPLATE_TAGS tags (half of them personal), to
// subscribers whose names are as long as a field may be, through an SMTP sink on 127.0.0.1.
//   npx tsx bench/memory.ts [--n 300] [--connections 5]          (embedded database)
//   DATABASE_URL=postgres://… npx tsx bench/memory.ts             (PostgreSQL server)
// Prints wall time, CPU and peak RSS (GNU time) of each `bulletin send`; the goal is under 400 MB.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_FIELD_LENGTH } from '../src/domain/subscriber.js';
import { formatBytes, MAX_BULLETIN_BYTES, MAX_TEMPLATE_TAGS } from '../src/render/limits.js';
import { dropBenchDatabase, measure, prepareDatabase, startSink } from './harness.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '300' },
    connections: { type: 'string', default: '5' },
    sink: { type: 'string', default: existsSync('/usr/sbin/smtp-sink') ? 'postfix' : 'node' },
  },
});
const n = Number(values.n);

/** Paragraphs with two personal tags each until the tag limit, then plain prose, up to the size limit. */
function largestBulletin(): string {
  const head = '---\nsubject: The largest bulletin bulletin sends\nsummary: As large as a bulletin may be.\n---\n';
  const personal =
    'Dear {{default subscriber.name "customer"}}, the mail cluster was moved to **new hardware**; see [the status page](https://status.example.net/) about {{subscriber.email}}.\n\n';
  const plain = 'The move has been delivered in full, and every message queued during it has been delivered since, in order.\n\n';
  let text = head;
  for (let tags = 0; tags + 3 <= MAX_TEMPLATE_TAGS; tags += 3)
    text += personal.replace('{{subscriber.email}}', tags % 2 === 0 ? '{{subscriber.email}}' : '{{list.name}}');
  while (Buffer.byteLength(text) + plain.length <= MAX_BULLETIN_BYTES) text += plain;
  return text;
}

const SMALL = '---\nsubject: A small bulletin\n---\nDear {{default subscriber.name "customer"}},\n\nThe mail cluster was moved to new hardware.\n';

const dir = await mkdtemp(join(tmpdir(), 'bulletin-bench-memory-'));
try {
  const env = await prepareDatabase(dir, { n, name: `repeat('N', ${MAX_FIELD_LENGTH})` });
  const run = async (name: string, text: string) => {
    const file = join(dir, `${name}.md`);
    await writeFile(file, text);
    const sink = await startSink(values.sink);
    const measured = await measure(
      [
        process.execPath,
        'bin/bulletin.js',
        'send',
        file,
        '--list',
        'bench',
        '--yes',
        '--json',
        '--quiet',
        '--rate',
        '1000000/s',
        '--connections',
        values.connections,
      ],
      { ...env, SMTP_URL: `smtp://127.0.0.1:${sink.port}?tls=off` },
    );
    const counts = await sink.stop();
    const summary = JSON.parse(measured.output) as { counts: Record<string, number> };
    console.log(
      `${name.padEnd(8)} ${formatBytes(Buffer.byteLength(text)).padStart(9)}  ${String(counts.messages).padStart(5)} delivered (${summary.counts.sent} sent)  ${measured.seconds.toFixed(1).padStart(6)} s  CPU ${measured.cpu.toFixed(1).padStart(6)} s  peak RSS ${measured.maxRssMb.toFixed(0).padStart(4)} MB`,
    );
  };
  console.log(
    `recipients: ${n}, names of ${MAX_FIELD_LENGTH} characters, connections: ${values.connections}, database: ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded'}, sink: ${values.sink}`,
  );
  await run('small', SMALL);
  await run('largest', largestBulletin());
} finally {
  await rm(dir, { recursive: true, force: true });
  await dropBenchDatabase();
}
