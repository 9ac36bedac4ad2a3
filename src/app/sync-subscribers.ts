// Use case `subscribers sync`: makes a list's members match a CSV file (the export of a source of
// truth), streamed and in one transaction like an import, whose CSV reading, limits and batches it
// reuses: new addresses subscribed, names and attributes updated, active members missing from the
// file removed (status 'removed', source 'sync'). Nobody who unsubscribed or bounced is brought back
// unless asked; a sync that would remove more than `maxRemoval` of the active members is refused.
import { normalizeAddress } from '../domain/address.js';
import { BulletinError } from '../domain/errors.js';
import { isConnectionError } from '../store/database.js';
import { lockList } from '../store/lists.js';
import { countMembers } from '../store/memberships.js';
import { createImportStaging, emptyCounts, mergeBatch, selectSuppressedRows, type BatchCounts, type StagedRow } from '../store/subscriber-import.js';
import { removeMissingMembers, sampleJoinedNow, stageSeenAddresses } from '../store/subscriber-sync.js';
import type { App } from './context.js';
import { interrupted, openInput, readRows, RejectCollector, type ImportOptions, type RejectedRow } from './import-subscribers.js';
import { requireList } from './lists.js';

/** By default a sync may remove at most this share of the active members. */
export const DEFAULT_MAX_REMOVAL = 0.1;

export interface SyncOptions extends Pick<ImportOptions, 'list' | 'file' | 'stdin' | 'rejectsFile' | 'resubscribe' | 'dryRun'> {
  /** The largest share (0–1) of the active members the sync may remove (default 10 %). */
  readonly maxRemoval?: number;
}

export interface SyncReport {
  readonly list: string;
  readonly rowsRead: number;
  readonly invalid: number;
  readonly rejects: readonly RejectedRow[];
  /** Active members before the sync. */
  readonly activeBefore: number;
  /** New memberships, and members brought back (removed by an earlier sync, or resubscribed). */
  readonly added: number;
  readonly back: number;
  /** People whose name or attributes changed. */
  readonly updated: number;
  readonly removed: number;
  /** In the file but unsubscribed or bounced, and left so (no --resubscribe). */
  readonly keptInactive: number;
  /** Erased on request: not subscribed again. */
  readonly suppressed: number;
  readonly duplicates: number;
  readonly activeAfter: number;
  readonly sample: { readonly added: readonly string[]; readonly removed: readonly string[] };
  readonly dryRun: boolean;
  /** A dry run that the removal guard would refuse says why (a real sync throws it). */
  readonly refusal: string | null;
}

const BATCH_SIZE = 5000;
const SAMPLE_SIZE = 10;

export async function syncSubscribers(app: App, options: SyncOptions): Promise<SyncReport> {
  const maxRemoval = options.maxRemoval ?? DEFAULT_MAX_REMOVAL;
  const input = await openInput(options);
  const rejects = new RejectCollector(options.rejectsFile);
  const totals = emptyCounts();
  let attributeColumns: string[] = [];
  let rowsRead = 0;
  let report: SyncReport | undefined;
  try {
    await app.db.transaction(async (tx) => {
      const list = await requireList(tx, options.list);
      // Two syncs (or a sync and a send's enqueue) of one list go one after the other.
      await lockList(tx, list.id);
      const activeBefore = await countMembers(tx, list.id, 'active');
      await createImportStaging(tx);
      let merging: Promise<void> = Promise.resolve();
      const merge = async (rows: StagedRow[]) => {
        await merging;
        merging = mergeBatch(tx, rows, {
          listId: list.id,
          resubscribe: options.resubscribe ?? false,
          source: 'sync',
          replaceAttributes: attributeColumns,
        }).then((counts) => addCounts(totals, counts));
        merging.catch(() => undefined); // awaited before the next batch and at the end
      };
      let batch: StagedRow[] = [];
      let seen: { line: number; email: string }[] = [];
      const onHeader = (header: string[]) => {
        rejects.setHeader(header);
        attributeColumns = header.map((name) => name.trim()).filter((name) => !['email', 'name'].includes(name.toLowerCase()));
      };
      for await (const row of readRows(input, options.file, onHeader)) {
        rowsRead++;
        if ('reason' in row) {
          await rejects.add(row, row.fields);
          const address = normalizeAddress(row.email);
          if (address.ok) seen.push({ line: row.line, email: address.address });
          continue;
        }
        batch.push(row);
        if (batch.length >= BATCH_SIZE) {
          await merge(batch);
          batch = [];
        }
      }
      await merge(batch);
      await merging;
      for (; seen.length > 0; seen = seen.slice(BATCH_SIZE)) await stageSeenAddresses(tx, seen.slice(0, BATCH_SIZE));
      for (const row of await selectSuppressedRows(tx)) {
        await rejects.add({ ...row, reason: 'was erased on request and must not be imported again' }, null);
      }
      // Removed at once, in this transaction: refused (rolled back) if it is too many.
      const missing = await removeMissingMembers(tx, list.id, SAMPLE_SIZE);
      const refusal =
        missing.count > 0 && missing.count > maxRemoval * activeBefore
          ? `The sync would remove ${missing.count.toLocaleString('en-US')} of the ${activeBefore.toLocaleString('en-US')} active members of "${list.slug}" (${percent(missing.count / activeBefore)}), more than the ${percent(maxRemoval)} allowed (a truncated export?); nothing was changed — if it is right, run it again with --max-removal ${Math.ceil((100 * missing.count) / activeBefore)}%.`
          : null;
      if (refusal !== null && !options.dryRun) throw new BulletinError('BAD_INPUT', refusal);
      report = {
        list: list.slug,
        rowsRead,
        invalid: rejects.total - totals.suppressed,
        rejects: rejects.kept,
        activeBefore,
        added: totals.membershipsAdded,
        back: totals.resubscribed,
        updated: totals.subscribersUpdated,
        removed: missing.count,
        keptInactive: totals.keptInactive,
        suppressed: totals.suppressed,
        duplicates: totals.duplicates,
        activeAfter: activeBefore + totals.membershipsAdded + totals.resubscribed - missing.count,
        sample: { added: await sampleJoinedNow(tx, list.id, SAMPLE_SIZE), removed: missing.sample },
        dryRun: options.dryRun ?? false,
        refusal,
      };
      if (options.dryRun) throw new DryRunRollback();
    });
  } catch (error) {
    if (!(error instanceof DryRunRollback)) {
      await rejects.close();
      if (isConnectionError(error)) throw interrupted(app, error, rowsRead, 'sync');
      throw error;
    }
  } finally {
    input.destroy();
  }
  await rejects.close();
  if (!report) throw new BulletinError('INTERNAL', 'The sync ended without a report.');
  return report;
}

/** `--max-removal 25%` (or 0.25): the share of active members a sync may remove. */
export function parseMaxRemoval(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(%)?\s*$/.exec(text);
  if (!match) return null;
  const share = match[2] ? Number(match[1]) / 100 : Number(match[1]);
  return share >= 0 && share <= 1 ? share : null;
}

function percent(share: number): string {
  return `${(Math.round(share * 1000) / 10).toLocaleString('en-US')}%`;
}

function addCounts(totals: BatchCounts, counts: BatchCounts): void {
  for (const key of Object.keys(totals) as (keyof BatchCounts)[]) totals[key] += counts[key];
}

class DryRunRollback extends Error {}
