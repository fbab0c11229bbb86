//! The `kafka` handler against the tansu broker `cargo xtask services up` starts: a record
//! published with `kafka.publish` is read back with its key, headers and value, at the partition
//! and offset the reply gave; bad payloads are refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::load_runtime_config;
use onex_core::envelope::Envelope;
use onex_infra::bus::{KafkaEventBus, KafkaSettings};
use onex_infra::handlers::KafkaHandlerFactory;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, HandlerFactory, HandlerInit};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_record_is_read_back_where_the_reply_says_it_landed() {
    let bootstrap = common::service_url("ONEX_KAFKA_BOOTSTRAP", "127.0.0.1:9092");
    let topic = format!("onex.evt.kafka-handler-test.{}.v1", new_uuid_v7().simple());
    let text = format!("bus:\n  kind: kafka\n  bootstrap_servers: {bootstrap}\n  partitions: 2\n");
    let bus_config = load_runtime_config("bus.yaml", text.as_bytes()).unwrap().value.bus;
    let settings = KafkaSettings::resolve(&bus_config, &EnvSecretStore).await.unwrap();
    let reader = KafkaEventBus::connect(settings, std::slice::from_ref(&topic)).await.unwrap();
    let mut stream = reader.subscribe("kafka-handler-test", std::slice::from_ref(&topic)).await.unwrap();

    let init = HandlerInit {
        config: json!({"bootstrap_servers": bootstrap}),
        secrets: Arc::new(EnvSecretStore),
        data_dir: std::env::temp_dir(),
    };
    let handler = KafkaHandlerFactory.create(init).unwrap();
    handler.initialize().await.unwrap();
    let payload = json!({"topic": topic, "key": "order-7", "headers": {"source": "test"}, "value": {"total": 42}});
    let request = Envelope::request(new_uuid_v7(), "kafka.publish", payload, now_utc());
    let reply = handler.execute(&request).await.unwrap();

    let poll = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
    let record =
        tokio::time::timeout(Duration::from_secs(60), poll).await.expect("the record in time").unwrap().unwrap();
    assert_eq!(reply, json!({"topic": topic, "partition": record.partition, "offset": record.offset}));
    assert_eq!(record.key.as_deref(), Some("order-7"));
    assert_eq!(record.headers.get("source"), Some("test"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&record.payload).unwrap(), json!({"total": 42}));

    let both = json!({"topic": topic, "value": 1, "value_base64": "AA=="});
    let error = handler.execute(&Envelope::request(new_uuid_v7(), "kafka.publish", both, now_utc())).await.unwrap_err();
    assert_eq!(error.code(), "ONEX_INFRA_020_BAD_PAYLOAD");
    assert!(error.message().contains("not both"), "{error}");
    let unknown = json!({"topic": topic, "value": 1, "partition": 3});
    let error =
        handler.execute(&Envelope::request(new_uuid_v7(), "kafka.publish", unknown, now_utc())).await.unwrap_err();
    assert!(error.message().contains("partition"), "{error}");
    handler.shutdown().await.unwrap();
}
