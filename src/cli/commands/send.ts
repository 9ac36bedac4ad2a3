// `bulletin send|worker|retry|resume`: options to typed calls of the use cases in src/app/send/,
// with a confirmation, a progress display and graceful Ctrl-C (send-progress.ts). A send waits out
// an unreachable database at every step, saying so (`status` and `deliveries`: commands/status.ts).
import { createInterface } from 'node:readline/promises';
import { Option, type Command } from 'commander';
import { sendSettings, type SendOverrides, type SendSettings } from '../../app/config.js';
import type { App } from '../../app/context.js';
import { refreshArchiveAfterSend } from '../../app/send/archive-after-send.js';
import { dryRunSend } from '../../app/send/dry-run.js';
import { runOptions } from '../../app/send/options.js';
import { prepareSend, type SendPlan } from '../../app/send/prepare.js';
import { resumeSend } from '../../app/send/resume.js';
import { checkRetryable, retryDeliveries } from '../../app/send/retry.js';
import { runSend, type RunOptions } from '../../app/send/run.js';
import { sendTestCopy } from '../../app/send/test-copy.js';
import { QuietRuns } from '../../app/send/quiet-runs.js';
import { otherUnpausedSend, runWorker } from '../../app/send/worker.js';
import { openTransport } from '../../app/transports.js';
import { RETRYABLE_STATES } from '../../domain/delivery.js';
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
import type { DatabaseOutage } from '../../send/database-outage.js';
import { parseId, parsePositive, parseStates } from '../arguments.js';
import type { CliContext } from '../context.js';
import { FILTER_HELP, audienceFlags, describeAudience, scheduleFlag, type AudienceFlags } from './audience.js';
import { scheduleSend } from '../../app/schedule.js';
import { formatDate, plural, printJson, printLines } from '../output.js';
import { report, unusableError, watchOutage, withProgress } from '../send-progress.js';
import { interruptibleSleep } from '../signals.js';
import { addObserveOptions, displayFlags, observeSend, observeHelp, type LogFlags, type MetricsFlags, type SendObservation } from '../observe.js';

interface SendFlags extends SendOverrides, AudienceFlags, LogFlags, MetricsFlags {
  outbox?: string;
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

function addRunOptions(command: Command): Command {
  return addObserveOptions(command)
    .option('--outbox <dir>', 'write each message as an .eml file in this directory instead of sending (same tracking)')
    .option('--rate <rate>', 'at most this many messages per second, minute or hour: 50/s, 3000/m, 100000/h (default: $BULLETIN_RATE or 50/s)')
    .option('--rate-floor <rate>', 'when the relay pushes back the pace drops by itself, never below this (default: $BULLETIN_RATE_FLOOR or 1/s)')
    .option('--connections <n>', 'SMTP connections per relay (default: $BULLETIN_CONNECTIONS or 5)', parsePositive)
    .option('--messages-per-connection <n>', 'messages before a connection is renewed (default 100; fewer when the relay cuts sessions sooner)', parsePositive)
    .option('--retry-min <duration>', 'first retry of a temporary failure after about this long (default: 5m)')
    .option('--retry-max <duration>', 'at most this long between retries (default: 1h)')
    .option('--retry-deadline <duration>', 'give up this long after the first attempt (default: 5d)')
    .option(
      '--data-timeout <duration>',
      'wait this long for the reply to the end of a message, and for any reply (default: $BULLETIN_DATA_TIMEOUT or 10m, as RFC 5321 asks)',
    )
    .addOption(
      new Option('--uncertain <policy>', 'messages perhaps sent when a sender crashed: re-send them with the same Message-ID, or hold them')
        .choices(['resend', 'hold'])
        .default('resend'),
    )
    .option('--no-wait', 'stop when only deferred deliveries remain, instead of waiting for their retries')
    .option('--lease <duration>', "claims stay this worker's without renewal this long; after it, other workers take them over (default: 60s)")
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
      .option('--dry-run', "render every recipient's message, report errors, send nothing")
      .option('--test-to <address>', 'send one copy to this address and record nothing')
      .option('--verp', 'encode each recipient in the envelope sender: <bounce local part>+<token>@<domain>, e.g. bulletins-bounces+<token>@lists.example.net')
      .option('--templates <dir>', 'layouts overriding the default templates')
      .option('--where <filter>', 'only the active members matching this filter (see "Audience filters" below)')
      .option('--segment <name>', 'only the members of this segment of the list (bulletin segment ls)')
      .option('--allow-unknown', 'accept attribute names in --where that no member has')
      .option(
        '--at <time>',
        'schedule the send for this ISO 8601 time with an offset, e.g. 2026-12-02T09:00+10:30; a running `bulletin worker` starts it',
        scheduleFlag,
      ),
  )
    .addHelpText(
      'after',
      `
Sending the same file again while its send is unfinished resumes it; nobody is enqueued twice.
The audience (--where, --segment; default every active member) is chosen when the send starts
and frozen with it: resume, retry and every worker send to exactly those members (less any who
leave meanwhile). The confirmation shows how many match and a sample of them.

With --at the bulletin is stored as scheduled and the command exits; a running \`bulletin worker\`
(on any machine) starts it on time, choosing the audience then. A time without an offset is
refused. \`bulletin status\` lists scheduled sends; \`bulletin unschedule <id>\` takes one back.
${FILTER_HELP}

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
  bulletin send outage.md --list news --outbox ./outbox --yes
  bulletin send outage.md --list news --where 'attributes.platform = "mail" and attributes.state in ("SA", "NT")'
  bulletin send maintenance.md --list news --segment mail-customers --at 2026-12-02T09:00+10:30`,
    )
    .addHelpText('after', observeHelp('  bulletin send outage.md --list news --yes --metrics-port 9464 --log-format json'))
    .action(async (file: string, given: SendFlags) => {
      const flags = displayFlags(given);
      const observe = await observeSend(context, given, 'send');
      const watch = watchOutage(context, observe);
      const { outage } = watch;
      await context.run(
        async (app) => {
          observe.attach(app);
          const plan = await prepareSend(app, {
            file,
            ...(flags.list === undefined ? {} : { list: flags.list }),
            ...(flags.templates === undefined ? {} : { templatesDir: flags.templates }),
            ...(flags.verp === undefined ? {} : { verp: flags.verp }),
            audience: audienceFlags(flags),
            ...(flags.at === undefined ? {} : { at: flags.at }),
            outage,
          });
          if (plan.scheduledFor !== null && !flags.dryRun && flags.testTo === undefined) {
            await confirm(context, plan, 'the worker that starts it', flags);
            const stored = await scheduleSend(app, plan, outage);
            if (flags.json)
              return printJson(context.io, {
                bulletinId: stored.id,
                list: plan.list.slug,
                state: stored.state,
                scheduledFor: plan.scheduledFor.toISOString(),
                audience: { filter: stored.audienceFilter, segment: stored.audienceSegment },
              });
            return printLines(
              context.io,
              `Scheduled bulletin ${stored.id} to "${plan.list.slug}" for ${formatDate(plan.scheduledFor)} (${plan.scheduledFor.toISOString()}); a running \`bulletin worker\` starts it then (\`bulletin unschedule ${stored.id}\` takes it back).`,
            );
          }
          if (flags.dryRun) {
            const report = await dryRunSend(app, plan, outage);
            if (flags.json) return printJson(context.io, report);
            printLines(context.io, `Dry run: rendered ${plural(report.rendered, 'message')} for "${report.list}" (${report.subject}); nothing sent.`);
            for (const error of report.errors.slice(0, 20)) printLines(context.io, `  ${error.email}: ${error.error}`);
            if (report.errors.length > 0) throw new BulletinError('BAD_INPUT', `${plural(report.errors.length, 'recipient')} could not be rendered.`);
            return;
          }
          await withTransport(app, flags, observe, async (transport, settings) => {
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
            const summary = await withProgress(
              context,
              flags,
              (onStart) => runSend(app, plan, runOptions(transport, settings, choices(flags, onStart, outage, 'send', observe))),
              watch,
            );
            report(context, summary, flags);
            const archive = await refreshArchiveAfterSend(app, summary.list, outage);
            if (archive && !flags.quiet && !flags.json) {
              context.io.stderr.write(`Archive updated in ${archive.directory}/${summary.list}/ (${plural(archive.written, 'file')} written).\n`);
            }
          });
        },
        { outage, closeAfter: observe },
      );
    });

  addRunOptions(
    program
      .command('worker')
      .description(
        'start scheduled sends when due, join every unfinished send (of one list, or all) and help it along; with several workers the rate stays global',
      )
      .option('--list <slug>', 'only sends to this list')
      .option('--once', 'go through the unfinished sends once, then exit (default: keep looking every 5 seconds)'),
  )
    .addHelpText(
      'after',
      `
Any number of workers, on any machines sharing the PostgreSQL server (DATABASE_URL), can work on
one send: each claims its own deliveries (FOR UPDATE SKIP LOCKED), and together they keep the
send's configured rate. A worker that dies leaves its claims to the others once its lease runs out.
Scheduled sends (send --at) are started by whichever worker finds them due first, never twice.

Examples:
  bulletin worker --list news
  bulletin worker --once --json`,
    )
    .addHelpText(
      'after',
      observeHelp(
        '  bulletin worker --metrics-host 0.0.0.0 --metrics-port 9464 --log-format json\n  bulletin worker --metrics-port 0 --log-format json --verbose',
      ),
    )
    .action(async (given: SendFlags & { once?: boolean }) => {
      const flags = displayFlags(given);
      const observe = await observeSend(context, given, 'worker');
      const watch = watchOutage(context, observe);
      const { outage } = watch;
      const quietRuns = new QuietRuns();
      await context.run(
        async (app) => {
          observe.attach(app);
          await withTransport(app, flags, observe, async (transport, settings) => {
            const end = await runWorker(app, {
              ...(flags.list === undefined ? {} : { listSlug: flags.list }),
              once: flags.once === true,
              outage,
              onStarted: (started) => {
                observe.log?.info('scheduled send started', { bulletinId: started.id }, `started scheduled bulletin ${started.id}`);
                if (!flags.quiet)
                  context.io.stderr.write(`Started scheduled bulletin ${started.id} (due ${formatDate(started.scheduledFor ?? started.createdAt)}).\n`);
              },
              work: async (id) => {
                const summary = await withProgress(
                  context,
                  flags,
                  (onStart) =>
                    resumeSend(app, id, {
                      ...runOptions(transport, settings, choices({ ...flags, wait: false }, onStart, outage, 'worker', observe)),
                      // A paused send is left for another one that is not (this worker comes back to it).
                      leaveWhilePaused: () => otherUnpausedSend(app, id, flags.list),
                    }),
                  watch,
                );
                // A send this worker keeps coming back to without doing anything (paused, waiting for
                // its deferred deliveries) is reported once, not every few seconds.
                const repeat = quietRuns.ended(id, summary.end, summary.thisRun);
                if (!repeat || summary.halt !== null) report(context, summary, flags);
                return context.exitCode === 0;
              },
              onIdle: () => {
                if (!flags.quiet && !flags.json) context.io.stderr.write('No unfinished sends; looking every 5 seconds (Ctrl-C to stop).\n');
              },
              pause: interruptibleSleep,
            });
            if (end === 'interrupted') context.exitCode = 130;
          });
        },
        { outage, closeAfter: observe },
      );
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
    .addHelpText('after', observeHelp('  bulletin retry 3 --metrics-port 9464 --log-format json'))
    .action(async (id: string, given: SendFlags & { state: string }) => {
      const flags = displayFlags(given);
      const states = parseStates(flags.state);
      checkRetryable(states);
      const observe = await observeSend(context, given, 'retry');
      const watch = watchOutage(context, observe);
      const { outage } = watch;
      await context.run(
        async (app) => {
          observe.attach(app);
          await withTransport(app, flags, observe, async (transport, settings) => {
            let requeued = 0;
            const summary = await withProgress(
              context,
              flags,
              async (onStart) => {
                const result = await retryDeliveries(
                  app,
                  parseId(id),
                  states,
                  runOptions(transport, settings, choices(flags, onStart, outage, 'retry', observe)),
                );
                requeued = result.requeued;
                return result.summary;
              },
              watch,
            );
            if (!flags.json && !flags.quiet)
              context.io.stderr.write(`Put ${plural(requeued, 'delivery', 'deliveries')} (${states.join(', ')}) back to work.\n`);
            if (flags.json) return printJson(context.io, { requeued, ...summary });
            report(context, summary, flags);
          });
        },
        { outage, closeAfter: observe },
      );
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
    .addHelpText('after', observeHelp('  bulletin resume 3 --log-format json --verbose'))
    .action(async (id: string, given: SendFlags) => {
      const flags = displayFlags(given);
      const observe = await observeSend(context, given, 'resume');
      const watch = watchOutage(context, observe);
      const { outage } = watch;
      await context.run(
        async (app) => {
          observe.attach(app);
          await withTransport(app, flags, observe, async (transport, settings) => {
            const summary = await withProgress(
              context,
              flags,
              (onStart) => resumeSend(app, parseId(id), runOptions(transport, settings, choices(flags, onStart, outage, 'resume', observe))),
              watch,
            );
            report(context, summary, flags);
          });
        },
        { outage, closeAfter: observe },
      );
    });
}

/** Parses the send's rates and durations once, opens its transport, and closes it after `work`. */
async function withTransport(
  app: App,
  flags: SendFlags,
  observe: SendObservation,
  work: (transport: RunOptions['transport'], settings: SendSettings) => Promise<void>,
): Promise<void> {
  const settings = sendSettings(app.config, flags);
  const transport = await openTransport(app.config, {
    ...(flags.outbox === undefined ? {} : { outbox: flags.outbox }),
    ...(observe.events ? { events: observe.events } : {}),
    connections: settings.connections,
    messagesPerConnection: settings.messagesPerConnection,
    dataTimeoutMs: settings.dataTimeoutMs,
  });
  try {
    await work(transport, settings);
  } finally {
    await transport.close();
  }
}

function choices(flags: SendFlags, onStart: RunOptions['onStart'], outage: DatabaseOutage, command: string, observe: SendObservation) {
  return { resendUncertain: flags.uncertain !== 'hold', waitForDeferred: flags.wait, ...(onStart ? { onStart } : {}), outage, command, ...observe.runChoices };
}

async function confirm(context: CliContext, plan: SendPlan, relay: string, flags: SendFlags): Promise<void> {
  const lines = [
    `${plan.resuming ? `Resume bulletin ${plan.resuming.id}` : 'Send'} to "${plan.list.slug}" (${plan.list.name})`,
    `  subject:    ${plan.sample.subject}`,
    `  recipients: ${plan.scheduledFor !== null ? `chosen at the start; ${plan.recipients.toLocaleString('en-US')} match now` : `${plan.recipients.toLocaleString('en-US')}${plan.resuming ? ' not yet done' : plan.audience.filter === null ? ' active subscribers' : ' matching active subscribers'}`}`,
    `  audience:   ${describeAudience({ filter: plan.audience.filterText, segment: plan.audience.segment })}`,
    ...(plan.audience.filter === null ? [] : [`  they include: ${plan.audienceSample.join(', ')}${plan.recipients > plan.audienceSample.length ? ', …' : ''}`]),
    ...(plan.scheduledFor === null ? [] : [`  scheduled:  ${formatDate(plan.scheduledFor)} (${plan.scheduledFor.toISOString()})`]),
    `  relay:      ${relay}`,
    `  rate:       ${flags.rate ?? context.config().rate}`,
    `  dkim:       ${plan.dkim}`,
    `  sample for ${plan.sample.to}:`,
    ...plan.sample.text
      .split('\n')
      .slice(0, 12)
      .map((line) => `    | ${line}`),
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
  const answer = await prompt.question(
    plan.scheduledFor !== null ? `Schedule it? [y/N] ` : `Send to ${plan.recipients.toLocaleString('en-US')} recipients? [y/N] `,
  );
  prompt.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new BulletinError('USAGE', 'Not sent: not confirmed.');
}
