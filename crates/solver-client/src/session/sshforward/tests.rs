//! The SSH service inside a whole session served over an in-memory pipe, with the test
//! playing the daemon (`CheckAgent`, then `ForwardAgent` with the ID in `buildkit.ssh.id`,
//! as BuildKit's `sshforward` package calls them) in front of a real OpenSSH `ssh-agent`
//! holding a throwaway key: the user's agent by its socket, and brix's own over key files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request};

use super::*;
use crate::proto::moby::sshforward::v1::ssh_client::SshClient;
use crate::session::{RunningSession, Session};

/// `SSH_AGENTC_REQUEST_IDENTITIES`, framed.
const LIST_KEYS: [u8; 5] = [0, 0, 0, 1, 11];
/// `SSH_AGENT_IDENTITIES_ANSWER`.
const IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENTC_REMOVE_ALL_IDENTITIES`, framed.
const REMOVE_ALL_KEYS: [u8; 5] = [0, 0, 0, 1, 19];

/// A throwaway unencrypted ed25519 key, as `ssh-keygen -N ''` writes it.
fn keygen(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "brix-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs (OpenSSH's client tools are needed by these tests)");
    assert!(status.success(), "ssh-keygen failed");
    key
}

/// The user's agent: `ssh-agent -D` with one key added, killed on drop.
struct UserAgent {
    child: Child,
    socket: PathBuf,
}

impl UserAgent {
    async fn start(dir: &Path, key: &Path) -> UserAgent {
        let socket = dir.join("user-agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent runs");
        let agent = UserAgent { child, socket };
        for _ in 0..500 {
            if tokio::net::UnixStream::connect(&agent.socket).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .stdin(Stdio::null())
            .status()
            .expect("ssh-add runs");
        assert!(status.success(), "ssh-add failed");
        agent
    }
}

impl Drop for UserAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `session` over a pipe and returns the daemon's client of its SSH service.
async fn daemon_side(session: Session) -> (SshClient<Channel>, RunningSession) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let running = session.serve(server_io);
    let pipe = Arc::new(Mutex::new(Some(client_io)));
    let channel = crate::connect::stream_channel("session", move || {
        let io = pipe.lock().ok().and_then(|mut p| p.take());
        async move { io.ok_or_else(|| std::io::Error::other("the session pipe is in use")) }
    })
    .await
    .expect("connect to the session");
    (SshClient::new(channel), running)
}

/// One agent connection as the daemon opens it for a build step.
struct Forwarded {
    to_agent: mpsc::Sender<BytesMessage>,
    from_agent: Streaming<BytesMessage>,
    received: Vec<u8>,
}

impl Forwarded {
    async fn open(client: &mut SshClient<Channel>, id: Option<&str>) -> Result<Self, Status> {
        let (to_agent, rx) = mpsc::channel(4);
        let mut request = Request::new(ReceiverStream::new(rx));
        if let Some(id) = id {
            request
                .metadata_mut()
                .insert(KEY_SSH_ID, id.parse().expect("ascii"));
        }
        let from_agent = client.forward_agent(request).await?.into_inner();
        Ok(Forwarded {
            to_agent,
            from_agent,
            received: Vec::new(),
        })
    }

    /// Sends bytes as one message.
    async fn send(&self, data: &[u8]) {
        self.to_agent
            .send(BytesMessage {
                data: data.to_vec(),
            })
            .await
            .expect("stream open");
    }

    /// The next whole agent message (without its length), however it was chunked.
    async fn answer(&mut self) -> Vec<u8> {
        loop {
            if let Some(head) = self.received.first_chunk::<4>() {
                let len = u32::from_be_bytes(*head) as usize;
                if self.received.len() >= 4 + len {
                    let message = self.received[4..4 + len].to_vec();
                    self.received.drain(..4 + len);
                    return message;
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.from_agent.message())
                .await
                .expect("an answer in time")
                .expect("no stream error")
                .expect("the stream goes on");
            self.received.extend(chunk.data);
        }
    }

    /// Closes the daemon's side and expects the stream to end cleanly.
    async fn close(mut self) {
        drop(self.to_agent);
        let end = tokio::time::timeout(Duration::from_secs(10), self.from_agent.message())
            .await
            .expect("the stream ends in time");
        assert!(matches!(end, Ok(None)), "clean end, got {end:?}");
    }
}

/// The number of keys in an `SSH_AGENT_IDENTITIES_ANSWER`.
fn identity_count(answer: &[u8]) -> u32 {
    assert_eq!(
        answer.first(),
        Some(&IDENTITIES_ANSWER),
        "answer {answer:?}"
    );
    let count = answer.get(1..5).expect("a count");
    u32::from_be_bytes(count.try_into().expect("four bytes"))
}

/// Lists the agent's keys through a stream, the request split over two messages.
async fn list_keys(forwarded: &mut Forwarded) -> u32 {
    forwarded.send(&LIST_KEYS[..2]).await;
    forwarded.send(&LIST_KEYS[2..]).await;
    identity_count(&forwarded.answer().await)
}

#[tokio::test]
async fn forwards_the_users_agent_by_its_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "id_ed25519", "");
    let user_agent = UserAgent::start(dir.path(), &key).await;
    let source = SshSource::from_paths(&[&user_agent.socket], None).expect("a socket source");
    assert_eq!(source, SshSource::AgentSocket(user_agent.socket.clone()));

    let mut session = Session::new("test");
    session.add_ssh("default", source);
    assert!(session.methods().contains(&METHODS[0]));
    assert!(session.methods().contains(&METHODS[1]));
    let (mut client, running) = daemon_side(session).await;

    // CheckAgent: the ID, or "" for default; an unknown ID as BuildKit answers it.
    for id in ["default", ""] {
        client
            .check_agent(CheckAgentRequest { id: id.into() })
            .await
            .expect("default is forwarded");
    }
    let unknown = client
        .check_agent(CheckAgentRequest { id: "other".into() })
        .await
        .expect_err("other is not forwarded");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), "unset ssh forward key other");

    // ForwardAgent, named in the metadata, and without metadata (default).
    let mut forwarded = Forwarded::open(&mut client, Some("default"))
        .await
        .expect("forward");
    assert_eq!(list_keys(&mut forwarded).await, 1);
    // Removing keys is refused without reaching the agent, and the stream goes on.
    forwarded.send(&REMOVE_ALL_KEYS).await;
    assert_eq!(forwarded.answer().await, [5]);
    assert_eq!(list_keys(&mut forwarded).await, 1);
    forwarded.close().await;

    let mut unnamed = Forwarded::open(&mut client, None).await.expect("forward");
    // Two requests in one message get two answers, in order.
    unnamed
        .send(&[LIST_KEYS.as_slice(), REMOVE_ALL_KEYS.as_slice()].concat())
        .await;
    assert_eq!(identity_count(&unnamed.answer().await), 1);
    assert_eq!(unnamed.answer().await, [5]);
    unnamed.close().await;

    let refused = Forwarded::open(&mut client, Some("other"))
        .await
        .err()
        .expect("other is not forwarded");
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(refused.message(), "unset ssh forward key other");

    running.close().await.expect("close");
}

#[tokio::test]
async fn runs_an_agent_over_key_files_for_the_sessions_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "id_ed25519", "");
    // Permissions that ssh-add refuses on a key file; BuildKit does not look, nor does brix.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let source = SshSource::from_paths(&[&key], None).expect("a key source");
    let SshSource::Keys(keys) = &source else {
        panic!("expected keys, got {source:?}");
    };
    assert_eq!(keys[0].path(), key);
    assert!(!format!("{source:?}").contains("PRIVATE KEY"));

    let mut session = Session::new("test");
    session.add_ssh("", source);
    let (mut client, running) = daemon_side(session).await;
    client
        .check_agent(CheckAgentRequest {
            id: "default".into(),
        })
        .await
        .expect("default is forwarded");

    // Two connections at once share the one agent.
    let mut first = Forwarded::open(&mut client, Some("default"))
        .await
        .expect("forward");
    let mut second = Forwarded::open(&mut client, Some("default"))
        .await
        .expect("forward");
    assert_eq!(list_keys(&mut first).await, 1);
    assert_eq!(list_keys(&mut second).await, 1);
    first.close().await;
    second.close().await;
    running.close().await.expect("close");
}

#[tokio::test]
async fn a_key_agent_is_killed_and_its_folder_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SshKey::read(keygen(dir.path(), "id_ed25519", "")).expect("key");
    let agent = KeyAgent::start(std::slice::from_ref(&key))
        .await
        .expect("agent starts");
    let socket = agent.socket().to_owned();
    let folder = socket.parent().expect("a folder").to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&folder).expect("folder").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    let pid = agent.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(agent);
    assert!(!folder.exists(), "{} is left", folder.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "agent {pid} runs on"
    );
}

#[tokio::test]
async fn a_key_the_agent_refuses_fails_the_stream_with_its_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A PEM block x/crypto would pass on to its key parser, which ssh-add refuses.
    let bad = dir.path().join("bad");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let mut session = Session::new("test");
    session.add_ssh(
        "bad",
        SshSource::from_paths(&[&bad], None).expect("passes the file checks"),
    );
    let (mut client, running) = daemon_side(session).await;
    let err = Forwarded::open(&mut client, Some("bad"))
        .await
        .err()
        .expect("the agent cannot take the key");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message()
            .starts_with("failed to dial agent bad: adding ")
            && err.message().contains("bad to the ssh agent: "),
        "{}",
        err.message()
    );
    running.close().await.expect("close");
}

#[test]
fn sources_follow_buildkits_rules_and_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "plain", "");
    let encrypted = keygen(dir.path(), "encrypted", "secret");
    let socket_path = dir.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).expect("bind");
    let no_paths: [&Path; 0] = [];
    let error = |paths: &[&Path], sock: Option<&Path>| {
        SshSource::from_paths(paths, sock)
            .expect_err("refused")
            .to_string()
    };
    let d = dir.path().display();

    // No path, or one empty path: $SSH_AUTH_SOCK.
    assert_eq!(
        SshSource::from_paths(&no_paths, Some(&socket_path)).expect("default agent"),
        SshSource::AgentSocket(socket_path.clone())
    );
    assert_eq!(
        SshSource::from_paths(&[Path::new("")], Some(&socket_path)).expect("default agent"),
        SshSource::AgentSocket(socket_path.clone())
    );
    for sock in [None, Some(Path::new(""))] {
        assert_eq!(
            error(&no_paths, sock),
            "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
        );
    }
    // An empty first path among several is not replaced.
    assert_eq!(
        error(&[Path::new(""), &key], Some(&socket_path)),
        "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
    );
    assert_eq!(
        error(&[Path::new("/no/such")], None),
        "stat /no/such: no such file or directory"
    );
    assert_eq!(
        error(&no_paths, Some(Path::new("/no/sock"))),
        "stat /no/sock: no such file or directory"
    );
    assert_eq!(
        error(&[&key, Path::new("")], None),
        "stat : no such file or directory"
    );
    assert_eq!(
        error(&[&encrypted], None),
        format!("failed to parse {d}/encrypted: ssh: this private key is passphrase protected")
    );
    assert_eq!(
        error(&[&dir.path().join("plain.pub")], None),
        format!("failed to parse {d}/plain.pub: ssh: no key found")
    );
    assert_eq!(
        error(&[dir.path()], None),
        format!("failed to read {d}: read {d}: is a directory")
    );
    assert_eq!(
        error(&[&socket_path, &key], None),
        "only single socket allowed"
    );
    assert_eq!(
        error(&[&key, &socket_path], None),
        "invalid combination of keys and sockets"
    );
    match SshSource::from_paths(&[&key, &key], None).expect("two keys") {
        SshSource::Keys(keys) => assert_eq!(keys.len(), 2),
        other => panic!("expected keys, got {other:?}"),
    }
}

#[test]
fn unreadable_keys_say_why_as_go_does() {
    let err = SshKey::read("/no/such/key").expect_err("missing");
    assert_eq!(
        err.to_string(),
        "failed to open /no/such/key: open /no/such/key: no such file or directory"
    );
    assert_eq!(
        go_error_text(&io::Error::from_raw_os_error(13)),
        "permission denied"
    );
    assert_eq!(go_error_text(&io::Error::other("Custom")), "Custom");
}
