// The rule that a send keeps the web archive current: with BULLETIN_ARCHIVE_DIR set, the list's
// archive is exported again after each send (an export rewrites only files that changed).
import type { DatabaseOutage } from '../../send/database-outage.js';
import { exportArchive } from '../archive.js';
import type { App } from '../context.js';

/** Null when no archive directory is configured. */
export async function refreshArchiveAfterSend(app: App, slug: string, outage: DatabaseOutage): Promise<{ directory: string; written: number } | null> {
  const outDir = app.config.archiveDir;
  if (outDir === null) return null;
  // An export is safe to repeat: it rewrites only files that changed.
  const summary = await outage.ride(() => exportArchive(app, { slug, outDir }));
  return { directory: summary.directory, written: summary.written };
}
