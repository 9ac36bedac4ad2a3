// Every error bulletin reports to a user, as one table of codes, each with its exit status.
// Code anywhere throws `BulletinError(code, sentence)`; only the CLI turns a code into an exit status.

export const ERROR_CODES = Object.freeze({
  /** The command line itself is wrong: unknown option, missing argument. */
  USAGE: { exitStatus: 2 },
  /** Input data (a file, an address, an option value) is invalid. EX_DATAERR. */
  BAD_INPUT: { exitStatus: 65 },
  /** Something named on the command line does not exist (a list, a subscriber). EX_NOINPUT. */
  NOT_FOUND: { exitStatus: 66 },
  /** The thing to create already exists. */
  CONFLICT: { exitStatus: 65 },
  /** The database cannot be reached or opened, or went away. EX_UNAVAILABLE. */
  DATABASE_UNAVAILABLE: { exitStatus: 69 },
  /** The database role lacks a privilege the command needs. EX_NOPERM. */
  PERMISSION_DENIED: { exitStatus: 77 },
  /** The database schema is behind this version of bulletin. EX_CONFIG. */
  MIGRATIONS_PENDING: { exitStatus: 78 },
  /** Configuration (environment, .env, flags) is invalid, or the relay refuses it (login, TLS, sender). EX_CONFIG. */
  CONFIG: { exitStatus: 78 },
  /** A send held itself: the relay refuses the message itself; `resume` continues once fixed. EX_TEMPFAIL. */
  SEND_HELD: { exitStatus: 75 },
  /** A bug: anything not foreseen. EX_SOFTWARE. */
  INTERNAL: { exitStatus: 70 },
});

export type ErrorCode = keyof typeof ERROR_CODES;

export class BulletinError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BulletinError';
    this.code = code;
  }

  get exitStatus(): number {
    return ERROR_CODES[this.code].exitStatus;
  }
}

export function isBulletinError(error: unknown): error is BulletinError {
  return error instanceof BulletinError;
}
