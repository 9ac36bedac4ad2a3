// Bulletin source files: front matter is read tolerantly (BOM, CRLF) and checked strictly, with
// errors that name the file and line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBulletinSource, readBulletinSource } from '../src/render/index.js';

const badInput = (pattern: RegExp) => ({ name: 'BulletinError', code: 'BAD_INPUT', message: pattern });

test('front matter fields and body are read, with the body line known', () => {
  const source = parseBulletinSource(
    [
      '---',
      'subject: "Network maintenance: Saturday"',
      'list: bulletins',
      'date: 2026-12-05',
      'summary: >',
      '  Short outage,',
      '  then faster links.',
      'in-reply-to: 41',
      'lang: el',
      '---',
      'Hello {{subscriber.name}}',
      '',
    ].join('\n'),
    'dec.md',
  );
  assert.equal(source.subject, 'Network maintenance: Saturday');
  assert.equal(source.list, 'bulletins');
  assert.equal(source.date?.toISOString(), '2026-12-05T00:00:00.000Z');
  assert.equal(source.summary, 'Short outage, then faster links.');
  assert.equal(source.inReplyTo, '41');
  assert.equal(source.lang, 'el');
  assert.equal(source.body, 'Hello {{subscriber.name}}\n');
  assert.equal(source.bodyLine, 11);
  assert.equal(source.fileName, 'dec.md');
});

test('a byte-order mark and CRLF line endings are tolerated', () => {
  const source = parseBulletinSource('\uFEFF---\r\nsubject: Hi\r\n---\r\nLine one\r\nLine two\r\n', 'win.md');
  assert.equal(source.subject, 'Hi');
  assert.equal(source.body, 'Line one\nLine two\n');
  assert.equal(source.lang, 'en');
  assert.equal(source.list, null);
  assert.equal(source.date, null);
});

test('a missing subject is an error naming the file', () => {
  assert.throws(() => parseBulletinSource('---\nlist: bulletins\n---\nBody', 'nosubject.md'), badInput(/^nosubject\.md:\d+:\d+: .*subject/));
  assert.throws(() => parseBulletinSource('---\nsubject: "   "\n---\nBody', 'blank.md'), badInput(/non-empty "subject"/));
});

test('a file without front matter, or with unclosed front matter, is an error', () => {
  assert.throws(() => parseBulletinSource('Just a body', 'plain.md'), badInput(/^plain\.md:1:1: .*front matter/));
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\nBody', 'open.md'), badInput(/never closed/));
});

test('a multi-line subject cannot reach a header', () => {
  const text = '---\nsubject: |\n  First line\n  Bcc: everyone@example.org\n---\nBody';
  assert.throws(() => parseBulletinSource(text, 'multi.md'), badInput(/^multi\.md:2:1: the subject must be a single line/));
});

test('unknown front matter keys are errors with their line', () => {
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\nsubjet: typo\n---\n', 'typo.md'), badInput(/^typo\.md:3:1: unknown front matter key "subjet"/));
});

test('invalid YAML, dates, slugs and languages are errors', () => {
  assert.throws(() => parseBulletinSource('---\nsubject: [unclosed\n---\n', 'yaml.md'), badInput(/^yaml\.md:\d+:\d+: the front matter is not valid YAML/));
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\ndate: 2026-02-30\n---\n', 'date.md'), badInput(/^date\.md:3:1: "date"/));
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\ndate: next week\n---\n', 'date.md'), badInput(/"date"/));
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\nlist: Not A Slug\n---\n', 'slug.md'), badInput(/"list" must be a list slug/));
  assert.throws(() => parseBulletinSource('---\nsubject: Hi\nlang: "en gb"\n---\n', 'lang.md'), badInput(/"lang"/));
});

test('a date-time with an offset is accepted', () => {
  const source = parseBulletinSource('---\nsubject: Hi\ndate: 2026-12-05T10:00:00+02:00\n---\n', 'dt.md');
  assert.equal(source.date?.toISOString(), '2026-12-05T08:00:00.000Z');
});

test('readBulletinSource reads a file and reports a missing one as NOT_FOUND', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-source-'));
  try {
    const path = join(dir, 'news.md');
    await writeFile(path, '---\nsubject: From disk\n---\nBody\n');
    const source = await readBulletinSource(path);
    assert.equal(source.subject, 'From disk');
    assert.equal(source.fileName, path);
    await assert.rejects(readBulletinSource(join(dir, 'absent.md')), { name: 'BulletinError', code: 'NOT_FOUND' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
