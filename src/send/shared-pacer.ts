// The pace of one send shared by every worker on it: a worker reserves a run of slots (100 ms worth)
// from the database, each slot one message, slots `1/rate` apart on one timeline for all workers,
// and sends each message no earlier than its slot. So N processes together keep the configured
// rate, where a limit per process would let them send N times too fast.
//
// A slot more than LATE_TOLERANCE_MS in the past (the worker was busy or waiting) is given up, not
// used late: otherwise a worker catching up would crowd its old slots into the present, on top of
// the others' current ones. So one second holds at most rate × (1 s + 50 ms) + 1 messages.
import type { Pacer } from './dispatcher.js';
import { monotonicClock } from './throttle.js';

export interface SlotRun {
  /** Database time (epoch ms) of the first reserved slot. */
  readonly firstSlotMs: number;
  /** Database time (epoch ms) at the reservation: turns slot times into local ones. */
  readonly databaseNowMs: number;
}

/** Reserves `count` slots `intervalMs` apart on the send's shared timeline (store/send-pacing.ts). */
export type ReserveSlots = (count: number, intervalMs: number) => Promise<SlotRun>;

export interface SharedPacerOptions {
  /** Messages per second. */
  readonly rate: number;
  /** Milliseconds, monotonic. */
  readonly now?: () => number;
}

const RUN_MS = 100;
const MAX_RUN = 2_000;
export const LATE_TOLERANCE_MS = 50;

interface Run {
  /** Local time (now()) of slot 0. */
  readonly start: number;
  readonly intervalMs: number;
  readonly count: number;
  next: number;
}

export class SharedPacer implements Pacer {
  private intervalMs: number;
  private run: Run | null = null;
  private turn: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(
    private readonly reserve: ReserveSlots,
    options: SharedPacerOptions,
  ) {
    this.intervalMs = 1000 / options.rate;
    this.now = options.now ?? (() => performance.now());
  }

  setRate(perSecond: number): void {
    this.intervalMs = 1000 / perSecond;
    this.run = null; // the rest of the old run is given up: the new pace starts with the next message
  }

  /** Resolves at this caller's slot; callers are served in call order. Rejects if `signal` aborts. */
  acquire(signal?: AbortSignal): Promise<void> {
    const mine = this.turn.then(() => this.take(signal));
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  private async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      let run = this.run;
      if (run === null || run.next >= run.count) {
        const count = Math.max(1, Math.min(MAX_RUN, Math.ceil(RUN_MS / this.intervalMs)));
        const intervalMs = this.intervalMs;
        const reserved = await this.reserve(count, intervalMs);
        run = { start: this.now() + (reserved.firstSlotMs - reserved.databaseNowMs), intervalMs, count, next: 0 };
        this.run = run;
      }
      const now = this.now();
      const slot = run.start + run.next * run.intervalMs;
      if (slot < now - LATE_TOLERANCE_MS) {
        // Give up the slots that went by unused, and look at the first one still usable.
        run.next += Math.ceil((now - LATE_TOLERANCE_MS - slot) / run.intervalMs);
        continue;
      }
      run.next++;
      if (slot > now) await monotonicClock.sleep(slot - now, signal);
      return;
    }
  }
}
