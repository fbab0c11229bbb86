//! Turns `sqlx` failures into `SpiError`s: availability problems are retryable, the rest are
//! not, and no message or source ever carries the connection URL (which may hold a password).

use onex_spi::SpiError;
use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use crate::error::codes;

/// The `SpiError` for `error`, raised while `doing` (e.g. "saving a stamp").
///
/// Pool timeouts, a closed pool, I/O, TLS and protocol failures, a crashed SQLite worker,
/// PostgreSQL connection/resource/shutdown states and SQLite busy/locked/cannot-open are
/// `STORE_UNAVAILABLE` (retryable); deadlocks and serialization failures are `STORE_CONTENTION`
/// (retryable); a failed migration is `STORE_MIGRATION`; anything else is `STORE_FAILED`. A configuration error (a bad URL) is described without its text and without
/// its source, since parsers may quote the URL back.
pub(crate) fn store_error(doing: &str, error: sqlx::Error) -> SpiError {
    let code = if is_unavailable(&error) {
        codes::STORE_UNAVAILABLE
    } else if is_contention(&error) {
        codes::STORE_CONTENTION
    } else if matches!(error, sqlx::Error::Migrate(_)) {
        codes::STORE_MIGRATION
    } else {
        codes::STORE_FAILED
    };
    match error {
        sqlx::Error::Configuration(_) => {
            SpiError::new(code, format!("{doing}: the database URL or connection options are invalid"))
        }
        error => SpiError::new(code, format!("{doing}: {}", describe(&error))).with_source(error),
    }
}

/// Whether the database aborted the statement for contention: PostgreSQL deadlock (40P01) or
/// serialization failure (40001). Nothing of the transaction is kept; running it again works.
fn is_contention(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.try_downcast_ref::<PgDatabaseError>().is_some_and(|pg| matches!(pg.code(), "40P01" | "40001"))
        }
        _ => false,
    }
}

/// Whether `error` means the database cannot be reached right now.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => is_unavailable_state(db.as_ref()),
        sqlx::Error::Migrate(m) => match m.as_ref() {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => is_unavailable(inner),
            _ => false,
        },
        _ => false,
    }
}

/// PostgreSQL connection exceptions (08), insufficient resources (53), shutdown / cannot
/// connect now (57P01–57P03); SQLite BUSY (5), LOCKED (6), CANTOPEN (14) and their extended codes.
fn is_unavailable_state(db: &dyn DatabaseError) -> bool {
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        let state = pg.code();
        state.starts_with("08") || state.starts_with("53") || matches!(state, "57P01" | "57P02" | "57P03")
    } else if db.try_downcast_ref::<SqliteError>().is_some() {
        let primary = db.code().and_then(|c| c.parse::<u32>().ok()).map(|c| c & 0xff);
        matches!(primary, Some(5 | 6 | 14))
    } else {
        false
    }
}

/// What went wrong, in words; built from the parts of `sqlx::Error` that hold no credentials.
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool is closed".to_owned(),
        sqlx::Error::Io(e) => format!("cannot reach the database: {e}"),
        sqlx::Error::Tls(e) => format!("TLS with the database failed: {e}"),
        sqlx::Error::Protocol(e) => format!("database protocol error: {e}"),
        sqlx::Error::WorkerCrashed => "the SQLite worker thread stopped".to_owned(),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("the database refused the statement ({code}): {}", db.message()),
            None => format!("the database refused the statement: {}", db.message()),
        },
        sqlx::Error::Migrate(m) => format!("schema migration failed: {m}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use onex_core::error::ErrorCategory;

    use super::*;

    #[test]
    fn availability_failures_are_retryable() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for error in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(refused)] {
            let e = store_error("saving a stamp", error);
            assert_eq!(e.code(), codes::STORE_UNAVAILABLE.as_str());
            assert_eq!(e.category(), ErrorCategory::Unavailable);
            assert!(e.retryable());
        }
    }

    #[test]
    fn other_failures_are_store_failed() {
        let e = store_error("finding a stamp", sqlx::Error::RowNotFound);
        assert_eq!(e.code(), codes::STORE_FAILED.as_str());
        assert!(!e.retryable());
        assert!(e.message().starts_with("finding a stamp: "), "{}", e.message());
    }

    #[test]
    fn migration_failures_have_their_own_code() {
        let e = store_error("migrating", sqlx::Error::Migrate(Box::new(MigrateError::VersionMissing(7))));
        assert_eq!(e.code(), codes::STORE_MIGRATION.as_str());
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = store_error("migrating", sqlx::Error::Migrate(Box::new(MigrateError::Execute(refused.into()))));
        assert_eq!(e.code(), codes::STORE_UNAVAILABLE.as_str());
    }

    #[test]
    fn configuration_errors_do_not_echo_the_url() {
        let url = "postgres://u:s3cret@127.0.0.1:1/db";
        let e = store_error("connecting", sqlx::Error::Configuration(format!("bad URL {url}").into()));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
        assert!(!format!("{e:?}").contains(url), "{e:?}");
    }
}
