// `bulletin send` against relays that push back, end to end through the CLI: a relay allowing 3
// connections, one allowing 50 messages a second, one allowing both 60 a second and 3 connections
// to a send configured for 1000/s over 10, and three relays of which one breaks mid-send; and
// through the use case, relays answering a share of random 4xx, which the pace must not take for
// congestion. All mail is delivered; the pace and the connection count follow what the relays accept.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { withApp } from '../src/app/context.js';
import { prepareSend } from '../src/app/send/prepare.js';
import { runSend } from '../src/app/send/run.js';
import { openTransport, createPacing } from '../src/app/transports.js';
import { rows } from './helpers/app.js';
import { runOk } from './helpers/cli.js';
import { createTestDatabase, DATABASE_KIND, type TestDatabase } from './helpers/database.js';
import { startSmtpServer, type SmtpServerBehaviour, type TestSmtpServer } from './helpers/smtp-servers.js';
import { listWith as listWithMembers, numberedAddresses } from './helpers/members.js';

let db: TestDatabase;
const servers: TestSmtpServer[] = [];
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await db?.drop();
});

async function server(behaviour: SmtpServerBehaviour = {}): Promise<TestSmtpServer> {
  const started = await startSmtpServer(behaviour);
  servers.push(started);
  return started;
}

const FAST_RETRIES = ['--retry-min', '100ms', '--retry-max', '500ms', '--retry-deadline', '5m'];

async function listWith(slug: string, count: number): Promise<{ addresses: string[]; file: string }> {
  const addresses = numberedAddresses(slug, count);
  return { addresses, file: await listWithMembers(db, slug, addresses, { subject: `Under fire (${slug})` }) };
}

interface Summary {
  bulletinId: number;
  finished: boolean;
  counts: Record<string, number>;
}

/** Every address accepted at least once over all servers; more than once only with one Message-ID. */
function assertDelivered(addresses: readonly string[], relays: readonly TestSmtpServer[]): Map<string, number> {
  const accepted = new Map<string, Set<string>>();
  const copies = new Map<string, number>();
  for (const relay of relays) {
    for (const message of relay.received) {
      if (!message.accepted) continue;
      for (const to of message.envelope.to) {
        accepted.set(to, (accepted.get(to) ?? new Set()).add(message.messageId));
        copies.set(to, (copies.get(to) ?? 0) + 1);
      }
    }
  }
  for (const address of addresses) {
    assert.equal(accepted.get(address)?.size, 1, `${address}: accepted, always under one Message-ID`);
  }
  return copies;
}

/** Messages per second over [from, to) ms, from a list of Date.now() stamps. */
function perSecond(stamps: readonly number[], from: number, to: number): number {
  return (stamps.filter((stamp) => stamp >= from && stamp < to).length * 1000) / (to - from);
}

describe(`sending under fire (${DATABASE_KIND} database)`, () => {
  test('a relay answering 421 beyond 3 connections: every message delivered once, over at most 3 connections after the first refusals', async () => {
    const relay = await server({ maxConnections: 3 });
    const { addresses, file } = await listWith('conns', 300);
    const summary = (await runOk(['send', file, '--list', 'conns', '--yes', '--json', '--quiet', '--rate', '2000/s', '--connections', '8', ...FAST_RETRIES], {
      ...db,
      env: { ...db.env, SMTP_URL: relay.url },
    })) as Summary;
    assert.equal(summary.finished, true);
    assert.equal(summary.counts.sent, 300);
    const copies = assertDelivered(addresses, [relay]);
    assert.ok(
      [...copies.values()].every((count) => count === 1),
      'nobody got two copies',
    );
    // Without adapting, every message beyond the third connection would meet a 421 (hundreds).
    assert.ok(relay.connections.refused <= 12, `${relay.connections.refused} connections refused`);
    const deferred = await rows<{ count: number }>(db, `SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 AND attempts > 1`, [
      summary.bulletinId,
    ]);
    assert.equal(deferred[0]?.count, 0, 'a refused connection made no message wait for a retry');
  });

  test('a relay answering 4.7.0 beyond 50 messages a second: all delivered, and the pace settles near 50/s (configured 200/s)', async () => {
    const relay = await server({ maxPerSecond: 50 });
    const { addresses, file } = await listWith('pace', 500);
    const started = Date.now();
    const summary = (await runOk(['send', file, '--list', 'pace', '--yes', '--json', '--quiet', '--rate', '200/s', '--connections', '5', ...FAST_RETRIES], {
      ...db,
      env: { ...db.env, SMTP_URL: relay.url },
    })) as Summary;
    const ended = Date.now();
    assert.equal(summary.finished, true);
    assert.equal(summary.counts.sent, 500);
    assertDelivered(addresses, [relay]);
    // After the first seconds of discovery: tried near what is accepted, not at the configured 200/s.
    const settledFrom = started + 3000;
    const tried = perSecond(relay.triedAt, settledFrom, ended - 500);
    const accepted = perSecond(relay.acceptedAt, settledFrom, ended - 500);
    assert.ok(accepted >= 30 && accepted <= 51, `accepted ${accepted.toFixed(1)}/s`);
    assert.ok(tried <= 90, `tried ${tried.toFixed(1)}/s once settled (configured 200/s)`);
  });

  test('three relays, one breaks mid-send: the others carry everything, each delivery names its relay', async () => {
    const relays = [await server(), await server(), await server()];
    const [first, second, breaking] = relays as [TestSmtpServer, TestSmtpServer, TestSmtpServer];
    const { addresses, file } = await listWith('relays', 300);
    const timer = setInterval(() => {
      if (breaking.acceptedAt.length >= 30) {
        breaking.setBroken(true);
        clearInterval(timer);
      }
    }, 5);
    const summary = (await runOk(['send', file, '--list', 'relays', '--yes', '--json', '--quiet', '--rate', '300/s', '--connections', '2', ...FAST_RETRIES], {
      ...db,
      env: { ...db.env, SMTP_URL: relays.map((relay) => relay.url).join(',') },
    })) as Summary;
    clearInterval(timer);
    assert.equal(summary.finished, true);
    assert.equal(summary.counts.sent, 300);
    assertDelivered(addresses, relays);
    const byRelay = await rows<{ relay: string; count: number }>(
      db,
      `SELECT relay, count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 GROUP BY relay ORDER BY relay`,
      [summary.bulletinId],
    );
    const countOf = (relay: TestSmtpServer) => byRelay.find((row) => row.relay === `smtp://127.0.0.1:${relay.port}`)?.count ?? 0;
    assert.equal(countOf(first) + countOf(second) + countOf(breaking), 300, JSON.stringify(byRelay));
    assert.ok(countOf(breaking) >= 30 && countOf(breaking) <= 40, `the broken relay took ${countOf(breaking)} before it broke`);
    assert.ok(countOf(first) >= 100 && countOf(second) >= 100, JSON.stringify(byRelay));
  });

  test('a relay taking 60 msg/s over 3 connections, sent to at 1000/s over 10: once settled, at least 85% of attempts and 45/s accepted', async () => {
    const relay = await server({ maxPerSecond: 60, maxConnections: 3 });
    const { addresses, file } = await listWith('edge', 900);
    const started = Date.now();
    const summary = (await runOk(
      ['send', file, '--list', 'edge', '--yes', '--json', '--quiet', '--rate', '1000/s', '--connections', '10', '--retry-min', '1s', '--retry-max', '2s'],
      {
        ...db,
        env: { ...db.env, SMTP_URL: relay.url },
      },
    )) as Summary;
    const ended = Date.now();
    assert.equal(summary.finished, true);
    assert.equal(summary.counts.sent, 900);
    assertDelivered(addresses, [relay]);
    const from = started + 5000;
    const to = ended - 1000;
    const tried = relay.triedAt.filter((at) => at >= from && at < to).length;
    const accepted = relay.acceptedAt.filter((at) => at >= from && at < to).length;
    assert.ok(accepted / tried >= 0.85, `${accepted} of ${tried} attempts accepted once settled`);
    assert.ok(perSecond(relay.acceptedAt, from, to) >= 45, `${perSecond(relay.acceptedAt, from, to).toFixed(1)} accepted per second once settled`);
  });

  const RANDOM_FAULT_RECIPIENTS = 1200;
  for (const [name, behaviour] of [
    ['451 4.3.0 to 20% of messages at random', { deferFraction: { fraction: 0.2, seed: 'random-451' }, deferReply: '451 4.3.0 Temporary local problem' }],
    ['450 4.2.1 to 30% of RCPTs at random', { rcptFraction: { fraction: 0.3, reply: '450 4.2.1 Mailbox busy', seed: 'rcpt-450' } }],
  ] as const) {
    test(`a relay answering ${name} is not pushing back on our pace: the pace stays at the configured rate, and the send drains`, async () => {
      const relay = await server(behaviour);
      const slug = name.startsWith('451') ? 'random' : 'busy';
      // Long enough (12 s at 100/s) that the one test of the pace at the start, while the share is
      // not yet known to be background, is a small part of the send, as it is of a real one.
      const { addresses, file } = await listWith(slug, RANDOM_FAULT_RECIPIENTS);
      const transport = await openTransport(db.config({ SMTP_URL: relay.url }), { connections: 5 });
      const paces: number[] = [];
      let timer: NodeJS.Timeout | undefined;
      const summary = await withApp(db.config(), { notice: () => undefined }, async (app) =>
        runSend(app, await prepareSend(app, { file, list: slug }), {
          transport,
          ...createPacing('100/s', '1/s'),
          retry: { minDelayMs: 1000, maxDelayMs: 2000, deadlineMs: 300_000 },
          resendUncertain: true,
          waitForDeferred: true,
          onStart: (dispatcher) => {
            timer = setInterval(() => paces.push(dispatcher.currentRate ?? 0), 100);
          },
        }),
      );
      clearInterval(timer);
      await transport.close();
      assert.equal(summary.finished, true);
      assert.equal(summary.counts.sent, RANDOM_FAULT_RECIPIENTS);
      assertDelivered(addresses, [relay]);
      const full = paces.filter((pace) => pace >= 100).length;
      assert.ok(full >= 0.8 * paces.length, `the pace was at the configured 100/s in ${full} of ${paces.length} samples`);
    });
  }
});
