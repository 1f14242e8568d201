//! Step 1: Debian packages (docker.io, docker-registry, qemu-user-static, skopeo, socat, tmux,
//! openssh-client, openssh-server, git, pigz, xz-utils, nginx, containernetworking-plugins,
//! gcc)
//! and the busybox-static binaries for amd64 and arm64 that the base images are made of.

use super::Workspace;
use super::process::{self, output};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages installed system-wide. runc and containerd come with docker.io.
/// socat: `buildctl` reaches `brix dial-stdio` through a socket socat serves; tmux: the tty
/// progress display is checked in a real terminal; openssh-client: `--ssh` runs ssh-agent over
/// key files, and its tests make keys and an agent of their own; git, openssh-client, pigz,
/// xz-utils: copied into the BuildKit image, as the official one carries them; git,
/// openssh-server: the `git-server` step's servers (its sshd runs on its own config, the
/// package's service is never started); openssl: the certificates of dockerd 28's TLS
/// listener; golang-docker-credential-helpers, pass, gnupg: a real credential helper
/// (`docker-credential-pass` over a throwaway gpg key) for the registry tests; nginx: the
/// `fault-proxy` step's HTTP fault injector (run on its own config, the package's service is
/// never started); containernetworking-plugins, gcc, libc6-dev: the `kubernetes` step's pod
/// network and its pause binary (`gcc -static`).
const PACKAGES: &[&str] = &[
    "openssh-client",
    "openssh-server",
    "git",
    "pigz",
    "xz-utils",
    "docker.io",
    "docker-registry",
    "qemu-user-static",
    "skopeo",
    "socat",
    "tmux",
    "openssl",
    "golang-docker-credential-helpers",
    "pass",
    "gnupg",
    "nginx",
    "containernetworking-plugins",
    "gcc",
    "libc6-dev",
];

/// Architectures the busybox base image is published for (Debian names).
pub const BUSYBOX_ARCHES: &[&str] = &["amd64", "arm64"];

/// Where `busybox-static:<arch>` is unpacked (`dpkg -x`); the binary is `<dir>/bin/busybox`.
pub fn busybox_dir(ws: &Workspace, arch: &str) -> PathBuf {
    ws.e2e_dir.join("busybox-static").join(arch)
}

/// Installs what is missing; checks first so that a warm run runs no apt at all.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let missing = missing_packages()?;
    let missing_busybox: Vec<&str> = BUSYBOX_ARCHES
        .iter()
        .copied()
        .filter(|arch| !busybox_dir(ws, arch).join("bin/busybox").is_file())
        .collect();
    if missing.is_empty() && missing_busybox.is_empty() {
        return Ok(format!(
            "{} and busybox-static for {} already present",
            PACKAGES.join(", "),
            BUSYBOX_ARCHES.join(", ")
        ));
    }

    let log = ws.e2e_dir.join("apt.log");
    let foreign = output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if !missing_busybox.is_empty() && !foreign.lines().any(|arch| arch.trim() == "arm64") {
        // Needed to download busybox-static:arm64; nothing arm64 gets installed.
        output(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    }
    with_retry(|| process::logged(apt().arg("update"), &log))
        .context("apt-get update failed (are the Debian mirrors reachable?)")?;

    if !missing.is_empty() {
        // Without systemd the maintainer scripts would try to start docker and the registry
        // through init scripts; a policy-rc.d that says "no" keeps them from doing that, since
        // the later steps start both daemons with the project's own settings.
        let _guard = PolicyRcGuard::install()?;
        with_retry(|| {
            process::logged(
                apt()
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(&missing),
                &log,
            )
        })
        .with_context(|| format!("installing {}", missing.join(", ")))?;
    }

    for arch in &missing_busybox {
        fetch_busybox(ws, arch, &log)?;
    }

    let mut done = Vec::new();
    if !missing.is_empty() {
        done.push(format!("installed {}", missing.join(", ")));
    }
    if !missing_busybox.is_empty() {
        done.push(format!(
            "unpacked busybox-static for {} into {}",
            missing_busybox.join(", "),
            ws.display(&ws.e2e_dir.join("busybox-static"))
        ));
    }
    Ok(format!("{} (log: {})", done.join("; "), ws.display(&log)))
}

/// The packages from [`PACKAGES`] that dpkg does not report as installed.
fn missing_packages() -> Result<Vec<String>> {
    // dpkg-query exits non-zero when a package is unknown, but still prints the known ones.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Status}\n"])
        .args(PACKAGES)
        .output()
        .context("could not run dpkg-query (is this Debian?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(PACKAGES
        .iter()
        .filter(|name| {
            !text
                .lines()
                .any(|line| line.split_whitespace().collect::<Vec<_>>() == [**name, "installed"])
        })
        .map(|name| name.to_string())
        .collect())
}

/// `apt-get download busybox-static:<arch>` and `dpkg -x` it into [`busybox_dir`].
fn fetch_busybox(ws: &Workspace, arch: &str, log: &Path) -> Result<()> {
    let debs = ws.e2e_dir.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    with_retry(|| {
        process::logged(
            apt()
                // The .deb lands in a root-owned folder the `_apt` user cannot write to.
                .args(["-o", "APT::Sandbox::User=root", "download"])
                .arg(format!("busybox-static:{arch}"))
                .current_dir(&debs),
            log,
        )
    })
    .with_context(|| format!("downloading busybox-static:{arch}"))?;
    let deb = std::fs::read_dir(&debs)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("busybox-static_") && n.ends_with(&format!("_{arch}.deb"))
            })
        })
        .max()
        .with_context(|| {
            format!(
                "apt-get download left no busybox-static {arch} .deb in {}",
                debs.display()
            )
        })?;
    let dir = busybox_dir(ws, arch);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    output(Command::new("dpkg").arg("-x").arg(&deb).arg(&dir))?;
    if !dir.join("bin/busybox").is_file() {
        bail!("{} has no bin/busybox", deb.display());
    }
    Ok(())
}

fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "Dpkg::Use-Pty=0"]);
    cmd
}

/// Mirrors hiccup now and then; one retry after a pause covers that.
pub(crate) fn with_retry(mut attempt: impl FnMut() -> Result<()>) -> Result<()> {
    match attempt() {
        Ok(()) => Ok(()),
        Err(_) => {
            std::thread::sleep(std::time::Duration::from_secs(3));
            attempt()
        }
    }
}

/// A temporary `/usr/sbin/policy-rc.d` that forbids starting services, removed on drop; left
/// alone when the machine already has one.
struct PolicyRcGuard {
    created: Option<PathBuf>,
}

impl PolicyRcGuard {
    const PATH: &str = "/usr/sbin/policy-rc.d";

    fn install() -> Result<Self> {
        let path = Path::new(Self::PATH);
        if path.exists() {
            return Ok(Self { created: None });
        }
        std::fs::write(
            path,
            "#!/bin/sh\n# written by cargo xtask e2e during apt-get install\nexit 101\n",
        )
        .with_context(|| format!("writing {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            created: Some(path.to_path_buf()),
        })
    }
}

impl Drop for PolicyRcGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.created {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether a command is installed, for steps that need one of the packages.
pub fn require_command(name: &str) -> Result<()> {
    if process::on_path(name) {
        Ok(())
    } else {
        bail!("`{name}` is not installed; run `cargo xtask e2e` without --no-setup to install it")
    }
}
