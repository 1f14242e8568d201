//! Validation of a buildkitd.toml before anything is created from it.

use std::path::Path;

use crate::DriverError;

/// Checks that `text` (read from `path`) is a valid buildkitd.toml; the error names the file
/// with line and column.
pub fn validate(path: &Path, text: &str) -> Result<(), DriverError> {
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let (line, col) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                    (line, col)
                })
                .unwrap_or((0, 0));
            Err(DriverError::Config(format!(
                "invalid buildkitd config {}:{line}:{col}: {}",
                path.display(),
                e.message()
            )))
        }
    }
}
