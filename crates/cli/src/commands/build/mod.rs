//! `brix build`: one Dockerfile solve per requested platform, run concurrently, each on the
//! node that suits the platform best, shown in one progress display; then the outputs are put
//! together (a multi-platform index pushed under every tag, one OCI tarball, per-platform
//! directories) the way buildx lays them out.

mod annotations;
mod attestations;
mod cache;
mod call;
mod contexts;
mod docker_session;
mod finish;
mod git_info;
mod main_context;
mod metadata_provenance;
pub(crate) mod nodes;
mod options;
mod outputs;
mod ssh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use brix_config::Platform;
use brix_driver::Store;
use brix_driver::builder::resolve;
use brix_solver_client::fsutil::PlatformFolder;
use brix_solver_client::session::{OutputTarget, SecretSource, Session, SyncedDir};
use brix_solver_client::solve::{ExporterSpec, SolveError, SolveResult, SolveSpec, solve};

use crate::progress::printer::{Printer, ProgressMode};
use main_context::ContextSource;
use nodes::BuildNode;
use outputs::{Dest, Output};

/// Arguments of `brix build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The build context: a directory, a git URL (`https://…/repo.git#REF:DIR`,
    /// `git@host:org/repo.git`), an https tarball URL, or `-` (stdin: a tarball, or a
    /// Dockerfile with an empty context).
    pub context: String,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`; `-` reads it from stdin; with a
    /// remote context a relative name is inside the context).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set a build-time variable (`NAME=VALUE`, or `NAME` to take it from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Set metadata for an image (`KEY=VALUE`).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Add annotation to the image: `[TYPE[,TYPE…][PLATFORM]:]KEY=VALUE`, TYPE one of
    /// `manifest` (the default), `manifest-descriptor`, `index`, `index-descriptor`, PLATFORM
    /// as `[linux/arm64]` (repeatable).
    #[arg(long = "annotation")]
    pub annotations: Vec<String>,
    /// Target platforms (repeatable, comma-separated), e.g. `linux/amd64,linux/arm64`.
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Always look for newer versions of the base images.
    #[arg(long)]
    pub pull: bool,
    /// Output destination (`type=local,dest=DIR`, `type=tar,dest=FILE`, `type=oci,dest=FILE`,
    /// `type=docker`, `type=image,name=…,push=true`, `type=registry`, `type=cacheonly`, a path,
    /// or `-`).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Shorthand for `--output=type=registry`.
    #[arg(long)]
    pub push: bool,
    /// Shorthand for `--output=type=docker`.
    #[arg(long)]
    pub load: bool,
    /// Write build result metadata to a file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Write the image ID (or index digest) to a file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Secret to expose to the build (`id=mysecret[,src=/local/secret]` or `id=x,env=VAR`).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// External cache sources (e.g., `user/app:cache`, `type=local,src=path/to/dir`).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Cache export destinations (e.g., `user/app:cache`, `type=local,dest=path/to/dir`).
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// SSH agent socket or keys to expose to the build (format:
    /// `default|<id>[=<socket>|<key>[,<key>]]`).
    #[arg(long = "ssh")]
    pub ssh: Vec<String>,
    /// Additional build contexts (`NAME=PATH`, `NAME=docker-image://REF`,
    /// `NAME=oci-layout://PATH[:TAG][@DIGEST]`, a git or https URL).
    #[arg(long = "build-context")]
    pub build_contexts: Vec<String>,
    /// `--network`, `--add-host`, `--allow`, `--shm-size`, `--ulimit`, `--cgroup-parent`,
    /// `--no-cache-filter`.
    #[command(flatten)]
    pub run_options: options::RunOptions,
    /// Override the configured builder.
    /// (The global `--builder`, before or after the subcommand, as in buildx.)
    #[arg(skip)]
    pub builder: Option<String>,
    /// Type of progress output.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Provenance attestation: shorthand for `--attest=type=provenance` (`true`, `false`, or
    /// its fields: `mode=min|max`, `builder-id=…`). Default: minimal provenance for image
    /// outputs, as buildx.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// SBOM attestation: shorthand for `--attest=type=sbom` (`true`, `false`, or its fields:
    /// `generator=IMAGE`, the scanner's own settings).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Attestation parameters (format: `type=sbom,generator=image`,
    /// `type=provenance,mode=max`; `disabled=true` turns one off).
    #[arg(long = "attest")]
    pub attests: Vec<String>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set method for evaluating build (`check`, `outline`, `targets`; `build`, the default,
    /// builds), with `,format=json` or `,ignorestatus=true`.
    #[arg(long = "call", value_name = "METHOD", default_value = "build")]
    pub call: String,
    /// Shorthand for `--call=check`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub check: Option<String>,
}

/// Everything `brix build` needs, checked before any daemon is contacted.
struct Plan {
    /// The context and the Dockerfile.
    main: main_context::MainContext,
    platforms: Vec<Platform>,
    frontend_attrs: BTreeMap<String, String>,
    outputs: Vec<Output>,
    secrets: BTreeMap<String, SecretSource>,
    /// `--add-host` and the other run options, for what needs the node (`host-gateway`).
    run_options: options::RunOptions,
    /// `--cache-from`, local tags resolved to digests.
    cache_imports: Vec<cache::CacheEntry>,
    /// `--cache-to` (and `BUILDKIT_INLINE_CACHE`).
    cache_exports: Vec<cache::CacheEntry>,
    /// Entitlements asked for (`--allow`, `--network host`).
    entitlements: Vec<String>,
    /// `--ssh` agents by ID.
    ssh: Vec<(String, brix_solver_client::session::SshSource)>,
    /// `--build-context`, resolved.
    named_contexts: Vec<(String, contexts::NamedContext)>,
    /// `--annotation`.
    annotations: annotations::Annotations,
    provenance: Option<String>,
    /// `--attest`, `--provenance` and `--sbom` as given (the other types' attributes, and
    /// whether any is asked for).
    attestations: attestations::Attestations,
    /// The provenance for the engine's BuildKit on the containerd image store, which also
    /// loads images with attestations.
    engine_store_provenance: Option<String>,
    /// A short random ID naming this build's temporary images (docker driver pushes).
    build_id: String,
}

/// Runs `brix build`.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let call = call::requested(&args)?;
    let store = Store::open_default()?;
    let ng = {
        let txn = store.txn()?;
        resolve(&txn, args.builder.as_deref())?
    };
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress.resolve()
    };
    if let Some(context) = brix_driver::builder::non_current_context(&ng) {
        eprintln!(
            "brix: building on docker context {context:?}, which is not the current context \
             (buildx refuses this: `docker --context={context} buildx …` switches to it)"
        );
    }
    let printer = Printer::new(
        mode,
        Some(format!(
            "building with \"{}\" instance using {} driver",
            ng.name, ng.driver
        )),
        format!("{}:{}", ng.driver, ng.name),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut called = None;
    let work = async {
        match &call {
            // `--call`: the frontend's answer, printed once the progress is done.
            Some(c) => call::solve(&plan, &ng, &printer, c).await.map(|answer| {
                called = Some(answer);
                None
            }),
            None => build(&plan, &args, &ng, &printer).await,
        }
    };
    let outcome = rt.block_on(async {
        let ticker = printer.spawn_ticker();
        let result = tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        ticker.abort();
        result
    });
    // Dropping the build future above reset the solves' gRPC calls (the daemon cancels the
    // jobs) and closed the sessions; give those tasks a moment to go.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        None => {
            printer.cancel_running();
            printer.finish();
            eprintln!("ERROR: build canceled (interrupted)");
            Ok(ExitCode::from(130))
        }
        Some(Ok(summary)) => {
            printer.finish();
            if mode == ProgressMode::Quiet {
                // As buildx: the image ID, an empty line when there is none.
                println!("{}", summary.unwrap_or_default());
            }
            if let (Some(c), Some(answer)) = (&call, &called) {
                return call::finish(&args, &plan, c, answer);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failure)) => {
            printer.cancel_running();
            printer.finish();
            report_failure(&printer, &failure);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A failed build: which solve failed (for its log lines) and why.
pub(crate) struct BuildFailure {
    solve: Option<usize>,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for BuildFailure {
    fn from(e: E) -> Self {
        BuildFailure {
            solve: None,
            error: e.into(),
        }
    }
}

/// Prints buildx's error block: the failing step with its last log lines, the Dockerfile
/// lines, then `ERROR: …`.
fn report_failure(printer: &Printer, failure: &BuildFailure) {
    let solve_failure = failure
        .error
        .downcast_ref::<SolveError>()
        .and_then(SolveError::failure);
    if let (Some(i), Some(sf)) = (failure.solve, solve_failure) {
        let digest = sf.vertex.clone().or_else(|| printer.failed_step(i));
        if let Some((name, logs)) = digest.and_then(|d| printer.step_report(i, &d)) {
            eprintln!("------");
            eprintln!(" > {name}:");
            for l in &logs {
                eprintln!("{l}");
            }
            eprintln!("------");
        }
        for loc in &sf.locations {
            let first = loc.lines.first().map(|(s, _)| *s).unwrap_or(0);
            eprintln!("{}:{first}", loc.filename);
            let excerpt = loc.excerpt();
            if !excerpt.is_empty() {
                eprintln!("--------------------");
                for l in excerpt {
                    eprintln!("{l}");
                }
                eprintln!("--------------------");
            }
        }
    }
    // buildx 0.29 says which phase failed: a failed solve is a failed build.
    let prefix = if solve_failure.is_some() {
        "failed to build: "
    } else {
        ""
    };
    eprintln!("ERROR: {prefix}{}", crate::errors::one_line(&failure.error));
}

fn plan(args: &BuildArgs) -> anyhow::Result<Plan> {
    let main = main_context::MainContext::resolve(&args.context, args.file.as_deref())?;
    let mut platforms: Vec<Platform> = Vec::new();
    for value in &args.platforms {
        for p in Platform::parse_list(value)? {
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
    }

    let mut attrs = BTreeMap::new();
    attrs.insert("filename".to_owned(), main.filename.clone());
    if main.dockerfile_key {
        attrs.insert("dockerfilekey".to_owned(), "dockerfile".to_owned());
    }
    if args.context != "-"
        && let (Some(context_dir), Some(dockerfile_dir)) =
            (main.local_dir(), main.dockerfile_dir.as_deref())
    {
        attrs.extend(git_info::git_attributes(context_dir, dockerfile_dir));
    }
    if let Some(t) = &args.target {
        attrs.insert("target".to_owned(), t.clone());
    }
    for a in args.build_args.iter().chain(&args.labels) {
        options::check_key_value(a)?;
    }
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                attrs.insert(format!("build-arg:{k}"), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    attrs.insert(format!("build-arg:{a}"), v);
                }
            }
        }
    }
    // As buildx: the environment's SOURCE_DATE_EPOCH becomes the build argument of that name
    // unless --build-arg sets it.
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        attrs
            .entry("build-arg:SOURCE_DATE_EPOCH".to_owned())
            .or_insert(epoch);
    }
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        attrs.insert(format!("label:{k}"), v.to_owned());
    }
    if args.no_cache {
        attrs.insert("no-cache".to_owned(), String::new());
    }
    if args.pull {
        attrs.insert("image-resolve-mode".to_owned(), "pull".to_owned());
    }

    let entitlements = args.run_options.apply(&mut attrs)?;
    let named_contexts = contexts::parse(&args.build_contexts)?;
    options::check_tags(&args.tags)?;
    let outputs = outputs::resolve_outputs(&args.outputs, args.push, args.load, &args.tags)?;

    let mut secrets = BTreeMap::new();
    for s in &args.secrets {
        let (id, source) = parse_secret(s)?;
        if let SecretSource::File(path) = &source {
            options::check_secret_file(path)?;
        }
        secrets.insert(id, source);
    }
    // After the secrets, as buildx checks them.
    // As buildx: a git context over ssh forwards the default agent unless --ssh is given.
    let ssh = if args.ssh.is_empty() && main_context::git_scheme(&args.context) == Some("ssh") {
        ssh::parse_ssh_flags(&["default".to_owned()])?
    } else {
        ssh::parse_ssh_flags(&args.ssh)?
    };
    // After the SSH agents, as buildx reads them.
    let annotations = annotations::Annotations::parse(&args.annotations)?;

    let env = |name: &str| std::env::var(name).ok();
    let mut cache_exports = cache::parse_entries(&args.cache_to, cache::Direction::Export, &env)?;
    // As buildx: a true BUILDKIT_INLINE_CACHE build argument asks for the inline cache.
    if attrs
        .get("build-arg:BUILDKIT_INLINE_CACHE")
        .and_then(|v| parse_go_bool(v))
        == Some(true)
        && !cache_exports.iter().any(|e| e.kind == "inline")
    {
        cache_exports.push(cache::CacheEntry {
            kind: "inline".to_owned(),
            attrs: BTreeMap::new(),
        });
    }
    let cache_imports = cache::resolve_local_imports(cache::parse_entries(
        &args.cache_from,
        cache::Direction::Import,
        &env,
    )?)?;

    let attestations = attestations::Attestations::parse(
        &args.attests,
        args.provenance.as_deref(),
        args.sbom.as_deref(),
    )?;
    let requested = attestations.provenance();
    let provenance = match requested {
        Some(asked) => asked.map(str::to_owned),
        None if no_default_attestations()? => None,
        None => Some("mode=min".to_owned()),
    };
    // Like buildx, provenance goes with image outputs only unless asked for explicitly. A
    // `docker` tarball with an attestation has no manifest.json, which engines without the
    // containerd image store cannot load, so `--load` leaves it out too unless asked.
    let default_on = outputs.iter().any(Output::is_image)
        && !outputs.iter().any(|o| matches!(o, Output::Docker { .. }));
    // The containerd image store loads images with attestations, and buildx adds its default
    // provenance there for `--load` too.
    let engine_store_provenance = if requested.is_none()
        && !outputs
            .iter()
            .any(|o| o.is_image() || matches!(o, Output::Docker { dest: None, .. }))
    {
        None
    } else {
        provenance.clone()
    };
    let provenance = if requested.is_none() && !default_on {
        None
    } else {
        provenance
    };
    // What the daemon would refuse in the attestations, as buildx reports it: after every
    // check of buildx's own.
    attestations.check(&attrs)?;
    // BuildKit checks this when it exports, after the build: last.
    annotations.check_platforms(&platforms)?;

    Ok(Plan {
        main,
        platforms,
        frontend_attrs: attrs,
        outputs,
        secrets,
        cache_imports,
        cache_exports,
        entitlements,
        ssh,
        named_contexts,
        annotations,
        run_options: args.run_options.clone(),
        provenance,
        attestations,
        engine_store_provenance,
        build_id: brix_solver_client::solve::new_build_ref()[..10].to_owned(),
    })
}

/// `BUILDX_NO_DEFAULT_ATTESTATIONS`, read as buildx reads it (Go's `strconv.ParseBool`).
fn no_default_attestations() -> anyhow::Result<bool> {
    const VAR: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";
    match std::env::var(VAR) {
        Err(_) => Ok(false),
        Ok(v) => parse_go_bool(&v).with_context(|| {
            format!(
                "invalid {VAR}: strconv.ParseBool: parsing {v:?}: invalid syntax (use 1 or 0, true or false)"
            )
        }),
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True`, `0 f F FALSE false False`.
pub(super) fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_secret(s: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut kind = None;
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .with_context(|| format!("invalid --secret {s:?}: expected key=value fields"))?;
        match k {
            "type" => kind = Some(v.to_owned()),
            "id" => id = Some(v.to_owned()),
            "src" | "source" => src = Some(v.to_owned()),
            "env" => env = Some(v.to_owned()),
            other => bail!("invalid --secret {s:?}: unknown key {other:?}"),
        }
    }
    let id = id.with_context(|| format!("invalid --secret {s:?}: id is required"))?;
    let source = match (kind.as_deref(), src, env) {
        (Some("env"), _, Some(e)) | (None, None, Some(e)) => SecretSource::Env(e),
        (Some("env"), _, None) => SecretSource::Env(id.clone()),
        (_, Some(p), _) => SecretSource::File(PathBuf::from(p)),
        (_, None, _) => {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
    };
    Ok((id, source))
}

/// `linux/arm/v7` → `linux_arm_v7`: the per-platform folder buildx uses in local and tar
/// outputs.
pub(crate) fn platform_dir(p: &Platform) -> String {
    p.to_string().replace('/', "_")
}

/// One platform's solve, prepared.
struct PlatformSolve {
    node: usize,
    platform: Option<Platform>,
    spec: SolveSpec,
    session: Session,
    /// Where each FileSend output of this solve lands, by exporter index.
    files: Vec<(usize, PathBuf)>,
}

/// What the solves produced, for the finishing steps.
pub(crate) struct Solved {
    pub platform: Option<Platform>,
    pub node: usize,
    pub result: SolveResult,
    /// Output index → the per-platform file this solve wrote for it.
    pub files: Vec<(usize, PathBuf)>,
}

async fn build(
    plan: &Plan,
    args: &BuildArgs,
    ng: &brix_driver::NodeGroup,
    printer: &Printer,
) -> Result<Option<String>, BuildFailure> {
    let nodes = nodes::connect_nodes(ng, printer).await?;
    cache::check_nodes(&plan.cache_exports, &nodes)?;
    let assignment = if plan.platforms.is_empty() {
        vec![0]
    } else {
        nodes::assign(&nodes, &plan.platforms)?
    };
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

    // Several platforms on one node share one session for the context and the Dockerfile.
    // The daemon keys a local source on the session that serves it, so with a session per
    // platform it would transfer the whole context once per platform (buildx sends one
    // multi-platform solve and so one transfer). `local-sessionid:NAME` is the dockerfile
    // frontend's per-local session override; the engine's own, older BuildKit (docker
    // driver) may not know it, so there each solve's session keeps serving the context.
    let mut context_sessions = BTreeMap::new();
    if multi && !local_names(&plan.main).is_empty() {
        for &node_index in &assignment {
            let node = &nodes[node_index];
            if node.is_docker() || context_sessions.contains_key(&node_index) {
                continue;
            }
            let mut session = Session::new(shared_key(plan, node));
            add_locals(&plan.main, &mut session);
            let running = session.run_over_control(&mut node.client.raw()).await?;
            context_sessions.insert(node_index, running);
        }
    }

    let mut prepared = Vec::new();
    for (i, (platform, &node_index)) in platforms.iter().zip(&assignment).enumerate() {
        let node = &nodes[node_index];
        let shared_context = context_sessions.contains_key(&node_index);
        let mut ps = prepare(
            plan,
            node,
            node_index,
            i,
            platform.clone(),
            multi,
            load_platform.as_ref() == Some(platform),
            !shared_context,
            scratch.path(),
        )?;
        if let Some(joined) = &joined_platforms {
            ps.spec
                .frontend_attrs
                .insert("platform".into(), joined.clone());
        }
        if let Some(shared) = context_sessions.get(&node_index) {
            for local in local_names(&plan.main) {
                ps.spec
                    .frontend_attrs
                    .insert(format!("local-sessionid:{local}"), shared.id().to_owned());
            }
        }
        prepared.push(ps);
    }
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
        eprintln!(
            "WARNING: the Docker engine holds one platform per image name: loading {p}, skipping {}",
            skipped.join(", ")
        );
    }

    save_local_states(plan, args, ng, &nodes, &prepared);

    let runs = prepared.into_iter().enumerate().map(|(i, ps)| {
        let node = &nodes[ps.node];
        let prefix = if multi {
            ps.platform.as_ref().map(ToString::to_string)
        } else {
            None
        };
        run_one(i, ps, node, printer.clone(), prefix)
    });
    // A multi-platform push ends with brix pushing the index: its registry connection (root
    // certificates, Docker config credentials) is set up while the solves run. Creating the
    // client contacts nothing, so other builds only pay for an empty one.
    let registry = std::sync::Arc::new(brix_exporter::Registry::new(finish::registry_options(
        &nodes,
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
    // Every solve is done with the context: end the shared sessions.
    drop(context_sessions);
    cache::finish_exports(&plan.cache_exports, &solved, &registry, printer).await?;
    if let Some(warm_up) = warm_up {
        let _ = warm_up.await;
    }
    finish::finish(
        plan,
        args,
        ng,
        &nodes,
        solved,
        printer,
        scratch.path(),
        &registry,
    )
    .await
}

/// Records each solve's local state in the builder store (`refs/<builder>/<node>/<ref>`), as
/// buildx does before it builds: `history` and Docker's tooling read it. A failure to record
/// it does not stop the build.
fn save_local_states(
    plan: &Plan,
    args: &BuildArgs,
    ng: &brix_driver::NodeGroup,
    nodes: &[BuildNode],
    prepared: &[PlatformSolve],
) {
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
        dockerfile_path: match args.file.as_deref() {
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
fn index_registry_hosts(plan: &Plan) -> Vec<String> {
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
fn shared_key(plan: &Plan, node: &BuildNode) -> String {
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
fn add_locals(main: &main_context::MainContext, session: &mut Session) {
    if let Some(dir) = main.local_dir() {
        session.add_local("context", SyncedDir::new(dir));
    }
    if let Some(dir) = &main.dockerfile_dir {
        session.add_local("dockerfile", SyncedDir::new(dir));
    }
}

/// The names [`add_locals`] serves.
fn local_names(main: &main_context::MainContext) -> Vec<&'static str> {
    let mut names = Vec::new();
    if main.local_dir().is_some() {
        names.push("context");
    }
    if main.dockerfile_dir.is_some() {
        names.push("dockerfile");
    }
    names
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    plan: &Plan,
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
    if let Some(hosts) = plan.run_options.extra_hosts(&|| node.host_gateway_ip())? {
        spec.frontend_attrs.insert("add-hosts".into(), hosts);
    }
    if let Some(p) = &platform {
        spec.frontend_attrs.insert("platform".into(), p.to_string());
    }
    // As buildx: attestations only where the node's store keeps them (not the engine's
    // BuildKit on the classic store, which may also predate them); asked for there, refused.
    let attestations_kept = node.engine_holds_indexes() || !node.is_docker();
    if !attestations_kept && plan.attestations.any_enabled() {
        bail!(
            "failed to build: Attestation is not supported for the docker driver.\n\
             Switch to a different driver, or turn on the containerd image store, and try again.\n\
             Learn more at https://docs.docker.com/go/attestations/"
        );
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
                if !node.features.oci_exporter {
                    anyhow::bail!(
                        "the docker driver cannot export OCI tarballs (type=oci) on this engine: use a docker-container builder (brix create --use)"
                    );
                }
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
                    anyhow::bail!(
                        "the docker driver cannot write docker tarballs (type=docker,dest=…) on this engine: use --load, or a docker-container builder"
                    );
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

/// The build's `SOURCE_DATE_EPOCH` (its build argument), which dates multi-platform output
/// folders as BuildKit dates them.
pub(crate) fn source_date_epoch(attrs: &BTreeMap<String, String>) -> Option<i64> {
    attrs
        .get("build-arg:SOURCE_DATE_EPOCH")
        .and_then(|v| v.parse().ok())
}

fn dest_target(dest: &Dest) -> OutputTarget {
    match dest {
        Dest::Stdout => OutputTarget::Writer(Box::new(tokio::io::stdout())),
        Dest::File(p) => OutputTarget::File(p.clone()),
    }
}

/// Connects a solve's session to the node: through dockerd's `/session` on the docker
/// driver, through `Control.Session` elsewhere.
async fn start_session(
    session: Session,
    node: &BuildNode,
) -> anyhow::Result<brix_solver_client::session::RunningSession> {
    match &node.docker_endpoint {
        Some(ep) => docker_session::run_over_dockerd(session, ep).await,
        None => Ok(session.run_over_control(&mut node.client.raw()).await?),
    }
}

async fn run_one(
    index: usize,
    ps: PlatformSolve,
    node: &BuildNode,
    printer: Printer,
    prefix: Option<String>,
) -> Result<Solved, BuildFailure> {
    let wrap = |e: anyhow::Error| BuildFailure {
        solve: Some(index),
        error: e,
    };
    let running = start_session(ps.session, node).await.map_err(wrap)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            printer.solve_events(index, prefix.as_deref(), batch);
        }
    });
    let result = solve(&node.client, ps.spec, running, tx).await;
    // All progress is shown before the result is.
    let _ = forward.await;
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
    use super::{BuildArgs, attestations::Attestations, parse_go_bool};
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn attestations(args: &[&str]) -> Attestations {
        let cmd = Cmd::try_parse_from(
            std::iter::once("build")
                .chain(args.iter().copied())
                .chain(["."]),
        )
        .expect("parses");
        let b = &cmd.build;
        Attestations::parse(&b.attests, b.provenance.as_deref(), b.sbom.as_deref()).expect("valid")
    }

    #[test]
    fn attestation_flags_reach_the_parser() {
        assert_eq!(attestations(&[]), Attestations::default());
        let a = attestations(&[
            "--attest",
            "type=provenance,mode=max,builder-id=https://ci/run/1",
            "--sbom=true",
        ]);
        assert_eq!(
            a.provenance(),
            Some(Some("type=provenance,builder-id=https://ci/run/1,mode=max"))
        );
        assert_eq!(
            a.other_frontend_attrs(),
            vec![("attest:sbom".to_owned(), "type=sbom".to_owned())]
        );
        let a = attestations(&["--provenance", "--sbom=generator=r/s:1"]);
        assert_eq!(a.provenance(), Some(Some("type=provenance")));
        assert_eq!(
            a.other_frontend_attrs(),
            vec![(
                "attest:sbom".to_owned(),
                "type=sbom,generator=r/s:1".to_owned()
            )]
        );
        assert_eq!(
            attestations(&["--provenance=false"]).provenance(),
            Some(None)
        );
    }

    #[test]
    fn booleans_read_as_go_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", " 1"] {
            assert_eq!(parse_go_bool(bad), None, "{bad:?}");
        }
    }
}
