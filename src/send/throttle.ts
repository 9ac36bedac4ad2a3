// The sending rate: a GCRA (virtual scheduling) limiter. With rate r per second and burst b, no
// window of one second ever holds r + b acquisitions or more, even when timers fire late. Waiting is
// a timer, never a spin; the clock is injectable for tests; the rate can change while a send runs.
import { BulletinError } from '../domain/errors.js';

export interface ThrottleClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason if it is aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const monotonicClock: ThrottleClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

const PER_SECONDS: Readonly<Record<string, number>> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600 };

/**
 * Parses `50/s`, `3000/m`, `100000/h` (also `/sec`, `/min`, `/hour`, …) or a plain number (per
 * second) into messages per second. Throws BulletinError('BAD_INPUT') for anything else or for zero.
 */
export function parseRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([a-z]+))?\s*$/i.exec(text);
  const per = PER_SECONDS[(match?.[2] ?? 's').toLowerCase()];
  const rate = match && per ? Number(match[1]) / per : NaN;
  if (!Number.isFinite(rate) || rate <= 0) {
    throw new BulletinError('BAD_INPUT', `Rate "${text}" is not valid: use messages per second, minute or hour, e.g. 50/s, 3000/m, 100000/h.`);
  }
  return rate;
}

export interface ThrottleOptions {
  /** Messages per second (parseRate's result). */
  readonly rate: number;
  /** Messages that may go at once ahead of the steady pace; default 10 ms worth, at least 1. */
  readonly burst?: number;
  readonly clock?: ThrottleClock;
}

/**
 * `acquire()` resolves when one more message may go: the GCRA's virtual scheduling, with T = 1/r,
 * a tolerance τ = (b − 1)·T and a theoretical arrival time TAT. A message may go at time t when
 * t ≥ TAT − τ, and then TAT becomes max(TAT, t) + T. So b messages may go at once after a pause,
 * then one every T. TAT moves on from the time a message actually went, not from when it was due,
 * so a timer that fires late (a busy event loop) never lets the next ones catch up: any two
 * messages k and k + m go at least m·T − τ apart, and a one-second window holds fewer than r + b.
 */
export class Throttle {
  private intervalMs: number;
  private theoreticalArrival = -Infinity;
  private readonly clock: ThrottleClock;
  /** Callers waiting their turn, first come first served. */
  private readonly waiting: Waiter[] = [];
  private pumping = false;
  private stopSleeping: AbortController | null = null;
  readonly burst: number;

  constructor(options: ThrottleOptions) {
    this.intervalMs = intervalOf(options.rate);
    // Default burst: 10 ms worth of messages (at least one), so high rates need no sub-millisecond timers.
    this.burst = options.burst ?? Math.max(1, Math.ceil(options.rate / 100));
    if (!Number.isInteger(this.burst) || this.burst < 1) throw new RangeError(`burst must be a whole number ≥ 1, not ${this.burst}`);
    this.clock = options.clock ?? monotonicClock;
  }

  /** Messages per second now. */
  get rate(): number {
    return 1000 / this.intervalMs;
  }

  /**
   * Changes the pace from the next message on (the burst stays the same number of messages).
   * Windows wholly after the change hold fewer than the new r + b; a window spanning it, fewer
   * than the larger rate's.
   */
  setRate(rate: number): void {
    this.intervalMs = intervalOf(rate);
  }

  /**
   * Resolves when one more message may go; callers are served in call order. Rejects with the
   * signal's reason if it is aborted before or while waiting; a caller that gives up uses no slot.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiting.length === 0 && !this.pumping && this.tryRelease()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: () => this.abandon(waiter) };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiting.push(waiter);
      void this.pump();
    });
  }

  /** Lets one message go if it may go now, moving TAT on. */
  private tryRelease(): boolean {
    const now = this.clock.now();
    if (now < this.theoreticalArrival - (this.burst - 1) * this.intervalMs) return false;
    this.theoreticalArrival = Math.max(this.theoreticalArrival, now) + this.intervalMs;
    return true;
  }

  private abandon(waiter: Waiter): void {
    const index = this.waiting.indexOf(waiter);
    if (index < 0) return;
    this.waiting.splice(index, 1);
    waiter.reject(waiter.signal?.reason);
    if (this.waiting.length === 0) this.stopSleeping?.abort(); // no timer left behind
  }

  /** Serves the waiting callers in order, sleeping (never spinning) until each may go. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.waiting.length > 0) {
        if (this.tryRelease()) {
          const waiter = this.waiting.shift() as Waiter;
          waiter.signal?.removeEventListener('abort', waiter.onAbort);
          waiter.resolve();
          continue;
        }
        // Whole milliseconds, at least one; a timer that fires early just means another sleep.
        const wait = this.theoreticalArrival - (this.burst - 1) * this.intervalMs - this.clock.now();
        this.stopSleeping = new AbortController();
        await this.clock.sleep(Math.max(1, Math.ceil(wait)), this.stopSleeping.signal).catch(() => undefined);
        this.stopSleeping = null;
      }
    } finally {
      this.pumping = false;
    }
  }
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

function intervalOf(rate: number): number {
  if (!(Number.isFinite(rate) && rate > 0)) throw new RangeError(`rate must be a positive number of messages per second, not ${rate}`);
  return 1000 / rate;
}
