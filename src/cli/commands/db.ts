// `bulletin db migrate`: brings the database schema up to date. `db status` / `db stop`: the embedded
// PostgreSQL's server (running? for how many processes?), and stopping it.
import type { Command } from 'commander';
import { embeddedDatabaseStatus, stopEmbeddedDatabase } from '../../app/embedded-database.js';
import { migrateDatabase } from '../../app/migrate.js';
import type { CliContext } from '../context.js';
import { printJson, printLines } from '../output.js';

export function registerDbCommands(program: Command, context: CliContext): void {
  const db = program.command('db').description("manage the database schema, and the embedded database's server");
  db.command('migrate')
    .description('apply pending migrations (needed once per upgrade on a PostgreSQL server)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Only this command creates or changes tables: run it as the role that owns them. Every other
command works with a role granted SELECT, INSERT, UPDATE and DELETE on them (see "Least privilege"
in the README); with nothing pending, this one does too.

Example:
  DATABASE_URL=postgres://bulletin@db.example.net/bulletin bulletin db migrate`,
    )
    .action(async (options: { json?: boolean }) => {
      const result = await context.run(migrateDatabase, { skipMigrationCheck: true });
      if (options.json) return printJson(context.io, result);
      printLines(
        context.io,
        result.applied.length === 0
          ? `The ${result.database} is up to date.`
          : `Applied ${result.applied.length} migration(s) to the ${result.database}: ${result.applied.join(', ')}.`,
      );
    });

  db.command('status')
    .description('whether the embedded PostgreSQL runs, and for how many bulletin processes')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The embedded database (no DATABASE_URL) is a PostgreSQL server under the data directory
(<data dir>/postgres), on a Unix socket there and no TCP port. The first bulletin command starts it,
every bulletin process on that directory shares it, and the last one to end stops it. A process
killed with -9 leaves it running: \`bulletin db stop\` stops it (the next command starts it again).`,
    )
    .action(async (options: { json?: boolean }) => {
      const status = await embeddedDatabaseStatus(context.config());
      if (options.json) return printJson(context.io, status);
      const others =
        status.processes === null
          ? '; it did not answer how many bulletin processes use it (starting up, shutting down, or busy)'
          : status.processes === 0
            ? ', used by no other bulletin process'
            : `, used by ${status.processes} other bulletin process${status.processes === 1 ? '' : 'es'}`;
      printLines(
        context.io,
        !status.exists
          ? `There is no embedded PostgreSQL in ${status.directory} yet (any command creates it).`
          : status.running
            ? `The embedded PostgreSQL in ${status.directory} is running (pid ${status.pid})${others}.`
            : `The embedded PostgreSQL in ${status.directory} is not running (the next command starts it).`,
      );
    });
  db.command('stop')
    .description('stop the embedded PostgreSQL now (it also stops by itself after the last bulletin process)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const result = await stopEmbeddedDatabase(context.config());
      if (options.json) return printJson(context.io, result);
      printLines(
        context.io,
        result.stopped
          ? `Stopped the embedded PostgreSQL in ${result.directory}${result.processes !== null && result.processes > 0 ? ` (${result.processes} bulletin process${result.processes === 1 ? ' was' : 'es were'} using it)` : ''}.`
          : `The embedded PostgreSQL in ${result.directory} was not running.`,
      );
    });
}
