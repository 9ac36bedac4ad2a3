// `bulletin preview`: one subscriber's copy, as text, HTML or a whole message; mistakes caught first.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
  await runOk(['subscribers', 'add', 'kim@example.net', '--list', 'news', '--name', 'Kim <b>K</b>', '--attr', 'city=Perth'], db);
});
after(async () => {
  await db?.drop();
});

async function source(name: string, text: string): Promise<string> {
  const path = join(db.cwd, name);
  await writeFile(path, text);
  return path;
}

test('text for a sample subscriber, HTML for a real one (escaped), a whole message that parses', async () => {
  const file = await source('ok.md', '---\nsubject: Storm <warning>\nlist: news\n---\nHello {{subscriber.name}} in {{default subscriber.attributes.city "your town"}}.\n');
  const text = (await runOk(['preview', file], db)) as string;
  assert.match(text, /Hello Sample Subscriber in your town\./);
  const html = (await runOk(['preview', file, '--to', 'kim@example.net', '--format', 'html'], db)) as string;
  assert.match(html, /Hello Kim &lt;b&gt;K&lt;\/b&gt; in Perth\./);
  assert.doesNotMatch(html, /<b>K<\/b>/);
  const out = join(db.cwd, 'kim.eml');
  await runOk(['preview', file, '--to', 'kim@example.net', '--format', 'eml', '--out', out], db);
  const parsed = await simpleParser(await (await import('node:fs/promises')).readFile(out));
  assert.equal(parsed.subject, '[ExampleNet-Bulletins] Storm <warning>');
  assert.match(parsed.text ?? '', /Hello Kim <b>K<\/b> in Perth/);
});

test('a misspelt variable is an error naming file, line and column, before anything exists', async () => {
  const file = await source('typo.md', '---\nsubject: Typo\n---\nHello\n{{subscriber.nmae}}\n');
  const result = await runCli(['preview', file, '--list', 'news'], db);
  assert.equal(result.code, 65);
  assert.match(result.stderr, /typo\.md:5:\d+/);
  assert.match(result.stderr, /subscriber\.nmae/);
  const noSubject = await source('nosubject.md', '---\nlist: news\n---\nHello\n');
  const missing = await runCli(['preview', noSubject], db);
  assert.equal(missing.code, 65);
  assert.match(missing.stderr, /subject/);
  const fine = await source('fine.md', '---\nsubject: Fine\n---\nHello\n');
  const unknown = await runCli(['preview', fine, '--list', 'news', '--to', 'stranger@example.net'], db);
  assert.equal(unknown.code, 66);
});
