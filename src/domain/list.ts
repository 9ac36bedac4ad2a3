// Mailing lists as the rest of bulletin sees them, and the rules for their slugs and derived values.
// No I/O: the store reads and writes lists, this module only decides what a valid one is.
import type { Mailbox } from './address.js';

export interface MailingList {
  readonly id: number;
  /** Short name used on the command line and in URLs, e.g. `bulletins`. */
  readonly slug: string;
  /** Display name, e.g. `ExampleNet-Bulletins`; the default subject prefix is `[name]`. */
  readonly name: string;
  readonly description: string;
  /** The list's own address (List-Id, archive sender), e.g. `bulletins@lists.example.net`. */
  readonly address: string;
  /** The From header of every bulletin. */
  readonly from: Mailbox;
  /** Public base URL of `bulletin serve` for this list (unsubscribe links, archive). */
  readonly baseUrl: string;
  /** Subject prefix; null means the default `[name]`. */
  readonly subjectPrefix: string | null;
  /** Envelope sender for bounces; null means the default `<local>-bounces@<domain>`. */
  readonly bounceAddress: string | null;
  /** Directory of layouts overriding `templates/`; null means the default layout. */
  readonly templatesDir: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function isValidSlug(slug: string): boolean {
  return SLUG_PATTERN.test(slug);
}

export function effectiveSubjectPrefix(list: Pick<MailingList, 'name' | 'subjectPrefix'>): string {
  return list.subjectPrefix ?? `[${list.name}]`;
}

/** Mailman's convention: `bulletins@lists.example.net` bounces to `bulletins-bounces@lists.example.net`. */
export function effectiveBounceAddress(list: Pick<MailingList, 'address' | 'bounceAddress'>): string {
  if (list.bounceAddress !== null) return list.bounceAddress;
  const at = list.address.lastIndexOf('@');
  return `${list.address.slice(0, at)}-bounces${list.address.slice(at)}`;
}

/**
 * The longest base URL a list may have: 900 characters. Every header line that carries a list URL
 * then stays within RFC 5322's 998 octets: List-Archive and List-Help (`<base>/archive/<slug>/`,
 * slug up to 63) come to at most 989, List-Unsubscribe's first line (`<base>/u/<token>>,`) to 964.
 */
export const MAX_BASE_URL_LENGTH = 900;

/** Checks a base URL: absolute http(s), no query or fragment. Returns it without a trailing slash. */
export function normalizeBaseUrl(input: string): { ok: true; url: string } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return { ok: false, reason: 'is not an absolute URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { ok: false, reason: 'must be http or https' };
  if (url.search !== '' || url.hash !== '') return { ok: false, reason: 'must not have a query or fragment' };
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'must not contain credentials' };
  const normalized = url.href.replace(/\/+$/, '');
  if (normalized.length > MAX_BASE_URL_LENGTH) {
    return { ok: false, reason: `is ${normalized.length} characters long; at most ${MAX_BASE_URL_LENGTH}, so that no mail header line passes 998 octets` };
  }
  return { ok: true, url: normalized };
}
