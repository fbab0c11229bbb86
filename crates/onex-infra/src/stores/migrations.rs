//! The schema of every store, one embedded migrator per database (`migrations/sqlite`,
//! `migrations/postgres`). Every store of a database shares its migrator, so each applied
//! version is known to all of them.

use onex_spi::SpiResult;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use super::error::store_error;

/// The SQLite schema (`crates/onex-infra/migrations/sqlite`).
pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The PostgreSQL schema (`crates/onex-infra/migrations/postgres`).
pub(crate) static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Brings a SQLite database up to the current schema (for pools handed to `from_pool`).
pub async fn migrate_sqlite(pool: &SqlitePool) -> SpiResult<()> {
    SQLITE_MIGRATOR.run(pool).await.map_err(|e| store_error("migrating the SQLite schema", e.into()))
}

/// Brings a PostgreSQL database up to the current schema (for pools handed to `from_pool`).
pub async fn migrate_postgres(pool: &PgPool) -> SpiResult<()> {
    POSTGRES_MIGRATOR.run(pool).await.map_err(|e| store_error("migrating the PostgreSQL schema", e.into()))
}
