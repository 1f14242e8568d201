//! Pushing images that live in a Docker engine's image store to a registry with brix's own
//! registry code: the multi-platform `--push` of the `docker` driver, which buildx refuses.
//!
//! The engine's own BuildKit (the `docker` driver) stores what it builds in the engine, one
//! platform per image (engine 20.10 without the containerd image store cannot hold an index),
//! and `docker push` can only push one platform under one tag. So brix takes each
//! per-platform image out of the engine (`docker save`, streamed to a spool directory), turns
//! it into an OCI image with gzip layers ([`crate::docker_archive`]: every layer's
//! uncompressed digest checked against the config's `rootfs.diff_ids`), pushes it by digest
//! (blobs `HEAD`-checked first, existing ones skipped), and then pushes one OCI index over all
//! platforms under every tag.
//!
//! The result is reproducible: the same engine image gives the same manifest digest every
//! time (gzip at a fixed level with a zeroed header timestamp, manifest JSON from a fixed
//! field order), so a second push uploads no blob and tags the same index.
//!
//! # Wiring into `brix build --builder default --platform a,b --push`
//!
//! 1. For each platform `p`, solve on the engine's BuildKit with the Dockerfile frontend
//!    attribute `platform=p` and one exporter of type **`moby`** (not `image`) with
//!    `name=<temporary_image_name(build_ref, p)>` and without `push`: the engine stores the
//!    image under that temporary name (`brix-tmp/<build-ref>:linux-arm64`). Solves may run
//!    concurrently.
//! 2. Connect a bollard `Docker` client to the same engine and call
//!    [`EngineImagePusher::push_multi_platform`] with one [`EngineImage`] per platform
//!    (the temporary name and the platform that was asked for, so a wrong-architecture image
//!    is refused) and the build's `-t` names (`localhost:5000/app:1`, ...). The returned
//!    [`EnginePush::index`] is what `--metadata-file` reports
//!    ([`crate::AssembledIndex::metadata`]).
//! 3. Remove the temporary names with [`remove_engine_images`], also when step 1 or 2
//!    failed. Only the names are removed; layers another image uses stay.
//!
//! Credentials come from the Docker config as for every other push
//! ([`crate::RegistryOptions::docker_config`]); registries outside loopback are spoken to
//! over plain HTTP only when listed in [`crate::RegistryOptions::plain_http_hosts`].
//!
//! ```no_run
//! # async fn demo(docker: bollard::Docker) -> Result<(), brix_exporter::engine_image::EngineImageError> {
//! use brix_exporter::{Platform, RegistryOptions};
//! use brix_exporter::engine_image::{EngineImage, EngineImagePusher, remove_engine_images};
//! let pusher = EngineImagePusher::new(docker.clone(), RegistryOptions::default());
//! let images = [
//!     EngineImage::new("brix-tmp/abc:linux-amd64")
//!         .expect_platform(Platform::new("linux", "amd64", "")),
//!     EngineImage::new("brix-tmp/abc:linux-arm64")
//!         .expect_platform(Platform::new("linux", "arm64", "")),
//! ];
//! let pushed = pusher
//!     .push_multi_platform(&images, &["localhost:5000/app:1".to_owned()])
//!     .await;
//! remove_engine_images(&docker, &["brix-tmp/abc:linux-amd64", "brix-tmp/abc:linux-arm64"]).await?;
//! println!("{}", pushed?.index.digest());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use futures_util::{StreamExt as _, future};
use tokio::io::AsyncWriteExt as _;

use crate::descriptor::{Descriptor, ImageIndex, Platform, media_type};
use crate::docker_archive::import_docker_archive;
use crate::error::Error;
use crate::index::{AssembledIndex, assemble_index};
use crate::layout::OciLayout;
use crate::registry::{ImageReference, PushReport, Registry, RegistryOptions};

/// Repository under which [`temporary_image_name`] names the per-platform images of a build.
pub const TEMPORARY_REPOSITORY: &str = "brix-tmp";

/// What can go wrong while taking an image out of the engine and pushing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineImageError {
    /// The engine has no image by that name or ID.
    #[error(
        "image {image} is not in the Docker engine: build it with the moby exporter (name=...) \
         or pull it first"
    )]
    NotInEngine {
        /// The name or ID as given.
        image: String,
    },
    /// A Docker API call failed.
    #[error("{operation} {image} through the Docker engine failed: {source}")]
    Engine {
        /// What was attempted (`inspecting`, `exporting`, `removing`).
        operation: &'static str,
        /// The image name or ID.
        image: String,
        /// bollard's error.
        #[source]
        source: DockerError,
    },
    /// The engine image is not for the platform it was built for.
    #[error(
        "image {image} in the engine is for {actual}, not {expected}: was it replaced by a build \
         or pull of another platform under the same name? Give each platform its own name"
    )]
    PlatformMismatch {
        /// The image name or ID.
        image: String,
        /// The platform asked for.
        expected: Box<Platform>,
        /// The platform its config names.
        actual: Box<Platform>,
    },
    /// The engine's `docker save` output did not hold the expected image.
    #[error("docker save of {image} is unusable: {reason}")]
    UnexpectedArchive {
        /// The image name or ID.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer `docker save` gave does not hash to the config's `rootfs.diff_ids` entry: the
    /// engine's copy is damaged, and pushing it would give an image no runtime accepts.
    #[error(
        "layer of {image} does not match the image config's rootfs.diff_ids ({source}): the \
         engine's copy looks damaged; remove the image and build it again"
    )]
    LayerMismatch {
        /// The image name or ID.
        image: String,
        /// The mismatch, with both digests.
        #[source]
        source: Error,
    },
    /// Writing the spooled archive or layout failed.
    #[error("{action} {path}: {source}")]
    Spool {
        /// What was being done.
        action: &'static str,
        /// The spool file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task (archive conversion) did not finish.
    #[error("converting {image} stopped unexpectedly: {reason}")]
    Interrupted {
        /// The image name or ID.
        image: String,
        /// The join error.
        reason: String,
    },
    /// No images, or no target names, were given.
    #[error("{0}")]
    NothingToPush(&'static str),
    /// Index assembly, layout handling or the registry failed.
    #[error(transparent)]
    Exporter(#[from] Error),
}

/// One per-platform image in the engine's image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineImage {
    /// Its name (`brix-tmp/abc:linux-arm64`) or ID (`sha256:…`, or a prefix of 12+ hex digits).
    pub reference: String,
    /// The platform it must be for; `None` accepts whatever its config says.
    pub expected_platform: Option<Platform>,
}

impl EngineImage {
    /// An image by name or ID, any platform.
    pub fn new(reference: impl Into<String>) -> Self {
        EngineImage {
            reference: reference.into(),
            expected_platform: None,
        }
    }

    /// Refuse the image unless its config is for `platform` (compared after containerd's
    /// normalization, so `linux/arm64/v8` is `linux/arm64`).
    pub fn expect_platform(mut self, platform: Platform) -> Self {
        self.expected_platform = Some(platform);
        self
    }
}

/// An engine image converted to an OCI image in a spool directory, ready to push to any
/// number of repositories. The spool directory is deleted when this is dropped.
#[derive(Debug)]
pub struct ExportedEngineImage {
    /// The image as it was given.
    pub source: EngineImage,
    /// The engine's image ID.
    pub image_id: String,
    /// The OCI image manifest, with the platform from the image config.
    pub manifest: Descriptor,
    layout: OciLayout,
    _spool: tempfile::TempDir,
}

impl ExportedEngineImage {
    /// The OCI layout holding the image (its `index.json` names the one manifest).
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }
}

/// One per-platform image pushed to one repository.
#[derive(Debug, Clone)]
pub struct PushedEngineImage {
    /// The engine image it came from.
    pub source: String,
    /// The repository it was pushed to (`localhost:5000/app`).
    pub repository: String,
    /// The manifest's descriptor, with its platform: an entry for [`assemble_index`].
    pub manifest: Descriptor,
    /// Blobs uploaded, skipped and mounted.
    pub report: PushReport,
}

/// The outcome of [`EngineImagePusher::push_multi_platform`].
#[derive(Debug, Clone)]
pub struct EnginePush {
    /// The index pushed under every tag (the same bytes in every repository).
    pub index: AssembledIndex,
    /// Each image in each repository, in the order given.
    pub images: Vec<PushedEngineImage>,
}

/// Takes per-platform images out of a Docker engine and pushes them with brix's registry
/// client. See the [module documentation](self) for the `brix build` flow.
pub struct EngineImagePusher {
    docker: Docker,
    registry: Arc<Registry>,
    spool_dir: PathBuf,
}

impl EngineImagePusher {
    /// A pusher for the engine behind `docker`, with a registry client built from `options`
    /// (credentials, plain-HTTP hosts, upload concurrency). Archives are spooled under the
    /// system's temporary directory.
    pub fn new(docker: Docker, options: RegistryOptions) -> Self {
        Self::with_registry(docker, Arc::new(Registry::new(options)))
    }

    /// A pusher sharing an existing registry client (and its connections and known blobs).
    pub fn with_registry(docker: Docker, registry: Arc<Registry>) -> Self {
        EngineImagePusher {
            docker,
            registry,
            spool_dir: std::env::temp_dir(),
        }
    }

    /// Spool `docker save` archives and layouts under `dir` instead (it needs room for about
    /// twice the image's uncompressed size while an image is converted).
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = dir.into();
        self
    }

    /// The registry client the pushes go through.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Exports `image` from the engine and converts it to an OCI image (gzip layers, diff IDs
    /// verified) in a spool directory. Fails before exporting if the image is for another
    /// platform than [`EngineImage::expected_platform`].
    pub async fn export(
        &self,
        image: &EngineImage,
    ) -> Result<ExportedEngineImage, EngineImageError> {
        let name = &image.reference;
        let inspect = self.docker.inspect_image(name).await.map_err(|e| {
            if is_not_found(&e) {
                EngineImageError::NotInEngine {
                    image: name.clone(),
                }
            } else {
                EngineImageError::Engine {
                    operation: "inspecting",
                    image: name.clone(),
                    source: e,
                }
            }
        })?;
        let image_id = inspect.id.clone().unwrap_or_default();
        if let (Some(os), Some(arch)) = (&inspect.os, &inspect.architecture) {
            let actual = Platform::new(os, arch, inspect.variant.as_deref().unwrap_or(""));
            check_platform(name, image.expected_platform.as_ref(), &actual)?;
        }

        let spool = tempfile::Builder::new()
            .prefix("brix-engine-push-")
            .tempdir_in(&self.spool_dir)
            .map_err(|e| EngineImageError::Spool {
                action: "cannot create a spool directory in",
                path: self.spool_dir.clone(),
                source: e,
            })?;
        let archive = spool.path().join("save.tar");
        self.save_to(name, &archive).await?;

        let root = spool.path().join("layout");
        let what = name.clone();
        let (layout, manifest) =
            tokio::task::spawn_blocking(move || convert_archive(&what, &archive, root))
                .await
                .map_err(|e| EngineImageError::Interrupted {
                    image: name.clone(),
                    reason: e.to_string(),
                })??;
        let platform =
            manifest
                .platform
                .clone()
                .ok_or_else(|| EngineImageError::UnexpectedArchive {
                    image: name.clone(),
                    reason: "the image config names no platform".into(),
                })?;
        check_platform(name, image.expected_platform.as_ref(), &platform)?;
        tracing::debug!(image = %name, id = %image_id, manifest = %manifest.digest, %platform, "exported engine image");
        Ok(ExportedEngineImage {
            source: image.clone(),
            image_id,
            manifest,
            layout,
            _spool: spool,
        })
    }

    /// Streams `docker save NAME` into `archive`, never holding it in memory.
    async fn save_to(&self, name: &str, archive: &Path) -> Result<(), EngineImageError> {
        let spool_err = |action, source| EngineImageError::Spool {
            action,
            path: archive.to_owned(),
            source,
        };
        let file = tokio::fs::File::create(archive)
            .await
            .map_err(|e| spool_err("cannot create", e))?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut stream = std::pin::pin!(self.docker.export_image(name));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if is_not_found(&e) {
                    EngineImageError::NotInEngine {
                        image: name.to_owned(),
                    }
                } else {
                    EngineImageError::Engine {
                        operation: "exporting",
                        image: name.to_owned(),
                        source: e,
                    }
                }
            })?;
            out.write_all(&chunk)
                .await
                .map_err(|e| spool_err("cannot write", e))?;
        }
        out.flush()
            .await
            .map_err(|e| spool_err("cannot write", e))?;
        Ok(())
    }

    /// Pushes an exported image to `repository` (`registry/repo`; a tag in it is ignored) by
    /// digest, blobs first; returns the manifest's descriptor with its platform.
    pub async fn push_exported(
        &self,
        image: &ExportedEngineImage,
        repository: &str,
    ) -> Result<PushedEngineImage, EngineImageError> {
        let target = ImageReference::parse(repository)?;
        let report = self
            .registry
            .push_layout(&image.layout, &target.name(), &[])
            .await?;
        if report.descriptor.digest != image.manifest.digest {
            return Err(EngineImageError::UnexpectedArchive {
                image: image.source.reference.clone(),
                reason: format!(
                    "pushed {} instead of its manifest {}",
                    report.descriptor.digest, image.manifest.digest
                ),
            });
        }
        tracing::debug!(image = %image.source.reference, repository = %target.name(), uploaded = report.uploaded, existing = report.existing, "pushed engine image");
        Ok(PushedEngineImage {
            source: image.source.reference.clone(),
            repository: target.name(),
            manifest: image.manifest.clone(),
            report,
        })
    }

    /// Exports one engine image and pushes it to `repository` by digest (no tag): the
    /// per-platform half of a multi-platform push.
    pub async fn push_image(
        &self,
        image: &EngineImage,
        repository: &str,
    ) -> Result<PushedEngineImage, EngineImageError> {
        let exported = self.export(image).await?;
        self.push_exported(&exported, repository).await
    }

    /// The whole `docker` driver multi-platform push: every image is exported (concurrently)
    /// and pushed by digest into the repository of every name in `names`
    /// (`registry/repo[:tag]`, `latest` when no tag is given), then one OCI index over all of
    /// them is pushed, last, under every tag. Each image is exported and compressed once, however
    /// many repositories it goes to.
    pub async fn push_multi_platform(
        &self,
        images: &[EngineImage],
        names: &[String],
    ) -> Result<EnginePush, EngineImageError> {
        if images.is_empty() {
            return Err(EngineImageError::NothingToPush(
                "no engine images to push: build at least one platform first",
            ));
        }
        let targets = group_by_repository(names)?;
        if targets.is_empty() {
            return Err(EngineImageError::NothingToPush(
                "no image name to push to: give one with -t",
            ));
        }
        let exported = future::try_join_all(images.iter().map(|image| self.export(image))).await?;

        let mut pushed = Vec::new();
        let mut last = None;
        for (repository, tags) in &targets {
            let mut manifests = Vec::with_capacity(exported.len());
            for image in &exported {
                let one = self.push_exported(image, repository).await?;
                manifests.push(one.manifest.clone());
                pushed.push(one);
            }
            let index = assemble_index(&manifests)?;
            self.registry.push_index(repository, tags, &index).await?;
            tracing::debug!(repository, ?tags, index = %index.digest(), "pushed engine image index");
            last = Some(index);
        }
        let index = last.ok_or(EngineImageError::NothingToPush(
            "no image name to push to: give one with -t",
        ))?;
        Ok(EnginePush {
            index,
            images: pushed,
        })
    }
}

/// Removes images from the engine by name (the temporary per-platform names of a build).
/// Names that are already gone are fine; every name is tried, and the first failure is
/// returned. Removing a name only deletes the image when no other name points at it.
pub async fn remove_engine_images<S: AsRef<str>>(
    docker: &Docker,
    names: &[S],
) -> Result<(), EngineImageError> {
    let mut first_error = None;
    for name in names {
        let name = name.as_ref();
        let options = bollard::query_parameters::RemoveImageOptions {
            force: false,
            noprune: false,
            platforms: None,
        };
        match docker.remove_image(name, Some(options), None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!(image = name, error = %e, "cannot remove engine image");
                first_error.get_or_insert(EngineImageError::Engine {
                    operation: "removing",
                    image: name.to_owned(),
                    source: e,
                });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The temporary engine name for one platform of a build:
/// `brix-tmp/<build-ref>:<os>-<arch>[-<variant>]`, with the build reference folded into what
/// a repository name allows (lower case, `-` for anything else).
pub fn temporary_image_name(build_ref: &str, platform: &Platform) -> String {
    let mut repo: String = build_ref
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    repo = repo.trim_matches('-').to_owned();
    if repo.is_empty() {
        repo.push_str("build");
    }
    let mut tag = format!("{}-{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        tag.push('-');
        tag.push_str(&platform.variant);
    }
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    format!("{TEMPORARY_REPOSITORY}/{repo}:{tag}")
}

/// Blocking part of [`EngineImagePusher::export`]: the archive becomes an OCI image in a
/// layout whose `index.json` names its one manifest; the archive is deleted afterwards.
fn convert_archive(
    image: &str,
    archive: &Path,
    root: PathBuf,
) -> Result<(OciLayout, Descriptor), EngineImageError> {
    let layout = OciLayout::create(root)?;
    let imported = import_docker_archive(&layout, archive).map_err(|e| match e {
        Error::DigestMismatch { .. } => EngineImageError::LayerMismatch {
            image: image.to_owned(),
            source: e,
        },
        other => EngineImageError::Exporter(other),
    })?;
    // The spool is small again once the layers are compressed into the layout.
    let _ = std::fs::remove_file(archive);
    let manifest = match imported.as_slice() {
        [one] => one.manifest.clone(),
        many => {
            return Err(EngineImageError::UnexpectedArchive {
                image: image.to_owned(),
                reason: format!("it holds {} images; expected one", many.len()),
            });
        }
    };
    let mut index = ImageIndex::new(media_type::OCI_INDEX);
    index.manifests.push(manifest.clone());
    layout.write_index(&index)?;
    Ok((layout, manifest))
}

/// Fails unless `actual` is `expected` (when given), both normalized as containerd does.
fn check_platform(
    image: &str,
    expected: Option<&Platform>,
    actual: &Platform,
) -> Result<(), EngineImageError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let normalize = |p: &Platform| Platform::parse(&p.to_string()).unwrap_or_else(|_| p.clone());
    let (e, a) = (normalize(expected), normalize(actual));
    if e.os == a.os && e.architecture == a.architecture && e.variant == a.variant {
        Ok(())
    } else {
        Err(EngineImageError::PlatformMismatch {
            image: image.to_owned(),
            expected: Box::new(expected.clone()),
            actual: Box::new(actual.clone()),
        })
    }
}

/// `registry/repo[:tag]` names grouped by repository (in first-seen order), each with its
/// tags; a name without a tag means `latest`. A digest in a name is refused: an index is
/// pushed under tags.
fn group_by_repository(names: &[String]) -> Result<Vec<(String, Vec<String>)>, EngineImageError> {
    let mut order: Vec<String> = Vec::new();
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in names {
        let reference = ImageReference::parse(name)?;
        if reference.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: name.clone(),
                reason: "a name to push to takes a tag, not a digest".into(),
            }
            .into());
        }
        let repository = reference.name();
        let tag = reference.tag().unwrap_or("latest").to_owned();
        let entry = tags.entry(repository.clone()).or_insert_with(|| {
            order.push(repository.clone());
            Vec::new()
        });
        if !entry.contains(&tag) {
            entry.push(tag);
        }
    }
    Ok(order
        .into_iter()
        .map(|repo| {
            let t = tags.remove(&repo).unwrap_or_default();
            (repo, t)
        })
        .collect())
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::descriptor::{ImageManifest, sha256_digest};
    use crate::docker_archive::tests::write_classic_save;
    use std::fs;
    use std::io::Read as _;

    /// A classic `docker save` archive of one image tagged `brix-tmp/x:linux-arm64`, with the
    /// config's diff ID as given.
    fn save_archive(path: &Path, config: &str, layer: &[u8]) {
        write_classic_save(path, config, r#"["brix-tmp/x:linux-arm64"]"#, layer);
    }

    fn config(arch: &str, variant: &str, diff_id: &str) -> String {
        format!(
            r#"{{"architecture":"{arch}","variant":"{variant}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        )
    }

    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("brix-engine-image-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn the_same_archive_gives_the_same_manifest_digest_every_time() {
        let dir = scratch("repro");
        let layer = b"layer bytes that compress well ".repeat(4000);
        let cfg = config("arm64", "v8", &sha256_digest(&layer));
        let first = dir.path().join("a.tar");
        save_archive(&first, &cfg, &layer);
        let second = dir.path().join("b.tar");
        save_archive(&second, &cfg, &layer);

        let (layout_a, a) = convert_archive("x", &first, dir.path().join("la")).unwrap();
        // A moment later, as a second push would be: no timestamp may leak in.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (_, b) = convert_archive("x", &second, dir.path().join("lb")).unwrap();
        assert_eq!(a.digest, b.digest);
        assert!(
            !first.exists(),
            "the spooled archive is deleted after conversion"
        );

        // The gzip header carries no modification time and no file name.
        let manifest: ImageManifest =
            serde_json::from_slice(&layout_a.read_blob(&a.digest).unwrap()).unwrap();
        let gz = fs::read(layout_a.blob_path(&manifest.layers[0].digest).unwrap()).unwrap();
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8], "gzip, deflate");
        assert_eq!(gz[3] & 0x08, 0, "no FNAME flag");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME is zero");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, layer);
    }

    #[test]
    fn media_types_are_oci_throughout_and_the_platform_comes_from_the_config() {
        let dir = scratch("types");
        let layer = b"x".repeat(100);
        let archive = dir.path().join("save.tar");
        save_archive(
            &archive,
            &config("arm", "v7", &sha256_digest(&layer)),
            &layer,
        );
        let (layout, manifest) = convert_archive("x", &archive, dir.path().join("l")).unwrap();
        assert_eq!(manifest.media_type, media_type::OCI_MANIFEST);
        assert_eq!(manifest.platform, Some(Platform::new("linux", "arm", "v7")));
        let parsed: ImageManifest =
            serde_json::from_slice(&layout.read_blob(&manifest.digest).unwrap()).unwrap();
        assert_eq!(parsed.media_type, media_type::OCI_MANIFEST);
        assert_eq!(parsed.config.media_type, media_type::OCI_CONFIG);
        assert_eq!(
            parsed.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        // index.json names exactly this manifest, so push_layout pushes it alone by digest.
        let index = layout.index().unwrap();
        assert_eq!(index.manifests, vec![manifest]);
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id_is_refused_with_the_image_named() {
        let dir = scratch("diffid");
        let layer = b"the real layer".to_vec();
        let archive = dir.path().join("save.tar");
        save_archive(
            &archive,
            &config("amd64", "", &sha256_digest(b"another layer")),
            &layer,
        );
        let err =
            convert_archive("brix-tmp/x:linux-amd64", &archive, dir.path().join("l")).unwrap_err();
        assert!(
            matches!(err, EngineImageError::LayerMismatch { .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("brix-tmp/x:linux-amd64"), "{message}");
        assert!(message.contains(&sha256_digest(&layer)), "{message}");
    }

    #[test]
    fn platforms_are_compared_after_normalization() {
        let arm64 = Platform::new("linux", "arm64", "");
        let arm64_v8 = Platform::new("linux", "arm64", "v8");
        let amd64 = Platform::new("linux", "amd64", "");
        assert!(check_platform("i", Some(&arm64), &arm64_v8).is_ok());
        assert!(check_platform("i", None, &amd64).is_ok());
        assert!(
            check_platform(
                "i",
                Some(&Platform::new("linux", "arm", "v7")),
                &Platform::new("linux", "arm", "")
            )
            .is_ok(),
            "arm means arm/v7"
        );
        let err = check_platform("brix-tmp/x:linux-arm64", Some(&arm64), &amd64).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image brix-tmp/x:linux-arm64 in the engine is for linux/amd64, not linux/arm64: was \
             it replaced by a build or pull of another platform under the same name? Give each \
             platform its own name"
        );
    }

    #[test]
    fn temporary_names_are_valid_references_one_per_platform() {
        let amd = temporary_image_name("Build_42:x", &Platform::new("linux", "amd64", ""));
        let arm = temporary_image_name("Build_42:x", &Platform::new("linux", "arm", "v7"));
        assert_eq!(amd, "brix-tmp/build-42-x:linux-amd64");
        assert_eq!(arm, "brix-tmp/build-42-x:linux-arm-v7");
        for name in [&amd, &arm] {
            ImageReference::parse(name).unwrap();
        }
        assert_eq!(
            temporary_image_name("///", &Platform::new("linux", "amd64", "")),
            "brix-tmp/build:linux-amd64"
        );
    }

    #[test]
    fn names_are_grouped_by_repository_with_latest_as_the_default_tag() {
        let names = [
            "localhost:5000/app:1".to_owned(),
            "localhost:5000/other".to_owned(),
            "localhost:5000/app:2".to_owned(),
            "localhost:5000/app:1".to_owned(),
        ];
        assert_eq!(
            group_by_repository(&names).unwrap(),
            vec![
                (
                    "localhost:5000/app".to_owned(),
                    vec!["1".to_owned(), "2".to_owned()]
                ),
                ("localhost:5000/other".to_owned(), vec!["latest".to_owned()]),
            ]
        );
        let digest = format!("localhost:5000/app@{}", sha256_digest(b"x"));
        assert!(group_by_repository(&[digest]).is_err());
    }
}
