// SQL for the `send_pacing` table: the rate budget of a send, shared by every worker through
// PostgreSQL. A worker reserves `count` slots `intervalMs` apart in one statement; the next worker's
// run starts where this one ends, so the slots of all workers together keep the pace.
import type { Sql } from './database.js';

export interface SlotRun {
  /** Database time (epoch ms) of the first reserved slot; the others follow `intervalMs` apart. */
  readonly firstSlotMs: number;
  /** Database time (epoch ms) when the run was reserved: turns slot times into local waits. */
  readonly databaseNowMs: number;
}

export async function reserveSlots(sql: Sql, bulletinId: number, count: number, intervalMs: number): Promise<SlotRun> {
  // clock_timestamp(), not now(): the time of this statement, not of its transaction.
  const { rows } = await sql.query<{ first_slot_ms: string; now_ms: string }>(
    `WITH t AS (SELECT clock_timestamp() AS now)
     INSERT INTO send_pacing AS p (bulletin_id, next_slot)
     SELECT $1::int, t.now + ($2::int * $3::float8) * interval '1 millisecond' FROM t
     ON CONFLICT (bulletin_id) DO UPDATE
        SET next_slot = greatest(p.next_slot, clock_timestamp()) + ($2::int * $3::float8) * interval '1 millisecond'
     RETURNING (extract(epoch FROM p.next_slot) * 1000 - $2::int * $3::float8)::float8 AS first_slot_ms,
               (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms`,
    [bulletinId, count, intervalMs],
  );
  const row = rows[0] as { first_slot_ms: string | number; now_ms: string | number };
  return { firstSlotMs: Number(row.first_slot_ms), databaseNowMs: Number(row.now_ms) };
}
