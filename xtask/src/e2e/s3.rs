//! Step 11: an S3-compatible server for the `s3` cache backend's tests: gofakes3
//! (`github.com/johannesboyne/gofakes3`, v1.2.0 from the Go module proxy; MinIO's server is far
//! larger to build), on 127.0.0.1:9000 with buckets on disk under `target/e2e/s3/data` and
//! created on first use. It accepts any credentials (it does not check signatures): the tests
//! check what travels, not AWS's auth.

use super::process;
use super::{Workspace, go_toolchain};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Where the server listens.
pub const S3_ADDR: &str = "127.0.0.1:9000";
/// The module and version built.
const MODULE: &str = "github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0";

/// The built server.
fn binary(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("s3").join("bin").join("gofakes3")
}

/// Builds the server once and starts it unless something already answers on [`S3_ADDR`].
pub fn ensure(ws: &Workspace) -> Result<String> {
    if super::registry::http_status(S3_ADDR, "/").is_some() {
        return Ok(format!("already running on {S3_ADDR}"));
    }
    let dir = ws.e2e_dir.join("s3");
    let bin = binary(ws);
    let mut built = String::new();
    if !bin.is_file() {
        let go = go_toolchain::go_binary(ws)?;
        let bin_dir = dir.join("bin");
        std::fs::create_dir_all(&bin_dir)?;
        let log = dir.join("go-install.log");
        process::logged(
            Command::new(&go)
                .env("GOBIN", &bin_dir)
                .env("CGO_ENABLED", "0")
                .args(["install", MODULE]),
            &log,
        )
        .context("building gofakes3 from the Go module proxy (`go env GOPROXY`)")?;
        built = format!("built {MODULE}, ");
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let log = dir.join("gofakes3.log");
    let mut serve = Command::new(&bin);
    serve
        .args([
            "-backend",
            "fs",
            "-fs.create",
            "-autobucket",
            "-host",
            S3_ADDR,
        ])
        .arg("-fs.path")
        .arg(&data);
    let mut daemon = process::spawn_detached(&serve, &log)?;
    process::wait_until(
        "the S3 server",
        &mut daemon,
        Duration::from_secs(30),
        &log,
        || super::registry::http_status(S3_ADDR, "/").is_some(),
    )?;
    Ok(format!(
        "{built}started on {S3_ADDR}, buckets under {}, log: {}",
        ws.display(&data),
        ws.display(&log)
    ))
}

/// Whether the server is up (for `--no-setup`: the tests that need it are told so).
pub fn running() -> bool {
    super::registry::http_status(S3_ADDR, "/").is_some()
}
