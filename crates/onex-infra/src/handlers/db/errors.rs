//! Database failures as `SpiError`s: PostgreSQL SQLSTATE classes and SQLite result codes mapped
//! to the categories that decide retries, in messages that never carry the connection URL or
//! the values of the row that failed.

use onex_core::error::ErrorCode;
use onex_spi::SpiError;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use crate::error::codes;

/// The code for PostgreSQL SQLSTATE `state`.
///
/// Unique (23505) and exclusion (23P01) violations are conflicts; other integrity violations
/// (23), data exceptions (22), syntax/undefined objects (42, but 42501 is a missing
/// privilege), cardinality (21), unsupported features (0A) and `RAISE EXCEPTION` (P0001) are
/// the request's fault; serialization failures (40001) and deadlocks (40P01) roll the
/// transaction back and succeed when run again, so they are retryable; a cancelled statement
/// (57014, the statement timeout) is a timeout; connection exceptions (08), insufficient
/// resources (53) and server shutdown (57P01–57P03) mean the server is unavailable; invalid
/// credentials (28) and a missing privilege are auth.
pub(crate) fn postgres_code(state: &str) -> ErrorCode {
    match state {
        "23505" | "23P01" => codes::DB_CONFLICT,
        "40001" | "40P01" => codes::DB_SERIALIZATION,
        "57014" => codes::DB_TIMEOUT,
        "57P01" | "57P02" | "57P03" => codes::DB_UNAVAILABLE,
        "42501" => codes::DB_AUTH,
        "P0001" => codes::DB_REFUSED,
        _ => match state.get(..2) {
            Some("21" | "22" | "23" | "42" | "0A") => codes::DB_REFUSED,
            Some("08" | "53") => codes::DB_UNAVAILABLE,
            Some("28") => codes::DB_AUTH,
            _ => codes::DB_FAILED,
        },
    }
}

/// The code for a SQLite (extended) result code.
///
/// UNIQUE (2067) and PRIMARY KEY (1555) constraint failures are conflicts; other constraints
/// (19), SQL errors such as syntax or a missing table (1), a datatype mismatch (20), a value too
/// big (18) and a parameter out of range (25) are the request's fault; an interrupted statement
/// (9: the statement timeout's progress handler stopped it) is a timeout; BUSY (5), LOCKED (6),
/// I/O errors (10), a full disk (13) and CANTOPEN (14) are unavailability; AUTH (23) is auth.
pub(crate) fn sqlite_code(extended: u32) -> ErrorCode {
    match extended {
        2067 | 1555 => codes::DB_CONFLICT,
        _ => match extended & 0xff {
            1 | 18 | 19 | 20 | 25 => codes::DB_REFUSED,
            9 => codes::DB_TIMEOUT,
            5 | 6 | 10 | 13 | 14 => codes::DB_UNAVAILABLE,
            23 => codes::DB_AUTH,
            _ => codes::DB_FAILED,
        },
    }
}

/// The code of a database's own error.
fn database_code(db: &dyn DatabaseError) -> ErrorCode {
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        postgres_code(pg.code())
    } else if db.try_downcast_ref::<SqliteError>().is_some() {
        db.code().and_then(|c| c.parse::<u32>().ok()).map_or(codes::DB_FAILED, sqlite_code)
    } else {
        codes::DB_FAILED
    }
}

/// The `SpiError` for `error`; `prefix` names the envelope, operation and statement.
///
/// Pool timeouts, a closed pool, I/O, TLS and protocol failures and a crashed SQLite worker are
/// `DB_UNAVAILABLE`; a database's own error is mapped by its SQLSTATE / result code; a
/// configuration error is described without its text or source (parsers quote the URL back).
/// Only the database's primary message is kept, never its detail (which quotes row values).
pub(crate) fn db_error(prefix: &str, error: sqlx::Error) -> SpiError {
    let (code, what) = match &error {
        sqlx::Error::PoolTimedOut => {
            (codes::DB_UNAVAILABLE, "no database connection became free within acquire_timeout_ms".to_owned())
        }
        sqlx::Error::PoolClosed => (codes::DB_UNAVAILABLE, "the connection pool is closed".to_owned()),
        sqlx::Error::Io(e) => (codes::DB_UNAVAILABLE, format!("the connection to the database failed: {e}")),
        sqlx::Error::Tls(e) => (codes::DB_UNAVAILABLE, format!("TLS with the database failed: {e}")),
        sqlx::Error::Protocol(e) => (codes::DB_UNAVAILABLE, format!("database protocol error: {e}")),
        sqlx::Error::WorkerCrashed => (codes::DB_UNAVAILABLE, "the SQLite worker thread stopped".to_owned()),
        sqlx::Error::Configuration(_) => {
            let message = format!("{prefix}: the database URL or connection options are invalid");
            return SpiError::new(codes::DB_CONFIG, message);
        }
        sqlx::Error::Database(db) => {
            let code = database_code(db.as_ref());
            let what = match (db.code(), db.constraint()) {
                (Some(state), Some(constraint)) => {
                    format!("the database refused the statement ({state}, constraint `{constraint}`): {}", db.message())
                }
                (Some(state), None) => format!("the database refused the statement ({state}): {}", db.message()),
                (None, _) => format!("the database refused the statement: {}", db.message()),
            };
            return SpiError::new(code, format!("{prefix}: {what}"));
        }
        sqlx::Error::Encode(e) => (codes::DB_UNSUPPORTED_TYPE, format!("a parameter cannot be encoded: {e}")),
        other => (codes::DB_FAILED, other.to_string()),
    };
    SpiError::new(code, format!("{prefix}: {what}")).with_source(error)
}

/// The error for a statement that outlived the client-side guard.
pub(crate) fn guard_timeout(prefix: &str, after: std::time::Duration) -> SpiError {
    SpiError::new(
        codes::DB_TIMEOUT,
        format!("{prefix}: no answer from the database within {} ms; the statement was abandoned", after.as_millis()),
    )
}

#[cfg(test)]
mod tests {
    use onex_core::error::ErrorCategory;

    use super::*;

    #[test]
    fn postgres_states_map_to_their_categories() {
        let cases = [
            ("23505", ErrorCategory::Conflict),
            ("23P01", ErrorCategory::Conflict),
            ("23503", ErrorCategory::Validation),
            ("23502", ErrorCategory::Validation),
            ("42601", ErrorCategory::Validation),
            ("42P01", ErrorCategory::Validation),
            ("22P02", ErrorCategory::Validation),
            ("40001", ErrorCategory::Unavailable),
            ("40P01", ErrorCategory::Unavailable),
            ("57014", ErrorCategory::Timeout),
            ("57P01", ErrorCategory::Unavailable),
            ("08006", ErrorCategory::Unavailable),
            ("53300", ErrorCategory::Unavailable),
            ("28P01", ErrorCategory::Auth),
            ("42501", ErrorCategory::Auth),
            ("XX000", ErrorCategory::Internal),
        ];
        for (state, category) in cases {
            assert_eq!(postgres_code(state).category(), category, "{state}");
        }
        assert!(postgres_code("40001").retryable() && postgres_code("40P01").retryable());
    }

    #[test]
    fn sqlite_codes_map_to_their_categories() {
        assert_eq!(sqlite_code(2067), codes::DB_CONFLICT);
        assert_eq!(sqlite_code(1555), codes::DB_CONFLICT);
        assert_eq!(sqlite_code(787), codes::DB_REFUSED); // FOREIGN KEY
        assert_eq!(sqlite_code(1), codes::DB_REFUSED);
        assert_eq!(sqlite_code(9), codes::DB_TIMEOUT);
        assert_eq!(sqlite_code(5), codes::DB_UNAVAILABLE);
        assert_eq!(sqlite_code(517), codes::DB_UNAVAILABLE); // BUSY_SNAPSHOT
    }

    #[test]
    fn availability_failures_are_retryable_and_configuration_is_not_quoted() {
        for error in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            let e = db_error("envelope x: db.query", error);
            assert_eq!(e.code(), codes::DB_UNAVAILABLE.as_str());
            assert!(e.retryable());
        }
        let e = db_error("p", sqlx::Error::Configuration("postgres://u:s3cret@h/db".into()));
        assert!(!format!("{e} {e:?}").contains("s3cret"));
    }
}
