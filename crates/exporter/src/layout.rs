//! OCI image layouts: a directory (`oci-layout`, `index.json`, `blobs/sha256/…`) or the same
//! tree as a tarball, which is what `-o type=oci` writes and `skopeo copy oci-archive:` reads.
//!
//! Blobs are streamed between files and never held whole in memory; every blob is checked
//! against its digest on the way in.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::descriptor::{
    Descriptor, ImageConfigPlatform, ImageIndex, ImageManifest, annotation, media_type,
    sha256_digest, to_pretty_json, validate_digest,
};
use crate::error::{Error, Result};
use crate::index::{AssembledIndex, assemble_index};
use crate::registry::IndexEdits;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_FILE_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
/// Manifests, indexes and configs are read into memory; anything claiming to be larger is
/// refused rather than trusted (the registry limits manifests to 4 MiB too).
const MAX_JSON_BLOB: u64 = 16 << 20;

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Creates (or reuses) a layout at `root`: the marker file, `blobs/sha256` and, if there is
    /// none yet, an empty `index.json`.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("cannot create", &blobs, e))?;
        write_atomically(&root.join(LAYOUT_FILE), LAYOUT_FILE_CONTENT)?;
        let layout = OciLayout { root };
        if !layout.root.join(INDEX_FILE).exists() {
            layout.write_index(&ImageIndex::new(media_type::OCI_INDEX))?;
        }
        Ok(layout)
    }

    /// Opens an existing layout directory, checking its marker file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let marker = root.join(LAYOUT_FILE);
        let content = fs::read(&marker)
            .map_err(|_| Error::layout(&root, format!("no readable {LAYOUT_FILE} file")))?;
        let parsed: serde_json::Value = serde_json::from_slice(&content)
            .map_err(|e| Error::json(marker.display().to_string(), e))?;
        if parsed
            .get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none()
        {
            return Err(Error::layout(&root, "oci-layout has no imageLayoutVersion"));
        }
        Ok(OciLayout { root })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = validate_digest(digest)?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    /// True if the layout holds the blob.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let descriptor = Descriptor::of_bytes(media_type, bytes);
        let path = self.blob_path(&descriptor.digest)?;
        if !path.is_file() {
            write_atomically(&path, bytes)?;
        }
        Ok(descriptor)
    }

    /// Streams a blob into the layout, checking that it hashes to `digest`; returns its size.
    /// Nothing is left behind when the content does not match.
    pub fn import_blob(&self, mut reader: impl Read, digest: &str) -> Result<u64> {
        let path = self.blob_path(digest)?;
        let partial = partial_path(&path);
        let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let copied = io::copy(&mut reader, &mut writer)
            .and_then(|n| writer.inner.flush().map(|()| n))
            .map_err(|e| Error::io("cannot write", &partial, e));
        let size = match copied {
            Ok(size) => size,
            Err(e) => {
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
        };
        let actual = writer.digest();
        if actual != digest {
            let _ = fs::remove_file(&partial);
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.into(),
                actual,
            });
        }
        fs::rename(&partial, &path).map_err(|e| Error::io("cannot rename into", &path, e))?;
        Ok(size)
    }

    /// Opens a blob for streaming (not verified: the caller hashes as it reads).
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|e| Error::io("cannot open blob", &path, e))
    }

    /// Reads a small blob (manifest, index, config) whole and checks its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(|e| Error::io("cannot open blob", &path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(Error::layout(
                &self.root,
                format!("{digest} is too large to be a manifest or config"),
            ));
        }
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join(INDEX_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::json(path.display().to_string(), e))
    }

    /// Replaces the layout's `index.json`.
    pub fn write_index(&self, index: &ImageIndex) -> Result<()> {
        write_atomically(&self.root.join(INDEX_FILE), &to_pretty_json(index))
    }

    /// What a manifest or index points at: config and layers, or the index's entries.
    pub fn children(&self, descriptor: &Descriptor) -> Result<Vec<Descriptor>> {
        children_of(descriptor, &self.read_blob(&descriptor.digest)?)
    }

    /// The image and attestation manifests reachable from `roots`, with nested indexes
    /// expanded and missing platforms read from the image configs: exactly what
    /// [`assemble_index`] takes.
    pub fn image_manifests(&self, roots: &[Descriptor]) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        for root in roots {
            self.collect_manifests(root, &mut out, 0)?;
        }
        Ok(out)
    }

    fn collect_manifests(
        &self,
        descriptor: &Descriptor,
        out: &mut Vec<Descriptor>,
        depth: u8,
    ) -> Result<()> {
        if depth > 8 {
            return Err(Error::layout(&self.root, "indexes nested more than 8 deep"));
        }
        let bytes = self.read_blob(&descriptor.digest)?;
        let mut descriptor = descriptor.clone();
        if descriptor.media_type.is_empty() {
            descriptor.media_type = crate::descriptor::detect_media_type(&bytes)?;
        }
        if media_type::is_index(&descriptor.media_type) {
            for child in children_of(&descriptor, &bytes)? {
                self.collect_manifests(&child, out, depth + 1)?;
            }
            return Ok(());
        }
        // Layout bookkeeping annotations describe the tarball entry, not the image.
        descriptor.annotations.remove(annotation::REF_NAME);
        descriptor
            .annotations
            .remove(annotation::CONTAINERD_IMAGE_NAME);
        if descriptor.platform.is_none() && !descriptor.is_attestation() {
            let manifest: ImageManifest =
                serde_json::from_slice(&bytes).map_err(|e| Error::json(&descriptor.digest, e))?;
            let config = self.read_blob(&manifest.config.digest)?;
            descriptor.platform = Some(ImageConfigPlatform::from_config_json(
                &manifest.config.digest,
                &config,
            )?);
        }
        out.push(descriptor);
        Ok(())
    }

    /// Every descriptor reachable from `roots`, children before their parents, each once:
    /// the order in which to push so that nothing refers to what is not there yet.
    pub fn walk(&self, roots: &[Descriptor]) -> Result<Vec<Descriptor>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for root in roots {
            self.walk_into(root, &mut seen, &mut out, 0)?;
        }
        Ok(out)
    }

    fn walk_into(
        &self,
        descriptor: &Descriptor,
        seen: &mut HashSet<String>,
        out: &mut Vec<Descriptor>,
        depth: u8,
    ) -> Result<()> {
        if depth > 10 {
            return Err(Error::layout(
                &self.root,
                "content nested more than 10 deep",
            ));
        }
        if !seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        if !self.has_blob(&descriptor.digest) {
            return Err(Error::layout(
                &self.root,
                format!("blob {} is missing", descriptor.digest),
            ));
        }
        if media_type::is_index(&descriptor.media_type)
            || media_type::is_manifest(&descriptor.media_type)
        {
            for child in self.children(descriptor)? {
                self.walk_into(&child, seen, out, depth + 1)?;
            }
        }
        out.push(descriptor.clone());
        Ok(())
    }

    /// Writes the layout as a tarball: `oci-layout`, `index.json`, then every blob, streamed
    /// from disk. Entries carry no timestamps or owners, so the same layout gives the same tar.
    pub fn write_tar<W: Write>(&self, out: W) -> Result<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        let tar_err = |e| Error::io("cannot write tar entry from", &self.root, e);
        for name in [LAYOUT_FILE, INDEX_FILE] {
            builder
                .append_path_with_name(self.root.join(name), name)
                .map_err(tar_err)?;
        }
        let blobs = self.root.join("blobs").join("sha256");
        builder.append_dir("blobs", &blobs).map_err(tar_err)?;
        builder
            .append_dir("blobs/sha256", &blobs)
            .map_err(tar_err)?;
        let mut names: Vec<String> = fs::read_dir(&blobs)
            .map_err(|e| Error::io("cannot list", &blobs, e))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| validate_digest(&format!("sha256:{name}")).is_ok())
            .collect();
        names.sort();
        for name in names {
            builder
                .append_path_with_name(blobs.join(&name), format!("blobs/sha256/{name}"))
                .map_err(tar_err)?;
        }
        builder.into_inner().map_err(tar_err)
    }

    /// Writes the layout as a tarball at `path` (atomically: a partial file is renamed into
    /// place only when complete).
    pub fn write_tar_file(&self, path: &Path) -> Result<()> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        let mut writer = self.write_tar(BufWriter::with_capacity(1 << 20, file))?;
        writer
            .flush()
            .map_err(|e| Error::io("cannot write", &partial, e))?;
        fs::rename(&partial, path).map_err(|e| Error::io("cannot rename into", path, e))
    }

    /// Unpacks an OCI layout tarball into this layout's blob store, checking every blob's
    /// digest, and returns the tarball's own `index.json` (this layout's `index.json` is left
    /// alone, so several tarballs can be gathered into one layout).
    pub fn import_tar(&self, reader: impl Read, source: &Path) -> Result<ImageIndex> {
        let mut archive = tar::Archive::new(reader);
        let mut index = None;
        let mut saw_marker = false;
        let entries = archive
            .entries()
            .map_err(|e| Error::io("cannot read tar", source, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("cannot read tar", source, e))?;
            let path = entry
                .path()
                .map_err(|e| Error::io("cannot read tar", source, e))?
                .into_owned();
            let name = path.to_string_lossy();
            let name = name.trim_start_matches("./");
            if name == INDEX_FILE {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_JSON_BLOB)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io("cannot read tar", source, e))?;
                index =
                    Some(serde_json::from_slice::<ImageIndex>(&bytes).map_err(|e| {
                        Error::json(format!("index.json in {}", source.display()), e)
                    })?);
            } else if name == LAYOUT_FILE {
                saw_marker = true;
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/")
                && entry.header().entry_type().is_file()
                && !hex.is_empty()
            {
                let digest = format!("sha256:{hex}");
                if !self.has_blob(&digest) {
                    self.import_blob(&mut entry, &digest)?;
                }
            }
            // Anything else (BuildKit's docker-compatible manifest.json) is not part of the
            // OCI layout and is dropped.
        }
        if !saw_marker {
            return Err(Error::layout(source, "the tarball has no oci-layout file"));
        }
        index.ok_or_else(|| Error::layout(source, "the tarball has no index.json"))
    }

    /// Unpacks an OCI layout tarball into a new layout directory at `dest`.
    pub fn unpack_tar_file(tarball: &Path, dest: impl Into<PathBuf>) -> Result<Self> {
        let layout = OciLayout::create(dest)?;
        let file = File::open(tarball).map_err(|e| Error::io("cannot open", tarball, e))?;
        let index = layout.import_tar(BufReader::with_capacity(1 << 20, file), tarball)?;
        layout.write_index(&index)?;
        Ok(layout)
    }

    /// Stores `index` as a blob and makes it the layout's only image: `index.json` gets one
    /// entry pointing at it, named `name` (`registry/repo:tag`) if given, the way BuildKit's
    /// oci exporter names images (`io.containerd.image.name` and the tag as
    /// `org.opencontainers.image.ref.name`).
    ///
    /// The entry also carries the annotations of `index.descriptor` (BuildKit's
    /// `index-descriptor` annotations).
    pub fn set_image(&self, index: &AssembledIndex, name: Option<&str>) -> Result<Descriptor> {
        let mut descriptor = self.write_blob(&index.descriptor.media_type, &index.bytes)?;
        descriptor.annotations = index.descriptor.annotations.clone();
        if let Some(name) = name {
            descriptor
                .annotations
                .insert(annotation::CONTAINERD_IMAGE_NAME.into(), name.to_owned());
            if let Some(tag) = tag_of(name) {
                descriptor
                    .annotations
                    .insert(annotation::REF_NAME.into(), tag.to_owned());
            }
        }
        let mut top = ImageIndex::new(media_type::OCI_INDEX);
        top.manifests = vec![descriptor.clone()];
        self.write_index(&top)?;
        Ok(descriptor)
    }
}

/// Merges per-platform OCI layout tarballs (as BuildKit's oci exporter sends them, one per
/// platform solve) into one tarball at `output` whose `index.json` names a single image index
/// covering every platform (and the attestations that came with them).
///
/// Blobs shared between the inputs are stored once. The work happens in a scratch directory
/// next to `output`, removed afterwards; `output` appears only when complete.
pub fn merge_layout_tarballs(
    inputs: &[PathBuf],
    output: &Path,
    name: Option<&str>,
) -> Result<AssembledIndex> {
    merge_layout_tarballs_with(inputs, output, name, &IndexEdits::default())
}

/// [`merge_layout_tarballs`] with `edits` applied to the merged index
/// ([`IndexEdits::assemble`]), its index-descriptor annotations on the `index.json` entry.
pub fn merge_layout_tarballs_with(
    inputs: &[PathBuf],
    output: &Path,
    name: Option<&str>,
    edits: &IndexEdits,
) -> Result<AssembledIndex> {
    let scratch = scratch_dir(output);
    let result = merge_into(inputs, output, name, edits, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn merge_into(
    inputs: &[PathBuf],
    output: &Path,
    name: Option<&str>,
    edits: &IndexEdits,
    scratch: &Path,
) -> Result<AssembledIndex> {
    let _ = fs::remove_dir_all(scratch);
    let layout = OciLayout::create(scratch)?;
    let mut roots = Vec::new();
    for input in inputs {
        let file = File::open(input).map_err(|e| Error::io("cannot open", input, e))?;
        let index = layout.import_tar(BufReader::with_capacity(1 << 20, file), input)?;
        roots.extend(index.manifests);
    }
    let index = edits.assemble(layout.image_manifests(&roots)?)?;
    let descriptor = layout.set_image(&index, name)?;
    // Refuse to write a tarball that refers to blobs it does not hold.
    layout.walk(&[descriptor])?;
    layout.write_tar_file(output)?;
    Ok(index)
}

/// Writes a layout tarball at `output` holding the images of several layout directories under
/// one index (the directory counterpart of [`merge_layout_tarballs`]).
pub fn merge_layouts(
    inputs: &[OciLayout],
    output: &Path,
    name: Option<&str>,
) -> Result<AssembledIndex> {
    let scratch = scratch_dir(output);
    let result = (|| {
        let _ = fs::remove_dir_all(&scratch);
        let merged = OciLayout::create(&scratch)?;
        let mut roots = Vec::new();
        for input in inputs {
            let entries = input.index()?.manifests;
            for descriptor in input.walk(&entries)? {
                if !merged.has_blob(&descriptor.digest) {
                    merged.import_blob(input.open_blob(&descriptor.digest)?, &descriptor.digest)?;
                }
            }
            roots.extend(entries);
        }
        let index = assemble_index(&merged.image_manifests(&roots)?)?;
        merged.set_image(&index, name)?;
        merged.write_tar_file(output)?;
        Ok(index)
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Config and layers of a manifest, or the entries of an index, parsed from its bytes.
pub(crate) fn children_of(descriptor: &Descriptor, bytes: &[u8]) -> Result<Vec<Descriptor>> {
    let media_type = if descriptor.media_type.is_empty() {
        crate::descriptor::detect_media_type(bytes)?
    } else {
        descriptor.media_type.clone()
    };
    if media_type::is_index(&media_type) {
        let index: ImageIndex =
            serde_json::from_slice(bytes).map_err(|e| Error::json(&descriptor.digest, e))?;
        Ok(index.manifests)
    } else if media_type::is_manifest(&media_type) {
        let manifest: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| Error::json(&descriptor.digest, e))?;
        let mut children = vec![manifest.config];
        children.extend(manifest.layers);
        Ok(children)
    } else {
        Ok(Vec::new())
    }
}

/// The tag of `registry/repo:tag`, if there is one (a `:` after the last `/`).
fn tag_of(name: &str) -> Option<&str> {
    let name = name.split('@').next().unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, tag)| tag)
}

fn scratch_dir(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".brix-merge-{}", std::process::id()));
    output.with_file_name(name)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = partial_path(path);
    fs::write(&partial, bytes).map_err(|e| Error::io("cannot write", &partial, e))?;
    fs::rename(&partial, path).map_err(|e| Error::io("cannot rename into", path, e))
}

/// A writer that hashes and counts what goes through it (blobs written into a layout).
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// `sha256:<hex>` of the bytes written so far.
    pub(crate) fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }

    /// How many bytes were written so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::descriptor::Platform;
    use std::collections::BTreeMap;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("brix-exporter-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A one-platform layout as BuildKit's oci exporter writes it: index.json points at the
    /// manifest, which has no platform of its own (it is in the config).
    fn single_platform_layout(dir: &Path, arch: &str, layer: &[u8]) -> (OciLayout, Descriptor) {
        let layout = OciLayout::create(dir).unwrap();
        let config = layout
            .write_blob(
                media_type::OCI_CONFIG,
                format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).as_bytes(),
            )
            .unwrap();
        let layer = layout
            .write_blob("application/vnd.oci.image.layer.v1.tar+gzip", layer)
            .unwrap();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: media_type::OCI_MANIFEST.into(),
            config,
            layers: vec![layer],
            subject: None,
            annotations: BTreeMap::new(),
        };
        let mut manifest = layout
            .write_blob(media_type::OCI_MANIFEST, &to_pretty_json(&manifest))
            .unwrap();
        let mut top = ImageIndex::new(media_type::OCI_INDEX);
        let mut entry = manifest.clone();
        entry
            .annotations
            .insert(annotation::REF_NAME.into(), "latest".into());
        top.manifests.push(entry);
        layout.write_index(&top).unwrap();
        manifest.platform = Some(Platform::new("linux", arch, ""));
        (layout, manifest)
    }

    #[test]
    fn layout_round_trips_through_a_tarball() {
        let dir = scratch("roundtrip");
        let (layout, manifest) = single_platform_layout(&dir.join("a"), "amd64", b"layer-a");
        let tar = layout.write_tar(Vec::new()).unwrap();
        let again = layout.write_tar(Vec::new()).unwrap();
        assert_eq!(tar, again, "tarballs are deterministic");
        let tar_path = dir.join("a.tar");
        fs::write(&tar_path, &tar).unwrap();
        let copy = OciLayout::unpack_tar_file(&tar_path, dir.join("b")).unwrap();
        assert_eq!(copy.index().unwrap(), layout.index().unwrap());
        let walked = copy.walk(&copy.index().unwrap().manifests).unwrap();
        assert_eq!(walked.len(), 3, "config, layer, manifest");
        assert_eq!(
            walked.last().unwrap().digest,
            manifest.digest,
            "parents come last"
        );
        assert_eq!(
            copy.image_manifests(&copy.index().unwrap().manifests)
                .unwrap(),
            vec![manifest]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupted_blob_is_refused_on_import() {
        let dir = scratch("corrupt");
        let (layout, manifest) = single_platform_layout(&dir.join("a"), "amd64", b"layer-a");
        let ImageManifest { layers, .. } =
            serde_json::from_slice(&layout.read_blob(&manifest.digest).unwrap()).unwrap();
        fs::write(layout.blob_path(&layers[0].digest).unwrap(), b"tampered").unwrap();
        let tar_path = dir.join("a.tar");
        layout.write_tar_file(&tar_path).unwrap();
        let err = OciLayout::unpack_tar_file(&tar_path, dir.join("b")).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn merging_two_platform_tarballs_gives_one_index_with_both() {
        let dir = scratch("merge");
        let (amd, amd_manifest) = single_platform_layout(&dir.join("amd"), "amd64", b"layer-amd");
        let (arm, arm_manifest) = single_platform_layout(&dir.join("arm"), "arm64", b"layer-arm");
        let inputs = vec![dir.join("amd.tar"), dir.join("arm.tar")];
        amd.write_tar_file(&inputs[0]).unwrap();
        arm.write_tar_file(&inputs[1]).unwrap();
        let out = dir.join("out.tar");
        let index = merge_layout_tarballs(&inputs, &out, Some("localhost:5000/app:1")).unwrap();
        assert_eq!(
            index
                .index
                .manifests
                .iter()
                .map(|m| m.digest.clone())
                .collect::<Vec<_>>(),
            vec![amd_manifest.digest, arm_manifest.digest]
        );
        let merged = OciLayout::unpack_tar_file(&out, dir.join("merged")).unwrap();
        let top = merged.index().unwrap();
        assert_eq!(top.manifests.len(), 1);
        assert_eq!(top.manifests[0].digest, index.descriptor.digest);
        assert_eq!(top.manifests[0].annotations[annotation::REF_NAME], "1");
        assert_eq!(
            merged.walk(&top.manifests).unwrap().len(),
            7,
            "2 × (config, layer, manifest) + index"
        );
        assert!(!scratch_dir(&out).exists(), "scratch directory removed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tag_is_taken_after_the_last_slash() {
        assert_eq!(tag_of("localhost:5000/app:1"), Some("1"));
        assert_eq!(tag_of("localhost:5000/app"), None);
        assert_eq!(tag_of("app@sha256:abc"), None);
    }
}
