//! `PostgresStateStore`: the host's durable state in PostgreSQL: reducer state with its
//! outbox, idempotency records, workflow runs and journals. JSON is kept as JSONB; UUIDs are
//! bound as text and cast (`$1::uuid`), so no `sqlx` UUID support is needed.
//!
//! Transactions run at READ COMMITTED. Two commits for one entity meet on its row: the second
//! waits for the first's row lock (an `UPDATE`) or unique-key entry (an `INSERT`), then
//! re-checks the version against the committed row and finds the one the first wrote. Its
//! outbox rows are inserted after that wait, so they get higher ids than the first's: messages
//! of one entity leave the outbox in commit order.
//!
//! Commits (one, or a batch from the group committer) are written by one statement in one round
//! trip (`one_statement`). When that statement cannot take them (a duplicate among them,
//! contention), nothing was kept and they are written again the careful way: one transaction
//! with a SAVEPOINT per commit, rolled back when the commit is a duplicate or refused. A batch
//! holds the rows it wrote until it commits, so batches that meet on entities in opposite orders
//! can deadlock: PostgreSQL aborts one statement (`STORE_CONTENTION`, which the reducer steps
//! again). The group committer orders a batch by (fsm, entity key), so two batches take their row
//! locks in one order and rarely meet that way.
//!
//! `onex_processed.reply` holds every processed envelope's reply, a committed transition's
//! included (the migration's comment predates that; migrations are checksummed, so it stays).

use crate::error::codes;
use async_trait::async_trait;
use onex_spi::{CommitOutcome, EntityState, SpiError, SpiResult, StateStore, TransitionCommit};
use serde_json::Value as Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::error::store_error;
use super::pools::connect_postgres;

mod one_statement;
use super::state_rows::{db_version, headers_json, stored_u64, version_conflict};

const SELECT_STATE: &str = "SELECT state, version FROM onex_fsm_state WHERE fsm = $1 AND entity_key = $2";

/// Records an envelope as processed unless it is already (then nothing changes).
const INSERT_PROCESSED: &str =
    "INSERT INTO onex_processed (envelope_id, reply) VALUES ($1::uuid, $2) ON CONFLICT (envelope_id) DO NOTHING";

/// A new entity's first state; no row when the entity exists.
const INSERT_STATE: &str = "INSERT INTO onex_fsm_state (fsm, entity_key, state, version) VALUES ($1, $2, $3, 1) \
     ON CONFLICT (fsm, entity_key) DO NOTHING RETURNING version";

/// The next state of an entity at version `$4`; no row when it is at another version.
const UPDATE_STATE: &str = "UPDATE onex_fsm_state SET state = $3, version = version + 1, updated_at = now() \
     WHERE fsm = $1 AND entity_key = $2 AND version = $4 RETURNING version";

const SELECT_VERSION: &str = "SELECT version FROM onex_fsm_state WHERE fsm = $1 AND entity_key = $2";

/// All of a commit's messages in one statement, inserted (and so numbered) in input order.
const INSERT_OUTBOX: &str = "INSERT INTO onex_outbox (topic, message_key, payload, headers) \
     SELECT topic, message_key, payload, headers \
     FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::jsonb[]) \
     WITH ORDINALITY AS t(topic, message_key, payload, headers, ord) \
     ORDER BY ord";

const SELECT_REPLY: &str = "SELECT reply FROM onex_processed WHERE envelope_id = $1::uuid";

/// The durable state of a host in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStateStore {
    pool: PgPool,
    /// Claims, marks, leases and sweeps: commits that may be lost (see
    /// [`super::pools::bookkeeping_postgres`]).
    bookkeeping: PgPool,
}

impl PostgresStateStore {
    /// Connects to `url`, brings the schema up to date and keeps a pool of at most
    /// `max_connections`. A refused connection fails at once and a silent server after 10 s,
    /// both as `STORE_UNAVAILABLE`; no error repeats the URL.
    pub async fn connect(url: &str, max_connections: u32) -> SpiResult<Self> {
        connect_postgres(url, max_connections, "the PostgreSQL state store").await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_postgres`]).
    pub fn from_pool(pool: PgPool) -> Self {
        let bookkeeping = super::pools::bookkeeping_postgres(&pool);
        Self { pool, bookkeeping }
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.bookkeeping.close().await;
        self.pool.close().await;
    }
}

impl PostgresStateStore {
    /// Commits `commits` in one statement, or, when a duplicate or contention aborts it (which
    /// keeps nothing), the careful way.
    async fn commit_chunk(&self, commits: &[TransitionCommit]) -> SpiResult<Vec<SpiResult<CommitOutcome>>> {
        match one_statement::commit(&self.pool, commits).await {
            Ok(outcomes) => Ok(outcomes),
            Err(e) if e.code() == codes::STORE_UNAVAILABLE.as_str() => Err(e),
            Err(_) => self.commit_with_savepoints(commits).await,
        }
    }
}

/// Writes `commit` in the transaction (or savepoint) `conn` is in: the idempotency record with
/// the reply, the state at its next version and the outbox. Leaves the writes for the caller to
/// keep only on [`CommitOutcome::Committed`]: after a duplicate or an error it must roll back.
async fn write_transition(conn: &mut PgConnection, commit: &TransitionCommit) -> SpiResult<CommitOutcome> {
    let err = |e| store_error("committing a transition", e);
    let expected = commit.expected_version.map(db_version).transpose()?;
    let recorded = sqlx::query(INSERT_PROCESSED)
        .bind(commit.envelope_id.to_string())
        .bind(&commit.reply)
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
    if !commit.outbox.is_empty() {
        let messages = &commit.outbox;
        sqlx::query(INSERT_OUTBOX)
            .bind(messages.iter().map(|m| &*m.topic).collect::<Vec<_>>())
            .bind(messages.iter().map(|m| m.key.as_deref()).collect::<Vec<_>>())
            .bind(messages.iter().map(|m| &m.payload[..]).collect::<Vec<_>>())
            .bind(messages.iter().map(|m| headers_json(&m.headers)).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    Ok(CommitOutcome::Committed { version: stored_u64(version, "version")? })
}

#[async_trait]
impl StateStore for PostgresStateStore {
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
        let mut outcomes = self.commit_transitions(vec![commit]).await?;
        outcomes
            .pop()
            .unwrap_or_else(|| Err(SpiError::new(codes::STORE_FAILED, "a commit came back without an outcome")))
    }

    async fn commit_transitions(&self, commits: Vec<TransitionCommit>) -> SpiResult<Vec<SpiResult<CommitOutcome>>> {
        let mut outcomes = Vec::with_capacity(commits.len());
        for chunk in one_statement::chunks(&commits) {
            match self.commit_chunk(chunk).await {
                Ok(written) => outcomes.extend(written),
                Err(e) if outcomes.is_empty() => return Err(e),
                // The chunks before are written; this one and the rest are not.
                Err(e) => {
                    let not_written = || SpiError::custom(e.code().to_owned(), e.category(), e.message().to_owned());
                    outcomes.extend((outcomes.len()..commits.len()).map(|_| Err(not_written())));
                    return Ok(outcomes);
                }
            }
        }
        Ok(outcomes)
    }

    async fn processed_reply(&self, envelope_id: Uuid) -> SpiResult<Option<Json>> {
        sqlx::query_scalar(SELECT_REPLY)
            .bind(envelope_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error("reading a processed envelope's reply", e))
    }

    async fn record_reply(&self, envelope_id: Uuid, reply: &Json) -> SpiResult<bool> {
        let done = sqlx::query(INSERT_PROCESSED)
            .bind(envelope_id.to_string())
            .bind(reply)
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("recording an envelope's reply", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn health(&self) -> onex_spi::Health {
        self.ping().await
    }
}

super::shared::impl_shared_state!(PostgresStateStore, postgres);
