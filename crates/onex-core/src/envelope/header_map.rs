//! `HeaderMap`: a bus message's headers, name to UTF-8 value, in three allocations however many
//! there are. Names this runtime writes are `&'static str` (a name read off the wire is matched
//! against them first, [`HeaderMap::insert_read`]); values live side by side in one string.
//! An envelope carries about twenty headers (this runtime's and the Python runtime's), so a map
//! of owned strings cost forty allocations a message.
//!
//! Lookups scan the entries: for a few dozen short names that beats hashing or a tree. Equality
//! ignores order, as a map's does.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bus_headers;

/// The names this runtime writes, so headers read back from a bus need no allocation for them.
const KNOWN_NAMES: &[&str] = &[
    bus_headers::ENVELOPE_ID,
    bus_headers::CORRELATION_ID,
    bus_headers::CAUSATION_ID,
    bus_headers::OPERATION,
    bus_headers::TRACEPARENT,
    bus_headers::python::CONTENT_TYPE,
    bus_headers::python::CORRELATION_ID,
    bus_headers::python::MESSAGE_ID,
    bus_headers::python::TIMESTAMP,
    bus_headers::python::SOURCE,
    bus_headers::python::EVENT_TYPE,
    bus_headers::python::SCHEMA_VERSION,
    bus_headers::python::PRIORITY,
    bus_headers::python::RETRY_COUNT,
    bus_headers::python::MAX_RETRIES,
    bus_headers::python::DESTINATION,
    bus_headers::python::TRACE_ID,
    bus_headers::python::SPAN_ID,
    bus_headers::python::OPERATION_NAME,
    bus_headers::python::PARTITION_KEY,
];

/// One header: its name and where its value lies in [`HeaderMap::text`].
#[derive(Clone)]
struct Entry {
    name: Cow<'static, str>,
    value: Range<u32>,
}

/// A message's headers: at most one value per name; see the module docs.
#[derive(Clone, Default)]
pub struct HeaderMap {
    entries: Vec<Entry>,
    /// Every value, side by side (a replaced value's old text stays until the map is dropped).
    text: String,
}

impl HeaderMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self { entries: Vec::new(), text: String::new() }
    }

    /// An empty map with room for `headers` headers of `text` value bytes in all.
    pub fn with_capacity(headers: usize, text: usize) -> Self {
        Self { entries: Vec::with_capacity(headers), text: String::with_capacity(text) }
    }

    /// The value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.name == name).map(|e| self.value(e))
    }

    /// Whether header `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets header `name` to `value`, replacing its value if it was set.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: &str) {
        self.insert_with(name, |text| text.push_str(value));
    }

    /// Sets header `name` to what `write` appends to the text it is given: a value formatted in
    /// place, without a string of its own.
    pub fn insert_with(&mut self, name: impl Into<Cow<'static, str>>, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        let value = match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(from), Ok(to)) => from..to,
            // Headers are short: past 4 GiB of them the value is stored empty, not wrapped.
            _ => 0..0,
        };
        let name = name.into();
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(entry) => entry.value = value,
            None => self.entries.push(Entry { name, value }),
        }
    }

    /// Sets header `name`, read off the wire, to `value`: a name this runtime writes is kept as
    /// its static text, any other copied.
    pub fn insert_read(&mut self, name: &str, value: &str) {
        match KNOWN_NAMES.iter().find(|known| **known == name) {
            Some(known) => self.insert(*known, value),
            None => self.insert(name.to_owned(), value),
        }
    }

    /// Removes header `name`; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.name != name);
        self.entries.len() != before
    }

    /// Every header, name and value, in the order they were first set.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|e| (&*e.name, self.value(e)))
    }

    fn value(&self, entry: &Entry) -> &str {
        let (start, end) = (entry.value.start as usize, entry.value.end as usize);
        self.text.get(start..end).unwrap_or_default()
    }
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(name, value)| other.get(name) == Some(value))
    }
}

impl Eq for HeaderMap {}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: Into<Cow<'static, str>>, V: AsRef<str>> FromIterator<(N, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(headers: I) -> Self {
        let mut map = Self::new();
        headers.into_iter().for_each(|(name, value)| map.insert(name, value.as_ref()));
        map
    }
}

impl<N: Into<Cow<'static, str>>, V: AsRef<str>, const K: usize> From<[(N, V); K]> for HeaderMap {
    fn from(headers: [(N, V); K]) -> Self {
        headers.into_iter().collect()
    }
}

/// As a JSON object of strings (how stores keep an outbox message's headers).
impl Serialize for HeaderMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for HeaderMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = HeaderMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("headers: an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<HeaderMap, A::Error> {
                let mut map = HeaderMap::new();
                while let Some((name, value)) = access.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    map.insert_read(&name, &value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_keeps_one_value_per_name_and_compares_as_a_set() {
        let mut headers = HeaderMap::new();
        headers.insert(bus_headers::ENVELOPE_ID, "a");
        headers.insert("x-custom".to_owned(), "b");
        headers.insert(bus_headers::ENVELOPE_ID, "c");
        assert_eq!(headers.get(bus_headers::ENVELOPE_ID), Some("c"), "the later value wins");
        assert_eq!(headers.len(), 2);
        assert_eq!(
            headers,
            HeaderMap::from([("x-custom", "b"), (bus_headers::ENVELOPE_ID, "c")]),
            "order does not count"
        );
        assert_ne!(headers, HeaderMap::from([("x-custom", "b")]));
        assert!(headers.remove("x-custom") && !headers.remove("x-custom"));
        assert_eq!(headers.iter().collect::<Vec<_>>(), [(bus_headers::ENVELOPE_ID, "c")]);
        assert_eq!(format!("{headers:?}"), r#"{"onex-envelope-id": "c"}"#);
    }

    #[test]
    fn names_read_off_the_wire_that_this_runtime_writes_are_not_copied() {
        let mut headers = HeaderMap::new();
        headers.insert_read("message_id", "1");
        headers.insert_read("x-other", "2");
        assert!(matches!(headers.entries[0].name, Cow::Borrowed(_)));
        assert!(matches!(headers.entries[1].name, Cow::Owned(_)));
    }

    #[test]
    fn headers_round_trip_through_json_and_anything_but_strings_is_refused() {
        let headers = HeaderMap::from([("a", "1"), ("traceparent", "00-x")]);
        let json = serde_json::to_value(&headers).unwrap();
        assert_eq!(json, serde_json::json!({"a": "1", "traceparent": "00-x"}));
        assert_eq!(serde_json::from_value::<HeaderMap>(json).unwrap(), headers);
        let error = serde_json::from_value::<HeaderMap>(serde_json::json!({"a": 1})).unwrap_err();
        assert!(error.to_string().contains("string"), "{error}");
    }
}
