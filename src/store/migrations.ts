// Schema migrations: the numbered, append-only `.sql` files in migrations/, applied by node-pg-migrate
// under its advisory lock, and a read-only look at which of them a database has (no DDL, so commands
// other than `db migrate` work with a role that may only read and write the tables).
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import { BulletinError } from '../domain/errors.js';
import type { Database, Sql } from './database.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
const MIGRATIONS_TABLE = 'pgmigrations';

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface MigrationState {
  /** Migrations of this version the database has not applied, in file order. */
  readonly pending: string[];
  /** Migrations the database has applied that this version does not know (a newer bulletin ran them). */
  readonly unknown: string[];
}

/** The migration names this version ships (file names without `.sql`), in order. */
export async function shippedMigrations(dir = MIGRATIONS_DIR): Promise<string[]> {
  return (await readdir(dir))
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => name.slice(0, -'.sql'.length));
}

/** Which migrations the database lacks or has beyond this version; reads only. */
export async function migrationState(sql: Sql, dir = MIGRATIONS_DIR): Promise<MigrationState> {
  const shipped = await shippedMigrations(dir);
  const { rows } = await sql.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [`public.${MIGRATIONS_TABLE}`]);
  const applied = rows[0]?.present ? (await sql.query<{ name: string }>(`SELECT name FROM ${MIGRATIONS_TABLE}`)).rows.map((row) => row.name) : [];
  const known = new Set(shipped);
  const done = new Set(applied);
  return { pending: shipped.filter((name) => !done.has(name)), unknown: applied.filter((name) => !known.has(name)).sort() };
}

/** A database migrated by a newer bulletin is not touched by this one. */
export function refuseNewerSchema(description: string, state: MigrationState): void {
  if (state.unknown.length === 0) return;
  throw new BulletinError(
    'CONFIG',
    `The ${description} was migrated by a newer bulletin (it has ${state.unknown.join(', ')}, which this version does not know); run that version or a newer one.`,
  );
}

/**
 * Applies every pending migration in one transaction; returns the names applied. Pending migrations
 * are applied in file order even when a later one is already there: before release 0.1.0, 0006 was
 * added before 0003 and 0005, and a database migrated then upgrades by applying those two.
 */
export async function applyMigrations(db: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const state = await migrationState(db, dir);
  refuseNewerSchema(db.description, state);
  // Up to date: nothing to create, so a role without DDL rights may run `db migrate` too.
  if (state.pending.length === 0) return [];
  return db.withConnection(async (client) => {
    const applied = await runner({
      dbClient: client,
      dir,
      direction: 'up',
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: false,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      logger: silentLogger,
    }).catch((error: unknown) => {
      throw refusal(error) ?? error;
    });
    return applied.map((migration) => migration.name);
  });
}

/**
 * node-pg-migrate reports a refused CREATE as a new Error quoting PostgreSQL's message; this gives
 * that message its SQLSTATE back (42501), so the role's missing right is named like any other.
 */
function refusal(error: unknown): Error | null {
  if ((error as { code?: unknown } | null)?.code === '42501') return null;
  const quoted = /\b(permission denied (?:for|to) [^\n]*|must be owner of [^\n]*)/.exec(String((error as Error | null)?.message ?? ''));
  return quoted ? Object.assign(new Error(quoted[1]!.trim(), { cause: error }), { code: '42501' }) : null;
}
