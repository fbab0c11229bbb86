//! The host side of `bench-pg`: the release host on a PostgreSQL state store, and clients (one
//! thread and one keep-alive connection each) that move their own entity of the bundled
//! `infrastructure_state` machine between `healthy` and `degraded`, one transition at a time.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::bench_host::http;

/// A fixed envelope timestamp (RFC 3339); the host does not judge it.
const TIMESTAMP: &str = "2025-01-01T00:00:00Z";
/// The state machine driven.
const FSM: &str = "infrastructure_state";

/// An event envelope for entity `entity`; the id is unique per (run, client, sequence number).
fn envelope(run: usize, client: usize, seq: u64, event: &str, entity: &str) -> String {
    let id = format!("{run:08x}-{client:04x}-7000-8000-{seq:012x}");
    format!(
        r#"{{"envelope_id":"{id}","correlation_id":"{id}","operation":"{FSM}.{event}","payload":{{"entity_key":"{entity}"}},"timestamp":"{TIMESTAMP}"}}"#
    )
}

/// What the clients measured.
#[derive(Debug)]
pub struct Load {
    /// Latencies (µs) of the transitions made in the measured window, sorted.
    pub latencies: Vec<u64>,
    /// The measured window.
    pub window: Duration,
    /// Every transition committed, set-up and warm-up included.
    pub committed: usize,
}

/// `clients` clients, each on its own entity: one `initialization_complete`, then
/// `service_degraded` / `service_recovered` in turn for `warmup + window`; only transitions
/// started after the warm-up and finished within the window are measured. Any reply but
/// `200` is an error.
pub fn drive(addr: SocketAddr, run: usize, clients: usize, warmup: Duration, window: Duration) -> Result<Load, String> {
    let barrier = Arc::new(Barrier::new(clients));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || client(addr, run, c, &barrier, warmup, window))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut committed = 0;
    let mut first_error = None;
    for worker in workers {
        match worker.join().map_err(|_| "a client thread panicked".to_owned()).and_then(|r| r) {
            Ok((samples, n)) => {
                latencies.extend(samples);
                committed += n;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    latencies.sort_unstable();
    Ok(Load { latencies, window, committed })
}

/// One client: its measured latencies (µs) and how many transitions it committed.
fn client(
    addr: SocketAddr,
    run: usize,
    c: usize,
    barrier: &Barrier,
    warmup: Duration,
    window: Duration,
) -> Result<(Vec<u64>, usize), String> {
    let entity = format!("bench-{run}-{c}");
    // Connect and set up before the barrier, so that even a failing client reaches it and
    // no other waits forever.
    let setup = http::Connection::open(addr, Duration::from_secs(30))
        .map_err(|e| format!("client {c}: cannot connect: {e}"))
        .and_then(|mut conn| post(&mut conn, &envelope(run, c, 0, "initialization_complete", &entity)).map(|()| conn));
    barrier.wait();
    let mut conn = setup?;
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + window);
    let mut samples = Vec::with_capacity(4096);
    let mut seq = 1;
    loop {
        let began = Instant::now();
        if began >= until {
            break;
        }
        let event = if seq % 2 == 1 { "service_degraded" } else { "service_recovered" };
        post(&mut conn, &envelope(run, c, seq, event, &entity)).map_err(|e| format!("client {c}: {e}"))?;
        let ended = Instant::now();
        if began >= from && ended <= until {
            samples.push(u64::try_from(ended.duration_since(began).as_micros()).unwrap_or(u64::MAX));
        }
        seq += 1;
    }
    Ok((samples, usize::try_from(seq).unwrap_or(usize::MAX)))
}

/// Posts one envelope; anything but `200` is an error carrying the reply.
fn post(conn: &mut http::Connection, body: &str) -> Result<(), String> {
    let response = conn.send("POST", "/v1/envelopes", Some(body.as_bytes()), false).map_err(|e| e.to_string())?;
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!("HTTP {}: {}", response.status, String::from_utf8_lossy(&response.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_json_with_unique_uuid_shaped_ids() {
        let text = envelope(64, 3, 0xabc, "service_degraded", "bench-64-3");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["envelope_id"], "00000040-0003-7000-8000-000000000abc");
        assert_eq!(value["correlation_id"], value["envelope_id"]);
        assert_eq!(value["operation"], "infrastructure_state.service_degraded");
        assert_eq!(value["payload"]["entity_key"], "bench-64-3");
        assert_ne!(envelope(8, 0, 1, "e", "k"), envelope(8, 1, 1, "e", "k"));
    }
}
