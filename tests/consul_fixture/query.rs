//! Request parsing shared by the fixture's endpoints: query strings (valueless flags such as
//! `?recurse` included), Go duration strings (`10s`, `1m30s`, `250ms`) and the blocking-query
//! parameters `index` and `wait`.

use std::time::Duration;

/// Longest blocking wait Consul accepts (longer `wait`s are capped).
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// Blocking wait when `index` is given without `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A parsed query string, in order, percent-decoded; a key without `=` has no value.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, Option<String>)>);

impl Query {
    /// Parses `a=1&flag&b=x%2Fy`.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (decode(k), Some(decode(v))),
                None => (decode(pair), None),
            })
            .collect();
        Self(pairs)
    }

    /// Whether `key` is present at all (`?recurse`, `?recurse=true`: Consul only looks at presence).
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The first value of `key` (`Some("")` for a valueless key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Every value of a repeated `key` (`?tag=a&tag=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_deref().unwrap_or("")).collect()
    }

    /// A boolean flag the way Consul parses `passing`: present and empty or true-ish.
    pub fn flag(&self, key: &str) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(false),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(format!("Invalid value for {key:?}: {other:?}")),
        }
    }

    /// An unsigned integer parameter (`cas`, `flags`, `index`).
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.get(key).map(|v| v.parse::<u64>().map_err(|_| format!("Invalid {key} value: {v:?}"))).transpose()
    }

    /// The blocking-query options: `Some((index, wait))` when the request blocks (`index` > 0).
    pub fn blocking(&self) -> Result<Option<(u64, Duration)>, String> {
        let index = self.u64("index").map_err(|_| "Invalid index".to_owned())?.unwrap_or(0);
        let wait = match self.get("wait") {
            None => DEFAULT_WAIT,
            Some(w) => parse_go_duration(w).map_err(|_| "Invalid wait time".to_owned())?.min(MAX_WAIT),
        };
        Ok((index > 0).then_some((index, wait)))
    }
}

/// Parses a Go `time.Duration` string: `0`, or a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (`1h30m`, `1.5s`). Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("time: invalid duration {text:?}");
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Formats a duration the way Go prints one in check definitions (`10s`, `1m30s`, `250ms`).
pub fn format_go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Percent-decoding of one query component (`+` is a space, as Go's `url.ParseQuery` has it).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match hex_pair(bytes[i + 1], bytes[i + 2]) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decoding of a URL path (`+` stays a plus).
pub fn decode_path(text: &str) -> String {
    decode(&text.replace('+', "%2B"))
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "s", "10x", "-1s", "1s2"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn queries_keep_valueless_flags_and_decode() {
        let q = Query::parse(Some("recurse&cas=12&tag=a&tag=b%2Fc&passing=false"));
        assert!(q.has("recurse") && !q.has("keys"));
        assert_eq!(q.u64("cas"), Ok(Some(12)));
        assert_eq!(q.all("tag"), ["a", "b/c"]);
        assert_eq!(q.flag("passing"), Ok(false));
        assert_eq!(Query::parse(Some("passing")).flag("passing"), Ok(true));
        assert_eq!(decode_path("a+b%20c"), "a+b c");
    }
}
