// The exported archive in a real browser (Debian's chromium, playwright-core), served by
// `bulletin serve` under /archive/: list page → month → thread view → bulletin → next/previous.
// Screenshots of each page go to test-output/screenshots/archive/.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { openApp, type App } from '../src/app/context.js';
import { startWebServer, type RunningWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { BROWSER_SKIP, launchBrowser, screenshotDir, screenshotPath } from './helpers/browser.js';
import { runOk } from './helpers/cli.js';
import { clockAt } from './helpers/clock.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let app: App;
let server: RunningWebServer;
let browser: Browser;

before(async () => {
  if (BROWSER_SKIP) return;
  db = await createTestDatabase();
  await runOk(['list', 'create', 'news', ...LIST_FLAGS, '--description', 'Service notices from ExampleNet'], db);
  await runOk(['subscribers', 'add', 'reader@example.net', '--list', 'news'], db);
  const bulletins = [
    [
      'first.md',
      '---\nsubject: Planned maintenance on Saturday\n---\nThe mail servers will be **upgraded** on Saturday night.\n\n- Webmail stays up.\n- Delivery may pause for a few minutes.\n',
    ],
    ['second.md', '---\nsubject: Maintenance finished\nin-reply-to: first.md\n---\nThe upgrade is done; everything works as before.\n'],
    ['third.md', '---\nsubject: New spam filter settings\n---\nYou can now tune your spam filter from the account page.\n'],
  ];
  // All three in one month, a day apart, whatever today is.
  for (const [index, [name, body]] of bulletins.entries()) {
    await writeFile(join(db.cwd, name as string), body as string);
    const clock = clockAt(`2026-06-1${index}T09:00:00Z`);
    await runOk(['send', join(db.cwd, name as string), '--list', 'news', '--outbox', join(db.cwd, 'outbox'), '--yes', '--quiet'], { ...db, clock });
  }
  await runOk(['archive', 'export', '--list', 'news', '--out', join(db.cwd, 'site')], db);
  app = await openApp(db.config(), { notice: () => undefined });
  server = await startWebServer(app, { host: '127.0.0.1', port: 0, archiveDir: join(db.cwd, 'site') });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await app?.close();
  await db?.drop();
});

test(`browse the archive: list page, month, thread view, a bulletin, next and previous (${DATABASE_KIND} database)`, { skip: BROWSER_SKIP }, async () => {
  const shots = await screenshotDir('archive');
  const page = await browser.newPage({ viewport: { width: 390, height: 800 } });
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });

  await page.goto(`${server.url}/archive/news/`);
  assert.equal(await page.title(), 'The ExampleNet-Bulletins Archives');
  assert.match((await page.textContent('body')) ?? '', /Service notices from ExampleNet/);
  await page.screenshot({ path: screenshotPath(shots, '1-list'), fullPage: true });

  await page.click('a:has-text("Thread")');
  assert.match(page.url(), /\/archive\/news\/\d{4}-[A-Z][a-z]+\/thread\.html$/);
  assert.equal(await page.locator('ul.bulletins > li').count(), 2, 'two threads');
  assert.equal(await page.locator('ul.bulletins > li > ul > li').count(), 1, 'one follow-up nested');
  await page.screenshot({ path: screenshotPath(shots, '2-month-by-thread'), fullPage: true });

  await page.click('a:has-text("Planned maintenance on Saturday")');
  assert.equal(await page.title(), '[ExampleNet-Bulletins] Planned maintenance on Saturday');
  assert.match((await page.textContent('.body')) ?? '', /upgraded on Saturday night/);
  assert.match((await page.textContent('.meta')) ?? '', /bulletins at lists\.example\.net/);
  const styled = await page.$eval(
    'body',
    (element) => (globalThis as unknown as { getComputedStyle(node: unknown): { maxWidth: string } }).getComputedStyle(element).maxWidth,
  );
  assert.notEqual(styled, 'none', 'the stylesheet applies');
  await page.screenshot({ path: screenshotPath(shots, '3-bulletin'), fullPage: true });

  await page.click('nav >> nth=0 >> a:has-text("Maintenance finished")');
  assert.equal(await page.title(), '[ExampleNet-Bulletins] Maintenance finished');
  await page.screenshot({ path: screenshotPath(shots, '4-next-by-date'), fullPage: true });
  await page.click('nav >> nth=0 >> a:has-text("Planned maintenance on Saturday")');
  assert.equal(await page.title(), '[ExampleNet-Bulletins] Planned maintenance on Saturday');

  await page.click('footer a');
  assert.equal(await page.title(), 'The ExampleNet-Bulletins Archives');
  assert.deepEqual(problems, [], 'no missing files or CSP violations');
});
