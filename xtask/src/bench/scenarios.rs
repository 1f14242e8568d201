//! The scenarios of issue 8 and how each run of them is prepared, measured and checked.
//!
//! Every case compares brix with a baseline (real buildx, or skopeo for the client-side
//! push) on the same daemon and registry. Runs alternate — brix, baseline, brix, baseline —
//! after one warm-up run of each, so slow drifts of a shared machine hit both tools alike.
//! Whatever has to happen before a run (pruning the cache, changing a file, writing fresh
//! layers) happens outside the measured time.

use super::fixtures::{self, ContextSize, PushLayout};
use super::measure::{Invocation, Meter, Sample};
use super::setup::{self, BRIX_BUILDER, BUILDX_BUILDER, Binaries, ToolEnv};
use super::{BenchDirs, Sizes};
use crate::e2e::{BUSYBOX_IMAGE, REGISTRY_ADDR, REGISTRY_HOST, Workspace};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// The platforms every build and push covers.
pub const PLATFORMS: &str = "linux/amd64,linux/arm64";

/// Ratios a case should reach (brix divided by the baseline; for throughput the baseline's
/// time divided by brix's, so higher is better).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Target {
    /// Highest acceptable wall-time ratio.
    pub wall_max: Option<f64>,
    /// Highest acceptable CPU ratio.
    pub cpu_max: Option<f64>,
    /// Highest acceptable peak-memory ratio.
    pub rss_max: Option<f64>,
    /// Lowest acceptable throughput ratio.
    pub throughput_min: Option<f64>,
}

/// What a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// `ls`.
    Ls,
    /// `ls --format '{{.Name}}'`.
    LsFormat,
    /// `history ls` of the bench builder.
    HistoryLs,
    /// `inspect NAME`.
    Inspect,
    /// `inspect NAME` with brix forced onto buildx's transport (`docker exec buildctl
    /// dial-stdio`), to show how much of the difference is the connection.
    InspectDialStdio,
    /// A fully cached two-platform build pushed to the registry.
    WarmPush,
    /// The same push on the docker driver (the engine's own BuildKit) of the current
    /// engine, dockerd 28 with the containerd image store, where buildx does it too.
    EngineWarmPush,
    WarmBuild,
    /// The same build with brix on buildx's transport (`docker exec buildctl dial-stdio`).
    WarmBuildDialStdio,
    /// The warm build with the session's extra services (`--ssh default`, two
    /// `--build-context` folders), against brix's same build without them.
    SessionExtras,
    /// A two-platform build of the large context, with the cache pruned first.
    ColdContext,
    /// The same build after one file of the context changed.
    OneFileChanged,
    /// Pushing a two-platform OCI layout (brix-exporter vs skopeo).
    PushLayout,
    /// The same push to the token-auth registry (`localhost:5001`, the Docker token flow),
    /// both tools with the same credentials.
    PushTokenLayout,
    /// A multi-stage build with RUN steps on both platforms, cache pruned first.
    QemuMultistage,
    /// The cold large-context build exporting `--cache-to type=local,mode=max` (the client
    /// receives every blob through its session content store).
    LocalCacheExport,
    /// The same build, cache pruned, importing that local cache (the client serves it).
    LocalCacheImport,
    /// The cold large-context build exporting `--cache-to type=registry,mode=max`.
    RegistryCacheExport,
    /// The same build, cache pruned, importing that registry cache.
    RegistryCacheImport,
    /// `bake --print` of a generated 50-target HCL file with a matrix, variables and
    /// functions (no builder involved).
    BakePrint,
    /// `bake` of six targets sharing the large context, two platforms each,
    /// `type=cacheonly`, cache pruned first.
    BakeColdContext,
    /// `inspect NAME` of a kubernetes builder real buildx created (and booted) on the e2e
    /// cluster, both tools on buildx's store.
    KubernetesInspect,
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name, usable with `--scenario`.
    pub name: &'static str,
    /// The issue's scenario it belongs to (also usable with `--scenario`).
    pub scenario: &'static str,
    /// What is measured, for the report.
    pub description: String,
    /// `buildx` or `skopeo`.
    pub baseline: &'static str,
    /// The issue's target for this case.
    pub target: Target,
    /// What runs.
    pub kind: CaseKind,
}

/// Every case, in the order they run.
pub fn all_cases(sizes: &Sizes) -> Vec<Case> {
    let ctx = sizes.context;
    vec![
        Case {
            name: "ls",
            scenario: "ls-inspect",
            description: "`ls` (both builders' stores hold one builder plus the default)".into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.3),
                rss_max: Some(0.3),
                ..Target::default()
            },
            kind: CaseKind::Ls,
        },
        Case {
            name: "ls-format",
            scenario: "ls-inspect",
            description: "`ls --format '{{.Name}}'` (a Go template, as scripts use it)".into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.3),
                rss_max: Some(0.3),
                ..Target::default()
            },
            kind: CaseKind::LsFormat,
        },
        Case {
            name: "history-ls",
            scenario: "history",
            description:
                "`history ls` of the bench builder (the records of the earlier cases, and of \
                 four two-platform builds made for it)"
                    .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.3),
                rss_max: Some(0.3),
                ..Target::default()
            },
            kind: CaseKind::HistoryLs,
        },
        Case {
            name: "inspect",
            scenario: "ls-inspect",
            description: "`inspect NAME` of the running bench builder".into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.3),
                rss_max: Some(0.3),
                ..Target::default()
            },
            kind: CaseKind::Inspect,
        },
        Case {
            name: "inspect-dial-stdio",
            scenario: "ls-inspect",
            description: "`inspect NAME` with brix on buildx's transport (BRIX_DIAL=exec: \
                          `docker exec buildctl dial-stdio` instead of the daemon's socket)"
                .into(),
            baseline: "buildx",
            target: Target::default(),
            kind: CaseKind::InspectDialStdio,
        },
        Case {
            name: "warm-push",
            scenario: "warm",
            description: format!(
                "fully cached `--platform {PLATFORMS} --push` of FROM busybox + RUN echo, \
                 default (min) provenance on both"
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::WarmPush,
        },
        Case {
            name: "docker28-warm-push",
            scenario: "current-engine",
            description: format!(
                "fully cached `--builder default --platform {PLATFORMS} --push` on dockerd 28 \
                 with the containerd image store (the engine's BuildKit pushes the index)"
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(1.0),
                ..Target::default()
            },
            kind: CaseKind::EngineWarmPush,
        },
        Case {
            name: "warm-build",
            scenario: "warm",
            description: format!(
                "the same fully cached `--platform {PLATFORMS}` build, `-o type=cacheonly`"
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::WarmBuild,
        },
        Case {
            name: "warm-build-dial-stdio",
            scenario: "dial-stdio",
            description: format!(
                "the same fully cached `--platform {PLATFORMS}` build with brix on buildx's \
                 transport (BRIX_DIAL=exec: `docker exec buildctl dial-stdio`)"
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(1.0),
                ..Target::default()
            },
            kind: CaseKind::WarmBuildDialStdio,
        },
        Case {
            name: "session-extras",
            scenario: "build-inputs",
            description: format!(
                "the warm `--platform {PLATFORMS}` build, `-o type=cacheonly`, with `--ssh default` \
                 and two `--build-context` folders, against brix's same build without them"
            ),
            baseline: "brix",
            target: Target {
                wall_max: Some(1.1),
                ..Target::default()
            },
            kind: CaseKind::SessionExtras,
        },
        Case {
            name: "cold-context",
            scenario: "cold",
            description: format!(
                "`COPY . /src` of {} files / {:.0} MB, cache pruned, `-o type=cacheonly`",
                ctx.files,
                ctx.bytes as f64 / 1e6
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.8),
                cpu_max: Some(0.5),
                rss_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::ColdContext,
        },
        Case {
            name: "one-file-changed",
            scenario: "cold",
            description: "the same build after changing one file of the context".into(),
            baseline: "buildx",
            target: Target::default(),
            kind: CaseKind::OneFileChanged,
        },
        Case {
            name: "push-layout",
            scenario: "push",
            description: format!(
                "client-side push of a {PLATFORMS} OCI layout, 2 x {:.0} MB fresh random \
                 layers per run",
                sizes.layer_bytes as f64 / 1e6
            ),
            baseline: "skopeo",
            target: Target {
                throughput_min: Some(0.9),
                ..Target::default()
            },
            kind: CaseKind::PushLayout,
        },
        Case {
            name: "push-token-throughput",
            scenario: "push",
            description: format!(
                "the same client-side push of 2 x {:.0} MB fresh random layers to the token-auth \
                 registry ({TOKEN_REGISTRY_HOST}, Docker token flow, a fresh repository per \
                 run; brix from config.json, skopeo with --dest-creds)",
                sizes.layer_bytes as f64 / 1e6
            ),
            baseline: "skopeo",
            target: Target {
                throughput_min: Some(1.5),
                ..Target::default()
            },
            kind: CaseKind::PushTokenLayout,
        },
        Case {
            name: "qemu-multistage",
            scenario: "qemu",
            description: "cold two-stage build with RUN steps on both platforms (arm64 under \
                          QEMU), cache pruned, `-o type=cacheonly`"
                .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(1.05),
                ..Target::default()
            },
            kind: CaseKind::QemuMultistage,
        },
        Case {
            name: "local-cache-export",
            scenario: "cache",
            description: "the cold-context build, cache pruned, \
                          `--cache-to type=local,dest=DIR,mode=max` (every blob written by the \
                          client), `-o type=cacheonly`"
                .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.8),
                cpu_max: Some(0.5),
                rss_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::LocalCacheExport,
        },
        Case {
            name: "local-cache-import",
            scenario: "cache",
            description: "the same build, cache pruned, `--cache-from type=local,src=DIR` of the \
                          tool's own export (every blob served by the client)"
                .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.8),
                cpu_max: Some(0.5),
                rss_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::LocalCacheImport,
        },
        Case {
            name: "registry-cache-export",
            scenario: "cache",
            description: "the cold-context build, cache pruned, \
                          `--cache-to type=registry,ref=…,mode=max`"
                .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(1.0),
                ..Target::default()
            },
            kind: CaseKind::RegistryCacheExport,
        },
        Case {
            name: "registry-cache-import",
            scenario: "cache",
            description: "the same build, cache pruned, `--cache-from` the tool's registry cache"
                .into(),
            baseline: "buildx",
            target: Target {
                wall_max: Some(1.0),
                ..Target::default()
            },
            kind: CaseKind::RegistryCacheImport,
        },
        Case {
            name: "bake-print",
            scenario: "bake",
            description: format!(
                "`bake --print` in a folder whose docker-bake.hcl has {} targets (a matrix of \
                 {} services x 2 variants and 4 plain targets; variables, user functions, \
                 inherits)",
                fixtures::BAKE_PRINT_TARGETS,
                fixtures::BAKE_PRINT_SERVICES
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.2),
                ..Target::default()
            },
            kind: CaseKind::BakePrint,
        },
        Case {
            name: "bake-cold-context",
            scenario: "bake",
            description: format!(
                "`bake` of {BAKE_CONTEXT_TARGETS} targets (build arg VARIANT=1…\
                 {BAKE_CONTEXT_TARGETS}) sharing one context, `COPY . /src` of {} files / \
                 {:.0} MB, platforms {PLATFORMS} each, `type=cacheonly`, cache pruned",
                ctx.files,
                ctx.bytes as f64 / 1e6
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.6),
                cpu_max: Some(0.3),
                rss_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::BakeColdContext,
        },
        Case {
            name: "kubernetes-inspect",
            scenario: "kubernetes",
            description: format!(
                "`inspect NAME` of a one-pod kubernetes builder made by real buildx on the \
                 e2e cluster (namespace {KUBE_NAMESPACE}), both tools on its store"
            ),
            baseline: "buildx",
            target: Target {
                wall_max: Some(0.5),
                ..Target::default()
            },
            kind: CaseKind::KubernetesInspect,
        },
    ]
}

/// The kubernetes-inspect case's builder and namespace.
const KUBE_BUILDER: &str = "bench-kube";
const KUBE_NAMESPACE: &str = "default";

/// Targets of the bake-cold-context file.
const BAKE_CONTEXT_TARGETS: usize = 6;

/// Which of the two tools of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// brix (the release build).
    Brix,
    /// buildx or skopeo.
    Baseline,
}

/// The measurements of one tool in one case.
#[derive(Debug, Clone)]
pub struct ToolRuns {
    /// `brix`, `buildx` or `skopeo`.
    pub tool: String,
    /// The last command measured (for the report).
    pub command: String,
    /// One sample per measured run (warm-up not included).
    pub samples: Vec<Sample>,
    /// Why the tool failed, if a run of it did; later runs of that tool are skipped.
    pub failure: Option<String>,
}

/// The measurements of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// brix's runs.
    pub brix: ToolRuns,
    /// The baseline's runs.
    pub baseline: ToolRuns,
    /// Bytes each push run uploads (the push case only), for throughput.
    pub upload_bytes: Option<u64>,
}

/// Everything a run needs.
#[derive(Debug)]
pub struct Runner<'a> {
    /// The workspace.
    pub ws: &'a Workspace,
    /// Bench folders.
    pub dirs: &'a BenchDirs,
    /// Tool environments.
    pub env: &'a ToolEnv,
    /// Release binaries.
    pub bins: &'a Binaries,
    /// The measuring helper.
    pub meter: &'a Meter,
    /// Fixture sizes.
    pub sizes: &'a Sizes,
    /// Counts runs across cases, for fresh seeds, tags and log names.
    pub run_counter: u64,
}

/// A prepared run: the command and, for pushes, what has to be in the registry after it.
struct Prepared {
    invocation: Invocation,
    pushed: Option<Pushed>,
}

/// What a push run sends, and where.
struct Pushed {
    /// The repository, without the registry.
    repository: String,
    layout: PushLayout,
    /// Whether it goes to the token-auth registry rather than the plain one.
    token_auth: bool,
}

impl Runner<'_> {
    /// Prepares the fixtures a case needs once (contexts, Dockerfiles).
    pub fn prepare_case(&self, case: &Case) -> Result<()> {
        match case.kind {
            CaseKind::WarmPush
            | CaseKind::WarmBuild
            | CaseKind::WarmBuildDialStdio
            | CaseKind::EngineWarmPush
            | CaseKind::SessionExtras => {
                let dir = self.dirs.root.join("warm");
                std::fs::create_dir_all(&dir)?;
                std::fs::write(
                    dir.join("Dockerfile"),
                    format!("FROM {BUSYBOX_IMAGE}\nRUN echo hi > /x\n"),
                )?;
                if case.kind == CaseKind::SessionExtras {
                    for name in ["extra-a", "extra-b"] {
                        let extra = self.dirs.root.join(name);
                        std::fs::create_dir_all(&extra)?;
                        std::fs::write(extra.join("file.txt"), name)?;
                    }
                    setup::ensure_ssh_agent(&self.agent_socket())?;
                }
            }
            CaseKind::ColdContext
            | CaseKind::OneFileChanged
            | CaseKind::LocalCacheExport
            | CaseKind::LocalCacheImport
            | CaseKind::RegistryCacheExport
            | CaseKind::RegistryCacheImport
            | CaseKind::BakeColdContext => {
                let dir = self.context_dir();
                let started = std::time::Instant::now();
                if fixtures::ensure_context(&dir, self.sizes.context, BUSYBOX_IMAGE)? {
                    println!(
                        "[bench]   generated {} ({:.1}s)",
                        self.ws.display(&dir),
                        started.elapsed().as_secs_f64()
                    );
                }
                if case.kind == CaseKind::BakeColdContext {
                    // Beside the context, not in it: the context stays the cold-context
                    // case's, byte for byte.
                    let file = self.bake_context_file();
                    if let Some(folder) = file.parent() {
                        std::fs::create_dir_all(folder)?;
                    }
                    std::fs::write(
                        &file,
                        fixtures::bake_context_file(BAKE_CONTEXT_TARGETS, PLATFORMS),
                    )?;
                }
            }
            CaseKind::BakePrint => {
                let dir = self.dirs.root.join("bake-print");
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("docker-bake.hcl"), fixtures::bake_print_file())?;
            }
            CaseKind::QemuMultistage => {
                let dir = self.dirs.root.join("multistage");
                std::fs::create_dir_all(&dir)?;
                std::fs::write(
                    dir.join("Dockerfile"),
                    fixtures::multistage_dockerfile(BUSYBOX_IMAGE),
                )?;
            }
            CaseKind::HistoryLs => {
                // Records to list, whatever ran before: three two-platform builds by brix
                // and one by buildx on the shared daemon (brix leaves a record per platform).
                let dir = self.dirs.root.join("history");
                std::fs::create_dir_all(&dir)?;
                std::fs::write(
                    dir.join("Dockerfile"),
                    format!("FROM {BUSYBOX_IMAGE}\nRUN echo history > /x\n"),
                )?;
                let dir = dir.display().to_string();
                let args = [
                    "--progress",
                    "quiet",
                    "--platform",
                    PLATFORMS,
                    "-o",
                    "type=cacheonly",
                    dir.as_str(),
                ];
                for _ in 0..3 {
                    let mut brix = vec!["build", "--builder", BRIX_BUILDER];
                    brix.extend(args);
                    crate::e2e::process::output(&mut self.env.brix(self.bins, &brix))?;
                }
                let mut buildx = vec!["build", "--builder", BUILDX_BUILDER];
                buildx.extend(args);
                crate::e2e::process::output(&mut self.env.buildx(&buildx))?;
            }
            CaseKind::KubernetesInspect => {
                if !crate::e2e::kubernetes::running(self.ws) {
                    bail!(
                        "the e2e Kubernetes cluster is not running; run `cargo xtask e2e \
                         --setup-only`"
                    );
                }
                // Made and booted by buildx once; later runs find it running.
                let mut inspect = self.env.buildx(&["inspect", "--bootstrap", KUBE_BUILDER]);
                inspect.env("KUBECONFIG", self.kubeconfig());
                if crate::e2e::process::output(&mut inspect).is_err() {
                    let opts = format!("namespace={KUBE_NAMESPACE},replicas=1");
                    let mut create = self.env.buildx(&[
                        "create",
                        "--name",
                        KUBE_BUILDER,
                        "--driver",
                        "kubernetes",
                        "--driver-opt",
                        &opts,
                        "--bootstrap",
                    ]);
                    create.env("KUBECONFIG", self.kubeconfig());
                    crate::e2e::process::output(&mut create)?;
                }
            }
            CaseKind::Ls
            | CaseKind::LsFormat
            | CaseKind::Inspect
            | CaseKind::InspectDialStdio
            | CaseKind::PushLayout => {}
            CaseKind::PushTokenLayout => {
                if !crate::e2e::token_registry::running() {
                    bail!(
                        "the token-auth registry ({TOKEN_REGISTRY_HOST}) is not running; run \
                         `cargo xtask e2e --setup-only`"
                    );
                }
                let config = self.token_docker_config();
                std::fs::create_dir_all(&config)?;
                std::fs::write(config.join("config.json"), token_docker_config_json())?;
            }
        }
        Ok(())
    }

    /// The e2e cluster's admin kubeconfig.
    fn kubeconfig(&self) -> PathBuf {
        self.ws.e2e_dir.join("kubernetes").join("kubeconfig")
    }

    /// The `DOCKER_CONFIG` folder brix's token push takes its credentials from.
    fn token_docker_config(&self) -> PathBuf {
        self.dirs.root.join("token-docker-config")
    }

    /// The socket of the agent `--ssh default` forwards in the session-extras case.
    fn agent_socket(&self) -> PathBuf {
        self.dirs.root.join("ssh-agent.sock")
    }

    /// The bake file of the bake-cold-context case.
    fn bake_context_file(&self) -> PathBuf {
        self.dirs.root.join("bake-cold").join("docker-bake.hcl")
    }

    fn context_dir(&self) -> PathBuf {
        let ContextSize { files, bytes } = self.sizes.context;
        self.dirs.root.join(format!("ctx-{files}-{bytes}"))
    }

    /// Runs one case: a warm-up run of each tool, then `pairs` alternating measured pairs.
    pub fn run_case(&mut self, case: &Case, pairs: usize) -> CaseResult {
        let mut brix = ToolRuns {
            tool: "brix".into(),
            command: String::new(),
            samples: Vec::new(),
            failure: None,
        };
        let mut baseline = ToolRuns {
            tool: case.baseline.into(),
            ..brix.clone()
        };
        let mut upload_bytes = None;
        if let Err(err) = self.prepare_case(case) {
            let reason = format!("preparing the case failed: {err:#}");
            brix.failure = Some(reason.clone());
            baseline.failure = Some(reason);
        }
        for round in 0..=pairs {
            for side in [Side::Brix, Side::Baseline] {
                let runs = match side {
                    Side::Brix => &mut brix,
                    Side::Baseline => &mut baseline,
                };
                if runs.failure.is_some() {
                    continue;
                }
                let warmup = round == 0;
                match self.run_once(case, side, &runs.tool) {
                    Ok((command, sample, bytes)) => {
                        runs.command = command;
                        if !warmup {
                            runs.samples.push(sample);
                        }
                        upload_bytes = upload_bytes.or(bytes);
                        println!(
                            "[bench]   {:<16} {:<6} {}: {:.3}s wall, {:.3}s CPU, {:.0} MiB",
                            case.name,
                            runs.tool,
                            if warmup {
                                "warm-up".to_string()
                            } else {
                                format!("run {round}")
                            },
                            sample.wall_s,
                            sample.cpu_s(),
                            sample.max_rss_kib as f64 / 1024.0
                        );
                    }
                    Err(err) => {
                        println!(
                            "[bench]   {:<16} {:<6} FAILED: {}",
                            case.name,
                            runs.tool,
                            format!("{err:#}").lines().next().unwrap_or_default()
                        );
                        runs.failure = Some(format!("{err:#}"));
                    }
                }
            }
        }
        CaseResult {
            case: case.clone(),
            brix,
            baseline,
            upload_bytes,
        }
    }

    /// Prepares, measures and checks one run.
    fn run_once(
        &mut self,
        case: &Case,
        side: Side,
        tool: &str,
    ) -> Result<(String, Sample, Option<u64>)> {
        self.run_counter += 1;
        let run = self.run_counter;
        let prepared = self.prepare_run(case, side, run)?;
        let log = self
            .dirs
            .logs
            .join(format!("{run:03}-{}-{tool}.log", case.name));
        let result = self.meter.run(&prepared.invocation, &log);
        let bytes = prepared.pushed.as_ref().map(|p| p.layout.upload_bytes);
        if let Some(pushed) = &prepared.pushed {
            let (repository, layout) = (&pushed.repository, &pushed.layout);
            let storage = if pushed.token_auth {
                crate::e2e::token_registry::storage(self.ws)
            } else {
                setup::registry_storage(self.ws)
            };
            let checked = match (&result, pushed.token_auth) {
                (Err(_), _) => Ok(()),
                (Ok(_), false) => check_uploaded(repository, layout),
                (Ok(_), true) => check_stored(&storage, repository, layout),
            };
            setup::forget_pushed_in(&storage, repository, &layout.layer_digests);
            let _ = std::fs::remove_dir_all(&layout.dir);
            checked?;
        }
        Ok((prepared.invocation.display(), result?, bytes))
    }

    fn prepare_run(&self, case: &Case, side: Side, run: u64) -> Result<Prepared> {
        let root = &self.dirs.root;
        let build_args = |extra: &[&str], dir: &PathBuf| -> Vec<String> {
            let mut args: Vec<String> = vec![
                "--progress".into(),
                "plain".into(),
                "--platform".into(),
                PLATFORMS.into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push(dir.display().to_string());
            args
        };
        let invocation = match case.kind {
            CaseKind::Ls => self.tool(side, &["ls"], &["ls"]),
            CaseKind::LsFormat => {
                let args = ["ls", "--format", "{{.Name}}"];
                self.tool(side, &args, &args)
            }
            CaseKind::HistoryLs => self.tool(
                side,
                &["history", "ls", "--builder", BRIX_BUILDER],
                &["history", "ls", "--builder", BUILDX_BUILDER],
            ),
            CaseKind::Inspect => self.tool(
                side,
                &["inspect", BRIX_BUILDER],
                &["inspect", BUILDX_BUILDER],
            ),
            CaseKind::KubernetesInspect => {
                let kubeconfig = self.kubeconfig().display().to_string();
                match side {
                    Side::Brix => Invocation::new(
                        self.bins.brix.display().to_string(),
                        &["inspect", KUBE_BUILDER],
                    )
                    // buildx's store, where buildx made the builder.
                    .env("BRIX_CONFIG", self.env.buildx_config.display().to_string()),
                    Side::Baseline => self.tool(side, &[], &["inspect", KUBE_BUILDER]),
                }
                .env("KUBECONFIG", kubeconfig)
            }
            CaseKind::InspectDialStdio => {
                let inv = self.tool(
                    side,
                    &["inspect", BRIX_BUILDER],
                    &["inspect", BUILDX_BUILDER],
                );
                match side {
                    Side::Brix => inv.env("BRIX_DIAL", "exec"),
                    Side::Baseline => inv,
                }
            }
            CaseKind::WarmPush => {
                let tag = |tool: &str| format!("{REGISTRY_HOST}/bench-warm-{tool}:1");
                let dir = root.join("warm");
                let brix = build_args(&["-t", &tag("brix"), "--push"], &dir);
                let buildx = build_args(&["-t", &tag("buildx"), "--push"], &dir);
                self.build(side, &brix, &buildx)
            }
            CaseKind::EngineWarmPush => {
                let tag = |tool: &str| format!("{REGISTRY_HOST}/bench-docker28-warm-{tool}:1");
                let dir = root.join("warm");
                let brix = build_args(&["-t", &tag("brix"), "--push"], &dir);
                let buildx = build_args(&["-t", &tag("buildx"), "--push"], &dir);
                let rest = match side {
                    Side::Brix => &brix,
                    Side::Baseline => &buildx,
                };
                let mut args = vec!["build", "--builder", "default"];
                args.extend(rest.iter().map(String::as_str));
                let host = crate::e2e::docker28::Docker28::new(self.ws).host();
                self.tool(side, &args, &args).env("DOCKER_HOST", host)
            }
            CaseKind::WarmBuild => {
                let args = build_args(&["-o", "type=cacheonly"], &root.join("warm"));
                self.build(side, &args, &args)
            }
            CaseKind::WarmBuildDialStdio => {
                let args = build_args(&["-o", "type=cacheonly"], &root.join("warm"));
                let inv = self.build(side, &args, &args);
                match side {
                    Side::Brix => inv.env("BRIX_DIAL", "exec"),
                    Side::Baseline => inv,
                }
            }
            CaseKind::SessionExtras => {
                let mut extra = vec!["-o".to_owned(), "type=cacheonly".to_owned()];
                if side == Side::Brix {
                    extra.extend(["--ssh".to_owned(), "default".to_owned()]);
                    for name in ["extra-a", "extra-b"] {
                        extra.push("--build-context".to_owned());
                        extra.push(format!("{name}={}", root.join(name).display()));
                    }
                }
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let args = build_args(&extra, &root.join("warm"));
                let mut brix_args = vec!["build", "--builder", BRIX_BUILDER];
                brix_args.extend(args.iter().map(String::as_str));
                // Both sides are brix: the baseline is the same build without the extras.
                self.tool(Side::Brix, &brix_args, &[])
                    .env("SSH_AUTH_SOCK", self.agent_socket().display().to_string())
            }
            CaseKind::ColdContext | CaseKind::QemuMultistage => {
                let dir = if case.kind == CaseKind::ColdContext {
                    self.context_dir()
                } else {
                    root.join("multistage")
                };
                setup::prune_cache(std::slice::from_ref(&dir))?;
                let args = build_args(&["-o", "type=cacheonly"], &dir);
                self.build(side, &args, &args)
            }
            CaseKind::OneFileChanged => {
                let dir = self.context_dir();
                fixtures::change_one_file(&dir, run)?;
                let args = build_args(&["-o", "type=cacheonly"], &dir);
                self.build(side, &args, &args)
            }
            CaseKind::LocalCacheExport
            | CaseKind::LocalCacheImport
            | CaseKind::RegistryCacheExport
            | CaseKind::RegistryCacheImport => {
                let tool = match side {
                    Side::Brix => "brix",
                    Side::Baseline => "buildx",
                };
                let local = root.join(format!("cache-local-{tool}"));
                let mut warm = vec![self.context_dir()];
                if case.kind == CaseKind::LocalCacheImport {
                    warm.push(local.clone());
                }
                setup::prune_cache(&warm)?;
                let reference = format!("{REGISTRY_HOST}/bench-cache-{tool}:cache");
                let cache = match case.kind {
                    CaseKind::LocalCacheExport => {
                        // Each export starts from an empty folder, so every blob is written.
                        if local.exists() {
                            std::fs::remove_dir_all(&local)?;
                        }
                        vec![
                            "--cache-to".to_owned(),
                            format!("type=local,dest={},mode=max", local.display()),
                        ]
                    }
                    CaseKind::LocalCacheImport => vec![
                        "--cache-from".to_owned(),
                        format!("type=local,src={}", local.display()),
                    ],
                    CaseKind::RegistryCacheExport => vec![
                        "--cache-to".to_owned(),
                        format!("type=registry,ref={reference},mode=max"),
                    ],
                    _ => vec!["--cache-from".to_owned(), reference],
                };
                let mut extra: Vec<&str> = cache.iter().map(String::as_str).collect();
                extra.extend(["-o", "type=cacheonly"]);
                let args = build_args(&extra, &self.context_dir());
                self.build(side, &args, &args)
            }
            CaseKind::BakePrint => {
                // Both find docker-bake.hcl in the folder they run in, as a user types it.
                let args = ["bake", "--print"];
                self.tool(side, &args, &args)
                    .current_dir(root.join("bake-print"))
            }
            CaseKind::BakeColdContext => {
                setup::prune_cache(&[self.context_dir()])?;
                let file = self.bake_context_file().display().to_string();
                let builder = match side {
                    Side::Brix => BRIX_BUILDER,
                    Side::Baseline => BUILDX_BUILDER,
                };
                let args = [
                    "bake",
                    "--builder",
                    builder,
                    "--progress",
                    "plain",
                    "-f",
                    &file,
                ];
                // In the context's folder, so its `context = "."` is inside the working
                // folder and buildx asks for no `--allow fs.read` entitlement.
                self.tool(side, &args, &args)
                    .current_dir(self.context_dir())
            }
            CaseKind::PushLayout | CaseKind::PushTokenLayout => {
                // The token case pushes to the token-auth registry, under the user's
                // namespace (the only one its token server grants), with its credentials.
                let token_auth = case.kind == CaseKind::PushTokenLayout;
                let tool = match side {
                    Side::Brix => "brix",
                    Side::Baseline => "skopeo",
                };
                let (host, prefix) = if token_auth {
                    (
                        TOKEN_REGISTRY_HOST,
                        format!("{}/bench-token-push", crate::e2e::token_registry::USER),
                    )
                } else {
                    (REGISTRY_HOST, "bench-push".to_owned())
                };
                let layout = fixtures::write_push_layout(
                    &root.join(format!(
                        "layout-{}{tool}",
                        if token_auth { "token-" } else { "" }
                    )),
                    &[("linux", "amd64"), ("linux", "arm64")],
                    self.sizes.layer_bytes,
                    run,
                )?;
                let repository = format!("{prefix}-{tool}-{run}");
                let dir = layout.dir.display().to_string();
                let target = format!("{host}/{repository}");
                let invocation = match side {
                    Side::Brix => {
                        let push = Invocation::new(
                            self.bins.push_layout.display().to_string(),
                            &[&dir, &target, "1"],
                        );
                        if token_auth {
                            push.env(
                                "DOCKER_CONFIG",
                                self.token_docker_config().display().to_string(),
                            )
                        } else {
                            push
                        }
                    }
                    Side::Baseline => {
                        let creds = format!(
                            "{}:{}",
                            crate::e2e::token_registry::USER,
                            crate::e2e::token_registry::PASSWORD
                        );
                        let mut args = vec![
                            "copy",
                            "--all",
                            "--preserve-digests",
                            "--dest-tls-verify=false",
                        ];
                        if token_auth {
                            args.extend(["--dest-creds", creds.as_str()]);
                        }
                        let (source, dest) = (format!("oci:{dir}"), format!("docker://{target}:1"));
                        args.extend([source.as_str(), dest.as_str()]);
                        Invocation::new("skopeo", &args)
                    }
                };
                return Ok(Prepared {
                    invocation,
                    pushed: Some(Pushed {
                        repository,
                        layout,
                        token_auth,
                    }),
                });
            }
        };
        Ok(Prepared {
            invocation,
            pushed: None,
        })
    }

    /// `brix BRIX_ARGS` or `docker buildx BUILDX_ARGS`, each with its private store.
    fn tool(&self, side: Side, brix_args: &[&str], buildx_args: &[&str]) -> Invocation {
        match side {
            Side::Brix => Invocation::new(self.bins.brix.display().to_string(), brix_args)
                .env("BRIX_CONFIG", self.env.brix_config.display().to_string()),
            Side::Baseline => {
                let mut args = vec!["buildx"];
                args.extend_from_slice(buildx_args);
                Invocation::new("docker", &args).env(
                    "BUILDX_CONFIG",
                    self.env.buildx_config.display().to_string(),
                )
            }
        }
    }

    /// `build --builder <bench builder> ARGS` for either tool.
    fn build(&self, side: Side, brix_args: &[String], buildx_args: &[String]) -> Invocation {
        let (builder, rest) = match side {
            Side::Brix => (BRIX_BUILDER, brix_args),
            Side::Baseline => (BUILDX_BUILDER, buildx_args),
        };
        let mut args = vec!["build", "--builder", builder];
        args.extend(rest.iter().map(String::as_str));
        self.tool(side, &args, &args)
    }
}

/// Checks that the registry holds every layer of `layout` in `repository`. The layers are
/// fresh random bytes, so they can only be there if this run uploaded them.
fn check_uploaded(repository: &str, layout: &PushLayout) -> Result<()> {
    for digest in &layout.layer_digests {
        let status = head_status(&format!("/v2/{repository}/blobs/{digest}"))
            .with_context(|| format!("asking the registry for {repository}@{digest}"))?;
        if status != 200 {
            bail!("the registry answers {status} for layer {digest} of {repository}: not uploaded");
        }
    }
    Ok(())
}

/// The token-auth registry as image references name it.
const TOKEN_REGISTRY_HOST: &str = crate::e2e::token_registry::REGISTRY_HOST;

/// `config.json` with the token-auth registry's credentials, as `docker login` writes them.
fn token_docker_config_json() -> String {
    use crate::e2e::token_registry::{PASSWORD, USER};
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    serde_json::json!({ "auths": { TOKEN_REGISTRY_HOST: { "auth": auth } } }).to_string()
}

/// Checks, in the token-auth registry's storage (its API wants a token), that every layer of
/// `layout` is stored whole and linked into `repository`. The layers are fresh random
/// bytes, so they can only be there if this run uploaded them.
fn check_stored(storage: &std::path::Path, repository: &str, layout: &PushLayout) -> Result<()> {
    for digest in &layout.layer_digests {
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("not a sha256 digest: {digest}"))?;
        let link = storage
            .join("repositories")
            .join(repository)
            .join("_layers/sha256")
            .join(hex)
            .join("link");
        if !link.is_file() {
            bail!("layer {digest} is not linked into {repository}: not uploaded");
        }
        let data = setup::blob_data_path(storage, digest)
            .with_context(|| format!("not a sha256 digest: {digest}"))?;
        if !data.is_file() {
            bail!("the registry stores no data for layer {digest} of {repository}");
        }
    }
    Ok(())
}

/// The status of `HEAD path` on the local registry.
fn head_status(path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(REGISTRY_ADDR)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "HEAD {path} HTTP/1.0\r\nHost: {REGISTRY_HOST}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut head = String::new();
    stream.take(4096).read_to_string(&mut head)?;
    parse_status_line(&head).with_context(|| format!("no HTTP status line in {head:?}"))
}

fn parse_status_line(response: &str) -> Option<u16> {
    response
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_is_parsed() {
        assert_eq!(
            parse_status_line("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"),
            Some(200)
        );
        assert_eq!(parse_status_line("HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn every_scenario_of_the_issue_has_a_case_with_a_baseline() {
        let cases = all_cases(&Sizes::full());
        for scenario in [
            "ls-inspect",
            "warm",
            "cold",
            "push",
            "qemu",
            "current-engine",
            "cache",
            "build-inputs",
            "bake",
        ] {
            assert!(cases.iter().any(|c| c.scenario == scenario), "{scenario}");
        }
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len(), "case names are unique");
        assert!(
            cases
                .iter()
                .all(|c| matches!(c.baseline, "buildx" | "skopeo" | "brix"))
        );
    }
}
