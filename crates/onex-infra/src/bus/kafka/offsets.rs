//! Which offset a group member may commit for each partition it holds: the end of the partition's
//! contiguous acknowledged prefix, never past a message handed out and not yet acknowledged.

use std::collections::{BTreeMap, BTreeSet};

/// A partition of a topic.
pub(super) type TopicPartition = (String, i32);

/// One partition's delivered and acknowledged offsets.
#[derive(Debug, Default, Clone)]
struct PartitionOffsets {
    /// Offsets handed to the consumer and not acknowledged yet.
    pending: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next: Option<i64>,
    /// The position last stored for commit (at first, the first offset handed out: where the
    /// group's committed position already was).
    stored: Option<i64>,
}

impl PartitionOffsets {
    /// The committable position: the first offset still pending, else one past the last handed
    /// out (the next offset to read, as Kafka commits it).
    fn position(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

/// The offsets of every partition one group member holds.
#[derive(Debug, Default)]
pub(super) struct OffsetBook {
    partitions: BTreeMap<TopicPartition, PartitionOffsets>,
}

impl OffsetBook {
    /// The member was given `partition`: its book starts empty (what the group committed is
    /// where the broker resumes).
    pub(super) fn assign(&mut self, partition: TopicPartition) {
        self.partitions.insert(partition, PartitionOffsets::default());
    }

    /// The member lost `partition`: its book is dropped; returns the position to commit for it
    /// before it goes, if any message of it was acknowledged since the last commit position.
    pub(super) fn revoke(&mut self, partition: &TopicPartition) -> Option<i64> {
        let offsets = self.partitions.remove(partition)?;
        offsets.position()
    }

    /// Whether the member holds `partition`.
    pub(super) fn holds(&self, partition: &TopicPartition) -> bool {
        self.partitions.contains_key(partition)
    }

    /// `offset` of `partition` was handed to the consumer.
    pub(super) fn delivered(&mut self, partition: &TopicPartition, offset: i64) {
        let entry = self.partitions.entry(partition.clone()).or_default();
        // The first message of a partition is where the group's position already is.
        entry.stored.get_or_insert(offset);
        entry.pending.insert(offset);
        entry.next = Some(entry.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// `offset` of `partition` was acknowledged. Returns the new position to store for commit
    /// when it moved, `None` when it did not (an earlier message is still pending) or the
    /// partition is no longer held (its next owner gets the message again).
    pub(super) fn acknowledged(&mut self, partition: &TopicPartition, offset: i64) -> Option<i64> {
        let entry = self.partitions.get_mut(partition)?;
        if !entry.pending.remove(&offset) {
            return None;
        }
        let position = entry.position()?;
        if entry.stored == Some(position) {
            return None;
        }
        entry.stored = Some(position);
        Some(position)
    }

    /// Every held partition with its committable position.
    pub(super) fn positions(&self) -> Vec<(TopicPartition, i64)> {
        self.partitions.iter().filter_map(|(p, o)| Some((p.clone(), o.position()?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p0() -> TopicPartition {
        ("requests".to_owned(), 0)
    }

    #[test]
    fn the_position_stops_at_the_first_message_not_acknowledged() {
        let mut book = OffsetBook::default();
        book.assign(p0());
        for offset in 10..14 {
            book.delivered(&p0(), offset);
        }
        assert_eq!(book.acknowledged(&p0(), 11), None, "10 is still pending");
        assert_eq!(book.acknowledged(&p0(), 10), Some(12), "10 and 11 done: resume at 12");
        assert_eq!(book.acknowledged(&p0(), 13), None, "12 is still pending");
        assert_eq!(book.positions(), [(p0(), 12)]);
        assert_eq!(book.acknowledged(&p0(), 12), Some(14));
        assert_eq!(book.acknowledged(&p0(), 12), None, "a second acknowledgement changes nothing");
    }

    #[test]
    fn a_revoked_partition_gives_its_position_once_and_ignores_late_acknowledgements() {
        let mut book = OffsetBook::default();
        book.assign(p0());
        book.delivered(&p0(), 5);
        book.delivered(&p0(), 6);
        assert_eq!(book.acknowledged(&p0(), 5), Some(6));
        assert_eq!(book.revoke(&p0()), Some(6));
        assert!(!book.holds(&p0()));
        assert_eq!(book.acknowledged(&p0(), 6), None, "the next owner gets 6 again");
        assert_eq!(book.revoke(&p0()), None);
    }

    proptest! {
        /// Whatever order acknowledgements come in, the position never passes an offset not
        /// acknowledged, and reaches the end once all are.
        #[test]
        fn the_position_never_passes_a_pending_offset(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut book = OffsetBook::default();
            book.assign(p0());
            for offset in 0..40 {
                book.delivered(&p0(), offset);
            }
            let mut acked = BTreeSet::new();
            for offset in order {
                acked.insert(offset);
                let first_pending = (0..40).find(|o| !acked.contains(o)).unwrap_or(40);
                if let Some(position) = book.acknowledged(&p0(), offset) {
                    prop_assert_eq!(position, first_pending);
                }
                prop_assert_eq!(book.positions(), vec![(p0(), first_pending)]);
            }
        }
    }
}
