//! Step 2: a running Docker engine. There is no systemd on these machines, so when
//! `/var/run/docker.sock` does not answer `GET /_ping`, dockerd is started here, detached.

use super::Workspace;
use super::process;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The engine's socket, as the docker CLI and the tests reach it.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Starts dockerd unless it already answers, and waits until it does.
pub fn ensure(ws: &Workspace) -> Result<String> {
    if let Some(version) = ping(Path::new(DOCKER_SOCKET)) {
        return Ok(format!(
            "already running (API {version}) on {DOCKER_SOCKET}"
        ));
    }
    super::packages::require_command("dockerd")?;
    let log = ws.e2e_dir.join("dockerd.log");
    let mut daemon = process::spawn_detached(&Command::new("dockerd"), &log)?;
    let mut version = None;
    process::wait_until(
        "dockerd",
        &mut daemon,
        Duration::from_secs(60),
        &log,
        || {
            version = ping(Path::new(DOCKER_SOCKET));
            version.is_some()
        },
    )?;
    Ok(format!(
        "started dockerd (API {}), log: {}",
        version.unwrap_or_default(),
        ws.display(&log)
    ))
}

/// `GET /_ping` over the socket; the engine's API version when it answers `OK`.
pub fn ping(socket: &Path) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    parse_ping(&response)
}

fn parse_ping(response: &str) -> Option<String> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") || body.trim() != "OK" {
        return None;
    }
    let version = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    Some(version)
}

/// Fails with a hint when the engine is not answering (for `--no-setup`).
pub fn require_running() -> Result<()> {
    ping(Path::new(DOCKER_SOCKET)).map(|_| ()).with_context(|| {
        format!("dockerd does not answer on {DOCKER_SOCKET}; run `cargo xtask e2e --setup-only`")
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ping;

    #[test]
    fn ping_reads_the_api_version() {
        let response = "HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(parse_ping(response).as_deref(), Some("1.41"));
    }

    #[test]
    fn ping_rejects_errors() {
        assert_eq!(parse_ping("HTTP/1.0 500 Internal\r\n\r\nOK"), None);
        assert_eq!(parse_ping("garbage"), None);
    }
}
