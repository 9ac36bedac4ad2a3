-- Up Migration
-- Every way out (issue 15): links that name the subscription they were made for, bounces that say the
-- relay gave up on a temporary error, the relay's reply kept beside a bounce, and complaints.
--
-- `memberships.resubscriptions` counts the times the membership became active again after leaving
-- (an unsubscribe, a bounce). Unsubscribe links carry it (src/domain/token.ts, version 3); a link made
-- for an earlier count is out of date. Links made before this migration carry none and count as 0, so
-- they keep working until the member's next re-subscription.
ALTER TABLE memberships ADD COLUMN resubscriptions integer NOT NULL DEFAULT 0 CHECK (resubscriptions >= 0);

-- A report saying the relay gave up (Action: failed) may carry a 4.x.x status: a message deferred
-- until it expired (Postfix: 4.2.1, 4.2.2). It is a failure like a 5.x.x one and counts alike.
ALTER TABLE bounces DROP CONSTRAINT bounces_status_check;
ALTER TABLE bounces ADD CONSTRAINT bounces_status_check CHECK (status ~ '^[45]\.[0-9]{1,3}\.[0-9]{1,3}$');

-- A delivery failed by a bounce keeps `last_reply` (the relay's reply when it took the message: its
-- queue id, the way into its log) and gets the bounce's status and diagnostic here.
ALTER TABLE deliveries ADD COLUMN bounce_report text;

-- Feedback-loop reports (ARF, RFC 5965) about our messages: one row per complaint, found by its VERP
-- address or the Message-ID of the returned original; the member is unsubscribed (source 'complaint').
CREATE TABLE complaints (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  list_id             integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
  subscriber_id       bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  delivery_id         bigint REFERENCES deliveries (id) ON DELETE SET NULL,
  bulletin_id         integer REFERENCES bulletins (id) ON DELETE SET NULL,
  -- 'delivery:<id>', else 'message-id:<the report's Message-ID>', else 'sha256:<the report's bytes>'.
  dedup_key           text NOT NULL,
  -- The report's Feedback-Type (abuse, fraud, other, …) and User-Agent.
  feedback_type       text NOT NULL,
  user_agent          text,
  report_message_id   text,
  reported_at         timestamptz,
  recorded_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (list_id, subscriber_id, dedup_key)
);
CREATE INDEX complaints_by_bulletin ON complaints (bulletin_id) WHERE bulletin_id IS NOT NULL;

-- Down Migration
DROP TABLE complaints;
ALTER TABLE deliveries DROP COLUMN bounce_report;
ALTER TABLE bounces DROP CONSTRAINT bounces_status_check;
ALTER TABLE bounces ADD CONSTRAINT bounces_status_check CHECK (status ~ '^5\.[0-9]{1,3}\.[0-9]{1,3}$');
ALTER TABLE memberships DROP COLUMN resubscriptions;
