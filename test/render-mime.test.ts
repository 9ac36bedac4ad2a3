// Composed messages, read back by an independent parser (mailparser): headers, parts, encodings,
// the stable Message-ID, escaping, international text, very long lines and header injection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser, type ParsedMail } from 'mailparser';
import { verifyToken } from '../src/domain/token.js';
import { HEADER_PIPELINE, type Recipient } from '../src/render/index.js';
import { assertWellFormed, bulletinText, compileText, headerBlock, JANE, KEYRING, SIGNING, SEND_DATE, sampleList, TARO } from './render-fixtures.js';

const BODY = [
  'Hello {{default subscriber.name "subscriber"}},',
  '',
  'The core routers will be **replaced** on Saturday. Questions go to {{list.address}}.',
  '',
  '{{#if subscriber.attributes.city}}',
  'The {{subscriber.attributes.city}} office stays open.',
  '{{/if}}',
].join('\n');

async function parse(raw: Buffer): Promise<ParsedMail> {
  return simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
}

function header(raw: Buffer, name: string): string {
  const match = new RegExp(`^${name}: ((?:.*)(?:\\r\\n[ \\t].*)*)\\r$`, 'mi').exec(headerBlock(raw));
  assert.ok(match, `no ${name} header`);
  return match[1]!.replace(/\r\n[ \t]/g, ' ');
}

test('every standard header is present, in pipeline order, with the expected value', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Network maintenance' }, BODY));
  const { raw, messageId } = bulletin.render(JANE);
  assertWellFormed(raw);
  const mail = await parse(raw);

  assert.deepEqual(mail.from?.value, [{ address: 'news@example.net', name: 'ExampleNet News' }]);
  assert.deepEqual((Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value, [{ address: 'jane@example.org', name: 'Jane Doe' }]);
  assert.equal(mail.subject, '[ExampleNet-Bulletins] Network maintenance');
  assert.equal(mail.date?.toISOString(), SEND_DATE.toISOString());
  assert.equal(header(raw, 'Date'), 'Sat, 28 Nov 2026 09:30:00 +0000');
  assert.equal(mail.messageId, messageId);
  assert.match(messageId, /^<[0-9a-f]{32}@lists\.example\.net>$/);
  assert.equal(header(raw, 'MIME-Version'), '1.0');
  assert.equal(header(raw, 'List-Id'), 'ExampleNet-Bulletins <bulletins.lists.example.net>');
  assert.equal(header(raw, 'List-Post'), 'NO');
  assert.equal(header(raw, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
  assert.equal(header(raw, 'List-Archive'), '<https://lists.example.net/archive/bulletins/>');
  assert.equal(header(raw, 'List-Help'), '<https://lists.example.net/help/bulletins>, <mailto:news@example.net?subject=help>');
  assert.equal(header(raw, 'Precedence'), 'bulk');
  assert.equal(header(raw, 'Auto-Submitted'), 'auto-generated');

  const list = mail.headers.get('list') as { unsubscribe: { url: string; mail: string }; id: { id: string } };
  assert.equal(list.id.id, 'bulletins.lists.example.net');
  const token = list.unsubscribe.url.replace('https://lists.example.net/u/', '');
  assert.deepEqual(verifyToken(token, 'unsubscribe', KEYRING), { listId: 12, subscriberId: JANE.id, subscription: 0 });
  assert.equal(list.unsubscribe.mail, `bulletins-unsubscribe@lists.example.net?subject=unsubscribe%20${token}`);
  // Never folded inside a URI: each URI sits whole on one line.
  assert.match(headerBlock(raw), new RegExp(`^List-Unsubscribe: <https://lists\\.example\\.net/u/${token}>,\\r\\n <mailto:[^\\r\\n]+>\\r$`, 'm'));

  const names = headerBlock(raw)
    .split('\r\n')
    .filter((line) => /^[A-Za-z-]+:/.test(line))
    .map((line) => line.slice(0, line.indexOf(':')));
  assert.deepEqual(names, [
    'From',
    'To',
    'Subject',
    'Date',
    'Message-ID',
    'MIME-Version',
    'List-Id',
    'List-Unsubscribe',
    'List-Archive',
    'List-Help',
    'List-Post',
    'List-Unsubscribe-Post',
    'Precedence',
    'Auto-Submitted',
    'Content-Type',
  ]);
  assert.deepEqual(
    HEADER_PIPELINE.map(([step]) => step),
    [
      'from',
      'to',
      'subject',
      'date',
      'message-id',
      'threading',
      'mime-version',
      'rfc2919-list-id',
      'rfc2369-list-fields',
      'rfc8058-one-click',
      'bulk-mail',
      'content-type',
    ],
  );
});

test('the body is multipart/alternative: text then HTML, UTF-8, quoted-printable, decoding to the previews', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, BODY));
  const { raw } = bulletin.render(JANE);
  const text = raw.toString('latin1');
  const contentType = /^Content-Type: multipart\/alternative; boundary="(=_[^"]+)"\r$/m.exec(text);
  assert.ok(contentType, 'not multipart/alternative with a quoted boundary');
  const boundary = contentType[1]!;
  const parts = text.split(`--${boundary}`);
  assert.equal(parts.length, 4, 'expected two parts and a closing delimiter');
  assert.match(parts[1]!, /^\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/);
  assert.match(parts[2]!, /^\r\nContent-Type: text\/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/);
  assert.equal(parts[3], '--\r\n');

  const mail = await parse(raw);
  assert.equal(mail.html, bulletin.renderHtml(JANE));
  assert.equal(mail.text, bulletin.renderText(JANE));
  assert.match(mail.html || '', /<p>The Athens office stays open\.<\/p>/);
  assert.match(mail.text ?? '', /Hello Jane Doe,/);
  assert.deepEqual(bulletin.encodings, { text: 'quoted-printable', html: 'quoted-printable' });
});

test('personal values that stress quoted-printable survive the piecewise encoding', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, `${BODY}\n\nEnd: {{subscriber.attributes.tail}}`));
  const awkward: Recipient[] = [
    { id: 1, email: 'a@example.org', name: 'Trailing spaces   ', attributes: { city: '.starts with a dot', tail: 'ends with tab\t' } },
    { id: 2, email: 'b@example.org', name: 'a=b=?c?= =3D', attributes: { city: 'x'.repeat(300), tail: ' ' } },
    { id: 3, email: 'c@example.org', name: '', attributes: { city: 'line\r\nbreaks\rand\nmore', tail: '' } },
    { id: 4, email: 'd@example.org', name: 'Ünïcödé 🎉', attributes: { city: '\u00a0nbsp\u2028sep', tail: '=' } },
    // NUL separates personal pieces in one template call; a value holding one takes the slow path.
    { id: 5, email: 'e@example.org', name: 'Nul\u0000Byte', attributes: { city: 'a\u0000b', tail: '\u0000' } },
  ];
  for (const recipient of awkward) {
    const { raw } = bulletin.render(recipient);
    assertWellFormed(raw);
    const mail = await parse(raw);
    // A line break inside a value travels as a quoted-printable hard line break: the parser hands
    // it back as LF, the platform's newline, whatever the value had. A lone CR stays a CR.
    const newlines = (text: string): string => text.replace(/\r\n/g, '\n');
    assert.equal(mail.html, newlines(bulletin.renderHtml(recipient)), `HTML of recipient ${recipient.id}`);
    assert.equal(mail.text, newlines(bulletin.renderText(recipient)), `text of recipient ${recipient.id}`);
  }
});

test('the Message-ID is stable per bulletin and subscriber, and never shared', async () => {
  const text = bulletinText({ subject: 'Hi' }, BODY);
  const bulletin = await compileText(text);
  const first = bulletin.render(JANE);
  assert.equal(bulletin.render(JANE).messageId, first.messageId);
  assert.ok(bulletin.render(JANE).raw.equals(first.raw), 'a retry is not byte-identical');
  // A resume compiles again: same key, same id.
  assert.equal((await compileText(text, { date: new Date() })).render(JANE).messageId, first.messageId);
  // Another recipient, another bulletin, another secret: another id.
  assert.notEqual(bulletin.render(TARO).messageId, first.messageId);
  assert.notEqual((await compileText(text, { bulletinKey: '8' })).render(JANE).messageId, first.messageId);
  assert.notEqual((await compileText(text, { signing: { ...SIGNING, secret: 'another-secret' } })).render(JANE).messageId, first.messageId);
  // Another installation, even with the same secret: another id.
  assert.notEqual(
    (await compileText(text, { signing: { ...SIGNING, installationId: 'c0ffee00-0000-4000-8000-000000000000' } })).render(JANE).messageId,
    first.messageId,
  );
  // A bulletin begun before installations had an id keeps its ids the old way (from the secret alone).
  const legacy = (await compileText(text, { messageIdVersion: 1 })).render(JANE).messageId;
  assert.notEqual(legacy, first.messageId);
  assert.equal(
    (await compileText(text, { messageIdVersion: 1, signing: { ...SIGNING, installationId: 'c0ffee00-0000-4000-8000-000000000000' } })).render(JANE).messageId,
    legacy,
  );
  const ids = new Set<string>();
  for (let id = 1; id <= 2000; id++) ids.add(bulletin.render({ id, email: `s${id}@example.org`, name: null, attributes: {} }).messageId);
  assert.equal(ids.size, 2000);
  // The address is no input at all; consecutive subscriber ids give unrelated values.
  assert.ok(!first.messageId.includes('jane'));
  assert.equal(bulletin.render({ ...JANE, email: 'someone.else@example.org' }).messageId, first.messageId);
  const next = bulletin.render({ ...JANE, id: JANE.id + 1 }).messageId;
  assert.notEqual(next.slice(1, 9), first.messageId.slice(1, 9));
});

test("a follow-up bulletin points at the same recipient's copy of the earlier one", async () => {
  const earlier = await compileText(bulletinText({ subject: 'First' }, 'One'), { bulletinKey: '41' });
  const later = await compileText(bulletinText({ subject: 'Second', 'in-reply-to': '41' }, 'Two'), { bulletinKey: '42' });
  for (const recipient of [JANE, TARO]) {
    const mail = await parse(later.render(recipient).raw);
    const parent = earlier.render(recipient).messageId;
    assert.equal(mail.inReplyTo, parent);
    assert.equal(mail.references, parent);
  }
  const withoutThread = await parse(earlier.render(JANE).raw);
  assert.equal(withoutThread.inReplyTo, undefined);
  // The caller may resolve another naming of the parent to its key.
  const resolved = await compileText(bulletinText({ subject: 'Third', 'in-reply-to': 'first-news' }, 'Three'), {
    bulletinKey: '43',
    inReplyToBulletinKey: '41',
  });
  assert.equal((await parse(resolved.render(JANE).raw)).inReplyTo, earlier.render(JANE).messageId);
});

test('a Greek subject and a Japanese name use RFC 2047 encoded-words and decode exactly', async () => {
  const subject = 'Καλημέρα κόσμε: η ενημέρωση του Δεκεμβρίου για όλους τους συνδρομητές μας';
  const bulletin = await compileText(bulletinText({ subject }, 'Γεια σου {{subscriber.name}}'), {
    list: sampleList({ from: { name: 'Ομάδα Δικτύου', address: 'noc@example.net' } }),
  });
  const { raw } = bulletin.render(TARO);
  assertWellFormed(raw);
  assert.match(header(raw, 'Subject'), /^\[ExampleNet-Bulletins\] =\?UTF-8\?B\?/);
  assert.match(header(raw, 'To'), /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= <taro@example\.jp>$/);
  const mail = await parse(raw);
  assert.equal(mail.subject, `[ExampleNet-Bulletins] ${subject}`);
  assert.equal(mail.from?.value[0]?.name, 'Ομάδα Δικτύου');
  assert.equal((Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value[0]?.name, '山田 太郎');
  assert.match(mail.html || '', /Γεια σου 山田 太郎/);
});

test('a mostly non-Latin bulletin is sent in base64, a Latin one in quoted-printable', async () => {
  const greek = 'Η συντήρηση του δικτύου θα γίνει το Σάββατο το πρωί. Ευχαριστούμε για την υπομονή σας. '.repeat(30);
  const bulletin = await compileText(bulletinText({ subject: 'Συντήρηση', lang: 'el' }, `${greek}\n\n{{subscriber.name}}`), {
    templates: {
      htmlLayout: { path: 'layout.html.hbs', text: '<html lang="{{bulletin.lang}}">{{{body}}}</html>' },
      textLayout: { path: 'layout.text.hbs', text: '{{{body}}}' },
      partials: {},
    },
  });
  assert.deepEqual(bulletin.encodings, { text: 'base64', html: 'base64' });
  const { raw } = bulletin.render(TARO);
  assertWellFormed(raw);
  assert.match(raw.toString('latin1'), /Content-Transfer-Encoding: base64\r\n\r\n[A-Za-z0-9+/]{76}\r\n/);
  const mail = await parse(raw);
  assert.equal(mail.html, bulletin.renderHtml(TARO));
  assert.match(mail.text ?? '', /山田 太郎/);
});

test('a 20,000-character paragraph is wrapped into short encoded lines and decodes intact', async () => {
  const words = Array.from({ length: 20_000 / 10 }, (_, i) => `word${String(i).padStart(5, '0')}`).join(' ');
  const noSpaces = 'x'.repeat(20_000);
  const bulletin = await compileText(bulletinText({ subject: 'Long' }, `${words}\n\n${noSpaces}\n\n{{subscriber.attributes.long}}`));
  const recipient = { ...JANE, attributes: { long: 'é'.repeat(20_000) } };
  const { raw } = bulletin.render(recipient);
  assertWellFormed(raw);
  const mail = await parse(raw);
  assert.ok(mail.html?.toString().includes(`<p>${words}</p>`));
  assert.ok(mail.html?.toString().includes(`<p>${noSpaces}</p>`));
  assert.ok(mail.html?.toString().includes('é'.repeat(20_000)));
  assert.equal(mail.html, bulletin.renderHtml(recipient));
});

test('an HTML-looking subject is escaped in the HTML part and intact in the Subject header', async () => {
  const subject = '<img src=x onerror=alert(1)>';
  const bulletin = await compileText(bulletinText({ subject }, 'Body'));
  const { raw } = bulletin.render(JANE);
  const mail = await parse(raw);
  assert.equal(mail.subject, `[ExampleNet-Bulletins] ${subject}`);
  const html = mail.html || '';
  assert.ok(!html.includes('<img src=x'), 'raw markup from the subject reached the HTML');
  assert.match(html, /<title>&lt;img src&#x3D;x onerror&#x3D;alert\(1\)&gt;<\/title>/);
  assert.match(html, /<h1[^>]*>&lt;img src&#x3D;x onerror&#x3D;alert\(1\)&gt;<\/h1>/);
  assert.match(mail.text ?? '', /^<img src=x onerror=alert\(1\)>$/m);
});

test('CR and LF in names, addresses, attributes and list fields never create a header', async () => {
  const injectedName = 'Eve\r\nBcc: victim@example.org\r\nX-Injected: yes';
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, `{{subscriber.attributes.note}}\n\n${BODY}`), {
    list: sampleList({ name: 'List\r\nX-Injected: list', from: { name: 'News\nX-Injected: from', address: 'news@example.net' } }),
  });
  const recipient = {
    id: 5,
    email: 'eve@example.org',
    name: injectedName,
    attributes: { note: '\r\nX-Injected: attribute\r\n\r\n--=_bulletin_x\r\nContent-Type: text/html\r\n\r\n<script>x</script>', city: 'A\r\nB' },
  };
  const { raw } = bulletin.render(recipient);
  assertWellFormed(raw);
  const mail = await parse(raw);
  for (const name of mail.headers.keys()) assert.ok(!['bcc', 'x-injected'].includes(name), `header ${name} was injected`);
  assert.equal(mail.attachments.length, 0);
  assert.equal((Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value[0]?.name, 'Eve Bcc: victim@example.org X-Injected: yes');
  assert.equal(mail.from?.value[0]?.name, 'News X-Injected: from');
  assert.ok(!/^X-Injected/im.test(headerBlock(raw)));
  assert.ok(!(mail.html || '').includes('<script>'));

  for (const email of ['eve@example.org\r\nBcc: victim@example.org', 'eve@example.org>, <victim@example.org', 'not an address']) {
    assert.throws(() => bulletin.render({ ...recipient, email }), { name: 'BulletinError', code: 'BAD_INPUT' }, email);
  }
});

test('international domains travel as punycode in the header and the envelope', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, 'Body'));
  const { raw, envelope } = bulletin.render({ id: 9, email: 'Anna@Bücher.example', name: 'Anna', attributes: {} });
  assert.deepEqual(envelope.to, ['anna@xn--bcher-kva.example']);
  assert.equal(header(raw, 'To'), 'Anna <anna@xn--bcher-kva.example>');
  assertWellFormed(raw);
});

test('the envelope sender is the bounce address, or a VERP address naming the recipient', async () => {
  const text = bulletinText({ subject: 'Hi' }, 'Body');
  assert.equal((await compileText(text)).render(JANE).envelope.from, 'bulletins-bounces@lists.example.net');
  const custom = await compileText(text, { list: sampleList({ bounceAddress: 'bounces@example.net' }) });
  assert.equal(custom.render(JANE).envelope.from, 'bounces@example.net');

  const verp = await compileText(text, { verp: true });
  const { envelope, raw } = verp.render(JANE);
  const match = /^bulletins-bounces\+([A-Za-z0-9_-]{40})@lists\.example\.net$/.exec(envelope.from);
  assert.ok(match, envelope.from);
  assert.deepEqual(verifyToken(match[1]!, 'verp', KEYRING), { listId: 12, subscriberId: JANE.id, subscription: 0 });
  assert.equal(verifyToken(match[1]!, 'unsubscribe', KEYRING), null);
  assert.notEqual(verp.render(TARO).envelope.from, envelope.from);
  assert.ok(!raw.toString('latin1').includes(match[1]!), 'the VERP token leaked into the message');

  const longBounce = sampleList({ bounceAddress: 'a-very-long-bounce-mailbox-name@example.net' });
  await assert.rejects(compileText(text, { verp: true, list: longBounce }), { code: 'BAD_INPUT', message: /too long for VERP/ });
});

test('the subject prefix is configurable and not doubled', async () => {
  const custom = await compileText(bulletinText({ subject: 'Hi' }, 'Body'), { list: sampleList({ subjectPrefix: '[News]' }) });
  assert.equal(custom.subject, '[News] Hi');
  const none = await compileText(bulletinText({ subject: 'Hi' }, 'Body'), { list: sampleList({ subjectPrefix: '' }) });
  assert.equal(none.subject, 'Hi');
  const already = await compileText(bulletinText({ subject: 'Re: [ExampleNet-Bulletins] Hi' }, 'Body'));
  assert.equal(already.subject, 'Re: [ExampleNet-Bulletins] Hi');
});

test('a base URL of the documented maximum keeps every header line within 998 octets; one character more is refused', async () => {
  const { MAX_BASE_URL_LENGTH, normalizeBaseUrl } = await import('../src/domain/list.js');
  const base = 'https://lists.example.net/';
  const longest = `${base}${'p'.repeat(MAX_BASE_URL_LENGTH - base.length)}`;
  assert.deepEqual(normalizeBaseUrl(longest), { ok: true, url: longest });
  // The longest slug too: the archive and help URLs grow with it.
  const list = sampleList({ baseUrl: longest, slug: `s${'x'.repeat(62)}` });
  const bulletin = await compileText(bulletinText({ subject: 'Long URLs', 'in-reply-to': '3' }, 'Body'), { list, verp: true });
  const message = bulletin.render(JANE);
  assertWellFormed(message.raw);
  const head = headerBlock(message.raw);
  const longestLine = Math.max(...head.split('\r\n').map((line) => line.length));
  assert.ok(longestLine > 900 && longestLine <= 998, `longest header line: ${longestLine}`);
  assert.match(head, new RegExp(`^List-Archive: <${longest}/archive/s${'x'.repeat(62)}/>\\r$`, 'm'));

  const tooLong = normalizeBaseUrl(`${longest}p`);
  assert.equal(tooLong.ok, false);
  if (!tooLong.ok) assert.match(tooLong.reason, /is 901 characters long; at most 900, so that no mail header line passes 998 octets/);
  await assert.rejects(compileText(bulletinText({ subject: 'x' }, 'Body'), { list: sampleList({ baseUrl: `${longest}p` }) }), {
    code: 'BAD_INPUT',
    message: /base URL of 901 characters; at most 900/,
  });
});
