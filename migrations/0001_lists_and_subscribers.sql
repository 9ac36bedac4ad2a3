-- Up Migration
-- Lists, subscribers, their memberships, and the suppression list left behind by an erasure.
-- membership_status mirrors MEMBERSHIP_STATUSES in src/domain/membership.ts.

CREATE TYPE membership_status AS ENUM ('active', 'unsubscribed', 'bounced');

CREATE TABLE lists (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name           text NOT NULL CHECK (name <> ''),
  description    text NOT NULL DEFAULT '',
  address        text NOT NULL,
  from_name      text NOT NULL DEFAULT '',
  from_address   text NOT NULL,
  base_url       text NOT NULL,
  subject_prefix text,
  bounce_address text,
  templates_dir  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per person, whatever lists they are on. `email` is normalised (lower case, punycode).
CREATE TABLE subscribers (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email      text NOT NULL UNIQUE,
  name       text,
  attributes jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
  list_id           integer NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
  subscriber_id     bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  status            membership_status NOT NULL DEFAULT 'active',
  subscribed_at     timestamptz NOT NULL DEFAULT now(),
  subscribed_source text NOT NULL,
  status_changed_at timestamptz NOT NULL DEFAULT now(),
  status_source     text NOT NULL,
  PRIMARY KEY (list_id, subscriber_id)
);
CREATE INDEX memberships_by_subscriber ON memberships (subscriber_id);

-- What an erasure (`subscribers remove --purge`) keeps: a SHA-256 of the normalised address, so the
-- person is never mailed or imported again, and nothing else about them.
CREATE TABLE suppressions (
  email_sha256 bytea PRIMARY KEY,
  reason       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE suppressions;
DROP TABLE memberships;
DROP TABLE subscribers;
DROP TABLE lists;
DROP TYPE membership_status;
