-- Up Migration
-- One installation per database, whichever machine or working directory bulletin runs in, and
-- deliveries whose copy may already have reached the receiver.
--
-- `installation` has one row: the id that sets this installation's Message-IDs and links apart
-- from every other's (even one sharing its secret), and the secret that signs its links when
-- BULLETIN_SECRET is not set. Both are filled in by the first command that needs them, in one
-- statement (src/store/installation.ts); `legacy_links` says whether the database was in use before
-- (it had lists), so links signed the old way, without the id, may be in mail already sent.
CREATE TABLE installation (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  id           uuid,
  secret       text CHECK (secret <> ''),
  legacy_links boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation (legacy_links) SELECT EXISTS (SELECT 1 FROM lists);

-- Secrets found in `.bulletin/secret` files (where earlier versions kept one per working directory)
-- other than the installation's: links signed with them the old way still verify.
CREATE TABLE adopted_secrets (
  secret     text PRIMARY KEY CHECK (secret <> ''),
  adopted_at timestamptz NOT NULL DEFAULT now()
);

-- How a bulletin's Message-IDs are made: 1 from the secret alone (bulletins begun before this
-- migration keep it, so their retries keep their Message-IDs), 2 with the installation id too.
ALTER TABLE bulletins ADD COLUMN message_id_version smallint NOT NULL DEFAULT 1;
ALTER TABLE bulletins ALTER COLUMN message_id_version SET DEFAULT 2;

-- Set when a delivery became uncertain (its sender stopped while it was in flight, or the relay's
-- answer never came): a copy may have arrived, so any later one may be a second.
ALTER TABLE deliveries ADD COLUMN in_doubt boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE deliveries DROP COLUMN in_doubt;
ALTER TABLE bulletins DROP COLUMN message_id_version;
DROP TABLE adopted_secrets;
DROP TABLE installation;
