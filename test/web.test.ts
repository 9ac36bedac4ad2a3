// `bulletin serve` over real HTTP: a GET never unsubscribes (ten "link scanner" fetches change
// nothing); one-click POSTs in both RFC 8058 encodings; the page's button and its undo; one generic
// 404 for every link that is not valid; secret rotation; security headers; limits.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openApp, type App } from '../src/app/context.js';
import { installationKeys } from '../src/app/secret.js';
import { signToken, type SigningKey } from '../src/domain/token.js';
import { insertBulletin } from '../src/store/bulletins.js';
import { enqueueDeliveries } from '../src/store/deliveries.js';
import { startWebServer, type RunningWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

const OLD_SECRET = 'an-old-secret-that-was-rotated-out-0123456789';
const SECRET = 'the-current-secret-of-this-installation-0123456789';
let db: TestDatabase;
let env: Record<string, string>;
let app: App;
let server: RunningWebServer;
const tokens = new Map<string, string>();
let listIds: Record<string, number>;
let subscriberIds: Record<string, number>;
/** This installation's key under a secret. */
let keyOf: (secret: string) => SigningKey;

async function membership(address: string, slug = 'news'): Promise<{ status: string; status_source: string; status_changed_at: Date }> {
  const { rows } = await app.db.query<{ status: string; status_source: string; status_changed_at: Date }>(
    `SELECT m.status::text, m.status_source, m.status_changed_at FROM memberships m
       JOIN subscribers s ON s.id = m.subscriber_id JOIN lists l ON l.id = m.list_id WHERE s.email = $1 AND l.slug = $2`,
    [address, slug],
  );
  return rows[0] as { status: string; status_source: string; status_changed_at: Date };
}

before(async () => {
  db = await createTestDatabase();
  env = { ...db.env, BULLETIN_SECRET: SECRET, BULLETIN_SECRET_PREVIOUS: OLD_SECRET };
  const options = { env, cwd: db.cwd };
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], options);
  await runOk(['list', 'create', 'other', ...LIST_FLAGS.map((flag) => (flag === 'ExampleNet-Bulletins' ? 'Other list' : flag))], options);
  for (const address of [
    'scanner@example.net',
    'oneclick@example.net',
    'multipart@example.net',
    'pager@example.net',
    'rotated@example.net',
    'pending@example.net',
    'quiet@example.net',
  ]) {
    await runOk(['subscribers', 'add', address, '--list', 'news'], options);
    tokens.set(
      address,
      ((await runOk(['subscribers', 'unsubscribe-url', address, '--list', 'news', '--json'], options)) as { url: string }).url.split('/u/')[1] as string,
    );
  }
  await runOk(['subscribers', 'add', 'elsewhere@example.net', '--list', 'other'], options);
  app = await openApp(db.config({ BULLETIN_SECRET: SECRET, BULLETIN_SECRET_PREVIOUS: OLD_SECRET }), { notice: () => undefined });
  listIds = Object.fromEntries((await app.db.query<{ slug: string; id: number }>('SELECT slug, id FROM lists')).rows.map((row) => [row.slug, row.id]));
  subscriberIds = Object.fromEntries(
    (await app.db.query<{ email: string; id: number }>('SELECT email, id FROM subscribers')).rows.map((row) => [row.email, row.id]),
  );
  const installationId = (await installationKeys(app)).signing.installationId;
  keyOf = (secret) => ({ secret, installationId });
  server = await startWebServer(app, { host: '127.0.0.1', port: 0, postsPerMinute: 1000 });
});
after(async () => {
  await server?.close();
  await app?.close();
  await db?.drop();
});

const url = (token: string) => `${server.url}/u/${token}`;
const oneClick = (token: string) =>
  fetch(url(token), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'List-Unsubscribe=One-Click',
    redirect: 'manual',
  });
/** The page's button, as a browser sends it from our own page (Sec-Fetch-Site: same-origin). */
const form = (token: string, action: string) =>
  fetch(url(token), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    body: `action=${action}`,
    redirect: 'manual',
  });

function assertSecurityHeaders(response: Response): void {
  assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
  assert.doesNotMatch(response.headers.get('content-security-policy') ?? '', /script-src|unsafe-inline/);
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('x-frame-options'), 'DENY');
}

describe(`bulletin serve (${DATABASE_KIND} database)`, () => {
  test('GET shows the list and the masked address with a POST button, and ten GETs by a link scanner unsubscribe nobody', async () => {
    const token = tokens.get('scanner@example.net') as string;
    for (let fetchNumber = 0; fetchNumber < 10; fetchNumber++) {
      const response = await fetch(url(token), { headers: { 'user-agent': 'LinkScanner/1.0' } });
      assert.equal(response.status, 200);
      assertSecurityHeaders(response);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      const page = await response.text();
      assert.match(page, /^<!DOCTYPE html>/);
      assert.match(page, /ExampleNet-Bulletins/);
      assert.match(page, /s\*\*\*@example\.net/);
      assert.doesNotMatch(page, /scanner@example\.net/, 'the address itself never appears');
      assert.match(page, new RegExp(`<form method="post" action="/u/${token}">`));
      assert.doesNotMatch(page, /<script/i);
    }
    assert.equal((await membership('scanner@example.net')).status, 'active');
  });

  test('one-click POST (urlencoded) unsubscribes at once with a short text, no redirect, no cookie; a replay is harmless', async () => {
    const token = tokens.get('oneclick@example.net') as string;
    const response = await oneClick(token);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('location'), null);
    assert.equal(response.headers.get('set-cookie'), null);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await response.text(), /^Unsubscribed: o\*\*\*@example\.net will get no more bulletins from ExampleNet-Bulletins\.\n$/);
    const first = await membership('oneclick@example.net');
    assert.deepEqual([first.status, first.status_source], ['unsubscribed', 'one-click']);
    const replay = await oneClick(token);
    assert.equal(replay.status, 200);
    const second = await membership('oneclick@example.net');
    assert.deepEqual([second.status, second.status_changed_at.getTime()], ['unsubscribed', first.status_changed_at.getTime()], 'the replay changed nothing');
  });

  test('one-click POST as multipart/form-data unsubscribes too', async () => {
    const body = new FormData();
    body.append('List-Unsubscribe', 'One-Click');
    const response = await fetch(url(tokens.get('multipart@example.net') as string), { method: 'POST', body });
    assert.equal(response.status, 200);
    const member = await membership('multipart@example.net');
    assert.deepEqual([member.status, member.status_source], ['unsubscribed', 'one-click']);
  });

  test("the page's button unsubscribes and offers an undo that restores the subscription", async () => {
    const token = tokens.get('pager@example.net') as string;
    const left = await form(token, 'unsubscribe');
    assert.equal(left.status, 200);
    assertSecurityHeaders(left);
    const page = await left.text();
    assert.match(page, /You are unsubscribed/);
    assert.match(page, /name="action" value="resubscribe"/);
    assert.deepEqual(Object.values(await membership('pager@example.net')).slice(0, 2), ['unsubscribed', 'page']);
    const back = await form(token, 'resubscribe');
    assert.equal(back.status, 200);
    assert.match(await back.text(), /You are subscribed again/);
    assert.deepEqual(Object.values(await membership('pager@example.net')).slice(0, 2), ['active', 'page']);
  });

  test('an unsubscribe skips the deliveries of a running send not yet claimed', async () => {
    const bulletin = await insertBulletin(app.db, {
      listId: listIds.news as number,
      subject: 'Pending',
      source: '---\nsubject: Pending\n---\nHi\n',
      sourceName: 'pending.md',
      templates: {},
      verp: false,
      sentDate: new Date(),
      messageIdVersion: 2,
    });
    await enqueueDeliveries(app.db, bulletin.id, listIds.news as number);
    assert.equal((await oneClick(tokens.get('pending@example.net') as string)).status, 200);
    const { rows } = await app.db.query<{ state: string; last_reply: string }>(
      `SELECT state::text, last_reply FROM deliveries WHERE bulletin_id = $1 AND subscriber_id = $2`,
      [bulletin.id, subscriberIds['pending@example.net']],
    );
    assert.equal(rows[0]?.state, 'skipped');
    assert.match(rows[0]?.last_reply ?? '', /unsubscribed \(one-click\)/);
    const others = await app.db.query<{ count: number }>(`SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 AND state = 'queued'`, [
      bulletin.id,
    ]);
    assert.ok((others.rows[0]?.count ?? 0) > 0, 'the others are still queued');
  });

  test('a bit-flipped, truncated, other-purpose, foreign or unknown-member token gets the same 404 page, for GET and POST', async () => {
    const good = tokens.get('quiet@example.net') as string;
    const flipped = `${good.slice(0, 10)}${good[10] === 'A' ? 'B' : 'A'}${good.slice(11)}`;
    const bad = [
      flipped,
      good.slice(0, -1),
      `${good}A`,
      signToken('verp', { listId: listIds.news as number, subscriberId: subscriberIds['quiet@example.net'] as number }, keyOf(SECRET)),
      signToken(
        'unsubscribe',
        { listId: listIds.news as number, subscriberId: subscriberIds['quiet@example.net'] as number },
        keyOf('a-secret-of-some-other-installation-0123456789'),
      ),
      // Another installation sharing this one's secret.
      signToken(
        'unsubscribe',
        { listId: listIds.news as number, subscriberId: subscriberIds['quiet@example.net'] as number },
        { secret: SECRET, installationId: '0d15ea5e-0000-4000-8000-000000000000' },
      ),
      signToken('unsubscribe', { listId: listIds.other as number, subscriberId: subscriberIds['quiet@example.net'] as number }, keyOf(SECRET)),
      signToken('unsubscribe', { listId: 999, subscriberId: 1 }, keyOf(SECRET)),
      '%3Cscript%3E',
    ];
    const pages = new Set<string>();
    for (const token of bad) {
      const get = await fetch(url(token));
      assert.equal(get.status, 404, token);
      assertSecurityHeaders(get);
      pages.add(await get.text());
      const post = await oneClick(token);
      assert.equal(post.status, 404, token);
      assert.equal(await post.text(), 'This link is not valid.\n');
      assert.equal((await form(token, 'unsubscribe')).status, 404);
    }
    assert.equal(pages.size, 1, 'one page for every invalid link');
    assert.match([...pages][0] as string, /This link is not valid/);
    assert.equal((await membership('quiet@example.net')).status, 'active');
    assert.equal((await membership('elsewhere@example.net', 'other')).status, 'active');
  });

  test('a link signed with a previous secret still works after a rotation', async () => {
    const token = signToken('unsubscribe', { listId: listIds.news as number, subscriberId: subscriberIds['rotated@example.net'] as number }, keyOf(OLD_SECRET));
    assert.equal((await fetch(url(token))).status, 200);
    assert.equal((await oneClick(token)).status, 200);
    assert.equal((await membership('rotated@example.net')).status, 'unsubscribed');
  });

  test('an oversized body is refused (413), a POST without a known field does nothing (400)', async () => {
    const token = tokens.get('quiet@example.net') as string;
    const huge = await fetch(url(token), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `List-Unsubscribe=One-Click&padding=${'x'.repeat(10_000)}`,
    });
    assert.equal(huge.status, 413);
    const empty = await fetch(url(token), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'unsubscribe me' });
    assert.equal(empty.status, 400);
    assert.equal((await membership('quiet@example.net')).status, 'active');
  });

  test('POSTs are limited per client address; /healthz answers; unknown paths get a plain 404', async () => {
    const limited = await startWebServer(app, { host: '127.0.0.1', port: 0, postsPerMinute: 3 });
    try {
      const token = tokens.get('quiet@example.net') as string;
      const statuses: number[] = [];
      for (let post = 0; post < 5; post++) {
        const response = await fetch(`${limited.url}/u/${token}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
        statuses.push(response.status);
      }
      assert.deepEqual(statuses, [400, 400, 400, 429, 429]);
      assert.equal((await fetch(`${limited.url}/u/${token}`)).status, 200, 'GETs are not limited');
    } finally {
      await limited.close();
    }
    const health = await fetch(`${server.url}/healthz`);
    assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }]);
    const missing = await fetch(`${server.url}/admin`);
    assert.equal(missing.status, 404);
    assertSecurityHeaders(missing);
  });
});
