//! The kubernetes driver on the real single-node cluster `cargo xtask e2e` runs (Kubernetes
//! 1.34 built from its Go module, containerd 2.1): `create --bootstrap` with replicas and a
//! buildkitd.toml, `inspect`/`ls` side by side with real buildx on the same builder, `stop`
//! and `rm`, a two-platform push, `loadbalance=sticky|random` (which pod served each build
//! is read from each pod's own BuildKit history), and a two-node builder (`create --append`)
//! where each platform goes to its node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use brix_e2e::{E2eEnv, Run, gc_rules, image_platforms, pushed_index, run, unique_name, wait_for};

/// The GC policy the builders get; BuildKit reports it back through its workers.
const GC_CONFIG: &str = "[worker.oci]\n  gc = true\n[[worker.oci.gcpolicy]]\n  keepDuration = \"48h\"\n  filters = [\"type==source.local\"]\n[[worker.oci.gcpolicy]]\n  all = true\n  reservedSpace = \"2GB\"\n";

/// The cluster of one test: a namespace of its own (deleted with everything in it when the
/// test ends) and a builder store of its own, shared by brix and real buildx.
struct Cluster {
    env: E2eEnv,
    kubeconfig: String,
    kubectl: String,
    namespace: String,
    store: PathBuf,
}

impl Cluster {
    fn new(purpose: &str) -> Option<Self> {
        let env = E2eEnv::get()?;
        let (Ok(kubeconfig), Ok(kubectl)) = (
            std::env::var("BRIX_E2E_KUBECONFIG"),
            std::env::var("BRIX_E2E_KUBECTL"),
        ) else {
            panic!(
                "BRIX_E2E_KUBECONFIG/BRIX_E2E_KUBECTL are not set: the cluster is not running; run `cargo xtask e2e --setup-only` (its kubernetes step)"
            )
        };
        let namespace = unique_name(purpose);
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let cluster = Cluster {
            env,
            kubeconfig,
            kubectl,
            namespace,
            store,
        };
        cluster
            .kubectl(&["create", "namespace", &cluster.namespace])
            .ok();
        Some(cluster)
    }

    fn kubectl(&self, args: &[&str]) -> Run {
        run(Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args))
    }

    /// `kubectl -n <namespace> ...`.
    fn kube(&self, args: &[&str]) -> Run {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    fn tool(&self, tool: &str) -> Command {
        let mut c = self.env.tool_in(tool, &self.store);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("BRIX_PROGRESS", "plain")
            .env("BUILDKIT_PROGRESS", "plain");
        c
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.tool("brix").args(args))
    }

    fn buildx(&self, args: &[&str]) -> Run {
        run(self.tool("buildx").args(args))
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.store.join(file);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// A buildkitd.toml with the GC policy and the e2e registry over plain HTTP.
    fn config(&self) -> PathBuf {
        self.write(
            "buildkitd.toml",
            &format!(
                "{GC_CONFIG}[registry.\"{}\"]\n  http = true\n",
                self.env.registry
            ),
        )
    }

    /// The Running pods of node `node`, sorted.
    fn pods(&self, node: &str) -> Vec<String> {
        let out = self
            .kube(&[
                "get",
                "pods",
                "-l",
                &format!("app={node}"),
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])
            .ok();
        let mut pods: Vec<String> = out.stdout.split_whitespace().map(str::to_owned).collect();
        pods.sort();
        pods
    }

    /// How many build records each pod's BuildKit holds (`buildctl debug histories`).
    fn records(&self, pods: &[String]) -> Vec<usize> {
        pods.iter()
            .map(|pod| {
                let out = self
                    .kube(&["exec", pod, "--", "buildctl", "debug", "histories"])
                    .ok();
                out.stdout
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .count()
            })
            .collect()
    }

    /// The first worker of `pod`, as its BuildKit reports it.
    fn workers(&self, pod: &str) -> serde_json::Value {
        let out = self
            .kube(&[
                "exec",
                pod,
                "--",
                "buildctl",
                "debug",
                "workers",
                "--format",
                "{{json .}}",
            ])
            .ok();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("workers of {pod} are not JSON ({e}): {}", out.stdout))
    }

    /// A build context with a unique file, so each build really runs.
    fn context(&self, purpose: &str) -> PathBuf {
        let dir = self.env.scratch_dir(purpose);
        std::fs::write(
            dir.join("Dockerfile"),
            format!(
                "FROM {}\nCOPY stamp /stamp\nRUN cat /stamp && uname -m > /arch\n",
                self.env.busybox
            ),
        )
        .expect("writing Dockerfile");
        std::fs::write(dir.join("stamp"), unique_name(purpose)).expect("writing stamp");
        dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The store goes with the scratch folder; the namespace takes every object with it.
        let _ = self.kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `inspect`'s text without the worker's hostname (the pod's name, which differs between
/// brix's entries, each read from its own pod, and buildx's, all read from one). buildx prints `Driver Options` in Go's map order, which changes from run to run: they are
/// put in name order.
fn without_hostnames(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("org.mobyproject.buildkit.worker.hostname"))
        .map(|l| match l.strip_prefix("Driver Options:") {
            Some(opts) => {
                let mut items: Vec<&str> = opts.split_whitespace().collect();
                items.sort_unstable();
                format!("Driver Options: {}", items.join(" "))
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn replicas_config_inspect_ls_stop_rm_as_buildx() {
    let Some(k) = Cluster::new("k8s-life") else {
        return;
    };
    brix_e2e::require_buildx();
    let name = unique_name("kl");
    let node = format!("{name}0");
    let config = k.config();

    // A bad buildkitd.toml is refused with its line and column before anything is created.
    let bad = k.write("bad.toml", "[worker.oci]\n  gc = maybe\n");
    let refused = k.brix(&[
        "create",
        "--name",
        &name,
        "--driver",
        "kubernetes",
        "--driver-opt",
        &format!("namespace={}", k.namespace),
        "--config",
        path(&bad),
    ]);
    assert!(!refused.success, "a bad buildkitd.toml was accepted");
    assert!(
        refused.stderr.contains("bad.toml:2:"),
        "no line:column: {}",
        refused.stderr
    );
    let objects = k
        .kube(&["get", "deployments,configmaps", "-o", "name"])
        .ok();
    assert!(
        !objects.stdout.contains(&node),
        "objects were created for a refused file: {}",
        objects.stdout
    );

    let created = k.brix(&[
        "create",
        "--name",
        &name,
        "--driver",
        "kubernetes",
        "--driver-opt",
        &format!("replicas=2,namespace={}", k.namespace),
        "--config",
        path(&config),
        "--bootstrap",
    ]);
    let created = created.ok();
    assert_eq!(created.stdout.trim(), name);
    assert!(
        created
            .stderr
            .contains("waiting for 2 pods to be ready, timeout: 2 minutes"),
        "{}",
        created.stderr
    );
    let pods = k.pods(&node);
    assert_eq!(pods.len(), 2, "pods: {pods:?}");
    let map = k
        .kube(&[
            "get",
            "configmap",
            &format!("{node}-config"),
            "-o",
            "jsonpath={.data.buildkitd\\.toml}",
        ])
        .ok();
    assert!(map.stdout.contains("reservedSpace"), "{}", map.stdout);

    // Every pod applies the file: its workers report the two rules.
    for pod in &pods {
        let rules = gc_rules(&k.workers(pod));
        assert_eq!(rules.len(), 2, "{pod}: {rules:?}");
    }

    let inspect = k.brix(&["inspect", &name]).ok();
    let buildx_inspect = k.buildx(&["inspect", &name]).ok();
    assert_eq!(
        without_hostnames(&inspect.stdout),
        without_hostnames(&buildx_inspect.stdout),
        "brix and buildx inspect differ"
    );
    let running = inspect
        .stdout
        .lines()
        .filter(|l| l.starts_with("Status:") && l.trim_end().ends_with("running"))
        .count();
    assert_eq!(running, 2, "{}", inspect.stdout);
    assert!(
        inspect.stdout.contains("Keep Duration: 48h0m0s"),
        "{}",
        inspect.stdout
    );
    assert!(
        inspect.stdout.contains("Reserved Space: 2GiB"),
        "{}",
        inspect.stdout
    );
    // brix reads each pod: the two entries name the two pods.
    for pod in &pods {
        assert!(
            inspect.stdout.contains(pod.as_str()),
            "{pod} missing:\n{}",
            inspect.stdout
        );
    }

    let ls = k.brix(&["ls"]).ok();
    let buildx_ls = k.buildx(&["ls"]).ok();
    assert_eq!(ls.stdout, buildx_ls.stdout, "brix and buildx ls differ");
    assert!(ls.stdout.contains(&name), "{}", ls.stdout);

    // Beyond buildx: stop scales the node to zero, inspect --bootstrap brings it back.
    k.brix(&["stop", &name]).ok();
    assert!(k.pods(&node).is_empty(), "pods left after stop");
    let stopped = k.brix(&["ls"]).ok();
    assert!(stopped.stdout.contains("stopped"), "{}", stopped.stdout);
    k.brix(&["inspect", "--bootstrap", &name]).ok();
    assert_eq!(k.pods(&node).len(), 2);

    k.brix(&["rm", &name]).ok();
    wait_for("the node's objects to go", Duration::from_secs(60), || {
        let left = k
            .kube(&["get", "deployments,configmaps", "-o", "name"])
            .ok();
        if left.stdout.contains(&node) {
            Err(left.stdout)
        } else {
            Ok(())
        }
    });
}

#[test]
fn two_platform_push_and_load_balancing() {
    let Some(k) = Cluster::new("k8s-push") else {
        return;
    };
    let config = k.config();
    let create = |name: &str, extra: &str| {
        k.brix(&[
            "create",
            "--name",
            name,
            "--driver",
            "kubernetes",
            "--driver-opt",
            &format!(
                "replicas=2,namespace={},hostnetwork=true{extra}",
                k.namespace
            ),
            "--config",
            path(&config),
            "--bootstrap",
        ])
        .ok();
    };

    // sticky (the default): two builds of one context go to the pod buildx's hash ring picks.
    let sticky = unique_name("ks");
    create(&sticky, "");
    let pods = k.pods(&format!("{sticky}0"));
    assert_eq!(pods.len(), 2);
    let context = k.context("k8s-sticky");
    let image = k.env.registry_ref("k8s-push", "1");
    let before = k.records(&pods);
    for _ in 0..2 {
        k.brix(&[
            "build",
            "--builder",
            &sticky,
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--push",
            path(&context),
        ])
        .ok();
    }
    let after = k.records(&pods);
    let served: Vec<&String> = pods
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| a > b)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        served.len(),
        1,
        "sticky builds spread: {before:?} -> {after:?}"
    );
    let expected = brix_driver::kubernetes::pod_choice::sticky(&pods, path(&context));
    assert_eq!(Some(served[0].as_str()), expected, "not buildx's pod");
    eprintln!(
        "sticky: both builds of {} ran on {}",
        context.display(),
        served[0]
    );

    let (_, index) = pushed_index(&image);
    assert_eq!(image_platforms(&index), ["linux/amd64", "linux/arm64"]);

    // random: builds of one context reach both pods.
    let random = unique_name("kr");
    create(&random, ",loadbalance=random");
    let pods = k.pods(&format!("{random}0"));
    assert_eq!(pods.len(), 2);
    let before = k.records(&pods);
    let mut after = before.clone();
    for attempt in 0..16 {
        let context = k.context(&format!("k8s-random-{attempt}"));
        k.brix(&[
            "build",
            "--builder",
            &random,
            "--platform",
            "linux/amd64",
            path(&context),
        ])
        .ok();
        after = k.records(&pods);
        if after.iter().zip(&before).all(|(a, b)| a > b) {
            break;
        }
    }
    assert!(
        after.iter().zip(&before).all(|(a, b)| a > b),
        "random never reached both pods: {before:?} -> {after:?}"
    );
    eprintln!("random: records per pod {before:?} -> {after:?} ({pods:?})");
}

#[test]
fn appended_node_builds_its_platform() {
    let Some(k) = Cluster::new("k8s-append") else {
        return;
    };
    let config = k.config();
    let name = unique_name("ka");
    let opts = format!("namespace={},hostnetwork=true", k.namespace);
    k.brix(&[
        "create",
        "--name",
        &name,
        "--driver",
        "kubernetes",
        "--node",
        "amd",
        "--platform",
        "linux/amd64",
        "--driver-opt",
        &opts,
        "--config",
        path(&config),
    ])
    .ok();
    // The cluster has one (amd64) node: the arm64 node's pods run there under QEMU, selected
    // by the node label a real arm64 pool would be selected by.
    k.brix(&[
        "create",
        "--append",
        "--name",
        &name,
        "--driver",
        "kubernetes",
        "--node",
        "arm",
        "--platform",
        "linux/arm64",
        "--driver-opt",
        &format!("{opts},nodeselector=kubernetes.io/arch=amd64"),
        "--config",
        path(&config),
        "--bootstrap",
    ])
    .ok();
    let amd = k.pods("amd");
    let arm = k.pods("arm");
    assert_eq!((amd.len(), arm.len()), (1, 1), "{amd:?} {arm:?}");
    let pinned = k
        .kube(&[
            "get",
            "deployment",
            "arm",
            "-o",
            "jsonpath={.metadata.annotations.buildx\\.docker\\.com/platform}",
        ])
        .ok();
    assert_eq!(pinned.stdout.trim(), "linux/arm64");

    let ls = k.brix(&["ls"]).ok();
    assert!(ls.stdout.contains("linux/arm64*"), "{}", ls.stdout);

    let before = k.records(&[amd[0].clone(), arm[0].clone()]);
    let image = k.env.registry_ref("k8s-append", "1");
    let context = k.context("k8s-append");
    k.brix(&[
        "build",
        "--builder",
        &name,
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &image,
        "--push",
        path(&context),
    ])
    .ok();
    let after = k.records(&[amd[0].clone(), arm[0].clone()]);
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "each node should build its platform: {before:?} -> {after:?}"
    );
    let (_, index) = pushed_index(&image);
    assert_eq!(image_platforms(&index), ["linux/amd64", "linux/arm64"]);
}

/// A PersistentVolume on the node's disk (hostPath) for one test's storage class, deleted
/// with its folder when dropped (PersistentVolumes are not namespaced).
struct HostPathVolume<'a> {
    cluster: &'a Cluster,
    name: String,
    dir: PathBuf,
}

impl<'a> HostPathVolume<'a> {
    fn new(cluster: &'a Cluster, storage_class: &str) -> Self {
        let name = unique_name("pv");
        let dir = cluster.env.scratch_dir("k8s-pv");
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": storage_class,
                "hostPath": {"path": path(&dir), "type": "DirectoryOrCreate"},
            },
        });
        let file = cluster.write(&format!("{name}.json"), &manifest.to_string());
        cluster.kubectl(&["apply", "-f", path(&file)]).ok();
        HostPathVolume { cluster, name, dir }
    }
}

impl Drop for HostPathVolume<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "persistentvolume", &self.name, "--wait=false"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn volume_claim_keeps_state_across_stop() {
    let Some(k) = Cluster::new("k8s-pvc") else {
        return;
    };
    let config = k.config();
    let storage_class = unique_name("sc");
    let _volume = HostPathVolume::new(&k, &storage_class);
    let name = unique_name("kp");
    let node = format!("{name}0");
    k.brix(&[
        "create",
        "--name",
        &name,
        "--driver",
        "kubernetes",
        "--driver-opt",
        &format!(
            "namespace={},hostnetwork=true,persistent-volume-claim.size=1Gi,persistent-volume-claim.storage-class={storage_class}",
            k.namespace
        ),
        "--config",
        path(&config),
        "--bootstrap",
    ])
    .ok();
    let kind = k
        .kube(&["get", "statefulset", &node, "-o", "jsonpath={.kind}"])
        .ok();
    assert_eq!(kind.stdout.trim(), "StatefulSet");
    let claim = format!("buildkitd-{node}-0");
    let phase = k
        .kube(&["get", "pvc", &claim, "-o", "jsonpath={.status.phase}"])
        .ok();
    assert_eq!(phase.stdout.trim(), "Bound");
    let pods = k.pods(&node);
    assert_eq!(pods, [format!("{node}-0")]);

    let context = k.context("k8s-pvc");
    k.brix(&[
        "build",
        "--builder",
        &name,
        "--platform",
        "linux/amd64",
        path(&context),
    ])
    .ok();
    let built = k.records(&pods)[0];
    assert!(built > 0, "no build record");

    // The pod goes and comes back; its BuildKit state (build records included) stays.
    k.brix(&["stop", &name]).ok();
    assert!(k.pods(&node).is_empty(), "pods left after stop");
    k.brix(&["inspect", "--bootstrap", &name]).ok();
    let pods = k.pods(&node);
    assert_eq!(
        k.records(&pods)[0],
        built,
        "the state did not survive the restart"
    );

    k.brix(&["rm", &name]).ok();
    wait_for("the claim to go", Duration::from_secs(60), || {
        let left = k.kube(&["get", "pvc", "-o", "name"]).ok();
        if left.stdout.contains(&claim) {
            Err(left.stdout)
        } else {
            Ok(())
        }
    });
}

/// A failed `create` says why in one line, exits 1 and leaves nothing: no builder in the
/// store, no Deployment, ConfigMap or pod in the cluster.
#[track_caller]
fn refused_cleanly(k: &Cluster, what: &str, run: Run, name: &str, wanted: &[&str]) {
    assert!(!run.success, "{what}: accepted:\n{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("ERROR:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{what}: not one ERROR line:\n{}",
        run.stderr
    );
    for w in wanted {
        assert!(
            errors[0].contains(w),
            "{what}: {w:?} missing from {}",
            errors[0]
        );
    }
    let listed = k.brix(&["ls"]).ok();
    assert!(
        !listed.stdout.contains(name),
        "{what}: {name} left in the store"
    );
    let left = k
        .kube(&["get", "deployments,configmaps,pods", "-o", "name"])
        .ok();
    assert!(
        !left.stdout.contains(name),
        "{what}: objects left behind: {}",
        left.stdout
    );
}

#[test]
fn bad_inputs_one_line_nothing_left() {
    let Some(k) = Cluster::new("k8s-bad") else {
        return;
    };
    let config = k.config();
    let create = |name: &str, opts: &str, kubeconfig: Option<&Path>| {
        let mut c = k.tool("brix");
        if let Some(file) = kubeconfig {
            c.env("KUBECONFIG", file);
        }
        run(c.args([
            "create",
            "--name",
            name,
            "--driver",
            "kubernetes",
            "--driver-opt",
            &format!("namespace={},hostnetwork=true{opts}", k.namespace),
            "--config",
            path(&config),
            "--bootstrap",
        ]))
    };

    let garbage = k.write("garbage.kubeconfig", "clusters: [this is not\n");
    let name = unique_name("kb");
    refused_cleanly(
        &k,
        "a kubeconfig that does not parse",
        create(&name, "", Some(&garbage)),
        &name,
        &["garbage.kubeconfig"],
    );

    // A service account that may read nothing in the namespace.
    k.kube(&["create", "serviceaccount", "reader"]).ok();
    let token = k.kube(&["create", "token", "reader"]).ok();
    let ca = k
        .kubectl(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ])
        .ok();
    let server = k
        .kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .ok();
    let limited = k.write(
        "reader.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: reader\n  user:\n    token: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: reader\ncurrent-context: c\n",
            server.stdout.trim(),
            ca.stdout.trim(),
            token.stdout.trim()
        ),
    );
    let name = unique_name("kf");
    refused_cleanly(
        &k,
        "a namespace the credentials cannot write",
        create(&name, "", Some(&limited)),
        &name,
        &["forbidden", "(403)"],
    );

    let name = unique_name("ki");
    let missing = k.env.registry_ref("k8s-missing-image", "1");
    refused_cleanly(
        &k,
        "an image that cannot be pulled",
        create(&name, &format!(",image={missing},timeout=30s"), None),
        &name,
        &["expected 1 replicas to be ready, got 0", "Err"],
    );

    let name = unique_name("kt");
    refused_cleanly(
        &k,
        "a timeout waiting for pods",
        create(
            &name,
            ",nodeselector=kubernetes.io/arch=s390x,timeout=5s",
            None,
        ),
        &name,
        &[
            "did not become ready within 5s",
            "didn't match Pod's node affinity/selector",
        ],
    );
}
