//! Conversions between `StateStore` values and table rows, shared by the SQLite and PostgreSQL
//! state stores: versions and ids as BIGINT, headers and journal entries as JSON, and the
//! version-conflict error.

use onex_core::workflow::JournalEntry;
use onex_spi::{HeaderMap, OutboundMessage, OutboxEntry, SpiError, SpiResult, TransitionCommit};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::error::codes;

/// A `version` (or other counter) as a BIGINT.
pub(crate) fn db_version(version: u64) -> SpiResult<i64> {
    i64::try_from(version)
        .map_err(|_| SpiError::new(codes::BAD_PAYLOAD, format!("version {version} does not fit a BIGINT")))
}

/// Outbox ids as BIGINTs; an id beyond BIGINT names no row and is left out.
pub(crate) fn db_ids(ids: &[u64]) -> Vec<i64> {
    ids.iter().filter_map(|&id| i64::try_from(id).ok()).collect()
}

/// A stored BIGINT counter (`version`, outbox `id`) named `what`, which is never negative.
pub(crate) fn stored_u64(value: i64, what: &str) -> SpiResult<u64> {
    u64::try_from(value).map_err(|_| SpiError::new(codes::STORE_FAILED, format!("stored {what} is negative ({value})")))
}

/// The `conflict` error of a commit whose expected version is not the stored one (`found`,
/// `None` when the entity has no state).
pub(crate) fn version_conflict(commit: &TransitionCommit, found: Option<i64>) -> SpiError {
    let show = |v: Option<String>| v.unwrap_or_else(|| "none (a new entity)".to_owned());
    SpiError::new(
        codes::STATE_CONFLICT,
        format!(
            "state machine {} entity {}: expected version {}, found {}",
            commit.fsm,
            commit.entity_key,
            show(commit.expected_version.map(|v| v.to_string())),
            show(found.map(|v| v.to_string())),
        ),
    )
}

/// Headers as a JSON object.
pub(crate) fn headers_json(headers: &HeaderMap) -> Json {
    // `HeaderMap`'s own serde form, the one `outbox_entry` reads back; a map of strings always
    // serialises.
    serde_json::to_value(headers).unwrap_or_default()
}

/// An outbox row as an entry.
pub(crate) fn outbox_entry(
    id: i64,
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Json,
) -> SpiResult<OutboxEntry> {
    let headers = serde_json::from_value(headers).map_err(|e| {
        SpiError::new(codes::STORE_FAILED, format!("outbox entry {id} has headers that are not a string map"))
            .with_source(e)
    })?;
    let (payload, headers) = (payload.into(), std::sync::Arc::new(headers));
    Ok(OutboxEntry {
        id: stored_u64(id, "outbox id")?,
        message: OutboundMessage { topic: topic.into(), key, payload, headers },
    })
}

/// A journal entry as JSON.
pub(crate) fn entry_json(entry: &JournalEntry) -> SpiResult<Json> {
    serde_json::to_value(entry)
        .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, "encoding a journal entry as JSON").with_source(e))
}

/// The stored journal entry `seq` of run `run_id`.
pub(crate) fn journal_entry(run_id: Uuid, seq: i64, entry: Json) -> SpiResult<JournalEntry> {
    serde_json::from_value(entry).map_err(|e| {
        SpiError::new(codes::STORE_FAILED, format!("journal entry {seq} of run {run_id} is not a journal entry"))
            .with_source(e)
    })
}

/// JSON text stored in a SQLite column, `what` naming it in errors.
pub(crate) fn parse_json(text: &str, what: &str) -> SpiResult<Json> {
    serde_json::from_str(text)
        .map_err(|e| SpiError::new(codes::STORE_FAILED, format!("{what} is not valid JSON")).with_source(e))
}

/// A stored run id.
pub(crate) fn parse_run_id(text: &str) -> SpiResult<Uuid> {
    Uuid::parse_str(text)
        .map_err(|e| SpiError::new(codes::STORE_FAILED, format!("stored run id {text:?} is not a UUID")).with_source(e))
}

#[cfg(test)]
mod tests {
    use onex_core::error::ErrorCategory;

    use super::*;

    fn commit(expected_version: Option<u64>) -> TransitionCommit {
        TransitionCommit {
            envelope_id: Uuid::from_u128(1),
            fsm: "order".to_owned(),
            entity_key: "o-1".to_owned(),
            expected_version,
            state: "paid".to_owned(),
            outbox: Vec::new(),
            reply: Json::Null,
        }
    }

    #[test]
    fn a_conflict_names_the_entity_and_both_versions() {
        let e = version_conflict(&commit(Some(3)), Some(5));
        assert_eq!(e.code(), codes::STATE_CONFLICT.as_str());
        assert_eq!(e.category(), ErrorCategory::Conflict);
        assert_eq!(e.message(), "state machine order entity o-1: expected version 3, found 5");
        let e = version_conflict(&commit(None), Some(1));
        assert_eq!(e.message(), "state machine order entity o-1: expected version none (a new entity), found 1");
        let e = version_conflict(&commit(Some(1)), None);
        assert_eq!(e.message(), "state machine order entity o-1: expected version 1, found none (a new entity)");
    }

    #[test]
    fn counters_beyond_bigint_are_refused_or_skipped() {
        assert_eq!(db_version(7).unwrap(), 7);
        assert_eq!(db_version(u64::MAX).unwrap_err().code(), codes::BAD_PAYLOAD.as_str());
        assert_eq!(db_ids(&[1, u64::MAX, 2]), [1, 2]);
        assert_eq!(stored_u64(-1, "version").unwrap_err().code(), codes::STORE_FAILED.as_str());
    }

    #[test]
    fn headers_round_trip_and_bad_ones_are_reported() {
        let headers = HeaderMap::from([("onex-envelope-id", "x")]);
        let entry = outbox_entry(4, "t".to_owned(), None, vec![0, 255], headers_json(&headers)).unwrap();
        assert_eq!(*entry.message.headers, headers);
        assert_eq!(entry.id, 4);
        let bad = outbox_entry(4, "t".to_owned(), None, Vec::new(), serde_json::json!({"n": 1}));
        assert_eq!(bad.unwrap_err().code(), codes::STORE_FAILED.as_str());
    }
}
