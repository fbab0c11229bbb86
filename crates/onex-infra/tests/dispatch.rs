//! The dispatcher built from a runtime config and contracts: replies keep the correlation id,
//! failures come back as coded error replies, and unroutable operations say why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use onex_core::contract::{ContractSet, load_document, load_runtime_config};
use onex_core::envelope::Envelope;
use onex_core::error::ErrorCategory;
use onex_infra::host::Dispatcher;
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::Health;
use serde_json::json;

const NODES: &[(&str, &str)] = &[
    (
        "local.yaml",
        "name: local_node\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: local.echo\n  - operation: local.fail\nresilience:\n  timeout_ms: 1000\n",
    ),
    (
        "stamp.yaml",
        "name: stamp_node\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: stamp.hash\n",
    ),
    (
        "vault.yaml",
        "name: vault_node\ncontract_version: '1'\nnode_version: '1'\nnode_type: EFFECT\nio_operations:\n  - operation: vault.read_secret\n",
    ),
];

async fn dispatcher(stamp_enabled: bool, data_dir: &std::path::Path) -> Dispatcher {
    let docs =
        NODES.iter().map(|(src, y)| ((*src).to_owned(), load_document(src, y.as_bytes()).unwrap().value)).collect();
    let registry = Registry::with_builtin_handlers().unwrap();
    let set = ContractSet::build(docs, &onex_infra::registry::Catalogue::new(&registry)).unwrap().value;
    let config = format!(
        "bus: {{kind: inmemory}}\nhandlers:\n  local: {{enabled: true}}\n  stamp: {{enabled: {stamp_enabled}, config: {{sqlite_path: stamps.db}}}}\n  vault: {{enabled: false}}\n"
    );
    let config = load_runtime_config("rt.yaml", config.as_bytes()).unwrap().value;
    Dispatcher::start(&set, &config, &registry, Arc::new(EnvSecretStore), data_dir).await.unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("onex-dispatch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A request as the host hands it to the dispatcher: shared with the node's stack.
fn request(op: &str, payload: serde_json::Value) -> std::sync::Arc<Envelope> {
    std::sync::Arc::new(Envelope::request(new_uuid_v7(), op, payload, now_utc()))
}

#[tokio::test]
async fn replies_keep_the_correlation_and_carry_errors() {
    let dir = scratch("replies");
    let d = dispatcher(true, &dir).await;
    let req = request("local.echo", json!({"x": 1}));
    let reply = d.dispatch(&req).await;
    assert_eq!((reply.success, reply.is_response), (Some(true), true));
    assert_eq!((reply.correlation_id, reply.causation_id), (req.correlation_id, Some(req.envelope_id)));
    assert_eq!(reply.payload, json!({"x": 1}));

    let failed = d.dispatch(&request("local.fail", json!({"code": "ONEX_CORE_082_OPERATION_TIMEOUT"}))).await;
    let error = failed.error.unwrap();
    assert_eq!(
        (failed.success, error.code.as_str(), error.category),
        (Some(false), "ONEX_CORE_082_OPERATION_TIMEOUT", ErrorCategory::Timeout)
    );

    let hashed = d.dispatch(&request("stamp.hash", json!({"content": "a"}))).await;
    assert_eq!(hashed.payload["hash"], blake3::hash(b"a").to_hex().to_string());
    assert!(dir.join("stamps.db").exists(), "relative store paths live in the data dir");
    let health = d.health_within(std::time::Duration::from_secs(5)).await;
    assert_eq!(health, vec![("local".to_owned(), Health::Healthy), ("stamp".to_owned(), Health::Healthy)]);
    assert!(d.shutdown().await.is_empty());
}

#[tokio::test]
async fn unroutable_operations_say_why() {
    let d = dispatcher(false, &scratch("unroutable")).await;
    let req = request("nothing.here", json!(null));
    let reply = d.dispatch(&req).await;
    let error = reply.error.unwrap();
    assert_eq!(error.code, "ONEX_CORE_052_OPERATION_NOT_FOUND");
    assert!(
        error.message.contains(&req.envelope_id.to_string()) && error.message.contains("no node declares"),
        "{}",
        error.message
    );
    let stamp = d.dispatch(&request("stamp.hash", json!({"content": "a"}))).await.error.unwrap();
    assert!(stamp.message.contains("handler `stamp` is disabled in the runtime config"), "{}", stamp.message);
    let vault = d.dispatch(&request("vault.read_secret", json!({}))).await.error.unwrap();
    assert!(vault.message.contains("`vault`"), "{}", vault.message);
    assert_eq!(d.operations().collect::<Vec<_>>(), ["local.echo", "local.fail"]);
}
