//! Normalisation of content before hashing, exactly as the Python stamping service did, as a
//! streaming pipeline: `stamp lines removed -> CRLF to LF -> runs of 3+ newlines to 2 -> trim`.
//!
//! Every stage passes borrowed sub-slices of its input on (zero-copy) and buffers only what a
//! chunk boundary forces it to: a line prefix of at most [`STAMP_WINDOW`] bytes, one `\r`, an
//! incomplete UTF-8 character, and the whitespace after the last non-whitespace character seen
//! (dropped if the content ends there). Per-line work happens only on lines containing `ONEX`,
//! so the pipeline runs at a fraction of BLAKE3's cost. One implementation serves in-memory
//! content and multi-GB files alike.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use memchr::{memchr, memrchr};

/// A line is classified as a stamp or not from its first `STAMP_WINDOW` bytes.
pub const STAMP_WINDOW: usize = 64;
/// Opens a rich stamp block.
pub const RICH_START: &str = "<!-- ONEX_METADATA_START -->";
/// Closes a rich stamp block.
pub const RICH_END: &str = "<!-- ONEX_METADATA_END -->";
/// The marker every stamp line contains.
pub const LIGHTWEIGHT_MARKER: &str = "ONEX:";
/// Comment prefixes a lightweight stamp line may use (`<!--` before `--`).
pub const COMMENT_PREFIXES: [&str; 5] = ["<!--", "#", "//", "--", ";"];
/// The most stamps remembered per content (more are still removed and counted).
pub const MAX_FOUND: usize = 16;
/// The most bytes of one stamp kept for parsing (a longer stamp is malformed).
pub const MAX_STAMP_TEXT: usize = 8 * 1024;

static ONEX: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"ONEX"));
static START: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(RICH_START.as_bytes()));
static END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(RICH_END.as_bytes()));
static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n"));
static RUN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n\n"));

/// What a line is, judged from its first [`STAMP_WINDOW`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Ordinary content.
    Content,
    /// A lightweight stamp: `<comment prefix> ONEX:...`.
    Lightweight,
    /// The first line of a rich stamp block.
    RichStart,
}

fn trim_blanks(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    &b[n..]
}

/// Classifies a line from its head (its first [`STAMP_WINDOW`] bytes, or all of it if shorter).
pub fn classify_line(head: &[u8]) -> LineKind {
    let head = &head[..head.len().min(STAMP_WINDOW)];
    let text = trim_blanks(head);
    let lightweight = COMMENT_PREFIXES.iter().any(|p| {
        text.strip_prefix(p.as_bytes()).is_some_and(|rest| trim_blanks(rest).starts_with(LIGHTWEIGHT_MARKER.as_bytes()))
    });
    if lightweight {
        LineKind::Lightweight
    } else if START.find(head).is_some() {
        LineKind::RichStart
    } else {
        LineKind::Content
    }
}

/// The kind of a stamp found in content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampKind {
    /// One line.
    Lightweight,
    /// A block between [`RICH_START`] and [`RICH_END`].
    Rich,
}

/// A stamp found (and removed) while normalising.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundStamp {
    /// Lightweight or rich.
    pub kind: StampKind,
    /// Byte offset of the stamp's first line in the content.
    pub offset: u64,
    /// The stamp's text (its line, or its block's lines), at most [`MAX_STAMP_TEXT`] bytes.
    pub text: Vec<u8>,
    /// False when the text was longer than [`MAX_STAMP_TEXT`].
    pub complete: bool,
    /// False for a rich block whose end marker never came.
    pub terminated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Gathering a line's first bytes to classify it.
    Undecided,
    /// Among content: skipping ahead to the next line that holds `ONEX`. `at_line_start` when no
    /// byte of the current line has been seen (so an `ONEX` on it still needs classifying).
    Keep { at_line_start: bool },
    /// The current line is a lightweight stamp.
    DropLine,
    /// Inside a rich block; `end_seen` once its end marker was found on the current line.
    DropBlock { end_seen: bool },
}

/// Stage 1: removes stamp lines and rich blocks, remembering what it removed.
#[derive(Debug)]
pub struct StampFilter {
    offset: u64,
    head: Vec<u8>,
    head_offset: u64,
    fate: Fate,
    found: Vec<FoundStamp>,
    found_total: usize,
    probe: Vec<u8>,
}

impl Default for StampFilter {
    fn default() -> Self {
        Self {
            offset: 0,
            head: Vec::with_capacity(STAMP_WINDOW),
            head_offset: 0,
            fate: Fate::Keep { at_line_start: true },
            found: Vec::new(),
            found_total: 0,
            probe: Vec::new(),
        }
    }
}

impl StampFilter {
    /// The stamps found so far (at most [`MAX_FOUND`]).
    pub fn found(&self) -> &[FoundStamp] {
        &self.found
    }

    /// How many stamps were found, including those beyond [`MAX_FOUND`].
    pub fn found_total(&self) -> usize {
        self.found_total
    }

    fn begin(&mut self, kind: StampKind) {
        self.found_total += 1;
        if self.found.len() < MAX_FOUND {
            let offset = self.head_offset;
            self.found.push(FoundStamp { kind, offset, text: Vec::new(), complete: true, terminated: true });
        }
        let head = std::mem::take(&mut self.head);
        self.record(&head);
        self.head = head;
    }

    fn record(&mut self, bytes: &[u8]) {
        // The current stamp was kept only if it is among the first MAX_FOUND.
        if let Some(stamp) = self.found.last_mut().filter(|_| self.found_total <= MAX_FOUND) {
            let room = MAX_STAMP_TEXT.saturating_sub(stamp.text.len());
            stamp.text.extend_from_slice(&bytes[..bytes.len().min(room)]);
            stamp.complete &= bytes.len() <= room;
        }
    }

    /// Decides the current line from its head; `complete` when the head ends the line.
    fn decide(&mut self, complete: bool, out: &mut impl FnMut(&[u8])) {
        match classify_line(&self.head) {
            LineKind::Content => {
                out(&self.head);
                self.fate = Fate::Keep { at_line_start: complete };
            }
            LineKind::Lightweight => {
                self.begin(StampKind::Lightweight);
                self.fate = if complete { Fate::Keep { at_line_start: true } } else { Fate::DropLine };
            }
            LineKind::RichStart => {
                self.begin(StampKind::Rich);
                let after_start = START.find(&self.head).map_or(0, |s| s + RICH_START.len());
                let end_seen = END.find(&self.head[after_start..]).is_some();
                self.probe.clear();
                let keep = self.head.len().min(RICH_END.len() - 1);
                self.probe.extend_from_slice(&self.head[self.head.len() - keep..]);
                self.fate = match (complete, end_seen) {
                    (true, true) => Fate::Keep { at_line_start: true },
                    _ => Fate::DropBlock { end_seen },
                };
            }
        }
        self.head.clear();
    }

    /// Filters `input`, passing kept bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            match self.fate {
                Fate::Undecided => {
                    if self.head.is_empty() {
                        self.head_offset = self.offset + i as u64;
                    }
                    let window = rest.len().min(STAMP_WINDOW - self.head.len());
                    match memchr(b'\n', &rest[..window]) {
                        Some(n) => {
                            self.head.extend_from_slice(&rest[..=n]);
                            i += n + 1;
                            self.decide(true, out);
                        }
                        None => {
                            self.head.extend_from_slice(&rest[..window]);
                            i += window;
                            if self.head.len() == STAMP_WINDOW {
                                self.decide(false, out);
                            }
                        }
                    }
                }
                Fate::Keep { at_line_start } => {
                    // Only a line holding "ONEX" can be a stamp: skip to the next such line
                    // (and classify a trailing partial line, whose "ONEX" may come later).
                    let (emit, fate) = match ONEX.find(rest) {
                        Some(p) => match memrchr(b'\n', &rest[..p]) {
                            Some(nl) => (nl + 1, Fate::Undecided),
                            None if at_line_start => (0, Fate::Undecided),
                            None => (p + 4, Fate::Keep { at_line_start: false }),
                        },
                        None => match memrchr(b'\n', rest) {
                            Some(nl) => (nl + 1, Fate::Undecided),
                            None if at_line_start => (0, Fate::Undecided),
                            None => (rest.len(), Fate::Keep { at_line_start: false }),
                        },
                    };
                    out(&rest[..emit]);
                    i += emit;
                    self.fate = fate;
                }
                Fate::DropLine | Fate::DropBlock { end_seen: true } => {
                    let end = memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
                    self.record(&rest[..end]);
                    i += end;
                    if rest[end - 1] == b'\n' {
                        self.fate = Fate::Keep { at_line_start: true };
                    }
                }
                Fate::DropBlock { end_seen: false } => {
                    let consumed = self.find_block_end(rest);
                    let (taken, found) = consumed.map_or((rest.len(), false), |c| (c, true));
                    self.record(&rest[..taken]);
                    i += taken;
                    if found {
                        self.fate = Fate::DropBlock { end_seen: true };
                    }
                }
            }
        }
        self.offset += input.len() as u64;
    }

    /// How many bytes of `rest` up to and including the end marker, if it ends in `rest`
    /// (also when it started in the previous input); otherwise remembers the tail.
    fn find_block_end(&mut self, rest: &[u8]) -> Option<usize> {
        let marker = RICH_END.len();
        if !self.probe.is_empty() {
            let mut joined = std::mem::take(&mut self.probe);
            let from_rest = rest.len().min(marker - 1);
            joined.extend_from_slice(&rest[..from_rest]);
            let hit = END.find(&joined).map(|p| p + marker - (joined.len() - from_rest));
            joined.truncate(joined.len() - from_rest);
            self.probe = joined;
            if let Some(end) = hit {
                self.probe.clear();
                return Some(end);
            }
        }
        if let Some(p) = END.find(rest) {
            self.probe.clear();
            return Some(p + marker);
        }
        let keep = marker - 1;
        if rest.len() >= keep {
            self.probe.clear();
            self.probe.extend_from_slice(&rest[rest.len() - keep..]);
        } else {
            self.probe.extend_from_slice(rest);
            let excess = self.probe.len().saturating_sub(keep);
            self.probe.drain(..excess);
        }
        None
    }

    /// Ends the input: decides a last undecided line and marks an unterminated rich block.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.fate == Fate::Undecided && !self.head.is_empty() {
            self.decide(true, out);
        }
        let unterminated = self.fate == Fate::DropBlock { end_seen: false };
        if let Some(stamp) = self.found.last_mut().filter(|s| unterminated && s.kind == StampKind::Rich) {
            stamp.terminated = false;
        }
    }
}

/// Stage 2: `\r\n` becomes `\n` (as Python's `str.replace`); lone `\r` stays.
#[derive(Debug, Default)]
struct CrLf {
    held_cr: bool,
}

impl CrLf {
    fn push(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) {
        if input.is_empty() {
            return;
        }
        if std::mem::take(&mut self.held_cr) && input[0] != b'\n' {
            out(b"\r");
        }
        let mut i = 0;
        for p in CRLF.find_iter(input) {
            if p >= i {
                out(&input[i..p]);
                i = p + 1;
            }
        }
        let tail = &input[i..];
        match tail.split_last() {
            Some((b'\r', body)) => {
                out(body);
                self.held_cr = true;
            }
            _ => out(tail),
        }
    }

    fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if std::mem::take(&mut self.held_cr) {
            out(b"\r");
        }
    }
}

/// Length of an incomplete UTF-8 sequence at the end of `b` (0 when it ends on a boundary).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let byte = b[b.len() - back];
        if byte & 0xC0 != 0x80 {
            return if sequence_len(byte) > back { back } else { 0 };
        }
    }
    0
}

/// The length of the UTF-8 sequence a lead byte starts (1 for anything else).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Stage 3: holds back an incomplete UTF-8 character so whitespace is judged whole.
#[derive(Debug, Default)]
struct Utf8Boundary {
    held: Vec<u8>,
}

impl Utf8Boundary {
    fn push(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) {
        let mut input = input;
        if !self.held.is_empty() {
            // Complete the held character with exactly the bytes it lacks (whatever they are).
            let need = sequence_len(self.held[0]).saturating_sub(self.held.len()).min(input.len());
            self.held.extend_from_slice(&input[..need]);
            input = &input[need..];
            if self.held.len() < sequence_len(self.held[0]) {
                return;
            }
            out(&std::mem::take(&mut self.held));
        }
        let hold = incomplete_tail(input);
        out(&input[..input.len() - hold]);
        self.held.extend_from_slice(&input[input.len() - hold..]);
    }

    fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        out(&std::mem::take(&mut self.held));
    }
}

/// The whitespace character at the start of `b`, by its length: Python's `str.isspace()` set
/// (Rust's `char::is_whitespace` plus U+001C..U+001F).
fn space_at_start(b: &[u8]) -> usize {
    match b {
        [b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F, ..] => 1,
        [0xC2, 0x85 | 0xA0, ..] => 2,
        [0xE1, 0x9A, 0x80, ..] | [0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF, ..] => 3,
        [0xE2, 0x81, 0x9F, ..] | [0xE3, 0x80, 0x80, ..] => 3,
        _ => 0,
    }
}

/// The whitespace character at the end of `b`, by its length.
fn space_at_end(b: &[u8]) -> usize {
    match b {
        [.., b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F] => 1,
        [.., 0xC2, 0x85 | 0xA0] => 2,
        [.., 0xE1, 0x9A, 0x80] | [.., 0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF] => 3,
        [.., 0xE2, 0x81, 0x9F] | [.., 0xE3, 0x80, 0x80] => 3,
        _ => 0,
    }
}

fn leading_space(b: &[u8]) -> usize {
    let mut n = 0;
    while let w @ 1.. = space_at_start(&b[n..]) {
        n += w;
    }
    n
}

fn trailing_space(b: &[u8]) -> usize {
    let mut n = 0;
    while let w @ 1.. = space_at_end(&b[..b.len() - n]) {
        n += w;
    }
    n
}

/// Stage 4: collapses runs of three or more `\n` into two and trims whitespace at both ends.
#[derive(Debug, Default)]
struct Collapse {
    started: bool,
    /// Whitespace after the last non-whitespace character, newline runs already collapsed.
    pending: Vec<u8>,
    pending_newlines: usize,
}

impl Collapse {
    fn hold(&mut self, space: &[u8]) {
        for &b in space {
            if b == b'\n' {
                self.pending_newlines += 1;
                if self.pending_newlines > 2 {
                    continue;
                }
            } else {
                self.pending_newlines = 0;
            }
            self.pending.push(b);
        }
    }

    fn push(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) {
        let mut s = input;
        if !self.started {
            s = &s[leading_space(s)..];
            if s.is_empty() {
                return;
            }
            self.started = true;
        }
        let lead = leading_space(s);
        if lead == s.len() {
            self.hold(s);
            return;
        }
        self.hold(&s[..lead]);
        out(&self.pending);
        self.pending.clear();
        self.pending_newlines = 0;
        let end = s.len() - trailing_space(s);
        let body = &s[lead..end];
        let mut i = 0;
        for p in RUN.find_iter(body) {
            if p < i {
                continue;
            }
            out(&body[i..p + 2]);
            i = p + 2 + body[p + 2..].iter().take_while(|&&b| b == b'\n').count();
        }
        out(&body[i..]);
        self.hold(&s[end..]);
    }
}

/// The whole pipeline. Feed chunks with [`Normalizer::push`], end with [`Normalizer::finish`].
#[derive(Debug, Default)]
pub struct Normalizer {
    filter: StampFilter,
    crlf: CrLf,
    utf8: Utf8Boundary,
    collapse: Collapse,
}

impl Normalizer {
    /// A pipeline at the start of content.
    pub fn new() -> Self {
        Self::default()
    }

    /// Normalises a chunk, passing normalised bytes to `sink`.
    pub fn push(&mut self, chunk: &[u8], sink: &mut impl FnMut(&[u8])) {
        let Self { filter, crlf, utf8, collapse } = self;
        filter.push(chunk, &mut |a: &[u8]| {
            crlf.push(a, &mut |b: &[u8]| utf8.push(b, &mut |c: &[u8]| collapse.push(c, &mut *sink)))
        });
    }

    /// Ends the content (trailing whitespace is dropped) and returns the stamps removed.
    pub fn finish(mut self, sink: &mut impl FnMut(&[u8])) -> StampFilter {
        let Self { filter, crlf, utf8, collapse } = &mut self;
        let mut stage4 = |c: &[u8]| collapse.push(c, &mut *sink);
        let mut stage3 = |b: &[u8]| utf8.push(b, &mut stage4);
        filter.finish(&mut |a: &[u8]| crlf.push(a, &mut stage3));
        crlf.finish(&mut stage3);
        utf8.finish(&mut stage4);
        self.filter
    }
}

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
    /// Stamps removed (at most [`MAX_FOUND`]).
    pub stamps: Vec<FoundStamp>,
    /// All stamps removed, counted.
    pub stamp_count: usize,
}

/// Normalises and hashes whole content held in memory.
pub fn normalized_hash(content: &[u8]) -> NormalizedHash {
    let mut sink = HashSink::default();
    let mut normalizer = Normalizer::new();
    normalizer.push(content, &mut |b: &[u8]| sink.write(b));
    let filter = normalizer.finish(&mut |b: &[u8]| sink.write(b));
    let (hash, len) = sink.finalize();
    NormalizedHash { hash, len, stamp_count: filter.found_total(), stamps: filter.found }
}

/// The content with every stamp removed and nothing else changed.
pub fn strip_stamps(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut filter = StampFilter::default();
    filter.push(content, &mut |b: &[u8]| out.extend_from_slice(b));
    filter.finish(&mut |b: &[u8]| out.extend_from_slice(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(content: &str) -> String {
        let mut out = Vec::new();
        let n = {
            let mut n = Normalizer::new();
            n.push(content.as_bytes(), &mut |b: &[u8]| out.extend_from_slice(b));
            n
        };
        n.finish(&mut |b: &[u8]| out.extend_from_slice(b));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_python_rules() {
        assert_eq!(normalized("\r\n  a\r\nb\n\n\n\nc \u{a0}\n"), "a\nb\n\nc");
        assert_eq!(normalized("# ONEX:uid=x,hash=y,ts=z\nbody\n"), "body");
        assert_eq!(normalized("a\n<!-- ONEX_METADATA_START -->\nuid: 1\n<!-- ONEX_METADATA_END -->\n"), "a");
        assert_eq!(normalized("a\r\rb"), "a\r\rb");
        assert_eq!(normalized("x\n\n\n"), "x");
        assert_eq!(normalized(" \u{3000}\u{1c}"), "");
    }

    #[test]
    fn stamps_are_found_with_their_offsets() {
        let content = b"#!/bin/sh\n# ONEX:uid=1\necho\n<!-- ONEX_METADATA_START -->\nx\n";
        let h = normalized_hash(content);
        assert_eq!(h.stamp_count, 2);
        assert_eq!((h.stamps[0].kind, h.stamps[0].offset), (StampKind::Lightweight, 10));
        assert_eq!(h.stamps[0].text, b"# ONEX:uid=1\n");
        assert_eq!((h.stamps[1].kind, h.stamps[1].terminated), (StampKind::Rich, false));
    }

    #[test]
    fn classification_needs_a_comment_prefix_and_the_marker() {
        assert_eq!(classify_line(b"   // ONEX:uid=1"), LineKind::Lightweight);
        assert_eq!(classify_line(b"<!-- ONEX:uid=1 -->"), LineKind::Lightweight);
        assert_eq!(classify_line(b"let onex = \"# ONEX:\";"), LineKind::Content);
        assert_eq!(classify_line(b"# <!-- ONEX_METADATA_START -->"), LineKind::RichStart);
        let far = format!("{}# ONEX:uid=1", " ".repeat(STAMP_WINDOW));
        assert_eq!(classify_line(far.as_bytes()), LineKind::Content);
    }
}
