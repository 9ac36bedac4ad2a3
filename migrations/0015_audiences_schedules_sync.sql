-- Up Migration
-- Who gets a bulletin and when: a send's audience (a filter, perhaps from a named segment) frozen
-- with the bulletin, sends scheduled for a time, and members a sync took off their list.
-- bulletin_state mirrors BULLETIN_STATES in src/domain/bulletin.ts; 'removed' is added to
-- membership_status as MEMBERSHIP_STATUSES in src/domain/membership.ts names it.

-- A member a `subscribers sync` found missing from the source file: never mailed, not an unsubscribe.
ALTER TYPE membership_status ADD VALUE IF NOT EXISTS 'removed';

-- 'started': enqueued and sending (or finished: finished_at). 'scheduled': stored, waiting for
-- scheduled_for, no deliveries yet. 'unscheduled': taken back before its start, never sent.
CREATE TYPE bulletin_state AS ENUM ('scheduled', 'started', 'unscheduled');

ALTER TABLE bulletins
  ADD COLUMN state            bulletin_state NOT NULL DEFAULT 'started',
  ADD COLUMN scheduled_for    timestamptz,
  ADD COLUMN started_at       timestamptz,
  -- The audience filter as written (NULL: every active member) and the segment it came from.
  ADD COLUMN audience_filter  text,
  ADD COLUMN audience_segment text;
CREATE INDEX bulletins_scheduled ON bulletins (scheduled_for) WHERE state = 'scheduled';

-- Named audience filters of a list (`bulletin segment create`), used with `send --segment`.
CREATE TABLE segments (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  list_id    integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
  name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  filter     text NOT NULL CHECK (filter <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (list_id, name)
);

-- Down Migration
DROP TABLE segments;
DROP INDEX bulletins_scheduled;
ALTER TABLE bulletins DROP COLUMN audience_segment, DROP COLUMN audience_filter, DROP COLUMN started_at,
  DROP COLUMN scheduled_for, DROP COLUMN state;
DROP TYPE bulletin_state;
