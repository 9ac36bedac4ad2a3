-- Up Migration
-- Where a hard bounce was learnt: 'report' (a bounce message read by `bulletin bounces process`)
-- or 'smtp' (the relay refused the recipient at RCPT TO saying the mailbox does not exist, during
-- the send). Both count toward the bounce threshold alike.

ALTER TABLE bounces ADD COLUMN source text NOT NULL DEFAULT 'report' CHECK (source IN ('report', 'smtp'));

-- Down Migration
ALTER TABLE bounces DROP COLUMN source;
