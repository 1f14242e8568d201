//! [`build`]: every request of one call on one builder. The nodes are connected once; each
//! request's platforms are given their nodes; the local contexts that several solves read on
//! one node get one session there; then every request runs concurrently — one solve per
//! platform (or one multi-platform solve on the engine's own BuildKit with the containerd
//! image store), and its finishing steps (`finish.rs`, `cache.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use brix_config::Platform;
use brix_driver::{NodeGroup, Store};
use brix_solver_client::fsutil::PlatformFolder;
use brix_solver_client::progress::{BuildWarning, ProgressEvent};
use brix_solver_client::session::{OutputTarget, RunningSession, Session, SyncedDir};
use brix_solver_client::solve::{ExporterSpec, SolveResult, SolveSpec, solve};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{BuildError, Failure};
use crate::main_context::{ContextSource, MainContext};
use crate::nodes::BuildNode;
use crate::outputs::{Dest, Output};
use crate::plan::{PlannedBuild, platform_dir, source_date_epoch};
use crate::progress::NamedProgress;
use crate::{BuildOutcome, ProgressSink, cache, call, contexts, docker_session, finish, nodes};

/// Builds every request on `builder`, together, and gives back each one's result under its
/// name, in the order given.
///
/// The builder's nodes are booted when needed and connected once for all requests (a node
/// that cannot be used is a warning while another can). The requests then run concurrently;
/// with several, each one's step names start with its name (`[app 2/3] RUN …`), as buildx
/// shows bake targets ([`build_named`] decides that itself). A failed request does not stop the others (buildx cancels the rest:
/// a caller that wants that drops the returned future at the first failure it sees).
///
/// Solves that read the same local context folder and Dockerfile folder on the same node —
/// the platforms of one request, or different requests — share one session that serves them
/// (`local-sessionid:`), so the daemon transfers that context once; the engine's own
/// BuildKit (docker driver), which may predate that attribute, keeps a session per solve.
/// A `--call` request has its own session.
///
/// The returned future is not `Send` yet (brix-exporter's registry retries hold a closure
/// that is not `Sync`): await it where it is made; its requests run concurrently inside it.
pub async fn build(
    builder: &NodeGroup,
    requests: Vec<(String, PlannedBuild)>,
    progress: Arc<dyn ProgressSink>,
) -> Vec<(String, Result<BuildOutcome, BuildError>)> {
    let named = requests.len() > 1;
    build_named(builder, requests, progress, named).await
}

/// What the kubernetes driver's `loadbalance=sticky` hashes to pick a pod, as buildx keys
/// it: a build's context as an absolute path, the working folder for several requests
/// (bake's targets).
fn sticky_key(requests: &[(String, PlannedBuild)]) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = match requests {
        [(_, only)] if !only.request.context.contains("://") && only.request.context != "-" => {
            cwd.join(&only.request.context)
        }
        _ => cwd,
    };
    // Go's `filepath.Abs`: joined to the working folder and cleaned, without touching the disk.
    let mut clean = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean.to_string_lossy().into_owned()
}

/// [`build`], with each request's name in its steps' names when `named` (whatever the number
/// of requests): a caller that builds its targets in several calls (bake's targets that use
/// another's result come after it) names them as one build of them all would.
pub async fn build_named(
    builder: &NodeGroup,
    requests: Vec<(String, PlannedBuild)>,
    progress: Arc<dyn ProgressSink>,
    named: bool,
) -> Vec<(String, Result<BuildOutcome, BuildError>)> {
    let key = sticky_key(&requests);
    let nodes = match nodes::connect_all(builder, &key, progress.as_ref()).await {
        Ok(nodes) => nodes,
        Err(e) => {
            let error = BuildError::from(Failure::from(e));
            return requests
                .into_iter()
                .map(|(name, _)| (name, Err(error.clone())))
                .collect();
        }
    };
    let mut load = vec![0usize; nodes.len()];
    let mut requests: Vec<Request> = requests
        .into_iter()
        .map(|(name, plan)| {
            let progress: Arc<dyn ProgressSink> = if named {
                Arc::new(NamedProgress {
                    inner: progress.clone(),
                    name: name.clone(),
                })
            } else {
                progress.clone()
            };
            let state = match &plan.call {
                Some(_) => Ok(Layout::Call),
                None => lay_out(&plan, &nodes, &mut load).map_err(BuildError::from),
            };
            Request {
                name,
                plan,
                progress,
                state,
                shared: BTreeMap::new(),
            }
        })
        .collect();
    start_shared_sessions(&mut requests, &nodes).await;

    let numbers = AtomicUsize::new(0);
    let names: Vec<String> = requests.iter().map(|r| r.name.clone()).collect();
    let runs = requests.into_iter().map(|request| {
        let nodes = &nodes;
        let numbers = &numbers;
        async move {
            let Request {
                name,
                plan,
                progress,
                state,
                shared,
            } = request;
            let result = match state {
                Err(e) => Err(e),
                Ok(Layout::Call) => match &plan.call {
                    Some(method) => {
                        let solve = numbers.fetch_add(1, Ordering::Relaxed);
                        call::solve(&plan, nodes, &progress, method, solve)
                            .await
                            .map(|answer| BuildOutcome {
                                image_id: None,
                                metadata: serde_json::Map::new(),
                                provenance: BTreeMap::new(),
                                warnings: Vec::new(),
                                call: Some(answer),
                            })
                            .map_err(BuildError::from)
                    }
                    None => Err(Failure::from(anyhow::anyhow!("no --call method")).into()),
                },
                Ok(Layout::Build(layout)) => {
                    run_build(&plan, builder, nodes, layout, shared, &progress, numbers)
                        .await
                        .map_err(BuildError::from)
                }
            };
            (name, result)
        }
    });
    // As buildx: the first request that fails stops the others (their solves' calls are
    // dropped, so the daemon cancels the jobs); they come back canceled.
    let mut pending: futures_util::stream::FuturesUnordered<_> = runs
        .enumerate()
        .map(|(i, run)| async move { (i, run.await) })
        .collect();
    let mut results: Vec<Option<Result<BuildOutcome, BuildError>>> =
        std::iter::repeat_with(|| None).take(names.len()).collect();
    while let Some((i, (_, result))) = futures_util::StreamExt::next(&mut pending).await {
        let failed = result.is_err();
        results[i] = Some(result);
        if failed {
            break;
        }
    }
    drop(pending);
    names
        .into_iter()
        .zip(results)
        .map(|(name, result)| (name, result.unwrap_or_else(|| Err(BuildError::canceled()))))
        .collect()
}

/// [`build`] with one request, named `default` as buildx names the one of `buildx build`.
pub async fn build_one(
    builder: &NodeGroup,
    request: PlannedBuild,
    progress: Arc<dyn ProgressSink>,
) -> Result<BuildOutcome, BuildError> {
    let mut results = build(builder, vec![("default".to_owned(), request)], progress).await;
    match results.pop() {
        Some((_, result)) => result,
        // `build` gives one result per request.
        None => Err(Failure::from(anyhow::anyhow!("the build engine gave no result")).into()),
    }
}

/// One request on its way through [`build`].
struct Request {
    name: String,
    plan: PlannedBuild,
    /// Its progress (its name in its steps' names when there are several requests).
    progress: Arc<dyn ProgressSink>,
    /// How its platforms are laid out over the nodes, or why they cannot be.
    state: Result<Layout, BuildError>,
    /// By node: the session that serves the request's context there, shared with other
    /// solves. Dropped once the request's solves are done; the session ends with its last
    /// holder.
    shared: BTreeMap<usize, Arc<RunningSession>>,
}

/// What a request runs.
// One per request, made once: the size of the build variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Layout {
    /// A frontend method (`--call`): one solve, laid out when it runs.
    Call,
    /// A build: its solves over the nodes.
    Build(BuildLayout),
}

/// A build's solves over the nodes.
struct BuildLayout {
    /// One entry per solve: its platform (`None` for the daemon's default, or for one
    /// multi-platform solve).
    platforms: Vec<Option<Platform>>,
    /// The node of each solve.
    assignment: Vec<usize>,
    /// The `platform` attribute of the one multi-platform solve on the engine's BuildKit.
    joined_platforms: Option<String>,
    /// One solve per platform, several of them.
    multi: bool,
    /// Where per-platform outputs wait to be put together.
    scratch: tempfile::TempDir,
    /// The platform whose solve gets the `docker` output when several are built.
    load_platform: Option<Option<Platform>>,
}

/// Decides a build's solves: the node of each platform (after buildx's refusal of cache
/// exports the nodes cannot do), one solve or one per platform.
fn lay_out(
    plan: &PlannedBuild,
    nodes: &[BuildNode],
    load: &mut [usize],
) -> Result<Layout, Failure> {
    cache::check_nodes(&plan.cache_exports, nodes)?;
    let assignment = if plan.platforms.is_empty() {
        vec![0]
    } else {
        nodes::assign_nodes(nodes, &plan.platforms, load)?
    };
    check_oci_export(plan, nodes, &assignment)?;
    let platforms: Vec<Option<Platform>> = if plan.platforms.is_empty() {
        vec![None]
    } else {
        plan.platforms.iter().cloned().map(Some).collect()
    };
    // The engine's BuildKit on the containerd image store builds every platform in one
    // solve and stores, loads or pushes the multi-platform image itself, as buildx has it
    // do there; everywhere else each platform gets its own solve.
    let engine_solve = platforms.len() > 1
        && assignment.iter().all(|&n| n == assignment[0])
        && nodes[assignment[0]].engine_holds_indexes();
    let (platforms, assignment, joined_platforms) = if engine_solve {
        let joined = plan
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        (vec![None], vec![assignment[0]], Some(joined))
    } else {
        (platforms, assignment, None)
    };
    let multi = platforms.len() > 1;
    let scratch = tempfile::Builder::new()
        .prefix("brix-build-")
        .tempdir()
        .context("creating a scratch folder for the build's outputs")?;

    // The engine's native platform gets the `docker` output when several are built.
    let load_platform = platforms
        .iter()
        .zip(&assignment)
        .find(|(p, n)| {
            p.as_ref().is_none_or(|p| {
                nodes[**n]
                    .native()
                    .is_some_and(|nat| nat.architecture == p.architecture)
            })
        })
        .map(|(p, _)| p.clone());
    Ok(Layout::Build(BuildLayout {
        platforms,
        assignment,
        joined_platforms,
        multi,
        scratch,
        load_platform,
    }))
}

/// buildx's refusal of an OCI export on a node that cannot do one (the engine's BuildKit on
/// the classic image store), before anything is solved. A bake `target:` context's OCI
/// layout (the request's link output, which the user never wrote) is refused in its own
/// words.
fn check_oci_export(
    plan: &PlannedBuild,
    nodes: &[BuildNode],
    assignment: &[usize],
) -> anyhow::Result<()> {
    let Some(node) = assignment
        .iter()
        .map(|&i| &nodes[i])
        .find(|n| !n.features.oci_exporter)
    else {
        return Ok(());
    };
    for (oi, output) in plan.outputs.iter().enumerate() {
        if !matches!(output, Output::Oci { .. }) {
            continue;
        }
        if plan.link_output == Some(oi) {
            bail!(
                "its result feeds a target: context as an OCI layout, which the docker driver cannot export on this engine (the classic image store): use a docker-container builder (brix create --use), or turn on the containerd image store"
            );
        }
        let driver = if node.is_docker() { "docker" } else { "this" };
        return Err(crate::error::not_supported(
            "OCI exporter",
            driver,
            "https://docs.docker.com/go/build-exporters/",
        ));
    }
    Ok(())
}

/// Whether a solve failed because its registry mixed up two uploads of the same layer: brix
/// pushes each platform from its own solve, so a layer the platforms share (a `COPY` of the
/// same files) can be uploaded twice at once, and distribution's storage (Docker's registry,
/// Harbor) then answers one of them "provided digest did not match uploaded content" or
/// "blob unknown". buildx's one solve pushes such a layer once. The solve is run again
/// (cached, so only the push is repeated), once.
fn is_concurrent_push_race(error: &anyhow::Error) -> bool {
    let text = crate::one_line(error.as_ref());
    text.contains("failed to push")
        && (text.contains("provided digest did not match uploaded content")
            || text.contains("blob unknown to registry"))
}

/// The local folders a session serves for a build on one node: the key under which solves
/// share that session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ContextKey {
    node: usize,
    context: Option<PathBuf>,
    dockerfile: Option<PathBuf>,
}

impl ContextKey {
    /// The key of `main` on node `node`; `None` when nothing of it is on this machine.
    fn of(main: &MainContext, node: usize) -> Option<Self> {
        if local_names(main).is_empty() {
            return None;
        }
        let canonical = |dir: &Path| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Some(ContextKey {
            node,
            context: main.local_dir().map(canonical),
            dockerfile: main.dockerfile_dir.as_deref().map(canonical),
        })
    }
}

/// Starts the sessions that serve a context to several solves on one node, and hands each
/// request the ones it uses.
///
/// Several platforms on one node share one session for the context and the Dockerfile, and
/// so do the solves of different requests that read the same folders there. The daemon keys
/// a local source on the session that serves it, so with a session per solve it would
/// transfer the whole context once per solve (buildx sends one multi-platform solve and so
/// one transfer). `local-sessionid:NAME` is the dockerfile frontend's per-local session
/// override; the engine's own, older BuildKit (docker driver) may not know it, so there each
/// solve's session keeps serving the context. A multi-platform request shares its sessions
/// even when one platform is alone on its node, as it always has.
///
/// A session that cannot be started fails the requests that need it; one that only failed
/// requests need is not started.
async fn start_shared_sessions(requests: &mut [Request], nodes: &[BuildNode]) {
    let shares = |request: &Request| -> Vec<ContextKey> {
        let Ok(Layout::Build(layout)) = &request.state else {
            return Vec::new();
        };
        let mut keys: Vec<ContextKey> = Vec::new();
        for &node in &layout.assignment {
            if let Some(key) = ContextKey::of(&request.plan.main, node)
                && !keys.contains(&key)
            {
                keys.push(key);
            }
        }
        keys
    };
    let mut solves: BTreeMap<ContextKey, usize> = BTreeMap::new();
    for request in requests.iter() {
        if let Ok(Layout::Build(layout)) = &request.state {
            for &node in &layout.assignment {
                if let Some(key) = ContextKey::of(&request.plan.main, node) {
                    *solves.entry(key).or_default() += 1;
                }
            }
        }
    }
    // For each request, in order, the keys it shares.
    let wanted: Vec<Vec<ContextKey>> = requests
        .iter()
        .map(|request| {
            let multi = matches!(&request.state, Ok(Layout::Build(l)) if l.multi);
            shares(request)
                .into_iter()
                .filter(|key| !nodes[key.node].is_docker())
                .filter(|key| multi || solves.get(key).copied().unwrap_or(0) > 1)
                .collect()
        })
        .collect();

    let mut started: BTreeMap<ContextKey, Arc<RunningSession>> = BTreeMap::new();
    for (index, keys) in wanted.iter().enumerate() {
        for key in keys {
            if started.contains_key(key) || requests[index].state.is_err() {
                continue;
            }
            // The first request that wants it names it (the same folders give the same name).
            let node = &nodes[key.node];
            let mut session = Session::new(shared_key(&requests[index].plan, node));
            add_locals(&requests[index].plan.main, &mut session);
            match session.run_over_control(&mut node.client.raw()).await {
                Ok(running) => {
                    started.insert(key.clone(), Arc::new(running));
                }
                Err(e) => {
                    let error = BuildError::from(Failure::from(e));
                    for (other, other_keys) in wanted.iter().enumerate() {
                        if other_keys.contains(key) && requests[other].state.is_ok() {
                            requests[other].state = Err(error.clone());
                        }
                    }
                }
            }
        }
    }
    for (request, keys) in requests.iter_mut().zip(&wanted) {
        if request.state.is_err() {
            continue;
        }
        for key in keys {
            if let Some(session) = started.get(key) {
                request.shared.insert(key.node, session.clone());
            }
        }
    }
}

/// Runs one build request laid out as `layout`: its solves, then its finishing steps.
async fn run_build(
    plan: &PlannedBuild,
    ng: &NodeGroup,
    nodes: &[BuildNode],
    layout: BuildLayout,
    shared: BTreeMap<usize, Arc<RunningSession>>,
    progress: &Arc<dyn ProgressSink>,
    numbers: &AtomicUsize,
) -> Result<BuildOutcome, Failure> {
    let BuildLayout {
        platforms,
        assignment,
        joined_platforms,
        multi,
        scratch,
        load_platform,
    } = layout;
    // The solves' numbers in the progress display, in order.
    let first_number = numbers.fetch_add(platforms.len(), Ordering::Relaxed);

    // Solve `i`'s request; made again when its push is tried again.
    let prepare_solve = |i: usize| -> anyhow::Result<PlatformSolve> {
        let (platform, node_index) = (&platforms[i], assignment[i]);
        let node = &nodes[node_index];
        let shared_context = shared.get(&node_index);
        let mut ps = prepare(
            plan,
            node,
            node_index,
            i,
            platform.clone(),
            multi,
            load_platform.as_ref() == Some(platform),
            shared_context.is_none(),
            scratch.path(),
        )?;
        if let Some(joined) = &joined_platforms {
            ps.spec
                .frontend_attrs
                .insert("platform".into(), joined.clone());
        }
        if let Some(shared) = shared_context {
            for local in local_names(&plan.main) {
                ps.spec
                    .frontend_attrs
                    .insert(format!("local-sessionid:{local}"), shared.id().to_owned());
            }
        }
        Ok(ps)
    };
    let prepared = (0..platforms.len())
        .map(prepare_solve)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if multi
        && let Some(Some(p)) = &load_platform
        && plan
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Docker { dest: None, .. }))
    {
        let skipped: Vec<String> = platforms
            .iter()
            .flatten()
            .filter(|q| *q != p)
            .map(ToString::to_string)
            .collect();
        progress.warning(&format!(
            "the Docker engine holds one platform per image name: loading {p}, skipping {}",
            skipped.join(", ")
        ));
    }

    save_local_states(plan, ng, nodes, &prepared);
    // On a builder of several nodes, which node each solve runs on (brix's own step: buildx
    // shows nothing of the kind, and always takes the first node that fits).
    if nodes.len() > 1 {
        for ps in &prepared {
            let what = match &ps.platform {
                Some(p) => format!("[{p}] running on node {}", nodes[ps.node].node.name),
                None => format!("running on node {}", nodes[ps.node].node.name),
            };
            progress.client_step(&what).done(None);
        }
    }

    let warnings = Arc::new(Mutex::new(Vec::new()));
    let runs = prepared.into_iter().enumerate().map(|(i, ps)| {
        let node = &nodes[ps.node];
        let prefix = if multi {
            ps.platform.as_ref().map(ToString::to_string)
        } else {
            None
        };
        let prepare_solve = &prepare_solve;
        let warnings = &warnings;
        async move {
            // Only a solve whose outputs are all in the daemon's hands can simply run again.
            let repeatable = multi && ps.files.is_empty();
            match run_one(first_number + i, ps, node, progress, prefix.clone(), warnings).await {
                Err(failure) if repeatable && is_concurrent_push_race(&failure.error) => {
                    let what = prefix.as_deref().map_or(String::new(), |p| format!("[{p}] "));
                    progress
                        .client_step(&format!(
                            "{what}pushing again: the registry lost a layer another platform was uploading at the same time"
                        ))
                        .done(None);
                    let ps = prepare_solve(i).map_err(|e| Failure {
                        solve: Some(first_number + i),
                        error: e,
                    })?;
                    run_one(first_number + i, ps, node, progress, prefix, warnings).await
                }
                other => other,
            }
        }
    });
    // A multi-platform push ends with brix pushing the index: its registry connection (root
    // certificates, Docker config credentials) is set up while the solves run. Creating the
    // client contacts nothing, so other builds only pay for an empty one.
    let registry = Arc::new(brix_exporter::Registry::new(finish::registry_options(
        nodes,
    )));
    let warm_up = (multi && !nodes[assignment[0]].is_docker()).then(|| {
        let registry = registry.clone();
        let hosts = index_registry_hosts(plan);
        tokio::spawn(async move {
            for host in hosts {
                // A failure here shows again, with its context, when the index is pushed.
                if let Err(e) = registry.prepare(&host).await {
                    tracing::debug!(error = %e, host, "registry set-up ahead of the push");
                }
            }
        })
    });

    let solved = futures_util::future::try_join_all(runs).await?;
    // Every solve is done with the context: let go of the shared sessions (each ends with
    // its last holder).
    drop(shared);
    cache::finish_exports(&plan.cache_exports, &solved, &registry, progress.as_ref()).await?;
    if let Some(warm_up) = warm_up {
        let _ = warm_up.await;
    }
    let warnings = distinct_warnings(
        warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default(),
    );
    finish::finish(
        plan,
        ng,
        nodes,
        solved,
        progress.as_ref(),
        scratch.path(),
        &registry,
        warnings,
    )
    .await
}

/// The build's warnings, each once (several platforms' solves report the same warning), in
/// the order they came.
fn distinct_warnings(all: Vec<BuildWarning>) -> Vec<BuildWarning> {
    let mut out: Vec<BuildWarning> = Vec::new();
    for w in all {
        let seen = out
            .iter()
            .any(|o| o.short == w.short && o.detail == w.detail && o.ranges == w.ranges);
        if !seen {
            out.push(w);
        }
    }
    out
}

/// Records each solve's local state in the builder store (`refs/<builder>/<node>/<ref>`), as
/// buildx does before it builds: `history` and Docker's tooling read it. A failure to record
/// it does not stop the build.
fn save_local_states(
    plan: &PlannedBuild,
    ng: &NodeGroup,
    nodes: &[BuildNode],
    prepared: &[PlatformSolve],
) {
    let args = &plan.request;
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let state = brix_driver::store::LocalState {
        target: args.target.clone().unwrap_or_else(|| "default".to_owned()),
        local_path: match &plan.main.context {
            _ if args.context == "-" => "-".to_owned(),
            ContextSource::Local(dir) => absolute(dir),
            ContextSource::Remote(url) => url.clone(),
            ContextSource::Upload(_) => "-".to_owned(),
        },
        dockerfile_path: match args.dockerfile.as_deref() {
            Some("-") | None => String::new(),
            Some(f) => absolute(Path::new(f)),
        },
        group_ref: String::new(),
    };
    let saved = Store::open_default().and_then(|store| {
        let mut txn = store.txn()?;
        for ps in prepared {
            let node = &nodes[ps.node].node.name;
            txn.save_local_state(&ng.name, node, &ps.spec.build_ref, &state)?;
        }
        Ok(())
    });
    if let Err(e) = saved {
        tracing::warn!(error = %e, "could not record the build's local state");
    }
}

/// The registry hosts the pushed image outputs name.
fn index_registry_hosts(plan: &PlannedBuild) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for output in &plan.outputs {
        if let Output::Image { push: true, .. } = output {
            for name in output.names() {
                let host = finish::registry_host(&name);
                if !host.is_empty() && !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
        }
    }
    hosts
}

/// The cache-sharing hint for a node's sessions, as buildx makes it: the context folder's name
/// and the node's name.
fn shared_key(plan: &PlannedBuild, node: &BuildNode) -> String {
    let Some(context_dir) = plan.main.local_dir() else {
        // buildx sets no shared key for a remote context.
        return String::new();
    };
    format!(
        "{}:{}",
        context_dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "context".to_owned()),
        node.node.name
    )
}

/// The session's local folders: the context when it is local, the Dockerfile's folder when
/// the Dockerfile is on this machine.
fn add_locals(main: &MainContext, session: &mut Session) {
    if let Some(dir) = main.local_dir() {
        session.add_local("context", SyncedDir::new(dir));
    }
    if let Some(dir) = &main.dockerfile_dir {
        session.add_local("dockerfile", SyncedDir::new(dir));
    }
}

/// The names [`add_locals`] serves.
fn local_names(main: &MainContext) -> Vec<&'static str> {
    let mut names = Vec::new();
    if main.local_dir().is_some() {
        names.push("context");
    }
    if main.dockerfile_dir.is_some() {
        names.push("dockerfile");
    }
    names
}

/// One platform's solve, prepared.
pub(crate) struct PlatformSolve {
    pub(crate) node: usize,
    pub(crate) platform: Option<Platform>,
    pub(crate) spec: SolveSpec,
    pub(crate) session: Session,
    /// Where each FileSend output of this solve lands, by exporter index.
    pub(crate) files: Vec<(usize, PathBuf)>,
}

/// What the solves produced, for the finishing steps.
pub(crate) struct Solved {
    pub(crate) platform: Option<Platform>,
    pub(crate) node: usize,
    pub(crate) result: SolveResult,
    /// Output index → the per-platform file this solve wrote for it.
    pub(crate) files: Vec<(usize, PathBuf)>,
}

/// Prepares the solve of `platform` (number `solve_index` of the build, which names its
/// scratch files) on `node`: its session (serving the context unless `serves_context` is
/// false: a shared session does) and its request, outputs included.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    plan: &PlannedBuild,
    node: &BuildNode,
    node_index: usize,
    solve_index: usize,
    platform: Option<Platform>,
    multi: bool,
    loads: bool,
    serves_context: bool,
    scratch: &Path,
) -> anyhow::Result<PlatformSolve> {
    let mut session = Session::new(shared_key(plan, node));
    session.set_peer_name(&node.node.name);
    // Unless the node's platforms share one context session (`local-sessionid:`), this
    // solve's own session serves the context and the Dockerfile.
    if serves_context {
        add_locals(&plan.main, &mut session);
    }
    for (id, src) in &plan.secrets {
        session.add_secret(id.clone(), src.clone());
    }
    for (id, source) in &plan.ssh {
        session.add_ssh(id.clone(), source.clone());
    }
    let mut spec = SolveSpec::dockerfile();
    let platform_name = platform.as_ref().filter(|_| multi).map(platform_dir);
    cache::add_to_solve(
        &plan.cache_imports,
        &plan.cache_exports,
        &mut spec,
        &mut session,
        platform_name.as_deref(),
    )?;
    // Chosen here, so the build's local state can be recorded under it before it runs.
    spec.build_ref = brix_solver_client::solve::new_build_ref();
    spec.frontend_attrs = plan.frontend_attrs.clone();
    match &plan.main.context {
        ContextSource::Local(_) => {}
        ContextSource::Remote(url) => {
            spec.frontend_attrs.insert("context".into(), url.clone());
        }
        ContextSource::Upload(file) => {
            let url = session.add_upload(file);
            spec.frontend_attrs.insert("context".into(), url);
        }
    }
    spec.entitlements = plan.entitlements.clone();
    contexts::add_to_solve(&plan.named_contexts, &mut spec.frontend_attrs, &mut session)?;
    if let Some(hosts) = plan
        .request
        .run_options
        .extra_hosts(&|| node.host_gateway_ip())?
    {
        spec.frontend_attrs.insert("add-hosts".into(), hosts);
    }
    if let Some(p) = &platform {
        spec.frontend_attrs.insert("platform".into(), p.to_string());
    }
    // As buildx: attestations only where the node's store keeps them (not the engine's
    // BuildKit on the classic store, which may also predate them); asked for there, refused.
    let attestations_kept = node.engine_holds_indexes() || !node.is_docker();
    if !attestations_kept && plan.attestations.any_enabled() {
        return Err(crate::error::not_supported(
            "Attestation",
            "docker",
            "https://docs.docker.com/go/attestations/",
        ));
    }
    if attestations_kept {
        spec.frontend_attrs
            .extend(plan.attestations.other_frontend_attrs());
    }
    let provenance = if node.engine_holds_indexes() {
        &plan.engine_store_provenance
    } else if node.is_docker() {
        &None
    } else {
        &plan.provenance
    };
    if let Some(mode) = provenance {
        spec.frontend_attrs
            .insert("attest:provenance".into(), mode.clone());
    }
    let pdir = platform.as_ref().map(platform_dir);
    // One solve for the build takes every annotation, as buildx sends them; one platform's
    // solve of several takes that platform's manifest annotations, the rest go on the index
    // brix assembles (`finish.rs`).
    let annotation_attrs = if multi {
        plan.annotations
            .platform_solve_attributes(platform.as_ref())
    } else {
        plan.annotations.solve_attributes()
    };
    let mut files = Vec::new();
    for (oi, output) in plan.outputs.iter().enumerate() {
        let exporter_index = spec.exporters.len() as u32;
        let per_platform_file = |ext: &str| scratch.join(format!("{oi}-{solve_index}.{ext}"));
        match output {
            Output::Local { dest } => {
                let target = match (&pdir, multi) {
                    // One platform of a multi-platform output: its own folder, laid out as
                    // BuildKit's multi-platform export lays it out.
                    (Some(d), true) => OutputTarget::PlatformDirectory {
                        dest: dest.clone(),
                        folder: PlatformFolder::new(d.clone())?
                            .with_source_date_epoch(source_date_epoch(&spec.frontend_attrs)),
                    },
                    _ => OutputTarget::Directory(dest.clone()),
                };
                spec.exporters.push(ExporterSpec::new("local"));
                session.add_output(exporter_index, target);
            }
            Output::Tar { dest } => {
                spec.exporters.push(ExporterSpec::new("tar"));
                let target = if multi {
                    let f = per_platform_file("tar");
                    files.push((oi, f.clone()));
                    OutputTarget::File(f)
                } else {
                    dest_target(dest)
                };
                session.add_output(exporter_index, target);
            }
            Output::Oci { dest, attrs } => {
                let mut e = ExporterSpec::new("oci");
                e.attrs = attrs.clone();
                e.attrs.extend(annotation_attrs.clone());
                spec.exporters.push(e);
                let target = if multi {
                    let f = per_platform_file("oci.tar");
                    files.push((oi, f.clone()));
                    OutputTarget::File(f)
                } else {
                    dest_target(dest)
                };
                session.add_output(exporter_index, target);
            }
            Output::Docker { dest, attrs } => {
                if multi && !loads {
                    continue;
                }
                if node.is_docker() && dest.is_none() {
                    // The engine's BuildKit stores the image itself.
                    let mut e = ExporterSpec::new("moby");
                    e.attrs = attrs.clone();
                    e.attrs.extend(annotation_attrs.clone());
                    spec.exporters.push(e);
                    continue;
                }
                if !node.features.docker_exporter {
                    return Err(crate::error::not_supported(
                        "Docker exporter",
                        "docker",
                        "https://docs.docker.com/go/build-exporters/",
                    ));
                }
                let mut e = ExporterSpec::new("docker");
                e.attrs = attrs.clone();
                e.attrs.extend(annotation_attrs.clone());
                spec.exporters.push(e);
                let target = match dest {
                    Some(d) => dest_target(d),
                    None => {
                        let f = per_platform_file("docker.tar");
                        files.push((oi, f.clone()));
                        OutputTarget::File(f)
                    }
                };
                session.add_output(exporter_index, target);
            }
            Output::Image { attrs, push } => {
                let kind = if node.is_docker() { "moby" } else { "image" };
                let mut e = ExporterSpec::new(kind);
                e.attrs = attrs.clone();
                e.attrs.extend(annotation_attrs.clone());
                let names = output.names();
                if *push && multi && !node.features.direct_push {
                    // The engine holds one platform per name: each platform is stored under
                    // a temporary name, then taken out of the engine and pushed by digest by
                    // brix, with the index over them (buildx refuses this case).
                    if let Some(p) = &platform {
                        e.attrs
                            .insert("name".into(), finish::engine_temp_name(&plan.build_id, p));
                    }
                }
                // On the docker driver of the classic store the engine stores the image and
                // brix pushes it through the Docker API afterwards (as buildx does); on the
                // containerd store the engine's exporter pushes it.
                if *push && node.features.direct_push {
                    e.attrs.insert("push".into(), "true".into());
                    if multi {
                        // Each platform is pushed by digest to its repositories; the index
                        // is assembled and pushed under the tags afterwards.
                        let repos = finish::repositories(&names)?;
                        e.attrs.insert("name".into(), repos.join(","));
                        e.attrs.insert("push-by-digest".into(), "true".into());
                    }
                    if names
                        .iter()
                        .any(|n| node.insecure_registry(&finish::registry_host(n)))
                    {
                        e.attrs.insert("registry.insecure".into(), "true".into());
                    }
                }
                spec.exporters.push(e);
            }
            Output::CacheOnly => {}
        }
    }
    Ok(PlatformSolve {
        node: node_index,
        platform,
        spec,
        session,
        files,
    })
}

fn dest_target(dest: &Dest) -> OutputTarget {
    match dest {
        Dest::Stdout => OutputTarget::Writer(Box::new(tokio::io::stdout())),
        Dest::File(p) => OutputTarget::File(p.clone()),
    }
}

/// Connects a solve's session to the node: through dockerd's `/session` on the docker
/// driver, through `Control.Session` elsewhere.
pub(crate) async fn start_session(
    session: Session,
    node: &BuildNode,
) -> anyhow::Result<RunningSession> {
    match &node.docker_endpoint {
        Some(ep) => docker_session::run_over_dockerd(session, ep).await,
        None => Ok(session.run_over_control(&mut node.client.raw()).await?),
    }
}

/// Runs `run` (a solve, given the sender of its progress) on node number `node` while its
/// progress goes to `progress` as solve number `solve` with `prefix`, its warnings also to
/// `warnings`. All of
/// the solve's progress is passed on before its result is returned; the forwarding runs as
/// its own task, so what the daemon already sent is still shown when the solve is dropped
/// (another platform failed, or the build was interrupted).
pub(crate) async fn forward_progress<F: Future>(
    progress: &Arc<dyn ProgressSink>,
    (solve, node): (usize, usize),
    prefix: Option<String>,
    warnings: Option<Arc<Mutex<Vec<BuildWarning>>>>,
    run: impl FnOnce(UnboundedSender<Vec<ProgressEvent>>) -> F,
) -> F::Output {
    progress.solve_node(solve, node);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<ProgressEvent>>();
    let sink = progress.clone();
    let forward = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            if let Some(warnings) = &warnings
                && let Ok(mut warnings) = warnings.lock()
            {
                warnings.extend(batch.iter().filter_map(|event| match event {
                    ProgressEvent::Warning(w) => Some(w.clone()),
                    _ => None,
                }));
            }
            sink.solve_events(solve, prefix.as_deref(), batch);
        }
    });
    let result = run(tx).await;
    // All progress is shown before the result is.
    let _ = forward.await;
    result
}

async fn run_one(
    index: usize,
    ps: PlatformSolve,
    node: &BuildNode,
    progress: &Arc<dyn ProgressSink>,
    prefix: Option<String>,
    warnings: &Arc<Mutex<Vec<BuildWarning>>>,
) -> Result<Solved, Failure> {
    let wrap = |e: anyhow::Error| Failure {
        solve: Some(index),
        error: e,
    };
    let running = start_session(ps.session, node).await.map_err(wrap)?;
    let result = forward_progress(
        progress,
        (index, ps.node),
        prefix,
        Some(warnings.clone()),
        |tx| solve(&node.client, ps.spec, running, tx),
    )
    .await;
    let result = result.map_err(|e| wrap(e.into()))?;
    Ok(Solved {
        platform: ps.platform,
        node: ps.node,
        result,
        files: ps.files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registrys_lost_layer_race_runs_a_solve_again() {
        let push = |detail: &str| {
            anyhow::anyhow!("failed to push localhost:5000/app:1: {detail}")
                .context("failed to solve")
        };
        assert!(is_concurrent_push_race(&push(
            "errors: unknown: provided digest did not match uploaded content unknown: blob unknown to registry - sha256:44"
        )));
        assert!(is_concurrent_push_race(&push(
            "blob unknown to registry - sha256:44"
        )));
        assert!(!is_concurrent_push_race(&push(
            "unexpected status from PUT request: 401 Unauthorized"
        )));
        assert!(!is_concurrent_push_race(&anyhow::anyhow!(
            "process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
        )));
    }

    #[test]
    fn a_warning_from_several_platforms_is_kept_once() {
        let warning = |short: &str| BuildWarning {
            vertex: String::new(),
            level: 1,
            short: short.to_owned(),
            detail: Vec::new(),
            url: String::new(),
            location: None,
            language: String::new(),
            ranges: Vec::new(),
        };
        let kept = distinct_warnings(vec![warning("a"), warning("b"), warning("a")]);
        let shorts: Vec<&str> = kept.iter().map(|w| w.short.as_str()).collect();
        assert_eq!(shorts, ["a", "b"]);
    }

    #[test]
    fn solves_of_the_same_folders_on_one_node_share_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        let main = |path: String| MainContext::resolve(&path, None).expect("resolves");
        let plain = main(dir.path().display().to_string());
        let dotted = main(format!("{}/.", dir.path().display()));
        assert_eq!(ContextKey::of(&plain, 0), ContextKey::of(&dotted, 0));
        assert_ne!(ContextKey::of(&plain, 0), ContextKey::of(&plain, 1));
        let remote = main("https://example.invalid/repo.git".to_owned());
        assert_eq!(ContextKey::of(&remote, 0), None);
    }
}
