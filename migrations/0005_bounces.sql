-- Up Migration
-- Hard bounces, one row each, counted per (list, subscriber) toward the bounce threshold
-- (`bulletin bounces process`); and finding the delivery a bounce quotes by its Message-ID.

CREATE TABLE bounces (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  list_id             integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
  -- An erasure removes the person's bounces with them.
  subscriber_id       bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  -- The delivery the bounce is about, when its original Message-ID was found.
  delivery_id         bigint REFERENCES deliveries (id) ON DELETE SET NULL,
  -- What makes two bounces the same one, so processing a file again counts nothing twice:
  -- 'delivery:<id>' (one bounce per message sent), else 'message-id:<the bounce's Message-ID>',
  -- else 'sha256:<the bounce's bytes>'.
  dedup_key           text NOT NULL,
  status              text NOT NULL CHECK (status ~ '^5\.[0-9]{1,3}\.[0-9]{1,3}$'),
  diagnostic          text NOT NULL DEFAULT '',
  original_message_id text,
  bounce_message_id   text,
  -- The bounce's Date header; recorded_at is when bulletin read it.
  reported_at         timestamptz,
  recorded_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (list_id, subscriber_id, dedup_key)
);

CREATE INDEX deliveries_by_message_id ON deliveries (message_id) WHERE message_id IS NOT NULL;

-- Down Migration
DROP INDEX deliveries_by_message_id;
DROP TABLE bounces;
