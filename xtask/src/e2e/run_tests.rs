//! The last step: `cargo test -p brix-e2e` with the environment's addresses and image names,
//! then the removal of what the tests started, on both engines (and the bare repositories they
//! made for the git servers). The dockerds and the registry stay up for the next run.
//!
//! Several runs may share one engine (developers on one machine, or a run in another
//! checkout), so each run has an id, xtask's own pid, passed as `BRIX_E2E_RUN_ID`. The tests'
//! helpers (`tests/src/lib.rs`) name what they create `brix-e2e-<run id>-...` (brix builders
//! too: their containers become `buildx_buildkit_brix-e2e-<run id>-...`) and label it
//! `dev.brix.e2e=<run id>`. After the tests, exactly this run's things are removed; before
//! them, what runs that no longer exist (no such process) left behind, e.g. after a Ctrl-C.

use super::process::{self, output};
use super::{BUILDKIT_IMAGE, BUSYBOX_IMAGE, BrixBinary, REGISTRY_HOST, Workspace};
use super::{buildkit, docker28, dockerd, registry};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Label key on every container, volume and image a test creates; the value is the run id.
pub const TEST_LABEL: &str = "dev.brix.e2e";
/// Name prefix of everything a test creates (containers, builders, repositories).
pub const TEST_PREFIX: &str = "brix-e2e-";
/// Threads for the test harness: the machines have 2 cores and most tests drive a daemon.
const TEST_THREADS: &str = "--test-threads=2";

/// Runs the e2e crate; returns the tests' exit code and a one-line summary.
pub fn run(
    ws: &Workspace,
    brix: &mut BrixBinary,
    test_args: &[String],
) -> Result<(ExitCode, String)> {
    dockerd::require_running()?;
    docker28::require_running(ws)?;
    registry::require_running()?;
    let (brix_bin, build_time) = brix.get(ws)?;
    let (cargo_args, binary_args) = split_test_args(test_args);
    let run_id = std::process::id().to_string();
    let engines = engine_hosts(ws);
    let leftovers = sweep_dead_runs(ws, &engines)?;
    let run_dir = runs_dir(ws).join(&run_id);
    let work_dir = run_dir.join("work");
    let brix_config = run_dir.join("brix-config");
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws.root)
        // Every test binary runs even when an earlier one fails, so one run shows all failures.
        .args(["test", "-p", "brix-e2e", "--no-fail-fast"])
        .args(cargo_args)
        .arg("--")
        .env("BRIX_E2E", "1")
        .env("BRIX_E2E_RUN_ID", &run_id)
        .env("BRIX_E2E_REGISTRY", REGISTRY_HOST)
        .env("BRIX_E2E_BUSYBOX", BUSYBOX_IMAGE)
        .env("BRIX_E2E_BUILDKIT_IMAGE", BUILDKIT_IMAGE)
        .env("BRIX_E2E_BUILDKIT_VERSION", buildkit::BUILDKIT_VERSION)
        .env("BRIX_E2E_BUILDCTL", buildkit::bin_dir(ws).join("buildctl"))
        .env("BRIX_E2E_BRIX_BIN", &brix_bin)
        .env("BRIX_E2E_DOCKER_HOST", &engines[0])
        .env("BRIX_E2E_DOCKER28_HOST", &engines[1])
        .env(
            "BRIX_E2E_DOCKER28_TLS_HOST",
            format!("tcp://{}", super::docker28::TLS_ADDRESS),
        )
        .env(
            "BRIX_E2E_DOCKER28_TLS_CERTS",
            super::docker28::Docker28::new(ws).tls_dir,
        )
        .env("BRIX_E2E_WORK_DIR", &work_dir)
        // Builders the tests create live here, not in the user's ~/.docker/buildx, and not in
        // another run's store (`brix use` changes the store's current builder).
        .env("BRIX_CONFIG", &brix_config);
    // Real buildx for the side-by-side tests: present after the `buildx` setup step, or
    // installed earlier when `--no-setup` skipped it.
    if super::buildx::available() {
        cmd.env("BRIX_E2E_BUILDX", "1");
    }
    // The S3-compatible server of the `s3` cache tests, after the `s3` step.
    if super::s3::running() {
        cmd.env("BRIX_E2E_S3", format!("http://{}", super::s3::S3_ADDR));
    }
    // The token-auth registries of the registry tests, after the `token-registry` step.
    cmd.envs(super::token_registry::test_env(ws));
    // The fault-injecting proxies of the registry fault tests, after the `fault-proxy` step.
    cmd.envs(super::fault_proxy::test_env(ws));
    // The TLS registries of the private-CA tests, after the `tls-registry` step.
    if super::tls_registry::running(ws) {
        cmd.envs(super::tls_registry::test_env(ws));
    }
    // The single-node cluster of the kubernetes driver tests, after the `kubernetes` step.
    cmd.envs(super::kubernetes::test_env(ws));
    // The SBOM generator image of the attestation tests, after the `scanner` step.
    if super::scanner::pushed() {
        cmd.env("BRIX_E2E_SCANNER", super::scanner::image());
    }
    // The git servers of the remote git context tests, after the `git-server` step.
    let git = super::git_server::GitServer::new(ws);
    if git.running(ws) {
        cmd.envs(git.test_env());
    }
    // The CI client's packages (`tests/tests/ci_client.rs`), after the `ci-client` step.
    if super::ci_client::installed(ws) {
        cmd.env(
            "BRIX_E2E_CI_CLIENT_MODULES",
            super::ci_client::node_modules(ws),
        );
    }
    if !binary_args
        .iter()
        .any(|arg| arg.starts_with("--test-threads"))
    {
        cmd.arg(TEST_THREADS);
    }
    cmd.args(binary_args);
    let status = cmd.status().context("running `cargo test -p brix-e2e`")?;

    let removed = clean_up(ws, &engines, &run_id)?;
    let code = status.code().unwrap_or(1);
    let verdict = if status.success() {
        "passed".to_string()
    } else {
        format!("FAILED (exit {code})")
    };
    let mut summary = format!(
        "cargo test -p brix-e2e {verdict}; removed {removed}{}",
        super::build_note(build_time)
    );
    if !leftovers.is_nothing() {
        summary.push_str(&format!(" (and {leftovers} left by ended runs)"));
    }
    Ok((ExitCode::from(u8::try_from(code).unwrap_or(1)), summary))
}

/// `cargo xtask e2e -- ARGS` passes ARGS to the test binaries (a name filter, `--nocapture`);
/// as with `cargo test`, a second `--` splits them: before it for cargo (`--test builders`),
/// after it for the binaries.
fn split_test_args(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (&[], args),
    }
}

fn runs_dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("runs")
}

/// What clean-ups removed.
#[derive(Debug, Default)]
struct Removed {
    containers: usize,
    volumes: usize,
    images: usize,
}

impl Removed {
    fn is_nothing(&self) -> bool {
        self.containers + self.volumes + self.images == 0
    }

    fn add(&mut self, other: Removed) {
        self.containers += other.containers;
        self.volumes += other.volumes;
        self.images += other.images;
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} test containers, {} volumes, {} images",
            self.containers, self.volumes, self.images
        )
    }
}

/// The engines the tests use, as `DOCKER_HOST` values: the system one, then dockerd 28.
fn engine_hosts(ws: &Workspace) -> [String; 2] {
    [
        format!("unix://{}", dockerd::DOCKER_SOCKET),
        docker28::Docker28::new(ws).host(),
    ]
}

/// `docker` against the engine at `host`.
fn docker(host: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", host);
    cmd
}

/// Removes the containers, volumes and images of run `run_id` on every engine, and its
/// folder under `target/e2e/runs` (scratch files and the builder store).
fn clean_up(ws: &Workspace, engines: &[String], run_id: &str) -> Result<Removed> {
    let mut removed = Removed::default();
    for host in engines {
        removed.add(clean_up_engine(host, run_id)?);
    }
    let run_dir = runs_dir(ws).join(run_id);
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    // The bare repositories the tests served through the git servers (`E2eEnv::git_repo`).
    let repos = super::git_server::GitServer::new(ws).repos().to_path_buf();
    if let Ok(entries) = std::fs::read_dir(&repos) {
        let prefix = format!("{TEST_PREFIX}{run_id}-");
        for entry in entries.filter_map(|entry| entry.ok()) {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
    }
    Ok(removed)
}

/// Removes the containers, volumes and images of run `run_id` on the engine at `host`.
fn clean_up_engine(host: &str, run_id: &str) -> Result<Removed> {
    // Docker's name filter matches anywhere in the name, so this also catches the builders'
    // `buildx_buildkit_brix-e2e-<id>-...` containers and `..._state` volumes.
    let name = format!("name={TEST_PREFIX}{run_id}-");
    let label = format!("label={TEST_LABEL}={run_id}");
    let containers = lines(
        host,
        &[
            &["ps", "-aq", "--filter", &name],
            &["ps", "-aq", "--filter", &label],
        ],
    )?;
    if !containers.is_empty() {
        output(docker(host).args(["rm", "-f", "-v"]).args(&containers))?;
    }
    let volumes = lines(
        host,
        &[
            &["volume", "ls", "-q", "--filter", &name],
            &["volume", "ls", "-q", "--filter", &label],
        ],
    )?;
    if !volumes.is_empty() {
        output(docker(host).args(["volume", "rm", "-f"]).args(&volumes))?;
    }
    let images = lines(
        host,
        &[
            &["images", "-q", "--filter", &label],
            &[
                "images",
                "-q",
                "--filter",
                &format!("reference={REGISTRY_HOST}/{TEST_PREFIX}{run_id}-*"),
            ],
            &[
                "images",
                "-q",
                "--filter",
                &format!("reference={TEST_PREFIX}{run_id}-*"),
            ],
        ],
    )?;
    if !images.is_empty() {
        // An image may still be used by a container of another run; that is not this run's
        // failure, so a refusal is ignored.
        let _ = process::succeeds(docker(host).args(["rmi", "-f"]).args(&images));
    }
    Ok(Removed {
        containers: containers.len(),
        volumes: volumes.len(),
        images: images.len(),
    })
}

/// Cleans up after every earlier run whose xtask process no longer exists.
fn sweep_dead_runs(ws: &Workspace, engines: &[String]) -> Result<Removed> {
    let mut ids = BTreeSet::new();
    for host in engines {
        ids.extend(run_ids_on(host)?);
    }
    if let Ok(dirs) = std::fs::read_dir(runs_dir(ws)) {
        ids.extend(
            dirs.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|id| is_run_id(id)),
        );
    }
    let mut removed = Removed::default();
    for id in ids {
        if !Path::new("/proc").join(&id).exists() {
            removed.add(clean_up(ws, engines, &id)?);
        }
    }
    Ok(removed)
}

/// The run ids in the names and labels of the containers and volumes on the engine at `host`.
fn run_ids_on(host: &str) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let names = lines(
        host,
        &[
            &[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("name={TEST_PREFIX}"),
            ],
            &[
                "volume",
                "ls",
                "--format",
                "{{.Name}}",
                "--filter",
                &format!("name={TEST_PREFIX}"),
            ],
        ],
    )?;
    ids.extend(names.iter().filter_map(|name| run_id_in_name(name)));
    let labels = lines(
        host,
        &[&[
            "ps",
            "-a",
            "--format",
            &format!("{{{{.Label \"{TEST_LABEL}\"}}}}"),
            "--filter",
            &format!("label={TEST_LABEL}"),
        ]],
    )?;
    ids.extend(labels.into_iter().filter(|id| is_run_id(id)));
    Ok(ids)
}

/// Run ids are pids.
fn is_run_id(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The run id in a name made by the tests' `unique_name`, wherever it sits in the name
/// (`brix-e2e-123-seed-456-0`, `buildx_buildkit_brix-e2e-123-seed-456-00_state`).
fn run_id_in_name(name: &str) -> Option<String> {
    let (_, rest) = name.split_once(TEST_PREFIX)?;
    let id = rest.split('-').next()?;
    is_run_id(id).then(|| id.to_string())
}

/// The non-empty output lines of the docker commands on the engine at `host`, deduplicated.
fn lines(host: &str, queries: &[&[&str]]) -> Result<Vec<String>> {
    let mut all = BTreeSet::new();
    for query in queries {
        let out = output(docker(host).args(*query))?;
        all.extend(
            out.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    Ok(all.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::{run_id_in_name, split_test_args};

    #[test]
    fn a_second_double_dash_splits_cargo_and_binary_args() {
        let args: Vec<String> = ["--test", "builders", "--", "seed"]
            .map(String::from)
            .to_vec();
        let (cargo, binaries) = split_test_args(&args);
        assert_eq!(cargo, ["--test", "builders"]);
        assert_eq!(binaries, ["seed"]);
        let args = vec!["seed".to_string()];
        assert_eq!(split_test_args(&args), (&[][..], &args[..]));
    }

    #[test]
    fn run_ids_are_found_in_test_names() {
        assert_eq!(
            run_id_in_name("brix-e2e-123-seed-456-0").as_deref(),
            Some("123")
        );
        assert_eq!(
            run_id_in_name("buildx_buildkit_brix-e2e-77-keep-9-1_state").as_deref(),
            Some("77")
        );
        // Names from before run ids, or not from the tests at all.
        assert_eq!(run_id_in_name("brix-e2e-seed-456-0"), None);
        assert_eq!(run_id_in_name("bk-h1"), None);
    }
}
