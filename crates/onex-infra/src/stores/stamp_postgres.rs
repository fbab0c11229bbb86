//! `PostgresStampStore`: metadata stamps in PostgreSQL, `stamp` kept as JSONB. A batch is one
//! `INSERT … SELECT FROM UNNEST(…)` statement: one round trip and one transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use onex_spi::{SaveOutcome, SpiError, SpiResult, StampRecord, StampStore};
use serde_json::Value as Json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::error::store_error;
use super::{batch_outcomes, db_size, stored_size};
use crate::error::codes;

/// How long `connect` waits for the first connection before reporting the server unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
        const DOING: &str = "connecting to the PostgreSQL stamp store";
        let options = PgConnectOptions::from_str(url).map_err(|e| store_error(DOING, e))?;
        // One direct connection first: a pool would retry a refused connection until its
        // acquire timeout, and the migration needs a connection anyway.
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| SpiError::new(codes::STORE_UNAVAILABLE, format!("{DOING}: no answer within 10 s")))?
            .map_err(|e| store_error(DOING, e))?;
        // The server answers; a failed goodbye on this connection changes nothing.
        let _closed = conn.close().await;
        let pool = PgPoolOptions::new().max_connections(max_connections.max(1)).connect_lazy_with(options);
        // Migrating through the pool (not `&mut PgConnection`) keeps this future `Send` for
        // every caller, including `async_trait` methods (rustc's higher-ranked Send check).
        super::migrate_postgres(&pool).await?;
        Ok(Self { pool })
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
