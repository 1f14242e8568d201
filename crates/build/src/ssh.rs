//! `--ssh default|ID[=SOCKET|KEY[,KEY…]]`: the SSH agents a build may use, parsed and
//! checked before any daemon is contacted, with buildx's syntax and its messages.
//!
//! Each value is an ID (empty: `default`), then after `=` comma-separated paths: none means
//! the agent at `$SSH_AUTH_SOCK`, a socket means that agent, other paths are private key
//! files that brix serves through an agent of its own. Empty values are ignored, an ID given
//! twice is refused, as buildx does.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use brix_solver_client::session::{SshSource, SshSourceError};

/// The ID of an `--ssh` value that names none (BuildKit's `sshforward.DefaultID`).
const DEFAULT_ID: &str = "default";

/// Parses the `--ssh` values into one source per ID, in the order given, reading
/// `$SSH_AUTH_SOCK` for the IDs without a path. Each goes to every solve's session
/// (`Session::add_ssh`).
pub fn parse_ssh_flags(values: &[String]) -> anyhow::Result<Vec<(String, SshSource)>> {
    let ssh_auth_sock = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
    parse_with_agent(values, ssh_auth_sock.as_deref())
}

/// [`parse_ssh_flags`] with the value of `$SSH_AUTH_SOCK` given.
fn parse_with_agent(
    values: &[String],
    ssh_auth_sock: Option<&Path>,
) -> anyhow::Result<Vec<(String, SshSource)>> {
    let mut sources: Vec<(String, SshSource)> = Vec::new();
    for value in values.iter().filter(|v| !v.is_empty()) {
        let (id, paths): (&str, Vec<&str>) = match value.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').collect()),
            None => (value, Vec::new()),
        };
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        if sources.iter().any(|(known, _)| known == id) {
            // `{:?}` is Go's `%q` for the IDs people write.
            bail!("failed to build: duplicate agent ID {id:?}");
        }
        let source = SshSource::from_paths(&paths, ssh_auth_sock)
            .map_err(|e| anyhow!(refusal(value, id, &paths, &e)))?;
        sources.push((id.to_owned(), source));
    }
    Ok(sources)
}

/// buildx's message for an entry its provider refuses: the entry as Go prints BuildKit's
/// `AgentConfig` (`{ID [PATH PATH] false}`), then the reason, within the ID's context
/// except for a missing `$SSH_AUTH_SOCK`.
fn refusal(value: &str, id: &str, paths: &[&str], error: &SshSourceError) -> String {
    let config = format!("{{{id} [{}] false}}", paths.join(" "));
    match error {
        SshSourceError::NoAgentSocket => {
            format!("failed to build: failed to convert agent config {config}: {error}")
        }
        // brix's own need (buildx holds keys itself): say which flag needs it.
        SshSourceError::AgentTools { .. } => format!("failed to build: --ssh {value}: {error}"),
        _ => format!(
            "failed to build: failed to convert agent config {config}: failed to convert agent config for ID: {id:?}: {error}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn refused(v: &[&str], ssh_auth_sock: Option<&Path>) -> String {
        parse_with_agent(&values(v), ssh_auth_sock)
            .expect_err("refused")
            .to_string()
    }

    fn keygen(dir: &Path, name: &str, passphrase: &str) -> String {
        let key = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
        key.display().to_string()
    }

    #[test]
    fn ids_paths_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let other = dir.path().join("other.sock");
        let _other = std::os::unix::net::UnixListener::bind(&other).expect("bind");
        let key = keygen(dir.path(), "id", "");
        let parsed = parse_with_agent(
            &values(&[
                "default",
                "",
                &format!("other={}", other.display()),
                &format!("keys={key},{key}"),
                "empty=",
            ]),
            Some(&sock),
        )
        .expect("parsed");
        let ids: Vec<&str> = parsed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["default", "other", "keys", "empty"]);
        assert_eq!(parsed[0].1, SshSource::AgentSocket(sock.clone()));
        assert_eq!(parsed[1].1, SshSource::AgentSocket(other.clone()));
        assert!(matches!(&parsed[2].1, SshSource::Keys(k) if k.len() == 2));
        assert_eq!(parsed[3].1, SshSource::AgentSocket(sock.clone()));
        // An empty ID is the default one.
        let parsed =
            parse_with_agent(&values(&[&format!("={}", other.display())]), None).expect("parsed");
        assert_eq!(parsed[0].0, "default");
        assert!(parse_with_agent(&[], None).expect("none").is_empty());
    }

    // Each message as `docker buildx build --ssh VALUE .` (buildx 0.29.1) prints it after
    // `ERROR: `, with SSH_AUTH_SOCK unset unless said.
    #[test]
    fn messages_are_buildxs() {
        assert_eq!(
            refused(&["default"], None),
            "failed to build: failed to convert agent config {default [] false}: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
        );
        assert_eq!(
            refused(&["a=,"], None),
            "failed to build: failed to convert agent config {a [ ] false}: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
        );
        assert_eq!(
            refused(&["default=/no/such"], None),
            "failed to build: failed to convert agent config {default [/no/such] false}: failed to convert agent config for ID: \"default\": stat /no/such: no such file or directory"
        );
        assert_eq!(
            refused(&["=/x"], None),
            "failed to build: failed to convert agent config {default [/x] false}: failed to convert agent config for ID: \"default\": stat /x: no such file or directory"
        );
        assert_eq!(
            refused(&["x=raw=true"], None),
            "failed to build: failed to convert agent config {x [raw=true] false}: failed to convert agent config for ID: \"x\": stat raw=true: no such file or directory"
        );
        // SSH_AUTH_SOCK=/no/sock
        assert_eq!(
            refused(&["default"], Some(Path::new("/no/sock"))),
            "failed to build: failed to convert agent config {default [] false}: failed to convert agent config for ID: \"default\": stat /no/sock: no such file or directory"
        );
        assert_eq!(
            refused(&["a=/etc/passwd"], None),
            "failed to build: failed to convert agent config {a [/etc/passwd] false}: failed to convert agent config for ID: \"a\": failed to parse /etc/passwd: ssh: no key found"
        );
    }

    #[test]
    fn key_file_messages_are_buildxs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let key = keygen(dir.path(), "plain", "");
        let enc = keygen(dir.path(), "enc", "secret");
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let sock = sock.display().to_string();
        let prefix = |id: &str, paths: &str| {
            format!(
                "failed to build: failed to convert agent config {{{id} [{paths}] false}}: failed to convert agent config for ID: \"{id}\": "
            )
        };
        assert_eq!(
            refused(&[&format!("default={enc}")], None),
            prefix("default", &enc)
                + &format!("failed to parse {enc}: ssh: this private key is passphrase protected")
        );
        assert_eq!(
            refused(&[&format!("x={d}")], None),
            prefix("x", &d) + &format!("failed to read {d}: read {d}: is a directory")
        );
        assert_eq!(
            refused(&[&format!("x={sock},{key}")], None),
            prefix("x", &format!("{sock} {key}")) + "only single socket allowed"
        );
        assert_eq!(
            refused(&[&format!("x={key},{sock}")], None),
            prefix("x", &format!("{key} {sock}")) + "invalid combination of keys and sockets"
        );
        assert_eq!(
            refused(&[&format!("x={key},")], None),
            prefix("x", &format!("{key} ")) + "stat : no such file or directory"
        );
        assert_eq!(
            refused(&[&format!("x={key}.pub")], None),
            prefix("x", &format!("{key}.pub"))
                + &format!("failed to parse {key}.pub: ssh: no key found")
        );
    }

    #[test]
    fn an_id_given_twice_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), "plain", "");
        assert_eq!(
            refused(&[&format!("a={key}"), &format!("a={key}")], None),
            "failed to build: duplicate agent ID \"a\""
        );
        assert_eq!(
            refused(&[&format!("={key}"), &format!("default={key}")], None),
            "failed to build: duplicate agent ID \"default\""
        );
        // Before the second one's paths are looked at.
        assert_eq!(
            refused(&[&format!("a={key}"), "a=/no/such"], None),
            "failed to build: duplicate agent ID \"a\""
        );
    }
}
