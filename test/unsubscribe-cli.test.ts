// Unsubscribing as the command line sees it: `subscribers unsubscribe-url` gives the very link the
// rendered bulletin carries (List-Unsubscribe, List-Unsubscribe-Post and the footer); `bulletin serve`
// as a real process answers it, and stops cleanly on SIGTERM; the unsubscribe then shows with its
// time and source in `subscribers ls` and `list show`; `subscribers remove` also skips what a running
// send has not claimed yet; a busy port is a one-line error.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { insertBulletin } from '../src/store/bulletins.js';
import { enqueueDeliveries } from '../src/store/deliveries.js';
import { inspect, LIST_FLAGS, rows } from './helpers/app.js';
import { childEnv, runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const BIN = resolve(import.meta.dirname, '..', 'bin', 'bulletin.js');
let db: TestDatabase;
let options: { env: Record<string, string>; cwd: string };

before(async () => {
  db = await createTestDatabase();
  options = { env: { ...db.env, BULLETIN_SECRET: 'the-current-secret-of-this-installation-0123456789' }, cwd: db.cwd };
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], options);
  for (const address of ['jo@example.net', 'sam@example.net', 'kim@example.net']) await runOk(['subscribers', 'add', address, '--list', 'news'], options);
});
after(async () => {
  await db?.drop();
});

async function linkOf(address: string): Promise<string> {
  return ((await runOk(['subscribers', 'unsubscribe-url', address, '--list', 'news', '--json'], options)) as { url: string }).url;
}

describe(`unsubscribing from the command line's side (${DATABASE_KIND} database)`, () => {
  test("unsubscribe-url prints the link in the member's bulletins: both List-Unsubscribe headers and the footers", async () => {
    const printed = ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news'], options)) as string).trim();
    assert.match(printed, /^https:\/\/lists\.example\.net\/u\/[A-Za-z0-9_-]{40}$/);
    assert.equal(await linkOf('jo@example.net'), printed);
    assert.notEqual(await linkOf('sam@example.net'), printed);
    await writeFile(
      join(db.cwd, 'hello.md'),
      '---\nsubject: Maintenance on Sunday\n---\nHello {{default subscriber.name "customer"}}, the network rests on Sunday.\n',
    );
    const eml = (await runOk(['preview', join(db.cwd, 'hello.md'), '--list', 'news', '--to', 'jo@example.net', '--format', 'eml'], options)) as string;
    const header = eml.slice(0, eml.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
    assert.ok(header.includes(`List-Unsubscribe: <${printed}>, <mailto:`), 'the https URI comes first in List-Unsubscribe');
    assert.match(header, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
    const text = (await runOk(['preview', join(db.cwd, 'hello.md'), '--list', 'news', '--to', 'jo@example.net', '--format', 'text'], options)) as string;
    assert.ok(text.includes(`Unsubscribe: ${printed}`));
    const html = (await runOk(['preview', join(db.cwd, 'hello.md'), '--list', 'news', '--to', 'jo@example.net', '--format', 'html'], options)) as string;
    assert.ok(html.includes(`<a href="${printed}"`));

    const missing = await runCli(['subscribers', 'unsubscribe-url', 'nobody@example.net', '--list', 'news'], options);
    assert.equal(missing.code, 66);
    assert.equal(missing.stderr, 'bulletin: nobody@example.net is not on the list "news".\n');
  });

  test('`bulletin serve` runs as a process, answers one-click and stops cleanly on SIGTERM; ls and list show say who left how', async () => {
    // Asked before the server starts (the same works while it runs: test/embedded-server.test.ts).
    const joLink = await linkOf('jo@example.net');
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { cwd: db.cwd, env: childEnv(options.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    try {
      while (!/Serving on (http:\/\/127\.0\.0\.1:\d+)/.test(stdout)) {
        if (child.exitCode !== null) assert.fail(`serve exited ${child.exitCode}: ${stderr}`);
        await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      }
      const base = /Serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1] as string;
      assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
      const path = new URL(joLink).pathname;
      const oneClick = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(oneClick.status, 200);
      assert.match(await oneClick.text(), /^Unsubscribed: j\*\*\*@example\.net/);
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0);
      assert.match(stderr, /Stopped\.\n$/);
      await assert.rejects(fetch(`${base}/healthz`), 'the port is closed');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await runOk(['subscribers', 'remove', 'sam@example.net', '--list', 'news'], options);
    const table = (await runOk(['subscribers', 'ls', '--list', 'news', '--status', 'unsubscribed'], options)) as string;
    assert.match(table, /^jo@example\.net\s+unsubscribed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+one-click$/m);
    assert.match(table, /^sam@example\.net\s+unsubscribed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+command line$/m);
    const shown = (await runOk(['list', 'show', 'news'], options)) as string;
    assert.match(shown, /^ {2}unsubscribed by: 1 command line, 1 one-click; latest \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ via command line$/m);
    const json = (await runOk(['list', 'show', 'news', '--json'], options)) as { unsubscribes: { source: string; count: number; latest: string }[] };
    assert.deepEqual(
      json.unsubscribes.map((item) => [item.source, item.count]),
      [
        ['command line', 1],
        ['one-click', 1],
      ],
    );
  });

  test('`subscribers remove` skips the deliveries a running send has not claimed yet', async () => {
    const bulletinId = await inspect(db, async (app) => {
      const listId = (await app.db.query<{ id: number }>(`SELECT id FROM lists WHERE slug = 'news'`)).rows[0]?.id as number;
      const bulletin = await insertBulletin(app.db, {
        listId,
        subject: 'Running',
        source: '---\nsubject: Running\n---\nHi\n',
        sourceName: 'running.md',
        templates: {},
        verp: false,
        sentDate: new Date(),
        messageIdVersion: 2,
      });
      await enqueueDeliveries(app.db, bulletin.id, listId);
      return bulletin.id;
    });
    await runOk(['subscribers', 'remove', 'kim@example.net', '--list', 'news'], options);
    const states = await rows<{ email: string; state: string; last_reply: string | null }>(
      db,
      `SELECT s.email, d.state::text, d.last_reply FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.bulletin_id = $1 ORDER BY s.email`,
      [bulletinId],
    );
    assert.deepEqual(
      states.map((row) => [row.email, row.state]),
      [['kim@example.net', 'skipped']],
    );
    assert.match(states[0]?.last_reply ?? '', /unsubscribed \(command line\)/);
  });

  test('a port already in use is a one-line configuration error', async () => {
    const blocker = createServer();
    await new Promise<void>((resolveListen) => blocker.listen(0, '127.0.0.1', resolveListen));
    try {
      const port = (blocker.address() as { port: number }).port;
      const result = await runCli(['serve', '--port', String(port)], options);
      assert.equal(result.code, 78);
      assert.equal(result.stderr, `bulletin: Cannot listen on 127.0.0.1 port ${port}: the port is in use.\n`);
      const badPort = await runCli(['serve', '--port', '70000'], options);
      assert.equal(badPort.code, 2);
    } finally {
      await new Promise((resolveClose) => blocker.close(resolveClose));
    }
  });
});
