//! `cargo xtask e2e`: install and start the real test environment, then run the `tests/` crate.
//!
//! The steps follow `docs/environment.md` (what was verified by hand on these machines) and are
//! idempotent: each one first checks whether its piece is already in place and only then does
//! work, so a warm run costs a few seconds. Every step prints one line,
//! `[e2e] 8/12 binfmt: ... (0.1s)`. Daemons (both dockerds, the registry, the S3 and git
//! servers) are started detached and are left running for the next run; what the tests start
//! is removed afterwards.

mod binfmt;
mod buildkit;
mod buildx;
mod busybox;
mod ci_client;
pub(crate) mod docker28;
mod dockerd;
mod fault_proxy;
mod git_server;
mod go_toolchain;
mod hosts;
pub(crate) mod kubernetes;
pub(crate) mod packages;
pub(crate) mod process;
mod registry;
mod run_tests;
mod s3;
mod scanner;
mod tls_registry;
pub(crate) mod token_registry;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Where the registry listens; the tests reach it as `localhost:5000`.
pub const REGISTRY_ADDR: &str = "127.0.0.1:5000";
/// The registry as image references name it (Docker treats `localhost:5000` as plain HTTP).
pub const REGISTRY_HOST: &str = "localhost:5000";
/// The two-platform base image every test builds `FROM`.
pub const BUSYBOX_IMAGE: &str = "localhost:5000/busybox:latest";
/// The BuildKit daemon image, under the tag buildx (and brix) look for.
pub const BUILDKIT_IMAGE: &str = "moby/buildkit:buildx-stable-1";

/// Options of `cargo xtask e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Set up the environment (packages, both dockerds, binfmt, registry, images, the CI
    /// client's npm packages, the S3 and git servers) and stop there.
    #[arg(long, conflicts_with = "no_setup")]
    setup_only: bool,
    /// Skip the setup and only run the tests against what is already running.
    #[arg(long)]
    no_setup: bool,
    /// With --setup-only: run only the named set-up step (e.g. `kubernetes`), for working on
    /// one step while the others' services run from another checkout.
    #[arg(long, hide = true, requires = "setup_only")]
    only: Option<String>,
    /// Extra arguments for the test binaries, after `--` (e.g. a test name filter); a second
    /// `--` splits arguments for cargo test (before it) from those for the binaries.
    #[arg(last = true)]
    test_args: Vec<String>,
}

/// Paths shared by the steps.
#[derive(Debug)]
pub struct Workspace {
    /// The workspace root (where the root Cargo.toml is).
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and `.cargo/config`).
    pub target_dir: PathBuf,
    /// `<target>/e2e`: logs, registry storage, downloaded packages, build contexts.
    pub e2e_dir: PathBuf,
}

impl Workspace {
    pub(crate) fn locate() -> Result<Self> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let out = process::output(std::process::Command::new(cargo).args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
        ]))?;
        let meta: serde_json::Value =
            serde_json::from_str(&out).context("parsing `cargo metadata` output")?;
        let field = |name: &str| -> Result<PathBuf> {
            meta[name]
                .as_str()
                .map(PathBuf::from)
                .with_context(|| format!("`cargo metadata` has no {name}"))
        };
        let target_dir = field("target_directory")?;
        Ok(Self {
            root: field("workspace_root")?,
            e2e_dir: target_dir.join("e2e"),
            target_dir,
        })
    }

    /// A path relative to the workspace root when it is inside it, for short messages.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Prints one progress line per step with its timing.
struct Progress {
    index: usize,
    total: usize,
    /// `--only`: the one step that runs; the others are skipped without a line.
    only: Option<String>,
}

impl Progress {
    fn step(&mut self, name: &str, work: impl FnOnce() -> Result<String>) -> Result<()> {
        if self.only.as_deref().is_some_and(|only| only != name) {
            return Ok(());
        }
        self.index += 1;
        let started = Instant::now();
        let result = work();
        let secs = started.elapsed().as_secs_f64();
        let (index, total) = (self.index, self.total);
        match result {
            Ok(summary) => {
                println!("[e2e] {index}/{total} {name}: {summary} ({secs:.1}s)");
                Ok(())
            }
            Err(err) => {
                println!("[e2e] {index}/{total} {name}: FAILED ({secs:.1}s)");
                Err(err.context(format!("e2e step {name} failed")))
            }
        }
    }
}

/// Runs `cargo xtask e2e`. The exit code is the tests' exit code.
pub fn run(args: E2eArgs) -> Result<ExitCode> {
    let ws = Workspace::locate()?;
    std::fs::create_dir_all(&ws.e2e_dir)
        .with_context(|| format!("creating {}", ws.e2e_dir.display()))?;
    let setup_steps = match (&args.only, args.no_setup) {
        (Some(_), _) => 1,
        (None, true) => 0,
        (None, false) => 17,
    };
    let test_steps = if args.setup_only { 0 } else { 1 };
    let mut progress = Progress {
        index: 0,
        total: setup_steps + test_steps,
        only: args.only.clone(),
    };
    let mut brix = BrixBinary::default();

    if !args.no_setup {
        progress.step("packages", || packages::ensure(&ws))?;
        progress.step("dockerd", || dockerd::ensure(&ws))?;
        // Right after the system engine, so its docker0 is checked before and after.
        progress.step("docker28", || docker28::ensure(&ws))?;
        progress.step("registry", || registry::ensure(&ws))?;
        progress.step("busybox", || busybox::ensure(&ws))?;
        progress.step("buildkit", || buildkit::ensure(&ws))?;
        progress.step("docker28-images", || docker28::ensure_images(&ws))?;
        // Last, because it builds the brix binary: the project's own `brix binfmt` does the
        // registration.
        progress.step("binfmt", || binfmt::ensure(&ws, &mut brix))?;
        progress.step("buildx", || buildx::ensure(&ws))?;
        progress.step("ci-client", || ci_client::ensure(&ws))?;
        progress.step("s3", || s3::ensure(&ws))?;
        progress.step("git-server", || git_server::ensure(&ws))?;
        // After the registry: the SBOM generator image the attestation tests scan with.
        progress.step("scanner", || scanner::ensure(&ws))?;
        progress.step("token-registry", || token_registry::ensure(&ws))?;
        // After the registry it fronts (and after `packages`, for nginx).
        progress.step("fault-proxy", || fault_proxy::ensure(&ws))?;
        // After `packages` (openssl, docker-registry); it maps its host names in /etc/hosts
        // before the tests create their builders (containers copy the file when created).
        progress.step("tls-registry", || tls_registry::ensure(&ws))?;
        // Last: the slowest when cold (it compiles Kubernetes: 8 to 23 minutes, by how warm
        // the Go module and build caches are), and it needs the BuildKit image of the
        // `buildkit` step and the system engine to copy it from.
        progress.step("kubernetes", || kubernetes::ensure(&ws))?;
    }
    if args.setup_only {
        return Ok(ExitCode::SUCCESS);
    }
    let mut code = ExitCode::FAILURE;
    progress.step("tests", || {
        let (exit, summary) = run_tests::run(&ws, &mut brix, &args.test_args)?;
        code = exit;
        Ok(summary)
    })?;
    Ok(code)
}

/// A note for a step's line saying how much of its time went to building brix (the Rust
/// build is not part of the environment's time budget).
fn build_note(build_time: std::time::Duration) -> String {
    if build_time.as_secs_f64() < 1.0 {
        String::new()
    } else {
        format!("; {:.1}s of it building brix", build_time.as_secs_f64())
    }
}

/// The `brix` binary, built once per xtask run with `cargo build -p brix`.
#[derive(Debug, Default)]
pub struct BrixBinary {
    path: Option<PathBuf>,
}

impl BrixBinary {
    /// Builds brix (a no-op when it is fresh) and returns the binary's path and how long the
    /// build took on this call (zero after the first), which steps leave out of their budget.
    pub fn get(&mut self, ws: &Workspace) -> Result<(PathBuf, std::time::Duration)> {
        if let Some(path) = &self.path {
            return Ok((path.clone(), std::time::Duration::ZERO));
        }
        let started = Instant::now();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        // Cargo's own errors and warnings stay visible.
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "brix"])
            .current_dir(&ws.root)
            .status()
            .context("running `cargo build -p brix`")?;
        anyhow::ensure!(status.success(), "`cargo build -p brix` failed ({status})");
        let path = ws.target_dir.join("debug").join("brix");
        anyhow::ensure!(
            path.is_file(),
            "`cargo build -p brix` succeeded but {} does not exist",
            path.display()
        );
        self.path = Some(path.clone());
        Ok((path, started.elapsed()))
    }
}
