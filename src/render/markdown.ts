// Turns a bulletin body (Handlebars inside Markdown) into two Handlebars templates, HTML and plain
// text, running Markdown once per bulletin: each {{…}} tag is swapped for an inert placeholder word,
// marked renders the HTML, html-to-text derives the text, and the tags are put back verbatim.
import { convert, type HtmlToTextOptions } from 'html-to-text';
import { Marked } from 'marked';
import { BulletinError } from '../domain/errors.js';

type TagRole = 'value' | 'control' | 'comment';

interface Tag {
  readonly text: string;
  readonly role: TagRole;
}

type Segment = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'tag'; readonly tag: Tag };

export interface BodyTemplates {
  /** Handlebars source producing the HTML body fragment (no layout). */
  readonly html: string;
  /** Handlebars source producing the plain-text body (no layout); compile it without escaping. */
  readonly text: string;
}

const markdown = new Marked({ gfm: true, breaks: false, async: false });

const TEXT_OPTIONS: HtmlToTextOptions = {
  wordwrap: 72,
  // Keeps the lines of the source within a paragraph, so a block tag alone on its line stays alone
  // on its line in the text template, where Handlebars then removes that line.
  preserveNewlines: true,
  selectors: [
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({
      selector,
      options: { uppercase: false, leadingLineBreaks: 2, trailingLineBreaks: 2 },
    })),
    { selector: 'a', options: { linkBrackets: ['<', '>'], hideLinkHrefIfSameAsText: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'table', format: 'dataTable' },
  ],
};

const BLOCK_TAG = String.raw`</?(?:p|h[1-6]|ul|ol|li|blockquote|pre|table|thead|tbody|tr|th|td|div|hr)\b[^>]*>`;
const BETWEEN_BLOCKS = new RegExp(`(${BLOCK_TAG})\\s*\\n\\s*(?=${BLOCK_TAG})`, 'g');

/** Where a `{{…}}` tag starting at `start` ends (index after its closing braces), or -1. */
function tagEnd(source: string, start: number): number {
  if (source.startsWith('{{{{', start)) {
    // Raw block: {{{{name}}}} … {{{{/name}}}} is one tag; its content is never parsed.
    const openEnd = source.indexOf('}}}}', start);
    if (openEnd < 0) return -1;
    const name = source.slice(start + 4, openEnd).trim().split(/\s+/)[0] ?? '';
    const close = source.indexOf(`{{{{/${name}}}}}`, openEnd);
    return close < 0 ? -1 : close + name.length + 9;
  }
  const afterOpen = source.startsWith('~', start + 2) ? start + 3 : start + 2;
  if (source.startsWith('!--', afterOpen)) {
    // A long comment may contain "}}"; it ends at the first "--}}" (or "--~}}").
    const close = /--~?\}\}/.exec(source.slice(afterOpen + 3));
    return close === null ? -1 : afterOpen + 3 + close.index + close[0].length;
  }
  const triple = source[start + 2] === '{';
  let quote: string | null = null;
  for (let i = afterOpen; i < source.length; i++) {
    const char = source[i];
    if (quote !== null) {
      if (char === quote) quote = null;
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (char === '[') {
      quote = ']';
    } else if (source.startsWith('}}', i)) {
      return triple && source[i + 2] === '}' ? i + 3 : i + 2;
    }
  }
  return -1;
}

function roleOf(tagText: string): TagRole {
  const inner = tagText.replace(/^\\*\{\{\{?~?\s*/, '');
  if (inner.startsWith('!')) return 'comment';
  if (/^(?:[#^/>]|else\b|\{)/.test(inner)) return 'control';
  return 'value';
}

/** Splits a body into Markdown text and Handlebars tags, following the Handlebars lexer's rules. */
function splitTags(source: string): Segment[] {
  const segments: Segment[] = [];
  let position = 0;
  while (position < source.length) {
    const open = source.indexOf('{{', position);
    if (open < 0) break;
    const escapes = source.slice(position, open).match(/\\*$/)?.[0].length ?? 0;
    if (escapes === 1) {
      // `\{{`: Handlebars prints "{{" literally. Keep the backslash and braces out of Markdown's reach.
      segments.push({ kind: 'text', text: source.slice(position, open - 1) });
      segments.push({ kind: 'tag', tag: { text: '\\{{', role: 'value' } });
      position = open + 2;
      continue;
    }
    const start = escapes >= 2 ? open - 2 : open; // `\\{{x}}`: a literal backslash, then a real tag
    const end = tagEnd(source, open);
    if (end < 0) break; // the Handlebars parse has already rejected an unclosed tag
    segments.push({ kind: 'text', text: source.slice(position, start) });
    const text = source.slice(start, end);
    segments.push({ kind: 'tag', tag: { text, role: roleOf(text.replace(/^\\\\/, '')) } });
    position = end;
  }
  segments.push({ kind: 'text', text: source.slice(position) });
  return segments;
}

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

function placeholderPrefix(source: string): string {
  let prefix = 'hbsq';
  while (source.toLowerCase().includes(prefix)) prefix += 'q';
  return prefix;
}

/**
 * Renders the Markdown of a body whose Handlebars tags are already known to parse.
 * Tags keep their exact text, so template errors after this point still make sense to the author.
 */
export function markdownToTemplates(body: string, fileName: string): BodyTemplates {
  const prefix = placeholderPrefix(body);
  const tags: Tag[] = [];
  const commentMark = `${prefix}c`;
  let protectedBody = '';
  for (const segment of splitTags(body)) {
    if (segment.kind === 'text') {
      protectedBody += segment.text;
    } else if (segment.tag.role === 'comment') {
      protectedBody += commentMark;
    } else {
      protectedBody += `${prefix}${tags.length}x`;
      tags.push(segment.tag);
    }
  }
  // A comment alone on its line disappears with its line, so it cannot split a paragraph.
  protectedBody = protectedBody
    .replace(new RegExp(`^[ \\t]*${commentMark}[ \\t]*\\n`, 'gm'), '')
    .replaceAll(commentMark, '');

  const placeholder = new RegExp(`${prefix}(\\d+)x`, 'gi');
  const isControl = (match: string): boolean => tags[Number(match.slice(prefix.length, -1))]?.role === 'control';

  let html = markdown.parse(protectedBody) as string;
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
  // Line breaks between block elements mean nothing in HTML; html-to-text would keep them.
  const text = tidyBlockTagLines(convert(html.replace(BETWEEN_BLOCKS, '$1'), TEXT_OPTIONS), (line) => {
    const match = /^\s*([a-z]+\d+x)\s*$/i.exec(line);
    return match !== null && match[1]!.toLowerCase().startsWith(prefix) && isControl(match[1]!);
  });

  const restore = (rendered: string, part: string): string => {
    const seen = new Array<number>(tags.length).fill(0);
    const restored = rendered.replace(placeholder, (match: string) => {
      const index = Number(match.slice(prefix.length, -1));
      seen[index] = (seen[index] ?? 0) + 1;
      return tags[index]?.text ?? match;
    });
    const lost = tags.findIndex((tag, index) => tag.role === 'control' && seen[index] !== 1);
    if (lost >= 0) {
      throw new BulletinError(
        'BAD_INPUT',
        `${fileName}: the Markdown around ${tags[lost]!.text} moves it into a place where it ` +
          `cannot stay in the ${part} (a link target or an image?); put block tags on their own lines.`,
      );
    }
    return restored;
  };
  return { html: restore(html, 'HTML'), text: restore(text, 'plain text') };
}
