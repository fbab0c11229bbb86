//! The db handler on SQLite (the embedded default): a WAL-mode file, JSON parameters bound by
//! type, values returned by storage class (integer, real, text, base64 blob, null).
//!
//! The statement timeout is a SQLite progress handler armed before each statement: once the
//! deadline passes it makes SQLite interrupt the statement (SQLITE_INTERRUPT, mapped to
//! `timeout`), so the work really stops. It is disarmed afterwards, so an expired deadline can
//! never interrupt a later rollback on the same connection.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use onex_spi::{SpiError, SpiResult};
use serde_json::{Map, Value as Json};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous, SqliteValueRef,
};
use sqlx::{AssertSqlSafe, Column, Connection, Decode, Either, Executor, Row, Sqlite, TypeInfo, ValueRef};

use super::Outcome;
use super::config::PoolSettings;
use super::errors::db_error;
use super::postgres::next;
use super::request::{Cx, Statement};
use crate::error::codes;

/// How many virtual-machine instructions run between two looks at the deadline.
const PROGRESS_OPS: i32 = 1000;

/// A pool on one SQLite file.
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    statement_timeout: Option<Duration>,
}

impl SqliteBackend {
    /// Opens (creating it and its directory if missing) the database at `path`.
    pub async fn open(path: &Path, settings: &PoolSettings) -> SpiResult<Self> {
        let doing = format!("db: opening sqlite://{}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                SpiError::new(codes::DB_UNAVAILABLE, format!("{doing}: creating the directory {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| db_error(&doing, e))?;
        Ok(Self { pool, statement_timeout: settings.statement_timeout })
    }

    /// Arms (with a deadline) or disarms the statement timeout of `conn`.
    async fn arm(&self, conn: &mut SqliteConnection, armed: bool) -> Result<(), sqlx::Error> {
        let Some(timeout) = self.statement_timeout else { return Ok(()) };
        let mut handle = conn.lock_handle().await?;
        if armed {
            let deadline = Instant::now() + timeout;
            handle.set_progress_handler(PROGRESS_OPS, move || Instant::now() < deadline);
        } else {
            handle.remove_progress_handler();
        }
        Ok(())
    }

    /// Runs one statement on `conn` under the statement timeout: its rows and rows affected.
    async fn run(&self, conn: &mut SqliteConnection, cx: Cx<'_>, statement: &Statement) -> SpiResult<Outcome> {
        let prefix = cx.prefix();
        self.arm(conn, true).await.map_err(|e| db_error(&prefix, e))?;
        let result = async {
            let mut stream = conn.fetch_many(bind(statement));
            let (mut rows, mut rows_affected) = (Vec::new(), 0);
            while let Some(item) = next(&mut stream).await {
                match item? {
                    Either::Left(done) => rows_affected += done.rows_affected(),
                    Either::Right(row) => rows.push(row),
                }
            }
            Ok::<_, sqlx::Error>((rows, rows_affected))
        }
        .await;
        // A connection that cannot be disarmed is broken; its next statement fails and reports it.
        let _disarmed = self.arm(conn, false).await;
        let (rows, rows_affected) = result.map_err(|e| db_error(&prefix, e))?;
        Ok(Outcome { rows: rows_to_json(&prefix, &rows)?, rows_affected })
    }

    /// The rows of one statement.
    pub async fn query(&self, cx: Cx<'_>, statement: &Statement) -> SpiResult<Vec<Json>> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_error(&cx.prefix(), e))?;
        Ok(self.run(&mut conn, cx, statement).await?.rows)
    }

    /// The rows affected by one statement.
    pub async fn execute(&self, cx: Cx<'_>, statement: &Statement) -> SpiResult<u64> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_error(&cx.prefix(), e))?;
        Ok(self.run(&mut conn, cx, statement).await?.rows_affected)
    }

    /// Runs `statements` in one transaction: every one or none.
    pub async fn transaction(&self, cx: Cx<'_>, statements: &[Statement]) -> SpiResult<Vec<Outcome>> {
        let prefix = cx.prefix();
        let mut conn = self.pool.acquire().await.map_err(|e| db_error(&prefix, e))?;
        let mut tx = conn.begin().await.map_err(|e| db_error(&prefix, e))?;
        let mut outcomes = Vec::with_capacity(statements.len());
        for (i, statement) in statements.iter().enumerate() {
            match self.run(&mut tx, cx.at(i), statement).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    // An interrupted write may already have rolled the transaction back; either
                    // way nothing of it is committed.
                    let _rolled_back = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        tx.commit().await.map_err(|e| db_error(&format!("{prefix}: commit"), e))?;
        Ok(outcomes)
    }

    /// `SELECT 1` through the pool.
    pub async fn ping(&self) -> SpiResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(|e| db_error("db health", e))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The query for `statement`, each JSON parameter bound by its type (object/array as JSON text).
fn bind(statement: &Statement) -> Query<'_, Sqlite, SqliteArguments> {
    let mut query = sqlx::query(AssertSqlSafe(statement.sql.as_str()));
    for param in &statement.params {
        query = match param {
            Json::Null => query.bind(None::<i64>),
            Json::Bool(b) => query.bind(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => query.bind(s.as_str()),
            json => query.bind(sqlx::types::Json(json)),
        };
    }
    query
}

/// Every row as a JSON object keyed by column name (a later column of the same name wins).
fn rows_to_json(prefix: &str, rows: &[SqliteRow]) -> SpiResult<Vec<Json>> {
    rows.iter()
        .map(|row| {
            let mut object = Map::new();
            for (i, column) in row.columns().iter().enumerate() {
                let raw = row.try_get_raw(i).map_err(|e| db_error(prefix, e))?;
                let value = value_to_json(raw).map_err(|e| {
                    SpiError::new(codes::DB_FAILED, format!("{prefix}: column `{}`: {e}", column.name()))
                })?;
                object.insert(column.name().to_owned(), value);
            }
            Ok(Json::Object(object))
        })
        .collect()
}

/// A value by its storage class: INTEGER and REAL as numbers (a non-finite REAL as its name),
/// TEXT as a string, BLOB as base64, NULL as null.
fn value_to_json(value: SqliteValueRef<'_>) -> Result<Json, sqlx::error::BoxDynError> {
    if value.is_null() {
        return Ok(Json::Null);
    }
    let class = value.type_info().name().to_owned();
    Ok(match class.as_str() {
        "INTEGER" => Json::from(<i64 as Decode<Sqlite>>::decode(value)?),
        "REAL" => {
            let x = <f64 as Decode<Sqlite>>::decode(value)?;
            serde_json::Number::from_f64(x).map_or_else(|| Json::String(x.to_string()), Json::Number)
        }
        "BLOB" => Json::String(BASE64.encode(<&[u8] as Decode<Sqlite>>::decode(value)?)),
        _ => Json::String(<String as Decode<Sqlite>>::decode(value)?),
    })
}
