// SQL for the `installation` row and `adopted_secrets`: the id and the generated secret one database
// gives every bulletin process that uses it, whichever machine or directory it runs in.
import type { Sql } from './database.js';

export interface InstallationRow {
  /** Null until the first command that needs it fills it in. */
  readonly id: string | null;
  /** Null until generated (or adopted from `.bulletin/secret`). */
  readonly secret: string | null;
  /** The database was in use before installations existed: old-style links may be in mail sent. */
  readonly legacyLinks: boolean;
}

interface Row {
  id: string | null;
  secret: string | null;
  legacy_links: boolean;
}

function toInstallation(row: Row | undefined): InstallationRow | null {
  return row ? { id: row.id, secret: row.secret, legacyLinks: row.legacy_links } : null;
}

/** The installation row as it is (null if it is missing). Reads only. */
export async function readInstallation(sql: Sql): Promise<InstallationRow | null> {
  const { rows } = await sql.query<Row>('SELECT id::text AS id, secret, legacy_links FROM installation');
  return toInstallation(rows[0]);
}

/**
 * Fills in whatever of id and secret is still missing, with these candidates (a null secret leaves
 * it as it is), and returns the row as it then is: one statement, so processes racing here on
 * several machines all end up with the values of whichever came first.
 */
export async function settleInstallation(sql: Sql, candidates: { id: string; secret: string | null }): Promise<InstallationRow> {
  const { rows } = await sql.query<Row>(
    `INSERT INTO installation AS i (singleton, id, secret) VALUES (true, $1::uuid, $2)
     ON CONFLICT (singleton) DO UPDATE SET id = COALESCE(i.id, EXCLUDED.id), secret = COALESCE(i.secret, EXCLUDED.secret)
     RETURNING id::text AS id, secret, legacy_links`,
    [candidates.id, candidates.secret],
  );
  return toInstallation(rows[0]) as InstallationRow;
}

/** Secrets adopted from `.bulletin/secret` files besides the installation's own. */
export async function selectAdoptedSecrets(sql: Sql): Promise<string[]> {
  const { rows } = await sql.query<{ secret: string }>('SELECT secret FROM adopted_secrets ORDER BY adopted_at, secret');
  return rows.map((row) => row.secret);
}

/** Keeps a secret found in a `.bulletin/secret` file, so links signed with it still verify. Repeating it is harmless. */
export async function adoptSecret(sql: Sql, secret: string): Promise<void> {
  await sql.query('INSERT INTO adopted_secrets (secret) VALUES ($1) ON CONFLICT (secret) DO NOTHING', [secret]);
}
