//! The Python runtime's wiring sections of a node contract: `event_bus` (the topics the node
//! subscribes and publishes to) and `handler_routing` (which named handler serves each
//! operation or event model).

use super::decode::{Cx, Decode, wrong_type};
use super::fields::Fields;
use super::version::VersionText;
use crate::yaml::{Node, Pos, Value};

/// `event_bus`: the node's topics, as upstream's `EventBusSubcontractWiring` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventBusTopics {
    /// Topics the node consumes.
    pub subscribe_topics: Vec<String>,
    /// Topics the node publishes to.
    pub publish_topics: Vec<String>,
    /// Where the section is written.
    pub pos: Pos,
}

/// A topic written as a string or as `{topic, description, ...}`.
struct TopicRef(String);

impl Decode for TopicRef {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        if !matches!(node.value, Value::Map(_)) {
            return String::decode(cx, node, path).map(Self);
        }
        let mut f = Fields::new(cx, node, path)?;
        let topic = f.req(cx, "topic");
        f.descriptive(&["description", "payload_schema", "event_type", "provisioning_priority", "partitions"]);
        f.finish(cx);
        topic.map(Self)
    }
}

fn topics(list: Vec<TopicRef>) -> Vec<String> {
    list.into_iter().map(|t| t.0).collect()
}

impl Decode for EventBusTopics {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let subscribe_topics = topics(f.or(cx, "subscribe_topics", Vec::new()));
        let publish_topics = topics(f.or(cx, "publish_topics", Vec::new()));
        let _: Option<VersionText> = f.opt(cx, "version");
        f.descriptive(&["description"]);
        f.finish(cx);
        Some(Self { subscribe_topics, publish_topics, pos: node.pos })
    }
}

/// A name, written either as a string or as upstream's `{name, module}` class reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRef {
    /// The name (a Python class name upstream, e.g. `HandlerDb`).
    pub name: String,
    /// The Python module it came from, when written (informational here).
    pub module: Option<String>,
}

impl Decode for NamedRef {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        match &node.value {
            Value::Scalar { .. } => String::decode(cx, node, path).map(|name| Self { name, module: None }),
            Value::Map(_) => {
                let mut f = Fields::new(cx, node, path)?;
                let name = f.req(cx, "name");
                let module = f.opt(cx, "module");
                f.descriptive(&["description", "version"]);
                f.finish(cx);
                Some(Self { name: name?, module })
            }
            Value::Seq(_) | Value::Include(_) => {
                wrong_type(cx, node, path, "a name or a {name, module} mapping");
                None
            }
        }
    }
}

/// One entry of `handler_routing.handlers`: what it matches and the handler that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerRoute {
    /// The operation it serves (`operation_match`).
    pub operation: Option<String>,
    /// The event model it serves (`payload_type_match`): the payload's model class name, which
    /// a `ModelEventEnvelope` carries as `payload_type`.
    pub event_model: Option<String>,
    /// The event type it serves (`payload_type_match`), which tells apart routes of one model.
    pub event_type: Option<String>,
    /// The handler, by name: bound to a handler registered under that name.
    pub handler: NamedRef,
    /// The built-in handler type this entry names (`db`, `http`; handler contracts).
    pub handler_type: Option<String>,
    /// Operations a handler contract says this handler supports.
    pub supported_operations: Vec<String>,
    /// Event models it emits (informational).
    pub output_events: Vec<String>,
    /// Where the entry is written.
    pub pos: Pos,
}

impl HandlerRoute {
    /// What the route matches: its operation, event model and event type, those written.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        [&self.operation, &self.event_model, &self.event_type].into_iter().filter_map(|k| k.as_deref())
    }
}

impl Decode for HandlerRoute {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let operation = f.opt(cx, "operation");
        let event_model: Option<NamedRef> = f.opt(cx, "event_model");
        let payload_type: Option<String> = f.opt(cx, "payload_type");
        let event_type = f.opt(cx, "event_type");
        let handler = f.req(cx, "handler");
        let handler_type = f.opt(cx, "handler_type");
        let supported_operations = f.or(cx, "supported_operations", Vec::new());
        let output_events = f.or(cx, "output_events", Vec::new());
        f.descriptive(&[
            "description",
            "output_fields",
            "input_fields",
            "input_model",
            "output_model",
            "message_category",
            "backend",
            "version",
        ]);
        f.finish(cx);
        Some(Self {
            operation,
            event_model: event_model.map(|m| m.name).or(payload_type),
            event_type,
            handler: handler?,
            handler_type,
            supported_operations,
            output_events,
            pos: node.pos,
        })
    }
}

/// `handler_routing`: how the node's operations reach named handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerRouting {
    /// `operation_match`, `payload_type_match`, `topic_match` (kept as written).
    pub routing_strategy: String,
    /// The routes, in declaration order.
    pub handlers: Vec<HandlerRoute>,
    /// Where the section is written.
    pub pos: Pos,
}

impl HandlerRouting {
    /// The handler name serving `key` (an operation, an event model or an event type), if a
    /// route names it.
    pub fn handler_for(&self, key: &str) -> Option<&str> {
        self.handlers.iter().find(|r| r.keys().any(|k| k == key)).map(|r| r.handler.name.as_str())
    }

    /// Every handler name the routes bind, each once, in declaration order.
    pub fn handler_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for r in &self.handlers {
            if !names.contains(&r.handler.name.as_str()) {
                names.push(&r.handler.name);
            }
        }
        names
    }
}

impl Decode for HandlerRouting {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::new(cx, node, path)?;
        let routing_strategy = f.or(cx, "routing_strategy", "operation_match".to_owned());
        let handlers = f.or(cx, "handlers", Vec::new());
        let _: Option<VersionText> = f.opt(cx, "version");
        f.descriptive(&["description", "author", "created", "updated", "tags", "default_handler"]);
        f.ignored(cx, &["retry_policy"]);
        f.finish(cx);
        Some(Self { routing_strategy, handlers, pos: node.pos })
    }
}
