//! Envelope metadata: trace context, headers and tags, in this runtime's shape and upstream's
//! (`ModelEnvelopeMetadata`: trace and span ids, request id, tags as a map).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Tracing and routing metadata carried beside the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeMetadata {
    /// W3C trace context, propagated unchanged to replies and downstream envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Upstream trace id (`metadata.trace_id`), kept and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Upstream span id (`metadata.span_id`), kept and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Upstream parent span id (`metadata.parent_span_id`), kept and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// Upstream request id (`metadata.request_id`), kept and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Free-form string headers (mirrored as Kafka headers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Free-form tags: a list here, a map of strings upstream; kept in the shape they came in
    /// (an empty map too, so a stored upstream envelope parses back as it was).
    #[serde(default, skip_serializing_if = "Tags::is_empty_list")]
    pub tags: Tags,
}

/// Tags, in either shape: this runtime's list of strings or upstream's map of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `["a", "b"]`.
    List(Vec<String>),
    /// `{"env": "dev"}` (upstream `ModelEnvelopeMetadata.tags`).
    Map(BTreeMap<String, String>),
}

impl Default for Tags {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl Tags {
    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::List(list) => list.is_empty(),
            Self::Map(map) => map.is_empty(),
        }
    }

    /// Whether these are the default: an empty list.
    pub fn is_empty_list(&self) -> bool {
        matches!(self, Self::List(list) if list.is_empty())
    }

    /// The tags as upstream's map: a map as it is, a list as `{tag: ""}`.
    pub fn to_map(&self) -> BTreeMap<&str, &str> {
        match self {
            Self::List(list) => list.iter().map(|t| (t.as_str(), "")).collect(),
            Self::Map(map) => map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        }
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::List(list) => list.serialize(serializer),
            Self::Map(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TagsVisitor)
    }
}

struct TagsVisitor;

impl<'de> Visitor<'de> for TagsVisitor {
    type Value = Tags;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tags: a list of strings or a map of strings to strings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Tags, E> {
        Ok(Tags::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(tag) = seq.next_element::<String>()? {
            list.push(tag);
        }
        Ok(Tags::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
        let mut tags = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            tags.insert(key, value);
        }
        Ok(Tags::Map(tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_the_shape_they_came_in() {
        let list: EnvelopeMetadata = serde_json::from_str(r#"{"tags": ["a", "b"]}"#).unwrap();
        assert_eq!(list.tags, Tags::List(vec!["a".into(), "b".into()]));
        assert_eq!(serde_json::to_value(&list).unwrap(), serde_json::json!({"tags": ["a", "b"]}));
        let map: EnvelopeMetadata = serde_json::from_str(r#"{"tags": {"env": "dev"}, "trace_id": null}"#).unwrap();
        assert_eq!(map.tags.to_map(), BTreeMap::from([("env", "dev")]));
        assert_eq!(serde_json::to_value(&map).unwrap(), serde_json::json!({"tags": {"env": "dev"}}));
        assert_eq!(Tags::List(vec!["x".into()]).to_map(), BTreeMap::from([("x", "")]));
    }

    #[test]
    fn tags_of_another_shape_are_refused_by_name() {
        let err = serde_json::from_str::<EnvelopeMetadata>(r#"{"tags": 3}"#).unwrap_err().to_string();
        assert!(err.contains("a list of strings or a map of strings"), "{err}");
        let err = serde_json::from_str::<EnvelopeMetadata>(r#"{"tags": {"n": 1}}"#).unwrap_err().to_string();
        assert!(err.contains("expected a string"), "{err}");
    }
}
