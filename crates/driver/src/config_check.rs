//! Validation of a buildkitd.toml before anything is created from it, with brix-config.

use std::path::Path;

use crate::DriverError;

/// Checks that `text` (read from `path`) is a valid buildkitd.toml; the error names the file
/// with line and column, as `brix config lint` does.
pub fn validate(path: &Path, text: &str) -> Result<(), DriverError> {
    brix_config::ConfigFile::parse(text, &path.display().to_string())
        .map(|_| ())
        .map_err(|e| DriverError::Config(format!("invalid buildkitd config: {e}")))
}

/// The lint warnings for the file at `path` (empty if it cannot be read; [`validate`] has
/// already reported errors).
pub fn warnings(path: &Path) -> Vec<String> {
    brix_config::ConfigFile::load(path)
        .map(|f| f.warnings.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
