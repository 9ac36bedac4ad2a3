// The sending rate: a GCRA (virtual scheduling) limiter. With rate r and burst b, no window of one
// second ever holds more than r + b acquisitions. Waiting is a timer, never a spin; the clock is
// injectable for tests; the rate can change while a send runs (adaptive throttling).
import { BulletinError } from '../domain/errors.js';

export interface ThrottleClock {
  /** Milliseconds, monotonic. */
  now(): number;
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

/** Parses `50/s`, `3000/m`, `100000/h` or a plain number (per second) into messages per second. */
export function parseRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|second|m|min|minute|h|hour))?\s*$/i.exec(text);
  const per = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600 }[(match?.[2] ?? 's').toLowerCase()];
  const rate = match && per ? Number(match[1]) / per : NaN;
  if (!Number.isFinite(rate) || rate <= 0) {
    throw new BulletinError('BAD_INPUT', `Rate "${text}" is not valid: use messages per second, minute or hour, e.g. 50/s, 3000/m, 100000/h.`);
  }
  return rate;
}

export class Throttle {
  private intervalMs: number;
  private theoreticalArrival = -Infinity;
  private readonly clock: ThrottleClock;
  /** Messages that may go at once, ahead of the steady pace. */
  readonly burst: number;

  constructor(options: { rate: number; burst?: number; clock?: ThrottleClock }) {
    this.intervalMs = 1000 / options.rate;
    // Default burst: 10 ms worth of messages (at least one), so high rates need no sub-millisecond timers.
    this.burst = options.burst ?? Math.max(1, Math.ceil(options.rate / 100));
    this.clock = options.clock ?? monotonicClock;
  }

  get rate(): number {
    return 1000 / this.intervalMs;
  }

  /** Changes the pace from the next acquisition on. */
  setRate(rate: number): void {
    if (!(rate > 0)) throw new RangeError('rate must be positive');
    this.intervalMs = 1000 / rate;
  }

  /**
   * Resolves when one more message may go. The slot is reserved at the call, so concurrent callers
   * are served in call order. Rejects with the signal's reason when aborted while waiting.
   */
  async acquire(signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    const arrival = Math.max(this.theoreticalArrival, now);
    const wait = arrival - now - (this.burst - 1) * this.intervalMs;
    this.theoreticalArrival = arrival + this.intervalMs;
    if (wait > 0) await this.clock.sleep(wait, signal);
  }
}
