// The dispatch loop with small claim batches, so the next batch is claimed while the current one is
// sent, and members who leave mid-send make whole batches of skips. Real database, real SMTP server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { withApp } from '../src/app/context.js';
import { prepareSend } from '../src/app/send/prepare.js';
import { runSend } from '../src/app/send/run.js';
import { createSmtpTransport } from '../src/send/smtp-transport.js';
import { Throttle } from '../src/send/throttle.js';
import type { Transport } from '../src/send/transport.js';
import { LIST_FLAGS, rows } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

let db: TestDatabase;
let smtp: TestSmtpServer;
before(async () => {
  db = await createTestDatabase();
  smtp = await startSmtpServer();
});
after(async () => {
  await smtp?.close();
  await db?.drop();
});

test(`claims in batches of 7 over 60 members, 15 of whom leave mid-send (${DATABASE_KIND} database)`, async () => {
  await runOk(['list', 'create', 'small', ...LIST_FLAGS], db);
  const addresses = Array.from({ length: 60 }, (_, index) => `member${String(index).padStart(2, '0')}@example.net`);
  const csv = join(db.cwd, 'members.csv');
  await writeFile(csv, `email\n${addresses.join('\n')}\n`);
  await runOk(['subscribers', 'import', csv, '--list', 'small'], db);
  const file = join(db.cwd, 'note.md');
  await writeFile(file, '---\nsubject: Batches\n---\nHello {{subscriber.email}}.\n');
  // Members 30–44 leave after the third message: by then at most two batches (14) are claimed,
  // so their deliveries are still queued and must be skipped at claim time, two whole batches of them.
  const leaving = addresses.slice(30, 45);
  const smtpTransport = createSmtpTransport({ url: smtp.url, connections: 3, messagesPerConnection: 100 });
  let sends = 0;
  const summary = await withApp(db.config(), { notice: () => undefined }, async (app) => {
    const leaveAfterThird: Transport = {
      ...smtpTransport,
      async send(message) {
        if (++sends === 3) {
          await app.db.query(
            `UPDATE memberships SET status = 'unsubscribed', status_source = 'command line', status_changed_at = now()
              WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email = ANY($1))`,
            [leaving],
          );
        }
        return smtpTransport.send(message);
      },
    };
    const plan = await prepareSend(app, { file, list: 'small' });
    return runSend(app, plan, {
      transport: leaveAfterThird,
      pacer: new Throttle({ rate: 10_000 }),
      retry: { minDelayMs: 100, maxDelayMs: 200, deadlineMs: 60_000 },
      resendUncertain: true,
      waitForDeferred: true,
      claimSize: 7,
    });
  });
  await smtpTransport.close();
  assert.equal(summary.end, 'finished');
  assert.equal(summary.finished, true);
  assert.deepEqual(summary.thisRun, { sent: 45, deferred: 0, failed: 0, uncertain: 0, skipped: 15 });
  const states = await rows<{ email: string; state: string }>(
    db,
    `SELECT s.email, d.state FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.bulletin_id = $1 ORDER BY s.email`,
    [summary.bulletinId],
  );
  assert.equal(states.length, 60);
  for (const { email, state } of states) assert.equal(state, leaving.includes(email) ? 'skipped' : 'sent', email);
  const arrived = smtp.received.flatMap((message) => message.envelope.to);
  assert.equal(arrived.length, 45, 'each remaining member mailed once');
  assert.deepEqual(
    [...new Set(arrived)].sort(),
    addresses.filter((address) => !leaving.includes(address)),
  );
});
