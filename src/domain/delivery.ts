// Delivery states and the rules between them: which ones a retry may put back, when a failed
// attempt is retried (exponential backoff with jitter up to a deadline), and what counts as done.
// Defined once here; migration 0002 mirrors DELIVERY_STATES as the Postgres enum delivery_state.
// The moves: queued → sending | skipped; deferred, uncertain → sending | skipped | failed (uncertain
// also → deferred); sending → sent | deferred | failed | uncertain | queued (released); sent → failed
// (a hard bounce later); failed → deferred (retry). A cancelled send: queued, deferred, uncertain →
// cancelled, and sending → cancelled where it would have gone back to the queue or to a retry;
// cancelled → deferred (an explicit retry). Each store statement that moves a delivery checks its
// source state in SQL (src/store/deliveries.ts). Migration 0017 added 'cancelled' to the enum.

export const DELIVERY_STATES = ['queued', 'sending', 'sent', 'deferred', 'failed', 'skipped', 'uncertain', 'cancelled'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** States `bulletin retry` may put back to work (the store's requeue refuses any other in SQL). */
export const RETRYABLE_STATES: readonly DeliveryState[] = ['failed', 'uncertain', 'deferred', 'cancelled'];

/** States still to be worked on: a send is finished when none of its deliveries is in one. */
export const OPEN_STATES: readonly DeliveryState[] = ['queued', 'sending', 'deferred', 'uncertain'];

export function isDeliveryState(value: string): value is DeliveryState {
  return (DELIVERY_STATES as readonly string[]).includes(value);
}

export interface RetryPolicy {
  /** First retry after about this long (ms). */
  readonly minDelayMs: number;
  /** Never more than this between two attempts (ms). */
  readonly maxDelayMs: number;
  /** Give up this long after the first attempt (ms): the delivery fails as expired. */
  readonly deadlineMs: number;
}

/** Like Postfix and Mailman: first retry within minutes, at most an hour apart, give up after 5 days. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  minDelayMs: 5 * 60_000,
  maxDelayMs: 60 * 60_000,
  deadlineMs: 5 * 24 * 60 * 60_000,
});

/** Retries come at most this share of their delay late (never early), so a wave of them spreads out. */
export const RETRY_JITTER = 0.25;

/**
 * When to try again after attempt number `attempts` (1 = the first attempt failed), or null when
 * the deadline has passed. A deferral waits `minDelayMs` doubling up to `maxDelayMs`; an uncertain
 * outcome (perhaps delivered: a resend may be a duplicate) waits `minDelayMs` doubling with every
 * attempt, without the cap, so a relay that keeps answering too late gets ever fewer copies. The
 * jitter is only ever added: a retry never comes sooner than its delay, and at most a quarter later.
 */
export function nextAttemptAt(
  policy: RetryPolicy,
  attempts: number,
  firstAttemptAt: Date,
  now: Date,
  random: () => number = Math.random,
  outcome: 'deferred' | 'uncertain' = 'deferred',
): Date | null {
  const doubled = policy.minDelayMs * 2 ** Math.min(40, Math.max(0, attempts - 1));
  const base = outcome === 'uncertain' ? doubled : Math.min(policy.maxDelayMs, doubled);
  const delay = base + random() * base * RETRY_JITTER;
  const next = new Date(now.getTime() + delay);
  if (next.getTime() - firstAttemptAt.getTime() > policy.deadlineMs) return null;
  return next;
}

/** Whether a delivery first attempted at `firstAttemptAt` is past its retry deadline at `now`. */
export function isPastDeadline(policy: RetryPolicy, firstAttemptAt: Date, now: Date): boolean {
  return now.getTime() - firstAttemptAt.getTime() >= policy.deadlineMs;
}

/** Parses durations like `90s`, `5m`, `1h`, `5d` (or plain milliseconds). */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms'] ?? 1;
  return Math.round(Number(match[1]) * unit);
}
