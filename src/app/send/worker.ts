// Use case `worker`: joins every unfinished send (of one list, or all), one after another, and looks
// again every few seconds until told to stop (or once, with `once`).
import { DatabaseOutage } from '../../send/database-outage.js';
import { selectUnfinishedBulletinIds } from '../../store/bulletins.js';
import type { App } from '../context.js';
import { requireList } from '../lists.js';

/** Unfinished bulletins (of one list, or of all), oldest first: the work `bulletin worker` joins. */
export async function unfinishedBulletins(app: App, listSlug?: string, outage = new DatabaseOutage()): Promise<number[]> {
  return outage.ride(async () => {
    const list = listSlug === undefined ? null : await requireList(app.db, listSlug);
    return selectUnfinishedBulletinIds(app.db, list?.id ?? null);
  });
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
  /** Said when there is nothing to do, before the pause. */
  readonly onIdle?: () => void;
  /** Waits `ms` before looking again; true when interrupted (Ctrl-C), which ends the worker. */
  readonly pause: (ms: number) => Promise<boolean>;
}

export type WorkerEnd = 'done' | 'stopped' | 'interrupted';

/** `bulletin worker`: joins every unfinished send, one after another, and keeps looking for more. */
export async function runWorker(app: App, loop: WorkerLoop): Promise<WorkerEnd> {
  for (;;) {
    const ids = await unfinishedBulletins(app, loop.listSlug, loop.outage);
    for (const id of ids) {
      if (!(await loop.work(id))) return 'stopped';
    }
    if (loop.once) return 'done';
    if (ids.length === 0) loop.onIdle?.();
    if (await loop.pause(WORKER_LOOK_AGAIN_MS)) return 'interrupted';
  }
}
