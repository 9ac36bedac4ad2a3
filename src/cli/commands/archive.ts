// `bulletin archive export`: writes a list's static web archive (pipermail-style) into a directory.
import type { Command } from 'commander';
import { exportArchive } from '../../app/archive.js';
import { BulletinError } from '../../domain/errors.js';
import type { CliContext } from '../context.js';
import { plural, printJson, printLines } from '../output.js';

export function registerArchiveCommands(program: Command, context: CliContext): void {
  const archive = program.command('archive').description('the static web archive of sent bulletins');
  archive
    .command('export')
    .description("write a list's web archive: monthly indexes by thread, subject, author and date, a page per bulletin, mbox downloads, an Atom feed")
    .requiredOption('--list <slug>', 'the list')
    .option('--out <dir>', 'output directory (default: $BULLETIN_ARCHIVE_DIR)')
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      `
Writes <dir>/<slug>/index.html, <dir>/<slug>/<YYYY-Month>/{thread,subject,author,date}.html,
one <NNNNNN>.html per bulletin (numbers never change once given), <YYYY-Month>.txt.gz (mbox) and
feed.xml. Only files whose content changed are rewritten; the same bulletins always give the same
bytes. No subscriber address, name or link token appears anywhere. \`bulletin serve\` serves the
directory under /archive/; \`bulletin send\` re-exports after a send when BULLETIN_ARCHIVE_DIR is set.

Example:
  bulletin archive export --list news --out ./public/archive`,
    )
    .action(async (flags: { list: string; out?: string; json?: boolean }) => {
      const outDir = flags.out ?? context.config().archiveDir;
      if (!outDir) throw new BulletinError('USAGE', 'Where to? Give --out DIR, or set BULLETIN_ARCHIVE_DIR.');
      const summary = await context.run((app) => exportArchive(app, { slug: flags.list, outDir }));
      if (flags.json) return printJson(context.io, summary);
      printLines(
        context.io,
        `Archive of "${summary.list}" in ${summary.directory}/${summary.list}/: ${plural(summary.bulletins, 'bulletin')} in ${plural(summary.months, 'month')}; ${plural(summary.written, 'file')} written, ${summary.unchanged} unchanged.`,
      );
    });
}
