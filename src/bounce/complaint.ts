// Reads a feedback-loop complaint (ARF, RFC 5965): a multipart/report; report-type=feedback-report
// with its machine-readable message/feedback-report part, and the clues naming our original message:
// VERP tokens in its Original-Mail-From or the returned original's Return-Path, and that original's
// Message-ID. The address a report merely names (Original-Rcpt-To) is never a clue. Pure.
import type { ParsedMail } from 'mailparser';
import { normalizeMessageId, parseDeliveryStatus, verpTokensIn } from './report.js';

export interface ComplaintReport {
  /** Feedback-Type: abuse, fraud, virus, other, not-spam (RFC 5965 §3.5), in lower case. */
  readonly feedbackType: string;
  readonly userAgent: string | null;
  /** Candidate VERP tokens, not yet verified: Original-Mail-From first, then the original's Return-Path. */
  readonly verpTokens: readonly string[];
  /** Message-IDs of the returned original, angle brackets included. */
  readonly originalMessageIds: readonly string[];
  /** Arrival-Date of the original at the reporting site, when given. */
  readonly arrivalDate: Date | null;
}

const FEEDBACK_TYPE = 'message/feedback-report';
const ORIGINAL_TYPES = new Set(['message/rfc822', 'text/rfc822-headers', 'message/global', 'message/global-headers']);

/** Whether a parsed message is an ARF report (by its report type, or a message/feedback-report part). */
export function isFeedbackReport(parsed: ParsedMail): boolean {
  const type = parsed.headers.get('content-type') as { value?: string; params?: Record<string, string> } | undefined;
  if (type?.value?.toLowerCase() === 'multipart/report' && type.params?.['report-type']?.toLowerCase() === 'feedback-report') return true;
  return parsed.attachments.some((attachment) => attachment.contentType.toLowerCase() === FEEDBACK_TYPE);
}

/**
 * The parts of a multipart body, each as its header lines and body text, split on its boundary. Enough
 * for a report's top level (RFC 5965 §2: three parts, the last the original as message/rfc822 or
 * text/rfc822-headers), which mailparser folds into the text when the original is marked inline.
 */
function mimeParts(raw: string, boundary: string): { headers: Map<string, string>; body: string }[] {
  const delimiter = `--${boundary}`;
  const text = raw.replace(/\r\n?/g, '\n');
  const pieces = text.split(`\n${delimiter}`);
  return pieces.slice(1).flatMap((piece) => {
    if (piece.startsWith('--')) return [];
    const content = piece.replace(/^[^\n]*\n/, '');
    const end = content.indexOf('\n\n');
    const head = end < 0 ? content : content.slice(0, end);
    const body = end < 0 ? '' : content.slice(end + 2);
    return [{ headers: parseDeliveryStatus(head)[0] ?? new Map<string, string>(), body }];
  });
}

/** Null when the message is no feedback report we can read; the reason as a string. */
export function readComplaint(parsed: ParsedMail, raw: Buffer): ComplaintReport | string {
  const type = parsed.headers.get('content-type') as { params?: Record<string, string> } | undefined;
  const boundary = type?.params?.boundary;
  const parts = boundary ? mimeParts(raw.toString('latin1'), boundary) : [];
  const typeOf = (headers: Map<string, string>) => (headers.get('content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
  const feedbackText =
    parts.find((part) => typeOf(part.headers) === FEEDBACK_TYPE)?.body ??
    parsed.attachments.find((attachment) => attachment.contentType.toLowerCase() === FEEDBACK_TYPE)?.content.toString('utf8');
  if (feedbackText === undefined) return 'a feedback report without its message/feedback-report part';
  const fields = parseDeliveryStatus(feedbackText)[0] ?? new Map<string, string>();
  const feedbackType = fields.get('feedback-type')?.trim().toLowerCase();
  if (!feedbackType) return 'a feedback report without a Feedback-Type';

  const verpTokens = verpTokensIn(fields.get('original-mail-from') ?? '');
  const originalMessageIds: string[] = [];
  for (const part of parts.filter((each) => ORIGINAL_TYPES.has(typeOf(each.headers)))) {
    const end = part.body.indexOf('\n\n');
    const original = parseDeliveryStatus(end < 0 ? part.body : part.body.slice(0, end))[0] ?? new Map<string, string>();
    const id = normalizeMessageId(original.get('message-id') ?? '');
    if (id !== null && !originalMessageIds.includes(id)) originalMessageIds.push(id);
    for (const token of verpTokensIn(original.get('return-path') ?? '')) if (!verpTokens.includes(token)) verpTokens.push(token);
  }
  const arrival = fields.get('arrival-date') ?? fields.get('received-date');
  const arrivalDate = arrival === undefined ? null : new Date(arrival);
  return {
    feedbackType,
    userAgent: fields.get('user-agent') ?? null,
    verpTokens,
    originalMessageIds,
    arrivalDate: arrivalDate !== null && !Number.isNaN(arrivalDate.getTime()) ? arrivalDate : null,
  };
}
