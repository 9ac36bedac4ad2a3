// How long bulletin takes to refuse the inputs of the audit that once took seconds, minutes or
// gigabytes (5,000 nested {{#if}}: 10.7 s; 100,000: over two minutes; a 3,000-level list: 4 GB),
// against compiling an ordinary bulletin in the same run. Prints milliseconds and the refusal.
//   npx tsx bench/limits.ts
import { compileBulletin, parseBulletinSource } from '../src/render/index.js';
import type { MailingList } from '../src/domain/list.js';

const list: MailingList = {
  id: 1,
  slug: 'news',
  name: 'News',
  description: '',
  address: 'news@lists.example.net',
  from: { name: 'News', address: 'news@example.net' },
  baseUrl: 'https://lists.example.net',
  subjectPrefix: null,
  bounceAddress: null,
  templatesDir: null,
  createdAt: new Date(0),
  updatedAt: new Date(0),
};
const file = (body: string, front = 'subject: x') => `---\n${front}\n---\n${body}\n`;
const cases: [string, string][] = [
  ['ordinary bulletin (baseline, compiles)', file('Dear {{default subscriber.name "customer"}},\n\n' + 'Mail was slow this week. '.repeat(400))],
  ['5,000 nested {{#if}}', file(`${'{{#if list.name}}'.repeat(5000)}x${'{{/if}}'.repeat(5000)}`)],
  ['40,000 nested {{#if}}', file(`${'{{#if list.name}}'.repeat(40000)}x${'{{/if}}'.repeat(40000)}`)],
  ['100,000 nested {{#if}} (over 1 MiB)', file(`${'{{#if list.name}}'.repeat(100000)}x${'{{/if}}'.repeat(100000)}`)],
  ['100,000 ">"', file('>'.repeat(100000))],
  ['700-level nested list', file(Array.from({ length: 700 }, (_, i) => `${'  '.repeat(i)}- x`).join('\n'))],
  ['25,000 nested **strong**', file(`${'**a '.repeat(25000)}x${' a**'.repeat(25000)}`)],
  ['100,000 nested <div>', file('<div>'.repeat(100000))],
  [
    'YAML alias bomb',
    `---\nsubject: x\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n---\nx\n`,
  ],
];
for (const [name, text] of cases) {
  const started = performance.now();
  let outcome = 'compiled';
  try {
    await compileBulletin({
      source: parseBulletinSource(text, 'b.md'),
      list,
      bulletinKey: '1',
      signing: { secret: 'bench-secret-0123456789abcdef0123', installationId: '00000000-0000-4000-8000-000000000001' },
    });
  } catch (error) {
    outcome = (error as Error).message.split('\n')[0]!.slice(0, 90);
  }
  console.log(`${name.padEnd(40)} ${(performance.now() - started).toFixed(1).padStart(8)} ms  ${outcome}`);
}
