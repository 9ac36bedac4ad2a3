// Reads one bounce message (parsed with mailparser): what it reports (RFC 3464 delivery-status fields,
// or Exim's classic plain-text failure and delay notices), and the clues naming our original message:
// VERP tokens in the addresses it came back to, and the original Message-ID. Pure: bytes in, facts out.
// A report that the relay gave up (Action: failed, or Exim's failure notice) is a failure whatever
// its status class: a 4.x.x one means the message expired in the relay's queue.
import { createHash } from 'node:crypto';
import { simpleParser, type ParsedMail } from 'mailparser';

/** What a bounce says happened to the message, for the one recipient it is about. */
export interface DeliveryReport {
  /**
   * permanent: failed, 5.x.x; expired: failed with 4.x.x (the relay kept retrying a temporary error
   * until the message expired, e.g. Postfix's 4.2.1 or 4.2.2 after maximal_queue_lifetime), a failure
   * too; temporary: delayed (Action: delayed, Exim's delay warning), it may still arrive; success: 2.x.x.
   */
  readonly outcome: 'permanent' | 'expired' | 'temporary' | 'success';
  /** RFC 3463 enhanced status code, e.g. `5.1.1`. */
  readonly status: string;
  /** The DSN's Action (`failed`, `delayed`…), or null for a plain-text notice. */
  readonly action: string | null;
  /** The address that failed, as reported (not trusted to name anyone: see BounceMessage). */
  readonly finalRecipient: string | null;
  /** The remote server's reply or the reporting MTA's reason, one line. */
  readonly diagnostic: string | null;
  readonly format: 'delivery-status' | 'exim-text';
}

export interface BounceMessage {
  /** The bounce's own Message-ID, angle brackets included. */
  readonly messageId: string | null;
  /** The bounce's Date header. */
  readonly date: Date | null;
  /** Null when the message is no delivery report we can read; `problem` says why. */
  readonly report: DeliveryReport | null;
  readonly problem: string | null;
  /** Candidate VERP tokens (`<local>+<token>@<domain>`), most trusted place first, not yet verified. */
  readonly verpTokens: readonly string[];
  /** Message-IDs of the returned original, angle brackets included, in the order found. */
  readonly originalMessageIds: readonly string[];
  /** SHA-256 of the message with line ends normalised: the same bounce, whatever file it was kept in. */
  readonly fingerprint: string;
}

const DELIVERY_STATUS_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const RETURNED_MESSAGE_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/global-headers']);
/** Headers of the bounce naming the address it was delivered to (the original's envelope sender). */
const ENVELOPE_HEADERS = ['delivered-to', 'x-original-to', 'envelope-to', 'x-envelope-to', 'to'];
const VERP_TOKEN = /\+([A-Za-z0-9_-]{40})@/g;
const ENHANCED_STATUS = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)/;
const SMTP_REPLY_CODE = /(?<![\d.])([245])\d\d(?=[\s-])/;

const EXIM_FAILED = /could not be delivered to one or more of its\s+recipients/i;
const EXIM_DELAYED = /has not yet been delivered to one or more of its\s+recipients/i;
const EXIM_COPY = /^-{3,}\s*This is a copy of (?:the|your) message/im;

export function fingerprintOf(raw: Uint8Array): string {
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1').replace(/\r\n?/g, '\n').replace(/\s+$/, '');
  return createHash('sha256').update(text, 'latin1').digest('hex');
}

/** `<id@host>` for any of `<id@host>`, `id@host`, with comments or spaces around. */
export function normalizeMessageId(value: string): string | null {
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  if (bracketed) return `<${bracketed[1]}>`;
  const bare = /^\s*([^<>\s]+@[^<>\s]+)\s*$/.exec(value);
  return bare ? `<${bare[1]}>` : null;
}

/** The enhanced status code in a text (`550 5.1.1 …` gives 5.1.1), else one made of the SMTP reply code (550 gives 5.0.0). */
export function statusFromText(text: string): string | null {
  const enhanced = ENHANCED_STATUS.exec(text);
  if (enhanced) return `${enhanced[1]}.${enhanced[2]}.${enhanced[3]}`;
  const code = SMTP_REPLY_CODE.exec(` ${text} `);
  return code ? `${code[1]}.0.0` : null;
}

function outcomeOf(status: string): DeliveryReport['outcome'] {
  return status.startsWith('5') ? 'permanent' : status.startsWith('4') ? 'temporary' : 'success';
}

/** Header fields of a block of lines (unfolded), names in lower case; a repeated name keeps its first value. */
function headerFields(lines: readonly string[]): Map<string, string> {
  const fields = new Map<string, string>();
  let name: string | null = null;
  for (const line of lines) {
    if (/^[ \t]/.test(line) && name !== null) {
      fields.set(name, `${fields.get(name) ?? ''} ${line.trim()}`.trim());
      continue;
    }
    const match = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
    name = match ? match[1]!.toLowerCase() : null;
    if (match && !fields.has(name!)) fields.set(name!, match[2]!.trim());
  }
  return fields;
}

/** The groups of a message/delivery-status body: per-message fields first, then one per recipient. */
export function parseDeliveryStatus(text: string): Map<string, string>[] {
  const groups: string[][] = [[]];
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (line.trim() === '') {
      if (groups[groups.length - 1]!.length > 0) groups.push([]);
    } else {
      groups[groups.length - 1]!.push(line);
    }
  }
  return groups.filter((group) => group.length > 0).map(headerFields);
}

/** `rfc822; jo@example.net` → `jo@example.net`; `smtp; 550 …` → `550 …`. */
function withoutType(value: string | undefined): string | null {
  if (value === undefined) return null;
  const stripped = value.replace(/^\s*[A-Za-z0-9-]+\s*;\s*/, '').trim();
  return stripped === '' ? null : stripped;
}

function reportFromDeliveryStatus(groups: readonly Map<string, string>[]): DeliveryReport | string {
  const recipients = groups.length > 1 ? groups.slice(1) : groups;
  const candidates = recipients.filter((group) => group.has('action') || group.has('status'));
  if (candidates.length === 0) return 'its delivery-status part names no recipient (no Action or Status field)';
  const statusOf = (group: Map<string, string>): string | null => {
    const fromStatus = statusFromText(group.get('status') ?? '');
    if (fromStatus !== null) return fromStatus;
    const fromDiagnostic = statusFromText(withoutType(group.get('diagnostic-code')) ?? '');
    if (fromDiagnostic !== null) return fromDiagnostic;
    const action = (group.get('action') ?? '').toLowerCase();
    if (action.startsWith('failed')) return '5.0.0';
    if (action.startsWith('delayed')) return '4.0.0';
    if (/^(delivered|relayed|expanded)/.test(action)) return '2.0.0';
    return null;
  };
  // One recipient per bulletin message; should a report list several, the first failure decides.
  const failed = (group: Map<string, string>) => (group.get('action') ?? '').toLowerCase().startsWith('failed');
  const ranked = [...candidates].sort((a, b) => rank(statusOf(a), failed(a)) - rank(statusOf(b), failed(b)));
  const chosen = ranked[0]!;
  const status = statusOf(chosen);
  if (status === null) return `its delivery-status part has no readable Status (${chosen.get('status') ?? 'none'})`;
  return {
    outcome: failed(chosen) && status.startsWith('4') ? 'expired' : outcomeOf(status),
    status,
    action: chosen.get('action')?.toLowerCase().split(/\s/)[0] ?? null,
    finalRecipient: withoutType(chosen.get('final-recipient')) ?? withoutType(chosen.get('original-recipient')),
    diagnostic: withoutType(chosen.get('diagnostic-code')),
    format: 'delivery-status',
  };
}

/** A failure first (5.x.x, then a 4.x.x the relay gave up on), then a delay, then anything else. */
function rank(status: string | null, failed: boolean): number {
  if (status === null) return 4;
  return status.startsWith('5') ? 0 : status.startsWith('4') ? (failed ? 1 : 2) : 3;
}

/**
 * Exim's classic notices: "could not be delivered to one or more of its recipients. This is a
 * permanent error. The following address(es) failed:" then each address indented by two spaces and
 * the reason below it, indented further; or "has not yet been delivered…" for a delay warning.
 */
function reportFromEximText(text: string, failedRecipientsHeader: string | null): DeliveryReport | null {
  const copyAt = text.search(EXIM_COPY);
  const notice = copyAt >= 0 ? text.slice(0, copyAt) : text;
  const failed = EXIM_FAILED.exec(notice);
  const delayed = failed ? null : EXIM_DELAYED.exec(notice);
  const found = failed ?? delayed;
  if (!found) return null;
  const lines = notice.slice(found.index).replace(/\r\n?/g, '\n').split('\n');
  let recipient: string | null = null;
  const reason: string[] = [];
  for (const line of lines) {
    if (recipient === null) {
      const address = /^ {1,3}(?:<)?([^\s<>@]+@[^\s<>:]+?)>?(?::.*)?\s*$/.exec(line);
      if (address) recipient = address[1]!;
      continue;
    }
    if (/^\s{4,}\S/.test(line)) reason.push(line.trim());
    else if (line.trim() !== '' || reason.length > 0) break;
  }
  const diagnostic = reason.length > 0 ? reason.join(' ') : null;
  const status = statusFromText(diagnostic ?? '') ?? (failed ? (/permanent error/i.test(notice) ? '5.0.0' : null) : '4.0.0');
  if (status === null) return null;
  return {
    outcome: failed ? (status.startsWith('4') ? 'expired' : outcomeOf(status)) : 'temporary',
    status: failed ? status : status.startsWith('4') ? status : '4.0.0',
    action: null,
    finalRecipient: recipient ?? failedRecipientsHeader,
    diagnostic,
    format: 'exim-text',
  };
}

/** The header block of a returned message (message/rfc822 or text/rfc822-headers), or of Exim's inline copy. */
function returnedHeaderLines(text: string): string[] {
  const normalised = text.replace(/\r\n?/g, '\n');
  const end = normalised.indexOf('\n\n');
  return (end < 0 ? normalised : normalised.slice(0, end)).split('\n');
}

/** Candidate VERP tokens (`<local>+<token>@`) in a text, in order, not yet verified. */
export function verpTokensIn(text: string): string[] {
  return [...text.matchAll(VERP_TOKEN)].map((match) => match[1]!);
}
const tokensIn = verpTokensIn;

function headerLinesNamed(parsed: ParsedMail, names: readonly string[]): string[] {
  return names.flatMap((name) => parsed.headerLines.filter((line) => line.key === name).map((line) => line.line));
}

/** Parses a message the way every reader here needs it; a string says why it is no mail message. */
export async function parseMail(raw: Buffer): Promise<ParsedMail | string> {
  let parsed: ParsedMail;
  try {
    parsed = await simpleParser(raw, {
      keepDeliveryStatus: true,
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipImageLinks: true,
      skipTextLinks: true,
    } as Parameters<typeof simpleParser>[1]);
  } catch (error) {
    return `cannot be parsed as a mail message: ${(error as Error).message}`;
  }
  if (!parsed.headerLines.some((line) => /^[!-9;-~]+$/.test(line.key))) return 'not a mail message (no header fields)';
  return parsed;
}

/** Reads one message; never throws: anything unreadable comes back as a `problem`. */
export async function readBounce(raw: Buffer): Promise<BounceMessage> {
  const parsed = await parseMail(raw);
  if (typeof parsed === 'string') {
    return { messageId: null, date: null, report: null, verpTokens: [], originalMessageIds: [], fingerprint: fingerprintOf(raw), problem: parsed };
  }
  return bounceOf(parsed, raw);
}

/** What a parsed message says as a bounce (see readBounce). */
export function bounceOf(parsed: ParsedMail, raw: Buffer): BounceMessage {
  const fingerprint = fingerprintOf(raw);

  const verpTokens = tokensIn(headerLinesNamed(parsed, ENVELOPE_HEADERS).join('\n'));
  const originalMessageIds: string[] = [];
  const addMessageId = (value: string | undefined) => {
    const id = value === undefined ? null : normalizeMessageId(value);
    if (id !== null && !originalMessageIds.includes(id)) originalMessageIds.push(id);
  };
  const returnedTokens: string[] = [];
  const readReturned = (lines: readonly string[]) => {
    const fields = headerFields(lines);
    addMessageId(fields.get('message-id'));
    returnedTokens.push(...tokensIn(fields.get('return-path') ?? ''));
  };

  let report: DeliveryReport | string | null = null;
  for (const attachment of parsed.attachments) {
    const type = attachment.contentType.toLowerCase();
    if (DELIVERY_STATUS_TYPES.has(type) && (report === null || typeof report === 'string')) {
      const groups = parseDeliveryStatus(attachment.content.toString('utf8'));
      addMessageId(groups[0]?.get('x-original-message-id'));
      // The original envelope as the reporting MTA kept it (Postfix: X-Postfix-Sender).
      if (groups.length > 1) returnedTokens.push(...tokensIn([...groups[0]!.values()].join('\n')));
      report = reportFromDeliveryStatus(groups);
    } else if (RETURNED_MESSAGE_TYPES.has(type)) {
      readReturned(returnedHeaderLines(attachment.content.toString('utf8')));
    }
  }

  const text = parsed.text ?? '';
  if (report === null) {
    const failedRecipients = parsed.headers.get('x-failed-recipients');
    report = reportFromEximText(text, typeof failedRecipients === 'string' ? failedRecipients.split(',')[0]!.trim() : null);
  }
  const copyAt = text.search(EXIM_COPY);
  if (copyAt >= 0) readReturned(returnedHeaderLines(text.slice(text.indexOf('\n', copyAt) + 1).replace(/^\s*\n/, '')));

  const reportProblem = typeof report === 'string' ? report : report === null ? 'not a delivery status report' : null;
  return {
    messageId: normalizeMessageId(parsed.messageId ?? ''),
    date: parsed.date ?? null,
    report: typeof report === 'string' ? null : report,
    problem: reportProblem,
    verpTokens: [...new Set([...verpTokens, ...returnedTokens])],
    originalMessageIds,
    fingerprint,
  };
}
