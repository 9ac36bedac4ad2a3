// The adaptive pace against simulated relays on a simulated clock: it settles near what a relay
// accepts, ignores a steady trickle of unrelated 4xx, never exceeds the configured rate nor goes
// below the floor. (The same against real SMTP servers is in test/send-under-fire.test.ts.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdaptivePace } from '../src/send/adaptive.js';
import type { SendOutcome } from '../src/send/transport.js';

const SENT: SendOutcome = { kind: 'sent', reply: '250 ok', relay: 'r' };
const PUSHBACK: SendOutcome = { kind: 'deferred', reply: '450 4.7.0 rate exceeded', relay: 'r', pushback: 'rate' };
const NOISE: SendOutcome = { kind: 'deferred', reply: '451 4.3.0 try later', relay: 'r', pushback: 'rate' };

/** Runs `seconds` of simulated time in 10 ms ticks, sending at the pace's rate into `answer`. */
function simulate(pace: AdaptivePace, seconds: number, answer: (time: number, index: number) => SendOutcome, clock: { now: number }) {
  const perSecond: { attempts: number; accepted: number; maxRate: number; minRate: number }[] = [];
  let credit = 0;
  let index = 0;
  for (let tick = 0; tick < seconds * 100; tick++) {
    clock.now = tick * 10;
    const second = Math.floor(tick / 100);
    perSecond[second] ??= { attempts: 0, accepted: 0, maxRate: 0, minRate: Infinity };
    const row = perSecond[second];
    credit += pace.rate / 100;
    while (credit >= 1) {
      credit--;
      const outcome = answer(clock.now, index++);
      row.attempts++;
      if (outcome.kind === 'sent') row.accepted++;
      pace.observe(outcome);
      row.maxRate = Math.max(row.maxRate, pace.rate);
      row.minRate = Math.min(row.minRate, pace.rate);
    }
  }
  return perSecond;
}

/** A relay accepting `limit` messages in any one second (a sliding window), answering 4.7.0 to the rest. */
function rateLimitedRelay(limit: number) {
  const accepted: number[] = [];
  return (time: number): SendOutcome => {
    while (accepted.length > 0 && (accepted[0] as number) <= time - 1000) accepted.shift();
    if (accepted.length >= limit) return PUSHBACK;
    accepted.push(time);
    return SENT;
  };
}

describe('adaptive pace', () => {
  test('against a relay that takes 50/s, a send configured at 200/s settles near 50/s', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 200, floorRate: 1, now: () => clock.now });
    const seconds = simulate(pace, 60, rateLimitedRelay(50), clock);
    const settled = seconds.slice(20);
    const accepted = settled.reduce((sum, row) => sum + row.accepted, 0) / settled.length;
    const attempts = settled.reduce((sum, row) => sum + row.attempts, 0) / settled.length;
    assert.ok(accepted >= 38 && accepted <= 50, `accepted ${accepted}/s`);
    assert.ok(attempts <= 65, `attempted ${attempts}/s: most messages go when the relay takes them`);
    assert.ok(seconds.every((row) => row.maxRate <= 200));
    assert.ok(pace.note === null || /slowed|recovering/.test(pace.note));
  });

  test('a steady 10% of unrelated 4xx never slows the send', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 100, floorRate: 1, now: () => clock.now });
    const seconds = simulate(pace, 20, (_time, index) => (index % 10 === 0 ? NOISE : SENT), clock);
    assert.ok(seconds.every((row) => row.minRate === 100), 'stayed at the configured rate');
    assert.equal(pace.note, null);
  });

  test('a relay refusing everything brings the pace down to the floor, never below; once it accepts again the pace climbs back to the configured rate, never above', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 100, floorRate: 5, now: () => clock.now });
    let lowest = Infinity;
    const seconds = simulate(pace, 40, (time) => {
      if (time >= 10_000) return SENT;
      lowest = Math.min(lowest, pace.rate);
      return PUSHBACK;
    }, clock);
    assert.equal(lowest, 5, 'down to the floor while refused');
    assert.ok(seconds.every((row) => row.minRate >= 5 && row.maxRate <= 100));
    assert.ok((seconds[9]?.maxRate ?? Infinity) <= 5, 'still at the floor at the end of the refusals');
    assert.equal(pace.rate, 100, 'back at the configured rate once replies are good');
    assert.equal(pace.note, null);
  });

  test('the note says how far and why', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 100, floorRate: 5, now: () => clock.now });
    simulate(pace, 3, () => PUSHBACK, clock);
    assert.match(pace.note ?? '', /^slowed to \d+(\.\d)?\/s: the relay pushed back on \d+ of \d+ messages: 450 4\.7\.0 rate exceeded$/);
  });
});
