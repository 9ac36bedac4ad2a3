// SQL for the `send_pacing` table: the rate budget of a send, shared by every worker through
// PostgreSQL, and the operator's control of it. A worker reserves `count` slots in one statement;
// the next worker's run starts where this one ends, so the slots of all workers together keep the
// pace. `bulletin pace` sets the row's rate (every reservation honours it at once) and `bulletin
// pause`/`unpause` its pause; each process reads both with its heartbeat (send-processes.ts).
import type { Sql } from './database.js';

export interface SlotRun {
  /** Database time (epoch ms) of the first reserved slot; the others follow `intervalMs` apart. */
  readonly firstSlotMs: number;
  /** Database time (epoch ms) when the run was reserved: turns slot times into local waits. */
  readonly databaseNowMs: number;
  /** The slots' spacing: the one asked for, or wider when the send's rate (`bulletin pace`) is slower. */
  readonly intervalMs: number;
}

export async function reserveSlots(sql: Sql, bulletinId: number, count: number, intervalMs: number): Promise<SlotRun> {
  // clock_timestamp(), not now(): the time of this statement, not of its transaction. The spacing is
  // never closer than the rate the operator set: a process that has not heard of it yet keeps it too.
  const { rows } = await sql.query<{ first_slot_ms: string; now_ms: string; interval_ms: string }>(
    `WITH t AS (SELECT clock_timestamp() AS now),
          spacing AS (SELECT greatest($3::float8, COALESCE((SELECT 1000 / rate FROM send_pacing WHERE bulletin_id = $1), 0)) AS ms)
     INSERT INTO send_pacing AS p (bulletin_id, next_slot)
     SELECT $1::int, t.now + ($2::int * spacing.ms) * interval '1 millisecond' FROM t, spacing
     ON CONFLICT (bulletin_id) DO UPDATE
        SET next_slot = greatest(p.next_slot, clock_timestamp()) + ($2::int * greatest($3::float8, COALESCE(1000 / p.rate, 0))) * interval '1 millisecond'
     RETURNING (extract(epoch FROM p.next_slot) * 1000 - $2::int * greatest($3::float8, COALESCE(1000 / p.rate, 0)))::float8 AS first_slot_ms,
               (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms,
               greatest($3::float8, COALESCE(1000 / p.rate, 0))::float8 AS interval_ms`,
    [bulletinId, count, intervalMs],
  );
  const row = rows[0] as { first_slot_ms: string | number; now_ms: string | number; interval_ms: string | number };
  return { firstSlotMs: Number(row.first_slot_ms), databaseNowMs: Number(row.now_ms), intervalMs: Number(row.interval_ms) };
}

/** `bulletin pace`: the send's rate for every process on it, from their next reservation on. */
export async function setSendRate(sql: Sql, bulletinId: number, perSecond: number, by: string): Promise<void> {
  await sql.query(
    `INSERT INTO send_pacing (bulletin_id, rate, rate_set_by, rate_set_at) VALUES ($1, $2, $3, now())
     ON CONFLICT (bulletin_id) DO UPDATE SET rate = EXCLUDED.rate, rate_set_by = EXCLUDED.rate_set_by, rate_set_at = EXCLUDED.rate_set_at`,
    [bulletinId, perSecond, by],
  );
}

export interface PauseRow {
  readonly pausedAt: Date;
  readonly pausedBy: string;
}

/** `bulletin pause`: the send is paused from now (or since it already was, by whoever paused it then). */
export async function pauseSend(sql: Sql, bulletinId: number, by: string): Promise<PauseRow & { already: boolean }> {
  const { rows } = await sql.query<{ paused_at: Date; paused_by: string; already: boolean }>(
    `WITH before AS (SELECT paused_at FROM send_pacing WHERE bulletin_id = $1)
     INSERT INTO send_pacing AS p (bulletin_id, paused_at, paused_by) VALUES ($1, now(), $2)
     ON CONFLICT (bulletin_id) DO UPDATE
        SET paused_at = COALESCE(p.paused_at, now()), paused_by = CASE WHEN p.paused_at IS NULL THEN $2 ELSE p.paused_by END
     RETURNING p.paused_at, p.paused_by, (SELECT paused_at IS NOT NULL FROM before) IS TRUE AS already`,
    [bulletinId, by],
  );
  const row = rows[0] as { paused_at: Date; paused_by: string; already: boolean };
  return { pausedAt: row.paused_at, pausedBy: row.paused_by, already: row.already };
}

/** `bulletin unpause`: the pause it lifted (null: the send was not paused). */
export async function unpauseSend(sql: Sql, bulletinId: number): Promise<PauseRow | null> {
  const { rows } = await sql.query<{ paused_at: Date; paused_by: string }>(
    `UPDATE send_pacing p SET paused_at = NULL, paused_by = NULL
       FROM (SELECT bulletin_id, paused_at, paused_by FROM send_pacing WHERE bulletin_id = $1 FOR UPDATE) old
      WHERE p.bulletin_id = old.bulletin_id AND old.paused_at IS NOT NULL
      RETURNING old.paused_at, old.paused_by`,
    [bulletinId],
  );
  const row = rows[0];
  return row ? { pausedAt: row.paused_at, pausedBy: row.paused_by } : null;
}
