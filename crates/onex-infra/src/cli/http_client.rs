//! A minimal HTTP/1.1 client (hyper 1 over one tokio TCP connection): one JSON POST, one reply.
//!
//! No pooling, no TLS, no redirects: the CLI talks to a host's admin API on a known address.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest response body read; anything longer is an error rather than unbounded memory.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The TCP connection could not be made (refused, unreachable, unknown host).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Connecting, sending and reading the whole reply took longer than allowed.
    #[error("no reply from {addr} within {} ms", timeout.as_millis())]
    Timeout {
        /// The address tried.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
    /// The request could not be built (an address that is not a valid `Host` header).
    #[error("invalid request to {addr}: {source}")]
    Request {
        /// The address given.
        addr: String,
        /// What was wrong.
        #[source]
        source: hyper::http::Error,
    },
    /// The HTTP exchange failed after connecting (connection reset, not HTTP, ...).
    #[error("HTTP exchange with {addr} failed: {source}")]
    Http {
        /// The address tried.
        addr: String,
        /// hyper's description.
        #[source]
        source: hyper::Error,
    },
    /// Reading the response body failed.
    #[error("reading the reply from {addr} failed: {message}")]
    Body {
        /// The address tried.
        addr: String,
        /// What went wrong (including a body over [`MAX_RESPONSE_BYTES`]).
        message: String,
    },
}

impl HttpClientError {
    /// Whether nothing was listening on the address (the host is probably not running).
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, Self::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// POSTs `body` as `application/json` to `http://{addr}{path}` and returns the response status
/// and body, whatever the status. `addr` is `host:port`; `timeout` bounds the whole exchange.
pub async fn post_json(
    addr: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpClientError> {
    match tokio::time::timeout(timeout, exchange(addr, path, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpClientError::Timeout { addr: addr.to_owned(), timeout }),
    }
}

async fn exchange(addr: &str, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), HttpClientError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, addr)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|source| HttpClientError::Request { addr: addr.to_owned(), source })?;
    let stream =
        TcpStream::connect(addr).await.map_err(|source| HttpClientError::Connect { addr: addr.to_owned(), source })?;
    let http = |source| HttpClientError::Http { addr: addr.to_owned(), source };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    // The connection task moves the bytes; a failure there surfaces through `send_request`.
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let collected = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| {
            let message = if e.is::<http_body_util::LengthLimitError>() {
                format!("reply body exceeds {MAX_RESPONSE_BYTES} bytes")
            } else {
                e.to_string()
            };
            HttpClientError::Body { addr: addr.to_owned(), message }
        })?;
        Ok((status, collected.to_bytes().to_vec()))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Accepts one connection, reads the request head and `Content-Length` bytes of body,
    /// answers `response` and returns what was received.
    async fn serve_once(listener: TcpListener, response: &'static [u8]) -> String {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed mid-request: {:?}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .map_or(0, |v| v.parse().unwrap());
                if received.len() >= end + 4 + length {
                    break;
                }
            }
        }
        socket.write_all(response).await.unwrap();
        socket.shutdown().await.unwrap();
        String::from_utf8(received).unwrap()
    }

    #[tokio::test]
    async fn posts_json_and_returns_status_and_body_of_any_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(serve_once(
            listener,
            b"HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\":false}",
        ));
        let (status, body) =
            post_json(&addr, "/v1/envelopes", br#"{"x":1}"#.to_vec(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(status, 422);
        assert_eq!(body, br#"{"a":false}"#);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /v1/envelopes HTTP/1.1\r\n"), "{request}");
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json\r\n"), "{request}");
        assert!(lower.contains(&format!("host: {addr}\r\n")), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"x\":1}"), "{request}");
    }

    #[tokio::test]
    async fn refused_connection_is_recognised_and_names_the_address() {
        // Bind then drop: the port is free, nothing listens on it.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
        let err = post_json(&addr, "/", Vec::new(), Duration::from_secs(5)).await.unwrap_err();
        assert!(err.is_connection_refused(), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot connect to {addr}: ")), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Accept and hold the connection without answering.
        let holder = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
        let err = post_json(&addr, "/", b"{}".to_vec(), Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, HttpClientError::Timeout { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("no reply from {addr} within 200 ms"));
        drop(holder);
    }
}
