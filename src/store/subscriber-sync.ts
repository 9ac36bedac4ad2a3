// SQL of a subscriber sync, after the import's batches (src/store/subscriber-import.ts) have staged
// every address of the file in `import_rows`: the list's active members missing from the file are
// removed (status 'removed', source 'sync'), counted and sampled, inside the sync's one transaction.
import type { Sql } from './database.js';

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

/**
 * Active members missing from the file become 'removed' (source 'sync'), in one statement; returns
 * how many, and the first few by address. The caller rolls the transaction back if that is too many.
 */
export async function removeMissingMembers(tx: Sql, listId: number, sampleSize: number): Promise<{ count: number; sample: string[] }> {
  // Fresh statistics of the staged addresses, so the anti-join is planned as a hash join.
  await tx.query('ANALYZE import_rows');
  const { rows } = await tx.query<{ count: number; sample: string[] | null }>(
    `WITH removed AS (
       UPDATE memberships m SET status = 'removed', status_source = 'sync', status_changed_at = now()
        WHERE m.list_id = $1 AND m.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM subscribers s JOIN import_rows r ON r.email = s.email WHERE s.id = m.subscriber_id)
       RETURNING m.subscriber_id
     )
     SELECT (SELECT count(*) FROM removed)::int AS count,
            ARRAY(SELECT s.email FROM removed JOIN subscribers s ON s.id = removed.subscriber_id ORDER BY s.email LIMIT $2) AS sample`,
    [listId, sampleSize],
  );
  return { count: rows[0]?.count ?? 0, sample: rows[0]?.sample ?? [] };
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
