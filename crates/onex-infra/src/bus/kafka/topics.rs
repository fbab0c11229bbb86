//! The topics the host uses, created at start when missing (brokers such as tansu do not create
//! a topic on first use), with the bus's partitions and replication factor.

use std::time::Duration;

use onex_spi::{SpiError, SpiResult};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::errors::to_spi;
use super::settings::KafkaSettings;
use crate::error::codes;

/// How long the brokers get to answer the creation request.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates each of `topics` that does not exist; one that does is left as it is.
pub(super) async fn ensure(settings: &KafkaSettings, topics: &[String]) -> SpiResult<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        settings.admin().create().map_err(|e| to_spi(e, "creating the Kafka admin client"))?;
    let replication = || TopicReplication::Fixed(settings.replication_factor);
    let new: Vec<NewTopic<'_>> = topics.iter().map(|t| NewTopic::new(t, settings.partitions, replication())).collect();
    let options = AdminOptions::new().operation_timeout(Some(CREATE_TIMEOUT)).request_timeout(Some(CREATE_TIMEOUT));
    let results = admin.create_topics(&new, &options).await.map_err(|e| to_spi(e, "creating the bus's topics"))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions = settings.partitions, "kafka bus: created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                let message = format!("creating topic `{topic}` ({} partitions): {code}", settings.partitions);
                return Err(SpiError::new(codes::KAFKA_UNAVAILABLE, message));
            }
        }
    }
    Ok(())
}
