// SQL for a send's audience: a checked filter tree (src/domain/audience-filter.ts) becomes one
// parameterised condition over a member (`s` subscribers, `m` memberships). Every value and
// attribute name from the filter is a parameter; the SQL text is made only of the fixed pieces here.
import type { FilterField, FilterNode, FilterValue } from '../domain/audience-filter.js';
import type { Member } from '../domain/subscriber.js';
import type { Database, Sql } from './database.js';
import Cursor from 'pg-cursor';

export interface SqlCondition {
  readonly text: string;
  readonly values: readonly unknown[];
}

const NUMBER_TEXT = `'^-?[0-9]+(\\.[0-9]+)?$'`;
const DATE_TEXT = `'^[0-9]{4}-[0-9]{2}-[0-9]{2}'`;

/**
 * The filter as a condition whose parameters are numbered from `$first` on (true for no filter).
 * Each comparison is true or false, never NULL: a member without the attribute fails `=` and
 * passes `!=` and `not (… = …)` alike.
 */
export function audienceCondition(filter: FilterNode | null, first: number): SqlCondition {
  const values: unknown[] = [];
  const param = (value: unknown, type: string) => {
    values.push(value);
    return `$${first + values.length - 1}::${type}`;
  };
  const fieldSql = (field: FilterField): string => {
    switch (field.kind) {
      case 'email':
        return 's.email';
      case 'name':
        return 's.name';
      case 'subscribed':
        return 'm.subscribed_at';
      case 'attribute':
        return `(s.attributes ->> ${param(field.name, 'text')})`;
    }
  };
  const textValue = (field: FilterField, value: FilterValue) => (field.kind === 'email' ? value.value.toLowerCase() : value.value);
  const never = (condition: string) => `COALESCE(${condition}, false)`;
  const build = (node: FilterNode): string => {
    switch (node.kind) {
      case 'and':
      case 'or':
        return `(${node.items.map(build).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
      case 'not':
        return `(NOT ${build(node.operand)})`;
      case 'exists':
        if (node.field.kind === 'attribute') return `(s.attributes ? ${param(node.field.name, 'text')})`;
        if (node.field.kind === 'name') return `(s.name IS NOT NULL AND s.name <> '')`;
        return 'true';
      case 'contains':
        return never(`strpos(lower(${fieldSql(node.field)}), lower(${param(textValue(node.field, node.value), 'text')})) > 0`);
      case 'startsWith':
        return never(`starts_with(lower(${fieldSql(node.field)}), lower(${param(textValue(node.field, node.value), 'text')}))`);
      case 'endsWith': {
        const field = fieldSql(node.field);
        const value = param(textValue(node.field, node.value), 'text');
        return never(`right(lower(${field}), char_length(lower(${value}))) = lower(${value})`);
      }
      case 'in': {
        const field = fieldSql(node.field);
        const numeric = node.values[0]?.type === 'number';
        const list = node.values.map((value) => textValue(node.field, value));
        const test = numeric
          ? never(`(CASE WHEN ${field} ~ ${NUMBER_TEXT} THEN ${field}::numeric END) = ANY(${param(list, 'numeric[]')})`)
          : never(`${field} = ANY(${param(list, 'text[]')})`);
        return node.negated ? `(NOT ${test})` : test;
      }
      case 'compare': {
        const negate = node.op === '!=';
        const op = negate ? '=' : node.op;
        const field = fieldSql(node.field);
        let test: string;
        if (node.field.kind === 'subscribed') {
          // A plain date is midnight UTC, whatever the session's time zone.
          const instant = node.value.type === 'date' && !node.value.withTime ? `${node.value.value}T00:00:00Z` : node.value.value;
          test = never(`${field} ${op} ${param(instant, 'timestamptz')}`);
        } else if (node.value.type === 'number') {
          test = never(`(CASE WHEN ${field} ~ ${NUMBER_TEXT} THEN ${field}::numeric END) ${op} ${param(node.value.value, 'numeric')}`);
        } else if (node.value.type === 'date') {
          test = never(`(CASE WHEN ${field} ~ ${DATE_TEXT} THEN left(${field}, 10) END) COLLATE "C" ${op} ${param(node.value.value, 'text')}`);
        } else {
          test = never(`${field} = ${param(textValue(node.field, node.value), 'text')}`);
        }
        return negate ? `(NOT ${test})` : test;
      }
    }
  };
  return filter === null ? { text: 'true', values: [] } : { text: build(filter), values };
}

const FROM_AUDIENCE = `FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.list_id = $1 AND m.status = 'active'`;

/** How many active members of the list match. */
export async function countAudience(sql: Sql, listId: number, filter: FilterNode | null): Promise<number> {
  const condition = audienceCondition(filter, 2);
  const { rows } = await sql.query<{ count: number }>(`SELECT count(*)::int AS count ${FROM_AUDIENCE} AND ${condition.text}`, [listId, ...condition.values]);
  return rows[0]?.count ?? 0;
}

interface AudienceRow {
  id: number;
  email: string;
  name: string | null;
  attributes: Record<string, unknown>;
}

/** The first `limit` matching active members by address (a sample to show before sending). */
export async function sampleAudience(sql: Sql, listId: number, filter: FilterNode | null, limit: number): Promise<AudienceRow[]> {
  const condition = audienceCondition(filter, 3);
  const { rows } = await sql.query<AudienceRow>(`SELECT s.id, s.email, s.name, s.attributes ${FROM_AUDIENCE} AND ${condition.text} ORDER BY s.email LIMIT $2`, [
    listId,
    limit,
    ...condition.values,
  ]);
  return rows;
}

/** One delivery per matching active member, in one statement; a second enqueue is a no-op. */
export async function enqueueAudience(sql: Sql, bulletinId: number, listId: number, filter: FilterNode | null): Promise<number> {
  const condition = audienceCondition(filter, 3);
  const { rowCount } = await sql.query(
    `INSERT INTO deliveries (bulletin_id, subscriber_id)
     SELECT $2, m.subscriber_id ${FROM_AUDIENCE} AND ${condition.text} ORDER BY m.subscriber_id
     ON CONFLICT (bulletin_id, subscriber_id) DO NOTHING`,
    [listId, bulletinId, ...condition.values],
  );
  return rowCount ?? 0;
}

/** Streams the matching active members by address in batches (a dry run renders each). */
export async function forEachAudienceBatch(
  db: Database,
  query: { listId: number; filter: FilterNode | null; batchSize: number },
  onBatch: (members: Pick<Member, 'id' | 'email' | 'name' | 'attributes'>[]) => Promise<void>,
): Promise<void> {
  const condition = audienceCondition(query.filter, 2);
  await db.withConnection(async (client) => {
    const cursor = client.query(
      new Cursor<AudienceRow>(`SELECT s.id, s.email, s.name, s.attributes ${FROM_AUDIENCE} AND ${condition.text} ORDER BY s.email`, [
        query.listId,
        ...condition.values,
      ]),
    );
    try {
      for (;;) {
        const rows = await cursor.read(query.batchSize);
        if (rows.length === 0) break;
        await onBatch(rows);
      }
    } finally {
      await cursor.close();
    }
  });
}
