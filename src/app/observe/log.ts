// The JSON log of a long-running command (pino): one line per event that matters, each with an
// `event` field naming it, the bulletin id where there is one, and the host and pid of the process.
// Per-message lines (`attempt`, `skipped`) only when verbose. The events are listed in README, "Metrics and logs".
import { hostname } from 'node:os';
import { pino, stdTimeFunctions, type Logger } from 'pino';
import type { SendEvents } from '../../send/send-events.js';

/** Where the lines go: anything with `write` (the CLI's stderr). */
export interface LogStream {
  write(line: string): unknown;
}

export interface EventLog {
  /** The send's listener. */
  readonly events: SendEvents;
  /** Any other event of the command: `event` names it, `fields` say the rest. */
  info(event: string, fields?: Record<string, unknown>, message?: string): void;
  warn(event: string, fields?: Record<string, unknown>, message?: string): void;
  error(event: string, fields?: Record<string, unknown>, message?: string): void;
}

export function createEventLog(stream: LogStream, options: { readonly verbose: boolean; readonly command: string }): EventLog {
  const logger: Logger = pino(
    {
      base: { host: hostname(), pid: process.pid, command: options.command },
      level: options.verbose ? 'debug' : 'info',
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  const line =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (event: string, fields: Record<string, unknown> = {}, message: string = event) =>
      logger[level]({ event, ...fields }, message);
  const info = line('info');
  const warn = line('warn');
  const error = line('error');
  const debug = line('debug');
  /** The send being worked on, named on the lines of events that are not a send's own (relays, the database). */
  let current: { bulletinId?: number } = {};
  const events: SendEvents = {
    sendStarted: ({ bulletinId, total, command, rate }) => {
      current = { bulletinId };
      info('send started', { bulletinId, total, startedBy: command, rate }, `send of bulletin ${bulletinId} started: ${total} deliveries open`);
    },
    sendEnded: ({ bulletinId, end, ...counts }) =>
      (end === 'finished' ? info : end.startsWith('error') ? error : info)(
        end === 'finished' ? 'send finished' : 'send ended',
        { bulletinId, end, ...counts },
        `send of bulletin ${bulletinId} ${end === 'finished' ? 'finished' : `ended: ${end}`}`,
      ),
    attempt: (attempt) => debug('attempt', { ...attempt }, `${attempt.email}: ${attempt.state} (${attempt.reply.slice(0, 120)})`),
    skipped: ({ bulletinId, count }) => debug('skipped', { bulletinId, count }),
    paceChanged: ({ bulletinId, rate, cause, note }) =>
      info('pace changed', { bulletinId, rate, cause, note }, note ?? `pace back to ${rate} messages per second`),
    paused: ({ bulletinId, by, since }) => info('paused', { bulletinId, by, since: since.toISOString() }, `send of bulletin ${bulletinId} paused by ${by}`),
    unpaused: ({ bulletinId, by }) => info('unpaused', { bulletinId, by }, `send of bulletin ${bulletinId} unpaused`),
    repaced: ({ bulletinId, rate, by }) => info('re-paced', { bulletinId, rate, by }, `send of bulletin ${bulletinId} re-paced to ${rate}/s by ${by}`),
    cancelled: ({ bulletinId, by }) => warn('cancelled', { bulletinId, by }, `send of bulletin ${bulletinId} cancelled by ${by}`),
    relayDown: ({ relay, error: reason }) => warn('relay down', { ...current, relay, error: reason }, `${relay} is down: ${reason}`),
    relayUp: ({ relay }) => info('relay back', { ...current, relay }, `${relay} is back`),
    databaseDown: ({ error: reason, since }) =>
      warn('database unreachable', { ...current, error: reason, since: since.toISOString() }, `the database is unreachable (${reason}); waiting for it`),
    databaseBack: ({ downSeconds }) => info('database back', { ...current, downSeconds }, `the database answers again after ${downSeconds.toFixed(1)} s`),
  };
  return { events, info, warn, error };
}
