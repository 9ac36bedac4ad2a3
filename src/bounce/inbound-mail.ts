// Decides what a message that came back to us is, by its content and, when known, the address it
// was sent to: a bounce report, a feedback-loop complaint (ARF), an unsubscribe request, or none of
// these. One reader for `bounces process` (mbox, maildir, folder) and `bulletin inbound` (SMTP). Pure.
import type { ParsedMail } from 'mailparser';
import { isFeedbackReport, readComplaint, type ComplaintReport } from './complaint.js';
import { bounceOf, fingerprintOf, normalizeMessageId, parseMail, type BounceMessage } from './report.js';
import { looksLikeUnsubscribeRequest, readUnsubscribeRequest, type UnsubscribeRequest } from './request.js';

/** Which of a list's addresses the message was sent to (SMTP: RCPT TO), when known. */
export type InboundAddressKind = 'unsubscribe' | 'bounces' | 'complaints';

interface Common {
  /** The message's own Message-ID, angle brackets included. */
  readonly messageId: string | null;
  readonly date: Date | null;
  /** SHA-256 of the bytes with line ends normalised (see fingerprintOf). */
  readonly fingerprint: string;
}

export type InboundMail =
  | (Common & { readonly kind: 'bounce'; readonly bounce: BounceMessage })
  | (Common & { readonly kind: 'complaint'; readonly complaint: ComplaintReport })
  | (Common & { readonly kind: 'request'; readonly request: UnsubscribeRequest })
  | (Common & { readonly kind: 'unrecognised'; readonly reason: string });

/**
 * Reads one message. Mail to an `-unsubscribe` address is only ever a request; otherwise an ARF
 * report is a complaint, a delivery report a bounce, and (when the address is not known, as in a
 * folder) a message whose subject or first line says "unsubscribe" a request. Never throws.
 */
export async function readInboundMail(raw: Buffer, sentTo: InboundAddressKind | null = null): Promise<InboundMail> {
  const parsed = await parseMail(raw);
  const fingerprint = fingerprintOf(raw);
  if (typeof parsed === 'string') return { kind: 'unrecognised', reason: parsed, messageId: null, date: null, fingerprint };
  const common: Common = { messageId: normalizeMessageId(parsed.messageId ?? ''), date: parsed.date ?? null, fingerprint };
  if (sentTo === 'unsubscribe') return { ...common, kind: 'request', request: readUnsubscribeRequest(parsed) };
  if (isFeedbackReport(parsed)) {
    const complaint = readComplaint(parsed, raw);
    return typeof complaint === 'string' ? { ...common, kind: 'unrecognised', reason: complaint } : { ...common, kind: 'complaint', complaint };
  }
  const bounce = bounceOf(parsed, raw);
  if (bounce.report !== null || sentTo !== null || !looksLikeUnsubscribeRequest(parsed)) return { ...common, kind: 'bounce', bounce };
  return { ...common, kind: 'request', request: readUnsubscribeRequest(parsed as ParsedMail) };
}
