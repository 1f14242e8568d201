//! A BuildKit session: the gRPC server the client runs *inside* a connection the daemon
//! dials back through (`Control.Session`, or dockerd's `/session` upgrade). It serves the
//! client's local directories (FileSync), receives outputs (FileSend), answers registry
//! credential and secret requests (Auth, Secrets), serves local content stores (Content:
//! `type=local` caches), forwards SSH agents (SSH: `--ssh`), serves uploads (Upload: a context
//! read from stdin) and the mandatory health check.
//!
//! ```no_run
//! # async fn demo(control: &mut brix_solver_client::proto::moby::buildkit::v1::control_client::ControlClient<tonic::transport::Channel>) -> Result<(), Box<dyn std::error::Error>> {
//! use brix_solver_client::session::{OutputTarget, Session, SyncedDir};
//! let mut session = Session::new("myproject");
//! session.add_local("context", SyncedDir::new("."));
//! session.add_local("dockerfile", SyncedDir::new("."));
//! session.add_output(0, OutputTarget::Directory("out".into()));
//! let running = session.run_over_control(control).await?;
//! // ... Solve with SolveRequest.session = running.id() ...
//! running.close().await?;
//! # Ok(()) }
//! ```

mod auth;
mod content;
mod filesend;
mod filesync;
mod grpc;
mod registry_token;
mod secrets;
mod sshforward;
mod tunnel;
mod upload;

#[cfg(test)]
mod in_process_tests;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;

pub use auth::{AuthError, DockerConfigAuth, RegistryCredentials};
pub use content::{ContentStoreError, LocalContentStore};
pub use filesend::OutputTarget;
pub use filesync::SyncedDir;
pub use grpc::MAX_MESSAGE_SIZE;
pub use secrets::{SecretSource, SecretStore};
pub use sshforward::{KeyProblem, SshKey, SshSource, SshSourceError};
pub use tunnel::{IncomingChunks, StreamTunnel};
pub use upload::URL_PREFIX as UPLOAD_URL_PREFIX;

use crate::proto::containerd::services::content::v1::content_server::ContentServer;
use crate::proto::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use crate::proto::moby::buildkit::v1::BytesMessage;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;
use crate::proto::moby::filesync::v1::auth_server::AuthServer;
use crate::proto::moby::sshforward::v1::ssh_server::SshServer;
use crate::proto::moby::upload::v1::upload_server::UploadServer;

/// Metadata / header carrying the session ID.
pub const HEADER_SESSION_ID: &str = "x-docker-expose-session-uuid";
/// Metadata / header carrying the shared key (cache-sharing hint for local sources).
pub const HEADER_SHARED_KEY: &str = "x-docker-expose-session-sharedkey";
/// Metadata / header listing one exposed gRPC method per entry.
pub const HEADER_GRPC_METHOD: &str = "x-docker-expose-session-grpc-method";

/// How long a closing session waits for in-flight calls before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A failed session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The daemon refused or failed the `Control.Session` call.
    #[error("daemon refused the session: {0}")]
    Control(#[from] tonic::Status),
    /// The task serving the session failed.
    #[error("session failed: {0}")]
    Serve(String),
    /// A session ID or shared key cannot be sent as metadata.
    #[error("invalid session metadata {0:?}: use ASCII without control characters")]
    Metadata(String),
}

/// The services and state of one session, before it is connected.
#[derive(Debug)]
pub struct Session {
    id: String,
    shared_key: String,
    dirs: BTreeMap<String, SyncedDir>,
    outputs: HashMap<u32, OutputTarget>,
    secrets: BTreeMap<String, SecretSource>,
    auth: Option<DockerConfigAuth>,
    peer_name: Option<String>,
    content_stores: BTreeMap<String, LocalContentStore>,
    ssh: BTreeMap<String, SshSource>,
    uploads: BTreeMap<String, std::path::PathBuf>,
}

impl Session {
    /// A new session with a fresh random ID. `shared_key` lets the daemon reuse its copy of
    /// a local directory across sessions with the same key (buildx uses the context's base
    /// name plus `:` plus the node's ID); it may be empty.
    pub fn new(shared_key: impl Into<String>) -> Self {
        Session {
            id: new_session_id(),
            shared_key: shared_key.into(),
            dirs: BTreeMap::new(),
            outputs: HashMap::new(),
            secrets: BTreeMap::new(),
            auth: None,
            peer_name: None,
            content_stores: BTreeMap::new(),
            ssh: BTreeMap::new(),
            uploads: BTreeMap::new(),
        }
    }

    /// The session ID to put in `SolveRequest.session` (and `local.session` of LLB sources).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The shared key given at creation.
    pub fn shared_key(&self) -> &str {
        &self.shared_key
    }

    /// Lets the daemon read a local directory under `name` (`context`, `dockerfile`, or the
    /// name of an LLB `local://` source).
    pub fn add_local(&mut self, name: impl Into<String>, dir: SyncedDir) -> &mut Self {
        self.dirs.insert(name.into(), dir);
        self
    }

    /// Receives the output of the exporter at `exporter_index` in `SolveRequest.exporters`.
    pub fn add_output(&mut self, exporter_index: u32, target: OutputTarget) -> &mut Self {
        self.outputs.insert(exporter_index, target);
        self
    }

    /// Names the daemon's builder in messages about what it sent (a refused output entry
    /// says which builder sent it).
    pub fn set_peer_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.peer_name = Some(name.into());
        self
    }

    /// Provides a build secret under `id`.
    pub fn add_secret(&mut self, id: impl Into<String>, source: SecretSource) -> &mut Self {
        self.secrets.insert(id.into(), source);
        self
    }

    /// Lets the daemon read and write `store` under `id`, the store ID it names in each call:
    /// `local:<dir>` for `--cache-to`/`--cache-from type=local` (the `dest`/`src` attribute
    /// exactly as sent in the solve request), `oci:<id>` for OCI layout contexts.
    pub fn add_content_store(
        &mut self,
        id: impl Into<String>,
        store: LocalContentStore,
    ) -> &mut Self {
        self.content_stores.insert(id.into(), store);
        self
    }

    /// Forwards an SSH agent under `id` (the ID a `RUN --mount=type=ssh,id=…` names; an
    /// empty `id` is `default`, as in BuildKit). A later source for the same ID replaces the
    /// earlier one.
    pub fn add_ssh(&mut self, id: impl Into<String>, source: SshSource) -> &mut Self {
        let id = id.into();
        let id = if id.is_empty() {
            sshforward::DEFAULT_ID.to_owned()
        } else {
            id
        };
        self.ssh.insert(id, source);
        self
    }

    /// Lets the daemon fetch the file at `path` and returns the URL it fetches it by
    /// (`http://buildkit-session/<id>`, e.g. the frontend's `context` attribute for a
    /// context tarball read from stdin). The file must stay until the session ends.
    pub fn add_upload(&mut self, path: impl Into<std::path::PathBuf>) -> String {
        let id = new_session_id();
        let url = format!("{}{id}", upload::URL_PREFIX);
        self.uploads.insert(id, path.into());
        url
    }

    /// Uses these registry credentials instead of the default Docker config file.
    pub fn set_auth(&mut self, auth: DockerConfigAuth) -> &mut Self {
        self.auth = Some(auth);
        self
    }

    /// The gRPC methods this session serves, as announced to the daemon.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = vec![
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
        ];
        if !self.dirs.is_empty() {
            methods.push(filesync::DIFF_COPY);
        }
        if !self.outputs.is_empty() {
            methods.push(filesend::DIFF_COPY);
        }
        if !self.content_stores.is_empty() {
            methods.extend(content::METHODS);
        }
        if !self.ssh.is_empty() {
            methods.extend(sshforward::METHODS);
        }
        if !self.uploads.is_empty() {
            methods.push(upload::PULL);
        }
        methods.extend([
            "/moby.filesync.v1.Auth/Credentials",
            "/moby.filesync.v1.Auth/FetchToken",
            "/moby.filesync.v1.Auth/GetTokenAuthority",
            "/moby.filesync.v1.Auth/VerifyTokenAuthority",
            secrets::GET_SECRET,
        ]);
        methods
    }

    /// The headers that announce this session, for dockerd's `POST /session` upgrade
    /// (`X-Docker-Expose-Session-Uuid`, `-Sharedkey`, one `-Grpc-Method` per method). The
    /// same pairs go into `Control.Session` metadata.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (HEADER_SESSION_ID, self.id.clone()),
            (HEADER_SHARED_KEY, header_safe(&self.shared_key)),
        ];
        headers.extend(
            self.methods()
                .into_iter()
                .map(|m| (HEADER_GRPC_METHOD, m.to_owned())),
        );
        headers
    }

    fn routes(self) -> Routes {
        let auth = self.auth.unwrap_or_else(|| {
            DockerConfigAuth::load_default().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "registry credentials unavailable; the daemon will access registries anonymously");
                DockerConfigAuth::default()
            })
        });
        let (_reporter, health) = tonic_health::server::health_reporter();
        let mut routes = Routes::new(health)
            .add_service(
                AuthServer::new(auth)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            )
            .add_service(
                SecretsServer::new(SecretStore::new(self.secrets))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            );
        if !self.dirs.is_empty() {
            routes = routes.add_service(filesync::FileSyncService::new(self.dirs));
        }
        if !self.outputs.is_empty() {
            routes = routes.add_service(
                filesend::FileSendService::new(self.outputs).with_peer_name(self.peer_name),
            );
        }
        if !self.content_stores.is_empty() {
            routes = routes.add_service(
                ContentServer::new(content::ContentService::new(self.content_stores))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            );
        }
        if !self.ssh.is_empty() {
            routes = routes.add_service(
                SshServer::new(sshforward::SshForwardService::new(self.ssh))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            );
        }
        if !self.uploads.is_empty() {
            routes = routes.add_service(
                UploadServer::new(upload::UploadService::new(self.uploads))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            );
        }
        routes.prepare()
    }

    /// Serves the session over an already-established connection on which the daemon is
    /// the HTTP/2 client: dockerd's upgraded `/session` socket (send [`Session::headers`]
    /// with the upgrade request), or any other byte pipe.
    pub fn serve<IO>(self, io: IO) -> RunningSession
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let id = self.id.clone();
        let routes = self.routes();
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(serve_http2(routes, io, shutdown_rx));
        RunningSession {
            id,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        }
    }

    /// Opens `Control.Session` on a connected daemon and serves the session through it. The
    /// returned handle keeps it alive; close it after the solve has returned (exporters run
    /// inside the solve and call back into the session).
    pub async fn run_over_control(
        self,
        client: &mut ControlClient<tonic::transport::Channel>,
    ) -> Result<RunningSession, SessionError> {
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(32);
        let outgoing = ReceiverStream::new(out_rx).map(|data| BytesMessage { data });
        let mut request = tonic::Request::new(outgoing);
        let md = request.metadata_mut();
        for (key, value) in self.headers() {
            let value = value
                .parse()
                .map_err(|_| SessionError::Metadata(value.clone()))?;
            // One entry per method: `append`, never a joined value.
            md.append(key, value);
        }
        let response = client.session(request).await?;
        let incoming = response.into_inner().map(|msg| msg.map(|m| m.data));
        let tunnel = StreamTunnel::new(Box::pin(incoming), out_tx);
        Ok(self.serve(tunnel))
    }
}

/// A connected session. Dropping it tears the connection down; [`RunningSession::close`]
/// ends it gracefully.
#[derive(Debug)]
pub struct RunningSession {
    id: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SessionError>>>,
}

impl RunningSession {
    /// The session ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the connection has ended (the daemon hung up or it failed).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Ends the session: stops accepting calls, lets running ones finish (up to a few
    /// seconds) and closes the stream, which the daemon sees as the end of the session.
    pub async fn close(mut self) -> Result<(), SessionError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SessionError::Serve(format!("session task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSession {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve_http2<IO>(
    routes: Routes,
    io: IO,
    shutdown: oneshot::Receiver<()>,
) -> Result<(), SessionError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_frame_size(1 << 20)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_header_list_size(1 << 20);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(routes));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    // Every connection error comes from the peer's side of the pipe (our services cannot
    // fail at the HTTP level), and the daemon hanging up is how sessions normally end, so it
    // is logged rather than reported.
    if let Err(e) = result {
        tracing::debug!(error = %e, "session connection ended");
    }
    Ok(())
}

/// The shared key as a header value: it is often a directory's base name, which may hold
/// characters a header cannot carry. Those are percent-escaped, which keeps the value
/// stable across runs (all the daemon needs from a cache hint).
fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A 25-character base-36 random ID (BuildKit's `identity.NewID` format; never contains `:`),
/// made the same way as a build's ref.
fn new_session_id() -> String {
    crate::solve::new_build_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_25_base36_chars_and_unique() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 25);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
        assert!(!Session::new("k").id().contains(':'));
    }

    #[test]
    fn announces_one_header_per_method() {
        let mut s = Session::new("ctx:node0");
        let headers = s.headers();
        assert!(!headers.iter().any(|(_, v)| v == filesync::DIFF_COPY));
        s.add_local("context", SyncedDir::new("."));
        s.add_output(0, OutputTarget::Directory("out".into()));
        let headers = s.headers();
        assert_eq!(headers[0], (HEADER_SESSION_ID, s.id().to_owned()));
        assert_eq!(headers[1], (HEADER_SHARED_KEY, "ctx:node0".to_owned()));
        let methods: Vec<_> = headers
            .iter()
            .filter(|(k, _)| *k == HEADER_GRPC_METHOD)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(methods.contains(&"/grpc.health.v1.Health/Check"));
        assert!(methods.contains(&"/moby.filesync.v1.FileSync/DiffCopy"));
        assert!(methods.contains(&"/moby.filesync.v1.FileSend/DiffCopy"));
        assert!(methods.contains(&"/moby.filesync.v1.Auth/Credentials"));
        assert!(methods.iter().all(|m| !m.contains(',')));
    }

    #[test]
    fn shared_keys_become_valid_header_values() {
        let s = Session::new("café:node0");
        assert_eq!(s.headers()[1].1, "caf%C3%A9:node0");
        assert!(
            s.headers()[1]
                .1
                .parse::<tonic::metadata::AsciiMetadataValue>()
                .is_ok()
        );
    }
}
