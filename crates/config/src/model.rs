//! The `buildkitd.toml` model: one struct per section, with BuildKit's key names.
//!
//! Every field is optional so that "not written" stays distinguishable from "written with the
//! default value"; [`BuildkitdConfig::to_toml`] writes back only what is set.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::platform::Platform;
use crate::units::{DiskSpace, Duration, Spelling};

/// A whole `buildkitd.toml` (BuildKit's `config.Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildkitdConfig {
    /// Deprecated: `[log] level = "debug"` replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Deprecated: `[log] level = "trace"` replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<bool>,
    /// Where BuildKit keeps its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Entitlements builds may ask for (`network.host`, `security.insecure`, `device`).
    #[serde(
        rename = "insecure-entitlements",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_entitlements: Option<Vec<String>>,
    /// Enforce the proxy network for all builds.
    #[serde(rename = "proxyNetwork", skip_serializing_if = "Option::is_none")]
    pub proxy_network: Option<bool>,
    /// Directory of extra provenance environment.
    #[serde(rename = "provenanceEnvDir", skip_serializing_if = "Option::is_none")]
    pub provenance_env_dir: Option<String>,
    /// `[log]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
    /// `[grpc]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcConfig>,
    /// `[otel]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelConfig>,
    /// `[cdi]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdi: Option<CdiConfig>,
    /// `[dns]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    /// `[history]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryConfig>,
    /// `[system]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemConfig>,
    /// `[cache]` (e.g. `[cache.gha.sign]`), kept as free-form TOML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<toml::Table>,
    /// `[worker.oci]` and `[worker.containerd]`.
    #[serde(skip_serializing_if = "WorkerConfigs::is_empty")]
    pub worker: WorkerConfigs,
    /// `[registry."host"]`, keyed by host.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub registry: BTreeMap<String, RegistryConfig>,
    /// `[frontend."dockerfile.v0"]`, `[frontend."gateway.v0"]`, keyed by frontend name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub frontend: BTreeMap<String, FrontendConfig>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogConfig {
    /// `text` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// `[grpc]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GrpcConfig {
    /// Listen addresses (`unix:///run/buildkit/buildkitd.sock`, `tcp://0.0.0.0:1234`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Vec<String>>,
    /// Address for Go profiles and debuggers.
    #[serde(rename = "debugAddress", skip_serializing_if = "Option::is_none")]
    pub debug_address: Option<String>,
    /// Owner of the unix socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// Group of the unix socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    /// Windows named-pipe security descriptor.
    #[serde(rename = "securityDescriptor", skip_serializing_if = "Option::is_none")]
    pub security_descriptor: Option<String>,
    /// `[grpc.tls]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[grpc.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsConfig {
    /// Server certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Server key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// CA file for client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// `[otel]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OtelConfig {
    /// OTEL collector trace socket.
    #[serde(rename = "socketPath", skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
}

/// `[cdi]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CdiConfig {
    /// Disable the Container Device Interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Directories with CDI spec files.
    #[serde(rename = "specDirs", skip_serializing_if = "Option::is_none")]
    pub spec_dirs: Option<Vec<String>>,
    /// Devices allowed without an entitlement.
    #[serde(rename = "autoAllowed", skip_serializing_if = "Option::is_none")]
    pub auto_allowed: Option<Vec<String>>,
}

/// `[dns]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsConfig {
    /// Name servers for build containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<String>>,
    /// resolv.conf options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Search domains.
    #[serde(rename = "searchDomains", skip_serializing_if = "Option::is_none")]
    pub search_domains: Option<Vec<String>>,
}

/// `[history]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryConfig {
    /// Maximum age of build records (default 48h).
    #[serde(rename = "maxAge", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Maximum number of build records (default 50).
    #[serde(rename = "maxEntries", skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<i64>,
}

/// `[system]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemConfig {
    /// How long the emulated-platform scan is cached.
    #[serde(
        rename = "platformsCacheMaxAge",
        skip_serializing_if = "Option::is_none"
    )]
    pub platforms_cache_max_age: Option<Duration>,
    /// Concurrent connections per registry.
    #[serde(
        rename = "maxRegistryConcurrency",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_registry_concurrency: Option<i64>,
}

/// `[frontend."name"]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FrontendConfig {
    /// Whether the frontend may be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// For `gateway.v0`: repositories allowed as gateway sources (empty = all).
    #[serde(
        rename = "allowedRepositories",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_repositories: Option<Vec<String>>,
}

/// `[registry."host"]` (BuildKit's `util/resolver/config.RegistryConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegistryConfig {
    /// Mirrors tried before the registry itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<String>>,
    /// Plain HTTP (no TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<bool>,
    /// HTTPS without certificate verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// CA files to trust.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<Vec<String>>,
    /// Client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypair: Option<Vec<KeyPair>>,
    /// Directories with `*.crt`, `*.cert`, `*.key` files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsconfigdir: Option<Vec<String>>,
}

/// `[[registry."host".keypair]]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyPair {
    /// Private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
}

/// `[worker]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerConfigs {
    /// `[worker.oci]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciWorkerConfig>,
    /// `[worker.containerd]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerd: Option<ContainerdWorkerConfig>,
}

impl WorkerConfigs {
    fn is_empty(&self) -> bool {
        self.oci.is_none() && self.containerd.is_none()
    }
}

/// The garbage-collection keys both workers share (BuildKit's `GCConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcConfig {
    /// Enable garbage collection (BuildKit's default: on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<bool>,
    /// Deprecated spelling of `reservedSpace` (bytes in the file, MB on the command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gckeepstorage: Option<DiskSpace>,
    /// Worker-level reserved space.
    #[serde(rename = "reservedSpace", skip_serializing_if = "Option::is_none")]
    pub reserved_space: Option<DiskSpace>,
    /// Worker-level maximum used space.
    #[serde(rename = "maxUsedSpace", skip_serializing_if = "Option::is_none")]
    pub max_used_space: Option<DiskSpace>,
    /// Worker-level minimum free space.
    #[serde(rename = "minFreeSpace", skip_serializing_if = "Option::is_none")]
    pub min_free_space: Option<DiskSpace>,
    /// `[[worker.*.gcpolicy]]` rules; empty means BuildKit's 4 default rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gcpolicy: Vec<GcPolicyRule>,
}

/// One `[[worker.*.gcpolicy]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcPolicyRule {
    /// Also prune internal and frontend records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// Prune filters such as `type==source.local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<String>>,
    /// Keep records used within this duration.
    #[serde(rename = "keepDuration", skip_serializing_if = "Option::is_none")]
    pub keep_duration: Option<Duration>,
    /// Deprecated spelling of `reservedSpace`.
    #[serde(rename = "keepBytes", skip_serializing_if = "Option::is_none")]
    pub keep_bytes: Option<DiskSpace>,
    /// Space this rule never frees.
    #[serde(rename = "reservedSpace", skip_serializing_if = "Option::is_none")]
    pub reserved_space: Option<DiskSpace>,
    /// Space above which this rule frees records.
    #[serde(rename = "maxUsedSpace", skip_serializing_if = "Option::is_none")]
    pub max_used_space: Option<DiskSpace>,
    /// Free disk space this rule tries to keep.
    #[serde(rename = "minFreeSpace", skip_serializing_if = "Option::is_none")]
    pub min_free_space: Option<DiskSpace>,
}

/// Network keys both workers share (BuildKit's `NetworkConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// `auto`, `host`, `cni`, `bridge`.
    #[serde(rename = "networkMode", skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// CNI configuration file.
    #[serde(rename = "cniConfigPath", skip_serializing_if = "Option::is_none")]
    pub cni_config_path: Option<String>,
    /// CNI plugin directory.
    #[serde(rename = "cniBinaryPath", skip_serializing_if = "Option::is_none")]
    pub cni_binary_path: Option<String>,
    /// Pool of pre-made network namespaces.
    #[serde(rename = "cniPoolSize", skip_serializing_if = "Option::is_none")]
    pub cni_pool_size: Option<i64>,
    /// Bridge name for `bridge` mode.
    #[serde(rename = "bridgeName", skip_serializing_if = "Option::is_none")]
    pub bridge_name: Option<String>,
    /// Bridge subnet for `bridge` mode.
    #[serde(rename = "bridgeSubnet", skip_serializing_if = "Option::is_none")]
    pub bridge_subnet: Option<String>,
}

/// `[worker.oci]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OciWorkerConfig {
    /// Enable the worker (`None` = auto: when runc exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Extra worker labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Platforms the worker reports instead of detected ones.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_platforms"
    )]
    pub platforms: Option<Vec<Platform>>,
    /// `auto`, `overlayfs`, `native`, `fuse-overlayfs`, `stargz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshotter: Option<String>,
    /// Rootless mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootless: Option<bool>,
    /// Use the host PID namespace.
    #[serde(rename = "noProcessSandbox", skip_serializing_if = "Option::is_none")]
    pub no_process_sandbox: Option<bool>,
    /// Garbage collection.
    #[serde(flatten)]
    pub gc: GcConfig,
    /// Networking.
    #[serde(flatten)]
    pub network: NetworkConfig,
    /// Testing-only user remapping.
    #[serde(
        rename = "userRemapUnsupported",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_remap_unsupported: Option<String>,
    /// OCI runtime binary (`runc`, `crun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Proxy snapshotter socket.
    #[serde(
        rename = "proxySnapshotterPath",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_snapshotter_path: Option<String>,
    /// Parent cgroup of build containers.
    #[serde(
        rename = "defaultCgroupParent",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_cgroup_parent: Option<String>,
    /// Keep cgroups under buildkitd's own.
    #[serde(rename = "isolateCgroups", skip_serializing_if = "Option::is_none")]
    pub isolate_cgroups: Option<bool>,
    /// stargz snapshotter settings, free-form.
    #[serde(rename = "stargzSnapshotter", skip_serializing_if = "Option::is_none")]
    pub stargz_snapshotter: Option<toml::Table>,
    /// AppArmor profile for build containers.
    #[serde(rename = "apparmor-profile", skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    /// Apply SELinux labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<bool>,
    /// Parallel build steps (0 = unlimited).
    #[serde(rename = "max-parallelism", skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<i64>,
}

/// `[worker.containerd.runtime]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerdRuntime {
    /// Runtime name (`io.containerd.runc.v2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Shim path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Runtime options, free-form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<toml::Table>,
}

/// `[worker.containerd]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerdWorkerConfig {
    /// containerd socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Enable the worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Extra worker labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Platforms the worker reports.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_platforms"
    )]
    pub platforms: Option<Vec<Platform>>,
    /// containerd namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `[worker.containerd.runtime]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ContainerdRuntime>,
    /// Garbage collection.
    #[serde(flatten)]
    pub gc: GcConfig,
    /// Networking.
    #[serde(flatten)]
    pub network: NetworkConfig,
    /// containerd snapshotter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshotter: Option<String>,
    /// AppArmor profile.
    #[serde(rename = "apparmor-profile", skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    /// Apply SELinux labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<bool>,
    /// Parallel build steps.
    #[serde(rename = "max-parallelism", skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<i64>,
    /// Parent cgroup of build containers.
    #[serde(
        rename = "defaultCgroupParent",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_cgroup_parent: Option<String>,
    /// Rootless mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootless: Option<bool>,
}

/// Which worker a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// `[worker.oci]` (what buildx's container drivers run).
    Oci,
    /// `[worker.containerd]`.
    Containerd,
}

impl BuildkitdConfig {
    /// The GC settings of one worker (defaults when the section is absent).
    pub fn gc_config(&self, worker: WorkerKind) -> GcConfig {
        match worker {
            WorkerKind::Oci => self.worker.oci.as_ref().map(|w| w.gc.clone()),
            WorkerKind::Containerd => self.worker.containerd.as_ref().map(|w| w.gc.clone()),
        }
        .unwrap_or_default()
    }

    /// Writes the model back as TOML. Parsing the output gives an equal model.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

fn ser_platforms<S: Serializer>(v: &Option<Vec<Platform>>, s: S) -> Result<S::Ok, S::Error> {
    let strings: Option<Vec<String>> = v
        .as_ref()
        .map(|v| v.iter().map(ToString::to_string).collect());
    strings.serialize(s)
}

impl Serialize for DiskSpace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_raw(self.raw(), self.spelling(), s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_raw(self.raw(), self.spelling(), s)
    }
}

/// Writes a unit value back the way it was spelled: a bare integer stays an integer.
fn ser_raw<S: Serializer>(raw: &str, spelling: Spelling, s: S) -> Result<S::Ok, S::Error> {
    match (spelling, raw.parse::<i64>()) {
        (Spelling::Integer, Ok(n)) => s.serialize_i64(n),
        _ => s.serialize_str(raw),
    }
}
