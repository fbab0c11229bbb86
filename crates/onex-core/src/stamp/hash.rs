//! Hashing normalised output: BLAKE3 fed in chunk-aligned pieces, and the result of
//! normalising and hashing content.

use super::filter::FoundStamp;
use super::normalize::{BodyInfo, NormalizeOutcome};

/// BLAKE3 over a stream of spans. BLAKE3 runs fastest (wide SIMD) when fed large inputs whose
/// lengths are whole 1 KiB chunks; fed unaligned pieces it is about half as fast. So long spans
/// are hashed in place up to a chunk boundary, and the rest is gathered into a buffer that is
/// hashed only when full (a whole number of chunks).
#[derive(Debug)]
pub struct HashSink {
    hasher: blake3::Hasher,
    staging: Vec<u8>,
    len: u64,
}

const CHUNK: usize = 1024;
const STAGING: usize = 64 * CHUNK;

impl Default for HashSink {
    fn default() -> Self {
        Self { hasher: blake3::Hasher::new(), staging: Vec::new(), len: 0 }
    }
}

impl HashSink {
    /// A sink for about `len` bytes: its staging buffer is sized once instead of growing
    /// piece by piece (reallocation was a tenth of the cost of stamping 1 KiB).
    pub fn with_len_hint(len: usize) -> Self {
        Self { staging: Vec::with_capacity(len.min(STAGING)), ..Self::default() }
    }

    /// Adds bytes.
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.staging.is_empty() && bytes.len() >= STAGING {
                let whole = bytes.len() - bytes.len() % CHUNK;
                self.hasher.update(&bytes[..whole]);
                bytes = &bytes[whole..];
                continue;
            }
            let take = bytes.len().min(STAGING - self.staging.len());
            self.staging.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.staging.len() == STAGING {
                self.hasher.update(&self.staging);
                self.staging.clear();
            }
        }
    }

    /// The hash and the number of bytes hashed.
    pub fn finalize(mut self) -> (blake3::Hash, u64) {
        self.hasher.update(&self.staging);
        self.staging.clear();
        (self.hasher.finalize(), self.len)
    }
}

/// The result of normalising and hashing content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedHash {
    /// BLAKE3 of the normalised content.
    pub hash: blake3::Hash,
    /// Length of the normalised content.
    pub len: u64,
    /// Stamps removed (at most [`MAX_FOUND`](super::filter::MAX_FOUND)).
    pub stamps: Vec<FoundStamp>,
    /// All stamps removed, counted.
    pub stamp_count: usize,
    /// The stamp-free body.
    pub body: BodyInfo,
}

impl NormalizedHash {
    /// Assembles the result of a finished pipeline and its hash sink.
    pub fn new(outcome: NormalizeOutcome, sink: HashSink) -> Self {
        let (hash, len) = sink.finalize();
        Self::from_parts(outcome, hash, len)
    }

    /// The result for binary content: raw BLAKE3 over all `len` bytes, nothing removed, so the
    /// whole content is the body (`last` is its last byte).
    pub fn raw(hash: blake3::Hash, len: u64, last: Option<u8>) -> Self {
        let body = BodyInfo { len, head: Vec::new(), last };
        Self { hash, len, stamps: Vec::new(), stamp_count: 0, body }
    }

    /// Assembles the result of a finished pipeline and a hash computed elsewhere (for example
    /// on several cores) over its output.
    pub fn from_parts(outcome: NormalizeOutcome, hash: blake3::Hash, len: u64) -> Self {
        let NormalizeOutcome { filter, body } = outcome;
        let stamp_count = filter.found_total();
        Self { hash, len, stamp_count, stamps: filter.into_found(), body }
    }
}
