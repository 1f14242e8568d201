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

/// The current Docker endpoint: `$DOCKER_HOST`, else `unix:///var/run/docker.sock`.
/// This is also the key under which the store records the current builder.
pub fn current_docker_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string())
}

/// Connects a bollard client to `endpoint` (`unix://…`, `tcp://…` or `http://…`).
/// Nothing is sent yet; the first call reports an unreachable engine.
pub fn connect_docker(endpoint: &str) -> Result<Docker, DriverError> {
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
