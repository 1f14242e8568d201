//! Step 14: a registry behind the Docker token flow, as Docker Hub, GHCR, Harbor and the
//! others answer (issue 17): a second distribution registry (Debian's docker-registry) on
//! 127.0.0.1:5001 with `auth: token`, and distribution's own token server
//! (`github.com/docker/distribution/contrib/token-server`, v2.8.3 from the Go module proxy;
//! cesanta/docker_auth is not served there) on 127.0.0.1:5002. The registry answers 401 with
//! `WWW-Authenticate: Bearer realm=…,service=…`; the token server checks basic credentials
//! against an htpasswd file and issues ES256 JWTs for scopes under the user's own namespace
//! (`localhost:5001/brix/...`), valid 15 minutes (the server has no flag for it), with
//! refresh tokens on its OAuth2 POST endpoint.
//!
//! Its pinned module set is `xtask/assets/token-server` (a wrapper module whose go.mod `go get`
//! wrote; `go install …@v2.8.3+incompatible` would take the dependencies' newest versions).
//! Everything else is made here under `target/e2e/token-registry/`: the token signing key
//! and its certificate (the registry's `rootcertbundle`), the htpasswd file and the configs.

use super::process;
use super::{Workspace, go_toolchain};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The registry's address, and the name tests push to (`localhost:5001/brix/…`).
pub const REGISTRY_ADDR: &str = "127.0.0.1:5001";
/// The token server's address.
pub const TOKEN_ADDR: &str = "127.0.0.1:5002";
/// The registry as image references name it.
pub const REGISTRY_HOST: &str = "localhost:5001";
/// The one user, whose namespace (`brix/`) the token server grants.
pub const USER: &str = "brix";
/// Its password: a throwaway, and distinctive so the secret-leak greps find any copy.
pub const PASSWORD: &str = "brix-e2e-pw-7f3c9a";
/// bcrypt of [`PASSWORD`] (cost 12), the htpasswd line's hash: fixed, so no htpasswd tool
/// is needed.
const PASSWORD_BCRYPT: &str = "$2b$12$0CKp3qg2mYp7o6f9YZTTv.jM5LQYCCJpJMGqtDj9oLbGsYxlreYHa";
/// What the token server calls itself and the registry calls itself in tokens.
const ISSUER: &str = "brix-e2e-token-server";
const SERVICE: &str = "brix-e2e-registry";
/// The token server's package in the pinned module.
const PACKAGE: &str = "github.com/docker/distribution/contrib/token-server";

fn dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("token-registry")
}

fn binary(ws: &Workspace) -> PathBuf {
    dir(ws).join("bin").join("token-server")
}

/// Whether both servers answer (the registry with its 401, the token server at all).
pub fn running() -> bool {
    super::registry::v2_status(REGISTRY_ADDR) == Some(401)
        && super::registry::http_status(TOKEN_ADDR, "/token/").is_some()
}

/// Builds the token server once, makes the keys and files once, and starts whichever of the
/// two servers is not answering.
pub fn ensure(ws: &Workspace) -> Result<String> {
    if running() {
        return Ok(format!(
            "already running: registry {REGISTRY_ADDR}, token server {TOKEN_ADDR}"
        ));
    }
    super::packages::require_command("docker-registry")?;
    super::packages::require_command("openssl")?;
    let dir = dir(ws);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let built = build_token_server(ws)?;
    let files = ensure_files(&dir)?;
    let mut started = Vec::new();
    if super::registry::http_status(TOKEN_ADDR, "/token/").is_none() {
        let log = dir.join("token-server.log");
        let mut serve = Command::new(binary(ws));
        serve
            .args(["-addr", TOKEN_ADDR, "-issuer", ISSUER, "-realm", "brix-e2e"])
            .arg("-key")
            .arg(&files.signing_key)
            .arg("-passwd")
            .arg(&files.htpasswd);
        let mut daemon = process::spawn_detached(&serve, &log)?;
        process::wait_until(
            "the token server",
            &mut daemon,
            Duration::from_secs(30),
            &log,
            || super::registry::http_status(TOKEN_ADDR, "/token/").is_some(),
        )?;
        started.push(format!("token server on {TOKEN_ADDR}"));
    }
    if super::registry::v2_status(REGISTRY_ADDR) != Some(401) {
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            registry_config(&dir.join("data"), &files.signing_cert),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let log = dir.join("registry.log");
        let mut serve = Command::new("docker-registry");
        serve.arg("serve").arg(&config);
        let mut daemon = process::spawn_detached(&serve, &log)?;
        process::wait_until(
            "the token-auth registry",
            &mut daemon,
            Duration::from_secs(30),
            &log,
            || super::registry::v2_status(REGISTRY_ADDR) == Some(401),
        )?;
        started.push(format!("registry on {REGISTRY_ADDR} (auth: token)"));
    }
    Ok(format!(
        "{built}started {}; user {USER} (namespace {REGISTRY_HOST}/{USER}/), logs in {}",
        started.join(", "),
        ws.display(&dir)
    ))
}

/// `go build`s the token server from the pinned wrapper module unless it is built.
fn build_token_server(ws: &Workspace) -> Result<String> {
    let bin = binary(ws);
    if bin.is_file() {
        return Ok(String::new());
    }
    let go = go_toolchain::go_binary(ws)?;
    let wrapper = ws.root.join("xtask/assets/token-server");
    let partial = bin.with_extension("partial");
    std::fs::create_dir_all(bin.parent().context("the binary has a folder")?)?;
    let log = dir(ws).join("go-build.log");
    process::logged(
        Command::new(&go)
            .current_dir(&wrapper)
            .env("CGO_ENABLED", "0")
            .args(["build", "-trimpath", "-buildvcs=false", "-o"])
            .arg(&partial)
            .arg(PACKAGE),
        &log,
    )
    .context("building distribution's token server from the Go module proxy (`go env GOPROXY`)")?;
    std::fs::rename(&partial, &bin)?;
    Ok(format!("built {PACKAGE} v2.8.3, "))
}

/// The files the two servers read.
struct Files {
    signing_key: PathBuf,
    signing_cert: PathBuf,
    htpasswd: PathBuf,
}

/// Makes the token signing key (EC P-256), its self-signed certificate and the htpasswd
/// file unless they exist.
fn ensure_files(dir: &Path) -> Result<Files> {
    let files = Files {
        signing_key: dir.join("token-key.pem"),
        signing_cert: dir.join("token-cert.pem"),
        htpasswd: dir.join("htpasswd"),
    };
    std::fs::write(&files.htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n"))
        .with_context(|| format!("writing {}", files.htpasswd.display()))?;
    if files.signing_key.is_file() && files.signing_cert.is_file() {
        return Ok(files);
    }
    let key_partial = files.signing_key.with_extension("partial");
    process::output(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&key_partial),
    )?;
    process::output(
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-days", "3650"])
            .args(["-subj", "/CN=brix e2e token issuer", "-key"])
            .arg(&key_partial)
            .arg("-out")
            .arg(&files.signing_cert),
    )?;
    std::fs::rename(&key_partial, &files.signing_key)?;
    Ok(files)
}

/// The registry's configuration: loopback only, its own storage, token auth with the token
/// server's certificate as the trusted bundle.
fn registry_config(data: &Path, signing_cert: &Path) -> String {
    let quote = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: token-registry\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {REGISTRY_ADDR}\n\
         auth:\n  token:\n    realm: http://{TOKEN_ADDR}/token/\n    service: {SERVICE}\n    \
         issuer: {ISSUER}\n    rootcertbundle: {}\n",
        quote(data),
        quote(signing_cert)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_trusts_the_token_servers_certificate() {
        let config = registry_config(Path::new("/d"), Path::new("/c.pem"));
        assert!(
            config.contains("realm: http://127.0.0.1:5002/token/"),
            "{config}"
        );
        assert!(config.contains("rootcertbundle: \"/c.pem\""), "{config}");
        assert!(config.contains(&format!("issuer: {ISSUER}")), "{config}");
    }
}
