// Use cases for the subscribers of one list: add, remove (unsubscribe, or erase on request), list,
// count and export. An unsubscribe is never undone without an explicit `resubscribe`.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { normalizeAddress } from '../domain/address.js';
import { BulletinError } from '../domain/errors.js';
import type { MembershipStatus } from '../domain/membership.js';
import { printable } from '../domain/printable.js';
import { ATTRIBUTE_NAME, MAX_ATTRIBUTES, MAX_FIELD_LENGTH, type Member, type SubscriberAttributes } from '../domain/subscriber.js';
import {
  changeMembershipStatus,
  countMembers,
  findMember,
  forEachMemberBatch,
  insertMembership,
  selectAttributeNames,
  selectMembers,
} from '../store/memberships.js';
import { skipPendingDeliveries } from '../store/deliveries.js';
import { deleteSubscriber, findSubscriberByEmail, upsertSubscriber } from '../store/subscribers.js';
import { deleteSuppression, insertSuppression, isSuppressed } from '../store/suppressions.js';
import type { App } from './context.js';
import { requireList } from './lists.js';

export function checkAddress(address: string): string {
  const checked = normalizeAddress(address);
  if (!checked.ok) throw new BulletinError('BAD_INPUT', `"${printable(address, 100)}" ${checked.reason}.`);
  return checked.address;
}

/** Names are shown in headers and pages: one line, blanks collapsed, never empty. */
export function cleanName(name: string | undefined | null): string | null {
  if (name === undefined || name === null) return null;
  const cleaned = name.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  return cleaned === '' ? null : cleaned;
}

export function checkAttributes(attributes: Record<string, string>): SubscriberAttributes {
  const keys = Object.keys(attributes);
  if (keys.length > MAX_ATTRIBUTES) throw new BulletinError('BAD_INPUT', `A subscriber may have at most ${MAX_ATTRIBUTES} attributes, not ${keys.length}.`);
  for (const [key, value] of Object.entries(attributes)) {
    if (value.length > MAX_FIELD_LENGTH) {
      throw new BulletinError(
        'BAD_INPUT',
        `Attribute "${printable(key, 64)}" has ${value.length.toLocaleString('en-US')} characters; a value may have at most ${MAX_FIELD_LENGTH.toLocaleString('en-US')}.`,
      );
    }
  }
  for (const key of keys) {
    if (!ATTRIBUTE_NAME.test(key)) {
      throw new BulletinError(
        'BAD_INPUT',
        `Attribute name "${printable(key, 64)}" is not valid: use letters, digits and _ (not starting with a digit), at most 64.`,
      );
    }
  }
  return attributes;
}

export type AddOutcome = 'added' | 'already active' | 'resubscribed';

export async function addSubscriber(
  app: App,
  slug: string,
  input: { address: string; name?: string; attributes?: Record<string, string>; resubscribe?: boolean },
): Promise<{ email: string; list: string; outcome: AddOutcome }> {
  const email = checkAddress(input.address);
  const attributes = checkAttributes(input.attributes ?? {});
  if (input.name !== undefined && input.name.length > MAX_FIELD_LENGTH) {
    throw new BulletinError(
      'BAD_INPUT',
      `The name has ${input.name.length.toLocaleString('en-US')} characters; a name may have at most ${MAX_FIELD_LENGTH.toLocaleString('en-US')}.`,
    );
  }
  return app.db.transaction(async (tx) => {
    const list = await requireList(tx, slug);
    if (await isSuppressed(tx, email)) {
      if (!input.resubscribe) {
        throw new BulletinError('CONFLICT', `${email} was erased on request and must not be mailed; add --resubscribe only if they asked to join again.`);
      }
      await deleteSuppression(tx, email);
    }
    const { subscriber } = await upsertSubscriber(tx, { email, name: cleanName(input.name), attributes });
    if (await insertMembership(tx, list.id, subscriber.id, 'command line')) return { email, list: slug, outcome: 'added' };
    const member = await findMember(tx, list.id, email);
    if (member?.status === 'active') return { email, list: slug, outcome: 'already active' };
    // A sync took them off (they had not left): adding them brings them back, like a later import.
    if (member?.status === 'removed') {
      await changeMembershipStatus(tx, { listId: list.id, subscriberId: subscriber.id, from: ['removed'], to: 'active', source: 'command line' });
      return { email, list: slug, outcome: 'resubscribed' };
    }
    if (!input.resubscribe) {
      throw new BulletinError(
        'CONFLICT',
        `${email} is ${member?.status ?? 'not active'} on "${slug}" (since ${member?.statusChangedAt.toISOString() ?? '?'}, via ${member?.statusSource ?? '?'}); add --resubscribe if they asked to join again.`,
      );
    }
    await changeMembershipStatus(tx, {
      listId: list.id,
      subscriberId: subscriber.id,
      from: ['unsubscribed', 'bounced'],
      to: 'active',
      source: 'command line',
    });
    return { email, list: slug, outcome: 'resubscribed' };
  });
}

export type RemoveOutcome = 'unsubscribed' | 'already unsubscribed' | 'erased';

export async function removeSubscriber(
  app: App,
  slug: string,
  input: { address: string; purge?: boolean },
): Promise<{ email: string; list: string; outcome: RemoveOutcome; membershipsErased?: number }> {
  const email = checkAddress(input.address);
  return app.db.transaction(async (tx) => {
    const list = await requireList(tx, slug);
    if (input.purge) {
      // Erasure covers the person on every list; only a hash of the address stays, to never mail them again.
      const subscriber = await findSubscriberByEmail(tx, email);
      const membershipsErased = subscriber ? await deleteSubscriber(tx, subscriber.id) : 0;
      await insertSuppression(tx, email, 'erased on request');
      return { email, list: slug, outcome: 'erased', membershipsErased };
    }
    const member = await findMember(tx, list.id, email);
    if (!member) throw new BulletinError('NOT_FOUND', `${email} is not on the list "${slug}".`);
    const changed = await changeMembershipStatus(tx, {
      listId: list.id,
      subscriberId: member.id,
      from: ['active', 'bounced', 'removed'],
      to: 'unsubscribed',
      source: 'command line',
    });
    // A send already running must not mail them: what it has not claimed yet is skipped now.
    if (changed) await skipPendingDeliveries(tx, list.id, member.id, 'skipped: unsubscribed (command line) before its turn');
    return { email, list: slug, outcome: changed ? 'unsubscribed' : 'already unsubscribed' };
  });
}

export async function listSubscribers(
  app: App,
  slug: string,
  query: { status: MembershipStatus | null; limit: number; after?: string; search?: string },
): Promise<Member[]> {
  const list = await requireList(app.db, slug);
  const afterEmail = query.after === undefined ? undefined : checkAddress(query.after);
  return selectMembers(app.db, {
    listId: list.id,
    status: query.status,
    limit: query.limit,
    ...(afterEmail === undefined ? {} : { afterEmail }),
    ...(query.search === undefined ? {} : { search: query.search }),
  });
}

export async function countSubscribers(app: App, slug: string, status: MembershipStatus): Promise<number> {
  const list = await requireList(app.db, slug);
  return countMembers(app.db, list.id, status);
}

/**
 * Writes the list's members as CSV (`email,name,<attributes…>`: the format `import` reads), streamed
 * through a cursor. Returns how many were written.
 */
export async function exportSubscribers(app: App, slug: string, options: { status: MembershipStatus | null; out: Writable }): Promise<number> {
  const list = await requireList(app.db, slug);
  const attributeNames = await selectAttributeNames(app.db, list.id, options.status);
  const csv = stringify({ header: true, columns: ['email', 'name', ...attributeNames], record_delimiter: 'unix' });
  csv.pipe(options.out, { end: false });
  let written = 0;
  await forEachMemberBatch(app.db, { listId: list.id, status: options.status, batchSize: 1000 }, async (members) => {
    for (const member of members) {
      const row: Record<string, unknown> = { email: member.email, name: member.name ?? '' };
      for (const key of attributeNames) row[key] = formatAttribute(member.attributes[key]);
      if (!csv.write(row)) await once(csv, 'drain');
      written++;
    }
  });
  csv.end();
  await once(csv, 'end');
  return written;
}

function formatAttribute(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
