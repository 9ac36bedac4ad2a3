// The shared pace of several workers on one send, on a simulated clock: their slots come from one
// timeline, so together they keep the rate; and a reservation whose reply comes back late does not
// move that worker's slots onto another worker's (the bug behind a 10% overshoot at the relay).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClockOffset, LATE_TOLERANCE_MS, SharedPacer, type ReserveSlots } from '../src/send/shared-pacer.js';
import type { ThrottleClock } from '../src/send/throttle.js';

/** Simulated time: sleeps are timers, and `runFor` moves time from one timer to the next. */
class SimulatedClock implements ThrottleClock {
  time = 0;
  private timers: { at: number; resolve: () => void }[] = [];
  now = () => this.time;
  sleep = (ms: number) => new Promise<void>((resolve) => this.timers.push({ at: this.time + Math.max(0, ms), resolve }));

  async runFor(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve)); // let every chain reach its next timer
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.time = next.at;
      next.resolve();
    }
    this.time = end;
  }
}

/**
 * The `send_pacing` row, in memory: the database's clock runs `skewMs` ahead of the local one; a
 * reservation reads it `toDatabaseMs` after it is asked and is answered `backMs` after that.
 */
function sharedTimeline(clock: SimulatedClock, skewMs: number) {
  let nextSlot = -Infinity;
  return (delays: () => { toDatabaseMs: number; backMs: number }): ReserveSlots =>
    async (count, intervalMs) => {
      const { toDatabaseMs, backMs } = delays();
      await clock.sleep(toDatabaseMs);
      const databaseNowMs = clock.now() + skewMs;
      nextSlot = Math.max(nextSlot, databaseNowMs) + count * intervalMs;
      const firstSlotMs = nextSlot - count * intervalMs;
      await clock.sleep(backMs);
      return { firstSlotMs, databaseNowMs };
    };
}

/** The most releases in any window [t, t + windowMs). */
function busiest(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while ((sorted[end] as number) - (sorted[start] as number) >= windowMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

async function sendFor(clock: SimulatedClock, pacers: readonly SharedPacer[], ms: number): Promise<number[]> {
  const released: number[] = [];
  const stop = new AbortController();
  const loops = pacers.map(async (pacer) => {
    while (!stop.signal.aborted) {
      await pacer.acquire();
      released.push(clock.now());
    }
  });
  await clock.runFor(ms);
  stop.abort();
  void loops;
  return released;
}

describe('shared pacer', () => {
  test('three workers on one timeline keep the rate together, with the database clock far off', async () => {
    const clock = new SimulatedClock();
    const timeline = sharedTimeline(clock, 1_700_000_000_000);
    const pacers = [1, 2, 3].map(
      (worker) =>
        new SharedPacer(
          timeline(() => ({ toDatabaseMs: worker, backMs: worker })),
          { rate: 100, clock },
        ),
    );
    const released = await sendFor(clock, pacers, 10_000);
    assert.ok(released.length >= 950, `sent ${released.length} in 10 s at 100/s`);
    assert.ok(busiest(released, 1000) <= Math.ceil(100 * (1 + LATE_TOLERANCE_MS / 1000)) + 1, `busiest second: ${busiest(released, 1000)}`);
  });

  test("a late reply to one worker's reservation does not put its slots on top of another's", async () => {
    const clock = new SimulatedClock();
    const timeline = sharedTimeline(clock, 5_000);
    let reservations = 0;
    // Worker A's replies are quick, except every fifth, which comes back 150 ms late (a busy event loop).
    const late = new SharedPacer(
      timeline(() => ({ toDatabaseMs: 1, backMs: ++reservations % 5 === 0 ? 150 : 1 })),
      { rate: 100, clock },
    );
    const prompt = new SharedPacer(
      timeline(() => ({ toDatabaseMs: 1, backMs: 1 })),
      { rate: 100, clock },
    );
    const released = await sendFor(clock, [late, prompt], 10_000);
    // A window of 200 ms holds at most 200 ms + the late tolerance worth of slots, and one more.
    const limit = Math.ceil(100 * ((200 + LATE_TOLERANCE_MS) / 1000)) + 1;
    assert.ok(busiest(released, 200) <= limit, `busiest 200 ms: ${busiest(released, 200)} (limit ${limit})`);
    assert.ok(busiest(released, 1000) <= Math.ceil(100 * (1 + LATE_TOLERANCE_MS / 1000)) + 1, `busiest second: ${busiest(released, 1000)}`);
    assert.ok(reservations >= 20, 'the late replies happened');
  });

  test('the clock offset keeps the tightest bounds, and starts over when the clocks disagree', () => {
    const offset = new ClockOffset();
    assert.equal(offset.sample(1_000, 0, 100), 950, 'one sample: the middle of [900, 1000]');
    assert.equal(offset.sample(1_960, 1_000, 1_002), 959, 'a quick round trip narrows it to [958, 960]');
    assert.equal(offset.sample(3_159, 2_000, 2_400), 959, 'a slow one changes nothing');
    assert.equal(offset.sample(9_000, 3_000, 3_002), 5_999, 'a stepped clock: the new sample alone');
  });
});
