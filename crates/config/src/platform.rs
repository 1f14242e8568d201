//! The OCI platform type shared by every brix crate, with containerd's normalization rules.

use std::fmt;
use std::str::FromStr;

/// Architectures brix accepts when parsing a platform (Go's `GOARCH` list, as containerd).
pub const KNOWN_ARCHITECTURES: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// Operating systems brix accepts (Go's `GOOS` list).
pub const KNOWN_OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Empty input, too many `/` parts, or characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")]
    Format(String),
    /// The architecture is not one brix knows.
    #[error("unknown architecture {arch:?} in platform {input:?}; known architectures: {known}")]
    UnknownArchitecture {
        /// The whole input.
        input: String,
        /// The architecture part.
        arch: String,
        /// Comma-separated list of known architectures.
        known: String,
    },
    /// The operating system is not one brix knows.
    #[error("unknown operating system {os:?} in platform {input:?}; known: {known}")]
    UnknownOs {
        /// The whole input.
        input: String,
        /// The OS part.
        os: String,
        /// Comma-separated list of known operating systems.
        known: String,
    },
}

/// An OCI platform. Serializes as the OCI object buildx stores
/// (`{"architecture":"arm64","os":"linux"}`); displays as `linux/arm64`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    /// CPU architecture, normalized (`amd64`, `arm64`, `arm`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// OS version (Windows only), kept for OCI round-trips.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features, kept for OCI round-trips.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// Architecture variant (`v7`, `v8`, `v2`...), empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// A platform from already-normalized parts.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.to_string(),
        }
    }

    /// Parses and normalizes a platform specifier as containerd does: `arm64` and `aarch64`
    /// become `linux/arm64`, `linux/arm` becomes `linux/arm/v7`, `armhf` is `linux/arm/v7`,
    /// `x86_64` is `linux/amd64`, `linux/arm64/v8` is `linux/arm64`, and `local` is the host.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        let trimmed = input.trim();
        if trimmed.eq_ignore_ascii_case("local") {
            return Ok(Self::host());
        }
        let parts: Vec<&str> = trimmed.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        if parts.len() > 3 || !parts.iter().all(valid_part) {
            return Err(PlatformError::Format(input.to_string()));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let host = Self::host();
        let (os, arch, variant) = match lower.as_slice() {
            [one] => {
                let os = normalize_os(one);
                if KNOWN_OSES.contains(&os.as_str()) {
                    (os, host.architecture.clone(), host.variant.clone())
                } else {
                    (host.os.clone(), one.clone(), String::new())
                }
            }
            // `amd64/v2`, `arm/v7`: an arch/variant pair on the host OS (buildx accepts these).
            [arch, variant]
                if !KNOWN_OSES.contains(&normalize_os(arch).as_str())
                    && KNOWN_ARCHITECTURES.contains(&normalize_arch(arch, "").0.as_str()) =>
            {
                (host.os.clone(), arch.clone(), variant.clone())
            }
            [os, arch] => (normalize_os(os), arch.clone(), String::new()),
            [os, arch, variant] => (normalize_os(os), arch.clone(), variant.clone()),
            _ => return Err(PlatformError::Format(input.to_string())),
        };
        if !KNOWN_OSES.contains(&os.as_str()) {
            return Err(PlatformError::UnknownOs {
                input: input.to_string(),
                os,
                known: KNOWN_OSES.join(", "),
            });
        }
        let (arch, variant) = normalize_arch(&arch, &variant);
        if !KNOWN_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(PlatformError::UnknownArchitecture {
                input: input.to_string(),
                arch,
                known: KNOWN_ARCHITECTURES.join(", "),
            });
        }
        Ok(Platform::new(&os, &arch, &variant))
    }

    /// Parses a comma-separated list (`linux/amd64,linux/arm64`), as `--platform` takes it.
    pub fn parse_list(input: &str) -> Result<Vec<Self>, PlatformError> {
        input
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect()
    }

    /// The platform of the machine brix runs on (what `local` means).
    pub fn host() -> Self {
        let os = normalize_os(std::env::consts::OS);
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
            "powerpc64" => ("ppc64", ""),
            "loongarch64" => ("loong64", ""),
            other => (other, ""),
        };
        Platform::new(&os, arch, variant)
    }

    /// containerd's `Normalize` over parts that need not be known (`foo/bar` stays as it is):
    /// `aarch64` becomes `arm64`, `arm` gets `v7`, `arm64/v8` drops its variant, `macOS`
    /// becomes `darwin`, as in [`Platform::parse`].
    pub fn normalized(os: &str, architecture: &str, variant: &str) -> Self {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform::new(&normalize_os(os), &architecture, &variant)
    }

    /// The same platform with its variant dropped (`linux/arm/v7` -> `linux/arm`).
    pub fn without_variant(&self) -> Self {
        Platform::new(&self.os, &self.architecture, "")
    }
}

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".to_string()
    } else {
        os
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = if variant == "8" || variant == "v8" {
                String::new()
            } else {
                variant
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        match Platform::parse(s) {
            Ok(p) => p.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(p("linux/arm64"), "linux/arm64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/7"), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/amd64/v1"), "linux/amd64");
        assert_eq!(p("linux/amd64/v2"), "linux/amd64/v2");
        assert_eq!(p("Linux/AMD64"), "linux/amd64");
        assert_eq!(p("linux/i386"), "linux/386");
        assert_eq!(p("windows/amd64"), "windows/amd64");
    }

    #[test]
    fn single_component_uses_host_defaults() {
        // The host OS is linux on every machine brix targets; the arch comes from the input.
        if std::env::consts::OS == "linux" {
            assert_eq!(p("arm64"), "linux/arm64");
            assert_eq!(p("aarch64"), "linux/arm64");
            assert_eq!(p("x86_64"), "linux/amd64");
            assert_eq!(p("armhf"), "linux/arm/v7");
            assert_eq!(p("amd64"), "linux/amd64");
            assert_eq!(p("amd64/v2"), "linux/amd64/v2");
            assert_eq!(p("arm/v6"), "linux/arm/v6");
            assert_eq!(p("aarch64/v8"), "linux/arm64");
        }
        assert_eq!(Platform::parse("local"), Ok(Platform::host()));
        assert_eq!(Platform::parse("linux").map(|p| p.os), Ok("linux".into()));
    }

    #[test]
    fn rejects_unknown() {
        let e = p("linux/m68k");
        assert!(e.contains("unknown architecture \"m68k\""), "{e}");
        assert!(e.contains("arm64"), "lists the known ones: {e}");
        assert!(p("plan10/amd64").contains("unknown operating system"));
        assert!(p("").starts_with("error: invalid platform"));
        assert!(p("linux/amd64/v2/x").starts_with("error: invalid platform"));
        assert!(p("linux//amd64").starts_with("error: invalid platform"));
        assert!(p("linux/am d64").starts_with("error: invalid platform"));
    }

    #[test]
    fn normalized_keeps_unknown_parts() {
        for ((os, arch, variant), want) in [
            (("Linux", "AArch64", "8"), "linux/arm64"),
            (("linux", "arm", ""), "linux/arm/v7"),
            (("macos", "amd64", "v1"), "darwin/amd64"),
            (("foo", "bar", ""), "foo/bar"),
        ] {
            assert_eq!(Platform::normalized(os, arch, variant).to_string(), want);
        }
    }

    #[test]
    fn serde_is_the_oci_object() {
        let plat = Platform::parse("linux/arm64").expect("valid");
        let json = serde_json::to_string(&plat).expect("serialize");
        assert_eq!(json, r#"{"architecture":"arm64","os":"linux"}"#);
        let arm = Platform::parse("linux/arm/v7").expect("valid");
        assert_eq!(
            serde_json::to_string(&arm).expect("serialize"),
            r#"{"architecture":"arm","os":"linux","variant":"v7"}"#
        );
        let back: Platform =
            serde_json::from_str(r#"{"architecture":"arm","os":"linux","variant":"v7"}"#)
                .expect("parse");
        assert_eq!(back, arm);
        assert_eq!(
            Platform::parse_list("linux/amd64, linux/arm64").map(|v| v.len()),
            Ok(2)
        );
    }
}
