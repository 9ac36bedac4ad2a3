// `bulletin serve` and the ways out, over real HTTP: a valid one-click is never rate-limited (300 from
// one address within a minute all unsubscribe) while forged ones are; links of an earlier
// subscription are out of date and change nothing; resubscribe only from our own origin; the help
// page List-Help points at; the request time limits the README states (15 s for headers and body).
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { openApp, type App } from '../src/app/context.js';
import { createList } from '../src/app/lists.js';
import { installationKeys } from '../src/app/secret.js';
import { addSubscriber } from '../src/app/subscribers.js';
import { signToken, signUncountedToken, type SigningKey } from '../src/domain/token.js';
import { REQUEST_TIMEOUT_MS, startWebServer, type RunningWebServer } from '../src/web/server.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const SECRET = 'the-current-secret-of-this-installation-0123456789';
const CROWD = 300;
let db: TestDatabase;
let app: App;
let server: RunningWebServer;
let listId: number;
let signing: SigningKey;

async function idOf(email: string): Promise<number> {
  const { rows } = await app.db.query<{ id: number }>('SELECT id FROM subscribers WHERE email = $1', [email]);
  return Number(rows[0]!.id);
}

async function membership(email: string): Promise<{ status: string; source: string; resubscriptions: number }> {
  const { rows } = await app.db.query<{ status: string; source: string; resubscriptions: number }>(
    `SELECT m.status::text, m.status_source AS source, m.resubscriptions FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE s.email = $1 AND m.list_id = $2`,
    [email, listId],
  );
  return rows[0]!;
}

async function tokenOf(email: string, subscription = 0): Promise<string> {
  return signToken('unsubscribe', { listId, subscriberId: await idOf(email), subscription }, signing);
}

const oneClick = (token: string, headers: Record<string, string> = {}, base = server.url) =>
  fetch(`${base}/u/${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: 'List-Unsubscribe=One-Click',
  });
const button = (token: string, action: string, headers: Record<string, string>) =>
  fetch(`${server.url}/u/${token}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: `action=${action}` });

before(async () => {
  db = await createTestDatabase();
  app = await openApp(db.config({ BULLETIN_SECRET: SECRET }), { notice: () => undefined });
  const list = await createList(app, 'news', {
    name: 'ExampleNet-Bulletins',
    description: 'Outages and maintenance of the ExampleNet network.',
    address: 'bulletins@lists.example.net',
    from: 'ExampleNet NOC <noc@example.net>',
    baseUrl: 'https://lists.example.net',
  });
  listId = list.id;
  await app.db.query(
    `WITH people AS (
       INSERT INTO subscribers (email) SELECT 'crowd' || n || '@example.org' FROM generate_series(1, $1::int) AS n RETURNING id
     )
     INSERT INTO memberships (list_id, subscriber_id, status, subscribed_source, status_source)
     SELECT $2, id, 'active', 'import', 'import' FROM people`,
    [CROWD, listId],
  );
  for (const email of ['again@example.net', 'legacy@example.net', 'origin@example.net', 'crossclick@example.net'])
    await addSubscriber(app, 'news', { address: email });
  signing = (await installationKeys(app)).signing;
  // The default limit: 30 POSTs a minute per client.
  server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
});
after(async () => {
  await server?.close();
  await app?.close();
  await db?.drop();
});

describe(`bulletin serve: every way out (${DATABASE_KIND} database)`, () => {
  test(`${CROWD} valid one-click POSTs from one address within a minute all unsubscribe; ${CROWD} forged ones are limited`, async () => {
    // A server of its own (the default limit, 30 a minute), so the flood holds up no other test.
    const flooded = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const started = Date.now();
      const statuses: number[] = [];
      for (let n = 1; n <= CROWD; n++) statuses.push((await oneClick(await tokenOf(`crowd${n}@example.org`), {}, flooded.url)).status);
      assert.ok(Date.now() - started < 60_000, 'within one minute');
      assert.deepEqual([...new Set(statuses)], [200], 'no valid one-click is refused');
      const { rows } = await app.db.query<{ status: string; source: string; count: number }>(
        `SELECT m.status::text, m.status_source AS source, count(*)::int AS count FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
          WHERE m.list_id = $1 AND s.email LIKE 'crowd%' GROUP BY 1, 2`,
        [listId],
      );
      assert.deepEqual(rows, [{ status: 'unsubscribed', source: 'one-click', count: CROWD }]);

      const forged: number[] = [];
      for (let n = 0; n < CROWD; n++) {
        const token = Buffer.from(`forged-${n}`.padEnd(30, '!')).toString('base64url');
        forged.push((await oneClick(token, {}, flooded.url)).status);
      }
      assert.deepEqual(forged.slice(0, 30), new Array(30).fill(404), 'the first 30 forged ones are told the link is not valid');
      assert.deepEqual([...new Set(forged.slice(30))], [429], 'the rest are limited');
      assert.equal(
        (await oneClick(await tokenOf('again@example.net'), {}, flooded.url)).status,
        200,
        'a valid one-click still goes through while forged ones are limited',
      );
      assert.equal((await membership('again@example.net')).status, 'unsubscribed');
    } finally {
      await flooded.close();
    }
  });

  test('after a re-subscription the old link is out of date and changes nothing; the newest link works', async () => {
    const old = await tokenOf('again@example.net');
    await addSubscriber(app, 'news', { address: 'again@example.net', resubscribe: true });
    assert.deepEqual(await membership('again@example.net'), { status: 'active', source: 'command line', resubscriptions: 1 });
    const page = await fetch(`${server.url}/u/${old}`);
    assert.equal(page.status, 410);
    assert.match(await page.text(), /This link is out of date/);
    const click = await oneClick(old);
    assert.equal(click.status, 410);
    assert.match(await click.text(), /out of date/);
    assert.equal((await button(old, 'unsubscribe', { 'sec-fetch-site': 'same-origin' })).status, 410);
    assert.equal((await membership('again@example.net')).status, 'active', 'the old link changed nothing');
    // The link `subscribers unsubscribe-url` prints and new bulletins carry names the new subscription.
    const current = await tokenOf('again@example.net', 1);
    assert.match(await (await fetch(`${server.url}/u/${current}`)).text(), /Unsubscribe a\*\*\*@example\.net\?/);
    assert.equal((await oneClick(current)).status, 200);
    assert.equal((await membership('again@example.net')).status, 'unsubscribed');
  });

  test('a link of a bulletin sent before links named the subscription works until the next re-subscription', async () => {
    const id = await idOf('legacy@example.net');
    const before = signUncountedToken('unsubscribe', { listId, subscriberId: id }, signing);
    assert.match(await (await fetch(`${server.url}/u/${before}`)).text(), /Unsubscribe l\*\*\*@example\.net\?/);
    assert.equal((await oneClick(before)).status, 200);
    assert.equal((await membership('legacy@example.net')).status, 'unsubscribed');
    await addSubscriber(app, 'news', { address: 'legacy@example.net', resubscribe: true });
    assert.equal((await oneClick(before)).status, 410);
    assert.equal((await membership('legacy@example.net')).status, 'active');
  });

  test('resubscribe only from our own origin; one-click stays cross-origin (RFC 8058)', async () => {
    const token = await tokenOf('origin@example.net');
    assert.equal((await button(token, 'unsubscribe', {})).status, 200, 'leaving from the page needs no origin');
    assert.equal((await membership('origin@example.net')).status, 'unsubscribed');
    for (const headers of <Record<string, string>[]>[
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: 'https://lists.example.net' },
      {},
    ]) {
      const refused = await button(token, 'resubscribe', headers);
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.match(await refused.text(), /only from this site/);
      assert.equal((await membership('origin@example.net')).status, 'unsubscribed', JSON.stringify(headers));
    }
    assert.equal((await button(token, 'resubscribe', { origin: server.url })).status, 200, 'Origin: this server');
    assert.equal((await membership('origin@example.net')).status, 'active');
    assert.equal((await button(token, 'unsubscribe', {})).status, 200);
    assert.equal((await button(token, 'resubscribe', { origin: 'https://lists.example.net' })).status, 200, "Origin: the list's public base URL");
    assert.equal((await button(token, 'unsubscribe', {})).status, 200);
    assert.equal((await button(token, 'resubscribe', { 'sec-fetch-site': 'same-origin' })).status, 200, 'Sec-Fetch-Site: same-origin');
    assert.deepEqual(await membership('origin@example.net'), { status: 'active', source: 'page', resubscriptions: 0 }, 'an undo is no re-subscription');

    const cross = await oneClick(await tokenOf('crossclick@example.net'), { origin: 'https://mail.provider.example', 'sec-fetch-site': 'cross-site' });
    assert.equal(cross.status, 200);
    assert.equal((await membership('crossclick@example.net')).status, 'unsubscribed');
  });

  test('the help page says what the list is, how to leave by link or mail, and whom to write to', async () => {
    const response = await fetch(`${server.url}/help/news`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const page = await response.text();
    assert.match(page, /<h1>About ExampleNet-Bulletins<\/h1>/);
    assert.match(page, /Outages and maintenance of the ExampleNet network\./);
    assert.match(page, /unsubscribe link at the end of any bulletin/);
    assert.match(page, /href="mailto:bulletins-unsubscribe@lists\.example\.net"/);
    assert.match(page, /Write to <a href="mailto:noc@example\.net\?subject=help">ExampleNet NOC &lt;noc@example\.net&gt;<\/a>/);
    assert.match(page, /href="https:\/\/lists\.example\.net\/archive\/news\/"/);
    assert.doesNotMatch(page, /crowd1@example\.org/);
    for (const path of ['/help/nope', '/help/NEWS', '/help/..%2f']) assert.equal((await fetch(`${server.url}${path}`)).status, 404, path);
  });

  test(`a request whose headers or body do not arrive within ${REQUEST_TIMEOUT_MS / 1000} s is cut off`, async () => {
    const port = new URL(server.url).port;
    const cutOff = (start: (socket: Socket) => void) =>
      new Promise<{ seconds: number; answer: string }>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1');
        const began = Date.now();
        let answer = '';
        socket.on('connect', () => start(socket));
        socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => resolve({ seconds: (Date.now() - began) / 1000, answer }));
        // A trickle: one byte every 2 s keeps the connection busy but never finishes the request.
        const trickle = setInterval(() => socket.writable && socket.write(' '), 2_000);
        socket.on('close', () => clearInterval(trickle));
        setTimeout(() => {
          socket.destroy();
          reject(new Error('still open after 30 s'));
        }, 30_000).unref();
      });
    const [headers, body] = await Promise.all([
      cutOff((socket) => socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:')),
      cutOff((socket) =>
        socket.write(
          `POST /u/${'A'.repeat(40)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\nList-Unsubscribe=`,
        ),
      ),
    ]);
    for (const [what, result] of [
      ['headers', headers],
      ['body', body],
    ] as const) {
      assert.ok(result.seconds >= REQUEST_TIMEOUT_MS / 1000 - 0.5, `${what}: cut off after ${result.seconds} s, not before 15 s`);
      assert.ok(result.seconds <= REQUEST_TIMEOUT_MS / 1000 + 2, `${what}: cut off after ${result.seconds} s, within 2 s of the limit`);
      assert.match(result.answer, /^HTTP\/1\.1 408 /, `${what}: answered 408`);
    }
  });
});
