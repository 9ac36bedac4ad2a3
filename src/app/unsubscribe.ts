// Use cases behind the unsubscribe link in every bulletin: say whose link it is (masked), leave the
// list (one-click or the page), undo that from the confirmation page, and print a member's link for
// support staff. A token that does not verify, or names no membership, is simply "not valid"; one
// made for an earlier subscription of the member (before a re-subscription) is "out of date".
import { BulletinError } from '../domain/errors.js';
import { unsubscribeUrl } from '../domain/links.js';
import type { MailingList } from '../domain/list.js';
import type { MembershipStatus } from '../domain/membership.js';
import type { Member } from '../domain/subscriber.js';
import { SUBSCRIPTION_MODULUS, verifyToken } from '../domain/token.js';
import { skipPendingDeliveries } from '../store/deliveries.js';
import { findListById } from '../store/lists.js';
import { changeMembershipStatus, findMember, findMemberById, undoWebUnsubscribe } from '../store/memberships.js';
import type { Sql } from '../store/database.js';
import type { App } from './context.js';
import { requireList } from './lists.js';
import { installationKeys } from './secret.js';
import { checkAddress } from './subscribers.js';

/** What a page may show about a link's owner: the list and a masked address, never the address. */
export interface LinkOwner {
  readonly list: Pick<MailingList, 'slug' | 'name' | 'description'>;
  /** `j***@example.net` */
  readonly maskedAddress: string;
  readonly status: MembershipStatus;
  /** Whether the page may offer "subscribe again": see UNDO_WINDOW_MS and rejoinByLink. */
  readonly canUndo: boolean;
}

/**
 * How long after an unsubscribe through the link (one-click or the page) the same link can undo it.
 * A bulletin may be forwarded: whoever holds it can press the buttons, and leaving is always allowed,
 * but putting someone back on a list should stay close to their own unsubscribe. After this, or after
 * a bounce or a removal by the list's staff, only `bulletin subscribers add --resubscribe` does it.
 */
export const UNDO_WINDOW_MS = 7 * 24 * 60 * 60_000;

function undoable(member: Pick<Member, 'status' | 'statusSource' | 'statusChangedAt'>, now = Date.now()): boolean {
  return (
    member.status === 'unsubscribed' &&
    (member.statusSource === 'one-click' || member.statusSource === 'page') &&
    now - member.statusChangedAt.getTime() < UNDO_WINDOW_MS
  );
}

/** `jo@example.net` → `j***@example.net`: enough to recognise one's own address, not to learn someone's. */
export function maskAddress(address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  return `${local.slice(0, 1)}***@${address.slice(at + 1)}`;
}

interface Resolved {
  readonly list: MailingList;
  readonly subscriberId: number;
  readonly owner: LinkOwner;
}

/** A link that verifies but was made for an earlier subscription: it shows so, and changes nothing. */
export const OUT_OF_DATE = 'out of date';
export type OutOfDate = typeof OUT_OF_DATE;

/** Whether a token verifies at all (signature, purpose, installation): no database lookup. */
export async function tokenVerifies(app: App, token: string): Promise<boolean> {
  return verifyToken(token, 'unsubscribe', (await installationKeys(app)).keyring) !== null;
}

/** The public origin of the list a token names (its --base-url's), for the same-origin check; none if it names no list. */
export async function linkOrigins(app: App, token: string): Promise<string[]> {
  const subject = verifyToken(token, 'unsubscribe', (await installationKeys(app)).keyring);
  const list = subject === null ? null : await findListById(app.db, subject.listId);
  return list === null ? [] : [new URL(list.baseUrl).origin];
}

async function resolve(app: App, token: string, sql: Sql = app.db): Promise<Resolved | OutOfDate | null> {
  const subject = verifyToken(token, 'unsubscribe', (await installationKeys(app)).keyring);
  if (subject === null) return null;
  const list = await findListById(sql, subject.listId);
  if (list === null) return null;
  const member = await findMemberById(sql, list.id, subject.subscriberId);
  if (member === null) return null; // erased, or never on this list
  if ((subject.subscription ?? 0) !== member.resubscriptions % SUBSCRIPTION_MODULUS) return OUT_OF_DATE;
  return {
    list,
    subscriberId: member.id,
    owner: {
      list: { slug: list.slug, name: list.name, description: list.description },
      maskedAddress: maskAddress(member.email),
      status: member.status,
      canUndo: undoable(member),
    },
  };
}

/** Whose link this is, for the page a GET shows; null for any link that is not valid. Changes nothing. */
export async function describeLink(app: App, token: string): Promise<LinkOwner | OutOfDate | null> {
  const resolved = await resolve(app, token);
  return resolved === null || resolved === OUT_OF_DATE ? resolved : resolved.owner;
}

export type LeaveOutcome = 'unsubscribed' | 'already unsubscribed';

/**
 * Leaves the list now (`one-click`: RFC 8058 POST from a mail client; `page`: the button; `mailto`:
 * a request mailed to the list's -unsubscribe address with the token). Pending deliveries to this
 * member become `skipped` in the same transaction, so a running send never mails them. Repeating it
 * is harmless. Null for a link that is not valid; OUT_OF_DATE (nothing changes) for an older subscription's.
 * `within`: a transaction of the caller's to do it in (`bounces process --dry-run` rolls it back).
 */
export async function leaveByLink(
  app: App,
  token: string,
  source: 'one-click' | 'page' | 'mailto',
  within?: Sql,
): Promise<{ outcome: LeaveOutcome; owner: LinkOwner; listId: number; subscriberId: number } | OutOfDate | null> {
  const resolved = await resolve(app, token, within);
  if (resolved === null || resolved === OUT_OF_DATE) return resolved;
  const { list, subscriberId } = resolved;
  const inTransaction = <T>(work: (tx: Sql) => Promise<T>): Promise<T> => (within ? work(within) : app.db.transaction(work));
  const changed = await inTransaction(async (tx) => {
    const left = await changeMembershipStatus(tx, { listId: list.id, subscriberId, from: ['active'], to: 'unsubscribed', source });
    if (left) await skipPendingDeliveries(tx, list.id, subscriberId, `skipped: unsubscribed (${source}) before its turn`);
    return left;
  });
  return {
    outcome: changed ? 'unsubscribed' : 'already unsubscribed',
    owner: changed ? { ...resolved.owner, status: 'unsubscribed', canUndo: source !== 'mailto' } : resolved.owner,
    listId: list.id,
    subscriberId,
  };
}

export type RejoinOutcome = 'resubscribed' | 'already subscribed' | 'not possible';

/**
 * The undo on the confirmation page: active again, but only if the link itself unsubscribed them
 * (one-click or page) less than UNDO_WINDOW_MS ago. A bounce, a removal by the list's staff, or an
 * erasure (the token then names nobody) is never undone by a web page.
 */
export async function rejoinByLink(app: App, token: string): Promise<{ outcome: RejoinOutcome; owner: LinkOwner } | OutOfDate | null> {
  const resolved = await resolve(app, token);
  if (resolved === null || resolved === OUT_OF_DATE) return resolved;
  if (resolved.owner.status === 'active') return { outcome: 'already subscribed', owner: resolved.owner };
  const rejoined = await undoWebUnsubscribe(app.db, resolved.list.id, resolved.subscriberId, UNDO_WINDOW_MS);
  return {
    outcome: rejoined ? 'resubscribed' : 'not possible',
    owner: rejoined ? { ...resolved.owner, status: 'active', canUndo: false } : resolved.owner,
  };
}

/** `bulletin subscribers unsubscribe-url`: a member's link, for support staff. */
export async function unsubscribeLinkOf(app: App, slug: string, address: string): Promise<{ email: string; list: string; url: string }> {
  const email = checkAddress(address);
  const list = await requireList(app.db, slug);
  const member = await findMember(app.db, list.id, email);
  if (member === null) throw new BulletinError('NOT_FOUND', `${email} is not on the list "${slug}".`);
  return { email, list: slug, url: unsubscribeUrl(list, member.id, (await installationKeys(app)).signing, member.resubscriptions) };
}
