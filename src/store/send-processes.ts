// SQL for the `send_processes` table: the processes working on each send, each renewing its row
// (its heartbeat) a few times a second and reading the send's control in the same statement, so a
// pause, a cancel or a new pace set from anywhere reaches every process within a second.
import type { Sql } from './database.js';

export interface ProcessBeat {
  /** The claim owner (`<host>:<pid>:<nonce>`): the row's key. */
  readonly owner: string;
  readonly bulletinId: number;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  /** Messages per second it keeps now, and why it is below its ceiling (null: it is not). */
  readonly pace: number | null;
  readonly paceNote: string | null;
  readonly sent: number;
  readonly paused: boolean;
}

/** What the operator set for a send (src/store/send-pacing.ts writes it), as every process reads it. */
export interface SendControlRow {
  /** Messages per second set by `bulletin pace` (null: each process keeps its own --rate). */
  readonly rate: number | null;
  readonly rateSetBy: string | null;
  readonly rateSetAt: Date | null;
  readonly pausedAt: Date | null;
  readonly pausedBy: string | null;
  readonly cancelledAt: Date | null;
  readonly cancelledBy: string | null;
}

interface ControlRow {
  rate: number | null;
  rate_set_by: string | null;
  rate_set_at: Date | null;
  paused_at: Date | null;
  paused_by: string | null;
  cancelled_at: Date | null;
  cancelled_by: string | null;
}

/** Renews this process's row (inserting it the first time) and reads the send's control, in one statement. */
export async function beatAndReadControl(sql: Sql, beat: ProcessBeat): Promise<SendControlRow> {
  const { rows } = await sql.query<ControlRow>(
    `WITH beat AS (
       INSERT INTO send_processes AS p (owner, bulletin_id, host, pid, command, pace, pace_note, sent, paused)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (owner) DO UPDATE
          SET heartbeat_at = now(), pace = EXCLUDED.pace, pace_note = EXCLUDED.pace_note, sent = EXCLUDED.sent, paused = EXCLUDED.paused
     )
     SELECT c.rate, c.rate_set_by, c.rate_set_at, c.paused_at, c.paused_by,
            CASE WHEN b.state = 'cancelled' THEN b.cancelled_at END AS cancelled_at,
            CASE WHEN b.state = 'cancelled' THEN b.cancelled_by END AS cancelled_by
       FROM bulletins b LEFT JOIN send_pacing c ON c.bulletin_id = b.id
      WHERE b.id = $2`,
    [beat.owner, beat.bulletinId, beat.host, beat.pid, beat.command, beat.pace, beat.paceNote?.slice(0, 500) ?? null, beat.sent, beat.paused],
  );
  const row = rows[0];
  if (!row) return { rate: null, rateSetBy: null, rateSetAt: null, pausedAt: null, pausedBy: null, cancelledAt: null, cancelledBy: null };
  return {
    rate: row.rate === null ? null : Number(row.rate),
    rateSetBy: row.rate_set_by,
    rateSetAt: row.rate_set_at,
    pausedAt: row.paused_at,
    pausedBy: row.paused_by,
    cancelledAt: row.cancelled_at,
    cancelledBy: row.cancelled_by,
  };
}

/** The process left the send: its row goes (and so do rows of this send silent for an hour: processes long dead). */
export async function leaveSend(sql: Sql, owner: string, bulletinId: number): Promise<void> {
  await sql.query(`DELETE FROM send_processes WHERE owner = $1 OR (bulletin_id = $2 AND heartbeat_at < now() - interval '1 hour')`, [owner, bulletinId]);
}

export interface SendProcessRow {
  readonly owner: string;
  readonly bulletinId: number;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly startedAt: Date;
  readonly heartbeatAt: Date;
  /** Seconds since its last heartbeat, by the database's clock (the one that wrote it). */
  readonly silentSeconds: number;
  readonly pace: number | null;
  readonly paceNote: string | null;
  readonly sent: number;
  readonly paused: boolean;
}

interface ProcessRow {
  owner: string;
  bulletin_id: number;
  host: string;
  pid: number;
  command: string;
  started_at: Date;
  heartbeat_at: Date;
  silent_seconds: number;
  pace: number | null;
  pace_note: string | null;
  sent: string;
  paused: boolean;
}

/** The processes on these sends that beat within the last `withinSeconds`, oldest first. */
export async function selectSendProcesses(sql: Sql, bulletinIds: readonly number[], withinSeconds = 3600): Promise<SendProcessRow[]> {
  const { rows } = await sql.query<ProcessRow>(
    `SELECT owner, bulletin_id, host, pid, command, started_at, heartbeat_at,
            extract(epoch FROM now() - heartbeat_at)::float8 AS silent_seconds, pace, pace_note, sent, paused
       FROM send_processes
      WHERE bulletin_id = ANY($1::int[]) AND heartbeat_at > now() - $2 * interval '1 second'
      ORDER BY bulletin_id, started_at, owner`,
    [bulletinIds, withinSeconds],
  );
  return rows.map((row) => ({
    owner: row.owner,
    bulletinId: row.bulletin_id,
    host: row.host,
    pid: row.pid,
    command: row.command,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    silentSeconds: Math.max(0, Number(row.silent_seconds)),
    pace: row.pace === null ? null : Number(row.pace),
    paceNote: row.pace_note,
    sent: Number(row.sent),
    paused: row.paused,
  }));
}
