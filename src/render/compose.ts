// Compiles a bulletin once, then builds one raw RFC 5322 message per recipient from parts prepared
// up front: header fields already folded, fixed stretches of each MIME part already encoded, and
// only the personal pieces rendered and encoded per message. Sends and stores nothing.
import { createHash } from 'node:crypto';
import { BulletinError } from '../domain/errors.js';
import { archiveUrl, helpUrl, listIdentifier, unsubscribeMailbox, unsubscribeUrlOf } from '../domain/links.js';
import { effectiveBounceAddress, effectiveSubjectPrefix, MAX_BASE_URL_LENGTH, type MailingList } from '../domain/list.js';
import { signToken, type SigningKey } from '../domain/token.js';
import { recipientContext, sharedContext, type Recipient, type RecipientContext, type SharedContext } from './context.js';
import { collapseWhitespace, DkimSigners, type DkimOptions } from './dkim.js';
import { headerFor, planHeader, type HeaderField } from './headers.js';
import { MESSAGE_ID_VERSION, stableMessageId, type MessageIdVersion } from './message-id.js';
import {
  asciiAddress,
  asciiDomain,
  CRLF,
  encodeBase64Lines,
  encodeQuotedPrintable,
  nonAsciiShare,
  SOFT_LINE_BREAK,
  type QuotedPrintableChunk,
} from './mime-encoding.js';
import type { BulletinSource } from './source.js';
import { assembleTemplates, type AssembledTemplate } from './template-assembly.js';
import { loadTemplateSet, type TemplateSet } from './template-files.js';
import { splitAddress } from '../domain/address.js';

export interface CompileBulletinOptions {
  readonly source: BulletinSource;
  readonly list: MailingList;
  /** Identifies the bulletin for Message-IDs; the send engine passes the bulletin's database id. */
  readonly bulletinKey: string;
  /** The installation's secret and id: sign unsubscribe and VERP tokens and key Message-IDs. */
  readonly signing: SigningKey;
  /** How this bulletin's Message-IDs are made (stored with it); default: the current way. */
  readonly messageIdVersion?: MessageIdVersion;
  /** Overrides `templates/` file by file; default: the list's templatesDir, else the shipped layouts. */
  readonly templatesDir?: string | null;
  /** Exact layouts to use (e.g. stored with a bulletin when its send began); no files are read. */
  readonly templates?: TemplateSet;
  /** Envelope sender `<local>+<verp token>@<domain>`, so a bounce names its recipient. */
  readonly verp?: boolean;
  /** One key, or an RSA and an Ed25519 key (two signatures). */
  readonly dkim?: DkimOptions | readonly DkimOptions[] | null;
  /** The Date header; default now. Pass the stored send date when resuming, for identical retries. */
  readonly date?: Date;
  /** Key of the bulletin this one follows up; default: the front matter's `in-reply-to` as a key. */
  readonly inReplyToBulletinKey?: string | null;
  /** How the Message-IDs of that earlier bulletin were made; default: the current way. */
  readonly inReplyToMessageIdVersion?: MessageIdVersion;
}

/** One message, ready for the transport's `send()`: raw bytes in SMTP DATA form and the envelope. */
export interface RenderedMessage {
  /** The whole message: CRLF line endings, no line over 998 octets, 7-bit clean. */
  readonly raw: Buffer;
  readonly envelope: { readonly from: string; readonly to: string[] };
  /** With angle brackets, as in the header: `<…@domain>`. Same for every retry. */
  readonly messageId: string;
}

export interface CompiledBulletin {
  readonly source: BulletinSource;
  readonly list: MailingList;
  /** The Subject header's text: the list prefix and the bulletin's subject. */
  readonly subject: string;
  readonly date: Date;
  /** The layouts and partials it was compiled with (store them to recompile identically). */
  readonly templates: TemplateSet;
  /** The Content-Transfer-Encoding chosen for each part. */
  readonly encodings: { readonly text: PartEncoding; readonly html: PartEncoding };
  /** One recipient's message. Throws BulletinError('BAD_INPUT') for an unusable address. */
  render(recipient: Recipient): RenderedMessage;
  /** The HTML part as that recipient gets it (preview). */
  renderHtml(recipient: Recipient): string;
  /** The plain-text part as that recipient gets it (preview). */
  renderText(recipient: Recipient): string;
  /**
   * The same bulletin under another key (Message-IDs follow the key), sharing everything compiled:
   * a send checks and shows a bulletin before it has an id, then sends it without compiling twice.
   */
  withKey(bulletinKey: string): CompiledBulletin;
  /** The body alone as the web archive shows it (what renderBodyForArchive gives), no layout. */
  archiveBody(): { readonly html: string; readonly text: string };
  /**
   * Where the body prints a subscriber value that is empty in the archive copy, one sentence each
   * with file:line:column (the send confirmation shows them; `preview --archive` shows the copy).
   */
  readonly emptyInArchive: readonly string[];
  /** The DKIM signatures every message carries (none without DKIM). */
  readonly dkimSignatures: readonly { readonly domain: string; readonly selector: string; readonly algorithm: string }[];
}

export type PartEncoding = 'quoted-printable' | 'base64';

/** Above this share of non-ASCII bytes, base64 is shorter than quoted-printable. */
const BASE64_THRESHOLD = 1 / 6;
const MAX_LOCAL_PART = 64;
const PRINTABLE_URL = /^https?:\/\/[\x21-\x7e]+$/;
const CRLF_BYTES = Buffer.from(CRLF);

export const SAMPLE_RECIPIENT: Recipient = Object.freeze({
  id: 0,
  email: 'subscriber@example.com',
  name: 'Sample Subscriber',
  attributes: Object.freeze({}),
});

type EncodedPiece =
  | { readonly kind: 'fixed'; readonly text: string; readonly encoded: QuotedPrintableChunk; readonly canonical: Buffer }
  | { readonly kind: 'personal'; readonly index: number };

/** The bytes of a message body, and the same chunks canonicalized for DKIM when it signs. */
interface BodyChunks {
  readonly raw: Buffer[];
  readonly canonical: Buffer[] | null;
}

/** One MIME body part: its header lines, prepared once, and its content, per recipient. */
class BodyPart {
  readonly head: Buffer;
  private readonly pieces: readonly EncodedPiece[];

  constructor(
    contentType: string,
    readonly encoding: PartEncoding,
    boundary: string,
    private readonly template: AssembledTemplate,
  ) {
    this.head = Buffer.from(
      `--${boundary}${CRLF}Content-Type: ${contentType}; charset=utf-8${CRLF}` + `Content-Transfer-Encoding: ${encoding}${CRLF}${CRLF}`,
      'latin1',
    );
    this.pieces = template.pieces.map((piece) => {
      if (piece.kind === 'personal') return { kind: 'personal', index: piece.index };
      const encoded = encodeQuotedPrintable(Buffer.from(piece.text, 'utf8'));
      return { kind: 'fixed', text: piece.text, encoded, canonical: collapseWhitespace(encoded.bytes) };
    });
  }

  /** Appends the part: its head, then content ending with CRLF so a boundary line can follow. */
  append(chunks: BodyChunks, context: RecipientContext): void {
    const add = (raw: Buffer, canonical: Buffer = raw): void => {
      chunks.raw.push(raw);
      chunks.canonical?.push(canonical);
    };
    add(this.head);
    const personal = this.template.renderPersonal(context);
    if (this.encoding === 'base64') {
      let text = '';
      for (const piece of this.pieces) text += piece.kind === 'fixed' ? piece.text : personal[piece.index]!;
      add(encodeBase64Lines(Buffer.from(text, 'utf8')));
      return;
    }
    let last: QuotedPrintableChunk | null = null;
    for (const piece of this.pieces) {
      const chunk = piece.kind === 'fixed' ? piece.encoded : encodeQuotedPrintable(Buffer.from(personal[piece.index]!, 'utf8'));
      if (chunk.bytes.length === 0) continue;
      if (last?.endsMidLine) add(SOFT_LINE_BREAK);
      if (piece.kind === 'fixed') add(chunk.bytes, piece.canonical);
      else add(chunk.bytes, chunks.canonical === null ? chunk.bytes : collapseWhitespace(chunk.bytes));
      last = chunk;
    }
    // Whitespace may not end an encoded line: a final soft break keeps it (RFC 2045 6.7 rule 3).
    if (last?.endsWithWhitespace) add(SOFT_LINE_BREAK);
    // The CRLF before a boundary belongs to the boundary: content keeps its own final line break.
    add(CRLF_BYTES);
  }
}

function chooseEncoding(template: AssembledTemplate): PartEncoding {
  const fixedText = template.pieces.map((piece) => (piece.kind === 'fixed' ? piece.text : '')).join('');
  return nonAsciiShare(fixedText) > BASE64_THRESHOLD ? 'base64' : 'quoted-printable';
}

function prefixedSubject(list: MailingList, subject: string): string {
  const prefix = effectiveSubjectPrefix(list).trim();
  if (prefix === '' || subject.includes(prefix)) return subject;
  return `${prefix} ${subject}`;
}

class BulletinMessages implements CompiledBulletin {
  readonly source: BulletinSource;
  readonly list: MailingList;
  readonly subject: string;
  readonly date: Date;
  readonly templates: TemplateSet;
  readonly encodings: { readonly text: PartEncoding; readonly html: PartEncoding };
  readonly emptyInArchive: readonly string[];
  readonly dkimSignatures: readonly { readonly domain: string; readonly selector: string; readonly algorithm: string }[];

  private readonly signing: SigningKey;
  private readonly messageIdVersion: MessageIdVersion;
  private readonly parentMessageIdVersion: MessageIdVersion;
  private bulletinKey: string;
  private readonly parentKey: string | null;
  private readonly shared: SharedContext;
  private readonly html: AssembledTemplate;
  private readonly text: AssembledTemplate;
  private readonly htmlBodyOnly: (context: object) => string;
  private readonly textBodyOnly: (context: object) => string;
  private readonly header: readonly HeaderField[];
  private readonly parts: readonly BodyPart[];
  private readonly closing: Buffer;
  private readonly messageDomain: string;
  private readonly bounceAddress: string;
  private readonly verp: boolean;
  private readonly dkim: DkimSigners | null;

  constructor(options: CompileBulletinOptions, templates: TemplateSet) {
    const { source, list } = options;
    if (options.signing.secret === '') throw new BulletinError('CONFIG', 'The bulletin secret is empty; set BULLETIN_SECRET.');
    if (options.bulletinKey === '') throw new BulletinError('INTERNAL', 'A bulletin needs a key to derive its Message-IDs.');
    if (!PRINTABLE_URL.test(list.baseUrl)) {
      throw new BulletinError('BAD_INPUT', `List ${list.slug} has base URL ${JSON.stringify(list.baseUrl)}; links need an ASCII http(s) URL.`);
    }
    if (list.baseUrl.length > MAX_BASE_URL_LENGTH) {
      throw new BulletinError(
        'BAD_INPUT',
        `List ${list.slug} has a base URL of ${list.baseUrl.length} characters; at most ${MAX_BASE_URL_LENGTH}, so that no header line passes 998 octets (bulletin list update ${list.slug} --base-url …).`,
      );
    }
    this.source = source;
    this.list = list;
    this.templates = templates;
    this.signing = options.signing;
    this.messageIdVersion = options.messageIdVersion ?? MESSAGE_ID_VERSION;
    this.parentMessageIdVersion = options.inReplyToMessageIdVersion ?? MESSAGE_ID_VERSION;
    this.bulletinKey = options.bulletinKey;
    this.parentKey = options.inReplyToBulletinKey ?? source.inReplyTo;
    this.date = options.date ?? new Date();
    this.subject = prefixedSubject(list, source.subject);
    this.verp = options.verp ?? false;
    this.dkim = options.dkim ? new DkimSigners(options.dkim) : null;
    this.dkimSignatures = (this.dkim?.signers ?? []).map(({ domain, selector, algorithm }) => ({ domain, selector, algorithm }));

    this.shared = sharedContext(list, source, this.date);
    const assembled = assembleTemplates(source, templates, this.shared);
    this.html = assembled.html;
    this.text = assembled.text;
    this.htmlBodyOnly = assembled.htmlBodyOnly;
    this.textBodyOnly = assembled.textBodyOnly;
    this.emptyInArchive = assembled.emptyInArchive;
    this.encodings = { text: chooseEncoding(this.text), html: chooseEncoding(this.html) };

    const listAddress = asciiAddress(list.address, 'list');
    this.messageDomain = asciiDomain(splitAddress(listAddress).domain);
    this.bounceAddress = asciiAddress(effectiveBounceAddress(list), 'bounce');
    if (this.verp && splitAddress(this.bounceAddress).local.length + 41 > MAX_LOCAL_PART) {
      throw new BulletinError(
        'BAD_INPUT',
        `The bounce address ${this.bounceAddress} is too long for VERP (its local part and a 41-character token exceed 64 octets).`,
      );
    }

    // A boundary that quoted-printable and base64 output can never contain ("=_" is in neither).
    // It does not depend on the bulletin key, so withKey() can share every prepared part.
    const fingerprint = createHash('sha256').update(`${source.subject}\u0000${source.body}`).digest('hex').slice(0, 24);
    const boundary = `=_bulletin_${fingerprint}`;
    this.parts = [new BodyPart('text/plain', this.encodings.text, boundary, this.text), new BodyPart('text/html', this.encodings.html, boundary, this.html)];
    this.closing = Buffer.from(`--${boundary}--${CRLF}`, 'latin1');

    this.header = planHeader({
      list,
      fromName: list.from.name,
      fromAddress: asciiAddress(list.from.address, 'From'),
      subject: this.subject,
      date: this.date,
      listIdentifier: listIdentifier({ address: listAddress }),
      archiveUrl: archiveUrl(list),
      helpUrl: helpUrl(list),
      unsubscribeMailbox: unsubscribeMailbox({ address: listAddress }),
      contentType: `multipart/alternative; boundary="${boundary}"`,
      isFollowUp: this.parentKey !== null,
    });
  }

  private unsubscribeToken(recipient: Recipient): string {
    return signToken('unsubscribe', { listId: this.list.id, subscriberId: recipient.id, subscription: recipient.subscription ?? 0 }, this.signing);
  }

  private contextFor(recipient: Recipient, token: string): RecipientContext {
    return recipientContext(this.shared, recipient, unsubscribeUrlOf(this.list, token));
  }

  render(recipient: Recipient): RenderedMessage {
    const address = asciiAddress(recipient.email, 'recipient');
    const token = this.unsubscribeToken(recipient);
    const context = this.contextFor(recipient, token);
    const messageId = stableMessageId(this.bulletinKey, recipient.id, this.signing, this.messageDomain, this.messageIdVersion);

    const chunks: BodyChunks = { raw: [], canonical: this.dkim === null ? null : [] };
    for (const part of this.parts) part.append(chunks, context);
    chunks.raw.push(this.closing);
    chunks.canonical?.push(this.closing);

    const fields = headerFor(this.header, {
      address,
      name: recipient.name ?? '',
      messageId,
      unsubscribeUrl: context.unsubscribeUrl,
      unsubscribeToken: token,
      parentMessageId:
        this.parentKey === null ? null : stableMessageId(this.parentKey, recipient.id, this.signing, this.messageDomain, this.parentMessageIdVersion),
    });
    if (chunks.canonical !== null) fields.unshift(...this.dkim!.signatureFields(fields, chunks.canonical, this.date));
    fields.push(CRLF);

    return {
      raw: Buffer.concat([Buffer.from(fields.join(''), 'latin1'), ...chunks.raw]),
      envelope: { from: this.envelopeSender(recipient), to: [address] },
      messageId,
    };
  }

  private envelopeSender(recipient: Recipient): string {
    if (!this.verp) return this.bounceAddress;
    const { local, domain } = splitAddress(this.bounceAddress);
    const token = signToken('verp', { listId: this.list.id, subscriberId: recipient.id }, this.signing);
    return `${local}+${token}@${domain}`;
  }

  renderHtml(recipient: Recipient): string {
    return this.html.render(this.contextFor(recipient, this.unsubscribeToken(recipient)));
  }

  renderText(recipient: Recipient): string {
    return this.text.render(this.contextFor(recipient, this.unsubscribeToken(recipient)));
  }

  withKey(bulletinKey: string): CompiledBulletin {
    if (bulletinKey === '') throw new BulletinError('INTERNAL', 'A bulletin needs a key to derive its Message-IDs.');
    const copy = Object.assign(Object.create(BulletinMessages.prototype) as BulletinMessages, this);
    copy.bulletinKey = bulletinKey;
    return copy;
  }

  archiveBody(): { html: string; text: string } {
    const neutral = recipientContext(this.shared, { id: 0, email: '', name: '', attributes: {} }, this.shared.list.helpUrl);
    return { html: this.htmlBodyOnly(neutral), text: this.textBodyOnly(neutral) };
  }
}

/**
 * Checks and compiles a bulletin: front matter already parsed, templates loaded, every template
 * variable checked, Markdown rendered, MIME skeleton and fixed parts encoded. Throws
 * BulletinError('BAD_INPUT') for any mistake in the bulletin or its templates, before any message.
 */
export async function compileBulletin(options: CompileBulletinOptions): Promise<CompiledBulletin> {
  const templates = options.templates ?? (await loadTemplateSet(options.templatesDir ?? options.list.templatesDir));
  return new BulletinMessages(options, templates);
}
