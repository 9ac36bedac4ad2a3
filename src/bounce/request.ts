// Reads an unsubscribe request mailed to a list's `-unsubscribe` address (the mailto: of
// List-Unsubscribe, RFC 2369): the candidate tokens it carries, from the subject
// (`unsubscribe <token>`, as mail programs fill it in from the link) or else the body. Pure.
import type { ParsedMail } from 'mailparser';

export interface UnsubscribeRequest {
  /** 40-character token candidates, subject first, not yet verified; empty when it carries none. */
  readonly tokens: readonly string[];
  /** The sender as the From header gives it (for the log only, never to decide anything). */
  readonly from: string | null;
}

/** A token: 40 base64url characters, not part of a longer run of them. */
const TOKEN = /(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{40})(?![A-Za-z0-9_-])/g;
/** At most this many candidates are tried (a body full of 40-character words earns nothing). */
const MAX_CANDIDATES = 5;

function candidates(text: string): string[] {
  // Some mail programs leave the link's %20 as it is, or quote the subject in a reply.
  const decoded = text.replace(/%20/gi, ' ');
  return [...decoded.matchAll(TOKEN)].map((match) => match[1]!);
}

export function readUnsubscribeRequest(parsed: ParsedMail): UnsubscribeRequest {
  const fromSubject = candidates(parsed.subject ?? '');
  const fromBody = candidates((parsed.text ?? '').slice(0, 10_000));
  const tokens = [...new Set([...fromSubject, ...fromBody])].slice(0, MAX_CANDIDATES);
  return { tokens, from: parsed.from?.value[0]?.address ?? null };
}

/** Whether a message looks like an unsubscribe request: its subject or first body line begins with "unsubscribe". */
export function looksLikeUnsubscribeRequest(parsed: ParsedMail): boolean {
  const firstLine = (parsed.text ?? '').trimStart().split('\n', 1)[0] ?? '';
  return /^\s*(?:re:\s*)?unsubscribe\b/i.test(parsed.subject ?? '') || /^unsubscribe\b/i.test(firstLine);
}
