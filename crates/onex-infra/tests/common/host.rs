//! Helpers of the in-process host tests: a host set up from contract texts written to a fresh
//! directory, reading a topic of the in-memory bus as an outside consumer would, and waiting for
//! a condition with a deadline.
#![allow(dead_code, reason = "each test binary uses some of these helpers")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use onex_infra::bus::InMemoryEventBus;
use onex_infra::contracts::load_contracts;
use onex_infra::host::HostSetup;
use onex_infra::ids::new_uuid_v7;
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{EventBus, InboundMessage};
use tokio::time::Instant;

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// A host setup from `files` (name, YAML text; one of them the runtime config) written to a
/// fresh directory named after `label`, with `registry`'s handlers; panics naming the
/// diagnostics when the contracts do not load.
pub fn setup(label: &str, files: &[(&str, &str)], registry: Registry) -> HostSetup {
    let dir = std::env::temp_dir().join(format!("onex-{label}-{}", new_uuid_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let report = load_contracts(std::slice::from_ref(&dir), &registry);
    let contracts = report.set.unwrap_or_else(|| panic!("contracts of {label}: {:?}", report.diagnostics));
    let config = contracts.runtime.clone().unwrap().1;
    let data_dir: PathBuf = dir.join("data");
    HostSetup { config, contracts, registry, data_dir, secrets: Arc::new(EnvSecretStore), contracts_dir: Some(dir) }
}

/// The next `n` messages on `topic`, read (and acknowledged) by a group of the test's own,
/// `reader-<topic>`; panics when they do not come within `within`.
pub async fn read_topic(memory: &InMemoryEventBus, topic: &str, n: usize, within: Duration) -> Vec<InboundMessage> {
    let group = format!("reader-{topic}");
    let mut stream = memory.subscribe(&group, &[topic.to_owned()]).await.unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let poll = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
        let message = tokio::time::timeout_at(deadline, poll)
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages on {topic} within {within:?}", out.len()))
            .unwrap()
            .unwrap();
        memory.acknowledge(&group, &message).await.unwrap();
        out.push(message);
    }
    out
}

/// Awaits `probe` until it gives a value; panics naming `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(POLL).await;
    }
}
