//! After the solves: the per-platform results put together. Multi-platform tar outputs become
//! one tarball with `linux_amd64/`-style folders, OCI tarballs one layout with one index,
//! pushed per-platform images one index pushed under every tag (last); `docker` tarballs are
//! loaded into the engine; then `--metadata-file` and `--iidfile` are written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use brix_exporter::{
    AssembledIndex, Descriptor, ImageReference, IndexEdits, Registry, RegistryOptions,
};
use futures_util::StreamExt;

use crate::engine::Solved;
use crate::error::Failure;
use crate::metadata_provenance::{PROVENANCE_KEY, ProvenanceMode, record_provenance};
use crate::nodes::BuildNode;
use crate::outputs::{Dest, Output};
use crate::plan::{PlannedBuild, platform_dir};
use crate::{BuildOutcome, ProgressSink, StepProgress};

/// The registry host of an image name (`localhost:5000/app:1` → `localhost:5000`).
pub fn registry_host(name: &str) -> String {
    ImageReference::parse(name)
        .map(|r| r.registry().to_owned())
        .unwrap_or_default()
}

/// The distinct repositories (`registry/repo`, no tag) of `names`, in order.
pub fn repositories(names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let r = ImageReference::parse(n).with_context(|| format!("invalid image name {n:?}"))?;
        let repo = r.name();
        if !out.contains(&repo) {
            out.push(repo);
        }
    }
    Ok(out)
}

/// How brix itself talks to registries (index pushes, docker-driver pushes, cache merges):
/// as the nodes' buildkitd.toml say — plain HTTP for `http = true` hosts (and loopback),
/// `insecure`, and their `ca` and `keypair` files (the first node's, for a host several
/// name) — besides Docker's `/etc/docker/certs.d`.
pub(crate) fn registry_options(nodes: &[BuildNode]) -> RegistryOptions {
    let mut options = RegistryOptions::default();
    for node in nodes {
        options.add_buildkitd_config(&node.node.files);
    }
    options
}

/// The per-platform results put together; `registry` is the client indexes are pushed with
/// (the caller may have set it up while the solves ran); `warnings` are the solves' (for the
/// metadata file).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish(
    plan: &PlannedBuild,
    ng: &brix_driver::NodeGroup,
    nodes: &[BuildNode],
    solved: Vec<Solved>,
    progress: &dyn ProgressSink,
    scratch: &Path,
    registry: &Registry,
    warnings: Vec<brix_solver_client::progress::BuildWarning>,
) -> Result<BuildOutcome, Failure> {
    let args = &plan.request;
    let multi = solved.len() > 1;
    let mut metadata = serde_json::Map::new();
    let mut image_id: Option<String> = None;

    for (oi, output) in plan.outputs.iter().enumerate() {
        let files: Vec<(String, PathBuf)> = solved
            .iter()
            .filter_map(|s| {
                let f = s.files.iter().find(|(o, _)| *o == oi)?;
                Some((
                    s.platform.as_ref().map(platform_dir).unwrap_or_default(),
                    f.1.clone(),
                ))
            })
            .collect();
        match output {
            Output::Tar { dest } if multi => {
                let step = progress.client_step("merging platform tarballs");
                let epoch = crate::plan::source_date_epoch(&plan.frontend_attrs);
                let folders = files
                    .iter()
                    .map(|(name, file)| {
                        Ok((
                            brix_solver_client::fsutil::PlatformFolder::new(name.clone())?
                                .with_source_date_epoch(epoch),
                            file.clone(),
                        ))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let r = merge_tars(&folders, dest, scratch);
                step.done(r.as_ref().err().map(|e| format!("{e:#}")));
                r?;
            }
            Output::Oci { dest, attrs } if multi => {
                let step = progress.client_step("exporting to one OCI layout with an image index");
                let inputs: Vec<PathBuf> = files.iter().map(|(_, f)| f.clone()).collect();
                let edits = index_edits(plan, &solved);
                let out = match dest {
                    Dest::File(p) => p.clone(),
                    Dest::Stdout => scratch.join("merged-oci.tar"),
                };
                let name = attrs
                    .get("name")
                    .and_then(|n| n.split(',').next())
                    .map(str::to_owned);
                let r = tokio::task::spawn_blocking(move || {
                    brix_exporter::merge_layout_tarballs_with(
                        &inputs,
                        &out,
                        name.as_deref(),
                        &edits,
                    )
                    .map(|index| (index, out))
                })
                .await
                .context("merging OCI tarballs")?;
                match r {
                    Ok((index, out)) => {
                        step.status(&format!("exporting manifest list {}", index.digest()), true);
                        step.done(None);
                        if matches!(dest, Dest::Stdout) {
                            copy_to_stdout(&out)?;
                        }
                        if plan.link_output != Some(oi) {
                            metadata.extend(index.metadata());
                            image_id = Some(index.digest().to_owned());
                        }
                    }
                    Err(e) => {
                        step.done(Some(e.to_string()));
                        return Err(e.into());
                    }
                }
            }
            Output::Docker { dest: None, .. } if !nodes.iter().all(BuildNode::is_docker) => {
                for (_, file) in &files {
                    load_into_docker(file, progress).await?;
                }
            }
            Output::Image { push: true, .. } if multi && nodes[solved[0].node].is_docker() => {
                let index =
                    push_index_through_docker(plan, output, nodes, &solved, progress).await?;
                metadata.extend(index.metadata());
                metadata.insert("image.name".into(), output.names().join(",").into());
                image_id = Some(index.digest().to_owned());
            }
            Output::Image { push: true, .. } if multi => {
                let edits = index_edits(plan, &solved);
                let index = push_index(output, &edits, registry, &solved, progress).await?;
                metadata.extend(index.metadata());
                metadata.insert("image.name".into(), output.names().join(",").into());
                image_id = Some(index.digest().to_owned());
            }
            Output::Image { push: true, .. } if !nodes[solved[0].node].features.direct_push => {
                for name in output.names() {
                    push_with_docker(&nodes[solved[0].node], &name, progress).await?;
                }
            }
            _ => {}
        }
    }

    // One solve's exporter response; none when its only exporter is the link output's.
    let exported = plan.user_outputs().any(|o| !matches!(o, Output::CacheOnly));
    if !multi
        && exported
        && let Some(s) = solved.first()
    {
        for (k, v) in &s.result.exporter_response {
            let value = if k.ends_with("descriptor") {
                decode_descriptor(v).unwrap_or_else(|| v.clone().into())
            } else {
                serde_json::Value::String(v.clone())
            };
            metadata.insert(k.clone(), value);
        }
        image_id = s
            .result
            .exporter_response
            .get("containerimage.config.digest")
            .or_else(|| s.result.exporter_response.get("containerimage.digest"))
            .cloned();
    }
    if let Some(s) = solved.first() {
        let node = &nodes[s.node].node.name;
        metadata.insert(
            "buildx.build.ref".into(),
            format!("{}/{}/{}", ng.name, node, s.result.build_ref).into(),
        );
    }
    let wants_metadata = args.metadata_file.is_some() || args.collect_metadata;
    let mut predicates = BTreeMap::new();
    if wants_metadata {
        let mode = ProvenanceMode::from_env();
        if mode != ProvenanceMode::Disabled {
            let step = progress.client_step("resolving provenance for metadata file");
            // As buildx 0.29 on BuildKit 0.34 (checked side by side): a multi-platform build
            // whose output carries its attestations (an image, oci or docker output) leaves no
            // per-platform provenance in its build record, so buildx writes none; it does for
            // a single platform and for outputs without images.
            let in_images = plan.platforms.len() > 1 && plan.user_outputs().any(Output::is_image);
            let r = if in_images {
                Ok(BTreeMap::new())
            } else {
                solved_provenance(nodes, &solved, multi, mode).await
            };
            step.done(r.as_ref().err().map(|e| format!("{e:#}")));
            predicates = r?;
        }
    }
    // The variable is read (and a bad value refused) whenever metadata is wanted.
    if wants_metadata && metadata_warnings_wanted()? && !warnings.is_empty() {
        metadata.insert(
            "buildx.build.warnings".into(),
            warnings.iter().map(warning_json).collect(),
        );
    }
    let outcome = BuildOutcome {
        image_id,
        metadata,
        provenance: predicates,
        warnings,
        call: None,
    };
    if let Some(path) = &args.metadata_file {
        let text = outcome
            .metadata_file_text()
            .context("encoding the metadata file")?;
        crate::files::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing the metadata file {}", path.display()))?;
    }
    if let (Some(path), Some(id)) = (&args.iidfile, &outcome.image_id) {
        crate::files::write_atomically(path, id.as_bytes())
            .with_context(|| format!("writing the image ID file {}", path.display()))?;
    }
    Ok(outcome)
}

/// The `buildx.build.provenance` predicates of every solve's build record. buildx runs one
/// multi-platform solve and keys its per-platform results `…/<platform>`; brix's one solve per
/// platform gets the same keys from each solve's platform.
async fn solved_provenance(
    nodes: &[BuildNode],
    solved: &[Solved],
    multi: bool,
    mode: ProvenanceMode,
) -> anyhow::Result<BTreeMap<String, Box<serde_json::value::RawValue>>> {
    let mut out = BTreeMap::new();
    for s in solved {
        let entries = record_provenance(&nodes[s.node].client, &s.result.build_ref, mode).await?;
        for (record_platform, value) in entries {
            let platform = record_platform.or_else(|| {
                multi
                    .then(|| s.platform.as_ref().map(ToString::to_string))
                    .flatten()
            });
            let key = match platform {
                Some(p) => format!("{PROVENANCE_KEY}/{p}"),
                None => PROVENANCE_KEY.to_owned(),
            };
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// `BUILDX_METADATA_WARNINGS`, as buildx reads it: a true value puts the build's warnings in
/// the metadata file.
fn metadata_warnings_wanted() -> anyhow::Result<bool> {
    match std::env::var("BUILDX_METADATA_WARNINGS") {
        Err(_) => Ok(false),
        Ok(v) => crate::go::parse_bool(&v).with_context(|| {
            format!(
                "invalid BUILDX_METADATA_WARNINGS: strconv.ParseBool: parsing {v:?}: invalid syntax"
            )
        }),
    }
}

/// One warning as buildx writes it in the metadata file (BuildKit's `VertexWarning` in Go's
/// JSON: byte fields base64, empty fields left out).
fn warning_json(w: &brix_solver_client::progress::BuildWarning) -> serde_json::Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        out.insert(k.into(), v);
    };
    if !w.vertex.is_empty() {
        put("vertex", w.vertex.clone().into());
    }
    if w.level != 0 {
        put("level", w.level.into());
    }
    if !w.short.is_empty() {
        put("short", b64(w.short.as_bytes()).into());
    }
    if !w.detail.is_empty() {
        put(
            "detail",
            w.detail.iter().map(|d| b64(d.as_bytes())).collect(),
        );
    }
    if !w.url.is_empty() {
        put("url", w.url.clone().into());
    }
    if let Some(loc) = &w.location {
        let mut info = serde_json::Map::new();
        if !loc.filename.is_empty() {
            info.insert("filename".into(), loc.filename.clone().into());
        }
        if !loc.data.is_empty() {
            info.insert("data".into(), b64(&loc.data).into());
        }
        if !w.language.is_empty() {
            info.insert("language".into(), w.language.clone().into());
        }
        put("sourceInfo", info.into());
    }
    if !w.ranges.is_empty() {
        let position = |(line, character): (i32, i32)| {
            let mut p = serde_json::Map::new();
            if line != 0 {
                p.insert("line".into(), line.into());
            }
            if character != 0 {
                p.insert("character".into(), character.into());
            }
            serde_json::Value::Object(p)
        };
        put(
            "range",
            w.ranges
                .iter()
                .map(|r| serde_json::json!({"start": position(r.start), "end": position(r.end)}))
                .collect(),
        );
    }
    serde_json::Value::Object(out)
}

fn decode_descriptor(v: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What the build's `--annotation`s add to the index brix assembles over its per-platform
/// solves.
fn index_edits(plan: &PlannedBuild, solved: &[Solved]) -> IndexEdits {
    let platforms: Vec<brix_config::Platform> =
        solved.iter().filter_map(|s| s.platform.clone()).collect();
    plan.annotations.index_edits(&platforms)
}

/// Pushes the index over the per-platform images each solve pushed by digest, with `edits`
/// (the build's index-level annotations) applied, to every repository of the output, under
/// every tag; prints buildx's `pushing manifest for` lines.
async fn push_index(
    output: &Output,
    edits: &IndexEdits,
    registry: &Registry,
    solved: &[Solved],
    progress: &dyn ProgressSink,
) -> anyhow::Result<AssembledIndex> {
    let names = output.names();
    let step = progress.client_step(&format!("merging manifest list {}", names.join(",")));
    let r = push_index_inner(&names, edits, registry, solved, step.as_ref()).await;
    step.done(r.as_ref().err().map(|e| format!("{e:#}")));
    r
}

async fn push_index_inner(
    names: &[String],
    edits: &IndexEdits,
    registry: &Registry,
    solved: &[Solved],
    step: &dyn StepProgress,
) -> anyhow::Result<AssembledIndex> {
    let mut descriptors = Vec::new();
    for s in solved {
        let raw = s
            .result
            .exporter_response
            .get("containerimage.descriptor")
            .with_context(|| {
                format!(
                    "the daemon did not return the pushed image's descriptor for {}",
                    s.platform
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )
            })?;
        descriptors.push(Descriptor::from_solve_response(raw)?);
    }
    // Tags grouped by repository, in the order given.
    let mut by_repo: Vec<(ImageReference, Vec<String>)> = Vec::new();
    for n in names {
        let r = ImageReference::parse(n)?;
        let tag = r.tag().unwrap_or("latest").to_owned();
        match by_repo.iter_mut().find(|(repo, _)| repo.name() == r.name()) {
            Some((_, tags)) => tags.push(tag),
            None => by_repo.push((r, vec![tag])),
        }
    }
    let mut last = None;
    for (repo, tags) in by_repo {
        let index = edits.assemble(registry.resolve_descriptors(&repo, &descriptors).await?)?;
        step.status(&format!("exporting manifest list {}", index.digest()), true);
        for tag in &tags {
            let id = format!(
                "pushing manifest for {}:{tag}@{}",
                repo.name(),
                index.digest()
            );
            step.status(&id, false);
        }
        registry
            .push_index(&repo.name(), &tags, &index)
            .await
            .with_context(|| format!("pushing the image index to {}", repo.name()))?;
        for tag in &tags {
            let id = format!(
                "pushing manifest for {}:{tag}@{}",
                repo.name(),
                index.digest()
            );
            step.status(&id, true);
        }
        last = Some(index);
    }
    last.context("no image name to push to")
}

/// Multi-platform push on the docker driver: each platform's image, stored in the engine
/// under a temporary name, is taken out of the engine and pushed by digest with brix's own
/// registry code (brix-exporter's `EngineImagePusher`), then one index over them is pushed
/// under every tag; the temporary names are removed from the engine in every case.
async fn push_index_through_docker(
    plan: &PlannedBuild,
    output: &Output,
    nodes: &[BuildNode],
    solved: &[Solved],
    progress: &dyn ProgressSink,
) -> anyhow::Result<AssembledIndex> {
    use brix_exporter::engine_image::{EngineImage, EngineImagePusher, remove_engine_images};
    let names = output.names();
    let docker = engine_of(&nodes[solved[0].node])?;
    let images: Vec<EngineImage> = solved
        .iter()
        .filter_map(|s| s.platform.as_ref())
        .map(|p| EngineImage::new(engine_temp_name(&plan.build_id, p)).expect_platform(p.clone()))
        .collect();
    let step = progress.client_step(&format!("merging manifest list {}", names.join(",")));
    step.status("exporting images from the Docker engine", false);
    let pusher = EngineImagePusher::new(docker.clone(), registry_options(nodes));
    let pushed = pusher.push_multi_platform(&images, &names).await;
    let temps: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    if let Err(e) = remove_engine_images(&docker, &temps).await {
        tracing::debug!(error = %e, "temporary images left in the engine");
    }
    step.status("exporting images from the Docker engine", true);
    match pushed {
        Ok(push) => {
            for image in &push.images {
                step.status(
                    &format!(
                        "pushing {}@{} {}",
                        image.repository,
                        image.manifest.digest,
                        image
                            .manifest
                            .platform
                            .as_ref()
                            .map(|p| format!("{}/{}", p.os, p.architecture))
                            .unwrap_or_default()
                    ),
                    true,
                );
            }
            step.status(
                &format!("exporting manifest list {}", push.index.digest()),
                true,
            );
            for name in &names {
                step.status(
                    &format!("pushing manifest for {name}@{}", push.index.digest()),
                    true,
                );
            }
            step.done(None);
            Ok(push.index)
        }
        Err(e) => {
            step.done(Some(e.to_string()));
            Err(e.into())
        }
    }
}

/// The temporary engine name of one platform's image in a docker-driver push.
pub fn engine_temp_name(build_id: &str, platform: &brix_config::Platform) -> String {
    brix_exporter::engine_image::temporary_image_name(build_id, platform)
}

/// The engine a `docker` driver node is (its own endpoint: `--builder CONTEXT` may name
/// another engine than the current one).
fn engine_of(node: &BuildNode) -> anyhow::Result<bollard::Docker> {
    let endpoint = node
        .docker_endpoint
        .as_deref()
        .context("the engine's image store is only there on the docker driver")?;
    Ok(brix_driver::docker_api::connect_docker(endpoint)?)
}

/// `docker push NAME` through the engine API (docker driver: the engine holds the image).
/// Returns the pushed manifest's digest and size when the engine reports them.
async fn push_with_docker(
    node: &BuildNode,
    name: &str,
    progress: &dyn ProgressSink,
) -> anyhow::Result<Option<(String, u64)>> {
    let step = progress.client_step(&format!("pushing {name} with docker"));
    let r = async {
        let docker = engine_of(node)?;
        let r = ImageReference::parse(name)?;
        let image = match r.registry() {
            "docker.io" => r.repository().to_owned(),
            reg => format!("{reg}/{}", r.repository()),
        };
        let options = bollard::query_parameters::PushImageOptions {
            tag: Some(r.tag().unwrap_or("latest").to_owned()),
            platform: None,
        };
        let mut stream = docker.push_image(&image, Some(options), None);
        let mut pushed = None;
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("pushing {name}"))?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("pushing {name}: {e}");
            }
            if let Some(s) = info.status
                && s.contains("digest:")
            {
                step.log(&s);
                pushed = parse_push_status(&s).or(pushed);
            }
        }
        Ok(pushed)
    }
    .await;
    step.done(r.as_ref().err().map(|e| format!("{e:#}")));
    r
}

/// Loads a `docker` exporter tarball into the engine (`docker load`).
async fn load_into_docker(file: &Path, progress: &dyn ProgressSink) -> anyhow::Result<()> {
    let step = progress.client_step("importing to docker");
    let r = async {
        let docker = brix_driver::docker_api::connect_docker(
            &brix_driver::docker_api::current_docker_endpoint(),
        )?;
        let bytes = tokio::fs::read(file)
            .await
            .with_context(|| format!("reading {}", file.display()))?;
        let mut stream = docker.import_image(
            bollard::query_parameters::ImportImageOptions {
                quiet: true,
                platform: None,
            },
            bollard::body_full(bytes.into()),
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.context("loading the image into the Docker engine")?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("loading the image into the Docker engine: {e}");
            }
            if let Some(s) = info.stream.filter(|s| !s.trim().is_empty()) {
                step.log(s.trim_end());
            }
        }
        Ok(())
    }
    .await;
    step.done(r.as_ref().err().map(|e| format!("{e:#}")));
    r
}

/// `latest: digest: sha256:… size: 527` (the engine's last push status) → digest and size.
fn parse_push_status(status: &str) -> Option<(String, u64)> {
    let digest = status.split("digest: ").nth(1)?.split_whitespace().next()?;
    let size = status.split("size: ").nth(1)?.split_whitespace().next()?;
    Some((digest.to_owned(), size.parse().ok()?))
}

fn copy_to_stdout(path: &Path) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// A tar entry's name (or hard link target) from a daemon's tarball, checked to stay inside
/// its platform's folder: normal components only, `./` dropped.
fn tar_entry_path(path: &Path, tarball: &Path) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => bail!(
                "refusing entry {:?} in the builder's tarball {}: it would land outside its platform's folder",
                path.display().to_string(),
                tarball.display()
            ),
        }
    }
    if out.as_os_str().is_empty() {
        bail!(
            "refusing an entry with an empty name in the builder's tarball {}",
            tarball.display()
        );
    }
    Ok(out)
}

/// Writes one tarball holding each platform's tarball under its `linux_amd64/`-style folder,
/// byte for byte as BuildKit's own multi-platform tar export writes it (fsutil's `SubDirFS`
/// and `WriteTar`): the folders in name order, each a 0755 directory entry dated as its
/// `PlatformFolder` says, followed by its platform's entries renamed under it, absolute
/// symlink targets moved under `/<folder>`, hard links pointing inside it, and every header
/// encoded as Go's `archive/tar` encodes the new names.
///
/// Each input is named by its folder: a `PlatformFolder` (dated with the build's
/// `SOURCE_DATE_EPOCH`), or the folder's name alone (dated at the Unix epoch, BuildKit's date
/// without one).
fn merge_tars<F>(inputs: &[(F, PathBuf)], dest: &Dest, scratch: &Path) -> anyhow::Result<()>
where
    F: Clone + TryInto<brix_solver_client::fsutil::PlatformFolder>,
    anyhow::Error: From<F::Error>,
{
    use brix_solver_client::fsutil::tar_header::{TYPE_DIR, TYPE_LINK, TYPE_REG, TYPE_SYMLINK};
    use brix_solver_client::fsutil::{PlatformFolder, TarHeader, tar_header::padding};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    let number = |v: &[u8], key: &str, input: &Path| -> anyhow::Result<i64> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("invalid PAX {key} record in {}", input.display()))
    };
    // A PAX `mtime` may have a fraction; Go's writer rounds it to the nearest second,
    // halves towards the later time.
    let seconds = |v: &[u8], input: &Path| -> anyhow::Result<i64> {
        let (whole, frac) = match v.iter().position(|b| *b == b'.') {
            Some(dot) => (&v[..dot], &v[dot + 1..]),
            None => (v, &b""[..]),
        };
        let negative = whole.first() == Some(&b'-');
        let secs = i128::from(number(whole, "mtime", input)?);
        let mut nanos: i128 = 0;
        for i in 0..9 {
            let d = frac.get(i).copied().unwrap_or(b'0');
            if !d.is_ascii_digit() {
                bail!("invalid PAX mtime record in {}", input.display());
            }
            nanos = nanos * 10 + i128::from(d - b'0');
        }
        let total = secs * 1_000_000_000 + if negative { -nanos } else { nanos };
        Ok(i64::try_from(
            (total + 500_000_000).div_euclid(1_000_000_000),
        )?)
    };

    // As Go's reader, an empty numeric field reads as 0.
    let field = |value: std::io::Result<u64>, bytes: &[u8]| -> anyhow::Result<i64> {
        match value {
            Ok(v) => Ok(i64::try_from(v)?),
            Err(_) if bytes.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
            Err(e) => Err(e.into()),
        }
    };

    let mut folders = Vec::with_capacity(inputs.len());
    for (folder, input) in inputs {
        let folder: PlatformFolder = folder.clone().try_into()?;
        folders.push((folder, input));
    }
    // BuildKit's SubDirFS walks its folders sorted by name.
    folders.sort_by(|a, b| a.0.name().cmp(b.0.name()));

    let out_path = match dest {
        Dest::File(p) => p.clone(),
        Dest::Stdout => scratch.join("merged.tar"),
    };
    {
        let out = std::fs::File::create(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?;
        let mut out = std::io::BufWriter::new(out);
        let mut seen = std::collections::BTreeSet::new();
        for (folder, input) in folders {
            let prefixed = |rel: &Path| {
                let mut name = folder.name().as_bytes().to_vec();
                name.push(b'/');
                name.extend_from_slice(rel.as_os_str().as_bytes());
                name
            };
            out.write_all(&folder.tar_header().encode()?)?;
            let f = std::fs::File::open(input)
                .with_context(|| format!("opening {}", input.display()))?;
            let mut archive = tar::Archive::new(std::io::BufReader::new(f));
            for entry in archive
                .entries()
                .with_context(|| format!("reading {}", input.display()))?
            {
                let mut entry = entry.with_context(|| format!("reading {}", input.display()))?;
                let raw = entry.header();
                let mut typeflag = raw.entry_type().as_byte();
                if typeflag == b'g' {
                    // A PAX global header: fsutil never writes one, and it names no entry.
                    continue;
                }
                let raw_name = entry.path_bytes().into_owned();
                if typeflag == 0 {
                    // Go's writer promotes the old regular-file flag.
                    typeflag = if raw_name.ends_with(b"/") {
                        TYPE_DIR
                    } else {
                        TYPE_REG
                    };
                }
                let rel = tar_entry_path(Path::new(std::ffi::OsStr::from_bytes(&raw_name)), input)?;
                let mut name = prefixed(&rel);
                if !seen.insert(name.clone()) {
                    continue;
                }
                if typeflag == TYPE_DIR {
                    name.push(b'/');
                }
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let linkname = match typeflag {
                    TYPE_SYMLINK => folder.symlink_target(&link),
                    TYPE_LINK => {
                        let target = std::ffi::OsString::from_vec(link);
                        prefixed(&tar_entry_path(Path::new(&target), input)?)
                    }
                    _ => link,
                };
                let old = raw.as_old();
                let dev = match (raw.as_ustar(), raw.as_gnu()) {
                    (Some(u), _) => (u.dev_major, u.dev_minor),
                    (_, Some(g)) => (g.dev_major, g.dev_minor),
                    _ => ([0; 8], [0; 8]),
                };
                let mut header = TarHeader {
                    name,
                    linkname,
                    typeflag,
                    mode: field(raw.mode().map(u64::from), &old.mode)?,
                    uid: field(raw.uid(), &old.uid)?,
                    gid: field(raw.gid(), &old.gid)?,
                    size: i64::try_from(entry.size())?,
                    mod_time: field(raw.mtime(), &old.mtime)?,
                    uname: raw.username_bytes().unwrap_or_default().to_vec(),
                    gname: raw.groupname_bytes().unwrap_or_default().to_vec(),
                    devmajor: field(
                        raw.device_major().map(|d| u64::from(d.unwrap_or(0))),
                        &dev.0,
                    )?,
                    devminor: field(
                        raw.device_minor().map(|d| u64::from(d.unwrap_or(0))),
                        &dev.1,
                    )?,
                    pax_records: BTreeMap::new(),
                };
                // Records Go derives from the header's fields come back as those fields;
                // the rest (fsutil's `SCHILY.xattr.*`) are carried over.
                if let Some(records) = entry.pax_extensions()? {
                    for record in records {
                        let record = record?;
                        let (k, v) = (record.key_bytes(), record.value_bytes());
                        match k {
                            b"uid" => header.uid = number(v, "uid", input)?,
                            b"gid" => header.gid = number(v, "gid", input)?,
                            b"mtime" => header.mod_time = seconds(v, input)?,
                            b"uname" => header.uname = v.to_vec(),
                            b"gname" => header.gname = v.to_vec(),
                            b"path" | b"linkpath" | b"size" | b"atime" | b"ctime" => {}
                            _ if k.starts_with(b"GNU.sparse.") => {}
                            _ => {
                                header.pax_records.insert(k.to_vec(), v.to_vec());
                            }
                        }
                    }
                }
                out.write_all(&header.encode()?)?;
                let body = header.body_len();
                let copied = std::io::copy(&mut std::io::Read::take(&mut entry, body), &mut out)?;
                if copied != body {
                    bail!(
                        "the builder's tarball {} ends inside {:?}",
                        input.display(),
                        String::from_utf8_lossy(&raw_name)
                    );
                }
                out.write_all(&vec![0; padding(body)])?;
            }
        }
        // Go's `tar.Writer.Close`: two zero blocks, no padding to a record size.
        out.write_all(&[0; 1024])?;
        out.flush()?;
    }
    if matches!(dest, Dest::Stdout) {
        copy_to_stdout(&out_path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use brix_solver_client::fsutil::tar_header::{TYPE_DIR, TYPE_LINK, TYPE_REG, TYPE_SYMLINK};
    use brix_solver_client::fsutil::{PlatformFolder, TarHeader};

    /// A tarball as fsutil's `WriteTar` writes it: Go-encoded headers, contents padded to
    /// blocks, two zero blocks.
    fn go_tar(entries: &[(TarHeader, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (header, data) in entries {
            out.extend(header.encode().expect("encode"));
            out.extend_from_slice(data);
            out.resize(
                out.len() + brix_solver_client::fsutil::tar_header::padding(data.len() as u64),
                0,
            );
        }
        out.extend([0; 1024]);
        out
    }

    fn entry(name: &[u8], typeflag: u8, mode: i64, link: &[u8], size: usize) -> TarHeader {
        TarHeader {
            name: name.to_vec(),
            linkname: link.to_vec(),
            typeflag,
            mode,
            size: size as i64,
            mod_time: 1_796_169_680,
            ..Default::default()
        }
    }

    /// One platform's tree as the daemon's single-platform tar export sends it.
    fn platform_tree(prefix: &[u8]) -> Vec<(TarHeader, Vec<u8>)> {
        let p = |name: &[u8]| [prefix, name].concat();
        // Symlink targets: absolute ones move under the folder (a `..` above the root
        // stays inside), relative and dangling ones are kept.
        let link_target = |t: &[u8]| -> Vec<u8> {
            if prefix.is_empty() || !t.starts_with(b"/") {
                return t.to_vec();
            }
            let folder = std::str::from_utf8(&prefix[..prefix.len() - 1]).expect("utf-8");
            PlatformFolder::new(folder)
                .expect("valid")
                .symlink_target(t)
        };
        let long_file = [&b"longdir/"[..], &[b'n'; 95]].concat();
        let unsplittable = [b'w'; 120];
        let mut file = entry(&p(b"file"), TYPE_REG, 0o644, b"", 6);
        file.pax_records
            .insert(b"SCHILY.xattr.user.k".to_vec(), b"v\x00\x01".to_vec());
        let mut big_uid = entry(&p(b"owned"), TYPE_REG, 0o600, b"", 0);
        big_uid.uid = 1 << 30;
        let hard_target = if prefix.is_empty() {
            b"file".to_vec()
        } else {
            p(b"file")
        };
        vec![
            (
                entry(
                    &p(b"abs"),
                    TYPE_SYMLINK,
                    0o777,
                    &link_target(b"/etc/hostname"),
                    0,
                ),
                vec![],
            ),
            (
                entry(&p(b"bad\xff\xfename"), TYPE_REG, 0o644, b"", 1),
                b"x".to_vec(),
            ),
            (
                entry(
                    &p(b"dangling"),
                    TYPE_SYMLINK,
                    0o777,
                    &link_target(b"/nonexistent/x"),
                    0,
                ),
                vec![],
            ),
            (
                entry(
                    &p(b"dotdot"),
                    TYPE_SYMLINK,
                    0o777,
                    &link_target(b"/../../etc/passwd"),
                    0,
                ),
                vec![],
            ),
            (file, b"hello\n".to_vec()),
            (
                entry(&p(b"hard"), TYPE_LINK, 0o644, &hard_target, 0),
                vec![],
            ),
            (entry(&p(b"longdir/"), TYPE_DIR, 0o755, b"", 0), vec![]),
            (entry(&p(&long_file), TYPE_REG, 0o644, b"", 0), vec![]),
            (big_uid, vec![]),
            (
                entry(&p(b"rel"), TYPE_SYMLINK, 0o777, &link_target(b"sub/f"), 0),
                vec![],
            ),
            (
                entry(&p(b"root"), TYPE_SYMLINK, 0o777, &link_target(b"/"), 0),
                vec![],
            ),
            (entry(&p(b"sub/"), TYPE_DIR, 0o750, b"", 0), vec![]),
            (
                entry(&p(b"sub/f"), TYPE_REG, 0o4755, b"", 700),
                vec![b'z'; 700],
            ),
            (entry(&p(b"tmp/"), TYPE_DIR, 0o1777, b"", 0), vec![]),
            (entry(&p(&unsplittable), TYPE_REG, 0o644, b"", 0), vec![]),
        ]
    }

    fn as_tar(entries: &[(TarHeader, Vec<u8>)]) -> Vec<u8> {
        let borrowed: Vec<(TarHeader, &[u8])> =
            entries.iter().map(|(h, d)| (h.clone(), &d[..])).collect();
        go_tar(&borrowed)
    }

    #[test]
    fn merged_tarballs_are_byte_for_byte_what_buildkit_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let single = as_tar(&platform_tree(b""));
        let (amd, arm) = (dir.path().join("amd.tar"), dir.path().join("arm.tar"));
        std::fs::write(&amd, &single).expect("write");
        std::fs::write(&arm, &single).expect("write");
        let out = dir.path().join("out.tar");
        // Given out of order: BuildKit writes the folders sorted by name.
        merge_tars(
            &[
                ("linux_arm64".to_owned(), arm),
                ("linux_amd64".to_owned(), amd),
            ],
            &Dest::File(out.clone()),
            dir.path(),
        )
        .expect("merge");

        let mut expected: Vec<(TarHeader, Vec<u8>)> = Vec::new();
        for folder in ["linux_amd64", "linux_arm64"] {
            let folder = PlatformFolder::new(folder).expect("valid");
            expected.push((folder.tar_header(), vec![]));
            expected.extend(platform_tree(format!("{}/", folder.name()).as_bytes()));
        }
        let expected = as_tar(&expected);
        let got = std::fs::read(&out).expect("read");
        let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
        assert!(
            got == expected,
            "merged tar differs from BuildKit's layout at byte {first_difference:?} (block {:?}); {} vs {} bytes",
            first_difference.map(|b| b / 512),
            got.len(),
            expected.len()
        );
        let names = merged_names(&out);
        assert!(names.contains(&(
            "linux_arm64/dotdot".into(),
            "/linux_arm64/etc/passwd".into()
        )));
        assert!(names.contains(&("linux_amd64/root".into(), "/linux_amd64".into())));
        assert!(names.contains(&("linux_amd64/rel".into(), "sub/f".into())));
    }

    #[test]
    fn a_dated_platform_folder_keeps_its_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.tar");
        std::fs::write(
            &input,
            go_tar(&[(entry(b"f", TYPE_REG, 0o644, b"", 0), b"")]),
        )
        .expect("write");
        let out = dir.path().join("out.tar");
        let folder = PlatformFolder::new("linux_amd64")
            .expect("valid")
            .with_source_date_epoch(Some(1000));
        merge_tars(&[(folder, input)], &Dest::File(out.clone()), dir.path()).expect("merge");
        let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        let first = archive
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        assert_eq!(first.path_bytes().as_ref(), b"linux_amd64/");
        assert_eq!(first.header().mtime().expect("mtime"), 1000);
        assert_eq!(first.header().mode().expect("mode"), 0o755);
    }

    #[test]
    fn a_folder_name_that_is_not_one_component_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.tar");
        std::fs::write(&input, go_tar(&[])).expect("write");
        for bad in ["..", "a/b", ""] {
            let err = merge_tars(
                &[(bad.to_owned(), input.clone())],
                &Dest::File(dir.path().join("out.tar")),
                dir.path(),
            )
            .expect_err(bad);
            assert!(
                format!("{err:#}").contains("invalid platform folder name"),
                "{err:#}"
            );
        }
    }

    /// A tarball with raw entry names, bypassing the `tar` crate's own path checks.
    fn crafted_tar(path: &Path, entries: &[(&str, tar::EntryType, &str)]) {
        let mut builder = tar::Builder::new(std::fs::File::create(path).expect("create"));
        for (name, kind, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(0);
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            builder.append(&header, std::io::empty()).expect("append");
        }
        builder.finish().expect("finish");
    }

    fn merged_names(out: &Path) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(std::fs::File::open(out).expect("open"));
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let link = e
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                (e.path().expect("path").display().to_string(), link)
            })
            .collect()
    }

    #[test]
    fn merged_tarballs_keep_every_entry_under_its_platform() {
        let dir = tempfile::tempdir().expect("tempdir");
        let amd = dir.path().join("amd.tar");
        crafted_tar(
            &amd,
            &[
                ("./etc/", tar::EntryType::Directory, ""),
                ("./etc/hostname", tar::EntryType::Regular, ""),
                ("etc/alias", tar::EntryType::Link, "etc/hostname"),
                ("etc/abs", tar::EntryType::Symlink, "/etc/hostname"),
            ],
        );
        let out = dir.path().join("out.tar");
        merge_tars(
            &[("linux_amd64".to_owned(), amd)],
            &Dest::File(out.clone()),
            dir.path(),
        )
        .expect("merge");
        let names = merged_names(&out);
        assert!(
            names.iter().all(|(n, _)| n.starts_with("linux_amd64")),
            "{names:?}"
        );
        assert!(names.contains(&(
            "linux_amd64/etc/alias".into(),
            "linux_amd64/etc/hostname".into()
        )));
    }

    #[test]
    fn entries_that_leave_the_platform_folder_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, kind, link) in [
            ("/etc/passwd", tar::EntryType::Regular, ""),
            ("../../etc/passwd", tar::EntryType::Regular, ""),
            ("a/../../x", tar::EntryType::Directory, ""),
            ("h", tar::EntryType::Link, "../linux_arm64/secret"),
            ("h", tar::EntryType::Link, "/etc/shadow"),
        ] {
            let input = dir.path().join("in.tar");
            crafted_tar(&input, &[(name, kind, link)]);
            let out = dir.path().join("out.tar");
            let err = merge_tars(
                &[("linux_amd64".to_owned(), input)],
                &Dest::File(out.clone()),
                dir.path(),
            )
            .expect_err(name);
            assert!(format!("{err:#}").contains("refusing entry"), "{err:#}");
        }
    }
}
