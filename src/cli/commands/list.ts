// `bulletin list create|ls|show|update`: mailing lists and their settings.
import type { Command } from 'commander';
import { createList, listLists, showList, updateList, type ListInput, type ListWithCounts, type UnsubscribeSummary } from '../../app/lists.js';
import { formatMailbox } from '../../domain/address.js';
import { effectiveBounceAddress, effectiveSubjectPrefix, type MailingList } from '../../domain/list.js';
import { MEMBERSHIP_STATUSES } from '../../domain/membership.js';
import type { CliContext } from '../context.js';
import { formatDate, formatTable, printJson, printLines } from '../output.js';

interface ListFlags {
  name?: string;
  description?: string;
  address?: string;
  from?: string;
  baseUrl?: string;
  subjectPrefix?: string;
  bounceAddress?: string;
  templates?: string;
  allowHttp?: boolean;
  json?: boolean;
}

function addListOptions(command: Command): Command {
  return command
    .option('--name <name>', 'display name, e.g. "ExampleNet-Bulletins" (default subject prefix: [name])')
    .option('--description <text>', 'one or two sentences shown on the archive index')
    .option('--address <address>', "the list's own address, e.g. bulletins@lists.example.net (List-Id, archive)")
    .option('--from <mailbox>', 'From header of every bulletin, e.g. "ExampleNet <noreply@example.net>"')
    .option(
      '--base-url <url>',
      'public https URL of `bulletin serve` (unsubscribe links <url>/u/…, help page <url>/help/<slug>, archive <url>/archive/<slug>/); at most 900 characters, so no header line passes 998 octets; http only for loopback',
    )
    .option('--allow-http', 'accept an http --base-url for another host (a test set-up: one-click unsubscribe needs https)')
    .option('--subject-prefix <prefix>', 'subject prefix instead of [name]; "" for none')
    .option('--bounce-address <address>', 'envelope sender instead of <list>-bounces@<domain>')
    .option('--templates <dir>', 'directory of layouts overriding the default templates')
    .option('--json', 'print the result as JSON');
}

function toInput(flags: ListFlags): ListInput {
  const input: { -readonly [K in keyof ListInput]: ListInput[K] } = {};
  if (flags.name !== undefined) input.name = flags.name;
  if (flags.description !== undefined) input.description = flags.description;
  if (flags.address !== undefined) input.address = flags.address;
  if (flags.from !== undefined) input.from = flags.from;
  if (flags.baseUrl !== undefined) input.baseUrl = flags.baseUrl;
  if (flags.subjectPrefix !== undefined) input.subjectPrefix = flags.subjectPrefix;
  if (flags.bounceAddress !== undefined) input.bounceAddress = flags.bounceAddress;
  if (flags.templates !== undefined) input.templatesDir = flags.templates;
  if (flags.allowHttp) input.allowHttp = true;
  return input;
}

export function listToJson(list: MailingList) {
  return {
    slug: list.slug,
    name: list.name,
    description: list.description,
    address: list.address,
    from: formatMailbox(list.from),
    baseUrl: list.baseUrl,
    subjectPrefix: effectiveSubjectPrefix(list),
    bounceAddress: effectiveBounceAddress(list),
    templatesDir: list.templatesDir,
    createdAt: list.createdAt.toISOString(),
    updatedAt: list.updatedAt.toISOString(),
  };
}

function describeUnsubscribes(unsubscribes: readonly UnsubscribeSummary[]): string {
  if (unsubscribes.length === 0) return '(none)';
  const latest = unsubscribes.reduce((a, b) => (b.latest > a.latest ? b : a));
  const bySource = unsubscribes.map((item) => `${item.count.toLocaleString('en-US')} ${item.source}`).join(', ');
  return `${bySource}; latest ${formatDate(latest.latest)} via ${latest.source}`;
}

function describeList({ list, counts, unsubscribes }: ListWithCounts & { unsubscribes: readonly UnsubscribeSummary[] }): string[] {
  return [
    `${list.name} (${list.slug})`,
    ...(list.description ? [`  ${list.description}`] : []),
    `  address:         ${list.address}`,
    `  from:            ${formatMailbox(list.from)}`,
    `  base URL:        ${list.baseUrl}`,
    `  subject prefix:  ${effectiveSubjectPrefix(list) || '(none)'}`,
    `  bounces to:      ${effectiveBounceAddress(list)}`,
    `  templates:       ${list.templatesDir ?? '(default)'}`,
    `  created:         ${formatDate(list.createdAt)}`,
    `  subscribers:     ${MEMBERSHIP_STATUSES.map((status) => `${counts[status].toLocaleString('en-US')} ${status}`).join(', ')}`,
    `  unsubscribed by: ${describeUnsubscribes(unsubscribes)}`,
  ];
}

export function registerListCommands(program: Command, context: CliContext): void {
  const list = program.command('list').description('create and inspect mailing lists');

  addListOptions(list.command('create <slug>'))
    .description('create a list (slug: lower-case letters, digits, hyphens)')
    .addHelpText(
      'after',
      `
Example:
  bulletin list create bulletins --name "ExampleNet-Bulletins" \\
    --address bulletins@lists.example.net --from "ExampleNet <noreply@example.net>" \\
    --base-url https://lists.example.net`,
    )
    .action(async (slug: string, flags: ListFlags) => {
      const created = await context.run((app) => createList(app, slug, toInput(flags)));
      if (flags.json) return printJson(context.io, listToJson(created));
      printLines(context.io, `Created list "${created.slug}" (${created.name}).`);
    });

  list
    .command('ls')
    .description('show every list with its subscriber counts')
    .option('--json', 'print the result as JSON')
    .action(async (flags: { json?: boolean }) => {
      const { lists, database } = await context.run(async (app) => ({ lists: await listLists(app), database: app.db.description }));
      if (flags.json)
        return printJson(
          context.io,
          lists.map((item) => ({ ...listToJson(item.list), counts: item.counts })),
        );
      if (lists.length === 0) {
        return printLines(context.io, `No lists yet in the ${database}. Create one: see \`bulletin list create --help\`.`);
      }
      printLines(
        context.io,
        formatTable(
          ['SLUG', 'NAME', 'ADDRESS', ...MEMBERSHIP_STATUSES.map((status) => status.toUpperCase())],
          lists.map(({ list: item, counts }) => [item.slug, item.name, item.address, ...MEMBERSHIP_STATUSES.map((status) => counts[status])]),
        ),
      );
    });

  list
    .command('show <slug>')
    .description("show a list's settings and its subscriber counts by status")
    .option('--json', 'print the result as JSON')
    .action(async (slug: string, flags: { json?: boolean }) => {
      const found = await context.run((app) => showList(app, slug));
      if (flags.json) {
        const unsubscribes = found.unsubscribes.map((item) => ({ source: item.source, count: item.count, latest: item.latest.toISOString() }));
        return printJson(context.io, { ...listToJson(found.list), counts: found.counts, unsubscribes });
      }
      printLines(context.io, ...describeList(found));
    });

  addListOptions(list.command('update <slug>'))
    .description("change a list's settings (only the options given)")
    .addHelpText('after', '\nExample:\n  bulletin list update bulletins --description "Service notices for ExampleNet customers"')
    .action(async (slug: string, flags: ListFlags) => {
      const updated = await context.run((app) => updateList(app, slug, toInput(flags)));
      if (flags.json) return printJson(context.io, listToJson(updated));
      printLines(context.io, `Updated list "${updated.slug}".`);
    });
}
