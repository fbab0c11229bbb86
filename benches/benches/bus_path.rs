//! The bus path of the runtime host against its targets, measured outside criterion
//! (percentiles and allocation counts are not what criterion reports), each as a ratio or a
//! difference against a baseline measured in the same run:
//!
//! - **sequential latency**: `local.echo` round trips one at a time over the in-memory bus,
//!   against a bare tokio mpsc round trip of the same bytes; several runs, the median run (by
//!   the host's p50) reported;
//! - **pipelined throughput**: 10,000 round trips in flight over the bus, against
//!   `RuntimeHost::handle` called directly from one task on the same envelopes.
//!
//! Allocations are counted in `bus_allocations`, a binary of its own: a counting allocator
//! bumps shared counters on every allocation, which the bus's threads then contend for.
//!
//! Prints one `check` line per target ([`onex_benches::check`]); `cargo xtask bench-check` runs
//! it with `ONEX_BENCH_QUICK=1` (fewer round trips) and fails when a line says `MISSED`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use host_support::{Fixture, MpscEcho, bus_round_trip, bus_round_trips, echo_envelope, fixture, messages};
use onex_benches::check::{Check, median};
use onex_core::envelope::Envelope;

mod host_support;

/// How much to measure: the figure of record, or a quick look for `bench-check`.
struct Sizes {
    round_trips: usize,
    runs: usize,
    pipelined: usize,
}

impl Sizes {
    fn from_env() -> Self {
        if onex_benches::check::quick_run() {
            Self { round_trips: 5_000, runs: 3, pipelined: 5_000 }
        } else {
            Self { round_trips: 20_000, runs: 5, pipelined: 10_000 }
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `samples` (sorted here).
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

/// One run of sequential round trips through each path, interleaved so both see the same
/// machine: (host p50, host p99, mpsc p50, mpsc p99).
fn latency_run(fx: &mut Fixture, mpsc: &mut MpscEcho, n: usize) -> [Duration; 4] {
    let messages = messages(fx, n);
    let payloads: Vec<Vec<u8>> = messages.iter().map(|m| m.payload.to_vec()).collect();
    let Fixture { runtime, bus, replies, .. } = fx;
    let (mut host, mut baseline) = runtime.block_on(async {
        let (mut host, mut baseline) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (message, payload) in messages.into_iter().zip(payloads) {
            let started = Instant::now();
            bus_round_trip(bus, replies, message).await;
            host.push(started.elapsed());
            let started = Instant::now();
            mpsc.round_trip(payload).await;
            baseline.push(started.elapsed());
        }
        (host, baseline)
    });
    let (h50, h99) = percentiles(&mut host);
    let (b50, b99) = percentiles(&mut baseline);
    [h50, h99, b50, b99]
}

fn latency(fx: &mut Fixture, sizes: &Sizes) -> Vec<Check> {
    let mut mpsc = MpscEcho::start(&fx.runtime);
    latency_run(fx, &mut mpsc, 2_000); // warm-up
    let mut runs: Vec<[Duration; 4]> = Vec::with_capacity(sizes.runs);
    for run in 1..=sizes.runs {
        let [h50, h99, b50, b99] = latency_run(fx, &mut mpsc, sizes.round_trips);
        println!(
            "sequential run {run}/{}: {} round trips; host p50 {:.1} µs, p99 {:.1} µs; mpsc p50 {:.1} µs, p99 {:.1} µs",
            sizes.runs,
            sizes.round_trips,
            micros(h50),
            micros(h99),
            micros(b50),
            micros(b99)
        );
        runs.push([h50, h99, b50, b99]);
    }
    runs.sort_by_key(|r| r[0]);
    let [h50, h99, b50, b99] = runs[runs.len() / 2];
    println!(
        "sequential, median run: host p50 {:.1} µs, p99 {:.1} µs; baseline tokio mpsc p50 {:.1} µs, p99 {:.1} µs",
        micros(h50),
        micros(h99),
        micros(b50),
        micros(b99)
    );
    vec![
        Check::at_most("sequential added latency p50 (µs)", micros(h50.saturating_sub(b50)), 5.0),
        Check::at_most("sequential p99 / mpsc p99", h99.as_secs_f64() / b99.as_secs_f64(), 2.0),
    ]
}

fn pipelined(fx: &mut Fixture, sizes: &Sizes) -> Vec<Check> {
    let n = sizes.pipelined;
    let (mut via_bus, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..sizes.runs {
        let messages = messages(fx, n);
        let envelopes: Vec<Envelope> = (0..n).map(echo_envelope).collect();
        let Fixture { runtime, bus, replies, host, .. } = fx;
        let started = Instant::now();
        runtime.block_on(bus_round_trips(bus, replies, messages));
        via_bus.push(n as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        runtime.block_on(async {
            for envelope in envelopes {
                black_box(host.handle(envelope).await);
            }
        });
        direct.push(n as f64 / started.elapsed().as_secs_f64());
    }
    let (via_bus, direct) = (median(&mut via_bus), median(&mut direct));
    println!(
        "pipelined, median of {} runs of {n}: host bus round trips {via_bus:.0}/s; baseline \
         RuntimeHost::handle direct, 1 task {direct:.0}/s",
        sizes.runs
    );
    vec![Check::at_least("pipelined bus / handle direct", via_bus / direct, 0.5)]
}

fn main() {
    let sizes = Sizes::from_env();
    let mut fx = fixture("bus-path");
    let mut checks = latency(&mut fx, &sizes);
    checks.extend(pipelined(&mut fx, &sizes));
    fx.finish();
    println!();
    for check in &checks {
        println!("{check}");
    }
}
