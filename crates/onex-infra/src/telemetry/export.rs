//! The OTLP exporter's HTTP client: the host's pooled hyper client (rustls, public roots),
//! driven on the host's tokio runtime. The SDK's batch processor exports from a thread of its
//! own, so each request is spawned onto the runtime and awaited from there.

use bytes::Bytes;
use hyper::header::HeaderMap;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;
use url::Url;

use crate::handlers::http::HttpConfig;
use crate::handlers::http::client::{HttpClient as PooledClient, Outgoing};

/// Sends OTLP requests through a [`PooledClient`] on the runtime it was made on.
#[derive(Debug, Clone)]
pub struct OtlpClient {
    client: PooledClient,
    runtime: Handle,
}

impl OtlpClient {
    /// A client with the http handler's defaults; must be made inside a tokio runtime.
    pub fn new(data_dir: &std::path::Path) -> Result<Self, onex_spi::SpiError> {
        const WHAT: &str = "telemetry exporter";
        let settings = HttpConfig::default().client_settings(WHAT, data_dir)?;
        let runtime = Handle::try_current()
            .map_err(|e| onex_spi::SpiError::new(crate::error::codes::TELEMETRY_CONFIG, format!("{WHAT}: {e}")))?;
        Ok(Self { client: PooledClient::new(WHAT, settings)?, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())?;
        let mut headers = HeaderMap::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            headers.append(name.clone(), value.clone());
        }
        let outgoing = Outgoing { method: parts.method, url, headers, body };
        let client = self.client.clone();
        let answer = self.runtime.spawn(async move { client.send("telemetry export", outgoing, None).await }).await??;
        let mut response = Response::builder().status(answer.status);
        if let Some(headers) = response.headers_mut() {
            headers.extend(answer.headers);
        }
        Ok(response.body(answer.body)?)
    }
}
