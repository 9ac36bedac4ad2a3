// The run options every sending use case takes (send, resume, retry, worker, demo), assembled from
// the parsed send settings and the two choices a command makes: re-send uncertain ones, wait for
// deferred ones.
import type { DatabaseOutage } from '../../send/database-outage.js';
import type { SendEvents } from '../../send/send-events.js';
import type { Transport } from '../../send/transport.js';
import type { SendSettings } from '../config.js';
import { pacingOf } from '../transports.js';
import type { RunOptions } from './run.js';

export interface RunChoices {
  /** Re-send deliveries left uncertain by a crash (same Message-ID), or hold them. */
  readonly resendUncertain: boolean;
  /** When only deferred deliveries remain, wait for their retries (true) or stop (false). */
  readonly waitForDeferred: boolean;
  readonly onStart?: RunOptions['onStart'];
  readonly outage?: DatabaseOutage;
  readonly events?: SendEvents;
  /** Which command runs the process (send, resume, retry, worker), for `bulletin status`. */
  readonly command?: string;
}

export function runOptions(transport: Transport, settings: SendSettings, choices: RunChoices): RunOptions {
  return {
    transport,
    ...(settings.leaseMs === undefined ? {} : { leaseMs: settings.leaseMs }),
    ...pacingOf(settings),
    retry: settings.retry,
    resendUncertain: choices.resendUncertain,
    waitForDeferred: choices.waitForDeferred,
    ...(choices.onStart ? { onStart: choices.onStart } : {}),
    ...(choices.outage ? { outage: choices.outage } : {}),
    ...(choices.events ? { events: choices.events } : {}),
    ...(choices.command ? { command: choices.command } : {}),
  };
}
