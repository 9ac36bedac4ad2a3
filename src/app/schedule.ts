// Use cases of scheduled sends: `send --at` stores the bulletin as scheduled (no deliveries yet);
// a running `bulletin worker` starts each when it is due — one statement decides which worker does,
// so none starts twice — choosing its audience then; `unschedule` takes one back before its start.
import { BulletinError } from '../domain/errors.js';
import { MESSAGE_ID_VERSION } from '../render/index.js';
import { DatabaseOutage } from '../send/database-outage.js';
import { enqueueAudience } from '../store/audience.js';
import {
  findBulletin,
  insertBulletin,
  nextScheduledAt,
  selectScheduledBulletins,
  startDueScheduledBulletin,
  storeArchiveBody,
  unscheduleBulletin,
  type StoredBulletin,
} from '../store/bulletins.js';
import { findListById, lockList } from '../store/lists.js';
import type { App } from './context.js';
import { storedAudience } from './audience.js';
import { requireList } from './lists.js';
import type { SendPlan } from './send/prepare.js';

/** Stores a planned send as scheduled for `plan.scheduledFor`; nothing is enqueued until it starts. */
export async function scheduleSend(app: App, plan: SendPlan, outage = new DatabaseOutage()): Promise<StoredBulletin> {
  const at = plan.scheduledFor;
  if (at === null) throw new BulletinError('INTERNAL', 'scheduleSend needs a plan with a time (--at).');
  return outage.ride(() =>
    app.db.transaction(async (tx) => {
      await lockList(tx, plan.list.id);
      const stored = await insertBulletin(tx, {
        listId: plan.list.id,
        subject: plan.compiled.source.subject,
        source: plan.sourceText,
        sourceName: plan.sourceName,
        templates: plan.compiled.templates as unknown as Record<string, string>,
        verp: plan.verp,
        sentDate: at,
        messageIdVersion: MESSAGE_ID_VERSION,
        scheduledFor: at,
        audienceFilter: plan.audience.filterText,
        audienceSegment: plan.audience.segment,
      });
      // Kept now, published only once the send has started (the archive numbers started bulletins only).
      await storeArchiveBody(tx, stored.id, plan.compiled.archiveBody());
      return stored;
    }),
  );
}

/**
 * Starts every scheduled send (of one list, or of all) due at the app's clock, each in one transaction: the bulletin becomes
 * `started` (only if it still is `scheduled`: a second worker finds nothing to do) and its audience is
 * enqueued as it is now. Returns the bulletins this process started.
 */
export async function startDueSends(app: App, listSlug?: string, outage = new DatabaseOutage()): Promise<StoredBulletin[]> {
  const started: StoredBulletin[] = [];
  const listId = listSlug === undefined ? null : (await outage.ride(() => requireList(app.db, listSlug))).id;
  for (;;) {
    const bulletin = await outage.ride(() =>
      app.db.transaction(async (tx) => {
        const due = await startDueScheduledBulletin(tx, app.clock.now(), listId);
        if (due) await enqueueAudience(tx, due.id, due.listId, storedAudience(due.audienceFilter, due.audienceSegment).filter);
        return due;
      }),
    );
    if (!bulletin) return started;
    started.push(bulletin);
  }
}

/** How long until the next scheduled send (of one list, or of all) is due (0 if one is due now), or null when none is scheduled. */
export async function msUntilNextScheduled(app: App, listSlug?: string, outage = new DatabaseOutage()): Promise<number | null> {
  const at = await outage.ride(async () => nextScheduledAt(app.db, listSlug === undefined ? null : (await requireList(app.db, listSlug)).id));
  return at === null ? null : Math.max(0, at.getTime() - app.clock.now().getTime());
}

export interface ScheduledSend {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly scheduledFor: string;
  readonly audience: { readonly filter: string | null; readonly segment: string | null };
}

/** Sends scheduled and not yet started, soonest first (`bulletin status` lists them). */
export async function scheduledSends(app: App): Promise<ScheduledSend[]> {
  const result: ScheduledSend[] = [];
  for (const bulletin of await selectScheduledBulletins(app.db)) {
    const list = await findListById(app.db, bulletin.listId);
    result.push({
      bulletinId: bulletin.id,
      list: list?.slug ?? '?',
      subject: bulletin.subject,
      scheduledFor: bulletin.scheduledFor?.toISOString() ?? '',
      audience: { filter: bulletin.audienceFilter, segment: bulletin.audienceSegment },
    });
  }
  return result;
}

/** `bulletin unschedule <id>`: a scheduled send taken back before it starts; it never goes out. */
export async function unscheduleSend(app: App, bulletinId: number): Promise<StoredBulletin> {
  const bulletin = await findBulletin(app.db, bulletinId);
  if (!bulletin) throw new BulletinError('NOT_FOUND', `There is no bulletin ${bulletinId} (see \`bulletin status\`).`);
  if (await unscheduleBulletin(app.db, bulletinId)) return { ...bulletin, state: 'unscheduled' };
  const now = await findBulletin(app.db, bulletinId);
  if (now?.state === 'unscheduled') throw new BulletinError('BAD_INPUT', `Bulletin ${bulletinId} is already unscheduled.`);
  throw new BulletinError(
    'BAD_INPUT',
    `Bulletin ${bulletinId} is not scheduled: its send ${now?.scheduledFor ? 'has already started' : 'started when it was sent'}, so it can no longer be unscheduled.`,
  );
}
