//! Starting and stopping a host: the runtime config and the contracts become a state store, a
//! bus, started handlers, the bus consumer, the outbox relay and resumed workflow runs; and
//! shutdown undoes it in order without losing anything.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use onex_core::contract::{BusKind, ContractSet, RuntimeConfig, StoreKind};
use onex_core::error::{Classified, ErrorCode};
use onex_spi::{EventBus, RunsToTake, SecretStore, SpiError, StateStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::consumer::{ConsumerConfig, consume};
use super::metrics::Metrics;
use super::outbox::OutboxRelay;
use super::runtime_host::{Claims, Limits};
use super::served::{Served, Wiring};
use super::sweeper::sweep;
use super::{DispatchError, RuntimeHost};
use crate::bus::{InMemoryEventBus, KafkaEventBus, KafkaSettings};
use crate::error::codes;
use crate::ids::new_uuid_v7;
use crate::registry::Registry;
use crate::stores::{PostgresStateStore, SqliteStateStore};

/// What a host is started from.
pub struct HostSetup {
    /// The runtime configuration (overrides applied).
    pub config: RuntimeConfig,
    /// The validated contracts.
    pub contracts: ContractSet,
    /// Handler factories.
    pub registry: Registry,
    /// Where local state lives (SQLite files), created if missing.
    pub data_dir: PathBuf,
    /// Resolves `${env:…}`/`${vault:…}` references in handler configs.
    pub secrets: Arc<dyn SecretStore>,
    /// The directory `contracts` were loaded from, read again on reload; `None` when they are
    /// not files (the bundled contracts, a set built in code): the host then cannot reload.
    pub contracts_dir: Option<PathBuf>,
}

impl std::fmt::Debug for HostSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSetup").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The data directory cannot be created.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state store cannot be opened.
    #[error("state store: {0}")]
    Store(#[source] SpiError),
    /// The configured bus cannot be used (its settings, or its brokers cannot be reached).
    #[error("event bus: {0}")]
    Bus(#[source] SpiError),
    /// A handler failed to start.
    #[error(transparent)]
    Handler(#[from] DispatchError),
    /// A workflow cannot be planned.
    #[error("{0}")]
    Workflow(String),
}

impl Classified for HostError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::DataDir { .. } => codes::IO,
            Self::Store(_) => codes::STORE_UNAVAILABLE,
            Self::Bus(e) => bus_error_code(e),
            Self::Handler(_) => codes::HANDLER_START,
            Self::Workflow(_) => codes::WORKFLOW_UNPLANNABLE,
        }
    }
}

/// The catalogued code of a bus that cannot be opened: its own, else unavailable.
fn bus_error_code(error: &SpiError) -> ErrorCode {
    [codes::KAFKA_CONFIG, codes::KAFKA_DENIED, codes::KAFKA_REJECTED]
        .into_iter()
        .find(|c| c.as_str() == error.code())
        .unwrap_or(codes::KAFKA_UNAVAILABLE)
}

/// A started host and the tasks serving it.
#[derive(Debug)]
pub struct RunningHost {
    host: Arc<RuntimeHost>,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<Result<(), SpiError>>,
    relay: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    resumed: usize,
}

/// What shutdown did.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Workflow runs stopped by the drain bound (they resume at the next start).
    pub runs_interrupted: usize,
    /// Whether the consumer finished its queued messages within the bound.
    pub consumer_drained: bool,
    /// Whether the outbox relay's final flush finished within the bound.
    pub outbox_flushed: bool,
    /// Handlers whose shutdown failed.
    pub handler_failures: Vec<(String, SpiError)>,
}

/// The least time shutting handlers down and closing the bus get, when draining used up the
/// drain timeout (a handler deregisters the host from Consul, the bus commits its offsets).
pub const CLEANUP_FLOOR: Duration = Duration::from_secs(1);

/// Opens the store and the configured bus, starts handlers, resumes unfinished runs and starts
/// consuming.
pub async fn start(setup: HostSetup) -> Result<RunningHost, HostError> {
    let bus: Arc<dyn EventBus> = match setup.config.bus.kind {
        BusKind::InMemory => Arc::new(InMemoryEventBus::new(setup.config.bus.partitions, setup.config.bus.capacity)),
        BusKind::Kafka => {
            let settings = KafkaSettings::resolve(&setup.config.bus, &*setup.secrets).await.map_err(HostError::Bus)?;
            let topics = host_topics(&setup.config, &setup.contracts);
            Arc::new(KafkaEventBus::connect(settings, &topics).await.map_err(HostError::Bus)?)
        }
    };
    if setup.config.bus.kind == BusKind::Kafka && setup.config.state_store.kind == StoreKind::Sqlite {
        tracing::warn!(
            "bus.kind is kafka with the SQLite state store: only this one host may use that store; \
             run several hosts in one group on `state_store.kind: postgres`"
        );
    }
    start_with_bus(setup, bus).await
}

/// Every topic the host consumes or publishes to: its request, reply and dead-letter topics and
/// each node's subscribe and publish topics, each once.
pub fn host_topics(config: &RuntimeConfig, contracts: &ContractSet) -> Vec<String> {
    let bus = &config.bus;
    let own = [&bus.request_topic, &bus.reply_topic, &bus.dlq_topic].into_iter().map(String::as_str);
    let nodes = contracts.nodes.values().flat_map(|(_, n)| {
        let mut topics = n.subscribe_topics();
        topics.extend(n.publish_topics());
        topics
    });
    let unique: BTreeSet<&str> = own.chain(nodes).collect();
    unique.into_iter().map(str::to_owned).collect()
}

/// [`start`] on a bus the caller built (embedding the host, tests); `config.bus.kind` is not
/// consulted, its topics and group are.
pub async fn start_with_bus(setup: HostSetup, bus: Arc<dyn EventBus>) -> Result<RunningHost, HostError> {
    let HostSetup { config, contracts, registry, data_dir, secrets, contracts_dir } = setup;
    std::fs::create_dir_all(&data_dir).map_err(|source| HostError::DataDir { path: data_dir.clone(), source })?;
    let store: Arc<dyn StateStore> = match config.state_store.kind {
        StoreKind::Sqlite => {
            Arc::new(SqliteStateStore::open(&data_dir.join(&config.state_store.path)).await.map_err(HostError::Store)?)
        }
        StoreKind::Postgres => {
            let url = config.state_store.url.as_deref().unwrap_or_default();
            let store = PostgresStateStore::connect(url, config.state_store.max_connections).await;
            Arc::new(store.map_err(HostError::Store)?)
        }
    };
    let (consumed, topics) = (consumed_topics(&contracts, &config), host_topics(&config, &contracts));
    let wiring = Wiring { config, registry, secrets, data_dir, contracts_dir, consumed, topics };
    let metrics = Metrics::default();
    let served = Served::build(&wiring, contracts, None, &metrics).await?;
    let config = &wiring.config;
    let limits = Limits {
        max_envelope_bytes: usize::try_from(config.max_envelope_bytes).unwrap_or(usize::MAX),
        max_in_flight: config.max_in_flight as usize,
        max_workflow_runs: config.max_workflow_runs as usize,
    };
    let owner = format!("{}/{}", config.runtime_name, new_uuid_v7());
    let claims = Claims::new(
        owner,
        Duration::from_millis(config.delivery.run_lease_ms),
        Duration::from_millis(config.delivery.outbox_claim_ms),
    );
    let retention = config.retention.clone();
    let at_start = match config.state_store.kind {
        StoreKind::Sqlite => RunsToTake::AllRunning,
        StoreKind::Postgres => RunsToTake::Expired,
    };
    let topics = wiring.consumed.clone();
    let consumer_config = ConsumerConfig {
        group: config.bus.group_id.clone(),
        topics: topics.clone(),
        reply_topic: config.bus.reply_topic.as_str().into(),
        dlq_topic: config.bus.dlq_topic.as_str().into(),
        lanes: config.bus.lanes.map_or(config.bus.partitions, std::num::NonZeroU32::get).clamp(1, 64) as usize,
        delivery: config.delivery.clone(),
    };
    let host = Arc::new(RuntimeHost::new(served, wiring, metrics, store, bus, limits, claims));

    // Runs left unfinished are taken over before anything is consumed. A host alone on its
    // store (SQLite) takes every one now: their host was its own previous process. On a shared
    // store only those whose lease expired; the sweeper takes the others when theirs do.
    let resumed = host.served().orchestrator.take_over(&host, at_start).await.map_err(HostError::Store)?;
    let (stop, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(sweep(Arc::clone(&host), retention, stop_rx.clone()));
    let relay = tokio::spawn(OutboxRelay::new(Arc::clone(&host), topics).run(stop_rx.clone()));
    let consumer = tokio::spawn(consume(Arc::clone(&host), consumer_config, stop_rx));
    host.mark_ready();
    Ok(RunningHost { host, stop, consumer, relay, sweeper, resumed })
}

/// The request topic and every topic a node consumes (`consumed_events` and upstream's
/// `event_bus.subscribe_topics`): the envelopes on them are routed by their operation.
fn consumed_topics(contracts: &ContractSet, config: &RuntimeConfig) -> Vec<String> {
    let mut topics = BTreeSet::from([config.bus.request_topic.clone()]);
    for (_, node) in contracts.nodes.values() {
        topics.extend(node.subscribe_topics().into_iter().map(str::to_owned));
    }
    topics.into_iter().collect()
}

impl RunningHost {
    /// The host.
    pub fn host(&self) -> &Arc<RuntimeHost> {
        &self.host
    }

    /// How many unfinished workflow runs were taken over at start.
    pub fn resumed_runs(&self) -> usize {
        self.resumed
    }

    /// Stops consuming, finishes queued messages and workflow runs, flushes the outbox, shuts
    /// handlers down and closes the bus. Every phase is bounded: consuming, runs and the final
    /// outbox flush share `drain`; shutting handlers down and closing the bus get what is left
    /// of it, and at least [`CLEANUP_FLOOR`] each (never more than `drain`). Whatever is cut
    /// short stays durable (unacknowledged messages, `running` runs, unpublished outbox rows)
    /// for the next start or another host.
    pub async fn shutdown(self, drain: Duration) -> ShutdownReport {
        let deadline = Instant::now() + drain;
        let mut report = ShutdownReport::default();
        self.host.start_draining();
        let _ = self.stop.send(true);
        self.sweeper.abort();
        let mut consumer = self.consumer;
        report.consumer_drained = tokio::time::timeout_at(deadline, &mut consumer).await.is_ok();
        if !report.consumer_drained {
            consumer.abort();
        }
        report.runs_interrupted = self.host.runs.drain(deadline.saturating_duration_since(Instant::now())).await;
        let mut relay = self.relay;
        match tokio::time::timeout_at(deadline, &mut relay).await {
            Ok(Ok(())) => report.outbox_flushed = true,
            Ok(Err(_)) => {
                tracing::error!("the outbox relay ended abnormally; pending messages are published at the next start");
            }
            Err(_) => {
                relay.abort();
                tracing::warn!(
                    "the outbox relay's final flush did not finish within the drain timeout; pending messages are published at the next start"
                );
            }
        }
        let cleanup = || deadline.saturating_duration_since(Instant::now()).max(CLEANUP_FLOOR).min(drain);
        match tokio::time::timeout(cleanup(), self.host.served().dispatcher.shutdown()).await {
            Ok(failures) => report.handler_failures = failures,
            Err(_) => tracing::warn!("handlers did not shut down within the drain timeout; exiting without them"),
        }
        match tokio::time::timeout(cleanup(), self.host.bus.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "closing the bus failed"),
            Err(_) => tracing::warn!("closing the bus did not finish within the drain timeout"),
        }
        report
    }
}
