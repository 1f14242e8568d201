//! `moby.sshforward.v1.SSH`: SSH agents forwarded to the build (`RUN --mount=type=ssh`, git
//! over ssh), buildx's `--ssh ID[=SOCKET|KEY[,KEY…]]`.
//!
//! `CheckAgent` tells the daemon which IDs are forwarded; each `ForwardAgent` stream is one
//! connection from a build step to the agent, the ID in the `buildkit.ssh.id` metadata. The
//! agent is the user's own (its unix socket) or, for key files, a private `ssh-agent` that
//! brix starts on first use and kills when the session ends. As with BuildKit's provider, a
//! build may list the keys and sign with them, never add, remove or lock (see `relay.rs`).

mod agent;
mod keys;
mod relay;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _};
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use tokio::net::UnixStream;
use tokio::sync::{OnceCell, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::moby::sshforward::v1::ssh_server::Ssh;
use crate::proto::moby::sshforward::v1::{BytesMessage, CheckAgentRequest, CheckAgentResponse};
use agent::KeyAgent;
pub use keys::KeyProblem;

/// The ID of an agent when none is named (`--ssh default`, `RUN --mount=type=ssh`).
pub const DEFAULT_ID: &str = "default";

/// The metadata key of a `ForwardAgent` call that names the agent (BuildKit's `KeySSHID`).
pub const KEY_SSH_ID: &str = "buildkit.ssh.id";

/// Every method of the service, as announced to the daemon.
pub const METHODS: [&str; 2] = [
    "/moby.sshforward.v1.SSH/CheckAgent",
    "/moby.sshforward.v1.SSH/ForwardAgent",
];

/// How much of a key file is read, as BuildKit's provider reads it.
const KEY_FILE_LIMIT: u64 = 100 * 1024;

/// Where an agent forwarded under one ID comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's unix socket (`$SSH_AUTH_SOCK`, or a socket named on the command
    /// line), connected to anew for each stream.
    AgentSocket(PathBuf),
    /// Private keys, held by an `ssh-agent` that the session starts when the daemon first
    /// asks for it and stops when the session ends.
    Keys(Vec<SshKey>),
}

impl SshSource {
    /// The source BuildKit's provider makes of one `--ssh ID=PATH[,PATH…]` entry: no path
    /// (or one empty path) means the agent at `ssh_auth_sock` (the caller's
    /// `$SSH_AUTH_SOCK`; `None` or empty when unset); a socket path means that agent, and
    /// it must be the only path; other paths are unencrypted private key files, read now.
    /// Key files also need OpenSSH's `ssh-agent` and `ssh-add` on `PATH`, checked here.
    pub fn from_paths<P: AsRef<Path>>(
        paths: &[P],
        ssh_auth_sock: Option<&Path>,
    ) -> Result<Self, SshSourceError> {
        let mut paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
        if paths.is_empty() || (paths.len() == 1 && paths[0].as_os_str().is_empty()) {
            paths = vec![ssh_auth_sock.unwrap_or(Path::new(""))];
        }
        if paths[0].as_os_str().is_empty() {
            return Err(SshSourceError::NoAgentSocket);
        }
        let mut socket = None;
        let mut keys = Vec::new();
        for path in paths {
            if socket.is_some() {
                return Err(SshSourceError::SeveralSockets);
            }
            let metadata = std::fs::metadata(path).map_err(|source| SshSourceError::Stat {
                path: path.to_owned(),
                source,
            })?;
            if metadata.file_type().is_socket() {
                socket = Some(path.to_owned());
            } else {
                keys.push(SshKey::read(path)?);
            }
        }
        match socket {
            Some(_) if !keys.is_empty() => Err(SshSourceError::KeysAndSocket),
            Some(socket) => Ok(SshSource::AgentSocket(socket)),
            None => {
                agent::check_tools()?;
                Ok(SshSource::Keys(keys))
            }
        }
    }
}

/// An unencrypted private key read from a file, for an agent brix runs.
#[derive(Clone, PartialEq, Eq)]
pub struct SshKey {
    path: PathBuf,
    contents: Vec<u8>,
}

impl SshKey {
    /// Reads a private key file (its first 100 KiB, as BuildKit does) and checks it is one
    /// the agent can hold without a passphrase: a PEM block of a private key type, not
    /// encrypted. (The key material itself is checked by `ssh-add` when the agent starts.)
    pub fn read(path: impl AsRef<Path>) -> Result<Self, SshSourceError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| SshSourceError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut contents = Vec::new();
        file.take(KEY_FILE_LIMIT)
            .read_to_end(&mut contents)
            .map_err(|source| SshSourceError::Read {
                path: path.to_owned(),
                source,
            })?;
        keys::check_private_key(&contents).map_err(|problem| SshSourceError::Key {
            path: path.to_owned(),
            problem,
        })?;
        Ok(SshKey {
            path: path.to_owned(),
            contents,
        })
    }

    /// The file the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for SshKey {
    // Never the key itself: sessions and their sources end up in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why an `--ssh` entry cannot be served. The messages are BuildKit's (after its
/// `failed to convert agent config …` prefixes), with Go's wording of system errors.
#[derive(Debug, thiserror::Error)]
pub enum SshSourceError {
    /// No path was given and `$SSH_AUTH_SOCK` is unset.
    #[error("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")]
    NoAgentSocket,
    /// A path does not exist or cannot be looked at.
    #[error("stat {}: {}", path.display(), go_error_text(source))]
    Stat {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A key file cannot be opened.
    #[error("failed to open {}: open {}: {}", path.display(), path.display(), go_error_text(source))]
    Open {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A key file cannot be read (a directory, say).
    #[error("failed to read {}: read {}: {}", path.display(), path.display(), go_error_text(source))]
    Read {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file is not a private key the agent can hold (no key, encrypted, unknown type).
    #[error("failed to parse {}: {problem}", path.display())]
    Key {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// More than one path after a socket.
    #[error("only single socket allowed")]
    SeveralSockets,
    /// Key files and a socket together.
    #[error("invalid combination of keys and sockets")]
    KeysAndSocket,
    /// Key files were given, but OpenSSH's agent tools, which hold them, are missing.
    #[error(
        "{program} not found in PATH: serving ssh key files needs OpenSSH's ssh-agent and ssh-add (Debian package openssh-client)"
    )]
    AgentTools {
        /// The program looked for.
        program: &'static str,
    },
}

/// An I/O error as Go prints a system error (`no such file or directory`): the C library's
/// text with its first letter lower-cased and without Rust's ` (os error N)`. Other errors
/// keep their text.
fn go_error_text(error: &io::Error) -> String {
    let text = error.to_string();
    let Some(at) = text
        .rfind(" (os error ")
        .filter(|_| error.raw_os_error().is_some())
    else {
        return text;
    };
    let mut chars = text[..at].chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// One agent the service forwards.
#[derive(Debug)]
enum Agent {
    Socket(PathBuf),
    Keys {
        keys: Vec<SshKey>,
        /// Started by the first stream that needs it; dropped (killed) with the service.
        running: OnceCell<KeyAgent>,
    },
}

/// The SSH service over the agents of a session, keyed by ID.
#[derive(Debug)]
pub(crate) struct SshForwardService {
    agents: BTreeMap<String, Agent>,
}

impl SshForwardService {
    /// Serves the given sources, keyed by ID.
    pub(crate) fn new(sources: BTreeMap<String, SshSource>) -> Self {
        let agents = sources
            .into_iter()
            .map(|(id, source)| {
                let agent = match source {
                    SshSource::AgentSocket(path) => Agent::Socket(path),
                    SshSource::Keys(keys) => Agent::Keys {
                        keys,
                        running: OnceCell::new(),
                    },
                };
                (id, agent)
            })
            .collect();
        SshForwardService { agents }
    }

    /// The agent forwarded under `id`, with BuildKit's answer for an unknown one.
    fn agent(&self, id: &str) -> Result<&Agent, Status> {
        self.agents
            .get(id)
            .ok_or_else(|| Status::not_found(format!("unset ssh forward key {id}")))
    }

    /// A new connection to the agent forwarded under `id`, starting it first if it is one
    /// brix runs.
    async fn connect(&self, id: &str) -> Result<UnixStream, Status> {
        let socket = match self.agent(id)? {
            Agent::Socket(path) => path.as_path(),
            Agent::Keys { keys, running } => running
                .get_or_try_init(|| KeyAgent::start(keys))
                .await
                .map_err(|e| {
                    tracing::warn!(id, error = %e, "cannot start the ssh agent");
                    Status::unavailable(format!("failed to dial agent {id}: {e}"))
                })?
                .socket(),
        };
        UnixStream::connect(socket).await.map_err(|e| {
            Status::unavailable(format!(
                "failed to dial agent {id}: failed to connect to {}: {e}",
                socket.display()
            ))
        })
    }
}

/// The agent ID a call names: the metadata value, or [`DEFAULT_ID`] when it is missing or
/// empty (as BuildKit reads it).
fn requested_id<T>(request: &Request<T>) -> &str {
    request
        .metadata()
        .get(KEY_SSH_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .unwrap_or(DEFAULT_ID)
}

#[tonic::async_trait]
impl Ssh for SshForwardService {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        let id = match request.get_ref().id.as_str() {
            "" => DEFAULT_ID,
            id => id,
        };
        self.agent(id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = requested_id(&request).to_owned();
        let connection = self.connect(&id).await?;
        let (replies, stream) = mpsc::channel(relay::REPLY_QUEUE);
        tokio::spawn(relay::relay(request.into_inner(), connection, replies));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}
