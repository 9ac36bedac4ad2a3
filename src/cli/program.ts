// Declares the `bulletin` command line: global options, and each command group handed to its own
// file. Commands are thin: parse options, call one use case, print.
import { Command, Help } from 'commander';
import { registerArchiveCommands } from './commands/archive.js';
import { registerBounceCommands } from './commands/bounces.js';
import { registerInboundCommand } from './commands/inbound.js';
import { registerDbCommands } from './commands/db.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerListCommands } from './commands/list.js';
import { registerSubscriberCommands } from './commands/subscribers.js';
import { createContext, type CliContext } from './context.js';
import { registerSendCommands } from './commands/send.js';
import { registerControlCommands } from './commands/control.js';
import { registerAudienceCommands } from './commands/audience.js';
import { registerSyncCommand } from './commands/sync.js';
import { registerPreviewCommand } from './commands/preview.js';
import { registerServeCommand } from './commands/serve.js';
import type { CliIo } from './io.js';

export const VERSION = '0.1.0';

export function createProgram(io: CliIo): { program: Command; context: CliContext } {
  const program = new Command('bulletin');
  program
    .description('Broadcast announce-only bulletins to a subscriber list, tracking every recipient in PostgreSQL.')
    .version(VERSION, '-V, --version', 'print the version')
    .option('--database-url <url>', 'PostgreSQL server to use (default: $DATABASE_URL, else the embedded database)')
    .option('--data-dir <dir>', 'data directory of the embedded database (default: $BULLETIN_DATA_DIR or ./.bulletin)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .addHelpText(
      'after',
      `
Examples:
  bulletin list create bulletins --name "ExampleNet-Bulletins" \\
    --address bulletins@lists.example.net --from "ExampleNet <noreply@example.net>" \\
    --base-url https://lists.example.net
  bulletin subscribers import customers.csv --list bulletins --rejects rejected.csv
  bulletin subscribers count --list bulletins
  DATABASE_URL=postgres://bulletin@db.example.net/bulletin bulletin db migrate

Without DATABASE_URL, data is kept in an embedded PostgreSQL under ./.bulletin/, shared by every
bulletin process there and stopped after the last one (\`bulletin db status\`, \`db stop\`).
Every command takes --json; see \`bulletin <command> --help\`.`,
    );
  // The top-level help lists every command (`list create`, `subscribers import`, …), not just groups.
  program.configureHelp({
    visibleCommands: (command) => (command === program ? leafCommands(program) : new Help().visibleCommands(command)),
    subcommandTerm: (command) =>
      command.parent ? `${commandPath(command)} ${command.usage()}`.replace(/ \[options\]/, '').trim() : new Help().subcommandTerm(command),
  });
  const context = createContext(io, program);
  registerDemoCommand(program, context);
  registerListCommands(program, context);
  registerSubscriberCommands(program, context);
  registerPreviewCommand(program, context);
  registerSendCommands(program, context);
  registerControlCommands(program, context);
  registerAudienceCommands(program, context);
  registerSyncCommand(program, context);
  registerServeCommand(program, context);
  registerArchiveCommands(program, context);
  registerBounceCommands(program, context);
  registerInboundCommand(program, context);
  registerDbCommands(program, context);
  // Every subcommand reports usage errors the same way as the program.
  const inherit = (command: Command) => {
    for (const child of command.commands) {
      child.exitOverride().showSuggestionAfterError().configureOutput(program.configureOutput());
      inherit(child);
    }
  };
  inherit(program);
  return { program, context };
}

function leafCommands(command: Command): Command[] {
  return command.commands.flatMap((child) => (child.commands.length > 0 ? leafCommands(child) : [child]));
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}
