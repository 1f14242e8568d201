//! What `ls` and `inspect` show about each node (driver status, workers, version), and
//! booting the nodes that are not running, shared by `create`, `inspect` and `ls`.

use std::collections::BTreeMap;
use std::time::Duration;

use brix_driver::builder::driver_for;
use brix_driver::{DaemonInfo, Driver, DriverError, Node, NodeGroup, Status};

use crate::progress::printer::{Printer, ProgressMode};

/// How long loading one node's data may take before it counts as an error (buildx: 20 s).
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// One node as `ls` and `inspect` see it.
pub struct NodeView {
    /// The node as stored.
    pub node: Node,
    /// The driver status, when it could be read.
    pub status: Option<Status>,
    /// Why the driver or the daemon could not be read.
    pub err: Option<String>,
    /// What the daemon reports (only for running nodes, when data was asked for).
    pub info: Option<DaemonInfo>,
    driver: Option<Box<dyn Driver>>,
    /// The daemons behind the node, when it runs several (read instead of `info`).
    instances: Vec<brix_driver::Instance>,
}

impl NodeView {
    /// Platforms as buildx's `FormatInGroups`: pinned ones first, marked `*`, then detected ones.
    pub fn platforms(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in &self.node.platforms {
            let s = p.to_string();
            if seen.insert(s.clone()) {
                out.push(format!("{s}*"));
            }
        }
        if let Some(info) = &self.info {
            for s in &info.platforms {
                // As buildx shows them: normalized (the engine's BuildKit on Docker 28
                // reports `linux/arm` for what buildx prints as `linux/arm/v7`).
                let s = brix_config::Platform::parse(s)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| s.clone());
                if seen.insert(s.clone()) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// All platforms without markers (for JSON).
    pub fn platforms_plain(&self) -> Vec<String> {
        self.platforms()
            .into_iter()
            .map(|p| p.trim_end_matches('*').to_string())
            .collect()
    }

    /// What the node's driver (`driver`, the builder's) can do; for the `docker` driver read
    /// from the engine's workers (the containerd image store shows in their labels), as
    /// buildx reads it.
    pub fn features(&self, driver: &str) -> Option<brix_driver::Features> {
        if driver == "docker" {
            let labels = &self.info.as_ref()?.labels;
            let containerd_store =
                labels.contains_key(brix_solver_client::workers::labels::SNAPSHOTTER);
            return Some(brix_driver::Features::docker_engine_store(containerd_store));
        }
        self.driver.as_ref().map(|d| d.features())
    }

    /// The status word `ls` prints.
    pub fn status_word(&self) -> String {
        match (&self.err, self.status) {
            (Some(_), _) => "error".to_string(),
            (None, Some(s)) => s.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// A current-thread runtime: these commands do little concurrent work, and it keeps RSS low.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Loads every node of `ng` concurrently; with `data`, also asks running daemons for workers
/// and version. Errors are kept per node, as buildx does.
///
/// When every node runs several daemons (the kubernetes driver's pods), each running daemon
/// is shown as an entry of its own, as buildx 0.29 shows them: under its node's name, with
/// the node's endpoint, options, flags and files. brix reads each pod's own workers and
/// version (buildx shows one pod's data in every entry).
pub async fn load_nodes(ng: &NodeGroup, data: bool) -> Vec<NodeView> {
    let futures = ng.nodes.iter().map(|node| load_node(ng, node, data));
    let mut views = futures_util::future::join_all(futures).await;
    if views.iter().all(|v| !v.instances.is_empty()) && !views.is_empty() {
        return instance_views(views).await;
    }
    // Some node runs one daemon: every node is shown as stored, each read through its
    // driver (one of its daemons for a node that runs several).
    let reads = views
        .iter_mut()
        .filter(|v| !v.instances.is_empty())
        .map(|v| async move {
            v.instances.clear();
            if let Some(driver) = v.driver.as_deref() {
                match read_info(driver).await {
                    Ok(info) => v.info = Some(info),
                    Err(e) => v.err = Some(e),
                }
            }
        });
    futures_util::future::join_all(reads).await;
    views
}

/// A daemon's workers and version, within [`LOAD_TIMEOUT`].
async fn read_info(driver: &dyn Driver) -> Result<DaemonInfo, String> {
    match tokio::time::timeout(LOAD_TIMEOUT, brix_driver::daemon_info(driver)).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "timed out after {LOAD_TIMEOUT:?} reading {}",
            driver.describe()
        )),
    }
}

/// One view per daemon of nodes that run several: each under its node's name, with its own
/// daemon's data.
async fn instance_views(views: Vec<NodeView>) -> Vec<NodeView> {
    let all = views.into_iter().flat_map(|view| {
        let node = view.node;
        view.instances.into_iter().map(move |i| (node.clone(), i))
    });
    let loads = all.map(|(mut node, instance)| async move {
        if !instance.platforms.is_empty() {
            node.platforms = instance.platforms;
        }
        let (info, err) = match read_info(instance.driver.as_ref()).await {
            Ok(info) => (Some(info), None),
            Err(e) => (None, Some(e)),
        };
        NodeView {
            node,
            status: Some(Status::Running),
            err,
            info,
            driver: Some(instance.driver),
            instances: Vec::new(),
        }
    });
    futures_util::future::join_all(loads).await
}

async fn load_node(ng: &NodeGroup, node: &Node, data: bool) -> NodeView {
    let mut view = NodeView {
        node: node.clone(),
        status: None,
        err: None,
        info: None,
        driver: None,
        instances: Vec::new(),
    };
    let driver = match driver_for(ng, node) {
        Ok(d) => d,
        Err(e) => {
            view.err = Some(e.to_string());
            return view;
        }
    };
    let result = tokio::time::timeout(LOAD_TIMEOUT, async {
        if !data {
            return Ok((driver.status().await?, None, Vec::new()));
        }
        // A node with several daemons is read daemon by daemon (see `load_nodes`); asked
        // at once with the status (for other drivers there is nothing to ask).
        let (status, instances) = tokio::join!(driver.status(), driver.instances());
        let status = status?;
        if status != Status::Running {
            return Ok((status, None, Vec::new()));
        }
        let instances = instances?;
        if !instances.is_empty() {
            return Ok((status, None, instances));
        }
        let info = brix_driver::daemon_info(driver.as_ref()).await?;
        Ok::<_, DriverError>((status, Some(info), Vec::new()))
    })
    .await;
    match result {
        Ok(Ok((status, info, instances))) => {
            view.status = Some(status);
            view.info = info;
            view.instances = instances;
        }
        Ok(Err(e)) => view.err = Some(e.to_string()),
        Err(_) => {
            view.err = Some(format!(
                "timed out after {LOAD_TIMEOUT:?} reading {}",
                driver.describe()
            ))
        }
    }
    view.driver = Some(driver);
    view
}

/// Boots every node that has a driver and is not running, showing progress on stderr.
/// Returns whether anything was booted; fails if every node that needed booting failed.
pub async fn boot(ng: &NodeGroup, views: &mut [NodeView]) -> anyhow::Result<bool> {
    let to_boot: Vec<usize> = views
        .iter()
        .enumerate()
        .filter(|(_, v)| v.err.is_none() && v.driver.is_some() && v.status != Some(Status::Running))
        .map(|(i, _)| i)
        .collect();
    if to_boot.is_empty() {
        return Ok(false);
    }
    // No `#0 building with …` header and no right label: buildx's bootstrap shows neither.
    let progress = Printer::new(ProgressMode::Auto, None, String::new());
    let ticker = progress.spawn_ticker();
    let many = to_boot.len() > 1;
    let mut jobs = Vec::new();
    for &i in &to_boot {
        let name = if many {
            format!("[{} internal] booting buildkit", views[i].node.name)
        } else {
            "[internal] booting buildkit".to_string()
        };
        let sink = progress.client_step(name);
        let driver = views[i].driver.as_deref();
        jobs.push(async move {
            let Some(driver) = driver else { return Ok(()) };
            let r = driver.bootstrap(&sink).await;
            sink.done(r.as_ref().err().map(|e| e.to_string()));
            r
        });
    }
    let results = futures_util::future::join_all(jobs).await;
    ticker.abort();
    progress.finish();
    let mut errors = Vec::new();
    for (&i, r) in to_boot.iter().zip(results) {
        if let Err(e) = r {
            views[i].err = Some(e.to_string());
            errors.push(format!("{} ({}): {e}", ng.name, views[i].node.name));
        }
    }
    if errors.len() == to_boot.len() {
        anyhow::bail!("failed to boot builder {}", errors.join("\n"));
    }
    Ok(true)
}

/// Sorted labels for printing.
pub fn sorted_labels(info: &DaemonInfo) -> BTreeMap<String, String> {
    info.labels.clone().into_iter().collect()
}

/// Writes to stdout, ignoring a closed pipe (`brix ls | head` must not panic).
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
