// `bulletin preview`: one subscriber's copy, as text, HTML or a whole message; mistakes caught first.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { LIST_FLAGS } from './helpers/app.js';
import { runCli, runOk } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
  await runOk(['list', 'create', 'news', ...LIST_FLAGS], db);
  await runOk(['subscribers', 'add', 'kim@example.net', '--list', 'news', '--name', 'Kim <b>K</b>', '--attr', 'city=Perth'], db);
});
after(async () => {
  await db?.drop();
});

async function source(name: string, text: string): Promise<string> {
  const path = join(db.cwd, name);
  await writeFile(path, text);
  return path;
}

test('text for a sample subscriber, HTML for a real one (escaped), a whole message that parses', async () => {
  const file = await source(
    'ok.md',
    '---\nsubject: Storm <warning>\nlist: news\n---\nHello {{subscriber.name}} in {{default subscriber.attributes.city "your town"}}.\n',
  );
  const text = (await runOk(['preview', file], db)) as string;
  assert.match(text, /Hello Sample Subscriber in your town\./);
  const html = (await runOk(['preview', file, '--to', 'kim@example.net', '--format', 'html'], db)) as string;
  assert.match(html, /Hello Kim &lt;b&gt;K&lt;\/b&gt; in Perth\./);
  assert.doesNotMatch(html, /<b>K<\/b>/);
  const out = join(db.cwd, 'kim.eml');
  await runOk(['preview', file, '--to', 'kim@example.net', '--format', 'eml', '--out', out], db);
  const parsed = await simpleParser(await (await import('node:fs/promises')).readFile(out));
  assert.equal(parsed.subject, '[ExampleNet-Bulletins] Storm <warning>');
  assert.match(parsed.text ?? '', /Hello Kim <b>K<\/b> in Perth/);
});

test('a misspelt variable is an error naming file, line and column, before anything exists', async () => {
  const file = await source('typo.md', '---\nsubject: Typo\n---\nHello\n{{subscriber.nmae}}\n');
  const result = await runCli(['preview', file, '--list', 'news'], db);
  assert.equal(result.code, 65);
  assert.match(result.stderr, /typo\.md:5:\d+/);
  assert.match(result.stderr, /subscriber\.nmae/);
  const noSubject = await source('nosubject.md', '---\nlist: news\n---\nHello\n');
  const missing = await runCli(['preview', noSubject], db);
  assert.equal(missing.code, 65);
  assert.match(missing.stderr, /subject/);
  const fine = await source('fine.md', '---\nsubject: Fine\n---\nHello\n');
  const unknown = await runCli(['preview', fine, '--list', 'news', '--to', 'stranger@example.net'], db);
  assert.equal(unknown.code, 66);
});

test('preview --archive shows the copy the archive publishes, and every place a subscriber value is empty there', async () => {
  const bare = await source(
    'bare.md',
    '---\nsubject: Delays\nlist: news\n---\nDear {{default subscriber.name "customer"}},\n\nmail to **{{subscriber.email}}** may have arrived late; you are on the {{subscriber.attributes.plan}} plan.\n\n{{#if subscriber.name}}Thanks, {{subscriber.name}}.{{/if}}\n',
  );
  const archive = await runCli(['preview', bare, '--archive'], db);
  assert.equal(archive.code, 0, archive.stderr);
  assert.match(archive.stdout, /^Dear customer,\n\nmail to {2}may have arrived late; you are on the\s{2}plan\.\n+$/);
  assert.doesNotMatch(archive.stdout, /Thanks|Sample Subscriber|subscriber@example\.com|\/u\//);
  const warnings = archive.stderr.trim().split('\n');
  assert.equal(warnings.length, 2, archive.stderr);
  assert.match(
    warnings[0]!,
    /^warning: .*bare\.md:7:11: \{\{subscriber\.email\}\} prints nothing in the archive copy, which has no subscriber; write \{\{default subscriber\.email "…"\}\} or put it inside \{\{#if subscriber\.…\}\}…\{\{\/if\}\}\.$/,
  );
  assert.match(warnings[1]!, /bare\.md:7:\d+: \{\{subscriber\.attributes\.plan\}\} prints nothing/);
  const html = await runCli(['preview', bare, '--archive', '--format', 'html'], db);
  assert.match(html.stdout, /<p>mail to <strong><\/strong> may have arrived late/);
  // The same warnings come with a subscriber's preview, and the whole message cannot be an archive copy.
  assert.equal((await runCli(['preview', bare, '--to', 'kim@example.net'], db)).stderr.trim().split('\n').length, 2);
  assert.equal((await runCli(['preview', bare, '--archive', '--format', 'eml'], db)).code, 2);

  // Written by the rule (a fallback, or inside {{#if}}), both copies read well and nothing is flagged.
  const good = await source(
    'good.md',
    '---\nsubject: Delays\nlist: news\n---\nmail to **{{default subscriber.email "your address"}}** may have arrived late{{#if subscriber.attributes.plan}} on the {{subscriber.attributes.plan}} plan{{/if}}.\n',
  );
  const clean = await runCli(['preview', good, '--archive'], db);
  assert.equal(clean.stderr, '');
  assert.equal(clean.stdout.trim(), 'mail to your address may have arrived late.');
  assert.match((await runOk(['preview', good, '--to', 'kim@example.net'], db)) as string, /mail to kim@example\.net may have arrived late\./);
});

test('the send confirmation warns about empty subscriber fields in the archive copy and names the DKIM signatures', async () => {
  const bare = await source('confirm.md', '---\nsubject: Confirm\nlist: news\n---\nYou are receiving this at {{subscriber.email}}.\n');
  const outbox = join(db.cwd, 'outbox-confirm');
  const sent = await runCli(['send', bare, '--outbox', outbox, '--yes'], db);
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stderr, /^ {2}dkim: {7}not signed/m);
  assert.match(sent.stderr, /^ {2}warning: archive copy: .*confirm\.md:5:27: \{\{subscriber\.email\}\} prints nothing in the archive copy/m);

  // Two keys, signing for a domain that does not align with From (noreply@example.net): said, and warned.
  const { generateKeyPairSync } = await import('node:crypto');
  const pem = (type: 'rsa' | 'ed25519') =>
    (type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519')).privateKey
      .export({ type: 'pkcs8', format: 'pem' })
      .toString();
  await writeFile(join(db.cwd, 'rsa.pem'), pem('rsa'));
  await writeFile(join(db.cwd, 'ed.pem'), pem('ed25519'));
  const keys = { DKIM_SELECTOR: 'rsa2026,ed2026', DKIM_PRIVATE_KEY_FILE: `${join(db.cwd, 'rsa.pem')},${join(db.cwd, 'ed.pem')}` };
  const good = await source('aligned.md', '---\nsubject: Aligned\nlist: news\n---\nHello {{default subscriber.name "customer"}}\n');
  const aligned = await runCli(['send', good, '--outbox', outbox, '--yes'], { ...db, env: { ...db.env, ...keys, DKIM_DOMAIN: 'mail.example.net' } });
  assert.equal(aligned.code, 0, aligned.stderr);
  assert.match(
    aligned.stderr,
    /^ {2}dkim: {7}d=mail\.example\.net \(rsa-sha256 s=rsa2026, ed25519-sha256 s=ed2026\), aligned with From example\.net \(relaxed\)$/m,
  );
  assert.doesNotMatch(aligned.stderr, /warning:/);
  const other = await source('misaligned.md', '---\nsubject: Misaligned\nlist: news\n---\nHello {{default subscriber.name "customer"}}\n');
  const misaligned = await runCli(['send', other, '--outbox', outbox, '--yes'], { ...db, env: { ...db.env, ...keys, DKIM_DOMAIN: 'esp.example.com' } });
  assert.equal(misaligned.code, 0, misaligned.stderr);
  assert.match(misaligned.stderr, /^ {2}dkim: {7}d=esp\.example\.com \(rsa-sha256 s=rsa2026, ed25519-sha256 s=ed2026\), NOT aligned with From example\.net$/m);
  assert.match(
    misaligned.stderr,
    /^ {2}warning: DKIM signs as d=esp\.example\.com, which does not align with the From domain example\.net: receivers checking DMARC will not count the signature/m,
  );
});

test('every template and front-matter mistake of the audit exits 65 with file:line:column, never 70', async () => {
  const cases: [string, string, RegExp][] = [
    ['lookup.md', '---\nsubject: x\nlist: news\n---\n{{lookup}}\n', /lookup\.md:5:1: /],
    ['with.md', '---\nsubject: x\nlist: news\n---\n{{#with}}x{{/with}}\n', /with\.md:5:1: /],
    ['each.md', '---\nsubject: x\nlist: news\n---\n{{#each}}x{{/each}}\n', /each\.md:5:1: /],
    ['if.md', '---\nsubject: x\nlist: news\n---\n{{#if}}x{{/if}}\n', /if\.md:5:1: /],
    ['proto.md', '---\nsubject: x\nlist: news\n---\n{{lookup this "constructor"}}\n', /proto\.md:5:1: /],
    ['quotes.md', `---\nsubject: x\nlist: news\n---\n${'>'.repeat(100_000)}\n`, /quotes\.md:5:\d+: /],
    ['nested.md', `---\nsubject: x\nlist: news\n---\n${'{{#if list.name}}'.repeat(5_000)}x${'{{/if}}'.repeat(5_000)}\n`, /nested\.md:5:\d+: /],
    ['alias.md', '---\nsubject: &s x\nlist: news\nsummary: *s\n---\nBody\n', /alias\.md:2:\d+: /],
  ];
  for (const [name, text, place] of cases) {
    const result = await runCli(['preview', await source(name, text)], db);
    assert.equal(result.code, 65, `${name}: ${result.stderr}`);
    assert.match(result.stderr, place, name);
    assert.doesNotMatch(result.stderr, /internal error|at .*\.ts:\d+/, name);
  }
});
