// The adaptive pace against simulated relays on a simulated clock: it settles near what a rate-
// limited relay accepts; it tells a share of random temporary failures (which slowing down does not
// change) from congestion (which it does); it is back at the edge within 10 s of a cut whatever the
// floor; never above the configured rate nor below the floor. (The same against real SMTP servers
// and a real Postfix is in test/send-under-fire.test.ts and test/send-postfix.test.ts.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdaptivePace } from '../src/send/adaptive.js';
import type { SendOutcome } from '../src/send/transport.js';

const SENT: SendOutcome = { kind: 'sent', reply: '250 ok', relay: 'r' };
const PUSHBACK: SendOutcome = { kind: 'deferred', reply: '450 4.7.0 rate exceeded', relay: 'r', pushback: 'rate' };
const NOISE: SendOutcome = { kind: 'deferred', reply: '451 4.3.0 Temporary local problem', relay: 'r', pushback: 'temporary' };

interface Second {
  attempts: number;
  accepted: number;
  maxRate: number;
  minRate: number;
}

/**
 * Runs `seconds` of simulated time in 10 ms ticks, sending at the pace's rate into `answer`; each
 * reply comes back `latencyMs` after its message left (several in flight, as on a real pool).
 */
function simulate(pace: AdaptivePace, seconds: number, answer: (time: number, index: number) => SendOutcome, clock: { now: number }, latencyMs = 30): Second[] {
  const perSecond: Second[] = [];
  const inFlight: { due: number; sentAt: number; outcome: SendOutcome }[] = [];
  let credit = 0;
  let index = 0;
  for (let tick = 0; tick < seconds * 100; tick++) {
    clock.now = tick * 10;
    const second = Math.floor(tick / 100);
    perSecond[second] ??= { attempts: 0, accepted: 0, maxRate: 0, minRate: Infinity };
    const row = perSecond[second];
    while (inFlight.length > 0 && (inFlight[0] as { due: number }).due <= clock.now) {
      const reply = inFlight.shift() as { sentAt: number; outcome: SendOutcome };
      pace.observe(reply.outcome, reply.sentAt);
    }
    pace.update();
    credit += pace.rate / 100;
    while (credit >= 1) {
      credit--;
      const outcome = answer(clock.now, index++);
      row.attempts++;
      if (outcome.kind === 'sent') row.accepted++;
      inFlight.push({ due: clock.now + latencyMs, sentAt: clock.now, outcome });
    }
    row.maxRate = Math.max(row.maxRate, pace.rate);
    row.minRate = Math.min(row.minRate, pace.rate);
  }
  return perSecond;
}

/** A relay accepting `limit` messages in any one second (a sliding window), answering `refusal` to the rest. */
function rateLimitedRelay(limit: number, refusal: SendOutcome = PUSHBACK) {
  const accepted: number[] = [];
  return (time: number): SendOutcome => {
    while (accepted.length > 0 && (accepted[0] as number) <= time - 1000) accepted.shift();
    if (accepted.length >= limit) return refusal;
    accepted.push(time);
    return SENT;
  };
}

/**
 * A relay counting `limit` messages in fixed windows of `windowMs` (as Postfix's anvil does), each
 * starting at the first message after the last one ran out; it refuses the rest of a full window.
 */
function fixedWindowRelay(limit: number, windowMs: number) {
  let windowStart = -Infinity;
  let count = 0;
  return (time: number): SendOutcome => {
    if (time - windowStart >= windowMs) {
      windowStart = time;
      count = 0;
    }
    return ++count <= limit ? SENT : PUSHBACK;
  };
}

/** A deterministic stream of pseudo-random numbers in [0, 1). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const sum = (rows: readonly Second[], key: 'attempts' | 'accepted') => rows.reduce((total, row) => total + row[key], 0);

describe('adaptive pace', () => {
  test('against a relay that takes 50/s, a send configured at 200/s settles near 50/s, nearly every attempt accepted', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 200, floorRate: 1, now: () => clock.now });
    const seconds = simulate(pace, 60, rateLimitedRelay(50), clock);
    const settled = seconds.slice(5);
    const accepted = sum(settled, 'accepted') / settled.length;
    const attempts = sum(settled, 'attempts') / settled.length;
    assert.ok(accepted >= 45 && accepted <= 50, `accepted ${accepted}/s`);
    assert.ok(accepted / attempts >= 0.9, `${((100 * accepted) / attempts).toFixed(1)}% of attempts accepted once settled`);
    assert.ok(seconds.every((row) => row.maxRate <= 200));
    assert.equal(pace.state === 'rate signal' || pace.state === 'recovering', true, pace.state);
  });

  test('against Postfix-like fixed windows of 2 s (200 each, about 100/s), a send at 400/s is near the limit from the fifth second, nearly every attempt accepted', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 400, floorRate: 1, now: () => clock.now });
    // anvil starts a window at the first message after the last one ran out: 130 may pass in one
    // second and 70 in the next, so the last second alone overstates what the relay takes.
    const seconds = simulate(pace, 25, fixedWindowRelay(200, 2000), clock);
    const settled = seconds.slice(4);
    const accepted = sum(settled, 'accepted') / settled.length;
    assert.ok(
      sum(settled, 'accepted') / sum(settled, 'attempts') >= 0.95,
      `${((100 * sum(settled, 'accepted')) / sum(settled, 'attempts')).toFixed(1)}% of attempts accepted from the fifth second`,
    );
    assert.ok(accepted >= 85 && accepted <= 100, `accepted ${accepted.toFixed(1)}/s`);
  });

  test('one refused transaction is one signal: a burst of refusals already on the wire cuts once', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 400, floorRate: 1, now: () => clock.now });
    // 1 s at 400/s accepted, then 200 refusals of messages sent before the cut arrive at once.
    simulate(pace, 1, () => SENT, clock);
    clock.now = 1000;
    const sentBefore = 990;
    let cuts = 0;
    for (let index = 0; index < 200; index++) if (pace.observe(PUSHBACK, sentBefore)) cuts++;
    assert.equal(cuts, 1);
    assert.ok(pace.rate >= 0.75 * 400 && pace.rate <= 0.85 * 400, `cut to ${pace.rate}: 85% of what the relay took in the last second`);
  });

  for (const share of [0.1, 0.2]) {
    test(`${share * 100}% random temporary failures (slowing down changes nothing): the pace stays at full speed but for one short test`, () => {
      const clock = { now: 0 };
      const pace = new AdaptivePace({ maxRate: 200, floorRate: 1, now: () => clock.now });
      const random = seeded(share * 1000);
      const seconds = simulate(pace, 120, () => (random() < share ? NOISE : SENT), clock);
      const attempts = sum(seconds, 'attempts') / seconds.length;
      assert.ok(attempts >= 0.95 * 200, `${attempts.toFixed(1)} attempts/s of 200`);
      const slowSeconds = seconds.filter((row) => row.minRate < 200).length;
      assert.ok(slowSeconds <= 10, `${slowSeconds} of 120 seconds below full speed`);
      assert.equal(pace.rate, 200);
      assert.ok(Math.abs(pace.background - share) < 0.06, `background ${pace.background}`);
      assert.match(pace.note ?? '', /temporary failures \(451 4\.3\.0 Temporary local problem\) (do not depend on our pace|are background)/);
    });
  }

  test('temporary failures that do come from our pace (a relay answering 451 4.3.0 beyond 50/s): the pace comes down', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 200, floorRate: 1, now: () => clock.now });
    // A token bucket: 50 a second, 5 at once (an overloaded relay, not a counter).
    let tokens = 5;
    let last = 0;
    const overloaded = (time: number): SendOutcome => {
      tokens = Math.min(5, tokens + ((time - last) * 50) / 1000);
      last = time;
      if (tokens < 1) return NOISE;
      tokens--;
      return SENT;
    };
    const seconds = simulate(pace, 90, overloaded, clock);
    const settled = seconds.slice(30);
    const accepted = sum(settled, 'accepted') / settled.length;
    const attempts = sum(settled, 'attempts') / settled.length;
    assert.ok(accepted >= 40, `accepted ${accepted}/s`);
    assert.ok(attempts <= 100, `attempted ${attempts}/s once settled (configured 200/s): slowing down was seen to help`);
  });

  test('one early handful of temporary failures is not a share', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 200, floorRate: 1, now: () => clock.now });
    // 3 of the first 14 replies refused, then 10% at random.
    const random = seeded(7);
    simulate(pace, 20, (_time, index) => (index < 14 ? (index % 5 === 0 ? NOISE : SENT) : random() < 0.1 ? NOISE : SENT), clock);
    assert.equal(pace.rate, 200);
  });

  test('a relay refusing everything brings the pace down to the floor, never below; once it accepts again the pace climbs back to the configured rate, never above', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 100, floorRate: 5, now: () => clock.now });
    let lowest = Infinity;
    const seconds = simulate(
      pace,
      60,
      (time) => {
        if (time >= 15_000) return SENT;
        lowest = Math.min(lowest, pace.rate);
        return PUSHBACK;
      },
      clock,
    );
    assert.equal(lowest, 5, 'down to the floor while refused');
    assert.ok(seconds.every((row) => row.minRate >= 5 && row.maxRate <= 100));
    assert.ok((seconds[14]?.maxRate ?? Infinity) <= 10, 'still near the floor at the end of the refusals');
    assert.equal(pace.rate, 100, 'back at the configured rate once replies are good');
    assert.equal(pace.note, null);
  });

  for (const floor of [1, 20]) {
    test(`after a cut the pace is back at the edge within 10 s (floor ${floor}/s)`, () => {
      const clock = { now: 0 };
      const pace = new AdaptivePace({ maxRate: 1000, floorRate: floor, now: () => clock.now });
      // A relay counting 100 a second in fixed windows (as Postfix's anvil does): at 1000/s it refuses 90% of each second.
      const relay = fixedWindowRelay(100, 1000);
      const rates: { time: number; rate: number }[] = [];
      const seconds = simulate(
        pace,
        40,
        (time) => {
          rates.push({ time, rate: pace.rate });
          return relay(time);
        },
        clock,
      );
      const settled = seconds.slice(5);
      assert.ok(sum(settled, 'accepted') / settled.length >= 80, `accepted ${sum(settled, 'accepted') / settled.length}/s of 100`);
      assert.ok(sum(settled, 'accepted') / sum(settled, 'attempts') >= 0.85, 'most attempts accepted');
      // Every cut after the first seconds: within 10 s the pace is at 90% of the relay's 100/s again.
      for (let index = 1; index < rates.length; index++) {
        const { time, rate } = rates[index] as { time: number; rate: number };
        if (time < 5000 || time > 28_000 || rate >= (rates[index - 1] as { rate: number }).rate) continue;
        const back = rates.find((later) => later.time > time && later.time <= time + 10_000 && later.rate >= 90);
        assert.ok(back, `cut to ${rate.toFixed(1)}/s at ${time} ms: not back at 90/s within 10 s`);
      }
    });
  }

  test('the note says which case the pace sees', () => {
    const clock = { now: 0 };
    const pace = new AdaptivePace({ maxRate: 100, floorRate: 5, now: () => clock.now });
    const notes = new Set<string>();
    simulate(
      pace,
      3,
      () => {
        notes.add(`${pace.state}: ${pace.note}`);
        return PUSHBACK;
      },
      clock,
    );
    assert.ok(
      [...notes].some((note) => /^rate signal: slowed to \d+(\.\d)?\/s: the relay asks us to slow down \(450 4\.7\.0 rate exceeded\); it took \d/.test(note)),
      [...notes].join('\n'),
    );
    const testing = new AdaptivePace({ maxRate: 100, floorRate: 5, now: () => clock.now });
    clock.now = 0;
    const random = seeded(3);
    simulate(testing, 5, () => (random() < 0.3 ? NOISE : SENT), clock);
    assert.match(
      testing.note ?? '',
      /to see whether \d+% temporary failures \(451 4\.3\.0 Temporary local problem\) are about our pace|do not depend on our pace/,
    );
  });
});
