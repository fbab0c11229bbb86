-- The UNIQUE (file_hash, namespace) index already serves lookups by file_hash (its leading
-- column); the separate index only slowed every insert.
DROP INDEX IF EXISTS idx_metadata_stamps_file_hash;
