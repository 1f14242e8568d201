//! `brix bake`: buildx's bake files (HCL, JSON, compose) read by brix-bake into targets and
//! groups, printed (`--print`), listed (`--list`), or built on one builder.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use brix_bake::hcl::EvalOptions;
use brix_bake::lookup;
use brix_bake::model::text::path_clean;
use brix_bake::overrides::FlagOverrides;
use brix_bake::{BakeError, ReadOptions};

use crate::progress::printer::ProgressMode;

/// Arguments of `brix bake`.
#[derive(Debug, clap::Args)]
pub struct BakeArgs {
    /// Targets or groups to build (default: the `default` group or target).
    pub targets: Vec<String>,
    /// Build definition file (repeatable; `-` reads stdin). Default: buildx's lookup
    /// (`compose.yaml`, …, `docker-bake.hcl`, `docker-bake.override.hcl`).
    #[arg(short = 'f', long = "file")]
    pub files: Vec<String>,
    /// Override target value (e.g., `targetpattern.key=value`, `key+=value` appends).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Print the options without building.
    #[arg(long)]
    pub print: bool,
    /// List targets or variables (`targets`, `variables`, `type=targets,format=json`).
    #[arg(long)]
    pub list: Option<String>,
    /// Shorthand for `--set=*.output=type=registry`.
    #[arg(long)]
    pub push: bool,
    /// Shorthand for `--set=*.output=type=docker`.
    #[arg(long)]
    pub load: bool,
    /// Do not use cache when building the image.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub no_cache: Option<bool>,
    /// Always attempt to pull all referenced images.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub pull: Option<bool>,
    /// Shorthand for `--set=*.attest=type=provenance`.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// Shorthand for `--set=*.attest=type=sbom`.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Write build result metadata to a file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Set type of progress output.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Set method for evaluating build (`check`, `outline`, `targets`).
    #[arg(long = "call", value_name = "METHOD", default_value = "build")]
    pub call: String,
    /// Shorthand for `--call=check`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub check: Option<String>,
    /// Grant entitlements (`network.host`, `security.insecure`, `fs=…`).
    #[arg(long)]
    pub allow: Vec<String>,
    /// The builder (the global `--builder`, before or after the subcommand, as in buildx).
    #[arg(skip)]
    pub builder: Option<String>,
}

/// Runs `brix bake`.
pub fn run(args: BakeArgs) -> anyhow::Result<ExitCode> {
    match run_inner(&args) {
        Ok(code) => Ok(code),
        Err(Failure::Bake(err)) => {
            report(&err);
            Ok(ExitCode::FAILURE)
        }
        Err(Failure::Other(err)) => Err(err),
    }
}

enum Failure {
    /// A bake file's problem, printed as buildx prints it (with the source excerpt).
    Bake(BakeError),
    Other(anyhow::Error),
}

impl From<BakeError> for Failure {
    fn from(e: BakeError) -> Self {
        Failure::Bake(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn run_inner(args: &BakeArgs) -> Result<ExitCode, Failure> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let mut names = args.files.clone();
    if names.is_empty() {
        names = lookup::bake_env_files(&|k| env.get(k).cloned(), &cwd).map_err(BakeError::from)?;
    }
    let files = lookup::read_local_files(&names, &cwd, &mut std::io::stdin().lock())
        .map_err(BakeError::from)?;
    let eval = EvalOptions {
        env: env.clone(),
        cmd_context: "cwd://".to_owned(),
        local_platform: brix_config::Platform::host().to_string(),
        ..Default::default()
    };
    let opts = ReadOptions::from_eval(eval)?;

    if let Some(list) = &args.list {
        let request = brix_bake::print::parse_list(list).map_err(|e| anyhow::anyhow!("{e}"))?;
        if files.is_empty() {
            return Err(BakeError::from(lookup::LookupError::NoDefinition).into());
        }
        let definition = brix_bake::parse_files(&files, &opts)?;
        print_stdout(&brix_bake::list(&definition, request))?;
        return Ok(ExitCode::SUCCESS);
    }

    let call = match &args.check {
        Some(v) if v != "false" => "check".to_owned(),
        _ => args.call.clone(),
    };
    let flags = FlagOverrides {
        push: args.push,
        load: args.load,
        call,
        no_cache: args.no_cache,
        pull: args.pull,
        sbom: args.sbom.clone().unwrap_or_default(),
        provenance: args.provenance.clone().unwrap_or_default(),
    };
    let mut sets = args.set.clone();
    sets.extend(flags.to_set_values().map_err(|e| anyhow::anyhow!("{e}"))?);
    let resolved = brix_bake::read_targets(&files, &args.targets, &sets, &opts)?;
    if args.print {
        print_stdout(&brix_bake::print(&resolved, &opts)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(build_targets(args, &resolved)?)
}

/// The build request a bake target stands for, as buildx's `toBuildOpt` makes it: the
/// context cleaned (`cwd://` dropped), a local context's Dockerfile joined to it, unset
/// (null) args and labels left out, structured values back in the flag syntax the engine
/// reads. `linked` maps the targets this one's `target:NAME` contexts name to the
/// `oci-layout://` contexts their results were written to; `inline` is where a `dockerfile-inline` was
/// written (as `Dockerfile`).
fn to_request(
    target: &brix_bake::model::Target,
    linked: &BTreeMap<String, String>,
    inline: Option<&std::path::Path>,
) -> anyhow::Result<brix_build::BuildRequest> {
    if target.context.as_deref() == Some("-") {
        anyhow::bail!("context from stdin not allowed in bake");
    }
    if target.dockerfile.as_deref() == Some("-") {
        anyhow::bail!("dockerfile from stdin not allowed in bake");
    }
    let raw_context = target.context.clone().unwrap_or_else(|| ".".to_owned());
    let remote = brix_bake::resolve::is_remote_url(&raw_context);
    let context = match raw_context.strip_prefix("cwd://") {
        Some(path) => path_clean(path),
        None if remote => raw_context.clone(),
        None => path_clean(&raw_context),
    };
    let mut request = brix_build::BuildRequest::new(context.clone());
    let dockerfile = target
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".to_owned());
    request.dockerfile = Some(match (inline, dockerfile.strip_prefix("cwd://")) {
        (Some(inline), _) => inline.display().to_string(),
        (None, Some(path)) => std::path::absolute(path_clean(path))?.display().to_string(),
        (None, None) if !remote && !dockerfile.starts_with('/') => std::path::Path::new(&context)
            .join(path_clean(&dockerfile))
            .display()
            .to_string(),
        (None, None) => path_clean(&dockerfile),
    });
    request.tags = target.tags.clone().unwrap_or_default();
    request.build_args = set_values(&target.args);
    request.labels = set_values(&target.labels);
    request.target = target.target.clone();
    request.annotations = target.annotations.clone().unwrap_or_default();
    request.platforms = target.platforms.clone().unwrap_or_default();
    request.no_cache = target.no_cache.unwrap_or(false);
    request.pull = target.pull.unwrap_or(false);
    request.outputs = target
        .outputs
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    request.secrets = target
        .secrets
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    request.ssh = target
        .ssh
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    request.cache_from = target
        .cache_from
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    request.cache_to = target
        .cache_to
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    request.attests = target
        .attest
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    for (name, value) in &target.contexts {
        let value = match value.strip_prefix("target:") {
            Some(dependency) => match linked.get(dependency) {
                Some(reference) => reference.clone(),
                None => anyhow::bail!("target {dependency:?} of context {name:?} was not built"),
            },
            None => value
                .strip_prefix("cwd://")
                .map(path_clean)
                .unwrap_or_else(|| value.clone()),
        };
        request.build_contexts.push(format!("{name}={value}"));
    }
    if let Some(network) = &target.network {
        request.run_options.network = network.clone();
    }
    request.run_options.shm_size = target.shm_size.clone();
    request.run_options.ulimits = target.ulimits.clone().unwrap_or_default();
    request.run_options.no_cache_filter = target.no_cache_filter.clone().unwrap_or_default();
    request.run_options.add_hosts = target
        .extra_hosts
        .iter()
        .filter_map(|(host, ip)| ip.as_ref().map(|ip| format!("{host}={ip}")))
        .collect();
    request.run_options.allow = target.entitlements.clone().unwrap_or_default();
    if let Some(call) = &target.call {
        request.call = call.clone();
    }
    Ok(request)
}

/// `KEY=VALUE` for each key whose value is set.
fn set_values(map: &BTreeMap<String, Option<String>>) -> Vec<String> {
    map.iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect()
}

/// Builds the resolved targets on the builder, together: every target whose `target:NAME`
/// contexts are built runs in the same engine call (one progress display, shared sessions
/// for shared contexts); a target another one names in a `target:` context builds in an
/// earlier call, its result also written to an OCI layout folder that the dependent reads as
/// an `oci-layout://` context.
fn build_targets(args: &BakeArgs, resolved: &brix_bake::Resolved) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::Builder::new()
        .prefix("brix-bake-")
        .tempdir()
        .context("making a scratch folder for linked targets")?;
    let waves = dependency_waves(resolved)?;
    let linked: std::collections::BTreeSet<String> = resolved
        .targets
        .values()
        .flat_map(|t| dependencies(t, resolved))
        .map(str::to_owned)
        .collect();
    // Each wave's requests, made and checked (every check buildx makes before it builds)
    // once the results of the targets its `target:` contexts name exist.
    let make_wave = |wave: &[String],
                     contexts: &BTreeMap<String, String>|
     -> anyhow::Result<Vec<(String, brix_build::PlannedBuild)>> {
        let mut planned = Vec::new();
        for name in wave {
            let target = &resolved.targets[name];
            let inline = match &target.dockerfile_inline {
                Some(text) => {
                    let dir = scratch.path().join(format!("inline-{name}"));
                    std::fs::create_dir_all(&dir).context("writing dockerfile-inline")?;
                    let file = dir.join("Dockerfile");
                    std::fs::write(&file, text).context("writing dockerfile-inline")?;
                    Some(file)
                }
                None => None,
            };
            let mut request = to_request(target, contexts, inline.as_deref())?;
            if linked.contains(name) {
                // An OCI tarball (every platform in one index), unpacked once built.
                request.link_output = Some(linked_tarball(scratch.path(), name));
            }
            request.run_options.allow.extend(args.allow.iter().cloned());
            // Each target's metadata as `build --metadata-file` would write it (provenance
            // and warnings included), for one file keyed by target at the end.
            request.collect_metadata = args.metadata_file.is_some();
            let plan = brix_build::PlannedBuild::new(request, &|w| eprintln!("WARNING: {w}"))
                .map_err(|e| anyhow::anyhow!("{}", brix_build::one_line(&e)))?;
            planned.push((name.clone(), plan));
        }
        Ok(planned)
    };
    // As buildx: target names go into the steps' names when more than one target builds.
    let named = resolved.targets.len() > 1;
    let mut contexts: BTreeMap<String, String> = BTreeMap::new();
    let mut waves = waves.into_iter();
    let first = make_wave(&waves.next().unwrap_or_default(), &contexts)?;

    let store = brix_driver::Store::open_default()?;
    let ng = {
        let txn = store.txn()?;
        brix_driver::builder::resolve(&txn, args.builder.as_deref())?
    };
    let mode = args.progress.resolve();
    let (builder, linked, scratch, make_wave) = (&ng, &linked, &scratch, &make_wave);
    let (printer, outcome) = super::build::run_with_display(&ng, mode, |sink| async move {
        let mut results = Vec::new();
        let mut wave = first;
        loop {
            let outcomes = brix_build::build_named(builder, wave, sink.clone(), named).await;
            let failed = outcomes.iter().any(|(_, r)| r.is_err());
            results.extend(outcomes);
            if failed {
                break;
            }
            let Some(next) = waves.next() else { break };
            for name in linked {
                let tarball = linked_tarball(scratch.path(), name);
                if tarball.is_file() && !contexts.contains_key(name) {
                    let reference = unpack_layout(&tarball)
                        .with_context(|| format!("unpacking the result of target {name:?}"))?;
                    contexts.insert(name.clone(), reference);
                }
            }
            wave = make_wave(&next, &contexts)?;
        }
        anyhow::Ok(results)
    })?;
    let Some(results) = outcome.transpose()? else {
        printer.cancel_running();
        printer.finish();
        eprintln!("ERROR: build canceled (interrupted)");
        return Ok(ExitCode::from(130));
    };
    if results.iter().any(|(_, r)| r.is_err()) {
        printer.cancel_running();
    }
    printer.finish();
    let mut metadata = serde_json::Map::new();
    let mut failure = None;
    for (name, result) in &results {
        match result {
            Ok(outcome) if args.metadata_file.is_some() => {
                let text = outcome
                    .metadata_file_text()
                    .context("encoding the metadata of a target")?;
                let value: serde_json::Value =
                    serde_json::from_str(&text).context("the metadata of a target")?;
                metadata.insert(name.clone(), value);
            }
            Ok(_) => {}
            // The failure to show is the one that stopped the others.
            Err(e) if !e.is_canceled() => {
                failure.get_or_insert((name, e));
            }
            Err(_) => {}
        }
    }
    if let Some(path) = &args.metadata_file
        && failure.is_none()
    {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(metadata))
            .context("the metadata file")?;
        brix_build::files::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing the metadata file {}", path.display()))?;
    }
    if let Some(failure) = failure {
        let (target, failure) = failure;
        let target = named.then_some(target.as_str());
        super::build::report_failure(&printer, failure, true, target);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a linked target's result goes: an OCI layout tarball in the scratch folder.
fn linked_tarball(scratch: &std::path::Path, name: &str) -> PathBuf {
    scratch.join(format!("target-{name}.tar"))
}

/// Unpacks an OCI layout tarball beside it (`NAME.tar` into `NAME/`) and returns the
/// `oci-layout://DIR@DIGEST` context naming its index.
fn unpack_layout(tarball: &std::path::Path) -> anyhow::Result<String> {
    let dir = tarball.with_extension("");
    std::fs::create_dir_all(&dir)?;
    // tar's `unpack` keeps every entry beneath `dir`.
    tar::Archive::new(std::fs::File::open(tarball)?).unpack(&dir)?;
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .context("the OCI layout's index.json names no manifest")?;
    Ok(format!("oci-layout://{}@{digest}", dir.display()))
}

/// The targets of this bake that `target`'s `target:NAME` contexts name.
fn dependencies<'a>(
    target: &'a brix_bake::model::Target,
    resolved: &'a brix_bake::Resolved,
) -> impl Iterator<Item = &'a str> {
    target
        .contexts
        .values()
        .filter_map(|v| v.strip_prefix("target:"))
        .filter(|d| resolved.targets.contains_key(*d))
}

/// The targets in the order their `target:` contexts need: each wave only names targets
/// of earlier waves.
fn dependency_waves(resolved: &brix_bake::Resolved) -> anyhow::Result<Vec<Vec<String>>> {
    let deps: BTreeMap<&str, Vec<&str>> = resolved
        .targets
        .iter()
        .map(|(name, t)| {
            let names = dependencies(t, resolved)
                .filter(|d| *d != name.as_str())
                .collect();
            (name.as_str(), names)
        })
        .collect();
    let mut waves = Vec::new();
    let mut done: std::collections::BTreeSet<&str> = Default::default();
    while done.len() < deps.len() {
        let wave: Vec<&str> = deps
            .iter()
            .filter(|(n, d)| !done.contains(*n) && d.iter().all(|d| done.contains(d)))
            .map(|(n, _)| *n)
            .collect();
        if wave.is_empty() {
            anyhow::bail!("the targets' target: contexts name each other in a cycle");
        }
        done.extend(wave.iter().copied());
        waves.push(wave.into_iter().map(str::to_owned).collect());
    }
    Ok(waves)
}

fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// buildx's error report for a bake file: the source excerpt of an HCL diagnostic, then
/// `ERROR: …`.
fn report(err: &BakeError) {
    if let BakeError::Hcl(diags) = err
        && let Some(snippet) = diags.snippet()
    {
        eprint!("{snippet}");
        if !snippet.ends_with('\n') {
            eprintln!();
        }
    }
    eprintln!("ERROR: {err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_go_cleans_them() {
        assert_eq!(path_clean("./a/../b/"), "b");
        assert_eq!(path_clean("."), ".");
        assert_eq!(path_clean("../x"), "../x");
        assert_eq!(path_clean("/a/../../b"), "/b");
    }

    #[test]
    fn a_target_becomes_the_request_buildx_would_make() {
        let mut target = brix_bake::model::Target {
            name: "app".into(),
            context: Some("./app/".into()),
            dockerfile: Some("df/App.Dockerfile".into()),
            ..Default::default()
        };
        target.args.insert("A".into(), Some("1".into()));
        target.args.insert("UNSET".into(), None);
        target.contexts.insert("base".into(), "target:base".into());
        target
            .extra_hosts
            .insert("h".into(), Some("10.0.0.1".into()));
        let linked = BTreeMap::from([("base".to_owned(), "oci-layout:///tmp/base-oci".to_owned())]);
        let request = to_request(&target, &linked, None).expect("request");
        assert_eq!(request.context, "app");
        assert_eq!(request.dockerfile.as_deref(), Some("app/df/App.Dockerfile"));
        assert_eq!(request.build_args, ["A=1"]);
        assert_eq!(request.build_contexts, ["base=oci-layout:///tmp/base-oci"]);
        assert_eq!(request.run_options.add_hosts, ["h=10.0.0.1"]);
        target.context = Some("-".into());
        assert!(to_request(&target, &linked, None).is_err());
    }
}
