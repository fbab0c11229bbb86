//! [`ComputeHandler`]: a compute node's logic as a [`Handler`], so the node's resilience stack
//! (timeout, breaker, limits) wraps it like any handler call. The computation runs on tokio's
//! blocking pool: a heavy one never stalls the threads that serve the bus and HTTP.

use std::sync::Arc;

use onex_core::contract::NodeContract;
use onex_core::envelope::Envelope;
use onex_spi::{
    Compute, ComputeInput, ComputeOutput, EmittedEvent, Handler, HandlerDescriptor, Health, SpiError, SpiResult,
    async_trait,
};
use serde_json::{Value as Json, json};

use crate::error::codes;

/// A compute node served through the handler path.
pub struct ComputeHandler {
    compute: Arc<dyn Compute>,
    contract: Arc<NodeContract>,
}

impl std::fmt::Debug for ComputeHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeHandler").field("node", &self.contract.name).finish_non_exhaustive()
    }
}

impl ComputeHandler {
    /// `compute` serving the node `contract`.
    pub fn new(compute: Arc<dyn Compute>, contract: Arc<NodeContract>) -> Self {
        Self { compute, contract }
    }
}

/// The reply payload and the emitted events of a [`ComputeHandler`]'s result.
pub fn split_output(value: Json) -> (Json, Vec<EmittedEvent>) {
    let mut value = value;
    let result = value.get_mut("result").map(Json::take).unwrap_or(Json::Null);
    let events = value
        .get_mut("events")
        .and_then(Json::as_array_mut)
        .map(|events| {
            events
                .iter_mut()
                .map(|e| EmittedEvent {
                    event_type: e["event_type"].as_str().unwrap_or_default().to_owned(),
                    payload: e.get_mut("payload").map(Json::take).unwrap_or(Json::Null),
                })
                .collect()
        })
        .unwrap_or_default();
    (result, events)
}

fn join(output: ComputeOutput) -> Json {
    let events: Vec<Json> =
        output.events.into_iter().map(|e| json!({"event_type": e.event_type, "payload": e.payload})).collect();
    json!({"result": output.result, "events": events})
}

#[async_trait]
impl Handler for ComputeHandler {
    fn describe(&self) -> HandlerDescriptor {
        self.compute.describe()
    }

    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        let (compute, contract) = (Arc::clone(&self.compute), Arc::clone(&self.contract));
        let (operation, payload) = (request.operation.clone(), request.payload.clone());
        let id = request.envelope_id;
        let run = move || {
            let input = ComputeInput { operation: &operation, payload: &payload, contract: &contract };
            compute.compute(input).map(join)
        };
        tokio::task::spawn_blocking(run).await.map_err(|e| {
            SpiError::new(codes::COMPUTE_FAILED, format!("envelope {id}: the computation did not finish: {e}"))
        })?
    }

    async fn health(&self) -> Health {
        Health::Healthy
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}
