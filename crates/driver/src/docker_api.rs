//! Docker Engine access shared by the docker-container and docker drivers: choosing the
//! endpoint, connecting with bollard, and turning an attached exec into a byte stream.

use bollard::container::LogOutput;
use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::DriverError;
use crate::docker_context::{self, DockerContext};

/// The Docker endpoint used when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// API version brix asks for: 1.41 (Docker 20.10) has everything the drivers use, and newer
/// engines still accept it, so no version negotiation round trip is needed.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Request timeout in seconds for ordinary Docker API calls (pulls are streamed).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The current Docker endpoint: the current docker context's (`$DOCKER_HOST`, else
/// `$DOCKER_CONTEXT` or the CLI's current context, else `unix:///var/run/docker.sock`).
pub fn current_docker_endpoint() -> String {
    docker_context::current()
        .map(|c| c.host)
        .unwrap_or_else(|_| DEFAULT_DOCKER_HOST.to_string())
}

/// The key under which the store records the current builder, as buildx keys it: the
/// current context's name, or for the `default` context its engine address.
pub fn current_store_key() -> String {
    let name = docker_context::current_name();
    if name == docker_context::DEFAULT_CONTEXT {
        current_docker_endpoint()
    } else {
        name
    }
}

/// An engine endpoint as nodes store it, resolved: an address as is, a docker context's name
/// (`default` included) to its context.
pub fn resolve_endpoint(endpoint: &str) -> Result<DockerContext, DriverError> {
    if docker_context::is_context_name(endpoint) {
        return docker_context::get(endpoint);
    }
    Ok(DockerContext {
        name: String::new(),
        host: endpoint.to_string(),
        tls: None,
        skip_tls_verify: false,
    })
}

/// Connects a bollard client to `endpoint` (`unix://…`, `tcp://…`, `http://…`, or a docker
/// context's name, TLS contexts included). Nothing is sent yet; the first call reports an
/// unreachable engine.
pub fn connect_docker(endpoint: &str) -> Result<Docker, DriverError> {
    let ctx = resolve_endpoint(endpoint)?;
    if let Some(tls) = &ctx.tls {
        let (Some(key), Some(cert), Some(ca)) = (&tls.key, &tls.cert, &tls.ca) else {
            return Err(DriverError::Invalid(format!(
                "docker context {:?}: its TLS endpoint needs ca.pem, cert.pem and key.pem",
                ctx.name
            )));
        };
        crate::docker_tls::ensure_process_provider();
        let host = ctx.host.replacen("tcp://", "https://", 1);
        return Docker::connect_with_ssl(&host, key, cert, ca, REQUEST_TIMEOUT_SECS, &API_VERSION)
            .map_err(|source| DriverError::DockerUnreachable {
                endpoint: ctx.host.clone(),
                source,
            });
    }
    let endpoint = ctx.host.as_str();
    let result = if endpoint.starts_with("unix://") {
        Docker::connect_with_unix(endpoint, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else if endpoint.starts_with('/') {
        Docker::connect_with_unix(
            &format!("unix://{endpoint}"),
            REQUEST_TIMEOUT_SECS,
            &API_VERSION,
        )
    } else {
        return Err(DriverError::Invalid(format!(
            "unsupported Docker endpoint {endpoint:?}: use unix:///path/to/docker.sock or tcp://host:port"
        )));
    };
    result.map_err(|source| DriverError::DockerUnreachable {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// Maps a bollard error to [`DriverError`], telling an unreachable engine apart from a
/// failed call.
pub fn docker_error(
    endpoint: &str,
    action: impl Into<String>,
    source: bollard::errors::Error,
) -> DriverError {
    if let Some(reason) = tls_failure(&source) {
        return DriverError::DockerTls {
            endpoint: endpoint.replacen("tcp://", "https://", 1),
            reason,
        };
    }
    if is_unreachable(&source) {
        DriverError::DockerUnreachable {
            endpoint: endpoint.to_string(),
            source,
        }
    } else {
        DriverError::Docker {
            action: action.into(),
            source,
        }
    }
}

/// What a failed TLS handshake said, found down the error's chain of causes (bollard wraps
/// it in hyper's and the connector's errors).
fn tls_failure(e: &bollard::errors::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cause {
        let text = err.to_string();
        if text.contains("certificate") || text.contains("handshake") {
            return Some(text);
        }
        cause = err.source();
    }
    None
}

pub(crate) fn is_unreachable(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::IOError { .. } | E::HyperResponseError { .. } | E::SocketNotFoundError(_) => true,
        E::RequestTimeoutError => true,
        other => {
            let s = other.to_string();
            s.contains("Connection refused")
                || s.contains("No such file or directory")
                || s.contains("error trying to connect")
        }
    }
}

/// Whether a bollard error is a 404 from the engine.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether a bollard error is a 409 conflict from the engine.
pub fn is_conflict(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

type OutputStream = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The stdio of an attached `docker exec` as one byte stream: reads yield the process's
/// stdout (already demultiplexed by bollard), writes go to its stdin. Stderr is logged.
pub struct ExecIo {
    output: OutputStream,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    pending: Bytes,
    what: String,
}

impl ExecIo {
    /// Wraps the two halves bollard's `start_exec` hands back; `what` names it in logs.
    pub fn new(output: OutputStream, input: Pin<Box<dyn AsyncWrite + Send>>, what: String) -> Self {
        Self {
            output,
            input,
            pending: Bytes::new(),
            what,
        }
    }
}

impl AsyncRead for ExecIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.output.as_mut().poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    self.pending = message;
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    tracing::debug!(target: "brix_driver::exec", "{}: {}", self.what, String::from_utf8_lossy(&message).trim_end());
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
            }
        }
    }
}

impl AsyncWrite for ExecIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.input.as_mut().poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_shutdown(cx)
    }
}

/// Opens `POST path` with an h2c upgrade on the engine at `endpoint` (an address or a docker
/// context's name) and returns the upgraded connection: how the engine's own BuildKit is
/// reached (`/grpc` for the control API, `/session` for a session, with its headers).
pub async fn upgrade_h2c(
    endpoint: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Result<crate::BoxedDaemonIo, DriverError> {
    use hyper_util::rt::TokioIo;
    let ctx = resolve_endpoint(endpoint)?;
    let host_url = ctx.host.as_str();
    let err = |reason: String| DriverError::Connect {
        endpoint: host_url.to_string(),
        reason,
    };
    let unreachable = |e: io::Error| DriverError::DockerUnreachable {
        endpoint: host_url.to_string(),
        source: bollard::errors::Error::IOError { err: e },
    };
    let (io, host): (crate::BoxedDaemonIo, String) = match host_url.split_once("://") {
        Some(("unix", p)) => (
            Box::pin(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?,
            ),
            "docker".into(),
        ),
        Some(("tcp" | "https", hp)) if ctx.tls.is_some() || ctx.skip_tls_verify => {
            let no_files = crate::docker_context::ContextTls::default();
            let files = ctx.tls.as_ref().unwrap_or(&no_files);
            let stream = crate::docker_tls::connect(hp, files, ctx.skip_tls_verify)
                .await
                .map_err(|e| match e {
                    crate::docker_tls::TlsConnectError::Unreachable(e) => unreachable(e),
                    crate::docker_tls::TlsConnectError::Setup(reason)
                    | crate::docker_tls::TlsConnectError::Handshake(reason) => {
                        err(format!("TLS: {reason}"))
                    }
                })?;
            (Box::pin(stream), hp.to_string())
        }
        Some(("tcp" | "http", hp)) => (
            Box::pin(
                tokio::net::TcpStream::connect(hp)
                    .await
                    .map_err(unreachable)?,
            ),
            hp.to_string(),
        ),
        _ => {
            return Err(err(
                "unsupported Docker endpoint scheme: use unix:// or tcp://".into(),
            ));
        }
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| err(format!("HTTP handshake: {e}")))?;
    let what = path.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("docker {what} connection ended: {e}");
        }
    });
    let mut req = http::Request::post(path)
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| err(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| err(format!("POST {path}: {e}")))?;
    if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(err(format!(
            "POST {path} answered {} instead of 101 Switching Protocols (does this engine have BuildKit enabled?)",
            res.status()
        )));
    }
    let upgraded = hyper::upgrade::on(res)
        .await
        .map_err(|e| err(format!("upgrade: {e}")))?;
    Ok(Box::pin(TokioIo::new(upgraded)))
}
