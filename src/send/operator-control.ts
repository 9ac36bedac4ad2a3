// The operator's hands on a running send, as one dispatcher sees them: it beats (BEAT_MS) through
// the control port and applies what it hears: a pause (the dispatcher stops waiting for slots and claiming), an
// unpause, a cancel (the dispatcher stops) and a new rate (`bulletin pace`), each said once as an event.
import { formatRate } from './adaptive.js';
import { NO_CONTROL, type ControlState, type ProcessReport, type SendControlPort } from './send-control.js';
import type { SendEvents } from './send-events.js';

export interface OperatorHooks {
  /** What the process says of itself with each beat. */
  report(): ProcessReport;
  /** The send was paused: stop waiting for anything that would start a message. */
  paused(): void;
  /** The send was cancelled: stop working on it. */
  cancelled(by: string): void;
  /** The send's rate was set (or is set, at the first beat). */
  rate(perSecond: number): void;
  /** A beat failed (the database went away): the dispatcher's outage handling hears of it. */
  failed(error: unknown): void;
}

export class OperatorControl {
  /** What the last beat heard. */
  state: ControlState = NO_CONTROL;
  private beating = false;
  private heard = false;

  constructor(
    private readonly port: SendControlPort,
    private readonly owner: string,
    private readonly bulletinId: number,
    private readonly hooks: OperatorHooks,
    private readonly events: SendEvents = {},
  ) {}

  get paused(): boolean {
    return this.state.paused !== null;
  }

  /** One beat, applied; throws what the port throws (the first beat is awaited, so a resume starts paused or re-paced). */
  async beat(): Promise<void> {
    const next = await this.port.beat(this.owner, this.hooks.report());
    this.apply(next);
  }

  /** For the timer: a beat unless one is still under way; its error goes to `failed`. */
  tick(): void {
    if (this.beating) return;
    this.beating = true;
    void this.beat()
      .catch((error: unknown) => this.hooks.failed(error))
      .finally(() => {
        this.beating = false;
      });
  }

  leave(): Promise<void> {
    return this.port.leave(this.owner).catch(() => undefined);
  }

  /** `paused since 09:12:04 by ops@host-a (bulletin unpause 7)`, `pace 20/s set by …`, or null. */
  note(): string | null {
    const { paused, rate, cancelled } = this.state;
    const notes = [
      cancelled ? `cancelled by ${cancelled.by}` : null,
      paused ? `paused since ${paused.since.toISOString().slice(11, 19)} UTC by ${paused.by} (bulletin unpause ${this.bulletinId})` : null,
      rate ? `pace ${formatRate(rate.perSecond)} set by ${rate.by}` : null,
    ].filter((note) => note !== null);
    return notes.length > 0 ? notes.join('; ') : null;
  }

  private apply(next: ControlState): void {
    const before = this.state;
    const first = !this.heard;
    this.heard = true;
    this.state = next;
    const bulletinId = this.bulletinId;
    if (next.rate !== null && (first || before.rate?.perSecond !== next.rate.perSecond)) {
      this.hooks.rate(next.rate.perSecond);
      if (!first) this.events.repaced?.({ bulletinId, rate: next.rate.perSecond, by: next.rate.by });
    }
    if (next.paused !== null && before.paused === null) {
      this.hooks.paused();
      this.events.paused?.({ bulletinId, by: next.paused.by, since: next.paused.since });
    } else if (next.paused === null && before.paused !== null) {
      this.events.unpaused?.({ bulletinId, by: null });
    }
    if (next.cancelled !== null && before.cancelled === null) {
      this.events.cancelled?.({ bulletinId, by: next.cancelled.by });
      this.hooks.cancelled(next.cancelled.by);
    }
  }
}
