// Opens what a use case runs on: the configured database, brought up to date (embedded) or checked
// to be up to date (server). Says once on stderr, when it creates it, that the embedded database is used.
// A connection lost or a privilege missing while a use case runs becomes one sentence (exit 69 or
// 77), never an internal error; a send waits the database out instead (OpenOptions.outage).
import { join } from 'node:path';
import { realClock, type Clock } from '../domain/clock.js';
import { BulletinError, isBulletinError } from '../domain/errors.js';
import type { DatabaseOutage } from '../send/database-outage.js';
import { findMissingPrivilege, isConnectionError, isPermissionError, oneLine, openDatabase, type Database } from '../store/database.js';
import { applyMigrations, migrationState, refuseNewerSchema } from '../store/migrations.js';
import type { Config } from './config.js';

export interface App {
  readonly config: Config;
  readonly db: Database;
  /** What "now" is for the use cases: the date a new bulletin is sent with, retry windows. */
  readonly clock: Clock;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Where one-line notices go (the CLI passes stderr). */
  readonly notice: (line: string) => void;
  /** `db migrate` opens without the pending-migrations check. */
  readonly skipMigrationCheck?: boolean;
  /** Default: the real clock. */
  readonly clock?: Clock;
  /** Sends wait for an unreachable database (opening it too) instead of giving up. */
  readonly outage?: DatabaseOutage;
}

export async function openApp(config: Config, options: OpenOptions): Promise<App> {
  const ride = <T>(step: () => Promise<T>) => (options.outage ? options.outage.ride(step) : step());
  const db = await ride(() => openDatabase(config.database));
  try {
    if (config.database.kind === 'embedded') {
      if (db.created) {
        options.notice(`bulletin: created an embedded PostgreSQL database in ${config.dataDir} (set DATABASE_URL to use a PostgreSQL server)`);
      }
      if (db.upgraded) {
        options.notice(
          `bulletin: moved the embedded database in ${config.dataDir} from PGlite into PostgreSQL 18; the PGlite files are kept in ${join(config.dataDir, 'pgdata-pglite')} (delete them once you are satisfied)`,
        );
      }
      if (!options.skipMigrationCheck) await applyMigrations(db);
    } else if (!options.skipMigrationCheck) {
      const state = await ride(() => migrationState(db));
      refuseNewerSchema(db.description, state);
      const pending = state.pending;
      if (pending.length > 0) {
        throw new BulletinError(
          'MIGRATIONS_PENDING',
          `The ${db.description} is missing ${pending.length} migration(s) (${pending.join(', ')}); run \`bulletin db migrate\` first.`,
        );
      }
    }
  } catch (error) {
    const explained = await explainDatabaseError(db, error);
    await db.close();
    throw explained;
  }
  return { config, db, clock: options.clock ?? realClock, close: () => db.close() };
}

/** Opens, runs `work`, and always closes. */
export async function withApp<T>(config: Config, options: OpenOptions, work: (app: App) => Promise<T>): Promise<T> {
  const app = await openApp(config, options);
  try {
    return await work(app);
  } catch (error) {
    throw await explainDatabaseError(app.db, error);
  } finally {
    await app.close();
  }
}

/**
 * A database error as the one sentence a user gets: a connection lost (DATABASE_UNAVAILABLE), or
 * a privilege the role lacks, named (PERMISSION_DENIED). Anything else is returned as it is.
 */
export async function explainDatabaseError(db: Database, error: unknown): Promise<unknown> {
  if (isBulletinError(error)) return error;
  if (isConnectionError(error)) {
    return new BulletinError(
      'DATABASE_UNAVAILABLE',
      `Lost the connection to the ${db.description} (${oneLine(error)}); run the command again once the database answers.`,
      { cause: error },
    );
  }
  if (isPermissionError(error)) {
    const missing = await findMissingPrivilege(db, error).catch(() => null);
    return permissionError(missing?.role ?? null, missing?.object ?? oneLine(error), missing?.lacks ?? [], error);
  }
  return error;
}

function permissionError(role: string | null, object: string, lacks: readonly string[], cause: unknown): BulletinError {
  const who = role === null ? 'The database role' : `The database role "${role}"`;
  const what = lacks.includes('OWNERSHIP') ? `does not own ${object}` : lacks.length > 0 ? `lacks ${lacks.join(', ')} on ${object}` : `was refused: ${object}`;
  // Creating or changing tables is `db migrate`'s alone: no grant of ours makes a role fit for it.
  const schemaChange = lacks.includes('OWNERSHIP') || (object.startsWith('schema ') && lacks.includes('CREATE'));
  return new BulletinError(
    'PERMISSION_DENIED',
    schemaChange
      ? `${who} ${what} (${oneLine(cause)}); \`bulletin db migrate\` creates and changes bulletin's tables, so run it as a role that may (e.g. the owner of the database): no other command needs to.`
      : `${who} ${what} (${oneLine(cause)}); grant it as "Least privilege" in bulletin's README shows.`,
    { cause },
  );
}
