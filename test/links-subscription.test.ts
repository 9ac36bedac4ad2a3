// A re-subscription puts older links out of date, as the command line sees it: the link
// `subscribers unsubscribe-url` prints changes, and the bulletins sent afterwards (through the claim
// of a real send, to an outbox) and `preview --to` carry the new one, while the old one is refused.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LIST_FLAGS } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let options: { env: Record<string, string>; cwd: string };

before(async () => {
  db = await createTestDatabase();
  options = { env: { ...db.env, BULLETIN_SECRET: 'the-current-secret-of-this-installation-0123456789' }, cwd: db.cwd };
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], options);
  await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news'], options);
});
after(async () => {
  await db?.drop();
});

const linkOf = async () => ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], options)) as { url: string }).url;
const unfolded = (eml: string) => eml.slice(0, eml.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');

test(`after a re-subscription the link printed, previewed and sent is the new one (${DATABASE_KIND} database)`, async () => {
  const first = await linkOf();
  await runOk(['subscribers', 'remove', 'jo@example.net', '--list', 'news'], options);
  await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news', '--resubscribe'], options);
  const second = await linkOf();
  assert.notEqual(second, first, 'the link names the new subscription');

  await writeFile(join(db.cwd, 'hello.md'), '---\nsubject: Maintenance\n---\nThe network rests on Sunday.\n');
  const preview = (await runOk(['preview', join(db.cwd, 'hello.md'), '--list', 'news', '--to', 'jo@example.net', '--format', 'eml'], options)) as string;
  assert.ok(unfolded(preview).includes(`List-Unsubscribe: <${second}>, <mailto:`), 'preview --to');

  const outbox = join(db.cwd, 'outbox');
  await runOk(['send', join(db.cwd, 'hello.md'), '--list', 'news', '--yes', '--outbox', outbox, '--json'], options);
  const files = (await readdir(outbox)).filter((name) => name.endsWith('.eml'));
  assert.equal(files.length, 1);
  const sent = unfolded(await readFile(join(outbox, files[0]!), 'utf8'));
  assert.ok(sent.includes(`List-Unsubscribe: <${second}>, <mailto:`), 'the sent bulletin');
  assert.ok(!sent.includes(first.split('/u/')[1]!), 'not the old token');
});
