// The SMTP transport against real smtp-server instances on 127.0.0.1 that accept, refuse, defer,
// drop or stall; the relay URL; and the .eml outbox transport, its files read back by mailparser.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { createOutboxTransport, emlFileName } from '../src/send/outbox-transport.js';
import { smtpDataOf } from '../src/send/nodemailer-fast-path.js';
import { parseRelayList, parseRelayUrl } from '../src/send/relay-url.js';
import { createSmtpTransport, type SmtpTransportOptions } from '../src/send/smtp-transport.js';
import type { OutgoingMessage, Transport } from '../src/send/transport.js';
import { startSmtpServer, type SmtpServerBehaviour, type TestSmtpServer } from './helpers/smtp-servers.js';

const servers: TestSmtpServer[] = [];
const transports: Transport[] = [];
const directories: string[] = [];
after(async () => {
  await Promise.all(transports.map((transport) => transport.close()));
  await Promise.all(servers.map((server) => server.close()));
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

async function server(behaviour: SmtpServerBehaviour = {}): Promise<TestSmtpServer> {
  const started = await startSmtpServer(behaviour);
  servers.push(started);
  return started;
}

function transport(options: Partial<SmtpTransportOptions> & { url: string }): Transport {
  const created = createSmtpTransport({ connections: 5, messagesPerConnection: 100, timeoutsMs: { connect: 2000, greeting: 2000, socket: 2000 }, ...options });
  transports.push(created);
  return created;
}

/** A small message with CRLF line ends and a line starting with a dot (SMTP must stuff and unstuff it). */
function message(to: string, extra = ''): OutgoingMessage {
  const messageId = `<${to.replace('@', '.')}.${extra || 'm'}@bulletin.test>`;
  const raw = Buffer.from(
    [
      'From: Bulletin <news@example.net>',
      `To: ${to}`,
      'Subject: Test bulletin',
      `Message-ID: ${messageId}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Hello.',
      '.a line that starts with a dot',
      `${extra}`,
      '',
    ].join('\r\n'),
  );
  return { raw, envelope: { from: 'bounces@example.net', to: [to] }, messageId };
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('relay URL', () => {
  test('defaults by scheme, credentials decoded, options override the URL', () => {
    const secure = parseRelayUrl('smtps://user%40example.net:s3cr%2Ft@relay.example.net');
    assert.deepEqual([secure.secure, secure.port, secure.tls, secure.user, secure.password], [true, 465, 'opportunistic', 'user@example.net', 's3cr/t']);
    assert.equal(secure.description, 'smtps://relay.example.net:465');
    const plain = parseRelayUrl('smtp://relay.example.net?tls=off');
    assert.deepEqual([plain.secure, plain.port, plain.tls, plain.user, plain.password], [false, 25, 'off', null, null]);
    assert.equal(parseRelayUrl('smtp://relay.example.net:587?tls=required').tls, 'required');
    const env = parseRelayUrl('smtp://url-user:url-pass@relay.example.net:587', 'env-user', 'env-pass');
    assert.deepEqual([env.user, env.password, env.description], ['env-user', 'env-pass', 'smtp://relay.example.net:587']);
    const mixed = parseRelayUrl('smtp://apikey@relay.example.net:587', null, 'from-SMTP_PASS');
    assert.deepEqual([mixed.user, mixed.password], ['apikey', 'from-SMTP_PASS']);
    const v6 = parseRelayUrl('smtp://[::1]:2525');
    assert.deepEqual([v6.host, v6.description], ['::1', 'smtp://[::1]:2525']);
  });

  test('a bad URL is a CONFIG error that names the problem and never shows the password', () => {
    const cases: [string, RegExp][] = [
      ['smtp://user:hunter2@[bad', /not a URL like smtp:\/\/relay/],
      ['http://relay.example.net', /must start with smtp:\/\/ or smtps:\/\//],
      ['relay.example.net:25', /must start with smtp/],
      ['smtp://relay.example.net/some/path', /has a path/],
      ['smtp://relay.example.net:0', /port 0/],
      ['smtp://relay.example.net?pool=true', /option "pool" is not known/],
      ['smtp://relay.example.net?tls=maybe', /tls=maybe is not one of off, required/],
      ['smtps://relay.example.net?tls=off', /cannot have tls=off/],
      ['smtp://:hunter2@relay.example.net', /password is set .* but no user/],
      ['smtp://a.example.net,smtp://b.example.net', /takes one relay; use parseRelayList/],
      ['smtp://relay.example.net?weight=0', /weight=0 is not a whole number from 1 to 9999/],
      ['smtp://relay.example.net?weight=2.5', /weight=2\.5 is not a whole number/],
      ['smtp://user:hunter2%zz@relay.example.net', /badly percent-encoded password/],
    ];
    for (const [url, expected] of cases) {
      assert.throws(
        () => parseRelayUrl(url),
        (error: Error & { code?: string }) => error.code === 'CONFIG' && expected.test(error.message) && !error.message.includes('hunter2'),
        url,
      );
    }
    assert.throws(
      () => createSmtpTransport({ url: 'smtp://relay.example.net', connections: 0, messagesPerConnection: 1 }),
      /connections must be a whole number/,
    );
  });

  test('several relays, comma-separated, each with an optional weight', () => {
    const relays = parseRelayList(' smtp://a.example.net?weight=3 , smtps://b.example.net:2465,smtp://c.example.net?tls=off&weight=2', 'user', 'pass');
    assert.deepEqual(
      relays.map((relay) => [relay.description, relay.weight, relay.user]),
      [
        ['smtp://a.example.net:25', 3, 'user'],
        ['smtps://b.example.net:2465', 1, 'user'],
        ['smtp://c.example.net:25', 2, 'user'],
      ],
    );
    assert.throws(() => parseRelayList('smtp://a.example.net,smtp://a.example.net:25'), /names smtp:\/\/a\.example\.net:25 twice/);
    assert.throws(() => parseRelayList(' , '), /names no relay/);
  });
});

describe('messages already in SMTP DATA form', () => {
  test('CRLF-only with no leading dot: the message plus its end-of-data line; anything else: null (nodemailer stuffs it)', () => {
    const ready = Buffer.from('Subject: x\r\n\r\nHello.\r\nA dot . mid-line is fine.\r\n');
    assert.deepEqual(smtpDataOf(ready), Buffer.concat([ready, Buffer.from('.\r\n')]));
    for (const text of [
      'Subject: x\r\n\r\n.starts with a dot\r\n',
      '.Subject: x\r\n\r\nHello.\r\n',
      'Subject: x\r\n\r\nbare LF\nhere\r\n',
      'Subject: x\r\n\r\nbare CR\rhere\r\n',
      'Subject: x\r\n\r\nno line break at the end',
      'Subject: x\r\n\r\nends with a bare LF\n',
    ]) {
      assert.equal(smtpDataOf(Buffer.from(text)), null, JSON.stringify(text));
    }
    assert.deepEqual(smtpDataOf(Buffer.from('\r\n')), Buffer.from('\r\n.\r\n'));
  });
});

describe('SMTP transport against real servers', () => {
  test('a message already in DATA form (the fast path) arrives byte for byte, as does the next one on the same session', async () => {
    const sink = await server();
    const smtp = transport({ url: sink.url, connections: 1 });
    const ready = (to: string): OutgoingMessage => {
      const messageId = `<${to.replace('@', '.')}.ready@bulletin.test>`;
      const raw = Buffer.from(`From: news@example.net\r\nTo: ${to}\r\nMessage-ID: ${messageId}\r\n\r\nHello.\r\nA line. And another.\r\n`);
      assert.notEqual(smtpDataOf(raw), null);
      return { raw, envelope: { from: 'bounces@example.net', to: [to] }, messageId };
    };
    const first = ready('one@example.org');
    const second = ready('two@example.org');
    assert.equal((await smtp.send(first)).kind, 'sent');
    assert.equal((await smtp.send(message('three@example.org'))).kind, 'sent'); // the stuffing path in between
    assert.equal((await smtp.send(second)).kind, 'sent');
    assert.equal(sink.received.length, 3);
    assert.ok(sink.received[0]?.raw.equals(first.raw));
    assert.ok(sink.received[2]?.raw.equals(second.raw));
    assert.equal(sink.connections.opened, 1);
  });

  test('accepted: sent with the 250 reply; the server got the exact bytes, envelope and Message-ID', async () => {
    const sink = await server();
    const smtp = transport({ url: sink.url });
    assert.equal(smtp.concurrency, 5);
    assert.equal(smtp.description, `smtp://127.0.0.1:${sink.port}`);
    const sent = message('reader@example.org');
    const outcome = await smtp.send(sent);
    assert.equal(outcome.kind, 'sent');
    assert.match(outcome.reply, /^250 .*Message queued as test/);
    assert.equal(outcome.relay, smtp.description);
    assert.equal(sink.received.length, 1);
    const [arrived] = sink.received;
    assert.deepEqual(arrived?.envelope, { from: 'bounces@example.net', to: ['reader@example.org'] });
    assert.equal(arrived?.messageId, sent.messageId);
    assert.ok(arrived?.raw.equals(sent.raw), 'byte for byte, CRLF and the leading dot intact');
    assert.equal(sink.copies(sent.messageId), 1);
  });

  test('550 on RCPT is failed, 451 after the message deferred, 552 "too many recipients" deferred; the session survives each', async () => {
    const picky = await server({
      reject: ['nobody@example.org'],
      deferAfterData: { addresses: ['later@example.org'], times: 1 },
      rcptReplies: { 'crowd@example.org': '552 5.5.3 Too many recipients' },
    });
    const smtp = transport({ url: picky.url, connections: 1 });
    const refused = await smtp.send(message('nobody@example.org'));
    assert.equal(refused.kind, 'failed');
    assert.match(refused.reply, /^550 5\.1\.1 <nobody@example\.org>: user unknown/);
    const deferred = await smtp.send(message('later@example.org'));
    assert.equal(deferred.kind, 'deferred');
    assert.match(deferred.reply, /^451 4\.3\.0/);
    const crowded = await smtp.send(message('crowd@example.org'));
    assert.equal(crowded.kind, 'deferred');
    assert.match(crowded.reply, /^552 5\.5\.3 Too many recipients/);
    const retried = await smtp.send(message('later@example.org'));
    assert.equal(retried.kind, 'sent', 'the second attempt is accepted');
    assert.equal(picky.connections.opened, 1, 'one connection throughout: RSET after each refusal');
    assert.deepEqual(
      picky.received.map((received) => [received.envelope.to[0], received.disposition]),
      [
        ['later@example.org', 'deferred'],
        ['later@example.org', 'accepted'],
      ],
      'the refused recipients never got to DATA',
    );
  });

  test('421 at the greeting is deferred', async () => {
    const busy = await server({ rejectGreeting: true });
    const outcome = await transport({ url: busy.url }).send(message('reader@example.org'));
    assert.equal(outcome.kind, 'deferred');
    assert.match(outcome.reply, /^421 4\.3\.2/);
    assert.equal(busy.received.length, 0);
  });

  test('a refused connection (closed port) is deferred', async () => {
    const port = await closedPort();
    const outcome = await transport({ url: `smtp://127.0.0.1:${port}?tls=off` }).send(message('reader@example.org'));
    assert.equal(outcome.kind, 'deferred');
    assert.match(outcome.reply, /ECONNREFUSED/);
    assert.equal(outcome.relay, `smtp://127.0.0.1:${port}`);
  });

  test('a connection dropped during the envelope is deferred, and nothing arrived', async () => {
    const flaky = await server({ dropAtRcpt: ['reader@example.org'] });
    const outcome = await transport({ url: flaky.url }).send(message('reader@example.org'));
    assert.equal(outcome.kind, 'deferred');
    assert.match(outcome.reply, /ECONNECTION|ESOCKET/);
    assert.equal(flaky.received.length, 0);
  });

  test('a connection dropped after the final dot is uncertain, and the server did receive the body', async () => {
    const dropping = await server({ dropAfterData: { addresses: ['reader@example.org'], times: 1 } });
    const smtp = transport({ url: dropping.url });
    const sent = message('reader@example.org');
    const outcome = await smtp.send(sent);
    assert.equal(outcome.kind, 'uncertain');
    assert.match(outcome.reply, /no reply after the end of the message/);
    assert.equal(dropping.received.length, 1);
    assert.ok(dropping.received[0]?.raw.equals(sent.raw), 'the whole message arrived');
    const again = await smtp.send(sent);
    assert.equal(again.kind, 'sent', 'a resend on a fresh connection is accepted');
    assert.equal(dropping.copies(sent.messageId), 2, 'the duplicate RFC 1047 warns of, with the same Message-ID');
  });

  test('no reply to the final dot within the socket timeout is uncertain', async () => {
    const slow = await server({ replyDelayMs: 1500 });
    const outcome = await transport({ url: slow.url, timeoutsMs: { socket: 300 } }).send(message('reader@example.org'));
    assert.equal(outcome.kind, 'uncertain');
    assert.match(outcome.reply, /ETIMEDOUT/);
    assert.equal(slow.received[0]?.disposition, 'accepted', 'the server had it, and would have said 250');
  });

  test('a slow reply within the timeout is simply sent', async () => {
    const slow = await server({ replyDelayMs: 200 });
    const outcome = await transport({ url: slow.url }).send(message('reader@example.org'));
    assert.equal(outcome.kind, 'sent');
  });

  test('AUTH with the URL credentials; a wrong password makes the relay unusable (a configuration problem, not a deferral); no password in sight', async () => {
    const password = 'pa:ss/w@rd';
    const guarded = await server({ auth: { user: 'bulletin', pass: password } });
    const url = `smtp://bulletin:${encodeURIComponent(password)}@127.0.0.1:${guarded.port}?tls=off`;
    const good = transport({ url });
    const sent = await good.send(message('reader@example.org'));
    assert.equal(sent.kind, 'sent');
    const viaOptions = transport({ url: guarded.url, user: 'bulletin', password });
    assert.equal((await viaOptions.send(message('reader@example.org', 'b'))).kind, 'sent');
    const bad = transport({ url, password: 'wrong' });
    const refused = await bad.send(message('reader@example.org', 'c'));
    assert.equal(refused.kind, 'unusable');
    assert.equal((refused as { why?: string }).why, 'configuration');
    assert.match(refused.reply, /^535 5\.7\.8 .*refused at AUTH PLAIN: check SMTP_USER and SMTP_PASS/);
    for (const text of [good.description, viaOptions.description, bad.description, sent.reply, sent.relay, refused.reply, refused.relay]) {
      assert.ok(!text.includes('pa:ss') && !text.includes(encodeURIComponent(password)), text);
    }
    assert.equal(good.description, `smtp://127.0.0.1:${guarded.port}`);
    assert.equal(guarded.received.length, 2);
  });

  test('the pool: never more than `connections` at once, connections renewed after `messagesPerConnection`', async () => {
    const sink = await server();
    const smtp = transport({ url: sink.url, connections: 5, messagesPerConnection: 10 });
    const addresses = Array.from({ length: 60 }, (_, index) => `reader${index}@example.org`);
    const outcomes = await Promise.all(addresses.map((address) => smtp.send(message(address))));
    assert.ok(outcomes.every((outcome) => outcome.kind === 'sent'));
    assert.equal(sink.received.length, 60);
    assert.equal(new Set(sink.received.map((received) => received.messageId)).size, 60);
    assert.ok(sink.connections.mostAtOnce <= 5, `${sink.connections.mostAtOnce} connections at once`);
    assert.ok(sink.connections.opened >= 6 && sink.connections.opened <= 12, `${sink.connections.opened} connections for 60 messages at 10 each`);
  });

  test('a relay refusing connections beyond 3 (421): the pool settles on 3, every message is sent, renewals are not refused', async () => {
    const sink = await server({ maxConnections: 3 });
    const smtp = transport({ url: sink.url, connections: 8, messagesPerConnection: 10 });
    const addresses = Array.from({ length: 120 }, (_, index) => `reader${index}@example.org`);
    const outcomes = await Promise.all(addresses.map((address) => smtp.send(message(address))));
    assert.deepEqual(
      outcomes.filter((outcome) => outcome.kind !== 'sent').map((outcome) => outcome.reply),
      [],
      'the messages refused a connection waited for the open ones',
    );
    assert.equal(new Set(sink.received.map((received) => received.messageId)).size, 120);
    assert.equal(smtp.concurrency, 3);
    assert.match(smtp.note?.() ?? '', /^3 of 8 connections: the relay refused more \(421 4\.7\.0 Too many connections/);
    // The 8 opened at once meet at most 5 refusals; the dozen renewals at 10 messages each wait for
    // the old connection to end and meet none (one at most, should the relay count it a moment longer).
    assert.ok(sink.connections.opened >= 12, `${sink.connections.opened} connections opened`);
    assert.ok(sink.connections.refused <= 6, `${sink.connections.refused} connections refused`);
  });

  test('a pooled connection the relay closed while idle: the message goes on a fresh one', async () => {
    const sink = await server();
    const smtp = transport({ url: sink.url, connections: 1 });
    assert.equal((await smtp.send(message('first@example.org'))).kind, 'sent');
    sink.dropConnections();
    const outcome = await smtp.send(message('second@example.org')); // before the client has noticed
    assert.equal(outcome.kind, 'sent', outcome.reply);
    assert.equal(sink.connections.opened, 2);
    assert.deepEqual(
      sink.received.map((received) => received.envelope.to[0]),
      ['first@example.org', 'second@example.org'],
    );
  });

  test('close() ends every connection; a send after it is deferred, not attempted', async () => {
    const sink = await server();
    const smtp = createSmtpTransport({ url: sink.url, connections: 5, messagesPerConnection: 100 });
    await Promise.all(['a', 'b', 'c'].map((name) => smtp.send(message(`${name}@example.org`))));
    assert.ok(sink.connections.open >= 1);
    await smtp.close();
    for (let waited = 0; sink.connections.open > 0 && waited < 2000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(sink.connections.open, 0, 'the server saw every connection close');
    const late = await smtp.send(message('late@example.org'));
    assert.equal(late.kind, 'deferred');
    assert.match(late.reply, /closed/);
    assert.equal(sink.received.length, 3);
  });
});

describe('outbox transport', () => {
  test('writes each message as <Message-ID>.eml, byte for byte, readable by mailparser', async () => {
    const base = await mkdtemp(join(tmpdir(), 'bulletin-outbox-'));
    directories.push(base);
    const directory = join(base, 'nested', 'outbox');
    const outbox = await createOutboxTransport(directory);
    assert.equal(outbox.description, `outbox:${directory}`);
    assert.equal(outbox.concurrency, 8);
    const messages = ['one@example.org', 'two@example.org', 'three@example.org'].map((to) => message(to));
    const outcomes = await Promise.all(messages.map((sent) => outbox.send(sent)));
    assert.deepEqual(
      outcomes.map((outcome) => outcome.reply),
      [
        '250 written to one.example.org.m@bulletin.test.eml',
        '250 written to two.example.org.m@bulletin.test.eml',
        '250 written to three.example.org.m@bulletin.test.eml',
      ],
    );
    assert.ok(outcomes.every((outcome) => outcome.kind === 'sent' && outcome.relay === outbox.description));
    assert.deepEqual((await readdir(directory)).sort(), [
      'one.example.org.m@bulletin.test.eml',
      'three.example.org.m@bulletin.test.eml',
      'two.example.org.m@bulletin.test.eml',
    ]);
    for (const sent of messages) {
      const bytes = await readFile(join(directory, emlFileName(sent.messageId)));
      assert.ok(bytes.equals(sent.raw), 'raw bytes, CRLF as given');
      const parsed = await simpleParser(bytes);
      assert.equal(parsed.messageId, sent.messageId);
      assert.equal(parsed.subject, 'Test bulletin');
      assert.match(parsed.text ?? '', /Hello\.\n\.a line that starts with a dot/);
    }
    await outbox.close();
  });

  test('the same Message-ID twice overwrites; unsafe ids get a safe, distinct name', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'bulletin-outbox-'));
    directories.push(directory);
    const outbox = await createOutboxTransport(directory);
    const first = message('reader@example.org');
    await outbox.send(first);
    const second = { ...first, raw: Buffer.concat([first.raw, Buffer.from('second copy\r\n')]) };
    assert.equal((await outbox.send(second)).kind, 'sent');
    const files = await readdir(directory);
    assert.equal(files.length, 1, 'one file, no temporary left over');
    assert.ok((await readFile(join(directory, files[0] as string))).equals(second.raw), 'the later copy');

    const a = emlFileName('<a/b@x>');
    const b = emlFileName('<a_b@x>');
    assert.notEqual(a, b);
    assert.match(a, /^a_b@x-[0-9a-f]{12}\.eml$/);
    assert.equal(b, 'a_b@x.eml');
    assert.match(emlFileName('<../../etc/passwd>'), /^[^/]+\.eml$/);
    assert.ok(emlFileName(`<${'x'.repeat(500)}@y>`).length < 220);
  });

  test('a write that fails is deferred, with the reason', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'bulletin-outbox-'));
    directories.push(directory);
    const outbox = await createOutboxTransport(join(directory, 'out'));
    await rm(join(directory, 'out'), { recursive: true });
    await writeFile(join(directory, 'out'), 'not a directory');
    const outcome = await outbox.send(message('reader@example.org'));
    assert.equal(outcome.kind, 'deferred');
    assert.match(outcome.reply, /^cannot write reader\.example\.org\.m@bulletin\.test\.eml: ENOTDIR/);
  });
});
