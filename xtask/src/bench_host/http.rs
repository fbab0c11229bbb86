//! A minimal HTTP/1.1 client over `std::net::TcpStream` for `bench-host`: one request at a time
//! on a keep-alive connection, responses framed by `Content-Length` (what axum sends).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: its status code and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// The body, `Content-Length` bytes (or up to the end of the stream without one).
    pub body: Vec<u8>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads one response from `reader`: status line, headers, then the body. A response without
/// `Content-Length` is read to the end of the stream; chunked bodies are refused.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    let mut parts = line.split_ascii_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    };
    let status = status.ok_or_else(|| invalid(format!("bad status line {:?}", line.trim_end())))?;
    let mut content_length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the headers"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| invalid(format!("bad header line {header:?}")))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err(invalid(format!("unsupported Transfer-Encoding {value:?}")));
        }
    }
    let mut body = Vec::new();
    match content_length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(Response { status, body })
}

/// The bytes of a request (`body` with its `Content-Length` when given).
pub fn request_bytes(method: &str, path: &str, host: &str, body: Option<&[u8]>, close: bool) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(
            format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A keep-alive connection.
#[derive(Debug)]
pub struct Connection {
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    /// Connects to `addr` (waiting at most `timeout`, also for each read).
    pub fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        Ok(Self { host: addr.to_string(), reader: BufReader::with_capacity(16 * 1024, stream), writer })
    }

    /// Sends one request and reads its response.
    pub fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>, close: bool) -> io::Result<Response> {
        self.writer.write_all(&request_bytes(method, path, &self.host, body, close))?;
        read_response(&mut self.reader)
    }
}

/// `GET path` on a new connection closed afterwards.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Response> {
    Connection::open(addr, timeout)?.send("GET", path, None, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keep_alive_responses_one_after_the_other() {
        let bytes = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\":\"b\\r\"}\
HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}";
        let mut reader = &bytes[..];
        let first = read_response(&mut reader).unwrap();
        assert_eq!(first, Response { status: 200, body: br#"{"a":"b\r"}"#.to_vec() });
        let second = read_response(&mut reader).unwrap();
        assert_eq!(second, Response { status: 503, body: b"{}".to_vec() });
        assert_eq!(read_response(&mut reader).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn reads_to_the_end_without_content_length_and_refuses_garbage() {
        let mut reader = &b"HTTP/1.0 404 Not Found\r\n\r\nnope"[..];
        assert_eq!(read_response(&mut reader).unwrap(), Response { status: 404, body: b"nope".to_vec() });
        let mut reader = &b"SSH-2.0-OpenSSH\r\n\r\n"[..];
        assert_eq!(read_response(&mut reader).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut reader = &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..];
        assert_eq!(read_response(&mut reader).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut reader = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"[..];
        assert_eq!(read_response(&mut reader).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn requests_carry_their_content_length() {
        let bytes = request_bytes("POST", "/v1/envelopes", "127.0.0.1:1", Some(b"{}"), false);
        assert_eq!(
            bytes,
            b"POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
