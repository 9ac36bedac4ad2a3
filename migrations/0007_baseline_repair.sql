-- Up Migration
-- Release 0.1.0 declares migrations 0001–0006 as they are now its baseline. Two of them were changed
-- after they had first been applied somewhere; this brings a database migrated with an earlier copy
-- to the baseline (and changes nothing on one migrated with the files as they are):
-- - 0003 gained the archive's kept bodies (archive_html, archive_text);
-- - 0001 lost an index on memberships (list_id, status) that the import's lookups no longer use.

ALTER TABLE bulletins ADD COLUMN IF NOT EXISTS archive_html text, ADD COLUMN IF NOT EXISTS archive_text text;
DROP INDEX IF EXISTS memberships_by_list_status;

-- Down Migration
-- Nothing to undo: the baseline has these columns and no such index.
