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
}

/** Attribute names must be usable as Handlebars paths and CSV headers. */
export const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
