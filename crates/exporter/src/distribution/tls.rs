//! TLS to one registry as Docker sets it up: the system's roots, plus the CA files of
//! Docker's convention (`/etc/docker/certs.d/HOST[:PORT]/*.crt`, the directory named exactly
//! as the registry is written) and the builder's `buildkitd.toml` (`[registry."HOST"] ca`);
//! client certificates from the same places (`*.cert` with its `*.key`, and
//! `[[registry."HOST".keypair]]`).
//!
//! Verification is webpki's, with one addition: a certificate that is itself one of the
//! configured CA certificates is accepted when it names the host and is within its validity,
//! as Go's `crypto/x509` accepts a leaf found in the root pool. That is the certificate
//! Docker's registry documentation tells people to make (one `openssl req -x509`
//! certificate, `CA:TRUE`, served as the registry's), which webpki alone refuses as a CA used
//! as an end entity. Docker, BuildKit and buildx accept it; so does brix.
//!
//! Failed handshakes become one [`CertificateProblem`]: what was wrong, in Go's words where
//! users know them ("certificate signed by unknown authority"), and what to do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};

use super::x509;

/// Where Docker keeps per-registry CA and client certificate files.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// A PEM file's contents and where they came from (for messages). Its `Debug` shows only the
/// origin: a private key never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where the bytes came from: a path, or the builder's copy of one.
    pub origin: String,
    /// The PEM text.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemFile")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A client certificate (with the chain after it) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeyPair {
    /// The certificate chain, leaf first.
    pub cert: PemFile,
    /// The private key.
    pub key: PemFile,
}

/// TLS settings for one registry beyond Docker's `certs.d` folder: what a builder's
/// `buildkitd.toml` says about it (`[registry."HOST"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryTls {
    /// `insecure = true`: HTTPS without verifying the registry's certificate, as buildkitd
    /// does.
    pub skip_verify: bool,
    /// CA certificates to trust besides the system's (`ca = [...]`).
    pub ca: Vec<PemFile>,
    /// Client certificates to present (`[[registry."HOST".keypair]]`).
    pub keypairs: Vec<ClientKeyPair>,
}

/// Everything one registry's TLS uses, read and parsed.
#[derive(Debug)]
pub(crate) struct HostTls {
    /// `host[:port]` as written.
    registry: String,
    /// The registry's `certs.d` folder (for messages, whether it exists or not).
    certs_dir: PathBuf,
    extra_cas: Vec<CertificateDer<'static>>,
    client: Option<(Arc<CertifiedKey>, String)>,
    skip_verify: bool,
}

impl HostTls {
    /// Reads `certs_root/REGISTRY/` (Docker's layout; a missing folder is fine) and takes the
    /// builder's settings for the registry. The error is one line naming the file.
    pub(crate) fn load(
        registry: &str,
        configured: Option<&RegistryTls>,
        certs_root: &Path,
    ) -> Result<HostTls, String> {
        let certs_dir = certs_root.join(registry);
        let (mut cas, mut pairs) = read_certs_dir(&certs_dir)?;
        let mut skip_verify = false;
        if let Some(configured) = configured {
            skip_verify = configured.skip_verify;
            cas.extend(configured.ca.iter().cloned());
            pairs.extend(configured.keypairs.iter().cloned());
        }
        let mut extra_cas = Vec::new();
        for ca in &cas {
            let certs = certificates(ca)?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", ca.origin));
            }
            extra_cas.extend(certs);
        }
        // Go's tls takes the first pair that suits the server; the first one is what every
        // registry set-up with one pair needs.
        let client = match pairs.first() {
            Some(pair) => Some((Arc::new(certified_key(pair)?), pair.cert.origin.clone())),
            None => None,
        };
        Ok(HostTls {
            registry: registry.to_owned(),
            certs_dir,
            extra_cas,
            client,
            skip_verify,
        })
    }

    /// The rustls configuration for the registry's connections (HTTP/1.1), and the notes its
    /// handshakes leave for error messages.
    pub(crate) fn client_config(
        &self,
    ) -> Result<(rustls::ClientConfig, Arc<HandshakeNotes>), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(RegistryVerifier {
            extra_cas: self.extra_cas.clone(),
            skip_verify: self.skip_verify,
            provider: provider.clone(),
            webpki: OnceLock::new(),
        });
        let notes = Arc::new(HandshakeNotes::default());
        let resolver = Arc::new(ClientCertificate {
            key: self.client.as_ref().map(|(k, _)| k.clone()),
            notes: notes.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("setting up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((config, notes))
    }

    /// Whether a client certificate is configured.
    #[cfg(test)]
    pub(crate) fn has_client_certificate(&self) -> bool {
        self.client.is_some()
    }

    /// What a failed handshake means, and what to do about it.
    pub(crate) fn describe(
        &self,
        err: &rustls::Error,
        notes: &HandshakeNotes,
    ) -> CertificateProblem {
        let registry = &self.registry;
        let host = super::registry_host(registry);
        let certs_dir = self.certs_dir.display();
        let trust = format!(
            "to trust it, put the registry's CA certificate (for a self-signed certificate, the \
             certificate itself) in {certs_dir}/ca.crt, or name it in the builder's \
             buildkitd.toml: [registry.\"{registry}\"] ca = [\"…\"]"
        );
        let client_needed = format!(
            "put client.cert and client.key in {certs_dir}/, or give the builder's \
             buildkitd.toml a [[registry.\"{registry}\".keypair]] with key and cert"
        );
        let asked = notes.client_certificate_requested();
        let (problem, remedy) = match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => {
                    ("certificate signed by unknown authority".to_owned(), trust)
                }
                CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => (
                    "certificate signed by unknown authority (the registry's certificate is a \
                     self-signed CA certificate this machine does not trust)"
                        .to_owned(),
                    trust,
                ),
                CertificateError::NotValidForName => (
                    format!("the certificate is not valid for {host}"),
                    format!(
                        "reach the registry by a name its certificate carries, or give it a \
                         certificate whose subjectAltName lists {host}"
                    ),
                ),
                CertificateError::NotValidForNameContext { presented, .. } => (
                    format!(
                        "the certificate is not valid for {host}, only for {}",
                        presented
                            .iter()
                            .map(|name| presented_name(name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!(
                        "reach the registry by a name its certificate carries, or give it a \
                         certificate whose subjectAltName lists {host}"
                    ),
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                    match cert {
                        CertificateError::ExpiredContext { not_after, .. } => format!(
                            "the certificate has expired (valid until {})",
                            x509::date(not_after.as_secs())
                        ),
                        _ => "the certificate has expired".to_owned(),
                    },
                    "renew the registry's certificate, or check this machine's clock".to_owned(),
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                    match cert {
                        CertificateError::NotValidYetContext { not_before, .. } => format!(
                            "the certificate is not valid yet (valid from {})",
                            x509::date(not_before.as_secs())
                        ),
                        _ => "the certificate is not valid yet".to_owned(),
                    },
                    "check this machine's clock".to_owned(),
                ),
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                    "the certificate is not for TLS servers (its extended key usage lacks serverAuth)"
                        .to_owned(),
                    "give the registry a server certificate".to_owned(),
                ),
                other => (format!("the certificate was refused: {other}"), trust),
            },
            rustls::Error::AlertReceived(alert) => match alert {
                AlertDescription::CertificateRequired => {
                    client_problem(self.client.as_ref(), &client_needed)
                }
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied
                | AlertDescription::HandshakeFailure
                    if asked =>
                {
                    client_problem(self.client.as_ref(), &client_needed)
                }
                other => (
                    format!("the registry ended the TLS handshake ({other:?})"),
                    "check the registry's TLS settings".to_owned(),
                ),
            },
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
                "the registry does not answer TLS on this port".to_owned(),
                format!(
                    "if it speaks plain HTTP, mark it http = true in the builder's \
                     buildkitd.toml ([registry.\"{registry}\"])"
                ),
            ),
            other => (
                format!("TLS handshake failed: {other}"),
                "check the registry's TLS settings".to_owned(),
            ),
        };
        CertificateProblem { problem, remedy }
    }

    /// The problem when the registry wanted a client certificate (seen after the handshake,
    /// as nginx answers: HTTP 400), if it asked for one.
    pub(crate) fn client_certificate_refused(
        &self,
        notes: &HandshakeNotes,
    ) -> Option<CertificateProblem> {
        if !notes.client_certificate_requested() {
            return None;
        }
        let needed = format!(
            "put client.cert and client.key in {}/, or give the builder's buildkitd.toml a \
             [[registry.\"{}\".keypair]] with key and cert",
            self.certs_dir.display(),
            self.registry
        );
        let (problem, remedy) = client_problem(self.client.as_ref(), &needed);
        Some(CertificateProblem { problem, remedy })
    }
}

/// `registry.example` of webpki's `DnsName("registry.example")`.
fn presented_name(name: &str) -> &str {
    name.split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(name)
}

fn client_problem(client: Option<&(Arc<CertifiedKey>, String)>, needed: &str) -> (String, String) {
    match client {
        None => (
            "the registry requires a client certificate and none is configured".to_owned(),
            needed.to_owned(),
        ),
        Some((_, origin)) => (
            format!("the registry refused the client certificate {origin}"),
            "use a client certificate signed by a CA the registry trusts".to_owned(),
        ),
    }
}

/// A failed TLS handshake, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateProblem {
    /// What was wrong.
    pub problem: String,
    /// What to do.
    pub remedy: String,
}

/// What the handshakes of a registry's connections saw that their errors do not say.
#[derive(Debug, Default)]
pub(crate) struct HandshakeNotes {
    client_certificate_requested: AtomicBool,
}

impl HandshakeNotes {
    /// Whether the registry asked for a client certificate.
    pub(crate) fn client_certificate_requested(&self) -> bool {
        self.client_certificate_requested.load(Ordering::Relaxed)
    }
}

/// Docker's `certs.d` folder for one registry: `*.crt` are CAs, `*.cert` client certificates
/// each with the `*.key` of the same name. As Docker: a missing folder is no error, a
/// certificate without its key (or a key without its certificate) is.
fn read_certs_dir(dir: &Path) -> Result<(Vec<PemFile>, Vec<ClientKeyPair>), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let read = |name: &str| -> Result<PemFile, String> {
        let path = dir.join(name);
        std::fs::read(&path)
            .map(|pem| PemFile {
                origin: path.display().to_string(),
                pem,
            })
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut cas = Vec::new();
    let mut pairs = Vec::new();
    for name in &names {
        if name.ends_with(".crt") {
            cas.push(read(name)?);
        } else if let Some(base) = name.strip_suffix(".cert") {
            let key = format!("{base}.key");
            if !names.contains(&key) {
                return Err(format!(
                    "{}: missing key {key} for client certificate {name} (CA certificates must end in .crt)",
                    dir.display()
                ));
            }
            pairs.push(ClientKeyPair {
                cert: read(name)?,
                key: read(&key)?,
            });
        } else if let Some(base) = name.strip_suffix(".key") {
            let cert = format!("{base}.cert");
            if !names.contains(&cert) {
                return Err(format!(
                    "{}: missing client certificate {cert} for key {name}",
                    dir.display()
                ));
            }
        }
    }
    Ok((cas, pairs))
}

fn certificates(file: &PemFile) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(&file.pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", file.origin))
}

fn certified_key(pair: &ClientKeyPair) -> Result<CertifiedKey, String> {
    let chain = certificates(&pair.cert)?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", pair.cert.origin));
    }
    let key = PrivateKeyDer::from_pem_slice(&pair.key.pem)
        .map_err(|_| format!("{} holds no PEM private key", pair.key.origin))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).map_err(|e| {
        format!(
            "cannot use the client key pair {} and {}: {e}",
            pair.cert.origin, pair.key.origin
        )
    })
}

/// The system's roots (honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`), read once per process.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::debug!(errors = ?found.errors, "some system root certificates could not be read");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system root certificates");
        roots
    })
}

/// Reads the system's roots ahead of the first handshake (it takes a few milliseconds).
pub(crate) fn preload_system_roots() {
    let _ = system_roots();
}

/// webpki against the system's roots and the configured CAs; then Go's rule for a leaf that
/// is one of the configured CAs.
#[derive(Debug)]
struct RegistryVerifier {
    extra_cas: Vec<CertificateDer<'static>>,
    skip_verify: bool,
    provider: Arc<CryptoProvider>,
    /// Built at the first handshake: plain-HTTP registries never read the system's roots.
    webpki: OnceLock<Option<Arc<WebPkiServerVerifier>>>,
}

impl RegistryVerifier {
    fn webpki(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        self.webpki
            .get_or_init(|| {
                let mut roots = system_roots().clone();
                let (_, ignored) = roots.add_parsable_certificates(self.extra_cas.iter().cloned());
                if ignored > 0 {
                    tracing::debug!(
                        ignored,
                        "configured CA certificates webpki cannot use as roots"
                    );
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

impl ServerCertVerifier for RegistryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.skip_verify {
            return Ok(ServerCertVerified::assertion());
        }
        let verdict = match self.webpki() {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(CertificateError::UnknownIssuer.into()),
        };
        match verdict {
            Ok(verified) => Ok(verified),
            Err(err)
                if self
                    .extra_cas
                    .iter()
                    .any(|ca| ca.as_ref() == end_entity.as_ref()) =>
            {
                tracing::debug!(error = %err, "the registry's certificate is a configured CA: checking it as Go does");
                leaf_in_root_pool(end_entity, server_name, now)
            }
            Err(err) => Err(err),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Go's checks for a leaf found in the root pool: trusted as it is (no chain, no signature:
/// it is the very certificate configured), so only its names, its validity and its key usage
/// count. The handshake signature is still checked against its key.
fn leaf_in_root_pool(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let facts = x509::read(end_entity.as_ref()).ok_or(CertificateError::BadEncoding)?;
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if time < facts.not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix_time(facts.not_before),
        }
        .into());
    }
    if time > facts.not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix_time(facts.not_after),
        }
        .into());
    }
    if !facts.server_auth {
        return Err(CertificateError::InvalidPurpose.into());
    }
    Ok(ServerCertVerified::assertion())
}

fn unix_time(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(secs).unwrap_or(0),
    ))
}

/// Presents the configured client certificate, and notes that the registry asked for one.
#[derive(Debug)]
struct ClientCertificate {
    key: Option<Arc<CertifiedKey>>,
    notes: Arc<HandshakeNotes>,
}

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.notes
            .client_certificate_requested
            .store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The rustls error somewhere in `err`'s chain of causes.
pub(crate) fn rustls_cause<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    super::retry::cause::<rustls::Error>(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    pub(crate) const SELF_SIGNED_CRT: &str = include_str!("testdata/self-signed.crt");
    const SELF_SIGNED_KEY: &str = include_str!("testdata/self-signed.key");
    const CLIENT_CA_CRT: &str = include_str!("testdata/client-ca.crt");
    const CLIENT_CERT: &str = include_str!("testdata/client.cert");
    const CLIENT_KEY: &str = include_str!("testdata/client.key");

    fn pem(origin: &str, text: &str) -> PemFile {
        PemFile {
            origin: origin.into(),
            pem: text.as_bytes().to_vec(),
        }
    }

    fn server_config(client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(SELF_SIGNED_CRT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// A real handshake in memory (and one request line each way, so the server's verdict on
    /// a client certificate reaches the client): the client's result.
    async fn handshake(
        host: &HostTls,
        name: &str,
        client_ca: Option<&str>,
    ) -> Result<(), rustls::Error> {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(client_ca));
        let server = tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(server_io).await {
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).await.is_ok() {
                    let _ = tls.write_all(b"pong").await;
                    let _ = tls.flush().await;
                }
            }
        });
        let (config, _) = host.client_config().unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let result = async {
            let mut tls = connector.connect(server_name, client_io).await?;
            tls.write_all(b"ping").await?;
            tls.flush().await?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        let _ = server.await;
        result.map_err(|e| {
            rustls_cause(&e)
                .cloned()
                .unwrap_or_else(|| rustls::Error::General(e.to_string()))
        })
    }

    fn host(configured: Option<RegistryTls>) -> HostTls {
        HostTls::load(
            "registry.brix.test:5443",
            configured.as_ref(),
            Path::new("/nonexistent/certs.d"),
        )
        .unwrap()
    }

    fn trusting_itself() -> RegistryTls {
        RegistryTls {
            ca: vec![pem("ca.crt", SELF_SIGNED_CRT)],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_self_signed_ca_served_as_the_leaf_is_accepted_when_configured() {
        handshake(&host(Some(trusting_itself())), "registry.brix.test", None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_same_certificate_untrusted_says_unknown_authority_and_where_the_ca_goes() {
        let host = host(None);
        let err = handshake(&host, "registry.brix.test", None)
            .await
            .unwrap_err();
        let problem = host.describe(&err, &HandshakeNotes::default());
        assert!(
            problem
                .problem
                .contains("certificate signed by unknown authority"),
            "{problem:?}"
        );
        assert!(
            problem
                .remedy
                .contains("/nonexistent/certs.d/registry.brix.test:5443/ca.crt"),
            "{problem:?}"
        );
        assert!(
            problem
                .remedy
                .contains("[registry.\"registry.brix.test:5443\"] ca"),
            "{problem:?}"
        );
    }

    #[tokio::test]
    async fn a_trusted_leaf_still_has_to_name_the_host() {
        let other = HostTls::load(
            "other.brix.test:5443",
            Some(&trusting_itself()),
            Path::new("/nonexistent/certs.d"),
        )
        .unwrap();
        let err = handshake(&other, "other.brix.test", None)
            .await
            .unwrap_err();
        let problem = other.describe(&err, &HandshakeNotes::default());
        assert_eq!(
            problem.problem,
            "the certificate is not valid for other.brix.test, only for registry.brix.test"
        );
    }

    #[test]
    fn a_trusted_leaf_still_has_to_be_within_its_validity() {
        let der = CertificateDer::from_pem_slice(SELF_SIGNED_CRT.as_bytes()).unwrap();
        let name = ServerName::try_from("registry.brix.test").unwrap();
        let at = |secs: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        assert!(leaf_in_root_pool(&der, &name, at(1_800_000_000)).is_ok());
        let late = leaf_in_root_pool(&der, &name, at(5_000_000_000)).unwrap_err();
        assert!(
            matches!(
                late,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{late:?}"
        );
        let early = leaf_in_root_pool(&der, &name, at(1_000_000_000)).unwrap_err();
        let problem = host(None).describe(&early, &HandshakeNotes::default());
        assert_eq!(
            problem.problem,
            "the certificate is not valid yet (valid from 2026-12-02)"
        );
    }

    #[tokio::test]
    async fn skip_verify_accepts_anything() {
        let host = host(Some(RegistryTls {
            skip_verify: true,
            ..Default::default()
        }));
        handshake(&host, "whatever.example", None).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_and_its_absence_explained() {
        let without = host(Some(trusting_itself()));
        let err = handshake(&without, "registry.brix.test", Some(CLIENT_CA_CRT))
            .await
            .unwrap_err();
        // TLS 1.3: the server's `certificate_required` alert says it all.
        let problem = without.describe(&err, &HandshakeNotes::default());
        assert_eq!(
            problem.problem, "the registry requires a client certificate and none is configured",
            "{err:?}"
        );
        assert!(
            problem.remedy.contains(
                "client.cert and client.key in /nonexistent/certs.d/registry.brix.test:5443/"
            ),
            "{problem:?}"
        );

        let mut with_pair = trusting_itself();
        with_pair.keypairs.push(ClientKeyPair {
            cert: pem("client.cert", CLIENT_CERT),
            key: pem("client.key", CLIENT_KEY),
        });
        let with = host(Some(with_pair));
        assert!(with.has_client_certificate());
        handshake(&with, "registry.brix.test", Some(CLIENT_CA_CRT))
            .await
            .unwrap();
    }

    #[test]
    fn docker_certs_d_pairs_need_both_halves() {
        let dir = tempfile::tempdir().unwrap();
        let registry_dir = dir.path().join("registry.brix.test:5443");
        std::fs::create_dir_all(&registry_dir).unwrap();
        std::fs::write(registry_dir.join("ca.crt"), SELF_SIGNED_CRT).unwrap();
        std::fs::write(registry_dir.join("client.cert"), CLIENT_CERT).unwrap();
        let err = HostTls::load("registry.brix.test:5443", None, dir.path()).unwrap_err();
        assert!(
            err.contains("missing key client.key for client certificate client.cert"),
            "{err}"
        );
        std::fs::write(registry_dir.join("client.key"), CLIENT_KEY).unwrap();
        let loaded = HostTls::load("registry.brix.test:5443", None, dir.path()).unwrap();
        assert_eq!(loaded.extra_cas.len(), 1);
        assert!(loaded.has_client_certificate());
        // Docker looks the folder up by the registry exactly as written.
        let other = HostTls::load("registry.brix.test", None, dir.path()).unwrap();
        assert!(other.extra_cas.is_empty() && !other.has_client_certificate());
    }

    #[test]
    fn key_material_never_shows_in_debug_output() {
        let pair = ClientKeyPair {
            cert: pem("client.cert", CLIENT_CERT),
            key: pem("client.key", CLIENT_KEY),
        };
        let printed = format!("{pair:?}");
        assert!(
            !printed.contains("PRIVATE KEY") && !printed.contains("BEGIN"),
            "{printed}"
        );
    }
}
