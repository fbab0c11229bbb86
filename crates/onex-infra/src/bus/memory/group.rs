//! Consumer groups of the in-memory bus: live members, which partitions each one owns, how far
//! each owner has delivered, and the group's acknowledged and committed offsets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::Waker;

use super::ByName;

/// A group's position on one partition.
#[derive(Debug)]
pub(super) struct Progress {
    /// Every offset below this one is acknowledged.
    pub(super) committed: u64,
    /// Acknowledged offsets at or above `committed` (acknowledged out of order).
    acked: BTreeSet<u64>,
}

impl Progress {
    /// A position at `committed`, nothing else acknowledged.
    pub(super) fn at(committed: u64) -> Self {
        Self { committed, acked: BTreeSet::new() }
    }

    /// Whether `offset` is already processed by the group.
    pub(super) fn is_acked(&self, offset: u64) -> bool {
        offset < self.committed || self.acked.contains(&offset)
    }

    /// Records `offset` as processed; the commit moves to the end of the contiguous
    /// acknowledged prefix. Returns whether it moved.
    pub(super) fn acknowledge(&mut self, offset: u64) -> bool {
        if offset < self.committed {
            return false;
        }
        self.acked.insert(offset);
        let before = self.committed;
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
        self.committed != before
    }
}

/// A partition owned by a member and the next offset to deliver from it.
#[derive(Debug)]
pub(super) struct Assignment {
    /// Shared with every delivery from the partition.
    pub(super) topic: Arc<str>,
    pub(super) partition: u32,
    pub(super) cursor: u64,
}

/// A live member: one subscription stream.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) id: u64,
    topics: Vec<String>,
    pub(super) assigned: Vec<Assignment>,
    /// Where the next search for a message starts among `assigned`, so no partition starves.
    pub(super) next_pick: usize,
    /// The waker of the member's stream while it waits for a message.
    pub(super) waker: Option<Waker>,
}

impl Member {
    /// Whether the member owns `partition` of `topic`.
    pub(super) fn owns(&self, topic: &str, partition: u32) -> bool {
        self.assigned.iter().any(|a| a.partition == partition && *a.topic == *topic)
    }
}

/// A consumer group: members in join order and the group's progress per topic and partition.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) members: Vec<Member>,
    pub(super) progress: ByName<Vec<Progress>>,
}

impl Group {
    /// The group's commit on `partition` of `topic`, if it subscribed to the topic.
    pub(super) fn committed(&self, topic: &str, partition: u32) -> Option<u64> {
        committed(&self.progress, topic, partition)
    }

    /// Adds a member on `topics` (distinct) and rebalances; the caller wakes `wake`.
    pub(super) fn join(&mut self, id: u64, topics: Vec<String>, partitions: u32, wake: &mut impl Extend<Waker>) {
        self.members.push(Member { id, topics, assigned: Vec::new(), next_pick: 0, waker: None });
        self.rebalance(partitions, wake);
    }

    /// Removes member `id` and rebalances; the caller wakes `wake`.
    pub(super) fn leave(&mut self, id: u64, partitions: u32, wake: &mut impl Extend<Waker>) {
        self.members.retain(|m| m.id != id);
        self.rebalance(partitions, wake);
    }

    /// Deals every partition of every subscribed topic to the members subscribed to it:
    /// partition `p` goes to the `p % n`-th of those `n` members in join order. A member keeps
    /// its position on a partition it already owned; a partition that changes hands resumes at
    /// the group's commit, so whatever is not acknowledged is delivered again.
    fn rebalance(&mut self, partitions: u32, wake: &mut impl Extend<Waker>) {
        let mut wanted: Vec<Vec<(Arc<str>, u32)>> = self.members.iter().map(|_| Vec::new()).collect();
        let topics: BTreeSet<&String> = self.members.iter().flat_map(|m| &m.topics).collect();
        for topic in topics {
            let shared: Arc<str> = Arc::from(topic.as_str());
            let subscribers: Vec<usize> =
                self.members.iter().enumerate().filter(|(_, m)| m.topics.contains(topic)).map(|(i, _)| i).collect();
            for (partition, owner) in (0..partitions).zip(subscribers.iter().cycle()) {
                if let Some(owned) = wanted.get_mut(*owner) {
                    owned.push((Arc::clone(&shared), partition));
                }
            }
        }
        let progress = &self.progress;
        for (member, owned) in self.members.iter_mut().zip(wanted) {
            let before = std::mem::take(&mut member.assigned);
            member.assigned = owned
                .into_iter()
                .map(|(topic, partition)| {
                    let kept = before.iter().find(|a| a.partition == partition && a.topic == topic);
                    let cursor = match kept {
                        Some(kept) => kept.cursor,
                        None => committed(progress, &topic, partition).unwrap_or(0),
                    };
                    Assignment { topic, partition, cursor }
                })
                .collect();
            member.next_pick = 0;
            wake.extend(member.waker.take());
        }
    }
}

/// The commit on `partition` of `topic` in `progress`.
fn committed(progress: &ByName<Vec<Progress>>, topic: &str, partition: u32) -> Option<u64> {
    Some(progress.get(topic)?.get(usize::try_from(partition).ok()?)?.committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_the_contiguous_acknowledged_prefix() {
        let mut progress = Progress::at(0);
        assert!(!progress.acknowledge(2));
        assert!(!progress.acknowledge(1));
        assert_eq!(progress.committed, 0);
        assert!(progress.acknowledge(0));
        assert_eq!(progress.committed, 3);
        assert!(!progress.acknowledge(1));
        assert!(progress.is_acked(1) && !progress.is_acked(3));
    }

    #[test]
    fn partitions_are_dealt_in_join_order() {
        let mut group = Group::default();
        let mut wake = Vec::new();
        group.join(7, vec!["t".into()], 5, &mut wake);
        group.join(9, vec!["t".into(), "u".into()], 5, &mut wake);
        let owned = |group: &Group, i: usize, topic: &str| -> Vec<u32> {
            group.members[i].assigned.iter().filter(|a| *a.topic == *topic).map(|a| a.partition).collect()
        };
        assert_eq!(owned(&group, 0, "t"), [0, 2, 4]);
        assert_eq!(owned(&group, 1, "t"), [1, 3]);
        assert_eq!(owned(&group, 1, "u"), [0, 1, 2, 3, 4]);
        group.leave(9, 5, &mut wake);
        assert_eq!(owned(&group, 0, "t"), [0, 1, 2, 3, 4]);
        assert_eq!(owned(&group, 0, "u"), Vec::<u32>::new());
    }
}
