//! What one contract set makes of a host: the routes of its effect and compute nodes, its
//! reducers, its workflows and intent routes, and each operation's counters.
//!
//! The host serves one [`Served`] at a time and replaces it whole when the contracts are
//! reloaded ([`super::reload`]). An envelope takes the current one when it arrives and keeps it
//! to its reply, so it finishes on the set it started with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use onex_core::contract::{ContractSet, RuntimeConfig};
use onex_spi::SecretStore;

use super::metrics::{Metrics, OperationMetrics};
use super::{Dispatcher, HostError, Orchestrator, Reducers};
use crate::registry::Registry;

/// What a contract set is wired with: kept by the host, so a reload builds the new set the
/// way the first one was built.
pub struct Wiring {
    /// The runtime configuration (not reloaded: it is read once, at start).
    pub config: RuntimeConfig,
    /// Handler factories.
    pub registry: Registry,
    /// Resolves `${env:…}`/`${vault:…}` references in handler configs.
    pub secrets: Arc<dyn SecretStore>,
    /// Where local state lives.
    pub data_dir: PathBuf,
    /// The contract directory a reload reads again; `None` for contracts that are not files
    /// (the ones built into the binary, a set built in code).
    pub contracts_dir: Option<PathBuf>,
    /// The topics the consumer reads (fixed at start).
    pub consumed: Vec<String>,
    /// Every topic the host used at start ([`super::start::host_topics`]; on Kafka, created then).
    pub topics: Vec<String>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("data_dir", &self.data_dir)
            .field("contracts_dir", &self.contracts_dir)
            .finish_non_exhaustive()
    }
}

/// The routes, machines and workflows of one contract set.
pub struct Served {
    pub(super) dispatcher: Dispatcher,
    pub(super) reducers: Reducers,
    pub(super) orchestrator: Orchestrator,
    contracts: Arc<ContractSet>,
    /// The counters of every operation it routes, registered in the host's [`Metrics`].
    counters: HashMap<String, Arc<OperationMetrics>>,
    /// 1 for the set the host started with, one more for each reload.
    generation: u64,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("generation", &self.generation)
            .field("dispatcher", &self.dispatcher)
            .field("reducers", &self.reducers)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// What `contracts` make of a host wired with `wiring`. After `previous` (a reload), its
    /// handlers, the stacks of unchanged nodes and the counts go on; a workflow that cannot be
    /// planned is refused before any new handler is started.
    pub(super) async fn build(
        wiring: &Wiring,
        contracts: ContractSet,
        previous: Option<&Self>,
        metrics: &Metrics,
    ) -> Result<Self, HostError> {
        let Wiring { config, registry, secrets, data_dir, .. } = wiring;
        let orchestrator = Orchestrator::from_contracts(&contracts).map_err(HostError::Workflow)?;
        let mut reducers = Reducers::from_contracts(&contracts, &config.bus.request_topic);
        let dispatcher = match previous {
            Some(previous) => {
                reducers = reducers.counting_on(&previous.reducers);
                previous.dispatcher.reload(&contracts, config, registry, Arc::clone(secrets), data_dir).await?
            }
            None => Dispatcher::start(&contracts, config, registry, Arc::clone(secrets), data_dir).await?,
        };
        let mut operations: Vec<(&str, String)> =
            dispatcher.operations().map(|op| (dispatcher.stack(op).map_or("", |(n, _)| n), op.to_owned())).collect();
        operations.extend(reducers.operations());
        operations.extend(orchestrator.operations());
        let counters = metrics.register(operations.iter().map(|(node, op)| (*node, op.as_str())));
        Ok(Self {
            dispatcher,
            reducers,
            orchestrator,
            contracts: Arc::new(contracts),
            counters,
            generation: previous.map_or(1, |p| p.generation + 1),
        })
    }

    /// The effect and compute routes and the handlers behind them.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The contract set.
    pub fn contracts(&self) -> &ContractSet {
        &self.contracts
    }

    /// 1 for the set the host started with, one more for each reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The counters of `operation`, when this set routes it.
    pub(super) fn counters(&self, operation: &str) -> Option<&OperationMetrics> {
        self.counters.get(operation).map(|c| &**c)
    }
}
