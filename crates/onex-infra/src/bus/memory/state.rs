//! The in-memory bus's whole state behind its one lock: topics, groups and what to wake once
//! the lock is released. Every operation here is synchronous and quick.

use std::sync::Arc;
use std::task::{Poll, Waker};

use onex_spi::{Delivery, InboundMessage, OutboundMessage, SpiError, SpiResult};
use smallvec::SmallVec;

use super::ByName;
use super::group::{Group, Progress};
use super::topic::{Picked, Record, Topic};
use crate::error::codes;

/// What became of a publish attempt.
#[derive(Debug)]
pub(super) enum Append {
    /// Stored at this position.
    Done(Delivery),
    /// The partition is full; the message is handed back to try again once space frees.
    Full(OutboundMessage),
}

/// Topics, groups and the wake-ups owed once the lock is released.
#[derive(Debug)]
pub(super) struct State {
    partitions: u32,
    capacity: usize,
    closed: bool,
    topics: ByName<Topic>,
    groups: ByName<Group>,
    next_member: u64,
    /// Streams to wake after unlocking (inline: taken out on every operation, so a heap
    /// vector would be allocated again each time).
    pub(super) wake: SmallVec<[Waker; 4]>,
    /// Whether publishers waiting for space must look again (space freed, or the bus closed).
    pub(super) space_freed: bool,
    /// Records trimmed from the logs, freed after unlocking (inline, as `wake`).
    pub(super) dropped: SmallVec<[Arc<Record>; 4]>,
}

/// The topic `name` of `topics`, created with `partitions` partitions on first use.
fn topic<'a>(topics: &'a mut ByName<Topic>, name: &str, partitions: u32) -> &'a mut Topic {
    // Looked up before the entry API, which would copy the name on every publish.
    if !topics.contains_key(name) {
        topics.insert(name.to_owned(), Topic::new(partitions));
    }
    topics.get_mut(name).unwrap_or_else(|| unreachable!("inserted above"))
}

fn closed() -> SpiError {
    SpiError::new(codes::BUS_CLOSED, "the in-memory event bus is closed")
}

impl State {
    /// An empty bus; `partitions` and `capacity` are at least one.
    pub(super) fn new(partitions: u32, capacity: u32) -> Self {
        Self {
            partitions: partitions.max(1),
            capacity: usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            closed: false,
            topics: ByName::default(),
            groups: ByName::default(),
            next_member: 0,
            wake: SmallVec::new(),
            space_freed: false,
            dropped: SmallVec::new(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Picks the partition of `message` (once per message: `partition` keeps the choice across
    /// attempts) and appends it if that partition has room. A full partition of a topic no
    /// group ever subscribed to drops its oldest message instead.
    pub(super) fn publish(&mut self, message: OutboundMessage, partition: &mut Option<u32>) -> SpiResult<Append> {
        if self.closed {
            return Err(closed());
        }
        let capacity = self.capacity;
        let topic = topic(&mut self.topics, &message.topic, self.partitions);
        let chosen = *partition.get_or_insert_with(|| topic.route(message.key.as_deref()));
        let Some(log) = topic.partitions.get_mut(usize::try_from(chosen).unwrap_or(usize::MAX)) else {
            return Err(SpiError::new(codes::NOT_FOUND, format!("partition {chosen} does not exist")));
        };
        if log.len() >= capacity {
            if !topic.groups.is_empty() {
                return Ok(Append::Full(message));
            }
            // No group ever subscribed, so nothing waits for these messages: size retention,
            // as Kafka's, makes room by dropping the oldest (publish never blocks here).
            log.trim(log.base() + 1, &mut self.dropped);
        }
        for (_, group) in self.groups.iter_mut().filter(|(group, _)| topic.groups.contains(*group)) {
            for member in group.members.iter_mut().filter(|m| m.owns(&message.topic, chosen)) {
                self.wake.extend(member.waker.take());
            }
        }
        Ok(Append::Done(Delivery { partition: chosen, offset: log.push(message) }))
    }

    /// Adds a member of `group` on `topics`; returns its id. A group new to a topic starts at
    /// the oldest retained message of each partition.
    pub(super) fn subscribe(&mut self, group: &str, topics: &[String]) -> SpiResult<u64> {
        if self.closed {
            return Err(closed());
        }
        if topics.is_empty() {
            return Err(SpiError::new(codes::BAD_PAYLOAD, format!("group {group} subscribed to no topic")));
        }
        let mut distinct: Vec<String> = Vec::with_capacity(topics.len());
        for name in topics {
            if distinct.contains(name) {
                continue;
            }
            distinct.push(name.clone());
            let topic = topic(&mut self.topics, name, self.partitions);
            topic.groups.insert(group.to_owned());
            let start: Vec<Progress> = topic.partitions.iter().map(|p| Progress::at(p.base())).collect();
            let progress = &mut self.groups.entry(group.to_owned()).or_default().progress;
            progress.entry(name.clone()).or_insert(start);
        }
        let id = self.next_member;
        self.next_member += 1;
        if let Some(group) = self.groups.get_mut(group) {
            group.join(id, distinct, self.partitions, &mut self.wake);
        }
        Ok(id)
    }

    /// Removes member `id` of `group` (its stream was dropped); its partitions go to the others.
    pub(super) fn leave(&mut self, group: &str, id: u64) {
        if let Some(group) = self.groups.get_mut(group) {
            group.leave(id, self.partitions, &mut self.wake);
        }
    }

    /// The next message for member `id` of `group`, taken round-robin over its partitions;
    /// pending (with `waker` kept) when none is there, ended when the bus is closed.
    pub(super) fn next_for(&mut self, group: &str, id: u64, waker: &Waker) -> Poll<Option<Picked>> {
        let member_and_progress =
            self.groups.get_mut(group).and_then(|g| Some((g.members.iter_mut().find(|m| m.id == id)?, &g.progress)));
        let (false, Some((member, progress))) = (self.closed, member_and_progress) else {
            return Poll::Ready(None);
        };
        let count = member.assigned.len();
        for step in 0..count {
            let index = (member.next_pick + step) % count;
            let Some(assignment) = member.assigned.get_mut(index) else { continue };
            let slot = usize::try_from(assignment.partition).unwrap_or(usize::MAX);
            let log = self.topics.get(&*assignment.topic).and_then(|t| t.partitions.get(slot));
            let (Some(log), Some(done)) = (log, progress.get(&*assignment.topic).and_then(|p| p.get(slot))) else {
                continue;
            };
            // Skip what the group already acknowledged (also through late acks after a rebalance).
            assignment.cursor = assignment.cursor.max(done.committed);
            while assignment.cursor < log.end() && done.is_acked(assignment.cursor) {
                assignment.cursor += 1;
            }
            if let Some(message) = log.get(&assignment.topic, assignment.partition, assignment.cursor) {
                assignment.cursor += 1;
                member.next_pick = (index + 1) % count;
                return Poll::Ready(Some(message));
            }
        }
        member.waker = Some(waker.clone());
        Poll::Pending
    }

    /// Records that `group` processed `message`; drops what every interested group committed.
    pub(super) fn acknowledge(&mut self, group: &str, message: &InboundMessage) -> SpiResult<()> {
        if self.closed {
            return Err(closed());
        }
        let (name, partition, offset) = (&*message.topic, message.partition, message.offset);
        let slot = usize::try_from(partition).unwrap_or(usize::MAX);
        let end = self.topics.get(name).and_then(|t| t.partitions.get(slot)).map(|p| p.end());
        if end.is_none_or(|end| offset >= end) {
            return Err(SpiError::new(codes::NOT_FOUND, format!("{name}/{partition}@{offset} was never published")));
        }
        let progress = self.groups.get_mut(group).and_then(|g| g.progress.get_mut(name)?.get_mut(slot));
        let Some(progress) = progress else {
            return Err(SpiError::new(codes::NOT_FOUND, format!("group {group} never subscribed to {name}")));
        };
        if progress.acknowledge(offset) {
            self.trim(name, slot);
        }
        Ok(())
    }

    /// Drops the messages of a partition that every group subscribed to its topic committed.
    fn trim(&mut self, name: &str, slot: usize) {
        let Some(topic) = self.topics.get_mut(name) else { return };
        let commits = topic.groups.iter().filter_map(|g| self.groups.get(g)?.progress.get(name)?.get(slot));
        let Some(floor) = commits.map(|p| p.committed).min() else { return };
        if topic.partitions.get_mut(slot).is_some_and(|log| log.trim(floor, &mut self.dropped)) {
            self.space_freed = true;
        }
    }

    /// Ends every stream and refuses further work; publishers waiting for space give up.
    pub(super) fn close(&mut self) {
        self.closed = true;
        self.space_freed = true;
        for member in self.groups.values_mut().flat_map(|g| g.members.iter_mut()) {
            self.wake.extend(member.waker.take());
        }
    }

    /// `group`'s committed offset on `partition` of `topic`, if it subscribed to the topic.
    pub(super) fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.groups.get(group)?.committed(topic, partition)
    }

    /// How many messages of `topic` are retained, over all its partitions.
    pub(super) fn retained(&self, topic: &str) -> u64 {
        self.topics.get(topic).map_or(0, |t| t.partitions.iter().map(|p| p.len() as u64).sum())
    }

    /// Messages of `topic` published but not committed by `group`. A group that never
    /// subscribed to the topic counts every retained message (it would start at the oldest).
    pub(super) fn backlog(&self, group: &str, topic: &str) -> u64 {
        let Some(logs) = self.topics.get(topic).map(|t| &t.partitions) else { return 0 };
        let progress = self.groups.get(group).and_then(|g| g.progress.get(topic));
        logs.iter()
            .enumerate()
            .map(|(slot, log)| {
                let from = progress.and_then(|p| p.get(slot)).map_or(log.base(), |p| p.committed);
                log.end().saturating_sub(from)
            })
            .sum()
    }
}
