// Use case `send` (second half): stores the bulletin and enqueues one delivery per active member
// (or resumes the unfinished one), then sends until done or stopped. Also the options and the
// summary every sending use case shares.
import type { RetryPolicy } from '../../domain/delivery.js';
import type { Clock } from '../../domain/clock.js';
import { MESSAGE_ID_VERSION } from '../../render/index.js';
import type { AdaptivePace } from '../../send/adaptive.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import type { DispatchEnd, DispatchHalt, Dispatcher, Pacer } from '../../send/dispatcher.js';
import type { SendEvents } from '../../send/send-events.js';
import type { Transport } from '../../send/transport.js';
import { findUnfinishedBulletin, insertBulletin, storeArchiveBody, type StoredBulletin } from '../../store/bulletins.js';
import type { StateCounts } from '../../store/deliveries.js';
import { enqueueAudience } from '../../store/audience.js';
import { lockList } from '../../store/lists.js';
import type { App } from '../context.js';
import { dispatchBulletin } from './dispatch.js';
import type { SendPlan } from './prepare.js';

export interface RunOptions {
  readonly transport: Transport;
  /**
   * Paces the messages. Default: the send's pace shared through the database by all its workers,
   * at `rate` messages per second.
   */
  readonly pacer?: Pacer;
  /** Messages per second, for the shared pace (when no `pacer` is given). */
  readonly rate?: number;
  /** Adapts the pacer's rate to relay pushback. */
  readonly pace?: AdaptivePace;
  readonly retry: RetryPolicy;
  readonly resendUncertain: boolean;
  readonly waitForDeferred: boolean;
  readonly leaseMs?: number;
  /** Deliveries claimed at a time (default: 20 per connection, at least 100). */
  readonly claimSize?: number;
  readonly clock?: Clock;
  /** Called once the dispatcher exists, so the caller can show progress and stop it. */
  readonly onStart?: (dispatcher: Dispatcher, bulletin: StoredBulletin, total: number, inDoubt: InDoubt) => void;
  /** Waits out the database going away, at every step (default: an outage of its own, said nowhere). */
  readonly outage?: DatabaseOutage;
  /** Which command runs this process (send, resume, retry, worker), as `bulletin status` shows it. */
  readonly command?: string;
  /** Told what happens during the send (the JSON log and the metrics listen). */
  readonly events?: SendEvents;
  /** Asked about once a second while the send is paused: true leaves it (end 'left paused'). */
  readonly leaveWhilePaused?: () => Promise<boolean>;
}

/**
 * Deliveries of a bulletin whose message may already have reached the receiver when its send
 * resumes: in flight when a sender stopped (a crash, a kill), or cut off before the relay's answer.
 */
export interface InDoubt {
  /** Uncertain ones now: re-sent under their first Message-ID (`resent`), or held. */
  readonly uncertain: number;
  /** Of those, how many this resume found still claimed by a sender that is gone. */
  readonly leftInFlight: number;
  readonly resent: boolean;
}

export interface SendSummary {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly end: DispatchEnd;
  readonly finished: boolean;
  readonly thisRun: { sent: number; deferred: number; failed: number; uncertain: number; skipped: number };
  readonly counts: StateCounts;
  readonly nextAttemptAt: string | null;
  readonly relay: string;
  /** Set when the send stopped by itself: an unusable relay, a message too big, or held (see DispatchHalt). */
  readonly halt: DispatchHalt | null;
  /** What this run found in doubt when it began (see InDoubt). */
  readonly inDoubt: InDoubt;
  /** Who cancelled the send while this run worked on it (`bulletin cancel`), if someone did. */
  readonly cancelledBy: string | null;
}

/** Stores the bulletin and enqueues its deliveries (or resumes it), then sends until done or stopped. */
export async function runSend(app: App, plan: SendPlan, options: RunOptions): Promise<SendSummary> {
  const outage = options.outage ?? new DatabaseOutage();
  // One transaction, tried again after an outage. If its COMMIT went out and the answer was lost, it
  // may be saved: the next try finds that bulletin (the list's row lock keeps two sends of one
  // bulletin from both creating it) and goes on with it.
  const bulletin =
    plan.resuming ??
    (await outage.ride(() =>
      app.db.transaction(async (tx) => {
        await lockList(tx, plan.list.id);
        const existing = await findUnfinishedBulletin(tx, plan.list.id, plan.sourceText);
        if (existing) return existing;
        const stored = await insertBulletin(tx, {
          listId: plan.list.id,
          subject: plan.compiled.source.subject,
          source: plan.sourceText,
          sourceName: plan.sourceName,
          templates: plan.compiled.templates as unknown as Record<string, string>,
          verp: plan.verp,
          sentDate: plan.compiled.date,
          messageIdVersion: MESSAGE_ID_VERSION,
          audienceFilter: plan.audience.filterText,
          audienceSegment: plan.audience.segment,
        });
        await enqueueAudience(tx, stored.id, plan.list.id, plan.audience.filter);
        // What the web archive will show, rendered now, once.
        await storeArchiveBody(tx, stored.id, plan.compiled.archiveBody());
        return stored;
      }),
    ));
  // The plan's bulletin was compiled from exactly what is stored (a resumed one from the store
  // itself): it is sent as compiled, a new one under its id; compiling the largest bulletin again
  // would double its memory.
  return dispatchBulletin(app, bulletin, plan.list, { ...options, outage }, plan.resuming ? plan.compiled : plan.compiled.withKey(String(bulletin.id)));
}
