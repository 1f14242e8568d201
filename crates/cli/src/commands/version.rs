//! `brix version`, and `docker buildx version` when brix answers as buildx.

use std::process::ExitCode;

/// brix's own version.
pub const BRIX_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The buildx release whose commands and behaviour brix implements: what brix reports under
/// buildx's names (`docker buildx version`, the `docker-buildx` plugin metadata).
pub const BUILDX_VERSION: &str = "0.29.1";

/// Arguments of `brix version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Report in buildx's layout, under buildx's name: set when brix runs as `docker buildx`
    /// or `buildx`, never a flag.
    #[arg(skip)]
    pub as_buildx: bool,
}

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

/// The line `docker buildx version` prints when brix is buildx: buildx's three fields
/// (package, version, revision), with brix's version as the revision,
/// `github.com/docker/buildx v0.29.1 brix-v<version>[-<git rev>]`. Parsers of buildx's line
/// read the version from the second field, or (docker/actions-toolkit) from the first
/// whitespace followed by `v` and digits and dots, and so get 0.29.1.
fn buildx_version_line(version: &str, rev: Option<&str>) -> String {
    let revision = match rev.map(str::trim).filter(|r| !r.is_empty()) {
        Some(rev) => format!("brix-v{version}-{rev}"),
        None => format!("brix-v{version}"),
    };
    format!("github.com/docker/buildx v{BUILDX_VERSION} {revision}")
}

/// Prints the version the way `docker buildx version` does: name, version, revision.
pub fn run(args: VersionArgs) -> anyhow::Result<ExitCode> {
    if args.as_buildx {
        println!("{}", buildx_version_line(BRIX_VERSION, GIT_REV));
    } else {
        println!("{}", version_line(BRIX_VERSION, GIT_REV));
    }
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

    #[test]
    fn as_buildx_the_version_is_buildx_s_and_brix_is_the_revision() {
        assert_eq!(
            buildx_version_line("0.1.0", Some("3019581")),
            "github.com/docker/buildx v0.29.1 brix-v0.1.0-3019581"
        );
        assert_eq!(
            buildx_version_line("0.1.0", None),
            "github.com/docker/buildx v0.29.1 brix-v0.1.0"
        );
        let line = buildx_version_line("0.1.0", Some("3019581"));
        assert_eq!(line.split_whitespace().nth(1), Some("v0.29.1"));
    }
}
