//! `brix build`: the flags read into a [`BuildRequest`], built by brix-build's engine (one
//! Dockerfile solve per requested platform, run concurrently, each on the node that suits the
//! platform best, the outputs put together as buildx lays them out), shown in the CLI's one
//! progress display; then what buildx prints: the image ID with `--quiet`, a `--call`'s
//! answer, or the failing step and the error, and the exit code.

mod call;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use brix_build::{BuildError, BuildRequest, PlannedBuild, RunOptions};
use brix_driver::Store;
use brix_driver::builder::resolve;

use crate::progress::printer::{Printer, ProgressMode};

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
    pub run_options: RunOptionsArgs,
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

/// The run options, as clap reads them (checked as they are read: a bad `--shm-size` or
/// `--ulimit` is a usage error, as in buildx).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunOptionsArgs {
    /// Set the networking mode for the RUN instructions during build (`default`, `none`,
    /// `host`).
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Add a custom host-to-IP mapping (`host:ip` or `host=ip`; `host-gateway` as the IP is the
    /// engine's gateway on the docker driver).
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Allow extra privileged entitlement (`network.host`, `security.insecure`, `device`).
    #[arg(long = "allow")]
    pub allow: Vec<String>,
    /// Shared memory size for build containers (`64m`, `1g`, …).
    #[arg(long = "shm-size", value_parser = shm_size)]
    pub shm_size: Option<String>,
    /// Ulimit options (`nofile=1024:2048`).
    #[arg(long = "ulimit", value_parser = brix_build::parse_ulimit)]
    pub ulimits: Vec<String>,
    /// Set the parent cgroup for the RUN instructions during build.
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter")]
    pub no_cache_filter: Vec<String>,
}

/// `--shm-size`, checked as Docker's `RAMInBytes` reads it and passed on as given.
fn shm_size(value: &str) -> Result<String, String> {
    brix_build::parse_shm_size(value).map(|_| value.to_owned())
}

impl BuildArgs {
    /// The build these flags ask for (`--builder`, `--progress` and `--quiet` are the CLI's
    /// own: where to build and how to show it).
    pub fn request(&self) -> BuildRequest {
        let o = &self.run_options;
        BuildRequest {
            context: self.context.clone(),
            dockerfile: self.file.clone(),
            tags: self.tags.clone(),
            build_args: self.build_args.clone(),
            target: self.target.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            platforms: self.platforms.clone(),
            no_cache: self.no_cache,
            pull: self.pull,
            outputs: self.outputs.clone(),
            push: self.push,
            load: self.load,
            secrets: self.secrets.clone(),
            cache_from: self.cache_from.clone(),
            cache_to: self.cache_to.clone(),
            ssh: self.ssh.clone(),
            build_contexts: self.build_contexts.clone(),
            run_options: RunOptions {
                network: o.network.clone(),
                add_hosts: o.add_hosts.clone(),
                allow: o.allow.clone(),
                shm_size: o.shm_size.clone(),
                ulimits: o.ulimits.clone(),
                cgroup_parent: o.cgroup_parent.clone(),
                no_cache_filter: o.no_cache_filter.clone(),
            },
            provenance: self.provenance.clone(),
            sbom: self.sbom.clone(),
            attests: self.attests.clone(),
            call: self.call.clone(),
            check: self.check.clone(),
            metadata_file: self.metadata_file.clone(),
            collect_metadata: false,
            iidfile: self.iidfile.clone(),
            link_output: None,
        }
    }
}

/// Runs `brix build`.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    // Every check buildx makes before it contacts a daemon, before the builder is looked up.
    let planned = PlannedBuild::new(args.request(), &|warning| eprintln!("WARNING: {warning}"))?;
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
    let builder = &ng;
    let (printer, outcome) = run_with_display(&ng, mode, |sink| async move {
        brix_build::build_one(builder, planned, sink).await
    })?;
    match outcome {
        None => {
            printer.cancel_running();
            printer.finish();
            eprintln!("ERROR: build canceled (interrupted)");
            Ok(ExitCode::from(130))
        }
        Some(Ok(outcome)) => {
            printer.finish();
            if mode == ProgressMode::Quiet {
                // As buildx: the image ID, an empty line when there is none.
                println!("{}", outcome.image_id.as_deref().unwrap_or_default());
            }
            if let Some(answer) = &outcome.call {
                return Ok(call::print_answer(answer));
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failure)) => {
            printer.cancel_running();
            printer.finish();
            report_failure(&printer, &failure, false, None);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs `work` (given the display as its progress sink) under buildx's build display for the
/// builder `ng` (`#0 building with "NAME" instance using DRIVER driver`), on a runtime of its
/// own; `None` when Ctrl-C came first (dropping the work resets the solves' calls, so the
/// daemon cancels the jobs, and closes the sessions). Shared by `build` and `bake`.
pub(crate) fn run_with_display<T, F>(
    ng: &brix_driver::NodeGroup,
    mode: ProgressMode,
    work: impl FnOnce(Arc<dyn brix_build::ProgressSink>) -> F,
) -> anyhow::Result<(Printer, Option<T>)>
where
    F: std::future::Future<Output = T>,
{
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
    let sink: Arc<dyn brix_build::ProgressSink> = Arc::new(printer.clone());
    let work = work(sink);
    let outcome = rt.block_on(async {
        let ticker = printer.spawn_ticker();
        let result = tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        ticker.abort();
        result
    });
    // Give the tasks of the reset calls and closed sessions a moment to go.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok((printer, outcome))
}

/// Prints buildx's error block: the failing step with its last log lines, the Dockerfile
/// lines, then `ERROR: …`.
/// `bake` is set for bake's failures, with `bake_target` the failed target when several
/// were built.
pub(crate) fn report_failure(
    printer: &Printer,
    failure: &BuildError,
    bake: bool,
    bake_target: Option<&str>,
) {
    let solve_failure = failure.solve_failure();
    if let (Some(i), Some(sf)) = (failure.solve(), solve_failure) {
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
    // buildx 0.29's `build` says which phase failed: a failed solve is a failed build;
    // its `bake` names the target instead when it built several.
    let prefix = match bake_target {
        Some(target) => format!("target {target}: "),
        None if bake => String::new(),
        None if solve_failure.is_some() => "failed to build: ".to_owned(),
        None => String::new(),
    };
    eprintln!("ERROR: {prefix}{}", brix_build::one_line(failure));
}

#[cfg(test)]
mod tests {
    use super::BuildArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn request(args: &[&str]) -> brix_build::BuildRequest {
        let cmd = Cmd::try_parse_from(
            std::iter::once("build")
                .chain(args.iter().copied())
                .chain(["."]),
        )
        .expect("parses");
        cmd.build.request()
    }

    #[test]
    fn attestation_flags_reach_the_request() {
        let r = request(&[]);
        assert_eq!((r.provenance, r.sbom), (None, None));
        assert!(r.attests.is_empty());
        let r = request(&[
            "--attest",
            "type=provenance,mode=max,builder-id=https://ci/run/1",
            "--sbom=true",
        ]);
        assert_eq!(
            r.attests,
            ["type=provenance,mode=max,builder-id=https://ci/run/1"]
        );
        assert_eq!(r.sbom.as_deref(), Some("true"));
        let r = request(&["--provenance", "--sbom=generator=r/s:1"]);
        assert_eq!(r.provenance.as_deref(), Some("true"));
        assert_eq!(r.sbom.as_deref(), Some("generator=r/s:1"));
        assert_eq!(
            request(&["--provenance=false"]).provenance.as_deref(),
            Some("false")
        );
    }

    #[test]
    fn every_flag_reaches_the_request_as_given() {
        let r = request(&[
            "-f",
            "df",
            "-t",
            "a:1",
            "--build-arg",
            "A=1",
            "--target",
            "t",
            "--platform",
            "linux/amd64,linux/arm64",
            "--shm-size",
            "64m",
            "--ulimit",
            "nofile=1:2",
            "--network",
            "host",
            "--check",
            "--metadata-file",
            "m.json",
        ]);
        assert_eq!(r.context, ".");
        assert_eq!(r.dockerfile.as_deref(), Some("df"));
        assert_eq!(r.tags, ["a:1"]);
        assert_eq!(r.build_args, ["A=1"]);
        assert_eq!(r.target.as_deref(), Some("t"));
        assert_eq!(r.platforms, ["linux/amd64,linux/arm64"]);
        assert_eq!(r.run_options.shm_size.as_deref(), Some("64m"));
        assert_eq!(r.run_options.ulimits, ["nofile=1:2"]);
        assert_eq!(r.run_options.network, "host");
        assert_eq!(
            (r.call.as_str(), r.check.as_deref()),
            ("build", Some("true"))
        );
        assert_eq!(r.metadata_file, Some(std::path::PathBuf::from("m.json")));
        assert_eq!(request(&[]).run_options, brix_build::RunOptions::default());
    }

    #[test]
    fn bad_run_option_values_are_usage_errors() {
        for bad in [["--shm-size", "1x"], ["--ulimit", "bogus=1"]] {
            let parsed = Cmd::try_parse_from(["build", bad[0], bad[1], "."]);
            assert!(parsed.is_err(), "{bad:?}");
        }
    }
}
