//! Registry credentials from the Docker config (`~/.docker/config.json`, or
//! `$DOCKER_CONFIG/config.json`): `credHelpers` per registry, the default `credsStore`, and
//! plain `auths` entries, looked up the way the Docker CLI does (Docker Hub under
//! `https://index.docker.io/v1/`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token), sent as HTTP basic auth or traded
    /// for a bearer token.
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// A registry bearer token used as is (`registrytoken` in the config).
    Bearer(String),
    /// An identity token (`identitytoken`: an OAuth2 refresh token `docker login` keeps for
    /// registries that hand one out), traded at the registry's token server for access tokens
    /// per repository.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => write!(f, "Bearer(***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

/// A parsed Docker config file: where credentials come from.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
    helper_search_path: Option<std::ffi::OsString>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Loads the config at the default path; no file means no credentials.
    pub fn load_default() -> Result<Self> {
        match Self::default_path() {
            Some(path) => Self::load(&path),
            None => Ok(Self::default()),
        }
    }

    /// Loads the config at `path`; a missing file means no credentials.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_json(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig {
                path: path.to_owned(),
                ..Default::default()
            }),
            Err(e) => Err(Error::io("cannot read", path, e)),
        }
    }

    /// Parses config JSON; `path` is only used in error messages.
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Self> {
        let file = serde_json::from_slice(bytes).map_err(|e| Error::DockerConfig {
            path: path.to_owned(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Ok(DockerConfig {
            path: path.to_owned(),
            file,
            helper_search_path: None,
        })
    }

    /// Looks credential helpers up in `path` (a `PATH`-style list) instead of the process's
    /// `PATH`.
    pub fn with_helper_search_path(mut self, path: impl Into<std::ffi::OsString>) -> Self {
        self.helper_search_path = Some(path.into());
        self
    }

    /// The credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub), if any.
    ///
    /// A registry's `credHelpers` entry wins, then `credsStore`, then `auths`; a helper that
    /// has nothing for the registry falls through to `auths`. Runs the helper process, so call
    /// it off the async runtime.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>> {
        let key = config_key(registry);
        let helper = self
            .file
            .cred_helpers
            .get(&key)
            .or_else(|| self.file.cred_helpers.get(&hostname_of(&key)))
            .or(self.file.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper
            && let Some(credentials) =
                run_credential_helper(helper, &key, self.helper_search_path.as_deref())?
        {
            return Ok(Some(credentials));
        }
        let entry = self.file.auths.get(&key).or_else(|| {
            let host = hostname_of(&key);
            self.file
                .auths
                .iter()
                .find(|(k, _)| hostname_of(k) == host)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else { return Ok(None) };
        if !entry.registrytoken.is_empty() {
            return Ok(Some(Credentials::Bearer(entry.registrytoken.clone())));
        }
        if !entry.identitytoken.is_empty() {
            return Ok(Some(Credentials::IdentityToken(
                entry.identitytoken.clone(),
            )));
        }
        if !entry.auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::DockerConfig {
                    path: self.path.clone(),
                    reason: format!("auths[{key:?}].auth is not base64 of user:password"),
                })?;
            let (username, password) =
                decoded.split_once(':').ok_or_else(|| Error::DockerConfig {
                    path: self.path.clone(),
                    reason: format!("auths[{key:?}].auth has no ':' between user and password"),
                })?;
            return Ok(Some(Credentials::Basic {
                username: username.into(),
                password: password.into(),
            }));
        }
        if !entry.username.is_empty() {
            return Ok(Some(Credentials::Basic {
                username: entry.username.clone(),
                password: entry.password.clone(),
            }));
        }
        Ok(None)
    }
}

/// The key a registry's credentials are stored under: [`DOCKER_HUB_KEY`] for Docker Hub,
/// `host[:port]` for everything else.
pub fn config_key(registry: &str) -> String {
    let host = hostname_of(registry);
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        _ => host,
    }
}

/// `https://host:port/v1/` → `host:port`, as the Docker CLI normalizes `auths` keys.
fn hostname_of(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

fn run_credential_helper(
    helper: &str,
    server: &str,
    search_path: Option<&std::ffi::OsStr>,
) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        registry: server.to_owned(),
        reason,
    };
    let mut command = Command::new(&program);
    if let Some(path) = search_path {
        command.env("PATH", path);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                fail(format!("{program} is not installed (not found in PATH)"))
            }
            _ => fail(format!("cannot run {program}: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| fail(format!("cannot write to {program}: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| fail(format!("{program} did not finish: {e}")))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout).trim().to_owned()
            + String::from_utf8_lossy(&output.stderr).trim();
        // The helper protocol's way of saying "nothing stored for this server".
        if message.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "{program} get exited with {}: {message}",
            output.status
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|e| {
        fail(format!(
            "{program} get printed something that is not its JSON answer: {e}"
        ))
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    if answer.username == "<token>" {
        tracing::warn!(
            helper,
            server,
            "identity tokens from credential helpers are not supported"
        );
        return Ok(None);
    }
    Ok(Some(Credentials::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        DockerConfig::from_json(Path::new("config.json"), json.as_bytes()).unwrap()
    }

    #[test]
    fn docker_hub_is_looked_up_under_its_v1_url() {
        let auth = base64::engine::general_purpose::STANDARD.encode("hubuser:hubpass");
        let c = config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
        ));
        let expected = Credentials::Basic {
            username: "hubuser".into(),
            password: "hubpass".into(),
        };
        assert_eq!(
            c.credentials_for("docker.io").unwrap(),
            Some(expected.clone())
        );
        assert_eq!(
            c.credentials_for("index.docker.io").unwrap(),
            Some(expected)
        );
        assert_eq!(c.credentials_for("localhost:5000").unwrap(), None);
    }

    #[test]
    fn auths_keys_are_matched_by_host_whatever_their_scheme_or_path() {
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p:with:colons");
        let c = config(&format!(
            r#"{{"auths":{{"https://registry.example.com/v2/":{{"auth":"{auth}"}},
               "localhost:5000":{{"username":"me","password":"secret"}}}}}}"#
        ));
        assert_eq!(
            c.credentials_for("registry.example.com").unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p:with:colons".into()
            })
        );
        assert_eq!(
            c.credentials_for("localhost:5000").unwrap(),
            Some(Credentials::Basic {
                username: "me".into(),
                password: "secret".into()
            })
        );
    }

    #[test]
    fn bad_auth_names_the_entry_and_tokens_are_handled() {
        let c = config(r#"{"auths":{"r.example":{"auth":"%%%"}}}"#);
        let err = c.credentials_for("r.example").unwrap_err().to_string();
        assert!(err.contains("auths[\"r.example\"].auth"), "{err}");
        let c = config(
            r#"{"auths":{"r.example":{"registrytoken":"tok"},"i.example":{"identitytoken":"x"}}}"#,
        );
        assert_eq!(
            c.credentials_for("r.example").unwrap(),
            Some(Credentials::Bearer("tok".into()))
        );
        assert_eq!(
            c.credentials_for("i.example").unwrap(),
            Some(Credentials::IdentityToken("x".into()))
        );
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let c = config(r#"{"credHelpers":{"r.example":"brix-test-does-not-exist"}}"#);
        let err = c.credentials_for("r.example").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-brix-test-does-not-exist is not installed"),
            "{err}"
        );
    }

    #[test]
    fn a_credential_helper_is_asked_with_the_server_on_stdin() {
        // A real helper executable, written as a shell script, that answers only for one
        // server: checks the protocol (argument `get`, server URL on stdin) end to end.
        let dir = std::env::temp_dir().join(format!("brix-cred-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("docker-credential-brixtest");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\n\
             if [ \"$server\" = \"https://index.docker.io/v1/\" ]; then\n\
             echo '{\"ServerURL\":\"x\",\"Username\":\"helperuser\",\"Secret\":\"helpersecret\"}'\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The helper is found through the search path, like the Docker CLI finds it.
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let c = config(r#"{"credsStore":"brixtest","auths":{"localhost:5000":{"username":"a","password":"b"}}}"#)
            .with_helper_search_path(path);
        assert_eq!(
            c.credentials_for("docker.io").unwrap(),
            Some(Credentials::Basic {
                username: "helperuser".into(),
                password: "helpersecret".into()
            })
        );
        assert_eq!(
            c.credentials_for("localhost:5000").unwrap(),
            Some(Credentials::Basic {
                username: "a".into(),
                password: "b".into()
            }),
            "a helper with nothing stored falls back to auths"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
