//! Three host processes on one PostgreSQL database (each with its own admin port and in-memory
//! bus): transitions posted to random hosts all land with exact versions, every outbox row is
//! published by exactly one host, and a workflow run whose host is SIGKILLed is finished by
//! another host once its lease expires.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_e2e::host::{HostOptions, HostProcess, envelope, wait_for};
use onex_e2e::postgres::Database;
use onex_e2e::{TOGGLE_REDUCER, contracts_with, scratch_dir, slow_orchestrator};
use serde_json::json;

const ENTITIES: usize = 500;
const TRANSITIONS_PER_ENTITY: usize = 20;
const CLIENTS: usize = 8;
const LEASE_MS: u64 = 2_000;

#[test]
fn three_hosts_share_one_database_without_losing_or_repeating_anything() {
    let database = Database::create("scale-out");
    let contracts = contracts_with(
        "scale-out",
        &[("reducers/toggle.yaml", TOGGLE_REDUCER), ("orchestrators/slow.yaml", &slow_orchestrator(2000))],
    );
    let hosts: Vec<HostProcess> = (0..3)
        .map(|i| {
            let options = HostOptions::new(&contracts, &scratch_dir(&format!("scale-out-{i}")))
                .env("ONEX_RUNTIME_NAME", &format!("host-{i}"))
                .env("ONEX_STATE_STORE_KIND", "postgres")
                .env("ONEX_STATE_STORE_URL", &database.url)
                .env("ONEX_DELIVERY_RUN_LEASE_MS", &LEASE_MS.to_string());
            HostProcess::start(&options)
        })
        .collect();
    let addrs: Arc<Vec<String>> = Arc::new(hosts.iter().map(|h| h.addr.clone()).collect());

    // 10,000 transitions over 500 entities; each entity's events in order, each to a random host.
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let addrs = Arc::clone(&addrs);
            std::thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ client as u64;
                for entity in (client..ENTITIES).step_by(CLIENTS) {
                    for n in 0..TRANSITIONS_PER_ENTITY {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        let addr = &addrs[(seed >> 33) as usize % addrs.len()];
                        let event = if n % 2 == 0 { "toggle.flip" } else { "toggle.flop" };
                        let body = envelope(event, json!({"entity_key": format!("e-{entity}")})).to_string();
                        let (status, reply) =
                            onex_e2e::host::http(addr, "POST", "/v1/envelopes", Some(body.as_bytes()));
                        assert_eq!(status, 200, "e-{entity} #{n} on {addr}: {reply}");
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let total = ENTITIES * TRANSITIONS_PER_ENTITY;
    eprintln!("{total} transitions over 3 hosts took {:?}", started.elapsed());

    for entity in 0..ENTITIES {
        let host = &hosts[entity % hosts.len()];
        let (status, state) = host.get_json(&format!("/v1/state/toggle/e-{entity}"));
        assert_eq!(status, 200, "{state}");
        assert_eq!(state["version"], TRANSITIONS_PER_ENTITY as u64, "e-{entity}: {state}");
        assert_eq!(state["state"], "off", "e-{entity}: {state}");
    }
    let dlq: f64 = hosts.iter().map(|h| h.metric("onex_dlq_total").unwrap_or(0.0)).sum();
    assert_eq!(dlq, 0.0, "no deadlock or conflict ended in the DLQ");

    // Every outbox row is published once: the hosts' published counters add up to the rows.
    assert_eq!(database.count("SELECT COUNT(*) FROM onex_outbox"), total as u64);
    wait_for("the outbox to drain", Duration::from_secs(60), || {
        (database.count("SELECT COUNT(*) FROM onex_outbox WHERE published_at IS NULL") == 0).then_some(())
    });
    let published: f64 = hosts.iter().map(|h| h.metric("onex_outbox_published_total").unwrap_or(0.0)).sum();
    assert_eq!(published, total as f64, "each row published by exactly one host");

    // A run whose host is killed mid-run is finished by another host once its lease expires.
    let mut hosts = hosts;
    let (status, reply) = hosts[0].post(&envelope("intent.slow_requested", json!({})));
    assert_eq!(status, 200, "{reply}");
    let run_path = format!("/v1/workflows/{}", reply["payload"]["run_id"].as_str().unwrap());
    wait_for("the first step to be journaled", Duration::from_secs(10), || {
        hosts[0].get_json(&run_path).1["journal"].as_array().is_some_and(|j| j.len() == 1).then_some(())
    });
    hosts[0].signal("KILL");
    hosts[0].wait_exit(Duration::from_secs(10)).expect("killed");
    let killed = Instant::now();
    let run = wait_for("another host to finish the run", Duration::from_millis(LEASE_MS + 5_000), || {
        let run = hosts[1].get_json(&run_path).1;
        (run["status"] != "running").then_some(run)
    });
    eprintln!("the run was finished {:?} after its host was killed", killed.elapsed());
    assert_eq!(run["status"], "succeeded", "{run}");
    let steps: Vec<u64> = run["journal"].as_array().unwrap().iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2], "each step journaled once: {run}");
    let taken_over: f64 =
        hosts[1..].iter().map(|h| h.metric("onex_workflow_runs_taken_over_total").unwrap_or(0.0)).sum();
    assert_eq!(taken_over, 1.0, "one surviving host took it over");
}
