// Use case `db migrate`: applies pending schema migrations to the configured database.
import { applyMigrations } from '../store/migrations.js';
import type { App } from './context.js';

export interface MigrateResult {
  readonly database: string;
  readonly applied: readonly string[];
}

export async function migrateDatabase(app: App): Promise<MigrateResult> {
  return { database: app.db.description, applied: await applyMigrations(app.db) };
}
