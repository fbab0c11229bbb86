//! The in-memory bus's partition logs: the key partitioner and each partition's retained
//! messages with their offsets.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use onex_spi::{Bytes, Headers, InboundMessage, OutboundMessage};

/// FNV-1a (64-bit) of `bytes`: the same value in every process and every bus, unlike std's
/// randomly seeded hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The partition messages with `key` go to among `partitions` (at least one).
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    let partition = fnv1a(key.as_bytes()) % u64::from(partitions.max(1));
    u32::try_from(partition).unwrap_or(0)
}

/// One retained message, shared (not copied) with deliveries in progress: its payload and
/// headers are shared with every delivery of it too.
#[derive(Debug, Clone)]
pub(super) struct Record {
    key: Option<String>,
    payload: Bytes,
    headers: Headers,
}

/// A message picked for a member under the lock; [`Picked::into_inbound`] makes the delivery
/// after the lock is released, so the lock is held for a pointer copy, not for allocations.
#[derive(Debug)]
pub(super) struct Picked {
    pub(super) topic: Arc<str>,
    pub(super) partition: u32,
    pub(super) offset: u64,
    pub(super) record: Arc<Record>,
}

impl Picked {
    /// The message as a consumer receives it.
    pub(super) fn into_inbound(self) -> InboundMessage {
        let Self { topic, partition, offset, record } = self;
        let (key, payload, headers) = (record.key.clone(), record.payload.clone(), Arc::clone(&record.headers));
        InboundMessage { topic, partition, offset, key, payload, headers }
    }
}

/// One partition: the messages from offset `base` on, oldest first.
#[derive(Debug, Default)]
pub(super) struct Partition {
    base: u64,
    log: VecDeque<Arc<Record>>,
}

impl Partition {
    /// The offset of the oldest retained message (the next one's when nothing is retained).
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// The offset the next published message gets.
    pub(super) fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// How many messages are retained.
    pub(super) fn len(&self) -> usize {
        self.log.len()
    }

    /// Appends `message`; returns its offset.
    pub(super) fn push(&mut self, message: OutboundMessage) -> u64 {
        let offset = self.end();
        self.log.push_back(Arc::new(Record { key: message.key, payload: message.payload, headers: message.headers }));
        offset
    }

    /// The message at `offset`, if it is retained.
    pub(super) fn get(&self, topic: &Arc<str>, partition: u32, offset: u64) -> Option<Picked> {
        let index = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        let record = Arc::clone(self.log.get(index)?);
        Some(Picked { topic: Arc::clone(topic), partition, offset, record })
    }

    /// Drops the messages below `floor` (every interested group committed past them, or
    /// retention makes room). Returns whether anything was dropped.
    pub(super) fn trim(&mut self, floor: u64, dropped: &mut impl Extend<Arc<Record>>) -> bool {
        let before = self.base;
        while self.base < floor {
            let Some(record) = self.log.pop_front() else { break };
            dropped.extend([record]);
            self.base += 1;
        }
        self.base != before
    }
}

/// A topic: its partitions, the round-robin position for messages without a key and the groups
/// that ever subscribed to it (their commits decide what may be dropped; with none, a full
/// partition drops its oldest message).
#[derive(Debug)]
pub(super) struct Topic {
    pub(super) partitions: Vec<Partition>,
    pub(super) groups: BTreeSet<String>,
    next_unkeyed: u32,
}

impl Topic {
    /// A topic with `partitions` empty partitions.
    pub(super) fn new(partitions: u32) -> Self {
        Self {
            partitions: (0..partitions).map(|_| Partition::default()).collect(),
            groups: BTreeSet::new(),
            next_unkeyed: 0,
        }
    }

    /// The partition a message goes to: its key's, or the next one round-robin.
    pub(super) fn route(&mut self, key: Option<&str>) -> u32 {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX).max(1);
        match key {
            Some(key) => partition_for_key(key, count),
            None => {
                let partition = self.next_unkeyed % count;
                self.next_unkeyed = (partition + 1) % count;
                partition
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_key_always_maps_to_the_same_partition() {
        for key in ["order-1", "order-2", "", "ключ"] {
            let first = partition_for_key(key, 8);
            assert!(first < 8);
            assert_eq!(partition_for_key(key, 8), first);
            assert_eq!(Topic::new(8).route(Some(key)), first);
        }
        assert_eq!(partition_for_key("anything", 0), 0);
    }

    #[test]
    fn unkeyed_messages_go_round_robin() {
        let mut topic = Topic::new(3);
        let routed: Vec<u32> = (0..7).map(|_| topic.route(None)).collect();
        assert_eq!(routed, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn trimming_keeps_offsets() {
        let mut partition = Partition::default();
        for n in 0..3u8 {
            let message =
                OutboundMessage { topic: "t".into(), key: None, payload: vec![n].into(), headers: Headers::default() };
            assert_eq!(partition.push(message), u64::from(n));
        }
        let mut dropped = Vec::new();
        assert!(partition.trim(2, &mut dropped));
        assert!(!partition.trim(2, &mut dropped));
        assert_eq!(dropped.len(), 2);
        assert_eq!((partition.base(), partition.end(), partition.len()), (2, 3, 1));
        let topic: Arc<str> = "t".into();
        assert!(partition.get(&topic, 0, 1).is_none());
        assert_eq!(partition.get(&topic, 0, 2).map(|m| m.into_inbound().payload), Some(Bytes::from(vec![2])));
    }
}
