//! The admin API's settings in the runtime config, `admin:`: who may call it (`auth`) and how
//! long a client may take to send a request's headers and body, and how long `/health/ready`
//! may take before it answers with what it has.
//!
//! ```yaml
//! admin:
//!   auth: none                 # only on a loopback admin_addr; the host refuses to start otherwise
//!   # auth: { static_token: "${env:ONEX_ADMIN_TOKEN}" }
//!   # auth:
//!   #   bearer:
//!   #     issuer: https://kc.example/realms/onex
//!   #     audience: [onex-admin]
//!   #     routes: { ingress: [onex:ingress], state_read: [onex:read], workflow_read: [onex:read], metrics: [onex:metrics] }
//!   header_timeout_ms: 10000
//!   body_timeout_ms: 30000
//!   ready_timeout_ms: 2000
//! ```

use serde_json::Value as Json;

use super::decode::{Cx, Decode, join, to_json};
use super::fields::{Fields, key_text};
use super::runtime::{SecretRef, check_secrets};
use crate::error::codes;
use crate::yaml::{Node, Value};

/// Who may call the admin API (`/health/*` is always open).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AdminAuth {
    /// Anyone who can reach it: allowed only on a loopback address.
    #[default]
    None,
    /// `Authorization: Bearer <JWT>` checked against an issuer's keys; the section as written
    /// (issuer, audience, algorithms, leeway, `routes`), validated by the host.
    Bearer(Json),
    /// `Authorization: Bearer <token>` equal to this secret; full access.
    StaticToken(SecretRef),
}

/// `admin:` of the runtime config.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Who may call it.
    pub auth: AdminAuth,
    /// Most time a client may take to send a request's headers; the connection is closed after.
    pub header_timeout_ms: u64,
    /// Most time a client may take to send a request's body (answered 408 after).
    pub body_timeout_ms: u64,
    /// Most time `/health/ready` waits for the handlers' checks; one that has not answered by
    /// then is reported as timed out and the host as not ready.
    pub ready_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { auth: AdminAuth::None, header_timeout_ms: 10_000, body_timeout_ms: 30_000, ready_timeout_ms: 2_000 }
    }
}

impl Decode for AdminConfig {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        let d = Self::default();
        let mut f = Fields::new(cx, node, path)?;
        let auth = match f.node("auth") {
            Some(n) => AdminAuth::decode(cx, n, &join(path, "auth"))?,
            None => AdminAuth::None,
        };
        let config = Self {
            auth,
            header_timeout_ms: f.or(cx, "header_timeout_ms", d.header_timeout_ms),
            body_timeout_ms: f.or(cx, "body_timeout_ms", d.body_timeout_ms),
            ready_timeout_ms: f.or(cx, "ready_timeout_ms", d.ready_timeout_ms),
        };
        let keys = ["header_timeout_ms", "body_timeout_ms", "ready_timeout_ms"];
        let positions = keys.map(|k| f.pos_of(k));
        f.finish(cx);
        let values = [config.header_timeout_ms, config.body_timeout_ms, config.ready_timeout_ms];
        for ((key, value), pos) in keys.into_iter().zip(values).zip(positions) {
            if value == 0 {
                cx.error(codes::CONTRACT_INVALID_VALUE, pos, &join(path, key), "must be at least 1 ms");
            }
        }
        Some(config)
    }
}

impl Decode for AdminAuth {
    fn decode(cx: &mut Cx, node: &Node, path: &str) -> Option<Self> {
        const EXPECTED: &str = "expected `none`, `{ bearer: {…} }` or `{ static_token: \"${env:NAME}\" }`";
        match &node.value {
            Value::Scalar { text, .. } if text == "none" => Some(Self::None),
            Value::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                let field = join(path, &key_text(key));
                match key_text(key).as_str() {
                    "bearer" => {
                        if !matches!(value.value, Value::Map(_)) {
                            cx.error(codes::CONTRACT_INVALID_VALUE, value.pos, &field, "must be a mapping");
                            return None;
                        }
                        check_secrets(cx, value, &field);
                        Some(Self::Bearer(to_json(value)))
                    }
                    "static_token" => {
                        let reference = match &value.value {
                            Value::Scalar { text, .. } => SecretRef::parse(text),
                            _ => None,
                        };
                        if reference.is_none() {
                            cx.error(
                                codes::LITERAL_SECRET,
                                value.pos,
                                &field,
                                "must be a `${env:NAME}` or `${vault:mount/path#key}` reference; tokens are never written in the config",
                            );
                        }
                        reference.map(Self::StaticToken)
                    }
                    other => {
                        cx.error(
                            codes::CONTRACT_INVALID_VALUE,
                            key.pos,
                            &field,
                            format!("unknown mode `{other}`; {EXPECTED}"),
                        );
                        None
                    }
                }
            }
            _ => {
                cx.error(codes::CONTRACT_INVALID_VALUE, node.pos, path, EXPECTED);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::contract::load_runtime_config;

    use super::*;

    fn admin(yaml: &str) -> Result<AdminConfig, String> {
        load_runtime_config("rt.yaml", yaml.as_bytes()).map(|c| c.value.admin).map_err(|e| e.to_string())
    }

    #[test]
    fn every_mode_decodes_and_defaults_hold() {
        assert_eq!(admin("runtime_name: x\n").unwrap(), AdminConfig::default());
        assert_eq!(admin("admin: {auth: none}\n").unwrap().auth, AdminAuth::None);
        let token = admin("admin:\n  auth: {static_token: \"${env:T}\"}\n").unwrap();
        assert_eq!(token.auth, AdminAuth::StaticToken(SecretRef::Env("T".into())));
        let bearer = admin(
            "admin:\n  auth:\n    bearer: {issuer: \"http://op\", routes: {metrics: [m]}}\n  body_timeout_ms: 5\n",
        )
        .unwrap();
        assert_eq!(bearer.body_timeout_ms, 5);
        let AdminAuth::Bearer(section) = bearer.auth else { panic!("not bearer") };
        assert_eq!(section["routes"]["metrics"][0], "m");
    }

    #[test]
    fn literal_tokens_unknown_modes_and_zero_timeouts_are_refused_with_their_line() {
        let e = admin("admin:\n  auth: {static_token: hunter2}\n").unwrap_err();
        assert!(e.contains("rt.yaml:2") && e.contains("admin.auth.static_token"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = admin("admin:\n  auth: {oauth: {}}\n").unwrap_err();
        assert!(e.contains("unknown mode `oauth`"), "{e}");
        let e = admin("admin:\n  auth: everyone\n").unwrap_err();
        assert!(e.contains("admin.auth") && e.contains("expected `none`"), "{e}");
        let e = admin("admin:\n  ready_timeout_ms: 0\n").unwrap_err();
        assert!(e.contains("admin.ready_timeout_ms"), "{e}");
    }
}
