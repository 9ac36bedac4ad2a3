// SQL of a subscriber import: rows are loaded into a temporary staging table inside the import's
// transaction, then merged into subscribers and memberships with a few set-based statements, so a
// million rows cost a handful of statements and the import is all-or-nothing.
import type { Sql } from './database.js';

export interface StagedRow {
  readonly line: number;
  readonly email: string;
  readonly name: string | null;
  readonly attributes: Record<string, string>;
}

export async function createImportStaging(tx: Sql): Promise<void> {
  await tx.query(
    `CREATE TEMPORARY TABLE import_rows (
       line int NOT NULL, email text NOT NULL, name text, attributes jsonb NOT NULL
     ) ON COMMIT DROP`,
  );
}

/** One statement per batch: arrays in, rows out through unnest (works on PGlite, unlike COPY FROM STDIN). */
export async function insertStagedRows(tx: Sql, rows: readonly StagedRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO import_rows (line, email, name, attributes)
     SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::jsonb[])`,
    [
      rows.map((row) => row.line),
      rows.map((row) => row.email),
      rows.map((row) => row.name),
      rows.map((row) => JSON.stringify(row.attributes)),
    ],
  );
}

export interface MergeCounts {
  /** Rows whose address appeared earlier in the file (the first occurrence wins). */
  readonly duplicates: number;
  readonly subscribersCreated: number;
  readonly subscribersUpdated: number;
  readonly membershipsAdded: number;
  readonly alreadyActive: number;
  /** Members left unsubscribed or bounced because the import did not ask to resubscribe them. */
  readonly keptInactive: number;
  readonly resubscribed: number;
}

/** Rows (line, address) of erased addresses, which the merge leaves out. */
export async function takeSuppressedRows(tx: Sql): Promise<{ line: number; email: string }[]> {
  const { rows } = await tx.query<{ line: number; email: string }>(
    `DELETE FROM import_rows r USING suppressions x
      WHERE x.email_sha256 = sha256(convert_to(r.email, 'UTF8'))
      RETURNING r.line, r.email`,
  );
  return rows.sort((a, b) => a.line - b.line);
}

export async function mergeStagedRows(
  tx: Sql,
  options: { listId: number; resubscribe: boolean },
): Promise<MergeCounts> {
  // First occurrence of each address wins; the rest are duplicates.
  await tx.query(
    `CREATE TEMPORARY TABLE import_unique ON COMMIT DROP AS
     SELECT DISTINCT ON (email) line, email, name, attributes FROM import_rows ORDER BY email, line`,
  );
  const { rows: totals } = await tx.query<{ staged: number; unique: number }>(
    `SELECT (SELECT count(*) FROM import_rows)::int AS staged, (SELECT count(*) FROM import_unique)::int AS unique`,
  );
  const { rows: people } = await tx.query<{ created: number; updated: number }>(
    `WITH written AS (
       INSERT INTO subscribers AS s (email, name, attributes)
       SELECT email, name, attributes FROM import_unique
       ON CONFLICT (email) DO UPDATE
          SET name = COALESCE(EXCLUDED.name, s.name), attributes = s.attributes || EXCLUDED.attributes,
              updated_at = now()
        WHERE s.name IS DISTINCT FROM COALESCE(EXCLUDED.name, s.name) OR NOT s.attributes @> EXCLUDED.attributes
       RETURNING (xmax = 0) AS inserted
     )
     SELECT count(*) FILTER (WHERE inserted)::int AS created, count(*) FILTER (WHERE NOT inserted)::int AS updated
       FROM written`,
  );
  // Existing memberships, counted before new ones are added.
  const { rows: existing } = await tx.query<{ active: number; inactive: number }>(
    `SELECT count(*) FILTER (WHERE m.status = 'active')::int AS active,
            count(*) FILTER (WHERE m.status <> 'active')::int AS inactive
       FROM import_unique u
       JOIN subscribers s ON s.email = u.email
       JOIN memberships m ON m.subscriber_id = s.id AND m.list_id = $1`,
    [options.listId],
  );
  const { rowCount: added } = await tx.query(
    `INSERT INTO memberships (list_id, subscriber_id, status, subscribed_source, status_source)
     SELECT $1, s.id, 'active', 'import', 'import'
       FROM import_unique u JOIN subscribers s ON s.email = u.email
     ON CONFLICT (list_id, subscriber_id) DO NOTHING`,
    [options.listId],
  );
  let resubscribed = 0;
  if (options.resubscribe) {
    const { rowCount } = await tx.query(
      `UPDATE memberships m
          SET status = 'active', status_source = 'import', status_changed_at = now(),
              subscribed_at = now(), subscribed_source = 'import'
         FROM import_unique u JOIN subscribers s ON s.email = u.email
        WHERE m.list_id = $1 AND m.subscriber_id = s.id AND m.status IN ('unsubscribed', 'bounced')`,
      [options.listId],
    );
    resubscribed = rowCount ?? 0;
  }
  const staged = totals[0]?.staged ?? 0;
  const unique = totals[0]?.unique ?? 0;
  const inactive = existing[0]?.inactive ?? 0;
  return {
    duplicates: staged - unique,
    subscribersCreated: people[0]?.created ?? 0,
    subscribersUpdated: people[0]?.updated ?? 0,
    membershipsAdded: added ?? 0,
    alreadyActive: existing[0]?.active ?? 0,
    keptInactive: inactive - resubscribed,
    resubscribed,
  };
}
