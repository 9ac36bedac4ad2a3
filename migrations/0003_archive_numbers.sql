-- Up Migration
-- The web archive. Each bulletin's number in its list's archive (NNNNNN.html): given once, at the first export
-- after its send started, in order of sending, and never changed, so archive links stay valid.

ALTER TABLE bulletins ADD COLUMN archive_number integer;
CREATE UNIQUE INDEX bulletins_archive_number ON bulletins (list_id, archive_number);
-- The body as the archive shows it (rendered for no recipient, without the mail layout), kept when
-- the send starts: a bulletin never changes once sent, so the archive need not render it again.
ALTER TABLE bulletins ADD COLUMN archive_html text, ADD COLUMN archive_text text;

-- Down Migration
ALTER TABLE bulletins DROP COLUMN archive_html, DROP COLUMN archive_text;
DROP INDEX bulletins_archive_number;
ALTER TABLE bulletins DROP COLUMN archive_number;
