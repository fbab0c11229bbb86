//! Stamping: hash the normalised content and place a stamp, without copying content that
//! needs no change.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StampError;
use super::format::{RichDetails, StampFields, check_value, render_lightweight, render_rich};
use super::hash::NormalizedHash;
use super::normalize::{BodyInfo, normalized_hash, strip_stamps};
use super::syntax::{BINARY, ContentType};

/// The stamp forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StampFormat {
    /// One line at the top.
    Lightweight,
    /// A metadata block at the end.
    Rich,
    /// Content untouched; the stamp is kept outside it (in a stamp store).
    HashOnly,
}

impl StampFormat {
    /// The name used on the wire and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lightweight => "lightweight",
            Self::Rich => "rich",
            Self::HashOnly => "hash_only",
        }
    }

    /// Parses `lightweight`, `rich`, `hash_only` (or `hash-only`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lightweight" => Some(Self::Lightweight),
            "rich" => Some(Self::Rich),
            "hash_only" | "hash-only" => Some(Self::HashOnly),
            _ => None,
        }
    }
}

/// What to stamp with. `uid` and `timestamp` come from the caller: core has no RNG or clock.
#[derive(Debug, Clone)]
pub struct StampRequest<'a> {
    /// Requested form (binary or comment-less content always gets hash-only).
    pub format: StampFormat,
    /// Stamp id.
    pub uid: Uuid,
    /// Stamp time.
    pub timestamp: DateTime<Utc>,
    /// Optional author.
    pub author: Option<&'a str>,
    /// Optional version label.
    pub version: Option<&'a str>,
    /// The file's path, recorded in rich stamps.
    pub file_path: Option<&'a str>,
    /// The content's type (see [`super::detect`]).
    pub content_type: ContentType,
}

/// Stamped content, as pieces to write in order (the content itself is borrowed when no old
/// stamp had to be removed).
#[derive(Debug, Clone)]
pub struct Stamped<'a> {
    /// The form actually used.
    pub format: StampFormat,
    /// The stamp's fields.
    pub fields: StampFields,
    /// Length of the hashed (normalised, or raw for binary) content.
    pub hashed_len: u64,
    /// The content type.
    pub content_type: ContentType,
    body: Cow<'a, [u8]>,
    insert_at: usize,
    stamp: String,
}

impl Stamped<'_> {
    /// The output in order: content before the stamp, the stamp, the rest of the content.
    pub fn pieces(&self) -> [&[u8]; 3] {
        [&self.body[..self.insert_at], self.stamp.as_bytes(), &self.body[self.insert_at..]]
    }

    /// The output as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces().concat()
    }

    /// The stamp text alone (empty for hash-only).
    pub fn stamp_text(&self) -> &str {
        &self.stamp
    }

    /// Whether the output differs from the input (false for hash-only).
    pub fn changes_content(&self) -> bool {
        self.format != StampFormat::HashOnly
    }
}

/// Where a lightweight stamp goes: line 1, or line 2 after a `#!` or `<?xml` first line.
pub fn lightweight_slot(content: &[u8]) -> usize {
    if content.starts_with(b"#!") || content.starts_with(b"<?xml") {
        memchr::memchr(b'\n', content).map_or(content.len(), |n| n + 1)
    } else {
        0
    }
}

fn line_ending(content: &[u8]) -> &'static str {
    match memchr::memchr(b'\n', content) {
        Some(n) if n > 0 && content[n - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// A stamp to write into the stamp-free body: `text` goes at byte `at` of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampPlacement {
    /// Offset in the stamp-free body (its length for a rich stamp, which is appended).
    pub at: u64,
    /// What to insert there.
    pub text: String,
}

/// The form a request gets for content of its type: hash-only when the content cannot hold a
/// comment (binary, JSON, unknown types) or when asked for.
pub fn effective_format(req: &StampRequest<'_>) -> StampFormat {
    match (req.format, req.content_type.style) {
        (StampFormat::HashOnly, _) | (_, None) => StampFormat::HashOnly,
        (format, Some(_)) => format,
    }
}

/// Where and what to write for a stamp (`None` for hash-only). Both the in-memory and the
/// streaming stamper call this, so a file stamps the same either way.
pub fn place_stamp(
    fields: &StampFields,
    req: &StampRequest<'_>,
    hashed_len: u64,
    body: &BodyInfo,
) -> Option<StampPlacement> {
    let style = req.content_type.style.filter(|_| effective_format(req) != StampFormat::HashOnly)?;
    let eol = line_ending(&body.head);
    Some(match req.format {
        StampFormat::Rich => {
            let details = RichDetails {
                file_path: req.file_path.map(str::to_owned),
                file_size: hashed_len,
                content_type: req.content_type.mime.to_owned(),
            };
            let separator = match body.last {
                None | Some(b'\n') => eol.to_owned(),
                Some(_) => format!("{eol}{eol}"),
            };
            StampPlacement { at: body.len, text: separator + &render_rich(fields, &details, style, eol) }
        }
        _ => StampPlacement { at: lightweight_slot(&body.head) as u64, text: render_lightweight(fields, style, eol) },
    })
}

/// Checks the free-text values of a request.
pub fn check_request(req: &StampRequest<'_>) -> Result<(), StampError> {
    for (name, value) in [("author", req.author), ("version", req.version), ("file_path", req.file_path)] {
        if let Some(v) = value {
            check_value(name, v).map_err(StampError::InvalidInput)?;
        }
    }
    Ok(())
}

/// The stamp's fields for content with `hash`.
pub fn stamp_fields(req: &StampRequest<'_>, hash: &blake3::Hash) -> StampFields {
    StampFields {
        uid: req.uid,
        hash: hash.to_hex().as_str().to_owned(),
        timestamp: req.timestamp,
        author: req.author.map(str::to_owned),
        version: req.version.map(str::to_owned),
    }
}

/// Stamps `content`. Restamping replaces every old stamp, so the hash and the output stay the
/// same and only one stamp remains.
pub fn stamp<'a>(content: &'a [u8], req: &StampRequest<'_>) -> Result<Stamped<'a>, StampError> {
    let hashed = if req.content_type == BINARY { raw_hash(content) } else { normalized_hash(content) };
    stamp_with(content, hashed, req)
}

/// The hash of binary content: raw BLAKE3, nothing removed or normalised.
pub fn raw_hash(content: &[u8]) -> NormalizedHash {
    NormalizedHash::raw(blake3::hash(content), content.len() as u64, content.last().copied())
}

/// [`stamp`] with the content's hash already computed ([`normalized_hash`] for text, [`raw_hash`]
/// for binary, or an equivalent computed on several cores).
pub fn stamp_with<'a>(
    content: &'a [u8],
    hashed: NormalizedHash,
    req: &StampRequest<'_>,
) -> Result<Stamped<'a>, StampError> {
    check_request(req)?;
    let content_type = req.content_type;
    if content_type == BINARY {
        let fields = stamp_fields(req, &hashed.hash);
        let body = Cow::Borrowed(content);
        return Ok(Stamped {
            format: StampFormat::HashOnly,
            fields,
            hashed_len: hashed.len,
            content_type,
            body,
            insert_at: 0,
            stamp: String::new(),
        });
    }
    let normalized = hashed;
    let fields = stamp_fields(req, &normalized.hash);
    let Some(placement) = place_stamp(&fields, req, normalized.len, &normalized.body) else {
        let body = Cow::Borrowed(content);
        return Ok(Stamped {
            format: StampFormat::HashOnly,
            fields,
            hashed_len: normalized.len,
            content_type,
            body,
            insert_at: 0,
            stamp: String::new(),
        });
    };
    let body: Cow<'a, [u8]> =
        if normalized.stamp_count > 0 { Cow::Owned(strip_stamps(content)) } else { Cow::Borrowed(content) };
    let insert_at = usize::try_from(placement.at).unwrap_or(body.len()).min(body.len());
    Ok(Stamped {
        format: req.format,
        fields,
        hashed_len: normalized.len,
        content_type,
        body,
        insert_at,
        stamp: placement.text,
    })
}
