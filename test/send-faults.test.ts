// `bulletin send` against relays that misbehave the way overloaded or misconfigured ones do, end
// to end through the CLI on the test's database: configuration errors stop the send (exit 78) with
// every delivery still queued; a message over the relay's SIZE is refused before anything is sent
// (exit 65); 20 identical refusals of the message itself hold the send (exit 75) and `resume` carries
// on once fixed; a 5xx at RCPT saying the mailbox does not exist is a hard bounce; spent sessions,
// a 421 at MAIL FROM and slow greetings cost no deferral and no stall; retries keep to --retry-min,
// the deadline holds while every relay is down, and an unanswered final dot is re-sent ever later.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_SMTP_TIMEOUTS_MS } from '../src/send/smtp-transport.js';
import { rows } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
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

async function listWith(slug: string, count: number, body = 'Hello {{subscriber.email}}.'): Promise<{ addresses: string[]; file: string }> {
  const addresses = numberedAddresses(slug, count);
  return { addresses, file: await listWithMembers(db, slug, addresses, { subject: `Faults (${slug})`, body }) };
}

const env = (url: string, extra: Record<string, string> = {}) => ({ ...db, env: { ...db.env, SMTP_URL: url, ...extra } });
const SEND = ['--yes', '--json', '--quiet'];

async function states(slug: string): Promise<Record<string, number>> {
  const found = await rows<{ state: string; count: number }>(
    db,
    `SELECT d.state::text AS state, count(*)::int AS count FROM deliveries d JOIN bulletins b ON b.id = d.bulletin_id
       JOIN lists l ON l.id = b.list_id WHERE l.slug = $1 GROUP BY d.state`,
    [slug],
  );
  return Object.fromEntries(found.map((row) => [row.state, row.count]));
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe(`sending against misbehaving relays (${DATABASE_KIND} database)`, () => {
  test('a wrong SMTP password stops the send (exit 78) naming the relay and the reply; every delivery stays queued; resume sends them once fixed; --test-to says the same', async () => {
    const relay = await server({ auth: { user: 'bulletin', pass: 'right' } });
    const { file } = await listWith('auth', 12);
    const url = `smtp://bulletin:wrong@127.0.0.1:${relay.port}?tls=off`;
    const copy = await runCli(['send', file, '--list', 'auth', '--test-to', 'me@example.net'], env(url));
    assert.equal(copy.code, 78, copy.stderr);
    assert.match(copy.stderr, /^bulletin: No usable relay: smtp:\/\/127\.0\.0\.1:\d+ refuses our configuration: 535 5\.7\.8 .*check SMTP_USER and SMTP_PASS/m);
    const result = await runCli(['send', file, '--list', 'auth', ...SEND], env(url));
    assert.equal(result.code, 78, result.stderr);
    assert.match(
      result.stderr,
      /No usable relay: smtp:\/\/127\.0\.0\.1:\d+ refuses our configuration: 535 5\.7\.8 Authentication credentials invalid .*bulletin resume \d+\.$/m,
    );
    assert.equal(result.stderr.trim().split('\n').length, 1, 'one sentence');
    const summary = JSON.parse(result.stdout) as { bulletinId: number; halt: { end: string } };
    assert.equal(summary.halt.end, 'relay unusable');
    assert.deepEqual(await states('auth'), { queued: 12 }, 'not deferred, not failed: queued');
    assert.equal(relay.received.length, 0);
    const resumed = (await runOk(
      ['resume', String(summary.bulletinId), '--json', '--quiet'],
      env(`smtp://bulletin:right@127.0.0.1:${relay.port}?tls=off`),
    )) as { finished: boolean };
    assert.equal(resumed.finished, true);
    assert.deepEqual(await states('auth'), { sent: 12 });
  });

  test('of two relays, one refusing our login is taken out: the other carries everything, exit 0', async () => {
    const guarded = await server({ auth: { user: 'bulletin', pass: 'right' } });
    const open = await server();
    const { file } = await listWith('tworelays', 30);
    const urls = `smtp://bulletin:wrong@127.0.0.1:${guarded.port}?tls=off,${open.url}`;
    const summary = (await runOk(['send', file, '--list', 'tworelays', ...SEND], env(urls))) as { finished: boolean };
    assert.equal(summary.finished, true);
    assert.deepEqual(await states('tworelays'), { sent: 30 });
    assert.equal(open.received.length, 30);
    assert.equal(guarded.received.length, 0);
  });

  test('a relay refusing our sender (5xx at MAIL FROM) stops the send with exit 78; deliveries stay queued', async () => {
    const relay = await server({ mailFromReply: '550 5.7.1 Sender address rejected: not owned by user' });
    const { file } = await listWith('sender', 8);
    const result = await runCli(['send', file, '--list', 'sender', ...SEND], env(relay.url));
    assert.equal(result.code, 78, result.stderr);
    assert.match(result.stderr, /refuses our configuration: 550 5\.7\.1 Sender address rejected.*refused at MAIL FROM/);
    assert.deepEqual(await states('sender'), { queued: 8 });
  });

  test("a message larger than the relay's SIZE is refused before anything is sent (exit 65, both sizes); MAIL FROM carries SIZE=", async () => {
    const small = await server({ size: 2_000 });
    const { file } = await listWith('big', 5, `Hello {{subscriber.email}}.\n\n${'A long paragraph that makes this bulletin large. '.repeat(60)}`);
    const result = await runCli(['send', file, '--list', 'big', ...SEND], env(small.url));
    assert.equal(result.code, 65, result.stderr);
    assert.match(result.stderr, /^bulletin: Nothing was sent: the message is [\d,]+ bytes; smtp:\/\/127\.0\.0\.1:\d+ takes at most 2,000 \(its EHLO SIZE\)/m);
    assert.equal(small.triedAt.length, 0, 'no MAIL FROM at all');
    assert.deepEqual(await states('big'), { queued: 5 });
    const roomy = await server({ size: 10_485_760 });
    const summary = JSON.parse(
      (await runCli(['resume', String((JSON.parse(result.stdout) as { bulletinId: number }).bulletinId), '--json', '--quiet'], env(roomy.url))).stdout,
    ) as { finished: boolean };
    assert.equal(summary.finished, true);
    assert.equal(roomy.mailFromSizes.length, 5);
    for (const [index, size] of roomy.mailFromSizes.entries()) assert.equal(size, roomy.received[index]?.raw.length, 'SIZE= is the size of the message');
  });

  test('20 identical refusals of the message itself hold the send (exit 75) instead of burning the list; resume sends them all once fixed', async () => {
    const strict = await server({ dataReply: '554 5.7.1 Message content rejected' });
    const { file } = await listWith('content', 40);
    const result = await runCli(['send', file, '--list', 'content', ...SEND, '--connections', '1'], env(strict.url));
    assert.equal(result.code, 75, result.stderr);
    assert.match(
      result.stderr,
      /^bulletin: Send held: smtp:\/\/127\.0\.0\.1:\d+ refused the message itself 20 times in a row \(554 5\.7\.1 Message content rejected\); fix the message or the relay's policy, then run bulletin resume \d+\.$/m,
    );
    const held = await states('content');
    assert.equal(held.failed, undefined, 'nobody failed for good');
    assert.equal((held.deferred ?? 0) + (held.queued ?? 0), 40, JSON.stringify(held));
    assert.ok(strict.received.length >= 20 && strict.received.length <= 22, `${strict.received.length} copies refused before the hold`);
    const lenient = await server();
    const bulletinId = (JSON.parse(result.stdout) as { bulletinId: number }).bulletinId;
    const resumed = (await runOk(['resume', String(bulletinId), '--json', '--quiet', '--retry-min', '1s'], env(lenient.url))) as { finished: boolean };
    assert.equal(resumed.finished, true);
    assert.deepEqual(await states('content'), { sent: 40 });
  });

  test('a 5xx at RCPT saying the mailbox does not exist is a hard bounce (source smtp) toward the threshold; a policy refusal is not', async () => {
    const relay = await server({
      reject: ['rcpt0@example.net', 'rcpt1@example.net'],
      rcptReplies: { 'rcpt2@example.net': '550 5.7.1 Recipient rejected by policy' },
    });
    const { file } = await listWith('rcpt', 6);
    const summary = (await runOk(['send', file, '--list', 'rcpt', ...SEND], env(relay.url, { BULLETIN_BOUNCE_THRESHOLD: '1' }))) as { finished: boolean };
    assert.equal(summary.finished, true);
    const bounces = await rows<{ email: string; status: string; source: string; delivery_id: number | null }>(
      db,
      `SELECT s.email, b.status, b.source, b.delivery_id FROM bounces b JOIN subscribers s ON s.id = b.subscriber_id ORDER BY s.email`,
    );
    assert.deepEqual(
      bounces.map((bounce) => [bounce.email, bounce.status, bounce.source]),
      [
        ['rcpt0@example.net', '5.1.1', 'smtp'],
        ['rcpt1@example.net', '5.1.1', 'smtp'],
      ],
    );
    assert.ok(bounces.every((bounce) => bounce.delivery_id !== null));
    const members = await rows<{ email: string; status: string }>(
      db,
      `SELECT s.email, m.status::text AS status FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
         JOIN lists l ON l.id = m.list_id WHERE l.slug = 'rcpt' ORDER BY s.email`,
    );
    assert.deepEqual(
      members.filter((member) => member.status !== 'active').map((member) => member.email),
      ['rcpt0@example.net', 'rcpt1@example.net'],
    );
    assert.equal(members.find((member) => member.email === 'rcpt2@example.net')?.status, 'active', 'a policy refusal is not held against the subscriber');
  });

  test('a relay ending sessions after 20 messages (452 4.5.3): no deferral, the message goes on a fresh session, and sessions are renewed before 20', async () => {
    const relay = await server({ sessionLimit: { messages: 20 } });
    const { file } = await listWith('spent', 200);
    const summary = (await runOk(['send', file, '--list', 'spent', ...SEND, '--connections', '2', '--rate', '500/s', '--retry-min', '5m'], env(relay.url))) as {
      finished: boolean;
      bulletinId: number;
    };
    assert.equal(summary.finished, true);
    const retried = await rows<{ count: number }>(db, `SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 AND attempts > 1`, [
      summary.bulletinId,
    ]);
    assert.equal(retried[0]?.count, 0, 'nobody waited for a retry');
    assert.deepEqual(await states('spent'), { sent: 200 });
    const refused = relay.triedAt.length - relay.acceptedAt.length;
    assert.ok(refused <= 4, `${refused} MAIL FROMs refused: the limit is learnt from the first`);
    assert.ok(relay.perConnection.every((count) => count <= 20));
  });

  test('421 at MAIL FROM (a session ending): the message waits for a working session, not for the 5 minute backoff', async () => {
    const relay = await server({ closeAtMailFrom: 2 });
    const { file } = await listWith('closing', 10);
    const started = Date.now();
    const summary = (await runOk(['send', file, '--list', 'closing', ...SEND, '--retry-min', '5m'], env(relay.url))) as {
      finished: boolean;
      bulletinId: number;
    };
    assert.equal(summary.finished, true);
    assert.ok(Date.now() - started < 30_000, 'done in seconds');
    assert.deepEqual(await states('closing'), { sent: 10 });
    const retried = await rows<{ count: number }>(db, `SELECT count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 AND attempts > 1`, [
      summary.bulletinId,
    ]);
    assert.equal(retried[0]?.count, 0);
  });

  test('a relay slow to greet: renewals are spread out and opened ahead, so sending never stalls', async () => {
    const relay = await server({ greetingDelayMs: 1000 });
    const { file } = await listWith('slowgreet', 360);
    const summary = (await runOk(
      ['send', file, '--list', 'slowgreet', ...SEND, '--connections', '3', '--messages-per-connection', '60', '--rate', '60/s'],
      env(relay.url),
    )) as { finished: boolean };
    assert.equal(summary.finished, true);
    const stamps = relay.acceptedAt;
    assert.equal(stamps.length, 360);
    let longest = 0;
    for (let index = 1; index < stamps.length; index++) longest = Math.max(longest, (stamps[index] as number) - (stamps[index - 1] as number));
    assert.ok(longest < 700, `longest pause between two accepted messages: ${longest} ms (a renewal costs 1000 ms)`);
    assert.ok(relay.connections.opened >= 6, `${relay.connections.opened} sessions: they were renewed`);
    assert.ok(relay.connections.mostAtOnce <= 6, `${relay.connections.mostAtOnce} connections at once`);
    // The first three sessions to end: the spread renewals (successors opened ahead near the end may carry nothing).
    const [first, second, third] = relay.perConnection.slice(0, 3).sort((a, b) => a - b);
    assert.ok(
      first !== undefined && second !== undefined && third !== undefined && first < second && second < third,
      `the first sessions carried different counts: ${relay.perConnection.join(', ')}`,
    );
  });

  test('retries come no sooner than --retry-min and no later than --retry-max plus its jitter', async () => {
    const relay = await server({ deferFraction: { fraction: 0.3, seed: 'retry-min' } });
    const { addresses, file } = await listWith('retrymin', 60);
    const summary = (await runOk(
      ['send', file, '--list', 'retrymin', ...SEND, '--retry-min', '2s', '--retry-max', '3s', '--retry-deadline', '5m'],
      env(relay.url),
    )) as { finished: boolean };
    assert.equal(summary.finished, true);
    let retries = 0;
    for (const address of addresses) {
      const times = relay.rcpts.filter((rcpt) => rcpt.address === address).map((rcpt) => rcpt.at);
      for (let index = 1; index < times.length; index++) {
        const gap = (times[index] as number) - (times[index - 1] as number);
        retries++;
        assert.ok(gap >= 2000, `${address}: retried after ${gap} ms (--retry-min 2s)`);
        assert.ok(gap <= 3000 * 1.25 + 1500, `${address}: retried after ${gap} ms (--retry-max 3s)`);
      }
    }
    assert.ok(retries >= 10, `${retries} retries observed`);
  });

  test('with nothing listening and --retry-deadline 3s, every delivery fails as expired on time', async () => {
    const port = await closedPort();
    const { file } = await listWith('nobody', 10);
    const started = Date.now();
    const summary = (await runOk(
      ['send', file, '--list', 'nobody', ...SEND, '--retry-min', '1s', '--retry-max', '2s', '--retry-deadline', '3s'],
      env(`smtp://127.0.0.1:${port}?tls=off`),
    )) as { finished: boolean };
    const seconds = (Date.now() - started) / 1000;
    assert.equal(summary.finished, true);
    assert.ok(seconds < 9, `took ${seconds.toFixed(1)} s for a 3 s deadline`);
    assert.deepEqual(await states('nobody'), { failed: 10 });
    const replies = await rows<{ last_reply: string }>(
      db,
      `SELECT last_reply FROM deliveries d JOIN bulletins b ON b.id = d.bulletin_id JOIN lists l ON l.id = b.list_id WHERE l.slug = 'nobody'`,
    );
    assert.ok(
      replies.every((row) => /^expired: no success before the retry deadline/.test(row.last_reply)),
      replies[0]?.last_reply,
    );
  });

  test('a final reply slower than --data-timeout: uncertain, re-sent no sooner than --retry-min and each time twice as late, always with the same Message-ID (default wait: 10 minutes)', async () => {
    assert.equal(DEFAULT_SMTP_TIMEOUTS_MS.socket, 600_000, 'RFC 5321 4.5.3.2.6: 10 minutes for the final reply');
    const slow = await server({ replyDelayMs: 1500 });
    const { file } = await listWith('slowdot', 1);
    const bad = await runCli(['send', file, '--list', 'slowdot', '--data-timeout', 'soon', ...SEND], env(slow.url));
    assert.equal(bad.code, 65);
    assert.match(bad.stderr, /--data-timeout "soon" is not a duration/);
    const summary = (await runOk(
      ['send', file, '--list', 'slowdot', ...SEND, '--data-timeout', '1s', '--retry-min', '1s', '--retry-max', '1s', '--retry-deadline', '14s'],
      env(slow.url),
    )) as { finished: boolean };
    assert.equal(summary.finished, true);
    const copies = slow.received.filter((message) => message.envelope.to[0] === 'slowdot0@example.net');
    assert.ok(copies.length >= 3 && copies.length <= 5, `${copies.length} copies in 14 s`);
    assert.equal(new Set(copies.map((copy) => copy.messageId)).size, 1, 'one Message-ID for every copy');
    const arrivals = slow.rcpts.map((rcpt) => rcpt.at);
    const gaps = arrivals.slice(1).map((at, index) => at - (arrivals[index] as number));
    assert.ok(
      gaps.every((gap) => gap >= 1000 + 1000),
      `each resend waits the data timeout plus at least --retry-min: ${gaps.join(', ')} ms`,
    );
    for (let index = 1; index < gaps.length; index++)
      assert.ok((gaps[index] as number) > (gaps[index - 1] as number) + 500, `the waits grow: ${gaps.join(', ')} ms`);
  });
});
