//! Metadata stamping in infra: files (streamed, replaced atomically) and the `stamp` handler.
//! The engine itself (normalisation, stamp formats, validation) is in `onex_core::stamp`.

pub mod file;
pub mod parallel;
pub mod split;
mod worker;

pub use file::{FileDigest, FileError, FileStamp, Output, digest_file, stamp_file, verify_file};
pub use parallel::ParallelSink;
pub use split::{normalized_hash_parallel, raw_hash_parallel};
