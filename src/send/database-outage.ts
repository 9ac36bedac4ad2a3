// Riding out a database that went away, for every step of a send: a step that fails with a
// connection error (see isConnectionError) is tried again after a pause (0.5 s, doubling to 15 s)
// until the database answers; any other error is thrown. One outage per send, so the preparation,
// the dispatcher and the summary all say the same thing about it. Its listener hears when the
// database went away and when it is back.
import { realClock } from '../domain/clock.js';
import { isConnectionError, oneLine } from '../store/database.js';
import type { SendEvents } from './send-events.js';

const FIRST_WAIT_MS = 500;
const LONGEST_WAIT_MS = 15_000;

/** The innermost cause: "connect ECONNREFUSED …" rather than the sentence wrapping it. */
function rootCause(error: unknown): unknown {
  let inner = error;
  for (let depth = 0; depth < 5 && inner instanceof Error && inner.cause !== undefined; depth++) inner = inner.cause;
  return inner;
}

export interface RideOptions {
  /** Stops waiting (the step's last error is thrown) when this aborts. */
  readonly signal?: AbortSignal;
}

export class DatabaseOutage {
  /** Since when the database has been unreachable; null while it answers. */
  downSince: Date | null = null;
  /** The last connection error, as one line. */
  lastError = '';
  /** When the next try is due, while waiting for one. */
  retryAt: Date | null = null;

  /**
   * `onWait` is told before each pause (the CLI prints the note while no progress display shows
   * it); `sleep` is the real clock's by default.
   */
  constructor(
    private readonly options: {
      readonly onWait?: (outage: DatabaseOutage) => void;
      readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
      /** Told the first time the database is seen unreachable, and when it answers again. */
      readonly events?: Pick<SendEvents, 'databaseDown' | 'databaseBack'>;
    } = {},
  ) {}

  /** Records a connection error (the database is down from now on); returns whether it was one. */
  notice(error: unknown): boolean {
    if (!isConnectionError(error)) return false;
    const first = this.downSince === null;
    this.downSince ??= new Date();
    this.lastError = oneLine(rootCause(error));
    if (first) this.options.events?.databaseDown?.({ error: this.lastError, since: this.downSince });
    return true;
  }

  /** The database answered again. */
  recovered(): void {
    const since = this.downSince;
    this.downSince = null;
    this.lastError = '';
    this.retryAt = null;
    if (since !== null) this.options.events?.databaseBack?.({ downSeconds: (Date.now() - since.getTime()) / 1000 });
  }

  /**
   * Runs `step` until it succeeds, waiting out connection errors; every step given here must be
   * safe to repeat (a statement that ran but whose answer was lost runs again).
   */
  async ride<T>(step: () => Promise<T>, options: RideOptions = {}): Promise<T> {
    for (let waitMs = FIRST_WAIT_MS; ; waitMs = Math.min(LONGEST_WAIT_MS, waitMs * 2)) {
      try {
        const result = await step();
        if (this.downSince !== null) this.recovered();
        return result;
      } catch (error) {
        if (!this.notice(error) || options.signal?.aborted) throw error;
        this.retryAt = new Date(Date.now() + waitMs);
        this.options.onWait?.(this);
        await (this.options.sleep ?? realClock.sleep)(waitMs, options.signal);
        this.retryAt = null;
        if (options.signal?.aborted) throw error; // stopped while waiting
      }
    }
  }

  /** `database unreachable since 10:04:05 (connect ECONNREFUSED …); retrying in 2 s`, or null. */
  note(paused = 'sending paused'): string | null {
    if (this.downSince === null) return null;
    const retry = this.retryAt === null ? '' : `, retrying in ${Math.max(0, Math.ceil((this.retryAt.getTime() - Date.now()) / 1000))} s`;
    return `database unreachable since ${this.downSince.toISOString().slice(11, 19)} (${this.lastError.slice(0, 60)}); ${paused}${retry}`;
  }
}
