//! `brix version`.

use std::process::ExitCode;

/// Arguments of `brix version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {}

/// The git revision baked in at build time (`BRIX_GIT_REV=$(git rev-parse --short HEAD)`), if any.
const GIT_REV: Option<&str> = option_env!("BRIX_GIT_REV");

/// The line `brix version` prints: `brix v<version> [<git rev>]`, shaped like
/// `docker buildx version` (`github.com/docker/buildx v0.29.1 <rev>`).
fn version_line(version: &str, rev: Option<&str>) -> String {
    match rev.map(str::trim).filter(|r| !r.is_empty()) {
        Some(rev) => format!("brix v{version} {rev}"),
        None => format!("brix v{version}"),
    }
}

/// Prints the version the way `docker buildx version` does: name, version, revision.
pub fn run(_args: VersionArgs) -> anyhow::Result<ExitCode> {
    println!("{}", version_line(env!("CARGO_PKG_VERSION"), GIT_REV));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_like_buildx() {
        assert_eq!(
            version_line("0.1.0", Some("3019581")),
            "brix v0.1.0 3019581"
        );
        assert_eq!(version_line("0.1.0", None), "brix v0.1.0");
        assert_eq!(version_line("0.1.0", Some(" ")), "brix v0.1.0");
    }
}
