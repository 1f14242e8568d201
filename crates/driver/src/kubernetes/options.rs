//! The kubernetes driver's `--driver-opt` keys, read as buildx 0.29 reads them
//! (`driver/kubernetes/factory.go`), plus brix's own `hostnetwork` and
//! `persistent-volume-claim.*`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::DriverError;

/// The BuildKit image buildx runs by default (the docker-container driver's).
pub use crate::docker_container::DEFAULT_IMAGE;
/// The rootless variant, the default with `rootless=true` and no `image`.
pub const DEFAULT_ROOTLESS_IMAGE: &str = "moby/buildkit:buildx-stable-1-rootless";
/// The image of the `qemu.install` init container.
pub const DEFAULT_QEMU_IMAGE: &str = "tonistiigi/binfmt:latest";
/// How long `bootstrap` waits for the pods by default (buildx: 120 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Every key the driver accepts (`env.<NAME>` stands for any name).
pub const VALID_OPTIONS: &[&str] = &[
    "image",
    "namespace",
    "replicas",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "buildkit-root-volume-memory",
    "nodeselector",
    "annotations",
    "labels",
    "tolerations",
    "serviceaccount",
    "schedulername",
    "rootless",
    "loadbalance",
    "qemu.install",
    "qemu.image",
    "default-load",
    "timeout",
    "env.<NAME>",
    "hostnetwork",
    "persistent-volume-claim.size",
    "persistent-volume-claim.storage-class",
    "requests.persistent-storage",
];

/// How a build picks one of the pods (`loadbalance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalance {
    /// The pod a consistent hash of the build context's path falls on (buildx's default):
    /// builds of one project reuse one pod's cache.
    #[default]
    Sticky,
    /// Any running pod.
    Random,
}

/// One taint toleration (`tolerations=key=k,operator=Exists,effect=NoSchedule;...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Toleration {
    /// The taint key.
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    pub operator: Option<String>,
    /// The taint value.
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: Option<String>,
    /// How long a `NoExecute` taint is tolerated.
    pub toleration_seconds: Option<i64>,
}

/// A volume claim per pod (brix: `persistent-volume-claim.size=…`): the daemons run as a
/// StatefulSet and keep their state across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistentVolume {
    /// The storage requested, a Kubernetes quantity (`10Gi`).
    pub size: String,
    /// The storage class; the cluster's default when absent.
    pub storage_class: Option<String>,
}

/// The kubernetes driver's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// The namespace; the kubeconfig context's when absent.
    pub namespace: Option<String>,
    /// The BuildKit image.
    pub image: String,
    /// Pods to run.
    pub replicas: i32,
    /// `requests.*` by resource name (`cpu`, `memory`, `ephemeral-storage`).
    pub requests: BTreeMap<String, String>,
    /// `limits.*` by resource name.
    pub limits: BTreeMap<String, String>,
    /// `buildkit-root-volume-memory`: `/var/lib/buildkit` on a memory-backed volume this big.
    pub root_volume_memory: Option<String>,
    /// The pods' node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Extra annotations on the Deployment and its pods.
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on the Deployment and its pods.
    pub labels: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    pub tolerations: Vec<Toleration>,
    /// The pods' service account.
    pub service_account: Option<String>,
    /// The scheduler for the pods.
    pub scheduler_name: Option<String>,
    /// Rootless BuildKit (no privileged container).
    pub rootless: bool,
    /// How a build picks a pod.
    pub loadbalance: LoadBalance,
    /// Register QEMU emulators from an init container.
    pub qemu_install: bool,
    /// The init container's image.
    pub qemu_image: String,
    /// Load results into Docker by default.
    pub default_load: bool,
    /// How long to wait for the pods.
    pub timeout: Duration,
    /// `env.NAME=value`, in name order.
    pub env: Vec<(String, String)>,
    /// brix: the pods use the node's network (to reach registries on its loopback).
    pub host_network: bool,
    /// brix: a volume claim per pod, and a StatefulSet instead of a Deployment.
    pub persistent_volume: Option<PersistentVolume>,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            namespace: None,
            image: DEFAULT_IMAGE.to_string(),
            replicas: 1,
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
            root_volume_memory: None,
            node_selector: BTreeMap::new(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            tolerations: Vec::new(),
            service_account: None,
            scheduler_name: None,
            rootless: false,
            loadbalance: LoadBalance::Sticky,
            qemu_install: false,
            qemu_image: DEFAULT_QEMU_IMAGE.to_string(),
            default_load: false,
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
            host_network: false,
            persistent_volume: None,
        }
    }
}

impl KubernetesOptions {
    /// Parses `--driver-opt` pairs; an unknown key is an error listing the valid ones, a
    /// value that does not parse names the key and what is expected.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        let mut o = Self::default();
        let invalid = |k: &str, v: &str, reason: &str| DriverError::InvalidOption {
            key: k.to_string(),
            value: v.to_string(),
            reason: reason.to_string(),
        };
        let boolean = |k: &str, v: &str| {
            crate::docker_container::parse_bool(v)
                .ok_or_else(|| invalid(k, v, "expected true or false"))
        };
        let quantity = |k: &str, v: &str| {
            if is_quantity(v) {
                Ok(v.to_string())
            } else {
                Err(invalid(k, v, QUANTITY_RULE))
            }
        };
        let mut pvc_size = None;
        let mut pvc_class = None;
        for (k, v) in opts {
            match k.as_str() {
                "image" => {
                    if !v.is_empty() {
                        o.image = v.clone();
                    }
                }
                "namespace" => o.namespace = Some(v.clone()).filter(|n| !n.is_empty()),
                "replicas" => {
                    o.replicas = v
                        .parse::<i32>()
                        .ok()
                        .filter(|r| *r >= 0)
                        .ok_or_else(|| invalid(k, v, "expected a number of pods"))?;
                }
                "requests.cpu" | "requests.memory" | "requests.ephemeral-storage" => {
                    o.requests
                        .insert(k["requests.".len()..].to_string(), quantity(k, v)?);
                }
                "limits.cpu" | "limits.memory" | "limits.ephemeral-storage" => {
                    o.limits
                        .insert(k["limits.".len()..].to_string(), quantity(k, v)?);
                }
                "buildkit-root-volume-memory" => o.root_volume_memory = Some(quantity(k, v)?),
                "nodeselector" => {
                    o.node_selector = split_multi_values(v)
                        .map_err(|e| invalid(k, v, &format!("cannot parse node selector: {e}")))?
                }
                "annotations" => {
                    o.annotations = split_multi_values(v)
                        .map_err(|e| invalid(k, v, &format!("cannot parse annotations: {e}")))?
                }
                "labels" => {
                    o.labels = split_multi_values(v)
                        .map_err(|e| invalid(k, v, &format!("cannot parse labels: {e}")))?
                }
                "tolerations" => {
                    o.tolerations = parse_tolerations(v).map_err(|e| invalid(k, v, &e))?
                }
                "serviceaccount" => o.service_account = Some(v.clone()).filter(|s| !s.is_empty()),
                "schedulername" => o.scheduler_name = Some(v.clone()).filter(|s| !s.is_empty()),
                "rootless" => {
                    o.rootless = boolean(k, v)?;
                    if o.rootless && !opts.contains_key("image") {
                        o.image = DEFAULT_ROOTLESS_IMAGE.to_string();
                    }
                }
                "loadbalance" => {
                    o.loadbalance = match v.as_str() {
                        "sticky" => LoadBalance::Sticky,
                        "random" => LoadBalance::Random,
                        _ => return Err(invalid(k, v, "expected sticky or random")),
                    }
                }
                "qemu.install" => o.qemu_install = boolean(k, v)?,
                "qemu.image" => {
                    if !v.is_empty() {
                        o.qemu_image = v.clone();
                    }
                }
                "default-load" => o.default_load = boolean(k, v)?,
                "timeout" => {
                    let nanos = brix_config::parse_go_duration(v)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid(k, v, "expected a duration such as 120s or 5m"))?;
                    o.timeout = Duration::from_nanos(nanos as u64);
                }
                "hostnetwork" => o.host_network = boolean(k, v)?,
                // buildx after 0.29 names the claim's size `requests.persistent-storage`.
                "persistent-volume-claim.size" | "requests.persistent-storage" => {
                    pvc_size = Some(quantity(k, v)?)
                }
                "persistent-volume-claim.storage-class" => {
                    pvc_class = Some(v.clone()).filter(|c| !c.is_empty())
                }
                _ if k.starts_with("env.") => {
                    let name = &k["env.".len()..];
                    if name.is_empty() {
                        return Err(invalid(k, v, "expecting env.NAME=value"));
                    }
                    o.env.push((name.to_string(), v.clone()));
                }
                _ => {
                    return Err(DriverError::UnknownOption {
                        driver: "kubernetes",
                        key: k.clone(),
                        valid: VALID_OPTIONS.to_vec(),
                    });
                }
            }
        }
        match (pvc_size, pvc_class) {
            (Some(size), storage_class) => {
                o.persistent_volume = Some(PersistentVolume {
                    size,
                    storage_class,
                })
            }
            (None, Some(_)) => {
                return Err(DriverError::Invalid(
                    "driver option persistent-volume-claim.storage-class needs persistent-volume-claim.size=<quantity> (for example 10Gi)".into(),
                ));
            }
            (None, None) => {}
        }
        if o.annotations
            .contains_key(super::manifest::ANNOTATION_PLATFORM)
        {
            return Err(DriverError::Invalid(format!(
                "the annotation {:?} is reserved and cannot be customized",
                super::manifest::ANNOTATION_PLATFORM
            )));
        }
        if o.labels.contains_key(super::manifest::LABEL_APP) {
            return Err(DriverError::Invalid(format!(
                "the label {:?} is reserved and cannot be customized",
                super::manifest::LABEL_APP
            )));
        }
        Ok(o)
    }
}

/// What Kubernetes says of a bad quantity.
const QUANTITY_RULE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Whether `s` is a Kubernetes resource quantity: a decimal number with an optional binary
/// (`Ki`…`Ei`), decimal (`n u m k M G T P E`) or exponent (`e3`) suffix.
pub fn is_quantity(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        _ => {
            let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
                return false;
            };
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
    }
}

/// `k=v,k=v` as buildx splits it (`splitMultiValues`): the whole value may be quoted, and
/// each item must have exactly one `=`.
fn split_multi_values(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in v.trim_matches('"').split(',') {
        let parts: Vec<&str> = item.split('=').collect();
        match parts.as_slice() {
            [k, val] => {
                out.insert((*k).to_string(), (*val).to_string());
            }
            _ => return Err(format!("invalid key-value pair: {item}")),
        }
    }
    Ok(out)
}

/// `key=k,operator=Exists,value=v,effect=NoSchedule,tolerationSeconds=N;…` as buildx reads
/// it: items without exactly one `=` are skipped, an unknown field is an error.
fn parse_tolerations(v: &str) -> Result<Vec<Toleration>, String> {
    let mut out = Vec::new();
    for entry in v.split(';') {
        let mut t = Toleration::default();
        for field in entry.split(',') {
            let kv: Vec<&str> = field.split('=').collect();
            let [key, value] = kv.as_slice() else {
                continue;
            };
            let value = (*value).to_string();
            match *key {
                "key" => t.key = Some(value),
                "operator" => t.operator = Some(value),
                "value" => t.value = Some(value),
                "effect" => t.effect = Some(value),
                "tolerationSeconds" => {
                    t.toleration_seconds = Some(value.parse::<i64>().map_err(|_| {
                        format!("tolerationSeconds must be a number of seconds, not {value:?}")
                    })?)
                }
                // buildx's wording, typo included.
                _ => return Err(format!("invalid tolaration {v:?}")),
            }
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_buildx_defaults() {
        let o = KubernetesOptions::parse(&BTreeMap::new()).unwrap();
        assert_eq!(o.image, DEFAULT_IMAGE);
        assert_eq!(o.replicas, 1);
        assert_eq!(o.loadbalance, LoadBalance::Sticky);
        assert_eq!(o.timeout, Duration::from_secs(120));
        assert_eq!(o.qemu_image, DEFAULT_QEMU_IMAGE);
        assert!(!o.default_load && !o.rootless && !o.host_network);
    }

    #[test]
    fn every_option_parses() {
        let o = KubernetesOptions::parse(&opts(&[
            ("namespace", "builds"),
            ("replicas", "3"),
            ("requests.cpu", "500m"),
            ("requests.memory", "1Gi"),
            ("limits.ephemeral-storage", "10G"),
            ("buildkit-root-volume-memory", "6G"),
            ("nodeselector", "kubernetes.io/arch=arm64,pool=fast"),
            ("annotations", "\"a=1,b=2\""),
            ("labels", "team=ci"),
            (
                "tolerations",
                "key=foo,value=bar;key=foo2,operator=Exists;key=foo3,effect=NoSchedule,tolerationSeconds=30",
            ),
            ("serviceaccount", "builder"),
            ("schedulername", "custom"),
            ("rootless", "true"),
            ("loadbalance", "random"),
            ("qemu.install", "1"),
            ("qemu.image", "binfmt:local"),
            ("default-load", "true"),
            ("timeout", "5m"),
            ("env.BUILDKIT_STEP_LOG_MAX_SIZE", "-1"),
            ("hostnetwork", "true"),
            ("persistent-volume-claim.size", "10Gi"),
        ]))
        .unwrap();
        assert_eq!(o.namespace.as_deref(), Some("builds"));
        assert_eq!(o.replicas, 3);
        assert_eq!(o.requests["cpu"], "500m");
        assert_eq!(o.limits["ephemeral-storage"], "10G");
        assert_eq!(o.node_selector["kubernetes.io/arch"], "arm64");
        assert_eq!(o.annotations["b"], "2");
        assert_eq!(o.tolerations.len(), 3);
        assert_eq!(o.tolerations[1].operator.as_deref(), Some("Exists"));
        assert_eq!(o.tolerations[2].toleration_seconds, Some(30));
        assert_eq!(o.image, DEFAULT_ROOTLESS_IMAGE);
        assert_eq!(o.loadbalance, LoadBalance::Random);
        assert_eq!(o.timeout, Duration::from_secs(300));
        assert_eq!(o.env, [("BUILDKIT_STEP_LOG_MAX_SIZE".into(), "-1".into())]);
        assert_eq!(o.persistent_volume.unwrap().size, "10Gi");
    }

    #[test]
    fn bad_values_name_the_option() {
        for (k, v, want) in [
            ("replicas", "two", "replicas"),
            ("requests.cpu", "lots", "quantities must match"),
            ("loadbalance", "round-robin", "sticky or random"),
            ("nodeselector", "arch", "invalid key-value pair: arch"),
            ("tolerations", "key=a,color=red", "invalid tolaration"),
            ("timeout", "soon", "duration"),
            ("qemu.install", "maybe", "true or false"),
        ] {
            let e = KubernetesOptions::parse(&opts(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains(k), "{k}={v}: {e}");
        }
        let e = KubernetesOptions::parse(&opts(&[("network", "host")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"network\"") && e.contains("replicas"), "{e}");
        let e = KubernetesOptions::parse(&opts(&[("labels", "app=x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserved"), "{e}");
        assert!(
            KubernetesOptions::parse(&opts(&[("persistent-volume-claim.storage-class", "ssd")]))
                .is_err()
        );
        let newer =
            KubernetesOptions::parse(&opts(&[("requests.persistent-storage", "5Gi")])).unwrap();
        assert_eq!(newer.persistent_volume.unwrap().size, "5Gi");
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "1.5Gi", "2G", "1e3", "+1Ki", ".5", "100M"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "G", "1GB", "1..2", "1e", "lots", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
