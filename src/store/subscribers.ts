// SQL for the `subscribers` table: one row per person, found by normalised address.
import type { Subscriber, SubscriberAttributes } from '../domain/subscriber.js';
import type { Sql } from './database.js';

interface SubscriberRow {
  id: number;
  email: string;
  name: string | null;
  attributes: SubscriberAttributes;
}

/**
 * Inserts a person, or merges into the existing row: a given name replaces the old one, given
 * attributes are merged over the old ones. A merge that changes nothing writes nothing.
 */
export async function upsertSubscriber(
  sql: Sql,
  fields: { email: string; name: string | null; attributes: SubscriberAttributes },
): Promise<{ subscriber: Subscriber; created: boolean }> {
  const { rows } = await sql.query<SubscriberRow & { created: boolean }>(
    `WITH inserted AS (
       INSERT INTO subscribers (email, name, attributes) VALUES ($1, $2, $3::jsonb)
       ON CONFLICT (email) DO NOTHING
       RETURNING id, email, name, attributes, true AS created
     ), updated AS (
       UPDATE subscribers s
          SET name = COALESCE($2, s.name), attributes = s.attributes || $3::jsonb, updated_at = now()
        WHERE s.email = $1 AND NOT EXISTS (SELECT 1 FROM inserted)
          AND (s.name IS DISTINCT FROM COALESCE($2, s.name) OR NOT s.attributes @> $3::jsonb)
       RETURNING id, email, name, attributes, false AS created
     )
     SELECT * FROM inserted
     UNION ALL SELECT * FROM updated
     UNION ALL SELECT id, email, name, attributes, false FROM subscribers
      WHERE email = $1 AND NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM updated)`,
    [fields.email, fields.name, JSON.stringify(fields.attributes)],
  );
  const row = rows[0];
  if (!row) throw new Error(`upsertSubscriber returned no row for ${fields.email}`);
  const { created, ...subscriber } = row;
  return { subscriber, created };
}

export async function findSubscriberByEmail(sql: Sql, email: string): Promise<Subscriber | null> {
  const { rows } = await sql.query<SubscriberRow>('SELECT id, email, name, attributes FROM subscribers WHERE email = $1', [email]);
  return rows[0] ?? null;
}

/** Erases a person and (by cascade) every membership of theirs; returns how many memberships went. */
export async function deleteSubscriber(sql: Sql, subscriberId: number): Promise<number> {
  const { rows } = await sql.query<{ memberships: number }>(
    `WITH person AS (DELETE FROM subscribers WHERE id = $1 RETURNING id)
     SELECT count(*)::int AS memberships FROM memberships m JOIN person p ON p.id = m.subscriber_id`,
    [subscriberId],
  );
  return rows[0]?.memberships ?? 0;
}
