//! Step 10: the Node.js packages of the CI client in `tests/ci-client/` (docker/actions-toolkit,
//! the library docker/setup-buildx-action and docker/build-push-action are made of), installed
//! with `npm ci` from the committed `package-lock.json` into `target/e2e/ci-client/`. The tests
//! get its `node_modules` as `BRIX_E2E_CI_CLIENT_MODULES` (`tests/tests/ci_client.rs`).
//!
//! The install is kept while it was made from the lock file in the tree (a stamp holds the
//! lock's sha256); npm's cache sits beside it, so a changed lock downloads only what changed.
//! Install scripts are not run: none of the packages needs one.

use super::Workspace;
use super::process::{self, output};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Node.js the toolkit runs on here (some of its dependencies ask for 22, for code
/// the client never loads).
const NODE_MAJOR_MIN: u32 = 20;
/// The package whose presence says the install is complete.
const TOOLKIT: &str = "@docker/actions-toolkit";

/// Where the client's package.json, lock file, `node_modules` and npm cache are.
fn dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("ci-client")
}

/// The installed `node_modules`, which the script loads the toolkit from.
pub fn node_modules(ws: &Workspace) -> PathBuf {
    dir(ws).join("node_modules")
}

/// The client's sources in the tree: package.json, package-lock.json and the script.
fn source_dir(ws: &Workspace) -> PathBuf {
    ws.root.join("tests").join("ci-client")
}

fn stamp(ws: &Workspace) -> PathBuf {
    dir(ws).join("installed-lock.sha256")
}

/// Whether `node_modules` was installed from the lock file now in the tree.
pub fn installed(ws: &Workspace) -> bool {
    let Ok(lock) = std::fs::read(source_dir(ws).join("package-lock.json")) else {
        return false;
    };
    let stamped = std::fs::read_to_string(stamp(ws)).unwrap_or_default();
    stamped.trim() == sha256_hex(&lock) && toolkit_version(ws).is_some()
}

/// Installs the packages unless they are installed from the current lock file.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let dir = dir(ws);
    if installed(ws) {
        return Ok(format!(
            "{TOOLKIT} {} already installed in {}",
            toolkit_version(ws).unwrap_or_default(),
            ws.display(&dir)
        ));
    }
    require_node()?;
    let source = source_dir(ws);
    let lock = std::fs::read(source.join("package-lock.json"))
        .with_context(|| format!("reading {}/package-lock.json", source.display()))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(stamp(ws));
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file))
            .with_context(|| format!("copying {file} into {}", dir.display()))?;
    }
    process::logged(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--cache",
            ])
            .arg(dir.join("npm-cache"))
            .current_dir(&dir),
        &dir.join("npm.log"),
    )?;
    let Some(version) = toolkit_version(ws) else {
        bail!(
            "`npm ci` succeeded but {} has no {TOOLKIT}",
            ws.display(&node_modules(ws))
        );
    };
    std::fs::write(stamp(ws), sha256_hex(&lock))
        .with_context(|| format!("writing {}", stamp(ws).display()))?;
    Ok(format!(
        "npm ci: {TOOLKIT} {version} and {} packages into {}",
        installed_packages(&node_modules(ws)),
        ws.display(&dir)
    ))
}

/// Fails unless `node` (at least [`NODE_MAJOR_MIN`]) and `npm` are on PATH.
fn require_node() -> Result<()> {
    for tool in ["node", "npm"] {
        if !process::on_path(tool) {
            bail!(
                "`{tool}` is not on PATH: the CI client needs Node.js {NODE_MAJOR_MIN} or newer and npm"
            );
        }
    }
    let version = output(Command::new("node").arg("--version"))?;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= NODE_MAJOR_MIN => Ok(()),
        _ => bail!(
            "node {} is too old: the CI client needs Node.js {NODE_MAJOR_MIN} or newer",
            version.trim()
        ),
    }
}

/// The installed toolkit's version, from its package.json.
fn toolkit_version(ws: &Workspace) -> Option<String> {
    let manifest = node_modules(ws).join(TOOLKIT).join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_string)
}

/// How many packages npm installed (its `node_modules/.package-lock.json`).
fn installed_packages(node_modules: &Path) -> usize {
    std::fs::read_to_string(node_modules.join(".package-lock.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|lock| lock["packages"].as_object().map(|p| p.len()))
        .unwrap_or(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}
