// Use cases for mailing lists: create, list, show (with subscriber counts by status), update.
// Input is checked here, once, with the domain's rules; the store only stores.
import { normalizeAddress, parseMailbox, type Mailbox } from '../domain/address.js';
import { BulletinError } from '../domain/errors.js';
import { isLoopbackHost } from '../domain/links.js';
import { isValidSlug, normalizeBaseUrl, type MailingList } from '../domain/list.js';
import { findListBySlug, insertList, selectListsWithCounts, updateListFields, type ListFields, type ListWithCounts } from '../store/lists.js';
import type { Sql } from '../store/database.js';
import { summarizeUnsubscribes, type UnsubscribeSummary } from '../store/memberships.js';
import type { App } from './context.js';

export interface ListInput {
  readonly name?: string;
  readonly description?: string;
  readonly address?: string;
  readonly from?: string;
  readonly baseUrl?: string;
  readonly subjectPrefix?: string | null;
  readonly bounceAddress?: string | null;
  readonly templatesDir?: string | null;
  /** Accept an http:// base URL for a host other than loopback (a test set-up): one-click then breaks. */
  readonly allowHttp?: boolean;
}

export async function createList(app: App, slug: string, input: ListInput): Promise<MailingList> {
  if (!isValidSlug(slug)) {
    throw new BulletinError(
      'BAD_INPUT',
      `List slug "${slug}" is not valid: use 1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit.`,
    );
  }
  const missing = (['name', 'address', 'from', 'baseUrl'] as const).filter((key) => input[key] === undefined);
  if (missing.length > 0) {
    const flags = missing.map((key) => (key === 'baseUrl' ? '--base-url' : `--${key}`));
    throw new BulletinError('USAGE', `A new list needs ${flags.join(', ')}.`);
  }
  const fields: ListFields = {
    slug,
    description: '',
    subjectPrefix: null,
    bounceAddress: null,
    templatesDir: null,
    ...checkListInput(input),
  } as ListFields;
  const list = await insertList(app.db, fields);
  if (!list) throw new BulletinError('CONFLICT', `A list with the slug "${slug}" already exists.`);
  return list;
}

export async function updateList(app: App, slug: string, input: ListInput): Promise<MailingList> {
  const changes = checkListInput(input);
  if (Object.keys(changes).length === 0) {
    throw new BulletinError('USAGE', 'Nothing to update: give at least one option (see `bulletin list update --help`).');
  }
  const list = await updateListFields(app.db, slug, changes);
  if (!list) throw noSuchList(slug);
  return list;
}

export type { ListWithCounts, UnsubscribeSummary };

export async function listLists(app: App): Promise<ListWithCounts[]> {
  return selectListsWithCounts(app.db);
}

/** A list, its members counted by status, and its unsubscribes by source (one-click, page, …) with the latest time. */
export async function showList(app: App, slug: string): Promise<ListWithCounts & { unsubscribes: UnsubscribeSummary[] }> {
  const [found] = await selectListsWithCounts(app.db, slug);
  if (!found) throw noSuchList(slug);
  return { ...found, unsubscribes: await summarizeUnsubscribes(app.db, found.list.id) };
}

/** The list named on the command line, or a NOT_FOUND error that says how to see the lists. */
export async function requireList(sql: Sql, slug: string): Promise<MailingList> {
  const list = await findListBySlug(sql, slug);
  if (!list) throw noSuchList(slug);
  return list;
}

function noSuchList(slug: string): BulletinError {
  return new BulletinError('NOT_FOUND', `There is no list "${slug}" (see \`bulletin list ls\`).`);
}

function checkListInput(input: ListInput): Partial<Omit<ListFields, 'slug'>> {
  const changes: { -readonly [K in keyof Omit<ListFields, 'slug'>]?: ListFields[K] } = {};
  if (input.name !== undefined) {
    const name = input.name.trim();
    if (name === '' || /[\r\n\u0000-\u001f]/.test(name)) {
      throw new BulletinError('BAD_INPUT', 'The list name must be non-empty and on one line.');
    }
    changes.name = name;
  }
  if (input.description !== undefined) changes.description = input.description.trim();
  if (input.address !== undefined) changes.address = checkAddress('--address', input.address);
  if (input.from !== undefined) changes.from = checkMailbox('--from', input.from);
  if (input.baseUrl !== undefined) {
    const checked = normalizeBaseUrl(input.baseUrl);
    if (!checked.ok) throw new BulletinError('BAD_INPUT', `--base-url "${input.baseUrl}" ${checked.reason}.`);
    const url = new URL(checked.url);
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && input.allowHttp !== true) {
      throw new BulletinError(
        'BAD_INPUT',
        `--base-url "${input.baseUrl}" must be https: mail programs send the one-click unsubscribe (RFC 8058) only to an https link (--allow-http for a test set-up).`,
      );
    }
    changes.baseUrl = checked.url;
  }
  if (input.subjectPrefix !== undefined) {
    if (input.subjectPrefix !== null && /[\r\n]/.test(input.subjectPrefix)) {
      throw new BulletinError('BAD_INPUT', '--subject-prefix must be on one line.');
    }
    changes.subjectPrefix = input.subjectPrefix;
  }
  if (input.bounceAddress !== undefined) {
    changes.bounceAddress = input.bounceAddress === null ? null : checkAddress('--bounce-address', input.bounceAddress);
  }
  if (input.templatesDir !== undefined) changes.templatesDir = input.templatesDir;
  return changes;
}

function checkAddress(flag: string, value: string): string {
  const checked = normalizeAddress(value);
  if (!checked.ok) throw new BulletinError('BAD_INPUT', `${flag} "${value}" ${checked.reason}.`);
  return checked.address;
}

function checkMailbox(flag: string, value: string): Mailbox {
  const checked = parseMailbox(value);
  if (!checked.ok) throw new BulletinError('BAD_INPUT', `${flag} "${value}": ${checked.reason}.`);
  return checked.mailbox;
}
