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
import { parseBulletinSource, renderBodyForArchive, type BulletinSource, type TemplateSet } from '../render/index.js';
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
  const domain = list.address.slice(list.address.lastIndexOf('@') + 1);
  const prefix = effectiveSubjectPrefix(list).trim();
  const sources = new Map<number, BulletinSource>();
  const sourceOf = (entry: ArchiveEntry): BulletinSource => {
    let source = sources.get(entry.id);
    if (source === undefined) sources.set(entry.id, (source = parseBulletinSource(entry.source, entry.sourceName)));
    return source;
  };
  // Front matter is read only where it matters: the subject is kept in its own column.
  const inReplyToOf = (entry: ArchiveEntry) => (entry.source.includes('in-reply-to') ? sourceOf(entry).inReplyTo : null);
  const parentOf = threadParents(entries, inReplyToOf);
  const numberOf = new Map(entries.map((entry) => [entry.id, entry.archiveNumber]));
  const archived: ArchivedBulletin[] = [];
  for (const entry of entries) {
    let body = entry.archiveBody;
    if (body === null) {
      // Sent before bulletins kept their archive rendering: render it now, once, and keep it.
      const templates = (entry.templates ?? {}) as unknown as TemplateSet;
      body = renderBodyForArchive({ source: sourceOf(entry), list, templates, date: entry.sentDate });
      await storeArchiveBody(app.db, entry.id, body);
    }
    const parent = parentOf.get(entry.id);
    archived.push({
      number: entry.archiveNumber,
      title: prefix === '' || entry.subject.includes(prefix) ? entry.subject : `${prefix} ${entry.subject}`, // as in the Subject header
      subject: entry.subject,
      summary: entry.source.includes('summary') ? sourceOf(entry).summary : null,
      date: entry.sentDate,
      author: list.from.name || list.name,
      authorAddress: obscureAddress(list.address),
      bodyHtml: sanitizeBulletinHtml(body.html),
      text: body.text,
      messageId: `<bulletin-${entry.id}.${list.slug}@${domain}>`,
      inReplyTo: parent === undefined ? null : (numberOf.get(parent) ?? null),
    });
  }
  const files = buildArchiveSite(list.slug, { name: list.name, description: list.description, archiveUrl: archiveUrl(list) }, archived);
  const directory = resolve(request.outDir);
  const { written, unchanged } = await writeChangedFiles(directory, files);
  const months = new Set(archived.map((bulletin) => `${bulletin.date.getUTCFullYear()}-${bulletin.date.getUTCMonth()}`)).size;
  return { list: list.slug, directory, bulletins: archived.length, months, written, unchanged, numbered };
}

/**
 * Which bulletin each one follows up, as its send threaded it: `in-reply-to` names an id or a file
 * name, and means the latest bulletin of the list so named that existed when it was sent (a file
 * name sent again later does not move the threads of earlier follow-ups). Bulletin id → parent id.
 */
function threadParents(entries: readonly ArchiveEntry[], inReplyToOf: (entry: ArchiveEntry) => string | null): Map<number, number> {
  const byId = new Map(entries.map((entry) => [entry.id, entry]));
  const latestByName = new Map<string, number>();
  const parents = new Map<number, number>();
  for (const entry of [...entries].sort((a, b) => a.id - b.id)) {
    const reference = inReplyToOf(entry);
    if (reference !== null) {
      const byName = latestByName.get(reference);
      const byNumber = /^\d{1,9}$/.test(reference) && (byId.get(Number(reference))?.id ?? Infinity) < entry.id ? Number(reference) : undefined;
      const parent = Math.max(byName ?? -1, byNumber ?? -1);
      if (parent >= 0) parents.set(entry.id, parent);
    }
    latestByName.set(entry.sourceName, entry.id);
  }
  return parents;
}

/** How many files may be read or written at once: the work is waiting on the file system. */
const FILES_AT_ONCE = 32;

/** Writes each file whose bytes differ from what is there (temporary name, then rename); keeps the rest. */
async function writeChangedFiles(directory: string, files: ReadonlyMap<string, Buffer>): Promise<{ written: number; unchanged: number }> {
  const targets = [...files].map(([path, content]) => ({ target: join(directory, path), content }));
  for (const folder of new Set(targets.map(({ target }) => dirname(target)))) await mkdir(folder, { recursive: true });
  let written = 0;
  let unchanged = 0;
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const { target, content } = targets[next++] as { target: string; content: Buffer };
      const existing = await readFile(target).catch(() => null);
      if (existing !== null && existing.equals(content)) {
        unchanged++;
        continue;
      }
      const temporary = `${target}.${process.pid}.tmp`;
      await writeFile(temporary, content);
      await rename(temporary, target);
      written++;
    }
  };
  await Promise.all(Array.from({ length: FILES_AT_ONCE }, worker));
  return { written, unchanged };
}
