//! The host on the bus side: requests on the request topic get replies on the reply topic;
//! a message that fails or does not parse goes to the dead-letter topic with its error; every
//! message is acknowledged only after that, and nothing is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::wire::{HEADER_ERROR_CODE, to_message};
use onex_infra::host::{HostSetup, start_with_bus};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, InboundMessage, MessageStream, OutboundMessage};
use serde_json::json;

async fn next(stream: &mut MessageStream) -> InboundMessage {
    let poll = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
    tokio::time::timeout(Duration::from_secs(10), poll).await.expect("a message in time").unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_to_the_reply_topic_and_failures_to_the_dlq() {
    let registry = Registry::with_builtin_handlers().unwrap();
    let set = load_bundled_contracts(&registry).set.unwrap();
    let config = set.runtime.clone().unwrap().1;
    let (request_topic, reply_topic, dlq_topic) =
        (config.bus.request_topic.clone(), config.bus.reply_topic.clone(), config.bus.dlq_topic.clone());
    let group = config.bus.group_id.clone();
    let memory = InMemoryEventBus::new(config.bus.partitions, config.bus.capacity);
    let bus: Arc<dyn EventBus> = Arc::new(memory.clone());
    let data_dir = std::env::temp_dir().join(format!("onex-host-bus-{}", new_uuid_v7()));
    let setup = HostSetup {
        config,
        contracts: set,
        registry,
        data_dir,
        secrets: Arc::new(EnvSecretStore),
        contracts_dir: None,
    };
    let running = start_with_bus(setup, Arc::clone(&bus)).await.unwrap();
    let mut replies = bus.subscribe("test-replies", std::slice::from_ref(&reply_topic)).await.unwrap();
    let mut dead = bus.subscribe("test-dlq", std::slice::from_ref(&dlq_topic)).await.unwrap();

    let ok = Envelope::request(new_uuid_v7(), "local.echo", json!({"n": 1}), now_utc());
    bus.publish(to_message(request_topic.as_str(), Some("k1".into()), &ok)).await.unwrap();
    let reply = next(&mut replies).await;
    let reply_envelope: Envelope = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply_envelope.causation_id, Some(ok.envelope_id));
    assert_eq!(reply_envelope.payload, json!({"n": 1}));
    assert_eq!(reply.key.as_deref(), Some("k1"), "the reply keeps the request's key");

    // A trace named only in the headers (a Python producer's trace_id/span_id) is the envelope's.
    let traced = Envelope::request(new_uuid_v7(), "local.echo", json!({"n": 2}), now_utc());
    let mut message = to_message(request_topic.as_str(), None, &traced);
    let headers = Arc::make_mut(&mut message.headers);
    headers.insert("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
    headers.insert("span_id", "00f067aa0ba902b7");
    bus.publish(message).await.unwrap();
    let traced_reply: Envelope = serde_json::from_slice(&next(&mut replies).await.payload).unwrap();
    let expected = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(traced_reply.metadata.traceparent.as_deref(), Some(expected));

    let failing =
        Envelope::request(new_uuid_v7(), "local.fail", json!({"code": "ONEX_CORE_081_OPERATION_FAILED"}), now_utc());
    bus.publish(to_message(request_topic.as_str(), None, &failing)).await.unwrap();
    let failed_reply: Envelope = serde_json::from_slice(&next(&mut replies).await.payload).unwrap();
    assert_eq!(failed_reply.success, Some(false));
    let letter = next(&mut dead).await;
    assert_eq!(letter.headers.get(HEADER_ERROR_CODE), Some("ONEX_CORE_081_OPERATION_FAILED"));
    assert_eq!(serde_json::from_slice::<Envelope>(&letter.payload).unwrap(), failing, "the original is kept");

    let garbage = OutboundMessage {
        topic: request_topic.as_str().into(),
        key: None,
        payload: b"{not json".as_slice().into(),
        headers: Default::default(),
    };
    bus.publish(garbage).await.unwrap();
    let letter = next(&mut dead).await;
    assert_eq!(letter.payload, b"{not json".as_slice(), "unparseable bytes are dead-lettered as they came");
    assert_eq!(letter.headers.get(HEADER_ERROR_CODE), Some("ONEX_CORE_050_ENVELOPE_INVALID"));
    assert!(
        letter.headers.get("onex-error-message").unwrap_or_default().contains(&request_topic),
        "{:?}",
        letter.headers
    );

    // Everything the host consumed is acknowledged: nothing is left for its group.
    let acknowledged = || async { (memory.backlog(&group, &request_topic) == 0).then_some(()) };
    host_support::eventually("the host acknowledging every message", Duration::from_secs(5), acknowledged).await;
    assert!(running.host().render_metrics().await.lines().any(|l| l == "onex_dlq_total 2"));
    running.shutdown(Duration::from_secs(5)).await;
}
