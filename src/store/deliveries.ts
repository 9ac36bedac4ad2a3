// SQL for the `deliveries` table: one row per (bulletin, subscriber) and its fate. Every state
// change is one statement that checks the current state; work is claimed in batches with
// FOR UPDATE SKIP LOCKED and a lease; outcomes are written in batches through unnest.
import { DELIVERY_STATES, type DeliveryState } from '../domain/delivery.js';
import type { Sql } from './database.js';

export interface ClaimedDelivery {
  readonly id: number;
  readonly state: 'sending' | 'skipped';
  readonly attempts: number;
  readonly firstAttemptAt: Date;
  /** `subscription`: the membership's re-subscriptions, which its unsubscribe link names. */
  readonly subscriber: { id: number; email: string; name: string | null; attributes: Record<string, unknown>; subscription?: number } | null;
}

export interface DeliveryOutcome {
  readonly id: number;
  readonly state: 'sent' | 'deferred' | 'failed' | 'uncertain';
  readonly relay: string;
  readonly reply: string;
  /** '' when no message was composed this time (the one recorded before, if any, stays). */
  readonly messageId: string;
  /** For deferred: when to try again. */
  readonly nextAttemptAt: Date | null;
}

/** SQL: the delivery `d` belongs to a send that was cancelled (`bulletin cancel`). */
const CANCELLED_SEND = `EXISTS (SELECT 1 FROM bulletins b WHERE b.id = d.bulletin_id AND b.state = 'cancelled')`;

/** One delivery per active member, in one statement; the unique key makes a second enqueue a no-op. */
export async function enqueueDeliveries(sql: Sql, bulletinId: number, listId: number): Promise<number> {
  const { rowCount } = await sql.query(
    `INSERT INTO deliveries (bulletin_id, subscriber_id)
     SELECT $1, subscriber_id FROM memberships WHERE list_id = $2 AND status = 'active' ORDER BY subscriber_id
     ON CONFLICT (bulletin_id, subscriber_id) DO NOTHING`,
    [bulletinId, listId],
  );
  return rowCount ?? 0;
}

interface ClaimRow {
  id: number;
  state: 'sending' | 'skipped';
  attempts: number;
  first_attempt_at: Date;
  subscriber_id: number | null;
  email: string | null;
  name: string | null;
  attributes: Record<string, unknown> | null;
  resubscriptions: number | null;
}

/**
 * Claims up to `limit` deliveries matching `which`, in one statement: picked with FOR UPDATE SKIP
 * LOCKED so several workers never take the same row; whoever is no longer an active member (or was
 * erased) becomes `skipped` instead of `sending`.
 */
async function claim(sql: Sql, which: string, order: string, values: unknown[], common: ClaimOptions): Promise<ClaimedDelivery[]> {
  const { rows } = await sql.query<ClaimRow>(
    `WITH picked AS (
       SELECT d.id FROM deliveries d
        WHERE d.bulletin_id = $1 AND ${which}
        ORDER BY ${order} LIMIT $2
        FOR UPDATE SKIP LOCKED
     ), judged AS (
       SELECT p.id, s.id AS subscriber_id, s.email, s.name, s.attributes, m.resubscriptions, (m.status = 'active') IS TRUE AS active
         FROM picked p
         JOIN deliveries d ON d.id = p.id
         LEFT JOIN subscribers s ON s.id = d.subscriber_id
         LEFT JOIN memberships m ON m.list_id = $3 AND m.subscriber_id = d.subscriber_id
     )
     UPDATE deliveries d
        SET state = CASE WHEN j.active THEN 'sending' ELSE 'skipped' END::delivery_state,
            owner = CASE WHEN j.active THEN $4 END,
            lease_until = CASE WHEN j.active THEN now() + $5 * interval '1 millisecond' END,
            attempts = d.attempts + CASE WHEN j.active THEN 1 ELSE 0 END,
            first_attempt_at = COALESCE(d.first_attempt_at, $6::timestamptz),
            last_reply = CASE WHEN j.active THEN d.last_reply ELSE 'skipped: no longer subscribed when its turn came' END,
            updated_at = now()
       FROM judged j
      WHERE d.id = j.id AND ${which}
     RETURNING d.id, d.state, d.attempts, d.first_attempt_at, j.subscriber_id, j.email, j.name, j.attributes, j.resubscriptions`,
    [common.bulletinId, common.limit, common.listId, common.owner, common.leaseMs, common.now, ...values],
  );
  return rows.sort((a, b) => a.id - b.id).map(toClaimed);
}

function toClaimed(row: ClaimRow): ClaimedDelivery {
  return {
    id: row.id,
    state: row.state,
    attempts: row.attempts,
    firstAttemptAt: row.first_attempt_at,
    subscriber:
      row.subscriber_id === null || row.email === null
        ? null
        : { id: row.subscriber_id, email: row.email, name: row.name, attributes: row.attributes ?? {}, subscription: row.resubscriptions ?? 0 },
  };
}

export interface ClaimOptions {
  readonly bulletinId: number;
  readonly listId: number;
  readonly owner: string;
  readonly leaseMs: number;
  readonly limit: number;
  /** The sender's clock (injectable in tests): the start of the retry window of first attempts. */
  readonly now: Date;
}

/**
 * Queued deliveries after the id `afterId`. The low-water mark keeps each claim from walking past
 * every row already claimed (a plain ORDER BY id LIMIT slows down as the send goes on).
 */
export function claimQueued(sql: Sql, options: ClaimOptions & { afterId: number }): Promise<ClaimedDelivery[]> {
  return claim(sql, `d.state = 'queued' AND d.id > $7`, 'd.id', [options.afterId], options);
}

/** Deferred deliveries whose time has come, and (if asked) uncertain ones to re-send. */
export function claimDue(sql: Sql, options: ClaimOptions & { includeUncertain: boolean }): Promise<ClaimedDelivery[]> {
  return claim(
    sql,
    `(d.state = 'deferred' OR (d.state = 'uncertain' AND $7)) AND d.next_attempt_at <= $6`,
    'd.next_attempt_at NULLS FIRST, d.id',
    [options.includeUncertain],
    options,
  );
}

/**
 * The deliveries of this bulletin this owner holds in `sending`, as a claim returns them. A worker
 * whose claim lost its answer with the connection (the claim committed, the reply never came) looks
 * here once nothing of its own is in flight or unwritten: what it finds was claimed and never sent.
 */
export async function selectOwnClaims(sql: Sql, bulletinId: number, owner: string): Promise<ClaimedDelivery[]> {
  const { rows } = await sql.query<ClaimRow>(
    `SELECT d.id, d.state, d.attempts, d.first_attempt_at, s.id AS subscriber_id, s.email, s.name, s.attributes, m.resubscriptions
       FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
       LEFT JOIN bulletins b ON b.id = d.bulletin_id
       LEFT JOIN memberships m ON m.list_id = b.list_id AND m.subscriber_id = d.subscriber_id
      WHERE d.bulletin_id = $1 AND d.state = 'sending' AND d.owner = $2
      ORDER BY d.id`,
    [bulletinId, owner],
  );
  return rows.map(toClaimed);
}

/**
 * Writes a batch of outcomes; only rows still `sending` under this owner change. Returns how many did.
 * In a send cancelled meanwhile, what would have been tried again (deferred, uncertain) is cancelled.
 */
export async function recordOutcomes(sql: Sql, owner: string, outcomes: readonly DeliveryOutcome[]): Promise<number> {
  if (outcomes.length === 0) return 0;
  const { rowCount } = await sql.query(
    `UPDATE deliveries d
        SET state = CASE WHEN o.state IN ('deferred', 'uncertain') AND ${CANCELLED_SEND} THEN 'cancelled' ELSE o.state END::delivery_state,
            relay = o.relay, last_reply = o.reply,
            message_id = COALESCE(NULLIF(o.message_id, ''), d.message_id),
            next_attempt_at = o.next_attempt_at::timestamptz,
            sent_at = CASE WHEN o.state = 'sent' THEN now() ELSE d.sent_at END,
            in_doubt = d.in_doubt OR o.state = 'uncertain',
            owner = NULL, lease_until = NULL, updated_at = now()
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
            AS o (id, state, relay, reply, message_id, next_attempt_at)
      WHERE d.id = o.id AND d.state = 'sending' AND d.owner = $1`,
    [
      owner,
      outcomes.map((outcome) => outcome.id),
      outcomes.map((outcome) => outcome.state),
      outcomes.map((outcome) => outcome.relay),
      outcomes.map((outcome) => outcome.reply.slice(0, 2000)),
      outcomes.map((outcome) => outcome.messageId),
      outcomes.map((outcome) => outcome.nextAttemptAt),
    ],
  );
  return rowCount ?? 0;
}

/**
 * A send held because the relay refused the message itself (20 identical refusals in a row): those
 * deliveries go from `failed` back to `deferred`, due now, so a resume sends them once it is fixed.
 */
export async function reopenFailedDeliveries(sql: Sql, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await sql.query(
    `UPDATE deliveries SET state = 'deferred', next_attempt_at = now(), updated_at = now()
      WHERE id = ANY($1::bigint[]) AND state = 'failed'`,
    [ids],
  );
  return rowCount ?? 0;
}

/**
 * Gives back claimed deliveries that were never attempted (graceful stop, pause): queued again, or due
 * now; cancelled, in a send cancelled meanwhile.
 */
export async function releaseClaims(sql: Sql, owner: string, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await sql.query(
    `UPDATE deliveries d
        SET state = CASE WHEN ${CANCELLED_SEND} THEN 'cancelled' WHEN attempts > 1 THEN 'deferred' ELSE 'queued' END::delivery_state,
            attempts = attempts - 1, next_attempt_at = CASE WHEN attempts > 1 AND NOT ${CANCELLED_SEND} THEN now() END,
            owner = NULL, lease_until = NULL, updated_at = now()
      WHERE id = ANY($2::bigint[]) AND state = 'sending' AND owner = $1`,
    [owner, ids],
  );
  return rowCount ?? 0;
}

/** Extends the lease of everything this owner holds (a heartbeat while a send runs). */
/** Extends this owner's leases; returns the ids still held (others may have taken over lapsed ones). */
export async function renewLeases(sql: Sql, owner: string, leaseMs: number): Promise<number[]> {
  const { rows } = await sql.query<{ id: number }>(
    `UPDATE deliveries SET lease_until = now() + $2 * interval '1 millisecond'
      WHERE state = 'sending' AND owner = $1
      RETURNING id`,
    [owner, leaseMs],
  );
  return rows.map((row) => row.id);
}

/** Owners holding deliveries of this bulletin in `sending`, to tell the living from the dead. */
export async function selectSendingOwners(sql: Sql, bulletinId: number): Promise<string[]> {
  const { rows } = await sql.query<{ owner: string }>(
    `SELECT DISTINCT owner FROM deliveries WHERE bulletin_id = $1 AND state = 'sending' AND owner IS NOT NULL`,
    [bulletinId],
  );
  return rows.map((row) => row.owner);
}

/**
 * A claim whose lease expired, or whose owner is known dead, was perhaps sent and perhaps not:
 * it becomes `uncertain` (the duplicate window of RFC 1047).
 */
export async function expireAbandonedClaims(sql: Sql, bulletinId: number, deadOwners: readonly string[], exceptOwner: string | null = null): Promise<number> {
  // `exceptOwner`: a worker never expires its own claims (after an outage it renews them instead).
  // In a cancelled send it is cancelled instead, and stays marked in doubt.
  const { rowCount } = await sql.query(
    `UPDATE deliveries d
        SET state = CASE WHEN ${CANCELLED_SEND} THEN 'cancelled' ELSE 'uncertain' END::delivery_state,
            owner = NULL, lease_until = NULL, next_attempt_at = CASE WHEN ${CANCELLED_SEND} THEN NULL ELSE now() END, in_doubt = true,
            last_reply = 'uncertain: the sender stopped while this message was in flight', updated_at = now()
      WHERE bulletin_id = $1 AND state = 'sending' AND (lease_until < now() OR owner = ANY($2::text[]))
        AND owner IS DISTINCT FROM $3`,
    [bulletinId, deadOwners, exceptOwner],
  );
  return rowCount ?? 0;
}

/**
 * `bulletin cancel`: every delivery of the bulletin still waiting its turn (queued, deferred,
 * uncertain) becomes cancelled, in one statement; one in flight (`sending`) is left to its sender,
 * whose outcome or release turns it cancelled unless it was sent. Returns how many changed.
 */
export async function cancelUnsentDeliveries(sql: Sql, bulletinId: number, reply: string): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, last_reply = $2, updated_at = now()
      WHERE bulletin_id = $1 AND state IN ('queued', 'deferred', 'uncertain')`,
    [bulletinId, reply],
  );
  return rowCount ?? 0;
}

export type StateCounts = Record<DeliveryState, number>;

export async function countByState(sql: Sql, bulletinId: number): Promise<StateCounts> {
  const { rows } = await sql.query<{ state: DeliveryState; count: number }>(
    `SELECT state, count(*)::int AS count FROM deliveries WHERE bulletin_id = $1 GROUP BY state`,
    [bulletinId],
  );
  const counts = Object.fromEntries(DELIVERY_STATES.map((state) => [state, 0])) as StateCounts;
  for (const row of rows) counts[row.state] = row.count;
  return counts;
}

/** When the earliest deferred (and, if asked, uncertain) delivery is due, or null when none is waiting. */
export async function nextDueAt(sql: Sql, bulletinId: number, includeUncertain = false): Promise<Date | null> {
  const { rows } = await sql.query<{ due: Date | null }>(
    `SELECT min(next_attempt_at) AS due FROM deliveries
      WHERE bulletin_id = $1 AND (state = 'deferred' OR (state = 'uncertain' AND $2))`,
    [bulletinId, includeUncertain],
  );
  return rows[0]?.due ?? null;
}

/**
 * `bulletin retry`: deliveries of this bulletin in one of `states` become due again now, with a new
 * retry window (first_attempt_at cleared); attempts and the last reply are kept. Returns how many.
 * Only a retryable state (RETRYABLE_STATES) ever moves, whatever `states` says: never a `sent`
 * delivery, nor one `sending` (a worker's claim).
 */
export async function requeueDeliveries(sql: Sql, bulletinId: number, states: readonly DeliveryState[], now: Date): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE deliveries
        SET state = 'deferred', next_attempt_at = $3, first_attempt_at = NULL, updated_at = now()
      WHERE bulletin_id = $1 AND state = ANY($2::delivery_state[]) AND state IN ('failed', 'uncertain', 'deferred', 'cancelled')`,
    [bulletinId, states, now],
  );
  return rowCount ?? 0;
}

/**
 * Milliseconds until the first lease of another worker's claims on this bulletin runs out (null:
 * none held), by the database's clock, the one that set the leases.
 */
export async function msUntilNextLeaseEnd(sql: Sql, bulletinId: number, exceptOwner: string): Promise<number | null> {
  const { rows } = await sql.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM min(lease_until) - now()) * 1000)::float8 AS ms FROM deliveries
      WHERE bulletin_id = $1 AND state = 'sending' AND owner IS DISTINCT FROM $2`,
    [bulletinId, exceptOwner],
  );
  return rows[0]?.ms ?? null;
}

/** Messages sent in the last `seconds` seconds, for the current rate. */
export async function countSentSince(sql: Sql, bulletinId: number, seconds: number): Promise<number> {
  const { rows } = await sql.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM deliveries
      WHERE bulletin_id = $1 AND state = 'sent' AND sent_at > now() - $2 * interval '1 second'`,
    [bulletinId, seconds],
  );
  return rows[0]?.count ?? 0;
}

/** The commonest replies among deliveries in the given states (for one failed by a bounce, the bounce's). */
export async function topReplies(
  sql: Sql,
  bulletinId: number,
  states: readonly DeliveryState[],
  limit: number,
): Promise<{ state: DeliveryState; reply: string; count: number }[]> {
  const { rows } = await sql.query<{ state: DeliveryState; reply: string; count: number }>(
    `SELECT state, COALESCE(bounce_report, last_reply, '') AS reply, count(*)::int AS count FROM deliveries
      WHERE bulletin_id = $1 AND state = ANY($2::delivery_state[])
      GROUP BY state, COALESCE(bounce_report, last_reply, '') ORDER BY count DESC, reply LIMIT $3`,
    [bulletinId, states, limit],
  );
  return rows;
}

export interface DeliveryRow {
  readonly id: number;
  readonly email: string | null;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly messageId: string | null;
  readonly relay: string | null;
  readonly lastReply: string | null;
  /** The bounce that failed it (status and diagnostic), beside the relay's reply in lastReply. */
  readonly bounceReport: string | null;
  readonly sentAt: Date | null;
  readonly nextAttemptAt: Date | null;
  readonly updatedAt: Date;
  /** It was uncertain once (perhaps delivered): any later copy may be a second one. */
  readonly inDoubt: boolean;
}

/**
 * One page of a bulletin's deliveries by id: those in one of `states` or (with `inDoubt`) ever in
 * doubt; all of them when `states` is null and `inDoubt` false.
 */
export async function selectDeliveries(
  sql: Sql,
  query: { bulletinId: number; states: readonly DeliveryState[] | null; inDoubt?: boolean; afterId: number; limit: number },
): Promise<DeliveryRow[]> {
  const { rows } = await sql.query<{
    id: number;
    email: string | null;
    state: DeliveryState;
    attempts: number;
    message_id: string | null;
    relay: string | null;
    last_reply: string | null;
    bounce_report: string | null;
    sent_at: Date | null;
    next_attempt_at: Date | null;
    updated_at: Date;
    in_doubt: boolean;
  }>(
    `SELECT d.id, s.email, d.state, d.attempts, d.message_id, d.relay, d.last_reply, d.bounce_report, d.sent_at, d.next_attempt_at, d.updated_at, d.in_doubt
       FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
      WHERE d.bulletin_id = $1
        AND (($2::delivery_state[] IS NULL AND NOT $5) OR d.state = ANY($2) OR ($5 AND d.in_doubt))
        AND d.id > $3
      ORDER BY d.id LIMIT $4`,
    [query.bulletinId, query.states, query.afterId, query.limit, query.inDoubt ?? false],
  );
  return rows.map((row) => ({
    id: row.id,
    email: row.email,
    state: row.state,
    attempts: row.attempts,
    messageId: row.message_id,
    relay: row.relay,
    lastReply: row.last_reply,
    bounceReport: row.bounce_report,
    sentAt: row.sent_at,
    nextAttemptAt: row.next_attempt_at,
    updatedAt: row.updated_at,
    inDoubt: row.in_doubt,
  }));
}

/**
 * Someone left the list: their deliveries of its bulletins not yet claimed (queued, or deferred for a
 * retry) become `skipped` at once. Claimed ones are being sent right now; `uncertain` ones perhaps
 * went out already, and stay as they are (a claim would skip them anyway). Returns how many.
 */
export async function skipPendingDeliveries(sql: Sql, listId: number, subscriberId: number, why: string): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE deliveries d
        SET state = 'skipped', next_attempt_at = NULL, last_reply = $3, updated_at = now()
       FROM bulletins b
      WHERE b.id = d.bulletin_id AND b.list_id = $1 AND d.subscriber_id = $2
        AND d.state IN ('queued', 'deferred')`,
    [listId, subscriberId, why],
  );
  return rowCount ?? 0;
}

export interface BouncedDelivery {
  readonly id: number;
  readonly bulletinId: number;
  readonly listId: number;
  readonly subscriberId: number;
  /** The state it was in when the bounce arrived. */
  readonly previousState: DeliveryState;
  /** Whether this statement made it `failed`. */
  readonly failed: boolean;
}

/**
 * A bounce quoting `messageId` (optionally only if the delivery is this list's and subscriber's, as
 * its VERP token says): the delivery becomes `failed`, its last reply (the relay's, with its queue
 * id) kept and `reply` (the bounce's status and diagnostic) beside it, if it was `sent`, `deferred` or
 * `uncertain`: the message reached a server that refused it for good, so no retry may follow. One
 * `sending` belongs to a worker right now and stays its own; queued, failed and skipped stay as
 * they are. Returns the delivery whatever its state, or null when no delivery of a subscriber
 * carries this Message-ID.
 */
export async function failDeliveryByMessageId(
  sql: Sql,
  bounce: { messageId: string; reply: string; listId: number | null; subscriberId: number | null },
): Promise<BouncedDelivery | null> {
  const { rows } = await sql.query<{
    id: number;
    bulletin_id: number;
    list_id: number;
    subscriber_id: number;
    previous_state: DeliveryState;
    failed: boolean;
  }>(
    `WITH found AS (
       SELECT d.id, d.bulletin_id, b.list_id, d.subscriber_id, d.state AS previous_state
         FROM deliveries d JOIN bulletins b ON b.id = d.bulletin_id
        WHERE d.message_id = $1 AND d.subscriber_id IS NOT NULL
          AND ($3::integer IS NULL OR b.list_id = $3) AND ($4::bigint IS NULL OR d.subscriber_id = $4)
        ORDER BY d.id LIMIT 1
        FOR UPDATE OF d
     ), failed AS (
       UPDATE deliveries d
          SET state = 'failed', bounce_report = $2, next_attempt_at = NULL, updated_at = now()
         FROM found f
        WHERE d.id = f.id AND d.state IN ('sent', 'deferred', 'uncertain')
       RETURNING d.id
     )
     SELECT f.*, EXISTS (SELECT 1 FROM failed) AS failed FROM found f`,
    [bounce.messageId, bounce.reply.slice(0, 2000), bounce.listId, bounce.subscriberId],
  );
  const row = rows[0];
  return row
    ? { id: row.id, bulletinId: row.bulletin_id, listId: row.list_id, subscriberId: row.subscriber_id, previousState: row.previous_state, failed: row.failed }
    : null;
}

/**
 * The delivery of a subscriber that carries `messageId` (optionally only this list's and subscriber's,
 * as a VERP token says), whatever its state; null when none does. What a complaint is matched by.
 */
export async function findDeliveryByMessageId(
  sql: Sql,
  query: { messageId: string; listId: number | null; subscriberId: number | null },
): Promise<{ id: number; bulletinId: number; listId: number; subscriberId: number } | null> {
  const { rows } = await sql.query<{ id: number; bulletin_id: number; list_id: number; subscriber_id: number }>(
    `SELECT d.id, d.bulletin_id, b.list_id, d.subscriber_id
       FROM deliveries d JOIN bulletins b ON b.id = d.bulletin_id
      WHERE d.message_id = $1 AND d.subscriber_id IS NOT NULL
        AND ($2::integer IS NULL OR b.list_id = $2) AND ($3::bigint IS NULL OR d.subscriber_id = $3)
      ORDER BY d.id LIMIT 1`,
    [query.messageId, query.listId, query.subscriberId],
  );
  const row = rows[0];
  return row ? { id: Number(row.id), bulletinId: row.bulletin_id, listId: row.list_id, subscriberId: Number(row.subscriber_id) } : null;
}
