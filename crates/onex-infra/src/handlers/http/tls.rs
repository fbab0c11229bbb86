//! TLS for the shared HTTP client: rustls on ring, trusting the public (webpki) roots, a
//! configured CA bundle instead, or (testing only) any certificate.

use std::sync::Arc;

use onex_spi::{SpiError, SpiResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::TlsSettings;
use crate::error::codes;

/// The rustls client configuration `settings` describe; `what` names the config in errors.
pub(crate) fn client_config(what: &str, settings: &TlsSettings) -> SpiResult<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SpiError::new(codes::BAD_PAYLOAD, format!("{what}: TLS: {e}")))?;
    if settings.insecure_skip_verify {
        tracing::warn!("{what}: insecure_skip_verify is on: any server certificate is accepted");
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|e| {
                SpiError::new(codes::BAD_PAYLOAD, format!("{what}: ca_file {shown}: cannot read it")).with_source(e)
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    SpiError::new(codes::BAD_PAYLOAD, format!("{what}: ca_file {shown}: not a PEM bundle: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    SpiError::new(codes::BAD_PAYLOAD, format!("{what}: ca_file {shown}: a certificate is refused: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(SpiError::new(codes::BAD_PAYLOAD, format!("{what}: ca_file {shown} holds no certificate")));
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Accepts every server certificate, still checking that the handshake is signed by its key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
