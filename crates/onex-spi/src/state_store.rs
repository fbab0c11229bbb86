//! Durable state: reducer state with its outbox, idempotency records and workflow journals.

use std::time::Duration;

use async_trait::async_trait;
use onex_core::workflow::JournalEntry;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::bus::OutboundMessage;
use crate::error::SpiResult;
use crate::handler::Health;

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

/// Durable state shared by every host on one database: reducer state with its outbox and
/// idempotency records ([`StateStore`] itself), the outbox relay's claims ([`OutboxStore`]),
/// workflow runs under leases ([`RunStore`]) and retention ([`RetentionStore`]).
///
/// Nothing here assumes one host: commits meet at version checks, outbox rows and runs are
/// claimed for a time and taken over when their holder stops renewing.
#[async_trait]
pub trait StateStore: OutboxStore + RunStore + RetentionStore + InspectStore + Send + Sync + 'static {
    /// Loads an entity's state, `None` when it has none yet.
    async fn load_state(&self, fsm: &str, entity_key: &str) -> SpiResult<Option<EntityState>>;

    /// What applying an event needs, in one read: the reply recorded for `envelope_id` (when it
    /// was processed before) and the entity's state.
    async fn load_for_event(
        &self,
        envelope_id: Uuid,
        fsm: &str,
        entity_key: &str,
    ) -> SpiResult<(Option<Json>, Option<EntityState>)>;

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
    /// if the envelope was already recorded (its first record stays: it is final).
    async fn record_reply(&self, envelope_id: Uuid, reply: &Json) -> SpiResult<bool>;

    /// Whether the store answers now (a trivial statement); the host is not ready while not.
    async fn health(&self) -> Health;
}

/// A claim held for a while: by whom, and for how long from now unless renewed. Times are the
/// database's own clock, so hosts whose clocks disagree still agree on expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder: one host process (a unique id per process).
    pub owner: String,
    /// How long the claim lasts.
    pub duration: Duration,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox sequence number (the commit order of one entity's messages).
    pub id: u64,
    /// The message.
    pub message: OutboundMessage,
}

/// The outbox as relays on several hosts share it: each row is claimed by one relay at a time.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` unpublished entries that nobody holds (never claimed, or whose
    /// claim expired) for `lease`, oldest first. Rows committed late with lower ids than ones
    /// already published are found all the same: there is no cursor.
    async fn claim_outbox(&self, lease: &Lease, limit: u32) -> SpiResult<Vec<OutboxEntry>>;

    /// Up to `limit` unpublished entries, oldest first, claimed or not; reads only (for people
    /// and tests: relays claim).
    async fn pending_outbox(&self, limit: u32) -> SpiResult<Vec<OutboxEntry>>;

    /// How many outbox entries are not yet published.
    async fn outbox_backlog(&self) -> SpiResult<u64>;

    /// Marks outbox entries published.
    async fn mark_published(&self, ids: &[u64]) -> SpiResult<()>;
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
    /// The host driving it, while it runs (the last one, once finished).
    pub owner: Option<String>,
}

/// Which running runs [`RunStore::take_over_runs`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsToTake {
    /// Those whose lease expired: their host stopped renewing (several hosts share the store).
    Expired,
    /// Every running one: this host is alone on its store (SQLite) and has just started.
    AllRunning,
}

/// Workflow runs and their journals, each run driven by the one host holding its lease.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run held by `lease`; returns false if a run with this id exists already.
    async fn start_run(&self, run: &RunRecord, lease: &Lease) -> SpiResult<bool>;

    /// Extends `lease.owner`'s lease on a running run; false when it holds it no more (another
    /// host took it over, or it finished).
    async fn renew_run(&self, run_id: Uuid, lease: &Lease) -> SpiResult<bool>;

    /// Takes run `run_id` for `lease` if it is running and its lease expired (or `lease.owner`
    /// holds it already); the run taken, else `None`.
    async fn take_over_run(&self, run_id: Uuid, lease: &Lease) -> SpiResult<Option<RunRecord>>;

    /// Takes up to `limit` running runs for `lease`, oldest first; each is taken by one host.
    async fn take_over_runs(&self, lease: &Lease, which: RunsToTake, limit: u32) -> SpiResult<Vec<RunRecord>>;

    /// Appends one step outcome to the journal of a run `owner` holds; `LEASE_LOST` (conflict)
    /// when another host holds it, `NOT_FOUND` when there is no such run.
    async fn append_journal(&self, run_id: Uuid, owner: &str, entry: &JournalEntry) -> SpiResult<()>;

    /// A run's journal in append order.
    async fn journal(&self, run_id: Uuid) -> SpiResult<Vec<JournalEntry>>;

    /// Sets the final status of a run `owner` holds; errors as [`RunStore::append_journal`].
    async fn finish_run(&self, run_id: Uuid, owner: &str, status: &str) -> SpiResult<()>;

    /// A run by id.
    async fn run(&self, run_id: Uuid) -> SpiResult<Option<RunRecord>>;
}

/// How long finished records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Idempotency records (envelope replies). They must outlive the bus's redelivery window:
    /// an envelope delivered again after its record is gone is processed again.
    pub processed: Duration,
    /// Outbox rows after they were published.
    pub published_outbox: Duration,
    /// Finished workflow runs, with their journals.
    pub finished_runs: Duration,
}

/// Rows of each kind: removed by a sweep, or held now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Idempotency records.
    pub processed: u64,
    /// Outbox rows.
    pub outbox: u64,
    /// Workflow runs.
    pub runs: u64,
    /// Journal entries.
    pub journal: u64,
}

/// What the status page reads: how many entities each state holds, and the latest runs.
#[async_trait]
pub trait InspectStore: Send + Sync {
    /// `(state, entities in it)` for state machine `fsm`, states without entities left out.
    async fn state_counts(&self, fsm: &str) -> SpiResult<Vec<(String, u64)>>;

    /// The `limit` most recently started workflow runs, newest first.
    async fn recent_runs(&self, limit: u32) -> SpiResult<Vec<RunRecord>>;
}

/// Removal of what is past its retention.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes up to `limit` rows of each kind that are past `policy` (a run's journal goes with
    /// it); returns how many went. Sweepers call it until it removes fewer than `limit`.
    async fn prune(&self, policy: &RetentionPolicy, limit: u32) -> SpiResult<RowCounts>;

    /// How many rows each table holds.
    async fn row_counts(&self) -> SpiResult<RowCounts>;
}
