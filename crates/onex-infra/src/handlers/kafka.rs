//! The `kafka` handler (the Kafka adapter node's): `kafka.publish` writes one record to a
//! topic through an idempotent producer (`acks=all`) and answers where it landed.
//!
//! Config: `bootstrap_servers` and optional librdkafka `properties` (values may be `${env:…}` /
//! `${vault:…}` references), resolved and checked like the bus's `bus.kafka`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use onex_core::envelope::Envelope;
use onex_core::error::codes as core_codes;
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SecretStore, SpiError, SpiResult, async_trait,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::payload::{content_bytes, decode};
use crate::bus::KafkaSettings;
use crate::bus::kafka::errors::to_spi;
use crate::bus::kafka::producer::{broker_health, flush};
use crate::error::codes;

/// The handler's `config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaConfig {
    bootstrap_servers: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// `kafka.publish`'s payload: the record. The value is `value` (JSON, written as its text) or
/// `value_base64` (raw bytes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    topic: String,
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    value: Option<Json>,
    value_base64: Option<String>,
}

/// Publishes records; its producer is made at `initialize`, once its secrets are resolved.
pub struct KafkaHandler {
    config: KafkaConfig,
    secrets: Arc<dyn SecretStore>,
    producer: OnceLock<FutureProducer>,
}

impl std::fmt::Debug for KafkaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The properties may hold resolved secrets once initialised: only the servers are shown.
        f.debug_struct("KafkaHandler")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("kafka")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "kafka".into(), operations: Vec::new() })
}

impl KafkaHandler {
    async fn publish(&self, request: &Envelope) -> SpiResult<Json> {
        let producer = self
            .producer
            .get()
            .ok_or_else(|| SpiError::new(codes::KAFKA_UNAVAILABLE, "the kafka handler was not initialised"))?;
        let req: PublishRequest = decode("kafka.publish", &request.payload)?;
        let value = match (req.value, req.value_base64) {
            (Some(value), None) => value.to_string().into_bytes(),
            (None, b64) => content_bytes("kafka.publish", None, b64.as_deref())
                .map_err(|_| bad("`value` or `value_base64` is required and `value_base64` must be base64"))?,
            (Some(_), Some(_)) => return Err(bad("give `value` or `value_base64`, not both")),
        };
        let mut headers = OwnedHeaders::new_with_capacity(req.headers.len());
        for (key, value) in &req.headers {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let mut record = FutureRecord::to(&req.topic).payload(&value).headers(headers);
        if let Some(key) = &req.key {
            record = record.key(key);
        }
        let context = format!("envelope {}: kafka.publish to `{}`", request.envelope_id, req.topic);
        let delivered = producer.send(record, Timeout::Never).await.map_err(|(e, _)| to_spi(e, &context))?;
        Ok(json!({"topic": req.topic, "partition": delivered.partition, "offset": delivered.offset}))
    }
}

fn bad(message: &str) -> SpiError {
    SpiError::new(codes::BAD_PAYLOAD, format!("kafka.publish: {message}"))
}

#[async_trait]
impl Handler for KafkaHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        let settings = KafkaSettings::client(
            self.config.bootstrap_servers.clone(),
            &self.config.properties,
            "kafka config properties",
            &*self.secrets,
        )
        .await?;
        let producer: FutureProducer =
            settings.producer().create().map_err(|e| to_spi(e, "creating the kafka handler's producer"))?;
        let _ = self.producer.set(producer);
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        match request.operation.as_str() {
            "kafka.publish" => self.publish(request).await,
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the kafka handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn health(&self) -> Health {
        match self.producer.get() {
            Some(producer) => broker_health(producer).await,
            None => Health::Unhealthy("not initialised".into()),
        }
    }

    async fn shutdown(&self) -> SpiResult<()> {
        let Some(producer) = self.producer.get() else { return Ok(()) };
        flush(producer).await.map_err(|e| SpiError::new(codes::KAFKA_UNAVAILABLE, format!("the kafka handler: {e}")))
    }
}

/// Builds [`KafkaHandler`]s from `{bootstrap_servers, properties}`.
#[derive(Debug, Default)]
pub struct KafkaHandlerFactory;

impl HandlerFactory for KafkaHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        let config: KafkaConfig = serde_json::from_value(init.config)
            .map_err(|e| SpiError::new(codes::KAFKA_CONFIG, format!("kafka config: {e}")))?;
        Ok(Arc::new(KafkaHandler { config, secrets: init.secrets, producer: OnceLock::new() }))
    }
}
