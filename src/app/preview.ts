// Use case `preview`: renders a bulletin for one subscriber (or a sample one) without sending or
// storing anything, as the full message, its HTML part or its text part; or, with `archive`, the
// copy the web archive will publish (no subscriber in it), with every place that prints empty there.
import { readFile } from 'node:fs/promises';
import { BulletinError } from '../domain/errors.js';
import { sanitizeBulletinHtml } from '../archive/site.js';
import { compileBulletin, parseBulletinSource, renderBodyForArchive, SAMPLE_RECIPIENT } from '../render/index.js';
import { findMember } from '../store/memberships.js';
import type { App } from './context.js';
import { requireList } from './lists.js';
import { installationKeys } from './secret.js';
import { checkAddress } from './subscribers.js';

export type PreviewFormat = 'eml' | 'html' | 'text';

export interface PreviewRequest {
  readonly file: string;
  readonly list?: string;
  /** A subscriber's address: their own values; default a sample subscriber. */
  readonly to?: string;
  readonly format: PreviewFormat;
  readonly templatesDir?: string;
  readonly verp?: boolean;
  /** The archive copy instead of a subscriber's (text or html only). */
  readonly archive?: boolean;
}

export interface Preview {
  readonly content: Buffer;
  /** Whose copy: an address, or `archive` for the archive copy. */
  readonly recipient: string;
  /** Places that print a subscriber value, empty in the archive copy (file:line:column: …). */
  readonly emptyInArchive: readonly string[];
}

export async function previewBulletin(app: App, request: PreviewRequest): Promise<Preview> {
  if (request.archive && request.format === 'eml') {
    throw new BulletinError('USAGE', 'The archive copy is a web page, not a message: use --archive with --format text or html.');
  }
  let text: string;
  try {
    text = await readFile(request.file, 'utf8');
  } catch (error) {
    throw new BulletinError('BAD_INPUT', `Cannot read ${request.file}: ${(error as Error).message}.`);
  }
  const source = parseBulletinSource(text, request.file);
  const slug = request.list ?? source.list;
  if (!slug) throw new BulletinError('USAGE', `Name the list: --list <slug>, or \`list:\` in the front matter of ${request.file}.`);
  const list = await requireList(app.db, slug);
  const compiled = await compileBulletin({
    source,
    list,
    bulletinKey: 'preview',
    signing: (await installationKeys(app)).signing,
    verp: request.verp ?? false,
    date: app.clock.now(),
    ...(request.templatesDir === undefined ? {} : { templatesDir: request.templatesDir }),
  });
  if (request.archive) {
    const body = renderBodyForArchive({ source, list, templates: compiled.templates, date: compiled.date });
    const content = request.format === 'html' ? sanitizeBulletinHtml(body.html) : body.text;
    return { content: Buffer.from(content, 'utf8'), recipient: 'archive', emptyInArchive: compiled.emptyInArchive };
  }
  let recipient = SAMPLE_RECIPIENT;
  if (request.to !== undefined) {
    const email = checkAddress(request.to);
    const member = await findMember(app.db, list.id, email);
    if (!member) throw new BulletinError('NOT_FOUND', `${email} is not on the list "${list.slug}".`);
    recipient = { ...member, subscription: member.resubscriptions };
  }
  const content =
    request.format === 'eml'
      ? compiled.render(recipient).raw
      : Buffer.from(request.format === 'html' ? compiled.renderHtml(recipient) : compiled.renderText(recipient), 'utf8');
  return { content, recipient: recipient.email, emptyInArchive: compiled.emptyInArchive };
}
