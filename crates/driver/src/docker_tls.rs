//! TLS to a Docker engine's TCP endpoint, as the docker CLI makes it for a TLS context (or
//! `DOCKER_TLS_VERIFY`): the context's `ca.pem` as the only root, `cert.pem`/`key.pem` as the
//! client's identity, the host of `tcp://HOST:PORT` as the name the engine's certificate must
//! carry, and no verification at all when the context says `SkipTLSVerify`.
//!
//! bollard makes its own TLS connections for ordinary API calls; this is for the raw
//! connections brix upgrades itself (`/grpc`, `/session`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::docker_context::ContextTls;

/// Opens a TLS connection to `host_port` (`HOST:PORT`, the address of a `tcp://` endpoint).
/// Errors are one line that names the file or the step that failed.
pub(crate) async fn connect(
    host_port: &str,
    tls: &ContextTls,
    skip_verify: bool,
) -> Result<TlsStream<TcpStream>, TlsConnectError> {
    let config = client_config(tls, skip_verify)?;
    let host = host_of(host_port);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| TlsConnectError::Setup(format!("{host:?} is not a TLS server name: {e}")))?;
    let tcp = TcpStream::connect(host_port)
        .await
        .map_err(TlsConnectError::Unreachable)?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| TlsConnectError::Handshake(e.to_string()))
}

/// Why a TLS connection to an engine was not made.
#[derive(Debug)]
pub(crate) enum TlsConnectError {
    /// The TCP connection failed (the engine is down or the address is wrong).
    Unreachable(std::io::Error),
    /// The TLS files or settings could not be used.
    Setup(String),
    /// The handshake failed (a certificate the CA did not sign, a name it does not carry, a
    /// client certificate the engine refused).
    Handshake(String),
}

/// Makes ring rustls's process-wide provider unless the program chose one. bollard's TLS
/// connections take the process default, and with both of rustls's providers compiled in
/// (bollard brings aws-lc-rs, tonic ring) there is none until one is installed.
pub(crate) fn ensure_process_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine: there is one then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for a context's TLS files.
fn client_config(
    tls: &ContextTls,
    skip_verify: bool,
) -> Result<rustls::ClientConfig, TlsConnectError> {
    let provider = ring();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConnectError::Setup(e.to_string()))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                provider.signature_verification_algorithms,
            )))
    } else {
        let Some(ca) = &tls.ca else {
            return Err(TlsConnectError::Setup(
                "the context's TLS endpoint has no ca.pem to verify the engine with (give the context a ca, or set SkipTLSVerify)".into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| TlsConnectError::Setup(format!("{}: {e}", ca.display())))?;
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                TlsConnectError::Setup(format!("{}: no private key: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsConnectError::Setup(format!("{}: {e}", cert.display())))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsConnectError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsConnectError::Setup(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsConnectError::Setup(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// `HOST` of `HOST:PORT` (`[::1]:2376` → `::1`).
fn host_of(host_port: &str) -> &str {
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The docker CLI's `InsecureSkipVerify`: any certificate is accepted, signatures are still
/// checked so the handshake itself is sound.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_endpoints_host() {
        assert_eq!(host_of("127.0.0.1:2376"), "127.0.0.1");
        assert_eq!(host_of("docker.example:2376"), "docker.example");
        assert_eq!(host_of("[::1]:2376"), "::1");
    }

    #[test]
    fn a_verifying_context_without_a_ca_is_refused_before_connecting() {
        let tls = ContextTls {
            ca: None,
            cert: None,
            key: None,
        };
        let Err(TlsConnectError::Setup(message)) = client_config(&tls, false) else {
            panic!("expected a set-up error");
        };
        assert!(message.contains("ca.pem"), "{message}");
        assert!(client_config(&tls, true).is_ok());
    }

    #[test]
    fn an_unreadable_certificate_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").expect("write");
        let tls = ContextTls {
            ca: Some(ca.clone()),
            cert: None,
            key: None,
        };
        let Err(TlsConnectError::Setup(message)) = client_config(&tls, false) else {
            panic!("expected a set-up error");
        };
        assert!(message.contains(&ca.display().to_string()), "{message}");
    }
}
