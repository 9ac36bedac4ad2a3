// Schema migrations: the numbered, append-only `.sql` files in migrations/, applied by node-pg-migrate
// under its advisory lock, and the check that tells whether a database is behind this version.
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Database } from './database.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
const MIGRATIONS_TABLE = 'pgmigrations';

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Applies every pending migration in one transaction; returns the names applied. */
export async function applyMigrations(db: Database): Promise<string[]> {
  return db.withConnection(async (client) => {
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      logger: silentLogger,
    });
    return applied.map((migration) => migration.name);
  });
}

/** Names of the migrations this version has that the database has not applied yet. */
export async function pendingMigrations(db: Database): Promise<string[]> {
  return db.withConnection(async (client) => {
    const pending = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: true,
      dryRun: true,
      noLock: true,
      logger: silentLogger,
    });
    return pending.map((migration) => migration.name);
  });
}
