// `bulletin send` end to end against real SMTP servers on 127.0.0.1 and the test's database:
// every recipient's state in the database, and at the server exactly which messages arrived and
// how often; resume without re-enqueueing; skipping at claim time; dry run, test copy and outbox.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

let db: TestDatabase;
const servers: TestSmtpServer[] = [];

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

const FAST_RETRIES = ['--retry-min', '100ms', '--retry-max', '300ms', '--retry-deadline', '1m'];

async function listWith(slug: string, count: number): Promise<string[]> {
  await runOk(['list', 'create', slug, ...LIST_FLAGS], db);
  const addresses = Array.from({ length: count }, (_, index) => `person${index}@example.net`);
  const csv = join(db.cwd, `${slug}.csv`);
  await writeFile(csv, `email,name,city\n${addresses.map((address, index) => `${address},Person ${index},Town ${index}`).join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', slug], db);
  return addresses;
}

async function bulletinFile(name: string, subject: string): Promise<string> {
  const path = join(db.cwd, name);
  await writeFile(path, `---\nsubject: ${subject}\n---\nHello {{subscriber.name}} in {{subscriber.attributes.city}}.\n\nThis is **${subject}**.\n`);
  return path;
}

async function deliveryStates(bulletinId: number) {
  return rows<{ email: string; state: string; attempts: number; message_id: string | null; last_reply: string | null }>(
    db,
    `SELECT s.email, d.state, d.attempts, d.message_id, d.last_reply FROM deliveries d
       JOIN subscribers s ON s.id = d.subscriber_id WHERE d.bulletin_id = $1 ORDER BY s.email`,
    [bulletinId],
  );
}

interface Summary {
  bulletinId: number;
  finished: boolean;
  end: string;
  counts: Record<string, number>;
  thisRun: Record<string, number>;
}

describe(`bulletin send (${DATABASE_KIND} database)`, () => {
  test('every recipient gets one message; 550 fails, 451 is retried, a dropped connection after the body is uncertain', async () => {
    const addresses = await listWith('send-basic', 12);
    const [rejected, deferred, dropped] = [addresses[1]!, addresses[2]!, addresses[3]!];
    const server = await startSmtpServer({
      reject: [rejected],
      deferAfterData: { addresses: [deferred], times: 2 },
      dropAfterData: { addresses: [dropped], times: 1 },
    });
    servers.push(server);
    const file = await bulletinFile('basic.md', 'Planned maintenance');
    const summary = (await runOk(['send', file, '--list', 'send-basic', '--yes', '--json', '--rate', '200/s', '--connections', '5', ...FAST_RETRIES], {
      ...db,
      env: { ...db.env, SMTP_URL: server.url },
    })) as Summary;
    assert.equal(summary.finished, true);
    assert.deepEqual(
      { sent: summary.counts.sent, failed: summary.counts.failed, deferred: summary.counts.deferred, uncertain: summary.counts.uncertain },
      { sent: 11, failed: 1, deferred: 0, uncertain: 0 },
    );
    const states = await deliveryStates(summary.bulletinId);
    const byEmail = new Map(states.map((row) => [row.email, row]));
    assert.equal(byEmail.get(rejected)?.state, 'failed');
    assert.match(byEmail.get(rejected)?.last_reply ?? '', /^550/);
    assert.equal(byEmail.get(rejected)?.attempts, 1, 'a permanent failure is not retried');
    assert.equal(byEmail.get(deferred)?.state, 'sent');
    assert.equal(byEmail.get(deferred)?.attempts, 3, 'two 451s, then accepted');
    assert.equal(byEmail.get(dropped)?.state, 'sent');
    assert.equal(byEmail.get(dropped)?.attempts, 2, 'uncertain, then re-sent');

    // At the server: everyone else exactly once; the dropped one twice with the same Message-ID.
    const accepted = server.received.filter((message) => message.accepted);
    for (const address of addresses) {
      const copies = server.received.filter((message) => message.envelope.to.includes(address));
      const ids = new Set(copies.map((message) => message.messageId));
      assert.equal(ids.size, copies.length === 0 ? 0 : 1, `${address}: every copy carries one Message-ID`);
      if (address === rejected) assert.equal(accepted.filter((m) => m.envelope.to.includes(address)).length, 0);
      else if (address === dropped) assert.equal(copies.length, 2);
      else assert.equal(accepted.filter((m) => m.envelope.to.includes(address)).length, 1, address);
    }
    assert.equal(new Set(accepted.map((message) => message.messageId)).size, accepted.length, 'different recipients never share a Message-ID');
    const parsed = await simpleParser(accepted[0]!.raw);
    assert.equal(parsed.subject, '[ExampleNet-Bulletins] Planned maintenance');
    assert.match(parsed.text ?? '', /Hello Person \d+ in Town \d+/);
    assert.equal(byEmail.get(String(parsed.to && 'value' in parsed.to ? parsed.to.value[0]?.address : ''))?.message_id, parsed.messageId);
  });

  test('sending the same file again resumes it and enqueues nobody twice', async () => {
    const addresses = await listWith('send-again', 5);
    const server = await startSmtpServer({});
    servers.push(server);
    const file = await bulletinFile('again.md', 'Twice');
    const env = { ...db.env, SMTP_URL: server.url };
    // --no-wait with a server deferring everyone: the send stops with work left.
    const deferring = await startSmtpServer({ deferAfterData: { addresses, times: 1 } });
    servers.push(deferring);
    const retryInOneSecond = ['--retry-min', '1s', '--retry-max', '1s'];
    const first = (await runOk(['send', file, '--list', 'send-again', '--yes', '--json', '--no-wait', ...retryInOneSecond], {
      ...db,
      env: { ...env, SMTP_URL: deferring.url },
    })) as Summary;
    assert.equal(first.finished, false);
    assert.equal(first.end, 'waiting for deferred');
    assert.equal(first.counts.deferred, 5);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const second = (await runOk(['send', file, '--list', 'send-again', '--yes', '--json', ...FAST_RETRIES], { ...db, env })) as Summary;
    assert.equal(second.bulletinId, first.bulletinId, 'the same bulletin, resumed');
    assert.equal(second.finished, true);
    assert.equal(second.counts.sent, 5);
    const count = await rows<{ count: number }>(db, 'SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1', [first.bulletinId]);
    assert.equal(count[0]?.count, 5);
    const status = (await runOk(['status', String(first.bulletinId), '--json'], db)) as { counts: Record<string, number>; finishedAt: string | null };
    assert.equal(status.counts.sent, 5);
    assert.notEqual(status.finishedAt, null);
  });

  test('an unsubscribed recipient is skipped, not mailed; --dry-run and --test-to send nothing tracked', async () => {
    const addresses = await listWith('send-skip', 4);
    const server = await startSmtpServer({});
    servers.push(server);
    const file = await bulletinFile('skip.md', 'Skip');
    const env = { ...db.env, SMTP_URL: server.url };
    const dry = (await runOk(['send', file, '--list', 'send-skip', '--dry-run', '--json'], { ...db, env })) as { rendered: number };
    assert.equal(dry.rendered, 4);
    await runOk(['send', file, '--list', 'send-skip', '--test-to', 'editor@example.org'], { ...db, env });
    assert.deepEqual(
      server.received.map((message) => message.envelope.to),
      [['editor@example.org']],
    );
    assert.equal((await rows(db, `SELECT * FROM bulletins WHERE source_name = 'skip.md'`)).length, 0, 'no bulletin stored');

    await runOk(['subscribers', 'remove', addresses[0]!, '--list', 'send-skip'], db);
    const summary = (await runOk(['send', file, '--list', 'send-skip', '--yes', '--json'], { ...db, env })) as Summary;
    assert.equal(summary.counts.sent, 3);
    assert.equal(server.received.filter((message) => message.envelope.to.includes(addresses[0]!)).length, 0);
  });

  test('refusals: no relay, no terminal without --yes', async () => {
    await listWith('send-refuse', 1);
    const file = await bulletinFile('refuse.md', 'Refuse');
    const noRelay = await runCli(['send', file, '--list', 'send-refuse', '--yes'], db);
    assert.equal(noRelay.code, 78);
    assert.match(noRelay.stderr, /set SMTP_URL .* or write \.eml files with --outbox DIR/);
    const server = await startSmtpServer({});
    servers.push(server);
    const noTty = await runCli(['send', file, '--list', 'send-refuse'], { ...db, env: { ...db.env, SMTP_URL: server.url } });
    assert.equal(noTty.code, 2);
    assert.match(noTty.stderr, /standard input is not a terminal; add --yes/);
    assert.equal(server.received.length, 0);
  });

  test('--outbox writes one .eml per recipient with the same tracking', async () => {
    await listWith('send-outbox', 3);
    const file = await bulletinFile('outbox.md', 'Outbox');
    const outbox = join(db.cwd, 'outbox');
    const summary = (await runOk(['send', file, '--list', 'send-outbox', '--outbox', outbox, '--yes', '--json'], db)) as Summary;
    assert.equal(summary.counts.sent, 3);
    const files = (await readdir(outbox)).filter((name) => name.endsWith('.eml'));
    assert.equal(files.length, 3);
    const raw = await readFile(join(outbox, files[0]!));
    const parsed = await simpleParser(raw);
    assert.equal(parsed.headerLines.find((line) => line.key === 'list-unsubscribe-post')?.line, 'List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    assert.equal(`${files[0]!.replace(/\.eml$/, '')}`, parsed.messageId?.replace(/^<|>$/g, ''));
    const deliveries = (await runOk(['deliveries', String(summary.bulletinId), '--json'], db)) as { state: string }[];
    assert.deepEqual(
      deliveries.map((row) => row.state),
      ['sent', 'sent', 'sent'],
    );
  });
});
