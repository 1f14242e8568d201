//! The builder's nodes for one build: booted if needed (shown in the build's progress),
//! connected, their workers read, and a node chosen for each platform — one that runs it
//! natively first, then one pinned to it, then one whose workers emulate it.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use brix_config::{Platform, RegistryConfig};
use brix_driver::builder::driver_for;
use brix_driver::{Features, Node, NodeGroup, Status};
use brix_solver_client::ControlClient;
use brix_solver_client::workers::WorkerInfo;

use crate::progress::printer::Printer;

/// A connected node.
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

/// Boots (when needed) and connects every node of `ng`, concurrently. Nodes that fail are
/// reported; it fails only when none can be used.
pub async fn connect_nodes(ng: &NodeGroup, printer: &Printer) -> anyhow::Result<Vec<BuildNode>> {
    let many = ng.nodes.len() > 1;
    let jobs = ng
        .nodes
        .iter()
        .map(|node| connect_node(ng, node, printer, many));
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
        .map(|(name, e)| format!("node {name}: {}", crate::errors::one_line(e)))
        .collect();
    if nodes.is_empty() {
        bail!(
            "no node of builder {:?} could be used: {}",
            ng.name,
            lines.join("; ")
        );
    }
    for e in lines {
        eprintln!("WARNING: {e}");
    }
    Ok(nodes)
}

async fn connect_node(
    ng: &NodeGroup,
    node: &Node,
    printer: &Printer,
    many: bool,
) -> anyhow::Result<BuildNode> {
    let driver = driver_for(ng, node)?;
    let status = driver.status().await?;
    if status != Status::Running {
        let name = if many {
            format!("[{} internal] booting buildkit", node.name)
        } else {
            "[internal] booting buildkit".to_owned()
        };
        let step = printer.client_step(name);
        let r = driver.bootstrap(&step).await;
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

/// For each platform, the index of the node that builds it: a native node first, then one
/// the platform is pinned on, then any whose workers list it. A platform no node supports
/// is an error that says how to add emulation.
pub fn assign(nodes: &[BuildNode], platforms: &[Platform]) -> anyhow::Result<Vec<usize>> {
    let candidates: Vec<NodePlatforms> = nodes.iter().map(BuildNode::platforms).collect();
    let mut out = Vec::with_capacity(platforms.len());
    for p in platforms {
        match pick_node(&candidates, p) {
            Some(i) => out.push(i),
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
/// platform, and listed), then one it is pinned on, then any that lists it.
fn pick_node(nodes: &[NodePlatforms], p: &Platform) -> Option<usize> {
    let native = |n: &NodePlatforms| {
        n.native
            .as_ref()
            .is_some_and(|q| q.os == p.os && q.architecture == p.architecture)
            && n.supported.contains(p)
    };
    nodes
        .iter()
        .position(native)
        .or_else(|| nodes.iter().position(|n| n.pinned.contains(p)))
        .or_else(|| nodes.iter().position(|n| n.supported.contains(p)))
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
    fn native_nodes_win_over_emulating_ones() {
        let amd = node("linux/amd64", &["linux/amd64", "linux/arm64"], &[]);
        let arm = node("linux/arm64", &["linux/arm64", "linux/amd64"], &[]);
        let nodes = [amd, arm];
        assert_eq!(pick_node(&nodes, &plat("linux/arm64")), Some(1));
        assert_eq!(pick_node(&nodes, &plat("linux/amd64")), Some(0));
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
        assert_eq!(pick_node(&nodes, &plat("linux/riscv64")), Some(1));
        assert_eq!(pick_node(&nodes[..1], &plat("linux/riscv64")), Some(0));
        assert_eq!(pick_node(&nodes, &plat("linux/s390x")), None);
    }
}
