// `bulletin serve`: runs the unsubscribe pages (and the exported archive) until Ctrl-C or SIGTERM,
// then stops taking requests, finishes those in progress and exits. With --metrics it serves
// Prometheus metrics at /metrics; with --log-format json it says what happens in JSON lines.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { WebMetrics } from '../../app/observe/metrics.js';
import { parsePort } from '../arguments.js';
import { addLogOptions, jsonLog, type LogFlags } from '../observe.js';
import { startWebServer } from '../../web/server.js';
import type { CliContext } from '../context.js';
import { printLines } from '../output.js';
import { serveUntilSignal } from '../signals.js';

export function registerServeCommand(program: Command, context: CliContext): void {
  const command = program
    .command('serve')
    .description('run the web server for unsubscribe links (one-click and page) and the archive')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', parsePort, 8080)
    .option('--archive-dir <dir>', 'serve this exported archive under /archive/ (default: $BULLETIN_ARCHIVE_DIR)')
    .option('--metrics', 'also serve Prometheus metrics at /metrics: unsubscribes by source, requests by status (README, "Metrics and logs")');
  addLogOptions(command, { verbose: false })
    .addHelpText(
      'after',
      `
The links in every bulletin point at the list's --base-url; put this server behind it (a reverse
proxy terminating TLS, passing /u/, /help/ and /archive/). A GET only shows a page: mail scanners
fetch every link, so only a POST (the button, or a mail client's RFC 8058 one-click) unsubscribes.
A one-click whose token verifies is never rate-limited; other POSTs get 30 a minute per client.
Resubscribing works only from this server's own page (same origin). After a re-subscription the
links of older bulletins are out of date and change nothing. /help/<slug> is the page List-Help
names: what the list is, how to leave, whom to write to.

--metrics adds GET /metrics (Prometheus text: bulletin_unsubscribes_total by source,
bulletin_http_requests_total by status; see README, "Metrics and logs"): let only the scraper reach it.
--log-format json writes one JSON line per event on stderr (started, each unsubscribe with its
source and list, a request that failed on our side, stopped), with the host; no tokens, no addresses.

Examples:
  bulletin serve --port 8080
  BULLETIN_ARCHIVE_DIR=/srv/archive bulletin serve --host 0.0.0.0
  bulletin serve --metrics --log-format json`,
    )
    .action(async (flags: { host: string; port: number; archiveDir?: string; metrics?: boolean } & LogFlags) => {
      const log = jsonLog(context, flags, 'serve');
      const say = (line: string) => (log ? log.info(line === 'Stopped.' ? 'server stopped' : 'stopping', {}, line) : context.io.stderr.write(`${line}\n`));
      const archiveDir = flags.archiveDir === undefined ? context.config().archiveDir : resolve(context.io.cwd, flags.archiveDir);
      if (archiveDir !== null && !existsSync(archiveDir)) {
        const line = `${archiveDir} does not exist yet; /archive/ answers 404 until \`bulletin archive export\` writes it.`;
        if (log) log.warn('archive missing', { archiveDir }, line);
        else context.io.stderr.write(`bulletin: ${line}\n`);
      }
      const metrics = flags.metrics ? new WebMetrics() : null;
      await context.run(async (app) => {
        const server = await startWebServer(app, {
          host: flags.host,
          port: flags.port,
          archiveDir,
          log: (line) => (log ? log.error('request failed', {}, line) : context.io.stderr.write(`${line}\n`)),
          observer: {
            ...(metrics ? { metrics, answered: (status: number) => metrics.answered(status) } : {}),
            unsubscribed: (source, list) => {
              metrics?.unsubscribed(source);
              log?.info('unsubscribed', { source, list }, `a member left ${list} (${source})`);
            },
          },
        });
        log?.info('server started', { url: server.url, metrics: metrics ? `${server.url}/metrics` : null }, `serving on ${server.url}`);
        printLines(
          context.io,
          `Serving on ${server.url}: unsubscribe links at ${server.url}/u/<token>${archiveDir ? `, the archive at ${server.url}/archive/` : ''}, health at ${server.url}/healthz.`,
          'Ctrl-C stops it.',
        );
        await serveUntilSignal(context, server, say);
      });
    });
}
