// `bulletin preview`: one subscriber's copy of a bulletin, to the terminal or a file.
import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { previewBulletin, type PreviewFormat } from '../../app/preview.js';
import type { CliContext } from '../context.js';
import { printJson } from '../output.js';

export function registerPreviewCommand(program: Command, context: CliContext): void {
  program
    .command('preview <file>')
    .description('render a bulletin for one subscriber (or a sample one) without sending it')
    .option('--list <slug>', "the list (default: the bulletin's `list:` front matter)")
    .option('--to <address>', "render with this subscriber's name and attributes")
    .addOption(new Option('--format <format>', 'the whole message, or one part').choices(['eml', 'html', 'text']).default('text'))
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--templates <dir>', 'layouts overriding the default templates')
    .option('--verp', 'show the VERP envelope sender')
    .option('--archive', 'show the copy the web archive will publish: no subscriber in it, so subscriber.* is empty (text or html)')
    .option('--json', 'print {recipient, format, content} as JSON')
    .addHelpText(
      'after',
      `
The archive copy has no subscriber: every subscriber.* value is empty there. Write personal
values as {{default subscriber.name "customer"}}, or inside {{#if subscriber.name}}…{{/if}};
preview and send list every other place, with file:line:column.

Examples:
  bulletin preview outage.md --list news
  bulletin preview outage.md --list news --to jo@example.net --format html --out jo.html
  bulletin preview outage.md --list news --archive`,
    )
    .action(
      async (
        file: string,
        flags: { list?: string; to?: string; format: PreviewFormat; out?: string; templates?: string; verp?: boolean; archive?: boolean; json?: boolean },
      ) => {
        const preview = await context.run((app) =>
          previewBulletin(app, {
            file,
            format: flags.format,
            ...(flags.list === undefined ? {} : { list: flags.list }),
            ...(flags.to === undefined ? {} : { to: flags.to }),
            ...(flags.templates === undefined ? {} : { templatesDir: flags.templates }),
            ...(flags.verp === undefined ? {} : { verp: flags.verp }),
            archive: flags.archive ?? false,
          }),
        );
        if (flags.json) {
          return printJson(context.io, {
            recipient: preview.recipient,
            format: flags.format,
            content: preview.content.toString('utf8'),
            emptyInArchive: preview.emptyInArchive,
          });
        }
        for (const warning of preview.emptyInArchive) context.io.stderr.write(`warning: ${warning}\n`);
        if (flags.out !== undefined) {
          await writeFile(flags.out, preview.content);
          context.io.stderr.write(`Wrote the ${flags.format} preview for ${preview.recipient} to ${flags.out}.\n`);
          return;
        }
        context.io.stdout.write(preview.content);
      },
    );
}
