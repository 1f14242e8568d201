//! `brix imagetools inspect|create`: look at images in a registry and merge images into one
//! multi-platform index, like `docker buildx imagetools`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use brix_exporter::descriptor::media_type;
use brix_exporter::registry::{FetchedManifest, ImageReference, Registry, RegistryOptions};
use brix_exporter::{Descriptor, Platform};
use serde_json::json;

use crate::gotemplate::{Data, Funcs, Struct, Template};
use crate::tabwriter::align;

/// Arguments of `brix imagetools`.
#[derive(Debug, clap::Args)]
pub struct ImagetoolsArgs {
    #[command(subcommand)]
    command: ImagetoolsCommand,
    /// The builder whose buildkitd.toml says how to reach registries (the global
    /// `--builder`; else the current one).
    #[arg(skip)]
    pub builder: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ImagetoolsCommand {
    /// Show an image's manifest or index in the registry.
    Inspect(InspectArgs),
    /// Merge images (single-platform images or indexes) into one index and push it.
    Create(CreateArgs),
}

/// Arguments of `brix imagetools inspect`.
#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// The image, `[registry/]repository[:tag|@digest]`.
    #[arg(value_name = "NAME")]
    name: String,
    /// Print the manifest or index exactly as the registry serves it.
    #[arg(long)]
    raw: bool,
    /// Format the output with a Go template, as buildx: `{{json .Manifest}}`, `{{.Name}}`,
    /// `{{range .Manifest.Manifests}}…{{end}}` (`.Image`, `.Provenance` and `.SBOM` are not
    /// available yet). `json` prints brix's own summary; the default is buildx's layout.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
}

/// Arguments of `brix imagetools create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The images to merge: tags or digests, in any repositories of any registries.
    #[arg(value_name = "SOURCE")]
    sources: Vec<String>,
    /// Where to push the index (repeatable; all tags must be in one repository).
    #[arg(short = 't', long = "tag", value_name = "REF", required = true)]
    tags: Vec<String>,
    /// Also keep what the first tag already points at.
    #[arg(long)]
    append: bool,
    /// Print the index that would be pushed, and push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Add an annotation: `index:KEY=VALUE` on the index, `manifest-descriptor:KEY=VALUE` (or
    /// `manifest-descriptor[os/arch]:KEY=VALUE`) on its manifests' descriptors.
    #[arg(long = "annotation", value_name = "TYPE:KEY=VALUE")]
    annotations: Vec<String>,
    /// Read a source descriptor (JSON) from a file; it names a manifest in the target's
    /// repository (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<std::path::PathBuf>,
    /// Keep only these platforms of the sources (repeatable, comma-separated).
    #[arg(short = 'p', long = "platform")]
    platforms: Vec<String>,
    /// With a single source that is one manifest, make an index over it (the default) rather
    /// than copying the manifest itself.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    prefer_index: bool,
    /// Progress output (accepted for buildx's scripts; imagetools prints no progress).
    #[arg(long, default_value = "auto")]
    progress: String,
}

/// `--annotation` values as buildx reads them for `imagetools create`.
fn index_edits(args: &CreateArgs) -> anyhow::Result<brix_exporter::IndexEdits> {
    let mut edits = brix_exporter::IndexEdits {
        no_index_over_one: !args.prefer_index,
        ..Default::default()
    };
    for value in &args.platforms {
        for p in brix_config::Platform::parse_list(value)? {
            edits.platforms.push(p);
        }
    }
    for a in &args.annotations {
        let (key, value) = a
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid annotation {a:?}: expected TYPE:KEY=VALUE"))?;
        let (kind, key) = key.split_once(':').unwrap_or(("", key));
        let (kind, platform) = match kind.split_once('[') {
            Some((k, rest)) => {
                let p = rest.strip_suffix(']').ok_or_else(|| {
                    anyhow::anyhow!("invalid annotation {a:?}: unclosed [platform]")
                })?;
                (k, Some(brix_config::Platform::parse(p)?))
            }
            None => (kind, None),
        };
        match kind {
            "index" => {
                edits
                    .index_annotations
                    .insert(key.to_owned(), value.to_owned());
            }
            "manifest-descriptor" => {
                edits
                    .descriptor_annotations
                    .push((platform, key.to_owned(), value.to_owned()));
            }
            "index-descriptor" => {
                anyhow::bail!("{kind:?} annotations are invalid while creating an image")
            }
            other => anyhow::bail!("{other:?} annotations are not supported yet"),
        }
    }
    for file in &args.files {
        let bytes = std::fs::read(file)
            .with_context(|| format!("reading the source descriptor {}", file.display()))?;
        let descriptor: brix_exporter::Descriptor = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not an OCI descriptor", file.display()))?;
        edits.descriptors.push(descriptor);
    }
    Ok(edits)
}

/// Runs `brix imagetools …`.
pub fn run(args: ImagetoolsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let registry = Registry::new(registry_options(args.builder.as_deref())?);
    match args.command {
        ImagetoolsCommand::Inspect(args) => runtime.block_on(inspect(&registry, args)),
        ImagetoolsCommand::Create(args) => runtime.block_on(create(&registry, args)),
    }
}

/// The registry settings of the builder's first node's buildkitd.toml: plain HTTP and
/// `insecure`, as buildx's `imagetools` takes them, and (beyond buildx, whose `imagetools`
/// ignores them) its CA and client certificate files. A
/// builder named with `--builder` must exist; without one, no current builder (or none that
/// can be read) is no error: the defaults and Docker's `/etc/docker/certs.d` still apply.
fn registry_options(builder: Option<&str>) -> anyhow::Result<RegistryOptions> {
    let mut options = RegistryOptions::default();
    let resolved = brix_driver::Store::open_default()
        .map_err(anyhow::Error::from)
        .and_then(|store| {
            let txn = store.txn()?;
            Ok(brix_driver::builder::resolve(&txn, builder)?)
        });
    let node_group = match (resolved, builder) {
        (Ok(ng), _) => Some(ng),
        (Err(e), Some(_)) => return Err(e),
        (Err(e), None) => {
            tracing::debug!(error = %e, "no current builder: default registry settings");
            None
        }
    };
    if let Some(node) = node_group.as_ref().and_then(|ng| ng.nodes.first()) {
        options.add_buildkitd_config(&node.files);
    }
    Ok(options)
}

async fn inspect(registry: &Registry, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let format = args.format.as_deref().filter(|f| !f.is_empty());
    if format.is_some() && args.raw {
        anyhow::bail!("format and raw cannot be used together");
    }
    // Checked before the registry is asked anything.
    let template = match format {
        None | Some("json") => None,
        Some(text) => Some(Template::parse(text, Funcs::Imagetools)?),
    };
    let reference = ImageReference::parse(&args.name)?;
    let fetched = registry.fetch_manifest(&reference).await?;
    let mut stdout = std::io::stdout().lock();
    if args.raw {
        // Byte for byte, no newline added, so the output hashes to the digest.
        stdout.write_all(&fetched.bytes)?;
    } else if let Some(template) = template {
        // As buildx: a template that starts with `{{.Manifest…` shows the default layout.
        if template.starts_with_field("Manifest") {
            stdout.write_all(render_inspect(&reference, &fetched)?.as_bytes())?;
        } else {
            let data = template_input(&args.name, &fetched)?;
            let mut text = String::new();
            let result = template.execute_into(&data, &mut text);
            // What was written before an error stays, and no newline is added: buildx's
            // `tpl.Execute(out, …)`.
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
            result?;
        }
    } else if format == Some("json") {
        let mut text = serde_json::to_string_pretty(&inspect_json(&reference, &fetched)?)?;
        text.push('\n');
        stdout.write_all(text.as_bytes())?;
    } else {
        stdout.write_all(render_inspect(&reference, &fetched)?.as_bytes())?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What an `imagetools inspect` template sees, as buildx's `tplInput` (one platform) or
/// `tplInputs` (several): `Name` as given, `Manifest` (the index with its own digest and size,
/// or the manifest's descriptor), and `Image`, `Provenance`, `SBOM`, which brix does not read
/// yet (they need the image configs and attestation blobs).
fn template_input(name: &str, fetched: &FetchedManifest) -> anyhow::Result<Data> {
    let (manifest, platforms) = match fetched.index()? {
        Some(index) => {
            let platforms: std::collections::BTreeSet<String> = index
                .manifests
                .iter()
                .filter(|m| !m.is_attestation())
                .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
                .collect();
            let manifests: Vec<Data> = index
                .manifests
                .iter()
                .map(|d| descriptor_data(d, "v1.Descriptor"))
                .collect();
            let manifest = Struct::new(MANIFEST_TYPE)
                .tagged(
                    "SchemaVersion",
                    "schemaVersion",
                    false,
                    u64::from(index.schema_version),
                )
                .tagged("MediaType", "mediaType", true, index.media_type.as_str())
                .tagged(
                    "Digest",
                    "digest",
                    false,
                    fetched.descriptor.digest.as_str(),
                )
                .tagged("Size", "size", false, fetched.descriptor.size)
                .tagged("Manifests", "manifests", false, Data::List(manifests))
                .tagged(
                    "Annotations",
                    "annotations",
                    true,
                    Data::string_map(&index.annotations),
                );
            (Data::from(manifest), platforms.len())
        }
        None => (descriptor_data(&fetched.descriptor, MANIFEST_TYPE), 1),
    };
    let missing = |field: &str, what: &str| {
        Data::Unavailable(format!(
            "brix does not read {what} yet, so .{field} is not available; \
             {{{{json .Manifest}}}} shows the manifests"
        ))
    };
    let type_name = if platforms > 1 {
        "imagetools.tplInputs"
    } else {
        "imagetools.tplInput"
    };
    Ok(Struct::new(type_name)
        .tagged("Name", "name", true, name)
        .tagged("Manifest", "manifest", true, manifest)
        .tagged("Image", "image", true, missing("Image", "image configs"))
        .method("Provenance", missing("Provenance", "attestations"))
        .method("SBOM", missing("SBOM", "attestations"))
        .into())
}

/// The type Go names in messages about `.Manifest`: buildx's field is an `interface{}`.
const MANIFEST_TYPE: &str = "interface {}";

/// An OCI descriptor as a template sees it (`ocispecs.Descriptor`), named `type_name` in
/// messages.
fn descriptor_data(d: &Descriptor, type_name: &str) -> Data {
    Struct::new(type_name)
        .tagged("MediaType", "mediaType", false, d.media_type.as_str())
        .tagged("Digest", "digest", false, d.digest.as_str())
        .tagged("Size", "size", false, d.size)
        .tagged("URLs", "urls", true, Data::strings(&d.urls))
        .tagged(
            "Annotations",
            "annotations",
            true,
            Data::string_map(&d.annotations),
        )
        .tagged("Data", "data", true, Data::NilList)
        .tagged(
            "Platform",
            "platform",
            true,
            d.platform
                .as_ref()
                .map_or(Data::Nil, |p| platform_data(p, "*v1.Platform")),
        )
        .tagged(
            "ArtifactType",
            "artifactType",
            true,
            d.artifact_type.as_deref().unwrap_or(""),
        )
        .into()
}

/// An OCI platform as a template sees it (`ocispecs.Platform`, named `type_name` in messages;
/// `{{.}}` prints `{arm64 linux  [] v8}`).
pub(crate) fn platform_data(p: &Platform, type_name: &str) -> Data {
    Struct::new(type_name)
        .tagged(
            "Architecture",
            "architecture",
            false,
            p.architecture.as_str(),
        )
        .tagged("OS", "os", false, p.os.as_str())
        .tagged(
            "OSVersion",
            "os.version",
            true,
            p.os_version.as_deref().unwrap_or(""),
        )
        .tagged(
            "OSFeatures",
            "os.features",
            true,
            Data::strings(&p.os_features),
        )
        .tagged("Variant", "variant", true, p.variant.as_str())
        .into()
}

/// The reference as buildx prints it: a tag is always shown (`latest` by default).
fn display_name(reference: &ImageReference) -> String {
    if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_tag("latest").to_string()
    } else {
        reference.to_string()
    }
}

/// buildx's `imagetools inspect` layout: Name, MediaType, Digest, then for an index each
/// entry's Name, MediaType, Platform and Annotations, aligned with Go's tabwriter rules
/// (each flush starts a new alignment block, as in buildx's printer).
fn render_inspect(reference: &ImageReference, fetched: &FetchedManifest) -> anyhow::Result<String> {
    let name = display_name(reference);
    let mut out = align(
        &format!(
            "Name:\t{name}\nMediaType:\t{}\nDigest:\t{}\n",
            fetched.descriptor.media_type, fetched.descriptor.digest
        ),
        0,
        1,
    );
    let Some(index) = fetched.index()? else {
        return Ok(out);
    };
    out.push_str(&align("\t\nManifests:\t\n", 0, 1));
    // buildx's `reference.WithDigest`: the entry's digest replaces the reference's own.
    let base = if reference.digest().is_some() {
        reference.name()
    } else {
        name.clone()
    };
    let mut block = String::new();
    for (i, entry) in index.manifests.iter().enumerate() {
        if i != 0 {
            block.push_str("\t\n");
        }
        block.push_str(&format!("  Name:\t{base}@{}\n", entry.digest));
        block.push_str(&format!("  MediaType:\t{}\n", entry.media_type));
        if let Some(platform) = &entry.platform {
            block.push_str(&format!("  Platform:\t{platform}\n"));
            if let Some(os_version) = platform.os_version.as_deref().filter(|v| !v.is_empty()) {
                block.push_str(&format!("  OSVersion:\t{os_version}\n"));
            }
            if !platform.os_features.is_empty() {
                block.push_str(&format!(
                    "  OSFeatures:\t{}\n",
                    platform.os_features.join(", ")
                ));
            }
            if !entry.urls.is_empty() {
                block.push_str(&format!("  URLs:\t{}\n", entry.urls.join(", ")));
            }
            if !entry.annotations.is_empty() {
                block.push_str("  Annotations:\t\n");
                out.push_str(&align(&block, 0, 1));
                block.clear();
                let annotations: String = entry
                    .annotations
                    .iter()
                    .map(|(k, v)| format!("    {k}:\t{v}\n"))
                    .collect();
                out.push_str(&align(&annotations, 0, 1));
            }
        }
    }
    out.push_str(&align(&block, 0, 1));
    Ok(out)
}

/// `--format json`: the name and, for an index, its entries with digest and size (the shape
/// of buildx's `{{json .Manifest}}`); for a single manifest, its descriptor.
fn inspect_json(
    reference: &ImageReference,
    fetched: &FetchedManifest,
) -> anyhow::Result<serde_json::Value> {
    let manifest = match fetched.index()? {
        Some(index) => json!({
            "schemaVersion": index.schema_version,
            "mediaType": fetched.descriptor.media_type,
            "digest": fetched.descriptor.digest,
            "size": fetched.descriptor.size,
            "manifests": index.manifests,
            "annotations": index.annotations,
        }),
        None => serde_json::to_value(&fetched.descriptor)?,
    };
    Ok(json!({ "name": display_name(reference), "manifest": manifest }))
}

async fn create(registry: &Registry, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let edits = index_edits(&args)?;
    if args.sources.is_empty() && args.files.is_empty() && !args.append {
        anyhow::bail!(
            "no source images: name at least one SOURCE (or use --append to re-push the existing index)"
        );
    }
    let sources = args
        .sources
        .iter()
        .map(|s| ImageReference::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let targets = args
        .tags
        .iter()
        .map(|t| ImageReference::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let index = registry
        .create_index_with(&sources, &targets, args.append, args.dry_run, &edits)
        .await?;
    let mut stdout = std::io::stdout().lock();
    if args.dry_run {
        stdout.write_all(&index.bytes)?;
        stdout.write_all(b"\n")?;
    } else {
        for target in &targets {
            let kind = if index.descriptor.media_type == media_type::OCI_INDEX {
                "index"
            } else if media_type::is_index(&index.descriptor.media_type) {
                "manifest list"
            } else {
                "manifest"
            };
            eprintln!(
                "pushed {kind} {} to {}",
                index.digest(),
                display_name(target)
            );
        }
        writeln!(stdout, "{}", index.digest())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use brix_exporter::Descriptor;

    #[test]
    fn inspect_layout_matches_buildx() {
        // The index of buildx-outputs.md's sample, with its two images and attestations.
        let raw = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json",
     "digest": "sha256:87e2201f74df99c5dad2b147167f69710f29db1625a800ee8fa7a11ee1636193",
     "size": 857, "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json",
     "digest": "sha256:aac7faa1023bbdd4812c2959544d838681979092fd8c7e81f7e2cb1b5df48859",
     "size": 836,
     "annotations": {"vnd.docker.reference.digest": "sha256:87e2201f74df99c5dad2b147167f69710f29db1625a800ee8fa7a11ee1636193",
                     "vnd.docker.reference.type": "attestation-manifest"},
     "platform": {"architecture": "unknown", "os": "unknown"}}
  ]
}"#;
        let reference = ImageReference::parse("localhost:5000/app:meta").unwrap();
        let fetched = FetchedManifest {
            reference: reference.clone(),
            descriptor: Descriptor::of_bytes(media_type::OCI_INDEX, raw.as_bytes()),
            bytes: raw.as_bytes().to_vec(),
        };
        let text = render_inspect(&reference, &fetched).unwrap();
        let digest = &fetched.descriptor.digest;
        let expected = format!(
            "Name:      localhost:5000/app:meta
MediaType: application/vnd.oci.image.index.v1+json
Digest:    {digest}
           
Manifests: 
  Name:        localhost:5000/app:meta@sha256:87e2201f74df99c5dad2b147167f69710f29db1625a800ee8fa7a11ee1636193
  MediaType:   application/vnd.oci.image.manifest.v1+json
  Platform:    linux/amd64
               
  Name:        localhost:5000/app:meta@sha256:aac7faa1023bbdd4812c2959544d838681979092fd8c7e81f7e2cb1b5df48859
  MediaType:   application/vnd.oci.image.manifest.v1+json
  Platform:    unknown/unknown
  Annotations: 
    vnd.docker.reference.digest: sha256:87e2201f74df99c5dad2b147167f69710f29db1625a800ee8fa7a11ee1636193
    vnd.docker.reference.type:   attestation-manifest
"
        );
        assert_eq!(text, expected);
        let json = inspect_json(&reference, &fetched).unwrap();
        assert_eq!(
            json["manifest"]["manifests"][0]["platform"]["architecture"],
            "amd64"
        );
        assert_eq!(json["manifest"]["digest"], digest.as_str());
    }

    #[test]
    fn names_always_show_a_tag() {
        assert_eq!(
            display_name(&ImageReference::parse("busybox").unwrap()),
            "docker.io/library/busybox:latest"
        );
    }
}
