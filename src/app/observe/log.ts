// The JSON log of a long-running command (pino): one line per event that matters, each with an
// `event` field naming it, the bulletin id where there is one, and the host and pid of the process.
// Per-message lines (`attempt`, `skipped`) only when verbose. A worker coming back to a send where
// nothing changed (still paused, still waiting for its retries) logs that round only when verbose,
// and a pause or a pace is logged once however often it is heard. The events are listed in README, "Metrics and logs".
import { hostname } from 'node:os';
import { pino, stdTimeFunctions, type Logger } from 'pino';
import type { SendEvents } from '../../send/send-events.js';
import { QuietRuns } from '../send/quiet-runs.js';

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
  const quietRuns = new QuietRuns();
  /** The pace last logged of each send (rate and cause). */
  const pacesLogged = new Map<number, string>();
  /** The pause last logged of each send (its `since`): heard again, it is the same pause. */
  const pausesLogged = new Map<number, string>();
  /** The start of a run that may turn out like the last quiet one: logged once something happens. */
  let heldStart: (() => void) | null = null;
  const startIfHeld = () => {
    const start = heldStart;
    heldStart = null;
    start?.();
  };
  /** Whether `value` is news for this send (not what `logged` last holds of it); news goes after the held start. */
  const isNews = (logged: Map<number, string>, bulletinId: number, value: string): boolean => {
    if (logged.get(bulletinId) === value) return false;
    logged.set(bulletinId, value);
    startIfHeld();
    return true;
  };
  /** Any event of the run but its start and end: the start goes first if it was held. */
  const during =
    <T>(log: (event: T) => void) =>
    (event: T) => {
      startIfHeld();
      log(event);
    };
  const events: SendEvents = {
    sendStarted: ({ bulletinId, total, command, rate }) => {
      current = { bulletinId };
      const start = () =>
        info('send started', { bulletinId, total, startedBy: command, rate }, `send of bulletin ${bulletinId} started: ${total} deliveries open`);
      // Verbose, every line is logged as it comes (the repeated ones at debug level, which it shows).
      heldStart = quietRuns.lastWasQuiet(bulletinId) && !options.verbose ? start : null;
      if (heldStart === null) start();
    },
    sendEnded: ({ bulletinId, end, ...counts }) => {
      // Nothing else was logged of this run (its start is still held), and it is a repeat.
      const again = quietRuns.ended(bulletinId, end, counts) && heldStart !== null;
      if (!again) startIfHeld();
      heldStart = null;
      (again ? debug : end === 'finished' ? info : end.startsWith('error') ? error : info)(
        end === 'finished' ? 'send finished' : 'send ended',
        { bulletinId, end, ...counts },
        `send of bulletin ${bulletinId} ${end === 'finished' ? 'finished' : `ended: ${end}`}`,
      );
    },
    attempt: during((attempt) => debug('attempt', { ...attempt }, `${attempt.email}: ${attempt.state} (${attempt.reply.slice(0, 120)})`)),
    skipped: during(({ bulletinId, count }) => debug('skipped', { bulletinId, count })),
    // A run that begins hears the send's pace and pause again: unchanged since logged, they are no news.
    paceChanged: ({ bulletinId, rate, cause, note }) =>
      (isNews(pacesLogged, bulletinId, `${rate} ${cause}`) ? info : debug)(
        'pace changed',
        { bulletinId, rate, cause, note },
        note ?? `pace back to ${rate} messages per second`,
      ),
    paused: ({ bulletinId, by, since }) =>
      (isNews(pausesLogged, bulletinId, since.toISOString()) ? info : debug)(
        'paused',
        { bulletinId, by, since: since.toISOString() },
        `send of bulletin ${bulletinId} paused by ${by}`,
      ),
    unpaused: during(({ bulletinId, by }) => {
      pausesLogged.delete(bulletinId);
      info('unpaused', { bulletinId, by }, `send of bulletin ${bulletinId} unpaused`);
    }),
    repaced: during(({ bulletinId, rate, by }) => info('re-paced', { bulletinId, rate, by }, `send of bulletin ${bulletinId} re-paced to ${rate}/s by ${by}`)),
    cancelled: during(({ bulletinId, by }) => warn('cancelled', { bulletinId, by }, `send of bulletin ${bulletinId} cancelled by ${by}`)),
    relayDown: during(({ relay, error: reason }) => warn('relay down', { ...current, relay, error: reason }, `${relay} is down: ${reason}`)),
    relayUp: during(({ relay }) => info('relay back', { ...current, relay }, `${relay} is back`)),
    databaseDown: during(({ error: reason, since }) =>
      warn('database unreachable', { ...current, error: reason, since: since.toISOString() }, `the database is unreachable (${reason}); waiting for it`),
    ),
    databaseBack: during(({ downSeconds }) =>
      info('database back', { ...current, downSeconds }, `the database answers again after ${downSeconds.toFixed(1)} s`),
    ),
  };
  return { events, info, warn, error };
}
