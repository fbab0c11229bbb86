//! Stage 1 of normalisation: finding and removing stamp lines and rich stamp blocks in a
//! stream, remembering what was removed. Only lines holding `ONEX` are looked at closely.

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

static START: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(RICH_START.as_bytes()));
static END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(RICH_END.as_bytes()));

/// Where `ONEX` first occurs in `hay`: a byte search for its `X`, each hit checked for `ONE`
/// before it. On text without the marker this is a third of a substring search's cost, and it
/// runs over every byte of content being stamped.
fn find_onex(hay: &[u8]) -> Option<usize> {
    let mut from = hay.len().min(3);
    while let Some(p) = memchr(b'X', &hay[from..]) {
        let x = from + p;
        if &hay[x - 3..x] == b"ONE" {
            return Some(x - 3);
        }
        from = x + 1;
    }
    None
}

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
    /// A filter for content that continues, at byte `offset` of the whole, at a line start
    /// (stamp offsets are counted from the start of the whole).
    pub fn continuing_at(offset: u64) -> Self {
        Self { offset, ..Self::default() }
    }

    /// Whether the filter stands at a line start with nothing held back and outside any stamp,
    /// so what follows filters exactly as it would on a fresh [`StampFilter::continuing_at`].
    pub fn at_line_start(&self) -> bool {
        match self.fate {
            Fate::Keep { at_line_start } => at_line_start,
            Fate::Undecided => self.head.is_empty(),
            Fate::DropLine | Fate::DropBlock { .. } => false,
        }
    }

    /// Takes in what a filter of the content's next part found (that filter started where this
    /// one [stood at a line start](StampFilter::at_line_start)).
    pub fn append(&mut self, next: StampFilter) {
        self.offset = next.offset;
        self.found_total += next.found_total;
        let room = MAX_FOUND.saturating_sub(self.found.len());
        self.found.extend(next.found.into_iter().take(room));
    }

    /// The stamps found so far (at most [`MAX_FOUND`]).
    pub fn found(&self) -> &[FoundStamp] {
        &self.found
    }

    /// How many stamps were found, including those beyond [`MAX_FOUND`].
    pub fn found_total(&self) -> usize {
        self.found_total
    }

    /// The stamps found, by value.
    pub fn into_found(self) -> Vec<FoundStamp> {
        self.found
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
                    let (emit, fate) = match find_onex(rest) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_wherever_it_is() {
        for (hay, at) in [
            (&b"ONEX"[..], Some(0)),
            (b"xONEX", Some(1)),
            (b"XX ONE ONEX", Some(7)),
            (b"NEX", None),
            (b"X", None),
            (b"", None),
            (b"ONE X ONEx", None),
        ] {
            assert_eq!(find_onex(hay), at, "{}", String::from_utf8_lossy(hay));
        }
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
