// What the people on call see of a long-running command: the flags (--log-format, --verbose,
// --metrics-port, --metrics-host, serve's --metrics) and what they build from them: the JSON event
// log on stderr (src/app/observe/log.ts) and a small HTTP server for GET /metrics (metrics.ts).
import { createServer } from 'node:http';
import { Option, type Command } from 'commander';
import type { App } from '../app/context.js';
import { createEventLog, type EventLog } from '../app/observe/log.js';
import { SendMetrics, type MetricsSource } from '../app/observe/metrics.js';
import { BulletinError } from '../domain/errors.js';
import { allOf, type SendEvents } from '../send/send-events.js';
import { parsePort } from './arguments.js';
import type { CliContext } from './context.js';

export interface LogFlags {
  readonly logFormat?: 'human' | 'json';
  readonly verbose?: boolean;
}

export interface MetricsFlags {
  readonly metricsPort?: number;
  readonly metricsHost?: string;
}

/** --log-format and --verbose (serve and inbound take --log-format only: they have no per-message sends). */
export function addLogOptions(command: Command, options: { readonly verbose: boolean } = { verbose: true }): Command {
  command.addOption(
    new Option(
      '--log-format <format>',
      "human: sentences for people (and a send's progress display); json: one JSON line per event on stderr (pino), nothing else there",
    )
      .choices(['human', 'json'])
      .default('human'),
  );
  if (options.verbose) command.option('--verbose', 'with --log-format json, also one line per message (its outcome and the reply)');
  return command;
}

/** --log-format, --verbose, --metrics-port and --metrics-host: send, resume, retry and worker. */
export function addObserveOptions(command: Command): Command {
  return addMetricsOptions(addLogOptions(command));
}

/** --metrics-port and --metrics-host (the sending commands, and inbound). */
export function addMetricsOptions(command: Command): Command {
  return command
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://<metrics-host>:<port>/metrics while the command runs (0: any free port)', parsePort)
    .option('--metrics-host <host>', 'address the metrics server listens on', '127.0.0.1');
}

/** With --metrics-port, the metrics server of `source`, listening, and said where (on stderr or in the log); else null. */
export async function startMetricsServer(
  context: CliContext,
  flags: MetricsFlags,
  log: EventLog | null,
  source: MetricsSource,
): Promise<{ url: string; close(): Promise<void> } | null> {
  if (flags.metricsPort === undefined) return null;
  const server = await serveMetrics(source, flags.metricsHost ?? '127.0.0.1', flags.metricsPort);
  if (log) log.info('metrics listening', { url: server.url }, `Metrics at ${server.url}`);
  else context.io.stderr.write(`Metrics at ${server.url}\n`);
  return server;
}

/** The help text of those flags, for the commands that send, with examples of `command`. */
export function observeHelp(examples: string): string {
  return `
For the people on call: --metrics-port serves Prometheus metrics (deliveries by outcome, SMTP
replies by class, the pace and its cause, the queue by state, relays and the database up or down;
see README, "Metrics and logs") while the command runs; it says where on stderr ("Metrics at …").
--log-format json writes one JSON line per event on stderr instead of the progress display (send
started, finished or ended, pace changed and why, paused, re-paced, cancelled, relay down and back,
database unreachable and back), each with the bulletin id and the host; --verbose adds one line
per message. The summary still goes to stdout.

Examples:
${examples}`;
}

/** What a sending command observes: its listener (for the send, the relays and the outage), its log. */
export interface SendObservation {
  /** Undefined when nothing listens (no JSON log, no metrics). */
  readonly events: SendEvents | undefined;
  /** The JSON log, or null with --log-format human. */
  readonly log: EventLog | null;
  /** With a JSON log, no sentences on stderr (the log says it). */
  readonly silent: boolean;
  /** What the send's run options take of it. */
  readonly runChoices: { readonly events?: SendEvents };
  /** Lets the metrics count the queue in the app's database. */
  attach(app: App): void;
  close(): Promise<void>;
}

/**
 * The JSON log (with --log-format json) and the metrics server (with --metrics-port) of a sending
 * command, the server already listening and said where.
 */
export async function observeSend(context: CliContext, flags: LogFlags & MetricsFlags, command: string): Promise<SendObservation> {
  const log = jsonLog(context, flags, command);
  const metrics = flags.metricsPort === undefined ? null : new SendMetrics();
  const server = metrics === null ? null : await startMetricsServer(context, flags, log, metrics);
  const listeners = [log?.events, metrics?.events].filter((listener) => listener !== undefined);
  const events = listeners.length === 0 ? undefined : allOf(...listeners);
  return {
    events,
    log,
    silent: log !== null,
    runChoices: events ? { events } : {},
    attach: (app) => metrics?.watchQueue(app),
    close: async () => server?.close(),
  };
}

/**
 * The JSON event log on the command's stderr, with --log-format json (the command's other sentences
 * on stderr, its notices and the error it may end with, become lines of it); null otherwise.
 */
export function jsonLog(context: CliContext, flags: LogFlags, command: string): EventLog | null {
  if (flags.logFormat !== 'json') return null;
  const log = createEventLog(context.io.stderr, { verbose: flags.verbose === true, command });
  context.logLine = (level, line) => {
    const text = line.replace(/^bulletin: /, '');
    if (level === 'error') log.error('command failed', {}, text);
    else log.info('note', {}, text);
  };
  return log;
}

/** The flags as the human display sees them: with a JSON log, quiet (stderr carries only JSON lines). */
export function displayFlags<Flags extends LogFlags & { quiet?: boolean }>(flags: Flags): Flags {
  return flags.logFormat === 'json' ? { ...flags, quiet: true } : flags;
}

/** GET /metrics on a small HTTP server of its own (404 for anything else); port 0 picks a free one. */
async function serveMetrics(source: MetricsSource, host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at /metrics.\n');
      return;
    }
    source.text().then(
      (text) => response.writeHead(200, { 'content-type': source.contentType, 'cache-control': 'no-store' }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new BulletinError('CONFIG', `Cannot serve metrics on ${host} port ${port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}.`),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
