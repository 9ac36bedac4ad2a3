// The use case behind a list's help page (List-Help): what the list is, how to leave it (the link in
// every bulletin, a mail client's unsubscribe button, or mail), and whom to write to.
import { archiveUrl, unsubscribeMailbox } from '../domain/links.js';
import { isValidSlug } from '../domain/list.js';
import { findListBySlug } from '../store/lists.js';
import type { App } from './context.js';

export interface ListHelp {
  readonly name: string;
  readonly description: string;
  /** `LIST-unsubscribe@DOMAIN`: a mail program's unsubscribe (List-Unsubscribe mailto) goes here. */
  readonly unsubscribeMailbox: string;
  /** Whom to write to: the list's From address. */
  readonly contact: { readonly name: string; readonly address: string };
  readonly archiveUrl: string;
}

/** The help of the list `slug`, or null when there is none. */
export async function listHelp(app: App, slug: string): Promise<ListHelp | null> {
  if (!isValidSlug(slug)) return null;
  const list = await findListBySlug(app.db, slug);
  if (list === null) return null;
  return {
    name: list.name,
    description: list.description,
    unsubscribeMailbox: unsubscribeMailbox(list),
    contact: { name: list.from.name, address: list.from.address },
    archiveUrl: archiveUrl(list),
  };
}
