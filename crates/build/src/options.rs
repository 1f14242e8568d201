//! The run options of a build that become frontend attributes or entitlements, and
//! buildx's input checks, with buildx's messages: `--network`, `--add-host`, `--allow`,
//! `--shm-size`, `--ulimit`, `--cgroup-parent`, `--no-cache-filter`; empty keys in
//! `--build-arg`/`--label`, tags that are not valid references, secrets whose file is missing.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::RunOptions;

/// The entitlement names BuildKit knows (`device` may name one: `device=NAME`).
const ENTITLEMENTS: &[&str] = &["network.host", "security.insecure", "device"];

impl RunOptions {
    /// Adds the options' frontend attributes and returns the entitlements to ask for. Checks
    /// come first; nothing is sent for an option left at its default.
    pub(crate) fn apply(
        &self,
        attrs: &mut BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<String>> {
        let mut entitlements = Vec::new();
        for value in self.allow.iter().flat_map(|v| v.split(',')) {
            let name = value.split_once('=').map_or(value, |(n, _)| n);
            if !ENTITLEMENTS.contains(&name) {
                bail!("failed to build: unknown entitlement {value}");
            }
            if !entitlements.iter().any(|e| e == value) {
                entitlements.push(value.to_owned());
            }
        }
        match self.network.as_str() {
            "" | "default" => {}
            "host" => {
                attrs.insert("force-network-mode".into(), "host".into());
                if !entitlements.iter().any(|e| e == "network.host") {
                    entitlements.push("network.host".into());
                }
            }
            "none" => {
                attrs.insert("force-network-mode".into(), "none".into());
            }
            other => bail!(
                "failed to build: network mode {other:?} not supported by buildkit - you can define a custom network for your builder using the network driver-opt in buildx create"
            ),
        }
        // The CLI's flags are checked as they are read (a usage error); other callers' values
        // are checked here, with cobra's words for a bad flag value.
        let flag_error = |flag: &str, value: &str, why: String| {
            anyhow::anyhow!("invalid argument {value:?} for \"--{flag}\" flag: {why}")
        };
        if let Some(value) = &self.shm_size {
            let size = parse_shm_size(value).map_err(|why| flag_error("shm-size", value, why))?;
            if size > 0 {
                attrs.insert("shm-size".into(), size.to_string());
            }
        }
        for value in &self.ulimits {
            parse_ulimit(value).map_err(|why| flag_error("ulimit", value, why))?;
        }
        if !self.ulimits.is_empty() {
            attrs.insert("ulimit".into(), self.ulimits.join(","));
        }
        if let Some(parent) = self.cgroup_parent.as_deref().filter(|p| !p.is_empty()) {
            attrs.insert("cgroup-parent".into(), parent.to_owned());
        }
        if !self.no_cache_filter.is_empty() {
            attrs.insert("no-cache".into(), self.no_cache_filter.join(","));
        }
        Ok(entitlements)
    }

    /// The `--add-host` entries as the frontend's `add-hosts` attribute (`host=ip,…`).
    /// `gateway` answers `host-gateway`: the engine's gateway address on the docker driver, or
    /// the reason there is none (buildx's words).
    pub(crate) fn extra_hosts(
        &self,
        gateway: &dyn Fn() -> Result<String, String>,
    ) -> anyhow::Result<Option<String>> {
        if self.add_hosts.is_empty() {
            return Ok(None);
        }
        let mut hosts = Vec::new();
        for entry in &self.add_hosts {
            let (host, ip) = entry
                .split_once('=')
                .or_else(|| entry.split_once(':'))
                .filter(|(h, ip)| !h.is_empty() && !ip.is_empty())
                .ok_or_else(|| anyhow::anyhow!("failed to build: invalid host {entry}"))?;
            let ip = if ip == "host-gateway" {
                gateway().map_err(|why| {
                    anyhow::anyhow!(
                        "failed to build: unable to derive the IP value for host-gateway: {why}"
                    )
                })?
            } else {
                let bare = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .filter(|i| !i.is_empty())
                    .unwrap_or(ip);
                if bare.parse::<std::net::IpAddr>().is_err() {
                    bail!("failed to build: invalid host {entry}");
                }
                bare.to_owned()
            };
            hosts.push(format!("{host}={ip}"));
        }
        Ok(Some(hosts.join(",")))
    }
}

/// `NAME=VALUE` of `--build-arg`/`--label` with buildx's check: the key may not be empty.
pub(crate) fn check_key_value(value: &str) -> anyhow::Result<()> {
    if value.starts_with('=') {
        bail!("invalid key-value pair {value:?}: empty key");
    }
    Ok(())
}

/// Every `-t` must be a valid reference whatever the output (buildx checks before it builds).
pub(crate) fn check_tags(tags: &[String]) -> anyhow::Result<()> {
    for tag in tags {
        if let Err(e) = brix_exporter::ImageReference::parse(tag) {
            let reason = match &e {
                brix_exporter::Error::InvalidReference { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            bail!("failed to build: invalid tag {tag:?}: {reason}");
        }
    }
    Ok(())
}

/// The reason Go gives for a failed file operation (`no such file or directory`), which
/// buildx's messages end with.
pub(crate) fn go_io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// A `--secret src=` file must exist (buildx stats it before it builds).
pub(crate) fn check_secret_file(path: &std::path::Path) -> anyhow::Result<()> {
    if let Err(e) = std::fs::metadata(path) {
        let why = go_io_reason(&e);
        bail!(
            "failed to build: failed to stat {}: stat {}: {why}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Docker's `RAMInBytes` (`--shm-size`): a number with an optional binary unit suffix
/// (`b`, `k`, `m`, `g`, `t`, `p`, optionally followed by `b`/`ib`), case-insensitive.
pub fn parse_shm_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid size: '{value}'"))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => {
            let first = unit.chars().next().unwrap_or(' ');
            return Err(format!("invalid suffix: '{first}'"));
        }
    };
    Ok((number * multiplier as f64) as u64)
}

/// The ulimit names Docker knows.
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Docker's `ParseUlimit`: `NAME=SOFT[:HARD]`, given back as it is when valid.
pub fn parse_ulimit(value: &str) -> Result<String, String> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {value}"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let parse = |n: &str| -> Result<i64, String> {
        n.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {value}"))
    };
    let (soft, hard) = (parse(soft)?, parse(hard)?);
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(f: impl FnOnce(&mut RunOptions)) -> RunOptions {
        let mut o = RunOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn options_become_buildx_s_frontend_attributes() {
        let o = options(|o| {
            o.network = "host".into();
            o.shm_size = Some("64m".into());
            o.ulimits = vec!["nofile=1024:2048".into(), "nproc=10".into()];
            o.cgroup_parent = Some("/brix".into());
            o.no_cache_filter = vec!["base".into(), "tools".into()];
            o.allow = vec!["security.insecure".into()];
        });
        let mut attrs = BTreeMap::new();
        let entitlements = o.apply(&mut attrs).expect("valid");
        assert_eq!(entitlements, ["security.insecure", "network.host"]);
        assert_eq!(attrs["force-network-mode"], "host");
        assert_eq!(attrs["shm-size"], "67108864");
        assert_eq!(attrs["ulimit"], "nofile=1024:2048,nproc=10");
        assert_eq!(attrs["cgroup-parent"], "/brix");
        assert_eq!(attrs["no-cache"], "base,tools");
        let mut attrs = BTreeMap::new();
        assert!(options(|_| {}).apply(&mut attrs).expect("ok").is_empty());
        assert!(attrs.is_empty(), "defaults send nothing: {attrs:?}");
    }

    #[test]
    fn bad_options_get_buildx_s_messages() {
        let err = |f: fn(&mut RunOptions)| {
            options(f)
                .apply(&mut BTreeMap::new())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            err(|o| o.network = "bogus".into()),
            "failed to build: network mode \"bogus\" not supported by buildkit - you can define a custom network for your builder using the network driver-opt in buildx create"
        );
        assert_eq!(
            err(|o| o.allow = vec!["foo".into()]),
            "failed to build: unknown entitlement foo"
        );
        assert_eq!(
            parse_shm_size("1x").expect_err("bad"),
            "invalid suffix: 'x'"
        );
        assert_eq!(parse_shm_size("2g").expect("ok"), 2 << 30);
        assert_eq!(
            parse_ulimit("nofile").expect_err("bad"),
            "invalid ulimit argument: nofile"
        );
        assert_eq!(
            parse_ulimit("bogus=1").expect_err("bad"),
            "invalid ulimit type: bogus"
        );
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert_eq!(
            check_key_value("=x").expect_err("bad").to_string(),
            "invalid key-value pair \"=x\": empty key"
        );
        assert_eq!(
            check_tags(&["Foo:bar".into()])
                .expect_err("bad")
                .to_string(),
            "failed to build: invalid tag \"Foo:bar\": repository name must be lowercase"
        );
        assert_eq!(
            check_tags(&["a:b:c".into()]).expect_err("bad").to_string(),
            "failed to build: invalid tag \"a:b:c\": invalid reference format"
        );
        assert_eq!(
            check_secret_file(std::path::Path::new("/no/such/file"))
                .expect_err("missing")
                .to_string(),
            "failed to build: failed to stat /no/such/file: stat /no/such/file: no such file or directory"
        );
    }

    #[test]
    fn extra_hosts_as_buildx_writes_them() {
        let o = options(|o| {
            o.add_hosts = vec![
                "a:10.0.0.1".into(),
                "b=::1".into(),
                "c=[fe80::1]".into(),
                "gw:host-gateway".into(),
            ]
        });
        let hosts = o.extra_hosts(&|| Ok("172.17.0.1".into())).expect("valid");
        assert_eq!(
            hosts.as_deref(),
            Some("a=10.0.0.1,b=::1,c=fe80::1,gw=172.17.0.1")
        );
        let bad = options(|o| o.add_hosts = vec!["foo".into()]);
        assert_eq!(
            bad.extra_hosts(&|| unreachable!())
                .expect_err("bad")
                .to_string(),
            "failed to build: invalid host foo"
        );
        let gw = options(|o| o.add_hosts = vec!["gw:host-gateway".into()]);
        assert_eq!(
            gw.extra_hosts(&|| Err("host-gateway IP not found".into()))
                .expect_err("none")
                .to_string(),
            "failed to build: unable to derive the IP value for host-gateway: host-gateway IP not found"
        );
    }
}
