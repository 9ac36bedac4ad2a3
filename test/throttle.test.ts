// The throttle's promise: no one-second window holds more than rate + burst acquisitions, checked
// over long runs on a fake clock; the rate can change; waits can be aborted; a short real-clock run.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRate, Throttle, type ThrottleClock } from '../src/send/throttle.js';

/** A clock whose sleeps return at once, having moved time on by exactly what was asked. */
function fakeClock(): ThrottleClock & { time: number; sleeps: number } {
  const clock = {
    time: 0,
    sleeps: 0,
    now: () => clock.time,
    sleep: async (ms: number, signal?: AbortSignal) => {
      signal?.throwIfAborted();
      clock.sleeps++;
      clock.time += ms;
    },
  };
  return clock;
}

/** The most acquisitions in any half-open window [t, t + 1000 ms). */
function busiestSecond(times: readonly number[]): number {
  let most = 0;
  for (let start = 0, end = 0; end < times.length; end++) {
    while ((times[end] as number) - (times[start] as number) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe('throttle', () => {
  test('no one-second window ever holds more than rate + burst, over long runs with an irregular caller', async () => {
    for (const [rate, burst] of [
      [50, 1],
      [50, 5],
      [3000, 30],
      [7, 1],
      [0.5, 1],
      [333.3, 4],
    ] as const) {
      const clock = fakeClock();
      const throttle = new Throttle({ rate, burst, clock });
      const times: number[] = [];
      const gapEvery = Math.max(1013, Math.ceil(rate * 7));
      for (let index = 0; index < Math.max(rate * 30, 40); index++) {
        await throttle.acquire();
        times.push(clock.time);
        if (index % 97 === 0) clock.time += 3.7; // the caller is slow now and then
        if (index % gapEvery === 500) clock.time += 2500; // and sometimes idle long enough to earn a burst
      }
      const most = busiestSecond(times);
      assert.ok(most < rate + burst, `rate ${rate} burst ${burst}: ${most} in one second`);
      assert.ok(most >= Math.min(Math.floor(rate), times.length), `rate ${rate}: only ${most} in one second`);
      // Over the whole run the pace is the rate (the idle gaps excepted).
      // Each idle gap earns one more burst (each burst saves up to burst − 1 intervals).
      const gaps = times.length > 500 ? Math.floor((times.length - 501) / gapEvery) + 1 : 0;
      const expected = ((times.length - burst) / rate) * 1000 + gaps * 2500;
      const lowest = expected - (gaps * burst * 1000) / rate;
      assert.ok(clock.time >= lowest && clock.time <= expected * 1.02 + 200, `rate ${rate}: ${times.length} took ${clock.time} ms, expected about ${expected}`);
    }
  });

  test('timers that fire late never let the next messages catch up beyond the bound', async () => {
    for (const [rate, burst] of [
      [50, 1],
      [1000, 10],
      [3000, 30],
    ] as const) {
      const clock = fakeClock();
      let seed = 7;
      const late = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 15; // 0–15 ms late
      clock.sleep = async (ms: number) => {
        clock.time += ms + late();
      };
      const throttle = new Throttle({ rate, burst, clock });
      const times: number[] = [];
      for (let index = 0; index < rate * 10; index++) {
        await throttle.acquire();
        times.push(clock.time);
      }
      const most = busiestSecond(times);
      assert.ok(most < rate + burst, `rate ${rate} burst ${burst} with late timers: ${most} in one second`);
    }
  });

  test('a burst goes at once after a pause, then the steady pace', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rate: 10, burst: 4, clock });
    for (let index = 0; index < 4; index++) await throttle.acquire();
    assert.equal(clock.now(), 0, 'the first four without waiting');
    await throttle.acquire();
    assert.equal(clock.now(), 100, 'the fifth one interval later');
    clock.time += 10_000;
    const before = clock.time;
    for (let index = 0; index < 4; index++) await throttle.acquire();
    assert.equal(clock.now(), before, 'a full burst again after an idle spell, not more');
    await throttle.acquire();
    assert.equal(clock.now(), before + 100);
  });

  test('the default burst is 10 ms worth of messages, at least one', () => {
    assert.equal(new Throttle({ rate: 50 }).burst, 1);
    assert.equal(new Throttle({ rate: 3000 }).burst, 30);
    assert.throws(() => new Throttle({ rate: 10, burst: 0 }), /burst/);
    assert.throws(() => new Throttle({ rate: 0 }), /rate/);
  });

  test('the rate can change while running; windows after the change keep the new bound', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rate: 10, burst: 1, clock });
    for (let index = 0; index < 10; index++) await throttle.acquire();
    const before = clock.time;
    throttle.setRate(100);
    assert.equal(throttle.rate, 100);
    const fast: number[] = [];
    for (let index = 0; index < 500; index++) {
      await throttle.acquire();
      fast.push(clock.time);
    }
    assert.ok(clock.time - before <= 5100, `500 at 100/s took ${clock.time - before} ms`);
    assert.ok(busiestSecond(fast) <= 101);
    throttle.setRate(20);
    const slowStart = clock.time;
    const slow: number[] = [];
    for (let index = 0; index < 200; index++) {
      await throttle.acquire();
      slow.push(clock.time);
    }
    assert.ok(busiestSecond(slow.filter((time) => time >= slowStart + 1000)) <= 21);
    assert.throws(() => throttle.setRate(0), /rate/);
    assert.throws(() => throttle.setRate(Number.NaN), /rate/);
  });

  test('an aborted wait rejects with the reason and gives its slot back', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rate: 1, burst: 1, clock });
    await throttle.acquire();
    const controller = new AbortController();
    controller.abort(new Error('stopping'));
    await assert.rejects(throttle.acquire(controller.signal), /stopping/);
    assert.equal(clock.now(), 0, 'no time spent');
    await throttle.acquire();
    assert.equal(clock.now(), 1000, 'the next message takes the slot the aborted one gave back');

    const real = new Throttle({ rate: 1, burst: 1 });
    await real.acquire();
    const live = new AbortController();
    const started = performance.now();
    const waiting = real.acquire(live.signal);
    setTimeout(() => live.abort(new Error('Ctrl-C')), 20);
    await assert.rejects(waiting, /Ctrl-C/);
    assert.ok(performance.now() - started < 900, 'did not wait out the full second');
  });

  test('a caller who gives up mid-queue uses no slot; the others keep their order', async () => {
    const clock = fakeClock();
    clock.sleep = async (ms: number) => {
      await new Promise((resolve) => setImmediate(resolve)); // let the callers record the time first
      clock.time += ms;
    };
    const throttle = new Throttle({ rate: 10, burst: 1, clock });
    await throttle.acquire();
    const controller = new AbortController();
    const order: string[] = [];
    const first = throttle.acquire().then(() => order.push(`a@${clock.now()}`));
    const quitter = throttle.acquire(controller.signal).then(
      () => order.push('quitter'),
      (error: Error) => order.push(`quitter gave up: ${error.message}`),
    );
    const last = throttle.acquire().then(() => order.push(`b@${clock.now()}`));
    controller.abort(new Error('stop'));
    await Promise.all([first, quitter, last]);
    assert.deepEqual(order, ['quitter gave up: stop', 'a@100', 'b@200']);
  });

  test('when every waiter gives up, no timer is left behind', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const before = timers();
    const throttle = new Throttle({ rate: 1 / 3600, burst: 1 });
    await throttle.acquire();
    const controller = new AbortController();
    const waiting = throttle.acquire(controller.signal);
    assert.equal(timers(), before + 1, 'sleeping until the next slot, an hour away');
    controller.abort(new Error('stop'));
    await assert.rejects(waiting, /stop/);
    assert.equal(timers(), before, 'the hour-long timer was cleared');
  });

  test('concurrent callers are served in call order, one interval apart', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rate: 4, burst: 1, clock });
    const order: number[] = [];
    await Promise.all([0, 1, 2, 3].map((index) => throttle.acquire().then(() => order.push(index))));
    assert.deepEqual(order, [0, 1, 2, 3]);
  });

  test('a real clock at 200/s for about a second stays within rate + burst', async () => {
    const throttle = new Throttle({ rate: 200, burst: 2 });
    const times: number[] = [];
    const started = performance.now();
    while (performance.now() - started < 1200) {
      await throttle.acquire();
      times.push(performance.now());
    }
    const most = busiestSecond(times);
    assert.ok(most <= 200 + 2, `${most} in one second`);
    assert.ok(most >= 120, `only ${most} in one second`);
  });

  test('rates are written per second, minute or hour', () => {
    assert.equal(parseRate('50/s'), 50);
    assert.equal(parseRate('3000/m'), 50);
    assert.equal(parseRate('100000/h'), 100000 / 3600);
    assert.equal(parseRate('7200/hour'), 2);
    assert.equal(parseRate(' 12 '), 12);
    assert.equal(parseRate('2.5/sec'), 2.5);
    for (const bad of ['fast', '0/s', '-5/s', '50/d', '50/', '/s', '']) {
      assert.throws(
        () => parseRate(bad),
        (error: Error & { code?: string }) => error.code === 'BAD_INPUT' && error.message.includes(`"${bad}"`),
        bad,
      );
    }
  });
});
