// SpamAssassin 4.0.1, which does not know Ed25519, on a bulletin signed with an RSA and an Ed25519
// key: it finds the RSA signature valid (DKIM_VALID, DKIM_VALID_AU) where an Ed25519 signature
// alone reads as DKIM_INVALID. Its DNS lookups go to a DNS server on 127.0.0.1 serving the keys.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { bulletinText, compileText, JANE } from './render-fixtures.js';

const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
function txtRecord(publicKey: KeyObject, type: 'rsa' | 'ed25519'): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `v=DKIM1; k=${type}; p=${(type === 'ed25519' ? der.subarray(der.length - 32) : der).toString('base64')}`;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
let dir: string;
let dns: ReturnType<typeof spawn>;
let dnsPort = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulletin-spamassassin-'));
  await writeFile(
    join(dir, 'zone.json'),
    JSON.stringify({ 'rsa2026._domainkey.example.net': txtRecord(rsa.publicKey, 'rsa'), 'ed2026._domainkey.example.net': txtRecord(ed.publicKey, 'ed25519') }),
  );
  dns = spawn('perl', ['test/fixtures/dns-txt.pl', join(dir, 'zone.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await createInterface({ input: dns.stdout! })[Symbol.asyncIterator]().next();
  dnsPort = Number(/listening (\d+)/.exec(String(first.value))?.[1]);
  assert.ok(dnsPort > 0, 'the DNS server did not start');
});
after(async () => {
  dns?.kill();
  await rm(dir, { recursive: true, force: true });
});

/** SpamAssassin's verdict on a message: the names of the rules that hit. */
async function spamAssassinRules(message: Buffer): Promise<string[]> {
  const child = execFile(
    'spamassassin',
    [
      '-t',
      '-x',
      '-p',
      join(dir, 'user_prefs'),
      '--cf',
      `dns_server 127.0.0.1:${dnsPort}`,
      '--cf',
      'dns_available yes',
      '--cf',
      'skip_rbl_checks 1',
      '--cf',
      'use_bayes 0',
    ],
    // Its home is the test's own directory: nothing is left in the real one.
    { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, HOME: dir } },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
  child.stdin!.end(message);
  await new Promise((resolve) => child.on('close', resolve));
  const status = /^X-Spam-Status: [^\n]*(?:\n\t[^\n]*)*/m.exec(output)?.[0] ?? '';
  return (/tests=([^ ]*(?:\s+[A-Z_,0-9]+)*)/.exec(status.replace(/\n\t/g, ' '))?.[1] ?? '').split(/[,\s]+/).filter(Boolean);
}

test('SpamAssassin finds a valid author signature with RSA beside Ed25519, and none with Ed25519 alone', async () => {
  const text = bulletinText({ subject: 'Maintenance on Saturday' }, 'Hello {{default subscriber.name "customer"}},\n\nThe mail service moves to new hardware.');
  const both = await compileText(text, {
    dkim: [
      { domain: 'example.net', selector: 'rsa2026', privateKey: pem(rsa.privateKey) },
      { domain: 'example.net', selector: 'ed2026', privateKey: pem(ed.privateKey) },
    ],
  });
  const rules = await spamAssassinRules(both.render(JANE).raw);
  assert.ok(rules.includes('DKIM_VALID') && rules.includes('DKIM_VALID_AU'), rules.join(','));
  assert.ok(!rules.includes('DKIM_INVALID'), rules.join(','));

  const alone = await compileText(text, { dkim: { domain: 'example.net', selector: 'ed2026', privateKey: pem(ed.privateKey) } });
  const aloneRules = await spamAssassinRules(alone.render(JANE).raw);
  assert.ok(aloneRules.includes('DKIM_INVALID') && !aloneRules.includes('DKIM_VALID'), aloneRules.join(','));
});
