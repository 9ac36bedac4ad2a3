// Use cases `pause`, `unpause`, `pace` and `cancel`: the operator's hands on a send, from any
// machine sharing the database. Each writes the send's control (one statement that checks the
// bulletin's state); every process working on the send hears it with its next heartbeat (BEAT_MS).
import { hostname, userInfo } from 'node:os';
import { OPEN_STATES } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { parseRate } from '../../send/throttle.js';
import { cancelBulletin, type StoredBulletin } from '../../store/bulletins.js';
import { cancelUnsentDeliveries, countByState } from '../../store/deliveries.js';
import { pauseSend as pauseRow, setSendRate, unpauseSend as unpauseRow } from '../../store/send-pacing.js';
import { selectSendProcesses } from '../../store/send-processes.js';
import type { App } from '../context.js';
import { unscheduleSend } from '../schedule.js';
import { requireBulletin } from './bulletins.js';
import { SILENT_AFTER_SECONDS } from './status.js';

/** Who runs this command, as the processes and `status` show it: `user@host`. */
export function currentActor(): string {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid (a container): the environment's name will do
  }
  return `${user}@${hostname()}`;
}

/** Processes working on the send now: those not silent (their heartbeat within SILENT_AFTER_SECONDS, as `status` judges). */
async function liveProcesses(app: App, bulletinId: number): Promise<number> {
  return (await selectSendProcesses(app.db, [bulletinId], SILENT_AFTER_SECONDS)).length;
}

/** The send must still be steerable: scheduled, or started and not finished. */
async function requireSteerable(app: App, bulletinId: number, verb: string): Promise<StoredBulletin> {
  const bulletin = await requireBulletin(app, bulletinId, ' (see `bulletin status`)');
  if (bulletin.state === 'cancelled') {
    throw new BulletinError(
      'BAD_INPUT',
      `Bulletin ${bulletinId} was cancelled${bulletin.cancelledBy ? ` by ${bulletin.cancelledBy}` : ''}; there is nothing to ${verb}.`,
    );
  }
  if (bulletin.state === 'unscheduled')
    throw new BulletinError('BAD_INPUT', `Bulletin ${bulletinId} was unscheduled and never sent; there is nothing to ${verb}.`);
  if (bulletin.finishedAt !== null) {
    throw new BulletinError('BAD_INPUT', `Bulletin ${bulletinId} is finished (every recipient has an outcome); there is nothing to ${verb}.`);
  }
  return bulletin;
}

export interface PauseResult {
  readonly bulletinId: number;
  readonly pausedAt: string;
  readonly pausedBy: string;
  /** It was paused already (by `pausedBy`, at `pausedAt`): nothing changed. */
  readonly already: boolean;
  /** Processes working on it now, which stop claiming within a second. */
  readonly processes: number;
}

/** `bulletin pause <id>`: every process on the send stops claiming; messages on the wire finish. */
export async function pauseSend(app: App, bulletinId: number, by = currentActor()): Promise<PauseResult> {
  await requireSteerable(app, bulletinId, 'pause');
  const row = await pauseRow(app.db, bulletinId, by);
  return { bulletinId, pausedAt: row.pausedAt.toISOString(), pausedBy: row.pausedBy, already: row.already, processes: await liveProcesses(app, bulletinId) };
}

export interface UnpauseResult {
  readonly bulletinId: number;
  /** The pause lifted (null: it was not paused). */
  readonly was: { readonly pausedAt: string; readonly pausedBy: string } | null;
  readonly processes: number;
}

/** `bulletin unpause <id>`: the processes on the send carry on at once. */
export async function unpauseSend(app: App, bulletinId: number): Promise<UnpauseResult> {
  await requireBulletin(app, bulletinId, ' (see `bulletin status`)');
  const was = await unpauseRow(app.db, bulletinId);
  return {
    bulletinId,
    was: was === null ? null : { pausedAt: was.pausedAt.toISOString(), pausedBy: was.pausedBy },
    processes: await liveProcesses(app, bulletinId),
  };
}

export interface PaceResult {
  readonly bulletinId: number;
  readonly perSecond: number;
  readonly by: string;
  readonly processes: number;
}

/** `bulletin pace <id> <rate>`: the send's rate for all its processes, kept by any later resume. */
export async function paceSend(app: App, bulletinId: number, rate: string, by = currentActor()): Promise<PaceResult> {
  const perSecond = parseRate(rate);
  await requireSteerable(app, bulletinId, 'pace');
  await setSendRate(app.db, bulletinId, perSecond, by);
  return { bulletinId, perSecond, by, processes: await liveProcesses(app, bulletinId) };
}

export interface CancelPlan {
  readonly bulletin: StoredBulletin;
  /** Deliveries still to go (queued, sending, deferred, uncertain): what a cancel stops. */
  readonly toGo: number;
  readonly sent: number;
  readonly processes: number;
}

/** What a cancel would stop, for its confirmation. */
export async function planCancel(app: App, bulletinId: number): Promise<CancelPlan> {
  const bulletin = await requireSteerable(app, bulletinId, 'cancel');
  const counts = await countByState(app.db, bulletinId);
  return { bulletin, toGo: OPEN_STATES.reduce((sum, state) => sum + counts[state], 0), sent: counts.sent, processes: await liveProcesses(app, bulletinId) };
}

export interface CancelResult {
  readonly bulletinId: number;
  /** A scheduled send was unscheduled instead (it had no deliveries yet). */
  readonly unscheduled: boolean;
  /** Deliveries that became cancelled now; those in flight follow as their senders give them back. */
  readonly cancelled: number;
  readonly sent: number;
  readonly by: string;
  readonly processes: number;
}

/**
 * `bulletin cancel <id>`: a scheduled send is unscheduled; a started one becomes cancelled, and so
 * does every delivery not yet sent, in one transaction. Nothing sent changes; the processes on it
 * stop within a second; `bulletin retry <id> --state cancelled` can still send to them.
 */
export async function cancelSend(app: App, bulletinId: number, by = currentActor()): Promise<CancelResult> {
  const bulletin = await requireSteerable(app, bulletinId, 'cancel');
  if (bulletin.state === 'scheduled') {
    await unscheduleSend(app, bulletinId);
    return { bulletinId, unscheduled: true, cancelled: 0, sent: 0, by, processes: 0 };
  }
  const cancelled = await app.db.transaction(async (tx) => {
    const changed = await cancelBulletin(tx, bulletinId, by);
    if (changed === null) return null;
    return cancelUnsentDeliveries(tx, bulletinId, `cancelled by ${by} at ${app.clock.now().toISOString()} (bulletin cancel)`);
  });
  if (cancelled === null) return cancelSend(app, bulletinId, by); // it changed meanwhile: say what it is now
  const counts = await countByState(app.db, bulletinId);
  return { bulletinId, unscheduled: false, cancelled, sent: counts.sent, by, processes: await liveProcesses(app, bulletinId) };
}
