-- Up Migration
-- Each bulletin's number in its list's web archive (NNNNNN.html): given once, at the first export
-- after its send started, in order of sending, and never changed, so archive links stay valid.

ALTER TABLE bulletins ADD COLUMN archive_number integer;
CREATE UNIQUE INDEX bulletins_archive_number ON bulletins (list_id, archive_number);

-- Down Migration
DROP INDEX bulletins_archive_number;
ALTER TABLE bulletins DROP COLUMN archive_number;
