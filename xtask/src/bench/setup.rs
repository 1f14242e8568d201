//! Getting both tools ready: real buildx (from Debian unstable, without touching the
//! machine's apt setup), brix built in release mode, and one BuildKit daemon that both use.

use super::BenchDirs;
use crate::e2e::packages::with_retry;
use crate::e2e::process::{self, output, succeeds};
use crate::e2e::{REGISTRY_HOST, Workspace};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The brix builder the bench creates (its one node's container is
/// `buildx_buildkit_brix-bench0`).
pub const BRIX_BUILDER: &str = "brix-bench";
/// The buildx builder, a remote-driver builder on the same daemon.
pub const BUILDX_BUILDER: &str = "buildx-bench";
/// The BuildKit container both builders use.
pub const CONTAINER: &str = "buildx_buildkit_brix-bench0";

/// The Debian package that ships the buildx CLI plugin (0.29 in unstable).
const BUILDX_PACKAGE: &str = "docker-buildx";
/// Debian unstable, for packages newer than bookworm's; only ever used through a private
/// sources list (see [`download_unstable_debs`]).
const UNSTABLE_SOURCE: &str = "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main";

/// Makes sure `docker buildx` runs; if it does not, downloads `docker-buildx` from Debian
/// unstable and installs the plugin binary for the current user. Returns a summary.
pub fn ensure_buildx(dirs: &BenchDirs) -> Result<String> {
    if let Some(version) = buildx_version() {
        return Ok(format!("docker buildx present ({version})"));
    }
    let apt_dir = dirs.root.join("apt");
    let debs = download_unstable_debs(&apt_dir, &[BUILDX_PACKAGE])?;
    let deb = &debs[0];
    let unpacked = apt_dir.join("unpacked");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    output(Command::new("dpkg").arg("-x").arg(deb).arg(&unpacked))?;
    let plugin = unpacked.join("usr/libexec/docker/cli-plugins/docker-buildx");
    let plugins_dir = docker_config_dir()?.join("cli-plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    let dest = plugins_dir.join("docker-buildx");
    std::fs::copy(&plugin, &dest)
        .with_context(|| format!("copying {} to {}", plugin.display(), dest.display()))?;
    let version = buildx_version().with_context(|| {
        format!(
            "installed {} but `docker buildx version` still fails",
            dest.display()
        )
    })?;
    Ok(format!(
        "installed {version} from {} to {}",
        deb.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("the .deb"),
        dest.display()
    ))
}

/// Downloads the Debian unstable `.deb` of each of `packages` into `apt_dir`, through a
/// private sources list, lists and cache under it: the machine's own apt state (bookworm
/// only) stays exactly as it was, and nothing is installed through dpkg (the caller unpacks
/// with `dpkg -x`). Returns the files in the order of `packages`; apt's output goes to
/// `apt_dir/apt.log`.
pub fn download_unstable_debs(apt_dir: &Path, packages: &[&str]) -> Result<Vec<PathBuf>> {
    let lists = apt_dir.join("lists");
    let cache = apt_dir.join("cache");
    for dir in [lists.join("partial"), cache.join("archives/partial")] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let sources = apt_dir.join("sources.list");
    std::fs::write(&sources, format!("{UNSTABLE_SOURCE}\n"))?;
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .arg("-q")
            .arg("-o")
            .arg(format!("Dir::Etc::sourcelist={}", sources.display()))
            .args(["-o", "Dir::Etc::sourceparts=-"])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", lists.display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", cache.display()))
            // The download lands in a folder the `_apt` sandbox user may not write to.
            .args(["-o", "APT::Sandbox::User=root"])
            .args(args)
            .current_dir(apt_dir);
        cmd
    };
    let debs_of = |package: &str| -> Result<Vec<PathBuf>> {
        let prefix = format!("{package}_");
        Ok(std::fs::read_dir(apt_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .collect())
    };
    // An older download would be taken for the new one.
    for package in packages {
        for old in debs_of(package)? {
            std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    let log = apt_dir.join("apt.log");
    with_retry(|| process::logged(&mut apt(&["update"]), &log))
        .context("apt-get update with the private Debian unstable list failed")?;
    let mut download = vec!["download"];
    download.extend(packages);
    with_retry(|| process::logged(&mut apt(&download), &log))
        .with_context(|| format!("apt-get download {} failed", packages.join(" ")))?;
    packages
        .iter()
        .map(|package| {
            debs_of(package)?.pop().with_context(|| {
                format!(
                    "apt-get download left no {package} .deb in {}",
                    apt_dir.display()
                )
            })
        })
        .collect()
}

/// `docker buildx version`'s text, when the plugin runs.
pub fn buildx_version() -> Option<String> {
    output(Command::new("docker").args(["buildx", "version"]))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Where the docker CLI looks for plugins: `$DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".docker"))
}

/// The release binaries that are measured.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `target/release/brix`.
    pub brix: PathBuf,
    /// `target/release/examples/push_layout` (brix-exporter's client-side push).
    pub push_layout: PathBuf,
}

/// `cargo build --release` of brix and of brix-exporter's `push_layout` example.
pub fn build_release(ws: &Workspace) -> Result<Binaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "brix",
            "-p",
            "brix-exporter",
            "--bin",
            "brix",
            "--example",
            "push_layout",
        ])
        .current_dir(&ws.root)
        .status()
        .context("running `cargo build --release`")?;
    anyhow::ensure!(
        status.success(),
        "`cargo build --release` failed ({status})"
    );
    let release = ws.target_dir.join("release");
    let bins = Binaries {
        brix: release.join("brix"),
        push_layout: release.join("examples").join("push_layout"),
    };
    for path in [&bins.brix, &bins.push_layout] {
        anyhow::ensure!(path.is_file(), "{} was not built", path.display());
    }
    Ok(bins)
}

/// The environment each tool runs with: private builder stores, so the bench neither sees
/// nor changes the user's builders.
#[derive(Debug, Clone)]
pub struct ToolEnv {
    /// `BRIX_CONFIG` for brix.
    pub brix_config: PathBuf,
    /// `BUILDX_CONFIG` for buildx.
    pub buildx_config: PathBuf,
}

impl ToolEnv {
    /// Under `<target>/bench/`.
    pub fn new(dirs: &BenchDirs) -> Self {
        Self {
            brix_config: dirs.root.join("brix-store"),
            buildx_config: dirs.root.join("buildx-store"),
        }
    }

    /// `brix ARGS` with this environment (not measured).
    pub fn brix(&self, bins: &Binaries, args: &[&str]) -> Command {
        let mut cmd = Command::new(&bins.brix);
        cmd.args(args).env("BRIX_CONFIG", &self.brix_config);
        cmd
    }

    /// `docker buildx ARGS` with this environment (not measured).
    pub fn buildx(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("buildx")
            .args(args)
            .env("BUILDX_CONFIG", &self.buildx_config);
        cmd
    }
}

/// Creates the two builders on one daemon, from scratch: brix makes a docker-container
/// builder (host network, plain HTTP to the local registry) and boots it; buildx gets a
/// remote-driver builder that reaches the same container through `docker exec`.
pub fn create_builders(dirs: &BenchDirs, env: &ToolEnv, bins: &Binaries) -> Result<String> {
    remove_builders(env, bins);
    let toml = dirs.root.join("buildkitd.toml");
    std::fs::write(
        &toml,
        format!("[registry.\"{REGISTRY_HOST}\"]\n  http = true\n"),
    )?;
    let toml_arg = toml.display().to_string();
    output(&mut env.brix(
        bins,
        &[
            "create",
            "--name",
            BRIX_BUILDER,
            "--driver",
            "docker-container",
            "--driver-opt",
            "network=host",
            "--config",
            &toml_arg,
            "--bootstrap",
        ],
    ))
    .context("brix create (the bench's BuildKit daemon)")?;
    let endpoint = format!("docker-container://{CONTAINER}");
    output(&mut env.buildx(&[
        "create",
        "--name",
        BUILDX_BUILDER,
        "--driver",
        "remote",
        &endpoint,
    ]))
    .context("docker buildx create --driver remote")?;
    output(&mut env.buildx(&["inspect", "--bootstrap", BUILDX_BUILDER]))
        .context("docker buildx inspect --bootstrap")?;
    Ok(format!(
        "{BRIX_BUILDER} (brix, docker-container, container {CONTAINER}) and {BUILDX_BUILDER} \
         (buildx, remote {endpoint})"
    ))
}

/// Removes both builders and the daemon's container and state; errors are ignored (there
/// may be nothing to remove).
pub fn remove_builders(env: &ToolEnv, bins: &Binaries) {
    succeeds(&mut env.buildx(&["rm", "--force", BUILDX_BUILDER]));
    succeeds(&mut env.brix(bins, &["rm", "--force", BRIX_BUILDER]));
    // A store deleted by hand can leave the container behind.
    succeeds(Command::new("docker").args(["rm", "--force", "--volumes", CONTAINER]));
    succeeds(Command::new("docker").args([
        "volume",
        "rm",
        "--force",
        &format!("{CONTAINER}_state"),
    ]));
}

/// Empties the daemon's build cache (`buildctl prune --all` in its container), then makes
/// the kernel forget what the prune freed, and reads the folders `warm` (what the next run
/// sends) back into the page cache.
///
/// Why the kernel's caches: on an ext4 without a journal (these machines' root filesystem),
/// the inode allocator skips every inode freed in the last minutes whose inode-table block is
/// still cached, so the tens of thousands of files a prune deletes make each file the next
/// build creates scan far: measured here, the daemon's context load took 13.5 s right after
/// the prune and 3.5 s after dropping the caches, for either tool. That cost is the daemon's
/// and the harness's own doing (no user prunes seconds before every build), so the cold
/// cases measure from the state a fresh builder is in. Without root (no
/// `/proc/sys/vm/drop_caches`), a warning says the numbers carry that cost.
pub fn prune_cache(warm: &[PathBuf]) -> Result<()> {
    output(Command::new("docker").args(["exec", CONTAINER, "buildctl", "prune", "--all"]))
        .context("pruning the bench daemon's build cache")?;
    // `sync` first: only clean blocks can be dropped.
    output(&mut Command::new("sync")).context("running sync after the prune")?;
    if let Err(err) = std::fs::write("/proc/sys/vm/drop_caches", "3\n") {
        eprintln!(
            "[bench]   warning: cannot drop the kernel's caches after the prune ({err}); \
             cold runs include the filesystem's cost of reusing the pruned inodes"
        );
        return Ok(());
    }
    for dir in warm.iter().filter(|d| d.exists()) {
        read_tree(dir)
            .with_context(|| format!("reading {} back into the page cache", dir.display()))?;
    }
    Ok(())
}

/// Reads every file under `dir`, so the next run finds them in the page cache.
fn read_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            read_tree(&entry.path())?;
        } else if kind.is_file() {
            std::io::copy(
                &mut std::fs::File::open(entry.path())?,
                &mut std::io::sink(),
            )?;
        }
    }
    Ok(())
}

/// Runs `cargo xtask e2e --setup-only` (dockerd, registry, busybox, BuildKit image, QEMU) by
/// re-running this binary, so the bench starts from the same environment as the tests.
pub fn e2e_setup() -> Result<()> {
    let exe = std::env::current_exe().context("locating the running xtask binary")?;
    let status = Command::new(exe)
        .args(["e2e", "--setup-only"])
        .status()
        .context("running xtask e2e --setup-only")?;
    if !status.success() {
        bail!("xtask e2e --setup-only failed ({status})");
    }
    Ok(())
}

/// A blob's data file in a registry's storage (`…/docker/registry/v2`).
pub fn blob_data_path(storage: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(
        storage
            .join("blobs/sha256")
            .join(hex.get(..2)?)
            .join(hex)
            .join("data"),
    )
}

/// `<target>/e2e/registry/data/docker/registry/v2`.
pub fn registry_storage(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("registry/data/docker/registry/v2")
}

/// Removes a pushed repository and its layer blobs from a registry's storage `storage`
/// (`…/docker/registry/v2`), so a long bench does not fill the disk. Only digests the bench
/// made from fresh random bytes are removed; nothing else can refer to them.
pub fn forget_pushed_in(storage: &Path, repository: &str, layer_digests: &[String]) {
    let _ = std::fs::remove_dir_all(storage.join("repositories").join(repository));
    for digest in layer_digests {
        if let Some(data) = blob_data_path(storage, digest)
            && let Some(dir) = data.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts an `ssh-agent` (OpenSSH's, from the e2e packages) on `socket` unless one answers
/// there; it holds no keys: `--ssh default` only needs an agent to forward.
pub fn ensure_ssh_agent(socket: &Path) -> Result<()> {
    let alive = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        // 0: keys listed, 1: no keys; 2: no agent.
        .is_ok_and(|s| matches!(s.code(), Some(0 | 1)));
    if alive {
        return Ok(());
    }
    if socket.exists() {
        std::fs::remove_file(socket)
            .with_context(|| format!("removing the stale agent socket {}", socket.display()))?;
    }
    // ssh-agent forks into the background and exits once the socket is bound.
    let status = Command::new("ssh-agent")
        .arg("-a")
        .arg(socket)
        .stdout(std::process::Stdio::null())
        .status()
        .context(
            "starting ssh-agent (openssh-client; `cargo xtask e2e --setup-only` installs it)",
        )?;
    anyhow::ensure!(
        status.success(),
        "ssh-agent -a {} failed ({status})",
        socket.display()
    );
    Ok(())
}
