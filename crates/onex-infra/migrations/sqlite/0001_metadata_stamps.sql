-- Metadata stamps, looked up by content hash; one per (file_hash, namespace).
-- `stamp` is JSON text; `created_at` is UTC `YYYY-MM-DD HH:MM:SS`.
CREATE TABLE metadata_stamps (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    file_hash    TEXT    NOT NULL,
    file_path    TEXT    NULL,
    file_size    BIGINT  NOT NULL,
    content_type TEXT    NOT NULL,
    stamp        TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    created_at   TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (file_hash, namespace)
);

CREATE INDEX idx_metadata_stamps_file_hash ON metadata_stamps (file_hash);
