// Several relays behind one Transport: traffic spreads by weight (smooth weighted round robin, as
// nginx does); a relay that cannot set up a session is taken out for a cool-down (2 s, doubling to
// 1 min) and probed with one message when it is over, while the others carry on. A message refused
// that way is tried on another relay at once (it was never sent). When every relay is down, sends
// wait for the next probe (sleeping, never spinning) and the note says so. A relay that refuses our
// configuration (credentials, TLS, sender) is out for good: when none is left, the send gets that
// refusal (the dispatcher stops). A message over one relay's SIZE is tried on the others. Its
// listener hears when a relay goes down and when it is back.
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';
import { outcomeOf } from './failure.js';
import type { SendEvents } from './send-events.js';

export interface WeightedTransport {
  readonly transport: Transport;
  /** Share of the traffic, relative to the other relays' weights (a whole number ≥ 1). */
  readonly weight: number;
}

export interface RelayPoolOptions {
  /** Milliseconds, monotonic (tests pass their own). */
  readonly now?: () => number;
  readonly firstCooldownMs?: number;
  readonly maxCooldownMs?: number;
  /** Told when a relay goes down (taken out for a cool-down) and when it carries mail again. */
  readonly events?: Pick<SendEvents, 'relayDown' | 'relayUp'>;
}

interface Relay {
  readonly transport: Transport;
  readonly weight: number;
  /** Smooth weighted round robin's running weight. */
  current: number;
  failures: number;
  /** Out of service until then (0: in service). */
  downUntil: number;
  /** A probe message is on its way through this relay (down relays get one at a time). */
  probing: boolean;
  lastError: string;
  /** Refused our configuration: out until the send is restarted. */
  unusable: SendOutcome | null;
}

export function createRelayPool(relays: readonly WeightedTransport[], options: RelayPoolOptions = {}): Transport {
  if (relays.length === 0) throw new RangeError('a relay pool needs at least one relay');
  const now = options.now ?? (() => performance.now());
  const firstCooldownMs = options.firstCooldownMs ?? 2_000;
  const maxCooldownMs = options.maxCooldownMs ?? 60_000;
  const pool: Relay[] = relays.map(({ transport, weight }) => ({
    transport,
    weight,
    current: 0,
    failures: 0,
    downUntil: 0,
    probing: false,
    lastError: '',
    unusable: null,
  }));
  let closed = false;
  /** Wakes sends waiting for a relay: on close, and when a probe ends. */
  let wake = new AbortController();

  const isUp = (relay: Relay) => relay.downUntil === 0;
  const isDue = (relay: Relay) => relay.downUntil !== 0 && !relay.probing && now() >= relay.downUntil;

  /** The next relay by weight among those in service (or due for a probe), skipping `tried`. */
  function pick(tried: ReadonlySet<Relay>): Relay | null {
    const candidates = pool.filter((relay) => relay.unusable === null && !tried.has(relay) && (isUp(relay) || isDue(relay)));
    if (candidates.length === 0) return null;
    let total = 0;
    let best: Relay | null = null;
    for (const relay of candidates) {
      relay.current += relay.weight;
      total += relay.weight;
      if (best === null || relay.current > best.current) best = relay;
    }
    (best as Relay).current -= total;
    if (!isUp(best as Relay)) (best as Relay).probing = true;
    return best;
  }

  function markDown(relay: Relay, reply: string): void {
    if (isUp(relay)) options.events?.relayDown?.({ relay: relay.transport.description, error: reply });
    relay.failures++;
    relay.probing = false;
    relay.lastError = reply;
    relay.downUntil = now() + Math.min(maxCooldownMs, firstCooldownMs * 2 ** (relay.failures - 1));
    wakeWaiters();
  }

  function markUp(relay: Relay): void {
    const wasDown = !isUp(relay);
    relay.failures = 0;
    relay.downUntil = 0;
    relay.probing = false;
    if (wasDown) {
      options.events?.relayUp?.({ relay: relay.transport.description });
      wakeWaiters();
    }
  }

  function wakeWaiters(): void {
    wake.abort();
    wake = new AbortController();
  }

  /** Sleeps until the earliest cool-down ends, a probe ends, the pool closes or `signal` aborts. */
  function waitForRelay(signal?: AbortSignal): Promise<void> {
    const due = pool.filter((relay) => !relay.probing && relay.downUntil !== 0).map((relay) => relay.downUntil);
    const ms = due.length > 0 ? Math.max(1, Math.min(...due) - now()) : 1_000;
    const woken = wake.signal;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        woken.removeEventListener('abort', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      woken.addEventListener('abort', done, { once: true });
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  const notSent = (reason: string): SendOutcome => outcomeOf.notSent(reason, '');
  const usable = () => pool.filter((relay) => relay.unusable === null);

  return {
    description: pool.map((relay) => (pool.length > 1 ? `${relay.transport.description} (weight ${relay.weight})` : relay.transport.description)).join(', '),
    get concurrency() {
      const serving = usable().filter((relay) => isUp(relay) || isDue(relay));
      return Math.max(
        1,
        (serving.length > 0 ? serving : pool.slice(0, 1)).reduce((sum, relay) => sum + relay.transport.concurrency, 0),
      );
    },
    note() {
      const down = usable().filter((relay) => !isUp(relay));
      const notes = pool.map((relay) => relay.transport.note?.() ?? null).filter((note): note is string => note !== null);
      const refused = pool.filter((relay) => relay.unusable !== null);
      if (refused.length > 0)
        notes.unshift(
          `${refused.map((relay) => `${relay.transport.description} refused our configuration (${relay.unusable?.reply.slice(0, 60)})`).join('; ')}`,
        );
      if (down.length > 0 && down.length === usable().length) {
        const next = Math.max(0, Math.min(...down.map((relay) => relay.downUntil)) - now());
        notes.unshift(
          `every relay is down (${down.map((relay) => `${relay.transport.description}: ${relay.lastError.slice(0, 60)}`).join('; ')}); next try in ${Math.ceil(next / 1000)} s`,
        );
      } else if (down.length > 0) {
        notes.unshift(`${down.map((relay) => relay.transport.description).join(', ')} down (${down[0]?.lastError.slice(0, 60)}); the others carry on`);
      }
      return notes.length > 0 ? notes.join('; ') : null;
    },
    async send(message: OutgoingMessage, signal?: AbortSignal): Promise<SendOutcome> {
      let tried = new Set<Relay>();
      /** A refusal of the message's size by a relay already tried (others may take it). */
      let tooBig: SendOutcome | null = null;
      for (;;) {
        if (closed) return notSent('the relays were closed');
        const left = usable();
        if (left.length === 0) return (pool.find((relay) => relay.unusable !== null) as Relay).unusable as SendOutcome;
        if (tooBig !== null && left.every((relay) => tried.has(relay))) return tooBig;
        if (signal?.aborted) {
          const errors = left.filter((relay) => !isUp(relay)).map((relay) => `${relay.transport.description}: ${relay.lastError.slice(0, 80)}`);
          return notSent(errors.length > 0 ? `stopped waiting for a relay (${errors.join('; ')})` : 'the send was stopped');
        }
        const relay = pick(tried);
        if (relay === null) {
          if (tried.size > 0 && left.some((candidate) => !tried.has(candidate) && isUp(candidate))) continue;
          await waitForRelay(signal);
          tried = new Set();
          continue;
        }
        const outcome = await relay.transport.send(message, signal);
        if (outcome.kind === 'unusable') {
          if (outcome.why === 'configuration') {
            relay.unusable = outcome;
            relay.probing = false;
            wakeWaiters();
          } else {
            tooBig = outcome;
            relay.probing = false;
          }
          tried.add(relay);
          continue;
        }
        if (outcome.kind === 'deferred' && outcome.pushback === 'session') {
          // No session with this relay: take it out, and try the message elsewhere (it was not sent).
          markDown(relay, outcome.reply);
          tried.add(relay);
          continue;
        }
        markUp(relay);
        return outcome;
      }
    },
    async close() {
      closed = true;
      wakeWaiters();
      await Promise.all(pool.map((relay) => relay.transport.close()));
    },
  };
}
