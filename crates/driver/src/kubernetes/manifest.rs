//! The objects a kubernetes node is made of, as buildx makes them
//! (`driver/kubernetes/manifest`): a Deployment named after the node whose pods run
//! `buildkitd` (privileged, probed with `buildctl debug workers`), and the node's
//! buildkitd.toml and certificates as ConfigMaps mounted under `/etc/buildkit`. With
//! `persistent-volume-claim.size` (brix) a StatefulSet with a volume claim per pod instead.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::options::KubernetesOptions;
use brix_config::Platform;

/// The BuildKit container's name; `buildctl dial-stdio` runs in it.
pub const CONTAINER_NAME: &str = "buildkitd";
/// The annotation carrying the node's pinned platforms (read back by `ls`/`inspect`).
pub const ANNOTATION_PLATFORM: &str = "buildx.docker.com/platform";
/// The label that selects a node's pods.
pub const LABEL_APP: &str = "app";
/// The volume claim (and rootless state volume) name.
pub const STATE_VOLUME: &str = "buildkitd";
const ROOT_VOLUME: &str = "buildkit-memory";
const ROOT_PATH: &str = "/var/lib/buildkit";
const ROOTLESS_STATE_PATH: &str = "/home/user/.local/share/buildkit";
const CONFIG_DIR: &str = "/etc/buildkit";

/// What runs the node's pods.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// The usual case, as buildx.
    Deployment(Box<Deployment>),
    /// With a volume claim per pod.
    StatefulSet(Box<StatefulSet>),
}

/// Everything one node needs in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeObjects {
    /// The pods' owner.
    pub workload: Workload,
    /// The node's files, one ConfigMap per folder (`<name>-config`, `<name>-config-N`).
    pub config_maps: Vec<ConfigMap>,
}

/// What [`node_objects`] is made from.
pub struct NodeSpec<'a> {
    /// The Deployment's name (the node's, `_` as `-`).
    pub name: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The driver options.
    pub opts: &'a KubernetesOptions,
    /// buildkitd's flags.
    pub flags: &'a [String],
    /// Files under `/etc/buildkit`, keyed by relative path.
    pub files: &'a BTreeMap<String, Vec<u8>>,
    /// Platforms pinned on the node.
    pub platforms: &'a [Platform],
}

/// The Deployment (or StatefulSet) and ConfigMaps of one node.
pub fn node_objects(spec: &NodeSpec<'_>) -> NodeObjects {
    let opts = spec.opts;
    let mut labels = BTreeMap::from([(LABEL_APP.to_string(), spec.name.to_string())]);
    labels.extend(opts.labels.clone());
    let mut annotations = BTreeMap::new();
    if !spec.platforms.is_empty() {
        let list: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
        annotations.insert(ANNOTATION_PLATFORM.to_string(), list.join(","));
    }
    annotations.extend(opts.annotations.clone());

    // buildx's probes (every 30 s after 5 s) hold a fresh pod unready for half a minute
    // when buildkitd needs more than the first 5 s; brix probes readiness every 2 s instead.
    let readiness = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["buildctl".into(), "debug".into(), "workers".into()]),
        }),
        failure_threshold: Some(3),
        initial_delay_seconds: Some(1),
        period_seconds: Some(2),
        success_threshold: Some(1),
        timeout_seconds: Some(60),
        ..Default::default()
    };
    let probe = || Probe {
        exec: Some(ExecAction {
            command: Some(vec!["buildctl".into(), "debug".into(), "workers".into()]),
        }),
        failure_threshold: Some(3),
        initial_delay_seconds: Some(5),
        period_seconds: Some(30),
        success_threshold: Some(1),
        timeout_seconds: Some(60),
        ..Default::default()
    };
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let mut container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(opts.image.clone()),
        args: (!spec.flags.is_empty()).then(|| spec.flags.to_vec()),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        readiness_probe: Some(readiness),
        liveness_probe: Some(probe()),
        resources: Some(ResourceRequirements {
            requests: quantities(&opts.requests),
            limits: quantities(&opts.limits),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let mut config_maps = Vec::new();
    let mut numbered = 0;
    for (dir, files) in config_folders(spec.files) {
        let volume = if dir.is_empty() {
            "config".to_string()
        } else {
            numbered += 1;
            format!("config-{numbered}")
        };
        let map_name = format!("{}-{volume}", spec.name);
        config_maps.push(ConfigMap {
            metadata: ObjectMeta {
                name: Some(map_name.clone()),
                namespace: Some(spec.namespace.to_string()),
                annotations: (!annotations.is_empty()).then(|| annotations.clone()),
                ..Default::default()
            },
            data: Some(files),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume.clone(),
            mount_path: if dir.is_empty() {
                CONFIG_DIR.to_string()
            } else {
                format!("{CONFIG_DIR}/{dir}")
            },
            ..Default::default()
        });
        volumes.push(Volume {
            name: volume,
            config_map: Some(ConfigMapVolumeSource {
                name: map_name,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut pod_annotations = annotations.clone();
    if opts.rootless {
        let args = container.args.get_or_insert_with(Vec::new);
        args.push("--oci-worker-no-process-sandbox".to_string());
        container.security_context = Some(SecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod_annotations.insert(
            format!("container.apparmor.security.beta.kubernetes.io/{CONTAINER_NAME}"),
            "unconfined".to_string(),
        );
        mounts.push(VolumeMount {
            name: STATE_VOLUME.to_string(),
            mount_path: ROOTLESS_STATE_PATH.to_string(),
            ..Default::default()
        });
        volumes.push(Volume {
            name: STATE_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    if let Some(size) = &opts.root_volume_memory {
        volumes.push(Volume {
            name: ROOT_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_string()),
                size_limit: Some(Quantity(size.clone())),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: ROOT_VOLUME.to_string(),
            mount_path: ROOT_PATH.to_string(),
            ..Default::default()
        });
    }
    if opts.persistent_volume.is_some() && !opts.rootless {
        mounts.push(VolumeMount {
            name: STATE_VOLUME.to_string(),
            mount_path: ROOT_PATH.to_string(),
            ..Default::default()
        });
    }
    if !opts.env.is_empty() {
        container.env = Some(
            opts.env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    ..Default::default()
                })
                .collect(),
        );
    }
    container.volume_mounts = (!mounts.is_empty()).then_some(mounts);

    let pod_spec = PodSpec {
        containers: vec![container],
        init_containers: opts.qemu_install.then(|| {
            vec![Container {
                name: "qemu".to_string(),
                image: Some(opts.qemu_image.clone()),
                args: Some(vec!["--install".into(), "all".into()]),
                security_context: Some(SecurityContext {
                    privileged: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        service_account_name: opts.service_account.clone(),
        scheduler_name: opts.scheduler_name.clone(),
        node_selector: (!opts.node_selector.is_empty()).then(|| opts.node_selector.clone()),
        tolerations: (!opts.tolerations.is_empty()).then(|| {
            opts.tolerations
                .iter()
                .map(|t| Toleration {
                    key: t.key.clone(),
                    operator: t.operator.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                    toleration_seconds: t.toleration_seconds,
                })
                .collect()
        }),
        host_network: opts.host_network.then_some(true),
        // On the node's network the pod resolves names as the node does.
        dns_policy: opts
            .host_network
            .then(|| "ClusterFirstWithHostNet".to_string()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
            ..Default::default()
        }),
        spec: Some(pod_spec),
    };
    let metadata = ObjectMeta {
        name: Some(spec.name.to_string()),
        namespace: Some(spec.namespace.to_string()),
        labels: Some(labels.clone()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    };
    let selector = LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    };
    let workload = match &opts.persistent_volume {
        None => Workload::Deployment(Box::new(Deployment {
            metadata,
            spec: Some(DeploymentSpec {
                replicas: Some(opts.replicas),
                selector,
                template,
                ..Default::default()
            }),
            ..Default::default()
        })),
        Some(pv) => Workload::StatefulSet(Box::new(StatefulSet {
            metadata,
            spec: Some(StatefulSetSpec {
                service_name: Some("buildkitd".to_string()),
                pod_management_policy: Some("Parallel".to_string()),
                replicas: Some(opts.replicas),
                selector,
                template,
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(STATE_VOLUME.to_string()),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                        storage_class_name: pv.storage_class.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some(BTreeMap::from([(
                                "storage".to_string(),
                                Quantity(pv.size.clone()),
                            )])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    NodeObjects {
        workload,
        config_maps,
    }
}

/// The node's files grouped by folder (the top folder, `""`, first; then the others in
/// name order), each a ConfigMap's data keyed by file name. buildx numbers the folders in
/// Go's map order; brix in name order, so a node's objects are the same on every run.
fn config_folders(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, BTreeMap<String, String>)> {
    let mut folders: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (path, data) in files {
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        folders
            .entry(dir.to_string())
            .or_default()
            .insert(base.to_string(), String::from_utf8_lossy(data).into_owned());
    }
    folders.into_iter().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn objects(pairs: &[(&str, &str)], files: &[(&str, &str)]) -> NodeObjects {
        let opts: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let opts = KubernetesOptions::parse(&opts).unwrap();
        let files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let flags = vec!["--allow-insecure-entitlement=network.host".to_string()];
        let platforms = vec![Platform::parse("linux/arm64").unwrap()];
        node_objects(&NodeSpec {
            name: "kube0",
            namespace: "builds",
            opts: &opts,
            flags: &flags,
            files: &files,
            platforms: &platforms,
        })
    }

    fn deployment(o: &NodeObjects) -> &Deployment {
        match &o.workload {
            Workload::Deployment(d) => d,
            Workload::StatefulSet(_) => panic!("expected a Deployment"),
        }
    }

    #[test]
    fn deployment_as_buildx_makes_it() {
        let o = objects(
            &[("replicas", "2"), ("requests.cpu", "500m"), ("env.A", "1")],
            &[
                ("buildkitd.toml", "debug = true\n"),
                ("certs/reg_5000/ca.pem", "CA"),
            ],
        );
        let d = deployment(&o);
        assert_eq!(d.metadata.name.as_deref(), Some("kube0"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("builds"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()["app"], "kube0");
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.name, "buildkitd");
        assert_eq!(c.image.as_deref(), Some("moby/buildkit:buildx-stable-1"));
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(
            c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
        assert_eq!(c.env.as_ref().unwrap()[0].name, "A");
        let mounts: Vec<(&str, &str)> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("config", "/etc/buildkit"),
                ("config-1", "/etc/buildkit/certs/reg_5000")
            ]
        );
        let names: Vec<&str> = o
            .config_maps
            .iter()
            .map(|c| c.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["kube0-config", "kube0-config-1"]);
        assert_eq!(
            o.config_maps[0].data.as_ref().unwrap()["buildkitd.toml"],
            "debug = true\n"
        );
        assert_eq!(
            d.metadata.annotations.as_ref().unwrap()[ANNOTATION_PLATFORM],
            "linux/arm64"
        );
        assert!(pod.init_containers.is_none() && pod.host_network.is_none());
    }

    #[test]
    fn options_shape_the_pods() {
        let o = objects(
            &[
                ("rootless", "true"),
                ("qemu.install", "true"),
                ("nodeselector", "kubernetes.io/arch=arm64"),
                ("tolerations", "key=a,operator=Exists"),
                ("buildkit-root-volume-memory", "2Gi"),
                ("hostnetwork", "true"),
            ],
            &[],
        );
        let pod = deployment(&o)
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .clone()
            .unwrap();
        let c = &pod.containers[0];
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--oci-worker-no-process-sandbox".to_string())
        );
        assert!(c.security_context.as_ref().unwrap().privileged.is_none());
        assert_eq!(
            c.image.as_deref(),
            Some("moby/buildkit:buildx-stable-1-rootless")
        );
        assert_eq!(pod.init_containers.as_ref().unwrap()[0].name, "qemu");
        assert_eq!(
            pod.node_selector.as_ref().unwrap()["kubernetes.io/arch"],
            "arm64"
        );
        assert_eq!(
            pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("a")
        );
        assert_eq!(pod.host_network, Some(true));
        let memory = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "buildkit-memory")
            .unwrap();
        assert_eq!(
            memory.empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
        assert!(o.config_maps.is_empty());
    }

    #[test]
    fn volume_claim_makes_a_stateful_set() {
        let o = objects(
            &[
                ("persistent-volume-claim.size", "10Gi"),
                ("persistent-volume-claim.storage-class", "fast"),
            ],
            &[],
        );
        let Workload::StatefulSet(s) = &o.workload else {
            panic!("expected a StatefulSet")
        };
        let spec = s.spec.as_ref().unwrap();
        let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("buildkitd"));
        let cs = claim.spec.as_ref().unwrap();
        assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
        let mounts = spec.template.spec.as_ref().unwrap().containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        assert_eq!(mounts[0].mount_path, "/var/lib/buildkit");
    }
}
