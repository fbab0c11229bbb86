//! COMPUTE nodes on the host: the bundled `circuit_breaker` node answers
//! `circuit_breaker.evaluate` from its contract's thresholds, and what it emits is on its
//! `published_events` topic before the reply says success.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::{HostSetup, start_with_bus};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::EventBus;
use serde_json::json;

const OPENED_TOPIC: &str = "onex.intent.circuit-breaker.state-changed.v1";

fn outcomes(failures: u64) -> serde_json::Value {
    let list: Vec<_> = (0..failures).map(|i| json!({"at_ms": i * 10, "success": false})).collect();
    json!({"outcomes": list, "now_ms": 1_000})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_node_evaluates_and_publishes_what_it_emits() {
    let registry = Registry::with_builtin_handlers().unwrap();
    let contracts = load_bundled_contracts(&registry).set.unwrap();
    let config = contracts.runtime.clone().unwrap().1;
    let memory = InMemoryEventBus::new(config.bus.partitions, config.bus.capacity);
    let data_dir = std::env::temp_dir().join(format!("onex-host-compute-{}", new_uuid_v7()));
    let setup =
        HostSetup { config, contracts, registry, data_dir, secrets: Arc::new(EnvSecretStore), contracts_dir: None };
    let running = start_with_bus(setup, Arc::new(memory.clone())).await.unwrap();
    let host = running.host();

    // The contract's failure_threshold is 5: four failures leave the breaker closed.
    let four = Envelope::request(new_uuid_v7(), "circuit_breaker.evaluate", outcomes(4), now_utc());
    let reply = host.handle(four).await;
    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
    assert_eq!(reply.payload, json!({"state": "closed", "evaluated": 4, "refused": 0}));

    // Five open it; the sixth is refused; the node emits circuit_breaker_opened. (Subscribed
    // first: the host's own orchestrator consumes that topic, and the in-memory bus lets go of
    // what every subscribed group acknowledged.)
    let mut opened = memory.subscribe("reader", &[OPENED_TOPIC.to_owned()]).await.unwrap();
    let six = Envelope::request(new_uuid_v7(), "circuit_breaker.evaluate", outcomes(6), now_utc());
    let reply = host.handle(six.clone()).await;
    assert_eq!(reply.payload, json!({"state": "open", "evaluated": 6, "refused": 1}));
    let poll = std::future::poll_fn(|cx| opened.as_mut().poll_next(cx));
    let emitted = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("emitted in time").unwrap().unwrap();
    let event: Envelope = serde_json::from_slice(&emitted.payload).unwrap();
    assert_eq!(event.operation, "circuit_breaker_opened");
    assert_eq!((event.causation_id, event.correlation_id), (Some(six.envelope_id), six.correlation_id));
    assert_eq!(event.payload["state"], "open");

    // Bad input is named, and nothing is emitted for it.
    let bad = Envelope::request(new_uuid_v7(), "circuit_breaker.evaluate", json!({"outcome": []}), now_utc());
    let error = host.handle(bad).await.error.unwrap();
    assert!(error.message.contains("unknown field `outcome`"), "{}", error.message);
    let counted = r#"onex_envelopes_total{node="node_circuit_breaker_compute",operation="circuit_breaker.evaluate",outcome="success"} 2"#;
    assert!(host.render_metrics().await.contains(counted));
    running.shutdown(Duration::from_secs(5)).await;
}
