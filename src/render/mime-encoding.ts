// MIME encodings written for speed and for the guarantees a bulk sender needs: quoted-printable
// (RFC 2045) that can be produced piecewise, base64 lines, RFC 2047 encoded-words, and header
// folding that never lets a value start a new header (no CR or LF ever passes through).
import { domainToASCII } from 'node:url';
import { BulletinError } from '../domain/errors.js';
import { normalizeAddress } from '../domain/address.js';

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const EQUALS = 0x3d;
const DOT = 0x2e;
const HEX = Buffer.from('0123456789ABCDEF');
/** RFC 2045 6.7: encoded lines are at most 76 characters, the soft break "=" included. */
const QP_LINE = 76;

export const CRLF = '\r\n';
export const SOFT_LINE_BREAK = Buffer.from('=\r\n');

export interface QuotedPrintableChunk {
  readonly bytes: Buffer;
  /** True when the last line is unfinished: the next chunk must begin with SOFT_LINE_BREAK. */
  readonly endsMidLine: boolean;
  /** True when that unfinished line ends with a space or tab: ending the part there needs a soft break. */
  readonly endsWithWhitespace: boolean;
}

/**
 * Quoted-printable for one piece of a part, starting at the beginning of a line. Line breaks (LF or
 * CRLF) become CRLF hard breaks; a lone CR is encoded; whitespace before a line break is encoded.
 * Whitespace ending the piece stays literal: the caller follows an unfinished line with a soft
 * break (see endsWithWhitespace). A dot starting a line is encoded, out of dot-stuffing's reach.
 */
export function encodeQuotedPrintable(input: Uint8Array): QuotedPrintableChunk {
  const length = input.length;
  const out = Buffer.allocUnsafe(length * 3 + Math.ceil((length * 3) / (QP_LINE - 4)) * 3 + 3);
  let o = 0;
  let column = 0;
  for (let i = 0; i < length; i++) {
    const byte = input[i]!;
    if (byte === LF) {
      out[o++] = CR;
      out[o++] = LF;
      column = 0;
      continue;
    }
    if (byte === CR && input[i + 1] === LF) continue;
    let literal: boolean;
    if (byte > SPACE && byte < 0x7f) {
      literal = byte !== EQUALS && !(byte === DOT && column === 0);
    } else if (byte === SPACE || byte === TAB) {
      const next = input[i + 1];
      literal = next !== LF && !(next === CR && input[i + 2] === LF);
    } else {
      literal = false;
    }
    const width = literal ? 1 : 3;
    if (column + width > QP_LINE - 1) {
      out[o++] = EQUALS;
      out[o++] = CR;
      out[o++] = LF;
      column = 0;
      if (byte === DOT) literal = false;
    }
    if (literal) {
      out[o++] = byte;
      column += 1;
    } else {
      out[o++] = EQUALS;
      out[o++] = HEX[byte >> 4]!;
      out[o++] = HEX[byte & 15]!;
      column += 3;
    }
  }
  const last = o > 0 ? out[o - 1] : undefined;
  return { bytes: out.subarray(0, o), endsMidLine: column > 0, endsWithWhitespace: column > 0 && (last === SPACE || last === TAB) };
}

/** Base64 in lines of 76 characters, each ending with CRLF. */
export function encodeBase64Lines(input: Uint8Array): Buffer {
  const encoded = Buffer.from(Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('base64'), 'latin1');
  const lines = Math.ceil(encoded.length / 76);
  const out = Buffer.allocUnsafe(encoded.length + lines * 2);
  let o = 0;
  for (let start = 0; start < encoded.length; start += 76) {
    o += encoded.copy(out, o, start, Math.min(start + 76, encoded.length));
    out[o++] = CR;
    out[o++] = LF;
  }
  return out.subarray(0, o);
}

/** Share of bytes above 127, to choose between quoted-printable and base64 for a part. */
export function nonAsciiShare(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return 0;
  let high = 0;
  for (const byte of bytes) if (byte > 0x7f) high++;
  return high / bytes.length;
}

// ---------------------------------------------------------------------------------------------------
// Headers

/** Bytes of UTF-8 per encoded-word: 45 bytes → 60 base64 characters → a 72-character word (≤ 75). */
const ENCODED_WORD_BYTES = 45;
const CONTROL = /[\u0000-\u001f\u007f]/g;
const NEEDS_ENCODING = /[^\u0020-\u007e]|=\?/;
const ATEXT_PHRASE = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/;
/** A plain word longer than this is encoded, so that no header line grows past 998 octets. */
const LONGEST_PLAIN_WORD = 200;

/** Collapses every run of whitespace and control characters (CR and LF included) into one space. */
export function oneLine(value: string): string {
  return value.replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();
}

/** RFC 2047 "B" encoded-words for `text`, split on character boundaries. */
export function encodedWords(text: string): string[] {
  const words: string[] = [];
  let chunk = '';
  let chunkBytes = 0;
  for (const char of text) {
    const bytes = Buffer.byteLength(char, 'utf8');
    if (chunkBytes + bytes > ENCODED_WORD_BYTES && chunk !== '') {
      words.push(`=?UTF-8?B?${Buffer.from(chunk, 'utf8').toString('base64')}?=`);
      chunk = '';
      chunkBytes = 0;
    }
    chunk += char;
    chunkBytes += bytes;
  }
  if (chunk !== '') words.push(`=?UTF-8?B?${Buffer.from(chunk, 'utf8').toString('base64')}?=`);
  return words;
}

/**
 * Unstructured text (a subject) as unbreakable atoms: plain ASCII words stay readable, each run of
 * words that needs encoding becomes encoded-words (spaces inside the run travel encoded).
 */
export function unstructuredAtoms(value: string): string[] {
  const words = oneLine(value)
    .split(' ')
    .filter((word) => word !== '');
  const needsEncoding = (word: string): boolean => NEEDS_ENCODING.test(word) || word.length > LONGEST_PLAIN_WORD;
  const atoms: string[] = [];
  for (let i = 0; i < words.length;) {
    if (!needsEncoding(words[i]!)) {
      atoms.push(words[i]!);
      i++;
      continue;
    }
    let end = i + 1;
    while (end < words.length && needsEncoding(words[end]!)) end++;
    // The space before a following plain word is significant: keep it outside the encoded run.
    atoms.push(...encodedWords(words.slice(i, end).join(' ')));
    i = end;
  }
  return atoms;
}

/** A display name as atoms: plain, quoted, or encoded-words. Empty names give no atoms. */
export function displayNameAtoms(name: string): string[] {
  const clean = oneLine(name);
  if (clean === '') return [];
  if (NEEDS_ENCODING.test(clean) || clean.length > 64) return encodedWords(clean);
  if (ATEXT_PHRASE.test(clean)) return clean.split(' ');
  return [`"${clean.replace(/(["\\])/g, '\\$1')}"`];
}

/**
 * A header field, folded at the spaces between atoms so lines stay within 76 characters where the
 * atoms allow it (78 is the RFC 5322 advice; 76 is RFC 2047's limit for lines with encoded-words).
 * Atoms are never split and never contain CR or LF, so no value can start a header of its own.
 */
export function headerField(name: string, atoms: readonly string[]): string {
  let field = `${name}:`;
  let lineLength = field.length;
  for (const atom of atoms) {
    if (/[\r\n]/.test(atom)) throw new BulletinError('INTERNAL', `A line break reached the ${name} header.`);
    if (lineLength + 1 + atom.length > 76 && lineLength > name.length + 1) {
      field += `${CRLF} ${atom}`;
      lineLength = 1 + atom.length;
    } else {
      field += ` ${atom}`;
      lineLength += 1 + atom.length;
    }
  }
  return `${field}${CRLF}`;
}

/** An address ready for a header or an SMTP envelope: ASCII only, international domains as punycode. */
export function asciiAddress(address: string, what: string): string {
  if (/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$/.test(address) && !address.includes('..')) return address;
  const checked = normalizeAddress(address);
  if (!checked.ok) throw new BulletinError('BAD_INPUT', `The ${what} address ${JSON.stringify(address)} ${checked.reason}.`);
  return checked.address;
}

/** A domain as ASCII (punycode) for Message-IDs, List-Id and DKIM. */
export function asciiDomain(domain: string): string {
  const ascii = domainToASCII(domain);
  if (ascii === '') throw new BulletinError('BAD_INPUT', `${JSON.stringify(domain)} is not a valid domain.`);
  return ascii;
}

/** A mailbox header (From, To): display name atoms then `<address>`. */
export function mailboxField(name: string, displayName: string, address: string): string {
  const atoms = displayNameAtoms(displayName);
  return headerField(name, atoms.length === 0 ? [address] : [...atoms, `<${address}>`]);
}

/** RFC 5322 date, e.g. `Sat, 28 Nov 2026 09:30:00 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}
