CREATE INDEX IF NOT EXISTS onex_header_by_record ON header (topition, offset_id);
