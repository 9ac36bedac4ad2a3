-- Up Migration
-- The operator's hands on a live send, shared by every process working on it through this
-- database: `bulletin pause`, `unpause` and `pace` write the send's pacing row, `cancel` the
-- bulletin and its unsent deliveries. And the processes working on each send, with a heartbeat,
-- so `bulletin status` can say who is sending from where.
-- 'cancelled' is added to delivery_state as DELIVERY_STATES in src/domain/delivery.ts names it,
-- and to bulletin_state as BULLETIN_STATES in src/domain/bulletin.ts names it.

-- A delivery not sent because its send was cancelled (`bulletin retry --state cancelled` can
-- still send it).
ALTER TYPE delivery_state ADD VALUE IF NOT EXISTS 'cancelled';
-- A send cancelled by the operator: nothing more of it is sent.
ALTER TYPE bulletin_state ADD VALUE IF NOT EXISTS 'cancelled';

ALTER TABLE bulletins
  ADD COLUMN cancelled_at timestamptz,
  -- user@host of whoever cancelled it.
  ADD COLUMN cancelled_by text;

-- The pacing row of a send becomes its control row: the rate every process keeps (set by
-- `bulletin pace`; NULL: each process's own --rate) and whether the send is paused.
ALTER TABLE send_pacing
  ALTER COLUMN next_slot SET DEFAULT now(),
  ADD COLUMN rate        float8 CHECK (rate > 0),
  ADD COLUMN rate_set_by text,
  ADD COLUMN rate_set_at timestamptz,
  ADD COLUMN paused_at   timestamptz,
  ADD COLUMN paused_by   text;

-- One row per process working on a send, renewed about four times a second while it runs and
-- deleted when it leaves; a row whose heartbeat stopped is a process that died or was cut off.
CREATE TABLE send_processes (
  -- The claim owner written into the deliveries it holds: <host>:<pid>:<nonce>.
  owner        text PRIMARY KEY,
  bulletin_id  integer NOT NULL REFERENCES bulletins (id) ON DELETE CASCADE,
  host         text NOT NULL,
  pid          integer NOT NULL,
  -- send, resume, retry or worker: the command that runs it.
  command      text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  -- The pace it keeps now (messages per second) and why it is below the configured one, if it is.
  pace         float8,
  pace_note    text,
  -- Messages it sent on this send so far.
  sent         bigint NOT NULL DEFAULT 0,
  paused       boolean NOT NULL DEFAULT false
);
CREATE INDEX send_processes_bulletin ON send_processes (bulletin_id);

-- Down Migration
DROP TABLE send_processes;
ALTER TABLE send_pacing DROP COLUMN paused_by, DROP COLUMN paused_at, DROP COLUMN rate_set_at,
  DROP COLUMN rate_set_by, DROP COLUMN rate;
ALTER TABLE bulletins DROP COLUMN cancelled_by, DROP COLUMN cancelled_at;
