//! `SqliteDeliveryStore`: webhook deliveries and their attempts in one SQLite file (WAL journal,
//! every commit synchronised: a recorded attempt is never lost).

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use onex_spi::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, DeliveryStore, SpiError, SpiResult};
use sqlx::SqlitePool;

use super::error::store_error;
use super::pools::{Durability, open_sqlite};
use crate::error::codes;

/// Inserts a delivery, or sets a known one back to `pending` (a redelivery of the same id).
const BEGIN: &str = "INSERT INTO onex_webhook_deliveries (delivery_id, url, event, status) \
     VALUES (?1, ?2, ?3, 'pending') \
     ON CONFLICT (delivery_id) DO UPDATE SET url = excluded.url, event = excluded.event, \
     status = 'pending', updated_at = CURRENT_TIMESTAMP \
     RETURNING (SELECT count(*) FROM onex_webhook_attempts WHERE delivery_id = ?1)";

const ATTEMPT: &str = "INSERT INTO onex_webhook_attempts (delivery_id, attempt, http_status, error, at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

const FINISH: &str =
    "UPDATE onex_webhook_deliveries SET status = ?2, updated_at = CURRENT_TIMESTAMP WHERE delivery_id = ?1";

const SELECT: &str = "SELECT url, event, status FROM onex_webhook_deliveries WHERE delivery_id = ?1";

const SELECT_ATTEMPTS: &str = "SELECT attempt, http_status, error, at FROM onex_webhook_attempts \
     WHERE delivery_id = ?1 ORDER BY attempt";

/// How attempt times are stored (UTC, to the microsecond; sorts as text).
const AT_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Webhook deliveries in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteDeliveryStore {
    pool: SqlitePool,
}

impl SqliteDeliveryStore {
    /// Opens (creating it and its parent directories if missing) the database file at `path`
    /// and brings its schema up to date.
    pub async fn open(path: &Path) -> SpiResult<Self> {
        open_sqlite(path, "the SQLite webhook delivery store", Durability::EveryCommit).await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_sqlite`]).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// Stored attempt number `n` as a count.
pub(super) fn attempt_number(n: i64, delivery_id: &str) -> SpiResult<u32> {
    u32::try_from(n).map_err(|_| {
        SpiError::new(codes::STORE_FAILED, format!("webhook delivery {delivery_id}: stored attempt number {n}"))
    })
}

/// A stored status name as a status.
pub(super) fn status_named(name: &str, delivery_id: &str) -> SpiResult<DeliveryStatus> {
    DeliveryStatus::parse(name).ok_or_else(|| {
        SpiError::new(codes::STORE_FAILED, format!("webhook delivery {delivery_id}: unknown stored status `{name}`"))
    })
}

fn at_text(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).format(AT_FORMAT).to_string()
}

fn at_time(text: &str, delivery_id: &str) -> SpiResult<SystemTime> {
    NaiveDateTime::parse_from_str(text, AT_FORMAT).map(|t| t.and_utc().into()).map_err(|e| {
        SpiError::new(codes::STORE_FAILED, format!("webhook delivery {delivery_id}: stored time `{text}`"))
            .with_source(e)
    })
}

#[async_trait]
impl DeliveryStore for SqliteDeliveryStore {
    async fn begin(&self, delivery_id: &str, url: &str, event: Option<&str>) -> SpiResult<u32> {
        let (done,): (i64,) = sqlx::query_as(BEGIN)
            .bind(delivery_id)
            .bind(url)
            .bind(event)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| store_error("starting a webhook delivery", e))?;
        attempt_number(done, delivery_id)
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> SpiResult<()> {
        sqlx::query(ATTEMPT)
            .bind(&attempt.delivery_id)
            .bind(i64::from(attempt.attempt))
            .bind(attempt.status.map(i64::from))
            .bind(attempt.error.as_deref())
            .bind(at_text(attempt.at))
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("recording a webhook attempt", e))?;
        Ok(())
    }

    async fn finish(&self, delivery_id: &str, status: DeliveryStatus) -> SpiResult<()> {
        sqlx::query(FINISH)
            .bind(delivery_id)
            .bind(status.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("recording a webhook delivery's status", e))?;
        Ok(())
    }

    async fn delivery(&self, delivery_id: &str) -> SpiResult<Option<DeliveryRecord>> {
        let doing = "reading a webhook delivery";
        let row: Option<(String, Option<String>, String)> = sqlx::query_as(SELECT)
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error(doing, e))?;
        let Some((url, event, status)) = row else { return Ok(None) };
        let rows: Vec<(i64, Option<i64>, Option<String>, String)> = sqlx::query_as(SELECT_ATTEMPTS)
            .bind(delivery_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(doing, e))?;
        let attempts = rows
            .into_iter()
            .map(|(attempt, status, error, at)| {
                Ok(DeliveryAttempt {
                    delivery_id: delivery_id.to_owned(),
                    attempt: attempt_number(attempt, delivery_id)?,
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    error,
                    at: at_time(&at, delivery_id)?,
                })
            })
            .collect::<SpiResult<Vec<_>>>()?;
        Ok(Some(DeliveryRecord {
            delivery_id: delivery_id.to_owned(),
            url,
            event,
            status: status_named(&status, delivery_id)?,
            attempts,
        }))
    }
}
