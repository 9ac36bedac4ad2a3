// The crash promise of `bulletin send`, with a real child process: after kill -9 and a resume nobody
// is lost, and the only duplicates are messages that were in flight at the crash, each with the
// Message-ID of its first copy; the resume says how many those are and how to list them. And Ctrl-C: a graceful stop, exit 130, then a resume with no duplicate.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { rows } from './helpers/app.js';
import { childEnv, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { waitFor } from './helpers/wait.js';
import { listWith, numberedAddresses } from './helpers/members.js';

const BIN = fileURLToPath(new URL('../bin/bulletin.js', import.meta.url));
let db: TestDatabase;
const servers: TestSmtpServer[] = [];

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

async function prepare(slug: string, count: number): Promise<{ addresses: string[]; file: string }> {
  const addresses = numberedAddresses('member', count);
  return { addresses, file: await listWith(db, slug, addresses, { subject: `Crash test ${slug}` }) };
}

function startSend(
  file: string,
  slug: string,
  smtpUrl: string,
): { child: ChildProcess; output: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, 'send', file, '--list', slug, '--yes', '--rate', '250/s', '--connections', '5'], {
    env: childEnv(db.env, { SMTP_URL: smtpUrl }),
    cwd: db.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const output = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stdout, stderr }));
  return { child, output };
}

describe(`crash and stop (${DATABASE_KIND} database)`, () => {
  test('kill -9 mid-send, then resume: nobody lost, duplicates only of in-flight messages, same Message-ID', async () => {
    const { addresses, file } = await prepare('crash', 400);
    const server = await startSmtpServer({});
    servers.push(server);
    const { child, output } = startSend(file, 'crash', server.url);
    await waitFor(() => server.received.length >= 120, '120 messages at the server');
    child.kill('SIGKILL');
    const ended = await output;
    assert.equal(ended.signal, 'SIGKILL');
    const receivedAtCrash = server.received.length;
    assert.ok(receivedAtCrash < addresses.length, 'the crash came before the end');

    // What the database knew at the crash: these were in flight (claimed, outcome not yet written).
    const inFlight = new Set(
      (await rows<{ email: string }>(db, `SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.state = 'sending'`)).map(
        (row) => row.email,
      ),
    );
    assert.ok(inFlight.size > 0, 'the crash left messages in flight');
    const bulletinId = (await rows<{ id: number }>(db, 'SELECT id FROM bulletins ORDER BY id DESC LIMIT 1'))[0]!.id;
    // The resume tells the truth: how many were in flight, that they go again under their
    // Message-IDs, that a receiver may see a second copy, and how to list them.
    const resumed = (await runOk(['resume', String(bulletinId), '--quiet'], { ...db, env: { ...db.env, SMTP_URL: server.url } })) as string;
    assert.ok(
      resumed.includes(
        `  ${inFlight.size} ${inFlight.size === 1 ? 'delivery was' : 'deliveries were'} in flight when an earlier run stopped: they are re-sent under their original Message-IDs, so those receivers may see a second copy (list them: bulletin deliveries ${bulletinId} --state in-doubt).\n`,
      ),
      resumed,
    );
    assert.match(resumed, /finished: every recipient has an outcome/);
    const status = (await runOk(['status', String(bulletinId), '--json'], db)) as { counts: Record<string, number>; finishedAt: string | null };
    assert.equal(status.counts.sent, addresses.length);
    assert.notEqual(status.finishedAt, null);
    const inDoubt = (await runOk(['deliveries', String(bulletinId), '--state', 'in-doubt', '--json'], db)) as {
      email: string;
      state: string;
      inDoubt: boolean;
      attempts: number;
    }[];
    assert.deepEqual(inDoubt.map((row) => row.email).sort(), [...inFlight].sort(), '`deliveries --state in-doubt` lists exactly those that were in flight');
    assert.ok(inDoubt.every((row) => row.inDoubt && row.state === 'sent' && row.attempts === 2));

    const copies = new Map<string, string[]>();
    for (const message of server.received) {
      for (const to of message.envelope.to) copies.set(to, [...(copies.get(to) ?? []), message.messageId]);
    }
    for (const address of addresses) {
      const ids = copies.get(address) ?? [];
      assert.ok(ids.length >= 1, `${address} was lost`);
      if (ids.length > 1) {
        assert.ok(inFlight.has(address), `${address} got ${ids.length} copies but was not in flight at the crash`);
        assert.equal(new Set(ids).size, 1, `${address}: every copy has the first copy's Message-ID`);
      }
    }
    const duplicates = addresses.filter((address) => (copies.get(address)?.length ?? 0) > 1).length;
    assert.ok(duplicates <= inFlight.size);
  });

  test('Ctrl-C stops gracefully (exit 130, nothing left in flight), and a resume finishes with no duplicate', async () => {
    const { addresses, file } = await prepare('interrupt', 300);
    const server = await startSmtpServer({});
    servers.push(server);
    const { child, output } = startSend(file, 'interrupt', server.url);
    await waitFor(() => server.received.length >= 60, '60 messages at the server');
    child.kill('SIGINT');
    const ended = await output;
    assert.equal(ended.code, 130, ended.stderr);
    assert.match(ended.stdout, /stopped\. Resume with: bulletin resume \d+/);
    const bulletinId = Number(/bulletin resume (\d+)/.exec(ended.stdout)?.[1]);
    const sending = await rows(db, `SELECT 1 FROM deliveries WHERE bulletin_id = $1 AND state = 'sending'`, [bulletinId]);
    assert.equal(sending.length, 0, 'every claim was finished or given back');
    const sentBefore = await rows<{ count: number }>(db, `SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 AND state = 'sent'`, [
      bulletinId,
    ]);
    assert.equal(sentBefore[0]?.count, server.received.length, 'every message the server accepted is recorded as sent');

    await runOk(['resume', String(bulletinId)], { ...db, env: { ...db.env, SMTP_URL: server.url } });
    assert.equal(server.received.length, addresses.length, 'each recipient exactly once');
    assert.equal(new Set(server.received.map((message) => message.envelope.to[0])).size, addresses.length);
  });
});
