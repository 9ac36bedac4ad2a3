// `bulletin bounces process <file|dir>`: read what came back (bounces, complaints, unsubscribe requests),
// record hard bounces, mark members bounced at the threshold, unsubscribe complainers and requesters;
// prints what was read, recorded, ignored and not understood (and where).
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { describePlace, processBounces, type BounceRunSummary, type MessagePlace } from '../../app/bounces.js';
import type { CliContext } from '../context.js';
import { plural, printJson, printLines } from '../output.js';

function parseThreshold(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1 || number > 1000) throw new InvalidArgumentError('expected a whole number from 1 to 1000');
  return number;
}

function placeToJson(place: MessagePlace) {
  return { file: place.file, line: place.line, message: place.index };
}

function summaryToJson(summary: BounceRunSummary) {
  return {
    dryRun: summary.dryRun,
    threshold: summary.threshold,
    messagesRead: summary.messagesRead,
    hardBouncesRecorded: summary.hardBouncesRecorded,
    alreadyRecorded: summary.alreadyRecorded,
    deliveriesFailed: summary.deliveriesFailed,
    delayedIgnored: summary.delayedIgnored,
    unsubscribeRequests: summary.unsubscribeRequests,
    complaintsRecorded: summary.complaintsRecorded,
    unrecognised: summary.unrecognised.map((item) => ({ ...placeToJson(item.place), reason: item.reason })),
    nowBounced: summary.nowBounced,
    messages: summary.outcomes.map(({ place, ...outcome }) => ({ ...placeToJson(place), ...outcome })),
  };
}

function describeSummary(summary: BounceRunSummary): string[] {
  const would = summary.dryRun ? 'would be ' : '';
  const rows: [string, number, string][] = [
    [
      `hard bounces ${would}recorded`,
      summary.hardBouncesRecorded,
      summary.alreadyRecorded > 0 ? ` (and ${summary.alreadyRecorded} recorded before, not counted again)` : '',
    ],
    [`deliveries ${would}failed`, summary.deliveriesFailed, ''],
    ['delayed, ignored', summary.delayedIgnored, ''],
  ];
  // Mail to the -unsubscribe address and complaints, when there were any.
  if (summary.unsubscribeRequests > 0)
    rows.push([`unsubscribe requests ${summary.dryRun ? 'that would be ' : ''}honoured`, summary.unsubscribeRequests, ' (mailto)']);
  if (summary.complaintsRecorded > 0) rows.push([`complaints ${would}recorded`, summary.complaintsRecorded, ' (the complainers unsubscribed)']);
  const unrecognised: [string, number, string] = ['unrecognised, skipped', summary.unrecognised.length, ''];
  const bounced: [string, number, string] = [
    `subscriptions ${would}bounced`,
    summary.nowBounced.length,
    ` (threshold: ${plural(summary.threshold, 'hard bounce')})`,
  ];
  const width = Math.max(...[...rows, unrecognised, bounced].map(([label]) => label.length)) + 1;
  const line = ([label, count, note]: [string, number, string]) => `  ${`${label}:`.padEnd(width)} ${count}${note}`;
  return [
    `${summary.dryRun ? 'Dry run, nothing changed: ' : ''}${plural(summary.messagesRead, 'message')} read.`,
    ...rows.map(line),
    line(unrecognised),
    ...summary.unrecognised.map((item) => `    ${describePlace(item.place)}: ${item.reason}`),
    line(bounced),
    ...summary.nowBounced.map((item) => `    ${item.email ?? '(erased)'} on ${item.list} (${plural(item.bounces, 'hard bounce')})`),
  ];
}

export function registerBounceCommands(program: Command, context: CliContext): void {
  const bounces = program.command('bounces').description('process bounce messages');
  bounces
    .command('process <path>')
    .description('read bounces, complaints (ARF) and unsubscribe requests (an mbox file, a maildir, or a directory of .eml files)')
    .option('--threshold <n>', 'hard bounces on a list after which the subscription becomes bounced (default: $BULLETIN_BOUNCE_THRESHOLD or 3)', parseThreshold)
    .option('--dry-run', 'report what would change, change nothing')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Each bounce is matched to its recipient by the VERP address it came back to (send with --verp) or by
the Message-ID of the returned message. A failure (5.x.x, or a 4.x.x the relay gave up on: "expired
at the relay") fails that delivery and counts toward the member's bounces on the list; a delay
(Action: delayed) changes nothing. A feedback-loop complaint (ARF, RFC 5965) about one of our
messages, matched the same way, unsubscribes the member (via "complaint"); a mail to the list's
-unsubscribe address (or saying "unsubscribe") with a valid token from its link unsubscribes them
(via "mailto"). Messages that are none of these, or name nobody, are listed and skipped; nobody is
ever answered. Processing the same messages again counts nothing twice. \`bulletin inbound\` does the
same for mail as it arrives over SMTP.

Examples:
  bulletin bounces process /var/mail/bulletins-bounces
  bulletin bounces process ~/Maildir/.Bounces --dry-run
  bulletin bounces process returned/ --threshold 5 --json`,
    )
    .action(async (path: string, flags: { threshold?: number; dryRun?: boolean; json?: boolean }) => {
      const summary = await context.run((app) =>
        processBounces(app, resolve(context.io.cwd, path), path, {
          ...(flags.threshold === undefined ? {} : { threshold: flags.threshold }),
          dryRun: flags.dryRun ?? false,
        }),
      );
      if (flags.json) return printJson(context.io, summaryToJson(summary));
      printLines(context.io, ...describeSummary(summary));
    });
}
