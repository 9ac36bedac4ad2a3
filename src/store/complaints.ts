// SQL for the `complaints` table: each feedback-loop complaint (ARF) about one of our messages,
// recorded once (a unique key per complaint makes a second reading a no-op), counted per bulletin.
import type { Sql } from './database.js';

export interface Complaint {
  readonly listId: number;
  readonly subscriberId: number;
  readonly deliveryId: number | null;
  readonly bulletinId: number | null;
  /** See migrations/0013_ways_out.sql: `delivery:<id>`, `message-id:<id>` or `sha256:<hex>`. */
  readonly dedupKey: string;
  readonly feedbackType: string;
  readonly userAgent: string | null;
  readonly reportMessageId: string | null;
  readonly reportedAt: Date | null;
}

/** Records a complaint; false when the same one was recorded before (nothing changes then). */
export async function insertComplaint(sql: Sql, complaint: Complaint): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO complaints (list_id, subscriber_id, delivery_id, bulletin_id, dedup_key, feedback_type, user_agent, report_message_id, reported_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (list_id, subscriber_id, dedup_key) DO NOTHING`,
    [
      complaint.listId,
      complaint.subscriberId,
      complaint.deliveryId,
      complaint.bulletinId,
      complaint.dedupKey,
      complaint.feedbackType.slice(0, 100),
      complaint.userAgent?.slice(0, 200) ?? null,
      complaint.reportMessageId,
      complaint.reportedAt,
    ],
  );
  return rowCount === 1;
}

/** Complaints about a bulletin's messages. */
export async function countComplaints(sql: Sql, bulletinId: number): Promise<number> {
  const { rows } = await sql.query<{ count: number }>('SELECT count(*)::int AS count FROM complaints WHERE bulletin_id = $1', [bulletinId]);
  return rows[0]?.count ?? 0;
}
