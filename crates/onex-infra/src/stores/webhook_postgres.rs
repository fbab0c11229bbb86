//! `PostgresDeliveryStore`: webhook deliveries and their attempts in PostgreSQL.

use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onex_spi::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, DeliveryStore, SpiResult};
use sqlx::PgPool;

use super::error::store_error;
use super::pools::connect_postgres;
use super::webhook_sqlite::{attempt_number, status_named};

/// Inserts a delivery, or sets a known one back to `pending` (a redelivery of the same id).
const BEGIN: &str = "INSERT INTO onex_webhook_deliveries (delivery_id, url, event, status) \
     VALUES ($1, $2, $3, 'pending') \
     ON CONFLICT (delivery_id) DO UPDATE SET url = excluded.url, event = excluded.event, \
     status = 'pending', updated_at = now() \
     RETURNING (SELECT count(*) FROM onex_webhook_attempts WHERE delivery_id = $1)";

const ATTEMPT: &str = "INSERT INTO onex_webhook_attempts (delivery_id, attempt, http_status, error, at) \
     VALUES ($1, $2, $3, $4, $5)";

const FINISH: &str = "UPDATE onex_webhook_deliveries SET status = $2, updated_at = now() WHERE delivery_id = $1";

const SELECT: &str = "SELECT url, event, status FROM onex_webhook_deliveries WHERE delivery_id = $1";

const SELECT_ATTEMPTS: &str = "SELECT attempt, http_status, error, at FROM onex_webhook_attempts \
     WHERE delivery_id = $1 ORDER BY attempt";

/// Webhook deliveries in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresDeliveryStore {
    pool: PgPool,
}

impl PostgresDeliveryStore {
    /// Connects to `url`, brings the schema up to date and keeps a pool of at most
    /// `max_connections`; no error repeats the URL.
    pub async fn connect(url: &str, max_connections: u32) -> SpiResult<Self> {
        connect_postgres(url, max_connections, "the PostgreSQL webhook delivery store").await.map(Self::from_pool)
    }

    /// A store on `pool`, whose schema must be current (see [`super::migrate_postgres`]).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl DeliveryStore for PostgresDeliveryStore {
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
            .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
            .bind(attempt.status.map(i32::from))
            .bind(attempt.error.as_deref())
            .bind(DateTime::<Utc>::from(attempt.at))
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
        let rows: Vec<(i32, Option<i32>, Option<String>, DateTime<Utc>)> = sqlx::query_as(SELECT_ATTEMPTS)
            .bind(delivery_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| store_error(doing, e))?;
        let attempts = rows
            .into_iter()
            .map(|(attempt, status, error, at)| {
                Ok(DeliveryAttempt {
                    delivery_id: delivery_id.to_owned(),
                    attempt: attempt_number(i64::from(attempt), delivery_id)?,
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    error,
                    at: SystemTime::from(at),
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
