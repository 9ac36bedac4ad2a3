// Turns a bulletin body (Handlebars inside Markdown) into two Handlebars templates, HTML and plain
// text, running Markdown once per bulletin: each {{…}} tag is swapped for an inert placeholder word,
// marked renders the HTML, html-to-text derives the text, and the tags are put back verbatim.
import { convert, type FormatCallback, type HtmlToTextOptions } from 'html-to-text';
import { Marked } from 'marked';
import { BulletinError } from '../domain/errors.js';
import { checkMarkdownLimits, formatBytes, lineAndColumn, MAX_RENDERED_HTML_BYTES } from './limits.js';
import { splitTags, type Tag } from './template-tags.js';

export interface BodyTemplates {
  /** Handlebars source producing the HTML body fragment (no layout). */
  readonly html: string;
  /** Handlebars source producing the plain-text body (no layout); compile it without escaping. */
  readonly text: string;
}

const markdown = new Marked({ gfm: true, breaks: false, async: false });

/** An image in the text part is its alt text; one without any leaves nothing behind. */
const imageAsAltText: FormatCallback = (element, _walk, builder) => {
  const alt = String((element.attribs as Record<string, string> | undefined)?.alt ?? '').trim();
  if (alt !== '') builder.addInline(alt);
};

const TEXT_OPTIONS: HtmlToTextOptions = {
  // Each paragraph wrapped once, at 72 columns; the source's own line breaks inside a paragraph
  // are soft (spaces), as in the HTML part.
  wordwrap: 72,
  preserveNewlines: false,
  formatters: { imageAsAltText },
  // Never truncate: the input was checked against MAX_RENDERED_HTML_BYTES, and the limits on
  // nesting hold before this runs.
  limits: { maxInputLength: MAX_RENDERED_HTML_BYTES + 1, ellipsis: '' },
  selectors: [
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({
      selector,
      options: { uppercase: false, leadingLineBreaks: 2, trailingLineBreaks: 2 },
    })),
    { selector: 'a', options: { linkBrackets: ['<', '>'], hideLinkHrefIfSameAsText: true } },
    { selector: 'img', format: 'imageAsAltText' },
    { selector: 'table', format: 'dataTable' },
  ],
};

const BLOCK_TAG = String.raw`</?(?:p|h[1-6]|ul|ol|li|blockquote|pre|table|thead|tbody|tr|th|td|div|hr)\b[^>]*>`;
const BETWEEN_BLOCKS = new RegExp(`(${BLOCK_TAG})\\s*\\n\\s*(?=${BLOCK_TAG})`, 'g');

/**
 * In the text, a line holding only a block tag keeps at most one blank line before it and none
 * after, so the text reads the same whether the block renders or not.
 */
function tidyBlockTagLines(text: string, isBlockTagLine: (line: string) => boolean): string {
  const lines = text.split('\n');
  const tidy: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!isBlockTagLine(line)) {
      tidy.push(line);
      continue;
    }
    while (tidy.length >= 2 && tidy[tidy.length - 1] === '' && tidy[tidy.length - 2] === '') tidy.pop();
    tidy.push(line.trim());
    while (lines[i + 1] === '') i++;
  }
  return tidy.join('\n');
}

/**
 * The text template from the HTML: paragraphs wrapped once at 72 columns. A value's placeholder is
 * as wide as the value is expected to be, so lines come out near 72 once values are in. A block tag
 * left inside a paragraph on a line of its own stands between words there, and takes one of the
 * spaces around it, so the words keep one space whether the block renders or not.
 */
function textTemplate(
  html: string,
  prefix: string,
  isControl: (placeholder: string) => boolean,
  widthOf: (index: number) => number,
  fileName: string,
  bodyLine: number,
): string {
  const standalone = new Set<string>();
  for (const match of html.matchAll(new RegExp(`(?:^|\n)[ \t]*(${prefix}\\d+x)[ \t]*(?=\n|$)`, 'gi'))) {
    if (isControl(match[1]!)) standalone.add(match[1]!.toLowerCase());
  }
  const forText = listEachLinkOnce(html)
    // An image without alt text leaves nothing, not an empty paragraph.
    .replace(/<img\b(?![^>]*\balt="[^"]*[^"\s])[^>]*>/gi, '')
    .replace(/<p>\s*<\/p>\n?/g, '')
    .replace(new RegExp(`${prefix}(\\d+)x`, 'gi'), (match: string, index: string) => {
      const padding = Math.min(60, widthOf(Number(index))) - match.length;
      return padding > 0 ? `${prefix}${index}p${'0'.repeat(padding)}x` : match;
    })
    // Line breaks between block elements mean nothing in HTML; html-to-text would keep them.
    .replace(BETWEEN_BLOCKS, '$1');
  let converted: string;
  try {
    converted = convert(forText, TEXT_OPTIONS);
  } catch (error) {
    throw tooDeep(error, fileName, bodyLine);
  }
  converted = converted
    .replace(new RegExp(`${prefix}(\\d+)p0*x`, 'gi'), `${prefix}$1x`)
    .replace(new RegExp(`( ?)(${prefix}\\d+x)( ?)`, 'gi'), (whole: string, spaceBefore: string, tag: string, spaceAfter: string) => {
      if (!standalone.has(tag.toLowerCase())) return whole;
      return spaceBefore !== '' && spaceAfter !== '' ? ` ${tag}` : tag;
    });
  return tidyBlockTagLines(converted, (line) => {
    const match = /^\s*([a-z]+\d+x)\s*$/i.exec(line);
    return match !== null && match[1]!.toLowerCase().startsWith(prefix) && isControl(match[1]!);
  });
}

/** marked, with a stack overflow (input the limits let through) as the author's error, not ours. */
function renderMarkdown(text: string, fileName: string, bodyLine: number): string {
  try {
    return markdown.parse(text) as string;
  } catch (error) {
    throw tooDeep(error, fileName, bodyLine);
  }
}

function tooDeep(error: unknown, fileName: string, bodyLine: number): unknown {
  if (!(error instanceof RangeError)) return error;
  return new BulletinError(
    'BAD_INPUT',
    `${fileName}:${bodyLine}:1: the Markdown of the body nests too deeply to render; nest fewer quotes, lists or emphasis.`,
    { cause: error },
  );
}

/**
 * Every link after the first to the same target loses its link (keeps its words), so the text part
 * lists each address once. Marked writes `<a href="…">`; links written as HTML count too.
 */
function listEachLinkOnce(html: string): string {
  const seen = new Set<string>();
  let out = '';
  let position = 0;
  const anchor = /<a\b[^>]*?\bhref="([^"]*)"[^>]*>/gi;
  for (let match = anchor.exec(html); match !== null; match = anchor.exec(html)) {
    const href = match[1]!;
    if (!seen.has(href)) {
      seen.add(href);
      continue;
    }
    const close = html.indexOf('</a>', anchor.lastIndex);
    if (close < 0) break;
    out += html.slice(position, match.index) + html.slice(anchor.lastIndex, close);
    position = close + 4;
    anchor.lastIndex = position;
  }
  return out + html.slice(position);
}

function placeholderPrefix(source: string): string {
  let prefix = 'hbsq';
  while (source.toLowerCase().includes(prefix)) prefix += 'q';
  return prefix;
}

/**
 * Renders the Markdown of a body whose Handlebars tags are already known to parse.
 * Tags keep their exact text, so template errors after this point still make sense to the author.
 */
export function markdownToTemplates(body: string, fileName: string, bodyLine = 1, valueWidth: (tagText: string) => number = () => 8): BodyTemplates {
  checkMarkdownLimits(body, fileName, bodyLine - 1);
  const prefix = placeholderPrefix(body);
  const tags: Tag[] = [];
  // A value written twice is one placeholder, so a link to it is listed once in the text.
  const valueIndex = new Map<string, number>();
  const commentMark = `${prefix}c`;
  let protectedBody = '';
  for (const segment of splitTags(body)) {
    if (segment.kind === 'text') {
      protectedBody += segment.text;
    } else if (segment.tag.role === 'comment') {
      protectedBody += commentMark;
    } else {
      let index = segment.tag.role === 'value' ? valueIndex.get(segment.tag.text) : undefined;
      if (index === undefined) {
        index = tags.length;
        tags.push(segment.tag);
        if (segment.tag.role === 'value') valueIndex.set(segment.tag.text, index);
      }
      protectedBody += `${prefix}${index}x`;
    }
  }
  // A comment alone on its line disappears with its line, so it cannot split a paragraph.
  protectedBody = protectedBody.replace(new RegExp(`^[ \\t]*${commentMark}[ \\t]*\\n`, 'gm'), '').replaceAll(commentMark, '');

  const placeholder = new RegExp(`${prefix}(\\d+)x`, 'gi');
  const widthOf = (index: number): number => (tags[index]?.role === 'value' ? valueWidth(tags[index].text) : 0);
  const isControl = (match: string): boolean => tags[Number(match.slice(prefix.length, -1))]?.role === 'control';

  let html = renderMarkdown(protectedBody, fileName, bodyLine);
  // A block tag on the first or last line of a paragraph moves out of it, so that
  // "{{#if …}}\ntext\n{{/if}}" wraps the paragraph instead of leaving an empty <p></p> behind.
  let before: string;
  do {
    before = html;
    html = html
      .replace(new RegExp(`<p>(${prefix}\\d+x)\n`, 'gi'), (whole: string, tag: string) => (isControl(tag) ? `${tag}\n<p>` : whole))
      .replace(new RegExp(`\n(${prefix}\\d+x)</p>`, 'gi'), (whole: string, tag: string) => (isControl(tag) ? `</p>\n${tag}` : whole));
  } while (html !== before);
  // A paragraph holding only block tags ({{#if}}, {{/if}}, {{> partial}}) is not a paragraph.
  html = html.replace(new RegExp(`<p>\\s*((?:${prefix}\\d+x\\s*)+)</p>`, 'gi'), (whole: string, inner: string) => {
    const found = inner.match(placeholder) ?? [];
    return found.every(isControl) ? found.join('\n') : whole;
  });
  if (Buffer.byteLength(html) > MAX_RENDERED_HTML_BYTES) {
    throw new BulletinError(
      'BAD_INPUT',
      `${fileName}:${bodyLine}:1: the body renders to ${formatBytes(Buffer.byteLength(html))} of HTML; a bulletin may render to at most ${formatBytes(MAX_RENDERED_HTML_BYTES)}.`,
    );
  }
  const text = textTemplate(html, prefix, isControl, widthOf, fileName, bodyLine);
  const restore = (rendered: string, part: string): string => {
    const seen = new Array<number>(tags.length).fill(0);
    const restored = rendered.replace(placeholder, (match: string) => {
      const index = Number(match.slice(prefix.length, -1));
      seen[index] = (seen[index] ?? 0) + 1;
      return tags[index]?.text ?? match;
    });
    const lost = tags.findIndex((tag, index) => tag.role === 'control' && seen[index] !== 1);
    if (lost >= 0) {
      const { line, column } = lineAndColumn(body, tags[lost]!.start);
      throw new BulletinError(
        'BAD_INPUT',
        `${fileName}:${line + bodyLine - 1}:${column}: the Markdown around ${tags[lost]!.text} moves it into a place where it ` +
          `cannot stay in the ${part} (a link target or an image?); put block tags on their own lines.`,
      );
    }
    return restored;
  };
  return { html: restore(html, 'HTML'), text: restore(text, 'plain text') };
}
