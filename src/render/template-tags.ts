// Finds the Handlebars tags in a template's text without parsing it, following the Handlebars
// lexer's rules (escapes, comments, raw blocks, quotes): Markdown rendering protects them, and the
// nesting limits are checked on them before Handlebars' parser and compiler (which recurse) run.

export type TagRole = 'value' | 'control' | 'comment';

export interface Tag {
  readonly text: string;
  readonly role: TagRole;
  /** Offset of the tag's first character in the scanned text. */
  readonly start: number;
}

export type Segment = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'tag'; readonly tag: Tag };

/** Where a `{{…}}` tag starting at `start` ends (index after its closing braces), or -1. */
export function tagEnd(source: string, start: number): number {
  if (source.startsWith('{{{{', start)) {
    // Raw block: {{{{name}}}} … {{{{/name}}}} is one tag; its content is never parsed.
    const openEnd = source.indexOf('}}}}', start);
    if (openEnd < 0) return -1;
    const name =
      source
        .slice(start + 4, openEnd)
        .trim()
        .split(/\s+/)[0] ?? '';
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

export function roleOf(tagText: string): TagRole {
  const inner = tagText.replace(/^\\*\{\{\{?~?\s*/, '');
  if (inner.startsWith('!')) return 'comment';
  if (/^(?:[#^/>]|else\b|\{)/.test(inner)) return 'control';
  return 'value';
}

/** Splits a body into Markdown text and Handlebars tags, following the Handlebars lexer's rules. */
export function splitTags(source: string): Segment[] {
  const segments: Segment[] = [];
  let position = 0;
  while (position < source.length) {
    const open = source.indexOf('{{', position);
    if (open < 0) break;
    const escapes = source.slice(position, open).match(/\\*$/)?.[0].length ?? 0;
    if (escapes === 1) {
      // `\{{`: Handlebars prints "{{" literally. Keep the backslash and braces out of Markdown's reach.
      segments.push({ kind: 'text', text: source.slice(position, open - 1) });
      segments.push({ kind: 'tag', tag: { text: '\\{{', role: 'value', start: open - 1 } });
      position = open + 2;
      continue;
    }
    const start = escapes >= 2 ? open - 2 : open; // `\\{{x}}`: a literal backslash, then a real tag
    const end = tagEnd(source, open);
    if (end < 0) break; // the Handlebars parse has already rejected an unclosed tag
    segments.push({ kind: 'text', text: source.slice(position, start) });
    const text = source.slice(start, end);
    segments.push({ kind: 'tag', tag: { text, role: roleOf(text.replace(/^\\\\/, '')), start } });
    position = end;
  }
  segments.push({ kind: 'text', text: source.slice(position) });
  return segments;
}
