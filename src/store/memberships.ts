// SQL for the `memberships` table: who is on which list, with what status, since when and why.
// Every status change is one statement that checks the current status.
import type { MembershipSource, MembershipStatus } from '../domain/membership.js';
import type { Member } from '../domain/subscriber.js';
import type { Database, Sql } from './database.js';
import Cursor from 'pg-cursor';

interface MemberRow {
  id: number;
  email: string;
  name: string | null;
  attributes: Record<string, unknown>;
  status: MembershipStatus;
  subscribed_at: Date;
  subscribed_source: MembershipSource;
  status_changed_at: Date;
  status_source: MembershipSource;
  resubscriptions: number;
}

const MEMBER_COLUMNS = `s.id, s.email, s.name, s.attributes, m.status, m.subscribed_at, m.subscribed_source,
                        m.status_changed_at, m.status_source, m.resubscriptions`;

function toMember(row: MemberRow): Member {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    attributes: row.attributes,
    status: row.status,
    subscribedAt: row.subscribed_at,
    subscribedSource: row.subscribed_source,
    statusChangedAt: row.status_changed_at,
    statusSource: row.status_source,
    resubscriptions: row.resubscriptions,
  };
}

/** Adds a membership if there is none; returns whether it was added. */
export async function insertMembership(sql: Sql, listId: number, subscriberId: number, source: MembershipSource): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO memberships (list_id, subscriber_id, status, subscribed_source, status_source)
     VALUES ($1, $2, 'active', $3, $3)
     ON CONFLICT (list_id, subscriber_id) DO NOTHING`,
    [listId, subscriberId, source],
  );
  return rowCount === 1;
}

/**
 * Moves a membership to `to` if its status is one of `from`; returns false when it was not (someone
 * else changed it first, or it was already there). Becoming active again counts as a new subscription:
 * it advances `resubscriptions`, which puts the links made for the old one out of date.
 */
export async function changeMembershipStatus(
  sql: Sql,
  change: {
    listId: number;
    subscriberId: number;
    from: readonly MembershipStatus[];
    to: MembershipStatus;
    source: MembershipSource;
  },
): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE memberships
        SET status = $4::membership_status, status_source = $5, status_changed_at = now(),
            subscribed_at = CASE WHEN $4::membership_status = 'active' THEN now() ELSE subscribed_at END,
            subscribed_source = CASE WHEN $4::membership_status = 'active' THEN $5 ELSE subscribed_source END,
            resubscriptions = resubscriptions + CASE WHEN $4::membership_status = 'active' AND status <> 'active' THEN 1 ELSE 0 END
      WHERE list_id = $1 AND subscriber_id = $2 AND status = ANY($3::membership_status[])`,
    [change.listId, change.subscriberId, change.from, change.to, change.source],
  );
  return rowCount === 1;
}

export async function findMember(sql: Sql, listId: number, email: string): Promise<Member | null> {
  const { rows } = await sql.query<MemberRow>(
    `SELECT ${MEMBER_COLUMNS} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.list_id = $1 AND s.email = $2`,
    [listId, email],
  );
  return rows[0] ? toMember(rows[0]) : null;
}

export async function countMembers(sql: Sql, listId: number, status: MembershipStatus): Promise<number> {
  const { rows } = await sql.query<{ count: number }>('SELECT count(*)::int AS count FROM memberships WHERE list_id = $1 AND status = $2', [listId, status]);
  return rows[0]?.count ?? 0;
}

/** One page of members by address, after `afterEmail` (keyset paging). `status` null means all. */
export async function selectMembers(
  sql: Sql,
  query: { listId: number; status: MembershipStatus | null; limit: number; afterEmail?: string; search?: string },
): Promise<Member[]> {
  const { rows } = await sql.query<MemberRow>(
    `SELECT ${MEMBER_COLUMNS} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.list_id = $1 AND ($2::membership_status IS NULL OR m.status = $2)
        AND ($3::text IS NULL OR s.email > $3)
        AND ($5::text IS NULL OR s.email LIKE '%' || $5 || '%' OR s.name ILIKE '%' || $5 || '%')
      ORDER BY s.email
      LIMIT $4`,
    [query.listId, query.status, query.afterEmail ?? null, query.limit, query.search ?? null],
  );
  return rows.map(toMember);
}

/** Attribute names in use among a list's members (for CSV export headers), sorted. */
export async function selectAttributeNames(sql: Sql, listId: number, status: MembershipStatus | null): Promise<string[]> {
  const { rows } = await sql.query<{ key: string }>(
    `SELECT DISTINCT jsonb_object_keys(s.attributes) AS key
       FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.list_id = $1 AND ($2::membership_status IS NULL OR m.status = $2)
      ORDER BY key`,
    [listId, status],
  );
  return rows.map((row) => row.key);
}

/**
 * Streams a list's members by address in batches through a cursor, so memory stays flat whatever the
 * list's size. `onBatch` is awaited before the next read.
 */
export async function forEachMemberBatch(
  db: Database,
  query: { listId: number; status: MembershipStatus | null; batchSize: number },
  onBatch: (members: Member[]) => Promise<void>,
): Promise<void> {
  await db.withConnection(async (client) => {
    const cursor = client.query(
      new Cursor<MemberRow>(
        `SELECT ${MEMBER_COLUMNS} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
          WHERE m.list_id = $1 AND ($2::membership_status IS NULL OR m.status = $2)
          ORDER BY s.email`,
        [query.listId, query.status],
      ),
    );
    try {
      for (;;) {
        const rows = await cursor.read(query.batchSize);
        if (rows.length === 0) break;
        await onBatch(rows.map(toMember));
      }
    } finally {
      await cursor.close();
    }
  });
}

/** One membership by ids (what a signed link names), with the subscriber's address; null if none. */
export async function findMemberById(sql: Sql, listId: number, subscriberId: number): Promise<Member | null> {
  const { rows } = await sql.query<MemberRow>(
    `SELECT ${MEMBER_COLUMNS} FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id
      WHERE m.list_id = $1 AND m.subscriber_id = $2`,
    [listId, subscriberId],
  );
  return rows[0] ? toMember(rows[0]) : null;
}

/**
 * Undoes an unsubscribe made through a link (one-click or the page): active again only while the
 * membership is still `unsubscribed` by one of those sources, and that was less than `withinMs` ago.
 * A bounce, a command-line removal, or an old unsubscribe is not undone from a web page.
 */
export async function undoWebUnsubscribe(sql: Sql, listId: number, subscriberId: number, withinMs: number): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE memberships
        SET status = 'active', status_source = 'page', status_changed_at = now()
      WHERE list_id = $1 AND subscriber_id = $2 AND status = 'unsubscribed'
        AND status_source IN ('one-click', 'page')
        AND status_changed_at > now() - $3 * interval '1 millisecond'`,
    [listId, subscriberId, withinMs],
  );
  return rowCount === 1;
}

export interface UnsubscribeSummary {
  readonly source: MembershipSource;
  readonly count: number;
  readonly latest: Date;
}

/** The list's unsubscribed members counted by where the unsubscribe came from, with the latest time of each. */
export async function summarizeUnsubscribes(sql: Sql, listId: number): Promise<UnsubscribeSummary[]> {
  const { rows } = await sql.query<{ source: MembershipSource; count: number; latest: Date }>(
    `SELECT status_source AS source, count(*)::int AS count, max(status_changed_at) AS latest
       FROM memberships WHERE list_id = $1 AND status = 'unsubscribed'
      GROUP BY status_source ORDER BY count DESC, status_source`,
    [listId],
  );
  return rows;
}

/**
 * A member with at least `threshold` hard bounces on the list since they subscribed becomes
 * `bounced` (source 'bounce'), in one statement, only from `active`: someone who unsubscribed stays
 * unsubscribed. Returns whether it changed.
 */
export async function markBouncedAtThreshold(sql: Sql, listId: number, subscriberId: number, threshold: number): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE memberships m
        SET status = 'bounced', status_source = 'bounce', status_changed_at = now()
      WHERE m.list_id = $1 AND m.subscriber_id = $2 AND m.status = 'active'
        AND (SELECT count(*) FROM bounces b
              WHERE b.list_id = m.list_id AND b.subscriber_id = m.subscriber_id AND b.recorded_at >= m.subscribed_at) >= $3`,
    [listId, subscriberId, threshold],
  );
  return rowCount === 1;
}
