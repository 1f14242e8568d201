//! Step 14: registries behind the Docker token flow, as Docker Hub, GHCR, Harbor and the
//! others answer (issue 17): Debian's docker-registry with `auth: token` on 127.0.0.1:5001,
//! and distribution's own token server (`github.com/docker/distribution/contrib/token-server`,
//! v2.8.3 from the Go module proxy; cesanta/docker_auth is not served there) on 127.0.0.1:5002.
//! The registry answers 401 with `WWW-Authenticate: Bearer realm=…,service=…`; the token server
//! checks basic credentials (GET) or an OAuth2 password or refresh-token grant (POST) against
//! an htpasswd file and issues ES256 JWTs for scopes under the user's own namespace
//! (`localhost:5001/brix/...`), valid 15 minutes.
//!
//! A second pair does the same with tokens valid [`SHORT_TOKEN_LIFETIME`]: a registry on
//! 127.0.0.1:5003 (its own storage, the same signing certificate) whose realm is a second
//! token server on 127.0.0.1:5004, for pushes that outlive their token. The registry accepts a
//! token up to 60 s after its `exp` (distribution's `token.Leeway`), so such a push has to
//! last longer than lifetime + 60 s before the registry refuses the first token.
//!
//! The token server is built from its package's own sources plus one file of ours (see
//! [`build_token_server`]): as published, its htpasswd access controller does not implement
//! `auth.CredentialAuthenticator`, so its POST endpoint answers every password grant with 400
//! "password grant type not supported", and its token lifetime is fixed. Real registries
//! accept the password grant, and BuildKit's session auth (real buildx's daemon pushes) falls
//! back to the GET flow only on 401/404/405, so without the grant buildx cannot push here.
//!
//! The pinned module set is `xtask/assets/token-server` (a wrapper module whose go.mod
//! `go get` wrote; `go install …@v2.8.3+incompatible` would take the dependencies' newest
//! versions). Everything else is made here under `target/e2e/token-registry/`: the patched
//! sources, the token signing key and its certificate (the registries' `rootcertbundle`), the
//! htpasswd file and the configs.

use super::process;
use super::{Workspace, go_toolchain};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The registry's address, and the name tests push to (`localhost:5001/brix/…`).
pub const REGISTRY_ADDR: &str = "127.0.0.1:5001";
/// The token server's address.
pub const TOKEN_ADDR: &str = "127.0.0.1:5002";
/// The registry as image references name it.
pub const REGISTRY_HOST: &str = "localhost:5001";
/// The registry whose token server issues short-lived tokens.
pub const SHORT_REGISTRY_ADDR: &str = "127.0.0.1:5003";
/// Its token server.
pub const SHORT_TOKEN_ADDR: &str = "127.0.0.1:5004";
/// How long that server's tokens are valid.
pub const SHORT_TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// The one user, whose namespace (`brix/`) the token servers grant.
pub const USER: &str = "brix";
/// Its password: a throwaway, and distinctive so the secret-leak greps find any copy.
pub const PASSWORD: &str = "brix-e2e-pw-7f3c9a";
/// bcrypt of [`PASSWORD`] at cost 5, what `htpasswd -Bbn` (the registry documentation's
/// recipe) makes: fixed, so no htpasswd tool is needed. (At cost 12 every token request spent
/// ≈ 0.3 s in bcrypt on this machine's cores, far more than a real registry's token server
/// takes, and that fixed cost hid the clients' own push throughput in the bench.)
const PASSWORD_BCRYPT: &str = "$2a$05$wi6712aLDDvKsB3JXnZp7eMM///0SIpA5r5rwwelVTNZpuyJb4lEm";
/// What the token servers call themselves and the registries call themselves in tokens.
const ISSUER: &str = "brix-e2e-token-server";
const SERVICE: &str = "brix-e2e-registry";
/// The module whose `contrib/token-server` package is built, as the wrapper pins it.
const MODULE: &str = "github.com/docker/distribution";
const VERSION: &str = "v2.8.3+incompatible";
const PACKAGE_DIR: &str = "contrib/token-server";
/// Bumped whenever [`PATCH_FILE`] or [`SUBSTITUTIONS`] change, so the binary is rebuilt.
const PATCH_REVISION: u32 = 1;

/// The file of ours compiled into the token server's `main` package: the password grant
/// (an `auth.CredentialAuthenticator` around the htpasswd access controller, which checks
/// basic credentials of a request, so the grant's username and password are handed to it
/// as one) and an `-expiration` flag for the token lifetime.
const PATCH_FILE: &str = r#"// Written by `cargo xtask e2e` (xtask/src/e2e/token_registry.rs), compiled together with
// distribution v2.8.3's contrib/token-server sources: their htpasswd access controller does
// not implement auth.CredentialAuthenticator, so the OAuth2 password grant (which real
// registries accept, and BuildKit's session auth asks for first) was refused with 400, and
// the token lifetime was fixed at 15 minutes.

package main

import (
	"flag"
	"net/http"
	"time"

	dcontext "github.com/docker/distribution/context"
	"github.com/docker/distribution/registry/auth"
)

var tokenLifetime = flag.Duration("expiration", 15*time.Minute, "How long issued tokens are valid")

// passwordGrant lets the htpasswd access controller check a password grant's credentials.
type passwordGrant struct {
	auth.AccessController
}

// AuthenticateUser implements auth.CredentialAuthenticator: the credentials are checked as
// the controller checks a request's basic auth.
func (p passwordGrant) AuthenticateUser(username, password string) error {
	req, err := http.NewRequest(http.MethodPost, "/token/", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(username, password)
	_, err = p.Authorized(dcontext.WithRequest(dcontext.Background(), req))
	return err
}
"#;

/// The one-line edits of the package's `main.go` (each must match exactly once): the
/// access controller wrapped, the lifetime taken from the flag.
const SUBSTITUTIONS: &[(&str, &str)] = &[
    (
        "accessController: ac,",
        "accessController: passwordGrant{ac},",
    ),
    (
        "issuer.Expiration = 15 * time.Minute",
        "issuer.Expiration = *tokenLifetime",
    ),
];

/// One registry with the token server its realm names.
struct Pair {
    /// For messages.
    label: &'static str,
    registry: &'static str,
    token: &'static str,
    lifetime: Duration,
    /// Where its configs, logs and storage live, under the step's folder.
    subdir: &'static str,
}

/// The 15-minute pair the tests push to as `localhost:5001/brix/…`.
const MAIN: Pair = Pair {
    label: "",
    registry: REGISTRY_ADDR,
    token: TOKEN_ADDR,
    lifetime: Duration::from_secs(15 * 60),
    subdir: "",
};

/// The short-lived pair.
const SHORT: Pair = Pair {
    label: "short-lived ",
    registry: SHORT_REGISTRY_ADDR,
    token: SHORT_TOKEN_ADDR,
    lifetime: SHORT_TOKEN_LIFETIME,
    subdir: "short-lived",
};

impl Pair {
    fn dir(&self, ws: &Workspace) -> PathBuf {
        dir(ws).join(self.subdir)
    }

    fn token_log(&self, ws: &Workspace) -> PathBuf {
        self.dir(ws).join("token-server.log")
    }

    /// Whether the registry answers with its 401 and the token server takes password grants.
    fn running(&self) -> bool {
        super::registry::v2_status(self.registry) == Some(401) && takes_password_grants(self.token)
    }

    /// Starts whichever of the two is not answering; returns what it started.
    fn ensure(&self, ws: &Workspace, files: &Files) -> Result<Vec<String>> {
        let dir = self.dir(ws);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut started = Vec::new();
        if !takes_password_grants(self.token) {
            let mut note = String::new();
            if super::registry::http_status(self.token, "/token/").is_some() {
                // A token server built before the patch: replaced by the patched one.
                stop_stale_token_server(ws, self.token)?;
                note = " (replacing one without the password grant)".into();
            }
            let log = self.token_log(ws);
            let mut serve = Command::new(binary(ws));
            serve
                .args(["-addr", self.token, "-issuer", ISSUER, "-realm", "brix-e2e"])
                .arg("-expiration")
                .arg(format!("{}s", self.lifetime.as_secs()))
                .arg("-key")
                .arg(&files.signing_key)
                .arg("-passwd")
                .arg(&files.htpasswd);
            let mut daemon = process::spawn_detached(&serve, &log)?;
            process::wait_until(
                &format!("the {}token server", self.label),
                &mut daemon,
                Duration::from_secs(30),
                &log,
                || takes_password_grants(self.token),
            )?;
            started.push(format!(
                "{}token server on {} (tokens valid {}s){note}",
                self.label,
                self.token,
                self.lifetime.as_secs()
            ));
        }
        if super::registry::v2_status(self.registry) != Some(401) {
            let config = dir.join("registry.yml");
            std::fs::write(
                &config,
                registry_config(
                    self.registry,
                    self.token,
                    &dir.join("data"),
                    &files.signing_cert,
                ),
            )
            .with_context(|| format!("writing {}", config.display()))?;
            super::registry::serve(
                &format!("the {}token-auth registry", self.label),
                &config,
                &dir.join("registry.log"),
                || super::registry::v2_status(self.registry) == Some(401),
            )?;
            started.push(format!(
                "{}registry on {} (auth: token)",
                self.label, self.registry
            ));
        }
        Ok(started)
    }
}

fn dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("token-registry")
}

fn binary(ws: &Workspace) -> PathBuf {
    dir(ws)
        .join("bin")
        .join(format!("token-server-patch{PATCH_REVISION}"))
}

/// Whether the 15-minute pair is up (the bench's token push needs it).
pub fn running() -> bool {
    MAIN.running()
}

/// The 15-minute registry's storage, `…/docker/registry/v2` (the bench removes what it
/// pushed there).
pub fn storage(ws: &Workspace) -> PathBuf {
    MAIN.dir(ws).join("data").join("docker/registry/v2")
}

/// The variables `cargo xtask e2e` gives the tests for the pairs that are running: the
/// registry, user and password (`BRIX_E2E_TOKEN_REGISTRY*`), and for the short-lived pair
/// the registry's address (tests reach it through a proxy of their own), its tokens'
/// lifetime and its token server's log (`BRIX_E2E_SHORT_TOKEN_*`).
pub fn test_env(ws: &Workspace) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if MAIN.running() {
        vars.extend([
            ("BRIX_E2E_TOKEN_REGISTRY", REGISTRY_HOST.to_owned()),
            ("BRIX_E2E_TOKEN_REGISTRY_USER", USER.to_owned()),
            ("BRIX_E2E_TOKEN_REGISTRY_PASSWORD", PASSWORD.to_owned()),
        ]);
    }
    if SHORT.running() {
        vars.extend([
            (
                "BRIX_E2E_SHORT_TOKEN_REGISTRY",
                SHORT_REGISTRY_ADDR.to_owned(),
            ),
            (
                "BRIX_E2E_SHORT_TOKEN_LIFETIME_SECS",
                SHORT_TOKEN_LIFETIME.as_secs().to_string(),
            ),
            (
                "BRIX_E2E_SHORT_TOKEN_SERVER_LOG",
                SHORT.token_log(ws).display().to_string(),
            ),
        ]);
    }
    vars
}

/// Builds the token server once, makes the keys and files once, and starts whichever of the
/// four servers is not answering.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let both = format!(
        "registries {REGISTRY_ADDR} and {SHORT_REGISTRY_ADDR}, token servers {TOKEN_ADDR} and \
         {SHORT_TOKEN_ADDR} (tokens valid {}s)",
        SHORT_TOKEN_LIFETIME.as_secs()
    );
    if MAIN.running() && SHORT.running() {
        return Ok(format!("already running: {both}"));
    }
    super::packages::require_command("docker-registry")?;
    super::packages::require_command("openssl")?;
    let dir = dir(ws);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let built = build_token_server(ws)?;
    let files = ensure_files(&dir)?;
    let mut started = MAIN.ensure(ws, &files)?;
    started.extend(SHORT.ensure(ws, &files)?);
    Ok(format!(
        "{built}started {}; user {USER} (namespace {REGISTRY_HOST}/{USER}/), logs in {}",
        started.join(", "),
        ws.display(&dir)
    ))
}

/// Builds the token server unless this patch revision is built: the package's `.go` files
/// copied from the module cache into `target/e2e/token-registry/src` (its own module, with the
/// wrapper's go.mod and go.sum), `main.go` edited by [`SUBSTITUTIONS`], [`PATCH_FILE`] added.
fn build_token_server(ws: &Workspace) -> Result<String> {
    let bin = binary(ws);
    if bin.is_file() {
        return Ok(String::new());
    }
    let go = go_toolchain::go_binary(ws)?;
    let wrapper = ws.root.join("xtask/assets/token-server");
    let log = dir(ws).join("go-build.log");
    let module_dir = module_dir(&go, &wrapper, &log)?;
    let package = module_dir.join(PACKAGE_DIR);

    let src = dir(ws).join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    for name in ["go.mod", "go.sum"] {
        let text = std::fs::read_to_string(wrapper.join(name))
            .with_context(|| format!("reading {}", wrapper.join(name).display()))?;
        std::fs::write(src.join(name), text)?;
    }
    let mut copied = 0;
    for entry in std::fs::read_dir(&package)
        .with_context(|| format!("reading {} in the module cache", package.display()))?
    {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if name == "main.go" {
            text = patch_main(&text)
                .with_context(|| format!("patching {} ({MODULE} {VERSION})", path.display()))?;
        }
        // Written, not copied: the module cache's files are read-only.
        std::fs::write(src.join(name), text)?;
        copied += 1;
    }
    if copied == 0 {
        bail!("{} holds no Go sources", package.display());
    }
    std::fs::write(src.join("brix_password_grant.go"), PATCH_FILE)?;

    let partial = bin.with_extension("partial");
    std::fs::create_dir_all(bin.parent().context("the binary has a folder")?)?;
    process::logged(
        Command::new(&go)
            .current_dir(&src)
            .env("CGO_ENABLED", "0")
            .args(["build", "-trimpath", "-buildvcs=false", "-o"])
            .arg(&partial)
            .arg("."),
        &log,
    )
    .with_context(|| {
        format!(
            "building the patched token server in {} (Go module proxy: `go env GOPROXY`)",
            src.display()
        )
    })?;
    std::fs::rename(&partial, &bin)?;
    Ok(format!(
        "built {MODULE}/{PACKAGE_DIR} {VERSION} with the password grant, "
    ))
}

/// Where the Go module cache holds [`MODULE`] at the wrapper's pinned version (downloaded
/// through the Go module proxy when it is not there yet).
fn module_dir(go: &Path, wrapper: &Path, log: &Path) -> Result<PathBuf> {
    let out = process::output(
        Command::new(go)
            .current_dir(wrapper)
            .args(["mod", "download", "-json", MODULE]),
    )
    .with_context(|| format!("downloading {MODULE} (log: {})", log.display()))?;
    let info: serde_json::Value =
        serde_json::from_str(&out).context("parsing `go mod download -json` output")?;
    if info["Version"].as_str() != Some(VERSION) {
        bail!(
            "xtask/assets/token-server pins {MODULE} {:?}, expected {VERSION}",
            info["Version"]
        );
    }
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("`go mod download -json {MODULE}` names no Dir"))
}

/// `main.go` with every [`SUBSTITUTIONS`] applied; each must match exactly once, so a
/// different upstream file fails here rather than building something else.
fn patch_main(text: &str) -> Result<String> {
    let mut out = text.to_owned();
    for (from, to) in SUBSTITUTIONS {
        let count = out.matches(from).count();
        if count != 1 {
            bail!("expected `{from}` once in main.go, found it {count} times");
        }
        out = out.replacen(from, to, 1);
    }
    Ok(out)
}

/// Whether the token server on `addr` takes the password grant: the patched one answers a
/// grant for an unknown user with 401 (the unpatched one with 400; an unknown user costs no
/// bcrypt round).
fn takes_password_grants(addr: &str) -> bool {
    let body = format!(
        "grant_type=password&service={SERVICE}&client_id=brix-e2e-setup&username=brix-e2e-probe&password=probe"
    );
    post_form_status(addr, "/token/", &body) == Some(401)
}

/// The HTTP status of a form POST to `path` on `addr`, or None when nothing answers.
fn post_form_status(addr: &str, path: &str, body: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Stops a token server of an earlier build that listens on `addr`: the processes whose
/// executable is in this step's `bin/` folder and whose arguments name `addr`, by pid.
fn stop_stale_token_server(ws: &Workspace, addr: &str) -> Result<()> {
    let bin_dir = dir(ws).join("bin");
    let mut stopped = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let names_addr = cmdline.split(|b| *b == 0).any(|arg| arg == addr.as_bytes());
        if exe.starts_with(&bin_dir) && names_addr {
            process::output(Command::new("kill").args(["-TERM", &pid.to_string()]))
                .with_context(|| format!("stopping the old token server (pid {pid})"))?;
            stopped.push(pid);
        }
    }
    if stopped.is_empty() {
        bail!(
            "something on {addr} answers /token/ but refuses the password grant, and it is not \
             a token server from {}: stop it and run the set-up again",
            bin_dir.display()
        );
    }
    let started = std::time::Instant::now();
    while super::registry::http_status(addr, "/token/").is_some() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the old token server on {addr} (pid {stopped:?}) did not stop within 10 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
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

/// A registry's configuration: loopback only, its own storage, token auth with the token
/// server on `token_addr` as its realm and that server's certificate as the trusted bundle.
fn registry_config(addr: &str, token_addr: &str, data: &Path, signing_cert: &Path) -> String {
    let quote = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: token-registry\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n\
         auth:\n  token:\n    realm: http://{token_addr}/token/\n    service: {SERVICE}\n    \
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
        let config = registry_config(
            REGISTRY_ADDR,
            TOKEN_ADDR,
            Path::new("/d"),
            Path::new("/c.pem"),
        );
        assert!(
            config.contains("realm: http://127.0.0.1:5002/token/"),
            "{config}"
        );
        assert!(config.contains("addr: 127.0.0.1:5001"), "{config}");
        assert!(config.contains("rootcertbundle: \"/c.pem\""), "{config}");
        assert!(config.contains(&format!("issuer: {ISSUER}")), "{config}");
    }

    #[test]
    fn main_go_gets_each_edit_once() {
        let main = "\tts := &tokenServer{\n\t\taccessController: ac,\n\t}\n\
                    \tissuer.Expiration = 15 * time.Minute\n";
        let patched = patch_main(main).expect("patched");
        assert!(
            patched.contains("accessController: passwordGrant{ac},"),
            "{patched}"
        );
        assert!(
            patched.contains("issuer.Expiration = *tokenLifetime"),
            "{patched}"
        );
        // A main.go that changed upstream is refused rather than built half-patched.
        assert!(patch_main("accessController: ac,").is_err());
        let twice = format!("{main}{main}");
        assert!(patch_main(&twice).is_err());
    }
}
