// SQL of a subscriber sync, after the import's batches (src/store/subscriber-import.ts) have staged
// every address of the file in `import_rows`: the list's active members missing from the file are
// counted, sampled and removed (status 'removed', source 'sync'), inside the sync's one transaction.
import type { Sql } from './database.js';

const MISSING = `FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
  WHERE m.list_id = $1 AND m.status = 'active'
    AND NOT EXISTS (SELECT 1 FROM import_rows r WHERE r.email = s.email)`;

/**
 * Addresses of rows the sync rejected (a value too long, a wrong number of fields) whose address
 * itself is fine: staged as seen, so a member is not removed because their row had a mistake.
 */
export async function stageSeenAddresses(tx: Sql, rows: readonly { line: number; email: string }[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO import_rows (email, line, suppressed)
     SELECT email, line, false FROM unnest($1::int[], $2::text[]) AS b (line, email)
     ON CONFLICT (email) DO NOTHING`,
    [rows.map((row) => row.line), rows.map((row) => row.email)],
  );
}

/** How many active members the file does not have, and the first few of them by address. */
export async function countMissingMembers(tx: Sql, listId: number, sampleSize: number): Promise<{ count: number; sample: string[] }> {
  const { rows: counted } = await tx.query<{ count: number }>(`SELECT count(*)::int AS count ${MISSING}`, [listId]);
  const { rows: sample } = await tx.query<{ email: string }>(`SELECT s.email ${MISSING} ORDER BY s.email LIMIT $2`, [listId, sampleSize]);
  return { count: counted[0]?.count ?? 0, sample: sample.map((row) => row.email) };
}

/** Active members missing from the file become 'removed' (source 'sync'), in one statement. */
export async function removeMissingMembers(tx: Sql, listId: number): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE memberships m SET status = 'removed', status_source = 'sync', status_changed_at = now()
      WHERE m.list_id = $1 AND m.status = 'active'
        AND NOT EXISTS (SELECT 1 FROM subscribers s JOIN import_rows r ON r.email = s.email WHERE s.id = m.subscriber_id)`,
    [listId],
  );
  return rowCount ?? 0;
}

/** Addresses this transaction subscribed or brought back, by address (a sample for the report). */
export async function sampleJoinedNow(tx: Sql, listId: number, sampleSize: number): Promise<string[]> {
  const { rows } = await tx.query<{ email: string }>(
    `SELECT s.email FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.list_id = $1 AND m.status = 'active' AND m.subscribed_source = 'sync' AND m.subscribed_at = now()
      ORDER BY s.email LIMIT $2`,
    [listId, sampleSize],
  );
  return rows.map((row) => row.email);
}
