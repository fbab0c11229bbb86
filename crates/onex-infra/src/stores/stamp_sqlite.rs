//! `SqliteStampStore`: metadata stamps in one SQLite file (WAL journal), `stamp` kept as JSON
//! text. A batch is one `INSERT … SELECT FROM json_each(?)` statement: one call into the
//! SQLite worker thread and one transaction, however many records.

use std::path::Path;

use async_trait::async_trait;
use onex_spi::{SaveOutcome, SpiError, SpiResult, StampRecord, StampStore};
use sqlx::SqlitePool;

use super::error::store_error;
use super::pools::{Durability, open_sqlite};
use super::{batch_outcomes, db_size, stored_size};
use crate::error::codes;

const INSERT: &str = "INSERT INTO metadata_stamps \
     (file_hash, file_path, file_size, content_type, stamp, namespace) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (file_hash, namespace) DO NOTHING";

/// `?1` is a JSON array of `[file_hash, file_path, file_size, content_type, stamp, namespace]`
/// rows. They are inserted in input order (`ORDER BY key`, the array index), so of two records
/// with the same key the first is kept; `RETURNING` names the keys this statement inserted.
/// (`WHERE true` is SQLite's required disambiguation of an upsert after a SELECT.)
const INSERT_BATCH: &str = "INSERT INTO metadata_stamps \
     (file_hash, file_path, file_size, content_type, stamp, namespace) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value -> 4, value ->> 5 \
     FROM json_each(?1) WHERE true ORDER BY key \
     ON CONFLICT (file_hash, namespace) DO NOTHING \
     RETURNING file_hash, namespace";

const SELECT_BY_HASH: &str = "SELECT file_hash, file_path, file_size, content_type, stamp, namespace \
     FROM metadata_stamps WHERE file_hash = ?1 AND namespace = ?2";

/// A row of `metadata_stamps` as SQLite returns it.
type Row = (String, Option<String>, i64, String, String, String);

/// Stamps in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStampStore {
    pool: SqlitePool,
}

impl SqliteStampStore {
    /// Opens (creating it and its parent directories if missing) the database file at `path`
    /// and brings its schema up to date.
    ///
    /// The journal is WAL with `synchronous = NORMAL`: a commit does not wait for the disk, so
    /// a power loss (not a process crash) may lose the last commits, but never corrupts the
    /// file. Stamps are derived from content and can be made again.
    pub async fn open(path: &Path) -> SpiResult<Self> {
        open_sqlite(path, "the SQLite stamp store", Durability::Recomputable).await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_sqlite`]).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl StampStore for SqliteStampStore {
    async fn save(&self, record: &StampRecord) -> SpiResult<SaveOutcome> {
        let done = sqlx::query(INSERT)
            .bind(&record.file_hash)
            .bind(record.file_path.as_deref())
            .bind(db_size(record.file_size)?)
            .bind(&record.content_type)
            .bind(record.stamp.to_string())
            .bind(&record.namespace)
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("saving a stamp", e))?;
        Ok(if done.rows_affected() == 0 { SaveOutcome::AlreadyExists } else { SaveOutcome::Inserted })
    }

    async fn save_batch(&self, records: &[StampRecord]) -> SpiResult<Vec<SaveOutcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let rows = records
            .iter()
            .map(|r| {
                let size = db_size(r.file_size)?;
                Ok((&r.file_hash, r.file_path.as_deref(), size, &r.content_type, &r.stamp, &r.namespace))
            })
            .collect::<SpiResult<Vec<_>>>()?;
        let rows = serde_json::to_string(&rows)
            .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, "encoding a stamp batch as JSON").with_source(e))?;
        let inserted: Vec<(String, String)> = sqlx::query_as(INSERT_BATCH)
            .bind(rows)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error("saving a stamp batch", e))?;
        Ok(batch_outcomes(records, inserted))
    }

    async fn find_by_hash(&self, file_hash: &str, namespace: &str) -> SpiResult<Option<StampRecord>> {
        let row: Option<Row> = sqlx::query_as(SELECT_BY_HASH)
            .bind(file_hash)
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error("finding a stamp", e))?;
        let Some((file_hash, file_path, file_size, content_type, stamp, namespace)) = row else { return Ok(None) };
        let file_size = stored_size(file_size, &file_hash)?;
        let stamp = serde_json::from_str(&stamp).map_err(|e| {
            SpiError::new(codes::STORE_FAILED, format!("stored stamp {file_hash} is not valid JSON")).with_source(e)
        })?;
        Ok(Some(StampRecord { file_hash, file_path, file_size, content_type, stamp, namespace }))
    }
}
