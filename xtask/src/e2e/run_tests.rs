//! Step 7: `cargo test -p brix-e2e` with the environment's addresses and image names, then the
//! removal of what the tests started. dockerd and the registry stay up for the next run.
//!
//! Tests mark what they create so the clean-up is exact: containers, volumes and images carry
//! the label [`TEST_LABEL`] or a name starting with [`TEST_PREFIX`], and brix builders made by
//! tests are named `brix-e2e-...` (containers `brix_buildkit_brix-e2e-...`). The tests' helpers
//! in `tests/src/lib.rs` use the same two constants.

use super::process::{self, output};
use super::{BUILDKIT_IMAGE, BUSYBOX_IMAGE, BrixBinary, REGISTRY_HOST, Workspace};
use super::{buildkit, dockerd, registry};
use anyhow::{Context, Result};
use std::process::{Command, ExitCode};

/// Label on every container, volume and image a test creates.
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
    registry::require_running()?;
    let (brix_bin, build_time) = brix.get(ws)?;
    let work_dir = ws.e2e_dir.join("work");
    let brix_config = ws.e2e_dir.join("brix-config");
    let before = clean_up(&brix_config)?;
    std::fs::create_dir_all(&work_dir)?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws.root)
        // Every test binary runs even when an earlier one fails, so one run shows all failures.
        .args(["test", "-p", "brix-e2e", "--no-fail-fast", "--"])
        .env("BRIX_E2E", "1")
        .env("BRIX_E2E_REGISTRY", REGISTRY_HOST)
        .env("BRIX_E2E_BUSYBOX", BUSYBOX_IMAGE)
        .env("BRIX_E2E_BUILDKIT_IMAGE", BUILDKIT_IMAGE)
        .env("BRIX_E2E_BUILDKIT_VERSION", buildkit::BUILDKIT_VERSION)
        .env("BRIX_E2E_BRIX_BIN", &brix_bin)
        .env(
            "BRIX_E2E_DOCKER_HOST",
            format!("unix://{}", dockerd::DOCKER_SOCKET),
        )
        .env("BRIX_E2E_WORK_DIR", &work_dir)
        // Builders the tests create live here, not in the user's ~/.docker/brix.
        .env("BRIX_CONFIG", &brix_config);
    if !test_args
        .iter()
        .any(|arg| arg.starts_with("--test-threads"))
    {
        cmd.arg(TEST_THREADS);
    }
    cmd.args(test_args);
    let status = cmd.status().context("running `cargo test -p brix-e2e`")?;

    let after = clean_up(&brix_config)?;
    let code = status.code().unwrap_or(1);
    let verdict = if status.success() {
        "passed".to_string()
    } else {
        format!("FAILED (exit {code})")
    };
    let mut summary = format!(
        "cargo test -p brix-e2e {verdict}; removed {after}{}",
        super::build_note(build_time)
    );
    if !before.is_empty_clean() {
        summary.push_str(&format!(" (and {before} left over from an earlier run)"));
    }
    Ok((ExitCode::from(u8::try_from(code).unwrap_or(1)), summary))
}

/// What one clean-up removed.
#[derive(Debug, Default)]
struct Removed {
    containers: usize,
    volumes: usize,
    images: usize,
}

impl Removed {
    fn is_empty_clean(&self) -> bool {
        self.containers + self.volumes + self.images == 0
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

/// Removes the containers, volumes and images the tests created, and the tests' builder store.
fn clean_up(brix_config: &std::path::Path) -> Result<Removed> {
    // Docker's name filter matches anywhere in the name, so `brix-e2e-` also catches the
    // builders' `brix_buildkit_brix-e2e-...` containers and `..._state` volumes.
    let containers = ids(&[
        &["ps", "-aq", "--filter", &format!("label={TEST_LABEL}")],
        &["ps", "-aq", "--filter", &format!("name={TEST_PREFIX}")],
    ])?;
    if !containers.is_empty() {
        output(
            Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&containers),
        )?;
    }
    let volumes = ids(&[
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label={TEST_LABEL}"),
        ],
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={TEST_PREFIX}"),
        ],
    ])?;
    if !volumes.is_empty() {
        output(
            Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes),
        )?;
    }
    let images = ids(&[
        &["images", "-q", "--filter", &format!("label={TEST_LABEL}")],
        &[
            "images",
            "-q",
            "--filter",
            &format!("reference={REGISTRY_HOST}/{TEST_PREFIX}*"),
        ],
        &[
            "images",
            "-q",
            "--filter",
            &format!("reference={TEST_PREFIX}*"),
        ],
    ])?;
    if !images.is_empty() {
        // Images may already be gone with their containers; a failure here is not the tests'.
        let _ = process::succeeds(Command::new("docker").args(["rmi", "-f"]).args(&images));
    }
    if brix_config.exists() {
        std::fs::remove_dir_all(brix_config)
            .with_context(|| format!("removing {}", brix_config.display()))?;
    }
    Ok(Removed {
        containers: containers.len(),
        volumes: volumes.len(),
        images: images.len(),
    })
}

/// The union of the ids (or names) the docker commands print, deduplicated.
fn ids(queries: &[&[&str]]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for query in queries {
        let out = output(Command::new("docker").args(*query))?;
        all.extend(
            out.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    all.sort();
    all.dedup();
    Ok(all)
}
