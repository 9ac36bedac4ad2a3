// Templates: mistakes are caught before any message exists, with file, line and column; variables,
// escaping, Markdown, layouts, partials and template directories behave as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyToken } from '../src/domain/token.js';
import { loadTemplateSet, SAMPLE_RECIPIENT } from '../src/render/index.js';
import { bulletinText, compileText, JANE, KEYRING, sampleList, TARO } from './render-fixtures.js';

const badInput = (pattern: RegExp) => ({ name: 'BulletinError', code: 'BAD_INPUT', message: pattern });

async function withTemplatesDir(files: Record<string, string>, run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bulletin-templates-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a template syntax error names the bulletin file, its line and column', async () => {
  // Body starts on line 4 of the file; the broken tag is on line 6, column 7.
  const text = bulletinText({ subject: 'Hi' }, 'First line\n\nHello {{subscriber.name\n');
  await assert.rejects(compileText(text, {}, 'news.md'), badInput(/^news\.md:6:7: template syntax error: this \{\{ is never closed/));
  const badToken = bulletinText({ subject: 'Hi' }, 'A\n\nB {{subscriber.name %}}\n');
  await assert.rejects(compileText(badToken, {}, 'news.md'), badInput(/^news\.md:6:\d+: template syntax error: unexpected/));
  const unbalanced = bulletinText({ subject: 'Hi' }, 'A\n{{#if subscriber.name}}\nB\n{{/each}}\n');
  await assert.rejects(compileText(unbalanced, {}, 'news.md'), badInput(/^news\.md:5:\d+: template syntax error: if doesn't match each/));
});

test('a variable no recipient can have is an error with a suggestion, not an empty string', async () => {
  const text = bulletinText({ subject: 'Hi' }, 'Dear {{subscriber.nmae}},\n\nfrom {{list.nmae}}\n');
  const error = await compileText(text, {}, 'typo.md').then(
    () => assert.fail('compiled'),
    (caught: Error) => caught,
  );
  assert.match(error.message, /^typo\.md:4:8: \{\{subscriber\.nmae\}\} is not a variable any recipient has; did you mean subscriber\.name\?$/m);
  assert.match(error.message, /^typo\.md:6:8: \{\{list\.nmae\}\} .*did you mean list\.name\?$/m);
});

test('unknown top-level names, sub-fields of single values and unknown helpers are errors', async () => {
  const cases: [string, RegExp][] = [
    ['{{subscribers.email}}', /did you mean subscriber\?/],
    ['{{nothing}}', /\{\{nothing\}\} is not a variable any recipient has; known: subscriber, list, bulletin/],
    ['{{subscriber.email.domain}}', /subscriber\.email is a single value; it has no "domain"/],
    ['{{shout subscriber.name}}', /unknown helper "shout"/],
    ['{{#if subscriber.name}}{{../list.name}}{{/if}}', /climbs above the top/],
    ['{{@index}}{{@foo}}', /\{\{@foo\}\} is not a data variable/],
    ['{{#each subscriber.attributes.tags}}{{@root.list.nmae}}{{/each}}', /\{\{@root\.list\.nmae\}\}.*did you mean @root\.list\.name/],
    ['{{> (lookup list "slug")}}', /partials must be named literally/],
    ['{{> nosuchpartial}}', /there is no partial "nosuchpartial"/],
  ];
  for (const [body, pattern] of cases) {
    await assert.rejects(compileText(bulletinText({ subject: 'Hi' }, body)), badInput(pattern), body);
  }
});

test('variables that exist, block scopes and helpers pass the check', async () => {
  const body = [
    '{{#with list}}{{name}} ({{slug}}){{/with}}',
    '{{#each subscriber.attributes.tags as |tag|}}{{tag}}{{@index}}{{this}}{{../bulletin.subject}}{{/each}}',
    '{{#if (eq subscriber.attributes.plan "pro")}}Pro{{else}}Basic{{/if}}',
    '{{lookup subscriber.attributes "city"}} {{urlencode subscriber.email}} {{bulletin.isoDate}}',
  ].join('\n\n');
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  const html = bulletin.renderHtml({ ...JANE, attributes: { tags: ['a', 'b'], plan: 'pro', city: 'Athens' } });
  assert.match(html, /ExampleNet-Bulletins \(bulletins\)/);
  assert.match(html, /a0aHib1bHi/);
  assert.match(html, /Pro/);
  assert.match(html, /Athens jane%40example\.org 2026-11-28/);
});

test('attributes are free-form: a missing one renders as empty, default supplies a fallback', async () => {
  const body = 'City: [{{subscriber.attributes.city}}] Team: [{{default subscriber.attributes.team "none"}}]';
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  assert.match(bulletin.renderText(JANE), /City: \[Athens\] Team: \[none\]/);
  assert.match(bulletin.renderText(TARO), /City: \[\] Team: \[none\]/);
  assert.match(bulletin.renderText({ ...TARO, attributes: { team: 'NOC' } }), /Team: \[NOC\]/);
});

test('{{…}} escapes HTML in the HTML part and not in the text part; {{{…}}} does not escape', async () => {
  const body = 'Hello {{subscriber.name}} and {{{subscriber.attributes.trusted}}}';
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  const recipient = { ...JANE, name: '<script>alert("x")</script> & Co', attributes: { trusted: '<b>bold</b>' } };
  const html = bulletin.renderHtml(recipient);
  assert.match(html, /Hello &lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt; &amp; Co and <b>bold<\/b>/);
  assert.ok(!html.includes('<script>'));
  assert.match(bulletin.renderText(recipient), /Hello <script>alert\("x"\)<\/script> & Co and <b>bold<\/b>/);
});

test('Markdown runs once on the body, around the template tags', async () => {
  const body = [
    'Hello **{{subscriber.name}}**, see [the archive]({{archiveUrl}}).',
    '',
    '{{#if subscriber.attributes.city}}',
    '## News for {{subscriber.attributes.city}}',
    '',
    'Local *office* open.',
    '{{/if}}',
    '',
    'Literal \\{{braces}} stay.',
    '',
    '{{!-- a note for editors --}}',
    '* one',
    '* two',
  ].join('\n');
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  const html = bulletin.renderHtml(JANE);
  assert.match(html, /<p>Hello <strong>Jane Doe<\/strong>, see <a href="https:\/\/lists\.example\.net\/archive\/bulletins\/">the archive<\/a>\.<\/p>/);
  assert.match(html, /<h2>News for Athens<\/h2>\s*<p>Local <em>office<\/em> open\.<\/p>/);
  assert.match(html, /Literal \{\{braces\}\} stay\./);
  assert.match(html, /<ul>\s*<li>one<\/li>\s*<li>two<\/li>\s*<\/ul>/);
  assert.ok(!html.includes('a note for editors'));
  const withoutCity = bulletin.renderHtml(TARO);
  assert.ok(!withoutCity.includes('News for'));
  assert.ok(!/<p>\s*<\/p>/.test(withoutCity), 'an empty paragraph is left where the block was');

  const text = bulletin.renderText(JANE);
  // Wrapped at 72 columns: the link goes to the next line.
  assert.match(text, /Hello Jane Doe, see the archive\n<https:\/\/lists\.example\.net\/archive\/bulletins\/>\./);
  assert.match(text, /News for Athens\n\nLocal office open\./);
  assert.ok(!/\{\{[#/]/.test(bulletin.renderText(TARO)), 'a block tag leaked into the text');
  assert.match(bulletin.renderText(TARO), /see the archive\s<[^>]+>\.\n\nLiteral \{\{braces\}\} stay\./);
});

test('the default layout has the unsubscribe and archive links, lang, and accessible structure', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Maintenance', summary: 'Short outage.', lang: 'el' }, 'Body'));
  const html = bulletin.renderHtml(JANE);
  assert.match(html, /^<!DOCTYPE html>\n<html lang="el">/);
  assert.match(html, /<title>Maintenance<\/title>/);
  assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.match(html, /aria-hidden="true">Short outage\.<\/div>/);
  const tables = html.match(/<table\b[^>]*>/g) ?? [];
  assert.ok(tables.length > 0 && tables.every((table) => table.includes('role="presentation"')));
  const unsubscribe = /<a href="([^"]+)"[^>]*>Unsubscribe<\/a>/.exec(html);
  assert.ok(unsubscribe, 'no visible unsubscribe link');
  const token = unsubscribe[1]!.replace('https://lists.example.net/u/', '');
  assert.deepEqual(verifyToken(token, 'unsubscribe', KEYRING), { listId: 12, subscriberId: JANE.id, subscription: 0 });
  assert.match(html, /<a href="https:\/\/lists\.example\.net\/archive\/bulletins\/"[^>]*>Read past bulletins<\/a>/);
  assert.match(html, /You receive ExampleNet-Bulletins at jane@example\.org\./);

  const text = bulletin.renderText(JANE);
  assert.match(text, /^ExampleNet-Bulletins\nMaintenance\n/);
  assert.match(text, /\n-- \n/);
  assert.match(text, new RegExp(`Unsubscribe: https://lists\\.example\\.net/u/${token}\\n`));
  assert.match(text, /Past bulletins: https:\/\/lists\.example\.net\/archive\/bulletins\//);
});

test('a templates directory overrides files one by one and its errors name its files', async () => {
  await withTemplatesDir(
    {
      'email/layout.html.hbs': '<html lang="{{bulletin.lang}}"><main>{{{body}}}</main>{{> footer}}</html>\n',
      'email/partials/footer.hbs': '<footer>Bye {{subscriber.email}} {{> signature}}</footer>',
      'email/partials/signature.hbs': '-- {{list.name}}',
    },
    async (dir) => {
      const bulletin = await compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir });
      assert.equal(
        bulletin.renderHtml(JANE),
        '<html lang="en"><main><p>Body</p>\n</main><footer>Bye jane@example.org -- ExampleNet-Bulletins</footer></html>\n',
      );
      // The text layout was not overridden: the shipped one is used.
      assert.match(bulletin.renderText(JANE), /Unsubscribe: https:\/\/lists\.example\.net\/u\//);
      assert.equal(bulletin.templates.partials.signature?.text, '-- {{list.name}}');
      // A list's own templates directory works the same way.
      const byList = await compileText(bulletinText({ subject: 'Hi' }, 'Body'), { list: sampleList({ templatesDir: dir }) });
      assert.equal(byList.renderHtml(JANE), bulletin.renderHtml(JANE));
    },
  );
  await withTemplatesDir({ 'email/partials/footer.hbs': 'line one\n{{#if subscriber.email}}\n{{list.nmae}}\n{{/if}}\n' }, async (dir) => {
    await assert.rejects(
      compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir }),
      badInput(/partials\/footer\.hbs:3:3: \{\{list\.nmae\}\}/),
    );
  });
  await withTemplatesDir({ 'email/layout.text.hbs': 'no body here {{list.name}}\n' }, async (dir) => {
    await assert.rejects(
      compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir }),
      badInput(/layout\.text\.hbs: the layout has no \{\{\{body\}\}\}/),
    );
  });
  await withTemplatesDir({ 'email/layout.text.hbs': '{{#if list.name}}{{{body}}}{{/if}}\n' }, async (dir) => {
    await assert.rejects(compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir }), badInput(/top level/));
  });
  await withTemplatesDir({ 'email/partials/footer.hbs': 'x {{> footer}}' }, async (dir) => {
    await assert.rejects(compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir }), badInput(/partial "footer" includes itself/));
  });
  await withTemplatesDir({ 'email/layout.html.hbs': '<p>{{{body}}}</p>\n{{#each}}' }, async (dir) => {
    await assert.rejects(
      compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: dir }),
      badInput(/layout\.html\.hbs:2:\d+: template syntax error/),
    );
  });
  await assert.rejects(compileText(bulletinText({ subject: 'Hi' }, 'Body'), { templatesDir: '/nonexistent/templates' }), {
    code: 'NOT_FOUND',
  });
});

test('a stored template set recompiles to the same output without reading files', async () => {
  const templates = await loadTemplateSet();
  const text = bulletinText({ subject: 'Hi' }, 'Hello {{subscriber.name}}');
  const fromFiles = await compileText(text);
  const fromStore = await compileText(text, { templates: structuredClone(templates), templatesDir: '/nonexistent' });
  assert.ok(fromFiles.render(JANE).raw.equals(fromStore.render(JANE).raw));
});

test('the archive body holds no recipient address, name or token', async () => {
  // In the archive, {{unsubscribeUrl}} is the list's help page (how to leave, for whoever reads it there).
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, 'Hello {{subscriber.name}} <{{subscriber.email}}>, this is **news**: {{unsubscribeUrl}}'));
  const archive = bulletin.archiveBody();
  assert.equal(archive.html, '<p>Hello  <>, this is <strong>news</strong>: https://lists.example.net/help/bulletins</p>\n');
  for (const text of [archive.html, archive.text]) {
    assert.ok(!text.includes('/u/'), 'an unsubscribe token link is in the archive');
    assert.ok(!text.includes('@example.org'));
    assert.ok(!text.includes('Sample Subscriber'));
  }
});

test('the sample recipient renders for a preview', async () => {
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, 'Hello {{subscriber.name}}'));
  const sample = SAMPLE_RECIPIENT;
  assert.match(bulletin.renderHtml(sample), /Hello Sample Subscriber/);
  assert.match(bulletin.render(sample).raw.toString('latin1'), /^To: Sample Subscriber <subscriber@example\.com>\r$/m);
});

test('the text part reads like hand-written mail: paragraphs wrapped once, images as alt text, each link listed once', async () => {
  const body = [
    'Between Tuesday and Thursday, mail to {{subscriber.email}} may have',
    'arrived late. The mail cluster was moved to new hardware and the',
    'move has been delivered, at last, in full.',
    '{{#if subscriber.attributes.city}}',
    'Our office in {{subscriber.attributes.city}} is open again.',
    '{{/if}}',
    'We are sorry.',
    '',
    '![A chart of the mail queue, back to normal](https://example.net/q.png)',
    '',
    '![](https://example.net/spacer.png)',
    '',
    'See [the status page](https://status.example.net), then [the status page again](https://status.example.net).',
  ].join('\n');
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  for (const recipient of [JANE, TARO]) {
    const text = bulletin.renderText(recipient);
    const paragraph = text.slice(text.indexOf('Between'), text.indexOf('sorry.') + 6);
    // Soft line breaks are spaces, lines are wrapped once near 72 columns, no double spaces.
    assert.equal(
      paragraph.replace(/\n/g, ' '),
      `Between Tuesday and Thursday, mail to ${recipient.email} may have arrived late. The mail cluster was moved to new hardware and the move has been delivered, at last, in full.${recipient === JANE ? ' Our office in Athens is open again.' : ''} We are sorry.`,
    );
    for (const line of paragraph.split('\n').slice(0, -1)) assert.ok(line.length <= 72 && line.length > 50, `ragged line: ${JSON.stringify(line)}`);
    assert.match(text, /sorry\.\n\nA chart of the mail queue, back to normal\n\nSee the status page/);
    assert.equal(text.match(/<https:\/\/status\.example\.net>/g)?.length, 1, 'the same link listed twice');
    assert.match(text, /then the status page\sagain\./);
  }
  // The HTML keeps both links and the images.
  const html = bulletin.renderHtml(JANE);
  assert.equal(html.match(/href="https:\/\/status\.example\.net"/g)?.length, 2);
  assert.match(html, /<img src="https:\/\/example\.net\/spacer\.png" alt="">/);
});
