//! `PostgresStampStore`: metadata stamps in PostgreSQL, `stamp` kept as JSONB. A batch is one
//! `INSERT … SELECT FROM UNNEST(…)` statement: one round trip and one transaction.

use async_trait::async_trait;
use onex_spi::{SaveOutcome, SpiResult, StampRecord, StampStore};
use serde_json::Value as Json;
use sqlx::PgPool;

use super::error::store_error;
use super::pools::connect_postgres;
use super::{batch_outcomes, db_size, stored_size};

const INSERT: &str = "INSERT INTO metadata_stamps \
     (file_hash, file_path, file_size, content_type, stamp, namespace) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (file_hash, namespace) DO NOTHING";

/// Rows are inserted in input order (`ORDER BY ord`), so of two records with the same key the
/// first is kept; `RETURNING` names the keys this statement inserted.
const INSERT_BATCH: &str = "INSERT INTO metadata_stamps \
     (file_hash, file_path, file_size, content_type, stamp, namespace) \
     SELECT file_hash, file_path, file_size, content_type, stamp, namespace \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::jsonb[], $6::text[]) \
     WITH ORDINALITY AS t(file_hash, file_path, file_size, content_type, stamp, namespace, ord) \
     ORDER BY ord \
     ON CONFLICT (file_hash, namespace) DO NOTHING \
     RETURNING file_hash, namespace";

const SELECT_BY_HASH: &str = "SELECT file_hash, file_path, file_size, content_type, stamp, namespace \
     FROM metadata_stamps WHERE file_hash = $1 AND namespace = $2";

/// A row of `metadata_stamps` as PostgreSQL returns it.
type Row = (String, Option<String>, i64, String, Json, String);

/// Stamps in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStampStore {
    pool: PgPool,
}

impl PostgresStampStore {
    /// Connects to `url`, brings the schema up to date and keeps a pool of at most
    /// `max_connections`. A refused connection fails at once and a silent server after 10 s,
    /// both as `STORE_UNAVAILABLE`; no error repeats the URL.
    pub async fn connect(url: &str, max_connections: u32) -> SpiResult<Self> {
        connect_postgres(url, max_connections, "the PostgreSQL stamp store").await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_postgres`]).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl StampStore for PostgresStampStore {
    async fn save(&self, record: &StampRecord) -> SpiResult<SaveOutcome> {
        let done = sqlx::query(INSERT)
            .bind(&record.file_hash)
            .bind(record.file_path.as_deref())
            .bind(db_size(record.file_size)?)
            .bind(&record.content_type)
            .bind(&record.stamp)
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
        let sizes = records.iter().map(|r| db_size(r.file_size)).collect::<SpiResult<Vec<_>>>()?;
        let inserted: Vec<(String, String)> = sqlx::query_as(INSERT_BATCH)
            .bind(records.iter().map(|r| r.file_hash.as_str()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.file_path.as_deref()).collect::<Vec<_>>())
            .bind(sizes)
            .bind(records.iter().map(|r| r.content_type.as_str()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| &r.stamp).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.namespace.as_str()).collect::<Vec<_>>())
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
        Ok(Some(StampRecord { file_hash, file_path, file_size, content_type, stamp, namespace }))
    }
}
