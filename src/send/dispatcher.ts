// The dispatch loop of one worker: claims deliveries in batches, renders and sends each through the
// transport at the throttle's pace, and writes outcomes back in batches. It never looks at SMTP
// reply codes (the transport returns classified outcomes) and never holds a transaction across a send.
// It acts on what the outcomes say: a message refused before it was sent because we go too fast
// goes again at the next pace slot; a relay that is unusable (credentials, TLS, sender, SIZE) stops
// the send with its deliveries given back; 20 identical refusals of the message itself in a row hold
// the send; a hard bounce at RCPT is recorded; a delivery past its deadline fails on time, even
// while it waits for a relay or for the pace. It beats a few times a second (operator-control.ts):
// paused, it gives back what it has claimed and waits; cancelled, it stops; re-paced, it keeps the
// new rate.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { formatClaimOwner } from '../domain/claim-owner.js';
import { isPastDeadline, nextAttemptAt, type RetryPolicy } from '../domain/delivery.js';
import { DatabaseOutage } from './database-outage.js';
import type { ClaimedDelivery, DeliveryOutcome, DispatchStore } from './dispatch-store.js';
import { realClock, type Clock } from '../domain/clock.js';
import type { AdaptivePace } from './adaptive.js';
import type { OutgoingMessage, SendOutcome, Transport } from './transport.js';
import { outcomeOf } from './failure.js';
import { OperatorControl } from './operator-control.js';
import { BEAT_MS, type SendControlPort } from './send-control.js';
import type { AttemptEvent, SendEvents } from './send-events.js';

/** What the dispatcher needs of a rate limiter. */
export interface Pacer {
  acquire(signal?: AbortSignal): Promise<void>;
  /** Changes the pace (messages per second) from the next message on. */
  setRate?(perSecond: number): void;
}

export interface Recipient {
  readonly id: number;
  readonly email: string;
  readonly name: string | null;
  readonly attributes: Record<string, unknown>;
}

export interface DispatchOptions {
  readonly bulletinId: number;
  readonly listId: number;
  readonly retry: RetryPolicy;
  /** Re-send deliveries left uncertain by a crash (same Message-ID), or hold them for a decision. */
  readonly resendUncertain: boolean;
  /** When only deferred deliveries remain, wait for them (true) or stop (false). */
  readonly waitForDeferred: boolean;
  readonly leaseMs?: number;
  readonly claimSize?: number;
  readonly flushEvery?: { readonly ms: number; readonly outcomes: number };
}

export interface DispatchDependencies {
  /** The deliveries of the send, in the database (src/app/send/dispatch-store.ts). */
  readonly store: DispatchStore;
  readonly transport: Transport;
  readonly pacer: Pacer;
  /** Composes one recipient's message; may throw for a recipient whose data cannot render. */
  readonly render: (recipient: Recipient) => OutgoingMessage;
  /** Slows the pacer down when the relay pushes back, and back up when it stops (adaptive.ts). */
  readonly pace?: AdaptivePace;
  readonly clock?: Clock;
  /** Records hard bounces seen at RCPT (after their deliveries' outcomes are written). */
  readonly recordHardBounces?: (bounces: readonly SmtpHardBounce[]) => Promise<void>;
  /** Shared with the rest of the send, so every step reports the same outage (default: its own). */
  readonly outage?: DatabaseOutage;
  /** The operator's pause, cancel and pace, heard with a heartbeat (none: nobody can steer it). */
  readonly control?: SendControlPort;
  /**
   * Asked about once a second while the send is paused: true lets this process leave it (a worker
   * with other sends to work on); it gives back its claims and `run()` resolves 'left paused'.
   */
  readonly leaveWhilePaused?: () => Promise<boolean>;
  /** Told what happens (the JSON log and the metrics listen). */
  readonly events?: SendEvents;
}

/** A 5xx at RCPT saying the mailbox does not exist (failure.ts row 11), to count like a reported bounce. */
export interface SmtpHardBounce {
  readonly deliveryId: number;
  readonly subscriberId: number;
  readonly status: string;
  readonly reply: string;
  readonly messageId: string;
}

export interface DispatchCounts {
  sent: number;
  deferred: number;
  failed: number;
  uncertain: number;
  skipped: number;
}

export type DispatchEnd =
  'finished' | 'waiting for deferred' | 'uncertain held' | 'stopped' | 'cancelled' | 'left paused' | 'relay unusable' | 'message too big' | 'held';

/** Why the send stopped by itself: the relay or the message needs fixing first. */
export interface DispatchHalt {
  readonly end: 'relay unusable' | 'message too big' | 'held';
  readonly reply: string;
  readonly relay: string;
}

/** Identical refusals of the message itself, in a row, that hold the send. */
export const MESSAGE_REFUSALS_TO_HOLD = 20;
/** How often a worker with nothing to claim looks whether the others' claims are done. */
const LOOK_AGAIN_MS = 1_000;
/** A paused send asks whether to leave it every this many half beats (about a second). */
const LEAVE_PAUSED_EVERY = 8;
/** How often one claim may go again at the next pace slot before it waits for the backoff. */
const MAX_RESENDS_PER_CLAIM = 3;

type Batch = { claimed: ClaimedDelivery[]; full: boolean };

/** One run's working state: claims waiting their turn, messages in flight, the claim low-water mark. */
interface RunState {
  queue: ClaimedDelivery[];
  readonly inFlight: Set<Promise<void>>;
  lowWater: number;
  /** Set when a claim failed with a connection error: it may have been made, its answer lost. */
  claimInDoubt: boolean;
  prefetch: Promise<Batch> | null;
  lastClaimFull: boolean;
  readonly claimSize: number;
  readonly flushEvery: { readonly ms: number; readonly outcomes: number };
}

/** A unique, human-readable claim owner: host and pid tell whether it is still alive. */
export function newOwner(): string {
  return formatClaimOwner({ host: hostname(), pid: process.pid, nonce: randomBytes(3).toString('hex') });
}

export class Dispatcher {
  readonly owner = newOwner();
  readonly counts: DispatchCounts = { sent: 0, deferred: 0, failed: 0, uncertain: 0, skipped: 0 };
  /** Set while the loop sleeps until the next deferred delivery is due. */
  waitingUntil: Date | null = null;
  /** Set while the loop waits for other workers' claims to end or lapse. */
  waitingForWorkers = false;
  private readonly clock: Clock;
  private readonly stopController = new AbortController();
  private readonly pending: DeliveryOutcome[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private readonly leaseMs: number;
  /** Set when the send stopped by itself (see DispatchHalt). */
  halt: DispatchHalt | null = null;
  private readonly pendingBounces: SmtpHardBounce[] = [];
  /** Claims given back at the end, never attempted to the end (an unusable relay refused them). */
  private readonly unattempted: number[] = [];
  /** The current run of identical refusals of the message itself. */
  private refusalRun: { key: string; ids: number[] } = { key: '', ids: [] };
  private readonly resends = new Map<number, number>();
  /** Messages handed to the transport, each with what aborts its wait for a relay. */
  private readonly sending = new Set<{ readonly claimed: ClaimedDelivery; readonly abort: AbortController }>();
  private readonly outage: DatabaseOutage;
  /** The operator's word on this send (null: no control port). */
  readonly operator: OperatorControl | null;
  /** Set when the send was cancelled (`bulletin cancel`): who did it. */
  cancelledBy: string | null = null;
  /** Ends the wait for a pace slot: aborted when we stop or are paused (one per pause, not one per message). */
  private slotWait = new AbortController();

  constructor(
    private readonly deps: DispatchDependencies,
    private readonly options: DispatchOptions,
  ) {
    this.clock = deps.clock ?? realClock;
    this.outage = deps.outage ?? new DatabaseOutage({ sleep: this.clock.sleep });
    this.leaseMs = options.leaseMs ?? 60_000;
    this.operator =
      deps.control === undefined
        ? null
        : new OperatorControl(
            deps.control,
            this.owner,
            options.bulletinId,
            {
              report: () => ({ pace: this.deps.pace?.rate ?? null, paceNote: this.deps.pace?.note ?? null, sent: this.counts.sent, paused: this.paused }),
              // Messages waiting for a relay (every relay down) are not on the wire: they wait no more.
              paused: () => {
                this.slotWait.abort();
                for (const { abort } of this.sending) abort.abort();
              },
              cancelled: (by) => {
                this.cancelledBy = by;
                this.stop();
              },
              rate: (perSecond) => this.keepRate(perSecond),
              failed: (error) => this.noticeDatabaseError(error),
            },
            deps.events,
          );
  }

  /** Paused by the operator (`bulletin pause`): nothing is claimed or started until unpaused. */
  get paused(): boolean {
    return this.operator?.paused ?? false;
  }

  /** The send's rate set by `bulletin pace`: the adaptive pace keeps below it, and so does the pacer. */
  private keepRate(perSecond: number): void {
    const pace = this.deps.pace;
    if (pace) {
      pace.setCeiling(perSecond);
      this.deps.pacer.setRate?.(pace.rate);
    } else {
      this.deps.pacer.setRate?.(perSecond);
    }
    // The listeners hear the pace allowed now: the new ceiling, or below it while the relay pushes back.
    const rate = pace?.rate ?? perSecond;
    const pushedBack = pace !== undefined && rate < perSecond && pace.state !== 'full';
    this.deps.events?.paceChanged?.({
      bulletinId: this.options.bulletinId,
      rate,
      cause: pushedBack ? pace.state : 'bulletin pace',
      note: pushedBack ? pace.note : `pace ${perSecond}/s set by bulletin pace`,
    });
  }

  /** Stop claiming, finish what is in flight, flush; `run()` then resolves with 'stopped'. */
  stop(): void {
    this.stopController.abort();
    this.slotWait.abort();
    for (const { abort } of this.sending) abort.abort();
  }

  get stopping(): boolean {
    return this.stopController.signal.aborted;
  }

  /** The pace allowed now (messages per second), when it is adaptive. */
  get currentRate(): number | null {
    return this.deps.pace?.rate ?? null;
  }

  /** Why the send goes slower than configured right now (relay pushback, fewer connections, relays down), if it does. */
  get note(): string | null {
    const notes = [
      this.operator?.note() ?? null,
      this.outage.note(`${this.pending.length} outcomes kept, sending paused`),
      this.waitingForWorkers ? 'waiting for other workers to finish their messages' : null,
      this.deps.pace?.note ?? null,
      this.deps.transport.note?.() ?? null,
    ].filter((note) => note !== null);
    return notes.length > 0 ? notes.join('; ') : null;
  }

  /**
   * Sends until every delivery has an outcome, only deferred ones remain (unless waiting for them),
   * or the send is stopped (by `stop()` or by itself); then gives back what was claimed but not sent.
   */
  async run(): Promise<DispatchEnd> {
    const run = this.newRun();
    let stopTimers = () => {};
    let end: DispatchEnd;
    try {
      // The first beat before anything is claimed: a send paused, cancelled or re-paced stays so.
      if (this.operator) await this.untilDatabase(() => this.operator!.beat());
      stopTimers = this.startTimers(run);
      end = await this.sendUntilDone(run);
      await this.giveBackUnsent(run);
    } finally {
      stopTimers();
      await this.settleUp(run);
      await this.operator?.leave();
    }
    await this.reopenHeldRefusals();
    return this.halt?.end ?? (this.cancelledBy !== null ? 'cancelled' : end);
  }

  private newRun(): RunState {
    return {
      queue: [],
      inFlight: new Set(),
      lowWater: 0,
      claimInDoubt: false,
      prefetch: null,
      lastClaimFull: true,
      claimSize: this.options.claimSize ?? Math.max(100, this.deps.transport.concurrency * 20),
      flushEvery: this.options.flushEvery ?? { ms: 250, outcomes: 500 },
    };
  }

  /** The loop: claim when the queue is empty, keep the next claim coming, send at the pace. */
  private async sendUntilDone(run: RunState): Promise<DispatchEnd> {
    for (;;) {
      if (this.stopping) return this.halt?.end ?? 'stopped';
      if (this.paused) {
        if (await this.holdWhilePaused(run)) return 'left paused';
        continue;
      }
      if (this.slotWait.signal.aborted) this.slotWait = new AbortController(); // paused and unpaused between two looks
      if (this.databaseDownSince !== null) {
        await this.resumeAfterOutage(run);
        continue;
      }
      if (run.queue.length === 0) {
        const next = await this.refill(run);
        if (next === 'claim again') continue;
        if (next !== 'send') return next;
      }
      this.prefetchIfLow(run);
      await this.sendNext(run);
    }
  }

  /**
   * The database went away (seen by a flush or a lease renewal): send nothing more until it is back
   * and the outcomes so far are written, then keep only the claims still ours.
   */
  private async resumeAfterOutage(run: RunState): Promise<void> {
    await this.untilDatabase(() => this.flush());
    const held = new Set(await this.untilDatabase(() => this.deps.store.renewLeases(this.owner, this.leaseMs)));
    run.queue = run.queue.filter((claimed) => held.has(claimed.id));
  }

  /**
   * Paused: what was claimed and not yet started goes back (so a paused process holds nothing that
   * could turn uncertain if it died), then it waits until unpaused or stopped. Messages on the wire
   * finish meanwhile, and their outcomes are written by the flush timer. True when it leaves the
   * paused send instead (`leaveWhilePaused`).
   */
  private async holdWhilePaused(run: RunState): Promise<boolean> {
    if (run.prefetch !== null) {
      const batch = await run.prefetch.catch(() => null); // a lost answer leaves claimInDoubt set: adopted later
      run.prefetch = null;
      if (batch) run.queue.push(...batch.claimed);
    }
    run.lowWater = 0; // what goes back is below the mark
    run.lastClaimFull = true;
    // Until unpaused; a message that stopped waiting for a relay comes back into the queue meanwhile.
    let looks = 0;
    while (this.paused && !this.stopping) {
      const waiting = run.queue.splice(0).map((claimed) => claimed.id);
      for (const id of waiting) this.resends.delete(id);
      if (waiting.length > 0) await this.untilDatabase(() => this.deps.store.releaseClaims(this.owner, waiting));
      const leave = this.deps.leaveWhilePaused;
      // About once a second (every LEAVE_PAUSED_EVERY looks), from the first look on.
      if (leave && looks++ % LEAVE_PAUSED_EVERY === 0 && (await leave().catch(() => false))) return true;
      await this.clock.sleep(BEAT_MS / 2, this.stopController.signal);
    }
    return false;
  }

  /** Claims the next batch into the queue; when nothing is claimable, decides whether the send ends. */
  private async refill(run: RunState): Promise<DispatchEnd | 'send' | 'claim again'> {
    let batch: Batch | null = null;
    if (run.prefetch !== null) {
      batch = await run.prefetch.catch((error: unknown) => {
        if (!this.deps.store.isConnectionError(error)) throw error;
        return null;
      });
      run.prefetch = null;
    }
    batch ??= await this.untilDatabase(() => this.claimBatch(run));
    run.queue = [...run.queue, ...batch.claimed]; // (one handed back for the next slot may have come meanwhile)
    run.lastClaimFull = batch.full;
    if (run.queue.length === 0 && !batch.full) return this.whenNothingClaimable(run);
    return run.queue.length === 0 ? 'claim again' : 'send'; // a full batch of skips: claim again
  }

  /**
   * Nothing claimable now: lets in-flight messages end (they may defer), then waits for other
   * workers' claims or for the next retry, or ends the send.
   */
  private async whenNothingClaimable(run: RunState): Promise<DispatchEnd | 'claim again'> {
    const { store } = this.deps;
    const { bulletinId } = this.options;
    const signal = this.stopController.signal;
    await Promise.all(run.inFlight);
    if (run.queue.length > 0) return 'claim again'; // one of them goes again at the next slot
    await this.untilDatabase(() => this.flush());
    const due = await this.untilDatabase(() => store.nextDueAt(bulletinId, this.options.resendUncertain));
    if (due === null) {
      // Other workers still hold claims: wait for them to finish, or for their leases to lapse (a
      // worker that died), and then take those over. Looked at again every second: a worker that
      // finishes its claims (or gives them back, paused or stopped) is seen then, not at its lease's end.
      const leaseEndsInMs = await this.untilDatabase(() => store.msUntilNextLeaseEnd(bulletinId, this.owner));
      if (leaseEndsInMs !== null) {
        this.waitingForWorkers = true;
        await this.clock.sleep(Math.min(this.leaseMs, LOOK_AGAIN_MS, Math.max(50, leaseEndsInMs + 50)), signal);
        this.waitingForWorkers = false;
        await this.untilDatabase(() => store.expireLapsedClaims(bulletinId, this.owner));
        return 'claim again';
      }
      // Deliveries given back below the low-water mark (by a worker that stopped or paused) are
      // claimed by a last pass from the start before the send counts as done.
      if (run.lowWater > 0) {
        run.lowWater = 0;
        return 'claim again';
      }
      return (await this.untilDatabase(() => this.hasHeldUncertain())) ? 'uncertain held' : 'finished';
    }
    if (due.getTime() <= this.clock.now().getTime()) return 'claim again';
    if (!this.options.waitForDeferred) return 'waiting for deferred';
    this.waitingUntil = due;
    await this.clock.sleep(due.getTime() - this.clock.now().getTime(), signal);
    this.waitingUntil = null;
    return 'claim again';
  }

  /**
   * The next batch is claimed while the current one is still being sent (when the last claim came
   * back full), so the connections never idle through a claim's round trip.
   */
  private prefetchIfLow(run: RunState): void {
    if (run.prefetch !== null || !run.lastClaimFull || run.queue.length > run.claimSize / 2 || this.paused) return;
    run.prefetch = this.claimOnce(run).catch((error: unknown) => {
      if (this.deps.store.isConnectionError(error)) run.claimInDoubt = true;
      throw error;
    });
    run.prefetch.catch(() => undefined); // awaited (and its error seen) when the queue runs dry
  }

  /**
   * A free connection first, then the pace's slot: a message must leave at its slot, not queue
   * behind busy connections and go out later in a bunch with others.
   */
  private async sendNext(run: RunState): Promise<void> {
    while (run.inFlight.size >= this.deps.transport.concurrency) await Promise.race(run.inFlight);
    // The wait for the slot ends when we stop or are paused.
    const signal = this.slotWait.signal;
    try {
      await this.untilDatabase(() => this.deps.pacer.acquire(signal));
    } catch (error) {
      if (!signal.aborted) throw error; // an abort only means we are stopping or pausing
    }
    if (signal.aborted) return;
    const claimed = run.queue.shift();
    if (claimed === undefined) return; // the deadline took the rest while we waited for the slot
    // A message refused before it was sent, because we went too fast, goes again at the next slot.
    const attempt = this.attempt(claimed, (again) => run.queue.unshift(again)).then(async () => {
      run.inFlight.delete(attempt);
      if (this.pending.length >= run.flushEvery.outcomes) await this.flush().catch((error) => this.noticeDatabaseError(error));
    });
    run.inFlight.add(attempt);
  }

  /** Claims the next batch: retries that are due first, then queued deliveries past the low-water mark. */
  private async claimBatch(run: RunState): Promise<Batch> {
    if (run.claimInDoubt) {
      // A claim whose answer was lost with the connection may have been made: its deliveries are
      // ours in `sending`, unknown to us. Once nothing is in flight and every outcome is written,
      // whatever we still hold is exactly those: send them (they never left).
      await Promise.all(run.inFlight);
      await this.flush();
      const adopted = await this.deps.store.selectOwnClaims(this.options.bulletinId, this.owner);
      run.claimInDoubt = false;
      run.lowWater = adopted.reduce((max, row) => Math.max(max, row.id), run.lowWater);
      if (adopted.length > 0) return { claimed: adopted, full: true };
    }
    try {
      return await this.claimOnce(run);
    } catch (error) {
      if (this.deps.store.isConnectionError(error)) run.claimInDoubt = true;
      throw error;
    }
  }

  private async claimOnce(run: RunState): Promise<Batch> {
    const { store } = this.deps;
    const common = { bulletinId: this.options.bulletinId, listId: this.options.listId, owner: this.owner, leaseMs: this.leaseMs, limit: run.claimSize };
    const now = this.clock.now();
    let claimed = await store.claimDue({ ...common, now, includeUncertain: this.options.resendUncertain });
    if (claimed.length === 0) {
      claimed = await store.claimQueued({ ...common, now, afterId: run.lowWater });
      run.lowWater = claimed.reduce((max, row) => Math.max(max, row.id), run.lowWater);
    }
    const skipped = claimed.filter((row) => row.state === 'skipped').length;
    this.counts.skipped += skipped;
    if (skipped > 0) this.deps.events?.skipped?.({ bulletinId: this.options.bulletinId, count: skipped });
    return { claimed: claimed.filter((row) => row.state === 'sending'), full: claimed.length === run.claimSize };
  }

  /** The timers beside the loop: flushes, lease renewal, the pace's drift, deadlines. Returns their stop. */
  private startTimers(run: RunState): () => void {
    const { store } = this.deps;
    const flushTimer = setInterval(() => void this.flush().catch((error) => this.noticeDatabaseError(error)), run.flushEvery.ms);
    // Renew our leases; and take over the claims of workers that stopped renewing theirs (killed,
    // or cut off): they become uncertain, and are re-sent with their Message-ID when due.
    const leaseTimer = setInterval(
      () =>
        void store
          .renewLeases(this.owner, this.leaseMs)
          .then(() => store.expireLapsedClaims(this.options.bulletinId, this.owner))
          .catch((error) => this.noticeDatabaseError(error)),
      Math.max(250, this.leaseMs / 3),
    );
    // The pace moves with time too (a slow pace gets few outcomes to react to).
    const paceTimer = setInterval(() => {
      if (this.deps.pace?.update()) this.applyPace(this.deps.pace);
    }, 250);
    // The heartbeat, which hears the operator's pause, cancel and pace.
    const beatTimer = this.operator ? setInterval(() => this.operator?.tick(), BEAT_MS) : undefined;
    // A claimed delivery waiting its turn (slow pace, no connection) fails on time at its deadline.
    const deadlineTimer = setInterval(() => {
      const now = this.clock.now();
      for (const { claimed, abort } of this.sending) if (isPastDeadline(this.options.retry, claimed.firstAttemptAt, now)) abort.abort();
      const expired = run.queue.filter((claimed) => isPastDeadline(this.options.retry, claimed.firstAttemptAt, now));
      if (expired.length === 0) return;
      run.queue = run.queue.filter((claimed) => !expired.includes(claimed));
      for (const claimed of expired) this.expire(claimed);
    }, 1_000);
    return () => {
      clearInterval(flushTimer);
      clearInterval(leaseTimer);
      clearInterval(paceTimer);
      clearInterval(deadlineTimer);
      clearInterval(beatTimer);
    };
  }

  /** At the end of the loop: what was claimed and never sent (or never attempted) is given back. */
  private async giveBackUnsent(run: RunState): Promise<void> {
    if (run.prefetch !== null) {
      const batch = await run.prefetch.catch(() => ({ claimed: [] as ClaimedDelivery[], full: false }));
      run.prefetch = null;
      run.queue.push(...batch.claimed);
    }
    await Promise.all(run.inFlight);
    const unsent = [...run.queue.map((claimed) => claimed.id), ...this.unattempted.splice(0)];
    await this.untilDatabase(() => this.deps.store.releaseClaims(this.owner, unsent), { evenWhenStopping: true });
    run.queue = [];
  }

  /** However the loop ended: every outcome is written, and a claim in doubt is given back. */
  private async settleUp(run: RunState): Promise<void> {
    const { store } = this.deps;
    await Promise.all(run.inFlight);
    await this.untilDatabase(() => this.flush(), { evenWhenStopping: true });
    if (run.claimInDoubt) {
      // Stopping with a claim in doubt: give back what it may have taken (none of it was sent).
      await this.untilDatabase(
        async () =>
          store.releaseClaims(
            this.owner,
            (await store.selectOwnClaims(this.options.bulletinId, this.owner)).map((row) => row.id),
          ),
        { evenWhenStopping: true },
      );
    }
  }

  /** A held send does not burn the list: the refused messages go again once the send resumes. */
  private async reopenHeldRefusals(): Promise<void> {
    if (this.halt?.end !== 'held') return;
    const ids = this.refusalRun.ids;
    await this.untilDatabase(() => this.deps.store.reopenFailedDeliveries(ids), { evenWhenStopping: true });
  }

  /** Sends one claimed delivery and queues its outcome for the next flush. Never throws. */
  private async attempt(claimed: ClaimedDelivery, sendAgain: (claimed: ClaimedDelivery) => void): Promise<void> {
    const subscriber = claimed.subscriber;
    if (!subscriber) return; // erased mid-claim: the claim statement already skipped it
    let message: OutgoingMessage;
    try {
      message = this.deps.render(subscriber);
    } catch (error) {
      this.settle(claimed, '', outcomeOf.unrenderable(error as Error), false);
      return;
    }
    // A wait for a relay ends when we stop or at the delivery's deadline (the deadline timer aborts
    // it), not whenever a relay comes back.
    const abort = new AbortController();
    if (this.stopping) abort.abort();
    const sending = { claimed, abort };
    this.sending.add(sending);
    const sentAt = performance.now();
    let outcome: SendOutcome;
    try {
      outcome = await this.deps.transport.send(message, abort.signal);
    } catch (error) {
      // A transport must classify its failures; an exception is a bug, and the message may have left.
      outcome = outcomeOf.transportThrew(error as Error, this.deps.transport.description);
    } finally {
      this.sending.delete(sending);
    }
    const pace = this.deps.pace;
    if (pace?.observe(outcome, sentAt)) this.applyPace(pace);
    if (outcome.kind === 'unusable') {
      // Nothing was sent, and nothing will be until the relay or the message is fixed: stop, and
      // give this delivery back as it was (queued, or deferred and due).
      this.unattempted.push(claimed.id);
      this.halt ??= { end: outcome.why === 'size' ? 'message too big' : 'relay unusable', reply: outcome.reply, relay: outcome.relay };
      this.stop();
      return;
    }
    if (outcome.kind === 'deferred' && outcome.resend === 'next-slot' && this.stopping) {
      this.unattempted.push(claimed.id); // never sent: given back as it was, not deferred
      return;
    }
    if (outcome.kind === 'deferred' && outcome.resend === 'next-slot' && this.paused) {
      sendAgain(claimed); // never sent: given back while paused, or sent once unpaused
      return;
    }
    if (outcome.kind === 'deferred' && outcome.resend === 'next-slot') {
      const resends = (this.resends.get(claimed.id) ?? 0) + 1;
      if (resends <= MAX_RESENDS_PER_CLAIM && !isPastDeadline(this.options.retry, claimed.firstAttemptAt, this.clock.now())) {
        this.resends.set(claimed.id, resends);
        sendAgain(claimed);
        return;
      }
    }
    this.resends.delete(claimed.id);
    this.settle(claimed, message.messageId, outcome);
    this.watchRefusals(claimed, outcome);
    if (outcome.kind === 'failed' && outcome.bounce !== undefined) {
      this.pendingBounces.push({
        deliveryId: claimed.id,
        subscriberId: subscriber.id,
        status: outcome.bounce,
        reply: outcome.reply,
        messageId: message.messageId,
      });
    }
  }

  /**
   * Holds the send after MESSAGE_REFUSALS_TO_HOLD outcomes in a row that are the same refusal of the
   * message itself (its content, size or our policy standing), not of a recipient: the relay would
   * refuse every copy, and the list would burn. Deferrals neither break nor extend a run.
   */
  private watchRefusals(claimed: ClaimedDelivery, outcome: SendOutcome): void {
    if (outcome.kind === 'deferred' || outcome.kind === 'uncertain') return;
    if (outcome.kind !== 'failed' || outcome.about !== 'message') {
      this.refusalRun = { key: '', ids: [] };
      return;
    }
    const key = /^\d{3}(?:[ -]\d\.\d{1,3}\.\d{1,3})?/.exec(outcome.reply)?.[0] ?? outcome.reply.slice(0, 40);
    if (key !== this.refusalRun.key) this.refusalRun = { key, ids: [] };
    this.refusalRun.ids.push(claimed.id);
    if (this.refusalRun.ids.length >= MESSAGE_REFUSALS_TO_HOLD && this.halt === null) {
      this.halt = { end: 'held', reply: outcome.reply, relay: outcome.relay };
      this.stop();
    }
  }

  /** A claimed delivery whose deadline passed before its turn came: failed as expired, on time. */
  private expire(claimed: ClaimedDelivery): void {
    this.resends.delete(claimed.id);
    this.counts.failed++;
    this.pending.push({
      id: claimed.id,
      state: 'failed',
      relay: '',
      reply: 'expired: no success before the retry deadline; it was still waiting for a relay or for its turn',
      messageId: '',
      nextAttemptAt: null,
    });
    this.tell(claimed, 'failed', '', 'expired: no success before the retry deadline', false);
  }

  /** The adaptive pace moved: the pacer follows it, and the listeners hear of it. */
  private applyPace(pace: AdaptivePace): void {
    this.deps.pacer.setRate?.(pace.rate);
    this.deps.events?.paceChanged?.({
      bulletinId: this.options.bulletinId,
      rate: pace.rate,
      cause: pace.state === 'full' ? null : pace.state,
      note: pace.note,
    });
  }

  /** One outcome, for the listeners (the reply's class from its first digit; no reply code: 'none'). */
  private tell(claimed: ClaimedDelivery, state: AttemptEvent['state'], relay: string, reply: string, tried: boolean): void {
    const events = this.deps.events;
    if (events?.attempt === undefined) return;
    const digit = /^([245])\d\d(?:[ -]|$)/.exec(reply)?.[1];
    events.attempt({
      bulletinId: this.options.bulletinId,
      deliveryId: claimed.id,
      email: claimed.subscriber?.email ?? '',
      state,
      replyClass: digit === undefined ? 'none' : (`${digit}xx` as AttemptEvent['replyClass']),
      reply,
      relay,
      tried,
    });
  }

  private settle(claimed: ClaimedDelivery, messageId: string, outcome: Exclude<SendOutcome, { kind: 'unusable' }>, tried = true): void {
    let state = outcome.kind;
    let reply = outcome.reply;
    let next: Date | null = null;
    if (state === 'deferred' || state === 'uncertain') {
      // Both come back with backoff (uncertain ones only under the resend policy, each time twice as
      // late: a relay answering too slowly gets ever fewer copies), until the deadline.
      next = nextAttemptAt(this.options.retry, claimed.attempts, claimed.firstAttemptAt, this.clock.now(), Math.random, state);
      if (next === null) {
        reply = `expired: no success before the retry deadline; last attempt ${state}: ${reply}`;
        state = 'failed';
      }
    }
    this.counts[state]++;
    this.pending.push({ id: claimed.id, state, relay: outcome.relay, reply, messageId, nextAttemptAt: next });
    this.tell(claimed, state, outcome.relay, outcome.reply, tried);
  }

  /** Since when the database has been unreachable (null: it answers). */
  get databaseDownSince(): Date | null {
    return this.outage.downSince;
  }

  private noticeDatabaseError(error: unknown): void {
    this.outage.notice(error); // a failed statement is retried by the next flush or renewal
  }

  /**
   * Runs a database step; while the database is unreachable, waits (0.5 s, doubling to 15 s) and
   * tries again, so a restarted server costs a pause, never a crash or a lost outcome. Other errors
   * are thrown. Gives up only when stopping (unless `evenWhenStopping`: the last flush).
   */
  private untilDatabase<T>(step: () => Promise<T>, options: { evenWhenStopping?: boolean } = {}): Promise<T> {
    return this.outage.ride(step, options.evenWhenStopping ? {} : { signal: this.stopController.signal });
  }

  /** Writes the outcomes gathered so far in one statement; flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing
      .catch(() => undefined)
      .then(async () => {
        if (this.pending.length === 0 && this.pendingBounces.length === 0) return;
        const batch = this.pending.splice(0, this.pending.length);
        const bounces = this.pendingBounces.splice(0, this.pendingBounces.length);
        try {
          await this.deps.store.recordOutcomes(this.owner, batch);
        } catch (error) {
          this.pending.unshift(...batch); // kept for the next flush: an outcome is never dropped
          this.pendingBounces.unshift(...bounces);
          throw error;
        }
        try {
          if (bounces.length > 0) await this.deps.recordHardBounces?.(bounces);
        } catch (error) {
          this.pendingBounces.unshift(...bounces);
          throw error;
        }
      });
    return this.flushing;
  }

  private async hasHeldUncertain(): Promise<boolean> {
    if (this.options.resendUncertain) return false;
    return (await this.deps.store.countUncertain(this.options.bulletinId)) > 0;
  }
}
