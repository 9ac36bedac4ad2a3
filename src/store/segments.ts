// SQL for the `segments` table: a list's named audience filters (`bulletin segment create`).
import type { Sql } from './database.js';

export interface Segment {
  readonly id: number;
  readonly listId: number;
  readonly listSlug: string;
  readonly name: string;
  readonly filter: string;
  readonly createdAt: Date;
}

interface SegmentRow {
  id: number;
  list_id: number;
  slug: string;
  name: string;
  filter: string;
  created_at: Date;
}

const toSegment = (row: SegmentRow): Segment => ({
  id: row.id,
  listId: row.list_id,
  listSlug: row.slug,
  name: row.name,
  filter: row.filter,
  createdAt: row.created_at,
});

/** Adds a segment; returns null when the list already has one of that name. */
export async function insertSegment(sql: Sql, fields: { listId: number; name: string; filter: string }): Promise<Segment | null> {
  const { rows } = await sql.query<SegmentRow>(
    `WITH added AS (
       INSERT INTO segments (list_id, name, filter) VALUES ($1, $2, $3)
       ON CONFLICT (list_id, name) DO NOTHING RETURNING *
     )
     SELECT a.*, l.slug FROM added a JOIN lists l ON l.id = a.list_id`,
    [fields.listId, fields.name, fields.filter],
  );
  return rows[0] ? toSegment(rows[0]) : null;
}

export async function findSegment(sql: Sql, listId: number, name: string): Promise<Segment | null> {
  const { rows } = await sql.query<SegmentRow>('SELECT g.*, l.slug FROM segments g JOIN lists l ON l.id = g.list_id WHERE g.list_id = $1 AND g.name = $2', [
    listId,
    name,
  ]);
  return rows[0] ? toSegment(rows[0]) : null;
}

/** Segments of one list (or of all), by list and name. */
export async function selectSegments(sql: Sql, listId: number | null): Promise<Segment[]> {
  const { rows } = await sql.query<SegmentRow>(
    `SELECT g.*, l.slug FROM segments g JOIN lists l ON l.id = g.list_id
      WHERE $1::int IS NULL OR g.list_id = $1 ORDER BY l.slug, g.name`,
    [listId],
  );
  return rows.map(toSegment);
}

export async function deleteSegment(sql: Sql, listId: number, name: string): Promise<boolean> {
  const { rowCount } = await sql.query('DELETE FROM segments WHERE list_id = $1 AND name = $2', [listId, name]);
  return rowCount === 1;
}
