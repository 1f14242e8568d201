//! Step 4: the CNCF distribution registry (Debian's docker-registry) on 127.0.0.1:5000, with
//! its storage under `target/e2e/registry/data` and deletes enabled.

use super::process;
use super::{REGISTRY_ADDR, Workspace};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Starts the registry unless `GET /v2/` already answers 200, and waits until it does.
pub fn ensure(ws: &Workspace) -> Result<String> {
    if v2_status(REGISTRY_ADDR) == Some(200) {
        return Ok(format!("already running on {REGISTRY_ADDR}"));
    }
    super::packages::require_command("docker-registry")?;
    let dir = ws.e2e_dir.join("registry");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let config = dir.join("config.yml");
    std::fs::write(&config, config_yaml(&data.to_string_lossy()))
        .with_context(|| format!("writing {}", config.display()))?;
    let log = dir.join("registry.log");
    serve("the registry", &config, &log, || {
        v2_status(REGISTRY_ADDR) == Some(200)
    })?;
    Ok(format!(
        "started on {REGISTRY_ADDR}, storage {}, log: {}",
        ws.display(&data),
        ws.display(&log)
    ))
}

/// Starts Debian's docker-registry on `config`, logging to `log`, and waits up to 30 s until
/// `ready` (the registry answers as configured). Returns the running daemon.
pub fn serve(
    what: &str,
    config: &Path,
    log: &Path,
    ready: impl FnMut() -> bool,
) -> Result<std::process::Child> {
    let mut serve = Command::new("docker-registry");
    serve.arg("serve").arg(config);
    let mut daemon = process::spawn_detached(&serve, log)?;
    process::wait_until(what, &mut daemon, Duration::from_secs(30), log, ready)?;
    Ok(daemon)
}

/// The registry's configuration: loopback only, filesystem storage, deletes allowed (tests
/// clean up after themselves).
fn config_yaml(rootdirectory: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: \"{rootdirectory}\"\n  delete:\n    enabled: true\n\
         http:\n  addr: {REGISTRY_ADDR}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
}

/// The HTTP status of `GET /v2/`, or None when nothing answers.
pub fn v2_status(addr: &str) -> Option<u16> {
    http_status(addr, "/v2/")
}

/// The HTTP status of `GET path` on `addr`, or None when nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Fails with a hint when the registry is not answering (for `--no-setup`).
pub fn require_running() -> Result<()> {
    match v2_status(REGISTRY_ADDR) {
        Some(200) => Ok(()),
        other => anyhow::bail!(
            "the registry on {REGISTRY_ADDR} does not answer GET /v2/ with 200 (got {other:?}); run `cargo xtask e2e --setup-only`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::config_yaml;

    #[test]
    fn config_enables_delete_and_binds_loopback() {
        let yaml = config_yaml("/data");
        assert!(yaml.contains("rootdirectory: \"/data\""));
        assert!(yaml.contains("delete:\n    enabled: true"));
        assert!(yaml.contains("addr: 127.0.0.1:5000"));
    }
}
