-- The host's durable runtime state: reducer state with its outbox, idempotency records, and
-- workflow runs with their journals.

-- The current state of every entity of every state machine. `version` counts committed
-- transitions (optimistic concurrency; a new entity starts at 1). Workflow contracts read it
-- with `SELECT entity_key, state FROM onex_fsm_state WHERE fsm = $1` (the primary key's
-- leading column), so these names are part of the contract surface.
CREATE TABLE onex_fsm_state (
    fsm        TEXT        NOT NULL,
    entity_key TEXT        NOT NULL,
    state      TEXT        NOT NULL,
    version    BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (fsm, entity_key)
);

-- Messages committed with a transition, waiting to be published; `id` orders them.
CREATE TABLE onex_outbox (
    id           BIGSERIAL   PRIMARY KEY,
    topic        TEXT        NOT NULL,
    message_key  TEXT        NULL,
    payload      BYTEA       NOT NULL,
    headers      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ NULL
);

-- The relay's query (`WHERE published_at IS NULL ORDER BY id`) reads only pending rows.
CREATE INDEX idx_onex_outbox_unpublished ON onex_outbox (id) WHERE published_at IS NULL;

-- Envelopes already processed (idempotency): a row means "done". `reply` is the reply of an
-- envelope that changed no reducer state, JSON `null` for a committed transition.
CREATE TABLE onex_processed (
    envelope_id UUID        PRIMARY KEY,
    reply       JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Workflow runs. `journal_len` is the number of journal entries, i.e. the `seq` of the last
-- one: appending bumps it and uses the new value, so concurrent appends to one run serialize
-- on the run's row and never pick the same `seq`.
CREATE TABLE onex_workflow_runs (
    run_id      UUID        PRIMARY KEY,
    workflow    TEXT        NOT NULL,
    trigger     JSONB       NOT NULL,
    status      TEXT        NOT NULL,
    journal_len BIGINT      NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Runs to resume after a restart.
CREATE INDEX idx_onex_workflow_runs_running ON onex_workflow_runs (created_at) WHERE status = 'running';

-- One line per step outcome of a run, `seq` from 1 in append order.
CREATE TABLE onex_workflow_journal (
    run_id     UUID        NOT NULL REFERENCES onex_workflow_runs (run_id) ON DELETE CASCADE,
    seq        BIGINT      NOT NULL,
    entry      JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
