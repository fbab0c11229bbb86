//! A benchmark's verdict on one target: the figure, the bound, and whether it holds, printed as
//! one `check` line that `cargo xtask bench-check` reads (`check <name>: <value> (target <op>
//! <bound>) -> met|MISSED`).

use std::fmt;
use std::time::{Duration, Instant};

/// The variable asking every benchmark for a short run (`cargo xtask bench-check` sets it).
pub const QUICK: &str = "ONEX_BENCH_QUICK";

/// Whether this is a short run ([`QUICK`] is set).
pub fn quick_run() -> bool {
    std::env::var_os(QUICK).is_some()
}

/// One target and the figure measured for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was measured, with its unit.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// The bound it must keep.
    pub bound: f64,
    /// Whether the figure must be at most (else at least) the bound.
    pub at_most: bool,
}

impl Check {
    /// A figure that must not exceed `bound` (a latency, a cost ratio).
    pub fn at_most(name: &str, value: f64, bound: f64) -> Self {
        Self { name: name.to_owned(), value, bound, at_most: true }
    }

    /// A figure that must reach `bound` (a throughput ratio).
    pub fn at_least(name: &str, value: f64, bound: f64) -> Self {
        Self { name: name.to_owned(), value, bound, at_most: false }
    }

    /// Whether the target holds.
    pub fn met(&self) -> bool {
        if self.at_most { self.value <= self.bound } else { self.value >= self.bound }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.at_most { "<=" } else { ">=" };
        let verdict = if self.met() { "met" } else { "MISSED" };
        write!(f, "check {}: {:.3} (target {op} {}) -> {verdict}", self.name, self.value, self.bound)
    }
}

/// The median of `values` (sorted here); NaN for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Seconds per call of `f`: the median of `batches` batches, each of as many calls as take at
/// least 20 ms (so the clock's resolution does not matter).
pub fn seconds_per_call(batches: usize, mut f: impl FnMut()) -> f64 {
    let mut calls: u32 = 1;
    loop {
        let started = Instant::now();
        (0..calls).for_each(|_| f());
        if started.elapsed() >= Duration::from_millis(20) || calls >= 1 << 24 {
            break;
        }
        calls *= 2;
    }
    let mut per_call: Vec<f64> = (0..batches.max(1))
        .map(|_| {
            let started = Instant::now();
            (0..calls).for_each(|_| f());
            started.elapsed().as_secs_f64() / f64::from(calls)
        })
        .collect();
    median(&mut per_call)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_says_met_only_on_the_right_side_of_its_bound() {
        assert!(Check::at_most("latency", 4.0, 5.0).met());
        assert!(!Check::at_most("latency", 5.5, 5.0).met());
        assert!(Check::at_least("ratio", 0.5, 0.5).met());
        assert!(!Check::at_least("ratio", 0.4, 0.5).met());
        assert_eq!(Check::at_least("ratio", 0.4, 0.5).to_string(), "check ratio: 0.400 (target >= 0.5) -> MISSED");
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert!(median(&mut []).is_nan());
    }
}
