//! `InMemoryEventBus`: an `EventBus` in process memory with the delivery semantics of a Kafka
//! bus, so the runtime host runs unchanged on either (single-node deployments and tests).
//!
//! - **Partitions.** Topics are created on first use with the bus's partition count. A keyed
//!   message goes to the partition of its key's FNV-1a hash ([`partition_for_key`], stable
//!   across processes); messages without a key go round-robin. Offsets start at 0 per partition.
//! - **Groups.** Members of one group share the partitions of the topics they subscribe to:
//!   partition `p` of a topic belongs to the `p % n`-th of its `n` subscribed members in join
//!   order, re-dealt whenever a member joins or drops its stream. A partition is delivered in
//!   order to one member at a time; the member may receive several messages ahead of its acks.
//!   Different groups each receive every message.
//! - **At least once.** A group's commit on a partition is the end of its contiguous
//!   acknowledged prefix (acks may come out of order, and late, after a rebalance). A partition
//!   that changes hands resumes at the commit, so every message not yet acknowledged is
//!   delivered again; messages acknowledged beyond a gap are skipped. A group new to a topic
//!   starts at the oldest retained message, like Kafka's `auto.offset.reset=earliest`.
//! - **Bounded memory.** A partition retains at most `capacity` messages. On a topic some group
//!   subscribed to, a message is dropped once every group that ever subscribed to the topic
//!   committed past it — a group without live members still holds its uncommitted messages, so
//!   a restarted consumer loses nothing — and `publish` waits while its partition is full
//!   (backpressure). A topic no group ever subscribed to has size retention, like Kafka's: a
//!   full partition drops its oldest message to make room, so publishing there never blocks
//!   (replies nobody reads cannot stall a host). Offsets keep increasing either way.
//! - **Close.** `close` ends every stream and wakes waiting publishers; from then on publish,
//!   subscribe and acknowledge fail with `ONEX_INFRA_030_BUS_CLOSED` (unavailable).
//!
//! Committed offsets live as long as the bus: this bus is not durable across restarts.

mod group;
mod state;
mod stream;
mod topic;

use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use onex_spi::{Delivery, EventBus, Health, InboundMessage, MessageStream, OutboundMessage, SpiError, SpiResult};
use tokio::sync::Notify;

use state::{Append, State};
use stream::Subscription;
pub use topic::partition_for_key;

/// A map keyed by topic or group name. The bus looks names up several times per message, so
/// they are hashed with foldhash (seeded per process) rather than std's slower SipHash.
type ByName<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

/// The state and the signal publishers wait on for space.
///
/// The state sits behind a std mutex, never held across an await: streams lock it from
/// `poll_next` and from `Drop`, where an async lock cannot be taken.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    space: Notify,
}

impl Shared {
    /// Runs `f` on the state, then — with the lock released — frees the records it trimmed,
    /// wakes the streams it asked for and the waiting publishers when space freed.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, wake, space_freed, dropped) = {
            let mut state = self.lock();
            let result = f(&mut state);
            let dropped = std::mem::take(&mut state.dropped);
            (result, std::mem::take(&mut state.wake), std::mem::take(&mut state.space_freed), dropped)
        };
        drop(dropped);
        wake.into_iter().for_each(|waker| waker.wake());
        if space_freed {
            self.space.notify_waiters();
        }
        result
    }

    /// The state; no code panics while holding it, so a poisoned lock still holds a sound state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An event bus in process memory; cloning it shares the same bus.
#[derive(Clone)]
pub struct InMemoryEventBus {
    shared: Arc<Shared>,
    partitions: u32,
    capacity: u32,
}

impl InMemoryEventBus {
    /// A bus whose topics have `partitions` partitions each retaining at most `capacity`
    /// messages (both at least one).
    pub fn new(partitions: u32, capacity: u32) -> Self {
        let (partitions, capacity) = (partitions.max(1), capacity.max(1));
        let shared = Shared { state: Mutex::new(State::new(partitions, capacity)), space: Notify::new() };
        Self { shared: Arc::new(shared), partitions, capacity }
    }

    /// `group`'s committed offset on `partition` of `topic` (every earlier message is
    /// acknowledged); `None` if the group never subscribed to the topic.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.shared.lock().committed(group, topic, partition)
    }

    /// How many messages of `topic` are published but not committed by `group`.
    pub fn backlog(&self, group: &str, topic: &str) -> u64 {
        self.shared.lock().backlog(group, topic)
    }

    /// How many messages of `topic` the bus holds now, over all its partitions (0 for a topic
    /// never used).
    pub fn retained(&self, topic: &str) -> u64 {
        self.shared.lock().retained(topic)
    }
}

impl fmt::Debug for InMemoryEventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEventBus")
            .field("partitions", &self.partitions)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventBus for InMemoryEventBus {
    async fn publish(&self, message: OutboundMessage) -> SpiResult<Delivery> {
        let mut partition = None;
        // Fast path: room now, no need to register for the space signal.
        let mut message = match self.shared.with(|state| state.publish(message, &mut partition))? {
            Append::Done(delivery) => return Ok(delivery),
            Append::Full(back) => back,
        };
        loop {
            // Registered before looking, so space freed in between is not missed.
            let mut space = pin!(self.shared.space.notified());
            space.as_mut().enable();
            match self.shared.with(|state| state.publish(message, &mut partition))? {
                Append::Done(delivery) => return Ok(delivery),
                Append::Full(back) => message = back,
            }
            space.await;
        }
    }

    async fn subscribe(&self, group: &str, topics: &[String]) -> SpiResult<MessageStream> {
        let member = self.shared.with(|state| state.subscribe(group, topics))?;
        Ok(Box::pin(Subscription { shared: Arc::clone(&self.shared), group: group.to_owned(), member }))
    }

    async fn acknowledge(&self, group: &str, message: &InboundMessage) -> SpiResult<()> {
        self.shared.with(|state| state.acknowledge(group, message))
    }

    fn is_durable(&self) -> bool {
        false
    }

    async fn health(&self) -> Health {
        if self.shared.lock().is_closed() { Health::Unhealthy("the bus is closed".to_owned()) } else { Health::Healthy }
    }

    async fn close(&self) -> Result<(), SpiError> {
        self.shared.with(State::close);
        Ok(())
    }
}
