//! OpenTelemetry traces of a running `onex-runtime-host`, sent over OTLP/HTTP to a receiver in
//! this test that decodes them with the official protobuf definitions (`opentelemetry-proto`):
//! the span tree of one envelope that runs a workflow, and of a reducer commit, all in the
//! caller's trace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onex_e2e::host::{HostOptions, HostProcess, envelope, http_with, wait_for};
use onex_e2e::{contracts_with, scratch_dir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use serde_json::{Value as Json, json};

/// A two-step workflow of local steps, routed from intent `traced_requested`.
const TRACED_ORCHESTRATOR: &str = r#"
name: test_orchestrator_traced
contract_version: "1.0.0"
node_type: ORCHESTRATOR
workflow_coordination:
  intent_routing:
    traced_requested: traced_workflow
  workflow_definition:
    workflow_metadata: { workflow_name: traced_workflow, execution_mode: sequential }
    steps:
      - { step_name: fetch, operation: local.echo, payload: { what: fetch } }
      - { step_name: report, operation: local.echo, payload: { what: report }, depends_on: [fetch] }
"#;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A span as received: its ids in hex, its name and its resource's `service.name`.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    service: String,
}

/// An OTLP/HTTP receiver on a loopback port: every `POST /v1/traces` body is decoded as an
/// `ExportTraceServiceRequest` and its spans kept.
struct Receiver {
    addr: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Self { addr, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// Answers the requests of one (kept-alive) connection until it closes.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(request_line.starts_with("POST /v1/traces "), "unexpected request: {request_line}");
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP protobuf body");
        sink.lock().unwrap().extend(received(&export));
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        writer.write_all(answer.as_bytes()).unwrap();
    }
}

fn received(export: &ExportTraceServiceRequest) -> Vec<Received> {
    let mut out = Vec::new();
    for resource_spans in &export.resource_spans {
        let attributes = resource_spans.resource.iter().flat_map(|r| &r.attributes);
        let service = attributes
            .filter(|kv| kv.key == "service.name")
            .find_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            out.push(Received {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name.clone(),
                service: service.clone(),
            });
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn post_traced(host: &HostProcess, operation: &str, payload: Json) -> (u16, Json) {
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let body = envelope(operation, payload).to_string();
    let headers = [("traceparent", traceparent.as_str())];
    let (status, text) = http_with(&host.addr, "POST", "/v1/envelopes", &headers, Some(body.as_bytes()));
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// The one span named `name`.
fn one<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span `{name}` expected: {spans:#?}");
    found[0]
}

#[test]
fn an_envelope_running_a_workflow_is_one_span_tree_in_the_callers_trace() {
    let receiver = Receiver::start();
    let contracts = contracts_with("tracing", &[("orchestrators/test_traced.yaml", TRACED_ORCHESTRATOR)]);
    let options = HostOptions::new(&contracts, &scratch_dir("tracing-data"))
        .env("ONEX_TELEMETRY_ENDPOINT", &format!("http://{}", receiver.addr))
        .env("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "100")
        .env("ONEX_TELEMETRY_SERVICE_NAME", "onex-trace-test");
    let host = HostProcess::start(&options);

    let (status, reply) = post_traced(&host, "intent.traced_requested", json!({}));
    assert_eq!(status, 200, "{reply}");
    let run_id = reply["payload"]["run_id"].as_str().unwrap().to_owned();
    wait_for("the run to succeed", Duration::from_secs(30), || {
        let (_, run) = host.get_json(&format!("/v1/workflows/{run_id}"));
        (run["status"] == "succeeded").then_some(())
    });
    let (status, reply) =
        post_traced(&host, "infrastructure_state.initialization_complete", json!({"entity_key": "traced"}));
    assert_eq!(status, 200, "{reply}");

    let wanted = ["workflow.run traced_workflow", "reducer.commit infrastructure_state", "handler local.echo"];
    let spans = wait_for("the spans to arrive", Duration::from_secs(30), || {
        let spans = receiver.spans();
        let echoes = spans.iter().filter(|s| s.name == "handler local.echo").count();
        (wanted.iter().all(|w| spans.iter().any(|s| s.name == *w)) && echoes >= 2).then_some(spans)
    });
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let parent_name = |span: &Received| by_id.get(span.parent.as_str()).map_or("<none>", |p| p.name.as_str());
    assert!(spans.iter().all(|s| s.trace_id == TRACE_ID), "every span in the caller's trace: {spans:#?}");
    assert!(spans.iter().all(|s| s.service == "onex-trace-test"), "{spans:#?}");

    // HTTP ingress under the caller's span, the intent's envelope under it, the run under that.
    let servers: Vec<&Received> = spans.iter().filter(|s| s.name == "POST /v1/envelopes").collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    assert!(servers.iter().all(|s| s.parent == CLIENT_SPAN), "{servers:#?}");
    let intent = one(&spans, "envelope intent.traced_requested");
    assert_eq!(parent_name(intent), "POST /v1/envelopes");
    let run = one(&spans, "workflow.run traced_workflow");
    assert_eq!(run.parent, intent.span_id, "the run is a child of the envelope that started it");

    // Each step under the run, its envelope under the step, the handler call under the envelope.
    for step in ["fetch", "report"] {
        let step_span = one(&spans, &format!("workflow.step {step}"));
        assert_eq!(step_span.parent, run.span_id, "step {step}");
        let envelopes: Vec<&Received> = spans.iter().filter(|s| s.parent == step_span.span_id).collect();
        assert_eq!(envelopes.len(), 1, "one envelope under step {step}: {spans:#?}");
        assert_eq!(envelopes[0].name, "envelope local.echo");
        let handlers: Vec<&Received> = spans.iter().filter(|s| s.parent == envelopes[0].span_id).collect();
        assert_eq!(handlers.len(), 1, "one handler call under step {step}'s envelope: {spans:#?}");
        assert_eq!(handlers[0].name, "handler local.echo");
    }

    // The reducer's commit under its event's envelope.
    let commit = one(&spans, "reducer.commit infrastructure_state");
    assert_eq!(parent_name(commit), "envelope infrastructure_state.initialization_complete");
}

#[test]
fn an_unreachable_receiver_loses_only_the_spans() {
    // A port nothing listens on: every export fails.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let contracts = contracts_with("tracing-unreachable", &[]);
    let options = HostOptions::new(&contracts, &scratch_dir("tracing-unreachable-data"))
        .env("ONEX_TELEMETRY_ENDPOINT", &format!("http://{closed}"))
        .env("ONEX_TELEMETRY_EXPORT_INTERVAL_MS", "50")
        .env("ONEX_DRAIN_TIMEOUT_MS", "2000");
    let mut host = HostProcess::start(&options);
    for i in 0..20 {
        let (status, reply) = post_traced(&host, "local.echo", json!({ "i": i }));
        assert_eq!(status, 200, "{reply}");
        assert!(reply["metadata"]["traceparent"].as_str().unwrap().contains(TRACE_ID), "{reply}");
    }
    host.signal("TERM");
    let exited = host.wait_exit(Duration::from_secs(15)).expect("the host exits though its spans cannot be sent");
    assert!(exited.success(), "{exited:?}\n{}", host.logs());
}
