//! Step 12: git servers on loopback for the tests of remote git contexts
//! (`build http://127.0.0.1:8418/NAME.git#ref:dir`, `ssh://root@127.0.0.1:2222/...`), both
//! serving the bare repositories under `target/e2e/git/repos`:
//!
//! - **Smart HTTP on 127.0.0.1:8418** through git's own `git http-backend`, run as a CGI
//!   program by a small Go program of the standard library only
//!   (`xtask/assets/git-http-server`, built here with the project's Go into
//!   `target/e2e/git/bin/`). A Debian web server (lighttpd, apache2) would be one more package
//!   and a configuration language of its own (CGI, aliases, environment) for what is a page of
//!   Go, and Go is on these machines for BuildKit anyway. Pushes are allowed without
//!   credentials, as is fetching any reachable commit by its id (as hosts like GitHub allow).
//! - **sshd on 127.0.0.1:2222**: Debian's openssh-server with a config, host key,
//!   authorized_keys, known_hosts and pid file of its own under `target/e2e/git/ssh/`; the
//!   system's sshd (its config, its service, port 22) is never touched. Root logs in with the
//!   key `target/e2e/git/ssh/id_ed25519` only; git runs `git-upload-pack '<path>'` there, so
//!   `ssh://root@127.0.0.1:2222<repos>/NAME.git` is `<repos>/NAME.git`.
//!
//! The builders the tests create use the host's network (`--driver-opt network=host`), so
//! buildkitd in its container reaches both on the host's 127.0.0.1.
//!
//! Warm or cold, both are checked end to end with `git ls-remote` of a probe repository; over
//! ssh with strict host key checking against the key made here, so that no other sshd is taken
//! for this one. A server of this checkout that fails the check (its files removed with
//! `target/`, an older build or config) is stopped and started again; anything else holding
//! a port is an error.

use super::process::{self, output};
use super::{Workspace, go_toolchain};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the smart HTTP server listens.
pub const GIT_HTTP_ADDR: &str = "127.0.0.1:8418";
/// Where the sshd listens.
pub const GIT_SSH_ADDR: &str = "127.0.0.1:2222";
/// The user git logs in as over ssh.
const GIT_SSH_USER: &str = "root";
/// Debian's sshd; it re-executes itself, so it must be started by its absolute path.
const SSHD: &str = "/usr/sbin/sshd";
/// The repository the checks list; not one the tests use.
const PROBE_REPO: &str = "xtask-probe.git";
/// Where the Go program's source lives, relative to the workspace root.
const HTTP_SERVER_SOURCE: &str = "xtask/assets/git-http-server";

/// The files of both servers under `target/e2e/git`.
#[derive(Debug)]
pub struct GitServer {
    dir: PathBuf,
    repos: PathBuf,
    ssh_dir: PathBuf,
}

impl GitServer {
    pub fn new(ws: &Workspace) -> Self {
        let dir = ws.e2e_dir.join("git");
        Self {
            repos: dir.join("repos"),
            ssh_dir: dir.join("ssh"),
            dir,
        }
    }

    /// The folder of bare repositories both servers serve (`BRIX_E2E_GIT_REPOS`).
    pub fn repos(&self) -> &Path {
        &self.repos
    }

    /// The private key the sshd lets log in as root (`BRIX_E2E_GIT_SSH_KEY`).
    pub fn client_key(&self) -> PathBuf {
        self.ssh_dir.join("id_ed25519")
    }

    fn host_key(&self) -> PathBuf {
        self.ssh_dir.join("host_ed25519_key")
    }

    fn known_hosts(&self) -> PathBuf {
        self.ssh_dir.join("known_hosts")
    }

    fn sshd_config(&self) -> PathBuf {
        self.ssh_dir.join("sshd_config")
    }

    fn probe(&self) -> PathBuf {
        self.repos.join(PROBE_REPO)
    }

    /// The environment the tests get: `BRIX_E2E_GIT_HTTP`, `BRIX_E2E_GIT_SSH`,
    /// `BRIX_E2E_GIT_REPOS` and `BRIX_E2E_GIT_SSH_KEY`.
    pub fn test_env(&self) -> [(&'static str, OsString); 4] {
        [
            ("BRIX_E2E_GIT_HTTP", http_base().into()),
            ("BRIX_E2E_GIT_SSH", ssh_base().into()),
            ("BRIX_E2E_GIT_REPOS", self.repos.clone().into()),
            ("BRIX_E2E_GIT_SSH_KEY", self.client_key().into()),
        ]
    }

    /// Whether both servers of this checkout answer, checked lightly (the HTTP server says
    /// it is this checkout's; the sshd port greets with `SSH-`) since the set-up step checked
    /// them end to end: the tests get the variables only then.
    pub fn running(&self, ws: &Workspace) -> bool {
        self.client_key().is_file() && self.http_is_current(ws).is_ok() && ssh_greets()
    }

    /// The probe's commit, made (again) when the repository is missing or broken.
    fn ensure_probe(&self) -> Result<String> {
        if let Ok(commit) = self.probe_commit() {
            return Ok(commit);
        }
        let probe = self.probe();
        if probe.exists() {
            std::fs::remove_dir_all(&probe)
                .with_context(|| format!("removing {}", probe.display()))?;
        }
        output(
            git(&self.repos)
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&probe),
        )?;
        let tree = output(git(&probe).args(["mktree"]))?;
        // Fixed names and dates: the same commit on every machine.
        let commit = output(
            git(&probe)
                .env("GIT_AUTHOR_NAME", "cargo xtask e2e")
                .env("GIT_AUTHOR_EMAIL", "e2e@brix.invalid")
                .env("GIT_AUTHOR_DATE", "@0 +0000")
                .env("GIT_COMMITTER_NAME", "cargo xtask e2e")
                .env("GIT_COMMITTER_EMAIL", "e2e@brix.invalid")
                .env("GIT_COMMITTER_DATE", "@0 +0000")
                .args(["commit-tree", "-m", "probe", tree.trim()]),
        )?;
        output(git(&probe).args(["update-ref", "refs/heads/main", commit.trim()]))?;
        self.probe_commit()
    }

    fn probe_commit(&self) -> Result<String> {
        Ok(
            output(git(&self.probe()).args(["rev-parse", "--verify", "refs/heads/main"]))?
                .trim()
                .to_string(),
        )
    }

    /// Whether `git ls-remote <base>/<probe>` lists the probe's commit.
    fn lists_probe(&self, base: &str, commit: &str) -> bool {
        self.ls_remote(base)
            .is_ok_and(|listed| listed.split_whitespace().next() == Some(commit))
    }

    fn ls_remote(&self, base: &str) -> Result<String> {
        let url = if base.starts_with("ssh://") {
            format!("{base}{}", self.probe().display())
        } else {
            format!("{base}/{PROBE_REPO}")
        };
        output(
            git(&self.repos)
                .env("GIT_SSH_COMMAND", self.ssh_command())
                .env("GIT_TERMINAL_PROMPT", "0")
                .env_remove("SSH_AUTH_SOCK")
                .args(["ls-remote", &url, "refs/heads/main"]),
        )
    }

    /// ssh with the test key only, no agent, no user config, and this sshd's host key as the
    /// only one it accepts.
    fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o ConnectTimeout=5",
            shell_quote(&self.client_key()),
            shell_quote(&self.known_hosts())
        )
    }

    /// Makes the host and client keys when missing, and writes authorized_keys and
    /// known_hosts from them.
    fn ensure_keys(&self) -> Result<()> {
        std::fs::create_dir_all(&self.ssh_dir)
            .with_context(|| format!("creating {}", self.ssh_dir.display()))?;
        for (key, comment) in [
            (self.host_key(), "brix-e2e git sshd host key"),
            (self.client_key(), "brix-e2e git client key"),
        ] {
            let public = public_key_path(&key);
            if key.is_file() && public.is_file() {
                continue;
            }
            for file in [&key, &public] {
                if file.exists() {
                    std::fs::remove_file(file)?;
                }
            }
            output(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(&key),
            )?;
        }
        let client = read(&public_key_path(&self.client_key()))?;
        write_if_changed(&self.ssh_dir.join("authorized_keys"), &client)?;
        let host = read(&public_key_path(&self.host_key()))?;
        let mut fields = host.split_whitespace();
        let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
            bail!(
                "{} is not a public key",
                public_key_path(&self.host_key()).display()
            );
        };
        let port = GIT_SSH_ADDR.rsplit_once(':').map_or("22", |(_, port)| port);
        let host = GIT_SSH_ADDR
            .rsplit_once(':')
            .map_or(GIT_SSH_ADDR, |(host, _)| host);
        write_if_changed(
            &self.known_hosts(),
            &format!("[{host}]:{port} {kind} {key}\n"),
        )?;
        Ok(())
    }

    /// sshd's whole configuration (no `Include`s: Debian's `/etc/ssh` is not read).
    fn sshd_config_text(&self) -> String {
        let path = |p: PathBuf| p.display().to_string();
        format!(
            "# Written by cargo xtask e2e (xtask/src/e2e/git_server.rs) for the git tests; the\n\
             # system's sshd does not read it.\n\
             ListenAddress {GIT_SSH_ADDR}\n\
             HostKey {}\n\
             PidFile {}\n\
             AuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             # No PAM stack, no login records: a test fixture, not a login service.\n\
             UsePAM no\n\
             # The files sit under the checkout, whose folders may be group-writable.\n\
             StrictModes no\n\
             UseDNS no\n\
             PrintMotd no\n\
             AllowTcpForwarding no\n\
             AllowAgentForwarding no\n\
             X11Forwarding no\n\
             # As over HTTP: a commit can be fetched by its id.\n\
             SetEnv GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=uploadpack.allowReachableSHA1InWant GIT_CONFIG_VALUE_0=true\n",
            path(self.host_key()),
            path(self.ssh_dir.join("sshd.pid")),
            path(self.ssh_dir.join("authorized_keys")),
        )
    }

    /// The HTTP server's binary for the current source: its name carries the source's hash,
    /// so an edited program is built and started anew.
    fn http_binary(&self, ws: &Workspace) -> Result<PathBuf> {
        let source = ws.root.join(HTTP_SERVER_SOURCE);
        let mut hash = Sha256::new();
        for file in ["go.mod", "main.go"] {
            let path = source.join(file);
            hash.update(
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            );
        }
        let hex = format!("{:x}", hash.finalize());
        Ok(self
            .dir
            .join("bin")
            .join(format!("git-http-server-{}", &hex[..12])))
    }

    /// Fails unless the HTTP server on [`GIT_HTTP_ADDR`] is this checkout's current build
    /// serving [`GitServer::repos`] (its `/.brix-e2e/server` says which).
    fn http_is_current(&self, ws: &Workspace) -> Result<()> {
        let binary = self.http_binary(ws)?;
        // The server reports its executable with links resolved (/proc/self/exe).
        let binary = std::fs::canonicalize(&binary).unwrap_or(binary);
        let wanted = format!("{}\n{}\n", self.repos.display(), binary.display());
        match http_get(GIT_HTTP_ADDR, "/.brix-e2e/server") {
            Some(body) if body == wanted => Ok(()),
            Some(body) => bail!("it serves {body:?}, not {wanted:?}"),
            None => bail!("nothing answers GET /.brix-e2e/server"),
        }
    }

    /// Builds the server unless this source's binary exists; returns whether it built.
    fn build_http_server(&self, ws: &Workspace, binary: &Path) -> Result<bool> {
        if binary.is_file() {
            return Ok(false);
        }
        let bin_dir = binary.parent().context("the binary has a folder")?;
        std::fs::create_dir_all(bin_dir)?;
        let go = go_toolchain::go_binary(ws)?;
        let partial = binary.with_extension("partial");
        process::logged(
            Command::new(&go)
                .current_dir(ws.root.join(HTTP_SERVER_SOURCE))
                .env("CGO_ENABLED", "0")
                .args(["build", "-trimpath", "-buildvcs=false", "-o"])
                .arg(&partial)
                .arg("."),
            &self.dir.join("go-build.log"),
        )
        .context("building xtask/assets/git-http-server")?;
        std::fs::rename(&partial, binary)?;
        // Builds of earlier sources: their servers, if any, were stopped before this.
        for entry in std::fs::read_dir(bin_dir)? {
            let path = entry?.path();
            if path != binary {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(true)
    }

    fn ensure_http(&self, ws: &Workspace, commit: &str) -> Result<String> {
        if self.http_is_current(ws).is_ok() && self.lists_probe(&http_base(), commit) {
            return Ok("already running".to_string());
        }
        let stopped = stop_own_listener(GIT_HTTP_ADDR, &self.dir)?;
        let binary = self.http_binary(ws)?;
        let built = self.build_http_server(ws, &binary)?;
        let log = self.dir.join("http.log");
        let mut serve = Command::new(&binary);
        serve
            .args(["-addr", GIT_HTTP_ADDR])
            .arg("-root")
            .arg(&self.repos);
        let mut daemon = process::spawn_detached(&serve, &log)?;
        process::wait_until(
            "the git HTTP server",
            &mut daemon,
            Duration::from_secs(30),
            &log,
            || self.http_is_current(ws).is_ok(),
        )?;
        self.ls_remote(&http_base())
            .context("the git HTTP server runs but `git ls-remote` fails")?;
        Ok(format!(
            "{}{}started",
            if built { "built, " } else { "" },
            if stopped {
                "stopped an outdated one, "
            } else {
                ""
            },
        ))
    }

    fn ensure_sshd(&self, commit: &str) -> Result<String> {
        if !Path::new(SSHD).is_file() {
            bail!(
                "{SSHD} is missing: openssh-server is not installed (the `packages` step installs it)"
            );
        }
        let config_changed = write_if_changed(&self.sshd_config(), &self.sshd_config_text())?;
        if !config_changed && self.lists_probe(&ssh_base(), commit) {
            return Ok("already running".to_string());
        }
        let stopped = stop_own_listener(GIT_SSH_ADDR, &self.dir)?;
        // sshd's privilege separation folder, which Debian's service makes at start.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let log = self.ssh_dir.join("sshd.log");
        let mut serve = Command::new(SSHD);
        // -D: stay in the foreground (setsid detaches it); -e: log to the log file.
        serve.args(["-D", "-e", "-f"]).arg(self.sshd_config());
        let mut daemon = process::spawn_detached(&serve, &log)?;
        process::wait_until("sshd", &mut daemon, Duration::from_secs(30), &log, || {
            self.lists_probe(&ssh_base(), commit)
        })
        .map_err(|err| match self.ls_remote(&ssh_base()) {
            Ok(_) => err,
            Err(ls) => err.context(format!("`git ls-remote` over ssh: {ls:#}")),
        })?;
        Ok(format!(
            "{}started",
            if stopped {
                "stopped an outdated one, "
            } else {
                ""
            }
        ))
    }
}

/// `http://127.0.0.1:8418` (`BRIX_E2E_GIT_HTTP`).
fn http_base() -> String {
    format!("http://{GIT_HTTP_ADDR}")
}

/// `ssh://root@127.0.0.1:2222` (`BRIX_E2E_GIT_SSH`); an absolute path follows it.
fn ssh_base() -> String {
    format!("ssh://{GIT_SSH_USER}@{GIT_SSH_ADDR}")
}

/// Makes the keys and the probe repository, then starts whichever server does not answer.
pub fn ensure(ws: &Workspace) -> Result<String> {
    super::packages::require_command("git")?;
    super::packages::require_command("ssh-keygen")?;
    let server = GitServer::new(ws);
    std::fs::create_dir_all(&server.repos)
        .with_context(|| format!("creating {}", server.repos.display()))?;
    server.ensure_keys()?;
    let commit = server.ensure_probe()?;
    let http = server
        .ensure_http(ws, &commit)
        .context("starting the git HTTP server")?;
    let ssh = server.ensure_sshd(&commit).context("starting sshd")?;
    Ok(format!(
        "git http-backend on {} {http}, sshd on {} {ssh}; bare repositories in {}, login key {}, logs: {}/{{http.log,ssh/sshd.log}}",
        http_base(),
        ssh_base(),
        ws.display(&server.repos),
        ws.display(&server.client_key()),
        ws.display(&server.dir),
    ))
}

/// Stops the process listening on `addr` when it is one of this checkout's servers (its
/// command line names a file under `own_dir`); returns whether it stopped one. Fails when
/// another program holds the port.
fn stop_own_listener(addr: &str, own_dir: &Path) -> Result<bool> {
    let Some(pid) = listener_pid(addr)? else {
        return Ok(false);
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default();
    if !cmdline.contains(&own_dir.display().to_string()) {
        bail!(
            "{addr} is taken by process {pid} ({}), not a server of this checkout; stop it and run again",
            cmdline.trim()
        );
    }
    output(Command::new("kill").arg(pid.to_string()))?;
    let started = Instant::now();
    while listener_pid(addr)?.is_some() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!(
                "process {pid} ({}) still listens on {addr} 10s after SIGTERM",
                cmdline.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(true)
}

/// The process listening on TCP `addr`, as `ss` reports it.
fn listener_pid(addr: &str) -> Result<Option<u32>> {
    let port = addr.rsplit_once(':').map_or(addr, |(_, port)| port);
    let text = output(Command::new("ss").args(["-Hltnp", &format!("sport = :{port}")]))?;
    Ok(parse_ss_pid(&text))
}

/// The first `pid=N` of `ss -p` output (`users:(("sshd",pid=123,fd=3))`).
fn parse_ss_pid(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once("pid=")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A body of `GET path` on `addr` answered with 200, or None.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// Whether something on [`GIT_SSH_ADDR`] sends an SSH protocol banner.
fn ssh_greets() -> bool {
    let Ok(addr) = GIT_SSH_ADDR.parse() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && banner == *b"SSH-"
}

/// `git` in `dir`, without the user's or the system's git config.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `text` to `path` unless it already holds it; returns whether it wrote.
fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// `path` in single quotes for a command line git hands to `sh` (`GIT_SSH_COMMAND`).
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_output_gives_the_listener_pid() {
        let text = "LISTEN 0 128 127.0.0.1:2222 0.0.0.0:* users:((\"sshd\",pid=4711,fd=3))\n";
        assert_eq!(parse_ss_pid(text), Some(4711));
        assert_eq!(parse_ss_pid(""), None);
    }

    #[test]
    fn sshd_config_keeps_to_loopback_and_its_own_files() {
        let server = GitServer {
            dir: PathBuf::from("/t/git"),
            repos: PathBuf::from("/t/git/repos"),
            ssh_dir: PathBuf::from("/t/git/ssh"),
        };
        let config = server.sshd_config_text();
        assert!(
            config.contains("ListenAddress 127.0.0.1:2222\n"),
            "{config}"
        );
        assert!(
            config.contains("HostKey /t/git/ssh/host_ed25519_key\n"),
            "{config}"
        );
        assert!(config.contains("PidFile /t/git/ssh/sshd.pid\n"), "{config}");
        assert!(config.contains("PasswordAuthentication no\n"), "{config}");
        assert!(!config.contains("Include"), "{config}");
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
