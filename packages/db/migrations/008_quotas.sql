-- Archives were kept forever, failed builds included: five 49 MB junk uploads grew the database
-- from 58 MB to 312 MB. An archive can now be dropped — a failed build's after its retention, a
-- version's past WHARF_KEEP_VERSIONS unless it is pinned or active — while the deployment record
-- and its build log stay.
ALTER TABLE deployments ALTER COLUMN archive DROP NOT NULL;
ALTER TABLE deployments
  ADD COLUMN archive_bytes      integer,
  ADD COLUMN archive_dropped_at timestamptz,
  -- Set by the owner: the archive is kept past WHARF_KEEP_VERSIONS, so a rollback can rebuild it.
  ADD COLUMN pinned             boolean NOT NULL DEFAULT false;
-- What was uploaded, still known once the archive is gone; summed for WHARF_USER_MAX_ARCHIVE_BYTES.
UPDATE deployments SET archive_bytes = octet_length(archive);
ALTER TABLE deployments ALTER COLUMN archive_bytes SET NOT NULL;
ALTER TABLE deployments ADD CONSTRAINT deployments_archive_dropped
  CHECK ((archive IS NULL) = (archive_dropped_at IS NOT NULL));

-- The per-user sums and counts reach a user's deployments through their live functions
-- (functions_user_name_live already indexes functions by user_id):
-- the bytes of archives still stored, read from the index alone,
CREATE INDEX deployments_stored_archives ON deployments (function_id) INCLUDE (archive_bytes) WHERE archive_dropped_at IS NULL;
-- the deployments of the last hour,
CREATE INDEX deployments_function_created ON deployments (function_id, created_at);
-- and, for the retention tick, failed builds whose archive is still stored.
CREATE INDEX deployments_failed_archives ON deployments (finished_at) WHERE status = 'failed' AND archive_dropped_at IS NULL;
