//! brix-config: the `buildkitd.toml` model, BuildKit's disk-space and duration units, the
//! effective garbage-collection policy, lints, and the platform type shared by all brix crates.
//!
//! ```
//! use brix_config::{ConfigFile, WorkerKind, effective_gc_policy, format_gc_policy};
//!
//! let file = ConfigFile::parse("[worker.oci]\ngc = true\ngckeepstorage = 20000\n", "buildkitd.toml")?;
//! // 20000 in the file is bytes, not MB: brix says so.
//! assert!(file.warnings.iter().any(|w| w.code == "BKC001"));
//! let rules = effective_gc_policy(&file.config.gc_config(WorkerKind::Oci), Some(270_553_174_016));
//! assert_eq!(rules[1].reserved_space, 20000);
//! assert!(format_gc_policy(&rules).contains("Reserved Space: 19.53KiB"));
//! # Ok::<(), brix_config::ConfigError>(())
//! ```

mod diagnostic;
mod flags;
mod gc;
mod model;
mod parse;
mod platform;
mod units;

use std::path::Path;

pub use diagnostic::{Diagnostic, Severity, codes, line_col};
pub use flags::{BuildkitdFlags, FlagError, parse_keepstorage, shell_split};
pub use gc::{GcRule, effective_gc_policy, format_gc_policy};
pub use model::{
    BuildkitdConfig, CdiConfig, ContainerdRuntime, ContainerdWorkerConfig, DnsConfig,
    FrontendConfig, GcConfig, GcPolicyRule, GrpcConfig, HistoryConfig, KeyPair, LogConfig,
    NetworkConfig, OciWorkerConfig, OtelConfig, RegistryConfig, SystemConfig, TlsConfig,
    WorkerConfigs, WorkerKind,
};
pub use platform::{KNOWN_ARCHITECTURES, KNOWN_OSES, Platform, PlatformError};
pub use units::{
    DEFAULT_CAP_BYTES, DiskSpace, Duration, Spelling, UnitError, format_bytes_binary,
    format_bytes_decimal, format_go_duration, parse_go_duration, ram_in_bytes,
};

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file has errors; the first is shown, all are in `diagnostics` (warnings included).
    #[error("{}", first_error(.diagnostics))]
    Invalid {
        /// Every finding, sorted by position.
        diagnostics: Vec<Diagnostic>,
    },
    /// A `--buildkitd-flags` string could not be read.
    #[error(transparent)]
    Flags(#[from] FlagError),
}

fn first_error(diags: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    match errors.as_slice() {
        [] => "invalid configuration".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!(
            "{first}\n(and {} more error(s); run `brix config lint` to see all)",
            rest.len()
        ),
    }
}

/// A parsed `buildkitd.toml` and the warnings found while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// The model.
    pub config: BuildkitdConfig,
    /// Lint warnings (never errors: a file with errors does not parse).
    pub warnings: Vec<Diagnostic>,
}

impl ConfigFile {
    /// Parses TOML text; `file` names it in messages.
    pub fn parse(src: &str, file: &str) -> Result<Self, ConfigError> {
        let (config, diagnostics) = parse::parse(src, file);
        match config {
            Some(config) => Ok(ConfigFile {
                config,
                warnings: diagnostics,
            }),
            None => Err(ConfigError::Invalid { diagnostics }),
        }
    }

    /// Parses raw bytes (refusing binary or non-UTF-8 input with a located error).
    pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Self, ConfigError> {
        match decode(bytes, file) {
            Ok(src) => Self::parse(src, file),
            Err(d) => Err(ConfigError::Invalid {
                diagnostics: vec![*d],
            }),
        }
    }

    /// Reads and parses a file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        Self::parse_bytes(&bytes, &path.display().to_string())
    }
}

/// Every diagnostic (errors and warnings) for TOML text, sorted by position.
pub fn lint_str(src: &str, file: &str) -> Vec<Diagnostic> {
    parse::parse(src, file).1
}

/// Every diagnostic for raw bytes (non-UTF-8 input gives one `BKC105` error).
pub fn lint_bytes(bytes: &[u8], file: &str) -> Vec<Diagnostic> {
    match decode(bytes, file) {
        Ok(src) => lint_str(src, file),
        Err(d) => vec![*d],
    }
}

/// Reads a file and lints it.
pub fn lint_file(path: impl AsRef<Path>) -> Result<Vec<Diagnostic>, ConfigError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    Ok(lint_bytes(&bytes, &path.display().to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn decode<'b>(bytes: &'b [u8], file: &str) -> Result<&'b str, Box<Diagnostic>> {
    let not_text = |offset: usize, what: &str| {
        let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or("");
        let (line, column) = line_col(valid, valid.len());
        Box::new(Diagnostic {
            code: codes::NOT_TEXT,
            severity: Severity::Error,
            file: file.to_string(),
            line,
            column,
            key: String::new(),
            message: format!("{what}; buildkitd.toml must be UTF-8 text"),
            fix: None,
        })
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => match s.find('\0') {
            Some(i) => Err(not_text(
                i,
                "the file contains a NUL byte (is it a binary file?)",
            )),
            None => Ok(s),
        },
        Err(e) => Err(not_text(e.valid_up_to(), "the file is not valid UTF-8")),
    }
}
