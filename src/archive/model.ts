// What the archive is made of, and its pure rules: a bulletin as archived (no recipient in it),
// the months it falls in, file names, and thread order (follow-ups nested under what they follow).
import { escapeHtml } from '../domain/html.js';

export interface ArchivedBulletin {
  /** Stable archive number: NNNNNN.html. */
  readonly number: number;
  /** Subject with the list's prefix, as in the mail: `[List-Name] Subject`. */
  readonly title: string;
  readonly subject: string;
  readonly date: Date;
  /** Who sent it (the list's From name). */
  readonly author: string;
  /** The list address, obscured against harvesters: `bulletins at lists.example.net`. */
  readonly authorAddress: string;
  /** The front matter's `summary`: the excerpt under the subject in month views and the feed. */
  readonly summary: string | null;
  /** The body as sent, rendered for no recipient, sanitised. */
  readonly bodyHtml: string;
  readonly text: string;
  /** The archive's own Message-ID of the bulletin (not any recipient's). */
  readonly messageId: string;
  /** Archive number of the bulletin this one follows up (`in-reply-to`), if any. */
  readonly inReplyTo: number | null;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** `2026-November` (UTC), pipermail's month directory. */
export function monthOf(date: Date): string {
  return `${date.getUTCFullYear()}-${MONTHS[date.getUTCMonth()]}`;
}

/** `November 2026` from `2026-November`. */
export function monthTitle(month: string): string {
  const [year, name] = month.split('-');
  return `${name} ${year}`;
}

export function pageName(number: number): string {
  return `${String(number).padStart(6, '0')}.html`;
}

/** `Sat Nov 28 20:44:00 UTC 2026`, as pipermail shows dates (always UTC here, so output is stable). */
export function archiveDate(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]?.slice(0, 3)} ${date.getUTCDate()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} UTC ${date.getUTCFullYear()}`;
}

/** `bulletins@lists.example.net` → `bulletins at lists.example.net`. */
export function obscureAddress(address: string): string {
  return address.replace('@', ' at ');
}

/** Newest month first; within a month, bulletins by date (then number). */
export function byMonth(bulletins: readonly ArchivedBulletin[]): Map<string, ArchivedBulletin[]> {
  const months = new Map<string, ArchivedBulletin[]>();
  const sorted = [...bulletins].sort((a, b) => a.date.getTime() - b.date.getTime() || a.number - b.number);
  for (const bulletin of sorted) {
    const month = monthOf(bulletin.date);
    months.set(month, [...(months.get(month) ?? []), bulletin]);
  }
  return new Map([...months.entries()].sort((a, b) => monthSortKey(b[0]) - monthSortKey(a[0])));
}

function monthSortKey(month: string): number {
  const [year, name] = month.split('-');
  return Number(year) * 12 + MONTHS.indexOf(name ?? '');
}

/**
 * Thread order of one month: each bulletin whose parent is not in the month starts a thread (by
 * date); follow-ups come right after what they follow, one level deeper, by date.
 */
export function threadOrder(month: readonly ArchivedBulletin[]): { bulletin: ArchivedBulletin; depth: number }[] {
  const numbers = new Set(month.map((bulletin) => bulletin.number));
  const children = new Map<number, ArchivedBulletin[]>();
  const roots: ArchivedBulletin[] = [];
  for (const bulletin of month) {
    if (bulletin.inReplyTo !== null && numbers.has(bulletin.inReplyTo) && bulletin.inReplyTo !== bulletin.number) {
      children.set(bulletin.inReplyTo, [...(children.get(bulletin.inReplyTo) ?? []), bulletin]);
    } else {
      roots.push(bulletin);
    }
  }
  const ordered: { bulletin: ArchivedBulletin; depth: number }[] = [];
  const seen = new Set<number>();
  const visit = (bulletin: ArchivedBulletin, depth: number) => {
    if (seen.has(bulletin.number)) return;
    seen.add(bulletin.number);
    ordered.push({ bulletin, depth });
    for (const child of children.get(bulletin.number) ?? []) visit(child, depth + 1);
  };
  for (const root of roots) visit(root, 0);
  for (const bulletin of month) visit(bulletin, 0); // a cycle of in-reply-to: never lose one
  return ordered;
}

/** For XML: escaped, and without the control characters XML 1.0 does not allow. */
export function escapeXml(text: string): string {
  return escapeHtml(text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, ''));
}
