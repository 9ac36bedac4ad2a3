// Address rules: what is accepted, how it is stored, and why the rest is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatMailbox, normalizeAddress, parseMailbox } from '../src/domain/address.js';

test('addresses are stored lower-case with international domains as punycode', () => {
  assert.deepEqual(normalizeAddress('  Alice@Example.NET '), { ok: true, address: 'alice@example.net' });
  assert.deepEqual(normalizeAddress('jo@bücher.example'), { ok: true, address: 'jo@xn--bcher-kva.example' });
  assert.deepEqual(normalizeAddress('info@例え.テスト'), { ok: true, address: 'info@xn--r8jz45g.xn--zckzah' });
  assert.deepEqual(normalizeAddress('first.last+tag@sub.example.org.'), { ok: true, address: 'first.last+tag@sub.example.org' });
});

test('invalid addresses are refused with a reason', () => {
  const reasons: [string, RegExp][] = [
    ['a@example.net\r\nBcc: x@example.org', /line break/],
    ['a@exa\u0000mple.net', /control character/],
    ['', /empty/],
    ['no-at-sign', /no @/],
    ['@example.net', /nothing before/],
    ['a@', /no domain/],
    ['a b@example.net', /space/],
    ['zoë@example.net', /non-ASCII local part/],
    [`${'x'.repeat(65)}@example.net`, /local part over 64/],
    [`${'x'.repeat(64)}@${'y'.repeat(63)}.${'y'.repeat(63)}.${'y'.repeat(58)}.net`, /over 254/],
    [`x@${'y'.repeat(64)}.net`, /DNS length/],
    ['x..y@example.net', /not a valid address/],
    ['x@localhost', /not a valid address/],
    ['x@[127.0.0.1]', /invalid domain|not a valid/],
    // Quoted local parts: "q"@x would be stored apart from q@x, and quotes carry <, @ and , into headers.
    ['"q"@example.com', /quoted local part \("…"@…\), which bulletin does not accept/],
    ['"a>,b@evil.example,<c"@example.com', /quoted local part/],
    ['a\\"b@example.com', /quoted local part/],
  ];
  for (const [input, reason] of reasons) {
    const checked = normalizeAddress(input);
    assert.equal(checked.ok, false, JSON.stringify(input));
    if (!checked.ok) assert.match(checked.reason, reason, JSON.stringify(input));
  }
});

test('mailboxes: "Name <address>", quoted names, bare addresses, and no line breaks', () => {
  assert.deepEqual(parseMailbox('ExampleNet <NoReply@Example.net>'), {
    ok: true,
    mailbox: { name: 'ExampleNet', address: 'noreply@example.net' },
  });
  assert.deepEqual(parseMailbox('"Example, Net \\"Ops\\"" <ops@example.net>'), {
    ok: true,
    mailbox: { name: 'Example, Net "Ops"', address: 'ops@example.net' },
  });
  assert.deepEqual(parseMailbox('ops@example.net'), { ok: true, mailbox: { name: '', address: 'ops@example.net' } });
  assert.equal(parseMailbox('Evil\r\nBcc: x@example.org <a@example.net>').ok, false);
  assert.equal(parseMailbox('Name <not an address>').ok, false);
  assert.equal(formatMailbox({ name: 'Example, Net', address: 'a@example.net' }), '"Example, Net" <a@example.net>');
  assert.equal(formatMailbox({ name: 'ExampleNet', address: 'a@example.net' }), 'ExampleNet <a@example.net>');
});
