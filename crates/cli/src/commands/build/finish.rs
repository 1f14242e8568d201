//! After the solves: the per-platform results put together. Multi-platform tar outputs become
//! one tarball with `linux_amd64/`-style folders, OCI tarballs one layout with one index,
//! pushed per-platform images one index pushed under every tag (last); `docker` tarballs are
//! loaded into the engine; then `--metadata-file` and `--iidfile` are written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use brix_exporter::{AssembledIndex, Descriptor, ImageReference, Registry, RegistryOptions};
use futures_util::StreamExt;

use super::nodes::BuildNode;
use super::outputs::{Dest, Output};
use super::{BuildArgs, BuildFailure, Plan, Solved, platform_dir};
use crate::progress::printer::Printer;

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

/// How brix itself talks to registries (index pushes, docker-driver pushes): plain HTTP for
/// the hosts the nodes' configs mark `http = true` (and loopback).
pub(super) fn registry_options(nodes: &[BuildNode]) -> RegistryOptions {
    RegistryOptions {
        plain_http_hosts: nodes.iter().flat_map(BuildNode::plain_http_hosts).collect(),
        ..Default::default()
    }
}

/// The per-platform results put together; `registry` is the client indexes are pushed with
/// (the caller may have set it up while the solves ran).
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    plan: &Plan,
    args: &BuildArgs,
    ng: &brix_driver::NodeGroup,
    nodes: &[BuildNode],
    solved: Vec<Solved>,
    printer: &Printer,
    scratch: &Path,
    registry: &Registry,
) -> Result<Option<String>, BuildFailure> {
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
                let step = printer.client_step("merging platform tarballs");
                let r = merge_tars(&files, dest, scratch);
                step.done(r.as_ref().err().map(|e| format!("{e:#}")));
                r?;
            }
            Output::Oci { dest, attrs } if multi => {
                let step = printer.client_step("exporting to one OCI layout with an image index");
                let inputs: Vec<PathBuf> = files.iter().map(|(_, f)| f.clone()).collect();
                let out = match dest {
                    Dest::File(p) => p.clone(),
                    Dest::Stdout => scratch.join("merged-oci.tar"),
                };
                let name = attrs
                    .get("name")
                    .and_then(|n| n.split(',').next())
                    .map(str::to_owned);
                let r = tokio::task::spawn_blocking(move || {
                    brix_exporter::merge_layout_tarballs(&inputs, &out, name.as_deref())
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
                        metadata.extend(index.metadata());
                        image_id = Some(index.digest().to_owned());
                    }
                    Err(e) => {
                        step.done(Some(e.to_string()));
                        return Err(e.into());
                    }
                }
            }
            Output::Docker { dest: None, .. } if !nodes.iter().all(BuildNode::is_docker) => {
                for (_, file) in &files {
                    load_into_docker(file, printer).await?;
                }
            }
            Output::Image { push: true, .. } if multi && nodes[solved[0].node].is_docker() => {
                let index =
                    push_index_through_docker(plan, output, nodes, &solved, printer).await?;
                metadata.extend(index.metadata());
                metadata.insert("image.name".into(), output.names().join(",").into());
                image_id = Some(index.digest().to_owned());
            }
            Output::Image { push: true, .. } if multi => {
                let index = push_index(output, registry, &solved, printer).await?;
                metadata.extend(index.metadata());
                metadata.insert("image.name".into(), output.names().join(",").into());
                image_id = Some(index.digest().to_owned());
            }
            Output::Image { push: true, .. } if !nodes[solved[0].node].features.direct_push => {
                for name in output.names() {
                    push_with_docker(&nodes[solved[0].node], &name, printer).await?;
                }
            }
            _ => {}
        }
    }

    if !multi && let Some(s) = solved.first() {
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
    if args.metadata_file.is_some() && metadata_warnings_wanted()? {
        let warnings = printer.warnings();
        if !warnings.is_empty() {
            metadata.insert(
                "buildx.build.warnings".into(),
                warnings.iter().map(warning_json).collect(),
            );
        }
    }
    if let Some(path) = &args.metadata_file {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(metadata))
            .context("encoding the metadata file")?;
        crate::files::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing the metadata file {}", path.display()))?;
    }
    if let (Some(path), Some(id)) = (&args.iidfile, &image_id) {
        crate::files::write_atomically(path, id.as_bytes())
            .with_context(|| format!("writing the image ID file {}", path.display()))?;
    }
    Ok(image_id)
}

/// `BUILDX_METADATA_WARNINGS`, as buildx reads it: a true value puts the build's warnings in
/// the metadata file.
fn metadata_warnings_wanted() -> anyhow::Result<bool> {
    match std::env::var("BUILDX_METADATA_WARNINGS") {
        Err(_) => Ok(false),
        Ok(v) => super::parse_go_bool(&v).with_context(|| {
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

/// Pushes the index over the per-platform images each solve pushed by digest, to every
/// repository of the output, under every tag; prints buildx's `pushing manifest for` lines.
async fn push_index(
    output: &Output,
    registry: &Registry,
    solved: &[Solved],
    printer: &Printer,
) -> anyhow::Result<AssembledIndex> {
    let names = output.names();
    let step = printer.client_step(format!("merging manifest list {}", names.join(",")));
    let r = push_index_inner(&names, registry, solved, &step).await;
    step.done(r.as_ref().err().map(|e| format!("{e:#}")));
    r
}

async fn push_index_inner(
    names: &[String],
    registry: &Registry,
    solved: &[Solved],
    step: &crate::progress::printer::ClientStep,
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
        let manifests = registry.resolve_descriptors(&repo, &descriptors).await?;
        let index = brix_exporter::assemble_index(&manifests)?;
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
    plan: &Plan,
    output: &Output,
    nodes: &[BuildNode],
    solved: &[Solved],
    printer: &Printer,
) -> anyhow::Result<AssembledIndex> {
    use brix_exporter::engine_image::{EngineImage, EngineImagePusher, remove_engine_images};
    let names = output.names();
    let docker = engine_of(&nodes[solved[0].node])?;
    let images: Vec<EngineImage> = solved
        .iter()
        .filter_map(|s| s.platform.as_ref())
        .map(|p| EngineImage::new(engine_temp_name(&plan.build_id, p)).expect_platform(p.clone()))
        .collect();
    let step = printer.client_step(format!("merging manifest list {}", names.join(",")));
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
    printer: &Printer,
) -> anyhow::Result<Option<(String, u64)>> {
    let step = printer.client_step(format!("pushing {name} with docker"));
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
async fn load_into_docker(file: &Path, printer: &Printer) -> anyhow::Result<()> {
    let step = printer.client_step("importing to docker");
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
/// as buildx's multi-platform tar output does.
fn merge_tars(inputs: &[(String, PathBuf)], dest: &Dest, scratch: &Path) -> anyhow::Result<()> {
    let out_path = match dest {
        Dest::File(p) => p.clone(),
        Dest::Stdout => scratch.join("merged.tar"),
    };
    {
        let out = std::fs::File::create(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
        let mut seen = BTreeMap::new();
        for (prefix, input) in inputs {
            let f = std::fs::File::open(input)
                .with_context(|| format!("opening {}", input.display()))?;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, format!("{prefix}/"), std::io::empty())?;
            let mut archive = tar::Archive::new(f);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = entry.path()?.into_owned();
                let new_path = Path::new(prefix).join(tar_entry_path(&path, input)?);
                if seen.insert(new_path.clone(), ()).is_some() {
                    continue;
                }
                let mut header = entry.header().clone();
                match entry.header().entry_type() {
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let target = entry
                            .link_name()?
                            .map(|l| l.into_owned())
                            .unwrap_or_default();
                        let target = if entry.header().entry_type() == tar::EntryType::Link {
                            Path::new(prefix).join(tar_entry_path(&target, input)?)
                        } else {
                            target
                        };
                        builder.append_link(&mut header, &new_path, &target)?;
                    }
                    _ => builder.append_data(&mut header, &new_path, &mut entry)?,
                }
            }
        }
        builder.into_inner()?.flush()?;
    }
    if matches!(dest, Dest::Stdout) {
        copy_to_stdout(&out_path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &[("linux_amd64".into(), amd)],
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
                &[("linux_amd64".into(), input)],
                &Dest::File(out.clone()),
                dir.path(),
            )
            .expect_err(name);
            assert!(format!("{err:#}").contains("refusing entry"), "{err:#}");
        }
    }
}
