//! Diagnostics (errors and lint warnings) with stable codes and file:line:column locations.

use std::fmt;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// BuildKit accepts the file, but it probably does not do what the author meant.
    Warning,
    /// BuildKit (or brix) refuses the file.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Stable diagnostic codes. Warnings are `BKC0xx`, errors `BKC1xx`.
pub mod codes {
    /// A disk size written as a bare integer below 1 MiB: bytes to BuildKit, maybe meant as MB.
    pub const SMALL_INTEGER_DISK_SIZE: &str = "BKC001";
    /// `gckeepstorage` is deprecated.
    pub const DEPRECATED_GCKEEPSTORAGE: &str = "BKC002";
    /// `keepBytes` is deprecated.
    pub const DEPRECATED_KEEPBYTES: &str = "BKC003";
    /// Top-level `debug` / `trace` are deprecated.
    pub const DEPRECATED_DEBUG_TRACE: &str = "BKC004";
    /// A key BuildKit does not know (ignored by the daemon).
    pub const UNKNOWN_KEY: &str = "BKC005";
    /// A section BuildKit does not know (ignored by the daemon).
    pub const UNKNOWN_SECTION: &str = "BKC006";
    /// `http` and `insecure` both set on one registry.
    pub const HTTP_AND_INSECURE: &str = "BKC007";
    /// `insecure = true` on a localhost registry that most likely speaks plain HTTP.
    pub const INSECURE_ON_LOCAL_HTTP: &str = "BKC008";
    /// GC policies or limits set while `gc = false`.
    pub const GC_DISABLED_WITH_POLICY: &str = "BKC009";
    /// Both a deprecated key and its replacement are set; the deprecated one is ignored.
    pub const SHADOWED_DEPRECATED_KEY: &str = "BKC010";
    /// An `insecure-entitlements` value BuildKit does not know.
    pub const UNKNOWN_ENTITLEMENT: &str = "BKC011";
    /// The file is not valid TOML (syntax, duplicate table, truncation).
    pub const TOML_SYNTAX: &str = "BKC100";
    /// A value has the wrong TOML type.
    pub const WRONG_TYPE: &str = "BKC101";
    /// A disk size BuildKit cannot read, is negative, or a percentage over 100.
    pub const INVALID_DISK_SIZE: &str = "BKC102";
    /// A duration BuildKit cannot read, or a negative one.
    pub const INVALID_DURATION: &str = "BKC103";
    /// A platform that does not parse.
    pub const INVALID_PLATFORM: &str = "BKC104";
    /// The file is not UTF-8 text.
    pub const NOT_TEXT: &str = "BKC105";
    /// A value BuildKit refuses for another reason (e.g. `labels` that are not strings).
    pub const INVALID_VALUE: &str = "BKC106";
}

/// One finding about a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code (`BKC001`...), see [`codes`].
    pub code: &'static str,
    /// Warning or error.
    pub severity: Severity,
    /// The file (or `<flags>` / `<input>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted key path, e.g. `worker.oci.gckeepstorage`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead, when there is a concrete suggestion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: ",
            self.file, self.line, self.column, self.severity, self.code
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

/// Converts a byte offset into a 1-based (line, column-in-characters) pair.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = src[line_start..offset].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // 'é' is two bytes; the space after it is the 3rd character.
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 999), (3, 1));
    }
}
