//! The builder's nodes for a build: booted if needed (shown in the build's progress),
//! connected, their workers read, and a node chosen for each platform — one that runs it
//! natively first, then one pinned to it, then one whose workers emulate it. Public for the
//! commands that pick a node as a build does (`dial-stdio`).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use brix_config::{Platform, RegistryConfig};
use brix_driver::builder::driver_for_context;
use brix_driver::{Features, Node, NodeGroup, Status};
use brix_solver_client::ControlClient;
use brix_solver_client::workers::WorkerInfo;

use crate::ProgressSink;
use crate::error::{BuildError, Failure};

/// A connected node of the builder: its client, and what the engine needs to know about it.
pub struct BuildNode {
    /// The node as stored.
    pub node: Node,
    /// The connected control client.
    pub client: ControlClient,
    /// Its workers.
    pub workers: Vec<WorkerInfo>,
    /// The engine endpoint when the driver is `docker` (sessions go through `/session`).
    pub docker_endpoint: Option<String>,
    /// `[registry."host"]` settings from the node's buildkitd.toml.
    pub registries: BTreeMap<String, RegistryConfig>,
    /// What the node can do (for the docker driver, decided from the engine's workers).
    pub features: Features,
    /// The builder's driver name (`docker`, `docker-container`, `remote`, ...).
    pub driver: String,
}

impl BuildNode {
    /// Whether the node's driver is the Docker engine's own BuildKit.
    pub fn is_docker(&self) -> bool {
        self.docker_endpoint.is_some()
    }

    /// The address `--add-host NAME:host-gateway` means, as buildx finds it: the docker
    /// driver's engine reports it as a worker label; other drivers have none.
    pub fn host_gateway_ip(&self) -> Result<String, String> {
        if !self.is_docker() {
            return Err(format!(
                "host-gateway is not supported by the {} driver",
                self.driver
            ));
        }
        self.workers
            .iter()
            .filter_map(|w| {
                w.labels
                    .get("org.mobyproject.buildkit.worker.moby.host-gateway-ips")
            })
            .flat_map(|ips| ips.split(','))
            .map(str::trim)
            .find(|ip| !ip.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| "host-gateway IP not found".to_owned())
    }

    /// Whether the node is the engine's own BuildKit on an image store that holds
    /// multi-platform images (the containerd image store): there the engine builds, loads
    /// and pushes multi-platform images itself, as buildx lets it.
    pub fn engine_holds_indexes(&self) -> bool {
        self.is_docker() && self.features.multi_platform
    }

    /// The platform the node runs natively: its first worker's first platform.
    pub fn native(&self) -> Option<&Platform> {
        self.workers.first().and_then(|w| w.platforms.first())
    }

    /// What node picking needs to know about this node.
    fn platforms(&self) -> NodePlatforms {
        NodePlatforms {
            native: self.native().cloned(),
            pinned: self
                .node
                .platforms
                .iter()
                .filter_map(|o| Platform::parse(&o.to_string()).ok())
                .collect(),
            supported: self
                .workers
                .iter()
                .flat_map(|w| w.platforms.iter().cloned())
                .collect(),
        }
    }

    /// True when `host` is marked `http = true` or `insecure = true` in the node's config.
    pub fn insecure_registry(&self, host: &str) -> bool {
        self.registries
            .get(host)
            .is_some_and(|r| r.http == Some(true) || r.insecure == Some(true))
    }

    /// Hosts marked `http = true` in the node's config.
    pub fn plain_http_hosts(&self) -> Vec<String> {
        self.registries
            .iter()
            .filter(|(_, r)| r.http == Some(true))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

/// Boots (when needed, shown as a client step of `progress`) and connects every node of
/// `ng`, concurrently. A node that fails is a warning; it fails only when none can be used.
pub async fn connect_nodes(
    ng: &NodeGroup,
    progress: &dyn ProgressSink,
) -> Result<Vec<BuildNode>, BuildError> {
    connect_all(ng, "", progress)
        .await
        .map_err(|e| Failure::from(e).into())
}

/// For each platform, the index (in `nodes`) of the node that builds it: a native node
/// first, then one the platform is pinned on, then any whose workers list it. A platform no
/// node supports is an error that says how to add emulation.
pub fn assign(nodes: &[BuildNode], platforms: &[Platform]) -> Result<Vec<usize>, BuildError> {
    assign_nodes(nodes, platforms, &mut vec![0; nodes.len()]).map_err(|e| Failure::from(e).into())
}

/// [`connect_nodes`], for the engine; `context_key` is what picks a kubernetes node's pod
/// (`loadbalance=sticky`).
pub(crate) async fn connect_all(
    ng: &NodeGroup,
    context_key: &str,
    progress: &dyn ProgressSink,
) -> anyhow::Result<Vec<BuildNode>> {
    let many = ng.nodes.len() > 1;
    let jobs = ng
        .nodes
        .iter()
        .map(|node| connect_node(ng, node, context_key, progress, many));
    let results = futures_util::future::join_all(jobs).await;
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for (node, r) in ng.nodes.iter().zip(results) {
        match r {
            Ok(n) => nodes.push(n),
            Err(e) => errors.push((node.name.clone(), e)),
        }
    }
    if nodes.is_empty() && errors.len() == 1 {
        // One node: its own error is the whole story.
        if let Some((_, err)) = errors.pop() {
            return Err(err);
        }
    }
    let lines: Vec<String> = errors
        .iter()
        .map(|(name, e)| format!("node {name}: {}", crate::one_line(e.as_ref())))
        .collect();
    if nodes.is_empty() {
        bail!(
            "no node of builder {:?} could be used: {}",
            ng.name,
            lines.join("; ")
        );
    }
    for e in lines {
        progress.warning(&e);
    }
    Ok(nodes)
}

async fn connect_node(
    ng: &NodeGroup,
    node: &Node,
    context_key: &str,
    progress: &dyn ProgressSink,
    many: bool,
) -> anyhow::Result<BuildNode> {
    let driver = driver_for_context(ng, node, context_key)?;
    let status = driver.status().await?;
    if status != Status::Running {
        let name = if many {
            format!("[{} internal] booting buildkit", node.name)
        } else {
            "[internal] booting buildkit".to_owned()
        };
        let step = progress.client_step(&name);
        let r = driver.bootstrap(step.as_ref()).await;
        step.done(r.as_ref().err().map(|e| e.to_string()));
        r?;
    }
    let client: ControlClient = driver.connect().await?;
    let workers = client
        .list_workers()
        .await
        .with_context(|| format!("listing the workers of {}", driver.describe()))?;
    // As stored: an address or a docker context's name (`default`), resolved on use.
    let docker_endpoint = (ng.driver == "docker").then(|| node.endpoint.clone());
    let registries = node
        .files
        .get("buildkitd.toml")
        .and_then(|bytes| brix_config::ConfigFile::parse_bytes(bytes, "buildkitd.toml").ok())
        .map(|f| f.config.registry)
        .unwrap_or_default();
    let features = if docker_endpoint.is_some() {
        Features::docker_engine(&workers)
    } else {
        driver.features()
    };
    Ok(BuildNode {
        node: node.clone(),
        client,
        workers,
        docker_endpoint,
        registries,
        features,
        driver: ng.driver.clone(),
    })
}

/// [`assign`], for the engine. `load` counts the solves already given to each node in this
/// engine call (one per platform of each earlier request); among the nodes of the best kind
/// for a platform (native, then pinned, then emulating) the least loaded one is taken, the
/// first on a tie, and counted. So one build behaves as before, and several requests of one
/// call (bake's targets) spread over the nodes that serve their platform alike (buildx always
/// takes the first: buildx #3382, #1365).
pub(crate) fn assign_nodes(
    nodes: &[BuildNode],
    platforms: &[Platform],
    load: &mut [usize],
) -> anyhow::Result<Vec<usize>> {
    let candidates: Vec<NodePlatforms> = nodes.iter().map(BuildNode::platforms).collect();
    let mut out = Vec::with_capacity(platforms.len());
    for p in platforms {
        match pick_node(&candidates, p, load) {
            Some(i) => {
                if let Some(n) = load.get_mut(i) {
                    *n += 1;
                }
                out.push(i)
            }
            None => {
                let available: Vec<String> = nodes
                    .iter()
                    .flat_map(|n| n.workers.iter().flat_map(|w| w.platforms.iter()))
                    .map(ToString::to_string)
                    .collect();
                let hint = brix_driver::binfmt::suggestion_for(&p.to_string())
                    .unwrap_or_else(|| format!("no node of this builder can build {p}"));
                bail!(
                    "no node of this builder supports platform {p} (it supports: {}).\n{hint}",
                    if available.is_empty() {
                        "nothing".to_owned()
                    } else {
                        available.join(", ")
                    }
                );
            }
        }
    }
    Ok(out)
}

/// The platforms of one node, as node picking sees them.
#[derive(Debug, Clone, Default)]
struct NodePlatforms {
    /// The platform its first worker lists first: the one it runs natively.
    native: Option<Platform>,
    /// Platforms pinned on the node with `create --platform`.
    pinned: Vec<Platform>,
    /// Every platform its workers report (native and emulated).
    supported: Vec<Platform>,
}

/// The node for `p`: one that runs it natively (same OS and architecture as its native
/// platform, and listed), then one it is pinned on, then any that lists it; within the
/// first kind that has one, the node with the fewest solves in `load` (the first on a tie).
fn pick_node(nodes: &[NodePlatforms], p: &Platform, load: &[usize]) -> Option<usize> {
    let native = |n: &NodePlatforms| {
        n.native
            .as_ref()
            .is_some_and(|q| q.os == p.os && q.architecture == p.architecture)
            && n.supported.contains(p)
    };
    let least_loaded = |fits: &dyn Fn(&NodePlatforms) -> bool| {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| fits(n))
            .min_by_key(|(i, _)| load.get(*i).copied().unwrap_or(0))
            .map(|(i, _)| i)
    };
    least_loaded(&native)
        .or_else(|| least_loaded(&|n| n.pinned.contains(p)))
        .or_else(|| least_loaded(&|n| n.supported.contains(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plat(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|_| Platform::new("linux", "invalid", ""))
    }

    fn node(native: &str, supported: &[&str], pinned: &[&str]) -> NodePlatforms {
        NodePlatforms {
            native: Some(plat(native)),
            pinned: pinned.iter().map(|s| plat(s)).collect(),
            supported: supported.iter().map(|s| plat(s)).collect(),
        }
    }

    #[test]
    fn requests_of_one_call_spread_over_equal_nodes() {
        let a = node("linux/amd64", &["linux/amd64"], &[]);
        let b = node("linux/amd64", &["linux/amd64"], &[]);
        let emulating = node("linux/arm64", &["linux/arm64", "linux/amd64"], &[]);
        let nodes = [a, b, emulating];
        let amd = plat("linux/amd64");
        assert_eq!(pick_node(&nodes, &amd, &[0, 0, 0]), Some(0));
        assert_eq!(pick_node(&nodes, &amd, &[1, 0, 0]), Some(1));
        assert_eq!(pick_node(&nodes, &amd, &[1, 1, 0]), Some(0));
        // An idle emulating node does not win over busy native ones.
        assert_eq!(pick_node(&nodes, &amd, &[5, 5, 0]), Some(0));
    }

    #[test]
    fn native_nodes_win_over_emulating_ones() {
        let amd = node("linux/amd64", &["linux/amd64", "linux/arm64"], &[]);
        let arm = node("linux/arm64", &["linux/arm64", "linux/amd64"], &[]);
        let nodes = [amd, arm];
        assert_eq!(pick_node(&nodes, &plat("linux/arm64"), &[]), Some(1));
        assert_eq!(pick_node(&nodes, &plat("linux/amd64"), &[]), Some(0));
    }

    #[test]
    fn pinned_then_any_worker_then_none() {
        let a = node("linux/amd64", &["linux/amd64", "linux/riscv64"], &[]);
        let b = node(
            "linux/amd64",
            &["linux/amd64", "linux/riscv64"],
            &["linux/riscv64"],
        );
        let nodes = [a, b];
        assert_eq!(pick_node(&nodes, &plat("linux/riscv64"), &[]), Some(1));
        assert_eq!(pick_node(&nodes[..1], &plat("linux/riscv64"), &[]), Some(0));
        assert_eq!(pick_node(&nodes, &plat("linux/s390x"), &[]), None);
    }
}
