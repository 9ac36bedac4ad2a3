// DKIM: messages signed by the composer pass independent verifiers (mailauth, and python3-dkim's
// dkimpy, the library behind `dkimverify`) on the bytes a real SMTP server on 127.0.0.1 received
// from nodemailer, for RSA and Ed25519 keys the test makes, alone and side by side.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { canonicalBody, dkimAlignment } from '../src/render/dkim.js';
import { bulletinText, compileText, JANE, TARO, assertWellFormed } from './render-fixtures.js';

const DOMAIN = 'example.net';
const SELECTOR = 'bulletin2026';

interface Received {
  readonly from: string;
  readonly to: string[];
  readonly data: Buffer;
}

const received: Received[] = [];
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      received.push({
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((recipient) => recipient.address),
        data: Buffer.concat(chunks),
      });
      callback();
    });
  },
});
let port = 0;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** The DNS TXT record a domain would publish for the key, served by a stub resolver. */
function resolverFor(publicKey: KeyObject, type: 'rsa' | 'ed25519') {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  // Ed25519 records carry the bare 32-byte key (RFC 8463), RSA ones the SubjectPublicKeyInfo.
  const p = (type === 'ed25519' ? der.subarray(der.length - 32) : der).toString('base64');
  return async (name: string, rrtype: string): Promise<string[][]> => {
    if (rrtype === 'TXT' && name === `${SELECTOR}._domainkey.${DOMAIN}`) return [[`v=DKIM1; k=${type}; p=${p}`]];
    throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: 'ENOTFOUND' });
  };
}

async function sendThroughSmtp(raw: Buffer, envelope: { from: string; to: string[] }): Promise<Received> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  const before = received.length;
  try {
    await transport.sendMail({ raw, envelope });
  } finally {
    transport.close();
  }
  assert.equal(received.length, before + 1);
  return received[received.length - 1]!;
}

for (const type of ['rsa', 'ed25519'] as const) {
  test(`an ${type} signature verifies with mailauth on the bytes an SMTP server received`, async () => {
    const { privateKey, publicKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
    const bulletin = await compileText(
      bulletinText(
        { subject: 'Καλημέρα: signed bulletin', 'in-reply-to': '6' },
        'Hello {{subscriber.name}},\n\n    indented  text\twith tabs  \n\n' + 'long line '.repeat(200),
      ),
      { dkim: { domain: DOMAIN, selector: SELECTOR, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }, verp: true },
    );

    for (const recipient of [JANE, { ...TARO, name: 'Taro  "T."  Yamada ' }]) {
      const message = bulletin.render(recipient);
      assertWellFormed(message.raw);
      assert.match(message.raw.toString('latin1'), /^DKIM-Signature: v=1; a=(rsa|ed25519)-sha256; c=relaxed\/relaxed; d=example\.net;\r\n s=bulletin2026;/);
      const delivery = await sendThroughSmtp(message.raw, message.envelope);
      assert.equal(delivery.from, message.envelope.from);
      assert.deepEqual(delivery.to, message.envelope.to);

      const result = await dkimVerify(delivery.data, { resolver: resolverFor(publicKey, type) });
      assert.equal(result.results.length, 1);
      const [signature] = result.results;
      assert.equal(signature?.status.result, 'pass', JSON.stringify(signature?.status));
      assert.equal(signature?.signingDomain, DOMAIN);
      // mailauth reports the h= list it verified against (a field its typings leave out).
      const verified = signature as typeof signature & { signingHeaders?: { keys?: string } };
      const signed = (verified?.signingHeaders?.keys ?? '')
        .toLowerCase()
        .split(':')
        .map((name) => name.trim());
      for (const name of ['from', 'subject', 'date', 'message-id', 'list-id', 'list-unsubscribe', 'list-unsubscribe-post']) {
        assert.ok(signed.includes(name), `h= does not cover ${name}: ${signed.join(':')}`);
      }
    }
  });
}

test('a signature no longer verifies once a signed header or the body is changed', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const bulletin = await compileText(bulletinText({ subject: 'Signed' }, 'Hello {{subscriber.name}}'), {
    dkim: { domain: DOMAIN, selector: SELECTOR, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  });
  const { raw, envelope } = bulletin.render(JANE);
  const resolver = resolverFor(publicKey, 'rsa');
  const verdict = async (bytes: Buffer) => (await dkimVerify(bytes, { resolver })).results[0]?.status.result;
  assert.equal(await verdict((await sendThroughSmtp(raw, envelope)).data), 'pass');

  const text = raw.toString('latin1');
  const tampered = [
    text.replace('Subject: [ExampleNet-Bulletins] Signed', 'Subject: [ExampleNet-Bulletins] Signed!'),
    text.replace(/List-Unsubscribe: <https:\/\/lists\.example\.net\/u\/[^>]+>/, 'List-Unsubscribe: <https://evil.example/u/x>'),
    text.replace('Read past bulletins', 'Read past bulletinz'),
    // Oversigning: a second From added in transit is caught.
    text.replace('\r\nFrom: ', '\r\nFrom: Mallory <mallory@example.org>\r\nFrom: '),
  ];
  for (const [index, variant] of tampered.entries()) {
    assert.notEqual(variant, text, `tampering ${index} changed nothing`);
    assert.notEqual(await verdict(Buffer.from(variant, 'latin1')), 'pass', `tampering ${index} still passes`);
  }
  // Refolding by a relay (relaxed canonicalization) does not break it.
  const refolded = text.replace(/(List-Unsubscribe: <[^>]+>,)\r\n (<mailto)/, '$1 $2');
  assert.notEqual(refolded, text);
  assert.equal(await verdict(Buffer.from(refolded, 'latin1')), 'pass');
});

test('the body hash equals a plain relaxed canonicalization of the whole body', async () => {
  // The composer canonicalizes fixed chunks once per bulletin; this checks that shortcut against
  // the RFC 6376 rule applied to the whole body, with values full of awkward whitespace.
  const privateKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, 'Hello {{subscriber.name}}  \n\n{{subscriber.attributes.note}}\t\n\n    code  block\n'), {
    dkim: { domain: DOMAIN, selector: SELECTOR, privateKey },
  });
  const notes = ['', ' ', 'trailing  ', '\t\ttabs\t', 'a  b\r\n  c  \r\n', ' x '.repeat(60)];
  for (const note of notes) {
    const { raw } = bulletin.render({ ...JANE, name: `  Jane\t Doe  `, attributes: { note } });
    const text = raw.toString('latin1');
    const body = raw.subarray(text.indexOf('\r\n\r\n') + 4);
    const bh = /bh=([^;]+);/.exec(text)?.[1];
    assert.equal(bh, createHash('sha256').update(canonicalBody(body)).digest('base64'), JSON.stringify(note));
  }
});

test('unusable DKIM settings are configuration errors before any message', async () => {
  const text = bulletinText({ subject: 'Hi' }, 'Body');
  const weak = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const good = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  for (const [dkim, pattern] of [
    [{ domain: DOMAIN, selector: SELECTOR, privateKey: 'not a key' }, /cannot be read/],
    [{ domain: DOMAIN, selector: SELECTOR, privateKey: weak }, /512 bits/],
    [{ domain: DOMAIN, selector: SELECTOR, privateKey: ec }, /RSA or Ed25519/],
    [{ domain: DOMAIN, selector: 'bad selector;', privateKey: good }, /selector/],
    [{ domain: 'not a domain!', selector: SELECTOR, privateKey: good }, /domain/],
  ] as const) {
    await assert.rejects(compileText(text, { dkim }), { name: 'BulletinError', code: 'CONFIG', message: pattern });
  }
});

/** The TXT record a domain publishes for a public key: Ed25519 as the bare 32 bytes (RFC 8463). */
function txtRecord(publicKey: KeyObject, type: 'rsa' | 'ed25519'): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=${type}; p=${(type === 'ed25519' ? der.subarray(der.length - 32) : der).toString('base64')}`;
}

/**
 * dkimpy (Debian's python3-dkim, what `dkimverify` runs) verifying the signature at `index`, with
 * its DNS lookups answered from `records` (name → TXT).
 */
async function dkimpyVerifies(message: Buffer, index: number, records: Record<string, string>): Promise<boolean> {
  const script = [
    'import dkim, json, sys',
    'records = json.loads(sys.argv[2])',
    'def dns(name, timeout=5):',
    '    return records.get(name.decode().rstrip("."), "").encode()',
    'message = open(sys.argv[1], "rb").read()',
    'print("pass" if dkim.DKIM(message).verify(idx=int(sys.argv[3]), dnsfunc=dns) else "fail")',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-dkim-'));
  try {
    await writeFile(join(dir, 'message.eml'), message);
    const { stdout } = await promisify(execFile)('/usr/bin/python3', ['-c', script, join(dir, 'message.eml'), JSON.stringify(records), String(index)]);
    return stdout.trim() === 'pass';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('an RSA and an Ed25519 key sign side by side, and each signature verifies with dkimpy and mailauth', async () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const bulletin = await compileText(bulletinText({ subject: 'Two signatures' }, 'Hello {{subscriber.name}},\n\n    indented  text\twith tabs  \n'), {
    // Given Ed25519 first: the RSA signature still goes on top.
    dkim: [
      { domain: DOMAIN, selector: 'ed2026', privateKey: pem(ed.privateKey) },
      { domain: DOMAIN, selector: 'rsa2026', privateKey: pem(rsa.privateKey) },
    ],
  });
  assert.deepEqual(
    bulletin.dkimSignatures.map((signature) => `${signature.algorithm} ${signature.selector}`),
    ['rsa-sha256 rsa2026', 'ed25519-sha256 ed2026'],
  );
  const records: Record<string, string> = {
    [`rsa2026._domainkey.${DOMAIN}`]: txtRecord(rsa.publicKey, 'rsa'),
    [`ed2026._domainkey.${DOMAIN}`]: txtRecord(ed.publicKey, 'ed25519'),
  };
  const message = bulletin.render(JANE);
  assertWellFormed(message.raw);
  const text = message.raw.toString('latin1');
  assert.match(
    text,
    /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.net;\r\n s=rsa2026;[\s\S]*?\r\nDKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=example\.net;\r\n s=ed2026;/,
  );
  const delivery = await sendThroughSmtp(message.raw, message.envelope);

  assert.equal(await dkimpyVerifies(delivery.data, 0, records), true, 'dkimpy: the RSA signature does not verify');
  assert.equal(await dkimpyVerifies(delivery.data, 1, records), true, 'dkimpy: the Ed25519 signature does not verify');
  // A verifier that finds the wrong key for a selector says so (the check can fail).
  assert.equal(
    await dkimpyVerifies(delivery.data, 0, {
      ...records,
      [`rsa2026._domainkey.${DOMAIN}`]: txtRecord(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, 'rsa'),
    }),
    false,
  );

  const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
    const record = records[name];
    if (rrtype === 'TXT' && record !== undefined) return [[record]];
    throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: 'ENOTFOUND' });
  };
  const result = await dkimVerify(delivery.data, { resolver });
  assert.deepEqual(
    result.results.map((signature) => [signature.status.result, signature.signingDomain]),
    [
      ['pass', DOMAIN],
      ['pass', DOMAIN],
    ],
  );
});

test('two DKIM keys must be one of each kind, with two selectors', async () => {
  const text = bulletinText({ subject: 'Hi' }, 'Body');
  const pem = (type: 'rsa' | 'ed25519') =>
    (type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 1024 }) : generateKeyPairSync('ed25519')).privateKey
      .export({ type: 'pkcs8', format: 'pem' })
      .toString();
  for (const [dkim, pattern] of [
    [
      [
        { domain: DOMAIN, selector: 'a', privateKey: pem('rsa') },
        { domain: DOMAIN, selector: 'b', privateKey: pem('rsa') },
      ],
      /not two RSA keys/,
    ],
    [
      [
        { domain: DOMAIN, selector: 'a', privateKey: pem('rsa') },
        { domain: DOMAIN, selector: 'a', privateKey: pem('ed25519') },
      ],
      /two selectors/,
    ],
  ] as const) {
    await assert.rejects(compileText(text, { dkim }), { name: 'BulletinError', code: 'CONFIG', message: pattern });
  }
});

test('DKIM alignment with From: strict, relaxed (same organizational domain), or none', () => {
  assert.equal(dkimAlignment('example.net', 'news@example.net'), 'strict');
  assert.equal(dkimAlignment('lists.example.net', 'news@example.net'), 'relaxed');
  assert.equal(dkimAlignment('mail.example.co.uk', 'news@www.example.co.uk'), 'relaxed');
  assert.equal(dkimAlignment('example.co.uk', 'news@other.co.uk'), 'none');
  assert.equal(dkimAlignment('esp.example.com', 'news@example.net'), 'none');
});
