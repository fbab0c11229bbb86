//! Stores backed by SQL databases (SQLite for one node, PostgreSQL for a fleet): the
//! `onex_spi` store traits over `sqlx` pools, with their schemas as embedded migrations.

mod error;
pub mod migrations;
mod pools;
mod shared;
pub mod stamp_postgres;
pub mod stamp_sqlite;
pub mod state_postgres;
mod state_rows;
pub mod state_sqlite;
pub mod webhook_postgres;
pub mod webhook_sqlite;

use std::collections::HashSet;

use onex_spi::{SaveOutcome, SpiError, SpiResult, StampRecord};

pub use migrations::{migrate_postgres, migrate_sqlite};
pub use stamp_postgres::PostgresStampStore;
pub use stamp_sqlite::SqliteStampStore;
pub use state_postgres::PostgresStateStore;
pub use state_sqlite::SqliteStateStore;

use crate::error::codes;

/// `size` as a `file_size` BIGINT.
fn db_size(size: u64) -> SpiResult<i64> {
    i64::try_from(size)
        .map_err(|_| SpiError::new(codes::BAD_PAYLOAD, format!("file size {size} does not fit a BIGINT")))
}

/// A stored `file_size` of the stamp `file_hash` as a size.
fn stored_size(size: i64, file_hash: &str) -> SpiResult<u64> {
    u64::try_from(size).map_err(|_| {
        SpiError::new(codes::STORE_FAILED, format!("stored stamp {file_hash} has a negative file size ({size})"))
    })
}

/// Per-record outcomes of a batch statement that inserted the `(file_hash, namespace)` keys
/// `inserted` (its `RETURNING` rows), rows having been inserted in input order: the first
/// record of an inserted key is `Inserted`, every other record `AlreadyExists`.
fn batch_outcomes(records: &[StampRecord], inserted: Vec<(String, String)>) -> Vec<SaveOutcome> {
    let mut inserted: HashSet<(String, String)> = inserted.into_iter().collect();
    records
        .iter()
        .map(|r| {
            if inserted.remove(&(r.file_hash.clone(), r.namespace.clone())) {
                SaveOutcome::Inserted
            } else {
                SaveOutcome::AlreadyExists
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, namespace: &str) -> StampRecord {
        StampRecord {
            file_hash: hash.to_owned(),
            file_path: None,
            file_size: 1,
            content_type: "text/plain".to_owned(),
            stamp: serde_json::Value::Null,
            namespace: namespace.to_owned(),
        }
    }

    #[test]
    fn only_the_first_record_of_an_inserted_key_counts_as_inserted() {
        let records = [record("a", "n"), record("b", "n"), record("a", "n"), record("a", "m"), record("c", "n")];
        let inserted = [("c", "n"), ("a", "n"), ("a", "m")].map(|(h, n)| (h.to_owned(), n.to_owned()));
        use SaveOutcome::{AlreadyExists as A, Inserted as I};
        assert_eq!(batch_outcomes(&records, inserted.into()), [I, A, A, I, I]);
    }

    #[test]
    fn sizes_beyond_bigint_are_refused_and_negative_stored_sizes_reported() {
        assert_eq!(db_size(42).unwrap(), 42);
        assert_eq!(db_size(u64::MAX).unwrap_err().code(), codes::BAD_PAYLOAD.as_str());
        assert_eq!(stored_size(-1, "h").unwrap_err().code(), codes::STORE_FAILED.as_str());
    }
}
