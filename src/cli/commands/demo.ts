// `bulletin demo`: the first thing to run after `npm install`. With no configuration at all it
// creates a demo list of made-up subscribers, sends two sample bulletins through the real send
// engine into a local SMTP capture (each message saved as .eml), exports the web archive, and serves
// the unsubscribe pages and the archive until Ctrl-C (`--no-serve`: exit instead, for scripts).
import { join } from 'node:path';
import type { Command } from 'commander';
import { exportArchive } from '../../app/archive.js';
import { BulletinError } from '../../domain/errors.js';
import { DEMO_BULLETINS, DEMO_LIST, setUpDemo } from '../../app/demo.js';
import { prepareSend, runSend } from '../../app/send.js';
import { startSmtpCapture } from '../../app/smtp-capture.js';
import { openTransport } from '../../app/transports.js';
import { unsubscribeLinkOf } from '../../app/unsubscribe.js';
import { selectMembers } from '../../store/memberships.js';
import { startWebServer } from '../../web/server.js';
import type { CliContext } from '../context.js';
import { plural, printLines } from '../output.js';
import { report, runOptions, withProgress, type SendFlags } from './send.js';
import { firstSignal, parsePort } from './serve.js';

export function registerDemoCommand(program: Command, context: CliContext): void {
  program
    .command('demo')
    .description('see bulletin work in one command: a demo list, two bulletins sent into a local SMTP capture, the archive, the unsubscribe pages')
    .option('--port <port>', 'port for the web server (unsubscribe pages and archive); it goes into the demo list\'s links', parsePort, 8080)
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
      const config = context.config();
      const workDir = join(config.dataDir, 'demo');
      const baseUrl = `http://127.0.0.1:${flags.port}`;
      await context.run(async (app) => {
        const setup = await setUpDemo(app, { baseUrl, workDir });
        context.io.stderr.write(
          `Demo list "${DEMO_LIST}" ${setup.createdList ? 'created' : 'ready'} in the ${app.db.description}: ${plural(setup.activeSubscribers, 'subscriber')}${setup.addedSubscribers > 0 ? ` (${setup.addedSubscribers} made up just now)` : ''}.\n`,
        );
        const capture = await startSmtpCapture(join(workDir, 'outbox'));
        const sendFlags: SendFlags = { uncertain: 'resend', wait: true, rate: flags.rate, connections: 5 };
        const transport = await openTransport({ ...config, smtpUrl: capture.url }, sendFlags);
        let sent = 0;
        try {
          for (const file of DEMO_BULLETINS) {
            const plan = await prepareSend(app, { file, list: DEMO_LIST });
            context.io.stderr.write(`\nSending "${plan.sample.subject}" to ${plural(plan.recipients, 'subscriber')} through ${transport.description}:\n`);
            const summary = await withProgress(context, sendFlags, (onStart) => runSend(app, plan, runOptions(app, transport, sendFlags, onStart)));
            report(context, summary, sendFlags);
            sent += summary.thisRun.sent;
            if (context.exitCode !== 0) return;
          }
        } finally {
          await transport.close();
          await capture.close();
        }
        const archive = await exportArchive(app, { slug: DEMO_LIST, outDir: join(workDir, 'archive') });
        const [someone] = await selectMembers(app.db, { listId: setup.list.id, status: 'active', limit: 1 });
        const link = someone ? await unsubscribeLinkOf(app, DEMO_LIST, someone.email) : null;
        printLines(
          context.io,
          '',
          `Delivered ${plural(sent, 'message')}: each one is an .eml file in ${capture.directory}/ (open one in a mail program).`,
          `Archive: ${plural(archive.bulletins, 'bulletin')} exported to ${archive.directory}/${DEMO_LIST}/${flags.serve ? `, served at ${baseUrl}/archive/${DEMO_LIST}/` : ''}`,
          ...(link ? [`Unsubscribe link of ${link.email}: ${link.url}`] : []),
        );
        if (!flags.serve) {
          printLines(context.io, `(Start the web server to open those: bulletin demo, or bulletin serve --port ${flags.port} --archive-dir ${archive.directory})`);
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
