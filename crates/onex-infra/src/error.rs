//! The error type of `onex-infra`, with stable codes.

use std::path::PathBuf;

use onex_core::error::{Classified, ErrorCategory, ErrorCode};

/// Stable codes of infra errors.
pub mod codes {
    use onex_core::error::{ErrorCategory as C, ErrorCode};

    /// A file or directory could not be read.
    pub const IO: ErrorCode = ErrorCode::new("ONEX_INFRA_001_IO", C::Unavailable);
    /// A handler type was registered twice.
    pub const DUPLICATE_HANDLER: ErrorCode = ErrorCode::new("ONEX_INFRA_002_DUPLICATE_HANDLER", C::Conflict);
    /// A store (SQLite, PostgreSQL) cannot be reached or opened.
    pub const STORE_UNAVAILABLE: ErrorCode = ErrorCode::new("ONEX_INFRA_010_STORE_UNAVAILABLE", C::Unavailable);
    /// A store statement failed for a reason other than availability.
    pub const STORE_FAILED: ErrorCode = ErrorCode::new("ONEX_INFRA_011_STORE_FAILED", C::Internal);
    /// A store's schema migration failed.
    pub const STORE_MIGRATION: ErrorCode = ErrorCode::new("ONEX_INFRA_012_STORE_MIGRATION", C::Internal);
    /// A file changed while it was being stamped (it is left as it was).
    pub const FILE_CHANGED: ErrorCode = ErrorCode::new("ONEX_INFRA_013_FILE_CHANGED", C::Conflict);
    /// A `${env:…}`/`${vault:…}` reference that cannot be resolved (the value is never shown).
    pub const SECRET_UNRESOLVED: ErrorCode = ErrorCode::new("ONEX_INFRA_015_SECRET_UNRESOLVED", C::Auth);
    /// A request payload that does not fit the operation.
    pub const BAD_PAYLOAD: ErrorCode = ErrorCode::new("ONEX_INFRA_020_BAD_PAYLOAD", C::Validation);
    /// Something asked for does not exist.
    pub const NOT_FOUND: ErrorCode = ErrorCode::new("ONEX_INFRA_021_NOT_FOUND", C::NotFound);
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
