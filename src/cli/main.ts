// Runs the command line once and turns the outcome into an exit status: 0, 2 for usage errors, and
// the status of each BulletinError code (see src/domain/errors.ts) for everything else. A database
// connection lost or a privilege refused is never an internal error, wherever it surfaces.
import { CommanderError } from 'commander';
import { ERROR_CODES, isBulletinError } from '../domain/errors.js';
import { isConnectionError, isPermissionError, oneLine } from '../store/database.js';
import { processIo, type CliIo } from './io.js';
import { createProgram } from './program.js';

export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const { program, context } = createProgram(io);
  try {
    await program.parseAsync([...argv]);
    return context.exitCode;
  } catch (error) {
    return reportError(error, (line) => (context.logLine ? context.logLine('error', line) : io.stderr.write(`${line}\n`)));
  }
}

function reportError(error: unknown, say: (line: string) => void): number {
  if (error instanceof CommanderError) {
    // Commander has already printed its message; help and version are not errors.
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
    if (error.code === 'commander.help') return error.exitCode === 0 ? 0 : ERROR_CODES.USAGE.exitStatus;
    return ERROR_CODES.USAGE.exitStatus;
  }
  if (isBulletinError(error)) {
    say(`bulletin: ${error.message}`);
    return error.exitStatus;
  }
  if (isConnectionError(error)) {
    say(`bulletin: Lost the connection to the database (${oneLine(error)}); run the command again once it answers.`);
    return ERROR_CODES.DATABASE_UNAVAILABLE.exitStatus;
  }
  if (isPermissionError(error)) {
    say(`bulletin: The database role was refused (${oneLine(error)}); grant it as "Least privilege" in bulletin's README shows.`);
    return ERROR_CODES.PERMISSION_DENIED.exitStatus;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  say(`bulletin: internal error (please report it): ${detail}`);
  return ERROR_CODES.INTERNAL.exitStatus;
}
