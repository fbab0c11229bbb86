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
        /// A workflow the host cannot plan.
        WORKFLOW_UNPLANNABLE = ("ONEX_INFRA_040_WORKFLOW_UNPLANNABLE", Validation);
        /// The host is shutting down and takes no new envelopes.
        DRAINING = ("ONEX_INFRA_041_DRAINING", Unavailable);
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
