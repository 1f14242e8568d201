//! `brix version`.

use std::process::ExitCode;

/// Arguments of `brix version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {}

/// Prints the version the way `docker buildx version` does: name, version, revision.
pub fn run(_args: VersionArgs) -> anyhow::Result<ExitCode> {
    println!("brix {}", env!("CARGO_PKG_VERSION"));
    Ok(ExitCode::SUCCESS)
}
