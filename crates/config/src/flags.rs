//! `--buildkitd-flags`: split like a shell, read the flags that shape the daemon's config, and
//! merge them over a `buildkitd.toml` model the way `buildkitd` does (flags win).
//!
//! Flags brix does not know are kept verbatim in [`BuildkitdFlags::passthrough`]: the daemon
//! receives them anyway, so they are not errors here.

use std::collections::BTreeMap;

use crate::model::{
    BuildkitdConfig, ContainerdWorkerConfig, GcConfig, LogConfig, NetworkConfig, OciWorkerConfig,
};
use crate::platform::Platform;
use crate::units::DiskSpace;

/// Why a flags string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A quote was opened and never closed, or a trailing backslash.
    #[error("cannot split buildkitd flags {input:?}: {reason}")]
    Split {
        /// The whole flags string.
        input: String,
        /// What went wrong.
        reason: String,
    },
    /// A flag that needs a value came last.
    #[error("buildkitd flag --{0} needs a value")]
    MissingValue(String),
    /// A value of the wrong form.
    #[error("invalid value {value:?} for buildkitd flag --{flag}: {reason}")]
    InvalidValue {
        /// Flag name without dashes.
        flag: String,
        /// The value given.
        value: String,
        /// What is expected.
        reason: String,
    },
}

/// Splits `input` into words as a POSIX shell would (single quotes are literal, double quotes
/// allow `\"` and `\\`, a backslash outside quotes escapes the next character).
pub fn shell_split(input: &str) -> Result<Vec<String>, FlagError> {
    let err = |reason: &str| FlagError::Split {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(err("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(err("unterminated double quote")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(err("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err(err("trailing backslash")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

/// Flags `buildkitd` defines, with whether they take a value (urfave/cli semantics: bool flags
/// never consume the next word; `--flag=false` sets them false).
const KNOWN_FLAGS: &[(&str, Kind)] = &[
    ("config", Kind::Value),
    ("root", Kind::Value),
    ("addr", Kind::Value),
    ("group", Kind::Value),
    ("debugaddr", Kind::Value),
    ("log-level", Kind::Value),
    ("log-format", Kind::Value),
    ("debug", Kind::Bool),
    ("trace", Kind::Bool),
    ("allow-insecure-entitlement", Kind::Value),
    ("tlscert", Kind::Value),
    ("tlskey", Kind::Value),
    ("tlscacert", Kind::Value),
    ("rootless", Kind::Bool),
    ("proxy-network", Kind::Bool),
    ("otel-socket-path", Kind::Value),
    ("cdi-disabled", Kind::Bool),
    ("cdi-spec-dir", Kind::Value),
    ("save-cache-debug", Kind::Bool),
    ("oci-worker", Kind::Value),
    ("oci-worker-labels", Kind::Value),
    ("oci-worker-snapshotter", Kind::Value),
    ("oci-worker-platform", Kind::Value),
    ("oci-worker-rootless", Kind::Bool),
    ("oci-worker-no-process-sandbox", Kind::Bool),
    ("oci-worker-gc", Kind::Bool),
    ("oci-worker-gc-keepstorage", Kind::Value),
    ("oci-worker-net", Kind::Value),
    ("oci-cni-config-path", Kind::Value),
    ("oci-cni-binary-dir", Kind::Value),
    ("oci-cni-pool-size", Kind::Value),
    ("oci-worker-binary", Kind::Value),
    ("oci-worker-proxy-snapshotter-path", Kind::Value),
    ("oci-worker-apparmor-profile", Kind::Value),
    ("oci-worker-selinux", Kind::Bool),
    ("oci-max-parallelism", Kind::Value),
    ("containerd-worker", Kind::Value),
    ("containerd-worker-addr", Kind::Value),
    ("containerd-worker-labels", Kind::Value),
    ("containerd-worker-platform", Kind::Value),
    ("containerd-worker-namespace", Kind::Value),
    ("containerd-worker-runtime", Kind::Value),
    ("containerd-worker-snapshotter", Kind::Value),
    ("containerd-worker-rootless", Kind::Bool),
    ("containerd-worker-gc", Kind::Bool),
    ("containerd-worker-gc-keepstorage", Kind::Value),
    ("containerd-worker-net", Kind::Value),
    ("containerd-cni-config-path", Kind::Value),
    ("containerd-cni-binary-dir", Kind::Value),
    ("containerd-cni-pool-size", Kind::Value),
    ("containerd-worker-apparmor-profile", Kind::Value),
    ("containerd-worker-selinux", Kind::Bool),
    ("containerd-max-parallelism", Kind::Value),
];

/// A parsed `--buildkitd-flags` string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildkitdFlags {
    /// Recognized flags in order, as (name without dashes, value; `"true"`/`"false"` for bools).
    pub flags: Vec<(String, String)>,
    /// Words brix does not interpret, passed to the daemon unchanged.
    pub passthrough: Vec<String>,
}

impl BuildkitdFlags {
    /// Splits and parses a flags string such as
    /// `--oci-worker-gc --oci-worker-gc-keepstorage 20000`.
    pub fn parse(input: &str) -> Result<Self, FlagError> {
        let words = shell_split(input)?;
        Self::from_words(&words)
    }

    /// Parses already-split words.
    pub fn from_words(words: &[String]) -> Result<Self, FlagError> {
        let mut out = BuildkitdFlags::default();
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            i += 1;
            let Some(body) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
                out.passthrough.push(word.clone());
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some((_, kind)) = KNOWN_FLAGS.iter().find(|(n, _)| *n == name) else {
                out.passthrough.push(word.clone());
                continue;
            };
            let value = match (kind, inline) {
                (Kind::Bool, Some(v)) => {
                    let b = parse_go_bool(&v).ok_or_else(|| FlagError::InvalidValue {
                        flag: name.into(),
                        value: v.clone(),
                        reason: "expected true or false".into(),
                    })?;
                    b.to_string()
                }
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Value, Some(v)) => v,
                (Kind::Value, None) => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| FlagError::MissingValue(name.into()))?;
                    i += 1;
                    v.clone()
                }
            };
            out.flags.push((name.to_string(), value));
        }
        Ok(out)
    }

    /// The `--config` path, if given.
    pub fn config_path(&self) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == "config")
            .map(|(_, v)| v.as_str())
    }

    /// Applies the flags over `cfg` as `buildkitd` does after loading the file: each flag
    /// that is set overrides the file's value; list flags replace lists, labels merge.
    pub fn apply(&self, cfg: &mut BuildkitdConfig) -> Result<(), FlagError> {
        // Repeatable flags are collected first, since buildkitd reads them as one slice.
        let all = |name: &str| -> Vec<&str> {
            self.flags
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        for (name, value) in &self.flags {
            let b = value == "true";
            match name.as_str() {
                "root" => cfg.root = Some(value.clone()),
                "debug" => cfg.debug = Some(b),
                "trace" => cfg.trace = Some(b),
                "log-level" => {
                    cfg.log.get_or_insert_with(LogConfig::default).level = Some(value.clone())
                }
                "log-format" => {
                    cfg.log.get_or_insert_with(LogConfig::default).format = Some(value.clone())
                }
                "proxy-network" => cfg.proxy_network = Some(b),
                "otel-socket-path" => {
                    cfg.otel.get_or_insert_with(Default::default).socket_path = Some(value.clone())
                }
                "cdi-disabled" => cfg.cdi.get_or_insert_with(Default::default).disabled = Some(b),
                "debugaddr" => {
                    cfg.grpc.get_or_insert_with(Default::default).debug_address =
                        Some(value.clone())
                }
                "tlscert" | "tlskey" | "tlscacert" => {
                    let tls = cfg
                        .grpc
                        .get_or_insert_with(Default::default)
                        .tls
                        .get_or_insert_with(Default::default);
                    let slot = match name.as_str() {
                        "tlscert" => &mut tls.cert,
                        "tlskey" => &mut tls.key,
                        _ => &mut tls.ca,
                    };
                    *slot = Some(value.clone());
                }
                _ => {}
            }
            if let Some(rest) = name.strip_prefix("oci-") {
                let w = cfg.worker.oci.get_or_insert_with(OciWorkerConfig::default);
                apply_worker_flag(rest, name, value, &mut w.gc, &mut w.network)?;
                match rest {
                    "worker" => w.enabled = parse_bool_or_auto(name, value)?,
                    "worker-snapshotter" => w.snapshotter = Some(value.clone()),
                    "worker-rootless" => w.rootless = Some(b),
                    "worker-no-process-sandbox" => w.no_process_sandbox = Some(b),
                    "worker-binary" => w.binary = Some(value.clone()),
                    "worker-proxy-snapshotter-path" => {
                        w.proxy_snapshotter_path = Some(value.clone())
                    }
                    "worker-apparmor-profile" => w.apparmor_profile = Some(value.clone()),
                    "worker-selinux" => w.selinux = Some(b),
                    "max-parallelism" => w.max_parallelism = Some(parse_parallelism(name, value)?),
                    _ => {}
                }
            }
            if let Some(rest) = name.strip_prefix("containerd-") {
                let w = cfg
                    .worker
                    .containerd
                    .get_or_insert_with(ContainerdWorkerConfig::default);
                apply_worker_flag(rest, name, value, &mut w.gc, &mut w.network)?;
                match rest {
                    "worker" => w.enabled = parse_bool_or_auto(name, value)?,
                    "worker-addr" => w.address = Some(value.clone()),
                    "worker-namespace" => w.namespace = Some(value.clone()),
                    "worker-runtime" => {
                        w.runtime.get_or_insert_with(Default::default).name = Some(value.clone())
                    }
                    "worker-snapshotter" => w.snapshotter = Some(value.clone()),
                    "worker-rootless" => w.rootless = Some(b),
                    "worker-apparmor-profile" => w.apparmor_profile = Some(value.clone()),
                    "worker-selinux" => w.selinux = Some(b),
                    "max-parallelism" => w.max_parallelism = Some(parse_parallelism(name, value)?),
                    _ => {}
                }
            }
        }
        let ents = all("allow-insecure-entitlement");
        if !ents.is_empty() {
            cfg.insecure_entitlements = Some(split_slice(&ents));
        }
        let addrs = all("addr");
        if !addrs.is_empty() {
            cfg.grpc.get_or_insert_with(Default::default).address = Some(split_slice(&addrs));
        }
        let specs = all("cdi-spec-dir");
        if !specs.is_empty() {
            cfg.cdi.get_or_insert_with(Default::default).spec_dirs = Some(split_slice(&specs));
        }
        for prefix in ["oci", "containerd"] {
            let platforms = all(&format!("{prefix}-worker-platform"));
            let labels = all(&format!("{prefix}-worker-labels"));
            if platforms.is_empty() && labels.is_empty() {
                continue;
            }
            let parsed_platforms = if platforms.is_empty() {
                None
            } else {
                let mut out = Vec::new();
                for p in split_slice(&platforms) {
                    out.push(Platform::parse(&p).map_err(|e| FlagError::InvalidValue {
                        flag: format!("{prefix}-worker-platform"),
                        value: p.clone(),
                        reason: e.to_string(),
                    })?);
                }
                Some(out)
            };
            let mut label_map = BTreeMap::new();
            for l in split_slice(&labels) {
                let (k, v) = l.split_once('=').ok_or_else(|| FlagError::InvalidValue {
                    flag: format!("{prefix}-worker-labels"),
                    value: l.clone(),
                    reason: "expected key=value".into(),
                })?;
                label_map.insert(k.to_string(), v.to_string());
            }
            let (slot_platforms, slot_labels) = if prefix == "oci" {
                let w = cfg.worker.oci.get_or_insert_with(OciWorkerConfig::default);
                (&mut w.platforms, &mut w.labels)
            } else {
                let w = cfg
                    .worker
                    .containerd
                    .get_or_insert_with(ContainerdWorkerConfig::default);
                (&mut w.platforms, &mut w.labels)
            };
            if parsed_platforms.is_some() {
                *slot_platforms = parsed_platforms;
            }
            if !label_map.is_empty() {
                slot_labels
                    .get_or_insert_with(BTreeMap::new)
                    .extend(label_map);
            }
        }
        Ok(())
    }
}

/// The worker flags the OCI and containerd workers share (`-worker-gc`, `-cni-*`, ...).
fn apply_worker_flag(
    rest: &str,
    name: &str,
    value: &str,
    gc: &mut GcConfig,
    net: &mut NetworkConfig,
) -> Result<(), FlagError> {
    match rest {
        "worker-gc" => gc.gc = Some(value == "true"),
        "worker-gc-keepstorage" => {
            let (reserved, free, max) = parse_keepstorage(name, value)?;
            // buildkitd sets all three worker limits from the flag, clearing the file's.
            gc.reserved_space = reserved;
            gc.min_free_space = free;
            gc.max_used_space = max;
        }
        "worker-net" => net.network_mode = Some(value.to_string()),
        "cni-config-path" => net.cni_config_path = Some(value.to_string()),
        "cni-binary-dir" => net.cni_binary_path = Some(value.to_string()),
        "cni-pool-size" => {
            net.cni_pool_size = Some(value.parse().map_err(|_| FlagError::InvalidValue {
                flag: name.into(),
                value: value.into(),
                reason: "expected an integer".into(),
            })?)
        }
        _ => {}
    }
    Ok(())
}

type Limits = (Option<DiskSpace>, Option<DiskSpace>, Option<DiskSpace>);

/// `stringToGCConfig`: `Reserved[,Free[,Maximum]]`, each an integer number of **MB** (1e6).
pub fn parse_keepstorage(flag: &str, value: &str) -> Result<Limits, FlagError> {
    if value.is_empty() {
        return Ok((None, None, None));
    }
    let invalid = |reason: &str| FlagError::InvalidValue {
        flag: flag.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let mut parts = value.splitn(3, ',');
    let mut next = |what: &str| -> Result<Option<DiskSpace>, FlagError> {
        match parts.next() {
            None => Ok(None),
            Some(p) => {
                let mb: i64 = p.parse().map_err(|_| {
                    invalid(&format!(
                        "{what} must be an integer number of MB (Reserved[,Free[,Maximum]])"
                    ))
                })?;
                if mb < 0 {
                    return Err(invalid("sizes must be zero or more"));
                }
                let bytes = mb
                    .checked_mul(1_000_000)
                    .ok_or_else(|| invalid("too large"))?;
                Ok(Some(DiskSpace::from_bytes(bytes)))
            }
        }
    };
    let reserved = next("reserved space")?;
    let free = next("free space")?;
    let max = next("maximum space")?;
    Ok((reserved, free, max))
}

fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_bool_or_auto(flag: &str, v: &str) -> Result<Option<bool>, FlagError> {
    if v.is_empty() || v.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    parse_go_bool(v)
        .map(Some)
        .ok_or_else(|| FlagError::InvalidValue {
            flag: flag.into(),
            value: v.into(),
            reason: "expected true, false or auto".into(),
        })
}

fn parse_parallelism(flag: &str, v: &str) -> Result<i64, FlagError> {
    if v == "num-cpu" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as i64));
    }
    v.parse().map_err(|_| FlagError::InvalidValue {
        flag: flag.into(),
        value: v.into(),
        reason: "expected a positive integer, 0 for unlimited, or num-cpu".into(),
    })
}

/// urfave/cli string slices also split each value on commas.
fn split_slice(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::effective_gc_policy;
    use crate::model::WorkerKind;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            shell_split(r#"--a 'b c' "d \"e\"" f\ g"#).expect("split"),
            vec!["--a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(shell_split("  ").expect("split"), Vec::<String>::new());
        assert_eq!(shell_split("''").expect("split"), vec![""]);
        assert!(shell_split("'open").is_err());
        assert!(shell_split("\"open").is_err());
        assert!(shell_split("x\\").is_err());
    }

    #[test]
    fn seed_flags_are_megabytes() {
        let flags = BuildkitdFlags::parse("--oci-worker-gc --oci-worker-gc-keepstorage 20000")
            .expect("parse");
        assert!(flags.passthrough.is_empty());
        let mut cfg = BuildkitdConfig::default();
        flags.apply(&mut cfg).expect("apply");
        let rules = effective_gc_policy(&cfg.gc_config(WorkerKind::Oci), None);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[1].reserved_space, 20_000_000_000);
        assert_eq!((rules[1].max_used_space, rules[1].min_free_space), (0, 0));
    }

    #[test]
    fn keepstorage_three_parts() {
        let (r, f, m) =
            parse_keepstorage("oci-worker-gc-keepstorage", "1000,2000,3000").expect("parse");
        assert_eq!(r.map(|d| d.bytes()), Some(1_000_000_000));
        assert_eq!(f.map(|d| d.bytes()), Some(2_000_000_000));
        assert_eq!(m.map(|d| d.bytes()), Some(3_000_000_000));
        assert!(parse_keepstorage("x", "20GB").is_err());
        assert!(parse_keepstorage("x", "1,2,3,4").is_err());
        assert!(parse_keepstorage("x", "-1").is_err());
    }

    #[test]
    fn flags_override_file_and_keep_unknown() {
        let mut cfg = BuildkitdConfig::default();
        cfg.worker.oci = Some(OciWorkerConfig {
            gc: GcConfig {
                gc: Some(true),
                max_used_space: Some(DiskSpace::from_bytes(5)),
                ..GcConfig::default()
            },
            ..OciWorkerConfig::default()
        });
        let flags = BuildkitdFlags::parse(
            "--oci-worker-gc=false --debug --allow-insecure-entitlement network.host,security.insecure \
             --oci-worker-platform linux/amd64 --oci-worker-platform arm64 --oci-worker-labels a=b \
             --oci-worker-snapshotter=native --oci-worker-net host --oci-max-parallelism 4 \
             --config /etc/buildkit/buildkitd.toml --root /x --some-new-flag value --containerd-worker=false",
        )
        .expect("parse");
        assert_eq!(flags.passthrough, vec!["--some-new-flag", "value"]);
        assert_eq!(flags.config_path(), Some("/etc/buildkit/buildkitd.toml"));
        flags.apply(&mut cfg).expect("apply");
        let oci = cfg.worker.oci.as_ref().expect("oci");
        assert_eq!(oci.gc.gc, Some(false));
        assert_eq!(
            oci.gc.max_used_space.as_ref().map(DiskSpace::bytes),
            Some(5)
        );
        assert_eq!(oci.snapshotter.as_deref(), Some("native"));
        assert_eq!(oci.network.network_mode.as_deref(), Some("host"));
        assert_eq!(oci.max_parallelism, Some(4));
        assert_eq!(
            oci.platforms
                .as_ref()
                .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Some(vec!["linux/amd64".to_string(), "linux/arm64".to_string()])
        );
        assert_eq!(
            oci.labels
                .as_ref()
                .and_then(|l| l.get("a"))
                .map(String::as_str),
            Some("b")
        );
        assert_eq!(cfg.debug, Some(true));
        assert_eq!(cfg.root.as_deref(), Some("/x"));
        assert_eq!(
            cfg.insecure_entitlements,
            Some(vec![
                "network.host".to_string(),
                "security.insecure".to_string()
            ])
        );
        assert_eq!(
            cfg.worker.containerd.as_ref().and_then(|c| c.enabled),
            Some(false)
        );
        assert!(effective_gc_policy(&cfg.gc_config(WorkerKind::Oci), None).is_empty());
    }

    #[test]
    fn flag_errors() {
        assert_eq!(
            BuildkitdFlags::parse("--root"),
            Err(FlagError::MissingValue("root".into()))
        );
        assert!(BuildkitdFlags::parse("--debug=maybe").is_err());
        let f = BuildkitdFlags::parse("--oci-worker-gc-keepstorage 20GB").expect("parse");
        assert!(f.apply(&mut BuildkitdConfig::default()).is_err());
        let f = BuildkitdFlags::parse("--oci-worker-platform linux/m68k").expect("parse");
        assert!(f.apply(&mut BuildkitdConfig::default()).is_err());
    }
}
