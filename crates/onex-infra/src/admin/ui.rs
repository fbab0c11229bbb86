//! The status page at `/ui`, for people: one server-rendered HTML page (no script, no build
//! step; it reloads itself every 5 s) with the nodes and their contracts, breaker state and
//! envelope rates; each reducer's state machine drawn as SVG with the entities in each state;
//! and the latest workflow runs with their steps' states and journals.
//!
//! Rates are the change of each node's counters since the page was last rendered (the first
//! rendering has none yet), so they need no history in the host.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use onex_core::fsm::{escape_xml as esc, to_svg};
use onex_core::resilience::BreakerState;
use serde_json::Value as Json;
use tokio::time::Instant;

use super::AdminState;
use crate::host::{RuntimeHost, Served};

/// Workflow runs shown.
const RUNS_SHOWN: u32 = 20;

/// `(succeeded, failed)` envelopes per node.
type NodeCounts = BTreeMap<String, (u64, u64)>;

/// The counters at the last rendering, for rates.
#[derive(Debug, Default)]
pub struct RateSampler {
    last: Mutex<Option<(Instant, NodeCounts)>>,
}

/// One node's row.
struct NodeRow {
    ok: u64,
    failed: u64,
    /// Envelopes per second and the share that failed, since the last rendering.
    rate: Option<(f64, f64)>,
}

impl RateSampler {
    /// Rows from the current counters; remembers them for the next call.
    fn rows(&self, now: NodeCounts) -> BTreeMap<String, NodeRow> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = last.take();
        let rows = now
            .iter()
            .map(|(node, &(ok, failed))| {
                let rate = previous.as_ref().and_then(|(at, counts)| {
                    let seconds = at.elapsed().as_secs_f64();
                    let (ok0, failed0) = counts.get(node).copied().unwrap_or_default();
                    let (d_ok, d_failed) = (ok.saturating_sub(ok0), failed.saturating_sub(failed0));
                    let total = (d_ok + d_failed) as f64;
                    (seconds > 0.0).then(|| (total / seconds, if total > 0.0 { d_failed as f64 / total } else { 0.0 }))
                });
                (node.clone(), NodeRow { ok, failed, rate })
            })
            .collect();
        *last = Some((Instant::now(), now));
        rows
    }
}

/// `GET /ui`.
pub async fn page(State(state): State<AdminState>) -> Response {
    let host = match state.host() {
        Ok(host) => host,
        Err(response) => return response,
    };
    match render(host, &state.rates).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            let body = format!("<!doctype html><title>status unavailable</title><p>{}</p>", esc(&e.to_string()));
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body)
                .into_response()
        }
    }
}

async fn render(host: &RuntimeHost, rates: &RateSampler) -> Result<String, onex_spi::SpiError> {
    let served = host.served();
    let machines = host.machines(&served).await?;
    let runs = host.recent_runs(RUNS_SHOWN).await?;
    let rows = rates.rows(host.metrics().per_node());
    let mut html = String::with_capacity(16 * 1024);
    let status = if host.is_draining() { "draining" } else { "serving" };
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>onex-runtime-host status</title><link rel="icon" href="data:,"><style>{STYLE}</style></head><body><header><h1>onex-runtime-host</h1><p class="summary"><span id="status">{status}</span> · {} nodes · {} envelopes in flight · {} outbox messages unpublished</p></header>"#,
        served.contracts().nodes.len(),
        host.metrics().in_flight_now(),
        host.store().outbox_backlog().await.unwrap_or(0),
    );
    nodes_section(&mut html, &served, &rows);
    html.push_str(r#"<section id="machines"><h2>State machines</h2>"#);
    if machines.is_empty() {
        html.push_str("<p>No reducer is loaded.</p>");
    }
    for machine in &machines {
        let total: u64 = machine.counts.values().sum();
        let _ = write!(
            html,
            r#"<figure class="machine" data-fsm="{fsm}"><figcaption><b>{fsm}</b> of {node} · {total} entities</figcaption>{svg}</figure>"#,
            fsm = esc(&machine.fsm.name),
            node = esc(machine.node),
            svg = to_svg(machine.fsm, &machine.counts),
        );
    }
    html.push_str("</section>");
    runs_section(&mut html, &runs);
    html.push_str("</body></html>");
    Ok(html)
}

fn breaker_text(state: Option<BreakerState>) -> &'static str {
    match state {
        None => "none",
        Some(BreakerState::Closed) => "closed",
        Some(BreakerState::HalfOpen) => "half-open",
        Some(BreakerState::Open) => "open",
    }
}

fn nodes_section(html: &mut String, served: &Served, rows: &BTreeMap<String, NodeRow>) {
    let mut breakers: BTreeMap<&str, Option<BreakerState>> = BTreeMap::new();
    for op in served.dispatcher().operations() {
        if let Some((node, stack)) = served.dispatcher().stack(op) {
            breakers.entry(node).or_insert_with(|| stack.breaker_state());
        }
    }
    html.push_str(
        r#"<section id="nodes"><h2>Nodes</h2><table><thead><tr><th>node</th><th>kind</th><th>version</th><th>operations</th><th>breaker</th><th>ok</th><th>failed</th><th>envelopes/s</th><th>error rate</th></tr></thead><tbody>"#,
    );
    for (name, (source, node)) in &served.contracts().nodes {
        let operations = answers_to(node);
        let row = rows.get(name.as_str());
        let (ok, failed) = row.map_or((0, 0), |r| (r.ok, r.failed));
        let (rate, errors) = match row.and_then(|r| r.rate) {
            Some((per_second, failing)) => (format!("{per_second:.1}"), format!("{:.1} %", failing * 100.0)),
            None => ("–".to_owned(), "–".to_owned()),
        };
        let breaker = breaker_text(breakers.get(name.as_str()).copied().flatten());
        let _ = write!(
            html,
            r#"<tr class="node" data-node="{n}"><td title="{src}">{n}</td><td>{kind:?}</td><td>{version}</td><td>{ops}</td><td class="breaker {breaker}">{breaker}</td><td>{ok}</td><td>{failed}</td><td>{rate}</td><td>{errors}</td></tr>"#,
            n = esc(name),
            src = esc(source),
            kind = node.node_type,
            version = esc(&node.contract_version),
            ops = operations.join("<br>"),
        );
    }
    html.push_str("</tbody></table></section>");
}

/// What a node answers to: its operations, the events a reducer consumes, the intents an
/// orchestrator routes.
fn answers_to(node: &onex_core::contract::NodeContract) -> Vec<String> {
    let mut served: Vec<String> = node.io_operations.iter().map(|o| esc(&o.operation)).collect();
    served.extend(node.consumed_events.iter().map(|e| esc(&e.event_type)));
    if let Some(coordination) = &node.workflow_coordination {
        served.extend(coordination.intent_routing.keys().map(|intent| esc(&format!("intent.{intent}"))));
    }
    let mut seen = std::collections::HashSet::new();
    served.retain(|s| seen.insert(s.clone()));
    served
}

fn runs_section(html: &mut String, runs: &[Json]) {
    html.push_str(r#"<section id="runs"><h2>Workflow runs</h2>"#);
    if runs.is_empty() {
        html.push_str("<p>No workflow run yet.</p>");
    }
    for run in runs {
        let text = |key: &str| esc(run[key].as_str().unwrap_or_default());
        let _ = write!(
            html,
            r#"<article class="run" data-run-id="{id}" data-status="{status}"><h3>{workflow} <span class="status {status}">{status}</span></h3><p class="id">{id}</p><ol class="steps">"#,
            id = esc(&run["run_id"].as_str().map_or_else(|| run["run_id"].to_string(), str::to_owned)),
            status = text("status"),
            workflow = text("workflow"),
        );
        for step in run["steps"].as_array().into_iter().flatten() {
            let name = esc(step["step"].as_str().unwrap_or_default());
            let state = esc(step["state"].as_str().unwrap_or_default());
            let _ = write!(
                html,
                r#"<li class="step {state}" data-step="{name}" data-state="{state}">{name}: {state}</li>"#
            );
        }
        let journal = run["journal"].as_array().map_or(0, Vec::len);
        let pretty = serde_json::to_string_pretty(&run["journal"]).unwrap_or_default();
        let _ = write!(
            html,
            "</ol><details><summary>journal ({journal} entries)</summary><pre>{}</pre></details></article>",
            esc(&pretty)
        );
    }
    html.push_str("</section>");
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2430;background:#fafbfc}\
h1{margin:0;font-size:1.4rem}h2{margin-top:2rem;border-bottom:1px solid #d5dae1}.summary{color:#556}\
table{border-collapse:collapse}th,td{padding:.3rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}\
.breaker.open{color:#b00020;font-weight:bold}.breaker.half-open{color:#b26a00}\
figure.machine{display:inline-block;margin:0 1rem 1rem 0;background:#fff;border:1px solid #e3e6ea;padding:.5rem}\
svg.fsm circle{fill:#eef3fb;stroke:#3b6fb6;stroke-width:2}svg.fsm .initial circle{stroke-width:4}\
svg.fsm .terminal circle{fill:#f3f3f3;stroke-dasharray:4 2}svg.fsm text{text-anchor:middle;font-size:12px}\
svg.fsm .count{font-size:16px;font-weight:bold}svg.fsm path{fill:none;stroke:#7a8699;stroke-width:1.5}\
svg.fsm marker path{fill:#7a8699;stroke:none}svg.fsm .transition text{fill:#556;font-size:11px}\
article.run{background:#fff;border:1px solid #e3e6ea;padding:.5rem 1rem;margin-bottom:.8rem}.run .id{color:#778;font-size:12px;margin:0}\
.status.succeeded,.step.succeeded{color:#1a7f37}.status.failed,.step.failed{color:#b00020}.step.running,.status.running{color:#b26a00}\
pre{max-height:20rem;overflow:auto;background:#f4f6f8;padding:.5rem}";
