// Shared inputs for the rendering tests: a list, recipients, a bulletin builder, and the structural
// checks every composed message must pass. Not a test file itself (no .test.ts suffix).
import assert from 'node:assert/strict';
import type { MailingList } from '../src/domain/list.js';
import { compileBulletin, parseBulletinSource, type CompileBulletinOptions, type CompiledBulletin, type Recipient } from '../src/render/index.js';

export const SECRET = 'render-test-secret-0123456789';
export const INSTALLATION = '3e0f6a1d-2b4c-4d8e-9f10-a1b2c3d4e5f6';
/** What the rendering tests sign with, and verify tokens under. */
export const SIGNING = { secret: SECRET, installationId: INSTALLATION };
export const KEYRING = { keys: [SIGNING], legacySecrets: [] };

export function sampleList(overrides: Partial<MailingList> = {}): MailingList {
  return {
    id: 12,
    slug: 'bulletins',
    name: 'ExampleNet-Bulletins',
    description: 'Announcements from ExampleNet',
    address: 'bulletins@lists.example.net',
    from: { name: 'ExampleNet News', address: 'news@example.net' },
    baseUrl: 'https://lists.example.net',
    subjectPrefix: null,
    bounceAddress: null,
    templatesDir: null,
    createdAt: new Date('2026-01-01T00:00:00Z'),
    updatedAt: new Date('2026-01-01T00:00:00Z'),
    ...overrides,
  };
}

export const JANE: Recipient = { id: 101, email: 'jane@example.org', name: 'Jane Doe', attributes: { city: 'Athens' } };
export const TARO: Recipient = { id: 102, email: 'taro@example.jp', name: '山田 太郎', attributes: {} };

/** A bulletin file: front matter lines (values as YAML double-quoted strings), then the body. */
export function bulletinText(frontMatter: Record<string, string>, body: string): string {
  const lines = Object.entries(frontMatter).map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  return ['---', ...lines, '---', body].join('\n');
}

export const SEND_DATE = new Date('2026-11-28T09:30:00Z');

export async function compileText(
  text: string,
  options: Partial<Omit<CompileBulletinOptions, 'source'>> = {},
  fileName = 'bulletin.md',
): Promise<CompiledBulletin> {
  return compileBulletin({
    source: parseBulletinSource(text, fileName),
    list: sampleList(),
    bulletinKey: '7',
    signing: SIGNING,
    date: SEND_DATE,
    ...options,
  });
}

/** The header block of a raw message as text (up to the first empty line). */
export function headerBlock(raw: Buffer): string {
  const text = raw.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

/**
 * RFC 5322 / 2045 structure every message must have: 7-bit, CRLF line endings only, no line over
 * 998 octets, no body line over 76 characters, and header lines with encoded-words within 76.
 */
export function assertWellFormed(raw: Buffer): void {
  for (const byte of raw) assert.ok(byte < 0x80, 'message is not 7-bit');
  const text = raw.toString('latin1');
  assert.ok(!/\r(?!\n)/.test(text), 'bare CR in message');
  assert.ok(!/(?<!\r)\n/.test(text), 'bare LF in message');
  assert.ok(text.endsWith('\r\n'), 'message does not end with CRLF');
  const [head, ...rest] = text.split('\r\n\r\n');
  for (const line of head!.split('\r\n')) {
    assert.ok(line.length <= 998, `header line over 998 octets: ${line.slice(0, 60)}…`);
    if (line.includes('=?')) assert.ok(line.length <= 76, `header line with encoded-words over 76: ${line}`);
  }
  for (const line of rest.join('\r\n\r\n').split('\r\n')) {
    assert.ok(line.length <= 76, `body line over 76 characters (${line.length}): ${line.slice(0, 60)}…`);
  }
}
