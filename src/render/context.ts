// What a template can name: the shape of the per-recipient context (checked statically before any
// message exists) and the builders of that context from a list, a bulletin and a recipient.
import { archiveUrl, helpUrl } from '../domain/links.js';
import type { MailingList } from '../domain/list.js';
import type { BulletinSource } from './source.js';

/** `text`: a leaf value; `free`: anything below is allowed (subscriber attributes); else named fields. */
export type ContextShape = 'text' | 'free' | { readonly [key: string]: ContextShape };

/** Every variable a recipient context has. Documented for template authors in src/render/index.ts. */
export const RECIPIENT_CONTEXT_SHAPE = {
  subscriber: { email: 'text', name: 'text', attributes: 'free' },
  list: {
    name: 'text',
    slug: 'text',
    description: 'text',
    address: 'text',
    baseUrl: 'text',
    archiveUrl: 'text',
    helpUrl: 'text',
  },
  bulletin: { subject: 'text', date: 'text', isoDate: 'text', summary: 'text', lang: 'text' },
  unsubscribeUrl: 'text',
  archiveUrl: 'text',
} as const satisfies ContextShape;

/** Top-level names whose value differs from one recipient to the next. */
export const PER_RECIPIENT_ROOTS: ReadonlySet<string> = new Set(['subscriber', 'unsubscribeUrl']);

/** One recipient as the send engine knows it. `attributes` come from the subscriber's import data. */
export interface Recipient {
  readonly id: number;
  readonly email: string;
  readonly name: string | null;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** The membership's re-subscriptions (Member.resubscriptions), which the unsubscribe link names; 0 if absent. */
  readonly subscription?: number;
}

interface ListVariables {
  readonly name: string;
  readonly slug: string;
  readonly description: string;
  readonly address: string;
  readonly baseUrl: string;
  readonly archiveUrl: string;
  readonly helpUrl: string;
}

interface BulletinVariables {
  readonly subject: string;
  readonly date: string;
  readonly isoDate: string;
  readonly summary: string;
  readonly lang: string;
}

/** The part of the context that is the same for every recipient of one bulletin. */
export interface SharedContext {
  readonly list: ListVariables;
  readonly bulletin: BulletinVariables;
  readonly archiveUrl: string;
}

export interface RecipientContext extends SharedContext {
  readonly subscriber: {
    readonly email: string;
    readonly name: string;
    readonly attributes: Readonly<Record<string, unknown>>;
  };
  readonly unsubscribeUrl: string;
}

function longDate(date: Date, lang: string): string {
  try {
    return new Intl.DateTimeFormat(lang, { dateStyle: 'long', timeZone: 'UTC' }).format(date);
  } catch {
    return new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(date);
  }
}

export function sharedContext(list: MailingList, source: BulletinSource, date: Date): SharedContext {
  const shownDate = source.date ?? date;
  return {
    list: {
      name: list.name,
      slug: list.slug,
      description: list.description,
      address: list.address,
      baseUrl: list.baseUrl,
      archiveUrl: archiveUrl(list),
      helpUrl: helpUrl(list),
    },
    bulletin: {
      subject: source.subject,
      date: longDate(shownDate, source.lang),
      isoDate: shownDate.toISOString().slice(0, 10),
      summary: source.summary ?? '',
      lang: source.lang,
    },
    archiveUrl: archiveUrl(list),
  };
}

export function recipientContext(shared: SharedContext, recipient: Recipient, unsubscribeUrl: string): RecipientContext {
  return {
    list: shared.list,
    bulletin: shared.bulletin,
    archiveUrl: shared.archiveUrl,
    subscriber: { email: recipient.email, name: recipient.name ?? '', attributes: recipient.attributes },
    unsubscribeUrl,
  };
}
