// `bulletin demo`: the first thing to run after `npm install`. With no configuration at all it
// creates a demo list of made-up subscribers, sends two sample bulletins through the real send
// engine into a local SMTP capture (each message saved as .eml), exports the web archive, and serves
// the unsubscribe pages and the archive until Ctrl-C (`--no-serve`: exit instead, for scripts).
// The use case is runDemo (src/app/demo.ts); this command shows it and serves the pages.
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEMO_LIST, runDemo } from '../../app/demo.js';
import { BulletinError } from '../../domain/errors.js';
import { startWebServer } from '../../web/server.js';
import { parsePort } from '../arguments.js';
import type { CliContext } from '../context.js';
import { plural, printLines } from '../output.js';
import { report, withProgress } from '../send-progress.js';
import { firstSignal } from '../signals.js';

export function registerDemoCommand(program: Command, context: CliContext): void {
  program
    .command('demo')
    .description('see bulletin work in one command: a demo list, two bulletins sent into a local SMTP capture, the archive, the unsubscribe pages')
    .option('--port <port>', "port for the web server (unsubscribe pages and archive); it goes into the demo list's links", parsePort, 8080)
    .option('--rate <rate>', 'sending rate', '200/s')
    .option('--no-serve', 'do not start the web server; exit when done (for scripts)')
    .addHelpText(
      'after',
      `
Nothing leaves this machine: the SMTP relay is a capture server on 127.0.0.1 that saves each
message under <data dir>/demo/outbox/. Every address on the demo list is made up. Running the
demo again sends the two bulletins again (new bulletins; the archive grows).

Examples:
  npx bulletin demo
  npx bulletin demo --no-serve`,
    )
    .action(async (flags: { port: number; rate: string; serve: boolean }) => {
      if (flags.port === 0) throw new BulletinError('USAGE', 'The demo needs a fixed --port: it goes into the links of the messages it sends.');
      const workDir = join(context.config().dataDir, 'demo');
      const baseUrl = `http://127.0.0.1:${flags.port}`;
      await context.run(async (app) => {
        const result = await runDemo(
          app,
          { baseUrl, workDir, rate: flags.rate },
          {
            ready: (setup) =>
              context.io.stderr.write(
                `Demo list "${DEMO_LIST}" ${setup.createdList ? 'created' : 'ready'} in the ${app.db.description}: ${plural(setup.activeSubscribers, 'subscriber')}${setup.addedSubscribers > 0 ? ` (${setup.addedSubscribers} made up just now)` : ''}.\n`,
              ),
            sending: (plan, relay) =>
              context.io.stderr.write(`\nSending "${plan.sample.subject}" to ${plural(plan.recipients, 'subscriber')} through ${relay}:\n`),
            send: async (run) => {
              const summary = await withProgress(context, {}, run);
              report(context, summary, {});
              return context.exitCode === 0;
            },
          },
        );
        if (result === null) return;
        const { archive, link } = result;
        printLines(
          context.io,
          '',
          `Delivered ${plural(result.sent, 'message')}: each one is an .eml file in ${result.outbox}/ (open one in a mail program).`,
          `Archive: ${plural(archive.bulletins, 'bulletin')} exported to ${archive.directory}/${DEMO_LIST}/${flags.serve ? `, served at ${baseUrl}/archive/${DEMO_LIST}/` : ''}`,
          ...(link ? [`Unsubscribe link of ${link.email}: ${link.url}`] : []),
        );
        if (!flags.serve) {
          printLines(
            context.io,
            `(Start the web server to open those: bulletin demo, or bulletin serve --port ${flags.port} --archive-dir ${archive.directory})`,
          );
          return;
        }
        const server = await startWebServer(app, { host: '127.0.0.1', port: flags.port, archiveDir: archive.directory });
        printLines(context.io, `Serving ${server.url}: open the archive or the unsubscribe link above in a browser. Ctrl-C stops.`);
        const { signal, release } = await firstSignal(context);
        try {
          await server.close();
        } finally {
          release();
        }
        context.exitCode = signal === 'SIGINT' ? 130 : 0;
      });
    });
}
