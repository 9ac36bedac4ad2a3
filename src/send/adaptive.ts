// The adaptive pace: slows the send down by itself when the relay pushes back and speeds it up
// again, never above the configured rate nor below the floor. It tells congestion from failures
// that slowing down cannot cure. Pure: it sees outcomes (with when their message left) and a
// clock, and says what the rate should be; the dispatcher applies it.
//
// Three kinds of reply (failure.ts decides which is which):
// - An explicit rate signal (4.7.x, "rate", "too many", a 421 saying so, no session at all) is
//   believed at once: the rate is cut to 85 % of what the relay accepted lately, and that acceptance
//   is remembered as the edge. Lately is from the previous signal to this one (1.5 to 20 s: from one
//   refusal to the next the relay was at its limit), or the last two seconds if more; with no such
//   cycle, the last second or 80 % of its best second of the last ten. Only a signal about a
//   message sent after the last cut counts, and cuts are at least half a second apart: the burst
//   of refusals already on the wire when we slowed down is one signal, not dozens (Postfix's
//   cohort idea).
// - Any other temporary reply (451 4.3.0, 450 4.2.1) may be congestion or may be background noise
//   (a busy cluster answering 4xx to a share of everything whatever we do). The pace finds out:
//   when their share of the last two seconds (at least 40 replies: an early handful is not a share)
//   rises clearly above what is known as background, it slows down by 30 % and watches the share
//   among messages sent after that. If the share fell, it was congestion: the cut stays. If it did
//   not, slowing down does not help: the pace is restored at once and that share becomes the
//   background, until the share rises clearly above it again.
// - Everything else (sent, failed, greylisted) only counts in the shares.
// Recovery needs no clean window: the rate grows with time unless a new signal cuts it. Below the
// edge it climbs back in 5 s whatever the floor; above it, it probes gently (3 % of the edge per
// second, the step growing by half every 5 s without a signal) so it finds a relay that got faster.
import type { SendOutcome } from './transport.js';

export interface AdaptivePaceOptions {
  /** The configured rate (messages per second): never exceeded. */
  readonly maxRate: number;
  /** Never slower than this (messages per second). */
  readonly floorRate: number;
  /** Milliseconds, monotonic. */
  readonly now?: () => number;
}

const BUCKET_MS = 100;
const SHARE_WINDOW_MS = 2_000;
const ACCEPTED_WINDOW_MS = 1_000;
/** Fewer replies than this are not a share. */
const MIN_SAMPLE = 40;
const EXPLICIT_DECREASE = 0.85;
const EDGE_MEMORY = 0.8;
const EXPERIMENT_DECREASE = 0.7;
const MIN_CUT_SPACING_MS = 500;
/** From one rate signal to the next, this long at least and at most, measures what the relay takes. */
const CYCLE_MIN_MS = 1_500;
const CYCLE_MAX_MS = 20_000;
/** Each phase of an experiment watches at least this long (and MIN_SAMPLE replies); at a very low rate, up to the longer one for 10 replies. */
const EXPERIMENT_MIN_MS = 1_500;
/** A share must stay clearly above the background this long before the pace tests it. */
const RAISED_FOR_MS = 1_000;
const EXPERIMENT_MAX_MS = 10_000;
/** An undecided experiment watches up to this long before it settles for "no difference". */
const EXPERIMENT_DECIDE_MS = 4_000;
const RECOVERY_MS = 5_000;
const GROW_EVERY_MS = 200;
const PROBE_SHARE = 0.03;
const PROBE_MIN = 0.5;
const PROBE_GROWTH_EVERY_MS = 5_000;
/** The background share follows a falling share at this fraction per second. */
const BACKGROUND_DECAY = 0.1;

interface Bucket {
  start: number;
  replies: number;
  accepted: number;
  temporary: number;
}

/**
 * Slowing down to see whether temporary failures depend on our pace. Phase `slower`: at 70 % of
 * the rate, the share among messages sent since. If it did not fall, they are background. If it
 * did, phase `again`: back at the old rate, the share once more (a share picked because it was
 * high is often just chance, and looks lower the next time whatever we do); only if it rises again
 * is it congestion, and the slower rate is kept.
 */
interface Experiment {
  phase: 'slower' | 'again';
  /** When the current phase's rate was set: only messages sent since count. */
  since: number;
  readonly rateBefore: number;
  readonly shareBefore: number;
  readonly sampleBefore: number;
  readonly reply: string;
  replies: number;
  temporary: number;
  /** The share at the slower rate, once measured. */
  slowerShare: number;
  slowerSample: number;
}

export type PaceCase = 'full' | 'rate signal' | 'testing' | 'background' | 'congestion' | 'recovering';

export class AdaptivePace {
  /** Messages per second allowed now. */
  rate: number;
  /** What the pace sees, for the progress line; null at full speed with nothing to say. */
  note: string | null = null;
  /** Which case the pace is in (the progress line's note says it in words). */
  state: PaceCase = 'full';
  /** The share of temporary replies known not to depend on our pace. */
  background = 0;
  private maxRate: number;
  private floorRate: number;
  private readonly configuredFloor: number;
  private readonly now: () => number;
  private buckets: Bucket[] = [];
  /** Messages accepted in each whole second (monotonic seconds), the last ten. */
  private seconds: { second: number; accepted: number }[] = [];
  private firstSeen: number | null = null;
  private lastCutAt = -Infinity;
  /** When the last explicit rate signal cut the pace, and how many messages were accepted since. */
  private lastSignalAt = -Infinity;
  private acceptedSinceSignal = 0;
  private lastGrowAt = -Infinity;
  private lastShareCheck = -Infinity;
  /** The rate the relay last accepted before pushing back explicitly (null: none known). */
  private edge: number | null = null;
  /** Messages per second per second while climbing back to the edge. */
  private recoveryPerSecond = 0;
  /** Since when the rate has been at or above the edge without a signal (probing). */
  private probeSince = 0;
  private experiment: Experiment | null = null;
  /** Since when the share of temporary failures has been clearly above the background. */
  private raisedSince: number | null = null;
  private backgroundReply = '';
  private lastTemporaryReply = '';

  constructor(options: AdaptivePaceOptions) {
    if (!(options.floorRate > 0) || !(options.maxRate > 0)) throw new RangeError('rates must be positive');
    this.maxRate = options.maxRate;
    this.configuredFloor = options.floorRate;
    this.floorRate = Math.min(options.floorRate, options.maxRate);
    this.rate = this.maxRate;
    this.now = options.now ?? (() => performance.now());
  }

  /** The rate it never exceeds (messages per second). */
  get ceiling(): number {
    return this.maxRate;
  }

  /**
   * A new ceiling (`bulletin pace`): the pace never goes above it from now on. Going at full speed
   * it takes the new ceiling at once; slowed down by the relay, it stays where it is (or drops to a
   * lower ceiling) and climbs back as it would have.
   */
  setCeiling(perSecond: number): void {
    if (!(perSecond > 0)) throw new RangeError('rates must be positive');
    const atFull = this.rate >= this.maxRate;
    this.maxRate = perSecond;
    this.floorRate = Math.min(this.configuredFloor, perSecond);
    if (atFull || this.rate > perSecond) this.rate = perSecond;
  }

  /**
   * Takes one outcome into account (`sentAt`: when its message left, same clock; default now);
   * returns true when the rate changed.
   */
  observe(outcome: SendOutcome, sentAt?: number): boolean {
    if (outcome.kind === 'unusable') return false;
    const now = this.now();
    const left = sentAt ?? now;
    this.firstSeen ??= now;
    const bucket = this.bucketAt(now);
    bucket.replies++;
    if (outcome.kind === 'sent') {
      bucket.accepted++;
      this.acceptedSinceSignal++;
      const second = Math.floor(now / 1000);
      const last = this.seconds.at(-1);
      if (last?.second === second) last.accepted++;
      else this.seconds.push({ second, accepted: 1 });
    }
    const pushback = outcome.kind === 'deferred' ? outcome.pushback : undefined;
    const temporary = pushback === 'temporary';
    if (temporary) {
      bucket.temporary++;
      this.lastTemporaryReply = outcome.reply;
    }
    const experiment = this.experiment;
    if (experiment && left >= experiment.since) {
      experiment.replies++;
      if (temporary) experiment.temporary++;
    }
    if ((pushback === 'rate' || pushback === 'session') && left >= this.lastCutAt && now - this.lastCutAt >= MIN_CUT_SPACING_MS) {
      return this.cutForSignal(now, outcome.reply);
    }
    return this.update(now);
  }

  /** Lets time act without an outcome (the dispatcher calls it a few times a second); true when the rate changed. */
  update(now = this.now()): boolean {
    if (this.experiment) return this.judgeExperiment(now);
    if (now - this.lastShareCheck >= GROW_EVERY_MS) {
      this.lastShareCheck = now;
      const { replies, temporary } = this.totals(now, SHARE_WINDOW_MS);
      if (replies >= MIN_SAMPLE && now - (this.firstSeen ?? now) >= SHARE_WINDOW_MS) {
        const share = temporary / replies;
        if (share > this.background + margin(this.background, replies)) {
          this.raisedSince ??= now;
          if (now - this.raisedSince >= RAISED_FOR_MS && now - this.lastCutAt >= 1_000) {
            this.raisedSince = null;
            return this.startExperiment(now, share, replies, this.lastTemporaryReply);
          }
        } else {
          this.raisedSince = null;
        }
        if (share < this.background) this.background = Math.max(share, this.background - (this.background - share) * BACKGROUND_DECAY * (GROW_EVERY_MS / 1000));
      }
    }
    return this.grow(now);
  }

  private cutForSignal(now: number, reply: string): boolean {
    this.experiment = null;
    const cycle = this.cycleRate(now);
    const accepted = cycle === null ? this.acceptedRate(now, ACCEPTED_WINDOW_MS) : Math.max(cycle, this.acceptedRate(now, SHARE_WINDOW_MS));
    this.lastSignalAt = now;
    this.acceptedSinceSignal = 0;
    // Slower than what the relay took lately: from the signal before this one to this one, when
    // that is long enough to tell; otherwise the last second, or most of its best second of the last
    // ten (a relay counting in fixed windows refuses everything for the rest of a window it filled).
    // Not the best second when a cycle tells: that second may be the first burst at full speed.
    const took = cycle === null ? Math.max(accepted, EDGE_MEMORY * this.bestSecond(now)) : accepted;
    const next = Math.max(this.floorRate, Math.min(this.rate, took) * EXPLICIT_DECREASE);
    // The edge to climb back to quickly is what it took, even when the refusal came at a lower
    // pace: a burst (a stalled event loop, a window refilling) is refused at any average rate, and a
    // pace cut again and again on bursts must not crawl back from the bottom.
    this.edge = Math.max(took, next);
    this.recoveryPerSecond = (this.edge - next) / (RECOVERY_MS / 1000);
    this.lastCutAt = now;
    this.lastGrowAt = now;
    this.state = 'rate signal';
    this.note = `slowed to ${formatRate(next)}: the relay asks us to slow down (${reply.slice(0, 60)}); it took ${formatRate(accepted)}`;
    return this.setRate(next);
  }

  private startExperiment(now: number, share: number, replies: number, reply: string): boolean {
    const next = Math.max(this.floorRate, this.rate * EXPERIMENT_DECREASE);
    if (next >= this.rate) return false;
    this.experiment = {
      phase: 'slower',
      since: now,
      rateBefore: this.rate,
      shareBefore: share,
      sampleBefore: replies,
      reply,
      replies: 0,
      temporary: 0,
      slowerShare: 0,
      slowerSample: 0,
    };
    this.lastCutAt = now;
    this.state = 'testing';
    this.note = `slowed to ${formatRate(next)} to see whether ${percent(share)} temporary failures (${reply.slice(0, 60)}) are about our pace`;
    return this.setRate(next);
  }

  private judgeExperiment(now: number): boolean {
    const experiment = this.experiment as Experiment;
    const waited = now - experiment.since;
    const enough = experiment.replies >= MIN_SAMPLE && waited >= EXPERIMENT_MIN_MS;
    if (!enough && !(waited >= EXPERIMENT_MAX_MS && experiment.replies >= 10)) {
      if (waited >= EXPERIMENT_MAX_MS * 3) this.experiment = null; // nothing came back: give up watching
      return false;
    }
    const share = experiment.temporary / experiment.replies;
    // Undecided (lower, but not clearly yet): watch longer, up to EXPERIMENT_DECIDE_MS.
    const decideNow = waited >= EXPERIMENT_DECIDE_MS || experiment.replies < MIN_SAMPLE;
    if (experiment.phase === 'slower') {
      if (fell(experiment.shareBefore, experiment.sampleBefore, share, experiment.replies)) {
        // Lower at the slower rate: look again at the old one before believing it.
        Object.assign(experiment, { phase: 'again', since: now, replies: 0, temporary: 0, slowerShare: share, slowerSample: experiment.replies });
        this.note = `back to ${formatRate(experiment.rateBefore)} for a moment: temporary failures fell from ${percent(experiment.shareBefore)} to ${percent(share)} when we slowed down`;
        return this.setRate(experiment.rateBefore);
      }
      if (!decideNow && experiment.shareBefore - share >= 0.03) return false;
      return this.treatAsBackground(now, experiment, share);
    }
    if (!fell(share, experiment.replies, experiment.slowerShare, experiment.slowerSample) && !decideNow && share - experiment.slowerShare >= 0.03) return false;
    if (fell(share, experiment.replies, experiment.slowerShare, experiment.slowerSample)) {
      // Higher again at the old rate: congestion. The slower rate stays; probe gently from there.
      this.experiment = null;
      const slower = Math.max(this.floorRate, experiment.rateBefore * EXPERIMENT_DECREASE);
      this.edge = slower;
      this.probeSince = now;
      this.lastGrowAt = now;
      this.lastCutAt = now;
      this.state = 'congestion';
      this.note = `slowed to ${formatRate(slower)}: temporary failures are ${percent(share)} at ${formatRate(experiment.rateBefore)} and ${percent(experiment.slowerShare)} at ${formatRate(slower)} (${experiment.reply.slice(0, 60)})`;
      return this.setRate(slower);
    }
    return this.treatAsBackground(now, experiment, (share + experiment.slowerShare) / 2);
  }

  /** Slower did not help: the share is background. Back to the pace we had, at once. */
  private treatAsBackground(now: number, experiment: Experiment, share: number): boolean {
    this.experiment = null;
    this.background = share;
    this.backgroundReply = experiment.reply;
    this.lastGrowAt = now;
    this.probeSince = now;
    this.state = 'background';
    this.note = `${percent(share)} temporary failures (${experiment.reply.slice(0, 60)}) do not depend on our pace: treated as background`;
    return this.setRate(Math.max(this.rate, experiment.rateBefore));
  }

  private grow(now: number): boolean {
    if (this.rate >= this.maxRate || now - this.lastGrowAt < GROW_EVERY_MS) return false;
    const seconds = (now - this.lastGrowAt) / 1000;
    this.lastGrowAt = now;
    let next: number;
    if (this.edge !== null && this.rate < this.edge) {
      next = Math.min(this.edge, this.rate + Math.max(this.recoveryPerSecond, PROBE_MIN) * seconds);
      if (next >= this.edge) this.probeSince = now;
      this.state = 'recovering';
      this.note = `recovering: ${formatRate(next)}, back to the ${formatRate(this.edge)} the relay took within seconds`;
    } else {
      const base = Math.max(PROBE_MIN, PROBE_SHARE * (this.edge ?? this.rate));
      const growth = 1.5 ** Math.floor((now - this.probeSince) / PROBE_GROWTH_EVERY_MS);
      next = this.rate + base * growth * seconds;
      if (this.state !== 'background') {
        this.state = 'recovering';
        this.note = `probing: ${formatRate(Math.min(this.maxRate, next))}, above the ${formatRate(this.edge ?? this.rate)} the relay last took`;
      }
    }
    next = Math.min(this.maxRate, next);
    if (next >= this.maxRate) {
      this.state = this.background > 0 ? 'background' : 'full';
      this.note =
        this.background > 0
          ? `full pace; ${percent(this.background)} temporary failures (${this.backgroundReply.slice(0, 60)}) are background, not about our pace`
          : null;
    }
    return this.setRate(next);
  }

  private setRate(next: number): boolean {
    if (next === this.rate) return false;
    this.rate = next;
    return true;
  }

  /** The most messages accepted in one whole second of the last ten. */
  private bestSecond(now: number): number {
    const current = Math.floor(now / 1000);
    this.seconds = this.seconds.filter((entry) => entry.second > current - 10);
    return this.seconds.reduce((best, entry) => (entry.second < current ? Math.max(best, entry.accepted) : best), 0);
  }

  /**
   * Messages per second the relay accepted since the last rate signal, when that was between
   * CYCLE_MIN_MS and CYCLE_MAX_MS ago: from one refusal to the next the relay was at its limit, so
   * this is what it takes. The last second alone overstates it for a relay counting in windows
   * longer than a second (Postfix's anvil: 200 in about 2 s is 130 in one second, 70 in the next).
   */
  private cycleRate(now: number): number | null {
    const span = now - this.lastSignalAt;
    if (!(span >= CYCLE_MIN_MS && span <= CYCLE_MAX_MS)) return null;
    return (this.acceptedSinceSignal * 1000) / span;
  }

  /** Messages per second the relay accepted over the last `windowMs` (or since the first reply, if sooner). */
  private acceptedRate(now: number, windowMs: number): number {
    const { accepted } = this.totals(now, windowMs);
    const span = Math.min(windowMs, Math.max(BUCKET_MS, now - (this.firstSeen ?? now)));
    return (accepted * 1000) / span;
  }

  private bucketAt(now: number): Bucket {
    const start = now - (now % BUCKET_MS);
    const last = this.buckets.at(-1);
    if (last && last.start === start) return last;
    const bucket = { start, replies: 0, accepted: 0, temporary: 0 };
    this.buckets.push(bucket);
    while (this.buckets.length > 0 && (this.buckets[0] as Bucket).start <= now - SHARE_WINDOW_MS) this.buckets.shift();
    return bucket;
  }

  private totals(now: number, windowMs: number): { replies: number; accepted: number; temporary: number } {
    let replies = 0;
    let accepted = 0;
    let temporary = 0;
    for (const bucket of this.buckets) {
      if (bucket.start <= now - windowMs) continue;
      replies += bucket.replies;
      accepted += bucket.accepted;
      temporary += bucket.temporary;
    }
    return { replies, accepted, temporary };
  }
}

/** Whether share `low` (of `lowSample`) is clearly below `high` (of `highSample`): 2 standard errors, at least 3 points. */
function fell(high: number, highSample: number, low: number, lowSample: number): boolean {
  return high - low > Math.max(0.03, 2 * Math.sqrt(variance(high, highSample) + variance(low, lowSample)));
}

/** How far above the background a share must be to mean something: 3 standard errors, at least 5 points. */
function margin(background: number, replies: number): number {
  return Math.max(0.05, 3 * Math.sqrt(variance(Math.max(background, 0.05), replies)));
}

function variance(share: number, sample: number): number {
  return (share * (1 - share)) / Math.max(1, sample);
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}
