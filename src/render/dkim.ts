// DKIM signatures (RFC 6376, relaxed/relaxed; rsa-sha256, and ed25519-sha256 per RFC 8463) for the
// messages the composer builds: one key, or an RSA and an Ed25519 key side by side (verifiers that
// do not know Ed25519 still find a valid RSA signature). Keys are read once per bulletin; each
// message costs one body hash and one signature per key. Signs From, Subject, Date, Message-ID and
// the List-* fields, among others. Also: whether d= aligns with the From domain (DMARC).
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { getDomain } from 'tldts';
import { BulletinError } from '../domain/errors.js';
import { asciiDomain, CRLF } from './mime-encoding.js';

export interface DkimOptions {
  /** The signing domain (d=), ideally the From domain so DMARC aligns. */
  readonly domain: string;
  /** The selector (s=): the public key is published at `<selector>._domainkey.<domain>`. */
  readonly selector: string;
  /** PEM private key, RSA (2048 bits or more advised) or Ed25519. */
  readonly privateKey: string;
}

/**
 * DMARC alignment of a DKIM domain with the From address's domain (RFC 7489 3.1.1): `strict` when
 * they are equal, `relaxed` when they share an organizational domain (public suffix list, from
 * tldts), else `none` (DMARC then fails on DKIM).
 */
export function dkimAlignment(dkimDomain: string, fromAddress: string): 'strict' | 'relaxed' | 'none' {
  const d = dkimDomain.trim().replace(/\.$/, '').toLowerCase();
  const from = fromAddress
    .slice(fromAddress.lastIndexOf('@') + 1)
    .replace(/\.$/, '')
    .toLowerCase();
  if (d === from) return 'strict';
  const organizational = getDomain(d);
  return organizational !== null && organizational === getDomain(from) ? 'relaxed' : 'none';
}

/** Fields signed when present, in this order. */
const SIGNED_FIELDS = [
  'from',
  'to',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-archive',
  'list-help',
  'list-post',
  'auto-submitted',
];
/** Listed once more than present, so a copy added in transit breaks the signature (RFC 6376 8.15). */
const OVERSIGNED_FIELDS = ['from', 'subject', 'list-unsubscribe', 'list-unsubscribe-post'];

const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;

/** Relaxed header canonicalization of one field (`Name: value` with its folds and CRLF). */
function canonicalField(field: string): string {
  const colon = field.indexOf(':');
  const name = field.slice(0, colon).trim().toLowerCase();
  const value = field
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return `${name}:${value}${CRLF}`;
}

/**
 * Relaxed body canonicalization (RFC 6376 3.4.4): whitespace runs to one space, none at line ends,
 * no trailing empty lines. For any body; the composer uses the cheaper collapseWhitespace instead.
 */
export function canonicalBody(body: Buffer): Buffer {
  let canonical = body;
  if (body.includes('  ') || body.includes('\t') || body.includes(' \r\n')) {
    const out = Buffer.allocUnsafe(body.length);
    let o = 0;
    let pendingSpace = false;
    for (let i = 0; i < body.length; i++) {
      const byte = body[i]!;
      if (byte === SPACE || byte === TAB) {
        pendingSpace = true;
        continue;
      }
      if (pendingSpace && !(byte === CR && body[i + 1] === LF)) out[o++] = SPACE;
      pendingSpace = false;
      out[o++] = byte;
    }
    canonical = out.subarray(0, o);
  }
  let end = canonical.length;
  while (end >= 2 && canonical[end - 2] === CR && canonical[end - 1] === LF) end -= 2;
  if (end === 0) return Buffer.alloc(0);
  return Buffer.concat([canonical.subarray(0, end), Buffer.from(CRLF)]);
}

/**
 * Every run of spaces and tabs as one space. On the composer's output this alone is the relaxed
 * body canonicalization: its encoded lines never end in whitespace (quoted-printable encodes it,
 * base64 has none), the body ends with the closing boundary line, and no run of whitespace spans
 * two of its chunks. So fixed chunks are canonicalized once per bulletin, chunk by chunk.
 */
export function collapseWhitespace(chunk: Buffer): Buffer {
  if (!chunk.includes('  ') && !chunk.includes('\t')) return chunk;
  const out = Buffer.allocUnsafe(chunk.length);
  let o = 0;
  let inRun = false;
  for (let i = 0; i < chunk.length; i++) {
    const byte = chunk[i]!;
    if (byte === SPACE || byte === TAB) {
      if (!inRun) out[o++] = SPACE;
      inRun = true;
    } else {
      out[o++] = byte;
      inRun = false;
    }
  }
  return out.subarray(0, o);
}

function fieldName(field: string): string {
  return field.slice(0, field.indexOf(':')).trim().toLowerCase();
}

export class DkimSigner {
  private readonly key: KeyObject;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  readonly domain: string;
  readonly selector: string;

  /** Reads the key once; throws BulletinError('CONFIG') for an unusable key, domain or selector. */
  constructor(options: DkimOptions) {
    try {
      this.domain = asciiDomain(options.domain.trim().replace(/\.$/, ''));
    } catch {
      throw new BulletinError('CONFIG', `DKIM domain ${JSON.stringify(options.domain)} is not a valid domain.`);
    }
    if (!SELECTOR.test(options.selector)) {
      throw new BulletinError('CONFIG', `DKIM selector ${JSON.stringify(options.selector)} is not a valid selector.`);
    }
    this.selector = options.selector;
    try {
      this.key = createPrivateKey(options.privateKey);
    } catch (error) {
      throw new BulletinError('CONFIG', 'The DKIM private key cannot be read; it must be a PEM RSA or Ed25519 private key.', {
        cause: error,
      });
    }
    if (this.key.asymmetricKeyType === 'rsa') {
      const bits = this.key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 1024) throw new BulletinError('CONFIG', `The DKIM RSA key has ${bits} bits; RFC 8301 requires at least 1024.`);
      this.algorithm = 'rsa-sha256';
    } else if (this.key.asymmetricKeyType === 'ed25519') {
      this.algorithm = 'ed25519-sha256';
    } else {
      throw new BulletinError('CONFIG', `DKIM keys must be RSA or Ed25519, not ${this.key.asymmetricKeyType ?? 'unknown'}.`);
    }
  }

  /**
   * The `DKIM-Signature` field (with CRLF) to put first in a message whose header fields are
   * `fields` (in message order, each ending with CRLF) and whose canonicalized body is the
   * concatenation of `canonicalBodyChunks` (see canonicalBody and collapseWhitespace).
   */
  signatureField(fields: readonly string[], canonicalBodyChunks: readonly Buffer[], time: Date): string {
    const hash = createHash('sha256');
    for (const chunk of canonicalBodyChunks) hash.update(chunk);
    const bodyHash = hash.digest('base64');

    // RFC 6376 5.4.2: each listed name takes the last unused instance, from the bottom up.
    const unused = new Map<string, string[]>();
    for (const field of fields) {
      const name = fieldName(field);
      if (!SIGNED_FIELDS.includes(name)) continue;
      const instances = unused.get(name) ?? [];
      instances.push(field);
      unused.set(name, instances);
    }
    const listed: string[] = [];
    let signedData = '';
    for (const name of SIGNED_FIELDS) {
      for (let instances = unused.get(name); instances !== undefined && instances.length > 0;) {
        signedData += canonicalField(instances.pop()!);
        listed.push(name);
      }
    }
    for (const name of OVERSIGNED_FIELDS) listed.push(name);

    const headerList: string[] = [];
    let line = ' h=';
    for (const [index, name] of listed.entries()) {
      const piece = index === listed.length - 1 ? `${name};` : `${name}:`;
      if (line.length + piece.length > 76) {
        headerList.push(line);
        line = '  ';
      }
      line += piece;
    }
    headerList.push(line);

    const unsigned =
      `DKIM-Signature: v=1; a=${this.algorithm}; c=relaxed/relaxed; d=${this.domain};${CRLF}` +
      ` s=${this.selector}; t=${Math.floor(time.getTime() / 1000)};${CRLF}` +
      `${headerList.join(CRLF)}${CRLF}` +
      ` bh=${bodyHash};${CRLF}` +
      ` b=`;
    signedData += canonicalField(unsigned).slice(0, -CRLF.length);
    const data = Buffer.from(signedData, 'latin1');
    const signature = this.algorithm === 'rsa-sha256' ? sign('sha256', data, this.key) : sign(null, createHash('sha256').update(data).digest(), this.key);
    return `${unsigned}${signature.toString('base64')}${CRLF}`;
  }
}

/**
 * Signs with every key given: at most one RSA and one Ed25519 key, same domain. The signatures are
 * independent (neither covers the other); the RSA one goes on top.
 */
export class DkimSigners {
  readonly signers: readonly DkimSigner[];

  constructor(options: DkimOptions | readonly DkimOptions[]) {
    const list = Array.isArray(options) ? (options as readonly DkimOptions[]) : [options as DkimOptions];
    if (list.length === 0 || list.length > 2) throw new BulletinError('CONFIG', `DKIM signs with one or two keys, not ${list.length}.`);
    const signers = list.map((one) => new DkimSigner(one));
    if (signers.length === 2) {
      if (signers[0]!.algorithm === signers[1]!.algorithm) {
        throw new BulletinError(
          'CONFIG',
          `Two DKIM keys must be one RSA and one Ed25519 key, not two ${signers[0]!.algorithm === 'rsa-sha256' ? 'RSA' : 'Ed25519'} keys.`,
        );
      }
      if (signers[0]!.domain !== signers[1]!.domain) throw new BulletinError('CONFIG', 'Both DKIM keys sign for the one DKIM_DOMAIN.');
      if (signers[0]!.selector === signers[1]!.selector) {
        throw new BulletinError('CONFIG', `Two DKIM keys need two selectors (each publishes its own key), not ${signers[0]!.selector} twice.`);
      }
    }
    this.signers = signers.sort((a, b) => (a.algorithm === b.algorithm ? 0 : a.algorithm === 'rsa-sha256' ? -1 : 1));
  }

  /** The `DKIM-Signature` fields, in message order, for a message with these fields and body. */
  signatureFields(fields: readonly string[], canonicalBodyChunks: readonly Buffer[], time: Date): string[] {
    return this.signers.map((signer) => signer.signatureField(fields, canonicalBodyChunks, time));
  }
}
