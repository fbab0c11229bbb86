//! The error type of `onex-infra`, with stable codes.

use std::path::PathBuf;

use onex_core::error::{Classified, ErrorCategory, ErrorCode};

/// Stable codes of infra errors.
pub mod codes {
    onex_core::error_catalogue! {
        /// A file or directory could not be read.
        IO = ("ONEX_INFRA_001_IO", Unavailable);
        /// A handler type was registered twice.
        DUPLICATE_HANDLER = ("ONEX_INFRA_002_DUPLICATE_HANDLER", Conflict);
        /// A handler enabled in the runtime config failed to build or initialise.
        HANDLER_START = ("ONEX_INFRA_003_HANDLER_START", Unavailable);
        /// A store (SQLite, PostgreSQL) cannot be reached or opened.
        STORE_UNAVAILABLE = ("ONEX_INFRA_010_STORE_UNAVAILABLE", Unavailable);
        /// A store statement failed for a reason other than availability.
        STORE_FAILED = ("ONEX_INFRA_011_STORE_FAILED", Internal);
        /// A store's schema migration failed.
        STORE_MIGRATION = ("ONEX_INFRA_012_STORE_MIGRATION", Internal);
        /// A file changed while it was being stamped (it is left as it was).
        FILE_CHANGED = ("ONEX_INFRA_013_FILE_CHANGED", Conflict);
        /// The database aborted a transaction for contention (PostgreSQL deadlock 40P01,
        /// serialization failure 40001) and kept nothing of it: run it again.
        STORE_CONTENTION = ("ONEX_INFRA_016_STORE_CONTENTION", Unavailable);
        /// A workflow run is held by another host (its lease expired and was taken over) or has
        /// finished: the host that lost it stops driving it.
        RUN_LEASE_LOST = ("ONEX_INFRA_017_RUN_LEASE_LOST", Conflict);
        /// A state transition was committed against a version the entity no longer has.
        STATE_CONFLICT = ("ONEX_INFRA_014_STATE_CONFLICT", Conflict);
        /// A `${env:…}`/`${vault:…}` reference that cannot be resolved (the value is never shown).
        SECRET_UNRESOLVED = ("ONEX_INFRA_015_SECRET_UNRESOLVED", Auth);
        /// A request payload that does not fit the operation.
        BAD_PAYLOAD = ("ONEX_INFRA_020_BAD_PAYLOAD", Validation);
        /// Something asked for does not exist.
        NOT_FOUND = ("ONEX_INFRA_021_NOT_FOUND", NotFound);
        /// The event bus was closed; nothing more can be published or consumed.
        BUS_CLOSED = ("ONEX_INFRA_030_BUS_CLOSED", Unavailable);
        /// A bus kind this build cannot use.
        BUS_UNSUPPORTED = ("ONEX_INFRA_031_BUS_UNSUPPORTED", Validation);
        /// The Kafka brokers cannot be reached, or a publish or commit failed for a reason that
        /// may pass (broker down, leader moving, queue full past the timeout).
        KAFKA_UNAVAILABLE = ("ONEX_INFRA_032_KAFKA_UNAVAILABLE", Unavailable);
        /// The Kafka bus's settings are invalid (`bus.kafka` properties, topics, partitions).
        KAFKA_CONFIG = ("ONEX_INFRA_033_KAFKA_CONFIG", Validation);
        /// The broker refused a message or request for good (too large, unknown topic,
        /// authorization).
        KAFKA_REJECTED = ("ONEX_INFRA_034_KAFKA_REJECTED", Validation);
        /// The brokers refused the bus's credentials or its access to a topic or group.
        KAFKA_DENIED = ("ONEX_INFRA_035_KAFKA_DENIED", Auth);
        /// A workflow the host cannot plan.
        WORKFLOW_UNPLANNABLE = ("ONEX_INFRA_040_WORKFLOW_UNPLANNABLE", Validation);
        /// The host is shutting down and takes no new envelopes.
        DRAINING = ("ONEX_INFRA_041_DRAINING", Unavailable);
        /// A compute node's computation that panicked or was cancelled.
        COMPUTE_FAILED = ("ONEX_INFRA_043_COMPUTE_FAILED", Internal);
        /// A handler a contract binds by name that no registered handler answers to
        /// (`run --require-all-handlers` refuses to start).
        HANDLERS_UNBOUND = ("ONEX_INFRA_044_HANDLERS_UNBOUND", Validation);
        /// More envelopes are in flight than `max_in_flight` allows.
        OVERLOADED = ("ONEX_INFRA_042_OVERLOADED", Unavailable);
        /// Consul cannot be reached, or answered 5xx/429 (retryable).
        CONSUL_UNAVAILABLE = ("ONEX_INFRA_070_CONSUL_UNAVAILABLE", Unavailable);
        /// Consul did not answer within the handler's `timeout_ms`.
        CONSUL_TIMEOUT = ("ONEX_INFRA_071_CONSUL_TIMEOUT", Timeout);
        /// Consul refused the ACL token (401/403).
        CONSUL_DENIED = ("ONEX_INFRA_072_CONSUL_DENIED", Auth);
        /// The Consul key (or other resource) does not exist (404).
        CONSUL_NOT_FOUND = ("ONEX_INFRA_073_CONSUL_NOT_FOUND", NotFound);
        /// A Consul check-and-set did not match the key's `ModifyIndex`.
        CONSUL_CAS_CONFLICT = ("ONEX_INFRA_074_CONSUL_CAS_CONFLICT", Conflict);
        /// Consul refused the request as invalid (400 and other 4xx).
        CONSUL_REJECTED = ("ONEX_INFRA_075_CONSUL_REJECTED", Validation);
        /// The consul handler's configuration is invalid (address, token, TLS files).
        CONSUL_CONFIG = ("ONEX_INFRA_076_CONSUL_CONFIG", Validation);
        /// Consul answered something the handler cannot read.
        CONSUL_UNEXPECTED = ("ONEX_INFRA_077_CONSUL_UNEXPECTED", Internal);
        /// The db handler's configuration is invalid (URL, pool or TLS settings); never quotes the URL.
        DB_CONFIG = ("ONEX_INFRA_050_DB_CONFIG", Validation);
        /// A db request's SQL holds more than one statement (or none).
        DB_NOT_ONE_STATEMENT = ("ONEX_INFRA_051_DB_NOT_ONE_STATEMENT", Validation);
        /// The database refused a statement as invalid: syntax, undefined object, bad data, a
        /// constraint other than uniqueness.
        DB_REFUSED = ("ONEX_INFRA_052_DB_REFUSED", Validation);
        /// A unique or exclusion constraint refused the statement.
        DB_CONFLICT = ("ONEX_INFRA_053_DB_CONFLICT", Conflict);
        /// A serialization failure or deadlock: the transaction was rolled back and may be run again.
        DB_SERIALIZATION = ("ONEX_INFRA_054_DB_SERIALIZATION", Unavailable);
        /// The database cannot be reached: connection refused or lost, pool exhausted, server shutting down.
        DB_UNAVAILABLE = ("ONEX_INFRA_055_DB_UNAVAILABLE", Unavailable);
        /// A statement ran past the handler's statement timeout and was cancelled.
        DB_TIMEOUT = ("ONEX_INFRA_056_DB_TIMEOUT", Timeout);
        /// The database refused the credentials or the privilege.
        DB_AUTH = ("ONEX_INFRA_057_DB_AUTH", Auth);
        /// A parameter or column of a type the db handler cannot convert to or from JSON.
        DB_UNSUPPORTED_TYPE = ("ONEX_INFRA_058_DB_UNSUPPORTED_TYPE", Validation);
        /// Any other database failure.
        DB_FAILED = ("ONEX_INFRA_059_DB_FAILED", Internal);
        /// The vault handler's configuration is invalid (address, token reference, mounts, TLS files).
        VAULT_CONFIG = ("ONEX_INFRA_060_VAULT_CONFIG", Validation);
        /// Vault refused the token or its policy (401/403); never retried.
        VAULT_DENIED = ("ONEX_INFRA_061_VAULT_DENIED", Auth);
        /// No secret (or no key in it) at the path asked for (404).
        VAULT_NOT_FOUND = ("ONEX_INFRA_062_VAULT_NOT_FOUND", NotFound);
        /// Vault cannot be reached, is sealed, or answered 5xx/429 (retryable).
        VAULT_UNAVAILABLE = ("ONEX_INFRA_063_VAULT_UNAVAILABLE", Unavailable);
        /// Vault did not answer within the handler's `timeout_ms`.
        VAULT_TIMEOUT = ("ONEX_INFRA_064_VAULT_TIMEOUT", Timeout);
        /// Vault refused the request as invalid (400 and other 4xx).
        VAULT_REJECTED = ("ONEX_INFRA_065_VAULT_REJECTED", Validation);
        /// A KV v2 check-and-set did not match the secret's current version.
        VAULT_CAS_CONFLICT = ("ONEX_INFRA_066_VAULT_CAS_CONFLICT", Conflict);
        /// Vault answered something the handler cannot read.
        VAULT_UNEXPECTED = ("ONEX_INFRA_067_VAULT_UNEXPECTED", Internal);
        /// An http/webhook request refused before sending: URL, scheme, header, body over
        /// `max_request_bytes`.
        HTTP_REQUEST_INVALID = ("ONEX_INFRA_080_HTTP_REQUEST_INVALID", Validation);
        /// A response body over `max_response_bytes` (refused while streaming).
        HTTP_RESPONSE_TOO_LARGE = ("ONEX_INFRA_081_HTTP_RESPONSE_TOO_LARGE", Validation);
        /// More redirects than `max_redirects` (a redirect loop ends here).
        HTTP_TOO_MANY_REDIRECTS = ("ONEX_INFRA_082_HTTP_TOO_MANY_REDIRECTS", Validation);
        /// The connection was refused, reset or closed before a full response.
        HTTP_CONNECTION_FAILED = ("ONEX_INFRA_083_HTTP_CONNECTION_FAILED", Unavailable);
        /// No full response within the request's timeout.
        HTTP_TIMEOUT = ("ONEX_INFRA_084_HTTP_TIMEOUT", Timeout);
        /// The server answered 5xx or 429.
        HTTP_SERVER_UNAVAILABLE = ("ONEX_INFRA_085_HTTP_SERVER_UNAVAILABLE", Unavailable);
        /// The server answered another non-2xx status (4xx, an unfollowed 3xx).
        HTTP_CLIENT_ERROR = ("ONEX_INFRA_086_HTTP_CLIENT_ERROR", Validation);
        /// The server answered 404.
        HTTP_NOT_FOUND = ("ONEX_INFRA_087_HTTP_NOT_FOUND", NotFound);
        /// The server answered 401 or 403, or its TLS certificate is not trusted.
        HTTP_UNAUTHORIZED = ("ONEX_INFRA_088_HTTP_UNAUTHORIZED", Auth);
        /// The server answered 409.
        HTTP_CONFLICT = ("ONEX_INFRA_089_HTTP_CONFLICT", Conflict);
        /// The keycloak handler's configuration is invalid (issuer, client, algorithms, URLs).
        KEYCLOAK_CONFIG = ("ONEX_INFRA_090_KEYCLOAK_CONFIG", Validation);
        /// The identity provider cannot be reached, or answered 5xx/429, or its discovery
        /// document or key set cannot be had (retryable).
        KEYCLOAK_UNAVAILABLE = ("ONEX_INFRA_091_KEYCLOAK_UNAVAILABLE", Unavailable);
        /// The provider refused the client's credentials, or the Admin API refused its token (401/403).
        KEYCLOAK_DENIED = ("ONEX_INFRA_092_KEYCLOAK_DENIED", Auth);
        /// The user, role or other resource does not exist (404).
        KEYCLOAK_NOT_FOUND = ("ONEX_INFRA_093_KEYCLOAK_NOT_FOUND", NotFound);
        /// The resource exists already (409: same username, email or role name).
        KEYCLOAK_CONFLICT = ("ONEX_INFRA_094_KEYCLOAK_CONFLICT", Conflict);
        /// The provider refused the request as invalid (400 and other 4xx, `invalid_grant`),
        /// or the handler's configuration does not allow it (password grant, no admin URL).
        KEYCLOAK_REJECTED = ("ONEX_INFRA_095_KEYCLOAK_REJECTED", Validation);
        /// The provider answered something the handler cannot read.
        KEYCLOAK_UNEXPECTED = ("ONEX_INFRA_096_KEYCLOAK_UNEXPECTED", Internal);
        /// A token that is not a well-formed JWS compact JWT (three base64url parts, JSON
        /// header and claims).
        TOKEN_MALFORMED = ("ONEX_INFRA_100_TOKEN_MALFORMED", Auth);
        /// A token past its `exp` (beyond the leeway).
        TOKEN_EXPIRED = ("ONEX_INFRA_101_TOKEN_EXPIRED", Auth);
        /// A token before its `nbf` (beyond the leeway).
        TOKEN_NOT_YET_VALID = ("ONEX_INFRA_102_TOKEN_NOT_YET_VALID", Auth);
        /// A token whose `iss` is not the configured issuer.
        TOKEN_WRONG_ISSUER = ("ONEX_INFRA_103_TOKEN_WRONG_ISSUER", Auth);
        /// A token whose `aud` names none of the configured audiences.
        TOKEN_WRONG_AUDIENCE = ("ONEX_INFRA_104_TOKEN_WRONG_AUDIENCE", Auth);
        /// A token signed with an algorithm outside the allow-list (`none` and HMAC always are).
        TOKEN_ALGORITHM_REFUSED = ("ONEX_INFRA_105_TOKEN_ALGORITHM_REFUSED", Auth);
        /// A token whose `kid` is not in the realm's key set, even after one refresh.
        TOKEN_KEY_UNKNOWN = ("ONEX_INFRA_106_TOKEN_KEY_UNKNOWN", Auth);
        /// A token whose signature does not verify with the key its `kid` names.
        TOKEN_BAD_SIGNATURE = ("ONEX_INFRA_107_TOKEN_BAD_SIGNATURE", Auth);
        /// A token that lacks a claim the verifier requires (`exp`, `iss`).
        TOKEN_MISSING_CLAIM = ("ONEX_INFRA_108_TOKEN_MISSING_CLAIM", Auth);
        /// An admin API request without valid credentials (answered 401).
        ADMIN_UNAUTHENTICATED = ("ONEX_INFRA_110_ADMIN_UNAUTHENTICATED", Auth);
        /// An admin API request whose credentials lack the role the route needs (answered 403).
        ADMIN_FORBIDDEN = ("ONEX_INFRA_111_ADMIN_FORBIDDEN", Auth);
        /// `admin` in the runtime config is invalid, or unsafe (`auth: none` off loopback).
        ADMIN_CONFIG = ("ONEX_INFRA_112_ADMIN_CONFIG", Validation);
        /// A request whose headers or body did not arrive within the admin API's read timeouts.
        ADMIN_REQUEST_TIMEOUT = ("ONEX_INFRA_113_ADMIN_REQUEST_TIMEOUT", Timeout);
        /// The reloaded contracts have errors; the previous set keeps serving.
        RELOAD_INVALID = ("ONEX_INFRA_120_RELOAD_INVALID", Validation);
        /// Nothing to reload: the host serves the contracts built into the binary.
        RELOAD_UNAVAILABLE = ("ONEX_INFRA_121_RELOAD_UNAVAILABLE", Validation);
        /// `telemetry` in the runtime config cannot be used (the OTLP exporter refused it).
        TELEMETRY_CONFIG = ("ONEX_INFRA_122_TELEMETRY_CONFIG", Validation);
    }
}

/// Failures of the infra layer.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Reading a path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Contracts were refused (every diagnostic is listed).
    #[error(transparent)]
    Contracts(#[from] onex_core::contract::ContractErrors),
}

impl Classified for InfraError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } => codes::IO,
            Self::Contracts(e) => e.error_code(),
        }
    }

    fn category(&self) -> ErrorCategory {
        self.error_code().category()
    }
}

#[cfg(test)]
mod tests {
    use super::codes;

    #[test]
    fn infra_codes_are_unique_and_well_formed() {
        let mut numbers = std::collections::HashSet::new();
        for code in codes::ALL {
            let s = code.as_str();
            assert!(s.starts_with("ONEX_INFRA_") && s[11..14].chars().all(|c| c.is_ascii_digit()), "{s}");
            assert!(numbers.insert(&s[..14]), "code number reused: {s}");
        }
        assert!(
            codes::ALL.iter().all(|c| onex_core::error::ErrorCode::lookup(c.as_str()).is_none()),
            "clash with core"
        );
    }
}
