//! A tiny std-only HTTP/1.1 client for talking JSON to test services on loopback (one request
//! per connection, `Connection: close`; fixed-length and chunked bodies).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one request may take to connect, send and read.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| format!("response is not JSON: {e}"))
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `method path` to `addr` with an optional `X-Vault-Token` and JSON body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<Response, String> {
    let target: SocketAddr = addr.parse().map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&target, IO_TIMEOUT).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let payload = body.map(serde_json::Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = token {
        head.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(payload.as_bytes()))
        .map_err(|e| format!("{method} {path}: cannot send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // Up to the end of the response, not of the connection: some servers (ChromeDriver) answer
    // `Connection: close` and keep the socket open.
    while !is_complete(&raw) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{method} {path}: cannot read the response: {e}")),
        }
    }
    parse_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
}

/// Whether `raw` holds a whole response: headers and a body of its `Content-Length`, or a
/// chunked body's last chunk. A response with neither ends with the connection.
fn is_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let value = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    if value("transfer-encoding").is_some_and(|v| v == "chunked") {
        return raw.ends_with(b"0\r\n\r\n");
    }
    value("content-length").and_then(|v| v.parse::<usize>().ok()).is_some_and(|len| raw.len() >= split + 4 + len)
}

/// Parses a whole HTTP/1.1 response (the connection was closed after it).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("response has no header end")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response header is not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len).ok_or("response body shorter than its Content-Length")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Decodes a chunked body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..end]).map_err(|_| "chunk size is not UTF-8")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{size_text}`"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("chunk shorter than its size")?);
        rest = rest.get(size + 2..).ok_or("chunk not terminated")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_at_its_length_or_last_chunk_not_at_the_connection_end() {
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nContent-Length:4\r\nConnection:close\r\n\r\nabcd"));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nuntil close"));
    }

    #[test]
    fn fixed_length_and_chunked_bodies_parse() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}trailing").unwrap();
        assert_eq!((r.status, r.json().unwrap()), (200, serde_json::json!({"a": 1})));
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(r.ok());
        assert_eq!(r.json().unwrap(), serde_json::Value::Null);
        let r = parse_response(
            b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:2}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.json().unwrap()), (400, serde_json::json!({"a": 2})));
        assert!(!r.ok());
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    }
}
