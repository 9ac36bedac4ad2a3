// A bulletin's body as the web archive shows it: rendered for no recipient (no address, name or
// link token can appear), without the mail layout, as HTML and as text. Computed once per bulletin
// (when its send starts) and kept with it: a bulletin never changes once sent.
import type { MailingList } from '../domain/list.js';
import { helpUrl } from '../domain/links.js';
import { recipientContext, sharedContext } from './context.js';
import type { BulletinSource } from './source.js';
import { renderBodyAlone } from './template-assembly.js';
import type { TemplateSet } from './template-files.js';

export interface ArchiveBody {
  readonly html: string;
  readonly text: string;
}

export function renderBodyForArchive(options: { source: BulletinSource; list: MailingList; templates: TemplateSet; date: Date }): ArchiveBody {
  const shared = sharedContext(options.list, options.source, options.date);
  // Where a bulletin links to its reader's unsubscribe page, the archive links to the list's page.
  const neutral = recipientContext(shared, { id: 0, email: '', name: '', attributes: {} }, helpUrl(options.list));
  return renderBodyAlone(options.source, options.templates, neutral);
}
