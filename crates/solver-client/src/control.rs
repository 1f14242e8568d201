//! [`ControlClient`]: the BuildKit `moby.buildkit.v1.Control` API over any transport, with
//! typed calls for `info`, `list_workers`, `disk_usage` and `prune`, and raw access to
//! `solve`, `status` and `session` for the solve and session layers (build history and the
//! content store: [`crate::history`]).

use crate::connect::{self, DaemonAddress, TlsConfig};
use crate::proto::containerd::services::content::v1::content_client::ContentClient as GeneratedContentClient;
use crate::proto::moby::buildkit::v1 as pb_control;
use crate::proto::moby::buildkit::v1::control_client::ControlClient as GeneratedControlClient;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient as GeneratedGatewayClient;
use crate::workers::{CacheRecord, DaemonVersion, PruneOptions, WorkerInfo};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::Streaming;
use tonic::transport::Channel;

/// Largest gRPC message sent or accepted: 16 MiB, the limit buildkitd's own clients use
/// (tonic's default decode limit is 4 MiB, too small for big LLB definitions or status
/// batches).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The generated tonic client, already configured with [`MAX_MESSAGE_SIZE`].
pub type RawControlClient = GeneratedControlClient<Channel>;

/// The generated client of the daemon's content store (containerd's `Content` service, which
/// buildkitd serves on the same connection), configured with [`MAX_MESSAGE_SIZE`].
pub type RawContentClient = GeneratedContentClient<Channel>;

/// The generated client of the daemon's gateway API (`LLBBridge`, served on the same
/// connection; each call names its build, see [`crate::gateway`]), configured with
/// [`MAX_MESSAGE_SIZE`].
pub type RawGatewayClient = GeneratedGatewayClient<Channel>;

/// Errors from connecting to or calling a BuildKit daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `unix:///path` or `tcp://host:port`.
    #[error("invalid BuildKit address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    ReadTlsFile {
        /// Which file: CA certificate, client certificate or client key.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The TLS settings are unusable.
    #[error("invalid TLS settings for {endpoint}: {reason}")]
    Tls {
        /// The endpoint (or file) concerned.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// No connection to the daemon could be made, or it broke.
    #[error(
        "cannot reach the BuildKit daemon at {endpoint}: {reason} \
         (is the daemon running and is this its address?)"
    )]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// Why, with the full cause chain.
        reason: String,
    },
    /// The daemon answered a call with a gRPC error.
    #[error("BuildKit daemon at {endpoint}: {call} failed: {message} ({code:?})")]
    Rpc {
        /// The endpoint called.
        endpoint: String,
        /// The RPC, e.g. `ListWorkers`.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The daemon's message.
        message: String,
        /// The full status, including `grpc-status-details-bin` (typed BuildKit errors,
        /// decodable with [`crate::proto::google::rpc::Status`]).
        status: Box<tonic::Status>,
    },
}

impl ClientError {
    /// Builds the error for a failed connection attempt.
    pub(crate) fn unreachable(endpoint: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        ClientError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason: error_chain(err),
        }
    }

    /// Maps a gRPC status from `call` on `endpoint`: transport failures become
    /// [`ClientError::Unreachable`], everything else [`ClientError::Rpc`].
    pub fn from_status(endpoint: &str, call: &'static str, status: tonic::Status) -> Self {
        if is_transport_failure(&status) {
            let reason = match std::error::Error::source(&status) {
                Some(source) => error_chain(source),
                None => status.message().to_owned(),
            };
            return ClientError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason,
            };
        }
        ClientError::Rpc {
            endpoint: endpoint.to_owned(),
            call,
            code: status.code(),
            message: status.message().to_owned(),
            status: Box::new(status),
        }
    }

    /// The daemon's gRPC status, when the error is one.
    pub fn grpc_status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }

    /// True when the daemon does not know the call (`Unimplemented`): an older daemon.
    pub fn is_unimplemented(&self) -> bool {
        matches!(
            self,
            ClientError::Rpc {
                code: tonic::Code::Unimplemented,
                ..
            }
        )
    }
}

/// True when the status was made by the client's transport (connection refused, reset,
/// timed out) rather than sent by the daemon.
/// A daemon that drops the connection (e.g. after refusing a TLS client certificate)
/// shows up as `Cancelled` or `Unknown` with a transport error as the source.
fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        || std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>())
}

/// "outer: inner: innermost" for an error and its causes. Layers repeat each other
/// (tonic's "transport error" wraps hyper's "transport error: connection error: ..."), so
/// a cause already contained in the text so far is skipped, a cause that repeats the
/// previous layer replaces it, and bare "transport error" layers are dropped when a more
/// specific cause follows.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut layers: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        let already_said = layers.iter().any(|l| l.contains(&text));
        if !already_said {
            if layers
                .last()
                .is_some_and(|last| text.starts_with(last.as_str()))
            {
                layers.pop();
            }
            layers.push(text);
        }
        next = current.source();
    }
    if layers.len() > 1 {
        layers.retain(|l| l != "transport error");
    }
    layers.join(": ")
}

/// A connected client for one BuildKit daemon's control API. Cheap to clone; clones share
/// the HTTP/2 connection, which reconnects (through the same transport) when it breaks.
#[derive(Clone, Debug)]
pub struct ControlClient {
    inner: RawControlClient,
    channel: Channel,
    endpoint: String,
}

impl ControlClient {
    /// Connects to `unix:///path` or `tcp://host:port` (with `tls` for TCP; unix sockets
    /// never use TLS).
    pub async fn connect(address: &str, tls: Option<TlsConfig>) -> Result<Self, ClientError> {
        match DaemonAddress::parse(address)? {
            DaemonAddress::Unix(path) => {
                if tls.is_some() {
                    return Err(ClientError::Tls {
                        endpoint: address.to_owned(),
                        reason: "TLS is not used on unix sockets; remove the TLS settings"
                            .to_owned(),
                    });
                }
                Self::connect_unix(path).await
            }
            DaemonAddress::Tcp { host, port } => {
                let channel = connect::tcp_channel(&host, port, tls.as_ref()).await?;
                Ok(Self::from_channel(
                    channel,
                    DaemonAddress::Tcp { host, port }.to_string(),
                ))
            }
        }
    }

    /// Connects to buildkitd's unix socket, e.g. `/run/buildkit/buildkitd.sock`.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let channel = connect::unix_channel(path).await?;
        Ok(Self::from_channel(
            channel,
            format!("unix://{}", path.display()),
        ))
    }

    /// Connects to `tcp://host:port` (the `tcp://` prefix is optional), with TLS when
    /// `tls` is given.
    pub async fn connect_tcp(uri: &str, tls: Option<TlsConfig>) -> Result<Self, ClientError> {
        let address = if uri.contains("://") {
            uri.to_owned()
        } else {
            format!("tcp://{uri}")
        };
        match DaemonAddress::parse(&address)? {
            DaemonAddress::Tcp { host, port } => {
                let channel = connect::tcp_channel(&host, port, tls.as_ref()).await?;
                Ok(Self::from_channel(
                    channel,
                    DaemonAddress::Tcp { host, port }.to_string(),
                ))
            }
            DaemonAddress::Unix(_) => Err(ClientError::InvalidAddress {
                address: uri.to_owned(),
                reason: "expected tcp://host:port; use connect_unix for sockets".to_owned(),
            }),
        }
    }

    /// Connects over byte streams made by `connect`, which is called for the first
    /// connection and again on every reconnect. Each stream must carry HTTP/2 with prior
    /// knowledge to the daemon: e.g. the stdio of `docker exec <container> buildctl
    /// dial-stdio`, or dockerd's `/grpc` connection after the `h2c` upgrade.
    /// `endpoint` names the daemon in error messages (e.g. `docker-container://brix0`).
    pub async fn from_connector<F, Fut, S>(
        endpoint: impl Into<String>,
        connect: F,
    ) -> Result<Self, ClientError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let endpoint = endpoint.into();
        let channel = connect::stream_channel(&endpoint, connect).await?;
        Ok(Self::from_channel(channel, endpoint))
    }

    /// Wraps an already connected tonic channel; `endpoint` names it in errors.
    pub fn from_channel(channel: Channel, endpoint: impl Into<String>) -> Self {
        ControlClient {
            inner: GeneratedControlClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            channel,
            endpoint: endpoint.into(),
        }
    }

    /// The endpoint this client talks to, as shown in errors.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The generated client (with the 16 MiB limits), for calls this type does not wrap.
    pub fn raw(&self) -> RawControlClient {
        self.inner.clone()
    }

    /// A client of the daemon's content store on the same connection (build history blobs:
    /// logs, traces, attestations, error details).
    pub fn content(&self) -> RawContentClient {
        GeneratedContentClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// A client of the daemon's gateway API on the same connection, for client-side
    /// frontends ([`crate::gateway`]).
    pub fn gateway(&self) -> RawGatewayClient {
        GeneratedGatewayClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn error(&self, call: &'static str) -> impl FnOnce(tonic::Status) -> ClientError + '_ {
        move |status| ClientError::from_status(&self.endpoint, call, status)
    }

    /// The daemon's BuildKit version (`Info`). Daemons older than v0.11 do not implement
    /// `Info`; the error is then [`ClientError::Rpc`] with `Unimplemented`, and
    /// [`WorkerInfo::buildkit_version`] is the fallback.
    pub async fn info(&self) -> Result<DaemonVersion, ClientError> {
        let response = self
            .inner
            .clone()
            .info(pb_control::InfoRequest {})
            .await
            .map_err(self.error("Info"))?
            .into_inner();
        Ok(response
            .buildkit_version
            .map(DaemonVersion::from)
            .unwrap_or_default())
    }

    /// The daemon's workers, decoded (`ListWorkers` with no filter).
    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        let response = self
            .inner
            .clone()
            .list_workers(pb_control::ListWorkersRequest { filter: Vec::new() })
            .await
            .map_err(self.error("ListWorkers"))?
            .into_inner();
        Ok(response.record.into_iter().map(WorkerInfo::from).collect())
    }

    /// Build cache records matching the containerd-style `filters` (`DiskUsage`).
    pub async fn disk_usage(&self, filters: &[String]) -> Result<Vec<CacheRecord>, ClientError> {
        let response = self
            .inner
            .clone()
            .disk_usage(pb_control::DiskUsageRequest {
                filter: filters.to_vec(),
                age_limit: 0,
            })
            .await
            .map_err(self.error("DiskUsage"))?
            .into_inner();
        Ok(response.record.into_iter().map(CacheRecord::from).collect())
    }

    /// Removes build cache (`Prune`) and returns the records removed, in the order the
    /// daemon reported them.
    pub async fn prune(&self, options: &PruneOptions) -> Result<Vec<CacheRecord>, ClientError> {
        let mut stream = self
            .inner
            .clone()
            .prune(options.to_request())
            .await
            .map_err(self.error("Prune"))?
            .into_inner();
        let mut removed = Vec::new();
        while let Some(record) = stream.message().await.map_err(self.error("Prune"))? {
            removed.push(CacheRecord::from(record));
        }
        Ok(removed)
    }

    /// Runs one solve (`Solve`). The session, if any, must already be open.
    pub async fn solve(
        &self,
        request: pb_control::SolveRequest,
    ) -> Result<pb_control::SolveResponse, ClientError> {
        self.inner
            .clone()
            .solve(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(self.error("Solve"))
    }

    /// Opens the progress stream of the build whose `SolveRequest.Ref` is `build_ref`
    /// (`Status`). Map item errors with [`ClientError::from_status`].
    pub async fn status(
        &self,
        build_ref: &str,
    ) -> Result<Streaming<pb_control::StatusResponse>, ClientError> {
        self.inner
            .clone()
            .status(pb_control::StatusRequest {
                r#ref: build_ref.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(self.error("Status"))
    }

    /// Opens the session tunnel (`Session`). `request` carries the outgoing bytes and the
    /// `x-docker-expose-session-*` metadata; the response carries the incoming bytes.
    pub async fn session(
        &self,
        request: impl tonic::IntoStreamingRequest<Message = pb_control::BytesMessage>,
    ) -> Result<tonic::Response<Streaming<pb_control::BytesMessage>>, ClientError> {
        self.inner
            .clone()
            .session(request)
            .await
            .map_err(self.error("Session"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_errors_keep_the_status_and_say_which_call() {
        let err = ClientError::from_status(
            "unix:///run/buildkit/buildkitd.sock",
            "ListWorkers",
            tonic::Status::permission_denied("no"),
        );
        assert!(matches!(
            err,
            ClientError::Rpc {
                code: tonic::Code::PermissionDenied,
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("ListWorkers") && text.contains("buildkitd.sock"),
            "{text}"
        );
        assert_eq!(err.grpc_status().map(|s| s.message()), Some("no"));
    }

    #[test]
    fn unavailable_means_unreachable() {
        let err = ClientError::from_status(
            "tcp://10.0.0.1:1234",
            "Info",
            tonic::Status::unavailable("connection reset"),
        );
        assert!(matches!(err, ClientError::Unreachable { .. }));
        assert!(err.to_string().contains("tcp://10.0.0.1:1234"));
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chain_drops_repeated_and_generic_layers() {
        let err = Layer(
            "transport error",
            Some(Box::new(Layer(
                "transport error: connection error",
                Some(Box::new(Layer(
                    "broken pipe",
                    Some(Box::new(Layer("broken pipe", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "transport error: connection error: broken pipe"
        );
        let single = Layer("transport error", None);
        assert_eq!(error_chain(&single), "transport error");
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable_and_names_the_socket() {
        let path = std::env::temp_dir().join(format!("brix-no-daemon-{}.sock", std::process::id()));
        let err = ControlClient::connect_unix(&path)
            .await
            .expect_err("no daemon listens there");
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        // The OS reason is kept, not just tonic's "transport error".
        assert!(
            text.contains("No such file") || text.contains("not found"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn connector_errors_are_unreachable() {
        let err = ControlClient::from_connector("docker-container://brix0", || async {
            Err::<tokio::io::DuplexStream, _>(io::Error::other("container is not running"))
        })
        .await
        .expect_err("connector fails");
        let text = err.to_string();
        assert!(text.contains("docker-container://brix0"), "{text}");
        assert!(text.contains("container is not running"), "{text}");
    }

    #[tokio::test]
    async fn tls_on_a_unix_socket_is_refused() {
        let err = ControlClient::connect(
            "unix:///run/buildkit/buildkitd.sock",
            Some(TlsConfig::new("x")),
        )
        .await
        .expect_err("tls on unix");
        assert!(matches!(err, ClientError::Tls { .. }));
    }
}
