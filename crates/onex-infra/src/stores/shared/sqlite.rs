//! The shared store logic's statements in SQLite's dialect: the same parameters in the same
//! order as their PostgreSQL twins (see [`super::postgres`]). Lease times are milliseconds
//! since the Unix epoch; `created_at`/`updated_at`/`published_at` are `CURRENT_TIMESTAMP` text,
//! compared with `datetime('now', …)` text of the same form.

/// Now, in milliseconds since the Unix epoch.
macro_rules! now_ms {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
}

/// `?1` envelope id, `?2` fsm, `?3` entity key: its recorded reply (JSON text) and the
/// entity's state and version.
pub(crate) const LOAD_FOR_EVENT: &str = "SELECT (SELECT reply FROM onex_processed WHERE envelope_id = ?1), \
     s.state, s.version FROM (SELECT 1) AS one \
     LEFT JOIN onex_fsm_state s ON s.fsm = ?2 AND s.entity_key = ?3";

/// `CURRENT_TIMESTAMP` text of the moment `?1` milliseconds ago.
macro_rules! age_ago {
    () => {
        "datetime('now', printf('-%.3f seconds', ?1 / 1000.0))"
    };
}

/// The columns of a run row.
macro_rules! run_columns {
    () => {
        "run_id, workflow, trigger, status, owner"
    };
}

/// `?1` owner, `?2` lease in ms, `?3` limit.
pub(crate) const CLAIM_OUTBOX: &str = concat!(
    "UPDATE onex_outbox SET claimed_by = ?1, claimed_until = ",
    now_ms!(),
    " + ?2 WHERE id IN (SELECT id FROM onex_outbox \
       WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < ",
    now_ms!(),
    ") ORDER BY id LIMIT ?3) RETURNING id, topic, message_key, payload, headers"
);

/// `?1` limit.
pub(crate) const SELECT_PENDING: &str = "SELECT id, topic, message_key, payload, headers FROM onex_outbox \
     WHERE published_at IS NULL ORDER BY id LIMIT ?1";

pub(crate) const COUNT_PENDING: &str = "SELECT COUNT(*) FROM onex_outbox WHERE published_at IS NULL";

/// `?1` the ids as a JSON array.
pub(crate) const MARK_PUBLISHED: &str = "UPDATE onex_outbox SET published_at = CURRENT_TIMESTAMP \
     WHERE published_at IS NULL AND id IN (SELECT value FROM json_each(?1))";

/// `?1` run id, `?2` workflow, `?3` trigger (JSON text), `?4` owner, `?5` lease in ms.
pub(crate) const INSERT_RUN: &str = concat!(
    "INSERT INTO onex_workflow_runs (run_id, workflow, trigger, status, owner, lease_until) \
     VALUES (?1, ?2, ?3, 'running', ?4, ",
    now_ms!(),
    " + ?5) ON CONFLICT (run_id) DO NOTHING"
);

/// `?1` run id, `?2` owner, `?3` lease in ms.
pub(crate) const RENEW_RUN: &str = concat!(
    "UPDATE onex_workflow_runs SET lease_until = ",
    now_ms!(),
    " + ?3 WHERE run_id = ?1 AND owner = ?2 AND status = 'running'"
);

/// `?1` run id, `?2` owner, `?3` lease in ms.
pub(crate) const TAKE_OVER_RUN: &str = concat!(
    "UPDATE onex_workflow_runs SET owner = ?2, lease_until = ",
    now_ms!(),
    " + ?3, updated_at = CURRENT_TIMESTAMP WHERE run_id = ?1 AND status = 'running' \
       AND (owner = ?2 OR lease_until IS NULL OR lease_until < ",
    now_ms!(),
    ") RETURNING ",
    run_columns!()
);

/// `?1` owner, `?2` lease in ms, `?3` limit; the expired runs.
pub(crate) const TAKE_OVER_EXPIRED: &str = concat!(
    "UPDATE onex_workflow_runs SET owner = ?1, lease_until = ",
    now_ms!(),
    " + ?2, updated_at = CURRENT_TIMESTAMP WHERE run_id IN (SELECT run_id FROM onex_workflow_runs \
       WHERE status = 'running' AND (lease_until IS NULL OR lease_until < ",
    now_ms!(),
    ") ORDER BY created_at, run_id LIMIT ?3) RETURNING ",
    run_columns!()
);

/// `?1` owner, `?2` lease in ms, `?3` limit; every running run.
pub(crate) const TAKE_OVER_ALL: &str = concat!(
    "UPDATE onex_workflow_runs SET owner = ?1, lease_until = ",
    now_ms!(),
    " + ?2, updated_at = CURRENT_TIMESTAMP WHERE run_id IN (SELECT run_id FROM onex_workflow_runs \
       WHERE status = 'running' ORDER BY created_at, run_id LIMIT ?3) RETURNING ",
    run_columns!()
);

/// SQLite has no `UPDATE` inside `WITH`: an append is [`NEXT_SEQ`] then [`INSERT_JOURNAL`] in one
/// transaction (in process, so the two statements cost no extra round trip).
pub(crate) const APPEND_IN_ONE_STATEMENT: Option<&str> = None;

/// `?1` run id, `?2` owner: the run's next journal `seq`; no row when the run is not running
/// under `owner`.
pub(crate) const NEXT_SEQ: &str = "UPDATE onex_workflow_runs \
     SET journal_len = journal_len + 1, updated_at = CURRENT_TIMESTAMP \
     WHERE run_id = ?1 AND owner = ?2 AND status = 'running' RETURNING journal_len";

/// `?1` run id, `?2` seq, `?3` entry (JSON text).
pub(crate) const INSERT_JOURNAL: &str = "INSERT INTO onex_workflow_journal (run_id, seq, entry) VALUES (?1, ?2, ?3)";

/// `?1` run id.
pub(crate) const SELECT_JOURNAL: &str = "SELECT seq, entry FROM onex_workflow_journal WHERE run_id = ?1 ORDER BY seq";

/// `?1` run id, `?2` owner, `?3` status.
pub(crate) const FINISH_RUN: &str = "UPDATE onex_workflow_runs \
     SET status = ?3, lease_until = NULL, updated_at = CURRENT_TIMESTAMP \
     WHERE run_id = ?1 AND owner = ?2 AND status = 'running'";

/// `?1` run id.
pub(crate) const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM onex_workflow_runs WHERE run_id = ?1");

/// `?1` age in ms, `?2` limit.
pub(crate) const PRUNE_PROCESSED: &str = concat!(
    "DELETE FROM onex_processed WHERE envelope_id IN (SELECT envelope_id FROM onex_processed WHERE created_at < ",
    age_ago!(),
    " LIMIT ?2)"
);

/// `?1` age in ms, `?2` limit.
pub(crate) const PRUNE_OUTBOX: &str = concat!(
    "DELETE FROM onex_outbox WHERE id IN (SELECT id FROM onex_outbox WHERE published_at < ",
    age_ago!(),
    " ORDER BY published_at LIMIT ?2)"
);

/// `?1` age in ms, `?2` limit; the journals of the runs [`PRUNE_RUNS`] removes.
pub(crate) const PRUNE_JOURNAL: &str = concat!(
    "DELETE FROM onex_workflow_journal WHERE run_id IN (SELECT run_id FROM onex_workflow_runs \
       WHERE status <> 'running' AND updated_at < ",
    age_ago!(),
    " ORDER BY updated_at, run_id LIMIT ?2)"
);

/// `?1` age in ms, `?2` limit.
pub(crate) const PRUNE_RUNS: &str = concat!(
    "DELETE FROM onex_workflow_runs WHERE run_id IN (SELECT run_id FROM onex_workflow_runs \
       WHERE status <> 'running' AND updated_at < ",
    age_ago!(),
    " ORDER BY updated_at, run_id LIMIT ?2)"
);

pub(crate) const ROW_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM onex_processed), \
     (SELECT COUNT(*) FROM onex_outbox), (SELECT COUNT(*) FROM onex_workflow_runs), \
     (SELECT COUNT(*) FROM onex_workflow_journal)";

/// `?1` fsm: `(state, count)` of its entities.
pub(crate) const STATE_COUNTS: &str =
    "SELECT state, COUNT(*) FROM onex_fsm_state WHERE fsm = ?1 GROUP BY state ORDER BY state";

/// `?1` limit: the latest runs, newest first.
pub(crate) const RECENT_RUNS: &str =
    concat!("SELECT ", run_columns!(), " FROM onex_workflow_runs ORDER BY created_at DESC, run_id DESC LIMIT ?1");
