//! Fresh identifiers and wall-clock time: the one place infra mints UUIDs and reads the clock
//! for values that core takes as parameters.

use chrono::{DateTime, Utc};
use onex_core::envelope::Minted;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::{Builder, Uuid};

/// The current UTC time, to the microsecond (what PostgreSQL stores and Python prints).
pub fn now_utc() -> DateTime<Utc> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let micros = since_epoch.subsec_micros();
    DateTime::from_timestamp(secs, micros * 1000).unwrap_or_default()
}

/// A new time-ordered UUIDv7 (RFC 9562): millisecond timestamp plus 74 bits that are unique
/// per process (a counter mixed with a per-process random seed). Ids are identifiers, not
/// secrets: minting one costs no system call.
pub fn new_uuid_v7() -> Uuid {
    let millis = u64::try_from(now_utc().timestamp_millis()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = *SEED.get_or_init(seed);
    let (a, b) = (splitmix64(seed ^ n), splitmix64(seed.rotate_left(32) ^ n));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// A fresh envelope id and the current time, for what a request leaves out.
pub fn minted() -> Minted {
    Minted { envelope_id: new_uuid_v7(), timestamp: now_utc(), correlation_id: None }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: OnceLock<u64> = OnceLock::new();

/// A random seed for this process. An OS without a randomness source falls back to the
/// clock's nanoseconds: ids stay unique within the process either way (the counter).
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return now_utc().timestamp_nanos_opt().unwrap_or(0).unsigned_abs();
    }
    u64::from_le_bytes(bytes)
}

/// SplitMix64: a bijective mixer, so distinct counters give distinct outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

    #[test]
    fn ids_minted_in_one_millisecond_are_distinct() {
        let ids: std::collections::HashSet<Uuid> = (0..100_000).map(|_| new_uuid_v7()).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
    }
}
