// `bulletin db migrate`: brings the database schema up to date.
import type { Command } from 'commander';
import { migrateDatabase } from '../../app/migrate.js';
import type { CliContext } from '../context.js';
import { printJson, printLines } from '../output.js';

export function registerDbCommands(program: Command, context: CliContext): void {
  const db = program.command('db').description('manage the database schema');
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
}
