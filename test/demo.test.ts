// `bulletin demo --no-serve` in a fresh directory: what it prints, the messages its SMTP capture
// saved, the archive it exported, and a second run that reuses the list and its subscribers.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { runCli } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

test(`bulletin demo --no-serve sends two bulletins into the capture, exports the archive, prints a real link (${DATABASE_KIND} database)`, async () => {
  const first = await runCli(['demo', '--no-serve', '--rate', '2000/s'], db);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /Demo list "demo" created .*: 300 subscribers \(300 made up just now\)/);
  assert.match(first.stdout, /Delivered 600 messages: each one is an \.eml file in (\S+)\/ /);
  const outbox = /in (\S+)\/ \(open one/.exec(first.stdout)?.[1] as string;
  const files = (await readdir(outbox)).filter((name) => name.endsWith('.eml'));
  assert.equal(files.length, 600);
  const raw = await readFile(join(outbox, files[0] as string));
  const message = await simpleParser(raw);
  assert.match(message.subject ?? '', /^\[ExampleNet-Bulletins\] (Mail service maintenance on Saturday night|Maintenance finished)$/);
  assert.match(raw.toString('latin1'), /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
  assert.match(raw.toString('latin1'), /^List-Unsubscribe: <http:\/\/127\.0\.0\.1:8080\/u\/[A-Za-z0-9_-]{40}>/m);

  const archive = /exported to (\S+)\/demo\//.exec(first.stdout)?.[1] as string;
  const index = await readFile(join(archive, 'demo', 'index.html'), 'utf8');
  assert.match(index, /The ExampleNet-Bulletins Archives/);
  const month = (await readdir(join(archive, 'demo'))).find((name) => /^\d{4}-[A-Z][a-z]+$/.test(name)) as string;
  const thread = await readFile(join(archive, 'demo', month, 'thread.html'), 'utf8');
  assert.match(thread, /Mail service maintenance on Saturday night<\/a>[^]*?<ul>\n<li><a href="\d{6}\.html">Maintenance finished/, 'the follow-up is threaded');

  const link = /Unsubscribe link of (\S+): (http:\/\/127\.0\.0\.1:8080\/u\/[A-Za-z0-9_-]{40})$/m.exec(first.stdout);
  assert.ok(link, first.stdout);
  const check = await runCli(['subscribers', 'unsubscribe-url', link[1] as string, '--list', 'demo'], db);
  assert.equal(check.stdout.trim(), link[2], "the printed link is that subscriber's real link");

  const second = await runCli(['demo', '--no-serve', '--rate', '2000/s'], db);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /Demo list "demo" ready .*: 300 subscribers\./);
  assert.match(second.stdout, /Archive: 4 bulletins exported/);
});
