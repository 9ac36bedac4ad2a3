// The parts of the send path on their own: the retry schedule, the relay URL, and the SMTP transport
// against real servers that misbehave. (What each reply means: failure.test.ts; the throttle: throttle.test.ts.)
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { nextAttemptAt, DEFAULT_RETRY_POLICY, parseDuration } from '../src/domain/delivery.js';
import { parseRelayUrl } from '../src/send/relay-url.js';
import { createSmtpTransport } from '../src/send/smtp-transport.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

const servers: TestSmtpServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

describe('retry schedule', () => {
  test('exponential backoff, capped, jitter only above the delay, until the deadline', () => {
    const first = new Date('2026-11-28T00:00:00Z');
    const after = (attempt: number, random: number, outcome: 'deferred' | 'uncertain' = 'deferred') =>
      nextAttemptAt(DEFAULT_RETRY_POLICY, attempt, first, first, () => random, outcome)!.getTime() - first.getTime();
    const minutes = (list: number[]) => list.map((value) => value * 60_000);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => after(attempt, 0)),
      minutes([5, 10, 20, 40, 60, 60, 60, 60]),
      'never sooner than the delay',
    );
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((attempt) => after(attempt, 1)),
      minutes([6.25, 12.5, 25, 50, 75, 75]),
      'at most a quarter later',
    );
    assert.ok(
      [1, 2, 3, 4, 5, 6, 7, 8].every((attempt) => after(attempt, 0.999) <= 75 * 60_000),
      'never later than --retry-max plus the jitter',
    );
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((attempt) => after(attempt, 0, 'uncertain')),
      minutes([5, 10, 20, 40, 80, 160]),
      'an uncertain one doubles every time, beyond the cap',
    );
    const late = new Date(first.getTime() + 5 * 86_400_000 - 60_000);
    assert.equal(nextAttemptAt(DEFAULT_RETRY_POLICY, 40, first, late), null, 'past the deadline');
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('5d'), 5 * 86_400_000);
    assert.equal(parseDuration('soon'), null);
  });
});

describe('SMTP transport against real servers', () => {
  const message = (to: string) => ({
    raw: Buffer.from(`From: a@example.net\r\nTo: ${to}\r\nSubject: t\r\nMessage-ID: <m-${to}>\r\n\r\nbody\r\n`),
    envelope: { from: 'bounces@example.net', to: [to] },
    messageId: `<m-${to}>`,
  });

  test('relay URLs: defaults, credentials never in the description, clear errors', () => {
    const relay = parseRelayUrl('smtps://user:s3cret@relay.example.net');
    assert.deepEqual([relay.port, relay.secure, relay.user, relay.password], [465, true, 'user', 's3cret']);
    assert.equal(relay.description, 'smtps://relay.example.net:465');
    assert.equal(parseRelayUrl('smtp://relay.example.net', 'env-user', 'env-pass').user, 'env-user');
    assert.throws(() => parseRelayUrl('http://relay'), /must start with smtp/);
    assert.throws(
      () => parseRelayUrl('smtp://user:pw@[bad'),
      (error: Error) => !error.message.includes('pw'),
    );
  });

  test('sent, refused (550) and deferred (451) as the server answers', async () => {
    const server = await startSmtpServer({ reject: ['no@example.net'], deferAfterData: { addresses: ['later@example.net'], times: 1 } });
    servers.push(server);
    const transport = createSmtpTransport({ url: server.url, connections: 2, messagesPerConnection: 10 });
    try {
      const [ok, refused, later] = await Promise.all(['ok@example.net', 'no@example.net', 'later@example.net'].map((to) => transport.send(message(to))));
      assert.equal(ok?.kind, 'sent');
      assert.match(ok?.reply ?? '', /^250 /);
      assert.equal(refused?.kind, 'failed');
      assert.match(refused?.reply ?? '', /^550 5\.1\.1/);
      assert.equal(later?.kind, 'deferred');
      assert.match(later?.reply ?? '', /^451/);
    } finally {
      await transport.close();
    }
  });

  test('421 at the greeting and a refused connection are deferred; a drop after the final dot is uncertain', async () => {
    const busy = await startSmtpServer({ rejectGreeting: true });
    const dropping = await startSmtpServer({ dropAfterData: { addresses: ['x@example.net'], times: 1 } });
    servers.push(busy, dropping);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const transports = [busy.url, `smtp://127.0.0.1:${closedPort}?tls=off`, dropping.url].map((url) =>
      createSmtpTransport({ url, connections: 1, messagesPerConnection: 10, timeoutsMs: { connect: 2000, greeting: 2000, socket: 2000 } }),
    );
    try {
      const outcomes = await Promise.all(transports.map((transport) => transport.send(message('x@example.net'))));
      assert.deepEqual(
        outcomes.map((outcome) => outcome.kind),
        ['deferred', 'deferred', 'uncertain'],
      );
      assert.match(outcomes[0]?.reply ?? '', /421/);
      assert.equal(dropping.received.length, 1, 'the dropping server did receive the whole message');
    } finally {
      await Promise.all(transports.map((transport) => transport.close()));
    }
  });
});
