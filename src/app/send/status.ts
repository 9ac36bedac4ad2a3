// Use case `status`: where a send stands — per-state counts, the rate over the last minute, an ETA,
// the commonest SMTP replies, the operator's control (pause, pace, cancel) and the processes working
// on it with their heartbeats — for one bulletin, or for every unfinished send at once.
import type { DeliveryState } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { findBulletin, latestBulletin, selectUnfinishedBulletinIds, type StoredBulletin } from '../../store/bulletins.js';
import { countComplaints } from '../../store/complaints.js';
import { countByState, countSentSince, nextDueAt, topReplies, type StateCounts } from '../../store/deliveries.js';
import { selectSendControl } from '../../store/send-pacing.js';
import { selectSendProcesses } from '../../store/send-processes.js';
import type { App } from '../context.js';
import { scheduledSends, type ScheduledSend } from '../schedule.js';
import { listOf, openDeliveries } from './bulletins.js';

/** A process whose last heartbeat is older than this (it beats ~4 times a second) has stopped or is cut off. */
export const SILENT_AFTER_SECONDS = 10;

/** The rate over the last minute needs a minute of sending; before that the ETA goes by the pace. */
const RATE_WINDOW_SECONDS = 60;

/** One process working on a send, as its heartbeat row says. */
export interface SendProcessStatus {
  readonly host: string;
  readonly pid: number;
  /** send, resume, retry or worker. */
  readonly command: string;
  readonly startedAt: string;
  readonly heartbeatAt: string;
  /** Seconds since its last heartbeat (by the database's clock). */
  readonly secondsSinceHeartbeat: number;
  /** No heartbeat for more than SILENT_AFTER_SECONDS: stopped, or cut off from the database. */
  readonly silent: boolean;
  /** Messages per second it keeps, and why it is below its ceiling (null: it is not). */
  readonly pace: number | null;
  readonly paceNote: string | null;
  /** Messages it sent on this send. */
  readonly sent: number;
  readonly paused: boolean;
}

/** What the operator set for a send: `bulletin pause`, `bulletin pace`, `bulletin cancel`. */
export interface SendControlStatus {
  readonly paused: { readonly since: string; readonly by: string | null } | null;
  readonly rate: { readonly perSecond: number; readonly by: string | null; readonly at: string | null } | null;
  readonly cancelled: { readonly at: string; readonly by: string | null } | null;
}

export interface BulletinStatus {
  readonly bulletinId: number;
  readonly list: string;
  readonly subject: string;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  /** Nothing more happens to it unless someone acts: finished, unscheduled, or cancelled with nothing left in flight. */
  readonly done: boolean;
  readonly counts: StateCounts;
  readonly total: number;
  /** Deliveries still to be worked on (queued, sending, deferred, uncertain). */
  readonly open: number;
  /** Messages per second over the last minute (in the send's first minute: since its first message). */
  readonly rate: number;
  /** Seconds until the open deliveries are done: by the rate over the last minute, or by the pace in the first minute; null while paused or unknown. */
  readonly etaSeconds: number | null;
  readonly etaBasis: 'last minute' | 'pace' | null;
  readonly nextAttemptAt: string | null;
  readonly commonReplies: { state: DeliveryState; reply: string; count: number }[];
  /** scheduled, started, unscheduled or cancelled (src/domain/bulletin.ts), and when it is or was due. */
  readonly state: StoredBulletin['state'];
  readonly scheduledFor: string | null;
  /** Who it goes to: the filter as written (null: every active member) and its segment. */
  readonly audience: { readonly filter: string | null; readonly segment: string | null };
  /** Feedback-loop complaints (ARF) about this bulletin's messages. */
  readonly complaints: number;
  readonly control: SendControlStatus;
  /** Messages per second the send goes at: the slowest of the rate set by `bulletin pace` and the paces of its live processes (null: none known). */
  readonly pace: number | null;
  /** The processes working on it (those that beat within the last hour), oldest first. */
  readonly processes: SendProcessStatus[];
}

/** Every send in progress: `bulletin status` without an id. */
export interface LiveStatus {
  /** When it was read (the app's clock). */
  readonly at: string;
  /** Started, unfinished sends, oldest first. */
  readonly sends: BulletinStatus[];
  readonly scheduled: ScheduledSend[];
  /** When no send is unfinished: the latest bulletin (null when there is none, or when `sends` is not empty). */
  readonly latest: BulletinStatus | null;
}

/** One bulletin, in any state (default: the latest). */
export async function bulletinStatus(app: App, bulletinId?: number): Promise<BulletinStatus & { readonly at: string }> {
  const bulletin = bulletinId === undefined ? await latestBulletin(app.db) : await findBulletin(app.db, bulletinId);
  if (!bulletin) {
    throw new BulletinError('NOT_FOUND', bulletinId === undefined ? 'No bulletin has been sent yet.' : `There is no bulletin ${bulletinId}.`);
  }
  const at = app.clock.now().toISOString();
  return { at, ...(await statusOf(app, bulletin)) };
}

/** Every started, unfinished send, and the scheduled ones; when none is unfinished, the latest bulletin. */
export async function liveStatus(app: App): Promise<LiveStatus> {
  const at = app.clock.now().toISOString();
  const sends: BulletinStatus[] = [];
  for (const id of await selectUnfinishedBulletinIds(app.db, null)) {
    const bulletin = await findBulletin(app.db, id);
    if (bulletin) sends.push(await statusOf(app, bulletin));
  }
  const scheduled = await scheduledSends(app);
  const latest = sends.length > 0 ? null : await latestBulletin(app.db);
  return { at, sends, scheduled, latest: latest ? await statusOf(app, latest) : null };
}

async function statusOf(app: App, bulletin: StoredBulletin): Promise<BulletinStatus> {
  const list = await listOf(app, bulletin);
  const counts = await countByState(app.db, bulletin.id);
  const recent = await countSentSince(app.db, bulletin.id, RATE_WINDOW_SECONDS);
  // In a send's first minute the rate is over the time it has been sending (at least a second).
  const window = Math.min(RATE_WINDOW_SECONDS, Math.max(1, recent.sinceFirstSentSeconds ?? RATE_WINDOW_SECONDS));
  const rate = recent.sent / window;
  const open = openDeliveries(counts);
  const due = await nextDueAt(app.db, bulletin.id);
  const control = controlStatus(bulletin, (await selectSendControl(app.db, [bulletin.id]))[0]);
  const processes = (await selectSendProcesses(app.db, [bulletin.id])).map((row): SendProcessStatus => ({
    host: row.host,
    pid: row.pid,
    command: row.command,
    startedAt: row.startedAt.toISOString(),
    heartbeatAt: row.heartbeatAt.toISOString(),
    secondsSinceHeartbeat: Math.round(row.silentSeconds * 10) / 10,
    silent: row.silentSeconds > SILENT_AFTER_SECONDS,
    pace: row.pace,
    paceNote: row.paceNote,
    sent: row.sent,
    paused: row.paused,
  }));
  const paces = [control.rate?.perSecond ?? null, ...processes.filter((each) => !each.silent).map((each) => each.pace)].filter(
    (each): each is number => each !== null && each > 0,
  );
  const pace = paces.length > 0 ? Math.min(...paces) : null;
  const eta = estimate(open, control, rate, pace, recent.sinceFirstSentSeconds);
  return {
    bulletinId: bulletin.id,
    list: list.slug,
    subject: bulletin.subject,
    createdAt: bulletin.createdAt.toISOString(),
    finishedAt: bulletin.finishedAt?.toISOString() ?? null,
    done: bulletin.finishedAt !== null || bulletin.state === 'unscheduled' || (bulletin.state === 'cancelled' && open === 0),
    counts,
    total: Object.values(counts).reduce((sum, count) => sum + count, 0),
    open,
    rate,
    etaSeconds: eta.seconds,
    etaBasis: eta.basis,
    nextAttemptAt: due?.toISOString() ?? null,
    commonReplies: await topReplies(app.db, bulletin.id, ['deferred', 'failed', 'uncertain'], 5),
    state: bulletin.state,
    scheduledFor: bulletin.scheduledFor?.toISOString() ?? null,
    audience: { filter: bulletin.audienceFilter, segment: bulletin.audienceSegment },
    complaints: await countComplaints(app.db, bulletin.id),
    control,
    pace,
    processes,
  };
}

function controlStatus(bulletin: StoredBulletin, row: Awaited<ReturnType<typeof selectSendControl>>[number] | undefined): SendControlStatus {
  return {
    paused: row?.pausedAt ? { since: row.pausedAt.toISOString(), by: row.pausedBy } : null,
    rate: row?.rate == null ? null : { perSecond: row.rate, by: row.rateSetBy, at: row.rateSetAt?.toISOString() ?? null },
    cancelled: bulletin.state === 'cancelled' && bulletin.cancelledAt ? { at: bulletin.cancelledAt.toISOString(), by: bulletin.cancelledBy } : null,
  };
}

/**
 * Seconds until `open` deliveries are done: none while paused or cancelled; by the rate over the
 * last minute once a minute of sending has passed, before that by the pace.
 */
function estimate(
  open: number,
  control: SendControlStatus,
  rate: number,
  pace: number | null,
  sinceFirstSentSeconds: number | null,
): { seconds: number | null; basis: BulletinStatus['etaBasis'] } {
  if (open === 0) return { seconds: 0, basis: null };
  if (control.paused !== null || control.cancelled !== null) return { seconds: null, basis: null };
  const aMinuteIn = sinceFirstSentSeconds !== null && sinceFirstSentSeconds >= RATE_WINDOW_SECONDS;
  if (aMinuteIn && rate > 0) return { seconds: Math.ceil(open / rate), basis: 'last minute' };
  if (!aMinuteIn && pace !== null) return { seconds: Math.ceil(open / pace), basis: 'pace' };
  // No pace known (no process beats): the last minute's rate, even if the minute is not full.
  if (rate > 0) return { seconds: Math.ceil(open / rate), basis: 'last minute' };
  return { seconds: null, basis: null };
}
