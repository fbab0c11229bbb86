//! Metadata stamping in infra: files (streamed, replaced atomically) and the `stamp` handler.
//! The engine itself (normalisation, stamp formats, validation) is in `onex_core::stamp`.

pub mod file;

pub use file::{FileDigest, FileError, FileStamp, Output, digest_file, stamp_file, verify_file};
