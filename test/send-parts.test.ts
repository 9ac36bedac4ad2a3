// The parts of the send path on their own: what each SMTP reply means, the throttle's guarantee,
// the relay URL, and the SMTP transport against real servers that misbehave.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { nextAttemptAt, DEFAULT_RETRY_POLICY, parseDuration } from '../src/domain/delivery.js';
import { classifyFailure, classifySuccess } from '../src/send/failure.js';
import { parseRelayUrl } from '../src/send/relay-url.js';
import { createSmtpTransport } from '../src/send/smtp-transport.js';
import { parseRate, Throttle, type ThrottleClock } from '../src/send/throttle.js';
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-servers.js';

const servers: TestSmtpServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

describe('failure classification (one table decides)', () => {
  const relay = 'smtp://relay:25';
  const cases: [string, Parameters<typeof classifyFailure>[0], boolean, string][] = [
    ['550 on RCPT: permanent', { message: 'Recipient command failed', code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 <a@b.c>: user unknown', command: 'RCPT TO' }, false, 'failed'],
    ['554 after the message: permanent', { message: 'Message failed', code: 'EMESSAGE', responseCode: 554, response: '554 5.7.1 rejected', command: 'DATA' }, true, 'failed'],
    ['552 on RCPT (too many recipients): temporary', { message: 'x', code: 'EENVELOPE', responseCode: 552, response: '552 5.5.3 Too many recipients', command: 'RCPT TO' }, false, 'deferred'],
    ['552 message too big after DATA: permanent', { message: 'x', code: 'EMESSAGE', responseCode: 552, response: '552 5.3.4 Message too big', command: 'DATA' }, true, 'failed'],
    ['451 after the message: temporary', { message: 'Message failed', code: 'EMESSAGE', responseCode: 451, response: '451 4.3.0 try later', command: 'DATA' }, true, 'deferred'],
    ['421 at the greeting: temporary', { message: 'x', code: 'ECONNECTION', responseCode: 421, response: '421 4.3.2 busy', command: 'CONN' }, false, 'deferred'],
    ['4.7.0 rate limited: temporary', { message: 'x', code: 'EENVELOPE', responseCode: 450, response: '450 4.7.0 rate exceeded', command: 'MAIL FROM' }, false, 'deferred'],
    ['refused connection: temporary', { message: 'connect ECONNREFUSED 127.0.0.1:9', code: 'ESOCKET', command: 'CONN' }, false, 'deferred'],
    ['timeout before the end of the message: temporary', { message: 'Timeout', code: 'ETIMEDOUT', command: 'CONN' }, false, 'deferred'],
    ['connection lost after the whole message: uncertain', { message: 'Connection closed unexpectedly', code: 'ECONNECTION', command: 'CONN' }, true, 'uncertain'],
    ['timeout waiting for the final reply: uncertain', { message: 'Timeout', code: 'ETIMEDOUT', command: 'CONN' }, true, 'uncertain'],
  ];
  for (const [name, error, bodyWritten, kind] of cases) {
    test(name, () => {
      const outcome = classifyFailure(error, bodyWritten, relay);
      assert.equal(outcome.kind, kind);
      assert.equal(outcome.relay, relay);
      assert.ok(outcome.reply.length > 0 && !/\n/.test(outcome.reply));
    });
  }
  test('2xx is sent, with the reply kept on one line', () => {
    assert.deepEqual(classifySuccess('250 2.0.0 Ok:\r\n queued as X', relay), { kind: 'sent', reply: '250 2.0.0 Ok: queued as X', relay });
  });
});

describe('throttle', () => {
  function fakeClock(): ThrottleClock & { time: number } {
    const clock = {
      time: 0,
      now: () => clock.time,
      sleep: async (ms: number) => {
        clock.time += ms;
      },
    };
    return clock;
  }

  test('no one-second window ever holds more than rate + burst', async () => {
    for (const [rate, burst] of [[50, 1], [50, 5], [3000, 30], [7, 1]] as const) {
      const clock = fakeClock();
      const throttle = new Throttle({ rate, burst, clock });
      const times: number[] = [];
      for (let index = 0; index < rate * 20; index++) {
        await throttle.acquire();
        times.push(clock.time);
        if (index % 97 === 0) clock.time += 3.7; // the caller is slow now and then
      }
      let most = 0;
      for (let start = 0, end = 0; end < times.length; end++) {
        while ((times[end] as number) - (times[start] as number) >= 1000) start++;
        most = Math.max(most, end - start + 1);
      }
      assert.ok(most <= rate + burst, `rate ${rate} burst ${burst}: ${most} in one second`);
      assert.ok(most >= rate, `rate ${rate}: only ${most} in one second`);
    }
  });

  test('the rate can change while running, and a wait can be aborted', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rate: 10, burst: 1, clock });
    for (let index = 0; index < 10; index++) await throttle.acquire();
    const before = clock.time;
    throttle.setRate(100);
    for (let index = 0; index < 100; index++) await throttle.acquire();
    assert.ok(clock.time - before <= 1100, `100 at 100/s took ${clock.time - before} ms`);

    const real = new Throttle({ rate: 1, burst: 1 });
    await real.acquire();
    const controller = new AbortController();
    const waiting = real.acquire(controller.signal);
    controller.abort(new Error('stop'));
    await assert.rejects(waiting, /stop/);
  });

  test('a real clock at 200/s', async () => {
    const throttle = new Throttle({ rate: 200, burst: 2 });
    const started = performance.now();
    let count = 0;
    while (performance.now() - started < 1000) {
      await throttle.acquire();
      count++;
    }
    assert.ok(count <= 200 + 2 + 1, `${count} in one second`);
    assert.ok(count >= 150, `${count} in one second`);
  });

  test('rates are written per second, minute or hour', () => {
    assert.equal(parseRate('50/s'), 50);
    assert.equal(parseRate('3000/m'), 50);
    assert.equal(parseRate('7200/h'), 2);
    assert.equal(parseRate('12'), 12);
    assert.throws(() => parseRate('fast'), /Rate "fast" is not valid/);
    assert.throws(() => parseRate('0/s'), /not valid/);
  });
});

describe('retry schedule', () => {
  test('exponential backoff, capped, jitter only above the delay, until the deadline', () => {
    const first = new Date('2026-11-28T00:00:00Z');
    const after = (attempt: number, random: number, outcome: 'deferred' | 'uncertain' = 'deferred') =>
      nextAttemptAt(DEFAULT_RETRY_POLICY, attempt, first, first, () => random, outcome)!.getTime() - first.getTime();
    const minutes = (list: number[]) => list.map((value) => value * 60_000);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => after(attempt, 0)), minutes([5, 10, 20, 40, 60, 60, 60, 60]), 'never sooner than the delay');
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((attempt) => after(attempt, 1)), minutes([6.25, 12.5, 25, 50, 75, 75]), 'at most a quarter later');
    assert.ok([1, 2, 3, 4, 5, 6, 7, 8].every((attempt) => after(attempt, 0.999) <= 75 * 60_000), 'never later than --retry-max plus the jitter');
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((attempt) => after(attempt, 0, 'uncertain')), minutes([5, 10, 20, 40, 80, 160]), 'an uncertain one doubles every time, beyond the cap');
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
    assert.throws(() => parseRelayUrl('smtp://user:pw@[bad'), (error: Error) => !error.message.includes('pw'));
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
      assert.deepEqual(outcomes.map((outcome) => outcome.kind), ['deferred', 'deferred', 'uncertain']);
      assert.match(outcomes[0]?.reply ?? '', /421/);
      assert.equal(dropping.received.length, 1, 'the dropping server did receive the whole message');
    } finally {
      await Promise.all(transports.map((transport) => transport.close()));
    }
  });
});
