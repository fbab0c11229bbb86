//! `SqliteStateStore`: the host's durable state in one SQLite file (WAL journal): reducer state
//! with its outbox, idempotency records, workflow runs and journals. JSON is kept as text,
//! UUIDs as hyphenated text.
//!
//! SQLite has one writer at a time. Every writing transaction here starts with a write, so it
//! takes the write lock first (waiting up to the busy timeout) and everything it reads after
//! that is current: two commits for one entity run one after the other, and the second sees the
//! first's version. A batch (`commit_transitions`) is one such transaction, one fsync, with a
//! SAVEPOINT per commit that is rolled back when the commit is a duplicate or refused.
//!
//! `onex_processed.reply` holds every processed envelope's reply, a committed transition's
//! included (the migration's comment predates that; migrations are checksummed, so it stays).

use std::path::Path;

use async_trait::async_trait;
use onex_spi::{CommitOutcome, EntityState, SpiResult, StateStore, TransitionCommit};
use serde_json::Value as Json;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use uuid::Uuid;

use super::error::store_error;
use super::pools::{Durability, open_sqlite};
use super::state_rows::{db_version, headers_json, parse_json, stored_u64, version_conflict};

const SELECT_STATE: &str = "SELECT state, version FROM onex_fsm_state WHERE fsm = ?1 AND entity_key = ?2";

/// Records an envelope as processed unless it is already (then nothing changes).
const INSERT_PROCESSED: &str =
    "INSERT INTO onex_processed (envelope_id, reply) VALUES (?1, ?2) ON CONFLICT (envelope_id) DO NOTHING";

/// A new entity's first state; no row when the entity exists.
const INSERT_STATE: &str = "INSERT INTO onex_fsm_state (fsm, entity_key, state, version) VALUES (?1, ?2, ?3, 1) \
     ON CONFLICT (fsm, entity_key) DO NOTHING RETURNING version";

/// The next state of an entity at version `?4`; no row when it is at another version.
const UPDATE_STATE: &str = "UPDATE onex_fsm_state \
     SET state = ?3, version = version + 1, updated_at = CURRENT_TIMESTAMP \
     WHERE fsm = ?1 AND entity_key = ?2 AND version = ?4 RETURNING version";

const SELECT_VERSION: &str = "SELECT version FROM onex_fsm_state WHERE fsm = ?1 AND entity_key = ?2";

const INSERT_OUTBOX: &str = "INSERT INTO onex_outbox (topic, message_key, payload, headers) VALUES (?1, ?2, ?3, ?4)";

const SELECT_REPLY: &str = "SELECT reply FROM onex_processed WHERE envelope_id = ?1";

/// The durable state of a host in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStateStore {
    pool: SqlitePool,
    /// Claims, marks, leases and sweeps: commits that may be lost (see
    /// [`super::pools::bookkeeping_sqlite`]).
    bookkeeping: SqlitePool,
}

impl SqliteStateStore {
    /// Opens (creating it and its parent directories if missing) the database file at `path`
    /// and brings its schema up to date.
    ///
    /// Every commit waits for the disk (WAL, `synchronous = FULL`): a committed transition
    /// lets the bus forget its input, so not even a power loss may take it back.
    pub async fn open(path: &Path) -> SpiResult<Self> {
        open_sqlite(path, "the SQLite state store", Durability::EveryCommit).await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_sqlite`]).
    pub fn from_pool(pool: SqlitePool) -> Self {
        let bookkeeping = super::pools::bookkeeping_sqlite(&pool);
        Self { pool, bookkeeping }
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.bookkeeping.close().await;
        self.pool.close().await;
    }
}

/// Writes `commit` in the transaction (or savepoint) `conn` is in: the idempotency record with
/// the reply, the state at its next version and the outbox. Leaves the writes for the caller to
/// keep only on [`CommitOutcome::Committed`]: after a duplicate or an error it must roll back.
async fn write_transition(conn: &mut SqliteConnection, commit: &TransitionCommit) -> SpiResult<CommitOutcome> {
    let err = |e| store_error("committing a transition", e);
    let expected = commit.expected_version.map(db_version).transpose()?;
    let recorded = sqlx::query(INSERT_PROCESSED)
        .bind(commit.envelope_id.to_string())
        .bind(commit.reply.to_string())
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    if recorded.rows_affected() == 0 {
        return Ok(CommitOutcome::Duplicate);
    }
    let query = match expected {
        None => sqlx::query_scalar(INSERT_STATE).bind(&commit.fsm).bind(&commit.entity_key).bind(&commit.state),
        Some(v) => {
            sqlx::query_scalar(UPDATE_STATE).bind(&commit.fsm).bind(&commit.entity_key).bind(&commit.state).bind(v)
        }
    };
    let written: Option<i64> = query.fetch_optional(&mut *conn).await.map_err(err)?;
    let Some(version) = written else {
        let found: Option<i64> = sqlx::query_scalar(SELECT_VERSION)
            .bind(&commit.fsm)
            .bind(&commit.entity_key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
        return Err(version_conflict(commit, found));
    };
    for message in &commit.outbox {
        sqlx::query(INSERT_OUTBOX)
            .bind(&message.topic)
            .bind(message.key.as_deref())
            .bind(&message.payload[..])
            .bind(headers_json(&message.headers).to_string())
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    Ok(CommitOutcome::Committed { version: stored_u64(version, "version")? })
}

/// Ends a transaction without committing it. Its writes are discarded whatever happens: a
/// failed rollback only means the connection is gone, taking the transaction with it.
async fn discard(tx: Transaction<'_, Sqlite>) {
    let _rolled_back = tx.rollback().await;
}

#[async_trait]
impl StateStore for SqliteStateStore {
    async fn load_state(&self, fsm: &str, entity_key: &str) -> SpiResult<Option<EntityState>> {
        let row: Option<(String, i64)> = sqlx::query_as(SELECT_STATE)
            .bind(fsm)
            .bind(entity_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error("loading an entity's state", e))?;
        let Some((state, version)) = row else { return Ok(None) };
        let version = stored_u64(version, "version")?;
        Ok(Some(EntityState { fsm: fsm.to_owned(), entity_key: entity_key.to_owned(), state, version }))
    }

    async fn load_for_event(
        &self,
        envelope_id: Uuid,
        fsm: &str,
        entity_key: &str,
    ) -> SpiResult<(Option<Json>, Option<EntityState>)> {
        self.load_for_event_row(envelope_id, fsm, entity_key).await
    }

    async fn commit_transition(&self, commit: TransitionCommit) -> SpiResult<CommitOutcome> {
        let err = |e| store_error("committing a transition", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let outcome = write_transition(&mut tx, &commit).await;
        if let Ok(CommitOutcome::Committed { .. }) = outcome {
            tx.commit().await.map_err(err)?;
        } else {
            discard(tx).await;
        }
        outcome
    }

    async fn commit_transitions(&self, commits: Vec<TransitionCommit>) -> SpiResult<Vec<SpiResult<CommitOutcome>>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        self.commit_with_savepoints(&commits).await
    }

    async fn processed_reply(&self, envelope_id: Uuid) -> SpiResult<Option<Json>> {
        let reply: Option<String> = sqlx::query_scalar(SELECT_REPLY)
            .bind(envelope_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error("reading a processed envelope's reply", e))?;
        reply.map(|r| parse_json(&r, &format!("the stored reply of envelope {envelope_id}"))).transpose()
    }

    async fn record_reply(&self, envelope_id: Uuid, reply: &Json) -> SpiResult<bool> {
        let done = sqlx::query(INSERT_PROCESSED)
            .bind(envelope_id.to_string())
            .bind(reply.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("recording an envelope's reply", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn health(&self) -> onex_spi::Health {
        self.ping().await
    }
}

super::shared::impl_shared_state!(SqliteStateStore, sqlite);
