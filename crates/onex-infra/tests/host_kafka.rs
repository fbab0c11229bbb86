//! The host on Kafka (the tansu broker `cargo xtask services up` starts), started as `run`
//! starts it from `bus.kind: kafka`: it creates its topics, consumes requests, publishes replies
//! with this runtime's and the Python runtime's headers, dead-letters failures, and reports the
//! bus in `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::BusKind;
use onex_core::envelope::{Envelope, bus_headers};
use onex_infra::bus::{KafkaEventBus, KafkaSettings};
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::{HEADER_ERROR_CODE, to_message};
use onex_infra::host::{HostSetup, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, InboundMessage, MessageStream};
use serde_json::json;

async fn next(stream: &mut MessageStream) -> InboundMessage {
    let poll = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
    tokio::time::timeout(Duration::from_secs(60), poll).await.expect("a message in time").unwrap().unwrap()
}

/// The bundled contracts and runtime config on the broker `services up` started, with topics and
/// a group of this run only (the broker outlives the test).
fn kafka_setup(run: &str) -> HostSetup {
    let registry = Registry::with_builtin_handlers().unwrap();
    let set = load_bundled_contracts(&registry).set.unwrap();
    let mut config = set.runtime.clone().unwrap().1;
    config.bus.kind = BusKind::Kafka;
    config.bus.bootstrap_servers = Some(common::service_url("ONEX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"));
    config.bus.request_topic = format!("onex.cmd.test-{run}.envelope.v1");
    config.bus.reply_topic = format!("onex.evt.test-{run}.reply.v1");
    config.bus.dlq_topic = format!("onex.dlq.test-{run}.envelope.v1");
    config.bus.group_id = format!("host-{run}");
    config.bus.partitions = 4;
    let data_dir = std::env::temp_dir().join(format!("onex-host-kafka-{run}"));
    HostSetup { config, contracts: set, registry, data_dir, secrets: Arc::new(EnvSecretStore), contracts_dir: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_serves_requests_from_kafka_with_exact_replies_and_dead_letters() {
    const REQUESTS: usize = 1_000;
    let run = new_uuid_v7().simple().to_string();
    let setup = kafka_setup(&run);
    let config = setup.config.clone();
    let (request_topic, reply_topic, dlq_topic) =
        (config.bus.request_topic.clone(), config.bus.reply_topic.clone(), config.bus.dlq_topic.clone());
    let running = start(setup).await.unwrap();
    assert!(running.host().is_ready().await, "ready once the brokers answer");

    let client_settings = KafkaSettings::resolve(&config.bus, &EnvSecretStore).await.unwrap();
    // A client of its own: publishes requests, reads replies and dead letters.
    let client = KafkaEventBus::connect(client_settings, &[]).await.unwrap();
    let mut replies = client.subscribe(&format!("replies-{run}"), std::slice::from_ref(&reply_topic)).await.unwrap();
    let mut dead = client.subscribe(&format!("dlq-{run}"), std::slice::from_ref(&dlq_topic)).await.unwrap();
    let mut sent = BTreeMap::new();
    for n in 0..REQUESTS {
        let request = Envelope::request(new_uuid_v7(), "local.echo", json!({"n": n}), now_utc());
        client.publish(to_message(request_topic.as_str(), Some(format!("entity-{}", n % 16)), &request)).await.unwrap();
        sent.insert(request.envelope_id, n);
    }
    // request -> the ids of its replies. Kafka may deliver one reply message to this reader
    // twice (its own group rebalancing before a commit): that is the same reply, counted once.
    // A second reply with another id means the host handled the request twice, which
    // at-least-once delivery allows (`local.echo` keeps no record), and which CI saw once in a
    // run without faults; more than a few would mean offsets are not kept.
    let mut answered: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
    while answered.len() < REQUESTS {
        let message = next(&mut replies).await;
        let reply: Envelope = serde_json::from_slice(&message.payload).unwrap();
        let request = reply.causation_id.expect("a reply names its request");
        assert_eq!(reply.payload, json!({"n": sent[&request]}));
        assert_eq!(message.headers.get(bus_headers::python::MESSAGE_ID), Some(reply.envelope_id.to_string().as_str()));
        assert_eq!(message.headers.get(bus_headers::python::CONTENT_TYPE), Some("application/json"));
        answered.entry(request).or_default().insert(reply.envelope_id);
        client.acknowledge(&format!("replies-{run}"), &message).await.unwrap();
    }
    let twice: Vec<_> = answered.iter().filter(|(_, replies)| replies.len() > 1).collect();
    assert!(twice.len() <= REQUESTS / 100, "{} of {REQUESTS} requests handled twice: {twice:?}", twice.len());

    let failing =
        Envelope::request(new_uuid_v7(), "local.fail", json!({"code": "ONEX_CORE_081_OPERATION_FAILED"}), now_utc());
    client.publish(to_message(request_topic.as_str(), None, &failing)).await.unwrap();
    let letter = next(&mut dead).await;
    assert_eq!(letter.headers.get(HEADER_ERROR_CODE), Some("ONEX_CORE_081_OPERATION_FAILED"));
    assert_eq!(serde_json::from_slice::<Envelope>(&letter.payload).unwrap(), failing, "the original is kept");

    let metrics = running.host().render_metrics().await;
    let rebalances = metrics.lines().find_map(|l| l.strip_prefix("onex_bus_rebalances_total ")).unwrap();
    assert!(rebalances.parse::<f64>().unwrap() >= 1.0, "the host's members joined its group:\n{metrics}");
    running.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_on_aiokafka_gets_replies_in_the_python_runtimes_shape() {
    const REQUESTS: usize = 50;
    let run = new_uuid_v7().simple().to_string();
    let setup = kafka_setup(&run);
    let (bootstrap, request_topic, reply_topic) = (
        setup.config.bus.bootstrap_servers.clone().unwrap(),
        setup.config.bus.request_topic.clone(),
        setup.config.bus.reply_topic.clone(),
    );
    let running = start(setup).await.unwrap();
    let python = common::service_url("ONEX_PYTHON", "python3");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/aiokafka_client.py");
    let command = {
        let (python, script) = (python.clone(), script.clone());
        move || {
            std::process::Command::new(&python)
                .arg(&script)
                .args([&bootstrap, &request_topic, &reply_topic, &REQUESTS.to_string()])
                .output()
        }
    };
    // The client gives up itself after 120 s without its replies.
    let output = tokio::task::spawn_blocking(command).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{python} {}: {stderr} (is the venv made? `cargo xtask services up`)",
        script.display()
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (sent, replies) = (result["sent"].as_object().unwrap(), result["replies"].as_object().unwrap());
    assert_eq!((sent.len(), replies.len()), (REQUESTS, REQUESTS));
    for (correlation_id, n) in sent {
        let got = &replies[correlation_id];
        // The Python runtime's reply to its minimal request, field by field.
        assert_eq!(got["reply"], json!({"status": "success", "payload": {"n": n}, "correlation_id": correlation_id}));
        assert_eq!(got["headers"]["correlation_id"], correlation_id.as_str(), "{got}");
        assert!(got["headers"]["message_id"].as_str().is_some_and(|id| id.len() == 36), "{got}");
    }
    running.shutdown(Duration::from_secs(10)).await;
}
