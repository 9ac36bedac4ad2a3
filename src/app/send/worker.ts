// Use case `worker`: starts the scheduled sends that are due, joins every unfinished send (of one
// list, or all), one after another, and looks again every few seconds (sooner when a scheduled send
// is due sooner) until told to stop (or once, with `once`).
import { DatabaseOutage } from '../../send/database-outage.js';
import { otherUnpausedSendExists, selectUnfinishedBulletinIds } from '../../store/bulletins.js';
import type { App } from '../context.js';
import { requireList } from '../lists.js';
import { msUntilNextScheduled, startDueSends } from '../schedule.js';
import type { StoredBulletin } from '../../store/bulletins.js';

/** Unfinished bulletins (of one list, or of all), oldest first: the work `bulletin worker` joins. */
export async function unfinishedBulletins(app: App, listSlug?: string, outage = new DatabaseOutage()): Promise<number[]> {
  return outage.ride(async () => {
    const list = listSlug === undefined ? null : await requireList(app.db, listSlug);
    return selectUnfinishedBulletinIds(app.db, list?.id ?? null);
  });
}

/** Whether a send other than `bulletinId` (of the worker's list, or any) is unfinished and not paused. */
export async function otherUnpausedSend(app: App, bulletinId: number, listSlug?: string): Promise<boolean> {
  const list = listSlug === undefined ? null : await requireList(app.db, listSlug);
  return otherUnpausedSendExists(app.db, list?.id ?? null, bulletinId);
}

/** How long an idle worker waits before it looks for unfinished sends again. */
export const WORKER_LOOK_AGAIN_MS = 5_000;

export interface WorkerLoop {
  readonly listSlug?: string;
  /** Go through the unfinished sends once, then end. */
  readonly once: boolean;
  readonly outage: DatabaseOutage;
  /** Works on one bulletin until it is done or waits; false ends the worker (the send ended badly). */
  readonly work: (bulletinId: number) => Promise<boolean>;
  /** Said for each scheduled send this worker started. */
  readonly onStarted?: (bulletin: StoredBulletin) => void;
  /** Said when there is nothing to do, once per idle spell (not again each time it looks). */
  readonly onIdle?: () => void;
  /** Waits `ms` before looking again; true when interrupted (Ctrl-C), which ends the worker. */
  readonly pause: (ms: number) => Promise<boolean>;
}

export type WorkerEnd = 'done' | 'stopped' | 'interrupted';

/** `bulletin worker`: joins every unfinished send, one after another, and keeps looking for more. */
export async function runWorker(app: App, loop: WorkerLoop): Promise<WorkerEnd> {
  let idle = false;
  for (;;) {
    for (const started of await startDueSends(app, loop.listSlug, loop.outage)) loop.onStarted?.(started);
    const ids = await unfinishedBulletins(app, loop.listSlug, loop.outage);
    for (const id of ids) {
      if (!(await loop.work(id))) return 'stopped';
    }
    if (loop.once) return 'done';
    if (ids.length === 0 && !idle) loop.onIdle?.();
    idle = ids.length === 0;
    // A scheduled send due sooner than that is started on time.
    const untilScheduled = await msUntilNextScheduled(app, loop.listSlug, loop.outage);
    if (await loop.pause(Math.max(50, Math.min(WORKER_LOOK_AGAIN_MS, untilScheduled ?? WORKER_LOOK_AGAIN_MS)))) return 'interrupted';
  }
}
