// Least privilege: only `bulletin db migrate` needs to create tables. A role granted what the README
// says (SELECT, INSERT, UPDATE, DELETE on the tables, USAGE on the sequences) runs every other
// command — the installation's secret made on first use included — and a role missing a right gets
// one sentence naming it (exit 77). On a server of the test's own, so its roles vanish with it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { openApp } from '../src/app/context.js';
import { loadConfig } from '../src/app/config.js';
import { startWebServer } from '../src/web/server.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { startOwnPostgres, type OwnPostgres } from './helpers/own-postgres.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

/** The GRANTs of README.md, "Least privilege", for a role `sender` on database `bulletin_lp`. */
const GRANTS = `
  CREATE ROLE sender LOGIN;
  GRANT CONNECT, TEMPORARY ON DATABASE bulletin_lp TO sender;
  GRANT USAGE ON SCHEMA public TO sender;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sender;
  GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO sender;
`;

let postgres: OwnPostgres | undefined;
let relay: TestSmtpServer | undefined;
let cwd: string;
let owner: { env: Record<string, string>; cwd: string };
let sender: { env: Record<string, string>; cwd: string };

async function asOwner(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: owner.env.DATABASE_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

describe('least privilege: a role that may only read and write the tables', () => {
  before(async () => {
    postgres = await startOwnPostgres('bulletin_lp');
    relay = await startSmtpServer();
    cwd = await mkdtemp(join(tmpdir(), 'bulletin-least-'));
    owner = { env: { DATABASE_URL: postgres.url }, cwd };
    sender = { env: { DATABASE_URL: postgres.url.replace('postgres://bulletin@', 'postgres://sender@'), SMTP_URL: relay.url }, cwd };
  });
  after(async () => {
    await relay?.close();
    await postgres?.destroy();
    if (cwd) await rm(cwd, { recursive: true, force: true });
  });

  test('before the migrations: the role is told to run `db migrate`, and `db migrate` with it names the right it lacks', async () => {
    await asOwner('CREATE ROLE sender LOGIN; GRANT CONNECT ON DATABASE bulletin_lp TO sender; GRANT USAGE ON SCHEMA public TO sender');
    const pending = await runCli(['list', 'ls'], sender);
    assert.equal(pending.code, 78, pending.stderr);
    assert.match(pending.stderr, /is missing \d+ migration\(s\) .*; run `bulletin db migrate` first\.\n$/);
    const migrate = await runCli(['db', 'migrate'], sender);
    assert.equal(migrate.code, 77, migrate.stderr);
    assert.equal(
      migrate.stderr,
      'bulletin: The database role "sender" lacks CREATE on schema public (permission denied for schema public); `bulletin db migrate` creates and changes bulletin\'s tables, so run it as a role that may (e.g. the owner of the database): no other command needs to.\n',
    );
    await asOwner('DROP OWNED BY sender; DROP ROLE sender');
    await runOk(['db', 'migrate'], owner);
    await asOwner(GRANTS);
  });

  test('every other command works with the README’s grants: lists, subscribers, import, preview, send, resume, retry, status, deliveries, serve, bounces, archive, erase', async () => {
    await runOk(['db', 'migrate'], sender); // up to date: nothing to create
    await runOk(['list', 'create', 'news', ...LIST_FLAGS], sender);
    await runOk(['list', 'update', 'news', '--subject-prefix', '[News]'], sender);
    await runOk(['subscribers', 'add', 'jo@example.net', '--list', 'news', '--name', 'Jo'], sender);
    const csv = join(cwd, 'people.csv');
    await writeFile(csv, `email,name\n${Array.from({ length: 30 }, (_, index) => `reader${index}@example.net,Reader ${index}`).join('\n')}\n`);
    const imported = (await runOk(['subscribers', 'import', csv, '--list', 'news', '--json'], sender)) as { subscribersCreated: number };
    assert.equal(imported.subscribersCreated, 30);
    await runOk(['subscribers', 'ls', '--list', 'news'], sender);
    assert.equal(((await runOk(['subscribers', 'count', '--list', 'news', '--json'], sender)) as { count: number }).count, 31);
    await runOk(['subscribers', 'export', '--list', 'news'], sender);
    await runOk(['list', 'ls'], sender);
    await runOk(['list', 'show', 'news'], sender);
    const notice = join(cwd, 'notice.md');
    await writeFile(notice, '---\nsubject: Least privilege\n---\nHello {{subscriber.email}}.\n');
    await runOk(['preview', notice, '--list', 'news', '--to', 'jo@example.net'], sender);
    // The first command that needs the installation's secret makes it, as this role.
    const link = ((await runOk(['subscribers', 'unsubscribe-url', 'jo@example.net', '--list', 'news', '--json'], sender)) as { url: string }).url;
    const sent = (await runOk(['send', notice, '--list', 'news', '--yes', '--quiet', '--json', '--rate', '200/s'], sender)) as {
      bulletinId: number;
      counts: { sent: number };
    };
    assert.equal(sent.counts.sent, 31);
    assert.equal(relay!.received.length, 31);
    await runOk(['resume', String(sent.bulletinId), '--quiet'], sender);
    await runOk(['retry', String(sent.bulletinId), '--quiet'], sender);
    await runOk(['status'], sender);
    await runOk(['deliveries', String(sent.bulletinId), '--state', 'sent,in-doubt'], sender);
    await runOk(['send', notice, '--list', 'news', '--dry-run'], sender);
    await runOk(['send', notice, '--list', 'news', '--test-to', 'me@example.net'], sender);
    await runOk(['archive', 'export', '--list', 'news', '--out', join(cwd, 'site')], sender);
    const maildir = join(cwd, 'bounces');
    await mkdir(join(maildir, 'new'), { recursive: true });
    await mkdir(join(maildir, 'cur'), { recursive: true });
    await runOk(['bounces', 'process', maildir], sender);
    const app = await openApp(loadConfig({ env: sender.env, cwd }), { notice: () => undefined });
    const server = await startWebServer(app, { host: '127.0.0.1', port: 0 });
    try {
      const unsubscribed = await fetch(`${server.url}${new URL(link).pathname}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(unsubscribed.status, 200);
    } finally {
      await server.close();
      await app.close();
    }
    await runOk(['subscribers', 'remove', 'reader1@example.net', '--list', 'news'], sender);
    await runOk(['subscribers', 'remove', 'reader2@example.net', '--list', 'news', '--purge'], sender);
  });

  test('a right taken away is named in one sentence (exit 77), and nothing is half done', async () => {
    await asOwner('REVOKE UPDATE ON deliveries FROM sender');
    const notice = join(cwd, 'second.md');
    await writeFile(notice, '---\nsubject: Second\n---\nHello again.\n');
    const refused = await runCli(['send', notice, '--list', 'news', '--yes', '--quiet'], sender);
    assert.equal(refused.code, 77, refused.stderr);
    assert.equal(
      refused.stderr,
      'bulletin: The database role "sender" lacks UPDATE on table deliveries (permission denied for table deliveries); grant it as "Least privilege" in bulletin\'s README shows.\n',
    );
    await asOwner('GRANT UPDATE ON deliveries TO sender');
    const resumed = await runCli(['send', notice, '--list', 'news', '--yes', '--quiet', '--json'], sender);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal((JSON.parse(resumed.stdout) as { finished: boolean }).finished, true, 'sending the same file again resumes it');

    await asOwner('REVOKE TEMPORARY ON DATABASE bulletin_lp FROM PUBLIC; REVOKE TEMPORARY ON DATABASE bulletin_lp FROM sender');
    const csv = join(cwd, 'more.csv');
    await writeFile(csv, 'email\nnew@example.net\n');
    const noTemp = await runCli(['subscribers', 'import', csv, '--list', 'news'], sender);
    assert.equal(noTemp.code, 77, noTemp.stderr);
    assert.match(
      noTemp.stderr,
      /^bulletin: The database role "sender" lacks TEMPORARY on database bulletin_lp \(permission denied to create temporary tables in database "bulletin_lp"\); grant it as "Least privilege" in bulletin's README shows\.\n$/,
    );

    await asOwner('REVOKE SELECT ON lists FROM sender');
    const noSelect = await runCli(['list', 'ls'], sender);
    assert.equal(noSelect.code, 77, noSelect.stderr);
    assert.match(noSelect.stderr, /^bulletin: The database role "sender" lacks SELECT on table lists \(permission denied for table lists\); grant it/);
  });
});
