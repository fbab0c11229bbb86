//! The host on the Python system's own contracts (`../shared/upstream/contracts`), as a team
//! moving over runs it: one custom handler registered under the upstream handler name
//! `HandlerLinearDbErrorReporter` serves `node_db_error_linear_effect`'s `report_error`, over
//! HTTP (the Python runtime's minimal request) and over the bus (the node's own subscribe
//! topic); every handler no one registered is reported, and the rest of the host still runs.
//! Events are routed by their model and type too (`payload_type_match`), to an orchestrator's
//! handler registered under its upstream name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use onex_core::contract::BusKind;
use onex_core::envelope::Envelope;
use onex_infra::admin::{AdminState, router};
use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_contracts;
use onex_infra::host::{HostSetup, start_with_bus};
use onex_infra::ids::new_uuid_v7;
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{
    EventBus, Handler, HandlerDescriptor, HandlerFactory, HandlerInit, HandlerRegistry, Health, OperationDescriptor,
    OutboundMessage, SpiResult, async_trait,
};
use serde_json::{Value as Json, json};
use tower::ServiceExt;

/// A migrated handler: answers `report_error` the way the Python class did (a ticket per error).
struct Reporter;

#[async_trait]
impl Handler for Reporter {
    fn describe(&self) -> HandlerDescriptor {
        ReporterFactory.descriptor()
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let code = request.payload["error_code"].as_str().unwrap_or("?");
        Ok(json!({"created": true, "operation": request.operation, "issue_id": format!("DB-{code}")}))
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

struct ReporterFactory;

impl HandlerFactory for ReporterFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        HandlerDescriptor {
            handler_type: "linear_reporter".into(),
            operations: vec![OperationDescriptor {
                operation: "report_error".into(),
                description: "a Linear ticket per database error".into(),
                idempotent: false,
            }],
        }
    }
    fn create(&self, _: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(Reporter))
    }
}

fn upstream_contracts() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/upstream/contracts");
    assert!(dir.is_dir(), "{} is missing: CI has ../shared beside the checkout", dir.display());
    dir
}

/// The host on the upstream contracts and runtime config, with `registry`; the in-memory bus
/// (returned, with the reply topic) stands in for the Kafka the config asks for.
async fn start_upstream_host(registry: Registry) -> (onex_infra::host::RunningHost, InMemoryEventBus, String) {
    let report = load_contracts(&[upstream_contracts()], &registry);
    let contracts = report.set.unwrap_or_else(|| panic!("{:#?}", report.diagnostics));
    let mut config = contracts.runtime.clone().unwrap().1;
    assert_eq!(config.bus.kind, BusKind::Kafka);
    config.bus.kind = BusKind::InMemory;
    // It enables `db` and `http`; the database is the team's to name, as the Python handler's
    // settings were.
    let data_dir = std::env::temp_dir().join(format!("onex-host-upstream-{}", new_uuid_v7()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let db = config.handlers.get_mut("db").expect("the upstream config enables db");
    db.config = json!({"url": format!("sqlite://{}", data_dir.join("app.db").display())});
    let reply_topic = config.bus.reply_topic.clone();
    let memory = InMemoryEventBus::new(config.bus.partitions, config.bus.capacity);
    let setup =
        HostSetup { config, contracts, registry, data_dir, secrets: Arc::new(EnvSecretStore), contracts_dir: None };
    let running = start_with_bus(setup, Arc::new(memory.clone())).await.unwrap();
    (running, memory, reply_topic)
}

/// Posts `body` to `/v1/envelopes` and returns the status and the JSON reply.
async fn post(app: &axum::Router, body: &Json) -> (u16, Json) {
    let request =
        Request::post("/v1/envelopes").header("content-type", "application/json").body(Body::from(body.to_string()));
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap())
}

/// Publishes `body` on `topic` and returns the next reply the subscribed `replies` reads.
async fn over_the_bus(
    memory: &InMemoryEventBus,
    replies: &mut onex_spi::MessageStream,
    topic: &str,
    body: &Json,
) -> Json {
    let message = OutboundMessage {
        topic: topic.into(),
        key: None,
        payload: body.to_string().into_bytes().into(),
        headers: Default::default(),
    };
    memory.publish(message).await.unwrap();
    let poll = std::future::poll_fn(|cx| replies.as_mut().poll_next(cx));
    let message = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("a reply in time").unwrap().unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_handler_bound_by_upstream_name_serves_its_node_over_http_and_the_bus() {
    let mut registry = Registry::with_builtin_handlers().unwrap();
    registry.register(Arc::new(ReporterFactory)).unwrap();
    registry.register_name("HandlerLinearDbErrorReporter", "linear_reporter").unwrap();
    let (running, memory, reply_topic) = start_upstream_host(registry).await;
    let host = running.host();

    // Every upstream handler class no one registered is reported, with the nodes binding it;
    // the one registered is served.
    let served = host.served();
    let unbound = served.dispatcher().unbound();
    assert!(!unbound.contains_key("HandlerLinearDbErrorReporter"), "{unbound:?}");
    assert!(unbound.get("HandlerLedgerProjection").is_some_and(|nodes| !nodes.is_empty()), "{unbound:?}");
    let metrics = host.render_metrics().await;
    assert!(metrics.contains("onex_unbound_handler{handler=\"HandlerLedgerProjection\""), "{metrics}");
    assert!(!metrics.contains("handler=\"HandlerLinearDbErrorReporter\""), "{metrics}");

    // Over HTTP, as the Python runtime's clients send it.
    let admin = AdminState::default();
    admin.set_host(Arc::clone(host));
    let app = router(admin.clone());
    let correlation = new_uuid_v7().to_string();
    let body = json!({"operation": "report_error", "payload": {"error_code": "23505"}, "correlation_id": correlation});
    let (status, reply) = post(&app, &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"status": "success", "correlation_id": correlation,
               "payload": {"created": true, "operation": "report_error", "issue_id": "DB-23505"}})
    );
    let ready = app.oneshot(Request::get("/health/ready").body(Body::empty()).unwrap()).await.unwrap();
    let ready: Json = serde_json::from_slice(&to_bytes(ready.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert!(ready["unbound_handlers"]["HandlerLedgerProjection"].is_array(), "{ready}");

    // Over the bus: on the node's own subscribe topic, with the reply on the reply topic (read by
    // a group subscribed before the request, as a client would be).
    let mut replies = memory.subscribe("client", std::slice::from_ref(&reply_topic)).await.unwrap();
    let correlation = new_uuid_v7().to_string();
    let body = json!({"operation": "report_error", "payload": {"error_code": "40001"}, "correlation_id": correlation});
    let reply = over_the_bus(&memory, &mut replies, "onex.evt.omnibase-infra.db-error.v1", &body).await;
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["correlation_id"], correlation.as_str());
    assert_eq!(reply["payload"]["issue_id"], "DB-40001");

    // An operation whose handler nobody registered answers OPERATION_NOT_FOUND, naming it.
    let request = Envelope::request(new_uuid_v7(), "validation_ledger.append", json!({}), onex_infra::ids::now_utc());
    let error = host.handle(request).await.error.unwrap();
    assert_eq!(error.code, "ONEX_CORE_052_OPERATION_NOT_FOUND");
    assert!(error.message.contains("HandlerValidationLedgerAppend"), "{}", error.message);
    running.shutdown(Duration::from_secs(5)).await;
}

/// A migrated orchestrator handler (`HandlerRoutingInitiate` upstream): answers a routing
/// command with the model it selected, and says which model and event type reached it.
struct RoutingInitiate;

#[async_trait]
impl Handler for RoutingInitiate {
    fn describe(&self) -> HandlerDescriptor {
        RoutingInitiateFactory.descriptor()
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let event = request.event.as_deref();
        Ok(json!({
            "selected_model": request.payload["candidates"][0],
            "payload_type": event.and_then(|e| e.payload_type.clone()),
            "event_type": event.and_then(|e| e.event_type.clone()),
        }))
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

struct RoutingInitiateFactory;

impl HandlerFactory for RoutingInitiateFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        HandlerDescriptor { handler_type: "routing_initiate".into(), operations: Vec::new() }
    }
    fn create(&self, _: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(RoutingInitiate))
    }
}

/// A `ModelEventEnvelope` as upstream serialises it, with `payload_type` / `event_type` as given.
fn event_envelope(payload_type: Option<&str>, event_type: Option<&str>, correlation: &str) -> Json {
    let mut envelope: Json = serde_json::from_slice(
        &std::fs::read(upstream_contracts().join("../envelopes/upstream_event_envelope.json")).unwrap(),
    )
    .unwrap();
    envelope["envelope_id"] = json!(new_uuid_v7().to_string());
    envelope["correlation_id"] = json!(correlation);
    envelope["payload_type"] = json!(payload_type);
    envelope["event_type"] = json!(event_type);
    envelope["payload"] = json!({"candidates": ["model-a", "model-b"]});
    envelope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_type_match_routes_an_event_by_its_model_or_type_to_the_handler_named_for_it() {
    let mut registry = Registry::with_builtin_handlers().unwrap();
    registry.register(Arc::new(RoutingInitiateFactory)).unwrap();
    registry.register_name("HandlerRoutingInitiate", "routing_initiate").unwrap();
    let (running, memory, reply_topic) = start_upstream_host(registry).await;
    let host = running.host();
    assert!(!host.served().dispatcher().unbound().contains_key("HandlerRoutingInitiate"));

    // Over HTTP, routed by the payload's model (`node_routing_orchestrator` routes the model
    // `ModelRoutingCommand` to `HandlerRoutingInitiate`); the reply is a ModelEventEnvelope.
    let admin = AdminState::default();
    admin.set_host(Arc::clone(host));
    let app = router(admin);
    let correlation = new_uuid_v7().to_string();
    let (status, reply) = post(&app, &event_envelope(Some("ModelRoutingCommand"), None, &correlation)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["correlation_id"], correlation.as_str());
    assert!(reply["envelope_timestamp"].is_string(), "an event envelope's reply is one too: {reply}");
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(
        reply["payload"],
        json!({"selected_model": "model-a", "payload_type": "ModelRoutingCommand", "event_type": null})
    );

    // Over the bus on the node's command topic, routed by the event type the route names.
    let mut replies = memory.subscribe("client", std::slice::from_ref(&reply_topic)).await.unwrap();
    let correlation = new_uuid_v7().to_string();
    let body = event_envelope(None, Some("router.route-request"), &correlation);
    let reply = over_the_bus(&memory, &mut replies, "onex.cmd.router.route-request.v1", &body).await;
    assert_eq!(reply["correlation_id"], correlation.as_str());
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["payload"]["event_type"], "router.route-request");

    // A model whose handler nobody registered (`HandlerHealthComplete`) is refused, naming it;
    // a model no route names is refused, naming the model.
    let (status, reply) = post(&app, &event_envelope(Some("ModelHealthSnapshot"), None, &correlation)).await;
    assert_eq!(status, 404, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains("ONEX_CORE_052_OPERATION_NOT_FOUND") && error.contains("HandlerHealthComplete"), "{reply}");
    let (status, reply) =
        post(&app, &event_envelope(Some("ModelNobodyRoutes"), Some("nobody.routes"), &correlation)).await;
    assert_eq!(status, 404, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains("`ModelNobodyRoutes`") && error.contains("`nobody.routes`"), "{reply}");
    running.shutdown(Duration::from_secs(5)).await;
}
