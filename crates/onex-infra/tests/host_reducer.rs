//! Reducers under concurrency, in process: many entities moved at once (their commits share
//! transactions) all land with the right versions, and one envelope delivered many times at
//! once is applied exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_infra::contracts::load_bundled_contracts;
use onex_infra::host::{HostSetup, RunningHost, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use serde_json::json;

async fn start_host() -> RunningHost {
    let dir = std::env::temp_dir().join(format!("onex-host-reducer-{}", new_uuid_v7()));
    let registry = Registry::with_builtin_handlers().unwrap();
    let set = load_bundled_contracts(&registry).set.expect("bundled contracts load");
    let config = set.runtime.clone().unwrap().1;
    start(HostSetup {
        config,
        contracts: set,
        registry,
        data_dir: dir,
        secrets: Arc::new(EnvSecretStore),
        contracts_dir: None,
    })
    .await
    .unwrap()
}

fn event(name: &str, entity: &str) -> Envelope {
    Envelope::request(new_uuid_v7(), format!("infrastructure_state.{name}"), json!({"entity_key": entity}), now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_entities_moved_concurrently_all_land() {
    let running = start_host().await;
    let host = Arc::clone(running.host());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let host = Arc::clone(&host);
        tasks.spawn(async move {
            let entity = format!("e-{i}");
            for name in ["initialization_complete", "service_degraded", "service_failed"] {
                let reply = host.handle(event(name, &entity)).await;
                assert_eq!(reply.success, Some(true), "{entity} {name}: {:?}", reply.error);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for i in 0..64 {
        let (state, version) = host.entity_state("infrastructure_state", &format!("e-{i}")).await.unwrap().unwrap();
        assert_eq!((state.as_str(), version), ("unhealthy", 3), "e-{i}");
    }
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_envelope_delivered_many_times_at_once_is_applied_once() {
    let running = start_host().await;
    let host = Arc::clone(running.host());
    let request = event("initialization_complete", "dup");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (host, request) = (Arc::clone(&host), request.clone());
        tasks.spawn(async move { host.handle(request).await });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.unwrap());
    }
    assert!(replies.iter().all(|r| r.success == Some(true)), "{replies:?}");
    assert!(replies.iter().all(|r| r.envelope_id == replies[0].envelope_id), "every delivery gets the one reply");
    assert_eq!(host.entity_state("infrastructure_state", "dup").await.unwrap().unwrap(), ("healthy".to_owned(), 1));
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_delivered_again_after_the_state_moved_gets_its_refusal() {
    let running = start_host().await;
    let host = Arc::clone(running.host());
    // `service_degraded` is refused while the entity is still initialising...
    let early = event("service_degraded", "late");
    let refused = host.handle(early.clone()).await;
    assert_eq!(refused.success, Some(false));
    let refusal = refused.error.clone().unwrap();
    // ...then the entity moves to where the same event would be accepted...
    let moved = host.handle(event("initialization_complete", "late")).await;
    assert_eq!(moved.success, Some(true), "{:?}", moved.error);
    // ...and the first envelope, delivered again, is answered as it was the first time.
    let again = host.handle(early).await;
    assert_eq!(again.error, Some(refusal), "the recorded refusal is final");
    assert_eq!(again.envelope_id, refused.envelope_id, "the very reply recorded, not a new one");
    let (state, version) = host.entity_state("infrastructure_state", "late").await.unwrap().unwrap();
    assert_eq!((state.as_str(), version), ("healthy", 1), "the redelivery changed nothing");
    running.shutdown(Duration::from_secs(5)).await;
}
