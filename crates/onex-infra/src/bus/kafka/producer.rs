//! What the bus and the `kafka` handler do alike with a producer: ask the brokers whether they
//! answer, and flush what is queued, both off the async threads (librdkafka blocks).

use std::time::Duration;

use onex_spi::Health;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;

/// How long a health probe waits for the brokers' metadata.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a flush waits for queued messages' delivery reports.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Healthy when the brokers answer a metadata request within [`HEALTH_TIMEOUT`].
pub(crate) async fn broker_health(producer: &FutureProducer) -> Health {
    let producer = producer.clone();
    let probe = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, HEALTH_TIMEOUT).map(|_| ()));
    match probe.await {
        Ok(Ok(())) => Health::Healthy,
        Ok(Err(e)) => Health::Unhealthy(format!("the Kafka brokers do not answer: {e}")),
        Err(e) => Health::Unhealthy(format!("the Kafka health probe failed: {e}")),
    }
}

/// Waits up to [`FLUSH_TIMEOUT`] for every queued message's delivery report; what went wrong
/// otherwise.
pub(crate) async fn flush(producer: &FutureProducer) -> Result<(), String> {
    let producer = producer.clone();
    match tokio::task::spawn_blocking(move || producer.flush(Timeout::After(FLUSH_TIMEOUT))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("flushing the producer: {e}")),
        Err(e) => Err(format!("flushing the producer: {e}")),
    }
}
