// `bulletin send|resume|status|deliveries`: send a bulletin with a confirmation, a progress display
// and graceful Ctrl-C; see what happened to every recipient. A send waits out an unreachable
// database at every step, saying so; `status` and `deliveries` say it in one sentence (exit 69).
import { createInterface } from 'node:readline/promises';
import cliProgress from 'cli-progress';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { exportArchive } from '../../app/archive.js';
import type { App } from '../../app/context.js';
import {
  bulletinStatus,
  dryRunSend,
  listDeliveries,
  prepareSend,
  resumeSend,
  runSend,
  sendTestCopy,
  retryDeliveries,
  RETRYABLE_STATES,
  unfinishedBulletins,
  type InDoubt,
  type RunOptions,
  type SendPlan,
  type SendSummary,
} from '../../app/send.js';
import { openTransport, createPacing, retryPolicy, type TransportFlags } from '../../app/transports.js';
import { DELIVERY_STATES, isDeliveryState, parseDuration, type DeliveryState } from '../../domain/delivery.js';
import { BulletinError } from '../../domain/errors.js';
import { MAX_BASE_URL_LENGTH } from '../../domain/list.js';
import {
  formatBytes,
  MAX_BULLETIN_BYTES,
  MAX_EMPHASIS_DELIMITERS,
  MAX_HTML_NESTING,
  MAX_MARKDOWN_NESTING,
  MAX_TEMPLATE_NESTING,
  MAX_TEMPLATE_TAGS,
} from '../../render/limits.js';
import { MESSAGE_REFUSALS_TO_HOLD, type Dispatcher } from '../../send/dispatcher.js';
import { DatabaseOutage } from '../../send/database-outage.js';
import { formatRate } from '../../send/adaptive.js';
import type { CliContext } from '../context.js';
import { formatDate, formatTable, plural, printJson, printLines } from '../output.js';

export interface SendFlags extends TransportFlags {
  list?: string;
  yes?: boolean;
  dryRun?: boolean;
  testTo?: string;
  uncertain: 'resend' | 'hold';
  wait: boolean;
  lease?: string;
  verp?: boolean;
  templates?: string;
  quiet?: boolean;
  json?: boolean;
}

function parsePositive(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return number;
}

function addRunOptions(command: Command): Command {
  return command
    .option('--outbox <dir>', 'write each message as an .eml file in this directory instead of sending (same tracking)')
    .option('--rate <rate>', 'at most this many messages per second, minute or hour: 50/s, 3000/m, 100000/h (default: $BULLETIN_RATE or 50/s)')
    .option('--rate-floor <rate>', 'when the relay pushes back the pace drops by itself, never below this (default: $BULLETIN_RATE_FLOOR or 1/s)')
    .option('--connections <n>', 'SMTP connections per relay (default: $BULLETIN_CONNECTIONS or 5)', parsePositive)
    .option('--messages-per-connection <n>', 'messages before a connection is renewed (default 100; fewer when the relay cuts sessions sooner)', parsePositive)
    .option('--retry-min <duration>', 'first retry of a temporary failure after about this long (default: 5m)')
    .option('--retry-max <duration>', 'at most this long between retries (default: 1h)')
    .option('--retry-deadline <duration>', 'give up this long after the first attempt (default: 5d)')
    .option('--data-timeout <duration>', 'wait this long for the reply to the end of a message, and for any reply (default: $BULLETIN_DATA_TIMEOUT or 10m, as RFC 5321 asks)')
    .addOption(
      new Option('--uncertain <policy>', 'messages perhaps sent when a sender crashed: re-send them with the same Message-ID, or hold them')
        .choices(['resend', 'hold'])
        .default('resend'),
    )
    .option('--no-wait', 'stop when only deferred deliveries remain, instead of waiting for their retries')
    .option('--lease <duration>', 'claims stay this worker\'s without renewal this long; after it, other workers take them over (default: 60s)')
    .option('--quiet', 'no progress display')
    .option('--json', 'print the summary as JSON');
}

export function registerSendCommands(program: Command, context: CliContext): void {
  addRunOptions(
    program
      .command('send <file>')
      .description('send a bulletin (Markdown with front matter) to every active subscriber of a list')
      .option('--list <slug>', "the list (default: the bulletin's `list:` front matter)")
      .option('-y, --yes', 'do not ask for confirmation (needed when not on a terminal)')
      .option('--dry-run', 'render every recipient\'s message, report errors, send nothing')
      .option('--test-to <address>', 'send one copy to this address and record nothing')
      .option('--verp', "encode each recipient in the envelope sender: <bounce local part>+<token>@<domain>, e.g. bulletins-bounces+<token>@lists.example.net")
      .option('--templates <dir>', 'layouts overriding the default templates'),
  )
    .addHelpText(
      'after',
      `
Sending the same file again while its send is unfinished resumes it; nobody is enqueued twice.

Bounces go to the list's bounce address (default <list local part>-bounces@<domain>, e.g.
bulletins-bounces@lists.example.net; list update --bounce-address changes it). With --verp
the envelope sender is that address with +<token> added to its local part:
  bulletins-bounces+<token>@lists.example.net
so have the mail server deliver <bounce local part>+anything@<domain> to the bounce mailbox
(Postfix: recipient_delimiter = +), and run \`bulletin bounces process\` on that mailbox.

Before asking, the confirmation shows the DKIM signatures (and whether d= aligns with From)
and warns about every {{subscriber.…}} that prints nothing in the archive copy.

Settings (environment): SMTP_URL, one relay or several (?weight=N, ?tls=off|required,
?helo=name); SMTP_HELO, the EHLO name (default: this machine's fully qualified name; an
address literal is refused); DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE, one key
or an RSA and an Ed25519 key in pairs (DKIM_SELECTOR=rsa2026,ed2026
DKIM_PRIVATE_KEY_FILE=rsa.pem,ed25519.pem), both signatures on every message.

Limits, each refused before anything is sent (exit 65, with file:line:column): a bulletin
file of at most ${formatBytes(MAX_BULLETIN_BYTES)}; at most ${MAX_TEMPLATE_TAGS} {{…}} tags and ${MAX_TEMPLATE_NESTING} nested blocks; Markdown
quotes, lists and emphasis nested at most ${MAX_MARKDOWN_NESTING} deep, HTML elements ${MAX_HTML_NESTING}; at most
${MAX_EMPHASIS_DELIMITERS} emphasis marks (* _ ~) in a paragraph. A list's base URL has at most ${MAX_BASE_URL_LENGTH} characters.

Ctrl-C stops claiming, finishes the messages in flight and prints how to resume (exit 130);
a second Ctrl-C quits at once, and the messages then in flight are re-sent on resume with
their original Message-ID (the resume says how many; \`deliveries <id> --state in-doubt\` lists them).
If the database goes away at any step, the send pauses, says so, waits for it and carries on.

Examples:
  bulletin send outage.md --list news --test-to me@example.net
  bulletin send outage.md --list news --dry-run
  SMTP_URL=smtp://relay.example.net:587 bulletin send outage.md --list news --rate 20/s
  bulletin send outage.md --list news --outbox ./outbox --yes`,
    )
    .action(async (file: string, flags: SendFlags) => {
      const watch = watchOutage(context);
      const { outage } = watch;
      await context.run(async (app) => {
        const plan = await prepareSend(app, {
          file,
          ...(flags.list === undefined ? {} : { list: flags.list }),
          ...(flags.templates === undefined ? {} : { templatesDir: flags.templates }),
          ...(flags.verp === undefined ? {} : { verp: flags.verp }),
          outage,
        });
        if (flags.dryRun) {
          const report = await dryRunSend(app, plan, outage);
          if (flags.json) return printJson(context.io, report);
          printLines(context.io, `Dry run: rendered ${plural(report.rendered, 'message')} for "${report.list}" (${report.subject}); nothing sent.`);
          for (const error of report.errors.slice(0, 20)) printLines(context.io, `  ${error.email}: ${error.error}`);
          if (report.errors.length > 0) throw new BulletinError('BAD_INPUT', `${plural(report.errors.length, 'recipient')} could not be rendered.`);
          return;
        }
        const transport = await openTransport(app.config, flags);
        try {
          if (flags.testTo !== undefined) {
            const result = await sendTestCopy(app, plan, flags.testTo, transport, outage);
            if (flags.json) printJson(context.io, result);
            if (result.outcome.kind === 'unusable') throw unusableError(result.outcome, null);
            if (flags.json) return;
            if (result.outcome.kind !== 'sent') {
              throw new BulletinError('BAD_INPUT', `The test copy to ${result.to} was ${result.outcome.kind}: ${result.outcome.reply}`);
            }
            return printLines(context.io, `Sent a test copy to ${result.to} through ${transport.description}: ${result.outcome.reply}`);
          }
          await confirm(context, plan, transport.description, flags);
          const summary = await withProgress(context, flags, (onStart) => runSend(app, plan, runOptions(app, transport, flags, onStart, outage)), watch);
          report(context, summary, flags);
          await reexportArchive(context, app, summary.list, flags, outage);
        } finally {
          await transport.close();
        }
      }, { outage });
    });

  addRunOptions(
    program
      .command('worker')
      .description('join every unfinished send (of one list, or all) and help it along; with several workers the rate stays global')
      .option('--list <slug>', 'only sends to this list')
      .option('--once', 'go through the unfinished sends once, then exit (default: keep looking every 5 seconds)'),
  )
    .addHelpText(
      'after',
      `
Any number of workers, on any machines sharing the PostgreSQL server (DATABASE_URL), can work on
one send: each claims its own deliveries (FOR UPDATE SKIP LOCKED), and together they keep the
send's configured rate. A worker that dies leaves its claims to the others once its lease runs out.

Examples:
  bulletin worker --list news
  bulletin worker --once --json`,
    )
    .action(async (flags: SendFlags & { once?: boolean }) => {
      const watch = watchOutage(context);
      const { outage } = watch;
      await context.run(async (app) => {
        const transport = await openTransport(app.config, flags);
        try {
          for (;;) {
            const ids = await unfinishedBulletins(app, flags.list, outage);
            for (const id of ids) {
              const summary = await withProgress(
                context,
                { ...flags, wait: false },
                (onStart) => resumeSend(app, id, runOptions(app, transport, { ...flags, wait: false }, onStart, outage)),
                watch,
              );
              report(context, summary, flags);
              if (context.exitCode !== 0) return;
            }
            if (flags.once) return;
            if (ids.length === 0 && !flags.quiet && !flags.json) context.io.stderr.write('No unfinished sends; looking again in 5 seconds (Ctrl-C to stop).\n');
            if (await interruptibleSleep(5_000)) {
              context.exitCode = 130;
              return;
            }
          }
        } finally {
          await transport.close();
        }
      }, { outage });
    });

  addRunOptions(
    program
      .command('retry <bulletin-id>')
      .description('send again to the deliveries of a bulletin in some states (same Message-IDs), with a new retry window')
      .option('--state <states>', `which deliveries: ${RETRYABLE_STATES.join(', ')}, comma-separated`, 'failed,uncertain'),
  )
    .addHelpText(
      'after',
      `
Members who unsubscribed or bounced since are skipped, not mailed. Each message keeps the
Message-ID of its first copy, so a receiver that got it already can tell.

Examples:
  bulletin retry 3                       (failed and uncertain deliveries)
  bulletin retry 3 --state uncertain --rate 10/s`,
    )
    .action(async (id: string, flags: SendFlags & { state: string }) => {
      const states = parseStates(flags.state);
      const refused = states.filter((state) => !RETRYABLE_STATES.includes(state));
      if (refused.length > 0) {
        throw new BulletinError('USAGE', `Only ${RETRYABLE_STATES.join(', ')} deliveries can be retried, not ${refused.join(', ')}.`);
      }
      const watch = watchOutage(context);
      const { outage } = watch;
      await context.run(async (app) => {
        const transport = await openTransport(app.config, flags);
        try {
          let requeued = 0;
          const summary = await withProgress(
            context,
            flags,
            async (onStart) => {
              const result = await retryDeliveries(app, parseId(id), states, runOptions(app, transport, flags, onStart, outage));
              requeued = result.requeued;
              return result.summary;
            },
            watch,
          );
          if (!flags.json && !flags.quiet) context.io.stderr.write(`Put ${plural(requeued, 'delivery', 'deliveries')} (${states.join(', ')}) back to work.\n`);
          if (flags.json) return printJson(context.io, { requeued, ...summary });
          report(context, summary, flags);
        } finally {
          await transport.close();
        }
      }, { outage });
    });

  addRunOptions(program.command('resume <bulletin-id>').description('continue an unfinished send, or retry its deferred deliveries now'))
    .addHelpText(
      'after',
      `
Deliveries that were in flight when a sender stopped (a crash, kill -9) are uncertain: perhaps
sent. The resume says how many, and re-sends them under their original Message-IDs, so a receiver
may get a second copy (\`--uncertain hold\` keeps them). \`bulletin deliveries <id> --state in-doubt\`
lists every delivery that was ever uncertain.

Example:
  bulletin resume 3 --uncertain hold`,
    )
    .action(async (id: string, flags: SendFlags) => {
      const watch = watchOutage(context);
      const { outage } = watch;
      await context.run(async (app) => {
        const transport = await openTransport(app.config, flags);
        try {
          const summary = await withProgress(context, flags, (onStart) => resumeSend(app, parseId(id), runOptions(app, transport, flags, onStart, outage)), watch);
          report(context, summary, flags);
        } finally {
          await transport.close();
        }
      }, { outage });
    });

  program
    .command('status [bulletin-id]')
    .description('per-state counts, rate, ETA and the commonest SMTP replies of a send (default: the latest)')
    .option('--json', 'print the result as JSON')
    .action(async (id: string | undefined, flags: { json?: boolean }) => {
      const status = await context.run((app) => bulletinStatus(app, id === undefined ? undefined : parseId(id)));
      if (flags.json) return printJson(context.io, status);
      const lines = [
        `Bulletin ${status.bulletinId} to "${status.list}": ${status.subject}`,
        `  ${status.finishedAt ? `finished ${formatDate(new Date(status.finishedAt))}` : `started ${formatDate(new Date(status.createdAt))}, not finished`}`,
        `  ${DELIVERY_STATES.map((state) => `${status.counts[state].toLocaleString('en-US')} ${state}`).join(', ')} (of ${status.total.toLocaleString('en-US')})`,
        `  rate over the last minute: ${status.rate.toFixed(1)}/s${status.etaSeconds ? `, ETA ${formatSeconds(status.etaSeconds)}` : ''}`,
      ];
      if (status.nextAttemptAt) lines.push(`  next retry due ${formatDate(new Date(status.nextAttemptAt))}`);
      if (status.complaints > 0) lines.push(`  complaints (feedback loops): ${status.complaints.toLocaleString('en-US')}, each complainer unsubscribed`);
      if (status.commonReplies.length > 0) {
        lines.push('  commonest replies:');
        for (const reply of status.commonReplies) lines.push(`    ${String(reply.count).padStart(6)}  ${reply.state.padEnd(9)} ${reply.reply}`);
      }
      printLines(context.io, ...lines);
    });

  program
    .command('deliveries <bulletin-id>')
    .description("list a send's deliveries: address, state, attempts, the relay's last reply, and the bounce that failed one")
    .option('--state <states>', `only these states, comma-separated (${DELIVERY_STATES.join(', ')}), or in-doubt: every delivery that was uncertain once (perhaps delivered), so a later copy may be a second one`)
    .option('--limit <n>', 'at most this many (default 1000)', parsePositive, 1000)
    .option('--after <id>', 'start after this delivery id (next page)', parsePositive)
    .option('--csv', 'print CSV')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: { state?: string; limit: number; after?: number; csv?: boolean; json?: boolean }) => {
      const chosen = flags.state?.split(',').map((state) => state.trim());
      const inDoubt = chosen?.includes(IN_DOUBT) ?? false;
      const named = chosen?.filter((state) => state !== IN_DOUBT) ?? [];
      const states = flags.state === undefined || named.length === 0 ? null : parseStates(named.join(','), IN_DOUBT);
      const rows = await context.run((app) => listDeliveries(app, parseId(id), { states, inDoubt, afterId: flags.after ?? 0, limit: flags.limit }));
      if (flags.json) return printJson(context.io, rows);
      if (flags.csv) {
        const { stringify } = await import('csv-stringify/sync');
        context.io.stdout.write(
          stringify(
            rows.map((row) => ({ ...row, sentAt: row.sentAt?.toISOString() ?? '', nextAttemptAt: row.nextAttemptAt?.toISOString() ?? '', updatedAt: row.updatedAt.toISOString() })),
            { header: true, columns: ['id', 'email', 'state', 'attempts', 'inDoubt', 'messageId', 'relay', 'lastReply', 'bounceReport', 'sentAt', 'nextAttemptAt', 'updatedAt'], record_delimiter: 'unix' },
          ),
        );
        return;
      }
      if (rows.length === 0) return printLines(context.io, 'No deliveries match.');
      // A delivery failed by a bounce shows the relay's reply (its queue id) and the bounce beside it.
      const bounced = rows.some((row) => row.bounceReport !== null);
      printLines(
        context.io,
        formatTable(
          ['ID', 'EMAIL', 'STATE', 'ATTEMPTS', 'IN DOUBT', 'LAST REPLY', ...(bounced ? ['BOUNCE'] : [])],
          rows.map((row) => [
            row.id,
            row.email ?? '(erased)',
            row.state,
            row.attempts,
            row.inDoubt ? 'yes' : '',
            (row.lastReply ?? '').slice(0, 80),
            ...(bounced ? [(row.bounceReport ?? '').slice(0, 80)] : []),
          ]),
        ),
      );
    });
}

/** `deliveries --state in-doubt`: not a state, the mark a delivery keeps once it was uncertain. */
const IN_DOUBT = 'in-doubt';

/** One outage per send command: the pause is said on stderr while no progress display shows it. */
interface OutageWatch {
  readonly outage: DatabaseOutage;
  /** A progress display is showing the dispatcher's note (which includes the outage). */
  showing: boolean;
}

function watchOutage(context: CliContext): OutageWatch {
  const watch: { outage?: DatabaseOutage; showing: boolean } = { showing: false };
  watch.outage = new DatabaseOutage({
    onWait: (outage) => {
      if (!watch.showing) context.io.stderr.write(`bulletin: ${outage.note('waiting for it before going on')}\n`);
    },
  });
  return watch as OutageWatch;
}

function parseId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id < 1) throw new BulletinError('USAGE', `"${text}" is not a bulletin id (see \`bulletin status\`).`);
  return id;
}

function parseStates(text: string, alsoAllowed?: string): DeliveryState[] {
  const states = text.split(',').map((state) => state.trim());
  const unknown = states.filter((state) => !isDeliveryState(state));
  if (unknown.length > 0) {
    throw new BulletinError('USAGE', `Unknown state(s) ${unknown.join(', ')}: use ${DELIVERY_STATES.join(', ')}${alsoAllowed ? `, or ${alsoAllowed}` : ''}.`);
  }
  return states as DeliveryState[];
}

export function runOptions(
  app: App,
  transport: RunOptions['transport'],
  flags: SendFlags,
  onStart: RunOptions['onStart'],
  outage?: DatabaseOutage,
): RunOptions {
  let leaseMs: number | undefined;
  if (flags.lease !== undefined) {
    const parsed = parseDuration(flags.lease);
    if (parsed === null || parsed < 1000) throw new BulletinError('BAD_INPUT', `--lease "${flags.lease}" is not a duration of at least 1s (like 30s or 2m).`);
    leaseMs = parsed;
  }
  return {
    transport,
    ...(leaseMs === undefined ? {} : { leaseMs }),
    ...createPacing(flags.rate ?? app.config.rate, flags.rateFloor ?? app.config.rateFloor),
    retry: retryPolicy(app.config, flags),
    resendUncertain: flags.uncertain !== 'hold',
    waitForDeferred: flags.wait,
    ...(onStart ? { onStart } : {}),
    ...(outage ? { outage } : {}),
  };
}

async function confirm(context: CliContext, plan: SendPlan, relay: string, flags: SendFlags): Promise<void> {
  const lines = [
    `${plan.resuming ? `Resume bulletin ${plan.resuming.id}` : 'Send'} to "${plan.list.slug}" (${plan.list.name})`,
    `  subject:    ${plan.sample.subject}`,
    `  recipients: ${plan.recipients.toLocaleString('en-US')}${plan.resuming ? ' not yet done' : ' active subscribers'}`,
    `  relay:      ${relay}`,
    `  rate:       ${flags.rate ?? context.config().rate}`,
    `  dkim:       ${plan.dkim}`,
    `  sample for ${plan.sample.to}:`,
    ...plan.sample.text.split('\n').slice(0, 12).map((line) => `    | ${line}`),
    ...plan.warnings.map((warning) => `  warning: ${warning}`),
  ];
  if (flags.yes) {
    if (!flags.quiet && !flags.json) context.io.stderr.write(`${lines.join('\n')}\n`);
    return;
  }
  if (!context.io.stdin.isTTY) {
    throw new BulletinError('USAGE', 'Refusing to send without confirmation: standard input is not a terminal; add --yes.');
  }
  context.io.stderr.write(`${lines.join('\n')}\n`);
  const prompt = createInterface({ input: context.io.stdin, output: context.io.stderr });
  const answer = await prompt.question(`Send to ${plan.recipients.toLocaleString('en-US')} recipients? [y/N] `);
  prompt.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new BulletinError('USAGE', 'Not sent: not confirmed.');
}

/**
 * Runs the send with a progress bar (terminal), JSON progress lines on stderr (otherwise) or nothing
 * (--quiet), and Ctrl-C / SIGTERM handling: the first stops gracefully, a second exits at once.
 */
export async function withProgress(
  context: CliContext,
  flags: SendFlags,
  run: (onStart: NonNullable<RunOptions['onStart']>) => Promise<SendSummary>,
  watch?: OutageWatch,
): Promise<SendSummary> {
  let dispatcher: Dispatcher | undefined;
  let total = 0;
  const started = Date.now();
  let stopSignal: NodeJS.Signals | undefined;
  const tty = context.io.stderr.isTTY === true && !flags.json;
  const bar = tty && !flags.quiet
    ? new cliProgress.SingleBar(
        {
          format: '{bar} {percentage}% | {value}/{total} | sent {sent} deferred {deferred} failed {failed} | {rate}/s | ETA {eta_formatted}{note}',
          stream: context.io.stderr as NodeJS.WritableStream,
          hideCursor: true,
          etaBuffer: 200,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const done = () => (dispatcher ? dispatcher.counts.sent + dispatcher.counts.failed + dispatcher.counts.skipped : 0);
  const values = () => {
    const counts = dispatcher?.counts ?? { sent: 0, deferred: 0, failed: 0, uncertain: 0, skipped: 0 };
    const seconds = (Date.now() - started) / 1000;
    const waiting = dispatcher?.waitingUntil;
    const slower = dispatcher?.note ?? null;
    const note = [waiting ? `waiting for retries due ${formatDate(waiting)}` : null, slower, stopSignal ? 'stopping…' : null].filter((part) => part !== null);
    return {
      ...counts,
      rate: seconds > 0 ? (counts.sent / seconds).toFixed(0) : '0',
      pace: dispatcher?.currentRate == null ? null : formatRate(dispatcher.currentRate),
      note: note.length > 0 ? ` | ${note.join(' | ')}` : '',
    };
  };
  const timer = setInterval(() => {
    if (bar) return bar.update(done(), values());
    if (!flags.quiet && dispatcher) {
      context.io.stderr.write(`${JSON.stringify({ progress: { total, done: done(), ...values() } })}\n`);
    }
  }, bar ? 200 : 5000);
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal) {
      // Second signal: quit now. Outcomes not yet written are flushed if the database answers fast;
      // whatever was in flight is `uncertain` on resume and re-sent with its original Message-ID.
      void Promise.race([dispatcher?.flush(), new Promise((resolve) => setTimeout(resolve, 1000))]).finally(() =>
        process.exit(signal === 'SIGINT' ? 130 : 143),
      );
      return;
    }
    stopSignal = signal;
    dispatcher?.stop();
    context.io.stderr.write(`\nStopping: finishing the messages in flight (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to quit at once)…\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run((created, bulletin, open, inDoubt) => {
      dispatcher = created;
      total = open;
      if (watch) watch.showing = !flags.quiet;
      const doubt = inDoubtLine(bulletin.id, inDoubt);
      if (doubt !== null && !flags.quiet && !flags.json) context.io.stderr.write(`${doubt}\n`);
      bar?.start(total, 0, values());
    });
  } finally {
    if (watch) watch.showing = false;
    clearInterval(timer);
    bar?.update(done(), values());
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (stopSignal) context.exitCode = stopSignal === 'SIGINT' ? 130 : 143;
  }
}

/** The one sentence (and exit status) for a send that stopped by itself, or for a test copy that could not go. */
function unusableError(outcome: { reply: string; relay: string; why: 'configuration' | 'size' }, bulletinId: number | null): BulletinError {
  const then = bulletinId === null ? '' : `; its deliveries stay queued: fix it, then run bulletin resume ${bulletinId}`;
  if (outcome.why === 'size') return new BulletinError('BAD_INPUT', `Nothing was sent: ${outcome.reply}${then}.`);
  return new BulletinError('CONFIG', `No usable relay: ${outcome.relay} refuses our configuration: ${outcome.reply}${then}.`);
}

function haltError(summary: SendSummary): BulletinError | null {
  const halt = summary.halt;
  if (halt === null) return null;
  if (halt.end === 'held') {
    return new BulletinError(
      'SEND_HELD',
      `Send held: ${halt.relay} refused the message itself ${MESSAGE_REFUSALS_TO_HOLD} times in a row (${halt.reply}); fix the message or the relay's policy, then run bulletin resume ${summary.bulletinId}.`,
    );
  }
  return unusableError({ reply: halt.reply, relay: halt.relay, why: halt.end === 'message too big' ? 'size' : 'configuration' }, summary.bulletinId);
}

export function report(context: CliContext, summary: SendSummary, flags: SendFlags): void {
  const halted = haltError(summary);
  if (flags.json) {
    printJson(context.io, summary);
    if (halted) throw halted;
    return;
  }
  const c = summary.counts;
  const lines = [
    `Bulletin ${summary.bulletinId} to "${summary.list}" (${summary.subject}) through ${summary.relay}:`,
    `  this run: ${summary.thisRun.sent} sent, ${summary.thisRun.deferred} deferred, ${summary.thisRun.failed} failed, ${summary.thisRun.uncertain} uncertain, ${summary.thisRun.skipped} skipped`,
    `  in all:   ${DELIVERY_STATES.map((state) => `${c[state]} ${state}`).join(', ')}`,
  ];
  const doubt = inDoubtLine(summary.bulletinId, summary.inDoubt);
  if (doubt !== null) lines.push(`  ${doubt}`);
  if (summary.halt !== null) lines.push(`  stopped by itself (${summary.halt.end}): ${summary.halt.reply}`);
  else if (summary.finished) lines.push('  finished: every recipient has an outcome.');
  else if (summary.end === 'stopped') lines.push(`  stopped. Resume with: bulletin resume ${summary.bulletinId}`);
  else if (summary.end === 'waiting for deferred') {
    lines.push(`  ${c.deferred} deferred, next retry due ${summary.nextAttemptAt ?? '?'}. Resume later with: bulletin resume ${summary.bulletinId}`);
  } else if (summary.end === 'uncertain held') {
    lines.push(`  ${c.uncertain} uncertain held (perhaps sent). Re-send them with: bulletin resume ${summary.bulletinId} --uncertain resend`);
  }
  printLines(context.io, ...lines);
  if (halted) throw halted;
}

/**
 * What a resume must say about deliveries perhaps delivered already: how many, that they are re-sent
 * under their first Message-IDs (so a receiver may get a second copy), and how to list them.
 */
function inDoubtLine(bulletinId: number, inDoubt: InDoubt): string | null {
  if (inDoubt.uncertain === 0) return null;
  const count = plural(inDoubt.uncertain, 'delivery was', 'deliveries were');
  const why =
    inDoubt.leftInFlight === inDoubt.uncertain
      ? 'in flight when an earlier run stopped'
      : inDoubt.leftInFlight > 0
        ? `uncertain, ${inDoubt.leftInFlight.toLocaleString('en-US')} of them in flight when an earlier run stopped`
        : 'uncertain (in flight when a sender stopped, or cut off before the relay answered)';
  return inDoubt.resent
    ? `${count} ${why}: they are re-sent under their original Message-IDs, so those receivers may see a second copy (list them: bulletin deliveries ${bulletinId} --state in-doubt).`
    : `${count} ${why}: held, not re-sent (--uncertain hold); list them with bulletin deliveries ${bulletinId} --state in-doubt.`;
}

/** Sleeps; resolves true at once if Ctrl-C or SIGTERM comes first. */
function interruptibleSleep(ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onSignal = () => finish(true);
    const timer = setTimeout(() => finish(false), ms);
    function finish(interrupted: boolean) {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(interrupted);
    }
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

/** After a send, with BULLETIN_ARCHIVE_DIR set, the list's archive is brought up to date. */
async function reexportArchive(context: CliContext, app: App, slug: string, flags: SendFlags, outage: DatabaseOutage): Promise<void> {
  const outDir = app.config.archiveDir;
  if (outDir === null) return;
  // An export is safe to repeat: it rewrites only files that changed.
  const summary = await outage.ride(() => exportArchive(app, { slug, outDir }));
  if (!flags.quiet && !flags.json) context.io.stderr.write(`Archive updated in ${summary.directory}/${slug}/ (${plural(summary.written, 'file')} written).\n`);
}

function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}
