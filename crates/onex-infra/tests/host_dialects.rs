//! Envelopes in every dialect through the host, in process on the in-memory bus: each request
//! sample of the Python system (`../shared/upstream/envelopes`) is posted to the admin ingress
//! and published on the request topic, and gets its reply in its own dialect, checked field by
//! field (correlation kept, causation = the request's id, payload echoed, the error form of a
//! failing operation, envelope_version echoed, tags map kept, trace ids as the traceparent); a
//! duplicate gets its stored reply in the dialect it asked in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/host.rs"]
mod host_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::Request;
use onex_core::envelope::bus_headers;
use onex_infra::admin::{AdminState, router};
use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::{HostSetup, RunningHost, start_with_bus};
use onex_infra::ids::new_uuid_v7;
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, OutboundMessage};
use serde_json::{Value as Json, json};
use tower::ServiceExt;
use uuid::Uuid;

/// The samples, where CI has them: `../shared` beside the checkout.
fn sample(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/upstream/envelopes").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

struct Fixture {
    running: RunningHost,
    memory: InMemoryEventBus,
    app: Router,
    request_topic: String,
    reply_topic: String,
}

async fn fixture() -> Fixture {
    let registry = Registry::with_builtin_handlers().unwrap();
    let contracts = load_bundled_contracts(&registry).set.unwrap();
    let config = contracts.runtime.clone().unwrap().1;
    let (request_topic, reply_topic) = (config.bus.request_topic.clone(), config.bus.reply_topic.clone());
    let memory = InMemoryEventBus::new(config.bus.partitions, config.bus.capacity);
    let data_dir = std::env::temp_dir().join(format!("onex-host-dialects-{}", new_uuid_v7()));
    let setup =
        HostSetup { config, contracts, registry, data_dir, secrets: Arc::new(EnvSecretStore), contracts_dir: None };
    let running = start_with_bus(setup, Arc::new(memory.clone())).await.unwrap();
    let admin = AdminState::default();
    admin.set_host(Arc::clone(running.host()));
    Fixture { running, memory, app: router(admin), request_topic, reply_topic }
}

/// A reply as a client sees it: the status (HTTP only), the headers and the body.
#[derive(Debug)]
struct Answer {
    via: &'static str,
    status: Option<u16>,
    headers: BTreeMap<String, String>,
    body: Json,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The id of the request this answers: the response header over HTTP, the reply's causation
    /// header on the bus.
    fn request_id(&self) -> Uuid {
        let name = if self.via == "http" { bus_headers::ENVELOPE_ID } else { "onex-causation-id" };
        self.header(name).unwrap_or_else(|| panic!("{}: no {name} in {:?}", self.via, self.headers)).parse().unwrap()
    }
}

/// Headers as a client reading the bus sees them.
fn headers_of(headers: &onex_spi::HeaderMap) -> BTreeMap<String, String> {
    headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

impl Fixture {
    async fn post(&self, request: &Json) -> Answer {
        let http = Request::post("/v1/envelopes").header("content-type", "application/json");
        let body = Body::from(serde_json::to_vec(request).unwrap());
        let response = self.app.clone().oneshot(http.body(body).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Answer { via: "http", status: Some(status), headers, body: serde_json::from_slice(&bytes).unwrap() }
    }

    /// Publishes `request` as it is (with `headers`) and reads the reply caused by `request_id`,
    /// skipping other traffic on the reply topic.
    async fn publish(&self, request: &Json, headers: BTreeMap<String, String>, request_id: Uuid) -> Answer {
        let payload = serde_json::to_vec(request).unwrap();
        let (payload, headers) = (payload.into(), Arc::new(headers.into_iter().collect()));
        let message = OutboundMessage { topic: self.request_topic.as_str().into(), key: None, payload, headers };
        self.memory.publish(message).await.unwrap();
        loop {
            let reply = host_support::read_topic(&self.memory, &self.reply_topic, 1, Duration::from_secs(10)).await;
            let reply = reply.into_iter().next().unwrap();
            if reply.headers.get("onex-causation-id") == Some(request_id.to_string().as_str()) {
                let body = serde_json::from_slice(&reply.payload).unwrap();
                return Answer { via: "bus", status: None, headers: headers_of(&reply.headers), body };
            }
        }
    }

    /// `request` over HTTP and over the bus; `request_id` is its envelope id, or `None` when it
    /// has none (the bus message then carries the Python bus's `message_id` header).
    async fn both(&self, request: &Json, request_id: Option<Uuid>) -> [Answer; 2] {
        let http = self.post(request).await;
        let (bus_id, headers) = match request_id {
            Some(id) => (id, BTreeMap::new()),
            None => {
                let id = new_uuid_v7();
                (id, BTreeMap::from([(bus_headers::python::MESSAGE_ID.to_owned(), id.to_string())]))
            }
        };
        let bus = self.publish(request, headers, bus_id).await;
        if let Some(id) = request_id {
            assert_eq!(http.request_id(), id, "the request's own id");
        }
        assert_eq!(bus.request_id(), bus_id, "the bus: the envelope id, else the message id");
        [http, bus]
    }
}

fn keys(value: &Json) -> BTreeSet<&str> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect()
}

/// How a reply should have ended.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Success, echoing the payload.
    Echo,
    /// Failure with this code (and HTTP status).
    Failed(&'static str, u16),
}

fn check_status(answer: &Answer, expect: Expect) {
    let wanted = match expect {
        Expect::Echo => 200,
        Expect::Failed(_, status) => status,
    };
    if let Some(status) = answer.status {
        assert_eq!(status, wanted, "{answer:?}");
    }
}

/// A ModelOnexEnvelope reply to `request`, field by field.
fn check_onex_reply(request: &Json, answer: &Answer, expect: Expect) {
    let (reply, via) = (&answer.body, answer.via);
    check_status(answer, expect);
    assert_eq!(keys(reply), keys(request), "{via}: every ModelOnexEnvelope field");
    let request_id: Uuid = request["envelope_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(answer.request_id(), request_id);
    assert_ne!(reply["envelope_id"], request["envelope_id"], "{via}: the reply has its own id");
    assert_eq!(reply["causation_id"], request["envelope_id"], "{via}: caused by the request");
    for echoed in ["correlation_id", "envelope_version", "operation", "handler_type", "metadata"] {
        assert_eq!(reply[echoed], request[echoed], "{via}: {echoed}");
    }
    let answered_by = if request["target_node"].is_null() { &request["source_node"] } else { &request["target_node"] };
    assert_eq!((&reply["source_node"], &reply["target_node"]), (answered_by, &request["source_node"]), "{via}");
    assert_eq!(reply["is_response"], true, "{via}");
    match expect {
        Expect::Echo => {
            assert_eq!((&reply["success"], &reply["error"]), (&json!(true), &Json::Null), "{via}: {reply}");
            assert_eq!(reply["payload"], request["payload"], "{via}: echoed");
        }
        Expect::Failed(code, _) => {
            assert_eq!(reply["success"], false, "{via}");
            assert!(reply["error"].as_str().unwrap().starts_with(&format!("[{code}] ")), "{via}: {reply}");
            assert_eq!(reply["payload"], json!({}), "{via}");
        }
    }
}

/// A ModelEventEnvelope reply to `request`, field by field.
fn check_event_reply(request: &Json, answer: &Answer, expect: Expect) {
    let (reply, via) = (&answer.body, answer.via);
    check_status(answer, expect);
    let mut expected_keys = keys(request);
    expected_keys.extend(["causation_id", "is_response", "success"]);
    if let Expect::Failed(..) = expect {
        expected_keys.insert("error");
    }
    assert_eq!(keys(reply), expected_keys, "{via}: the model's fields and the reply's");
    assert_eq!(reply["causation_id"], request["envelope_id"], "{via}");
    assert_ne!(reply["envelope_id"], request["envelope_id"], "{via}");
    assert!(reply["envelope_timestamp"].is_string(), "{via}");
    let echoed =
        ["correlation_id", "event_type", "envelope_version", "onex_version", "priority", "retry_count", "metadata"];
    for field in echoed {
        assert_eq!(reply[field], request[field], "{via}: {field}");
    }
    assert_eq!(reply["is_response"], true, "{via}");
    match expect {
        Expect::Echo => {
            assert_eq!(reply["success"], true, "{via}: {reply}");
            assert_eq!(reply["payload"], request["payload"], "{via}: echoed");
        }
        Expect::Failed(code, _) => {
            assert_eq!(reply["success"], false, "{via}");
            assert!(reply["error"].as_str().unwrap().starts_with(&format!("[{code}] ")), "{via}: {reply}");
        }
    }
}

/// A Python runtime reply to `request`, field by field.
fn check_python_reply(request: &Json, answer: &Answer, expect: Expect) {
    let (reply, via) = (&answer.body, answer.via);
    check_status(answer, expect);
    assert_eq!(reply["correlation_id"], request["correlation_id"], "{via}: correlation kept");
    match expect {
        Expect::Echo => {
            let expected = json!({"status": "success", "payload": request["payload"], "correlation_id": request["correlation_id"]});
            assert_eq!(*reply, expected, "{via}");
            assert_eq!(keys(reply), keys(&sample("python_runtime_reply_success.json")));
        }
        Expect::Failed(code, _) => {
            assert_eq!(keys(reply), keys(&sample("python_runtime_reply_error.json")), "{via}");
            assert_eq!((&reply["success"], &reply["status"]), (&json!(false), &json!("error")), "{via}");
            let error = reply["error"].as_str().unwrap();
            assert!(error.starts_with(&format!("[{code}] ")), "{via}: {reply}");
            let record = &reply["payload"];
            assert_eq!((&record["status"], &record["failure_code"]), (&json!("failed"), &json!(code)), "{via}");
            assert_eq!(
                (&record["correlation_id"], &record["failure_reason"]),
                (&request["correlation_id"], &json!(error))
            );
            assert!(record["failure_class"].is_string() && record["retryable"].is_boolean(), "{via}: {record}");
        }
    }
}

const NOT_FOUND: Expect = Expect::Failed("ONEX_CORE_052_OPERATION_NOT_FOUND", 404);
const FAILED: Expect = Expect::Failed("ONEX_CORE_081_OPERATION_FAILED", 500);
const FAIL_PAYLOAD: &str = "ONEX_CORE_081_OPERATION_FAILED";

fn id_of(request: &Json) -> Uuid {
    request["envelope_id"].as_str().unwrap().parse().unwrap()
}

fn with_new_id(mut request: Json) -> Json {
    request["envelope_id"] = json!(new_uuid_v7());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_onex_envelopes_are_answered_in_their_dialect() {
    let fx = fixture().await;
    for name in ["upstream_onex_envelope_min.json", "upstream_onex_envelope_full.json"] {
        let request = sample(name);
        for answer in fx.both(&request, Some(id_of(&request))).await {
            check_onex_reply(&request, &answer, Expect::Echo);
        }
    }
    // The full sample's trace ids are the trace context downstream (the bus reply's header).
    let full = sample("upstream_onex_envelope_full.json");
    let [http, bus] = fx.both(&full, Some(id_of(&full))).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!((http.header("traceparent"), bus.header("traceparent")), (Some(traceparent), Some(traceparent)));
    assert_eq!(bus.body["metadata"]["tags"], json!({"env": "dev"}), "the tags map kept");

    let mut failing = with_new_id(sample("upstream_onex_envelope_min.json"));
    failing["operation"] = json!("local.fail");
    failing["payload"] = json!({"code": FAIL_PAYLOAD});
    for answer in fx.both(&failing, Some(id_of(&failing))).await {
        check_onex_reply(&failing, &answer, FAILED);
    }
    // Upstream operations are free text: routed, and answered OPERATION_NOT_FOUND naming them.
    let mut unserved = with_new_id(sample("upstream_onex_envelope_min.json"));
    unserved["operation"] = json!("report_error");
    for answer in fx.both(&unserved, Some(id_of(&unserved))).await {
        check_onex_reply(&unserved, &answer, NOT_FOUND);
        assert!(answer.body["error"].as_str().unwrap().contains("`report_error`"), "{:?}", answer.body);
    }
    fx.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_event_envelopes_are_answered_in_their_dialect() {
    let fx = fixture().await;
    let request = sample("upstream_event_envelope.json");
    for answer in fx.both(&request, Some(id_of(&request))).await {
        check_event_reply(&request, &answer, Expect::Echo);
        assert!(answer.header("traceparent").is_some_and(|t| t.starts_with("00-")), "minted when none is given");
    }
    // No `payload.operation`: the operation is the event type.
    let mut failing = with_new_id(request);
    failing["event_type"] = json!("local.fail");
    failing["payload"] = json!({"code": FAIL_PAYLOAD});
    for answer in fx.both(&failing, Some(id_of(&failing))).await {
        check_event_reply(&failing, &answer, FAILED);
    }
    fx.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_runtime_requests_are_answered_in_their_dialect() {
    let fx = fixture().await;
    // As captured: `echo.ping` has no handler here.
    let request = sample("python_runtime_request_min.json");
    for answer in fx.both(&request, None).await {
        check_python_reply(&request, &answer, NOT_FOUND);
        assert!(answer.body["error"].as_str().unwrap().contains("`echo.ping`"), "{:?}", answer.body);
        assert_eq!(answer.request_id().get_version_num(), 7, "{}: minted", answer.via);
    }
    let mut echo = request.clone();
    echo["operation"] = json!("local.echo");
    for answer in fx.both(&echo, None).await {
        check_python_reply(&echo, &answer, Expect::Echo);
    }
    let mut failing = request;
    failing["operation"] = json!("local.fail");
    failing["payload"] = json!({"code": FAIL_PAYLOAD});
    for answer in fx.both(&failing, None).await {
        check_python_reply(&failing, &answer, FAILED);
    }
    fx.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_gets_its_stored_reply_in_the_dialect_it_asked_in() {
    let fx = fixture().await;
    let id = new_uuid_v7();
    let operation = "infrastructure_state.initialization_complete";
    let payload = json!({"entity_key": "dialects-1"});
    let mut onex = sample("upstream_onex_envelope_min.json");
    (onex["envelope_id"], onex["operation"], onex["payload"]) = (json!(id), json!(operation), payload.clone());
    let first = fx.post(&onex).await;
    assert_eq!(first.body["success"], true, "{:?}", first.body);
    let transition = first.body["payload"].clone();
    assert_eq!((&transition["to_state"], &transition["version"]), (&json!("healthy"), &json!(1)));

    let python = json!({"envelope_id": id, "operation": operation, "payload": payload});
    let again = fx.post(&python).await;
    assert_eq!(again.body, json!({"status": "success", "payload": transition, "correlation_id": id}));

    let mut event = sample("upstream_event_envelope.json");
    event["envelope_id"] = json!(id);
    event["payload"] = json!({"operation": operation, "entity_key": "dialects-1"});
    let [http, bus] = fx.both(&event, Some(id)).await;
    for answer in [http, bus] {
        assert_eq!(answer.body["payload"], transition, "{}: the stored outcome, not a second transition", answer.via);
        assert_eq!(answer.body["envelope_version"], event["envelope_version"], "{}", answer.via);
        assert_eq!(answer.body["causation_id"], json!(id), "{}", answer.via);
    }
    let state = fx.running.host().entity_state("infrastructure_state", "dialects-1").await.unwrap();
    assert_eq!(state, Some(("healthy".to_owned(), 1)), "applied once");
    fx.running.shutdown(Duration::from_secs(5)).await;
}
