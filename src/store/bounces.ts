// SQL for the `bounces` table: each hard bounce recorded once (a unique key per bounce makes a second
// reading of the same message a no-op), and a member's bounce count since they (re)subscribed.
import type { Sql } from './database.js';

export interface HardBounce {
  readonly listId: number;
  readonly subscriberId: number;
  readonly deliveryId: number | null;
  /** See migrations/0005_bounces.sql: `delivery:<id>`, `message-id:<id>` or `sha256:<hex>`. */
  readonly dedupKey: string;
  readonly status: string;
  readonly diagnostic: string;
  readonly originalMessageId: string | null;
  readonly bounceMessageId: string | null;
  readonly reportedAt: Date | null;
  /** How it was learnt: a bounce message ('report', the default) or a refusal at RCPT TO ('smtp'). */
  readonly source?: 'report' | 'smtp';
}

/** Records a hard bounce; false when the same bounce was recorded before (nothing changes then). */
export async function insertBounce(sql: Sql, bounce: HardBounce): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO bounces (list_id, subscriber_id, delivery_id, dedup_key, status, diagnostic,
                          original_message_id, bounce_message_id, reported_at, source)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (list_id, subscriber_id, dedup_key) DO NOTHING`,
    [
      bounce.listId,
      bounce.subscriberId,
      bounce.deliveryId,
      bounce.dedupKey,
      bounce.status,
      bounce.diagnostic.slice(0, 2000),
      bounce.originalMessageId,
      bounce.bounceMessageId,
      bounce.reportedAt,
      bounce.source ?? 'report',
    ],
  );
  return rowCount === 1;
}

/**
 * Hard bounces of a member on a list recorded since they subscribed (a resubscribe starts the
 * count again); what the threshold is compared with.
 */
export async function countBouncesSinceSubscribed(sql: Sql, listId: number, subscriberId: number): Promise<number> {
  const { rows } = await sql.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM bounces b
       JOIN memberships m ON m.list_id = b.list_id AND m.subscriber_id = b.subscriber_id
      WHERE b.list_id = $1 AND b.subscriber_id = $2 AND b.recorded_at >= m.subscribed_at`,
    [listId, subscriberId],
  );
  return rows[0]?.count ?? 0;
}
