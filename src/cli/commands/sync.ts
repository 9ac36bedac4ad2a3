// `bulletin subscribers sync <file.csv> --list <slug>`: make a list's members match a CSV export
// (added, updated, removed), with a dry run and a guard against removing too many.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseMaxRemoval, syncSubscribers, type SyncReport } from '../../app/sync-subscribers.js';
import { printable } from '../../domain/printable.js';
import { MAX_ATTRIBUTES, MAX_COLUMNS, MAX_FIELD_LENGTH, MAX_RECORD_BYTES } from '../../domain/subscriber.js';
import type { CliContext } from '../context.js';
import { plural, printJson, printLines } from '../output.js';

function maxRemovalFlag(value: string): number {
  const share = parseMaxRemoval(value);
  if (share === null) throw new InvalidArgumentError('expected a share of the active members from 0% to 100%, like 25%');
  return share;
}

export function registerSyncCommand(program: Command, context: CliContext): void {
  const subscribers = program.commands.find((command) => command.name() === 'subscribers');
  if (!subscribers) throw new Error('registerSyncCommand needs the subscribers command registered first');
  subscribers
    .command('sync <file>')
    .description("make the list's members match a CSV file: new ones subscribed, names and attributes updated, the missing removed")
    .requiredOption('--list <slug>', 'the list (see `bulletin list ls`)')
    .option('--resubscribe', 'subscribe again people in the file who unsubscribed or bounced (only if they asked to)')
    .option('--max-removal <share>', 'refuse to remove more than this share of the active members (default 10%)', maxRemovalFlag)
    .option('--rejects <file>', 'write invalid rows (with line and reason) to this CSV file')
    .option('--dry-run', 'show what would change (counts and a sample), change nothing')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The file is read like \`subscribers import\` (header row with "email", optional "name", other
columns attributes; the same limits: ${MAX_FIELD_LENGTH} characters a value, ${MAX_COLUMNS} columns (${MAX_ATTRIBUTES} attributes), ${MAX_RECORD_BYTES / 1024} KiB a
record), streamed, in one transaction: all of it or nothing.
- addresses not on the list are subscribed (source "sync");
- names and the attributes the file has columns for are made to match (an empty cell removes
  that attribute; other attributes are kept);
- active members missing from the file get the status "removed" (source "sync"): never mailed
  again unless a later sync or import has them;
- people in the file who unsubscribed or bounced stay so unless --resubscribe; erased ones are
  never subscribed again. A row rejected for a mistake keeps its member (when its address reads).
A sync that would remove more than 10% of the active members is refused (a truncated export
must not empty the list) unless --max-removal allows it. Running the same sync again changes nothing.

Examples:
  bulletin subscribers sync customers.csv --list news --dry-run
  bulletin subscribers sync customers.csv --list news --max-removal 25%`,
    )
    .action(async (file: string, flags: { list: string; resubscribe?: boolean; maxRemoval?: number; rejects?: string; dryRun?: boolean; json?: boolean }) => {
      const report = await context.run((app) =>
        syncSubscribers(app, {
          list: flags.list,
          file,
          stdin: context.io.stdin,
          ...(flags.rejects === undefined ? {} : { rejectsFile: flags.rejects }),
          ...(flags.maxRemoval === undefined ? {} : { maxRemoval: flags.maxRemoval }),
          resubscribe: flags.resubscribe ?? false,
          dryRun: flags.dryRun ?? false,
        }),
      );
      if (flags.json) return printJson(context.io, report);
      printLines(context.io, ...describeSync(report));
    });
}

function describeSync(report: SyncReport): string[] {
  const n = (count: number) => count.toLocaleString('en-US');
  const lines = [
    `${report.dryRun ? 'Dry run (nothing changed): syncing would make' : 'Synced'} "${report.list}" with ${plural(report.rowsRead, 'row')}: ${n(report.activeBefore)} active members before, ${n(report.activeAfter)} after`,
    `  ${n(report.added)} added, ${n(report.back)} back, ${n(report.updated)} updated (name or attributes), ${n(report.removed)} removed`,
  ];
  if (report.keptInactive > 0) lines.push(`  ${n(report.keptInactive)} left unsubscribed or bounced (use --resubscribe only if they asked to join again)`);
  if (report.suppressed > 0) lines.push(`  ${plural(report.suppressed, 'erased address', 'erased addresses')} skipped`);
  if (report.duplicates > 0) lines.push(`  ${plural(report.duplicates, 'duplicate row')} (the first occurrence counts)`);
  if (report.sample.added.length > 0)
    lines.push(`  added or back, e.g.: ${report.sample.added.join(', ')}${report.added + report.back > report.sample.added.length ? ', …' : ''}`);
  if (report.sample.removed.length > 0)
    lines.push(`  removed, e.g.: ${report.sample.removed.join(', ')}${report.removed > report.sample.removed.length ? ', …' : ''}`);
  if (report.invalid > 0) {
    lines.push(`  ${plural(report.invalid, 'invalid row')} skipped:`);
    for (const reject of report.rejects.slice(0, 20)) lines.push(`    line ${reject.line}: "${printable(reject.email, 100)}" ${reject.reason}`);
  }
  if (report.refusal !== null) lines.push(`  would be refused: ${report.refusal}`);
  return lines;
}
