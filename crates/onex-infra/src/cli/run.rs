//! `run`: serve the contracts until SIGTERM/SIGINT, then drain and exit 0.
//!
//! Where things come from, first match wins:
//! - contracts: `--contracts`, `ONEX_CONTRACTS_DIR`, the `contracts_dir` of `--config` (relative
//!   to the config file), `./contracts` if it exists, else the contracts built into the binary;
//! - runtime config: `--config`, else the runtime config among the contracts, else the bundled
//!   one; then `ONEX_*` variables; then the `--data-dir` and `--admin-addr` flags.
//! - `data_dir` is relative to the working directory.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use onex_core::contract::{ContractSet, RuntimeConfig, Severity, load_runtime_config};
use onex_core::error::Classified;
use onex_spi::{HandlerInit, SecretStore};
use tokio::net::TcpListener;

use crate::admin::auth::{self, AdminAccess};
use crate::admin::{AdminState, AdminTimeouts, router, serve};
use crate::contracts::{ContractReport, load_bundled_contracts, load_contracts};
use crate::handlers::consul::{ConsulHandler, deregister_host, register_host};
use crate::handlers::vault::VaultSecretStore;
use crate::host::{HostSetup, start};
use crate::registry::Registry;
use crate::secrets::EnvSecretStore;

/// Most time the last spans get to reach the trace receiver at exit.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(2);

/// Flags of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Runtime config file (default: the one among the contracts, else the bundled one).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Contracts directory (default: `./contracts`, else the bundled contracts).
    #[arg(long)]
    pub contracts: Option<PathBuf>,
    /// Data directory for local state (overrides `data_dir` and ONEX_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP address (overrides `admin_addr` and ONEX_ADMIN_ADDR).
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// Refuse to start when a contract binds a handler no registered handler answers to
    /// (by default the host serves every node whose handlers are bound and reports the rest).
    #[arg(long)]
    pub require_all_handlers: bool,
}

/// Runs the host on a multi-threaded runtime; exit 0 after a clean shutdown, 1 when it cannot
/// start.
pub fn run(args: RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::FAILURE
}

async fn serve(args: RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let registry = Registry::with_builtin_handlers().map_err(|e| e.to_string())?;
    let (config, contracts, contracts_dir) = resolve(&args, &registry)?;
    let data_dir = PathBuf::from(&config.data_dir);
    let listener = TcpListener::bind(&config.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on {} (admin_addr): {e}", config.admin_addr))?;
    let listener_addr = listener.local_addr().map_err(|e| format!("admin listener: {e}"))?;
    let admin_addr = listener_addr.to_string();
    let secrets = secret_store(&config, &data_dir).await?;
    let telemetry = crate::telemetry::init(&config.telemetry, &data_dir)
        .map_err(|e| format!("cannot start ({}): {e}", e.error_code()))?;
    let access = AdminAccess::from_config(&config.admin.auth, listener_addr, &data_dir, secrets.as_ref())
        .await
        .map_err(|e| format!("cannot start ({}): {}", e.code(), e.message()))?;
    let admin = AdminState::new(access, AdminTimeouts::from_config(&config.admin));
    let (stop_http, mut http_stop) = tokio::sync::watch::channel(false);
    let app = router(admin.clone());
    let header_timeout = Duration::from_millis(config.admin.header_timeout_ms);
    let server = tokio::spawn(serve::serve(listener, app, header_timeout, async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let consul = config.handlers.get("consul").filter(|h| h.enabled).map(|h| h.config.clone());
    let runtime_name = config.runtime_name.clone();
    let auth_mode = auth::describe(&config.admin.auth);
    let bound = listener_addr;
    let setup = HostSetup {
        config,
        contracts,
        registry,
        data_dir: data_dir.clone(),
        secrets: Arc::clone(&secrets),
        contracts_dir,
    };
    let running = start(setup).await.map_err(|e| format!("cannot start: {e}"))?;
    let served = running.host().served();
    let unbound = served.dispatcher().unbound();
    if !unbound.is_empty() {
        let listed = unbound_list(unbound);
        if args.require_all_handlers {
            let _ = stop_http.send(true);
            running.shutdown(drain).await;
            return Err(format!(
                "cannot start ({}): --require-all-handlers, and no registered handler answers to: {listed}",
                crate::error::codes::HANDLERS_UNBOUND
            ));
        }
        tracing::warn!(unbound = %listed, "serving every node whose handlers are bound; these answer OPERATION_NOT_FOUND");
    }
    admin.set_host(Arc::clone(running.host()));
    tracing::info!(
        admin = %admin_addr,
        admin_auth = auth_mode,
        data_dir = %data_dir.display(),
        operations = served.dispatcher().operations().count(),
        resumed_runs = running.resumed_runs(),
        startup_ms = started.elapsed().as_millis() as u64,
        "onex-runtime-host ready"
    );
    let registration = match consul {
        Some(consul_config) => register_in_consul(consul_config, &runtime_name, bound, &data_dir, secrets).await,
        None => None,
    };
    let reloads = tokio::spawn(crate::host::reload::reload_on_sighup(Arc::clone(running.host())));
    wait_for_signal().await;
    reloads.abort();
    if let Some((consul, id)) = registration {
        match deregister_host(&consul, &id).await {
            Ok(()) => tracing::info!(service_id = %id, "deregistered from Consul"),
            Err(e) => tracing::warn!(service_id = %id, error = %e, "cannot deregister from Consul"),
        }
    }
    tracing::info!(drain_ms = drain.as_millis() as u64, "shutting down: draining in-flight work");
    running.host().start_draining();
    let _ = stop_http.send(true);
    let _ = tokio::time::timeout(drain, server).await;
    let report = running.shutdown(drain).await;
    for (handler, e) in &report.handler_failures {
        tracing::warn!(handler, error = %e, "handler shutdown failed");
    }
    if let Some(telemetry) = telemetry {
        telemetry.shutdown(drain.min(TELEMETRY_FLUSH)).await;
    }
    tracing::info!(runs_interrupted = report.runs_interrupted, consumer_drained = report.consumer_drained, "stopped");
    Ok(())
}

/// `HandlerX (node_a, node_b); db (node_c)`.
fn unbound_list(unbound: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    unbound.iter().map(|(name, nodes)| format!("{name} ({})", nodes.join(", "))).collect::<Vec<_>>().join("; ")
}

/// The secret store handlers resolve `${…}` references with: the environment, and Vault too
/// when the runtime config enables the vault handler.
async fn secret_store(config: &RuntimeConfig, data_dir: &Path) -> Result<Arc<dyn SecretStore>, String> {
    let env: Arc<dyn SecretStore> = Arc::new(EnvSecretStore);
    let Some(vault) = config.handlers.get("vault").filter(|h| h.enabled) else { return Ok(env) };
    match VaultSecretStore::connect(&vault.config, data_dir, env).await {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => Err(format!("cannot start: the vault secret store: {e}")),
    }
}

/// Registers the host in Consul (an HTTP check on `/health/ready`) when the runtime config
/// enables the consul handler. A failure is logged, not fatal: the host serves without it.
async fn register_in_consul(
    config: serde_json::Value,
    name: &str,
    admin: SocketAddr,
    data_dir: &Path,
    secrets: Arc<dyn SecretStore>,
) -> Option<(ConsulHandler, String)> {
    let init = HandlerInit { config, secrets, data_dir: data_dir.to_path_buf() };
    let registered = match ConsulHandler::from_init(init) {
        Ok(consul) => register_host(&consul, name, admin).await.map(|id| (consul, id)),
        Err(e) => Err(e),
    };
    match registered {
        Ok((consul, id)) => {
            tracing::info!(service_id = %id, "registered in Consul with a check on /health/ready");
            Some((consul, id))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot register the host in Consul; serving without the registration");
            None
        }
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop the host with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The runtime config and contracts to serve, with every diagnostic printed, and the directory
/// they came from (`None` for the bundled contracts).
fn resolve(args: &RunArgs, registry: &Registry) -> Result<(RuntimeConfig, ContractSet, Option<PathBuf>), String> {
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("ONEX_")).collect();
    let env_value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let file_config = match &args.config {
        Some(path) => Some((path.clone(), read_config(path)?)),
        None => None,
    };
    let contracts_dir =
        args.contracts.clone().or_else(|| env_value("ONEX_CONTRACTS_DIR").map(PathBuf::from)).or_else(|| {
            file_config.as_ref().map(|(path, c)| path.parent().unwrap_or(Path::new(".")).join(&c.contracts_dir))
        });
    let contracts_dir = contracts_dir.or_else(|| Some(PathBuf::from("contracts")).filter(|p| p.is_dir()));
    let report = match &contracts_dir {
        Some(dir) => load_contracts(std::slice::from_ref(dir), registry),
        None => load_bundled_contracts(registry),
    };
    let source = contracts_dir.as_ref().map_or_else(|| "the bundled contracts".to_owned(), |d| d.display().to_string());
    let set = checked(report, &source)?;
    let mut config = match file_config {
        Some((_, config)) => config,
        None => match &set.runtime {
            Some((_, config)) => config.clone(),
            None => bundled_runtime_config()?,
        },
    };
    let problems = config.apply_overrides(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("bad ONEX_* environment:\n{}", list.join("\n")));
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.display().to_string();
    }
    if let Some(addr) = &args.admin_addr {
        config.admin_addr.clone_from(addr);
    }
    tracing::info!(contracts = %source, nodes = set.nodes.len(), "contracts loaded");
    Ok((config, set, contracts_dir))
}

/// Logs every diagnostic; the set, or an error naming how many errors there were.
fn checked(report: ContractReport, source: &str) -> Result<ContractSet, String> {
    for d in &report.diagnostics {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
        }
    }
    report.set.ok_or_else(|| {
        let errors: Vec<String> =
            report.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect();
        format!("refusing to start: {} contract error(s) in {source}:\n{}", errors.len(), errors.join("\n"))
    })
}

fn read_config(path: &Path) -> Result<RuntimeConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    load_runtime_config(&path.display().to_string(), &bytes).map(|loaded| loaded.value).map_err(|e| e.to_string())
}

fn bundled_runtime_config() -> Result<RuntimeConfig, String> {
    let (name, bytes) = crate::contracts::bundled::BUNDLED
        .iter()
        .find(|(name, _)| name.starts_with("runtime/"))
        .ok_or("this build has no bundled runtime config")?;
    load_runtime_config(&format!("<bundled>/{name}"), bytes).map(|loaded| loaded.value).map_err(|e| e.to_string())
}
