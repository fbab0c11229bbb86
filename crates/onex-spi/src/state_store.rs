//! Durable state: reducer state with its outbox, idempotency records and workflow journals.

use async_trait::async_trait;
use onex_core::workflow::JournalEntry;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::bus::OutboundMessage;
use crate::error::SpiResult;

/// The stored state of one entity of one state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityState {
    /// State machine name.
    pub fsm: String,
    /// Entity key.
    pub entity_key: String,
    /// Current state.
    pub state: String,
    /// Version for optimistic concurrency; increases by one per committed transition.
    pub version: u64,
}

/// A reducer step to commit atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionCommit {
    /// The envelope that caused the step (idempotency key).
    pub envelope_id: Uuid,
    /// State machine name.
    pub fsm: String,
    /// Entity key.
    pub entity_key: String,
    /// The version read before the step; `None` when the entity is new.
    pub expected_version: Option<u64>,
    /// The new state.
    pub state: String,
    /// Intents (and the reply) to publish once committed: the outbox.
    pub outbox: Vec<OutboundMessage>,
    /// The reply to return if the same envelope is delivered again; stored as the envelope's
    /// idempotency record.
    pub reply: Json,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written; the entity is now at this version.
    Committed {
        /// New version.
        version: u64,
    },
    /// The envelope was processed before; nothing changed.
    Duplicate,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox sequence number.
    pub id: u64,
    /// The message.
    pub message: OutboundMessage,
}

/// A workflow run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Run id (derived from the triggering envelope, so a redelivery finds the same run).
    pub run_id: Uuid,
    /// Workflow name.
    pub workflow: String,
    /// The triggering envelope, serialized.
    pub trigger: Json,
    /// `running`, `succeeded`, `failed` or `compensated`.
    pub status: String,
}

/// Persistence for reducers, idempotency and orchestrators (SQLite or PostgreSQL).
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Loads an entity's state, `None` when it has none yet.
    async fn load_state(&self, fsm: &str, entity_key: &str) -> SpiResult<Option<EntityState>>;

    /// In one transaction: checks the version, writes the state, appends the outbox and the
    /// idempotency record (with the commit's reply). A version mismatch is a `conflict` error;
    /// a known envelope id is [`CommitOutcome::Duplicate`].
    async fn commit_transition(&self, commit: TransitionCommit) -> SpiResult<CommitOutcome>;

    /// Commits many transitions in ONE database transaction (one fsync), each isolated in its
    /// own SAVEPOINT, so a version conflict or duplicate in one does not affect the others:
    /// each result is what [`StateStore::commit_transition`] would have returned for it, had
    /// the commits run one after the other in input order (a later commit sees the earlier
    /// ones' writes). Results are in input order. The outer result is `Err` only if the
    /// transaction itself failed (including the store becoming unavailable part-way: a lost
    /// connection, a locked database); then nothing was written.
    async fn commit_transitions(&self, commits: Vec<TransitionCommit>) -> SpiResult<Vec<SpiResult<CommitOutcome>>>;

    /// The stored reply of an envelope processed before (recorded, or committed with its
    /// transition), if any.
    async fn processed_reply(&self, envelope_id: Uuid) -> SpiResult<Option<Json>>;

    /// Records an envelope's reply (for envelopes that change no reducer state). Returns false
    /// if the envelope was already recorded.
    async fn record_reply(&self, envelope_id: Uuid, reply: &Json) -> SpiResult<bool>;

    /// Up to `limit` unpublished outbox entries with an id above `after`, oldest first (a relay
    /// passes the last id it sent, so entries it is still waiting on do not come back).
    async fn pending_outbox(&self, after: u64, limit: u32) -> SpiResult<Vec<OutboxEntry>>;

    /// How many outbox entries are not yet published.
    async fn outbox_backlog(&self) -> SpiResult<u64>;

    /// Marks outbox entries published.
    async fn mark_published(&self, ids: &[u64]) -> SpiResult<()>;

    /// Creates a run; returns false if a run with this id exists already.
    async fn start_run(&self, run: &RunRecord) -> SpiResult<bool>;

    /// Appends one step outcome to a run's journal.
    async fn append_journal(&self, run_id: Uuid, entry: &JournalEntry) -> SpiResult<()>;

    /// A run's journal in append order.
    async fn journal(&self, run_id: Uuid) -> SpiResult<Vec<JournalEntry>>;

    /// Sets a run's final status.
    async fn finish_run(&self, run_id: Uuid, status: &str) -> SpiResult<()>;

    /// A run by id.
    async fn run(&self, run_id: Uuid) -> SpiResult<Option<RunRecord>>;

    /// Runs not finished (to resume after a restart).
    async fn unfinished_runs(&self) -> SpiResult<Vec<RunRecord>>;
}
