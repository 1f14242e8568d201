//! The docker CLI's context store (`$DOCKER_CONFIG/contexts`, else `~/.docker/contexts`):
//! every context is a Docker engine endpoint, and buildx (so brix) shows each as a `docker`
//! driver builder named after it.
//!
//! Layout, as the docker CLI writes it: `meta/<sha256 of the name>/meta.json` holds
//! `{"Name", "Metadata", "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}`, and
//! `tls/<sha256 of the name>/docker/{ca,cert,key}.pem` the TLS material of a TLS endpoint.
//! The current context is the docker CLI's: `DOCKER_HOST` set means `default`, else
//! `DOCKER_CONTEXT`, else `currentContext` in `config.json`, else `default`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::DriverError;
use crate::docker_api::DEFAULT_DOCKER_HOST;

/// The name of the implicit context: `DOCKER_HOST`, or the local engine's socket.
pub const DEFAULT_CONTEXT: &str = "default";

/// One docker context: its name and its engine endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContext {
    /// The context's name.
    pub name: String,
    /// The engine's address, e.g. `unix:///var/run/docker.sock` or `tcp://host:2376`.
    pub host: String,
    /// TLS material for a TLS endpoint.
    pub tls: Option<ContextTls>,
    /// The context's `SkipTLSVerify`.
    pub skip_tls_verify: bool,
}

/// The TLS files of a context's docker endpoint (each may be missing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContextTls {
    /// `ca.pem`: the certificate authority the engine's certificate is checked against.
    pub ca: Option<PathBuf>,
    /// `cert.pem`: the client certificate.
    pub cert: Option<PathBuf>,
    /// `key.pem`: the client key.
    pub key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    name: String,
    #[serde(default)]
    endpoints: std::collections::BTreeMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetaEndpoint {
    #[serde(default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

fn non_empty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The docker CLI's configuration folder: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    non_empty("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

fn context_dirs() -> Option<PathBuf> {
    docker_config_dir().map(|d| d.join("contexts"))
}

fn name_hash(name: &str) -> String {
    format!("{:x}", Sha256::digest(name.as_bytes()))
}

/// The current context's name, chosen as the docker CLI chooses it.
pub fn current_name() -> String {
    if non_empty("DOCKER_HOST").is_some() {
        return DEFAULT_CONTEXT.to_string();
    }
    if let Some(name) = non_empty("DOCKER_CONTEXT") {
        return name;
    }
    docker_config_dir()
        .and_then(|d| std::fs::read(d.join("config.json")).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v["currentContext"].as_str().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_CONTEXT.to_string())
}

/// The `default` context: `DOCKER_HOST`, else the local engine's socket; for a `tcp://`
/// host, TLS as the docker CLI turns it on from the environment (`DOCKER_TLS_VERIFY`, or
/// `DOCKER_TLS` without verification), with `ca.pem`, `cert.pem` and `key.pem` from
/// `DOCKER_CERT_PATH`, else the docker configuration folder.
fn default_context() -> DockerContext {
    let host = non_empty("DOCKER_HOST").unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
    let verify = non_empty("DOCKER_TLS_VERIFY").is_some();
    let tls_dir = (host.starts_with("tcp://") && (verify || non_empty("DOCKER_TLS").is_some()))
        .then(|| {
            non_empty("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(docker_config_dir)
        })
        .flatten();
    DockerContext {
        name: DEFAULT_CONTEXT.to_string(),
        host,
        skip_tls_verify: tls_dir.is_some() && !verify,
        tls: tls_dir.map(|dir| {
            let mut files = tls_files(&dir);
            for (var, file) in [
                (TLS_CA_VAR, &mut files.ca),
                (TLS_CERT_VAR, &mut files.cert),
                (TLS_KEY_VAR, &mut files.key),
            ] {
                if let Some(path) = non_empty(var) {
                    *file = Some(PathBuf::from(path));
                }
            }
            files
        }),
    }
}

/// Environment variables naming the `default` context's TLS files one by one, over
/// `DOCKER_CERT_PATH`'s: how brix, run as a Docker CLI plugin, passes on the docker CLI's
/// `--tlscacert`, `--tlscert` and `--tlskey`.
pub const TLS_CA_VAR: &str = "BRIX_DOCKER_TLSCACERT";
/// See [`TLS_CA_VAR`].
pub const TLS_CERT_VAR: &str = "BRIX_DOCKER_TLSCERT";
/// See [`TLS_CA_VAR`].
pub const TLS_KEY_VAR: &str = "BRIX_DOCKER_TLSKEY";

/// The TLS files the docker CLI looks for in a folder (each kept only if it exists).
fn tls_files(dir: &Path) -> ContextTls {
    let file = |f: &str| Some(dir.join(f)).filter(|p| p.is_file());
    ContextTls {
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
    }
}

/// The context named `name` (`default` included).
pub fn get(name: &str) -> Result<DockerContext, DriverError> {
    if name == DEFAULT_CONTEXT {
        return Ok(default_context());
    }
    let missing = || DriverError::Invalid(format!("context {name:?} does not exist"));
    let root = context_dirs().ok_or_else(missing)?;
    let hash = name_hash(name);
    let meta_path = root.join("meta").join(&hash).join("meta.json");
    let bytes = std::fs::read(&meta_path).map_err(|_| missing())?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
        DriverError::Invalid(format!(
            "docker context {name:?}: {} is not valid: {e}",
            meta_path.display()
        ))
    })?;
    read_context(root, meta, &hash)
}

fn read_context(root: PathBuf, meta: Meta, hash: &str) -> Result<DockerContext, DriverError> {
    let endpoint = meta.endpoints.get("docker").ok_or_else(|| {
        DriverError::Invalid(format!(
            "docker context {:?} has no docker endpoint",
            meta.name
        ))
    })?;
    let tls = tls_files(&root.join("tls").join(hash).join("docker"));
    let has_tls = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    Ok(DockerContext {
        name: meta.name,
        host: endpoint.host.clone(),
        tls: has_tls.then_some(tls),
        skip_tls_verify: endpoint.skip_tls_verify,
    })
}

/// The current context ([`current_name`]).
pub fn current() -> Result<DockerContext, DriverError> {
    get(&current_name())
}

/// Every context, `default` included, sorted by name (as buildx lists them).
pub fn list() -> Vec<DockerContext> {
    let mut out = vec![default_context()];
    if let Some(root) = context_dirs()
        && let Ok(entries) = std::fs::read_dir(root.join("meta"))
    {
        for entry in entries.flatten() {
            let hash = entry.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(entry.path().join("meta.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<Meta>(&bytes) else {
                tracing::warn!(path = %entry.path().display(), "skipping an unreadable docker context");
                continue;
            };
            if meta.name == DEFAULT_CONTEXT {
                continue;
            }
            if let Ok(ctx) = read_context(root.clone(), meta, &hash) {
                out.push(ctx);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether `endpoint` names a context rather than an address (`unix://…`, `tcp://…`, a
/// socket path).
pub fn is_context_name(endpoint: &str) -> bool {
    !endpoint.contains("://") && !endpoint.starts_with('/') && !endpoint.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hash_as_the_docker_cli_hashes_them() {
        // `docker context create second` wrote meta/<this>/meta.json.
        assert_eq!(
            name_hash("second"),
            "16367aacb67a4a017c8da8ab95682ccb390863780f7114dda0a0e0c55644c7c4"
        );
    }

    #[test]
    fn a_context_is_read_with_its_tls_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = name_hash("remote");
        let meta = dir.path().join("meta").join(&hash);
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.1:2376","SkipTLSVerify":false}}}"#,
        )
        .expect("write");
        let tls = dir.path().join("tls").join(&hash).join("docker");
        std::fs::create_dir_all(&tls).expect("mkdir");
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(tls.join(f), "pem").expect("write");
        }
        let bytes = std::fs::read(meta.join("meta.json")).expect("read");
        let parsed: Meta = serde_json::from_slice(&bytes).expect("meta");
        let ctx = read_context(dir.path().to_path_buf(), parsed, &hash).expect("context");
        assert_eq!(ctx.host, "tcp://10.0.0.1:2376");
        let files = ctx.tls.expect("tls");
        assert_eq!(files.ca, Some(tls.join("ca.pem")));
        assert_eq!(files.key, Some(tls.join("key.pem")));
    }

    #[test]
    fn addresses_are_not_context_names() {
        assert!(is_context_name("second"));
        assert!(!is_context_name("unix:///var/run/docker.sock"));
        assert!(!is_context_name("tcp://h:2375"));
        assert!(!is_context_name("/var/run/docker.sock"));
    }
}
