// What happens during a send that the people on call care about, said as events: the JSON log
// (src/app/observe/log.ts) and the Prometheus metrics (src/app/observe/metrics.ts) both listen;
// src/cli/observe.ts builds them for a command. The dispatcher, the relay pool, the database outage
// and the send's control emit them; every listener method is optional, and must never throw or block.
import type { DeliveryState } from '../domain/delivery.js';

/** Who did it: `user@host` of the process that ran the command. */
export type Actor = string;

/** One attempt's result as the dispatcher recorded it (per message: logs only with --verbose). */
export interface AttemptEvent {
  readonly bulletinId: number;
  readonly deliveryId: number;
  readonly email: string;
  /** What the delivery became; 'sent' | 'deferred' | 'failed' | 'uncertain'. */
  readonly state: Extract<DeliveryState, 'sent' | 'deferred' | 'failed' | 'uncertain'>;
  /** The reply's class: '2xx', '4xx', '5xx', or 'none' (no reply: a dropped connection, a timeout, a render error). */
  readonly replyClass: '2xx' | '4xx' | '5xx' | 'none';
  readonly reply: string;
  readonly relay: string;
  /** Whether the message was handed to a relay (false: it could not be rendered, or expired waiting for its turn). */
  readonly tried: boolean;
}

export interface SendEvents {
  /** A process began working on a send (`total`: deliveries still open when it began). */
  sendStarted?(event: { bulletinId: number; total: number; command: string; rate: number | null }): void;
  /** The process stopped working on it: finished, stopped, cancelled, held… */
  sendEnded?(event: { bulletinId: number; end: string; sent: number; deferred: number; failed: number; uncertain: number; skipped: number }): void;
  attempt?(event: AttemptEvent): void;
  /** Claimed deliveries skipped instead of sent (the member left, or was erased, before their turn). */
  skipped?(event: { bulletinId: number; count: number }): void;
  /**
   * The pace allowed now changed (adaptive: `cause` the pace's case, e.g. 'rate signal' or
   * 'recovering', null at full speed; `note` says it in words).
   */
  paceChanged?(event: { bulletinId: number; rate: number; cause: string | null; note: string | null }): void;
  paused?(event: { bulletinId: number; by: Actor; since: Date }): void;
  unpaused?(event: { bulletinId: number; by: Actor | null }): void;
  /** `bulletin pace` set the send's rate for every process. */
  repaced?(event: { bulletinId: number; rate: number; by: Actor }): void;
  cancelled?(event: { bulletinId: number; by: Actor }): void;
  relayDown?(event: { relay: string; error: string }): void;
  relayUp?(event: { relay: string }): void;
  databaseDown?(event: { error: string; since: Date }): void;
  databaseBack?(event: { downSeconds: number }): void;
}

/** Several listeners as one (each optional method called on every listener that has it). */
export function allOf(...listeners: readonly SendEvents[]): SendEvents {
  const each =
    <K extends keyof SendEvents>(name: K) =>
    (event: Parameters<NonNullable<SendEvents[K]>>[0]) => {
      for (const listener of listeners) (listener[name] as ((event: unknown) => void) | undefined)?.call(listener, event);
    };
  return {
    sendStarted: each('sendStarted'),
    sendEnded: each('sendEnded'),
    attempt: each('attempt'),
    skipped: each('skipped'),
    paceChanged: each('paceChanged'),
    paused: each('paused'),
    unpaused: each('unpaused'),
    repaced: each('repaced'),
    cancelled: each('cancelled'),
    relayDown: each('relayDown'),
    relayUp: each('relayUp'),
    databaseDown: each('databaseDown'),
    databaseBack: each('databaseBack'),
  };
}
