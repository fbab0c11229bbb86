//! Reloading contracts while serving (SIGHUP, `POST /v1/admin/reload`).
//!
//! The directory the host was started from is loaded and checked again, exactly as at start.
//! The new set replaces the old one at once, and only when it is valid and can be served;
//! otherwise the old set keeps serving and every error is reported with its file, line and
//! column. Envelopes in flight finish on the set they started with ([`super::served`]), and a
//! workflow run on the definition it started with ([`super::runs`]). One reload runs at a time.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use onex_core::contract::{ContractSet, Severity};
use onex_core::error::{Classified, ErrorCode};
use serde::Serialize;

use super::served::{Served, Wiring};
use super::{HostError, RuntimeHost};
use crate::contracts::load_contracts;
use crate::error::codes;

/// What a reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The served set's generation now (1 was the set the host started with).
    pub generation: u64,
    /// Nodes served now.
    pub nodes: usize,
    /// Nodes the new set adds, removes, and changes.
    pub added: Vec<String>,
    /// Nodes gone from the new set.
    pub removed: Vec<String>,
    /// Nodes whose contract changed.
    pub changed: Vec<String>,
    /// The loader's warnings, and what the new set asks that only a restart gives.
    pub warnings: Vec<String>,
}

/// Why a reload kept the old set.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The host serves contracts that are not in a directory.
    #[error(
        "the host serves the contracts built into the binary; start it with --contracts DIR (or ONEX_CONTRACTS_DIR) to reload them"
    )]
    Unavailable,
    /// The directory's contracts have errors.
    #[error("{} contract error(s) in {}; the previous contracts keep serving:\n{}", errors.len(), dir.display(), errors.join("\n"))]
    Invalid {
        /// The contract directory.
        dir: PathBuf,
        /// Each error, `file:line:column: …`.
        errors: Vec<String>,
    },
    /// The new set is valid but cannot be served (a handler it needs cannot start).
    #[error("the reloaded contracts cannot be served; the previous contracts keep serving: {0}")]
    Unservable(#[source] HostError),
}

impl Classified for ReloadError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Unavailable => codes::RELOAD_UNAVAILABLE,
            Self::Invalid { .. } => codes::RELOAD_INVALID,
            Self::Unservable(e) => e.error_code(),
        }
    }
}

impl RuntimeHost {
    /// Loads the contract directory again and serves it from now on when it is valid; counts
    /// the outcome in `/metrics` and logs it.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let outcome = self.reload_locked().await;
        self.metrics.reloaded(outcome.is_ok());
        match &outcome {
            Ok(report) => tracing::info!(generation = report.generation, nodes = report.nodes,
                added = ?report.added, removed = ?report.removed, changed = ?report.changed, "contracts reloaded"),
            Err(e) => tracing::error!(code = %e.error_code(), "contract reload refused: {e}"),
        }
        outcome
    }

    async fn reload_locked(&self) -> Result<ReloadReport, ReloadError> {
        let wiring = self.wiring.lock().await;
        let dir = wiring.contracts_dir.clone().ok_or(ReloadError::Unavailable)?;
        let loaded = load_contracts(std::slice::from_ref(&dir), &wiring.registry);
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        for d in &loaded.diagnostics {
            match d.severity {
                Severity::Error => errors.push(d.to_string()),
                Severity::Warning => warnings.push(d.to_string()),
            }
        }
        let Some(next) = loaded.set.filter(|_| errors.is_empty()) else {
            return Err(ReloadError::Invalid { dir, errors });
        };
        let previous = self.served();
        let (added, removed, changed) = node_changes(previous.contracts(), &next);
        warnings.extend(new_topics(&next, &wiring));
        let config_of = |set: &ContractSet| set.runtime.as_ref().map(|(_, config)| config.clone());
        let config_changed = config_of(&next) != config_of(previous.contracts());
        if let Some((source, _)) = next.runtime.as_ref().filter(|_| config_changed) {
            warnings.push(format!("{source}: the runtime config changed; it is read at start only (restart to apply)"));
        }
        let served =
            Served::build(&wiring, next, Some(&previous), &self.metrics).await.map_err(ReloadError::Unservable)?;
        let report = ReloadReport {
            generation: served.generation(),
            nodes: served.contracts().nodes.len(),
            added,
            removed,
            changed,
            warnings,
        };
        self.replace_served(served);
        Ok(report)
    }
}

/// Nodes `next` adds, removes and changes against `current`.
fn node_changes(current: &ContractSet, next: &ContractSet) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = next.nodes.keys().filter(|n| !current.nodes.contains_key(*n)).cloned().collect();
    let removed = current.nodes.keys().filter(|n| !next.nodes.contains_key(*n)).cloned().collect();
    let changed = next
        .nodes
        .iter()
        .filter(|(name, (_, node))| current.nodes.get(*name).is_some_and(|(_, old)| old != node))
        .map(|(name, _)| name.clone())
        .collect();
    (added, removed, changed)
}

/// A warning for each topic a node of `next` subscribes to that the consumer, subscribed at
/// start, does not read (envelopes sent there wait until the host restarts), and for each it
/// publishes to that the host did not know at start (on Kafka: created only at the next start).
fn new_topics(next: &ContractSet, wiring: &Wiring) -> Vec<String> {
    let consumed: BTreeSet<&str> = wiring.consumed.iter().map(String::as_str).collect();
    let known: BTreeSet<&str> = wiring.topics.iter().map(String::as_str).collect();
    let mut warnings = Vec::new();
    for (name, (source, node)) in &next.nodes {
        for topic in node.subscribe_topics().into_iter().filter(|t| !consumed.contains(t)) {
            warnings.push(format!(
                "{source}: node `{name}` subscribes to topic `{topic}`, which this host consumes only after a restart"
            ));
        }
        for topic in node.publish_topics().into_iter().filter(|t| !known.contains(t)) {
            warnings.push(format!(
                "{source}: node `{name}` publishes to topic `{topic}`, new since the host started (a Kafka bus creates it at the next start; create it first)"
            ));
        }
    }
    warnings
}

/// Reloads whenever the process receives SIGHUP, until the host stops.
pub async fn reload_on_sighup(host: Arc<RuntimeHost>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload through POST /v1/admin/reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading contracts");
        // The outcome is logged and counted by `reload`.
        let _ = host.reload().await;
    }
}
