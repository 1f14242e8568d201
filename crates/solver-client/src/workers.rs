//! Friendly forms of what the control API reports: workers (platforms, labels, GC policy),
//! the daemon's version, build cache records, and prune options. Pure conversions from the
//! generated protobuf types, for `inspect`, `du` and `prune`.

use crate::proto::moby::buildkit::v1 as pb_control;
use crate::proto::moby::buildkit::v1::types as pb_types;
use crate::proto::pb;
use brix_config::{GcRule, Platform};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Worker label keys buildkitd sets (`[bk] worker/label/label.go`).
pub mod labels {
    /// Executor: `oci` (runc) or `containerd`.
    pub const EXECUTOR: &str = "org.mobyproject.buildkit.worker.executor";
    /// Host name of the machine (or container) running the worker.
    pub const HOSTNAME: &str = "org.mobyproject.buildkit.worker.hostname";
    /// Snapshotter, e.g. `overlayfs`.
    pub const SNAPSHOTTER: &str = "org.mobyproject.buildkit.worker.snapshotter";
    /// Network mode, e.g. `host` or `cni`.
    pub const NETWORK: &str = "org.mobyproject.buildkit.worker.network";
    /// OCI process mode: `sandbox`, or `no-sandbox` for rootless daemons without a PID
    /// namespace.
    pub const OCI_PROCESS_MODE: &str = "org.mobyproject.buildkit.worker.oci.process-mode";
    /// `true` when SELinux labelling is on.
    pub const SELINUX_ENABLED: &str = "org.mobyproject.buildkit.worker.selinux.enabled";
}

/// A BuildKit version, as `Info` and worker records report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonVersion {
    /// Go package, e.g. `github.com/moby/buildkit`.
    pub package: String,
    /// Version, e.g. `v0.34.2`.
    pub version: String,
    /// VCS revision.
    pub revision: String,
    /// Version of the built-in Dockerfile frontend, when the daemon reports it.
    pub dockerfile_version: String,
}

impl DaemonVersion {
    /// True when the daemon sent nothing (older daemons leave the record empty).
    pub fn is_empty(&self) -> bool {
        self.package.is_empty() && self.version.is_empty() && self.revision.is_empty()
    }
}

impl std::fmt::Display for DaemonVersion {
    /// `github.com/moby/buildkit v0.34.2 <revision>`, as `buildx inspect` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [&self.package, &self.version, &self.revision];
        let mut first = true;
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
            first = false;
        }
        Ok(())
    }
}

impl From<pb_types::BuildkitVersion> for DaemonVersion {
    fn from(v: pb_types::BuildkitVersion) -> Self {
        DaemonVersion {
            package: v.package,
            version: v.version,
            revision: v.revision,
            dockerfile_version: v.dockerfile_version,
        }
    }
}

/// A CDI device a worker offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdiDeviceInfo {
    /// Fully qualified name, e.g. `vendor.com/gpu=0`.
    pub name: String,
    /// Usable without the `device` entitlement.
    pub auto_allow: bool,
    /// Set up only when a build asks for it.
    pub on_demand: bool,
    /// Device annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One BuildKit worker, decoded from `ListWorkers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Worker ID.
    pub id: String,
    /// Platforms the worker can build for, in the daemon's order (native first, then
    /// emulated ones).
    pub platforms: Vec<Platform>,
    /// Labels; see [`labels`] for the well-known keys.
    pub labels: BTreeMap<String, String>,
    /// Garbage-collection rules in the order the daemon applies them; sizes are bytes and
    /// `keep_duration` nanoseconds, as BuildKit reports them.
    pub gc_policy: Vec<GcRule>,
    /// BuildKit version reported by the worker (empty on old daemons).
    pub buildkit_version: DaemonVersion,
    /// CDI devices.
    pub cdi_devices: Vec<CdiDeviceInfo>,
}

impl WorkerInfo {
    /// The value of label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The executor label (`oci` or `containerd`).
    pub fn executor(&self) -> Option<&str> {
        self.label(labels::EXECUTOR)
    }

    /// The host name label.
    pub fn hostname(&self) -> Option<&str> {
        self.label(labels::HOSTNAME)
    }

    /// The snapshotter label.
    pub fn snapshotter(&self) -> Option<&str> {
        self.label(labels::SNAPSHOTTER)
    }

    /// True when the worker lists `platform` (compared as normalized OCI platforms).
    pub fn supports(&self, platform: &Platform) -> bool {
        self.platforms.iter().any(|p| p == platform)
    }
}

impl From<pb_types::WorkerRecord> for WorkerInfo {
    fn from(record: pb_types::WorkerRecord) -> Self {
        WorkerInfo {
            id: record.id,
            platforms: record.platforms.into_iter().map(platform_from_pb).collect(),
            labels: record.labels,
            gc_policy: record.gc_policy.into_iter().map(gc_rule_from_pb).collect(),
            buildkit_version: record
                .buildkit_version
                .map(DaemonVersion::from)
                .unwrap_or_default(),
            cdi_devices: record
                .cdi_devices
                .into_iter()
                .map(|d| CdiDeviceInfo {
                    name: d.name,
                    auto_allow: d.auto_allow,
                    on_demand: d.on_demand,
                    annotations: d.annotations,
                })
                .collect(),
        }
    }
}

/// Converts an LLB/worker platform to the project's platform type, unchanged (the daemon
/// already normalizes).
pub fn platform_from_pb(p: pb::Platform) -> Platform {
    Platform {
        architecture: p.architecture,
        os: p.os,
        os_version: Some(p.os_version).filter(|v| !v.is_empty()),
        os_features: p.os_features,
        variant: p.variant,
    }
}

/// Converts the project's platform type to an LLB/worker platform.
pub fn platform_to_pb(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone().unwrap_or_default(),
        os_features: p.os_features.clone(),
    }
}

/// Converts one GC policy rule as the daemon reports it.
pub fn gc_rule_from_pb(p: pb_types::GcPolicy) -> GcRule {
    GcRule {
        all: p.all,
        filters: p.filters,
        keep_duration: p.keep_duration,
        max_used_space: p.max_used_space,
        min_free_space: p.min_free_space,
        reserved_space: p.reserved_space,
    }
}

/// One build cache record, decoded from `DiskUsage` or `Prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheRecord {
    /// Record ID.
    pub id: String,
    /// Mutable (an in-progress or cache mount) rather than a committed layer.
    pub mutable: bool,
    /// In use by a running build.
    pub in_use: bool,
    /// Size in bytes.
    pub size: i64,
    /// Parent record IDs (the deprecated single `Parent` merged in).
    pub parents: Vec<String>,
    /// When it was created.
    pub created_at: Option<SystemTime>,
    /// When it was last used.
    pub last_used_at: Option<SystemTime>,
    /// How many times it was used.
    pub usage_count: i64,
    /// What made it, e.g. `mount / from exec /bin/sh -c ...`.
    pub description: String,
    /// `regular`, `internal`, `frontend`, `source.local`, `source.git.checkout`,
    /// `exec.cachemount`, ...
    pub record_type: String,
    /// Shared with other records.
    pub shared: bool,
}

impl CacheRecord {
    /// Reclaimable as buildx's `du` counts it: not in use (mutable records count too).
    pub fn reclaimable(&self) -> bool {
        !self.in_use
    }
}

impl From<pb_control::UsageRecord> for CacheRecord {
    #[allow(deprecated)] // `parent` is deprecated upstream but old daemons only send it.
    fn from(r: pb_control::UsageRecord) -> Self {
        let mut parents = r.parents;
        if !r.parent.is_empty() && !parents.contains(&r.parent) {
            parents.insert(0, r.parent);
        }
        CacheRecord {
            id: r.id,
            mutable: r.mutable,
            in_use: r.in_use,
            size: r.size,
            parents,
            created_at: r.created_at.and_then(system_time),
            last_used_at: r.last_used_at.and_then(system_time),
            usage_count: r.usage_count,
            description: r.description,
            record_type: r.record_type,
            shared: r.shared,
        }
    }
}

/// A protobuf timestamp as a `SystemTime`; `None` when it is out of range or invalid.
pub fn system_time(ts: prost_types::Timestamp) -> Option<SystemTime> {
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    if ts.seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(u64::try_from(ts.seconds).ok()?, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// What to prune, as buildx's `prune` flags say it. Zero means "not set" for every size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also remove internal and frontend records (`--all`).
    pub all: bool,
    /// containerd-style filters (`--filter`).
    pub filters: Vec<String>,
    /// Keep records used more recently than this (`--keep-duration`).
    pub keep_duration: Option<Duration>,
    /// Bytes to always keep (`--reserved-space`, formerly `--keep-storage`).
    pub reserved_space: i64,
    /// Prune until the cache uses at most this many bytes (`--max-used-space`).
    pub max_used_space: i64,
    /// Prune until the disk has this many bytes free (`--min-free-space`).
    pub min_free_space: i64,
}

impl PruneOptions {
    /// The `PruneRequest` these options make.
    pub fn to_request(&self) -> pb_control::PruneRequest {
        pb_control::PruneRequest {
            filter: self.filters.clone(),
            all: self.all,
            keep_duration: self
                .keep_duration
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            reserved_space: self.reserved_space,
            max_used_space: self.max_used_space,
            min_free_space: self.min_free_space,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> pb_types::WorkerRecord {
        pb_types::WorkerRecord {
            id: "w0".into(),
            labels: BTreeMap::from([
                (labels::EXECUTOR.to_owned(), "oci".to_owned()),
                (labels::HOSTNAME.to_owned(), "buildkitd-host".to_owned()),
            ]),
            platforms: vec![
                pb::Platform {
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    ..Default::default()
                },
                pb::Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: "v7".into(),
                    ..Default::default()
                },
            ],
            gc_policy: vec![
                pb_types::GcPolicy {
                    all: false,
                    keep_duration: 172_800_000_000_000,
                    filters: vec!["type==source.local".into()],
                    reserved_space: 512 << 20,
                    max_used_space: 0,
                    min_free_space: 0,
                },
                pb_types::GcPolicy {
                    all: true,
                    keep_duration: 0,
                    filters: vec![],
                    reserved_space: 20_000,
                    max_used_space: 30_000,
                    min_free_space: 40_000,
                },
            ],
            buildkit_version: Some(pb_types::BuildkitVersion {
                package: "github.com/moby/buildkit".into(),
                version: "v0.34.2".into(),
                revision: "abc".into(),
                dockerfile_version: String::new(),
            }),
            cdi_devices: vec![],
        }
    }

    #[test]
    fn worker_record_decodes_platforms_labels_and_gc_rules() {
        let w = WorkerInfo::from(record());
        assert_eq!(w.id, "w0");
        let shown: Vec<String> = w.platforms.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["linux/amd64", "linux/arm/v7"]);
        assert_eq!(w.executor(), Some("oci"));
        assert_eq!(w.hostname(), Some("buildkitd-host"));
        assert_eq!(w.snapshotter(), None);
        assert!(w.supports(&Platform::new("linux", "arm", "v7")));
        assert!(!w.supports(&Platform::new("linux", "arm64", "")));
        assert_eq!(w.gc_policy.len(), 2);
        assert_eq!(w.gc_policy[0].filters, ["type==source.local"]);
        assert_eq!(w.gc_policy[0].keep_duration, 172_800_000_000_000);
        assert_eq!(w.gc_policy[0].reserved_space, 512 << 20);
        assert!(w.gc_policy[1].all);
        assert_eq!(
            (
                w.gc_policy[1].reserved_space,
                w.gc_policy[1].max_used_space,
                w.gc_policy[1].min_free_space
            ),
            (20_000, 30_000, 40_000)
        );
        assert_eq!(
            w.buildkit_version.to_string(),
            "github.com/moby/buildkit v0.34.2 abc"
        );
    }

    #[test]
    fn platform_round_trips_through_pb() {
        let p = Platform::new("linux", "arm64", "v8");
        assert_eq!(platform_from_pb(platform_to_pb(&p)), p);
        let empty_version = platform_from_pb(pb::Platform::default());
        assert_eq!(empty_version.os_version, None);
    }

    #[test]
    fn usage_record_merges_deprecated_parent_and_converts_times() {
        #[allow(deprecated)]
        let r = pb_control::UsageRecord {
            id: "r1".into(),
            size: 42,
            parent: "p0".into(),
            parents: vec!["p1".into()],
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            last_used_at: None,
            in_use: true,
            ..Default::default()
        };
        let c = CacheRecord::from(r);
        assert_eq!(c.parents, ["p0", "p1"]);
        assert_eq!(
            c.created_at,
            UNIX_EPOCH.checked_add(Duration::new(1_700_000_000, 5))
        );
        assert_eq!(c.last_used_at, None);
        assert!(!c.reclaimable());
        let idle_mutable = CacheRecord {
            in_use: false,
            mutable: true,
            ..c
        };
        assert!(
            idle_mutable.reclaimable(),
            "buildx counts mutable records too"
        );
    }

    #[test]
    fn timestamps_before_the_epoch_and_invalid_ones() {
        let before = system_time(prost_types::Timestamp {
            seconds: -2,
            nanos: 500_000_000,
        });
        assert_eq!(before, UNIX_EPOCH.checked_sub(Duration::from_millis(1500)));
        let invalid = system_time(prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        });
        assert_eq!(invalid, None);
    }

    #[test]
    fn prune_options_become_a_request() {
        let req = PruneOptions {
            all: true,
            filters: vec!["until=24h".into()],
            keep_duration: Some(Duration::from_secs(3600)),
            reserved_space: 1,
            max_used_space: 2,
            min_free_space: 3,
        }
        .to_request();
        assert!(req.all);
        assert_eq!(req.keep_duration, 3_600_000_000_000);
        assert_eq!(
            (req.reserved_space, req.max_used_space, req.min_free_space),
            (1, 2, 3)
        );
        assert_eq!(PruneOptions::default().to_request().keep_duration, 0);
    }
}
