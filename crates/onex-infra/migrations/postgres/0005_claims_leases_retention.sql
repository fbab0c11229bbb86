-- Several hosts on one database: an outbox row is claimed by one relay at a time, a workflow
-- run is driven by the one host holding its lease, and finished records are swept after their
-- retention. Times are the server's clock (`now()`), so hosts need not agree on theirs.

-- Who is publishing a row, and until when; an expired claim may be taken by another relay.
ALTER TABLE onex_outbox ADD COLUMN claimed_by TEXT NULL;
ALTER TABLE onex_outbox ADD COLUMN claimed_until TIMESTAMPTZ NULL;

-- Published rows by age, for the retention sweep.
CREATE INDEX idx_onex_outbox_published ON onex_outbox (published_at) WHERE published_at IS NOT NULL;

-- Idempotency records by age, for the retention sweep.
CREATE INDEX idx_onex_processed_created ON onex_processed (created_at);

-- The host driving a run and until when its lease lasts (renewed while it drives the run).
-- A run whose lease expired (or that has none, started before this migration) is taken over.
ALTER TABLE onex_workflow_runs ADD COLUMN owner TEXT NULL;
ALTER TABLE onex_workflow_runs ADD COLUMN lease_until TIMESTAMPTZ NULL;

-- Finished runs by age, for the retention sweep.
CREATE INDEX idx_onex_workflow_runs_finished ON onex_workflow_runs (updated_at) WHERE status <> 'running';
