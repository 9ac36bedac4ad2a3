// Use cases of audiences: a `--where` filter or a named `--segment` becomes a checked filter (unknown
// attribute names refused, naming the list's, unless allowed); `subscribers count --where` counts
// and samples it; `segment create|ls|delete` keep named filters per list.
import { filterAttributes, parseFilter, type FilterNode } from '../domain/audience-filter.js';
import { BulletinError } from '../domain/errors.js';
import { isValidSlug, type MailingList } from '../domain/list.js';
import { countAudience, sampleAudience } from '../store/audience.js';
import type { Sql } from '../store/database.js';
import { selectAttributeNames } from '../store/memberships.js';
import { deleteSegment, findSegment, insertSegment, selectSegments, type Segment } from '../store/segments.js';
import type { App } from './context.js';
import { requireList } from './lists.js';

export interface AudienceRequest {
  /** A filter in the language of src/domain/audience-filter.ts. */
  readonly where?: string;
  /** A segment of the list (its filter). */
  readonly segment?: string;
  /** Attribute names no member has are accepted (else refused, naming the list's attributes). */
  readonly allowUnknown?: boolean;
}

/** Who a send goes to: every active member (filter null) or those matching the filter. */
export interface Audience {
  readonly filterText: string | null;
  readonly segment: string | null;
  readonly filter: FilterNode | null;
}

export const EVERYONE: Audience = Object.freeze({ filterText: null, segment: null, filter: null });

/** Turns `--where` / `--segment` into a checked audience of the list. */
export async function resolveAudience(sql: Sql, list: MailingList, request: AudienceRequest): Promise<Audience> {
  if (request.where !== undefined && request.segment !== undefined) {
    throw new BulletinError('USAGE', 'Give either --where or --segment, not both.');
  }
  if (request.segment !== undefined) {
    const segment = await findSegment(sql, list.id, request.segment);
    if (!segment) {
      const known = (await selectSegments(sql, list.id)).map((each) => each.name);
      throw new BulletinError(
        'NOT_FOUND',
        `The list "${list.slug}" has no segment "${request.segment.slice(0, 80)}" (${known.length === 0 ? 'it has none; see bulletin segment create' : `it has: ${known.join(', ')}`}).`,
      );
    }
    return { filterText: segment.filter, segment: segment.name, filter: parseFilter(segment.filter) };
  }
  if (request.where === undefined) return EVERYONE;
  const filter = parseFilter(request.where);
  if (!request.allowUnknown) await refuseUnknownAttributes(sql, list, filter);
  return { filterText: request.where, segment: null, filter };
}

/** An audience stored with a bulletin (or a segment), parsed again: it was checked when stored. */
export function storedAudience(filterText: string | null, segment: string | null): Audience {
  return filterText === null ? EVERYONE : { filterText, segment, filter: parseFilter(filterText) };
}

async function refuseUnknownAttributes(sql: Sql, list: MailingList, filter: FilterNode): Promise<void> {
  const named = filterAttributes(filter);
  if (named.size === 0) return;
  const known = new Set(await selectAttributeNames(sql, list.id, null));
  for (const [name, column] of named) {
    if (known.has(name)) continue;
    const has = known.size === 0 ? 'its members have no attributes' : `its members have: ${[...known].join(', ')}`;
    throw new BulletinError(
      'BAD_INPUT',
      `The filter is wrong at column ${column}: no member of "${list.slug}" has the attribute "${name}" (${has}); add --allow-unknown if it is meant.`,
    );
  }
}

export interface AudienceCount {
  readonly list: string;
  readonly filter: string | null;
  readonly segment: string | null;
  readonly count: number;
  readonly sample: { email: string; name: string | null }[];
}

/** `subscribers count --where …` (or `--segment …`): how many active members match, and a sample. */
export async function countAudienceOf(app: App, slug: string, request: AudienceRequest, sampleSize = 5): Promise<AudienceCount> {
  const list = await requireList(app.db, slug);
  const audience = await resolveAudience(app.db, list, request);
  const count = await countAudience(app.db, list.id, audience.filter);
  const sample = (await sampleAudience(app.db, list.id, audience.filter, sampleSize)).map((row) => ({ email: row.email, name: row.name }));
  return { list: list.slug, filter: audience.filterText, segment: audience.segment, count, sample };
}

/** `segment create <name> --list … --where …`: a named filter, checked now like a send's. */
export async function createSegment(app: App, name: string, slug: string, request: Omit<AudienceRequest, 'segment'>): Promise<Segment & { count: number }> {
  if (!isValidSlug(name)) {
    throw new BulletinError('BAD_INPUT', `Segment name "${name.slice(0, 80)}" is not valid: use 1 to 63 lower-case letters, digits and hyphens.`);
  }
  if (request.where === undefined) throw new BulletinError('USAGE', 'A segment needs --where <filter>.');
  const list = await requireList(app.db, slug);
  const audience = await resolveAudience(app.db, list, { where: request.where, ...(request.allowUnknown ? { allowUnknown: true } : {}) });
  const segment = await insertSegment(app.db, { listId: list.id, name, filter: request.where });
  if (!segment) throw new BulletinError('CONFLICT', `The list "${list.slug}" already has a segment "${name}".`);
  return { ...segment, count: await countAudience(app.db, list.id, audience.filter) };
}

/** `segment ls [--list …]`: each segment with how many active members it matches now. */
export async function listSegments(app: App, slug?: string): Promise<(Segment & { count: number })[]> {
  const list = slug === undefined ? null : await requireList(app.db, slug);
  const segments = await selectSegments(app.db, list?.id ?? null);
  const counted = [];
  for (const segment of segments) counted.push({ ...segment, count: await countAudience(app.db, segment.listId, parseFilter(segment.filter)) });
  return counted;
}

export async function removeSegment(app: App, name: string, slug: string): Promise<void> {
  const list = await requireList(app.db, slug);
  if (!(await deleteSegment(app.db, list.id, name))) throw new BulletinError('NOT_FOUND', `The list "${list.slug}" has no segment "${name.slice(0, 80)}".`);
}
