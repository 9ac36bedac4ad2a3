// Settings of this issue: the EHLO name (SMTP_HELO, a relay's ?helo=, the machine's name; never an
// address literal), as a real SMTP server on 127.0.0.1 sees it; DKIM keys in pairs.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../src/app/config.js';
import { machineHeloName, openTransport } from '../src/app/transports.js';
import { checkHeloName } from '../src/domain/helo.js';
import { parseRelayUrl } from '../src/send/relay-url.js';

const config = (env: Record<string, string>) => loadConfig({ env, cwd: '/tmp' });
const configError = (pattern: RegExp) => ({ name: 'BulletinError', code: 'CONFIG', message: pattern });

test('SMTP_HELO and ?helo= take a fully qualified name and refuse address literals', () => {
  assert.equal(config({ SMTP_HELO: 'Mail.Example.NET.' }).smtpHelo, 'mail.example.net');
  assert.equal(config({}).smtpHelo, null);
  for (const bad of ['[127.0.0.1]', '192.0.2.7', '::1', '[IPv6:2001:db8::1]']) {
    assert.throws(() => config({ SMTP_HELO: bad }), configError(/^SMTP_HELO is an address literal; receivers distrust an EHLO without a name/), bad);
  }
  assert.throws(() => config({ SMTP_HELO: 'vm' }), configError(/SMTP_HELO is not a fully qualified domain name/));
  assert.equal(parseRelayUrl('smtp://relay.example.net?helo=out.example.net').helo, 'out.example.net');
  assert.equal(parseRelayUrl('smtp://relay.example.net').helo, null);
  assert.throws(() => parseRelayUrl('smtp://relay.example.net?helo=[10.0.0.1]'), configError(/helo=: "\[10\.0\.0\.1\]" is an address literal/));
  assert.equal(checkHeloName('a.b').ok, true);
});

test('the EHLO a relay receives: ?helo= over SMTP_HELO over the machine name; never an address literal', async () => {
  const greetings: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect: (_session, callback) => callback(),
    onMailFrom: (_address, session, callback) => {
      greetings.push(session.hostNameAppearsAs);
      callback();
    },
    onData: (stream, _session, callback) => {
      stream.resume();
      stream.on('end', () => callback());
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  const message = {
    raw: Buffer.from('From: a@example.net\r\nTo: b@example.net\r\nSubject: x\r\n\r\nHello\r\n'),
    envelope: { from: 'a@example.net', to: ['b@example.net'] },
    messageId: '<helo-test@example.net>',
  };
  try {
    for (const [env, expected] of [
      [{ SMTP_URL: `smtp://127.0.0.1:${port}?tls=off&helo=relay-own.example.net`, SMTP_HELO: 'mail.example.net' }, 'relay-own.example.net'],
      [{ SMTP_URL: `smtp://127.0.0.1:${port}?tls=off`, SMTP_HELO: 'mail.example.net' }, 'mail.example.net'],
      [{ SMTP_URL: `smtp://127.0.0.1:${port}?tls=off` }, await machineHeloName('127.0.0.1')],
    ] as const) {
      const transport = await openTransport(config(env), {});
      try {
        const outcome = await transport.send(message);
        assert.equal(outcome.kind, 'sent', JSON.stringify(outcome));
      } finally {
        await transport.close();
      }
      assert.equal(greetings.at(-1), expected);
    }
    for (const name of greetings) assert.doesNotMatch(name, /^\[|^\d+\.\d+\.\d+\.\d+$/, 'an address literal in EHLO');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  // A machine without a fully qualified name is greeted as localhost only by a relay on loopback.
  const own = await machineHeloName('127.0.0.1');
  assert.ok(own === 'localhost' || own.includes('.'), own);
  if (own === 'localhost') await assert.rejects(machineHeloName('relay.example.net'), configError(/set SMTP_HELO=mail\.example\.net/));
});

test('DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE name one key, or two in pairs', () => {
  const one = config({ DKIM_DOMAIN: 'example.net', DKIM_SELECTOR: 's1', DKIM_PRIVATE_KEY_FILE: 'k.pem' }).dkim;
  assert.deepEqual(one, { domain: 'example.net', keys: [{ selector: 's1', privateKeyFile: '/tmp/k.pem' }] });
  const two = config({ DKIM_DOMAIN: 'example.net', DKIM_SELECTOR: 'rsa2026, ed2026', DKIM_PRIVATE_KEY_FILE: '/keys/rsa.pem,/keys/ed.pem' }).dkim;
  assert.deepEqual(two?.keys, [
    { selector: 'rsa2026', privateKeyFile: '/keys/rsa.pem' },
    { selector: 'ed2026', privateKeyFile: '/keys/ed.pem' },
  ]);
  for (const [selectors, files] of [
    ['a,b', 'k.pem'],
    ['a,b,c', 'x,y,z'],
    ['a,', 'x,y'],
  ]) {
    assert.throws(
      () => config({ DKIM_DOMAIN: 'example.net', DKIM_SELECTOR: selectors!, DKIM_PRIVATE_KEY_FILE: files! }),
      configError(/one key each, or two in pairs/),
    );
  }
});
