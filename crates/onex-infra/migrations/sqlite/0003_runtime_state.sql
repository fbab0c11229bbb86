-- The host's durable runtime state: reducer state with its outbox, idempotency records, and
-- workflow runs with their journals. JSON columns hold JSON text, UUIDs lowercase hyphenated
-- text, timestamps UTC `YYYY-MM-DD HH:MM:SS`.

-- The current state of every entity of every state machine. `version` counts committed
-- transitions (optimistic concurrency; a new entity starts at 1). Workflow contracts read it
-- with `SELECT entity_key, state FROM onex_fsm_state WHERE fsm = ?` (the primary key's
-- leading column), so these names are part of the contract surface.
CREATE TABLE onex_fsm_state (
    fsm        TEXT   NOT NULL,
    entity_key TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TEXT   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (fsm, entity_key)
) WITHOUT ROWID;

-- Messages committed with a transition, waiting to be published; `id` orders them (and is
-- never reused, so the oldest pending message always has the lowest id).
CREATE TABLE onex_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT    NOT NULL,
    message_key  TEXT    NULL,
    payload      BLOB    NOT NULL,
    headers      TEXT    NOT NULL,
    created_at   TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    published_at TEXT    NULL
);

-- The relay's query (`WHERE published_at IS NULL ORDER BY id`) reads only pending rows.
CREATE INDEX idx_onex_outbox_unpublished ON onex_outbox (id) WHERE published_at IS NULL;

-- Envelopes already processed (idempotency): a row means "done". `reply` is the JSON reply of
-- an envelope that changed no reducer state, JSON `null` for a committed transition.
CREATE TABLE onex_processed (
    envelope_id TEXT NOT NULL PRIMARY KEY,
    reply       TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
) WITHOUT ROWID;

-- Workflow runs. `journal_len` is the number of journal entries, i.e. the `seq` of the last
-- one: appending bumps it and uses the new value, so concurrent appends to one run serialize
-- on the run's row and never pick the same `seq`.
CREATE TABLE onex_workflow_runs (
    run_id      TEXT   NOT NULL PRIMARY KEY,
    workflow    TEXT   NOT NULL,
    trigger     TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    journal_len BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  TEXT   NOT NULL DEFAULT CURRENT_TIMESTAMP
) WITHOUT ROWID;

-- Runs to resume after a restart.
CREATE INDEX idx_onex_workflow_runs_running ON onex_workflow_runs (created_at) WHERE status = 'running';

-- One line per step outcome of a run, `seq` from 1 in append order.
CREATE TABLE onex_workflow_journal (
    run_id     TEXT   NOT NULL REFERENCES onex_workflow_runs (run_id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    entry      TEXT   NOT NULL,
    created_at TEXT   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
