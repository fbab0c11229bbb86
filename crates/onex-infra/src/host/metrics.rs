//! Host metrics: lock-free counters and latency histograms per operation, rendered as
//! Prometheus text by the admin API.
//!
//! Every operation the host routes is registered when its contract set is built (at start-up
//! and on each reload, keeping the counts of operations that stay), and the set holds its
//! counters, so counting an envelope is a few relaxed atomic adds with no lock and no
//! allocation. What cannot be known in advance
//! (refusals by error code, workflow outcomes) sits behind a mutex: it is off the hot path.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (`+Inf` is implicit).
const BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of one operation served by one node.
#[derive(Debug)]
pub struct OperationMetrics {
    node: String,
    operation: String,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Cumulative-at-render bucket counts; `buckets[BUCKETS.len()]` is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl OperationMetrics {
    fn new(node: &str, operation: &str) -> Self {
        Self {
            node: node.to_owned(),
            operation: operation.to_owned(),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one envelope and its latency.
    pub fn observe(&self, success: bool, elapsed: Duration) {
        if success { &self.succeeded } else { &self.failed }.fetch_add(1, Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&le| seconds <= le).unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Envelopes counted, successful and failed.
    pub fn counts(&self) -> (u64, u64) {
        (self.succeeded.load(Relaxed), self.failed.load(Relaxed))
    }
}

/// Values read from elsewhere at render time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Outbox messages not yet published.
    pub outbox_backlog: u64,
    /// Per effect node: (node, handler type, breaker state as 0 closed / 1 half-open / 2 open, or
    /// `None` without a breaker, retries, open-breaker rejections, timeouts).
    pub stacks: Vec<StackGauges>,
    /// Rows in the state store's tables, when they could be counted.
    pub rows: Option<onex_spi::RowCounts>,
    /// Handler names contracts bind that nothing serves, with the nodes binding each.
    pub unbound: std::collections::BTreeMap<String, Vec<String>>,
    /// Intents committed steps emitted that no topic takes.
    pub dropped_intents: u64,
    /// What the bus reports of itself (Kafka: rebalances, produce errors, lag per partition).
    pub bus: onex_spi::BusFigures,
}

/// What one resilience stack reports.
#[derive(Debug)]
pub struct StackGauges {
    /// Node name.
    pub node: String,
    /// Breaker state: 0 closed, 1 half-open, 2 open; `None` when the node has no breaker.
    pub breaker: Option<u8>,
    /// Retries made.
    pub retries: u64,
    /// Calls refused by the open breaker.
    pub rejected_open: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
}

/// The host's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Every operation ever served, by (node, operation): a reload keeps the counts.
    operations: Mutex<BTreeMap<(String, String), Arc<OperationMetrics>>>,
    /// Contract reloads that replaced the set, and those refused.
    reloads: [AtomicU64; 2],
    refused: Mutex<BTreeMap<String, u64>>,
    workflows: Mutex<BTreeMap<(String, &'static str), u64>>,
    dlq: AtomicU64,
    in_flight: AtomicI64,
    consumed: AtomicU64,
    published: AtomicU64,
    delivery_retries: AtomicU64,
    bus_retries: AtomicU64,
    runs_taken_over: AtomicU64,
    pruned: [AtomicU64; 4],
}

impl Metrics {
    /// Metrics with the given `(node, operation)` pairs registered.
    pub fn new<'a>(operations: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let this = Self::default();
        this.register(operations);
        this
    }

    /// The counters of each `(node, operation)`, by operation (the first node of an operation
    /// wins); counters registered before are kept, so counts survive a reload.
    pub fn register<'a>(
        &self,
        operations: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> HashMap<String, Arc<OperationMetrics>> {
        let mut registered = self.operations.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counters = HashMap::new();
        for (node, op) in operations {
            let key = (node.to_owned(), op.to_owned());
            let metrics = registered.entry(key).or_insert_with(|| Arc::new(OperationMetrics::new(node, op)));
            counters.entry(op.to_owned()).or_insert_with(|| Arc::clone(metrics));
        }
        counters
    }

    /// Counts a reload of the contracts: replaced the set (`true`) or refused.
    pub fn reloaded(&self, replaced: bool) {
        self.reloads[usize::from(!replaced)].fetch_add(1, Relaxed);
    }

    /// `(succeeded, failed)` envelopes per node, summed over its operations.
    pub fn per_node(&self) -> BTreeMap<String, (u64, u64)> {
        let mut nodes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for op in self.operations.lock().unwrap_or_else(PoisonError::into_inner).values() {
            let (ok, failed) = op.counts();
            let entry = nodes.entry(op.node.clone()).or_default();
            entry.0 += ok;
            entry.1 += failed;
        }
        nodes
    }

    /// The counters of `operation` (its first node's), if it was ever registered.
    pub fn operation(&self, operation: &str) -> Option<Arc<OperationMetrics>> {
        let registered = self.operations.lock().unwrap_or_else(PoisonError::into_inner);
        registered.values().find(|m| m.operation == operation).map(Arc::clone)
    }

    /// Counts an envelope refused before reaching a node (bad input), by error code.
    pub fn refused(&self, code: &str) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner).entry(code.to_owned()).or_default() += 1;
    }

    /// How many envelopes were refused with `code`.
    pub fn refused_count(&self, code: &str) -> u64 {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).get(code).copied().unwrap_or(0)
    }

    /// Counts a finished workflow run.
    pub fn workflow_finished(&self, workflow: &str, status: &'static str) {
        let mut runs = self.workflows.lock().unwrap_or_else(PoisonError::into_inner);
        *runs.entry((workflow.to_owned(), status)).or_default() += 1;
    }

    /// Counts a message sent to the dead-letter topic.
    pub fn dead_lettered(&self) {
        self.dlq.fetch_add(1, Relaxed);
    }

    /// Counts a message consumed from the bus.
    pub fn consumed(&self) {
        self.consumed.fetch_add(1, Relaxed);
    }

    /// Counts an envelope tried again in place after a retryable failure.
    pub fn delivery_retried(&self) {
        self.delivery_retries.fetch_add(1, Relaxed);
    }

    /// Counts a bus call (publishing an outcome, acknowledging, subscribing) tried again.
    pub fn bus_retried(&self) {
        self.bus_retries.fetch_add(1, Relaxed);
    }

    /// Counts a workflow run this host took over (after a restart, or from a host that died).
    pub fn run_taken_over(&self) {
        self.runs_taken_over.fetch_add(1, Relaxed);
    }

    /// Counts rows the retention sweep removed.
    pub fn pruned(&self, rows: &onex_spi::RowCounts) {
        for (counter, n) in self.pruned.iter().zip([rows.processed, rows.outbox, rows.runs, rows.journal]) {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Counts messages the outbox relay published.
    pub fn published(&self, n: u64) {
        self.published.fetch_add(n, Relaxed);
    }

    /// Marks an envelope in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    /// Envelopes being processed now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.load(Relaxed)
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        // Sorted by (node, operation): the registry's order.
        let ops: Vec<Arc<OperationMetrics>> =
            self.operations.lock().unwrap_or_else(PoisonError::into_inner).values().map(Arc::clone).collect();

        header(&mut out, "onex_envelopes_total", "counter", "Envelopes processed, by node, operation and outcome.");
        for m in &ops {
            let labels = format!("node=\"{}\",operation=\"{}\"", escape(&m.node), escape(&m.operation));
            let (ok, failed) = m.counts();
            let _ = writeln!(out, "onex_envelopes_total{{{labels},outcome=\"success\"}} {ok}");
            let _ = writeln!(out, "onex_envelopes_total{{{labels},outcome=\"failure\"}} {failed}");
        }
        header(&mut out, "onex_envelope_duration_seconds", "histogram", "Time from routing to reply.");
        for m in &ops {
            let labels = format!("node=\"{}\",operation=\"{}\"", escape(&m.node), escape(&m.operation));
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]).enumerate() {
                cumulative += m.buckets[i].load(Relaxed);
                let _ = writeln!(out, "onex_envelope_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let sum = m.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "onex_envelope_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "onex_envelope_duration_seconds_count{{{labels}}} {cumulative}");
        }
        header(&mut out, "onex_envelopes_refused_total", "counter", "Envelopes refused before any node ran, by code.");
        for (code, n) in self.refused.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "onex_envelopes_refused_total{{code=\"{}\"}} {n}", escape(code));
        }
        header(&mut out, "onex_workflow_runs_total", "counter", "Finished workflow runs, by workflow and status.");
        for ((workflow, status), n) in self.workflows.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ =
                writeln!(out, "onex_workflow_runs_total{{workflow=\"{}\",status=\"{status}\"}} {n}", escape(workflow));
        }
        header(&mut out, "onex_handler_retries_total", "counter", "Retries made by a node's resilience stack.");
        stack_lines(&mut out, gauges, "onex_handler_retries_total", |s| Some(s.retries));
        header(&mut out, "onex_handler_timeouts_total", "counter", "Handler attempts that timed out.");
        stack_lines(&mut out, gauges, "onex_handler_timeouts_total", |s| Some(s.timeouts));
        header(&mut out, "onex_breaker_rejections_total", "counter", "Calls refused by an open circuit breaker.");
        stack_lines(&mut out, gauges, "onex_breaker_rejections_total", |s| Some(s.rejected_open));
        header(&mut out, "onex_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 half-open, 2 open.");
        stack_lines(&mut out, gauges, "onex_breaker_state", |s| s.breaker.map(u64::from));
        header(&mut out, "onex_store_rows", "gauge", "Rows in the state store's tables.");
        header(&mut out, "onex_store_pruned_total", "counter", "Rows removed by the retention sweep, by table.");
        for (i, table) in TABLES.iter().enumerate() {
            if let Some(rows) = &gauges.rows {
                let held = [rows.processed, rows.outbox, rows.runs, rows.journal][i];
                let _ = writeln!(out, "onex_store_rows{{table=\"{table}\"}} {held}");
            }
            let _ = writeln!(out, "onex_store_pruned_total{{table=\"{table}\"}} {}", self.pruned[i].load(Relaxed));
        }
        let scalars = [
            ("onex_dlq_total", "counter", "Messages sent to the dead-letter topic.", self.dlq.load(Relaxed) as f64),
            (
                "onex_delivery_retries_total",
                "counter",
                "Envelopes tried again in place after a retryable failure.",
                self.delivery_retries.load(Relaxed) as f64,
            ),
            (
                "onex_bus_retries_total",
                "counter",
                "Bus calls tried again: publishing an outcome, acknowledging, subscribing.",
                self.bus_retries.load(Relaxed) as f64,
            ),
            (
                "onex_workflow_runs_taken_over_total",
                "counter",
                "Workflow runs this host took over (after a restart, or from a host that died).",
                self.runs_taken_over.load(Relaxed) as f64,
            ),
            ("onex_in_flight", "gauge", "Envelopes being processed.", self.in_flight.load(Relaxed) as f64),
            (
                "onex_contract_reloads_total",
                "counter",
                "Contract reloads that replaced the served set.",
                self.reloads[0].load(Relaxed) as f64,
            ),
            (
                "onex_contract_reload_failures_total",
                "counter",
                "Contract reloads refused (the old set kept serving).",
                self.reloads[1].load(Relaxed) as f64,
            ),
            (
                "onex_bus_consumed_total",
                "counter",
                "Messages consumed from the bus.",
                self.consumed.load(Relaxed) as f64,
            ),
            (
                "onex_outbox_published_total",
                "counter",
                "Outbox messages published.",
                self.published.load(Relaxed) as f64,
            ),
            ("onex_outbox_backlog", "gauge", "Outbox messages waiting to be published.", gauges.outbox_backlog as f64),
            (
                "onex_intents_dropped_total",
                "counter",
                "Intents a reducer step emitted that no orchestrator routes and no published_events declares.",
                gauges.dropped_intents as f64,
            ),
            (
                "onex_bus_rebalances_total",
                "counter",
                "Consumer group rebalances this host's group members took part in.",
                gauges.bus.rebalances as f64,
            ),
            (
                "onex_bus_produce_errors_total",
                "counter",
                "Publishes the bus failed after its own retries.",
                gauges.bus.produce_errors as f64,
            ),
            (
                "onex_bus_consume_errors_total",
                "counter",
                "Errors the bus consumers met and recovered from (brokers down, leaders moving).",
                gauges.bus.consume_errors as f64,
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "onex_unbound_handler",
            "gauge",
            "A handler a node's contract binds that nothing serves on this host (1 per handler and node).",
        );
        for (handler, nodes) in &gauges.unbound {
            for node in nodes {
                let _ = writeln!(
                    out,
                    "onex_unbound_handler{{handler=\"{}\",node=\"{}\"}} 1",
                    escape(handler),
                    escape(node)
                );
            }
        }
        header(&mut out, "onex_bus_consumer_lag", "gauge", "Messages behind the end of a consumed partition.");
        for lag in &gauges.bus.lag {
            let _ = writeln!(
                out,
                "onex_bus_consumer_lag{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                escape(&lag.group),
                escape(&lag.topic),
                lag.partition,
                lag.lag
            );
        }
        out
    }
}

/// The state store's tables as `/metrics` labels them, in [`onex_spi::RowCounts`] order.
const TABLES: [&str; 4] = ["processed", "outbox", "workflow_runs", "workflow_journal"];

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn stack_lines(out: &mut String, gauges: &Gauges, name: &str, value: impl Fn(&StackGauges) -> Option<u64>) {
    for s in &gauges.stacks {
        if let Some(v) = value(s) {
            let _ = writeln!(out, "{name}{{node=\"{}\"}} {v}", escape(&s.node));
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_render_as_prometheus_text() {
        let metrics = Metrics::new([("local_node", "local.echo")]);
        let op = metrics.operation("local.echo").unwrap();
        op.observe(true, Duration::from_micros(40));
        op.observe(true, Duration::from_millis(3));
        op.observe(false, Duration::from_secs(20));
        metrics.refused("ONEX_CORE_050_ENVELOPE_INVALID");
        metrics.dead_lettered();
        let stacks =
            vec![StackGauges { node: "n\"x".into(), breaker: Some(2), retries: 3, rejected_open: 1, timeouts: 0 }];
        let rows = Some(onex_spi::RowCounts { processed: 7, outbox: 3, runs: 2, journal: 9 });
        metrics.pruned(&onex_spi::RowCounts { processed: 4, outbox: 0, runs: 1, journal: 2 });
        let text = metrics.render(&Gauges {
            outbox_backlog: 5,
            stacks,
            rows,
            unbound: Default::default(),
            dropped_intents: 0,
            bus: onex_spi::BusFigures {
                rebalances: 2,
                produce_errors: 0,
                consume_errors: 1,
                lag: vec![onex_spi::PartitionLag { group: "g".into(), topic: "t".into(), partition: 3, lag: 12 }],
            },
        });
        let labels = "node=\"local_node\",operation=\"local.echo\"";
        for line in [
            format!("onex_envelopes_total{{{labels},outcome=\"success\"}} 2"),
            format!("onex_envelopes_total{{{labels},outcome=\"failure\"}} 1"),
            format!("onex_envelope_duration_seconds_bucket{{{labels},le=\"0.00005\"}} 1"),
            format!("onex_envelope_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2"),
            format!("onex_envelope_duration_seconds_bucket{{{labels},le=\"10\"}} 2"),
            format!("onex_envelope_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"),
            format!("onex_envelope_duration_seconds_count{{{labels}}} 3"),
            "onex_envelopes_refused_total{code=\"ONEX_CORE_050_ENVELOPE_INVALID\"} 1".to_owned(),
            "onex_breaker_state{node=\"n\\\"x\"} 2".to_owned(),
            "onex_handler_retries_total{node=\"n\\\"x\"} 3".to_owned(),
            "onex_dlq_total 1".to_owned(),
            "onex_outbox_backlog 5".to_owned(),
            "onex_store_rows{table=\"processed\"} 7".to_owned(),
            "onex_store_rows{table=\"workflow_journal\"} 9".to_owned(),
            "onex_store_pruned_total{table=\"processed\"} 4".to_owned(),
            "onex_store_pruned_total{table=\"workflow_runs\"} 1".to_owned(),
            "onex_bus_rebalances_total 2".to_owned(),
            "onex_bus_consume_errors_total 1".to_owned(),
            "onex_bus_consumer_lag{group=\"g\",topic=\"t\",partition=\"3\"} 12".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn in_flight_guard_counts_down_on_drop() {
        let metrics = Metrics::new([]);
        let guard = metrics.in_flight();
        assert_eq!(metrics.in_flight_now(), 1);
        drop(guard);
        assert_eq!(metrics.in_flight_now(), 0);
    }
}
