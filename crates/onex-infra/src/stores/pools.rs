//! Opening the pools of the SQL stores: one set of connection settings per database, shared by
//! every store on it (stamps, runtime state), with the schema brought up to date on open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use onex_spi::{SpiError, SpiResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

use super::error::store_error;
use super::migrations::{migrate_postgres, migrate_sqlite};
use crate::error::codes;

/// How long [`connect_postgres`] waits for the first connection before reporting the server
/// unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement waits for a pooled connection (sqlx's default is 30 s). While the
/// server is down every call fails after this, as `STORE_UNAVAILABLE`, and is retried by its
/// caller, instead of holding a request for half a minute.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How much of a store a power loss may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Nothing committed: every commit waits for the disk (`synchronous = FULL`). For runtime
    /// state, whose commits let the bus forget the input.
    EveryCommit,
    /// The last commits, never the file (`synchronous = NORMAL`). For data that can be computed
    /// again from its source, such as stamps.
    Recomputable,
}

/// The connection settings of every SQLite store: the file at `path` (created if missing), a
/// WAL journal synchronised as `durability` says, and a 32 MiB page cache per connection (the
/// default is 2 MiB), so the index pages of large tables stay in memory and inserts do not slow
/// as tables grow.
pub(crate) fn sqlite_options(path: &Path, durability: Durability) -> SqliteConnectOptions {
    let synchronous = match durability {
        Durability::EveryCommit => SqliteSynchronous::Full,
        Durability::Recomputable => SqliteSynchronous::Normal,
    };
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .pragma("cache_size", "-32768")
}

/// Opens (creating it and its parent directories if missing) the SQLite database at `path`
/// with [`sqlite_options`] and brings its schema up to date; `what` names the store in errors
/// (e.g. "the SQLite state store").
pub(crate) async fn open_sqlite(path: &Path, what: &str, durability: Durability) -> SpiResult<SqlitePool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            SpiError::new(codes::STORE_UNAVAILABLE, format!("creating the directory {}", dir.display())).with_source(e)
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .connect_with(sqlite_options(path, durability))
        .await
        .map_err(|e| store_error(&format!("opening {what} {}", path.display()), e))?;
    migrate_sqlite(&pool).await?;
    Ok(pool)
}

/// Connections of the bookkeeping pool of a state store (see [`bookkeeping_postgres`]).
const BOOKKEEPING_CONNECTIONS: u32 = 2;

/// A second, small pool on `pool`'s database for the state store's bookkeeping: outbox claims
/// and published marks, lease renewals and take-overs, retention sweeps. Its commits do not
/// wait for the disk (`synchronous_commit = off`): a crash may take back the last ones, and
/// each is safe to lose (a claim or mark lost means a message published again, a renewal or
/// take-over lost means a run taken over again later). Everything that lets the bus forget an
/// input (transitions, replies, runs, journals) stays on the durable pool. Sharing the WAL
/// with the durable commits, the bookkeeping no longer adds an fsync of its own to theirs.
pub(crate) fn bookkeeping_postgres(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options()).clone().options([("synchronous_commit", "off")]);
    PgPoolOptions::new()
        .max_connections(BOOKKEEPING_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// The SQLite twin of [`bookkeeping_postgres`]: one connection on the same file whose commits
/// do not wait for the disk (`synchronous = NORMAL`, in WAL mode durable against a crash of the
/// process, not of the machine).
pub(crate) fn bookkeeping_sqlite(pool: &SqlitePool) -> SqlitePool {
    let options = (*pool.connect_options()).clone().synchronous(SqliteSynchronous::Normal);
    SqlitePoolOptions::new().max_connections(1).connect_lazy_with(options)
}

/// Connects to the PostgreSQL server at `url`, brings the schema up to date and returns a pool
/// of at most `max_connections`; `what` names the store in errors. A refused connection fails
/// at once and a silent server after 10 s, both as `STORE_UNAVAILABLE`; no error repeats the
/// URL.
pub(crate) async fn connect_postgres(url: &str, max_connections: u32, what: &str) -> SpiResult<PgPool> {
    let doing = format!("connecting to {what}");
    let options = PgConnectOptions::from_str(url).map_err(|e| store_error(&doing, e))?;
    // One direct connection first: a pool would retry a refused connection until its acquire
    // timeout.
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| SpiError::new(codes::STORE_UNAVAILABLE, format!("{doing}: no answer within 10 s")))?
        .map_err(|e| store_error(&doing, e))?;
    // The server answers; a failed goodbye on this connection changes nothing.
    let _closed = conn.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No ping before lending a connection (one more round trip per statement): one that
        // died fails its statement as `STORE_UNAVAILABLE`, which the caller retries, and the
        // pool replaces it.
        .test_before_acquire(false)
        .connect_lazy_with(options);
    // Migrating through the pool (not `&mut PgConnection`) keeps this future `Send` for every
    // caller, including `async_trait` methods (rustc's higher-ranked Send check).
    migrate_postgres(&pool).await?;
    Ok(pool)
}
