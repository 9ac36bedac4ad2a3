// Opens what a use case runs on: the configured database, brought up to date (embedded) or checked
// to be up to date (server). Says once on stderr, when it creates it, that the embedded database is used.
import { realClock, type Clock } from '../domain/clock.js';
import { BulletinError } from '../domain/errors.js';
import { openDatabase, type Database } from '../store/database.js';
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
}

export async function openApp(config: Config, options: OpenOptions): Promise<App> {
  const db = await openDatabase(config.database);
  try {
    if (config.database.kind === 'embedded') {
      if (db.created) {
        options.notice(`bulletin: created an embedded PostgreSQL database in ${config.dataDir} (set DATABASE_URL to use a PostgreSQL server)`);
      }
      if (!options.skipMigrationCheck) await applyMigrations(db);
    } else if (!options.skipMigrationCheck) {
      const state = await migrationState(db);
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
    await db.close();
    throw error;
  }
  return { config, db, clock: options.clock ?? realClock, close: () => db.close() };
}

/** Opens, runs `work`, and always closes. */
export async function withApp<T>(config: Config, options: OpenOptions, work: (app: App) => Promise<T>): Promise<T> {
  const app = await openApp(config, options);
  try {
    return await work(app);
  } finally {
    await app.close();
  }
}
