//! The shared store logic's statements in PostgreSQL's dialect. Every statement binds the same
//! parameters in the same order as its SQLite twin (see [`super::sqlite`]); JSON and UUID
//! columns are read as text, so both dialects return the same row types. Times are `now()`.

/// `$1` envelope id, `$2` fsm, `$3` entity key: its recorded reply (JSON text) and the
/// entity's state and version, in one round trip.
pub(crate) const LOAD_FOR_EVENT: &str = "SELECT (SELECT reply::text FROM onex_processed WHERE envelope_id = $1::uuid), \
     s.state, s.version FROM (SELECT 1) AS one \
     LEFT JOIN onex_fsm_state s ON s.fsm = $2 AND s.entity_key = $3";

/// `$1` owner, `$2` lease in ms, `$3` limit.
pub(crate) const CLAIM_OUTBOX: &str = "UPDATE onex_outbox o \
     SET claimed_by = $1, claimed_until = now() + $2::bigint * interval '1 millisecond' \
     FROM (SELECT id FROM onex_outbox \
           WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now()) \
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) c \
     WHERE o.id = c.id \
     RETURNING o.id, o.topic, o.message_key, o.payload, o.headers::text";

/// `$1` limit.
pub(crate) const SELECT_PENDING: &str = "SELECT id, topic, message_key, payload, headers::text FROM onex_outbox \
     WHERE published_at IS NULL ORDER BY id LIMIT $1";

pub(crate) const COUNT_PENDING: &str = "SELECT COUNT(*) FROM onex_outbox WHERE published_at IS NULL";

/// `$1` the ids as a JSON array.
pub(crate) const MARK_PUBLISHED: &str = "UPDATE onex_outbox SET published_at = now() \
     WHERE published_at IS NULL AND id IN (SELECT jsonb_array_elements_text($1::jsonb)::int8)";

/// `$1` run id, `$2` workflow, `$3` trigger (JSON text), `$4` owner, `$5` lease in ms.
pub(crate) const INSERT_RUN: &str = "INSERT INTO onex_workflow_runs \
         (run_id, workflow, trigger, status, owner, lease_until) \
     VALUES ($1::uuid, $2, $3::jsonb, 'running', $4, now() + $5::bigint * interval '1 millisecond') \
     ON CONFLICT (run_id) DO NOTHING";

/// `$1` run id, `$2` owner, `$3` lease in ms.
pub(crate) const RENEW_RUN: &str = "UPDATE onex_workflow_runs \
     SET lease_until = now() + $3::bigint * interval '1 millisecond' \
     WHERE run_id = $1::uuid AND owner = $2 AND status = 'running'";

/// The columns of a run row, JSON and UUID as text.
macro_rules! run_columns {
    () => {
        "run_id::text, workflow, trigger::text, status, owner"
    };
}

/// `$1` run id, `$2` owner, `$3` lease in ms.
pub(crate) const TAKE_OVER_RUN: &str = concat!(
    "UPDATE onex_workflow_runs \
     SET owner = $2, lease_until = now() + $3::bigint * interval '1 millisecond', updated_at = now() \
     WHERE run_id = $1::uuid AND status = 'running' \
       AND (owner = $2 OR lease_until IS NULL OR lease_until < now()) \
     RETURNING ",
    run_columns!()
);

/// `$1` owner, `$2` lease in ms, `$3` limit; the expired runs.
pub(crate) const TAKE_OVER_EXPIRED: &str = concat!(
    "UPDATE onex_workflow_runs r \
     SET owner = $1, lease_until = now() + $2::bigint * interval '1 millisecond', updated_at = now() \
     FROM (SELECT run_id AS picked FROM onex_workflow_runs \
           WHERE status = 'running' AND (lease_until IS NULL OR lease_until < now()) \
           ORDER BY created_at, run_id LIMIT $3 FOR UPDATE SKIP LOCKED) t \
     WHERE r.run_id = t.picked RETURNING ",
    run_columns!()
);

/// `$1` owner, `$2` lease in ms, `$3` limit; every running run.
pub(crate) const TAKE_OVER_ALL: &str = concat!(
    "UPDATE onex_workflow_runs r \
     SET owner = $1, lease_until = now() + $2::bigint * interval '1 millisecond', updated_at = now() \
     FROM (SELECT run_id AS picked FROM onex_workflow_runs WHERE status = 'running' \
           ORDER BY created_at, run_id LIMIT $3 FOR UPDATE SKIP LOCKED) t \
     WHERE r.run_id = t.picked RETURNING ",
    run_columns!()
);

/// `$1` run id, `$2` owner, `$3` entry (JSON text): the append in one round trip. Takes the
/// run's next `seq` (waiting for any other append to the run to commit) and inserts the entry
/// with it; inserts nothing when the run is not running under `owner`.
pub(crate) const APPEND_IN_ONE_STATEMENT: Option<&str> = Some(
    "WITH next AS ( \
         UPDATE onex_workflow_runs SET journal_len = journal_len + 1, updated_at = now() \
         WHERE run_id = $1::uuid AND owner = $2 AND status = 'running' RETURNING run_id, journal_len) \
     INSERT INTO onex_workflow_journal (run_id, seq, entry) SELECT run_id, journal_len, $3::jsonb FROM next",
);

/// (Unused on PostgreSQL, which appends in one statement; kept so both dialects name the same
/// statements.) `$1` run id, `$2` owner: the run's next journal `seq`, waiting for any other append to the
/// run to commit; no row when the run is not running under `owner`.
pub(crate) const NEXT_SEQ: &str = "UPDATE onex_workflow_runs \
     SET journal_len = journal_len + 1, updated_at = now() \
     WHERE run_id = $1::uuid AND owner = $2 AND status = 'running' RETURNING journal_len";

/// `$1` run id, `$2` seq, `$3` entry (JSON text).
pub(crate) const INSERT_JOURNAL: &str =
    "INSERT INTO onex_workflow_journal (run_id, seq, entry) VALUES ($1::uuid, $2, $3::jsonb)";

/// `$1` run id.
pub(crate) const SELECT_JOURNAL: &str =
    "SELECT seq, entry::text FROM onex_workflow_journal WHERE run_id = $1::uuid ORDER BY seq";

/// `$1` run id, `$2` owner, `$3` status.
pub(crate) const FINISH_RUN: &str = "UPDATE onex_workflow_runs \
     SET status = $3, lease_until = NULL, updated_at = now() \
     WHERE run_id = $1::uuid AND owner = $2 AND status = 'running'";

/// `$1` run id.
pub(crate) const SELECT_RUN: &str =
    concat!("SELECT ", run_columns!(), " FROM onex_workflow_runs WHERE run_id = $1::uuid");

/// `$1` age in ms, `$2` limit.
pub(crate) const PRUNE_PROCESSED: &str = "DELETE FROM onex_processed WHERE envelope_id IN \
     (SELECT envelope_id FROM onex_processed \
      WHERE created_at < now() - $1::bigint * interval '1 millisecond' LIMIT $2)";

/// `$1` age in ms, `$2` limit.
pub(crate) const PRUNE_OUTBOX: &str = "DELETE FROM onex_outbox WHERE id IN \
     (SELECT id FROM onex_outbox \
      WHERE published_at < now() - $1::bigint * interval '1 millisecond' ORDER BY published_at LIMIT $2)";

/// `$1` age in ms, `$2` limit; the journals of the runs [`PRUNE_RUNS`] removes.
pub(crate) const PRUNE_JOURNAL: &str = "DELETE FROM onex_workflow_journal WHERE run_id IN \
     (SELECT run_id FROM onex_workflow_runs \
      WHERE status <> 'running' AND updated_at < now() - $1::bigint * interval '1 millisecond' \
      ORDER BY updated_at, run_id LIMIT $2)";

/// `$1` age in ms, `$2` limit.
pub(crate) const PRUNE_RUNS: &str = "DELETE FROM onex_workflow_runs WHERE run_id IN \
     (SELECT run_id FROM onex_workflow_runs \
      WHERE status <> 'running' AND updated_at < now() - $1::bigint * interval '1 millisecond' \
      ORDER BY updated_at, run_id LIMIT $2)";

pub(crate) const ROW_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM onex_processed), \
     (SELECT COUNT(*) FROM onex_outbox), (SELECT COUNT(*) FROM onex_workflow_runs), \
     (SELECT COUNT(*) FROM onex_workflow_journal)";

/// `$1` fsm: `(state, count)` of its entities.
pub(crate) const STATE_COUNTS: &str =
    "SELECT state, COUNT(*) FROM onex_fsm_state WHERE fsm = $1 GROUP BY state ORDER BY state";

/// `$1` limit: the latest runs, newest first.
pub(crate) const RECENT_RUNS: &str =
    concat!("SELECT ", run_columns!(), " FROM onex_workflow_runs ORDER BY created_at DESC, run_id DESC LIMIT $1");
