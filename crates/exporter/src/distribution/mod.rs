//! brix's own client of the OCI Distribution API, on reqwest (HTTP/1.1, kept-alive
//! connections, one pool per registry) and rustls with ring: blobs (`HEAD`/`GET`, monolithic
//! upload — `POST …/blobs/uploads/` then one streamed `PUT ?digest=` — and cross-repository
//! mounts), manifests (`GET`/`PUT` with their media types).
//!
//! Every request goes through one path: the registry's challenge learnt once (`GET /v2/`),
//! the `Authorization` its scopes need ([`auth`]), and [`retry`]'s rules — 5xx, 429, 408,
//! dropped connections and timeouts tried again with exponential backoff (or the registry's
//! `Retry-After`, capped), up to the configured number of tries; a 401 on a token drops it and
//! authenticates once more. An upload that fails mid-body starts again from a new upload
//! session with a freshly opened body. TLS is [`tls`]'s: Docker's `certs.d` files, the
//! builder's `buildkitd.toml`, and Go's acceptance of a leaf that is itself a trusted CA.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod retry;
pub mod tls;
mod x509;

use std::sync::Arc;
use std::time::Duration;

use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::Url;

use crate::auth::Credentials;
use crate::error::{Error, Result};
use auth::{Authenticator, Scope};
use body::UploadBody;
use retry::Failure;
use tls::{HandshakeNotes, HostTls};

/// How one registry is spoken to.
pub(crate) struct ClientSettings {
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// The Docker config's credentials for it.
    pub credentials: Option<Credentials>,
    /// Its TLS material.
    pub tls: HostTls,
    /// Tries per request.
    pub attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Idle connections kept (as many as uploads run at once).
    pub max_idle: usize,
}

/// What a cross-repository mount did.
pub(crate) enum Mount {
    /// The registry linked the blob.
    Mounted,
    /// It declined, and opened an upload session instead.
    Upload(Url),
    /// It declined (or failed): upload as usual.
    Declined,
}

/// The client of one registry (`host[:port]`).
pub(crate) struct RegistryClient {
    registry: String,
    base: Url,
    http: reqwest::Client,
    auth: Authenticator,
    tls: HostTls,
    notes: Arc<HandshakeNotes>,
    attempts: u32,
    initial_backoff: Duration,
    pinged: tokio::sync::OnceCell<()>,
}

/// One exchange's outcome.
enum Exchange {
    Answer(reqwest::Response),
    Unauthorized {
        headers: http::HeaderMap,
        used: Option<http::HeaderValue>,
    },
    Failed(Failure),
}

/// The most of an error answer's body read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl RegistryClient {
    /// A client for `registry`; nothing is contacted yet.
    pub(crate) fn new(registry: &str, settings: ClientSettings) -> Result<Self> {
        let setup = |reason: String| Error::Registry {
            registry: registry.to_owned(),
            operation: "setting up the HTTP client".into(),
            reason,
        };
        let scheme = if settings.plain_http { "http" } else { "https" };
        // Docker Hub's API is served under another name than its references use.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| setup(format!("{host} is not a host name: {e}")))?;
        let (tls_config, notes) = settings.tls.client_config().map_err(setup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config)
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_idle.max(1))
            .user_agent(concat!("brix/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| setup(retry::root_cause(&e)))?;
        Ok(RegistryClient {
            registry: registry.to_owned(),
            base,
            http,
            auth: Authenticator::new(registry, settings.credentials),
            tls: settings.tls,
            notes,
            attempts: settings.attempts.max(1),
            initial_backoff: settings.initial_backoff,
            pinged: tokio::sync::OnceCell::new(),
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    fn blob_url(&self, repository: &str, digest: &str) -> Url {
        self.url(&format!("/v2/{repository}/blobs/{digest}"))
    }

    fn manifest_url(&self, repository: &str, reference: &str) -> Url {
        self.url(&format!("/v2/{repository}/manifests/{reference}"))
    }

    /// Whether `repository` has the blob.
    pub(crate) async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool> {
        let what = || format!("checking blob {digest} in {}/{repository}", self.registry);
        let url = self.blob_url(repository, digest);
        match self
            .send(&what, &[Scope::push(repository)], &|| {
                self.http.head(url.clone())
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A small blob, whole.
    pub(crate) async fn get_blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>> {
        let what = || format!("fetching blob {digest} from {}/{repository}", self.registry);
        let url = self.blob_url(repository, digest);
        let (_, bytes) = self
            .fetch(&what, &[Scope::pull(repository)], &|| {
                self.http.get(url.clone())
            })
            .await?;
        Ok(bytes.to_vec())
    }

    /// [`Self::send`], then the whole body: a body cut off is asked for again, as a failed
    /// request is. Returns the answer's headers and body.
    async fn fetch(
        &self,
        what: &(dyn Fn() -> String + Sync),
        scopes: &[Scope],
        build: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
    ) -> Result<(http::HeaderMap, bytes::Bytes)> {
        let mut n = 1;
        loop {
            let response = self.send(what, scopes, build).await?;
            let headers = response.headers().clone();
            match response.bytes().await {
                Ok(bytes) => return Ok((headers, bytes)),
                Err(e) => {
                    let failure = self.failure_of_error(&e);
                    if failure.is_retryable() && n < self.attempts {
                        self.pause(n, &failure, what).await;
                        n += 1;
                        continue;
                    }
                    return Err(self.error(failure, what));
                }
            }
        }
    }

    /// The answer to a blob's `GET`, its body still to be read (a blob copied between
    /// registries streams through).
    pub(crate) async fn blob_response(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<reqwest::Response> {
        let what = || format!("fetching blob {digest} from {}/{repository}", self.registry);
        let url = self.blob_url(repository, digest);
        self.send(&what, &[Scope::pull(repository)], &|| {
            self.http.get(url.clone())
        })
        .await
    }

    /// Asks the registry to link `digest` from `from` into `repository`.
    pub(crate) async fn mount_blob(&self, repository: &str, digest: &str, from: &str) -> Mount {
        let what = || format!("mounting blob {digest} from {from} into {repository}");
        let mut url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let scopes = [Scope::push(repository), Scope::pull(from)];
        match self
            .send(&what, &scopes, &|| self.http.post(url.clone()))
            .await
        {
            Ok(response) if response.status() == http::StatusCode::CREATED => {
                drain(response).await;
                Mount::Mounted
            }
            Ok(response) => {
                let location = self.location(&response);
                drain(response).await;
                location.map_or(Mount::Declined, Mount::Upload)
            }
            Err(e) => {
                tracing::debug!(digest, from, error = %e, "mount declined; uploading");
                Mount::Declined
            }
        }
    }

    /// A new upload session in `repository`: where to `PUT` the blob.
    async fn start_upload(
        &self,
        repository: &str,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Url> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = self
            .send(what, &[Scope::push(repository)], &|| {
                self.http.post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        let location = self.location(&response);
        drain(response).await;
        location.ok_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            operation: what(),
            reason: "the registry opened an upload session without a Location".into(),
        })
    }

    fn location(&self, response: &reqwest::Response) -> Option<Url> {
        let location = response.headers().get(LOCATION)?.to_str().ok()?;
        // A relative Location is relative to the request's URL.
        response.url().join(location).ok()
    }

    /// Uploads a blob of `size` bytes: one streamed `PUT` per upload session (`session`, a
    /// session a declined mount opened, is used first). A try that fails starts again from a
    /// new session with the body opened anew; the registry checks the digest, so nothing half
    /// written is ever stored under it.
    pub(crate) async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        mut session: Option<Url>,
        body: &UploadBody<'_>,
    ) -> Result<()> {
        let what = || format!("pushing blob {digest} to {}/{repository}", self.registry);
        let scopes = [Scope::push(repository)];
        self.ping(&what).await?;
        let mut reauthenticated = false;
        let mut n = 1;
        loop {
            let mut url = match session.take() {
                Some(url) => url,
                None => self.start_upload(repository, &what).await?,
            };
            url.query_pairs_mut().append_pair("digest", digest);
            let request = self
                .http
                .put(url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(body.open(digest).await?);
            let failure = match self.exchange(&scopes, request).await {
                Exchange::Answer(response) => {
                    drain(response).await;
                    return Ok(());
                }
                Exchange::Unauthorized { headers, used } if !reauthenticated => {
                    reauthenticated = true;
                    self.auth.rejected(&headers, used.as_ref());
                    continue;
                }
                Exchange::Unauthorized { .. } => self.unauthorized(),
                Exchange::Failed(failure) => failure,
            };
            if failure.is_retryable() && n < self.attempts {
                self.pause(n, &failure, &what).await;
                n += 1;
                continue;
            }
            return Err(self.error(failure, &what));
        }
    }

    /// A manifest's bytes as served, and the digest the registry says they have.
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<(Vec<u8>, Option<String>)> {
        let url = self.manifest_url(repository, reference);
        let accept = accept.join(", ");
        let (headers, bytes) = self
            .fetch(what, &[Scope::pull(repository)], &|| {
                self.http.get(url.clone()).header(ACCEPT, accept.as_str())
            })
            .await?;
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((bytes.to_vec(), digest))
    }

    /// Stores a manifest under `reference` (a tag or its digest).
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &http::HeaderValue,
        bytes: bytes::Bytes,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<()> {
        let url = self.manifest_url(repository, reference);
        let response = self
            .send(what, &[Scope::push(repository)], &|| {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type.clone())
                    .body(bytes.clone())
            })
            .await?;
        drain(response).await;
        Ok(())
    }

    /// Learns the registry's challenge (`GET /v2/`, no credentials) once, before the first
    /// request; a registry that does not answer is reported here.
    pub(crate) async fn ping(&self, what: &(dyn Fn() -> String + Sync)) -> Result<()> {
        self.pinged
            .get_or_try_init(|| async {
                let url = self.url("/v2/");
                let mut n = 1;
                loop {
                    let failure = match self.http.get(url.clone()).send().await {
                        Ok(response) => {
                            let status = response.status();
                            if status == http::StatusCode::UNAUTHORIZED {
                                let challenge = auth::challenge_of(response.headers())
                                    .unwrap_or(auth::Challenge::None);
                                tracing::debug!(registry = self.registry, ?challenge, "registry challenge");
                                self.auth.set_challenge(challenge);
                                drain(response).await;
                                return Ok(());
                            }
                            if status.is_success() {
                                drain(response).await;
                                return Ok(());
                            }
                            let failure = self.failure_of_response(response).await;
                            if !failure.is_retryable() {
                                // Not every registry answers /v2/ as the spec says; the
                                // requests themselves will tell.
                                tracing::debug!(registry = self.registry, %status, "unexpected answer to GET /v2/");
                                return Ok(());
                            }
                            failure
                        }
                        Err(e) => self.failure_of_error(&e),
                    };
                    if failure.is_retryable() && n < self.attempts {
                        self.pause(n, &failure, what).await;
                        n += 1;
                        continue;
                    }
                    return Err(self.error(failure, what));
                }
            })
            .await
            .map(|_| ())
    }

    /// Sends a request built by `build` (called again for each try) with the authorization
    /// `scopes` need, retrying as [`retry`] says. Success answers come back; everything else
    /// is an error (`Error::NotFound` for 404).
    async fn send(
        &self,
        what: &(dyn Fn() -> String + Sync),
        scopes: &[Scope],
        build: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
    ) -> Result<reqwest::Response> {
        self.ping(what).await?;
        let mut reauthenticated = false;
        let mut n = 1;
        loop {
            let failure = match self.exchange(scopes, build()).await {
                Exchange::Answer(response) => return Ok(response),
                Exchange::Unauthorized { headers, used } if !reauthenticated => {
                    reauthenticated = true;
                    self.auth.rejected(&headers, used.as_ref());
                    continue;
                }
                Exchange::Unauthorized { .. } => self.unauthorized(),
                Exchange::Failed(failure) => failure,
            };
            if failure.is_retryable() && n < self.attempts {
                self.pause(n, &failure, what).await;
                n += 1;
                continue;
            }
            return Err(self.error(failure, what));
        }
    }

    /// One request with its authorization.
    async fn exchange(&self, scopes: &[Scope], request: reqwest::RequestBuilder) -> Exchange {
        let authorization = match self.auth.authorization(&self.http, scopes).await {
            Ok(authorization) => authorization,
            Err(failure) => return Exchange::Failed(failure),
        };
        let request = match &authorization {
            Some(value) => request.header(http::header::AUTHORIZATION, value.clone()),
            None => request,
        };
        match request.send().await {
            Err(e) => Exchange::Failed(self.failure_of_error(&e)),
            Ok(response) if response.status() == http::StatusCode::UNAUTHORIZED => {
                let headers = response.headers().clone();
                drain(response).await;
                Exchange::Unauthorized {
                    headers,
                    used: authorization,
                }
            }
            Ok(response) if response.status().is_success() => Exchange::Answer(response),
            Ok(response) => Exchange::Failed(self.failure_of_response(response).await),
        }
    }

    fn unauthorized(&self) -> Failure {
        Failure::Unauthorized(format!(
            "unauthorized: log in (docker login {}) or check the credentials in the Docker config",
            self.registry
        ))
    }

    async fn pause(&self, n: u32, failure: &Failure, what: &(dyn Fn() -> String + Sync)) {
        let wait = retry::delay(self.initial_backoff, n, failure.retry_after());
        tracing::debug!(registry = self.registry, operation = what(), attempt = n, ?wait, failure = ?failure, "retrying");
        tokio::time::sleep(wait).await;
    }

    fn failure_of_error(&self, err: &reqwest::Error) -> Failure {
        match tls::rustls_cause(err) {
            Some(tls_error) => Failure::Certificate(self.tls.describe(tls_error, &self.notes)),
            None => retry::failure_of_error(err),
        }
    }

    async fn failure_of_response(&self, mut response: reqwest::Response) -> Failure {
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        // nginx asks for a client certificate, completes the handshake without one and
        // answers 400 ("No required SSL certificate was sent").
        if status == http::StatusCode::BAD_REQUEST
            && String::from_utf8_lossy(&body).contains("SSL certificate")
            && let Some(problem) = self.tls.client_certificate_refused(&self.notes)
        {
            return Failure::Certificate(problem);
        }
        retry::failure_of_status(status, &headers, &body)
    }

    fn error(&self, failure: Failure, what: &(dyn Fn() -> String + Sync)) -> Error {
        let registry = self.registry.clone();
        match failure {
            Failure::Unreachable(reason) => Error::RegistryUnreachable { registry, reason },
            Failure::NotFound(reason) => {
                tracing::debug!(registry, operation = what(), reason, "not found");
                Error::NotFound { reference: what() }
            }
            Failure::Certificate(problem) => Error::Certificate {
                registry,
                problem: problem.problem,
                remedy: problem.remedy,
            },
            Failure::Content { expected, actual } => Error::DigestMismatch {
                what: what(),
                expected,
                actual,
            },
            Failure::Transient { reason, .. }
            | Failure::Unauthorized(reason)
            | Failure::Fatal(reason) => Error::Registry {
                registry,
                operation: what(),
                reason,
            },
        }
    }
}

/// Reads what is left of an answer, so its connection goes back to the pool.
async fn drain(response: reqwest::Response) {
    let _ = response.bytes().await;
}

/// `host` of `host:port` (IPv6 literals in brackets too).
pub(crate) fn registry_host(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn client(registry: &str, plain_http: bool) -> RegistryClient {
        let tls = HostTls::load(registry, None, std::path::Path::new("/nonexistent")).unwrap();
        RegistryClient::new(
            registry,
            ClientSettings {
                plain_http,
                credentials: None,
                tls,
                attempts: 2,
                initial_backoff: Duration::from_millis(1),
                max_idle: 4,
            },
        )
        .unwrap()
    }

    #[test]
    fn urls_are_the_distribution_apis() {
        let c = client("localhost:5000", true);
        assert_eq!(
            c.blob_url("a/b", "sha256:00").as_str(),
            "http://localhost:5000/v2/a/b/blobs/sha256:00"
        );
        assert_eq!(
            c.manifest_url("a", "1").as_str(),
            "http://localhost:5000/v2/a/manifests/1"
        );
        let hub = client("docker.io", false);
        assert_eq!(
            hub.manifest_url("library/busybox", "latest").as_str(),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        let v6 = client("[::1]:5000", true);
        assert_eq!(v6.url("/v2/").as_str(), "http://[::1]:5000/v2/");
    }

    #[test]
    fn hosts_lose_their_ports() {
        assert_eq!(registry_host("localhost:5000"), "localhost");
        assert_eq!(registry_host("[::1]:5000"), "::1");
        assert_eq!(registry_host("docker.io"), "docker.io");
    }

    /// A TLS server on loopback with the self-signed test certificate that accepts
    /// connections until dropped (each handshake, then nothing).
    async fn tls_server() -> (u16, tokio::task::JoinHandle<()>) {
        use rustls::pki_types::pem::PemObject as _;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(
            include_str!("testdata/self-signed.crt").as_bytes(),
        )
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(
            include_str!("testdata/self-signed.key").as_bytes(),
        )
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_certificate_error_not_an_unreachable_registry() {
        let (port, server) = tls_server().await;
        let registry = format!("localhost:{port}");
        let c = client(&registry, false);
        let err = c.blob_exists("app", "sha256:00").await.unwrap_err();
        server.abort();
        let message = err.to_string();
        assert!(matches!(err, Error::Certificate { .. }), "{message}");
        assert!(
            message.starts_with(&format!(
                "TLS with registry {registry} failed: certificate signed by unknown authority"
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!("/nonexistent/{registry}/ca.crt")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_registry_that_is_down_gives_one_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = client(&format!("127.0.0.1:{port}"), true);
        let err = c.blob_exists("app", "sha256:00").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry 127.0.0.1:{port} is not reachable: connection refused — is it running?"
            )
        );
    }
}
