//! Turning `docker save` tarballs into OCI images in a layout, so that images built with the
//! `docker` driver (which lives in the engine's image store, one platform per image) can be
//! pushed as one multi-platform index by [`crate::Registry::push_layout`].
//!
//! Both `docker save` formats are read: the classic one (`manifest.json`, `<id>/layer.tar`,
//! `<id>.json`) and the OCI-shaped one of Docker 25+ (`blobs/sha256/…`). Each uncompressed
//! layer is gzip-compressed on its way into the layout, streamed, never held in memory; its
//! uncompressed digest must match the config's `rootfs.diff_ids`, and the compressed digest
//! names the blob.

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
    let mut layers: HashMap<String, (String, Descriptor)> = HashMap::new();
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
            let compressed = compress_layer_into(layout, &mut entry, archive, &name)?;
            layers.insert(name, compressed);
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
            let (actual_diff_id, descriptor) = layers.get(layer_name).ok_or_else(|| {
                Error::layout(
                    archive,
                    format!("manifest.json names layer {layer_name}, which is not in the archive"),
                )
            })?;
            if actual_diff_id != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("layer {layer_name} in {}", archive.display()),
                    expected: diff_id.clone(),
                    actual: actual_diff_id.clone(),
                });
            }
            layer_descriptors.push(descriptor.clone());
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

/// Gzips one layer into the layout; returns its uncompressed digest (diff ID) and the
/// descriptor of the compressed blob.
fn compress_layer_into(
    layout: &OciLayout,
    reader: &mut impl Read,
    archive: &Path,
    name: &str,
) -> Result<(String, Descriptor)> {
    let blobs = layout.root().join("blobs").join("sha256");
    // Named after the layer's path in the archive until its digest is known.
    let partial = blobs.join(format!(
        ".layer-{}-{}",
        std::process::id(),
        &sha256_digest(name.as_bytes())[7..23]
    ));
    let result = (|| {
        let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        // Level 1: the layers go over the network once; speed matters more than size here
        // (BuildKit's default is a middle level, buildx users can still recompress).
        let mut gzip = GzEncoder::new(compressed, Compression::fast());
        let mut uncompressed = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::io("cannot read docker archive", archive, e))?;
            if n == 0 {
                break;
            }
            uncompressed.update(&buf[..n]);
            gzip.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write", &partial, e))?;
        }
        let mut compressed = gzip
            .finish()
            .map_err(|e| Error::io("cannot write", &partial, e))?;
        compressed
            .flush()
            .map_err(|e| Error::io("cannot write", &partial, e))?;
        let digest = compressed.digest();
        let final_path = layout.blob_path(&digest)?;
        fs::rename(&partial, &final_path)
            .map_err(|e| Error::io("cannot rename into", &final_path, e))?;
        let descriptor = Descriptor {
            media_type: GZIP_LAYER.into(),
            digest,
            size: compressed.size(),
            ..Default::default()
        };
        Ok((format!("sha256:{:x}", uncompressed.finalize()), descriptor))
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
        let mut builder = tar::Builder::new(File::create(path).unwrap());
        for (name, data) in [
            ("abc/layer.tar", layer),
            (config_name.as_str(), config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
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
}
