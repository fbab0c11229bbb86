//! Which comment syntax a file uses for its stamp, and whether it is text at all.

/// How a stamp line is written in a file of some type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommentStyle {
    /// `# ...` (shell, Python, YAML, TOML, plain text).
    Hash,
    /// `// ...` (Rust, JS/TS, Go, C family, Java).
    Slash,
    /// `<!-- ... -->` (Markdown, HTML, XML).
    Html,
    /// `-- ...` (SQL, Lua, Haskell).
    Sql,
}

impl CommentStyle {
    /// Text before the stamp.
    pub fn open(self) -> &'static str {
        match self {
            Self::Hash => "# ",
            Self::Slash => "// ",
            Self::Html => "<!-- ",
            Self::Sql => "-- ",
        }
    }

    /// Text after the stamp.
    pub fn close(self) -> &'static str {
        if self == Self::Html { " -->" } else { "" }
    }
}

/// The type of some content: its MIME type and, for text, its comment style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentType {
    /// MIME type recorded in stamps.
    pub mime: &'static str,
    /// `None` for binary content and text that cannot hold a comment (JSON, unknown types):
    /// those get hash-only stamps, kept outside the content.
    pub style: Option<CommentStyle>,
}

const TABLE: &[(&[&str], &str, Option<CommentStyle>)] = &[
    (&["py", "pyi"], "text/x-python", Some(CommentStyle::Hash)),
    (&["sh", "bash", "zsh"], "text/x-shellscript", Some(CommentStyle::Hash)),
    (&["yaml", "yml"], "application/yaml", Some(CommentStyle::Hash)),
    (&["toml"], "application/toml", Some(CommentStyle::Hash)),
    (&["rb"], "text/x-ruby", Some(CommentStyle::Hash)),
    (&["txt", "cfg", "conf", "ini", "env"], "text/plain", Some(CommentStyle::Hash)),
    (&["rs"], "text/x-rust", Some(CommentStyle::Slash)),
    (&["js", "mjs", "cjs", "jsx"], "text/javascript", Some(CommentStyle::Slash)),
    (&["ts", "tsx"], "text/typescript", Some(CommentStyle::Slash)),
    (&["go"], "text/x-go", Some(CommentStyle::Slash)),
    (&["c", "h"], "text/x-c", Some(CommentStyle::Slash)),
    (&["cc", "cpp", "cxx", "hpp", "hh"], "text/x-c++", Some(CommentStyle::Slash)),
    (&["java"], "text/x-java", Some(CommentStyle::Slash)),
    (&["kt", "swift", "cs", "scala", "proto"], "text/plain", Some(CommentStyle::Slash)),
    (&["md", "markdown"], "text/markdown", Some(CommentStyle::Html)),
    (&["html", "htm"], "text/html", Some(CommentStyle::Html)),
    (&["xml", "svg"], "application/xml", Some(CommentStyle::Html)),
    (&["sql"], "application/sql", Some(CommentStyle::Sql)),
    (&["lua", "hs"], "text/plain", Some(CommentStyle::Sql)),
    (&["json"], "application/json", None),
];

/// Binary content.
pub const BINARY: ContentType = ContentType { mime: "application/octet-stream", style: None };
/// Text of a type without a known comment syntax.
pub const UNKNOWN_TEXT: ContentType = ContentType { mime: "text/plain", style: None };

/// How many leading bytes decide whether content is text.
pub const SNIFF_LEN: usize = 8 * 1024;

/// Whether `head` (the first [`SNIFF_LEN`] bytes) looks like UTF-8 text: no NUL and valid
/// UTF-8 (a character cut off at the end of `head` is allowed).
pub fn looks_like_text(head: &[u8]) -> bool {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if memchr::memchr(0, head).is_some() {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// The content type from a file name (extension, or `Dockerfile`/`Makefile`) and the first
/// bytes of the content. Binary content is [`BINARY`] whatever its name says.
pub fn detect(path: Option<&str>, head: &[u8]) -> ContentType {
    if !looks_like_text(head) {
        return BINARY;
    }
    let Some(path) = path else { return UNKNOWN_TEXT };
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if matches!(name, "Dockerfile" | "Makefile" | "makefile" | "CMakeLists.txt") {
        return ContentType { mime: "text/plain", style: Some(CommentStyle::Hash) };
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    TABLE
        .iter()
        .find(|(exts, _, _)| exts.contains(&ext.as_str()))
        .map_or(UNKNOWN_TEXT, |(_, mime, style)| ContentType { mime, style: *style })
}

/// The comment style named by a MIME type (for content given without a file name).
pub fn from_mime(mime: &str) -> Option<ContentType> {
    TABLE.iter().find(|(_, m, _)| *m == mime).map(|(_, mime, style)| ContentType { mime, style: *style })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_follow_the_file_type() {
        let style = |p| detect(Some(p), b"x").style;
        assert_eq!(style("a/b.py"), Some(CommentStyle::Hash));
        assert_eq!(style("lib.RS"), Some(CommentStyle::Slash));
        assert_eq!(style("README.md"), Some(CommentStyle::Html));
        assert_eq!(style("q.sql"), Some(CommentStyle::Sql));
        assert_eq!(style("Dockerfile"), Some(CommentStyle::Hash));
        assert_eq!(style("data.json"), None);
        assert_eq!(style("noext"), None);
    }

    #[test]
    fn binary_is_binary_whatever_the_name() {
        assert_eq!(detect(Some("x.py"), b"a\0b"), BINARY);
        assert_eq!(detect(Some("x.py"), b"caf\xe9 au lait"), BINARY);
        // A character cut at the end of the sniffed head is still text.
        assert!(looks_like_text("é".as_bytes().split_last().unwrap().1));
    }
}
