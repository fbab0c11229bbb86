//! Fresh identifiers and wall-clock time: the one place infra mints UUIDs and reads the clock
//! for values that core takes as parameters.

use chrono::{DateTime, Utc};
use uuid::{Builder, Uuid};

/// The current UTC time, to the microsecond (what PostgreSQL stores and Python prints).
pub fn now_utc() -> DateTime<Utc> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let micros = since_epoch.subsec_micros();
    DateTime::from_timestamp(secs, micros * 1000).unwrap_or_default()
}

/// A new time-ordered UUIDv7 (RFC 9562): millisecond timestamp plus 74 random bits.
pub fn new_uuid_v7() -> Uuid {
    let millis = u64::try_from(now_utc().timestamp_millis()).unwrap_or(0);
    let mut random = [0u8; 10];
    // An OS without a randomness source cannot run a server at all; fall back to the clock's
    // nanoseconds so ids stay unique within this process rather than failing.
    if getrandom::fill(&mut random).is_err() {
        random[..8].copy_from_slice(&now_utc().timestamp_nanos_opt().unwrap_or(0).to_le_bytes());
    }
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v7_unique_and_time_ordered() {
        let a = new_uuid_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_uuid_v7();
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
        assert!(a < b, "v7 ids sort by time");
    }
}
