// A subscriber (one person, whatever lists they are on) and their membership of one list.
// Attributes are free key/value data usable in templates (`{{subscriber.attributes.city}}`).
import type { MembershipSource, MembershipStatus } from './membership.js';

export type SubscriberAttributes = Record<string, unknown>;

export interface Subscriber {
  readonly id: number;
  /** Normalised address: lower case, international domain as punycode. */
  readonly email: string;
  readonly name: string | null;
  readonly attributes: SubscriberAttributes;
}

export interface Member extends Subscriber {
  readonly status: MembershipStatus;
  readonly subscribedAt: Date;
  readonly subscribedSource: MembershipSource;
  readonly statusChangedAt: Date;
  readonly statusSource: MembershipSource;
  /** Times this membership became active again after leaving: what its unsubscribe links name. */
  readonly resubscriptions: number;
}

/** Attribute names must be usable as Handlebars paths and CSV headers. */
export const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A name or attribute value is at most 1,000 characters: room for any real name or note, while a
 * bulletin's at most 1,000 tags of such values keep a message within a few megabytes (a 50 MB name
 * once made a 196 MB message).
 */
export const MAX_FIELD_LENGTH = 1000;
/** A subscriber has at most 100 attributes (an import's columns, besides email and name). */
export const MAX_ATTRIBUTES = 100;
/** Columns of an import's header row: email, name and the attributes. */
export const MAX_COLUMNS = MAX_ATTRIBUTES + 2;
/**
 * One CSV record (a row, quoted line breaks included) is at most 128 KiB: the parser holds a whole
 * record in memory before anything can check it. A full row (102 fields of 1,000 characters) fits;
 * a quote left open, which would swallow the rest of the file into one field, does not.
 */
export const MAX_RECORD_BYTES = 128 * 1024;
