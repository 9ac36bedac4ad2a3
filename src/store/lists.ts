// SQL for the `lists` table: create, find, list with subscriber counts, update.
import type { MailingList } from '../domain/list.js';
import type { MembershipStatus } from '../domain/membership.js';
import type { Sql } from './database.js';

interface ListRow {
  id: number;
  slug: string;
  name: string;
  description: string;
  address: string;
  from_name: string;
  from_address: string;
  base_url: string;
  subject_prefix: string | null;
  bounce_address: string | null;
  templates_dir: string | null;
  created_at: Date;
  updated_at: Date;
}

function toList(row: ListRow): MailingList {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    description: row.description,
    address: row.address,
    from: { name: row.from_name, address: row.from_address },
    baseUrl: row.base_url,
    subjectPrefix: row.subject_prefix,
    bounceAddress: row.bounce_address,
    templatesDir: row.templates_dir,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export type ListFields = Omit<MailingList, 'id' | 'createdAt' | 'updatedAt'>;

/** Inserts a list; returns null when the slug is taken. */
export async function insertList(sql: Sql, fields: ListFields): Promise<MailingList | null> {
  const { rows } = await sql.query<ListRow>(
    `INSERT INTO lists (slug, name, description, address, from_name, from_address, base_url,
                        subject_prefix, bounce_address, templates_dir)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (slug) DO NOTHING
     RETURNING *`,
    [
      fields.slug,
      fields.name,
      fields.description,
      fields.address,
      fields.from.name,
      fields.from.address,
      fields.baseUrl,
      fields.subjectPrefix,
      fields.bounceAddress,
      fields.templatesDir,
    ],
  );
  return rows[0] ? toList(rows[0]) : null;
}

export async function findListBySlug(sql: Sql, slug: string): Promise<MailingList | null> {
  const { rows } = await sql.query<ListRow>('SELECT * FROM lists WHERE slug = $1', [slug]);
  return rows[0] ? toList(rows[0]) : null;
}

export async function findListById(sql: Sql, id: number): Promise<MailingList | null> {
  const { rows } = await sql.query<ListRow>('SELECT * FROM lists WHERE id = $1', [id]);
  return rows[0] ? toList(rows[0]) : null;
}

export type MembershipCounts = Record<MembershipStatus, number>;

export interface ListWithCounts {
  readonly list: MailingList;
  readonly counts: MembershipCounts;
}

/**
 * Locks the list's row until the transaction ends: sends of one list begin one after the other, so
 * two of the same bulletin never both create it. Must run in a transaction.
 */
export async function lockList(tx: Sql, id: number): Promise<void> {
  await tx.query('SELECT id FROM lists WHERE id = $1 FOR UPDATE', [id]);
}

/** Every list, by slug, with its members counted by status. */
export async function selectListsWithCounts(sql: Sql, slug?: string): Promise<ListWithCounts[]> {
  const { rows } = await sql.query<ListRow & { active: number; unsubscribed: number; bounced: number; removed: number }>(
    `SELECT l.*,
            count(*) FILTER (WHERE m.status = 'active')::int       AS active,
            count(*) FILTER (WHERE m.status = 'unsubscribed')::int AS unsubscribed,
            count(*) FILTER (WHERE m.status = 'bounced')::int      AS bounced,
            count(*) FILTER (WHERE m.status = 'removed')::int      AS removed
       FROM lists l
       LEFT JOIN memberships m ON m.list_id = l.id
      WHERE $1::text IS NULL OR l.slug = $1
      GROUP BY l.id
      ORDER BY l.slug`,
    [slug ?? null],
  );
  return rows.map((row) => ({
    list: toList(row),
    counts: { active: row.active, unsubscribed: row.unsubscribed, bounced: row.bounced, removed: row.removed },
  }));
}

/** Updates the given fields of a list; returns the list as it is now, or null if there is none. */
export async function updateListFields(sql: Sql, slug: string, changes: Partial<Omit<ListFields, 'slug'>>): Promise<MailingList | null> {
  const { rows } = await sql.query<ListRow>(
    `UPDATE lists SET
        name           = CASE WHEN $2 THEN $3 ELSE name END,
        description    = CASE WHEN $4 THEN $5 ELSE description END,
        address        = CASE WHEN $6 THEN $7 ELSE address END,
        from_name      = CASE WHEN $8 THEN $9 ELSE from_name END,
        from_address   = CASE WHEN $8 THEN $10 ELSE from_address END,
        base_url       = CASE WHEN $11 THEN $12 ELSE base_url END,
        subject_prefix = CASE WHEN $13 THEN $14 ELSE subject_prefix END,
        bounce_address = CASE WHEN $15 THEN $16 ELSE bounce_address END,
        templates_dir  = CASE WHEN $17 THEN $18 ELSE templates_dir END,
        updated_at     = now()
      WHERE slug = $1
      RETURNING *`,
    [
      slug,
      'name' in changes,
      changes.name ?? null,
      'description' in changes,
      changes.description ?? null,
      'address' in changes,
      changes.address ?? null,
      'from' in changes,
      changes.from?.name ?? null,
      changes.from?.address ?? null,
      'baseUrl' in changes,
      changes.baseUrl ?? null,
      'subjectPrefix' in changes,
      changes.subjectPrefix ?? null,
      'bounceAddress' in changes,
      changes.bounceAddress ?? null,
      'templatesDir' in changes,
      changes.templatesDir ?? null,
    ],
  );
  return rows[0] ? toList(rows[0]) : null;
}
