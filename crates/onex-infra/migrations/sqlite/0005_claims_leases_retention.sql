-- Outbox claims, workflow run leases and retention, as in the PostgreSQL schema. Lease times
-- are milliseconds since the Unix epoch (INTEGER), which SQLite compares exactly.

ALTER TABLE onex_outbox ADD COLUMN claimed_by TEXT NULL;
ALTER TABLE onex_outbox ADD COLUMN claimed_until INTEGER NULL;

CREATE INDEX idx_onex_outbox_published ON onex_outbox (published_at) WHERE published_at IS NOT NULL;

CREATE INDEX idx_onex_processed_created ON onex_processed (created_at);

ALTER TABLE onex_workflow_runs ADD COLUMN owner TEXT NULL;
ALTER TABLE onex_workflow_runs ADD COLUMN lease_until INTEGER NULL;

CREATE INDEX idx_onex_workflow_runs_finished ON onex_workflow_runs (updated_at) WHERE status <> 'running';
