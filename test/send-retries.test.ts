// Retries on schedule and the deadline, with time injected (a 5-day deadline runs in seconds), and
// `bulletin retry` sending again to just the failed ones, under their first Message-ID.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { withApp } from '../src/app/context.js';
import { prepareSend } from '../src/app/send/prepare.js';
import { runSend } from '../src/app/send/run.js';
import type { Clock } from '../src/domain/clock.js';
import { RETRY_JITTER } from '../src/domain/delivery.js';
import { createSmtpTransport } from '../src/send/smtp-transport.js';
import { rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';
import { listWith as listWithMembers } from './helpers/members.js';

let db: TestDatabase;
const servers: TestSmtpServer[] = [];
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

function listWith(slug: string, addresses: readonly string[]): Promise<string> {
  return listWithMembers(db, slug, addresses, { subject: `Retries (${slug})` });
}

/** A clock whose sleeps return at once, moving its time on by what was asked. */
function fastClock(start: Date): Clock & { elapsedMs: number } {
  const clock = {
    elapsedMs: 0,
    now: () => new Date(start.getTime() + clock.elapsedMs),
    sleep: async (ms: number) => {
      clock.elapsedMs += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return clock;
}

const DAY = 24 * 3600 * 1000;

describe(`retries and the deadline (${DATABASE_KIND} database)`, () => {
  test('a recipient deferred forever is retried on the backoff schedule for 5 days (simulated), then failed as expired', async () => {
    const stuck = ['stuck1@example.net', 'stuck2@example.net'];
    const fine = ['fine1@example.net', 'fine2@example.net', 'fine3@example.net'];
    const file = await listWith('deadline', [...stuck, ...fine]);
    const relay = await startSmtpServer({ deferAfterData: { addresses: stuck, times: 1_000_000 } });
    servers.push(relay);
    const transport = createSmtpTransport({ url: relay.url, connections: 2, messagesPerConnection: 1000 });
    const clock = fastClock(new Date());
    const summary = await withApp(db.config(), { notice: () => undefined }, async (app) =>
      runSend(app, await prepareSend(app, { file, list: 'deadline' }), {
        transport,
        rate: 10_000,
        retry: { minDelayMs: 5 * 60_000, maxDelayMs: 3600_000, deadlineMs: 5 * DAY },
        resendUncertain: true,
        waitForDeferred: true,
        clock,
      }),
    );
    await transport.close();
    assert.equal(summary.end, 'finished');
    assert.deepEqual({ sent: summary.counts.sent, failed: summary.counts.failed }, { sent: 3, failed: 2 });
    // The last attempt is the one whose next retry (1 h, plus up to RETRY_JITTER of it) would come
    // after the deadline: it fails then, at most 75 minutes before the deadline.
    const longestWait = 3600_000 * (1 + RETRY_JITTER);
    assert.ok(clock.elapsedMs >= 5 * DAY - longestWait && clock.elapsedMs <= 5 * DAY + 3600_000, `${clock.elapsedMs / DAY} days went by`);
    const states = await rows<{ email: string; state: string; attempts: number; last_reply: string; message_id: string }>(
      db,
      `SELECT s.email, d.state::text, d.attempts, d.last_reply, d.message_id FROM deliveries d
         JOIN subscribers s ON s.id = d.subscriber_id WHERE d.bulletin_id = $1 ORDER BY s.email`,
      [summary.bulletinId],
    );
    for (const row of states.filter((state) => stuck.includes(state.email))) {
      assert.equal(row.state, 'failed');
      assert.match(row.last_reply, /^expired: no success before the retry deadline; last attempt deferred: 451 /);
      // 5 min doubling to 1 h, each delay plus up to a quarter of it: 4 steps, then 60–75 min apart.
      assert.ok(row.attempts >= 100 && row.attempts <= 250, `${row.email}: ${row.attempts} attempts in 5 days`);
      const copies = relay.received.filter((message) => message.envelope.to.includes(row.email));
      assert.equal(copies.length, row.attempts, 'every attempt reached the server');
      assert.deepEqual([...new Set(copies.map((copy) => copy.messageId))], [row.message_id], 'one Message-ID for every retry');
    }
    assert.deepEqual(
      states.filter((state) => fine.includes(state.email)).map((state) => [state.state, state.attempts]),
      [
        ['sent', 1],
        ['sent', 1],
        ['sent', 1],
      ],
    );
  });

  test('`bulletin retry` sends again to just the failed deliveries, under their first Message-ID', async () => {
    const refused = 'refused@example.net';
    const file = await listWith('retry', [refused, 'a@example.net', 'b@example.net']);
    const strict = await startSmtpServer({ reject: [refused] });
    const lenient = await startSmtpServer();
    servers.push(strict, lenient);
    const first = (await runOk(['send', file, '--list', 'retry', '--yes', '--json', '--quiet'], { ...db, env: { ...db.env, SMTP_URL: strict.url } })) as {
      bulletinId: number;
      finished: boolean;
      counts: Record<string, number>;
    };
    assert.equal(first.finished, true);
    assert.deepEqual([first.counts.sent, first.counts.failed], [2, 1]);
    const [before] = await rows<{ message_id: string }>(
      db,
      `SELECT d.message_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1 AND d.bulletin_id = $2`,
      [refused, first.bulletinId],
    );

    const bad = await runCli(['retry', String(first.bulletinId), '--state', 'sent'], db);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Only failed, uncertain, deferred, cancelled deliveries can be retried, not sent/);

    const again = (await runOk(['retry', String(first.bulletinId), '--state', 'failed', '--json', '--quiet'], {
      ...db,
      env: { ...db.env, SMTP_URL: lenient.url },
    })) as { requeued: number; finished: boolean; thisRun: Record<string, number>; counts: Record<string, number> };
    assert.equal(again.requeued, 1);
    assert.equal(again.finished, true);
    assert.equal(again.thisRun.sent, 1);
    assert.deepEqual([again.counts.sent, again.counts.failed], [3, 0]);
    assert.deepEqual(
      lenient.received.map((message) => [message.envelope.to, message.messageId]),
      [[[refused], before?.message_id]],
    );
  });
});
