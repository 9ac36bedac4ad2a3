// `bulletin inbound`: runs the SMTP server for mail that comes back to the lists (bounces, complaints,
// unsubscribe requests) until Ctrl-C or SIGTERM, logging one line per message on stderr (a JSON
// line with --log-format json) and counting them for Prometheus with --metrics-port.
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_INBOUND_LIMITS, startInboundServer } from '../../app/inbound.js';
import { normalizeAddress } from '../../domain/address.js';
import type { CliContext } from '../context.js';
import { printLines } from '../output.js';
import { parsePort } from '../arguments.js';
import { serveUntilSignal } from '../signals.js';
import { InboundMetrics } from '../../app/observe/metrics.js';
import { addLogOptions, addMetricsOptions, jsonLog, startMetricsServer, type LogFlags, type MetricsFlags } from '../observe.js';

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min || number > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return number;
  };
}

function parseAddress(value: string): string {
  const checked = normalizeAddress(value);
  if (!checked.ok) throw new InvalidArgumentError(checked.reason);
  return checked.address;
}

interface InboundFlags extends LogFlags, MetricsFlags {
  host: string;
  port: number;
  complaintsAddress?: string;
  maxSize: number;
  maxConnections: number;
  maxRecipients: number;
  timeout: number;
  threshold?: number;
}

export function registerInboundCommand(program: Command, context: CliContext): void {
  const limits = DEFAULT_INBOUND_LIMITS;
  const command = program
    .command('inbound')
    .description('run the SMTP server for mail to the lists: bounces, complaints (ARF) and unsubscribe requests')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', parsePort, 2525)
    .option(
      '--complaints-address <address>',
      'also take feedback-loop reports (ARF) sent here (default: $BULLETIN_COMPLAINTS_ADDRESS; the bounce addresses always take them)',
      parseAddress,
    )
    .option('--max-size <bytes>', 'largest message taken (SIZE); larger ones get 552', wholeNumber(1024, 1024 ** 3), limits.maxMessageBytes)
    .option('--max-connections <n>', 'connections at once; more get 421', wholeNumber(1, 10_000), limits.maxConnections)
    .option('--max-recipients <n>', 'recipients per message; more get 452', wholeNumber(1, 1000), limits.maxRecipients)
    .option('--timeout <seconds>', 'close a connection silent for this long', wholeNumber(1, 3600), limits.idleTimeoutMs / 1000)
    .option('--threshold <n>', 'hard bounces after which a subscription becomes bounced (default: $BULLETIN_BOUNCE_THRESHOLD or 3)', wholeNumber(1, 1000));
  addMetricsOptions(addLogOptions(command, { verbose: false }))
    .addHelpText(
      'after',
      `
It takes mail only for the lists' own addresses: <list>-unsubscribe@<domain> (the mailto: of
List-Unsubscribe), the bounce address (<list>-bounces@<domain> or --bounce-address) and its VERP
forms (<list>-bounces+<token>@<domain>), and --complaints-address. Every other recipient gets
550 5.7.1: it never relays. Each message is handled as it arrives, exactly as \`bounces process\`
would: a bounce fails its delivery and counts toward the threshold, a complaint (ARF, RFC 5965)
about one of our messages unsubscribes the member, and a request whose token verifies unsubscribes
them. Nothing is ever answered by mail (no backscatter). While the database is down, messages get
451 and the sender tries again later. One line per message goes to stderr (no tokens); with
--log-format json each is a JSON line (event "mail handled"), beside "server started" and "server stopped".
--metrics-port serves Prometheus metrics: messages by outcome (hard bounce, expired, delayed,
unsubscribe request, complaint, ignored, too big, not handled) and recipients refused (550); see
README, "Metrics and logs".

Put it behind the MX or a Postfix transport for the lists' domain: see README, "Mail that comes back".

Examples:
  bulletin inbound --port 2525
  bulletin inbound --host 0.0.0.0 --port 25 --complaints-address fbl@lists.example.net
  bulletin inbound --port 2525 --log-format json
  bulletin inbound --port 2525 --metrics-port 9465`,
    )
    .action(async (flags: InboundFlags) => {
      const fromEnv = context.io.env.BULLETIN_COMPLAINTS_ADDRESS?.trim();
      const complaintsAddress = flags.complaintsAddress ?? (fromEnv ? parseAddress(fromEnv) : null);
      const log = jsonLog(context, flags, 'inbound');
      const say = (line: string) => (log ? log.info(line === 'Stopped.' ? 'server stopped' : 'stopping', {}, line) : context.io.stderr.write(`${line}\n`));
      const metrics = flags.metricsPort === undefined ? null : new InboundMetrics();
      const metricsServer = metrics === null ? null : await startMetricsServer(context, flags, log, metrics);
      await context.run(
        async (app) => {
          const server = await startInboundServer(app, {
            host: flags.host,
            port: flags.port,
            complaintsAddress,
            limits: {
              maxMessageBytes: flags.maxSize,
              maxConnections: flags.maxConnections,
              maxRecipients: flags.maxRecipients,
              idleTimeoutMs: flags.timeout * 1000,
            },
            ...(flags.threshold === undefined ? {} : { threshold: flags.threshold }),
            log: (line) => (log ? log.info('mail handled', {}, line) : context.io.stderr.write(`${line}\n`)),
            ...(metrics ? { counted: metrics.counted } : {}),
          });
          log?.info('server started', { address: flags.host, port: server.port }, `taking mail on port ${server.port}`);
          const host = flags.host.includes(':') ? `[${flags.host}]` : flags.host;
          printLines(
            context.io,
            `Taking mail for the lists on ${host}:${server.port} (at most ${flags.maxSize} bytes a message, ${flags.maxConnections} connections, ${flags.maxRecipients} recipients, ${flags.timeout} s idle).`,
            'Ctrl-C stops it.',
          );
          await serveUntilSignal(context, server, say);
        },
        metricsServer === null ? {} : { closeAfter: metricsServer },
      );
    });
}
