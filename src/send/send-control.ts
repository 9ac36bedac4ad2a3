// What the dispatcher needs to hear the operator: every process on a send beats a few times a
// second, saying how it is doing, and hears back whether the send is paused, cancelled or re-paced
// (`bulletin pause`, `cancel`, `pace`, from any machine). Declared here, implemented in
// src/app/send/send-control.ts over the database.

/** What a process says of itself with each beat (shown by `bulletin status`). */
export interface ProcessReport {
  /** Messages per second it keeps now (null: no adaptive pace). */
  readonly pace: number | null;
  /** Why it goes slower than its ceiling, if it does. */
  readonly paceNote: string | null;
  readonly sent: number;
  readonly paused: boolean;
}

/** The operator's word on a send, as the last beat heard it. */
export interface ControlState {
  readonly paused: { readonly since: Date; readonly by: string } | null;
  /** The rate every process keeps, set by `bulletin pace` (null: each keeps its own --rate). */
  readonly rate: { readonly perSecond: number; readonly by: string; readonly at: Date } | null;
  readonly cancelled: { readonly at: Date; readonly by: string } | null;
}

export const NO_CONTROL: ControlState = Object.freeze({ paused: null, rate: null, cancelled: null });

export interface SendControlPort {
  /** Renews this process's heartbeat and reads the send's control, in one round trip. */
  beat(owner: string, report: ProcessReport): Promise<ControlState>;
  /** The process leaves the send (best effort: a row left behind goes silent). */
  leave(owner: string): Promise<void>;
}

/** How often a process beats: a pause, cancel or new pace reaches it within this (plus a round trip). */
export const BEAT_MS = 250;
