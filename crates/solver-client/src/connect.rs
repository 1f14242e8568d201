//! Transports to a BuildKit daemon: unix sockets, TCP (optionally TLS) and caller-supplied
//! byte streams (`docker exec buildctl dial-stdio`, dockerd's upgraded `/grpc` connection).
//!
//! Every transport carries HTTP/2 gRPC with prior knowledge (h2c), or HTTP/2 over TLS with
//! ALPN `h2` for TCP+TLS, exactly as buildkitd and dockerd expect.

use crate::control::ClientError;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long one connection attempt may take before it counts as unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Authority used on transports where the URI is not used to reach the daemon (unix
/// sockets, custom streams). buildkitd and dockerd ignore it.
const PLACEHOLDER_URI: &str = "http://buildkitd";

/// TLS settings for a `tcp://` BuildKit endpoint, as buildx's remote driver takes them
/// (`cacert`, `cert`, `key`, `servername`). buildkitd verifies client certificates when it
/// has a CA configured, so `cert` and `key` are usually required.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// PEM CA certificate(s) that signed the daemon's certificate.
    pub ca_cert_pem: Vec<u8>,
    /// PEM client certificate and key, presented to the daemon.
    pub client_identity: Option<ClientIdentity>,
    /// Name to verify the daemon's certificate against (and to send as SNI); defaults to
    /// the endpoint's host.
    pub server_name: Option<String>,
}

/// A PEM client certificate and its private key.
#[derive(Clone)]
pub struct ClientIdentity {
    /// PEM certificate (chain).
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_cert_pem_bytes", &self.ca_cert_pem.len())
            .field("client_identity", &self.client_identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsConfig {
    /// TLS that trusts the given PEM CA and presents no client certificate.
    pub fn new(ca_cert_pem: impl Into<Vec<u8>>) -> Self {
        TlsConfig {
            ca_cert_pem: ca_cert_pem.into(),
            client_identity: None,
            server_name: None,
        }
    }

    /// Presents this PEM client certificate and key to the daemon.
    pub fn with_client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some(ClientIdentity {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// Verifies the daemon's certificate against `name` instead of the endpoint host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Reads the files buildx's remote driver options name: `cacert`, and `cert` with
    /// `key` (both or neither).
    pub fn from_files(
        ca_cert: &Path,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| ClientError::ReadTlsFile {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let mut config = TlsConfig::new(read("CA certificate", ca_cert)?);
        match (client_cert, client_key) {
            (Some(cert), Some(key)) => {
                config = config.with_client_identity(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                );
            }
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(ClientError::Tls {
                    endpoint: ca_cert.display().to_string(),
                    reason: "a client certificate and a client key must be given together \
                             (set both `cert` and `key`, or neither)"
                        .to_owned(),
                });
            }
        }
        Ok(config)
    }

    fn to_tonic(&self, host: &str) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_cert_pem))
            .domain_name(self.server_name.clone().unwrap_or_else(|| host.to_owned()));
        if let Some(identity) = &self.client_identity {
            tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        tls
    }
}

/// A BuildKit address, as buildx and buildctl write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddress {
    /// `unix:///run/buildkit/buildkitd.sock`
    Unix(PathBuf),
    /// `tcp://host:port`: host and port.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl DaemonAddress {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub fn parse(address: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidAddress {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = address.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("the socket path is empty"));
            }
            return Ok(DaemonAddress::Unix(PathBuf::from(path)));
        }
        let Some(rest) = address.strip_prefix("tcp://") else {
            return Err(invalid(
                "expected unix:///path/to/buildkitd.sock or tcp://host:port",
            ));
        };
        let rest = rest.trim_end_matches('/');
        let uri: http::Uri = format!("http://{rest}")
            .parse()
            .map_err(|_| invalid("not a valid host:port"))?;
        if uri.path() != "/" || uri.query().is_some() {
            return Err(invalid("a tcp address has no path: use tcp://host:port"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("the host is missing"))?;
        let port = uri
            .port_u16()
            .ok_or_else(|| invalid("the port is missing: use tcp://host:port"))?;
        Ok(DaemonAddress::Tcp {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonAddress::Unix(path) => write!(f, "unix://{}", path.display()),
            DaemonAddress::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            DaemonAddress::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// Opens a channel over a unix socket.
pub(crate) async fn unix_channel(path: &Path) -> Result<Channel, ClientError> {
    let endpoint = format!("unix://{}", path.display());
    let path = path.to_path_buf();
    stream_channel(&endpoint, move || {
        let path = path.clone();
        async move { tokio::net::UnixStream::connect(path).await }
    })
    .await
}

/// Opens a channel over TCP, with TLS when `tls` is given.
pub(crate) async fn tcp_channel(
    host: &str,
    port: u16,
    tls: Option<&TlsConfig>,
) -> Result<Channel, ClientError> {
    let address = DaemonAddress::Tcp {
        host: host.to_owned(),
        port,
    }
    .to_string();
    let authority = address.trim_start_matches("tcp://");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .map_err(|err| ClientError::InvalidAddress {
            address: address.clone(),
            reason: err.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.to_tonic(host))
            .map_err(|err| ClientError::Tls {
                endpoint: address.clone(),
                reason: crate::control::error_chain(&err),
            })?;
    }
    endpoint
        .connect()
        .await
        .map_err(|err| ClientError::unreachable(&address, &err))
}

/// Opens a channel whose connections are byte streams made by `connect`; it is called
/// again whenever the channel reconnects.
pub(crate) async fn stream_channel<F, Fut, S>(
    endpoint_label: &str,
    connect: F,
) -> Result<Channel, ClientError>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    Endpoint::from_static(PLACEHOLDER_URI)
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(StreamConnector { connect })
        .await
        .map_err(|err| ClientError::unreachable(endpoint_label, &err))
}

/// Adapts "make me a fresh stream" to the `tower` connector tonic's channel wants.
struct StreamConnector<F> {
    connect: F,
}

type ConnectFuture<S> = Pin<Box<dyn Future<Output = io::Result<TokioIo<S>>> + Send>>;

impl<F, Fut, S> tower_service::Service<http::Uri> for StreamConnector<F>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Response = TokioIo<S>;
    type Error = io::Error;
    type Future = ConnectFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let stream = (self.connect)();
        Box::pin(async move { stream.await.map(TokioIo::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_addresses() {
        assert_eq!(
            DaemonAddress::parse("unix:///run/buildkit/buildkitd.sock").ok(),
            Some(DaemonAddress::Unix(PathBuf::from(
                "/run/buildkit/buildkitd.sock"
            )))
        );
        assert_eq!(
            DaemonAddress::parse("tcp://10.0.0.5:1234").ok(),
            Some(DaemonAddress::Tcp {
                host: "10.0.0.5".into(),
                port: 1234
            })
        );
        let v6 = DaemonAddress::parse("tcp://[::1]:1234").ok();
        assert_eq!(
            v6,
            Some(DaemonAddress::Tcp {
                host: "::1".into(),
                port: 1234
            })
        );
        assert_eq!(
            v6.map(|a| a.to_string()).as_deref(),
            Some("tcp://[::1]:1234")
        );
    }

    #[test]
    fn rejects_bad_addresses_with_the_address_in_the_message() {
        for bad in [
            "tcp://host",
            "http://host:1",
            "unix://",
            "tcp://host:1/x",
            "tcp://:1",
        ] {
            let err = DaemonAddress::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn client_cert_without_key_is_rejected() {
        let dir = std::env::temp_dir().join(format!("brix-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, b"not checked here").expect("write ca");
        let err = TlsConfig::from_files(&ca, Some(&ca), None).expect_err("cert without key");
        assert!(err.to_string().contains("together"), "{err}");
        let ok = TlsConfig::from_files(&ca, None, None).expect("ca only");
        assert_eq!(ok.ca_cert_pem, b"not checked here");
        let missing =
            TlsConfig::from_files(&dir.join("nope.pem"), None, None).expect_err("missing file");
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_does_not_print_keys() {
        let tls = TlsConfig::new("CA").with_client_identity("CERT", "SECRET-KEY");
        assert!(!format!("{tls:?}").contains("SECRET-KEY"));
    }
}
