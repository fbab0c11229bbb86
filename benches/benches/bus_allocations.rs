//! Heap allocations per envelope on the bus path, counted by this binary's global allocator
//! over sequential `local.echo` round trips through the in-memory bus, beside a bare tokio mpsc
//! round trip of the same bytes. A binary of its own: the counting allocator bumps shared
//! counters on every allocation, which would slow the timed figures of `bus_path`.
//!
//! Prints one `check` line ([`onex_benches::check`]); `cargo xtask bench-check` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

use std::alloc::System;
use std::hint::black_box;

use host_support::{Fixture, MpscEcho, bus_round_trip, fixture, messages};
use onex_benches::check::Check;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

mod host_support;

/// Counts every allocation of the process.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(fx: &mut Fixture) -> Vec<Check> {
    let n = 2_000;
    // Reallocations count as allocations: each is a trip to the allocator.
    let counted = |f: &mut dyn FnMut()| {
        let region = Region::new(ALLOCATOR);
        f();
        let change = region.change();
        let count = change.allocations + change.reallocations;
        (count as f64 / n as f64, change.bytes_allocated as f64 / n as f64)
    };
    let messages = messages(fx, n);
    let payloads: Vec<Vec<u8>> = messages.iter().map(|m| m.payload.to_vec()).collect();
    let mut mpsc = MpscEcho::start(&fx.runtime);
    let Fixture { runtime, bus, replies, .. } = fx;
    let (host, host_bytes) = counted(&mut || {
        let messages = messages.clone();
        runtime.block_on(async {
            for message in messages {
                bus_round_trip(bus, replies, message).await;
            }
        });
    });
    let (baseline, baseline_bytes) = counted(&mut || {
        let payloads = payloads.clone();
        runtime.block_on(async {
            for payload in payloads {
                mpsc.round_trip(payload).await;
            }
        });
    });
    // The clones of the inputs above are counted too: one message (topic, payload, headers)
    // and one payload per round trip, taken off each path's figure.
    let inputs = counted(&mut || drop(black_box(messages.clone()))).0;
    let payload_inputs = counted(&mut || drop(black_box(payloads.clone()))).0;
    let (host, baseline) = (host - inputs, baseline - payload_inputs);
    println!(
        "allocations per sequential round trip: host bus path {host:.1} ({host_bytes:.0} bytes with the \
         inputs' clones); baseline tokio mpsc {baseline:.1} ({baseline_bytes:.0} bytes)"
    );
    // The reply's own bytes are the one allocation the target allows.
    vec![Check::at_most("allocations per envelope on the bus path, besides the reply payload", host - 1.0, 0.0)]
}

fn main() {
    let mut fx = fixture("bus-allocations");
    // Warm-up: first-use allocations (topics, groups, lazily built state) are not per envelope.
    let warm_up = messages(&fx, 200);
    let Fixture { runtime, bus, replies, .. } = &mut fx;
    runtime.block_on(async {
        for message in warm_up {
            bus_round_trip(bus, replies, message).await;
        }
    });
    let checks = allocations(&mut fx);
    fx.finish();
    println!();
    for check in &checks {
        println!("{check}");
    }
}
