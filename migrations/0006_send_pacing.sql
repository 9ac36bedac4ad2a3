-- Up Migration
-- The pace of a send shared by all its workers: each reserves a run of message slots from this row
-- (one statement), so several processes together never go faster than the configured rate.

CREATE TABLE send_pacing (
  bulletin_id integer PRIMARY KEY REFERENCES bulletins (id) ON DELETE CASCADE,
  -- The earliest time the next message of this send may go, whichever worker sends it.
  next_slot   timestamptz NOT NULL
);

-- Down Migration
DROP TABLE send_pacing;
