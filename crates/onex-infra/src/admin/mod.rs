//! The admin HTTP API (axum): liveness and readiness, Prometheus metrics, envelope ingress (any
//! dialect in, the reply in the request's, the request's ids in `onex-envelope-id` /
//! `onex-correlation-id`), lookups of reducer state and workflow runs, the status page, and
//! reloading the contracts.
//!
//! The server starts before the host so that `/health/live` answers during start-up;
//! everything else answers 503 until [`AdminState::set_host`] is called. Every route but
//! `/health/*` is guarded by [`auth`]; [`serve`] is the server it runs in.

pub mod auth;
pub mod serve;
pub mod ui;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use onex_core::envelope::{Envelope, ReplyError, bus_headers, parse_traceparent};
use onex_core::error::{Classified, ErrorCategory, codes as core_codes};
use serde_json::{Value as Json, json};

use opentelemetry::trace::SpanKind;

use self::auth::{AdminAccess, RouteClass};
use crate::error::codes;
use crate::host::RuntimeHost;
use crate::telemetry::span;

/// The admin API's deadlines.
#[derive(Debug, Clone, Copy)]
pub struct AdminTimeouts {
    /// Most time a request's body may take to arrive (408 after).
    pub body: Duration,
    /// Most time `/health/ready` waits for the checks.
    pub ready: Duration,
}

impl Default for AdminTimeouts {
    fn default() -> Self {
        let defaults = onex_core::contract::AdminConfig::default();
        Self::from_config(&defaults)
    }
}

impl AdminTimeouts {
    /// The deadlines `admin:` of the runtime config sets.
    pub fn from_config(config: &onex_core::contract::AdminConfig) -> Self {
        Self {
            body: Duration::from_millis(config.body_timeout_ms),
            ready: Duration::from_millis(config.ready_timeout_ms),
        }
    }
}

/// What the handlers share: the host, once it is started; who may call; the deadlines.
#[derive(Debug, Clone, Default)]
pub struct AdminState {
    host: Arc<OnceLock<Arc<RuntimeHost>>>,
    access: Arc<AdminAccess>,
    timeouts: AdminTimeouts,
    rates: Arc<ui::RateSampler>,
}

impl AdminState {
    /// A state guarded by `access`, with `timeouts`.
    pub fn new(access: AdminAccess, timeouts: AdminTimeouts) -> Self {
        Self { host: Arc::default(), access: Arc::new(access), timeouts, rates: Arc::default() }
    }

    /// Makes the started host reachable through the API.
    pub fn set_host(&self, host: Arc<RuntimeHost>) {
        let _ = self.host.set(host);
    }

    #[allow(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
    fn host(&self) -> Result<&Arc<RuntimeHost>, Response> {
        self.host.get().ok_or_else(|| {
            let error = ReplyError::new(codes::DRAINING, "the host is starting; try again shortly");
            failure(StatusCode::SERVICE_UNAVAILABLE, &error)
        })
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    let guard = |class: RouteClass| from_fn_with_state((Arc::clone(&state.access), class), auth::require);
    // With `auth: none` no guard is layered at all: the open API pays nothing for auth.
    let open = state.access.is_open();
    let guarded = |path: &str, route: axum::routing::MethodRouter<AdminState>, class: RouteClass| {
        let router = Router::new().route(path, route);
        if open { router } else { router.route_layer(guard(class)) }
    };
    Router::new()
        .route("/health/live", get(|| async { json_response(StatusCode::OK, &json!({ "status": "live" })) }))
        .route("/health/ready", get(ready))
        .merge(guarded("/metrics", get(metrics), RouteClass::Metrics))
        .merge(guarded("/v1/envelopes", post(ingest), RouteClass::Ingress))
        .merge(guarded("/v1/state/{fsm}/{key}", get(entity_state), RouteClass::StateRead))
        .merge(guarded("/v1/workflows/{run_id}", get(workflow_run), RouteClass::WorkflowRead))
        .merge(guarded("/ui", get(ui::page), RouteClass::StatusPage))
        .merge(guarded("/v1/admin/reload", post(reload), RouteClass::Reload))
        .fallback(|| async {
            failure(StatusCode::NOT_FOUND, &ReplyError::new(codes::NOT_FOUND, "no such admin endpoint"))
        })
        .with_state(state)
}

/// Readiness within `ready_timeout_ms` whatever hangs: each handler's check and the host's own
/// (bus, store) run at once, and one without an answer by the deadline counts as failed.
async fn ready(State(state): State<AdminState>) -> Response {
    let Some(host) = state.host.get() else {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "starting" }));
    };
    let deadline = state.timeouts.ready;
    let served = host.served();
    let (checks, ready) =
        tokio::join!(served.dispatcher().health_within(deadline), tokio::time::timeout(deadline, host.is_ready()));
    let handlers: serde_json::Map<String, Json> =
        checks.into_iter().map(|(name, health)| (name, Json::String(format!("{health:?}")))).collect();
    // Handlers contracts bind that nothing serves: the host is ready for everything else.
    let unbound = json!(served.dispatcher().unbound());
    match ready {
        Ok(true) => json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "handlers": handlers, "unbound_handlers": unbound }),
        ),
        outcome => {
            let status = match outcome {
                Err(_) => "not ready: the bus or store check did not answer in time",
                Ok(_) if host.is_draining() => "draining",
                Ok(_) => "not ready",
            };
            let body = json!({ "status": status, "handlers": handlers, "unbound_handlers": unbound });
            json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    let mut text = host.render_metrics().await;
    text.push_str(&state.access.render_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Handles an envelope taken in over HTTP. A W3C `traceparent` header is its trace when the
/// envelope names none; with tracing on, the request is a server span the envelope's is under.
async fn handle_traced(host: &Arc<RuntimeHost>, mut request: Envelope, headers: &axum::http::HeaderMap) -> Envelope {
    if request.metadata.traceparent.is_none() {
        let given = headers.get("traceparent").and_then(|v| v.to_str().ok());
        request.metadata.traceparent = given.filter(|t| parse_traceparent(t).is_some()).map(str::to_owned);
    }
    if !crate::telemetry::enabled() {
        return host.handle(request).await;
    }
    let cx = span::start_for(&mut request, "POST /v1/envelopes".to_owned(), SpanKind::Server);
    let reply = host.handle(request).await;
    span::end_with_reply(&cx, &reply);
    reply
}

/// `POST /v1/admin/reload`: the contract directory loaded again; 200 with what changed, or the
/// refusal (the old set keeps serving) with every contract error as `file:line:column: …`.
async fn reload(State(state): State<AdminState>) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    match host.reload().await {
        Ok(report) => json_response(StatusCode::OK, &json!({ "reloaded": true, "report": report })),
        Err(e) => {
            let errors = match &e {
                crate::host::ReloadError::Invalid { errors, .. } => errors.clone(),
                _ => Vec::new(),
            };
            let code = e.error_code();
            let status = match e {
                crate::host::ReloadError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => status_of(code.category()),
            };
            let error = ReplyError::new(code, e.to_string());
            json_response(status, &json!({ "reloaded": false, "error": error, "errors": errors }))
        }
    }
}

/// `POST /v1/envelopes`: one envelope in, its reply out (status from the error category).
async fn ingest(State(state): State<AdminState>, headers: axum::http::HeaderMap, body: Body) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    if host.is_draining() {
        let error = ReplyError::new(codes::DRAINING, "the host is shutting down and takes no new envelopes");
        host.metrics().refused(&error.code);
        return failure(StatusCode::SERVICE_UNAVAILABLE, &error);
    }
    // The body is read before a slot is taken: a slow sender holds its connection, not a slot.
    let cap = host.limits().max_envelope_bytes;
    let deadline = state.timeouts.body;
    let bytes = match tokio::time::timeout(deadline, to_bytes(body, cap.saturating_add(1))).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large =
                std::error::Error::source(&e).is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
            let (status, error) = if too_large {
                let message = format!("envelope exceeds the {cap}-byte cap (max_envelope_bytes)");
                (StatusCode::PAYLOAD_TOO_LARGE, ReplyError::new(core_codes::ENVELOPE_TOO_LARGE, message))
            } else {
                let message = format!("cannot read the request body: {e}");
                (StatusCode::BAD_REQUEST, ReplyError::new(core_codes::ENVELOPE_INVALID, message))
            };
            host.metrics().refused(&error.code);
            return failure(status, &error);
        }
        Err(_) => {
            let message =
                format!("the request body did not arrive within {} ms (admin.body_timeout_ms)", deadline.as_millis());
            let error = ReplyError::new(codes::ADMIN_REQUEST_TIMEOUT, message);
            host.metrics().refused(&error.code);
            return failure(StatusCode::REQUEST_TIMEOUT, &error);
        }
    };
    let Some(_slot) = host.admit() else {
        let message = format!("{} envelopes are in flight (max_in_flight); retry shortly", host.limits().max_in_flight);
        let error = ReplyError::new(codes::OVERLOADED, message);
        host.metrics().refused(&error.code);
        return failure(StatusCode::SERVICE_UNAVAILABLE, &error);
    };
    let request = match Envelope::decode(&bytes, cap, crate::ids::minted()) {
        Ok(request) => request,
        Err(e) => {
            let error = ReplyError::new(e.error_code(), e.to_string());
            host.metrics().refused(&error.code);
            let status = if e.error_code() == core_codes::ENVELOPE_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return failure(status, &error);
        }
    };
    let (envelope_id, correlation_id) = (request.envelope_id, request.correlation_id);
    let reply = handle_traced(host, request, &headers).await;
    let status = match (&reply.success, &reply.error) {
        (Some(true), _) => StatusCode::OK,
        (_, Some(error)) => status_of(error.category),
        (_, None) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    // The reply in its request's dialect; the headers name the request (its id may have been
    // minted here) whatever the dialect has room for, and the trace it ran in.
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], reply.encode()).into_response();
    let headers = response.headers_mut();
    let ids = [(bus_headers::ENVELOPE_ID, envelope_id), (bus_headers::CORRELATION_ID, correlation_id)];
    let mut buffer = uuid::Uuid::encode_buffer();
    for (name, id) in ids {
        let text = id.hyphenated().encode_lower(&mut buffer);
        headers
            .insert(HeaderName::from_static(name), HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("")));
    }
    // A client's own traceparent text is echoed only if it is a valid header value.
    if let Some(value) = reply.metadata.traceparent.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(HeaderName::from_static("traceparent"), value);
    }
    response
}

async fn entity_state(State(state): State<AdminState>, Path((fsm, key)): Path<(String, String)>) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    match host.entity_state(&fsm, &key).await {
        Ok(Some((current, version))) => json_response(
            StatusCode::OK,
            &json!({ "fsm": fsm, "entity_key": key, "state": current, "version": version }),
        ),
        Ok(None) => {
            let error = ReplyError::new(codes::NOT_FOUND, format!("no reducer serves state machine `{fsm}`"));
            failure(StatusCode::NOT_FOUND, &error)
        }
        Err(e) => store_failure(&e),
    }
}

async fn workflow_run(State(state): State<AdminState>, Path(run_id): Path<String>) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    let Ok(id) = uuid::Uuid::parse_str(&run_id) else {
        let error = ReplyError::new(core_codes::ENVELOPE_INVALID, format!("`{run_id}` is not a UUID"));
        return failure(StatusCode::BAD_REQUEST, &error);
    };
    match host.workflow_run(id).await {
        Ok(Some(view)) => json_response(StatusCode::OK, &view),
        Ok(None) => failure(StatusCode::NOT_FOUND, &ReplyError::new(codes::NOT_FOUND, format!("no workflow run {id}"))),
        Err(e) => store_failure(&e),
    }
}

fn store_failure(e: &onex_spi::SpiError) -> Response {
    failure(status_of(e.category()), &e.to_reply_error())
}

/// The HTTP status for an error category.
pub fn status_of(category: ErrorCategory) -> StatusCode {
    match category {
        ErrorCategory::Validation => StatusCode::BAD_REQUEST,
        ErrorCategory::NotFound => StatusCode::NOT_FOUND,
        ErrorCategory::Conflict => StatusCode::CONFLICT,
        ErrorCategory::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCategory::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCategory::Auth => StatusCode::FORBIDDEN,
        ErrorCategory::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A reply-shaped failure for input that never became an envelope.
fn failure(status: StatusCode, error: &ReplyError) -> Response {
    json_response(status, &json!({ "is_response": true, "success": false, "error": error }))
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
