//! Topic names: `onex.<kind>.<producer>.<event-name>.v<N>`.

use std::fmt;
use std::str::FromStr;

/// The kind segment of a topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Facts that happened.
    Evt,
    /// Requests to do something.
    Cmd,
    /// Reducer intents for orchestrators.
    Intent,
    /// Full-state snapshots.
    Snapshot,
    /// Dead letters: messages whose processing failed for good.
    Dlq,
}

impl TopicKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Evt => "evt",
            Self::Cmd => "cmd",
            Self::Intent => "intent",
            Self::Snapshot => "snapshot",
            Self::Dlq => "dlq",
        }
    }
}

/// A parsed, valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName {
    /// The kind segment.
    pub kind: TopicKind,
    /// The producing service or node.
    pub producer: String,
    /// The event name (lowercase, `-` or `_` separated).
    pub event_name: String,
    /// The schema version, `N` in `vN`.
    pub version: u32,
}

/// Why a string is not a valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic `{topic}`: {reason} (expected onex.<evt|cmd|intent|snapshot|dlq>.<producer>.<event-name>.v<N>)")]
pub struct TopicError {
    /// The rejected input.
    pub topic: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl FromStr for TopicName {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| TopicError { topic: s.to_owned(), reason };
        let parts: Vec<&str> = s.split('.').collect();
        let [prefix, kind, producer, event_name, version] = parts[..] else {
            return Err(err("must have exactly five dot-separated segments"));
        };
        if prefix != "onex" {
            return Err(err("must start with `onex.`"));
        }
        let kind = match kind {
            "evt" => TopicKind::Evt,
            "cmd" => TopicKind::Cmd,
            "intent" => TopicKind::Intent,
            "snapshot" => TopicKind::Snapshot,
            "dlq" => TopicKind::Dlq,
            _ => return Err(err("unknown kind segment")),
        };
        if !is_segment(producer) || !is_segment(event_name) {
            return Err(err("producer and event name must be lowercase [a-z0-9_-]"));
        }
        let version = version
            .strip_prefix('v')
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| err("version segment must be v<N> with N >= 1"))?;
        Ok(Self { kind, producer: producer.to_owned(), event_name: event_name.to_owned(), version })
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "onex.{}.{}.{}.v{}", self.kind.as_str(), self.producer, self.event_name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_valid_names() {
        for s in ["onex.evt.postgres-adapter.query-completed.v1", "onex.dlq.runtime.failed_envelope.v12"] {
            let topic: TopicName = s.parse().unwrap();
            assert_eq!(topic.to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed_names_with_reason() {
        let cases = [
            ("onex.evt.a.b", "five"),
            ("kafka.evt.a.b.v1", "onex."),
            ("onex.event.a.b.v1", "kind"),
            ("onex.evt.A.b.v1", "lowercase"),
            ("onex.evt.a.b.1", "v<N>"),
            ("onex.evt.a.b.v0", "v<N>"),
        ];
        for (input, fragment) in cases {
            let err = input.parse::<TopicName>().unwrap_err();
            assert!(err.to_string().contains(fragment), "{input}: {err}");
        }
    }
}
