//! Registry credentials for the daemon, read from the Docker CLI configuration
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), as BuildKit's
//! `authprovider` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::proto::moby::filesync::v1::auth_server::Auth;
use crate::proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};

/// The host the daemon asks about for Docker Hub, and the key Docker stores it under.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry host. Both empty means anonymous access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// User name; empty when `secret` is an identity token.
    pub username: String,
    /// Password, access token or identity token.
    pub secret: String,
}

/// A failure reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration file exists but cannot be read or parsed.
    #[error("cannot read Docker config {path}: {message}; fix or remove the file")]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {host}: {message}")]
    Helper {
        /// The helper's suffix (`desktop`, `pass`, ...).
        helper: String,
        /// The registry host.
        host: String,
        /// What went wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Credentials from a Docker CLI config file.
#[derive(Debug, Default)]
pub struct DockerConfigAuth {
    config: ConfigFile,
    /// Where helper programs are looked up; `None` uses `PATH`.
    helper_dir: Option<PathBuf>,
    /// The token authority and the bearer tokens fetched for the daemon (memory only).
    tokens: super::registry_token::TokenState,
    /// The HTTP client for token servers, made on first use.
    http: std::sync::OnceLock<reqwest::Client>,
}

impl DockerConfigAuth {
    /// Loads the default config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    /// A missing file means no credentials (anonymous pulls and pushes).
    pub fn load_default() -> Result<Self, AuthError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        match dir {
            Some(dir) => Self::load(&dir.join("config.json")),
            None => Ok(Self::default()),
        }
    }

    /// Loads a specific config file; a missing file means no credentials.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(AuthError::Config {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        Self::from_json(&text).map_err(|message| AuthError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses config.json content.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(DockerConfigAuth {
            config,
            ..Default::default()
        })
    }

    /// Looks credential helpers up in `dir` instead of `PATH` (for tests and sandboxes).
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// Credentials for a registry host as the daemon names it (`registry-1.docker.io` for
    /// Docker Hub). Unknown hosts get empty (anonymous) credentials.
    pub async fn lookup(&self, host: &str) -> Result<RegistryCredentials, AuthError> {
        let key = if host == DOCKER_HUB_HOST {
            DOCKER_HUB_KEY
        } else {
            host
        };
        let helper = self
            .config
            .cred_helpers
            .get(key)
            .or(self.config.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper {
            return self.run_helper(helper, key).await;
        }
        Ok(self.lookup_auth_entries(key).unwrap_or_default())
    }

    fn lookup_auth_entries(&self, key: &str) -> Option<RegistryCredentials> {
        let entry = self.config.auths.get(key).or_else(|| {
            // Entries are often written as URLs (`https://host/v1/`); match by host name.
            self.config
                .auths
                .iter()
                .find(|(k, _)| hostname_of(k) == key)
                .map(|(_, v)| v)
        })?;
        if let Some(token) = entry.identity_token.as_deref().filter(|t| !t.is_empty()) {
            return Some(RegistryCredentials {
                username: String::new(),
                secret: token.to_owned(),
            });
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, pass) = decoded.split_once(':')?;
            return Some(RegistryCredentials {
                username: user.to_owned(),
                secret: pass.to_owned(),
            });
        }
        Some(RegistryCredentials {
            username: entry.username.clone().unwrap_or_default(),
            secret: entry.password.clone().unwrap_or_default(),
        })
    }

    /// Whether the config has a secret for `host` (the token authority key depends on it,
    /// as buildx's does).
    async fn has_credentials(&self, host: &str) -> Result<bool, tonic::Status> {
        self.lookup(host)
            .await
            .map(|c| !c.secret.is_empty())
            .map_err(|e| tonic::Status::unavailable(e.to_string()))
    }

    async fn run_helper(&self, helper: &str, key: &str) -> Result<RegistryCredentials, AuthError> {
        let program = format!("docker-credential-{helper}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let fail = |message: String| AuthError::Helper {
            helper: helper.to_owned(),
            host: key.to_owned(),
            message,
        };
        let mut child = tokio::process::Command::new(&program)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(key.as_bytes())
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            // The helper protocol reports a miss on stdout; that is anonymous access.
            if text.contains("credentials not found") {
                return Ok(RegistryCredentials::default());
            }
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(fail(if err.is_empty() { text } else { err }));
        }
        let parsed: HelperOutput =
            serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("bad output: {e}")))?;
        // `<token>` as user name marks an identity token.
        if parsed.username == "<token>" {
            return Ok(RegistryCredentials {
                username: String::new(),
                secret: parsed.secret,
            });
        }
        Ok(RegistryCredentials {
            username: parsed.username,
            secret: parsed.secret,
        })
    }
}

#[tonic::async_trait]
impl Auth for DockerConfigAuth {
    async fn credentials(
        &self,
        request: tonic::Request<CredentialsRequest>,
    ) -> Result<tonic::Response<CredentialsResponse>, tonic::Status> {
        let host = &request.get_ref().host;
        let found = self
            .lookup(host)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        tracing::debug!(
            host,
            anonymous = found.secret.is_empty(),
            "daemon asked for registry credentials"
        );
        Ok(tonic::Response::new(CredentialsResponse {
            username: found.username,
            secret: found.secret,
        }))
    }

    // The token flow on the client, as buildx serves it: the daemon asks for tokens once
    // this session has answered GetTokenAuthority with a key it verified.
    async fn fetch_token(
        &self,
        request: tonic::Request<FetchTokenRequest>,
    ) -> Result<tonic::Response<FetchTokenResponse>, tonic::Status> {
        let request = request.get_ref();
        let credentials = self
            .lookup(&request.host)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let http = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        });
        let wanted = super::registry_token::TokenRequest {
            host: &request.host,
            realm: &request.realm,
            service: &request.service,
            scopes: &request.scopes,
        };
        let token = self
            .tokens
            .token(http, &wanted, &credentials)
            .await
            .map_err(|reason| {
                tonic::Status::unauthenticated(format!("failed to fetch oauth token: {reason}"))
            })?;
        tracing::debug!(host = request.host, scopes = ?request.scopes, "fetched a registry token for the daemon");
        Ok(tonic::Response::new(FetchTokenResponse {
            token: token.token,
            expires_in: token.expires_in,
            issued_at: token.issued_at,
        }))
    }

    async fn get_token_authority(
        &self,
        request: tonic::Request<GetTokenAuthorityRequest>,
    ) -> Result<tonic::Response<GetTokenAuthorityResponse>, tonic::Status> {
        let request = request.get_ref();
        let has_credentials = self.has_credentials(&request.host).await?;
        let public_key = self
            .tokens
            .public_key(&request.salt, has_credentials)
            .map_err(tonic::Status::internal)?;
        Ok(tonic::Response::new(GetTokenAuthorityResponse {
            public_key,
        }))
    }

    async fn verify_token_authority(
        &self,
        request: tonic::Request<VerifyTokenAuthorityRequest>,
    ) -> Result<tonic::Response<VerifyTokenAuthorityResponse>, tonic::Status> {
        let request = request.get_ref();
        let has_credentials = self.has_credentials(&request.host).await?;
        let signed = self
            .tokens
            .sign(&request.salt, has_credentials, &request.payload)
            .map_err(tonic::Status::internal)?;
        Ok(tonic::Response::new(VerifyTokenAuthorityResponse {
            signed,
        }))
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `host:5000` stays as is.
fn hostname_of(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn reads_auths_in_both_forms_and_maps_docker_hub() {
        let auth = DockerConfigAuth::from_json(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNzOndpdGg6Y29sb24="},
                "localhost:5000": {"username": "u", "password": "p"},
                "https://ghcr.io/v2/": {"identitytoken": "tok"}
            }}"#,
        )
        .expect("parse");
        let hub = auth.lookup("registry-1.docker.io").await.expect("hub");
        assert_eq!(
            (hub.username.as_str(), hub.secret.as_str()),
            ("user", "pass:with:colon")
        );
        let local = auth.lookup("localhost:5000").await.expect("local");
        assert_eq!((local.username.as_str(), local.secret.as_str()), ("u", "p"));
        let ghcr = auth.lookup("ghcr.io").await.expect("ghcr");
        assert_eq!((ghcr.username.as_str(), ghcr.secret.as_str()), ("", "tok"));
        assert_eq!(
            auth.lookup("quay.io").await.expect("none"),
            RegistryCredentials::default()
        );
    }

    #[tokio::test]
    async fn runs_credential_helpers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\nif [ \"$host\" = \"reg.example\" ]; then echo '{\"ServerURL\":\"reg.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .expect("write helper");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let auth = DockerConfigAuth::from_json(r#"{"credsStore": "test"}"#)
            .expect("parse")
            .with_helper_dir(dir.path());
        let found = auth.lookup("reg.example").await.expect("helper");
        assert_eq!(
            (found.username.as_str(), found.secret.as_str()),
            ("hu", "hs")
        );
        let missing = auth.lookup("other.example").await.expect("miss");
        assert_eq!(missing, RegistryCredentials::default());

        let broken = DockerConfigAuth::from_json(r#"{"credHelpers": {"x.example": "absent"}}"#)
            .expect("parse")
            .with_helper_dir(dir.path());
        assert!(broken.lookup("x.example").await.is_err());
    }
}
