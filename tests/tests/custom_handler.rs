//! A custom handler written only against `onex-spi` (as an outside crate would) registers with
//! the host's registry through the same call as the built-ins, and its operations become
//! valid in contracts. The built-in factories are exercised the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use onex_core::envelope::Envelope;
use onex_infra::contracts::load_contracts;
use onex_infra::host::{HostSetup, start};
use onex_infra::ids::{new_uuid_v7, now_utc};
use onex_infra::registry::Registry;
use onex_infra::secrets::EnvSecretStore;
use onex_spi::{
    Handler, HandlerDescriptor, HandlerFactory, HandlerInit, HandlerRegistry, Health, OperationDescriptor, SpiResult,
    async_trait,
};
use serde_json::{Value, json};

/// Everything below this line uses onex-spi (and core's envelope) only.
struct Greeter {
    greeting: String,
}

#[async_trait]
impl Handler for Greeter {
    fn describe(&self) -> HandlerDescriptor {
        GreeterFactory.descriptor()
    }
    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }
    async fn execute(&self, request: &Envelope) -> SpiResult<Value> {
        let name = request.payload["name"].as_str().unwrap_or("world");
        Ok(json!({ "message": format!("{}, {name}!", self.greeting) }))
    }
    async fn health(&self) -> Health {
        Health::Healthy
    }
    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

struct GreeterFactory;

impl HandlerFactory for GreeterFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        HandlerDescriptor {
            handler_type: "greeter".into(),
            operations: vec![OperationDescriptor {
                operation: "greeter.greet".into(),
                description: "says hello".into(),
                idempotent: true,
            }],
        }
    }
    fn create(&self, init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        let greeting = init.config["greeting"].as_str().unwrap_or("Hello").to_owned();
        Ok(Arc::new(Greeter { greeting }))
    }
}

fn init(config: Value) -> HandlerInit {
    HandlerInit { config, secrets: Arc::new(EnvSecretStore), data_dir: std::env::temp_dir() }
}

fn envelope(op: &str, payload: Value) -> Envelope {
    Envelope::request(new_uuid_v7(), op, payload, now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_handler_registers_validates_and_serves() {
    let mut registry = Registry::with_builtin_handlers().unwrap();
    assert!(!registry.provides("greeter.greet"));
    registry.register(Arc::new(GreeterFactory)).unwrap();
    assert!(registry.provides("greeter.greet"));
    let again = registry.register(Arc::new(GreeterFactory)).unwrap_err();
    assert!(again.message().contains("`greeter` is already registered"), "{again}");

    let dir = onex_e2e::scratch_dir("custom-handler");
    let contract = "name: greeter_node\ncontract_version: '1.0.0'\nnode_version: '1.0.0'\nnode_type: EFFECT\nio_operations:\n  - operation: greeter.greet\n";
    std::fs::write(dir.join("greeter.yaml"), contract).unwrap();
    let report = load_contracts(std::slice::from_ref(&dir), &registry);
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    let without = load_contracts(std::slice::from_ref(&dir), &Registry::with_builtin_handlers().unwrap());
    // Without the handler the contract still loads; the host would answer OPERATION_NOT_FOUND.
    assert_eq!(without.diagnostics[0].code.as_str(), "ONEX_CORE_047_HANDLER_UNBOUND");
    assert_eq!(without.diagnostics[0].severity, onex_core::contract::Severity::Warning);

    let handler = registry.factory("greeter").unwrap().create(init(json!({"greeting": "Hej"}))).unwrap();
    handler.initialize().await.unwrap();
    let reply = handler.execute(&envelope("greeter.greet", json!({"name": "Ada"}))).await.unwrap();
    assert_eq!(reply, json!({"message": "Hej, Ada!"}));

    // The host loads it from the runtime config and serves it like a built-in.
    let runtime = "runtime_name: greeter-host\nhandlers:\n  local: {enabled: true}\n  greeter:\n    enabled: true\n    config: {greeting: Hej}\n";
    std::fs::write(dir.join("runtime.yaml"), runtime).unwrap();
    let set = load_contracts(std::slice::from_ref(&dir), &registry).set.expect("contracts load");
    let config = set.runtime.clone().unwrap().1;
    let setup = HostSetup {
        config,
        contracts: set,
        registry,
        data_dir: dir.join("data"),
        secrets: Arc::new(EnvSecretStore),
        contracts_dir: None,
    };
    let running = start(setup).await.unwrap();
    let reply = running.host().handle(envelope("greeter.greet", json!({"name": "Grace"}))).await;
    assert_eq!(reply.success, Some(true), "{:?}", reply.error);
    assert_eq!(reply.payload, json!({"message": "Hej, Grace!"}));
    let counted = r#"onex_envelopes_total{node="greeter_node",operation="greeter.greet",outcome="success"} 1"#;
    assert!(running.host().render_metrics().await.contains(counted));
    running.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn built_in_factories_build_working_handlers() {
    let registry = Registry::with_builtin_handlers().unwrap();
    let local = registry.factory("local").unwrap().create(init(Value::Null)).unwrap();
    assert_eq!(local.execute(&envelope("local.echo", json!([1, 2]))).await.unwrap(), json!([1, 2]));

    let dir = onex_e2e::scratch_dir("stamp-factory");
    let db = dir.join("stamps.db");
    let factory = registry.factory("stamp").unwrap();
    let stamp = factory.create(init(json!({"sqlite_path": db}))).unwrap();
    let before = stamp.execute(&envelope("stamp.hash", json!({"content": "x"}))).await.unwrap_err();
    assert!(before.message().contains("not initialised"), "{before}");
    assert!(matches!(stamp.health().await, Health::Unhealthy(_)));
    stamp.initialize().await.unwrap();
    let created = stamp.execute(&envelope("stamp.create", json!({"content": "x = 1\n"}))).await.unwrap();
    assert_eq!(created["stored"], "inserted");
    assert!(db.exists());
    assert_eq!(stamp.health().await, Health::Healthy);

    let both = factory.create(init(json!({"sqlite_path": "a.db", "postgres_url": "postgres://x"}))).err().unwrap();
    assert!(both.message().contains("not both"), "{both}");
    let typo = factory.create(init(json!({"sqlite_pth": "a.db"}))).err().unwrap();
    assert!(typo.message().contains("unknown field `sqlite_pth`"), "{typo}");
    let unset = factory.create(init(json!({"postgres_url": "${env:ONEX_SURELY_UNSET_DB_URL}"}))).unwrap();
    let err = unset.initialize().await.unwrap_err();
    assert!(err.message().contains("ONEX_SURELY_UNSET_DB_URL"), "{err}");
}
