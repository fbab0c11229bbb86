//! Contracts: YAML models for nodes, FSMs, workflows and the runtime config, loaded from bytes
//! with every error located (source, line, column, field path) and validated semantically.

mod admin;
pub(crate) mod decode;
mod delivery;
mod diagnostic;
mod document;
mod fields;
mod fsm;
mod handler_contract;
mod include;
mod node;
mod overrides;
mod resilience;
mod routing;
mod rules;
mod runtime;
mod runtime_upstream;
mod set;
mod telemetry;
mod version;
mod workflow;
mod workflow_contract;

pub use admin::{AdminAuth, AdminConfig};
pub use decode::MAX_CONTRACT_BYTES;
pub use delivery::{DeliveryConfig, RetentionConfig};
pub use diagnostic::{ContractErrors, Diagnostic, Loaded, Severity};
pub use document::{
    ContractDocument, check_document, check_document_with, load_document, load_fsm, load_node_contract,
    load_runtime_config, load_workflow,
};
pub use fsm::{ActionDef, ConditionDef, FromState, FsmContract, StateDef, TransitionDef};
pub use handler_contract::HandlerContract;
pub use include::{IncludeSource, MAX_INCLUDE_DEPTH, NoIncludes};
pub use node::{EventSpec, IoOperation, NodeContract, NodeKind, OperationBinding};
pub use overrides::OVERRIDES;
pub use resilience::{BackoffStrategy, CircuitBreakerPolicy, RateLimitPolicy, Resilience, RetryPolicy};
pub use routing::{EventBusTopics, HandlerRoute, HandlerRouting, NamedRef};
pub use runtime::{BusConfig, BusKind, HandlerConfig, RuntimeConfig, SecretRef, StateStoreConfig, StoreKind};
pub use set::{ContractSet, HandlerCatalogue};
pub use telemetry::TelemetryConfig;
pub use version::VersionText;
pub use workflow::{
    ErrorAction, ExecutionMode, StepDef, StepType, WorkflowCoordination, WorkflowDefinition, WorkflowMetadata,
};
pub use workflow_contract::WorkflowContract;
