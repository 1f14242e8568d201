//! A Go toolchain for building BuildKit. The machines normally have one (go1.26 under
//! /usr/local/go); where none is found, a bootstrap fetches one through the two sources the
//! machines can reach: Debian's Go 1.19 (`apt-get download`, unpacked, not installed) only to
//! run `go mod download golang.org/toolchain@...` from the Go module proxy, which is how Go
//! itself distributes toolchains.

use super::Workspace;
use super::process::{self, output};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain the bootstrap fetches: the `go` line of the BuildKit wrapper's go.mod.
const BOOTSTRAP_GO_VERSION: &str = "go1.26.8";
/// Debian's Go, used only to download [`BOOTSTRAP_GO_VERSION`].
const DEBIAN_GO: &str = "1.19";

/// A `go` that can build the wrapper module: one on PATH or in /usr/local/go that is at
/// least Go 1.21 (older ones cannot switch toolchains by themselves), else the bootstrapped
/// one under `target/e2e/go/`.
pub fn go_binary(ws: &Workspace) -> Result<PathBuf> {
    let candidates = [
        process::find_on_path("go"),
        Some(PathBuf::from("/usr/local/go/bin/go")),
    ];
    for go in candidates.into_iter().flatten() {
        if go.is_file() && can_switch_toolchains(&go) {
            return Ok(go);
        }
    }
    let root = ws.e2e_dir.join("go").join(BOOTSTRAP_GO_VERSION);
    let go = root.join("bin/go");
    if !go.is_file() {
        bootstrap(ws, &root)?;
    }
    Ok(go)
}

/// Whether `go version` is 1.21 or newer, from which on Go fetches the toolchain a go.mod asks
/// for through the module proxy (GOTOOLCHAIN=auto).
fn can_switch_toolchains(go: &Path) -> bool {
    output(Command::new(go).args(["env", "GOVERSION"]))
        .ok()
        .and_then(|version| parse_minor(version.trim()))
        .is_some_and(|minor| minor >= 21)
}

/// The minor version of `go1.X[.Y]`.
fn parse_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("go1.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn bootstrap(ws: &Workspace, root: &Path) -> Result<()> {
    let work = ws.e2e_dir.join("go-bootstrap");
    let log = work.join("bootstrap.log");
    std::fs::create_dir_all(&work)?;
    println!(
        "[e2e]       buildkit: no Go >= 1.21 found; fetching {BOOTSTRAP_GO_VERSION} from the Go module proxy (log: {})",
        ws.display(&log)
    );
    let packages = [
        format!("golang-{DEBIAN_GO}-go"),
        format!("golang-{DEBIAN_GO}-src"),
    ];
    let mut download = Command::new("apt-get");
    download
        .current_dir(&work)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
        .args(&packages);
    if process::logged(&mut download, &log).is_err() {
        // The package lists may be missing on a fresh machine.
        process::logged(Command::new("apt-get").args(["-q", "update"]), &log)?;
        process::logged(&mut download, &log)?;
    }
    let unpacked = work.join("debian-go");
    for entry in std::fs::read_dir(&work)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "deb") {
            output(Command::new("dpkg").arg("-x").arg(&path).arg(&unpacked))?;
        }
    }
    let goroot = unpacked.join(format!("usr/lib/go-{DEBIAN_GO}"));
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let module = format!(
        "golang.org/toolchain@v0.0.1-{BOOTSTRAP_GO_VERSION}.linux-{}",
        arch.trim()
    );
    let json = output(
        Command::new(goroot.join("bin/go"))
            .env("GOROOT", &goroot)
            .env("GOPATH", work.join("gopath"))
            // Writable module cache, so `target/e2e` can be deleted without chmod.
            .env("GOFLAGS", "-modcacherw")
            .args(["mod", "download", "-json", &module]),
    )
    .with_context(|| format!("downloading {module} (is the Go module proxy reachable?)"))?;
    let info: serde_json::Value = serde_json::from_str(&json)?;
    let Some(dir) = info["Dir"].as_str() else {
        bail!("`go mod download {module}` reported no Dir:\n{json}");
    };
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent)?;
    }
    output(Command::new("cp").args(["-r"]).arg(dir).arg(root))?;
    // Module zips carry no permission bits: make the tools executable again.
    output(
        Command::new("sh")
            .arg("-c")
            .arg("chmod -R u+w \"$1\" && chmod +x \"$1\"/bin/* \"$1\"/pkg/tool/*/*")
            .args(["sh"])
            .arg(root),
    )?;
    let version = output(Command::new(root.join("bin/go")).args(["env", "GOVERSION"]))?;
    if version.trim() != BOOTSTRAP_GO_VERSION {
        bail!("the bootstrapped Go reports {version:?}, expected {BOOTSTRAP_GO_VERSION}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_minor;

    #[test]
    fn minor_versions_parse() {
        assert_eq!(parse_minor("go1.26.8"), Some(26));
        assert_eq!(parse_minor("go1.19"), Some(19));
        assert_eq!(parse_minor("go1.21rc2"), Some(21));
        assert_eq!(parse_minor("devel"), None);
    }
}
