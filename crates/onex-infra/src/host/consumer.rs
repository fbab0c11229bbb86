//! The bus consumer: the host joins its consumer group once per lane, so the bus deals the
//! partitions among the lanes; each lane processes its partitions' messages one at a time, in
//! order, and different lanes run in parallel.
//!
//! What happens to one message is [`super::delivery`]'s: tried (again in place while its
//! failure may pass), its outcome published, then acknowledged. A lane whose stream fails
//! joins the group again; the bus then delivers whatever was not acknowledged once more.

use std::sync::Arc;

use onex_core::contract::DeliveryConfig;
use onex_spi::{MessageStream, SpiError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::RuntimeHost;
use super::delivery::{Backoff, Stopped, settle};

/// Where the consumer reads and writes, and how it retries.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Topic replies go to.
    pub reply_topic: Arc<str>,
    /// Topic failed messages go to.
    pub dlq_topic: Arc<str>,
    /// Lanes (group members) processing partitions in parallel.
    pub lanes: usize,
    /// In-place retries and their waits.
    pub delivery: DeliveryConfig,
}

/// Joins the group once per lane and consumes until `stop` turns true; a lane finishes the
/// message in hand, then leaves the group. Fails only when the first join fails.
pub async fn consume(
    host: Arc<RuntimeHost>,
    config: ConsumerConfig,
    stop: watch::Receiver<bool>,
) -> Result<(), SpiError> {
    let config = Arc::new(config);
    let mut lanes = JoinSet::new();
    for _ in 0..config.lanes.max(1) {
        let stream = host.bus.subscribe(&config.group, &config.topics).await?;
        lanes.spawn(lane(Arc::clone(&host), Arc::clone(&config), stream, stop.clone()));
    }
    while lanes.join_next().await.is_some() {}
    Ok(())
}

async fn lane(host: Arc<RuntimeHost>, config: Arc<ConsumerConfig>, stream: MessageStream, stop: watch::Receiver<bool>) {
    let mut lane = Lane { host, config, stop };
    // `Err(Stopped)`: the host is stopping; what is not acknowledged is delivered again later.
    let _stopped: Result<(), Stopped> = lane.run(stream).await;
}

/// One group member's loop.
struct Lane {
    host: Arc<RuntimeHost>,
    config: Arc<ConsumerConfig>,
    stop: watch::Receiver<bool>,
}

impl Lane {
    async fn run(&mut self, mut stream: MessageStream) -> Result<(), Stopped> {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => return Err(Stopped),
                next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)) => next,
            };
            match next {
                Some(Ok(message)) => settle(&self.host, &self.config, &message, &mut self.stop).await?,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, group = %self.config.group, "bus consumer: the stream failed; joining the group again");
                    drop(stream);
                    stream = self.rejoin().await?;
                }
                None => return Ok(()),
            }
        }
    }

    /// Subscribes again, waiting between tries, until it succeeds or the host stops.
    async fn rejoin(&mut self) -> Result<MessageStream, Stopped> {
        let mut backoff = Backoff::new(&self.config.delivery);
        loop {
            match self.host.bus.subscribe(&self.config.group, &self.config.topics).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    self.host.metrics.bus_retried();
                    tracing::warn!(error = %e, group = %self.config.group, "bus consumer: cannot join the group; trying again");
                    backoff.wait(&mut self.stop).await?;
                }
            }
        }
    }
}
