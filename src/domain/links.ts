// The public addresses of a list: its unsubscribe links (web and mail), archive, help page and List-Id.
// One place decides their shape, so messages, `bulletin serve` and the archive agree. No I/O.
import { signToken, type SigningKey } from './token.js';
import type { MailingList } from './list.js';
import { splitAddress } from './address.js';

type ListLinks = Pick<MailingList, 'id' | 'slug' | 'baseUrl'>;

/**
 * `${baseUrl}/u/<token>`: the one-click (RFC 8058) and browser unsubscribe link of one subscriber, for
 * their current subscription (`subscription`: the membership's re-subscriptions; older links are out of date).
 */
export function unsubscribeUrl(list: ListLinks, subscriberId: number, key: SigningKey, subscription = 0): string {
  return unsubscribeUrlOf(list, signToken('unsubscribe', { listId: list.id, subscriberId, subscription }, key));
}

/** The same link for a token already signed (a renderer signs once and uses the token twice). */
export function unsubscribeUrlOf(list: Pick<MailingList, 'baseUrl'>, token: string): string {
  return `${list.baseUrl}/u/${token}`;
}

/** The list's web archive, `${baseUrl}/archive/<slug>/`. */
export function archiveUrl(list: Pick<MailingList, 'slug' | 'baseUrl'>): string {
  return `${list.baseUrl}/archive/${list.slug}/`;
}

/** The page that says what the list is, how to leave it and whom to write to (List-Help): `${baseUrl}/help/<slug>`. */
export function helpUrl(list: Pick<MailingList, 'slug' | 'baseUrl'>): string {
  return `${list.baseUrl}/help/${list.slug}`;
}

/** Loopback hosts, the only ones a list's base URL may name over plain http without --allow-http. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/** `<local>-unsubscribe@<domain>`, the mailto: target of List-Unsubscribe (RFC 2369). */
export function unsubscribeMailbox(list: Pick<MailingList, 'address'>): string {
  const { local, domain } = splitAddress(list.address);
  return `${local}-unsubscribe@${domain}`;
}

/**
 * RFC 2919 list identifier: the list address with its `@` turned into a dot
 * (`bulletins@lists.example.net` → `bulletins.lists.example.net`), dots in the local part as dashes.
 */
export function listIdentifier(list: Pick<MailingList, 'address'>): string {
  const { local, domain } = splitAddress(list.address);
  return `${local.replace(/[^A-Za-z0-9-]/g, '-')}.${domain}`;
}
