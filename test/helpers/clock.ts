// Clocks for tests: a command that runs "at" a chosen date (it starts there and then moves with real
// time, so waits and timeouts behave), whatever day, time zone or locale the suite runs in.
import { realClock, type Clock } from '../../src/domain/clock.js';

export function clockAt(iso: string): Clock {
  const start = new Date(iso).getTime();
  if (Number.isNaN(start)) throw new Error(`clockAt: not a date: ${iso}`);
  const origin = performance.now();
  return {
    now: () => new Date(start + Math.round(performance.now() - origin)),
    sleep: realClock.sleep,
  };
}
