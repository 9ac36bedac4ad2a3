// `bulletin serve`'s rules beyond the happy path, over real HTTP: whom a link may put back on a list
// (only its own recent unsubscribe: never a bounce, a staff removal, an old unsubscribe or an
// erasure), which deliveries an unsubscribe skips, escaping, the per-client limit behind a local
// proxy, malformed and oversized bodies, the archive's static files, closing with idle clients, /healthz.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpRequest, Agent } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openApp, type App } from '../src/app/context.js';
import { insertBulletin } from '../src/store/bulletins.js';
import { enqueueDeliveries } from '../src/store/deliveries.js';
import { BODY_LIMIT, startWebServer, type RunningWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const SECRET = 'the-current-secret-of-this-installation-0123456789';
const ADDRESSES = ['staff@example.net', 'bounced@example.net', 'late@example.net', 'erased@example.net', 'sends@example.net', 'twice@example.net'];
let db: TestDatabase;
let app: App;
let server: RunningWebServer;
let archiveDir: string;
const tokens = new Map<string, string>();

before(async () => {
  db = await createTestDatabase();
  const options = { env: { ...db.env, BULLETIN_SECRET: SECRET }, cwd: db.cwd };
  await runOk(['list', 'create', 'news', ...LIST_FLAGS.map((flag) => (flag === 'ExampleNet-Bulletins' ? '<b>Tom & "Jerry"</b> News' : flag))], options);
  await runOk(['list', 'create', 'other', ...LIST_FLAGS], options);
  for (const address of ADDRESSES) {
    await runOk(['subscribers', 'add', address, '--list', 'news'], options);
    const { url } = (await runOk(['subscribers', 'unsubscribe-url', address, '--list', 'news', '--json'], options)) as { url: string };
    tokens.set(address, url.split('/u/')[1] as string);
  }
  await runOk(['subscribers', 'add', 'sends@example.net', '--list', 'other'], options);
  await runOk(['subscribers', 'remove', 'staff@example.net', '--list', 'news'], options);
  await runOk(['subscribers', 'remove', 'erased@example.net', '--list', 'news', '--purge'], options);
  archiveDir = join(db.cwd, 'archive');
  await mkdir(join(archiveDir, 'news'), { recursive: true });
  await writeFile(join(archiveDir, 'news', 'index.html'), '<!DOCTYPE html><title>News archive</title><h1>News archive</h1>\n');
  await writeFile(join(archiveDir, '.secret'), 'not for the web\n');
  await writeFile(join(archiveDir, 'news', 'feed.xml'), '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"></feed>\n');
  await writeFile(join(db.cwd, 'outside.txt'), 'outside the archive\n');
  app = await openApp(db.config({ BULLETIN_SECRET: SECRET }), { notice: () => undefined });
  await app.db.query(
    `UPDATE memberships SET status = 'bounced', status_source = 'bounce'
      WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'bounced@example.net')`,
  );
  server = await startWebServer(app, { host: '127.0.0.1', port: 0, archiveDir, postsPerMinute: 1000 });
});
after(async () => {
  await server?.close();
  await app?.close();
  await db?.drop();
});

async function membership(address: string): Promise<[string, string] | null> {
  const { rows } = await app.db.query<{ status: string; status_source: string }>(
    `SELECT m.status::text, m.status_source FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
       JOIN lists l ON l.id = m.list_id WHERE s.email = $1 AND l.slug = 'news'`,
    [address],
  );
  return rows[0] ? [rows[0].status, rows[0].status_source] : null;
}

const url = (token: string) => `${server.url}/u/${token}`;
const post = (token: string, body: string, headers: Record<string, string> = {}, base = server.url) =>
  fetch(`${base}/u/${token}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });

/** What a browser sends with the page's button on our own page. */
const SAME_ORIGIN = { 'sec-fetch-site': 'same-origin' };

function assertSecurityHeaders(response: Response): void {
  assert.match(response.headers.get('content-security-policy') ?? '', /^default-src 'none'; style-src 'self';.*frame-ancestors 'none'/);
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('x-frame-options'), 'DENY');
}

describe(`bulletin serve: rules and limits (${DATABASE_KIND} database)`, () => {
  test('a link does not undo a removal by the list staff: no button on the page, and a forged undo POST is refused', async () => {
    const token = tokens.get('staff@example.net') as string;
    const page = await (await fetch(url(token))).text();
    assert.match(page, /is not subscribed/);
    assert.doesNotMatch(page, /value="resubscribe"/);
    const undo = await post(token, 'action=resubscribe', SAME_ORIGIN);
    assert.equal(undo.status, 409);
    assert.match(await undo.text(), /cannot be subscribed from here/);
    assert.deepEqual(await membership('staff@example.net'), ['unsubscribed', 'command line']);
  });

  test('a bounced member stays bounced: one-click leaves the status alone and no undo makes them active', async () => {
    const token = tokens.get('bounced@example.net') as string;
    assert.equal((await post(token, 'List-Unsubscribe=One-Click')).status, 200);
    assert.deepEqual(await membership('bounced@example.net'), ['bounced', 'bounce']);
    assert.equal((await post(token, 'action=resubscribe', SAME_ORIGIN)).status, 409);
    assert.deepEqual(await membership('bounced@example.net'), ['bounced', 'bounce']);
  });

  test('the undo works for 7 days after the link unsubscribed, not after', async () => {
    const token = tokens.get('late@example.net') as string;
    assert.equal((await post(token, 'action=unsubscribe')).status, 200);
    assert.match(await (await fetch(url(token))).text(), /value="resubscribe"/, 'within the window the page offers the undo');
    await app.db.query(
      `UPDATE memberships SET status_changed_at = now() - interval '8 days'
        WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'late@example.net')`,
    );
    assert.doesNotMatch(await (await fetch(url(token))).text(), /value="resubscribe"/);
    assert.equal((await post(token, 'action=resubscribe', SAME_ORIGIN)).status, 409);
    assert.deepEqual(await membership('late@example.net'), ['unsubscribed', 'page']);
  });

  test("an erased person's link is the generic 404, whatever is posted", async () => {
    const token = tokens.get('erased@example.net') as string;
    const page = await fetch(url(token));
    assert.equal(page.status, 404);
    assert.match(await page.text(), /This link is not valid/);
    assert.equal((await post(token, 'action=resubscribe', SAME_ORIGIN)).status, 404);
    assert.equal((await post(token, 'List-Unsubscribe=One-Click')).status, 404);
    assert.equal(await membership('erased@example.net'), null);
  });

  test('an unsubscribe skips queued and deferred deliveries of this list only; sending, uncertain and other lists stay', async () => {
    const { rows: lists } = await app.db.query<{ slug: string; id: number }>('SELECT slug, id FROM lists');
    const listId = (slug: string) => lists.find((list) => list.slug === slug)?.id as number;
    const bulletin = async (slug: string, subject: string) => {
      const created = await insertBulletin(app.db, {
        listId: listId(slug),
        subject,
        source: `---\nsubject: ${subject}\n---\nHello\n`,
        sourceName: `${subject}.md`,
        templates: {},
        verp: false,
        sentDate: new Date(),
        messageIdVersion: 2,
      });
      await enqueueDeliveries(app.db, created.id, listId(slug));
      return created.id;
    };
    const ids = {
      queued: await bulletin('news', 'queued'),
      deferred: await bulletin('news', 'deferred'),
      sending: await bulletin('news', 'sending'),
      uncertain: await bulletin('news', 'uncertain'),
      other: await bulletin('other', 'other'),
    };
    for (const state of ['deferred', 'sending', 'uncertain'] as const) {
      await app.db.query(`UPDATE deliveries SET state = $2::delivery_state, owner = CASE WHEN $2 = 'sending' THEN 'w1' END WHERE bulletin_id = $1`, [
        ids[state],
        state,
      ]);
    }
    assert.equal((await post(tokens.get('sends@example.net') as string, 'List-Unsubscribe=One-Click')).status, 200);
    const { rows } = await app.db.query<{ bulletin_id: number; state: string }>(
      `SELECT d.bulletin_id, d.state::text FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = 'sends@example.net'`,
    );
    const stateOf = (id: number) => rows.find((row) => row.bulletin_id === id)?.state;
    assert.deepEqual(
      [stateOf(ids.queued), stateOf(ids.deferred), stateOf(ids.sending), stateOf(ids.uncertain), stateOf(ids.other)],
      ['skipped', 'skipped', 'sending', 'uncertain', 'queued'],
    );
    const { rows: others } = await app.db.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
        WHERE s.email <> 'sends@example.net' AND d.bulletin_id = $1 AND d.state = 'queued'`,
      [ids.queued],
    );
    assert.ok((others[0]?.count ?? 0) > 0, "the other members' deliveries are still queued");
  });

  test('list names and anything else from the database are escaped on the pages', async () => {
    const page = await (await fetch(url(tokens.get('twice@example.net') as string))).text();
    assert.match(page, /&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;\/b&gt; News/);
    assert.doesNotMatch(page, /<b>Tom/);
  });

  test('malformed or oversized multipart bodies are refused with a page carrying the security headers', async () => {
    const token = tokens.get('twice@example.net') as string;
    const malformed = await post(token, 'no parts here', { 'content-type': 'multipart/form-data; boundary=zzz' });
    assert.equal(malformed.status, 400);
    assertSecurityHeaders(malformed);
    const body = new FormData();
    body.append('List-Unsubscribe', 'One-Click');
    body.append('padding', 'x'.repeat(BODY_LIMIT));
    const huge = await fetch(url(token), { method: 'POST', body });
    assert.equal(huge.status, 413);
    assertSecurityHeaders(huge);
    assert.match(huge.headers.get('content-type') ?? '', /^text\/html/);
    const json = await post(token, '{"List-Unsubscribe":"One-Click"}', { 'content-type': 'application/json' });
    assert.equal(json.status, 400, 'JSON is not one of the RFC 8058 encodings');
    assert.deepEqual(await membership('twice@example.net'), ['active', 'command line']);
  });

  test('links the router cannot decode, or far too long, get the same generic 404 with the headers', async () => {
    const invalid = await (await fetch(url('A'.repeat(40)))).text();
    for (const path of ['/u/%E0%A4%A', `/u/${'A'.repeat(600)}`]) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      assertSecurityHeaders(response);
      assert.equal(await response.text(), invalid, path);
    }
  });

  test('the POST limit counts each client behind a local reverse proxy (X-Forwarded-For) separately', async () => {
    const limited = await startWebServer(app, { host: '127.0.0.1', port: 0, postsPerMinute: 2 });
    try {
      const token = tokens.get('twice@example.net') as string;
      const statuses = async (client: string, count: number) => {
        const seen: number[] = [];
        for (let index = 0; index < count; index++) seen.push((await post(token, 'x=1', { 'x-forwarded-for': client }, limited.url)).status);
        return seen;
      };
      assert.deepEqual(await statuses('198.51.100.7', 3), [400, 400, 429]);
      assert.deepEqual(await statuses('203.0.113.9', 2), [400, 400], 'another client is not held up');
      const refused = await post(token, 'x=1', { 'x-forwarded-for': '198.51.100.7' }, limited.url);
      assert.equal(refused.status, 429);
      assertSecurityHeaders(refused);
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
    } finally {
      await limited.close();
    }
  });

  test('the archive is served under /archive/ with index.html for folders, the headers, and nothing outside it', async () => {
    const index = await fetch(`${server.url}/archive/news/`);
    assert.equal(index.status, 200);
    assertSecurityHeaders(index);
    assert.match(await index.text(), /<h1>News archive<\/h1>/);
    // The feed is Atom, served as such (RFC 4287), not as generic XML.
    const feed = await fetch(`${server.url}/archive/news/feed.xml`);
    assert.equal(feed.status, 200);
    assert.equal(feed.headers.get('content-type'), 'application/atom+xml; charset=utf-8');
    assert.match(await feed.text(), /<feed xmlns="http:\/\/www\.w3\.org\/2005\/Atom">/);
    const folder = await fetch(`${server.url}/archive/news`, { redirect: 'manual' });
    assert.equal(folder.status, 301);
    assert.equal(folder.headers.get('location'), '/archive/news/');
    for (const path of ['/archive/.secret', '/archive/..%2foutside.txt', '/archive/%2e%2e/outside.txt', '/archive/nothing.html']) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      assertSecurityHeaders(response);
      assert.doesNotMatch(await response.text(), /not for the web|outside the archive/);
    }
  });

  test('close() returns although a client still holds an idle keep-alive connection', async () => {
    const closing = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    const agent = new Agent({ keepAlive: true });
    const status = await new Promise<number>((resolve, reject) => {
      httpRequest(`${closing.url}/healthz`, { agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 200);
    await closing.close();
    await assert.rejects(fetch(`${closing.url}/healthz`), 'no longer listening');
    agent.destroy();
  });

  // Last: it closes the database under the running server.
  test('/healthz says 503 when the database stops answering', async () => {
    assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: 'ok' });
    await app.close();
    const response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { status: 'unavailable', reason: 'database not reachable' });
    assertSecurityHeaders(response);
  });
});
