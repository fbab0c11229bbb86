//! The db handler's requests: decoding `{"sql", "params"}` and `{"statements": […]}` payloads,
//! and refusing SQL that holds more than one statement.

use onex_core::envelope::Envelope;
use onex_spi::{SpiError, SpiResult};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::error::codes;

/// The SQL dialect a statement is scanned in (quoting rules differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL: `'…'` (and `E'…'` with backslash escapes), `"…"`, `$tag$…$tag$`, nested `/* */`.
    Postgres,
    /// SQLite: `'…'`, `"…"`, `` `…` ``, `[…]`, flat `/* */`.
    Sqlite,
}

/// One statement and its parameters, bound by position (`$1`, `$2`, … or `?`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Statement {
    /// The SQL: exactly one statement.
    pub sql: String,
    /// The parameters, in order; none when absent.
    #[serde(default)]
    pub params: Vec<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionRequest {
    statements: Vec<Json>,
}

/// Who asked for what: every error of a request names the envelope, the operation and the field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx<'a> {
    /// The request.
    pub envelope: &'a Envelope,
    /// The statement's place in the payload (`None` for query/execute, the index in a transaction).
    pub index: Option<usize>,
}

impl Cx<'_> {
    /// `envelope <id>: <operation>` and, in a transaction, `statements[<i>]`.
    pub fn prefix(&self) -> String {
        match self.index {
            Some(i) => format!("envelope {}: {} statements[{i}]", self.envelope.envelope_id, self.envelope.operation),
            None => format!("envelope {}: {}", self.envelope.envelope_id, self.envelope.operation),
        }
    }

    /// The field name of this statement's `part` (`sql`, `params[2]`, …).
    pub fn field(&self, part: &str) -> String {
        match self.index {
            Some(i) => format!("statements[{i}].{part}"),
            None => part.to_owned(),
        }
    }

    /// The same request, at statement `index` of a transaction.
    pub fn at(&self, index: usize) -> Self {
        Self { envelope: self.envelope, index: Some(index) }
    }
}

/// Decodes the payload of `db.query` / `db.execute` and checks its SQL.
pub(crate) fn statement(cx: Cx<'_>, dialect: Dialect) -> SpiResult<Statement> {
    let statement: Statement = decode(cx, &cx.envelope.payload)?;
    check_one_statement(cx, &statement.sql, dialect)?;
    Ok(statement)
}

/// Decodes the payload of `db.transaction` and checks every statement's SQL.
pub(crate) fn transaction(cx: Cx<'_>, dialect: Dialect) -> SpiResult<Vec<Statement>> {
    let request: TransactionRequest = decode(cx, &cx.envelope.payload)?;
    if request.statements.is_empty() {
        return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{}: `statements` is empty", cx.prefix())));
    }
    request
        .statements
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let cx = cx.at(i);
            let statement: Statement = decode(cx, item)?;
            check_one_statement(cx, &statement.sql, dialect)?;
            Ok(statement)
        })
        .collect()
}

/// Decodes `value`; unknown fields and wrong types are refused by name (the prefix is built
/// only then, keeping the request path free of formatting).
fn decode<T: DeserializeOwned>(cx: Cx<'_>, value: &Json) -> SpiResult<T> {
    T::deserialize(value)
        .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("{}: invalid payload: {e}", cx.prefix())))
}

/// Refuses SQL that is empty or holds more than one statement, naming the field.
fn check_one_statement(cx: Cx<'_>, sql: &str, dialect: Dialect) -> SpiResult<()> {
    let refuse = |why: String| {
        SpiError::new(codes::DB_NOT_ONE_STATEMENT, format!("{}: `{}` {why}", cx.prefix(), cx.field("sql")))
    };
    match shape(sql, dialect) {
        Shape::One => Ok(()),
        Shape::Empty => Err(refuse("holds no statement".to_owned())),
        Shape::Several { at } => Err(refuse(format!(
            "holds more than one statement (the `;` at byte {at} is followed by more SQL); \
             send one statement per request, or a list in db.transaction"
        ))),
    }
}

/// What a SQL text holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Only whitespace and comments.
    Empty,
    /// One statement, optionally ended by `;` and trailing whitespace/comments.
    One,
    /// A `;` (at this byte offset) outside quotes and comments followed by more SQL.
    Several {
        /// Byte offset of the `;`.
        at: usize,
    },
}

/// Scans `sql` as `dialect` quotes it and says how many statements it holds.
pub(crate) fn shape(sql: &str, dialect: Dialect) -> Shape {
    let bytes = sql.as_bytes();
    let end = statement_end(bytes, dialect);
    let body = &bytes[..end.unwrap_or(bytes.len())];
    if only_trivia(body, dialect) {
        return Shape::Empty;
    }
    match end {
        Some(at) if !only_trivia(&bytes[at + 1..], dialect) => Shape::Several { at },
        _ => Shape::One,
    }
}

/// The offset of the first `;` outside quotes, identifiers and comments.
fn statement_end(sql: &[u8], dialect: Dialect) -> Option<usize> {
    let pg = dialect == Dialect::Postgres;
    let mut i = 0;
    while let Some(&c) = sql.get(i) {
        let next = sql.get(i + 1).copied();
        i = match c {
            b';' => return Some(i),
            b'\'' => skip_quoted(sql, i, b'\'', pg && is_escape_string(sql, i)),
            b'"' => skip_quoted(sql, i, b'"', false),
            b'`' if !pg => skip_quoted(sql, i, b'`', false),
            b'[' if !pg => sql[i..].iter().position(|&b| b == b']').map_or(sql.len(), |p| i + p + 1),
            b'-' if next == Some(b'-') => skip_line_comment(sql, i),
            b'/' if next == Some(b'*') => skip_block_comment(sql, i, pg),
            b'$' if pg && !(i > 0 && is_ident(sql[i - 1])) => dollar_quote_end(sql, i).unwrap_or(i + 1),
            _ => i + 1,
        };
    }
    None
}

/// Whether `sql` holds nothing but whitespace and comments.
fn only_trivia(sql: &[u8], dialect: Dialect) -> bool {
    let mut i = 0;
    while let Some(&c) = sql.get(i) {
        let next = sql.get(i + 1).copied();
        i = match c {
            c if c.is_ascii_whitespace() => i + 1,
            b'-' if next == Some(b'-') => skip_line_comment(sql, i),
            b'/' if next == Some(b'*') => skip_block_comment(sql, i, dialect == Dialect::Postgres),
            _ => return false,
        };
    }
    true
}

/// A byte that may continue an identifier (non-ASCII bytes are letters of UTF-8 characters).
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Whether the quote at `i` opens a PostgreSQL escape string (`E'…'`).
fn is_escape_string(sql: &[u8], i: usize) -> bool {
    i >= 1 && matches!(sql[i - 1], b'E' | b'e') && !(i >= 2 && is_ident(sql[i - 2]))
}

/// The offset after the quoted text opened at `start` (doubled quotes stay inside; with
/// `backslash`, `\x` escapes one byte); the end of `sql` when unterminated.
fn skip_quoted(sql: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while let Some(&c) = sql.get(i) {
        if backslash && c == b'\\' {
            i += 2;
        } else if c == quote {
            if sql.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    sql.len()
}

/// The offset after the `--` comment at `start` (its newline included).
fn skip_line_comment(sql: &[u8], start: usize) -> usize {
    sql[start..].iter().position(|&b| b == b'\n').map_or(sql.len(), |p| start + p + 1)
}

/// The offset after the `/* */` comment at `start`; PostgreSQL nests them, SQLite does not.
fn skip_block_comment(sql: &[u8], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < sql.len() {
        match (sql[i], sql[i + 1]) {
            (b'/', b'*') if nested || depth == 0 => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    sql.len()
}

/// The offset after the dollar-quoted string opening at `start` (`$$…$$`, `$tag$…$tag$`), or
/// `None` when the `$` opens none (a parameter such as `$1`).
fn dollar_quote_end(sql: &[u8], start: usize) -> Option<usize> {
    let tag_len = sql[start + 1..].iter().position(|&b| !(is_ident(b) && b != b'$'))?;
    let close = start + 1 + tag_len;
    if sql.get(close) != Some(&b'$') || sql.get(start + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &sql[start..=close];
    let body = &sql[close + 1..];
    Some(body.windows(tag.len()).position(|w| w == tag).map_or(sql.len(), |p| close + 1 + p + tag.len()))
}

#[cfg(test)]
mod tests {
    use super::Dialect::{Postgres as Pg, Sqlite as Lite};
    use super::*;

    #[test]
    fn one_statement_with_or_without_trailing_semicolon_and_comments() {
        for sql in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1;  \n",
            "SELECT 1; -- done",
            "SELECT 1; /* done */ ",
            "SELECT ';' AS a",
            "SELECT 'it''s; fine'",
            "SELECT \"odd;name\" FROM t",
            "SELECT 1 -- ; DROP TABLE t\n",
            "SELECT 1 /* ; DROP TABLE t */",
            "INSERT INTO t VALUES ($1, $2)",
        ] {
            assert_eq!(shape(sql, Pg), Shape::One, "{sql}");
            assert_eq!(shape(sql, Lite), Shape::One, "{sql}");
        }
    }

    #[test]
    fn postgres_quoting_hides_semicolons() {
        for sql in [
            "SELECT $$a; b$$",
            "SELECT $fn$ BEGIN; x; END $fn$",
            "SELECT E'it\\'s; still one'",
            "SELECT 1 /* outer /* inner; */ still; comment */",
            "SELECT a$b FROM t WHERE x = $1",
        ] {
            assert_eq!(shape(sql, Pg), Shape::One, "{sql}");
        }
    }

    #[test]
    fn sqlite_quoting_hides_semicolons() {
        for sql in ["SELECT `a;b` FROM t", "SELECT [a;b] FROM t"] {
            assert_eq!(shape(sql, Lite), Shape::One, "{sql}");
        }
    }

    #[test]
    fn chained_statements_are_found() {
        assert_eq!(shape("SELECT 1; SELECT 2", Pg), Shape::Several { at: 8 });
        assert_eq!(shape("SELECT 1;;", Pg), Shape::Several { at: 8 });
        assert_eq!(shape("SELECT ''; DROP TABLE t; --", Lite), Shape::Several { at: 9 });
        // Backslashes escape nothing in a standard PostgreSQL string, or in SQLite.
        assert_eq!(shape("SELECT 'a\\'; DROP TABLE t", Pg), Shape::Several { at: 11 });
        assert_eq!(shape("SELECT 'a\\'; DROP TABLE t", Lite), Shape::Several { at: 11 });
        // A PostgreSQL comment nests; in SQLite the first `*/` ends it.
        assert_eq!(shape("SELECT 1 /* /* */ */; SELECT 2", Pg), Shape::Several { at: 20 });
        assert!(matches!(shape("SELECT 1 /* /* */ ; SELECT 2", Lite), Shape::Several { .. }));
        assert_eq!(shape("SELECT $1; SELECT 2", Pg), Shape::Several { at: 9 });
    }

    #[test]
    fn nothing_but_comments_is_empty() {
        for sql in ["", "  ", "-- nothing", "/* nothing */ ;", ";"] {
            assert_eq!(shape(sql, Pg), Shape::Empty, "{sql:?}");
        }
    }
}
