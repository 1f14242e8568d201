//! A private OpenSSH `ssh-agent` holding the key files of one `--ssh` ID, for the life of
//! a session: `ssh-agent -D -a SOCKET` in a folder only the user can enter, the keys added
//! with `ssh-add -` (from memory, so the key file's permissions are not ssh-add's business,
//! as they are not BuildKit's). Dropping the handle kills the agent and removes the folder.

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::{SshKey, SshSourceError};

/// The agent program.
const SSH_AGENT: &str = "ssh-agent";
/// The program that loads keys into it.
const SSH_ADD: &str = "ssh-add";
/// How long a new agent may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a starting agent is looked at.
const START_POLL: Duration = Duration::from_millis(10);
/// Longest socket path the kernel takes is 107 bytes; stay under it with some room.
const MAX_SOCKET_PATH: usize = 100;

/// Why an agent for key files could not be started.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeyAgentError {
    /// The private folder for the socket could not be made.
    #[error("creating a private folder for the ssh agent in {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// `ssh-agent` did not run.
    #[error("starting {SSH_AGENT}: {0}")]
    Spawn(std::io::Error),
    /// `ssh-agent` ran but did not listen.
    #[error("{SSH_AGENT} did not start: {0}")]
    NotListening(String),
    /// `ssh-add` refused a key.
    #[error("adding {} to the ssh agent: {message}", path.display())]
    AddKey { path: PathBuf, message: String },
}

/// A running `ssh-agent` with the keys loaded; killed on drop.
#[derive(Debug)]
pub(super) struct KeyAgent {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl KeyAgent {
    /// Starts an agent and loads `keys` into it.
    pub(super) async fn start(keys: &[SshKey]) -> Result<KeyAgent, KeyAgentError> {
        let dir = private_dir()?;
        let socket = dir.join("agent.sock");
        // Its messages go to a file: a pipe nobody reads could fill and stall it.
        let log_path = dir.join("agent.log");
        let log = std::fs::File::create(&log_path).map_err(|source| KeyAgentError::Folder {
            dir: dir.clone(),
            source,
        });
        let spawned = log.and_then(|log| {
            Command::new(SSH_AGENT)
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(KeyAgentError::Spawn)
        });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // From here on, dropping `agent` cleans up whatever fails below.
        let mut agent = KeyAgent { child, dir, socket };
        agent.wait_listening(&log_path).await?;
        for key in keys {
            agent.add(key).await?;
        }
        tracing::debug!(socket = %agent.socket.display(), keys = keys.len(), "ssh agent started");
        Ok(agent)
    }

    /// The agent's socket.
    pub(super) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's process ID (tests look whether it is gone after a drop).
    #[cfg(test)]
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_listening(&mut self, log_path: &Path) -> Result<(), KeyAgentError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let said = std::fs::read_to_string(log_path).unwrap_or_default();
                let said = said.trim();
                return Err(KeyAgentError::NotListening(if said.is_empty() {
                    format!("it exited with {status}")
                } else {
                    said.to_owned()
                }));
            }
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KeyAgentError::NotListening(format!(
                    "no socket at {} after {} s",
                    self.socket.display(),
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    async fn add(&self, key: &SshKey) -> Result<(), KeyAgentError> {
        let add_error = |message: String| KeyAgentError::AddKey {
            path: key.path.clone(),
            message,
        };
        let mut child = tokio::process::Command::new(SSH_ADD)
            .arg("-q")
            .arg("-")
            .env("SSH_AUTH_SOCK", &self.socket)
            // Never a passphrase prompt: keys are checked to need none, and a build must not
            // wait on a terminal.
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| add_error(format!("starting {SSH_ADD}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&key.contents)
                .await
                .map_err(|e| add_error(format!("writing the key to {SSH_ADD}: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| add_error(format!("waiting for {SSH_ADD}: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(add_error(if said.is_empty() {
            format!("{SSH_ADD} exited with {}", output.status)
        } else {
            said
        }))
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        // SIGKILL, then reap: the wait is immediate once the signal is delivered.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new folder that only this user can enter, under the temporary folder (or `/tmp` when
/// that path would make the socket path too long).
fn private_dir() -> Result<PathBuf, KeyAgentError> {
    let name = format!("brix-ssh-{}", crate::solve::new_build_ref());
    let mut dir = std::env::temp_dir().join(&name);
    if dir.join("agent.sock").as_os_str().len() > MAX_SOCKET_PATH {
        dir = Path::new("/tmp").join(&name);
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| KeyAgentError::Folder {
            dir: dir.clone(),
            source,
        })?;
    Ok(dir)
}

/// Checks that the programs an agent for key files needs are on `PATH`.
pub(super) fn check_tools() -> Result<(), SshSourceError> {
    for program in [SSH_AGENT, SSH_ADD] {
        if find_on_path(program, std::env::var_os("PATH").as_deref()).is_none() {
            return Err(SshSourceError::AgentTools { program });
        }
    }
    Ok(())
}

/// Where `program` is on `path` (a `PATH` value), if it is an executable file there.
fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").expect("write");
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("join");
        assert_eq!(find_on_path("tool", Some(&path)), None);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_on_path("tool", Some(&path)), Some(tool));
        assert_eq!(find_on_path("tool", None), None);
    }
}
