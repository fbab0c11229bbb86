//! Stamping and verifying files by streaming them in chunks: a multi-GB file is never held in
//! memory, and `stamp` replaces a file atomically (temporary file in the same directory, then
//! rename), so it can never leave a file half-written.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use onex_core::stamp::{
    BINARY, ContentType, NormalizedHash, Normalizer, SNIFF_LEN, StampError, StampFields, StampFilter, StampFormat,
    StampPlacement, StampRequest, Validation, check_request, detect, effective_format, judge, place_stamp,
    stamp_fields,
};

use super::parallel::ParallelSink;
use crate::error::codes;
use onex_core::error::{Classified, ErrorCode};

/// Bytes read per chunk.
pub const READ_CHUNK: usize = 1 << 20;

/// Why a file could not be stamped or verified.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading or writing failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file changed between hashing and writing.
    #[error("{}: changed while being stamped; left as it was", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The request cannot be written into a stamp.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: StampError,
    },
}

impl Classified for FileError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } => codes::IO,
            Self::Changed { .. } => codes::FILE_CHANGED,
            Self::Invalid { source, .. } => source.error_code(),
        }
    }
}

fn io<'p>(path: &'p Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FileError + 'p {
    move |source| FileError::Io { path: path.to_path_buf(), action, source }
}

/// A file hashed as the stamp protocol hashes it.
#[derive(Debug)]
pub struct FileDigest {
    /// Its type (binary content is hashed raw, text normalised).
    pub content_type: ContentType,
    /// Hash, stamps found and the stamp-free body.
    pub normalized: NormalizedHash,
    /// The file's first bytes (to check where a stamp sits).
    pub head: Vec<u8>,
}

/// Reads `path` chunk by chunk into `each`; returns the first chunk (at least the head).
fn read_chunks(path: &Path, mut each: impl FnMut(&[u8])) -> Result<(), FileError> {
    let mut file = File::open(path).map_err(io(path, "open"))?;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io(path, "read"))?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n]);
    }
}

/// Hashes a file: normalised for text, raw for binary.
pub fn digest_file(path: &Path) -> Result<FileDigest, FileError> {
    let mut head = Vec::new();
    let mut content_type = None;
    let mut text = Normalizer::new();
    let mut last_byte = None;
    let mut sink = ParallelSink::default();
    read_chunks(path, |chunk| {
        if head.len() < SNIFF_LEN {
            head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_LEN - head.len())]);
        }
        let ty = *content_type.get_or_insert_with(|| detect(path.to_str(), &head));
        if ty == BINARY {
            last_byte = chunk.last().copied().or(last_byte);
            sink.write(chunk);
        } else {
            text.push(chunk, &mut |b: &[u8]| sink.write(b));
        }
    })?;
    let content_type = content_type.unwrap_or_else(|| detect(path.to_str(), &head));
    let normalized = if content_type == BINARY {
        let (hash, len) = sink.finalize();
        NormalizedHash::raw(hash, len, last_byte)
    } else {
        let outcome = text.finish(&mut |b: &[u8]| sink.write(b));
        let (hash, len) = sink.finalize();
        NormalizedHash::from_parts(outcome, hash, len)
    };
    Ok(FileDigest { content_type, normalized, head })
}

/// Validates a file's stamp. Binary content carries no stamp: it is `missing` here (its
/// hash-only stamp lives in a stamp store).
pub fn verify_file(path: &Path) -> Result<(Validation, ContentType), FileError> {
    let digest = digest_file(path)?;
    let validation = match digest.content_type {
        BINARY => Validation::Missing { actual: digest.normalized.hash.to_hex().to_string() },
        _ => judge(&digest.normalized, &digest.head),
    };
    Ok((validation, digest.content_type))
}

/// Where stamped output goes.
pub enum Output<'w> {
    /// Replace the file atomically.
    InPlace,
    /// Write the stamped content here; the file is left alone.
    Writer(&'w mut dyn Write),
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InPlace => "InPlace",
            Self::Writer(_) => "Writer",
        })
    }
}

/// What stamping a file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// The stamp.
    pub fields: StampFields,
    /// The form used (hash-only for binary or comment-less files).
    pub format: StampFormat,
    /// The file's type.
    pub content_type: ContentType,
    /// Bytes hashed.
    pub hashed_len: u64,
}

/// Stamps a file. `req.content_type` is ignored: the type comes from the file.
pub fn stamp_file(path: &Path, req: &StampRequest<'_>, output: Output<'_>) -> Result<FileStamp, FileError> {
    check_request(req).map_err(|source| FileError::Invalid { path: path.to_path_buf(), source })?;
    let digest = digest_file(path)?;
    let req = StampRequest { content_type: digest.content_type, ..req.clone() };
    let fields = stamp_fields(&req, &digest.normalized.hash);
    let result = FileStamp {
        fields: fields.clone(),
        format: effective_format(&req),
        content_type: digest.content_type,
        hashed_len: digest.normalized.len,
    };
    // Binary and comment-less content get no placement: hash-only leaves the file alone.
    let placement = place_stamp(&fields, &req, digest.normalized.len, &digest.normalized.body);
    match (placement, output) {
        (None, Output::InPlace) => {}
        (None, Output::Writer(w)) => {
            let mut file = File::open(path).map_err(io(path, "open"))?;
            std::io::copy(&mut file, w).map_err(io(path, "copy"))?;
        }
        (Some(p), Output::Writer(w)) => write_stamped(path, &p, digest.normalized.body.len, w)?,
        (Some(p), Output::InPlace) => {
            replace_atomically(path, |w| write_stamped(path, &p, digest.normalized.body.len, w))?
        }
    }
    Ok(result)
}

/// Streams the file through the stamp filter into `out`, inserting the stamp at its offset.
fn write_stamped(path: &Path, placement: &StampPlacement, body_len: u64, out: &mut dyn Write) -> Result<(), FileError> {
    let mut filter = StampFilter::default();
    let mut inserter =
        Inserter { at: placement.at, text: placement.text.as_bytes(), pos: 0, inserted: false, out, error: None };
    read_chunks(path, |chunk| filter.push(chunk, &mut |b: &[u8]| inserter.write(b)))?;
    filter.finish(&mut |b: &[u8]| inserter.write(b));
    inserter.write(b"");
    if let Some(source) = inserter.error {
        return Err(FileError::Io { path: path.to_path_buf(), action: "write", source });
    }
    if inserter.pos != body_len || !inserter.inserted {
        return Err(FileError::Changed { path: path.to_path_buf() });
    }
    Ok(())
}

/// Passes bytes through, inserting `text` once `at` bytes have passed.
struct Inserter<'a> {
    at: u64,
    text: &'a [u8],
    pos: u64,
    inserted: bool,
    out: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl Inserter<'_> {
    fn write(&mut self, mut bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let result = (|| {
            if !self.inserted {
                let before = usize::try_from(self.at - self.pos.min(self.at)).unwrap_or(usize::MAX).min(bytes.len());
                self.out.write_all(&bytes[..before])?;
                self.pos += before as u64;
                bytes = &bytes[before..];
                if self.pos == self.at {
                    self.out.write_all(self.text)?;
                    self.inserted = true;
                }
            }
            self.pos += bytes.len() as u64;
            self.out.write_all(bytes)
        })();
        if let Err(e) = result {
            self.error = Some(e);
        }
    }
}

/// Writes a sibling temporary file with `fill`, then renames it over `path` (keeping the
/// file's permissions). On any failure the temporary file is removed and `path` is untouched.
fn replace_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.onex-{}.tmp", std::process::id()));
    let result = (|| {
        let permissions = std::fs::metadata(path).map_err(io(path, "read metadata of"))?.permissions();
        let file = File::create(&tmp).map_err(io(&tmp, "create"))?;
        let mut writer = BufWriter::with_capacity(READ_CHUNK, file);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| FileError::Io {
            path: tmp.clone(),
            action: "write",
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&tmp, "sync"))?;
        std::fs::set_permissions(&tmp, permissions).map_err(io(&tmp, "set permissions of"))?;
        std::fs::rename(&tmp, path).map_err(io(path, "replace"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
