// The adaptive pace: slows the send down by itself when the relay pushes back and speeds it up
// again while replies are good (AIMD), never above the configured rate nor below the floor.
// Pure: it sees outcomes and a clock, and says what the rate should be; the dispatcher applies it.
//
// Why not react to every deferral (Postfix's scheduler notes: naive ±1 feedback against a server
// that answers 421 and disconnects deferred half the mail): a random 4xx is about one message. The
// pace is cut only when pushback is a real share of recent replies (≥ 20 % of the last 2 s, at
// least 3 of them), then by 30 % of what actually went out (not of a configured rate far above
// it), at most once a second, so one burst of refusals counts once. It climbs back by a tenth of
// the rate it had before the cut for every clean second, so it returns to the edge within seconds
// and hovers just under what the relay accepts.
import type { SendOutcome } from './transport.js';

export interface AdaptivePaceOptions {
  /** The configured rate (messages per second): never exceeded. */
  readonly maxRate: number;
  /** Never slower than this (messages per second). */
  readonly floorRate: number;
  /** Milliseconds, monotonic. */
  readonly now?: () => number;
}

const WINDOW_MS = 2_000;
const BUCKET_MS = 100;
const PUSHBACK_SHARE = 0.2;
const MIN_PUSHBACKS = 3;
const DECREASE = 0.7;
const COOLDOWN_MS = 1_000;
const STEP_SHARE = 0.1;

interface Bucket {
  start: number;
  replies: number;
  pushbacks: number;
}

export class AdaptivePace {
  /** Messages per second allowed now. */
  rate: number;
  /** Why the rate is below the configured one, for the progress line; null at full speed. */
  note: string | null = null;
  private readonly maxRate: number;
  private readonly floorRate: number;
  private readonly now: () => number;
  private buckets: Bucket[] = [];
  private lastChange = -Infinity;
  private step = 1;

  constructor(options: AdaptivePaceOptions) {
    if (!(options.floorRate > 0) || !(options.maxRate > 0)) throw new RangeError('rates must be positive');
    this.maxRate = options.maxRate;
    this.floorRate = Math.min(options.floorRate, options.maxRate);
    this.rate = this.maxRate;
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes one outcome into account; returns true when the rate changed. */
  observe(outcome: SendOutcome): boolean {
    const now = this.now();
    const bucket = this.bucketAt(now);
    bucket.replies++;
    const pushback = outcome.kind === 'deferred' && outcome.pushback === 'rate';
    if (pushback) bucket.pushbacks++;
    const { replies, pushbacks, spanMs } = this.totals(now);
    if (now - this.lastChange < COOLDOWN_MS) return false;
    if (pushbacks >= MIN_PUSHBACKS && pushbacks >= PUSHBACK_SHARE * replies) {
      const measured = (replies * 1000) / Math.max(spanMs, BUCKET_MS);
      const next = Math.max(this.floorRate, Math.min(this.rate, measured) * DECREASE);
      this.step = Math.max(this.floorRate, Math.min(this.rate, measured) * STEP_SHARE);
      this.lastChange = now;
      if (next >= this.rate) return false;
      this.rate = next;
      const reply = outcome.kind === 'deferred' ? `: ${outcome.reply.slice(0, 60)}` : '';
      this.note = `slowed to ${formatRate(next)}: the relay pushed back on ${pushbacks} of ${replies} messages${reply}`;
      return true;
    }
    if (this.rate < this.maxRate && pushbacks === 0 && replies > 0) {
      this.rate = Math.min(this.maxRate, this.rate + this.step);
      this.lastChange = now;
      this.note = this.rate < this.maxRate ? `recovering: ${formatRate(this.rate)} while replies are good` : null;
      return true;
    }
    return false;
  }

  private bucketAt(now: number): Bucket {
    const start = now - (now % BUCKET_MS);
    const last = this.buckets.at(-1);
    if (last && last.start === start) return last;
    const bucket = { start, replies: 0, pushbacks: 0 };
    this.buckets.push(bucket);
    while (this.buckets.length > 0 && (this.buckets[0] as Bucket).start <= now - WINDOW_MS) this.buckets.shift();
    return bucket;
  }

  private totals(now: number): { replies: number; pushbacks: number; spanMs: number } {
    let replies = 0;
    let pushbacks = 0;
    for (const bucket of this.buckets) {
      replies += bucket.replies;
      pushbacks += bucket.pushbacks;
    }
    const first = this.buckets[0];
    return { replies, pushbacks, spanMs: first ? now - first.start : 0 };
  }
}

export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}
