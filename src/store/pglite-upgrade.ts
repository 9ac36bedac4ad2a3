// Moves a data directory made by release 0.1.0 (PGlite, in <data dir>/pgdata) into the embedded
// PostgreSQL: PostgreSQL 18 cannot open PGlite's files in place (they are a 32-bit build's), so the
// rows are copied table by table in one transaction, and the PGlite directory is kept aside.
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { wrapPool, type Database } from './database.js';
import { applyMigrations } from './migrations.js';

/** Where the PGlite directory goes once its rows are in the embedded PostgreSQL. */
export function pgliteBackupDir(dataDir: string): string {
  return join(dataDir, 'pgdata-pglite');
}

/** Opens a PGlite data directory the way release 0.1.0 did (through PGlite's node-postgres adapter). */
export async function openPgliteDirectory(pgdata: string): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { createPgConfig } = await import('@electric-sql/pglite/node-postgres');
  const pglite = await PGlite.create(pgdata);
  const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 } as pg.PoolConfig);
  pool.on('error', () => undefined);
  return wrapPool(pool, { kind: 'embedded', dataDir: pgdata }, `PGlite database in ${pgdata}`, false, async () => {
    await pool.end();
    await pglite.close();
  });
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const BATCH = 2_000;

/**
 * Copies every row of <dataDir>/pgdata into `target` (the embedded PostgreSQL, running), both first
 * brought to this release's schema; then renames pgdata to pgdata-pglite. Run again after an
 * interruption it starts over (the copy is one transaction that first empties the tables).
 */
export async function upgradeFromPglite(dataDir: string, target: Database): Promise<void> {
  const pgdata = join(dataDir, 'pgdata');
  const source = await openPgliteDirectory(pgdata);
  try {
    await applyMigrations(source);
    await applyMigrations(target);
    const { rows: tables } = await source.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'pgmigrations' ORDER BY c.relname`,
    );
    await target.transaction(async (tx) => {
      // Foreign keys are checked by the source already; rows go in table by table in any order.
      await tx.query('SET LOCAL session_replication_role = replica');
      if (tables.length > 0) await tx.query(`TRUNCATE ${tables.map((table) => `public.${quote(table.name)}`).join(', ')}`);
      for (const { name } of tables) {
        const { rows: columns } = await source.query<{ name: string }>(
          `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
          [`public.${quote(name)}`],
        );
        const list = columns.map((column) => quote(column.name)).join(', ');
        await source.withConnection(async (client) => {
          const cursor = client.query(new Cursor<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM (SELECT ${list} FROM public.${quote(name)}) t`));
          try {
            for (;;) {
              const batch = await cursor.read(BATCH);
              if (batch.length === 0) break;
              await tx.query(
                `INSERT INTO public.${quote(name)} (${list}) OVERRIDING SYSTEM VALUE
                 SELECT ${list} FROM json_populate_recordset(NULL::public.${quote(name)}, $1::json)`,
                [`[${batch.map((entry) => entry.row).join(',')}]`],
              );
            }
          } finally {
            await cursor.close();
          }
        });
      }
      const { rows: sequences } = await source.query<{ name: string; last: string | null }>(
        `SELECT sequencename AS name, last_value::text AS last FROM pg_sequences WHERE schemaname = 'public'`,
      );
      for (const sequence of sequences) {
        if (sequence.last !== null) await tx.query('SELECT setval($1::regclass, $2::bigint, true)', [`public.${quote(sequence.name)}`, sequence.last]);
      }
    });
  } finally {
    await source.close();
    await target.close();
  }
  await rename(pgdata, pgliteBackupDir(dataDir));
}
