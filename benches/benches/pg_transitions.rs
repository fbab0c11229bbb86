//! Durable reducer transitions on PostgreSQL through `RuntimeHost::handle`, 1, 8 and 64
//! concurrent tasks, against `pgbench -N` (simple-update) with as many clients on the same
//! server in the same run. Prints both rates, their ratio and latencies.
//!
//! The host runs in process on a scratch database with a two-state reducer (`flip` / `flop`,
//! no intents): each transition is a version check, the new state and the idempotency record
//! with the reply, committed durably (group commit shares one statement among concurrent ones).
//! Run with `cargo bench -p onex-benches --bench pg_transitions` (or `cargo xtask bench-pg`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_core::envelope::Envelope;
use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_contracts;
use onex_infra::host::{HostSetup, RuntimeHost, start_with_bus};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use serde_json::json;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const CLIENTS: [usize; 3] = [1, 8, 64];
const WARMUP: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(10);

const TOGGLE: &str = "name: bench_toggle
contract_version: '1.0.0'
node_version: '1.0.0'
node_type: REDUCER
state_machine:
  name: toggle
  version: '1.0.0'
  states:
    - name: 'off'
      type: initial
    - name: 'on'
      type: normal
  transitions:
    - from: 'off'
      to: 'on'
      event: flip
    - from: 'on'
      to: 'off'
      event: flop
";

fn psql(database: &str, sql: &str) {
    let ok = Command::new("psql").args([&format!("{SERVER}/{database}"), "-qtAc", sql]).status().unwrap().success();
    assert!(ok, "psql `{sql}` failed");
}

/// `(tps, latency average ms)` of `pgbench -N` with `clients` for the window.
fn pgbench(database: &str, clients: usize) -> (f64, f64) {
    let out = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-N", "-n"])
        .args(["-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &WINDOW.as_secs().to_string(), database])
        .output()
        .expect("pgbench (PostgreSQL's own benchmark) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"));
        line.split(['=', ' ']).filter_map(|w| w.parse().ok()).next().unwrap()
    };
    (find("tps"), find("latency average"))
}

/// Transitions per second and p50/p99 of `clients` tasks, each moving its own entity.
async fn transitions(host: &Arc<RuntimeHost>, clients: usize, round: usize) -> (f64, Duration, Duration) {
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let host = Arc::clone(host);
            tokio::spawn(async move {
                let entity = format!("r{round}-c{client}");
                let (started, mut latencies, mut n) = (Instant::now(), Vec::new(), 0usize);
                while started.elapsed() < WARMUP + WINDOW {
                    let event = if n % 2 == 0 { "toggle.flip" } else { "toggle.flop" };
                    let request = Envelope::request(new_uuid_v7(), event, json!({"entity_key": entity}), now_utc());
                    let sent = Instant::now();
                    let reply = host.handle(request).await;
                    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
                    if started.elapsed() > WARMUP {
                        latencies.push(sent.elapsed());
                    }
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let at = |p: usize| all[(all.len() * p / 100).min(all.len() - 1)];
    (all.len() as f64 / WINDOW.as_secs_f64(), at(50), at(99))
}

fn main() {
    let pid = std::process::id();
    let (host_db, bench_db) = (format!("onex_bench_host_{pid}"), format!("onex_bench_pgbench_{pid}"));
    psql("postgres", &format!("CREATE DATABASE {host_db}"));
    psql("postgres", &format!("CREATE DATABASE {bench_db}"));
    let init =
        Command::new("pgbench").args(["-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", "64", &bench_db]).output();
    assert!(init.unwrap().status.success(), "pgbench -i failed");

    let dir = std::env::temp_dir().join(format!("onex-bench-pg-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime_yaml = format!(
        "runtime_name: bench-pg\nstate_store: {{kind: postgres, url: '{SERVER}/{host_db}', max_connections: 16}}\nhandlers: {{}}\n"
    );
    std::fs::write(dir.join("runtime.yaml"), runtime_yaml).unwrap();
    std::fs::write(dir.join("toggle.yaml"), TOGGLE).unwrap();
    let registry = Registry::with_builtin_handlers().unwrap();
    let report = load_contracts(std::slice::from_ref(&dir), &registry);
    let set = report.set.unwrap_or_else(|| panic!("{:?}", report.diagnostics));
    let config = set.runtime.clone().unwrap().1;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows: Vec<_> = runtime.block_on(async {
        let bus = Arc::new(InMemoryEventBus::new(config.bus.partitions, config.bus.capacity));
        let setup =
            HostSetup { config, contracts: set, registry, data_dir: dir.join("data"), secrets: Arc::new(EnvSecretStore), contracts_dir: None };
        let running = start_with_bus(setup, bus).await.unwrap();
        let mut rows = Vec::new();
        for (round, clients) in CLIENTS.into_iter().enumerate() {
            let (tps, pg_latency) = tokio::task::block_in_place(|| pgbench(&bench_db, clients));
            let (rate, p50, p99) = transitions(running.host(), clients, round).await;
            println!("{clients:>2} clients: host {rate:.0}/s (p50 {p50:.2?}, p99 {p99:.2?}); pgbench -N {tps:.0} tps (avg {pg_latency:.2} ms)");
            rows.push((clients, rate, p50, p99, tps, pg_latency));
        }
        running.shutdown(Duration::from_secs(5)).await;
        rows
    });
    psql("postgres", &format!("DROP DATABASE {host_db} WITH (FORCE)"));
    psql("postgres", &format!("DROP DATABASE {bench_db} WITH (FORCE)"));
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\ndurable reducer transitions through RuntimeHost::handle vs pgbench -N, same server, same run ({}s each)",
        WINDOW.as_secs()
    );
    println!("  tasks | host tr/s | pgbench tps | ratio | host p50 / p99        | pgbench avg");
    for (clients, rate, p50, p99, tps, pg_latency) in rows {
        let verdict = if clients < 8 {
            ""
        } else if rate / tps >= 1.0 {
            " target met"
        } else {
            " target missed (>= 1.0)"
        };
        println!(
            "  {clients:>5} | {rate:>9.0} | {tps:>11.0} | {:>5.2} | {:>8.2?} / {:>8.2?} | {pg_latency:.2} ms{verdict}",
            rate / tps,
            p50,
            p99
        );
    }
}
