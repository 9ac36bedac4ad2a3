// `bulletin segment create|ls|delete` and `bulletin unschedule`, and the pieces `send` and
// `subscribers count` share for choosing an audience (--where, --segment, --allow-unknown, --at)
// and for teaching the filter language in --help.
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { AudienceRequest } from '../../app/audience.js';
import { createSegment, listSegments, removeSegment } from '../../app/audience.js';
import { unscheduleSend } from '../../app/schedule.js';
import { parseScheduleTime } from '../../domain/bulletin.js';
import { BulletinError } from '../../domain/errors.js';
import { MAX_FILTER_LENGTH, MAX_FILTER_NESTING } from '../../domain/audience-filter.js';
import type { CliContext } from '../context.js';
import { formatTable, plural, printJson, printLines } from '../output.js';

export interface AudienceFlags {
  where?: string;
  segment?: string;
  allowUnknown?: boolean;
  at?: Date;
}

export function audienceFlags(flags: AudienceFlags): AudienceRequest {
  return {
    ...(flags.where === undefined ? {} : { where: flags.where }),
    ...(flags.segment === undefined ? {} : { segment: flags.segment }),
    ...(flags.allowUnknown ? { allowUnknown: true } : {}),
  };
}

/** commander parser of `--at`: an ISO 8601 time with an offset, or a usage error saying why not. */
export function scheduleFlag(value: string): Date {
  const parsed = parseScheduleTime(value);
  if (!parsed.ok) throw new InvalidArgumentError(parsed.reason);
  return parsed.at;
}

export function describeAudience(audience: { readonly filter: string | null; readonly segment: string | null }): string {
  if (audience.filter === null) return 'every active member';
  return audience.segment === null ? `where ${audience.filter}` : `segment ${audience.segment}: ${audience.filter}`;
}

export const FILTER_HELP = `
Audience filters (--where), over each active member:
  fields     email, name, subscribed (the date they subscribed), attributes.<name>
  compare    =  !=  in (…, …)  not in (…)  contains  starts with  ends with  exists
             <  <=  >  >=  (numbers, and dates: 2026-01-31, or 2026-01-31T09:00+10:30)
  combine    and, or, not, ( … )   (not binds tighter than and, and than or)
  values     "text" or 'text' (\\" \\' \\\\ \\n \\t \\uXXXX escapes), 42, -1.5, 2026-01-31
Text compares exactly with = and in (email ignores case); contains, starts with and ends with
ignore case. An attribute compares as a number with a number, as a date (its first 10
characters, YYYY-MM-DD) with a date. A member without the attribute matches != and not, never
=, <, >. An attribute no member has is refused (naming the list's) unless --allow-unknown.
A filter has at most ${MAX_FILTER_LENGTH} characters and nests at most ${MAX_FILTER_NESTING} deep; a mistake is one sentence with its column.
  --where 'attributes.platform = "mail" and attributes.state in ("SA", "NT")'
  --where 'not (email ends with "@example.com") and subscribed < 2026-01-01'
  --where 'attributes.plan_mbps >= 100 or attributes.vip exists'`;

export function registerAudienceCommands(program: Command, context: CliContext): void {
  const segment = program.command('segment').description('named audience filters of a list, for send --segment');
  const listOption = () => new Option('--list <slug>', 'the list (see `bulletin list ls`)').makeOptionMandatory();

  segment
    .command('create <name>')
    .description('name a filter of a list (lower-case letters, digits, hyphens)')
    .addOption(listOption())
    .addOption(new Option('--where <filter>', 'the filter (see below)').makeOptionMandatory())
    .option('--allow-unknown', 'accept attribute names that no member has')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `${FILTER_HELP}\n\nExample:\n  bulletin segment create mail-customers --list news --where 'attributes.platform = "mail"'\n  bulletin send outage.md --list news --segment mail-customers`,
    )
    .action(async (name: string, flags: { list: string; where: string; allowUnknown?: boolean; json?: boolean }) => {
      const created = await context.run((app) =>
        createSegment(app, name, flags.list, { where: flags.where, ...(flags.allowUnknown ? { allowUnknown: true } : {}) }),
      );
      if (flags.json) return printJson(context.io, { list: created.listSlug, name: created.name, filter: created.filter, count: created.count });
      printLines(
        context.io,
        `Created segment "${created.name}" of "${created.listSlug}": ${plural(created.count, 'active member matches', 'active members match')} now.`,
      );
    });

  segment
    .command('ls')
    .description('the segments (of one list, or all), with how many active members each matches now')
    .option('--list <slug>', 'only this list')
    .option('--json', 'print JSON')
    .action(async (flags: { list?: string; json?: boolean }) => {
      const segments = await context.run((app) => listSegments(app, flags.list));
      if (flags.json)
        return printJson(
          context.io,
          segments.map((each) => ({ list: each.listSlug, name: each.name, filter: each.filter, count: each.count })),
        );
      if (segments.length === 0) return printLines(context.io, 'No segments (bulletin segment create <name> --list <slug> --where …).');
      printLines(
        context.io,
        formatTable(
          ['LIST', 'SEGMENT', 'MEMBERS', 'FILTER'],
          segments.map((each) => [each.listSlug, each.name, each.count, each.filter]),
        ),
      );
    });

  segment
    .command('delete <name>')
    .description('delete a segment (bulletins sent with it keep their filter)')
    .addOption(listOption())
    .action(async (name: string, flags: { list: string }) => {
      await context.run((app) => removeSegment(app, name, flags.list));
      printLines(context.io, `Deleted segment "${name}" of "${flags.list}".`);
    });

  program
    .command('unschedule <bulletin-id>')
    .description('take back a scheduled send (send --at) before it starts; it is never sent')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nA send that has started cannot be unscheduled.\n\nExample:\n  bulletin unschedule 12')
    .action(async (id: string, flags: { json?: boolean }) => {
      const bulletinId = Number(id);
      if (!Number.isInteger(bulletinId) || bulletinId < 1) throw new BulletinError('USAGE', `"${id}" is not a bulletin id (see \`bulletin status\`).`);
      const bulletin = await context.run((app) => unscheduleSend(app, bulletinId));
      if (flags.json) return printJson(context.io, { bulletinId: bulletin.id, state: bulletin.state });
      printLines(context.io, `Unscheduled bulletin ${bulletin.id} (${bulletin.subject}); it will not be sent.`);
    });
}
