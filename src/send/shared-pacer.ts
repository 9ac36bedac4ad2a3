// The pace of one send shared by every worker on it: a worker reserves a run of slots (100 ms worth)
// from the database, each slot one message, slots `1/rate` apart on one timeline for all workers,
// and sends each message no earlier than its slot. So N processes together keep the configured
// rate, where a limit per process would let them send N times too fast.
//
// A slot more than LATE_TOLERANCE_MS in the past (the worker was busy or waiting) is given up, not
// used late: otherwise a worker catching up would crowd its old slots into the present, on top of
// the others' current ones. And slots are 2 % wider apart than the rate asks (PACE_MARGIN). So one
// second holds at most rate × (1 s + 20 ms) / 1.02 + 1 messages as they leave, which leaves room for
// the jitter between our sending and the relay's receiving: at 20/s a second at the relay holds 22
// only if that jitter squeezes two messages 50 ms closer together than they left.
//
// Slot times are the database's clock; turning them into local times needs the offset between the
// two clocks. A reply that comes back late (a busy event loop, a slow network) must not move this
// worker's slots later, onto the next worker's run: the offset is learnt NTP-style from every
// reservation (the database read its clock somewhere between our request and its reply) and the
// tightest bounds seen are kept, so one slow reply changes nothing.
import type { Pacer } from './dispatcher.js';
import { monotonicClock, type ThrottleClock } from './throttle.js';

export interface SlotRun {
  /** Database time (epoch ms) of the first reserved slot. */
  readonly firstSlotMs: number;
  /** Database time (epoch ms) at the reservation: turns slot times into local ones. */
  readonly databaseNowMs: number;
  /** The slots' spacing, when the store widened it (the send's rate set by `bulletin pace`). */
  readonly intervalMs?: number;
}

/** Reserves `count` slots `intervalMs` apart on the send's shared timeline (store/send-pacing.ts). */
export type ReserveSlots = (count: number, intervalMs: number) => Promise<SlotRun>;

export interface SharedPacerOptions {
  /** Messages per second. */
  readonly rate: number;
  /** Milliseconds, monotonic, and the waits between slots (tests pass a fake one). */
  readonly clock?: ThrottleClock;
}

const RUN_MS = 100;
const MAX_RUN = 2_000;
export const LATE_TOLERANCE_MS = 20;
/** Slots are this much wider apart than the rate asks, so a relay's second never holds more than the rate. */
export const PACE_MARGIN = 1.02;

interface Run {
  /** Local time (now()) of slot 0. */
  readonly start: number;
  readonly intervalMs: number;
  readonly count: number;
  next: number;
}

/**
 * The offset (database epoch ms − local monotonic ms) between the two clocks. Each reservation
 * bounds it: the database read its clock after we asked and before we heard back. The bounds of
 * all samples are intersected (the quickest round trip decides); if they ever disagree (a clock
 * was stepped), the latest sample starts over.
 */
export class ClockOffset {
  private low = -Infinity;
  private high = Infinity;

  /** `askedAt` and `answeredAt` are local times around one reading `databaseMs`; returns the estimate. */
  sample(databaseMs: number, askedAt: number, answeredAt: number): number {
    const low = databaseMs - answeredAt;
    const high = databaseMs - askedAt;
    if (low > this.high || high < this.low) {
      this.low = low;
      this.high = high;
    } else {
      this.low = Math.max(this.low, low);
      this.high = Math.min(this.high, high);
    }
    return (this.low + this.high) / 2;
  }
}

export class SharedPacer implements Pacer {
  private intervalMs: number;
  private run: Run | null = null;
  private turn: Promise<void> = Promise.resolve();
  private readonly clock: ThrottleClock;
  private readonly offset = new ClockOffset();

  constructor(
    private readonly reserve: ReserveSlots,
    options: SharedPacerOptions,
  ) {
    this.intervalMs = (1000 / options.rate) * PACE_MARGIN;
    this.clock = options.clock ?? monotonicClock;
  }

  setRate(perSecond: number): void {
    const intervalMs = (1000 / perSecond) * PACE_MARGIN;
    const slower = intervalMs > this.intervalMs;
    this.intervalMs = intervalMs;
    // Slower: the rest of the old run is given up, the new pace starts with the next message. Faster:
    // the run already reserved (at most 100 ms of slots) is used first; giving it up would waste
    // those slots (the shared timeline has moved past them), and the adaptive pace speeds up in
    // small steps several times a second.
    if (slower) this.run = null;
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
        const askedAt = this.clock.now();
        const reserved = await this.reserve(count, intervalMs);
        const offset = this.offset.sample(reserved.databaseNowMs, askedAt, this.clock.now());
        run = { start: reserved.firstSlotMs - offset, intervalMs: reserved.intervalMs ?? intervalMs, count, next: 0 };
        this.run = run;
      }
      const now = this.clock.now();
      const slot = run.start + run.next * run.intervalMs;
      if (slot < now - LATE_TOLERANCE_MS) {
        // Give up the slots that went by unused, and look at the first one still usable.
        run.next += Math.ceil((now - LATE_TOLERANCE_MS - slot) / run.intervalMs);
        continue;
      }
      run.next++;
      if (slot > now) await this.clock.sleep(slot - now, signal);
      return;
    }
  }
}
