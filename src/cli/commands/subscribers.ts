// `bulletin subscribers add|remove|ls|count|export|import`: the people on one list.
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { importSubscribers, type ImportReport } from '../../app/import-subscribers.js';
import { addSubscriber, countSubscribers, exportSubscribers, listSubscribers, removeSubscriber } from '../../app/subscribers.js';
import { MEMBERSHIP_STATUSES, type MembershipStatus } from '../../domain/membership.js';
import { printable } from '../../domain/printable.js';
import { MAX_ATTRIBUTES, MAX_COLUMNS, MAX_FIELD_LENGTH, MAX_RECORD_BYTES, type Member } from '../../domain/subscriber.js';
import { unsubscribeLinkOf } from '../../app/unsubscribe.js';
import type { CliContext } from '../context.js';
import { countAudienceOf } from '../../app/audience.js';
import { BulletinError } from '../../domain/errors.js';
import { FILTER_HELP, audienceFlags, type AudienceFlags } from './audience.js';
import { formatDate, formatTable, plural, printJson, printLines } from '../output.js';

const listOption = () => new Option('--list <slug>', 'the list (see `bulletin list ls`)').makeOptionMandatory();
const statusOption = (fallback: string) =>
  new Option('--status <status>', 'membership status').choices([...MEMBERSHIP_STATUSES, ...(fallback === 'all' ? ['all'] : [])]).default(fallback);

function parseStatus(value: string): MembershipStatus | null {
  return value === 'all' ? null : (value as MembershipStatus);
}

function collectAttribute(value: string, previous: Record<string, string>): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError('expected key=value, e.g. --attr city=Adelaide');
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new InvalidArgumentError('expected 1 to 100000');
  return limit;
}

export function memberToJson(member: Member) {
  return {
    email: member.email,
    name: member.name,
    attributes: member.attributes,
    status: member.status,
    subscribedAt: member.subscribedAt.toISOString(),
    subscribedSource: member.subscribedSource,
    statusChangedAt: member.statusChangedAt.toISOString(),
    statusSource: member.statusSource,
  };
}

export function registerSubscriberCommands(program: Command, context: CliContext): void {
  const subscribers = program.command('subscribers').description('add, remove, list, count, export and import subscribers');

  subscribers
    .command('add <address>')
    .description('subscribe one address to a list')
    .addOption(listOption())
    .option('--name <name>', "the person's name (usable as {{subscriber.name}})")
    .option('--attr <key=value>', 'an attribute (repeatable), usable as {{subscriber.attributes.key}}', collectAttribute, {})
    .option('--resubscribe', 'subscribe again someone who unsubscribed, bounced or was erased (only on their request)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  bulletin subscribers add jo@example.net --list bulletins --name "Jo Bloggs" --attr plan=adsl')
    .action(async (address: string, flags: { list: string; name?: string; attr: Record<string, string>; resubscribe?: boolean; json?: boolean }) => {
      const result = await context.run((app) =>
        addSubscriber(app, flags.list, {
          address,
          ...(flags.name === undefined ? {} : { name: flags.name }),
          attributes: flags.attr,
          resubscribe: flags.resubscribe ?? false,
        }),
      );
      if (flags.json) return printJson(context.io, result);
      const said = { added: 'Subscribed', 'already active': 'Already subscribed:', resubscribed: 'Resubscribed' }[result.outcome];
      printLines(context.io, `${said} ${result.email} ${result.outcome === 'already active' ? 'on' : 'to'} "${result.list}".`);
    });

  subscribers
    .command('remove <address>')
    .description('unsubscribe an address (the record stays), or erase the person with --purge')
    .addOption(listOption())
    .option('--purge', "erase the person's data from every list (data-protection request); only a hash of the address stays so they are never mailed again")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  bulletin subscribers remove jo@example.net --list bulletins\n  bulletin subscribers remove jo@example.net --list bulletins --purge',
    )
    .action(async (address: string, flags: { list: string; purge?: boolean; json?: boolean }) => {
      const result = await context.run((app) => removeSubscriber(app, flags.list, { address, purge: flags.purge ?? false }));
      if (flags.json) return printJson(context.io, result);
      if (result.outcome === 'erased') {
        return printLines(
          context.io,
          `Erased ${result.email} (${plural(result.membershipsErased ?? 0, 'membership')}); the address is suppressed and will never be mailed or imported again.`,
        );
      }
      printLines(context.io, `${result.outcome === 'unsubscribed' ? 'Unsubscribed' : 'Already unsubscribed:'} ${result.email} from "${result.list}".`);
    });

  subscribers
    .command('ls')
    .description("show a list's subscribers, by address")
    .addOption(listOption())
    .addOption(statusOption('all'))
    .option('--search <text>', 'only addresses or names containing this text')
    .option('--limit <n>', 'at most this many (default 100)', parseLimit, 100)
    .option('--after <address>', 'start after this address (next page)')
    .option('--json', 'print the result as JSON')
    .action(async (flags: { list: string; status: string; search?: string; limit: number; after?: string; json?: boolean }) => {
      const members = await context.run((app) =>
        listSubscribers(app, flags.list, {
          status: parseStatus(flags.status),
          limit: flags.limit,
          ...(flags.after === undefined ? {} : { after: flags.after }),
          ...(flags.search === undefined ? {} : { search: flags.search }),
        }),
      );
      if (flags.json) return printJson(context.io, members.map(memberToJson));
      if (members.length === 0) return printLines(context.io, 'No subscribers match.');
      const lines = [
        formatTable(
          ['EMAIL', 'NAME', 'STATUS', 'SINCE', 'VIA'],
          members.map((member) => [member.email, member.name ?? '', member.status, formatDate(member.statusChangedAt), member.statusSource]),
        ),
      ];
      const last = members.at(-1);
      if (members.length === flags.limit && last) lines.push(`(more: add --after ${last.email})`);
      printLines(context.io, ...lines);
    });

  subscribers
    .command('unsubscribe-url <address>')
    .description("print a member's unsubscribe link (for support staff: it works like the one in their bulletins)")
    .addOption(listOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  bulletin subscribers unsubscribe-url jo@example.net --list news')
    .action(async (address: string, flags: { list: string; json?: boolean }) => {
      const link = await context.run((app) => unsubscribeLinkOf(app, flags.list, address));
      if (flags.json) return printJson(context.io, link);
      printLines(context.io, link.url);
    });

  subscribers
    .command('count')
    .description('print the number of active subscribers (or of another status, or matching a filter, with a sample)')
    .addOption(listOption())
    .addOption(statusOption('active'))
    .option('--where <filter>', 'count the active members matching this filter, and show a sample (see `bulletin send --help`)')
    .option('--segment <name>', 'count the active members of this segment, and show a sample')
    .option('--allow-unknown', 'accept attribute names in --where that no member has')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', FILTER_HELP)
    .action(async (flags: { list: string; status: MembershipStatus; json?: boolean } & AudienceFlags) => {
      if (flags.where !== undefined || flags.segment !== undefined) {
        if (flags.status !== 'active') throw new BulletinError('USAGE', '--where and --segment count active members; leave out --status.');
        const counted = await context.run((app) => countAudienceOf(app, flags.list, audienceFlags(flags)));
        if (flags.json) return printJson(context.io, counted);
        return printLines(
          context.io,
          String(counted.count),
          ...counted.sample.map((member) => `  ${member.email}${member.name ? ` (${printable(member.name, 80)})` : ''}`),
          ...(counted.count > counted.sample.length ? ['  …'] : []),
        );
      }
      const count = await context.run((app) => countSubscribers(app, flags.list, flags.status));
      if (flags.json) return printJson(context.io, { list: flags.list, status: flags.status, count });
      printLines(context.io, String(count));
    });

  subscribers
    .command('export')
    .description('write subscribers as CSV (email,name,attributes…: the format import reads)')
    .addOption(listOption())
    .addOption(statusOption('active'))
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--json', 'print a JSON summary (with --out)')
    .addHelpText('after', '\nExample:\n  bulletin subscribers export --list bulletins --status all --out backup.csv')
    .action(async (flags: { list: string; status: string; out?: string; json?: boolean }) => {
      const file = flags.out === undefined ? undefined : createWriteStream(flags.out);
      const count = await context.run((app) => exportSubscribers(app, flags.list, { status: parseStatus(flags.status), out: file ?? context.io.stdout }));
      if (file) {
        file.end();
        await finished(file);
        if (flags.json) return printJson(context.io, { list: flags.list, status: flags.status, count, file: flags.out });
        context.io.stderr.write(`Wrote ${plural(count, 'subscriber')} to ${flags.out}.\n`);
      }
    });

  subscribers
    .command('import <file>')
    .description('import a CSV file (header: email, name, other columns become attributes); all or nothing')
    .addOption(listOption())
    .option('--rejects <file>', 'write invalid rows (with line and reason) to this CSV file')
    .option('--resubscribe', 'reactivate people in the file who unsubscribed or bounced (default: leave them alone)')
    .option('--dry-run', 'check and count everything, change nothing')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The file is UTF-8 CSV with a header row. "email" is required, "name" optional; any other
column becomes an attribute (letters, digits, _). Invalid rows are reported by line and skipped;
everything else is imported in one transaction. Running the same import again changes nothing.
Use - to read standard input.

Limits: a name or attribute value of at most ${MAX_FIELD_LENGTH} characters (a longer one rejects its
row); at most ${MAX_COLUMNS} columns (email, name and ${MAX_ATTRIBUTES} attributes) and ${MAX_RECORD_BYTES / 1024} KiB a record (more
refuses the file, with its line). Addresses with a quoted local part ("…"@…) are refused.
Values from the file are shown with control characters escaped (\\x1b, \\r).

Example:
  bulletin subscribers import customers.csv --list bulletins --rejects rejected.csv`,
    )
    .action(async (file: string, flags: { list: string; rejects?: string; resubscribe?: boolean; dryRun?: boolean; json?: boolean }) => {
      const showProgress = !flags.json && context.io.stderr.isTTY === true;
      const report = await context.run((app) =>
        importSubscribers(app, {
          list: flags.list,
          file,
          stdin: context.io.stdin,
          ...(flags.rejects === undefined ? {} : { rejectsFile: flags.rejects }),
          resubscribe: flags.resubscribe ?? false,
          dryRun: flags.dryRun ?? false,
          ...(showProgress ? { onProgress: (rows: number) => context.io.stderr.write(`\r${rows.toLocaleString('en-US')} rows read…`) } : {}),
        }),
      );
      if (showProgress) context.io.stderr.write('\r\x1b[K');
      if (flags.json) return printJson(context.io, report);
      printLines(context.io, ...describeImport(report, flags.rejects));
    });
}

function describeImport(report: ImportReport, rejectsFile: string | undefined): string[] {
  const lines = [
    `${report.dryRun ? 'Dry run (nothing changed): would import' : 'Imported'} ${plural(report.rowsRead, 'row')} into "${report.list}":`,
    `  ${report.membershipsAdded.toLocaleString('en-US')} subscribed, ${report.alreadyActive.toLocaleString('en-US')} already subscribed`,
    `  ${report.subscribersCreated.toLocaleString('en-US')} new people, ${report.subscribersUpdated.toLocaleString('en-US')} updated (name or attributes)`,
    `  ${plural(report.duplicates, 'duplicate row')} (the first occurrence counts)`,
  ];
  if (report.resubscribed > 0) lines.push(`  ${report.resubscribed.toLocaleString('en-US')} resubscribed (removed by a sync earlier, or --resubscribe)`);
  if (report.keptInactive > 0) {
    lines.push(`  ${report.keptInactive.toLocaleString('en-US')} left unsubscribed or bounced (use --resubscribe only if they asked to join again)`);
  }
  if (report.suppressed > 0) lines.push(`  ${plural(report.suppressed, 'erased address', 'erased addresses')} skipped`);
  const rejected = report.invalid + report.suppressed;
  if (report.invalid > 0) {
    lines.push(`  ${plural(report.invalid, 'invalid row')} skipped:`);
    // Values from the file are shown escaped: a control character there must not reach the terminal.
    for (const reject of report.rejects.slice(0, 20)) lines.push(`    line ${reject.line}: "${printable(reject.email, 100)}" ${reject.reason}`);
    if (rejected > 20) lines.push(`    … and ${(rejected - 20).toLocaleString('en-US')} more${rejectsFile ? '' : ' (write them all with --rejects FILE)'}`);
  }
  if (rejectsFile && rejected > 0) lines.push(`  rejected rows written to ${rejectsFile}`);
  return lines;
}
