//! Metadata stamping (pure): BLAKE3 over normalised content, lightweight and rich stamps,
//! hash-only stamps for binary content, and validation. uid and time are parameters.

mod filter;
mod format;
mod hash;
mod normalize;
mod stamper;
mod syntax;
mod validate;

pub use filter::{
    COMMENT_PREFIXES, FoundStamp, LIGHTWEIGHT_MARKER, LineKind, MAX_FOUND, RICH_END, RICH_START, STAMP_WINDOW,
    StampFilter, StampKind, classify_line,
};
pub use format::{
    ALGORITHM, PROTOCOL_VERSION, RichDetails, RichStamp, StampFields, parse_lightweight, parse_rich,
    render_lightweight, render_rich,
};
pub use hash::{HashSink, NormalizedHash};
pub use normalize::{BODY_HEAD, BodyInfo, NormalizeOutcome, Normalizer, normalized_hash, strip_stamps};
pub use stamper::{
    StampFormat, StampPlacement, StampRequest, Stamped, check_request, effective_format, lightweight_slot, place_stamp,
    raw_hash, stamp, stamp_fields, stamp_with,
};
pub use syntax::{BINARY, CommentStyle, ContentType, SNIFF_LEN, UNKNOWN_TEXT, detect, from_mime, looks_like_text};
pub use validate::{Validation, judge, validate};

use crate::error::{Classified, ErrorCode, codes};

/// Why content could not be stamped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// A request value that cannot go into a stamp.
    #[error("invalid stamp request: {0}")]
    InvalidInput(String),
}

impl Classified for StampError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidInput(_) => codes::STAMP_INVALID_INPUT,
        }
    }
}
