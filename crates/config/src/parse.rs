//! Reading `buildkitd.toml` text into the model, with spans for every diagnostic.
//!
//! The text is parsed with `toml::de::DeTable` (which keeps the byte span of every key and
//! value) and walked by hand, so that each problem is reported with its file, line, column and
//! key, and so that unit values keep their raw spelling (a TOML integer's raw text is what
//! BuildKit's go-toml hands to `DiskSpace.UnmarshalText`).

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Severity, codes, line_col};
use crate::model::*;
use crate::platform::Platform;
use crate::units::{DiskSpace, Duration, Spelling, UnitError, format_bytes_binary};

type Val<'i> = Spanned<DeValue<'i>>;

/// Disk sizes written as bare integers below this are probably meant as MB (lint BKC001).
const SMALL_DISK_SIZE: i64 = 1 << 20;

const TOP_KEYS: &[&str] = &[
    "debug",
    "trace",
    "root",
    "insecure-entitlements",
    "proxyNetwork",
    "provenanceEnvDir",
    "log",
    "grpc",
    "otel",
    "cdi",
    "dns",
    "history",
    "system",
    "cache",
    "worker",
    "registry",
    "frontend",
];
const GC_KEYS: &[&str] = &[
    "gc",
    "gckeepstorage",
    "reservedSpace",
    "maxUsedSpace",
    "minFreeSpace",
    "gcpolicy",
];
const NET_KEYS: &[&str] = &[
    "networkMode",
    "cniConfigPath",
    "cniBinaryPath",
    "cniPoolSize",
    "bridgeName",
    "bridgeSubnet",
];
const OCI_KEYS: &[&str] = &[
    "enabled",
    "labels",
    "platforms",
    "snapshotter",
    "rootless",
    "noProcessSandbox",
    "userRemapUnsupported",
    "binary",
    "proxySnapshotterPath",
    "defaultCgroupParent",
    "isolateCgroups",
    "stargzSnapshotter",
    "apparmor-profile",
    "selinux",
    "max-parallelism",
];
const CONTAINERD_KEYS: &[&str] = &[
    "address",
    "enabled",
    "labels",
    "platforms",
    "namespace",
    "runtime",
    "snapshotter",
    "apparmor-profile",
    "selinux",
    "max-parallelism",
    "defaultCgroupParent",
    "rootless",
];
const POLICY_KEYS: &[&str] = &[
    "all",
    "filters",
    "keepDuration",
    "keepBytes",
    "reservedSpace",
    "maxUsedSpace",
    "minFreeSpace",
];
const REGISTRY_KEYS: &[&str] = &[
    "mirrors",
    "http",
    "insecure",
    "ca",
    "keypair",
    "tlsconfigdir",
];
const FRONTENDS: &[&str] = &["dockerfile.v0", "gateway.v0"];
const ENTITLEMENTS: &[&str] = &["network.host", "security.insecure", "device"];

/// Parses `src` (named `file` in messages). Returns the model when there is no error-level
/// diagnostic, and every diagnostic found (errors and warnings), sorted by position.
pub(crate) fn parse(src: &str, file: &str) -> (Option<BuildkitdConfig>, Vec<Diagnostic>) {
    let mut w = Walker {
        src,
        file,
        diags: Vec::new(),
    };
    let root = match DeTable::parse(src) {
        Ok(root) => root,
        Err(err) => {
            let span = err.span().unwrap_or(src.len()..src.len());
            let mut message = err.message().trim().to_string();
            // toml's messages do not name the key ("duplicate key"): quote the text at the span.
            if let Some(text) = src.get(span.clone())
                && !text.is_empty()
                && text.len() <= 60
                && !text.contains('\n')
            {
                message.push_str(&format!(" (at `{text}`)"));
            }
            w.push(
                codes::TOML_SYNTAX,
                Severity::Error,
                span,
                "",
                format!("invalid TOML: {message}"),
                None,
            );
            return (None, w.diags);
        }
    };
    let config = w.top(root.get_ref());
    w.diags.sort_by_key(|d| (d.line, d.column));
    let has_error = w.diags.iter().any(|d| d.severity == Severity::Error);
    ((!has_error).then_some(config), w.diags)
}

struct Walker<'a> {
    src: &'a str,
    file: &'a str,
    diags: Vec<Diagnostic>,
}

fn join(path: &str, key: &str) -> String {
    let quoted = if key.is_empty()
        || key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        quoted
    } else {
        format!("{path}.{quoted}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a> Walker<'a> {
    fn push(
        &mut self,
        code: &'static str,
        severity: Severity,
        span: Range<usize>,
        key: &str,
        message: String,
        fix: Option<String>,
    ) {
        let (line, column) = line_col(self.src, span.start);
        self.diags.push(Diagnostic {
            code,
            severity,
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
            fix,
        });
    }

    fn wrong_type(&mut self, path: &str, v: &Val<'_>, expected: &str) {
        self.push(
            codes::WRONG_TYPE,
            Severity::Error,
            v.span(),
            path,
            format!("expected {expected}, found {}", type_name(v.get_ref())),
            None,
        );
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        path: &str,
        val: &Val<'_>,
        known: &[&str],
    ) {
        let name = key.get_ref().as_ref();
        let is_section = matches!(val.get_ref(), DeValue::Table(_));
        let suggestion = suggest(name, known);
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let (code, what) = if is_section {
            (codes::UNKNOWN_SECTION, "section")
        } else {
            (codes::UNKNOWN_KEY, "key")
        };
        let mut message = format!("unknown {what} `{path}`; BuildKit ignores it");
        let mut fix = None;
        if name == "ghacache" && parent.is_empty() {
            message.push_str(" (BuildKit's documentation example spells it [ghacache], but the code reads [cache.gha])");
            fix = Some("rename [ghacache.*] to [cache.gha.*]".to_string());
        } else if let Some(s) = suggestion {
            let target = join(parent, s);
            message.push_str(&format!("; did you mean `{target}`?"));
            fix = Some(if is_section {
                format!("rename [{path}] to [{target}]")
            } else {
                format!("rename `{name}` to `{s}`")
            });
        }
        self.push(code, Severity::Warning, key.span(), path, message, fix);
    }

    fn as_table<'v, 'i>(&mut self, path: &str, v: &'v Val<'i>) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(path, v, "a table");
                None
            }
        }
    }

    fn bool(&mut self, path: &str, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(path, v, "a boolean (true or false)");
                None
            }
        }
    }

    fn string(&mut self, path: &str, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(path, v, "a string");
                None
            }
        }
    }

    fn int(&mut self, path: &str, v: &Val<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.push(
                        codes::INVALID_VALUE,
                        Severity::Error,
                        v.span(),
                        path,
                        "integer does not fit in 64 bits".into(),
                        None,
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(path, v, "an integer");
                None
            }
        }
    }

    fn strings(&mut self, path: &str, v: &Val<'_>) -> Option<Vec<String>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(path, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(&format!("{path}[{i}]"), item) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn string_map(&mut self, path: &str, v: &Val<'_>) -> Option<BTreeMap<String, String>> {
        let t = self.as_table(path, v)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, val) in t.iter() {
            match self.string(&join(path, k.get_ref()), val) {
                Some(s) => {
                    out.insert(k.get_ref().to_string(), s);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn platforms(&mut self, path: &str, v: &Val<'_>) -> Option<Vec<Platform>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(path, v, "an array of platform strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(s) = self.string(&item_path, item) else {
                ok = false;
                continue;
            };
            match Platform::parse(&s) {
                Ok(p) => out.push(p),
                Err(e) => {
                    ok = false;
                    self.push(
                        codes::INVALID_PLATFORM,
                        Severity::Error,
                        item.span(),
                        &item_path,
                        e.to_string(),
                        None,
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// The value's text as BuildKit's unmarshaler sees it, and how it was spelled.
    fn unit_text(&mut self, path: &str, v: &Val<'_>, what: &str) -> Option<(String, Spelling)> {
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), Spelling::String)),
            DeValue::Integer(_) => Some((self.src[v.span()].trim().to_string(), Spelling::Integer)),
            _ => {
                self.wrong_type(path, v, what);
                None
            }
        }
    }

    fn disk(&mut self, path: &str, v: &Val<'_>) -> Option<DiskSpace> {
        let (text, spelling) = self.unit_text(
            path,
            v,
            "an integer number of bytes or a string such as \"20GB\" or \"10%\"",
        )?;
        match DiskSpace::parse(&text, spelling) {
            Ok(d) => {
                if spelling == Spelling::Integer && d.bytes() > 0 && d.bytes() < SMALL_DISK_SIZE {
                    self.small_disk_size(path, v, &d);
                }
                Some(d)
            }
            Err(e) => {
                self.unit_error(path, v, e);
                None
            }
        }
    }

    fn small_disk_size(&mut self, path: &str, v: &Val<'_>, d: &DiskSpace) {
        let n = d.bytes();
        let key = path.rsplit('.').next().unwrap_or(path);
        let flag_hint = if key == "gckeepstorage" {
            format!(
                " The daemon flag `--oci-worker-gc-keepstorage {n}` means {n} MB, a factor of 1,000,000 more."
            )
        } else {
            String::new()
        };
        let message = format!(
            "`{key} = {n}` is {n} bytes ({}) to BuildKit: a bare integer in buildkitd.toml counts bytes, not MB.{flag_hint} If you meant {n} MB ({}), write a size with a unit.",
            format_bytes_binary(n as f64),
            format_bytes_binary(n as f64 * 1e6),
        );
        let suggested = if n % 1000 == 0 {
            format!("{}GB", n / 1000)
        } else {
            format!("{n}MB")
        };
        let new_key = match key {
            "gckeepstorage" | "keepBytes" => "reservedSpace",
            other => other,
        };
        let fix = format!("{new_key} = \"{suggested}\" (or \"{n}B\" if you really mean {n} bytes)");
        self.push(
            codes::SMALL_INTEGER_DISK_SIZE,
            Severity::Warning,
            v.span(),
            path,
            message,
            Some(fix),
        );
    }

    fn duration(&mut self, path: &str, v: &Val<'_>) -> Option<Duration> {
        let (text, spelling) = self.unit_text(
            path,
            v,
            "a duration string such as \"48h\" or an integer number of seconds",
        )?;
        match Duration::parse(&text, spelling) {
            Ok(d) => Some(d),
            Err(e) => {
                self.unit_error(path, v, e);
                None
            }
        }
    }

    fn unit_error(&mut self, path: &str, v: &Val<'_>, e: UnitError) {
        let code = match e {
            UnitError::InvalidDuration(_) | UnitError::NegativeDuration(_) => {
                codes::INVALID_DURATION
            }
            _ => codes::INVALID_DISK_SIZE,
        };
        self.push(code, Severity::Error, v.span(), path, e.to_string(), None);
    }

    fn free_table(&mut self, path: &str, v: &Val<'_>) -> Option<toml::Table> {
        let t = self.as_table(path, v)?;
        Some(de_table_to_toml(t))
    }

    fn top(&mut self, root: &DeTable<'_>) -> BuildkitdConfig {
        let mut c = BuildkitdConfig::default();
        for (k, v) in root.iter() {
            let name = k.get_ref().as_ref();
            let path = join("", name);
            match name {
                "debug" | "trace" => {
                    let b = self.bool(&path, v);
                    let level = if name == "debug" { "debug" } else { "trace" };
                    self.push(
                        codes::DEPRECATED_DEBUG_TRACE,
                        Severity::Warning,
                        k.span(),
                        &path,
                        format!("top-level `{name}` is deprecated"),
                        Some(format!("[log]\nlevel = \"{level}\"")),
                    );
                    if name == "debug" {
                        c.debug = b
                    } else {
                        c.trace = b
                    }
                }
                "root" => c.root = self.string(&path, v),
                "insecure-entitlements" => {
                    c.insecure_entitlements = self.strings(&path, v);
                    self.entitlement_lints(&path, v);
                }
                "proxyNetwork" => c.proxy_network = self.bool(&path, v),
                "provenanceEnvDir" => c.provenance_env_dir = self.string(&path, v),
                "log" => c.log = self.log(&path, v),
                "grpc" => c.grpc = self.grpc(&path, v),
                "otel" => {
                    c.otel = self.section(
                        &path,
                        v,
                        &["socketPath"],
                        |w, key, p, val, o: &mut OtelConfig| {
                            if key == "socketPath" {
                                o.socket_path = w.string(p, val);
                            }
                        },
                    )
                }
                "cdi" => {
                    c.cdi = self.section(
                        &path,
                        v,
                        &["disabled", "specDirs", "autoAllowed"],
                        |w, key, p, val, o: &mut CdiConfig| match key {
                            "disabled" => o.disabled = w.bool(p, val),
                            "specDirs" => o.spec_dirs = w.strings(p, val),
                            _ => o.auto_allowed = w.strings(p, val),
                        },
                    )
                }
                "dns" => {
                    c.dns = self.section(
                        &path,
                        v,
                        &["nameservers", "options", "searchDomains"],
                        |w, key, p, val, o: &mut DnsConfig| match key {
                            "nameservers" => o.nameservers = w.strings(p, val),
                            "options" => o.options = w.strings(p, val),
                            _ => o.search_domains = w.strings(p, val),
                        },
                    )
                }
                "history" => {
                    c.history = self.section(
                        &path,
                        v,
                        &["maxAge", "maxEntries"],
                        |w, key, p, val, o: &mut HistoryConfig| match key {
                            "maxAge" => o.max_age = w.duration(p, val),
                            _ => o.max_entries = w.int(p, val),
                        },
                    )
                }
                "system" => {
                    c.system = self.section(
                        &path,
                        v,
                        &["platformsCacheMaxAge", "maxRegistryConcurrency"],
                        |w, key, p, val, o: &mut SystemConfig| match key {
                            "platformsCacheMaxAge" => {
                                o.platforms_cache_max_age = w.duration(p, val)
                            }
                            _ => o.max_registry_concurrency = w.int(p, val),
                        },
                    )
                }
                "cache" => c.cache = self.free_table(&path, v),
                "worker" => c.worker = self.workers(&path, v),
                "registry" => c.registry = self.registries(&path, v),
                "frontend" => c.frontend = self.frontends(&path, v),
                _ => self.unknown(k, &path, v, TOP_KEYS),
            }
        }
        c
    }

    /// BuildKit refuses to start with an entitlement it does not know ("unknown entitlement").
    fn entitlement_lints(&mut self, path: &str, v: &Val<'_>) {
        let DeValue::Array(items) = v.get_ref() else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let Some(name) = item.get_ref().as_str() else {
                continue;
            };
            if ENTITLEMENTS.contains(&name) || name.starts_with("device=") {
                continue;
            }
            let fix = suggest(name, ENTITLEMENTS).map(|s| format!("\"{s}\""));
            self.push(
                codes::UNKNOWN_ENTITLEMENT,
                Severity::Warning,
                item.span(),
                &format!("{path}[{i}]"),
                format!(
                    "unknown entitlement {name:?}; BuildKit knows {} and refuses to start with others",
                    ENTITLEMENTS.join(", ")
                ),
                fix,
            );
        }
    }

    /// Walks a table whose keys are all in `known`, calling `set` for each known key.
    fn section<T: Default>(
        &mut self,
        path: &str,
        v: &Val<'_>,
        known: &[&str],
        mut set: impl FnMut(&mut Self, &str, &str, &Val<'_>, &mut T),
    ) -> Option<T> {
        let t = self.as_table(path, v)?;
        let mut out = T::default();
        for (k, val) in t.iter() {
            let name = k.get_ref().as_ref();
            let p = join(path, name);
            if known.contains(&name) {
                set(self, name, &p, val, &mut out);
            } else {
                self.unknown(k, &p, val, known);
            }
        }
        Some(out)
    }

    fn log(&mut self, path: &str, v: &Val<'_>) -> Option<LogConfig> {
        self.section(
            path,
            v,
            &["format", "level"],
            |w, key, p, val, o: &mut LogConfig| {
                let s = w.string(p, val);
                let allowed: &[&str] = if key == "format" {
                    &["text", "json"]
                } else {
                    &[
                        "error", "warn", "warning", "info", "debug", "trace", "fatal", "panic",
                    ]
                };
                if let Some(s) = &s
                    && !allowed.contains(&s.to_ascii_lowercase().as_str())
                {
                    w.push(
                        codes::INVALID_VALUE,
                        Severity::Error,
                        val.span(),
                        p,
                        format!("unknown {key} {s:?}; use one of: {}", allowed.join(", ")),
                        None,
                    );
                }
                if key == "format" {
                    o.format = s
                } else {
                    o.level = s
                }
            },
        )
    }

    fn grpc(&mut self, path: &str, v: &Val<'_>) -> Option<GrpcConfig> {
        let known = [
            "address",
            "debugAddress",
            "uid",
            "gid",
            "securityDescriptor",
            "tls",
        ];
        self.section(
            path,
            v,
            &known,
            |w, key, p, val, o: &mut GrpcConfig| match key {
                "address" => o.address = w.strings(p, val),
                "debugAddress" => o.debug_address = w.string(p, val),
                "uid" => o.uid = w.int(p, val),
                "gid" => o.gid = w.int(p, val),
                "securityDescriptor" => o.security_descriptor = w.string(p, val),
                _ => {
                    o.tls = w.section(
                        p,
                        val,
                        &["cert", "key", "ca"],
                        |w, key, p, val, t: &mut TlsConfig| {
                            let s = w.string(p, val);
                            match key {
                                "cert" => t.cert = s,
                                "key" => t.key = s,
                                _ => t.ca = s,
                            }
                        },
                    )
                }
            },
        )
    }

    fn frontends(&mut self, path: &str, v: &Val<'_>) -> BTreeMap<String, FrontendConfig> {
        let mut out = BTreeMap::new();
        let Some(t) = self.as_table(path, v) else {
            return out;
        };
        for (k, val) in t.iter() {
            let name = k.get_ref().as_ref();
            let p = join(path, name);
            if !FRONTENDS.contains(&name) {
                self.unknown(k, &p, val, FRONTENDS);
                continue;
            }
            let known: &[&str] = if name == "gateway.v0" {
                &["enabled", "allowedRepositories"]
            } else {
                &["enabled"]
            };
            let f = self.section(
                &p,
                val,
                known,
                |w, key, p, val, f: &mut FrontendConfig| match key {
                    "enabled" => f.enabled = w.bool(p, val),
                    _ => f.allowed_repositories = w.strings(p, val),
                },
            );
            if let Some(f) = f {
                out.insert(name.to_string(), f);
            }
        }
        out
    }

    fn registries(&mut self, path: &str, v: &Val<'_>) -> BTreeMap<String, RegistryConfig> {
        let mut out = BTreeMap::new();
        let Some(t) = self.as_table(path, v) else {
            return out;
        };
        for (k, val) in t.iter() {
            let host = k.get_ref().as_ref();
            let p = join(path, host);
            let mut insecure_span = None;
            let r = self.section(
                &p,
                val,
                REGISTRY_KEYS,
                |w, key, p, val, r: &mut RegistryConfig| match key {
                    "mirrors" => r.mirrors = w.strings(p, val),
                    "http" => r.http = w.bool(p, val),
                    "insecure" => {
                        r.insecure = w.bool(p, val);
                        insecure_span = Some(val.span());
                    }
                    "ca" => r.ca = w.strings(p, val),
                    "tlsconfigdir" => r.tlsconfigdir = w.strings(p, val),
                    _ => r.keypair = w.keypairs(p, val),
                },
            );
            let Some(r) = r else { continue };
            if r.http == Some(true)
                && r.insecure == Some(true)
                && let Some(span) = insecure_span.clone()
            {
                self.push(
                    codes::HTTP_AND_INSECURE,
                    Severity::Warning,
                    span,
                    &join(&p, "insecure"),
                    format!("registry {host:?} sets both `http = true` (plain HTTP, no TLS) and `insecure = true` (HTTPS without certificate checks); BuildKit's documentation says not to enable both"),
                    Some("keep `http = true` for a plain-HTTP registry, or `insecure = true` for HTTPS with a self-signed certificate, not both".into()),
                );
            }
            if r.insecure == Some(true)
                && r.http != Some(true)
                && is_local_host(host)
                && let Some(span) = insecure_span
            {
                self.push(
                    codes::INSECURE_ON_LOCAL_HTTP,
                    Severity::Warning,
                    span,
                    &join(&p, "insecure"),
                    format!("registry {host:?} is on this machine and most likely speaks plain HTTP (as Docker assumes for localhost), but `insecure = true` only disables certificate checks for HTTPS"),
                    Some("http = true".into()),
                );
            }
            out.insert(host.to_string(), r);
        }
        out
    }

    fn keypairs(&mut self, path: &str, v: &Val<'_>) -> Option<Vec<KeyPair>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(path, v, "an array of tables ([[...keypair]])");
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let kp = self.section(
                &p,
                item,
                &["key", "cert"],
                |w, key, p, val, kp: &mut KeyPair| {
                    let s = w.string(p, val);
                    if key == "key" {
                        kp.key = s
                    } else {
                        kp.cert = s
                    }
                },
            )?;
            out.push(kp);
        }
        Some(out)
    }

    fn workers(&mut self, path: &str, v: &Val<'_>) -> WorkerConfigs {
        let mut out = WorkerConfigs::default();
        let Some(t) = self.as_table(path, v) else {
            return out;
        };
        for (k, val) in t.iter() {
            let name = k.get_ref().as_ref();
            let p = join(path, name);
            match name {
                "oci" => out.oci = self.oci(&p, val),
                "containerd" => out.containerd = self.containerd(&p, val),
                _ => self.unknown(k, &p, val, &["oci", "containerd"]),
            }
        }
        out
    }

    /// Handles a GC or network key shared by both workers; returns false if `key` is neither.
    fn gc_or_net_key(
        &mut self,
        key: &str,
        p: &str,
        val: &Val<'_>,
        gc: &mut GcConfig,
        net: &mut NetworkConfig,
    ) -> bool {
        match key {
            "gc" => gc.gc = self.bool(p, val),
            "gckeepstorage" => gc.gckeepstorage = self.disk(p, val),
            "reservedSpace" => gc.reserved_space = self.disk(p, val),
            "maxUsedSpace" => gc.max_used_space = self.disk(p, val),
            "minFreeSpace" => gc.min_free_space = self.disk(p, val),
            "gcpolicy" => gc.gcpolicy = self.policies(p, val).unwrap_or_default(),
            "networkMode" => net.network_mode = self.string(p, val),
            "cniConfigPath" => net.cni_config_path = self.string(p, val),
            "cniBinaryPath" => net.cni_binary_path = self.string(p, val),
            "cniPoolSize" => net.cni_pool_size = self.int(p, val),
            "bridgeName" => net.bridge_name = self.string(p, val),
            "bridgeSubnet" => net.bridge_subnet = self.string(p, val),
            _ => return false,
        }
        true
    }

    fn oci(&mut self, path: &str, v: &Val<'_>) -> Option<OciWorkerConfig> {
        let t = self.as_table(path, v)?;
        let mut o = OciWorkerConfig::default();
        let known: Vec<&str> = OCI_KEYS
            .iter()
            .chain(GC_KEYS)
            .chain(NET_KEYS)
            .copied()
            .collect();
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            let p = join(path, key);
            if self.gc_or_net_key(key, &p, val, &mut o.gc, &mut o.network) {
                continue;
            }
            match key {
                "enabled" => o.enabled = self.bool(&p, val),
                "labels" => o.labels = self.string_map(&p, val),
                "platforms" => o.platforms = self.platforms(&p, val),
                "snapshotter" => o.snapshotter = self.string(&p, val),
                "rootless" => o.rootless = self.bool(&p, val),
                "noProcessSandbox" => o.no_process_sandbox = self.bool(&p, val),
                "userRemapUnsupported" => o.user_remap_unsupported = self.string(&p, val),
                "binary" => o.binary = self.string(&p, val),
                "proxySnapshotterPath" => o.proxy_snapshotter_path = self.string(&p, val),
                "defaultCgroupParent" => o.default_cgroup_parent = self.string(&p, val),
                "isolateCgroups" => o.isolate_cgroups = self.bool(&p, val),
                "stargzSnapshotter" => o.stargz_snapshotter = self.free_table(&p, val),
                "apparmor-profile" => o.apparmor_profile = self.string(&p, val),
                "selinux" => o.selinux = self.bool(&p, val),
                "max-parallelism" => o.max_parallelism = self.int(&p, val),
                _ => self.unknown(k, &p, val, &known),
            }
        }
        self.gc_lints(path, t, &o.gc);
        Some(o)
    }

    fn containerd(&mut self, path: &str, v: &Val<'_>) -> Option<ContainerdWorkerConfig> {
        let t = self.as_table(path, v)?;
        let mut o = ContainerdWorkerConfig::default();
        let known: Vec<&str> = CONTAINERD_KEYS
            .iter()
            .chain(GC_KEYS)
            .chain(NET_KEYS)
            .copied()
            .collect();
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            let p = join(path, key);
            if self.gc_or_net_key(key, &p, val, &mut o.gc, &mut o.network) {
                continue;
            }
            match key {
                "address" => o.address = self.string(&p, val),
                "enabled" => o.enabled = self.bool(&p, val),
                "labels" => o.labels = self.string_map(&p, val),
                "platforms" => o.platforms = self.platforms(&p, val),
                "namespace" => o.namespace = self.string(&p, val),
                "runtime" => {
                    o.runtime = self.section(
                        &p,
                        val,
                        &["name", "path", "options"],
                        |w, key, p, val, r: &mut ContainerdRuntime| match key {
                            "name" => r.name = w.string(p, val),
                            "path" => r.path = w.string(p, val),
                            _ => r.options = w.free_table(p, val),
                        },
                    )
                }
                "snapshotter" => o.snapshotter = self.string(&p, val),
                "apparmor-profile" => o.apparmor_profile = self.string(&p, val),
                "selinux" => o.selinux = self.bool(&p, val),
                "max-parallelism" => o.max_parallelism = self.int(&p, val),
                "defaultCgroupParent" => o.default_cgroup_parent = self.string(&p, val),
                "rootless" => o.rootless = self.bool(&p, val),
                _ => self.unknown(k, &p, val, &known),
            }
        }
        self.gc_lints(path, t, &o.gc);
        Some(o)
    }

    /// Lints about a worker's GC keys as a whole (deprecations, shadowing, gc = false).
    fn gc_lints(&mut self, path: &str, t: &DeTable<'_>, gc: &GcConfig) {
        let key_span = |name: &str| {
            t.iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(k, _)| k.span())
        };
        if let (Some(keep), Some(span)) = (&gc.gckeepstorage, key_span("gckeepstorage")) {
            let p = join(path, "gckeepstorage");
            let shadowed = gc.reserved_space.is_some()
                || gc.max_used_space.is_some()
                || gc.min_free_space.is_some();
            if shadowed {
                self.push(
                    codes::SHADOWED_DEPRECATED_KEY,
                    Severity::Warning,
                    span.clone(),
                    &p,
                    "`gckeepstorage` is ignored because `reservedSpace`, `maxUsedSpace` or `minFreeSpace` is set".into(),
                    Some("remove `gckeepstorage`".into()),
                );
            }
            self.push(
                codes::DEPRECATED_GCKEEPSTORAGE,
                Severity::Warning,
                span,
                &p,
                "`gckeepstorage` is deprecated since BuildKit v0.17; BuildKit reads it as `reservedSpace`".into(),
                Some(format!("reservedSpace = {keep}")),
            );
        }
        let disabled_span = t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == "gc")
            .map(|(_, v)| v.span());
        if gc.gc == Some(false) {
            let has_settings = !gc.gcpolicy.is_empty()
                || gc.gckeepstorage.is_some()
                || gc.reserved_space.is_some()
                || gc.max_used_space.is_some()
                || gc.min_free_space.is_some();
            if has_settings && let Some(span) = disabled_span {
                self.push(
                    codes::GC_DISABLED_WITH_POLICY,
                    Severity::Warning,
                    span,
                    &join(path, "gc"),
                    "garbage collection is disabled (`gc = false`), so the GC limits and [[gcpolicy]] rules in this section have no effect".into(),
                    Some("remove `gc = false` (GC is on by default) or remove the unused GC settings".into()),
                );
            }
        }
    }

    fn policies(&mut self, path: &str, v: &Val<'_>) -> Option<Vec<GcPolicyRule>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.push(
                codes::WRONG_TYPE,
                Severity::Error,
                v.span(),
                path,
                format!(
                    "expected an array of tables, found {}",
                    type_name(v.get_ref())
                ),
                Some(format!("write each rule as [[{path}]] (two brackets)")),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(t) = self.as_table(&p, item) else {
                continue;
            };
            let mut rule = GcPolicyRule::default();
            let mut keep_span = None;
            for (k, val) in t.iter() {
                let key = k.get_ref().as_ref();
                let kp = join(&p, key);
                match key {
                    "all" => rule.all = self.bool(&kp, val),
                    "filters" => rule.filters = self.strings(&kp, val),
                    "keepDuration" => rule.keep_duration = self.duration(&kp, val),
                    "keepBytes" => {
                        rule.keep_bytes = self.disk(&kp, val);
                        keep_span = Some(k.span());
                    }
                    "reservedSpace" => rule.reserved_space = self.disk(&kp, val),
                    "maxUsedSpace" => rule.max_used_space = self.disk(&kp, val),
                    "minFreeSpace" => rule.min_free_space = self.disk(&kp, val),
                    _ => self.unknown(k, &kp, val, POLICY_KEYS),
                }
            }
            if let (Some(keep), Some(span)) = (&rule.keep_bytes, keep_span) {
                let kp = join(&p, "keepBytes");
                if rule.reserved_space.as_ref().is_some_and(|r| !r.is_unset()) {
                    self.push(
                        codes::SHADOWED_DEPRECATED_KEY,
                        Severity::Warning,
                        span.clone(),
                        &kp,
                        "`keepBytes` is ignored because `reservedSpace` is set in the same rule"
                            .into(),
                        Some("remove `keepBytes`".into()),
                    );
                }
                self.push(
                    codes::DEPRECATED_KEEPBYTES,
                    Severity::Warning,
                    span,
                    &kp,
                    "`keepBytes` is deprecated since BuildKit v0.17; BuildKit reads it as `reservedSpace`".into(),
                    Some(format!("reservedSpace = {keep}")),
                );
            }
            out.push(rule);
        }
        Some(out)
    }
}

fn is_local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    matches!(name, "localhost" | "::1") || name.starts_with("127.") || name.ends_with(".localhost")
}

/// Suggests the closest known name (Levenshtein distance, case-insensitive).
pub(crate) fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len().max(lower.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn de_table_to_toml(t: &DeTable<'_>) -> toml::Table {
    t.iter()
        .filter_map(|(k, v)| Some((k.get_ref().to_string(), de_to_toml(v.get_ref())?)))
        .collect()
}

fn de_to_toml(v: &DeValue<'_>) -> Option<toml::Value> {
    Some(match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).ok()?)
        }
        DeValue::Float(f) => {
            let s = f.as_str();
            let x = match s.trim_start_matches(['+', '-']) {
                "inf" => f64::INFINITY.copysign(if s.starts_with('-') { -1.0 } else { 1.0 }),
                "nan" => f64::NAN,
                _ => s.parse().ok()?,
            };
            toml::Value::Float(x)
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => {
            toml::Value::Array(a.iter().filter_map(|v| de_to_toml(v.get_ref())).collect())
        }
        DeValue::Table(t) => toml::Value::Table(de_table_to_toml(t)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("frontends", TOP_KEYS), Some("frontend"));
        assert_eq!(suggest("gckeepstorge", GC_KEYS), Some("gckeepstorage"));
        assert_eq!(suggest("registries", TOP_KEYS), Some("registry"));
        assert_eq!(suggest("workers", TOP_KEYS), Some("worker"));
        assert_eq!(suggest("zzzzzz", TOP_KEYS), None);
    }

    #[test]
    fn local_hosts() {
        assert!(is_local_host("localhost:5000"));
        assert!(is_local_host("127.0.0.1:5000"));
        assert!(is_local_host("[::1]:5000"));
        assert!(!is_local_host("docker.io"));
    }
}
