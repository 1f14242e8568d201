//! Turning `docker save` tarballs into OCI images in a layout, so that images built with the
//! `docker` driver (which lives in the engine's image store, one platform per image) can be
//! pushed as one multi-platform index by [`crate::Registry::push_layout`].
//!
//! Both `docker save` formats are read: the classic one (`manifest.json`, `<id>/layer.tar`,
//! `<id>.json`) and the OCI-shaped one of Docker 25+ (`blobs/sha256/…`), on either image
//! store. An uncompressed layer (the classic store) is gzip-compressed on its way into the
//! layout, streamed, never held in memory, and its digest must match the config's
//! `rootfs.diff_ids`. The containerd image store writes layers as the registry holds them,
//! compressed and named by their compressed digest: those blobs are copied unchanged, their
//! digest checked against their name, and a gzip layer is also decompressed on the way to
//! check its `diff_ids` entry (a zstd layer is checked by its blob digest only).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::descriptor::{
    Descriptor, ImageConfigPlatform, ImageManifest, media_type, sha256_digest, to_pretty_json,
};
use crate::error::{Error, Result};
use crate::layout::{HashingWriter, OciLayout};

/// Media type of the gzip-compressed layers this module writes.
pub const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifestEntry {
    config: String,
    /// `docker save <image id>` writes `"RepoTags": null`: no tags, as when the key is absent.
    #[serde(default, deserialize_with = "null_as_empty")]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigRootFs {
    rootfs: RootFs,
}

/// One image taken from a `docker save` tarball.
#[derive(Debug, Clone)]
pub struct ImportedImage {
    /// The OCI manifest written into the layout, with the platform from the image config.
    pub manifest: Descriptor,
    /// The `RepoTags` the archive gave the image.
    pub repo_tags: Vec<String>,
}

/// Converts every image of the `docker save` tarball at `archive` into an OCI image manifest
/// (gzip layers) in `layout`, and returns their descriptors, each with its platform: ready for
/// [`crate::assemble_index`]. `layout`'s `index.json` is left alone.
pub fn import_docker_archive(layout: &OciLayout, archive: &Path) -> Result<Vec<ImportedImage>> {
    let entries = read_save_manifest(archive)?;
    let wanted_configs: HashMap<&str, ()> =
        entries.iter().map(|e| (normalize(&e.config), ())).collect();
    let wanted_layers: HashMap<&str, ()> = entries
        .iter()
        .flat_map(|e| e.layers.iter().map(|l| (normalize(l), ())))
        .collect();

    // One pass over the archive: configs into memory, layers compressed into the layout.
    let mut configs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut layers: HashMap<String, ImportedLayer> = HashMap::new();
    let file = File::open(archive).map_err(|e| Error::io("cannot open", archive, e))?;
    let mut tar = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let read_err = |e| Error::io("cannot read docker archive", archive, e);
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let name = normalize(&name).to_owned();
        if wanted_configs.contains_key(name.as_str()) {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_JSON)
                .read_to_end(&mut bytes)
                .map_err(read_err)?;
            configs.insert(name.clone(), bytes);
        }
        if wanted_layers.contains_key(name.as_str()) && !layers.contains_key(&name) {
            let layer = import_layer(layout, &mut entry, archive, &name)?;
            layers.insert(name, layer);
        }
    }

    let mut images = Vec::new();
    for entry in &entries {
        let config_name = normalize(&entry.config);
        let config_bytes = configs.get(config_name).ok_or_else(|| {
            Error::layout(
                archive,
                format!("manifest.json names config {config_name}, which is not in the archive"),
            )
        })?;
        let what = format!("{} in {}", config_name, archive.display());
        let platform = ImageConfigPlatform::from_config_json(&what, config_bytes)?;
        let rootfs: ConfigRootFs =
            serde_json::from_slice(config_bytes).map_err(|e| Error::json(&what, e))?;
        if rootfs.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(Error::layout(
                archive,
                format!(
                    "image config {config_name} lists {} layers but manifest.json {}",
                    rootfs.rootfs.diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        let mut layer_descriptors = Vec::new();
        for (layer_name, diff_id) in entry.layers.iter().zip(&rootfs.rootfs.diff_ids) {
            let layer_name = normalize(layer_name);
            let layer = layers.get(layer_name).ok_or_else(|| {
                Error::layout(
                    archive,
                    format!("manifest.json names layer {layer_name}, which is not in the archive"),
                )
            })?;
            if let Some(actual) = &layer.diff_id
                && actual != diff_id
            {
                return Err(Error::DigestMismatch {
                    what: format!("layer {layer_name} in {}", archive.display()),
                    expected: diff_id.clone(),
                    actual: actual.clone(),
                });
            }
            layer_descriptors.push(layer.descriptor.clone());
        }
        let config = layout.write_blob(media_type::OCI_CONFIG, config_bytes)?;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: media_type::OCI_MANIFEST.into(),
            config,
            layers: layer_descriptors,
            subject: None,
            annotations: Default::default(),
        };
        let mut descriptor =
            layout.write_blob(media_type::OCI_MANIFEST, &to_pretty_json(&manifest))?;
        descriptor.platform = Some(platform);
        images.push(ImportedImage {
            manifest: descriptor,
            repo_tags: entry.repo_tags.clone(),
        });
    }
    Ok(images)
}

fn read_save_manifest(archive: &Path) -> Result<Vec<SaveManifestEntry>> {
    let file = File::open(archive).map_err(|e| Error::io("cannot open", archive, e))?;
    let mut tar = tar::Archive::new(BufReader::new(file));
    let read_err = |e| Error::io("cannot read docker archive", archive, e);
    // Skipping over entries seeks instead of reading the layers.
    for entry in tar.entries_with_seek().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let is_manifest =
            normalize(&entry.path().map_err(read_err)?.to_string_lossy()) == "manifest.json";
        if is_manifest {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_JSON)
                .read_to_end(&mut bytes)
                .map_err(read_err)?;
            let entries: Vec<SaveManifestEntry> = serde_json::from_slice(&bytes)
                .map_err(|e| Error::json(format!("manifest.json in {}", archive.display()), e))?;
            if entries.is_empty() {
                return Err(Error::layout(archive, "manifest.json lists no images"));
            }
            return Ok(entries);
        }
    }
    Err(Error::layout(
        archive,
        "no manifest.json: not a docker save archive",
    ))
}

/// Media type of zstd-compressed layers, kept as they are.
pub const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a layer is stored in a `docker save` archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerEncoding {
    /// An uncompressed tar (the classic store, and Docker 25+ on the classic store).
    Plain,
    /// Gzip, as the containerd image store keeps pulled and built layers.
    Gzip,
    /// Zstd: kept as is; brix has no zstd decoder, so only the blob's own digest is checked.
    Zstd,
}

fn sniff_encoding(head: &[u8]) -> LayerEncoding {
    match head {
        [0x1f, 0x8b, ..] => LayerEncoding::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => LayerEncoding::Zstd,
        _ => LayerEncoding::Plain,
    }
}

/// Reads through to `inner` while copying every byte into `copy` (the blob file) and
/// hashing it.
struct TeeReader<'a, R, W: Write> {
    inner: &'a mut R,
    copy: &'a mut HashingWriter<W>,
}

impl<R: Read, W: Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Where a layer of the archive came from, and what it was checked against.
struct ImportedLayer {
    /// The uncompressed digest, to compare with the config's `rootfs.diff_ids`; `None` when
    /// it cannot be computed here (zstd), in which case the blob's own digest was checked.
    diff_id: Option<String>,
    descriptor: Descriptor,
}

/// Puts one layer of the archive into the layout. What `docker save` wrote decides how:
/// an uncompressed tar (the classic store) is gzipped on its way in; a compressed blob (the
/// containerd image store writes layers as the registry holds them, named
/// `blobs/sha256/<digest of the compressed bytes>`) is copied as it is, its digest checked
/// against its name, and a gzip blob is also decompressed on the fly to compute its diff ID.
fn import_layer(
    layout: &OciLayout,
    reader: &mut impl Read,
    archive: &Path,
    name: &str,
) -> Result<ImportedLayer> {
    let blobs = layout.root().join("blobs").join("sha256");
    // Named after the layer's path in the archive until its digest is known.
    let partial = blobs.join(format!(
        ".layer-{}-{}",
        std::process::id(),
        &sha256_digest(name.as_bytes())[7..23]
    ));
    let read_err = |e| Error::io("cannot read docker archive", archive, e);
    let write_err = |e| Error::io("cannot write", &partial, e);
    let result = (|| {
        let mut head = Vec::with_capacity(4);
        (&mut *reader)
            .take(4)
            .read_to_end(&mut head)
            .map_err(read_err)?;
        let encoding = sniff_encoding(&head);
        let mut rest = std::io::Cursor::new(head).chain(reader);
        let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        let mut blob = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let mut uncompressed = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let media_type = match encoding {
            LayerEncoding::Plain => {
                // Level 1: the layers go over the network once; speed matters more than
                // size here (BuildKit's default is a middle level).
                let mut gzip = GzEncoder::new(&mut blob, Compression::fast());
                loop {
                    let n = rest.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    uncompressed.update(&buf[..n]);
                    gzip.write_all(&buf[..n]).map_err(write_err)?;
                }
                gzip.finish().map_err(write_err)?;
                GZIP_LAYER
            }
            LayerEncoding::Gzip => {
                let mut tee = TeeReader {
                    inner: &mut rest,
                    copy: &mut blob,
                };
                let mut gunzip = flate2::read::MultiGzDecoder::new(&mut tee);
                loop {
                    let n = gunzip.read(&mut buf).map_err(|e| {
                        Error::layout(archive, format!("layer {name} is not valid gzip: {e}"))
                    })?;
                    if n == 0 {
                        break;
                    }
                    uncompressed.update(&buf[..n]);
                }
                // Whatever follows the gzip stream is part of the blob and its digest.
                std::io::copy(&mut tee, &mut std::io::sink()).map_err(read_err)?;
                GZIP_LAYER
            }
            LayerEncoding::Zstd => {
                std::io::copy(&mut rest, &mut blob).map_err(read_err)?;
                ZSTD_LAYER
            }
        };
        blob.flush().map_err(write_err)?;
        let digest = blob.digest();
        let size = blob.size();
        drop(blob);
        let diff_id = match encoding {
            LayerEncoding::Zstd => None,
            _ => Some(format!("sha256:{:x}", uncompressed.finalize())),
        };
        // A compressed blob is named by its digest: that is the digest that applies to it.
        if encoding != LayerEncoding::Plain
            && let Some(hex) = name.strip_prefix("blobs/sha256/")
            && digest != format!("sha256:{hex}")
        {
            return Err(Error::DigestMismatch {
                what: format!("layer {name} in {}", archive.display()),
                expected: format!("sha256:{hex}"),
                actual: digest,
            });
        }
        let final_path = layout.blob_path(&digest)?;
        fs::rename(&partial, &final_path)
            .map_err(|e| Error::io("cannot rename into", &final_path, e))?;
        Ok(ImportedLayer {
            diff_id,
            descriptor: Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                ..Default::default()
            },
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// `./abc/layer.tar` → `abc/layer.tar`.
fn normalize(name: &str) -> &str {
    name.trim_start_matches("./")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use super::*;
    use crate::descriptor::Platform;
    use flate2::read::GzDecoder;

    /// A classic `docker save` archive with one image of one layer.
    fn save_archive(path: &Path, arch: &str, layer: &[u8], diff_id: &str) {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        write_classic_save(path, &config, &format!(r#"["app:{arch}"]"#), layer);
    }

    /// A classic (engine 20.10) `docker save` archive: `abc/layer.tar`, `<id>.json`,
    /// `manifest.json` with `repo_tags_json` as its `RepoTags` (e.g. `["app:x"]` or `null`).
    pub(crate) fn write_classic_save(
        path: &Path,
        config: &str,
        repo_tags_json: &str,
        layer: &[u8],
    ) {
        let config_name = format!("{}.json", &sha256_digest(config.as_bytes())[7..]);
        let manifest = format!(
            r#"[{{"Config":"{config_name}","RepoTags":{repo_tags_json},"Layers":["abc/layer.tar"]}}]"#
        );
        write_tar(
            path,
            &[
                ("abc/layer.tar", layer),
                (config_name.as_str(), config.as_bytes()),
                ("manifest.json", manifest.as_bytes()),
            ],
        );
    }

    /// A tarball of regular files.
    fn write_tar(path: &Path, files: &[(&str, &[u8])]) {
        let mut builder = tar::Builder::new(File::create(path).unwrap());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.finish().unwrap();
    }

    #[test]
    fn an_archive_saved_by_image_id_has_null_repo_tags_and_imports() {
        let dir =
            std::env::temp_dir().join(format!("brix-docker-archive-null-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let layer = b"an untagged layer".repeat(100);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256_digest(&layer)
        );
        let archive = dir.join("save.tar");
        write_classic_save(&archive, &config, "null", &layer);
        let layout = OciLayout::create(dir.join("layout")).unwrap();
        let images = import_docker_archive(&layout, &archive).unwrap();
        assert_eq!(images.len(), 1);
        assert!(images[0].repo_tags.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_docker_save_archive_becomes_an_oci_image_with_gzip_layers() {
        let dir = std::env::temp_dir().join(format!("brix-docker-archive-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let layer = b"pretend this is a layer tar".repeat(1000);
        let archive = dir.join("save.tar");
        save_archive(&archive, "arm64", &layer, &sha256_digest(&layer));
        let layout = OciLayout::create(dir.join("layout")).unwrap();
        let images = import_docker_archive(&layout, &archive).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].repo_tags, ["app:arm64"]);
        assert_eq!(
            images[0].manifest.platform,
            Some(Platform::new("linux", "arm64", ""))
        );

        let manifest: ImageManifest =
            serde_json::from_slice(&layout.read_blob(&images[0].manifest.digest).unwrap()).unwrap();
        assert_eq!(manifest.layers[0].media_type, GZIP_LAYER);
        let compressed = fs::read(layout.blob_path(&manifest.layers[0].digest).unwrap()).unwrap();
        assert_eq!(
            sha256_digest(&compressed),
            manifest.layers[0].digest,
            "named by its compressed digest"
        );
        assert_eq!(compressed.len() as u64, manifest.layers[0].size);
        let mut unpacked = Vec::new();
        GzDecoder::new(&compressed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, layer);
        // Everything the manifest names is in the layout.
        assert_eq!(layout.walk(&[images[0].manifest.clone()]).unwrap().len(), 3);

        let bad = dir.join("bad.tar");
        save_archive(&bad, "amd64", &layer, &sha256_digest(b"something else"));
        let err = import_docker_archive(&layout, &bad).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A `docker save` archive as the containerd image store writes it: an OCI layout whose
    /// `manifest.json` names `blobs/sha256/…` entries, with the layer gzipped as pulled.
    fn write_containerd_save(path: &Path, layer_blob: &[u8], blob_name: &str, diff_id: &str) {
        let config = format!(
            r#"{{"architecture":"arm64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let config_hex = sha256_digest(config.as_bytes())[7..].to_owned();
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{config_hex}","RepoTags":["app:arm64"],"Layers":["blobs/sha256/{blob_name}"]}}]"#
        );
        let (layer_name, config_name) = (
            format!("blobs/sha256/{blob_name}"),
            format!("blobs/sha256/{config_hex}"),
        );
        write_tar(
            path,
            &[
                (
                    "oci-layout",
                    br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
                ),
                (&layer_name, layer_blob),
                (&config_name, config.as_bytes()),
                ("manifest.json", manifest.as_bytes()),
            ],
        );
    }

    fn gzipped(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_containerd_store_archive_keeps_its_compressed_layers() {
        let dir = tempfile::tempdir().unwrap();
        let layer = b"uncompressed layer tar bytes".repeat(100);
        let blob = gzipped(&layer);
        let blob_digest = sha256_digest(&blob);
        let archive = dir.path().join("save.tar");
        write_containerd_save(&archive, &blob, &blob_digest[7..], &sha256_digest(&layer));
        let layout = OciLayout::create(dir.path().join("layout")).unwrap();
        let images = import_docker_archive(&layout, &archive).unwrap();
        let manifest: ImageManifest =
            serde_json::from_slice(&layout.read_blob(&images[0].manifest.digest).unwrap()).unwrap();
        assert_eq!(
            manifest.layers[0].digest, blob_digest,
            "the blob is kept as it is"
        );
        assert_eq!(manifest.layers[0].media_type, GZIP_LAYER);
        assert_eq!(layout.read_blob(&blob_digest).unwrap(), blob);
        assert_eq!(
            images[0].manifest.platform.as_ref().unwrap().architecture,
            "arm64"
        );
    }

    #[test]
    fn a_damaged_compressed_layer_is_named_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let layer = b"layer".repeat(50);
        let blob = gzipped(&layer);
        let good_name = sha256_digest(&blob)[7..].to_owned();
        // Another blob under the first one's name: the name's digest does not match.
        let other = gzipped(b"something else");
        let archive = dir.path().join("save.tar");
        write_containerd_save(&archive, &other, &good_name, &sha256_digest(&layer));
        let layout = OciLayout::create(dir.path().join("layout")).unwrap();
        let err = import_docker_archive(&layout, &archive).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        // The right bytes but the wrong diff ID in the config: also refused.
        write_containerd_save(&archive, &blob, &good_name, &sha256_digest(b"not it"));
        let layout = OciLayout::create(dir.path().join("layout2")).unwrap();
        let err = import_docker_archive(&layout, &archive).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn encodings_are_told_by_their_magic_bytes() {
        assert_eq!(sniff_encoding(&[0x1f, 0x8b, 8, 0]), LayerEncoding::Gzip);
        assert_eq!(
            sniff_encoding(&[0x28, 0xb5, 0x2f, 0xfd]),
            LayerEncoding::Zstd
        );
        assert_eq!(sniff_encoding(b"etc/"), LayerEncoding::Plain);
        assert_eq!(sniff_encoding(b""), LayerEncoding::Plain);
    }
}
