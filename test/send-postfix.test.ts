// The adaptive pace against a real Postfix that limits how fast one client may send
// (smtpd_client_message_rate_limit, about 100 a second): Postfix answers `450 4.7.1 Error: too much mail
// from 127.0.0.1` at MAIL FROM, with the pipelined RCPT and DATA after it. One refused transaction
// must be one signal; after each cut the pace is back at the edge within 10 s, whatever the floor;
// once settled most attempts are accepted, near the limit. Skipped, saying why, without Postfix.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { withApp } from '../src/app/context.js';
import { prepareSend } from '../src/app/send/prepare.js';
import { runSend } from '../src/app/send/run.js';
import { createPacing, openTransport } from '../src/app/transports.js';
import type { SendOutcome, Transport } from '../src/send/transport.js';
import { LIST_FLAGS } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { postfixMissing, startPostfix, type TestPostfix } from './helpers/postfix.js';

const missing = postfixMissing();
let db: TestDatabase;
let postfix: TestPostfix | undefined;
before(async () => {
  if (missing) return;
  db = await createTestDatabase();
  // anvil counts in whole seconds and starts a new window only once more than the time unit has
  // passed, so a 1 s unit is a window of about 2 s: 200 per unit is about 100 a second.
  postfix = await startPostfix({ messageRateLimit: 200, rateTimeUnit: '1s' });
});
after(async () => {
  await postfix?.stop();
  await db?.drop();
});

describe(`a real Postfix with a client message rate limit (${DATABASE_KIND} database)`, () => {
  test(
    'at --rate 400/s against 100/s allowed: once settled ≥ 85% of attempts and ≥ 80/s accepted; every cut back at the edge within 10 s',
    { skip: missing ?? false },
    async () => {
      const relay = postfix as TestPostfix;
      await runOk(['list', 'create', 'postfix', ...LIST_FLAGS], db);
      const count = 2000;
      const csv = join(db.cwd, 'postfix.csv');
      await writeFile(csv, `email\n${Array.from({ length: count }, (_, index) => `reader${index}@example.net`).join('\n')}\n`);
      await runOk(['subscribers', 'import', csv, '--list', 'postfix'], db);
      const file = join(db.cwd, 'postfix.md');
      await writeFile(file, '---\nsubject: Through Postfix\n---\nHello {{subscriber.email}}.\n');

      const smtp = await openTransport(db.config({ SMTP_URL: relay.url }), { connections: 5 });
      const outcomes: { at: number; outcome: SendOutcome }[] = [];
      const recording: Transport = {
        get description() {
          return smtp.description;
        },
        get concurrency() {
          return smtp.concurrency;
        },
        note: () => smtp.note?.() ?? null,
        async send(message, signal) {
          const outcome = await smtp.send(message, signal);
          outcomes.push({ at: performance.now(), outcome });
          return outcome;
        },
        close: () => smtp.close(),
      };
      const paces: { at: number; rate: number }[] = [];
      let timer: NodeJS.Timeout | undefined;
      const started = performance.now();
      const summary = await withApp(db.config(), { notice: () => undefined }, async (app) =>
        runSend(app, await prepareSend(app, { file, list: 'postfix' }), {
          transport: recording,
          ...createPacing('400/s', '1/s'),
          retry: { minDelayMs: 1000, maxDelayMs: 2000, deadlineMs: 600_000 },
          resendUncertain: true,
          waitForDeferred: true,
          onStart: (dispatcher) => {
            timer = setInterval(() => paces.push({ at: performance.now(), rate: dispatcher.currentRate ?? 0 }), 100);
          },
        }),
      );
      clearInterval(timer);
      await recording.close();
      const ended = performance.now();
      assert.equal(summary.finished, true);
      assert.equal(summary.counts.sent, count);

      const refusals = outcomes.filter(({ outcome }) => outcome.kind === 'deferred');
      assert.ok(refusals.length > 0, 'Postfix did refuse some: the limit was reached');
      assert.ok(
        refusals.every(({ outcome }) => /^450 4\.7\.1 Error: too much mail from 127\.0\.0\.1/.test(outcome.reply)),
        refusals[0]?.outcome.reply,
      );
      const settled = outcomes.filter(({ at }) => at >= started + 5000 && at < ended - 500);
      const accepted = settled.filter(({ outcome }) => outcome.kind === 'sent').length;
      const seconds = (ended - 500 - (started + 5000)) / 1000;
      assert.ok(accepted / settled.length >= 0.85, `${accepted} of ${settled.length} attempts accepted once settled`);
      assert.ok(accepted / seconds >= 80, `${(accepted / seconds).toFixed(1)} accepted per second once settled (Postfix allows 100)`);

      // Each cut (a drop in the pace), once the first seconds are over: back at 90/s within 10 s.
      for (let index = 1; index < paces.length; index++) {
        const { at, rate } = paces[index] as { at: number; rate: number };
        if (at < started + 5000 || at > ended - 10_000 || rate >= (paces[index - 1] as { rate: number }).rate) continue;
        assert.ok(rate >= 40, `a cut to ${rate.toFixed(1)}/s: one refusal is one signal, not three`);
        assert.ok(
          paces.some((later) => later.at > at && later.at <= at + 10_000 && later.rate >= 90),
          `cut to ${rate.toFixed(1)}/s at ${((at - started) / 1000).toFixed(1)} s: not back at 90/s within 10 s`,
        );
      }
    },
  );
});
