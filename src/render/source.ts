// Reads a bulletin source file: YAML front matter between `---` lines, then a Handlebars + Markdown
// body. Checks the front matter once, here, so nothing later meets a missing or multi-line subject.
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isNode, isScalar, LineCounter, parseDocument, visit, type Node as YamlNode } from 'yaml';
import { BulletinError } from '../domain/errors.js';
import { checkBulletinSize } from './limits.js';

export interface BulletinSource {
  /** The file name used in error messages. */
  readonly fileName: string;
  /** Subject without the list prefix; one line, never empty. */
  readonly subject: string;
  /** The list slug named in the front matter, if any (the command line may name one instead). */
  readonly list: string | null;
  /** The bulletin's own date, shown in the body (`bulletin.date`); null means the send date. */
  readonly date: Date | null;
  /** A one-paragraph summary: the inbox preview text, and the archive and feed excerpt. */
  readonly summary: string | null;
  /** The bulletin key of an earlier bulletin this one follows up (threading); see compileBulletin. */
  readonly inReplyTo: string | null;
  /** BCP 47 language of the bulletin (`lang` on the HTML), default `en`. */
  readonly lang: string;
  /** The body: Handlebars first, then Markdown. Line endings are `\n`. */
  readonly body: string;
  /** The 1-based line of the file on which the body starts, so errors can name file lines. */
  readonly bodyLine: number;
}

const KNOWN_KEYS = ['subject', 'list', 'date', 'summary', 'in-reply-to', 'lang'] as const;
const FENCE = /^---[ \t]*$/;
const END_FENCE = /^(?:---|\.\.\.)[ \t]*$/;
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;
const LANGUAGE_TAG = /^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$/;
const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Where something is in the file: 1-based line and column. */
interface Place {
  readonly line: number;
  readonly column: number;
}

function bad(fileName: string, place: Place | number, sentence: string): BulletinError {
  const { line, column } = typeof place === 'number' ? { line: place, column: 1 } : place;
  return new BulletinError('BAD_INPUT', `${fileName}:${line}:${column}: ${sentence}`);
}

function scalarText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

function parseDate(value: unknown, fileName: string, line: Place): Date {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
  const text = scalarText(value)?.trim() ?? '';
  const dateOnly = DATE_ONLY.exec(text);
  if (dateOnly !== null) {
    const date = new Date(Date.UTC(Number(dateOnly[1]), Number(dateOnly[2]) - 1, Number(dateOnly[3])));
    // Date.UTC rolls 2026-02-30 over to March; a round trip catches it.
    if (date.toISOString().startsWith(text)) return date;
  } else if (DATE_TIME.test(text)) {
    const date = new Date(text);
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw bad(fileName, line, `"date" must be written as YYYY-MM-DD or an ISO 8601 date-time, not "${text}".`);
}

/**
 * Splits and checks a bulletin source. Tolerates a byte-order mark and CRLF line endings.
 * Throws BulletinError('BAD_INPUT') naming the file and line of the first problem.
 */
export function parseBulletinSource(text: string, fileName: string): BulletinSource {
  checkBulletinSize(Buffer.byteLength(text), fileName);
  const lines = text
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .split('\n');
  if (!FENCE.test(lines[0] ?? '')) {
    throw bad(fileName, 1, 'a bulletin starts with front matter: a "---" line, "subject: …", and another "---" line.');
  }
  const end = lines.findIndex((line, index) => index > 0 && END_FENCE.test(line));
  if (end < 0) throw bad(fileName, 1, 'the front matter opened on line 1 is never closed by a "---" line.');

  const lineCounter = new LineCounter();
  const document = parseDocument(lines.slice(1, end).join('\n'), { prettyErrors: false, uniqueKeys: true, lineCounter });
  // The front matter starts on line 2 of the file.
  const placeOf = (offset: number): Place => {
    const { line, col } = lineCounter.linePos(offset);
    return { line: line + 1, column: col };
  };
  const firstError = document.errors[0];
  if (firstError !== undefined) {
    throw bad(fileName, placeOf(firstError.pos[0]), `the front matter is not valid YAML (${firstError.message.split('\n')[0]}).`);
  }
  // Aliases (`*name`) can multiply a few lines into gigabytes; a bulletin's keys never need them.
  visit(document, (_key, node) => {
    if (isAlias(node) || (isNode(node) && node.anchor !== undefined)) {
      throw bad(fileName, placeOf((node as YamlNode).range?.[0] ?? 0), 'the front matter uses a YAML anchor or alias (& or *); write each value out.');
    }
  });
  if (document.contents !== null && !isMap(document.contents)) {
    throw bad(fileName, placeOf(document.contents.range?.[0] ?? 0), 'the front matter must be a set of "key: value" lines.');
  }
  const places = new Map<string, Place>();
  for (const pair of isMap(document.contents) ? document.contents.items : []) {
    if (isScalar(pair.key) && pair.key.range) places.set(String(pair.key.value), placeOf(pair.key.range[0]));
  }
  const data: unknown = document.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw bad(fileName, 2, 'the front matter must be a set of "key: value" lines.');
  }
  const fields = data as Record<string, unknown>;
  const lineOf = (key: string): Place => places.get(key) ?? { line: 2, column: 1 };

  for (const key of Object.keys(fields)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      throw bad(fileName, lineOf(key), `unknown front matter key "${key}" (known: ${KNOWN_KEYS.join(', ')}).`);
    }
  }

  const subject = scalarText(fields.subject)?.trim() ?? '';
  if (subject === '') throw bad(fileName, lineOf('subject'), 'the front matter needs a non-empty "subject".');
  if (CONTROL_CHARACTERS.test(subject)) {
    throw bad(fileName, lineOf('subject'), 'the subject must be a single line without control characters.');
  }

  const list = fields.list === undefined || fields.list === null ? null : (scalarText(fields.list)?.trim() ?? '');
  if (list !== null && !SLUG.test(list)) {
    throw bad(fileName, lineOf('list'), `"list" must be a list slug such as "bulletins", not "${String(fields.list)}".`);
  }

  const summaryText = fields.summary === undefined || fields.summary === null ? null : scalarText(fields.summary);
  if (summaryText === null && fields.summary !== undefined && fields.summary !== null) {
    throw bad(fileName, lineOf('summary'), '"summary" must be text.');
  }
  const summary = summaryText === null ? null : summaryText.replace(/\s+/g, ' ').trim() || null;

  const inReplyToValue = fields['in-reply-to'];
  const inReplyTo = inReplyToValue === undefined || inReplyToValue === null ? null : (scalarText(inReplyToValue)?.trim() ?? '');
  if (inReplyTo !== null && (inReplyTo === '' || CONTROL_CHARACTERS.test(inReplyTo))) {
    throw bad(fileName, lineOf('in-reply-to'), '"in-reply-to" must name an earlier bulletin on one line.');
  }

  const lang = fields.lang === undefined || fields.lang === null ? 'en' : (scalarText(fields.lang)?.trim() ?? '');
  if (!LANGUAGE_TAG.test(lang)) {
    throw bad(fileName, lineOf('lang'), `"lang" must be a language tag such as "en" or "el", not "${String(fields.lang)}".`);
  }

  const date = fields.date === undefined || fields.date === null ? null : parseDate(fields.date, fileName, lineOf('date'));

  return {
    fileName,
    subject: subject.replace(/\s+/g, ' '),
    list,
    date,
    summary,
    inReplyTo,
    lang,
    body: lines.slice(end + 1).join('\n'),
    bodyLine: end + 2,
  };
}

/** Reads and parses a bulletin source file; a missing file is NOT_FOUND. */
export async function readBulletinSource(path: string): Promise<BulletinSource> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BulletinError('NOT_FOUND', `Bulletin file ${path} does not exist.`, { cause: error });
    throw new BulletinError('BAD_INPUT', `Bulletin file ${path} cannot be read (${code ?? 'error'}).`, { cause: error });
  }
  return parseBulletinSource(text, path);
}
