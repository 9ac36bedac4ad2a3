// `bulletin archive export`: the static web archive of a list, regenerated from the bulletins whose
// send has started (test copies and dry runs store none). Numbers are given once and kept; a file
// is written only when its bytes changed, through a temporary name and a rename; nothing is deleted.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { buildArchiveSite } from '../archive/site.js';
import { obscureAddress, type ArchivedBulletin } from '../archive/model.js';
import { sanitizeBulletinHtml } from '../archive/site.js';
import { archiveUrl } from '../domain/links.js';
import { effectiveSubjectPrefix } from '../domain/list.js';
import { parseBulletinSource, renderBodyForArchive, type TemplateSet } from '../render/index.js';
import { assignArchiveNumbers, selectArchiveEntries, storeArchiveBody, type ArchiveEntry } from '../store/bulletins.js';
import type { App } from './context.js';
import { requireList } from './lists.js';

export interface ArchiveExportSummary {
  readonly list: string;
  readonly directory: string;
  readonly bulletins: number;
  readonly months: number;
  readonly written: number;
  readonly unchanged: number;
  /** Bulletins numbered by this export (first time in the archive). */
  readonly numbered: number;
}

export async function exportArchive(app: App, request: { slug: string; outDir: string }): Promise<ArchiveExportSummary> {
  const list = await requireList(app.db, request.slug);
  const numbered = await app.db.transaction((tx) => assignArchiveNumbers(tx, list.id));
  const entries = await selectArchiveEntries(app.db, list.id);
  const numberOf = new Map(entries.map((entry) => [entry.id, entry.archiveNumber]));
  const byName = new Map<string, ArchiveEntry>();
  for (const entry of entries) byName.set(entry.sourceName, entry); // the latest of a name wins, as for sends
  const domain = list.address.slice(list.address.lastIndexOf('@') + 1);
  const prefix = effectiveSubjectPrefix(list).trim();
  const archived: ArchivedBulletin[] = [];
  for (const entry of entries) {
    const source = parseBulletinSource(entry.source, entry.sourceName);
    const parent = source.inReplyTo === null ? undefined : /^\d{1,9}$/.test(source.inReplyTo) ? entries.find((other) => other.id === Number(source.inReplyTo)) : byName.get(source.inReplyTo);
    let body = entry.archiveBody;
    if (body === null) {
      // Sent before bulletins kept their archive rendering: render it now, once, and keep it.
      body = renderBodyForArchive({ source, list, templates: entry.templates as unknown as TemplateSet, date: entry.sentDate });
      await storeArchiveBody(app.db, entry.id, body);
    }
    archived.push({
      number: entry.archiveNumber,
      title: prefix === '' || source.subject.includes(prefix) ? source.subject : `${prefix} ${source.subject}`, // as in the Subject header
      subject: source.subject,
      date: entry.sentDate,
      author: list.from.name || list.name,
      authorAddress: obscureAddress(list.address),
      bodyHtml: sanitizeBulletinHtml(body.html),
      text: body.text,
      messageId: `<bulletin-${entry.id}.${list.slug}@${domain}>`,
      inReplyTo: parent ? (numberOf.get(parent.id) ?? null) : null,
    });
  }
  const files = buildArchiveSite(list.slug, { name: list.name, description: list.description, archiveUrl: archiveUrl(list) }, archived);
  const directory = resolve(request.outDir);
  let written = 0;
  let unchanged = 0;
  for (const [path, content] of files) {
    const target = join(directory, path);
    const existing = await readFile(target).catch(() => null);
    if (existing !== null && existing.equals(content)) {
      unchanged++;
      continue;
    }
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${process.pid}.tmp`;
    await writeFile(temporary, content);
    await rename(temporary, target);
    written++;
  }
  const months = new Set(archived.map((bulletin) => `${bulletin.date.getUTCFullYear()}-${bulletin.date.getUTCMonth()}`)).size;
  return { list: list.slug, directory, bulletins: archived.length, months, written, unchanged, numbered };
}
