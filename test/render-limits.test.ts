// Careless input is refused before any message exists, with file:line:column: helper misuse,
// `lookup` with a computed or prototype key, blocks, Markdown and HTML nested past the limits,
// YAML aliases, a bulletin over its size limit. Never an internal error, never a truncated part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBulletinSource } from '../src/render/index.js';
import { MAX_BULLETIN_BYTES, MAX_MARKDOWN_NESTING, MAX_TEMPLATE_NESTING } from '../src/render/limits.js';
import { bulletinText, compileText, JANE } from './render-fixtures.js';

const badInput = (pattern: RegExp) => ({ name: 'BulletinError', code: 'BAD_INPUT', message: pattern });
/** The body starts on line 4 of the file bulletinText({ subject }) writes. */
const body = (text: string) => bulletinText({ subject: 'Hi' }, text);

test('helpers called with the wrong number of arguments, or as the wrong kind of tag, are refused with their place', async () => {
  const cases: [string, RegExp][] = [
    ['{{lookup}}', /^b\.md:4:1: \{\{lookup\}\} needs exactly two arguments, not 0/],
    ['x {{#with}}x{{/with}}', /^b\.md:4:3: \{\{#with\}\} needs exactly one argument, not 0/],
    ['{{#each}}x{{/each}}', /^b\.md:4:1: \{\{#each\}\} needs exactly one argument/],
    ['{{#if}}x{{/if}}', /^b\.md:4:1: \{\{#if\}\} needs exactly one argument/],
    ['{{#unless a b}}x{{/unless}}', /\{\{#unless\}\} needs exactly one argument, not 2/],
    ['{{#if list.name list.slug}}x{{/if}}', /\{\{#if\}\} needs exactly one argument, not 2/],
    ['{{if subscriber.name}}', /\{\{if\}\} works only as a block/],
    ['{{each subscriber.attributes}}', /\{\{each\}\} works only as a block/],
    ['{{#if (if list.name)}}x{{/if}}', /\(if\) works only as a block/],
    ['{{#lookup list "name"}}x{{/lookup}}', /\{\{#lookup\}\} is not a block helper/],
    ['{{default subscriber.name}}', /\{\{default\}\} needs exactly two arguments, not 1/],
    ['{{urlencode}}', /\{\{urlencode\}\} needs exactly one argument/],
    ['{{#if (eq list.name)}}x{{/if}}', /\(eq\) needs exactly two arguments/],
    ['{{#if list.name includeZero=true}}x{{/if}}', /takes no option "includeZero=…"/],
  ];
  for (const [text, pattern] of cases) {
    await assert.rejects(compileText(body(text), {}, 'b.md'), badInput(pattern), text);
  }
});

test('lookup needs a literal key that is not a prototype property and that the value can have', async () => {
  const cases: [string, RegExp][] = [
    ['{{lookup this "constructor"}}', /^b\.md:4:1: \{\{lookup … "constructor"\}\} reaches a property every object has/],
    ['{{lookup subscriber "__proto__"}}', /"__proto__"\}\} reaches a property every object has/],
    ['{{lookup subscriber.attributes "toString"}}', /"toString"\}\} reaches a property every object has/],
    ['{{lookup subscriber.attributes subscriber.name}}', /needs its key written out in quotes/],
    ['{{lookup subscriber "nmae"}}', /did you mean subscriber\.name\?/],
    ['{{lookup subscriber.email "x"}}', /subscriber\.email is a single value/],
    ['{{subscriber.attributes.constructor}}', /reaches "constructor", a property every object has/],
    ['{{subscriber.attributes.__proto__.x}}', /reaches "__proto__"/],
  ];
  for (const [text, pattern] of cases) {
    await assert.rejects(compileText(body(text), {}, 'b.md'), badInput(pattern), text);
  }
  const fine = await compileText(body('{{lookup subscriber.attributes "city"}} {{lookup list "name"}} {{lookup subscriber "email"}}'));
  assert.match(fine.renderText(JANE), /Athens ExampleNet-Bulletins jane@example\.org/);
});

test('blocks nested past the limit are refused at the block that goes too deep', async () => {
  const nested = (depth: number) => `${'{{#if list.name}}'.repeat(depth)}x${'{{/if}}'.repeat(depth)}`;
  await compileText(body(nested(MAX_TEMPLATE_NESTING)));
  const column = MAX_TEMPLATE_NESTING * '{{#if list.name}}'.length + 1;
  for (const depth of [MAX_TEMPLATE_NESTING + 1, 5_000, 40_000]) {
    await assert.rejects(
      compileText(body(nested(depth)), {}, 'b.md'),
      badInput(new RegExp(`^b\\.md:4:${column}: blocks nest more than ${MAX_TEMPLATE_NESTING} deep`)),
      `depth ${depth}`,
    );
  }
  // 100,000 levels are over the size limit: refused for that, as quickly.
  await assert.rejects(compileText(body(nested(100_000)), {}, 'b.md'), badInput(/^b\.md:1:1: the bulletin is 2\.3 MiB; a bulletin may be at most 1 MiB/));
  // An {{else if}} chain is a level per link.
  const chain = `{{#if list.name}}a${'{{else if list.slug}}b'.repeat(MAX_TEMPLATE_NESTING + 5)}{{/if}}`;
  await assert.rejects(compileText(body(chain)), badInput(/blocks nest more than/));
  const parentheses = `{{default ${'(default '.repeat(MAX_TEMPLATE_NESTING + 1)}list.name "x"${')'.repeat(MAX_TEMPLATE_NESTING + 1)} "y"}}`;
  await assert.rejects(compileText(body(parentheses)), badInput(/^bulletin\.md:4:\d+: subexpressions nest more than/));
});

test('Markdown nested past the limit is refused with its place, never a stack overflow', async () => {
  const cases: [string, RegExp][] = [
    [`Intro\n\n${'>'.repeat(100_000)} deep`, new RegExp(`^b\\.md:6:${MAX_MARKDOWN_NESTING + 1}: quotes and lists nest more than ${MAX_MARKDOWN_NESTING} deep`)],
    [
      Array.from({ length: 700 }, (_, i) => `${'  '.repeat(i)}- item`).join('\n'),
      new RegExp(`^b\\.md:${4 + MAX_MARKDOWN_NESTING}:\\d+: quotes and lists nest`),
    ],
    ['- '.repeat(50_000) + 'x', /^b\.md:4:\d+: quotes and lists nest/],
    [`${'**a '.repeat(25_000)}x${' a**'.repeat(25_000)}`, /^b\.md:4:\d+: emphasis nests more than/],
    [`${'*'.repeat(100_000)}x${'*'.repeat(100_000)}`, /^b\.md:4:\d+: this paragraph has more than \d+ emphasis marks/],
    [`${'<div>'.repeat(100_000)}x`, /^b\.md:4:\d+: HTML elements nest more than/],
  ];
  for (const [text, pattern] of cases) {
    await assert.rejects(compileText(body(text), {}, 'b.md'), badInput(pattern), text.slice(0, 30));
  }
  // At the limit, all is well.
  const deepest = Array.from({ length: MAX_MARKDOWN_NESTING }, (_, i) => `${'  '.repeat(i)}- level ${i + 1}`).join('\n');
  assert.match((await compileText(body(deepest))).renderText(JANE), new RegExp(`level ${MAX_MARKDOWN_NESTING}`));
  assert.match((await compileText(body(`${'> '.repeat(MAX_MARKDOWN_NESTING)}quoted`))).renderHtml(JANE), /quoted/);
});

test('YAML anchors and aliases in the front matter are refused with their place, bombs included', () => {
  const bomb = ['---', 'subject: &a "lol"', 'summary: [*a, *a, *a, *a, *a, *a, *a, *a, *a]', '---', 'Body'].join('\n');
  assert.throws(() => parseBulletinSource(bomb, 'bomb.md'), badInput(/^bomb\.md:2:13: the front matter uses a YAML anchor or alias/));
  const levels = Array.from(
    { length: 9 },
    (_, i) =>
      `l${i + 1}: &l${i + 1} [${Array(9)
        .fill(i === 0 ? '"x"' : `*l${i}`)
        .join(',')}]`,
  );
  assert.throws(
    () => parseBulletinSource(['---', 'subject: Hi', 'l0: &l0 x', ...levels, '---', ''].join('\n'), 'laughs.md'),
    badInput(/^laughs\.md:3:9: .*anchor or alias/),
  );
});

test('a bulletin over the size limit is refused with its size and the limit', () => {
  const big = body('x'.repeat(MAX_BULLETIN_BYTES));
  assert.throws(() => parseBulletinSource(big, 'big.md'), badInput(/^big\.md:1:1: the bulletin is 1\.0 MiB; a bulletin may be at most 1 MiB/));
  assert.doesNotThrow(() => parseBulletinSource(body('x'.repeat(MAX_BULLETIN_BYTES - 100)), 'fits.md'));
});

test('the largest allowed paragraph is in the text part whole, not truncated', async () => {
  const words = 'word '.repeat(Math.floor((MAX_BULLETIN_BYTES - 200) / 5));
  const bulletin = await compileText(body(`${words}END`));
  const text = bulletin.renderText(JANE);
  assert.match(text, /word END\n/);
  assert.equal(text.match(/word/g)?.length, Math.floor((MAX_BULLETIN_BYTES - 200) / 5));
});

test('what only looks deep is not refused: rules, code fences, indented code', async () => {
  const body = [
    '- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -',
    '',
    '```',
    ...Array.from({ length: 40 }, (_, i) => `${'> '.repeat(i)}quoted in code`),
    '```',
    '',
    `${'*'.repeat(60)}`,
    '',
    'After.',
  ].join('\n');
  const bulletin = await compileText(bulletinText({ subject: 'Hi' }, body));
  assert.match(bulletin.renderText(JANE), /After\./);
});
