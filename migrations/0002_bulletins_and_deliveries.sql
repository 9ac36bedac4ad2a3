-- Up Migration
-- Bulletins as they were sent, and one delivery per (bulletin, subscriber) recording its fate.
-- delivery_state mirrors DELIVERY_STATES in src/domain/delivery.ts.

CREATE TYPE delivery_state AS ENUM ('queued', 'sending', 'sent', 'deferred', 'failed', 'skipped', 'uncertain');

CREATE TABLE bulletins (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  list_id      integer NOT NULL REFERENCES lists (id),
  subject      text NOT NULL,
  -- The Markdown source exactly as given, and where it came from: a resume and the archive use
  -- this, never the file on disk, so they render exactly what went out.
  source       text NOT NULL,
  source_name  text NOT NULL,
  -- Layout templates as they were when the send began (file name -> contents).
  templates    jsonb NOT NULL DEFAULT '{}'::jsonb,
  verp         boolean NOT NULL DEFAULT false,
  sent_date    timestamptz NOT NULL DEFAULT now(),
  created_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);

CREATE TABLE deliveries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bulletin_id      integer NOT NULL REFERENCES bulletins (id) ON DELETE CASCADE,
  -- NULL once the person was erased on request: the delivery keeps no trace of who it was.
  subscriber_id    bigint REFERENCES subscribers (id) ON DELETE SET NULL,
  state            delivery_state NOT NULL DEFAULT 'queued',
  attempts         integer NOT NULL DEFAULT 0,
  owner            text,
  lease_until      timestamptz,
  first_attempt_at timestamptz,
  next_attempt_at  timestamptz,
  message_id       text,
  relay            text,
  last_reply       text,
  sent_at          timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (bulletin_id, subscriber_id)
);
-- Claims walk queued rows by id from a low-water mark; retries come back by due time.
CREATE INDEX deliveries_queued ON deliveries (bulletin_id, id) WHERE state = 'queued';
CREATE INDEX deliveries_due ON deliveries (bulletin_id, next_attempt_at) WHERE state IN ('deferred', 'uncertain');
CREATE INDEX deliveries_sending ON deliveries (bulletin_id, lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id);

-- Down Migration
DROP TABLE deliveries;
DROP TABLE bulletins;
DROP TYPE delivery_state;
