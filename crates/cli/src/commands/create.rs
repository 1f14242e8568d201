//! `brix create`: make a builder (or add/change/remove one of its nodes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use brix_driver::Store;
use brix_driver::builder::{self, CreateOptions};
use brix_driver::docker_api::current_store_key;

use super::node_status::{boot, load_nodes, runtime};

/// Arguments of `brix create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Docker endpoint (docker-container) or BuildKit address (remote: tcp://host:port, unix:///path).
    pub endpoint: Option<String>,
    /// Builder name (a random one if omitted).
    #[arg(long)]
    pub name: Option<String>,
    /// Driver: docker-container (default), kubernetes or remote.
    #[arg(long)]
    pub driver: Option<String>,
    /// Driver option key=value (repeatable). docker-container: image, network, memory,
    /// memory-swap, cpu-period, cpu-quota, cpu-shares, cpuset-cpus, cpuset-mems, cgroup-parent,
    /// restart-policy, default-load, env.NAME, privileged=auto|true|false (auto: privileged,
    /// falling back to an explicit capability set where the engine refuses privileged
    /// containers). remote: cacert, cert, key, servername, default-load. kubernetes: image,
    /// namespace, replicas, requests.*/limits.* (cpu, memory, ephemeral-storage),
    /// buildkit-root-volume-memory, nodeselector, annotations, labels, tolerations,
    /// serviceaccount, schedulername, rootless, loadbalance=sticky|random, qemu.install,
    /// qemu.image, default-load, timeout, env.NAME, and (beyond buildx) hostnetwork,
    /// persistent-volume-claim.size, persistent-volume-claim.storage-class.
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
    /// BuildKit daemon config file (buildkitd.toml).
    #[arg(
        long = "buildkitd-config",
        visible_alias = "config",
        value_name = "FILE"
    )]
    pub buildkitd_config: Option<PathBuf>,
    /// Flags for the BuildKit daemon, as one shell-quoted string.
    #[arg(
        long = "buildkitd-flags",
        value_name = "FLAGS",
        allow_hyphen_values = true
    )]
    pub buildkitd_flags: Option<String>,
    /// Fixed platforms for the node (repeatable or comma-separated).
    #[arg(long)]
    pub platform: Vec<String>,
    /// Append a node to the builder instead of creating it.
    #[arg(long)]
    pub append: bool,
    /// Create or modify this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Remove the node given with --node from the builder.
    #[arg(long)]
    pub leave: bool,
    /// Make the builder the current one.
    #[arg(long = "use")]
    pub use_: bool,
    /// Boot the builder after creating it.
    #[arg(long)]
    pub bootstrap: bool,
}

/// Creates the builder, checks that its nodes can be reached (rolling back if not), and
/// prints its name like buildx.
pub fn run(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    if args.leave {
        let name = args.name.as_deref().context("--leave requires --name")?;
        let node = args.node.as_deref().context("--leave requires --node")?;
        let mut txn = store.txn()?;
        builder::leave(&mut txn, name, node)?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = CreateOptions {
        name: args.name,
        driver: args.driver,
        node: args.node,
        platforms: args.platform,
        buildkitd_flags: args.buildkitd_flags,
        config_file: args.buildkitd_config,
        driver_opts: args.driver_opt,
        endpoint: args.endpoint,
        append: args.append,
    };
    let rt = runtime()?;
    let mut txn = store.txn()?;
    let created = builder::create(&mut txn, &opts)?;
    for w in &created.warnings {
        eprintln!("warning: {w}");
    }
    let ng = created.group.clone();
    let mut views = rt.block_on(load_nodes(&ng, false));
    if let Some(v) = views.iter().find(|v| v.err.is_some()) {
        let err = v.err.clone().unwrap_or_default();
        builder::rollback(&mut txn, &created).context("could not roll back the builder store")?;
        anyhow::bail!(
            "failed to initialize builder {} ({}): {err}",
            ng.name,
            v.node.name
        );
    }
    if args.use_ {
        txn.set_current(&current_store_key(), &ng.name, false, false)?;
    }
    // Booting can take long: do not hold the store lock meanwhile.
    drop(txn);
    if args.bootstrap
        && let Err(e) = rt.block_on(boot(&ng, &mut views))
    {
        // On Kubernetes a failed boot leaves objects in the cluster (a ConfigMap applied
        // before the Deployment was refused, pods that cannot pull their image): brix
        // removes what this create made and forgets it, so nothing is left behind.
        if ng.driver == "kubernetes" {
            rt.block_on(remove_new_nodes(&ng, created.previous.as_ref()));
            let mut txn = store.txn()?;
            builder::rollback(&mut txn, &created)
                .context("could not roll back the builder store")?;
        }
        return Err(e);
    }
    println!("{}", ng.name);
    Ok(ExitCode::SUCCESS)
}

/// Removes the daemons of the nodes of `ng` that `previous` (the builder before this create)
/// did not have; errors are ignored (the create's own error is the one to show).
async fn remove_new_nodes(ng: &brix_driver::NodeGroup, previous: Option<&brix_driver::NodeGroup>) {
    let new_nodes = ng
        .nodes
        .iter()
        .filter(|n| previous.is_none_or(|p| !p.nodes.iter().any(|old| old.name == n.name)));
    for node in new_nodes {
        if let Ok(driver) = builder::driver_for(ng, node) {
            let _ = driver.rm(brix_driver::RmOptions::default()).await;
        }
    }
}
