// The unsubscribe page in a real browser (Debian's chromium through playwright-core): open the link
// from a bulletin, press the button, see the confirmation, press resubscribe, with the database
// checked after each step. Screenshots of each page go to test-output/screenshots/unsubscribe/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { openApp, type App } from '../src/app/context.js';
import { startWebServer, type RunningWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { BROWSER_SKIP, launchBrowser, screenshotDir, screenshotPath } from './helpers/browser.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let app: App;
let server: RunningWebServer;
let browser: Browser;
let link: string;

before(async () => {
  if (BROWSER_SKIP) return;
  db = await createTestDatabase();
  await runOk(['list', 'create', 'news', ...LIST_FLAGS, '--description', 'Service notices from ExampleNet'], db);
  await runOk(['subscribers', 'add', 'jo.reader@example.net', '--list', 'news', '--name', 'Jo Reader'], db);
  const url = ((await runOk(['subscribers', 'unsubscribe-url', 'jo.reader@example.net', '--list', 'news', '--json'], db)) as { url: string }).url;
  app = await openApp(db.config(), { notice: () => undefined });
  server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
  link = `${server.url}/u/${url.split('/u/')[1]}`;
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await app?.close();
  await db?.drop();
});

async function status(): Promise<[string, string]> {
  const { rows } = await app.db.query<{ status: string; status_source: string }>(
    `SELECT m.status::text, m.status_source FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id WHERE s.email = 'jo.reader@example.net'`,
  );
  return [rows[0]?.status ?? '', rows[0]?.status_source ?? ''];
}

test(`unsubscribe and resubscribe in a browser (${DATABASE_KIND} database)`, { skip: BROWSER_SKIP }, async () => {
  const shots = await screenshotDir('unsubscribe');
  const page = await browser.newPage({ viewport: { width: 390, height: 740 } }); // a phone
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });

  await page.goto(link);
  assert.equal(await page.title(), 'Unsubscribe from ExampleNet-Bulletins');
  assert.match((await page.textContent('h1')) ?? '', /Unsubscribe j\*\*\*@example\.net\?/);
  assert.deepEqual(await status(), ['active', 'command line'], 'opening the page changed nothing');
  const styled = await page.$eval(
    'button',
    (element) => (globalThis as unknown as { getComputedStyle(node: unknown): { borderRadius: string } }).getComputedStyle(element).borderRadius,
  );
  assert.notEqual(styled, '0px', 'the stylesheet loaded under the CSP');
  await page.screenshot({ path: screenshotPath(shots, '1-unsubscribe-page'), fullPage: true });

  await page.click('button:has-text("Unsubscribe")');
  await page.waitForSelector('text=You are unsubscribed');
  assert.deepEqual(await status(), ['unsubscribed', 'page']);
  await page.screenshot({ path: screenshotPath(shots, '2-unsubscribed'), fullPage: true });

  await page.click('button:has-text("Resubscribe")');
  await page.waitForSelector('text=You are subscribed again');
  assert.deepEqual(await status(), ['active', 'page']);
  await page.screenshot({ path: screenshotPath(shots, '3-resubscribed'), fullPage: true });

  assert.deepEqual(consoleErrors, [], 'no CSP violations, missing files or other errors in the console');
  await page.goto(`${link.slice(0, -3)}xyz`);
  assert.equal(await page.textContent('h1'), 'This link is not valid');
  await page.screenshot({ path: screenshotPath(shots, '4-invalid-link'), fullPage: true });
});
