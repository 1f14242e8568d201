//! brix-e2e: support code for the end-to-end tests in `tests/tests/`, which run against a real
//! Docker engine, BuildKit daemon, registry and QEMU under `cargo xtask e2e`.
//!
//! `cargo xtask e2e` sets the environment up and runs `cargo test -p brix-e2e` with
//! `BRIX_E2E=1` and the addresses and image names below. A test starts with
//!
//! ```no_run
//! let Some(env) = brix_e2e::E2eEnv::get() else { return };
//! ```
//!
//! so that under a plain `cargo test` (no `BRIX_E2E=1`) it prints one `skipped:` line and
//! passes, while under `cargo xtask e2e` a missing variable, daemon or tool fails it: a test
//! never skips there.
//!
//! Everything a test creates gets a name from [`unique_name`] (`brix-e2e-<run id>-...`) and,
//! where it takes labels, [`test_label`] (`dev.brix.e2e=<run id>`), so `cargo xtask e2e`
//! removes exactly what its own run created, even while other runs share the engine.

pub mod layouts;

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Label key put on every container, volume and image a test creates; see [`test_label`].
pub const TEST_LABEL: &str = "dev.brix.e2e";
/// Prefix of every name a test creates: containers, volumes, builders, repositories.
pub const TEST_PREFIX: &str = "brix-e2e-";

/// What `cargo xtask e2e` set up, read from `BRIX_E2E_*` variables.
#[derive(Debug, Clone)]
pub struct E2eEnv {
    /// The registry as image references name it: `localhost:5000` (plain HTTP).
    pub registry: String,
    /// A two-platform (linux/amd64, linux/arm64) busybox index in that registry.
    pub busybox: String,
    /// The local BuildKit daemon image: `moby/buildkit:buildx-stable-1`.
    pub buildkit_image: String,
    /// The BuildKit release in that image, e.g. `v0.34.2`.
    pub buildkit_version: String,
    /// The `brix` binary under test.
    pub brix_bin: PathBuf,
    /// The system Docker engine's address (Debian 12's dockerd 20.10):
    /// `unix:///var/run/docker.sock`, the engine plain `docker` commands and
    /// [`E2eEnv::brix_env`] use.
    pub docker_host: String,
    /// The current Docker engine's address: dockerd 28 with containerd 2 and the containerd
    /// image store, `unix://<target>/e2e/docker28/docker.sock` (`BRIX_E2E_DOCKER28_HOST`).
    pub docker28_host: String,
    /// dockerd 28's TLS listener, `tcp://127.0.0.1:2376`, client certificates required
    /// (`BRIX_E2E_DOCKER28_TLS_HOST`).
    pub docker28_tls_host: String,
    /// The folder with that listener's `ca.pem` and a client's `cert.pem`/`key.pem`
    /// (`BRIX_E2E_DOCKER28_TLS_CERTS`).
    pub docker28_tls_certs: PathBuf,
    /// The registry behind the Docker token flow (`cargo xtask e2e`'s `token-registry` step,
    /// `BRIX_E2E_TOKEN_REGISTRY*`), `None` when `--no-setup` found it stopped;
    /// [`E2eEnv::token_registry`] fails a test that needs it then.
    pub token_registry: Option<TokenRegistry>,
    /// A scratch folder for build contexts and outputs (under `target/e2e/work`).
    pub work_dir: PathBuf,
    /// The SBOM generator image speaking BuildKit's scanner protocol,
    /// `localhost:5000/buildkit-syft-scanner:e2e` (`BRIX_E2E_SCANNER`, set once the `scanner`
    /// set-up step has pushed it); the tests that need it fail without it.
    pub scanner: Option<String>,
    /// The git servers of the `git-server` set-up step (`BRIX_E2E_GIT_*`), `None` when
    /// `--no-setup` found them stopped; [`E2eEnv::git`] fails a test that needs them then.
    pub git: Option<GitServers>,
}

/// The git servers on the host's loopback, serving one folder of bare repositories: smart
/// HTTP (`git http-backend`) and sshd. Builders made by [`E2eEnv::create_builder`] use the
/// host's network, so their buildkitd reaches both at these addresses.
#[derive(Debug, Clone)]
pub struct GitServers {
    /// Base URL of smart HTTP, `http://127.0.0.1:8418` (`BRIX_E2E_GIT_HTTP`):
    /// `<http>/NAME.git` is `<repos>/NAME.git`. Pushes need no credentials.
    pub http: String,
    /// Base URL of ssh, `ssh://root@127.0.0.1:2222` (`BRIX_E2E_GIT_SSH`), followed by the
    /// repository's absolute path: `<ssh><repos>/NAME.git`.
    pub ssh: String,
    /// The folder of bare repositories (`BRIX_E2E_GIT_REPOS`); tests add their own, named
    /// with [`unique_name`] so the run removes them.
    pub repos: PathBuf,
    /// The private key the sshd lets log in as root (`BRIX_E2E_GIT_SSH_KEY`), for an
    /// `ssh-agent` (`--ssh default`) or `ssh -i`.
    pub ssh_key: PathBuf,
}

/// A bare repository made by [`E2eEnv::git_repo`], with the work tree it was pushed from.
#[derive(Debug, Clone)]
pub struct GitRepo {
    /// The bare repository, `<repos>/<unique name>.git`.
    pub bare: PathBuf,
    /// The work tree the commits were made in (its `origin` is [`GitRepo::bare`]).
    pub worktree: PathBuf,
    /// `http://127.0.0.1:8418/<unique name>.git`.
    pub http_url: String,
    /// `ssh://root@127.0.0.1:2222<repos>/<unique name>.git`.
    pub ssh_url: String,
    /// The branch the commits are on: `main` (also the bare repository's HEAD).
    pub branch: String,
    /// A lightweight tag on the first commit: `v1`.
    pub tag: String,
    /// The first commit's id.
    pub commit: String,
}

impl GitRepo {
    /// Commits `files` (path, content; folders made as needed) on [`GitRepo::branch`] on top
    /// of what is there, pushes it and returns the new commit's id.
    #[track_caller]
    pub fn commit_files(&self, files: &[(&str, &str)], message: &str) -> String {
        for (name, content) in files {
            let file = self.worktree.join(name);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
            }
            std::fs::write(&file, content).unwrap_or_else(|e| panic!("writing {file:?}: {e}"));
        }
        self.git(["add", "--all"]);
        self.git(["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(["push", "--quiet", "origin", &self.branch]);
        self.git(["rev-parse", "HEAD"]).stdout.trim().to_owned()
    }

    /// Tags the branch's last commit as `name` (lightweight) and pushes the tag.
    #[track_caller]
    pub fn tag(&self, name: &str) {
        self.git(["tag", name]);
        self.git(["push", "--quiet", "origin", &format!("refs/tags/{name}")]);
    }

    /// Runs `git ARGS...` in the work tree (see [`git`]); panics when it fails.
    #[track_caller]
    pub fn git<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(git(&self.worktree).args(args)).ok()
    }
}

/// The git CLI in `dir` with a fixed identity and dates (the same files give the same
/// commits) and neither the user's nor the system's config.
pub fn git(dir: &std::path::Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "brix e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@brix.invalid")
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "brix e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@brix.invalid")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000");
    c
}

impl E2eEnv {
    /// The environment, or `None` after printing one `skipped:` line when `BRIX_E2E` is not
    /// `1`. With `BRIX_E2E=1` a missing variable panics: under `cargo xtask e2e` a missing
    /// piece is a failure, never a skip.
    #[track_caller]
    pub fn get() -> Option<Self> {
        if std::env::var("BRIX_E2E").as_deref() != Ok("1") {
            skip("set BRIX_E2E=1 or run cargo xtask e2e");
            return None;
        }
        Some(Self {
            registry: required("BRIX_E2E_REGISTRY"),
            busybox: required("BRIX_E2E_BUSYBOX"),
            buildkit_image: required("BRIX_E2E_BUILDKIT_IMAGE"),
            buildkit_version: required("BRIX_E2E_BUILDKIT_VERSION"),
            brix_bin: PathBuf::from(required("BRIX_E2E_BRIX_BIN")),
            docker_host: required("BRIX_E2E_DOCKER_HOST"),
            docker28_host: required("BRIX_E2E_DOCKER28_HOST"),
            docker28_tls_host: required("BRIX_E2E_DOCKER28_TLS_HOST"),
            docker28_tls_certs: PathBuf::from(required("BRIX_E2E_DOCKER28_TLS_CERTS")),
            work_dir: PathBuf::from(required("BRIX_E2E_WORK_DIR")),
            scanner: std::env::var("BRIX_E2E_SCANNER").ok(),
            token_registry: token_registry(),
            git: git_servers(),
        })
    }

    /// The token-auth registry; panics when `cargo xtask e2e` did not pass it.
    #[track_caller]
    pub fn token_registry(&self) -> &TokenRegistry {
        self.token_registry.as_ref().unwrap_or_else(|| {
            panic!(
                "BRIX_E2E_TOKEN_REGISTRY is not set: the token-auth registry is not running; run `cargo xtask e2e --setup-only` (its token-registry step)"
            )
        })
    }

    /// The git servers; panics when `cargo xtask e2e` did not pass them (its `git-server`
    /// step did not run, or `--no-setup` found them stopped).
    #[track_caller]
    pub fn git(&self) -> &GitServers {
        self.git.as_ref().unwrap_or_else(|| {
            panic!(
                "BRIX_E2E_GIT_HTTP is not set: the git servers are not running; run `cargo xtask e2e --setup-only` (its git-server step)"
            )
        })
    }

    /// A bare repository `<repos>/<unique name>.git`, served over HTTP and ssh, holding one
    /// commit of `files` (path, content; folders made as needed) on branch `main`, tagged
    /// `v1`. Made with the git CLI in a work tree under [`E2eEnv::work_dir`].
    #[track_caller]
    pub fn git_repo(&self, purpose: &str, files: &[(&str, &str)]) -> GitRepo {
        let servers = self.git();
        let name = format!("{}.git", unique_name(purpose));
        let bare = servers.repos.join(&name);
        let worktree = self.scratch_dir(&format!("{purpose}-worktree"));
        run(git(&servers.repos)
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(&bare))
        .ok();
        run(git(&worktree).args(["init", "--quiet", "--initial-branch=main"])).ok();
        run(git(&worktree).args(["remote", "add", "origin"]).arg(&bare)).ok();
        let repo = GitRepo {
            http_url: format!("{}/{name}", servers.http),
            ssh_url: format!("{}{}", servers.ssh, bare.display()),
            bare,
            worktree,
            branch: "main".to_owned(),
            tag: "v1".to_owned(),
            commit: String::new(),
        };
        let commit = repo.commit_files(files, "first commit");
        repo.tag(&repo.tag);
        GitRepo { commit, ..repo }
    }

    /// Both Docker engines, the system one first, for tests that run once per engine.
    pub fn engines(&self) -> [Engine; 2] {
        [
            Engine {
                name: "dockerd-20.10",
                host: self.docker_host.clone(),
            },
            Engine {
                name: "dockerd-28",
                host: self.docker28_host.clone(),
            },
        ]
    }

    /// A `brix` command (the binary under test), with the test's environment.
    pub fn brix(&self) -> Command {
        Command::new(&self.brix_bin)
    }

    /// The brix binary with its builder store at `store`: see [`E2eEnv::brix_env`].
    pub fn brix_in(&self, store: &std::path::Path) -> Command {
        let mut c = self.brix();
        self.brix_env(&mut c, store);
        c
    }

    /// Real buildx (`docker buildx`) on the builder store `store` (`BUILDX_CONFIG`) and the
    /// e2e engine, for side-by-side runs on builders brix made (and booted: buildx cannot
    /// boot a node on these machines, it asks for a privileged container).
    pub fn buildx_in(&self, store: &std::path::Path) -> Command {
        let mut c = Command::new("docker");
        c.env("BUILDX_CONFIG", store)
            .env("DOCKER_HOST", &self.docker_host)
            .env_remove("BUILDX_BUILDER")
            .env_remove("BUILDKIT_PROGRESS")
            .arg("buildx");
        c
    }

    /// `brix` or real buildx (`tool` is `"brix"` or `"buildx"`) on the builder store `store`.
    pub fn tool_in(&self, tool: &str, store: &std::path::Path) -> Command {
        if tool == "buildx" {
            self.buildx_in(store)
        } else {
            self.brix_in(store)
        }
    }

    /// Gives `c` (brix, or a wrapper that runs it) the builder store `store` (`BRIX_CONFIG`)
    /// and the e2e engine, and drops a builder or progress mode inherited from the caller's
    /// environment.
    pub fn brix_env<'c>(&self, c: &'c mut Command, store: &std::path::Path) -> &'c mut Command {
        c.env("BRIX_CONFIG", store)
            .env("DOCKER_HOST", &self.docker_host)
            .env_remove("BRIX_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .env_remove("BRIX_PROGRESS")
    }

    /// `create`s a docker-container builder named `name` in the store `store` on the
    /// system engine, with host networking and a buildkitd.toml that reaches the e2e
    /// registry over plain HTTP (plus `extra_toml`).
    #[track_caller]
    pub fn create_builder(&self, store: &std::path::Path, name: &str, extra_toml: &str) {
        let config = store.join(format!("{name}.buildkitd.toml"));
        let mut toml = format!(
            "{extra_toml}[registry.\"{}\"]\n  http = true\n",
            self.registry
        );
        if let Some(token) = &self.token_registry {
            toml.push_str(&format!("[registry.\"{}\"]\n  http = true\n", token.host));
        }
        if let Err(err) = std::fs::write(&config, toml) {
            panic!("writing {}: {err}", config.display());
        }
        run(self
            .brix_in(store)
            .args(["create", "--name", name, "--driver-opt", "network=host"])
            .arg("--config")
            .arg(&config))
        .ok();
    }

    /// A fresh scratch folder under [`E2eEnv::work_dir`] named after `purpose`.
    #[track_caller]
    pub fn scratch_dir(&self, purpose: &str) -> PathBuf {
        let dir = self.work_dir.join(unique_name(purpose));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("creating scratch folder {}: {err}", dir.display());
        }
        dir
    }

    /// An image reference in the test registry under a unique repository,
    /// `localhost:5000/brix-e2e-<purpose>-<pid>-<n>:<tag>`.
    pub fn registry_ref(&self, purpose: &str, tag: &str) -> String {
        format!("{}/{}:{tag}", self.registry, unique_name(purpose))
    }
}

/// The registry behind the Docker token flow: a distribution registry with `auth: token` and
/// distribution's token server, which grants `USER` the repositories under `HOST/USER/`.
#[derive(Debug, Clone)]
pub struct TokenRegistry {
    /// As image references name it: `localhost:5001` (plain HTTP).
    pub host: String,
    /// The one user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl TokenRegistry {
    /// `HOST/USER/<unique name>:<tag>`: a repository the user may push to.
    pub fn image_ref(&self, purpose: &str, tag: &str) -> String {
        format!("{}/{}/{}:{tag}", self.host, self.user, unique_name(purpose))
    }

    /// A docker CLI configuration folder whose `config.json` holds `auths` for this
    /// registry as `docker login` writes them, under `dir`.
    pub fn docker_config(&self, dir: &std::path::Path) -> PathBuf {
        use base64::Engine as _;
        let config = dir.join("docker-config");
        std::fs::create_dir_all(&config).expect("docker config folder");
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.password));
        let json = serde_json::json!({ "auths": { self.host.clone(): { "auth": auth } } });
        std::fs::write(config.join("config.json"), json.to_string()).expect("config.json");
        // The docker CLI looks for its plugins (real buildx) under DOCKER_CONFIG too.
        let home = std::env::var("HOME").unwrap_or_default();
        let buildx = std::path::Path::new(&home).join(".docker/cli-plugins/docker-buildx");
        if buildx.exists() {
            let plugins = config.join("cli-plugins");
            std::fs::create_dir_all(&plugins).expect("cli-plugins");
            let _ = std::os::unix::fs::symlink(&buildx, plugins.join("docker-buildx"));
        }
        config
    }

    /// `--creds USER:PASSWORD` for skopeo.
    pub fn skopeo_creds(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }
}

fn token_registry() -> Option<TokenRegistry> {
    Some(TokenRegistry {
        host: std::env::var("BRIX_E2E_TOKEN_REGISTRY").ok()?,
        user: std::env::var("BRIX_E2E_TOKEN_REGISTRY_USER").ok()?,
        password: std::env::var("BRIX_E2E_TOKEN_REGISTRY_PASSWORD").ok()?,
    })
}

// Registries behind TLS with private CAs (issue 17): the `tls-registry` set-up step's.

impl E2eEnv {
    /// The TLS registries (`BRIX_E2E_TLS_*`); panics when `cargo xtask e2e` did not pass
    /// them (its `tls-registry` step did not run, or `--no-setup` found them stopped).
    #[track_caller]
    pub fn tls_registries(&self) -> TlsRegistries {
        let certs = std::env::var("BRIX_E2E_TLS_CERTS").unwrap_or_else(|_| {
            panic!(
                "BRIX_E2E_TLS_CERTS is not set: the TLS registries are not running; run `cargo xtask e2e --setup-only` (its tls-registry step)"
            )
        });
        let registry = |var: &str| {
            let host = required(var);
            TlsRegistry {
                cert_dir: PathBuf::from(&certs).join(&host),
                host,
            }
        };
        TlsRegistries {
            self_signed: registry("BRIX_E2E_TLS_SELF_SIGNED"),
            mutual: registry("BRIX_E2E_TLS_MUTUAL"),
            untrusted: registry("BRIX_E2E_TLS_UNTRUSTED"),
        }
    }
}

/// The registries behind TLS that the system does not trust, each reached by a host name
/// `/etc/hosts` maps to 127.0.0.1 (BuildKit speaks plain HTTP to loopback addresses).
#[derive(Debug, Clone)]
pub struct TlsRegistries {
    /// Serves the self-signed certificate Docker's registry documentation makes (its own
    /// CA, `CA:TRUE`); its `ca.crt` is installed in `/etc/docker/certs.d/HOST:PORT/`.
    pub self_signed: TlsRegistry,
    /// A certificate from a private CA, and client certificates required; its `ca.crt`,
    /// `client.cert` and `client.key` are installed in `/etc/docker/certs.d/HOST:PORT/`.
    pub mutual: TlsRegistry,
    /// A certificate like the first whose CA is installed nowhere: trusted only where a test
    /// names it.
    pub untrusted: TlsRegistry,
}

/// One TLS registry: its `HOST:PORT` and its files in Docker's `certs.d` layout.
#[derive(Debug, Clone)]
pub struct TlsRegistry {
    /// As image references name it, e.g. `registry.brix.test:5443`.
    pub host: String,
    /// `ca.crt`, and `client.cert`/`client.key` where the registry asks for a client
    /// certificate: skopeo's `--cert-dir`.
    pub cert_dir: PathBuf,
}

impl TlsRegistry {
    /// `HOST/<unique name>:<tag>`.
    pub fn image_ref(&self, purpose: &str, tag: &str) -> String {
        format!("{}/{}:{tag}", self.host, unique_name(purpose))
    }

    /// The CA its certificate verifies against.
    pub fn ca(&self) -> PathBuf {
        self.cert_dir.join("ca.crt")
    }

    /// The client certificate and key it asks for, if it asks for one.
    pub fn client_pair(&self) -> Option<(PathBuf, PathBuf)> {
        let cert = self.cert_dir.join("client.cert");
        cert.is_file()
            .then(|| (cert, self.cert_dir.join("client.key")))
    }

    /// A buildkitd.toml section that trusts its CA (`ca = [...]`) and presents its client
    /// pair (`[[registry."HOST".keypair]]`), for [`SharedBuilder::with_config`].
    pub fn buildkitd_toml(&self) -> String {
        let quote = |p: &std::path::Path| serde_json::Value::from(p.to_string_lossy()).to_string();
        let mut toml = format!(
            "[registry.\"{}\"]\n  ca = [{}]\n",
            self.host,
            quote(&self.ca())
        );
        if let Some((cert, key)) = self.client_pair() {
            toml.push_str(&format!(
                "  [[registry.\"{}\".keypair]]\n    key = {}\n    cert = {}\n",
                self.host,
                quote(&key),
                quote(&cert)
            ));
        }
        toml
    }

    /// The manifest or index `image` points at, fetched by skopeo with this registry's
    /// `certs.d` folder (TLS verified): its text and its JSON.
    #[track_caller]
    pub fn raw_manifest(&self, image: &str) -> (String, serde_json::Value) {
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(&self.cert_dir)
            .arg(format!("docker://{image}")))
        .ok();
        let index = serde_json::from_str(&raw.stdout).unwrap_or_else(|e| {
            panic!("the manifest of {image} is not JSON ({e}):\n{}", raw.stdout)
        });
        (raw.stdout, index)
    }
}

/// One of the Docker engines `cargo xtask e2e` runs: see [`E2eEnv::engines`].
#[derive(Debug, Clone)]
pub struct Engine {
    /// A name for messages: `dockerd-20.10` (the system engine) or `dockerd-28`.
    pub name: &'static str,
    /// Its `DOCKER_HOST`, e.g. `unix:///var/run/docker.sock`.
    pub host: String,
}

impl Engine {
    /// `cat /arch` in a linux/arm64 container of `image` on this engine (the image is
    /// removed afterwards, so the next run pulls again).
    #[track_caller]
    pub fn arch_in_arm64_container(&self, image: &str) -> String {
        let ran = self
            .docker([
                "run",
                "--rm",
                "--platform",
                "linux/arm64",
                image,
                "cat",
                "/arch",
            ])
            .ok();
        let _ = self.docker(["rmi", "-f", image]);
        ran.stdout.trim().to_owned()
    }

    /// Runs `docker ARGS...` against this engine.
    #[track_caller]
    pub fn docker<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args))
    }
}

/// The four `BRIX_E2E_GIT_*` variables, all or none.
#[track_caller]
fn git_servers() -> Option<GitServers> {
    let http = std::env::var("BRIX_E2E_GIT_HTTP")
        .ok()
        .filter(|v| !v.is_empty())?;
    Some(GitServers {
        http,
        ssh: required("BRIX_E2E_GIT_SSH"),
        repos: PathBuf::from(required("BRIX_E2E_GIT_REPOS")),
        ssh_key: PathBuf::from(required("BRIX_E2E_GIT_SSH_KEY")),
    })
}

#[track_caller]
fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "BRIX_E2E=1 but {name} is not set: run the e2e tests through `cargo xtask e2e`, which sets it"
        ),
    }
}

/// Prints `skipped: <reason>` with the test's name. It writes to the process's stderr
/// directly, past the test harness's output capture, so the line shows for a passing test.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let _ = writeln!(std::io::stderr(), "{name}: skipped: {reason}");
}

/// The id of this e2e run: `BRIX_E2E_RUN_ID`, which `cargo xtask e2e` sets to its own pid so
/// that it removes exactly what this run created (several runs may share one engine), else
/// this test process's pid.
pub fn run_id() -> String {
    std::env::var("BRIX_E2E_RUN_ID")
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| std::process::id().to_string())
}

/// The label to put on what a test creates: `dev.brix.e2e=<run id>` (`--label` value).
pub fn test_label() -> String {
    format!("{TEST_LABEL}={}", run_id())
}

/// A name no other test (or test run) uses: `brix-e2e-<run>-<purpose>-<pid>-<n>`. Use it for
/// containers, volumes, builders and repositories, so the clean-up after the run finds them.
pub fn unique_name(purpose: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let purpose: String = purpose
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "{TEST_PREFIX}{}-{purpose}-{}-{n}",
        run_id(),
        std::process::id()
    )
}

/// Panics unless real buildx is installed (`cargo xtask e2e` installs it): for the tests that
/// compare brix with it.
#[track_caller]
pub fn require_buildx() {
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
}

/// A docker-container builder of one test, in a store of its own, for brix and real buildx
/// side by side: created with [`E2eEnv::create_builder`] and booted by brix (buildx cannot
/// boot a node here: it asks for a privileged container), removed with its container when
/// dropped.
pub struct SharedBuilder {
    /// The environment it runs in.
    pub env: E2eEnv,
    /// The store both tools use (`BRIX_CONFIG` / `BUILDX_CONFIG`).
    pub store: PathBuf,
    /// The builder's name.
    pub name: String,
}

impl SharedBuilder {
    /// Creates and boots the builder; needs real buildx.
    #[track_caller]
    pub fn new(env: &E2eEnv, purpose: &str) -> Self {
        Self::with_config(env, purpose, "")
    }

    /// Creates and boots the builder with `extra_toml` in its buildkitd.toml (see
    /// [`E2eEnv::create_builder`]); needs real buildx.
    #[track_caller]
    pub fn with_config(env: &E2eEnv, purpose: &str, extra_toml: &str) -> Self {
        require_buildx();
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let name = unique_name(purpose);
        env.create_builder(&store, &name, extra_toml);
        run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();
        SharedBuilder {
            env: env.clone(),
            store,
            name,
        }
    }

    /// `TOOL build --builder NAME` (brix or buildx, with the builder's store).
    pub fn build(&self, tool: &str) -> Command {
        let mut c = self.env.tool_in(tool, &self.store);
        c.args(["build", "--builder", &self.name]);
        c
    }
}

impl Drop for SharedBuilder {
    fn drop(&mut self) {
        let _ = run(self
            .env
            .brix_in(&self.store)
            .args(["rm", "--force", &self.name]));
        remove_node_container(&format!("buildx_buildkit_{}0", self.name));
    }
}

/// The outcome of a finished command, kept for assertions and messages.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// The last `ERROR:` line of a run that failed (brix and buildx print their error there);
    /// panics when the run succeeded or printed none.
    #[track_caller]
    pub fn error_line(&self) -> String {
        assert!(
            !self.success,
            "`{}` succeeded:\n{}",
            self.command, self.stderr
        );
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("ERROR:"))
            .unwrap_or_else(|| panic!("`{}` printed no ERROR line:\n{}", self.command, self.stderr))
            .to_owned()
    }

    /// Panics with the command, exit status and output unless it succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "`{}` failed:\nstdout:\n{}\nstderr:\n{}",
            self.command, self.stdout, self.stderr
        );
        self
    }
}

/// Runs a command to completion with stdin closed. Panics only when it cannot be started
/// (a missing tool fails the test).
#[track_caller]
pub fn run(cmd: &mut Command) -> Run {
    let command = describe(cmd);
    finish(command, cmd.stdin(Stdio::null()))
}

/// Runs `cmd` (its stdin already set) and keeps what it printed.
#[track_caller]
fn finish(command: String, cmd: &mut Command) -> Run {
    let output: Output = match cmd.output() {
        Ok(output) => output,
        Err(err) => panic!("could not start `{command}`: {err}"),
    };
    Run {
        command,
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a command to completion with the file at `input` as its stdin (a context or a
/// Dockerfile piped in). Panics only when it cannot be started.
#[track_caller]
pub fn run_with_stdin(cmd: &mut Command, input: &std::path::Path) -> Run {
    let command = format!("{} < {}", describe(cmd), input.display());
    let file = std::fs::File::open(input)
        .unwrap_or_else(|err| panic!("opening {} for `{command}`: {err}", input.display()));
    finish(command, cmd.stdin(file))
}

/// Every path below `dir`, relative to it and sorted: what landed in a local output.
#[track_caller]
pub fn relative_paths(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
            let p = entry.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `docker ARGS...`.
#[track_caller]
pub fn docker<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("docker").args(args))
}

/// Removes a builder node's container and its state volume (`<container>_state`), whatever
/// state they are in: the clean-up after `brix rm`, in case that could not run.
pub fn remove_node_container(container: &str) {
    let _ = docker(["rm", "-f", "-v", container]);
    let _ = docker(["volume", "rm", "-f", &format!("{container}_state")]);
}

/// `p` as a `&str` for a command line (test paths are UTF-8).
pub fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The worker's JSON as `buildctl debug workers` prints it, once the daemon answers.
pub fn daemon_workers(container: &str) -> serde_json::Value {
    wait_for(
        &format!("buildkitd in {container}"),
        std::time::Duration::from_secs(60),
        || {
            let out = docker([
                "exec",
                container,
                "buildctl",
                "debug",
                "workers",
                "--format",
                "{{json .}}",
            ]);
            if !out.success {
                let state = docker(["inspect", "-f", "{{.State.Status}}", container]);
                if state.stdout.trim() == "exited" {
                    let logs = docker(["logs", container]);
                    panic!(
                        "buildkitd in {container} exited:\n{}{}",
                        logs.stdout, logs.stderr
                    );
                }
                return Err(out.stderr);
            }
            serde_json::from_str::<serde_json::Value>(out.stdout.trim())
                .map_err(|e| format!("not JSON ({e}): {}", out.stdout))
        },
    )
}

/// The first worker's GC rules: `gcPolicy` (protobuf JSON) or `GCPolicy` (Go field names);
/// absent or null means no rules (GC off).
pub fn gc_rules(workers: &serde_json::Value) -> Vec<serde_json::Value> {
    let w = &workers[0];
    let rules = if w["gcPolicy"].is_null() {
        &w["GCPolicy"]
    } else {
        &w["gcPolicy"]
    };
    rules.as_array().cloned().unwrap_or_default()
}

/// Runs `skopeo ARGS...`.
#[track_caller]
pub fn skopeo<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("skopeo").args(args))
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Polls `attempt` every 250 ms until it returns `Some` or `timeout` passes; panics with
/// `what` and the last error on timeout.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) if started.elapsed() >= timeout => {
                panic!(
                    "{what}: not ready after {}s; last error: {last}",
                    timeout.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A container removed (with its anonymous volumes) when dropped, also when the test panics.
#[derive(Debug)]
pub struct ContainerGuard {
    /// The container's name.
    pub name: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The flags that let a BuildKit daemon run in a container on machines that refuse
/// `--privileged` (see docs/environment.md): every capability except CAP_SYS_RESOURCE, no
/// seccomp/AppArmor confinement, unmasked /proc and /sys, and a writable cgroup mount.
pub const BUILDKIT_CAPABILITY_FLAGS: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
];

/// The index pushed under `image`, as skopeo (an independent client) reads it: its text and
/// its JSON.
#[track_caller]
pub fn pushed_index(image: &str) -> (String, serde_json::Value) {
    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
    .ok();
    let index = serde_json::from_str(&raw.stdout)
        .unwrap_or_else(|e| panic!("the index of {image} is not JSON ({e}):\n{}", raw.stdout));
    (raw.stdout, index)
}

/// The `os/architecture[/variant]` of each manifest in an image index (OCI or Docker list).
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .map(|manifests| {
            manifests
                .iter()
                .map(|m| {
                    let p = &m["platform"];
                    let mut text = format!(
                        "{}/{}",
                        p["os"].as_str().unwrap_or("?"),
                        p["architecture"].as_str().unwrap_or("?")
                    );
                    if let Some(variant) = p["variant"].as_str() {
                        text.push('/');
                        text.push_str(variant);
                    }
                    text
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The image platforms of an index, sorted, its attestation manifests (`unknown/unknown`)
/// left out.
pub fn image_platforms(index: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = index_platforms(index)
        .into_iter()
        .filter(|p| !p.starts_with("unknown/"))
        .collect();
    out.sort();
    out
}

// Registry faults (issue 17): the `fault-proxy` set-up step's registry and proxies, and the
// `token-registry` step's short-lived token registry.

impl E2eEnv {
    /// The fault proxies and their registry; panics when `cargo xtask e2e` did not pass them
    /// (its `fault-proxy` step did not run, or `--no-setup` found them stopped).
    #[track_caller]
    pub fn fault_proxies(&self) -> FaultProxies {
        let missing = |name: &str| -> String {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the fault proxies are not running; run `cargo xtask e2e --setup-only` (its fault-proxy step)"
                )
            })
        };
        FaultProxies {
            upstream: missing("BRIX_E2E_FAULT_UPSTREAM"),
            upstream_storage: PathBuf::from(missing("BRIX_E2E_FAULT_UPSTREAM_STORAGE")),
            http_faults: missing("BRIX_E2E_FAULT_PROXY"),
            http_faults_log: PathBuf::from(missing("BRIX_E2E_FAULT_PROXY_ACCESS_LOG")),
            toxiproxy: missing("BRIX_E2E_TOXIPROXY"),
        }
    }

    /// The registry whose token server issues short-lived tokens; panics when `cargo xtask
    /// e2e` did not pass it.
    #[track_caller]
    pub fn short_token_registry(&self) -> ShortTokenRegistry {
        let missing = |name: &str| -> String {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the short-lived token registry is not running; run `cargo xtask e2e --setup-only` (its token-registry step)"
                )
            })
        };
        let secs = missing("BRIX_E2E_SHORT_TOKEN_LIFETIME_SECS");
        ShortTokenRegistry {
            addr: missing("BRIX_E2E_SHORT_TOKEN_REGISTRY"),
            lifetime: Duration::from_secs(
                secs.parse()
                    .unwrap_or_else(|_| panic!("BRIX_E2E_SHORT_TOKEN_LIFETIME_SECS={secs:?}")),
            ),
            token_server_log: PathBuf::from(missing("BRIX_E2E_SHORT_TOKEN_SERVER_LOG")),
        }
    }
}

/// A registry with `auth: token` (the token registry's user, password and namespace) whose
/// token server's tokens expire after [`ShortTokenRegistry::lifetime`]; the registry still
/// accepts one for 60 s after that (distribution's leeway).
#[derive(Debug, Clone)]
pub struct ShortTokenRegistry {
    /// Its `host:port` on loopback, `127.0.0.1:5003`, to put a proxy in front of.
    pub addr: String,
    /// How long its tokens are valid.
    pub lifetime: Duration,
    /// Its token server's log: a `get token complete` or `post token complete` line per token
    /// issued.
    pub token_server_log: PathBuf,
}

impl ShortTokenRegistry {
    /// How many tokens its token server has issued so far.
    pub fn tokens_issued(&self) -> usize {
        std::fs::read_to_string(&self.token_server_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("get token complete") || l.contains("post token complete"))
            .count()
    }
}

/// The `fault-proxy` set-up step's registry and the proxies in front of it.
#[derive(Debug, Clone)]
pub struct FaultProxies {
    /// The registry, `localhost:5012` (`BRIX_E2E_FAULT_UPSTREAM`).
    pub upstream: String,
    /// Its storage folder (`BRIX_E2E_FAULT_UPSTREAM_STORAGE`).
    pub upstream_storage: PathBuf,
    /// nginx in front of it, `localhost:5010` (`BRIX_E2E_FAULT_PROXY`): a random part of the
    /// blob and manifest requests is answered 503, or 429 with `Retry-After: 1`.
    pub http_faults: String,
    /// nginx's access log, `STATUS METHOD URI fault=unavailable|throttled|` per request.
    pub http_faults_log: PathBuf,
    /// toxiproxy's API, `127.0.0.1:8474` (`BRIX_E2E_TOXIPROXY`).
    pub toxiproxy: String,
}

impl FaultProxies {
    /// The upstream's address (`127.0.0.1:PORT`) for proxies and raw requests.
    pub fn upstream_addr(&self) -> String {
        self.upstream.replacen("localhost", "127.0.0.1", 1)
    }

    /// A toxiproxy proxy of the test's own from a free loopback port to `upstream`
    /// (`host:port`), without toxics; removed when dropped.
    #[track_caller]
    pub fn tcp_proxy(&self, purpose: &str, upstream: &str) -> TcpFaultProxy {
        let name = unique_name(purpose);
        let body = serde_json::json!({
            "name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true,
        });
        let (status, answer) = http_call(&self.toxiproxy, "POST", "/proxies", Some(&body))
            .unwrap_or_else(|e| panic!("toxiproxy on {}: {e}", self.toxiproxy));
        assert_eq!(status, 201, "creating toxiproxy proxy {name}: {answer}");
        let created: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("toxiproxy's answer is not JSON ({e}): {answer}"));
        let listen = created["listen"]
            .as_str()
            .unwrap_or_else(|| panic!("toxiproxy names no listen address: {answer}"))
            .to_owned();
        TcpFaultProxy {
            api: self.toxiproxy.clone(),
            name,
            listen,
        }
    }

    /// How many requests for `repository` nginx answered with a fault of its own.
    pub fn injected_faults(&self, repository: &str) -> usize {
        let prefix = format!("/v2/{repository}/");
        std::fs::read_to_string(&self.http_faults_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&prefix))
            .filter(|l| l.ends_with("fault=unavailable") || l.ends_with("fault=throttled"))
            .count()
    }

    /// Whether the upstream holds an upload of `repository` in progress (the client has
    /// started sending a blob).
    pub fn upload_started(&self, repository: &str) -> bool {
        std::fs::read_dir(self.repository_dir(repository).join("_uploads"))
            .is_ok_and(|mut entries| entries.next().is_some())
    }

    /// The tags of `repository`, asked of the upstream itself (none when it does not exist).
    #[track_caller]
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let (status, body) = http_call(
            &self.upstream_addr(),
            "GET",
            &format!("/v2/{repository}/tags/list"),
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", self.upstream));
        match status {
            404 => Vec::new(),
            200 => {
                let list: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("tags/list is not JSON ({e}): {body}"));
                list["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            other => panic!(
                "GET /v2/{repository}/tags/list on {}: {other} {body}",
                self.upstream
            ),
        }
    }

    /// Removes `repository` and the blobs `digests` (fresh random layers nothing else
    /// refers to) from the upstream's storage, so the runs do not fill the disk.
    pub fn forget(&self, repository: &str, digests: &[String]) {
        let _ = std::fs::remove_dir_all(self.repository_dir(repository));
        for digest in digests {
            if let Some(hex) = digest.strip_prefix("sha256:").filter(|h| h.len() > 2) {
                let _ = std::fs::remove_dir_all(
                    self.storage_root()
                        .join("blobs/sha256")
                        .join(&hex[..2])
                        .join(hex),
                );
            }
        }
    }

    fn storage_root(&self) -> PathBuf {
        self.upstream_storage.join("docker/registry/v2")
    }

    fn repository_dir(&self, repository: &str) -> PathBuf {
        self.storage_root().join("repositories").join(repository)
    }
}

/// A toxiproxy proxy made by [`FaultProxies::tcp_proxy`], deleted when dropped.
#[derive(Debug)]
pub struct TcpFaultProxy {
    api: String,
    /// Its name in toxiproxy.
    pub name: String,
    /// Where it listens, `127.0.0.1:PORT`.
    pub listen: String,
}

impl TcpFaultProxy {
    /// The proxy as image references name it, `localhost:PORT` (plain HTTP for brix and
    /// Docker).
    pub fn host(&self) -> String {
        self.listen.replacen("127.0.0.1", "localhost", 1)
    }

    /// Adds a toxic on the client-to-registry direction: `kind` is toxiproxy's type
    /// (`limit_data`, `reset_peer`, `bandwidth`, `timeout`…), applied to each connection
    /// with probability `toxicity`, with its `attributes`. Existing connections get it too.
    #[track_caller]
    pub fn add_toxic(&self, name: &str, kind: &str, toxicity: f32, attributes: serde_json::Value) {
        let body = serde_json::json!({
            "name": name, "type": kind, "stream": "upstream",
            "toxicity": toxicity, "attributes": attributes,
        });
        self.call(
            "POST",
            &format!("/proxies/{}/toxics", self.name),
            Some(&body),
        );
    }

    /// Removes a toxic (its pending effects on open connections are dropped).
    #[track_caller]
    pub fn remove_toxic(&self, name: &str) {
        self.call(
            "DELETE",
            &format!("/proxies/{}/toxics/{name}", self.name),
            None,
        );
    }

    /// Disables the proxy (its port refuses connections and open ones are closed, as a
    /// registry that went down) or enables it again on the same port.
    #[track_caller]
    pub fn set_enabled(&self, enabled: bool) {
        let body = serde_json::json!({ "enabled": enabled });
        self.call("POST", &format!("/proxies/{}", self.name), Some(&body));
    }

    /// Bytes the proxy passed to the registry over connections that have ended (toxiproxy
    /// counts a connection's bytes when it closes).
    pub fn upstream_bytes_of_closed_connections(&self) -> u64 {
        let Ok((200, metrics)) = http_call(&self.api, "GET", "/metrics", None) else {
            return 0;
        };
        let proxy = format!("proxy=\"{}\"", self.name);
        metrics
            .lines()
            .filter(|l| l.starts_with("toxiproxy_proxy_sent_bytes_total{"))
            .filter(|l| l.contains("direction=\"upstream\"") && l.contains(&proxy))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|bytes| bytes as u64)
            .sum()
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) {
        let (status, answer) = http_call(&self.api, method, path, body)
            .unwrap_or_else(|e| panic!("toxiproxy on {}: {e}", self.api));
        assert!(
            (200..300).contains(&status),
            "toxiproxy {method} {path}: {status} {answer}"
        );
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        let _ = http_call(
            &self.api,
            "DELETE",
            &format!("/proxies/{}", self.name),
            None,
        );
    }
}

/// One HTTP/1.0 request to `addr` (`host:port`), with a JSON body if given; returns the
/// status and the body as text. For the set-up's servers on loopback, not for blobs.
pub fn http_call(
    addr: &str,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), String> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no HTTP status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// The entries two listings (file name → what the test compares) do not agree on, one line
/// each and at most 60, for an assertion message.
pub fn describe_differences<T: PartialEq>(
    ours: &std::collections::BTreeMap<Vec<u8>, T>,
    theirs: &std::collections::BTreeMap<Vec<u8>, T>,
    show: impl Fn(&T) -> String,
) -> String {
    let mut lines = Vec::new();
    let names: std::collections::BTreeSet<&Vec<u8>> = ours.keys().chain(theirs.keys()).collect();
    for name in names {
        let shown = name.escape_ascii().to_string();
        match (ours.get(name), theirs.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                lines.push(format!("  {shown}: brix {} / buildx {}", show(a), show(b)))
            }
            (Some(a), None) => lines.push(format!("  {shown}: only in brix ({})", show(a))),
            (None, Some(b)) => lines.push(format!("  {shown}: only in buildx ({})", show(b))),
            (None, None) => {}
        }
    }
    let total = lines.len();
    if total > 60 {
        lines.truncate(60);
        lines.push(format!("  ... and {} more", total - 60));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_prefixed_and_distinct() {
        let a = unique_name("Push Test");
        let b = unique_name("Push Test");
        assert!(
            a.starts_with(&format!("brix-e2e-{}-push-test-", run_id())),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn index_platforms_reads_os_arch_variant() {
        let index = serde_json::json!({"manifests": [
            {"platform": {"os": "linux", "architecture": "amd64"}},
            {"platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        ]});
        assert_eq!(index_platforms(&index), vec!["linux/amd64", "linux/arm/v7"]);
    }
}
