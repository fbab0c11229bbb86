//! Persistence of metadata stamps, looked up by content hash.

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::error::SpiResult;

/// A stored stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct StampRecord {
    /// BLAKE3 hex of the normalised content.
    pub file_hash: String,
    /// Path the content came from, if any.
    pub file_path: Option<String>,
    /// Size in bytes.
    pub file_size: u64,
    /// MIME-like content type.
    pub content_type: String,
    /// The stamp's fields.
    pub stamp: Json,
    /// Tenant or project namespace.
    pub namespace: String,
}

/// Whether a save wrote a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// A new record.
    Inserted,
    /// A record with this hash and namespace existed; kept as it was.
    AlreadyExists,
}

/// Where stamps are kept (SQLite or PostgreSQL `metadata_stamps`, unique on hash + namespace).
#[async_trait]
pub trait StampStore: Send + Sync + 'static {
    /// Saves a stamp.
    async fn save(&self, record: &StampRecord) -> SpiResult<SaveOutcome>;

    /// Saves many stamps in one transaction; outcomes in input order.
    async fn save_batch(&self, records: &[StampRecord]) -> SpiResult<Vec<SaveOutcome>>;

    /// The stamp of `file_hash` in `namespace`.
    async fn find_by_hash(&self, file_hash: &str, namespace: &str) -> SpiResult<Option<StampRecord>>;
}
