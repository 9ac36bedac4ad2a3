// A second Ctrl-C during a send: outcomes not yet written are flushed if the database answers within
// a second, then the process ends; whatever was in flight is `uncertain` on resume and re-sent with
// its original Message-ID.
import type { Dispatcher } from '../../send/dispatcher.js';

/** How long a quit at once waits for the outcomes in memory to be written. */
export const QUIT_FLUSH_MS = 1000;

export function quitNow(dispatcher: Dispatcher | undefined, exit: () => void): void {
  void Promise.race([dispatcher?.flush(), new Promise((resolve) => setTimeout(resolve, QUIT_FLUSH_MS))]).finally(exit);
}
