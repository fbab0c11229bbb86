-- Metadata stamps, looked up by content hash; one per (file_hash, namespace).
CREATE TABLE metadata_stamps (
    id           BIGSERIAL   PRIMARY KEY,
    file_hash    TEXT        NOT NULL,
    file_path    TEXT        NULL,
    file_size    BIGINT      NOT NULL,
    content_type TEXT        NOT NULL,
    stamp        JSONB       NOT NULL,
    namespace    TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (file_hash, namespace)
);

CREATE INDEX idx_metadata_stamps_file_hash ON metadata_stamps (file_hash);
