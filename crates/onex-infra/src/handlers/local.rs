//! The `local` handler, for tests and demos: `local.echo` replies with the payload,
//! `local.fail` fails with the error code the payload names, `local.sleep` waits `ms`.

use std::sync::Arc;
use std::time::Duration;

use onex_core::envelope::Envelope;
use onex_core::error::{ErrorCategory, ErrorCode, codes as core_codes};
use onex_spi::{Handler, HandlerDescriptor, HandlerFactory, HandlerInit, Health, SpiError, SpiResult, async_trait};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::payload::decode;

/// Longest `local.sleep` accepted (a typo must not park a worker for hours).
pub const MAX_SLEEP_MS: u64 = 60_000;

/// Replies without touching anything outside the process.
#[derive(Debug, Default)]
pub struct LocalHandler;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailRequest {
    code: String,
    category: Option<ErrorCategory>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepRequest {
    ms: u64,
}

fn descriptor() -> HandlerDescriptor {
    crate::builtin::descriptor("local")
        .unwrap_or_else(|| HandlerDescriptor { handler_type: "local".into(), operations: Vec::new() })
}

/// The failure `local.fail` returns: a catalogued code keeps its category; another code takes
/// the payload's category (default internal).
fn failure(req: FailRequest) -> SpiError {
    let message = req.message.unwrap_or_else(|| format!("local.fail asked to fail with {}", req.code));
    match ErrorCode::lookup(&req.code) {
        Some(code) => SpiError::new(code, message),
        None => SpiError::custom(req.code, req.category.unwrap_or(ErrorCategory::Internal), message),
    }
}

#[async_trait]
impl Handler for LocalHandler {
    fn describe(&self) -> HandlerDescriptor {
        descriptor()
    }

    async fn initialize(&self) -> SpiResult<()> {
        Ok(())
    }

    async fn execute(&self, request: &Envelope) -> SpiResult<Json> {
        match request.operation.as_str() {
            "local.echo" => Ok(request.payload.clone()),
            "local.fail" => Err(failure(decode("local.fail", &request.payload)?)),
            "local.sleep" => {
                let req: SleepRequest = decode("local.sleep", &request.payload)?;
                if req.ms > MAX_SLEEP_MS {
                    return Err(SpiError::new(
                        crate::error::codes::BAD_PAYLOAD,
                        format!("local.sleep: ms {} is over the {MAX_SLEEP_MS} ms limit", req.ms),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(req.ms)).await;
                Ok(json!({"slept_ms": req.ms}))
            }
            other => Err(SpiError::new(
                core_codes::OPERATION_NOT_FOUND,
                format!("envelope {}: the local handler has no operation `{other}`", request.envelope_id),
            )),
        }
    }

    async fn health(&self) -> Health {
        Health::Healthy
    }

    async fn shutdown(&self) -> SpiResult<()> {
        Ok(())
    }
}

/// Builds [`LocalHandler`]s; it takes no configuration.
#[derive(Debug, Default)]
pub struct LocalHandlerFactory;

impl HandlerFactory for LocalHandlerFactory {
    fn descriptor(&self) -> HandlerDescriptor {
        descriptor()
    }

    fn create(&self, _init: HandlerInit) -> SpiResult<Arc<dyn Handler>> {
        Ok(Arc::new(LocalHandler))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{new_uuid_v7, now_utc};

    fn envelope(op: &str, payload: Json) -> Envelope {
        Envelope::request(new_uuid_v7(), op, payload, now_utc())
    }

    #[tokio::test]
    async fn echo_fail_and_sleep() {
        let h = LocalHandler;
        assert_eq!(h.execute(&envelope("local.echo", json!({"a": 1}))).await.unwrap(), json!({"a": 1}));
        let e =
            h.execute(&envelope("local.fail", json!({"code": "ONEX_CORE_082_OPERATION_TIMEOUT"}))).await.unwrap_err();
        assert_eq!((e.code(), e.category()), ("ONEX_CORE_082_OPERATION_TIMEOUT", ErrorCategory::Timeout));
        let e = h
            .execute(&envelope(
                "local.fail",
                json!({"code": "MY_APP_001_NOPE", "category": "conflict", "message": "taken"}),
            ))
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.category(), e.message()), ("MY_APP_001_NOPE", ErrorCategory::Conflict, "taken"));
        let started = std::time::Instant::now();
        h.execute(&envelope("local.sleep", json!({"ms": 20}))).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        let e = h.execute(&envelope("local.sleep", json!({"ms": MAX_SLEEP_MS + 1}))).await.unwrap_err();
        assert!(e.message().contains("limit"), "{e}");
        let e = h.execute(&envelope("local.sleep", json!({"seconds": 1}))).await.unwrap_err();
        assert!(e.message().contains("unknown field `seconds`"), "{e}");
    }
}
