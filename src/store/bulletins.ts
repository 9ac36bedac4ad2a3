// SQL for the `bulletins` table: a bulletin as it was sent (source and templates frozen at the
// start of the send), found by id or by (list, source) to resume an unfinished send; scheduled
// ones started by whichever worker claims them first.
import type { BulletinState } from '../domain/bulletin.js';
import type { Sql } from './database.js';

export interface StoredBulletin {
  readonly id: number;
  readonly listId: number;
  readonly subject: string;
  readonly source: string;
  readonly sourceName: string;
  readonly templates: Record<string, string>;
  readonly verp: boolean;
  readonly sentDate: Date;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
  /** How its Message-IDs are made (src/render/message-id.ts): 1 for bulletins begun before installations had an id. */
  readonly messageIdVersion: number;
  readonly state: BulletinState;
  /** When a scheduled send is (or was) due to start. */
  readonly scheduledFor: Date | null;
  readonly startedAt: Date | null;
  /** The audience filter as written (null: every active member), and the segment it came from. */
  readonly audienceFilter: string | null;
  readonly audienceSegment: string | null;
  /** When `bulletin cancel` stopped its send, and who (user@host); kept if a retry sends it again. */
  readonly cancelledAt: Date | null;
  readonly cancelledBy: string | null;
}

interface BulletinRow {
  id: number;
  list_id: number;
  subject: string;
  source: string;
  source_name: string;
  templates: Record<string, string>;
  verp: boolean;
  sent_date: Date;
  created_at: Date;
  finished_at: Date | null;
  message_id_version: number;
  state: BulletinState;
  scheduled_for: Date | null;
  started_at: Date | null;
  audience_filter: string | null;
  audience_segment: string | null;
  cancelled_at: Date | null;
  cancelled_by: string | null;
}

function toBulletin(row: BulletinRow): StoredBulletin {
  return {
    id: row.id,
    listId: row.list_id,
    subject: row.subject,
    source: row.source,
    sourceName: row.source_name,
    templates: row.templates,
    verp: row.verp,
    sentDate: row.sent_date,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    messageIdVersion: row.message_id_version,
    state: row.state,
    scheduledFor: row.scheduled_for,
    startedAt: row.started_at,
    audienceFilter: row.audience_filter,
    audienceSegment: row.audience_segment,
    cancelledAt: row.cancelled_at,
    cancelledBy: row.cancelled_by,
  };
}

export async function insertBulletin(
  sql: Sql,
  fields: Pick<StoredBulletin, 'listId' | 'subject' | 'source' | 'sourceName' | 'templates' | 'verp' | 'sentDate' | 'messageIdVersion'> &
    Partial<Pick<StoredBulletin, 'scheduledFor' | 'audienceFilter' | 'audienceSegment'>>,
): Promise<StoredBulletin> {
  // With scheduledFor it is stored as scheduled (no deliveries yet); else it starts now.
  const { rows } = await sql.query<BulletinRow>(
    `INSERT INTO bulletins (list_id, subject, source, source_name, templates, verp, sent_date, message_id_version,
                            scheduled_for, state, started_at, audience_filter, audience_segment)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::timestamptz,
             CASE WHEN $9::timestamptz IS NULL THEN 'started' ELSE 'scheduled' END::bulletin_state,
             CASE WHEN $9::timestamptz IS NULL THEN now() END, $10, $11) RETURNING *`,
    [
      fields.listId,
      fields.subject,
      fields.source,
      fields.sourceName,
      JSON.stringify(fields.templates),
      fields.verp,
      fields.sentDate,
      fields.messageIdVersion,
      fields.scheduledFor ?? null,
      fields.audienceFilter ?? null,
      fields.audienceSegment ?? null,
    ],
  );
  return toBulletin(rows[0] as BulletinRow);
}

export async function findBulletin(sql: Sql, id: number): Promise<StoredBulletin | null> {
  const { rows } = await sql.query<BulletinRow>('SELECT * FROM bulletins WHERE id = $1', [id]);
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** The unfinished bulletin of this list with exactly this source, if any: sending it again resumes it. */
export async function findUnfinishedBulletin(sql: Sql, listId: number, source: string): Promise<StoredBulletin | null> {
  const { rows } = await sql.query<BulletinRow>(
    `SELECT * FROM bulletins WHERE list_id = $1 AND source = $2 AND finished_at IS NULL AND state = 'started' ORDER BY id DESC LIMIT 1`,
    [listId, source],
  );
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** A list's bulletin named by id (digits) or by the file name it was sent from (the latest such). */
export async function findBulletinByReference(sql: Sql, listId: number, reference: string): Promise<StoredBulletin | null> {
  const { rows } = await sql.query<BulletinRow>(
    `SELECT * FROM bulletins
      WHERE list_id = $1 AND (($2 ~ '^[0-9]{1,9}$' AND id = $2::int) OR source_name = $2)
      ORDER BY id DESC LIMIT 1`,
    [listId, reference],
  );
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** Ids of unfinished bulletins (of one list, or all), oldest first: what `bulletin worker` joins. */
export async function selectUnfinishedBulletinIds(sql: Sql, listId: number | null): Promise<number[]> {
  const { rows } = await sql.query<{ id: number }>(
    `SELECT id FROM bulletins WHERE finished_at IS NULL AND state = 'started' AND ($1::int IS NULL OR list_id = $1) ORDER BY id`,
    [listId],
  );
  return rows.map((row) => row.id);
}

/**
 * Whether an unfinished send other than `exceptId` (of one list, or of all) is not paused: work for
 * a worker that leaves a paused send.
 */
export async function otherUnpausedSendExists(sql: Sql, listId: number | null, exceptId: number): Promise<boolean> {
  const { rows } = await sql.query<{ found: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM bulletins b LEFT JOIN send_pacing p ON p.bulletin_id = b.id
        WHERE b.finished_at IS NULL AND b.state = 'started' AND ($1::int IS NULL OR b.list_id = $1) AND b.id <> $2
          AND p.paused_at IS NULL) AS found`,
    [listId, exceptId],
  );
  return rows[0]?.found === true;
}

export async function latestBulletin(sql: Sql): Promise<StoredBulletin | null> {
  const { rows } = await sql.query<BulletinRow>('SELECT * FROM bulletins ORDER BY id DESC LIMIT 1');
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** Makes a finished bulletin unfinished again (deliveries were put back to work by `bulletin retry`). */
export async function reopenBulletin(sql: Sql, id: number): Promise<void> {
  // A cancelled send that a retry sends again is started again (its cancelled_at stays, as history).
  await sql.query(`UPDATE bulletins SET finished_at = NULL, state = CASE WHEN state = 'cancelled' THEN 'started' ELSE state END WHERE id = $1`, [id]);
}

/**
 * `bulletin cancel`: a started, unfinished send becomes cancelled (one statement that checks its
 * state); null when it was not started, already finished, or already cancelled.
 */
export async function cancelBulletin(sql: Sql, id: number, by: string): Promise<StoredBulletin | null> {
  const { rows } = await sql.query<BulletinRow>(
    `UPDATE bulletins SET state = 'cancelled', cancelled_at = now(), cancelled_by = $2
      WHERE id = $1 AND state = 'started' AND finished_at IS NULL RETURNING *`,
    [id, by],
  );
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** Marks the bulletin finished if no delivery still needs work; returns whether it is finished. */
export async function finishBulletinIfDone(sql: Sql, id: number): Promise<boolean> {
  const { rows } = await sql.query<{ finished: boolean }>(
    `UPDATE bulletins b SET finished_at = COALESCE(b.finished_at, now())
      WHERE b.id = $1
        AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.bulletin_id = b.id
                         AND d.state IN ('queued', 'sending', 'deferred', 'uncertain'))
      RETURNING true AS finished`,
    [id],
  );
  return rows.length > 0;
}

/**
 * Gives archive numbers to this list's bulletins that have none, after the highest given, in order
 * of sending; the list's row is locked meanwhile so two exports never hand out the same number.
 * Must run in a transaction.
 */
export async function assignArchiveNumbers(tx: Sql, listId: number): Promise<number> {
  await tx.query('SELECT id FROM lists WHERE id = $1 FOR UPDATE', [listId]);
  const { rowCount } = await tx.query(
    `UPDATE bulletins b SET archive_number = n.number
       FROM (SELECT id, (SELECT coalesce(max(archive_number), -1) FROM bulletins WHERE list_id = $1)
                        + row_number() OVER (ORDER BY sent_date, id) AS number
               FROM bulletins WHERE list_id = $1 AND archive_number IS NULL AND state = 'started') n
      WHERE b.id = n.id`,
    [listId],
  );
  return rowCount ?? 0;
}

/** A numbered bulletin as the archive reads it. */
export interface ArchiveEntry {
  readonly id: number;
  readonly subject: string;
  readonly source: string;
  readonly sourceName: string;
  readonly sentDate: Date;
  readonly archiveNumber: number;
  /** The body as the archive shows it; null until rendered once. */
  readonly archiveBody: { readonly html: string; readonly text: string } | null;
  /** The templates as sent; read only while the body still has to be rendered (else null). */
  readonly templates: Record<string, string> | null;
}

/** Keeps a bulletin's archive rendering (once: a bulletin never changes after its send started). */
export async function storeArchiveBody(sql: Sql, id: number, body: { html: string; text: string }): Promise<void> {
  await sql.query('UPDATE bulletins SET archive_html = $2, archive_text = $3 WHERE id = $1 AND archive_html IS NULL', [id, body.html, body.text]);
}

/** The list's numbered bulletins, in archive-number order (the archive's input). */
export async function selectArchiveEntries(sql: Sql, listId: number): Promise<ArchiveEntry[]> {
  const { rows } = await sql.query<{
    id: number;
    subject: string;
    source: string;
    source_name: string;
    sent_date: Date;
    archive_number: number;
    archive_html: string | null;
    archive_text: string | null;
    templates: Record<string, string> | null;
  }>(
    `SELECT id, subject, source, source_name, sent_date, archive_number, archive_html, archive_text,
            CASE WHEN archive_html IS NULL THEN templates END AS templates
       FROM bulletins WHERE list_id = $1 AND archive_number IS NOT NULL ORDER BY archive_number`,
    [listId],
  );
  return rows.map((row) => ({
    id: row.id,
    subject: row.subject,
    source: row.source,
    sourceName: row.source_name,
    sentDate: row.sent_date,
    archiveNumber: row.archive_number,
    archiveBody: row.archive_html === null ? null : { html: row.archive_html, text: row.archive_text ?? '' },
    templates: row.templates,
  }));
}

/**
 * Starts the earliest scheduled bulletin due at `now`, if any, in one statement: `scheduled` to
 * `started`. FOR UPDATE SKIP LOCKED and the state check mean two workers never start one twice.
 * Run it in the transaction that enqueues the bulletin's deliveries.
 */
export async function startDueScheduledBulletin(tx: Sql, now: Date, listId: number | null): Promise<StoredBulletin | null> {
  const { rows } = await tx.query<BulletinRow>(
    `UPDATE bulletins SET state = 'started', started_at = $1
      WHERE id = (SELECT id FROM bulletins WHERE state = 'scheduled' AND scheduled_for <= $1
                     AND ($2::int IS NULL OR list_id = $2)
                   ORDER BY scheduled_for, id LIMIT 1 FOR UPDATE SKIP LOCKED)
        AND state = 'scheduled'
      RETURNING *`,
    [now, listId],
  );
  return rows[0] ? toBulletin(rows[0]) : null;
}

/** `scheduled` to `unscheduled`, only before its start; returns whether it changed. */
export async function unscheduleBulletin(sql: Sql, id: number): Promise<boolean> {
  const { rowCount } = await sql.query(`UPDATE bulletins SET state = 'unscheduled' WHERE id = $1 AND state = 'scheduled'`, [id]);
  return rowCount === 1;
}

/** Scheduled bulletins not yet started, soonest first. */
export async function selectScheduledBulletins(sql: Sql): Promise<StoredBulletin[]> {
  const { rows } = await sql.query<BulletinRow>(`SELECT * FROM bulletins WHERE state = 'scheduled' ORDER BY scheduled_for, id`);
  return rows.map(toBulletin);
}

/** When the soonest scheduled bulletin (of one list, or of all) is due, or null when none is. */
export async function nextScheduledAt(sql: Sql, listId: number | null): Promise<Date | null> {
  const { rows } = await sql.query<{ at: Date | null }>(
    `SELECT min(scheduled_for) AS at FROM bulletins WHERE state = 'scheduled' AND ($1::int IS NULL OR list_id = $1)`,
    [listId],
  );
  return rows[0]?.at ?? null;
}
