//! The db handler on PostgreSQL: a pool whose connections carry the statement timeout,
//! JSON parameters bound by their JSON type, rows decoded to JSON.
//!
//! The statement timeout is the server's `statement_timeout`, set for every pooled connection
//! in its startup packet (`options=-c statement_timeout=…`): the server itself cancels a
//! statement that runs too long (SQLSTATE 57014), so the work really stops, the connection
//! stays usable, and it costs no round trip per statement (a `SET LOCAL` would need a
//! transaction and two more). Dropping a future on the client (a tokio timeout) would leave
//! the server running the statement, and the connection busy until it ends; a tokio timeout is
//! kept only as a guard, a little longer than the server's, against a silent network.

use std::time::Duration;

use futures_core::Stream;
use onex_spi::{SpiError, SpiResult};
use serde_json::{Map, Value as Json};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgTypeInfo};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Column, Connection, Either, Executor, PgConnection, Postgres, Row};

use super::Outcome;
use super::config::PoolSettings;
use super::errors::{db_error, guard_timeout};
use super::pg_json::{Unconvertible, value_to_json};
use super::request::{Cx, Statement};
use crate::error::codes;

/// How much longer than the server's statement timeout the client waits before giving up.
const GUARD_GRACE: Duration = Duration::from_secs(2);

/// A pool on one PostgreSQL database.
pub(crate) struct PgBackend {
    pool: PgPool,
    guard: Option<Duration>,
}

/// A NULL parameter declared without a type (OID 0), so the server infers it from the
/// statement (`INSERT … VALUES ($1)` into an integer column takes a NULL without a cast).
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Ok(IsNull::Yes)
    }
}

impl PgBackend {
    /// Connects once (so a wrong address or password fails the start, not the first request),
    /// then opens the pool. `target` describes the server without credentials.
    pub async fn connect(options: PgConnectOptions, settings: &PoolSettings, target: &str) -> SpiResult<Self> {
        let mut options = options;
        if let Some(timeout) = settings.statement_timeout {
            options = options.options([("statement_timeout", timeout.as_millis())]);
        }
        if options.get_application_name().is_none() {
            options = options.application_name("onex-runtime-host");
        }
        let doing = format!("db: connecting to {target}");
        let conn = tokio::time::timeout(settings.acquire_timeout, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                SpiError::new(
                    codes::DB_UNAVAILABLE,
                    format!("{doing}: no answer within {} ms", settings.acquire_timeout.as_millis()),
                )
            })?
            .map_err(|e| db_error(&doing, e))?;
        // The server answers; a failed goodbye on this connection changes nothing.
        let _closed = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self { pool, guard: settings.statement_timeout.map(|t| t + GUARD_GRACE) })
    }

    /// Runs `future`, giving up after the guard; `prefix` (built only on failure) names the
    /// request in errors.
    async fn guarded<T>(
        &self,
        prefix: impl Fn() -> String,
        future: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> SpiResult<T> {
        match self.guard {
            Some(limit) => tokio::time::timeout(limit, future)
                .await
                .map_err(|_| guard_timeout(&prefix(), limit))?
                .map_err(|e| db_error(&prefix(), e)),
            None => future.await.map_err(|e| db_error(&prefix(), e)),
        }
    }

    /// The rows of one statement.
    pub async fn query(&self, cx: Cx<'_>, statement: &Statement) -> SpiResult<Vec<Json>> {
        let query = bind(cx, statement)?;
        let rows = self.guarded(|| cx.prefix(), query.fetch_all(&self.pool)).await?;
        rows_to_json(cx, &rows)
    }

    /// The rows affected by one statement.
    pub async fn execute(&self, cx: Cx<'_>, statement: &Statement) -> SpiResult<u64> {
        let query = bind(cx, statement)?;
        Ok(self.guarded(|| cx.prefix(), query.execute(&self.pool)).await?.rows_affected())
    }

    /// Runs `statements` in one transaction: every one or none.
    pub async fn transaction(&self, cx: Cx<'_>, statements: &[Statement]) -> SpiResult<Vec<Outcome>> {
        let mut tx = self.guarded(|| cx.prefix(), self.pool.begin()).await?;
        let mut outcomes = Vec::with_capacity(statements.len());
        for (i, statement) in statements.iter().enumerate() {
            let cx = cx.at(i);
            let prefix = cx.prefix();
            let run = async {
                let query = bind(cx, statement)?;
                let mut stream = (&mut *tx).fetch_many(query);
                let (mut rows, mut rows_affected) = (Vec::new(), 0);
                while let Some(item) = next(&mut stream).await {
                    match item {
                        Ok(Either::Left(done)) => rows_affected += done.rows_affected(),
                        Ok(Either::Right(row)) => rows.push(row),
                        Err(e) => return Err(db_error(&prefix, e)),
                    }
                }
                drop(stream);
                Ok(Outcome { rows: rows_to_json(cx, &rows)?, rows_affected })
            };
            let result = match self.guard {
                Some(limit) => {
                    tokio::time::timeout(limit, run).await.unwrap_or_else(|_| Err(guard_timeout(&prefix, limit)))
                }
                None => run.await,
            };
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    // Dropping the transaction would roll it back too; saying so keeps the
                    // connection clean before it returns to the pool. A failed rollback (the
                    // connection is gone) leaves nothing committed either.
                    let _rolled_back = tokio::time::timeout(GUARD_GRACE, tx.rollback()).await;
                    return Err(e);
                }
            }
        }
        self.guarded(|| format!("{}: commit", cx.prefix()), tx.commit()).await?;
        Ok(outcomes)
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT 1` through the pool.
    pub async fn ping(&self) -> SpiResult<()> {
        self.guarded(|| "db health".to_owned(), sqlx::query("SELECT 1").execute(&self.pool)).await.map(|_| ())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The next item of a stream.
pub(crate) async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// The query for `statement`: each JSON parameter bound by its type (null untyped, bool,
/// integer as int8, other numbers as float8, string as text, object/array as jsonb).
///
/// sqlx caches prepared statements by SQL text alone, with the parameter types of their first
/// use; the same SQL bound later with other JSON types would be sent in a binary format the
/// server reads as the first types. So the parameter types are appended to the SQL as a
/// comment: each combination is its own cached statement.
fn bind<'q>(cx: Cx<'_>, statement: &'q Statement) -> SpiResult<Query<'q, Postgres, PgArguments>> {
    let mut text = String::with_capacity(statement.sql.len() + 24 + statement.params.len());
    text.push_str(&statement.sql);
    if !statement.params.is_empty() {
        text.push_str("\n-- onex params: ");
        for (i, param) in statement.params.iter().enumerate() {
            text.push(match param {
                Json::Null => 'n',
                Json::Bool(_) => 'b',
                Json::Number(n) if n.is_i64() => 'i',
                Json::Number(n) if n.is_u64() => {
                    return Err(SpiError::new(
                        codes::DB_UNSUPPORTED_TYPE,
                        format!(
                            "{}: `{}` is {n}, beyond a 64-bit integer; pass it as a string and cast it (`$N::numeric`)",
                            cx.prefix(),
                            cx.field(&format!("params[{i}]"))
                        ),
                    ));
                }
                Json::Number(_) => 'f',
                Json::String(_) => 't',
                Json::Array(_) | Json::Object(_) => 'j',
            });
        }
    }
    let mut query = sqlx::query(AssertSqlSafe(text));
    for param in &statement.params {
        query = match param {
            Json::Null => query.bind(UntypedNull),
            Json::Bool(b) => query.bind(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => query.bind(s.as_str()),
            json => query.bind(sqlx::types::Json(json)),
        };
    }
    Ok(query)
}

/// Every row as a JSON object keyed by column name (a later column of the same name wins).
fn rows_to_json(cx: Cx<'_>, rows: &[PgRow]) -> SpiResult<Vec<Json>> {
    rows.iter()
        .map(|row| {
            let mut object = Map::new();
            for (i, column) in row.columns().iter().enumerate() {
                let raw = row.try_get_raw(i).map_err(|e| db_error(&cx.prefix(), e))?;
                let value = value_to_json(raw).map_err(|why| unconvertible(&cx.prefix(), column.name(), why))?;
                object.insert(column.name().to_owned(), value);
            }
            Ok(Json::Object(object))
        })
        .collect()
}

fn unconvertible(prefix: &str, column: &str, why: Unconvertible) -> SpiError {
    match why {
        // sqlx spells built-in types in capitals (`INTERVAL`); SQL users read them lower-case.
        Unconvertible::Type(ty) => SpiError::new(
            codes::DB_UNSUPPORTED_TYPE,
            format!(
                "{prefix}: column `{column}` has type `{}`, which has no JSON form here; cast it in the SQL \
                 (`{column}::text`)",
                ty.to_lowercase()
            ),
        ),
        Unconvertible::Malformed(what) => {
            SpiError::new(codes::DB_FAILED, format!("{prefix}: column `{column}`: the server sent a malformed {what}"))
        }
    }
}
