// The input limits of a bulletin, in one place, and the cheap scans that enforce them before the
// parts that recurse or grow with their input (Handlebars' parser and compiler, marked,
// html-to-text) ever see the text: each refusal names file:line:column and the limit.
import { BulletinError } from '../domain/errors.js';
import { splitTags } from './template-tags.js';

/**
 * A bulletin file (front matter and body) is at most 1 MiB: ten times the 102 KB past which Gmail
 * clips a message, and small enough that the largest bulletin sends in well under 400 MB (bench/
 * memory.ts measures it).
 */
export const MAX_BULLETIN_BYTES = 1024 * 1024;
/** Layouts and partials: each file at most 256 KiB. */
export const MAX_TEMPLATE_FILE_BYTES = 256 * 1024;
/** Blocks ({{#if}}, {{#each}}, {{else if}} chains) inside each other, and subexpressions in one tag. */
export const MAX_TEMPLATE_NESTING = 32;
/**
 * {{…}} tags in one file: Handlebars compiles each into code, and each personal one is rendered and
 * encoded per message; 10,000 in a 1 MiB body took 8.7 s to compile and 850 MB. A bulletin names its
 * reader a few times, not a thousand.
 */
export const MAX_TEMPLATE_TAGS = 1000;
/** Quotes and lists inside each other in the Markdown, and emphasis inside emphasis. */
export const MAX_MARKDOWN_NESTING = 32;
/** HTML elements written in the Markdown, inside each other. */
export const MAX_HTML_NESTING = 64;
/**
 * `*`, `_` and `~` in one paragraph: marked's emphasis matching is quadratic in them (100,000 take
 * it almost a minute), and no paragraph written by a person comes near.
 */
export const MAX_EMPHASIS_DELIMITERS = 2000;
/** The HTML rendered from the Markdown, before the layout: never passed truncated to html-to-text. */
export const MAX_RENDERED_HTML_BYTES = 16 * 1024 * 1024;

/** 1-based line and column of an offset in a text. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let at = text.indexOf('\n'); at !== -1 && at < offset; at = text.indexOf('\n', at + 1)) {
    line++;
    lineStart = at + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

function refuse(file: string, text: string, offset: number, sentence: string, lineOffset = 0): BulletinError {
  const { line, column } = lineAndColumn(text, offset);
  return new BulletinError('BAD_INPUT', `${file}:${line + lineOffset}:${column}: ${sentence}`);
}

const OPEN_BLOCK = /^\{\{~?\s*[#^](?!\s*~?\}\})/;
const CLOSE_BLOCK = /^\{\{~?\s*\//;
const ELSE_CHAIN = /^\{\{~?\s*else\s+[^\s}~]/;

/**
 * Refuses a template with more than MAX_TEMPLATE_TAGS tags, or whose blocks or subexpressions nest
 * deeper than MAX_TEMPLATE_NESTING, before
 * Handlebars parses it: its parser, compiler and runtime each recurse once per level, and 5,000
 * levels took them over ten seconds. Linear in the text.
 */
export function checkTemplateNesting(text: string, file: string): void {
  // Each open block, with the {{else if}} links chained to it (each one a level in the tree).
  const open: number[] = [];
  let depth = 0;
  let count = 0;
  for (const segment of splitTags(text)) {
    if (segment.kind !== 'tag' || segment.tag.role === 'comment') continue;
    const { text: tag, start } = segment.tag;
    if (++count > MAX_TEMPLATE_TAGS) {
      throw refuse(file, text, start, `this is tag number ${MAX_TEMPLATE_TAGS + 1}; a bulletin template may have at most ${MAX_TEMPLATE_TAGS} {{…}} tags.`);
    }
    const plain = tag.replace(/^\\\\/, '');
    if (OPEN_BLOCK.test(plain)) {
      open.push(1);
      depth++;
    } else if (ELSE_CHAIN.test(plain) && open.length > 0) {
      open[open.length - 1]!++;
      depth++;
    } else if (CLOSE_BLOCK.test(plain)) {
      depth -= open.pop() ?? 0;
    }
    if (depth > MAX_TEMPLATE_NESTING) {
      throw refuse(
        file,
        text,
        start,
        `blocks nest more than ${MAX_TEMPLATE_NESTING} deep here; a bulletin template may nest at most ${MAX_TEMPLATE_NESTING} blocks.`,
      );
    }
    let parentheses = 0;
    let quote: string | null = null;
    for (let i = 0; i < tag.length; i++) {
      const char = tag[i];
      if (quote !== null) {
        if (char === quote) quote = null;
      } else if (char === '"' || char === "'") {
        quote = char;
      } else if (char === '(') {
        if (++parentheses > MAX_TEMPLATE_NESTING) {
          throw refuse(file, text, start + i, `subexpressions nest more than ${MAX_TEMPLATE_NESTING} deep in this tag.`);
        }
      } else if (char === ')') {
        parentheses--;
      }
    }
  }
}

const FENCE = /^(`{3,}|~{3,})/;
/** `* * *`, `- - -`, `___`: a rule, not list markers or emphasis. */
const THEMATIC_BREAK = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const LIST_MARKER = /^(?:[-*+]|\d{1,9}[.)])(?=[ \t]|$)/;
const VOID_ELEMENTS = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);
const HTML_TAG = /<(\/?)([A-Za-z][A-Za-z0-9-]*)\b[^<>]*?(\/?)>/g;

/**
 * Refuses Markdown that nests deeper than the limits (quotes and lists, emphasis, HTML elements),
 * or whose emphasis would take marked too long, before marked sees it: marked recurses once per
 * level (100,000 `>` overflow its stack; a 3,000-level list took 4 GB). `lineOffset` is the file
 * line before the body's first line. Linear in the text; estimates from above, never below.
 */
export function checkMarkdownLimits(body: string, file: string, lineOffset: number): void {
  const lines = body.split('\n');
  /** Content columns of the list items the current line may be inside. */
  const items: number[] = [];
  let fence: string | null = null;
  let offset = 0;
  let paragraphDelimiters = 0;
  let emphasisDepth = 0;
  let htmlDepth = 0;
  for (const line of lines) {
    const lineStart = offset;
    offset += line.length + 1;
    if (line.trim() === '' || THEMATIC_BREAK.test(line)) {
      paragraphDelimiters = 0;
      emphasisDepth = 0;
      continue;
    }
    // Container markers at the start of the line: `>` quotes and list items, each one level.
    let column = 0;
    let at = 0;
    let markers = 0;
    let quotes = 0;
    let indent = -1;
    let pushed = 0;
    for (;;) {
      while (line[at] === ' ' || line[at] === '\t') {
        column += line[at] === '\t' ? 4 - (column % 4) : 1;
        at++;
      }
      if (indent < 0) indent = column;
      const rest = line.slice(at, at + 12);
      if (fence !== null) break;
      if (line[at] === '>') {
        quotes++;
        markers++;
        at++;
        column++;
      } else {
        const marker = LIST_MARKER.exec(rest);
        if (marker === null) break;
        if (markers === 0 && quotes === 0) {
          while (items.length > 0 && items[items.length - 1]! > indent) items.pop();
        }
        markers++;
        at += marker[0].length;
        column += marker[0].length;
        if (markers === 1 && quotes === 0) {
          items.push(column + 1);
          pushed = 1;
        }
      }
      if (items.length + markers - pushed > MAX_MARKDOWN_NESTING) {
        throw refuse(
          file,
          body,
          lineStart + at - 1,
          `quotes and lists nest more than ${MAX_MARKDOWN_NESTING} deep here; Markdown in a bulletin may nest at most ${MAX_MARKDOWN_NESTING} levels.`,
          lineOffset,
        );
      }
    }
    const content = line.slice(at);
    const fenceMatch = FENCE.exec(content);
    if (fence !== null) {
      if (fenceMatch !== null && fenceMatch[1]![0] === fence[0] && fenceMatch[1]!.length >= fence.length && content.trim() === fenceMatch[1]) fence = null;
      continue;
    }
    if (fenceMatch !== null) {
      fence = fenceMatch[1]!;
      continue;
    }
    if (markers === 0 && quotes === 0) {
      // Text not indented into a list item ends it (lazy continuation lines only err upwards).
      while (items.length > 0 && items[items.length - 1]! > indent + 3) items.pop();
    }
    if (indent >= 4 && markers === 0 && items.length === 0) continue; // an indented code block
    for (let i = 0; i < content.length; i++) {
      const char = content[i];
      if (char !== '*' && char !== '_' && char !== '~') continue;
      let end = i;
      while (content[end + 1] === char) end++;
      const run = end - i + 1;
      paragraphDelimiters += run;
      if (paragraphDelimiters > MAX_EMPHASIS_DELIMITERS) {
        throw refuse(
          file,
          body,
          lineStart + at + i,
          `this paragraph has more than ${MAX_EMPHASIS_DELIMITERS} emphasis marks (*, _ or ~); split it or escape them (\\*).`,
          lineOffset,
        );
      }
      const before = content[i - 1] ?? ' ';
      const after = content[end + 1] ?? ' ';
      const opens = /\S/.test(after) && (/\s/.test(before) || (/[\p{P}\p{S}]/u.test(before) && !/[\p{P}\p{S}]/u.test(after)));
      const closes = /\S/.test(before) && (/\s/.test(after) || (/[\p{P}\p{S}]/u.test(after) && !/[\p{P}\p{S}]/u.test(before)));
      if (opens && !closes) emphasisDepth += Math.min(run, 3);
      else if (closes && !opens) emphasisDepth = Math.max(0, emphasisDepth - Math.min(run, 3));
      if (emphasisDepth > MAX_MARKDOWN_NESTING) {
        throw refuse(
          file,
          body,
          lineStart + at + i,
          `emphasis nests more than ${MAX_MARKDOWN_NESTING} deep here; Markdown in a bulletin may nest at most ${MAX_MARKDOWN_NESTING} levels.`,
          lineOffset,
        );
      }
      i = end;
    }
    if (content.includes('<')) {
      HTML_TAG.lastIndex = 0;
      for (let match = HTML_TAG.exec(content); match !== null; match = HTML_TAG.exec(content)) {
        const name = match[2]!.toLowerCase();
        if (VOID_ELEMENTS.has(name) || match[3] === '/') continue;
        if (match[1] === '/') {
          htmlDepth = Math.max(0, htmlDepth - 1);
        } else if (++htmlDepth > MAX_HTML_NESTING) {
          throw refuse(
            file,
            body,
            lineStart + at + match.index,
            `HTML elements nest more than ${MAX_HTML_NESTING} deep here; a bulletin may nest at most ${MAX_HTML_NESTING}.`,
            lineOffset,
          );
        }
      }
    }
  }
}

/** Refuses a bulletin file over MAX_BULLETIN_BYTES, with its size and the limit. */
export function checkBulletinSize(bytes: number, file: string): void {
  if (bytes > MAX_BULLETIN_BYTES) {
    throw new BulletinError(
      'BAD_INPUT',
      `${file}:1:1: the bulletin is ${formatBytes(bytes)}; a bulletin may be at most ${formatBytes(MAX_BULLETIN_BYTES)} (front matter and body).`,
    );
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(bytes % 1024 === 0 ? 0 : 1)} KiB`;
  return `${bytes} bytes`;
}
