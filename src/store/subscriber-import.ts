// SQL of a subscriber import, batch by batch inside the import's one transaction (all or nothing).
// Each batch is merged as it arrives — staged (first occurrence of an address wins), then people
// upserted, then memberships added — so PostgreSQL works on one batch while the next is parsed.
import type { Sql } from './database.js';

export interface StagedRow {
  readonly line: number;
  readonly email: string;
  readonly name: string | null;
  readonly attributes: Record<string, string>;
}

/** Every address seen so far in this import (for first-occurrence-wins), and which were erased. */
export async function createImportStaging(tx: Sql): Promise<void> {
  await tx.query(
    `CREATE TEMPORARY TABLE import_rows (
       email text PRIMARY KEY, line int NOT NULL, suppressed boolean NOT NULL
     ) ON COMMIT DROP`,
  );
}

export interface BatchCounts {
  /** Rows whose address appeared earlier in the file (the first occurrence wins). */
  duplicates: number;
  suppressed: number;
  subscribersCreated: number;
  subscribersUpdated: number;
  membershipsAdded: number;
  alreadyActive: number;
  /** Members left unsubscribed or bounced because the import did not ask to resubscribe them. */
  keptInactive: number;
  resubscribed: number;
}

/**
 * Merges one batch. Statement 1 stages the batch's new addresses and upserts those people (a name
 * replaces the old one, attributes merge over the old ones, and an upsert that changes nothing
 * writes nothing). Statement 2 needs to see statement 1's rows, so it is separate: it counts the
 * memberships that already existed, adds the missing ones and, if asked, reactivates inactive ones.
 */
export async function mergeBatch(
  tx: Sql,
  rows: readonly StagedRow[],
  options: {
    listId: number;
    resubscribe: boolean;
    /** Where new and returning memberships come from (default 'import'). */
    source?: 'import' | 'sync';
    /** Attributes the file has columns for: a sync makes them match the file (an empty cell removes one). */
    replaceAttributes?: readonly string[];
  },
): Promise<BatchCounts> {
  if (rows.length === 0) return emptyCounts();
  const { rows: staged } = await tx.query<{ unique: number; suppressed: number; created: number; updated: number }>(
    `WITH staged AS (
       INSERT INTO import_rows (email, line, suppressed)
       SELECT b.email, b.line,
              EXISTS (SELECT 1 FROM suppressions x WHERE x.email_sha256 = sha256(convert_to(b.email, 'UTF8')))
         FROM unnest($1::int[], $2::text[]) AS b (line, email)
       ON CONFLICT (email) DO NOTHING
       RETURNING email, line, suppressed
     ), people AS (
       INSERT INTO subscribers AS s (email, name, attributes)
       SELECT b.email, b.name, b.attributes
         FROM unnest($1::int[], $2::text[], $3::text[], $4::jsonb[]) AS b (line, email, name, attributes)
         JOIN staged ON staged.email = b.email AND staged.line = b.line AND NOT staged.suppressed
       ON CONFLICT (email) DO UPDATE
          SET name = COALESCE(EXCLUDED.name, s.name), attributes = (s.attributes - $5::text[]) || EXCLUDED.attributes,
              updated_at = now()
        WHERE s.name IS DISTINCT FROM COALESCE(EXCLUDED.name, s.name) OR s.attributes <> ((s.attributes - $5::text[]) || EXCLUDED.attributes)
       RETURNING (xmax = 0) AS inserted
     )
     SELECT (SELECT count(*) FROM staged)::int AS unique,
            (SELECT count(*) FROM staged WHERE suppressed)::int AS suppressed,
            (SELECT count(*) FROM people WHERE inserted)::int AS created,
            (SELECT count(*) FROM people WHERE NOT inserted)::int AS updated`,
    [
      rows.map((row) => row.line),
      rows.map((row) => row.email),
      rows.map((row) => row.name),
      rows.map((row) => JSON.stringify(row.attributes)),
      options.replaceAttributes ?? [],
    ],
  );
  const first = staged[0];
  const counts = emptyCounts();
  counts.duplicates = rows.length - (first?.unique ?? 0);
  counts.suppressed = first?.suppressed ?? 0;
  counts.subscribersCreated = first?.created ?? 0;
  counts.subscribersUpdated = first?.updated ?? 0;
  if ((first?.unique ?? 0) - counts.suppressed === 0) return counts;

  // Shaped for the planner: statistics go stale while an import's rows are uncommitted, and a join
  // here would be planned as a hash join over whole tables for every batch. Scalar subqueries and
  // `= ANY` force index lookups, a few per row. Inserted by id, the index grows at its right edge.
  const { rows: members } = await tx.query<{ active: number; inactive: number; added: number; resubscribed: number }>(
    `WITH people AS (
       SELECT (SELECT s.id FROM subscribers s WHERE s.email = b.email) AS id
         FROM unnest($2::int[], $3::text[]) AS b (line, email)
        WHERE (SELECT r.line FROM import_rows r WHERE r.email = b.email AND NOT r.suppressed) = b.line
     ), batch AS MATERIALIZED (
       SELECT id, (SELECT m.status FROM memberships m WHERE m.list_id = $1 AND m.subscriber_id = people.id) AS status
         FROM people
     ), added AS (
       INSERT INTO memberships (list_id, subscriber_id, status, subscribed_source, status_source)
       SELECT $1, id, 'active', $5, $5 FROM batch WHERE status IS NULL ORDER BY id
       ON CONFLICT (list_id, subscriber_id) DO NOTHING
       RETURNING 1
     ), resubscribed AS (
       -- Someone a sync removed comes back with any import or sync that has them; someone who
       -- unsubscribed or bounced only when asked (--resubscribe).
       UPDATE memberships m
          SET status = 'active', status_source = $5, status_changed_at = now(),
              subscribed_at = now(), subscribed_source = $5, resubscriptions = m.resubscriptions + 1
        WHERE m.list_id = $1 AND (m.status = 'removed' OR ($4 AND m.status IN ('unsubscribed', 'bounced')))
          AND m.subscriber_id = ANY (ARRAY(SELECT id FROM batch WHERE status IN ('unsubscribed', 'bounced', 'removed')))
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM batch WHERE status = 'active')::int AS active,
            (SELECT count(*) FROM batch WHERE status <> 'active')::int AS inactive,
            (SELECT count(*) FROM added)::int AS added,
            (SELECT count(*) FROM resubscribed)::int AS resubscribed`,
    [options.listId, rows.map((row) => row.line), rows.map((row) => row.email), options.resubscribe, options.source ?? 'import'],
  );
  const second = members[0];
  counts.membershipsAdded = second?.added ?? 0;
  counts.alreadyActive = second?.active ?? 0;
  counts.resubscribed = second?.resubscribed ?? 0;
  counts.keptInactive = (second?.inactive ?? 0) - counts.resubscribed;
  return counts;
}

/** Rows (line, address) of erased addresses, which the merge left out. */
export async function selectSuppressedRows(tx: Sql): Promise<{ line: number; email: string }[]> {
  const { rows } = await tx.query<{ line: number; email: string }>('SELECT line, email FROM import_rows WHERE suppressed ORDER BY line');
  return rows;
}

export function emptyCounts(): BatchCounts {
  return {
    duplicates: 0,
    suppressed: 0,
    subscribersCreated: 0,
    subscribersUpdated: 0,
    membershipsAdded: 0,
    alreadyActive: 0,
    keptInactive: 0,
    resubscribed: 0,
  };
}
