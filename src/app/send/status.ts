// Use case `status`: per-state counts, the rate over the last minute, an ETA and the commonest
// SMTP replies of a send (default: the latest).
import type { DeliveryState } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { findBulletin, latestBulletin, type StoredBulletin } from '../../store/bulletins.js';
import { countComplaints } from '../../store/complaints.js';
import { countByState, countSentSince, nextDueAt, topReplies, type StateCounts } from '../../store/deliveries.js';
import type { App } from '../context.js';
import { listOf, openDeliveries } from './bulletins.js';

export interface BulletinStatus {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  readonly counts: StateCounts;
  readonly total: number;
  /** Messages per second over the last minute. */
  readonly rate: number;
  readonly etaSeconds: number | null;
  readonly nextAttemptAt: string | null;
  readonly commonReplies: { state: DeliveryState; reply: string; count: number }[];
  /** scheduled, started or unscheduled (src/domain/bulletin.ts), and when it is or was due. */
  readonly state: StoredBulletin['state'];
  readonly scheduledFor: string | null;
  /** Who it goes to: the filter as written (null: every active member) and its segment. */
  readonly audience: { readonly filter: string | null; readonly segment: string | null };
  /** Feedback-loop complaints (ARF) about this bulletin's messages. */
  readonly complaints: number;
}

export async function bulletinStatus(app: App, bulletinId?: number): Promise<BulletinStatus> {
  const bulletin = bulletinId === undefined ? await latestBulletin(app.db) : await findBulletin(app.db, bulletinId);
  if (!bulletin) {
    throw new BulletinError('NOT_FOUND', bulletinId === undefined ? 'No bulletin has been sent yet.' : `There is no bulletin ${bulletinId}.`);
  }
  const list = await listOf(app, bulletin);
  const counts = await countByState(app.db, bulletin.id);
  const rate = (await countSentSince(app.db, bulletin.id, 60)) / 60;
  const open = openDeliveries(counts);
  const due = await nextDueAt(app.db, bulletin.id);
  return {
    bulletinId: bulletin.id,
    list: list.slug,
    subject: bulletin.subject,
    createdAt: bulletin.createdAt.toISOString(),
    finishedAt: bulletin.finishedAt?.toISOString() ?? null,
    counts,
    total: Object.values(counts).reduce((sum, count) => sum + count, 0),
    rate,
    etaSeconds: open === 0 ? 0 : rate > 0 ? Math.ceil(open / rate) : null,
    nextAttemptAt: due?.toISOString() ?? null,
    commonReplies: await topReplies(app.db, bulletin.id, ['deferred', 'failed', 'uncertain'], 5),
    state: bulletin.state,
    scheduledFor: bulletin.scheduledFor?.toISOString() ?? null,
    audience: { filter: bulletin.audienceFilter, segment: bulletin.audienceSegment },
    complaints: await countComplaints(app.db, bulletin.id),
  };
}
