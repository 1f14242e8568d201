//! Local cache folders (`--cache-to type=local,dest=DIR`): an OCI layout as buildctl and
//! buildx write it, `blobs/sha256/<hex>` filled by the daemon through the session's content
//! store, and an `index.json` that the client tags the exported manifest in.
//!
//! [`merge_local_cache`] merges the per-platform manifests found there into one;
//! [`put_tag`] and [`read_tag`] handle `index.json` as BuildKit's `client/ociindex` does, so
//! that buildctl and buildx find the tag brix writes (`--cache-from type=local,src=DIR` reads
//! tag `latest` unless told otherwise).
//!
//! Everything here is blocking file I/O: from async code, call it in
//! `tokio::task::spawn_blocking`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{OciDescriptor, to_go_json};
use super::merge::{CacheExport, cache_config_descriptor, merge_cache_exports};
use super::{CacheError, distinct_manifests, nullable};
use crate::descriptor::{Descriptor, annotation, media_type, sha256_digest, validate_digest};
use crate::error::Error;

const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = "index.json.lock";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_FILE_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Manifests and cache configs are read whole; anything larger is refused, not trusted.
const MAX_JSON_BLOB: u64 = 64 << 20;
/// How often to re-open a lock file that another process removed while this one waited.
const LOCK_ATTEMPTS: usize = 1000;

/// Merges the cache manifests `manifests` (the `cache.manifest` descriptors of the solves that
/// exported into `dir`) and returns the merged manifest's descriptor.
///
/// The manifests and their cache configs are read from `dir/blobs/sha256` and checked
/// against their digests; the merged config and manifest are written there as new blobs, each
/// through a temporary file that is synced and renamed into place, so no partial blob is ever
/// visible. `index.json` is not touched: tag the result with [`put_tag`]. One distinct
/// manifest is returned as it is, with nothing written.
pub fn merge_local_cache(dir: &Path, manifests: &[Descriptor]) -> Result<Descriptor, CacheError> {
    let manifests = distinct_manifests(manifests)?;
    match manifests.as_slice() {
        [] => return Err(CacheError::NoManifests),
        [single] => return Ok((*single).clone()),
        _ => {}
    }
    let blobs = dir.join("blobs").join("sha256");
    let mut pairs = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let manifest_bytes = read_blob(&blobs, manifest)?;
        let config = cache_config_descriptor(&manifest_bytes)?;
        let config_bytes = read_blob(&blobs, &config)?;
        pairs.push((manifest_bytes, config_bytes));
    }
    let exports: Vec<CacheExport<'_>> = pairs
        .iter()
        .map(|(manifest, config)| CacheExport { manifest, config })
        .collect();
    let merged = merge_cache_exports(&exports)?;
    // The config first: a manifest never names a blob that is not there yet.
    write_blob(&blobs, &merged.config_descriptor.digest, &merged.config)?;
    write_blob(&blobs, &merged.manifest_descriptor.digest, &merged.manifest)?;
    Ok(merged.manifest_descriptor)
}

/// The entry of `dir/index.json` tagged `tag`, as BuildKit's `StoreIndex.Get` finds it: the
/// first entry whose `io.containerd.image.name` is `tag`, else the first whose
/// `org.opencontainers.image.ref.name` is. The entry comes with its annotations. `None` when
/// nothing has that tag, or when there is no `index.json` yet.
pub fn read_tag(dir: &Path, tag: &str) -> Result<Option<Descriptor>, CacheError> {
    let index_path = dir.join(INDEX_FILE);
    if !index_path.exists() {
        return Ok(None);
    }
    // Shared with other readers, exclusive of BuildKit's writers, which rewrite the file in
    // place; brix's own writes are atomic renames.
    let _lock = IndexLock::acquire(dir, LockKind::Shared)?;
    let bytes = match fs::read(&index_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", &index_path, e).into()),
    };
    let index: LayoutIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::json(index_path.display().to_string(), e))?;
    let tagged = |key: &str| {
        index
            .manifests
            .iter()
            .find(|m| m.annotations.get(key).is_some_and(|v| v == tag))
    };
    Ok(tagged(annotation::CONTAINERD_IMAGE_NAME)
        .or_else(|| tagged(annotation::REF_NAME))
        .map(OciDescriptor::to_descriptor))
}

/// Tags `descriptor` as `tag` in `dir/index.json`, as BuildKit's `StoreIndex.Put` with a tag
/// does: under an exclusive lock on `index.json.lock`, writes `oci-layout`, drops the entries
/// whose `org.opencontainers.image.ref.name` is `tag` and that have no
/// `io.containerd.image.name`, appends `descriptor` with that annotation, and removes the lock
/// file again.
///
/// Unlike BuildKit, a writer waits for the lock instead of failing, `index.json` is replaced
/// atomically (a reader never sees half of it), and the lock file is removed while still held
/// (a waiter that finds it gone locks the new one), so concurrent writers never lose each
/// other's tags.
pub fn put_tag(dir: &Path, descriptor: &Descriptor, tag: &str) -> Result<(), CacheError> {
    validate_digest(&descriptor.digest)?;
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let _lock = IndexLock::acquire(dir, LockKind::Exclusive)?;
    write_atomically(&dir.join(LAYOUT_FILE), LAYOUT_FILE_CONTENT)?;

    let index_path = dir.join(INDEX_FILE);
    let mut index = match fs::read(&index_path) {
        Ok(bytes) if bytes.is_empty() => LayoutIndex::default(),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(index_path.display().to_string(), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => LayoutIndex::default(),
        Err(e) => return Err(Error::io("cannot read", &index_path, e).into()),
    };
    if index.schema_version == 0 {
        index.schema_version = 2;
    }
    if index.media_type.is_empty() {
        index.media_type = media_type::OCI_INDEX.to_owned();
    }
    index.manifests.retain(|m| {
        m.annotations.get(annotation::REF_NAME).map(String::as_str) != Some(tag)
            || m.annotations
                .get(annotation::CONTAINERD_IMAGE_NAME)
                .is_some_and(|name| !name.is_empty())
    });
    let mut entry = OciDescriptor::from(descriptor);
    entry
        .annotations
        .insert(annotation::REF_NAME.to_owned(), tag.to_owned());
    index.manifests.push(entry);
    write_atomically(&index_path, &to_go_json(INDEX_FILE, &index)?)?;
    Ok(())
}

/// An OCI layout's `index.json`, in the field order of Go's `ocispecs.Index`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex {
    #[serde(default, deserialize_with = "nullable")]
    schema_version: i64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    media_type: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    artifact_type: String,
    #[serde(default, deserialize_with = "nullable")]
    manifests: Vec<OciDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<OciDescriptor>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Reads a manifest or config blob whole, checking its digest and (if given) its size.
fn read_blob(blobs: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, CacheError> {
    let hex = validate_digest(&descriptor.digest)?;
    let path = blobs.join(hex);
    let file = File::open(&path).map_err(|e| Error::io("cannot open blob", &path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    if bytes.len() as u64 > MAX_JSON_BLOB {
        return Err(Error::InvalidDescriptor {
            what: descriptor.digest.clone(),
            reason: format!(
                "{} is too large for a cache manifest or config",
                path.display()
            ),
        }
        .into());
    }
    let actual = sha256_digest(&bytes);
    if actual != descriptor.digest {
        return Err(Error::DigestMismatch {
            what: path.display().to_string(),
            expected: descriptor.digest.clone(),
            actual,
        }
        .into());
    }
    if descriptor.size != 0 && descriptor.size != bytes.len() as u64 {
        return Err(Error::InvalidDescriptor {
            what: descriptor.digest.clone(),
            reason: format!(
                "the descriptor says {} bytes, {} has {}",
                descriptor.size,
                path.display(),
                bytes.len()
            ),
        }
        .into());
    }
    Ok(bytes)
}

/// Stores a blob under its digest unless it is there already (same name, same content).
fn write_blob(blobs: &Path, digest: &str, bytes: &[u8]) -> Result<(), CacheError> {
    let path = blobs.join(validate_digest(digest)?);
    if path.is_file() {
        return Ok(());
    }
    fs::create_dir_all(blobs).map_err(|e| Error::io("cannot create", blobs, e))?;
    write_atomically(&path, bytes)?;
    Ok(())
}

/// Writes `path` through a temporary file beside it, synced before it is renamed over
/// `path`: readers see the old content or the new, never part of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".brix-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
    let temp_path = file.path().to_path_buf();
    file.write_all(bytes)
        .and_then(|()| set_readable(file.as_file()))
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| Error::io("cannot write", &temp_path, e))?;
    file.persist(path)
        .map_err(|e| Error::io("cannot rename into", path, e.error))?;
    // Make the rename itself durable; a file system that cannot sync a directory still has
    // the new content in place.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `rw-r--r--`, as Go's `os.WriteFile(…, 0644)` leaves files (temporary files start `rw-------`).
#[cfg(unix)]
fn set_readable(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_file: &File) -> io::Result<()> {
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockKind {
    Shared,
    Exclusive,
}

/// A `flock` on `index.json.lock` (the file gofrs/flock locks for BuildKit), removed again
/// when released, as BuildKit removes it.
struct IndexLock {
    file: File,
    path: PathBuf,
    kind: LockKind,
}

impl IndexLock {
    /// Waits for the lock. A shared lock on a folder where no lock file can be created
    /// (read-only) is done without, as BuildKit reads without one there.
    fn acquire(dir: &Path, kind: LockKind) -> Result<Option<Self>, Error> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..LOCK_ATTEMPTS {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(file) => file,
                Err(e)
                    if kind == LockKind::Shared
                        && matches!(
                            e.kind(),
                            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                        ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("cannot open the lock file", &path, e)),
            };
            match kind {
                LockKind::Shared => file.lock_shared(),
                LockKind::Exclusive => file.lock(),
            }
            .map_err(|e| Error::io("cannot lock", &path, e))?;
            // The holder before us removes the file when it is done: a lock on a removed file
            // excludes no one, so lock the file that is there now.
            if is_same_file(&file, &path) {
                return Ok(Some(IndexLock { file, path, kind }));
            }
        }
        Err(Error::io(
            "cannot lock",
            &path,
            io::Error::other("the lock file keeps being replaced by other processes"),
        ))
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        // A reader removes the file only when it is the last holder (it can take the lock
        // exclusively); either way only while holding it, and only if it is still ours.
        let sole = self.kind == LockKind::Exclusive || self.file.try_lock().is_ok();
        if sole && is_same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
        // Closing the file releases the lock.
    }
}

/// True if `path` is (still) the file `file` has open.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::cache::CACHE_CONFIG_MEDIA_TYPE;
    use serde_json::json;

    fn blobs_of(dir: &Path) -> PathBuf {
        dir.join("blobs").join("sha256")
    }

    fn store(dir: &Path, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        fs::create_dir_all(blobs_of(dir)).unwrap();
        fs::write(blobs_of(dir).join(&digest["sha256:".len()..]), bytes).unwrap();
        digest
    }

    /// Stores one solve's export (one layer `layer` on a shared `base`) as the daemon would,
    /// and returns its manifest's descriptor.
    fn export_into(dir: &Path, layer: &str) -> Descriptor {
        let base = sha256_digest(b"base");
        let top = sha256_digest(layer.as_bytes());
        let config = json!({
            "layers": [{"blob": base, "parent": -1}, {"blob": top}],
            "records": [
                {"digest": "sha256:from", "layers": [{"layer": 0, "createdAt": "2025-01-01T00:00:00Z"}]},
                {"digest": format!("sha256:run-{layer}"), "layers": [{"layer": 1, "createdAt": "2025-01-01T00:00:00Z"}],
                 "inputs": [[{"link": 0}]]},
            ],
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = store(dir, &config);
        let layer_entry = |digest: &str| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": 4,
                   "annotations": {"containerd.io/uncompressed": digest}})
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": CACHE_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [layer_entry(&base), layer_entry(&top)],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        store(dir, &manifest);
        Descriptor::of_bytes(media_type::OCI_MANIFEST, &manifest)
    }

    fn blob_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(blobs_of(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn merging_a_local_cache_writes_the_merged_config_and_manifest_as_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let amd64 = export_into(dir.path(), "amd64");
        let arm64 = export_into(dir.path(), "arm64");
        let before = blob_names(dir.path()).len();

        let merged = merge_local_cache(dir.path(), &[amd64, arm64]).unwrap();
        assert_eq!(merged.media_type, media_type::OCI_MANIFEST);
        let names = blob_names(dir.path());
        assert_eq!(
            names.len(),
            before + 2,
            "config and manifest, no temporary file"
        );
        assert!(
            names
                .iter()
                .all(|n| validate_digest(&format!("sha256:{n}")).is_ok())
        );

        let manifest = read_blob(&blobs_of(dir.path()), &merged).unwrap();
        let config = cache_config_descriptor(&manifest).unwrap();
        let config: Value =
            serde_json::from_slice(&read_blob(&blobs_of(dir.path()), &config).unwrap()).unwrap();
        let digests: Vec<&str> = config["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            ["sha256:from", "sha256:run-amd64", "sha256:run-arm64"]
        );
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let path = blobs_of(dir.path()).join(&merged.digest["sha256:".len()..]);
            assert_eq!(
                fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
        // Merging again finds the blobs there and gives the same descriptor.
        let again = merge_local_cache(
            dir.path(),
            &[
                export_into(dir.path(), "amd64"),
                export_into(dir.path(), "arm64"),
            ],
        )
        .unwrap();
        assert_eq!(again, merged);
    }

    #[test]
    fn one_manifest_is_returned_without_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let only = export_into(dir.path(), "amd64");
        let before = blob_names(dir.path());
        assert_eq!(
            merge_local_cache(dir.path(), &[only.clone(), only.clone()]).unwrap(),
            only
        );
        assert_eq!(blob_names(dir.path()), before);
        assert!(matches!(
            merge_local_cache(dir.path(), &[]),
            Err(CacheError::NoManifests)
        ));
    }

    #[test]
    fn bad_digests_and_corrupt_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = export_into(dir.path(), "amd64");
        let mut escape = good.clone();
        escape.digest = "sha256:../../../etc/passwd".into();
        assert!(matches!(
            merge_local_cache(dir.path(), &[good.clone(), escape]),
            Err(CacheError::Exporter(Error::InvalidDescriptor { .. }))
        ));

        let other = export_into(dir.path(), "arm64");
        fs::write(
            blobs_of(dir.path()).join(&other.digest["sha256:".len()..]),
            b"tampered",
        )
        .unwrap();
        assert!(matches!(
            merge_local_cache(dir.path(), &[good.clone(), other]),
            Err(CacheError::Exporter(Error::DigestMismatch { .. }))
        ));

        let missing = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"not stored");
        assert!(matches!(
            merge_local_cache(dir.path(), &[good, missing]),
            Err(CacheError::Exporter(Error::Io { .. }))
        ));
    }

    #[test]
    fn put_tag_writes_what_buildkit_writes() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"m");
        put_tag(dir.path(), &manifest, "latest").unwrap();
        assert_eq!(
            fs::read(dir.path().join(LAYOUT_FILE)).unwrap(),
            LAYOUT_FILE_CONTENT
        );
        assert_eq!(
            String::from_utf8(fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap(),
            format!(
                concat!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#,
                    r#""manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                    r#""digest":"{}","size":1,"#,
                    r#""annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
                ),
                manifest.digest
            )
        );
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "the lock file is removed"
        );

        let found = read_tag(dir.path(), "latest").unwrap().unwrap();
        assert_eq!(found.digest, manifest.digest);
        assert_eq!(found.annotations[annotation::REF_NAME], "latest");
        assert!(read_tag(dir.path(), "other").unwrap().is_none());
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "readers remove it too"
        );
    }

    #[test]
    fn put_tag_replaces_only_the_same_tag_without_an_image_name() {
        let dir = tempfile::tempdir().unwrap();
        let named = Descriptor::of_bytes(media_type::OCI_INDEX, b"named");
        let old = Descriptor::of_bytes(media_type::OCI_INDEX, b"old");
        let other = Descriptor::of_bytes(media_type::OCI_INDEX, b"other");
        let new = Descriptor::of_bytes(media_type::OCI_INDEX, b"new");
        // What an image export by name leaves (both annotations), next to tags.
        let mut index = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": media_type::OCI_INDEX, "digest": named.digest, "size": 5,
             "annotations": {"io.containerd.image.name": "docker.io/library/app:latest",
                             "org.opencontainers.image.ref.name": "latest"}},
        ], "annotations": {"kept": "yes"}});
        fs::write(
            dir.path().join(INDEX_FILE),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        put_tag(dir.path(), &old, "latest").unwrap();
        put_tag(dir.path(), &other, "v1").unwrap();
        put_tag(dir.path(), &new, "latest").unwrap();

        index = serde_json::from_slice(&fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
        let digests: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, [&named.digest, &other.digest, &new.digest]);
        assert_eq!(
            index["mediaType"],
            media_type::OCI_INDEX,
            "defaults filled in"
        );
        assert_eq!(index["annotations"]["kept"], "yes");

        // The image name matches before the ref name, then the first ref name wins, as in
        // StoreIndex.Get: the named entry also carries ref name `latest`, and comes first.
        assert_eq!(
            read_tag(dir.path(), "latest").unwrap().unwrap().digest,
            named.digest
        );
        assert_eq!(
            read_tag(dir.path(), "v1").unwrap().unwrap().digest,
            other.digest
        );
        assert_eq!(
            read_tag(dir.path(), "docker.io/library/app:latest")
                .unwrap()
                .unwrap()
                .digest,
            named.digest
        );
    }

    #[test]
    fn read_tag_without_an_index_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_tag(dir.path(), "latest").unwrap().is_none());
        assert!(
            read_tag(&dir.path().join("missing"), "latest")
                .unwrap()
                .is_none()
        );
        assert!(!dir.path().join(LOCK_FILE).exists());
        fs::write(dir.path().join(INDEX_FILE), b"{").unwrap();
        assert!(matches!(
            read_tag(dir.path(), "latest"),
            Err(CacheError::Exporter(Error::Json { .. }))
        ));
        assert!(put_tag(dir.path(), &Descriptor::of_bytes("x", b"x"), "latest").is_err());
    }

    #[test]
    fn concurrent_writers_keep_every_tag_and_readers_never_see_half_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let writers = 4;
        let rounds = 25;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    // Parses, or finds nothing yet; never an error.
                    read_tag(dir.path(), "tag-0").unwrap();
                    reads += 1;
                }
                reads
            });
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let dir = dir.path();
                    scope.spawn(move || {
                        for round in 0..rounds {
                            let d = Descriptor::of_bytes(
                                media_type::OCI_MANIFEST,
                                format!("{w}-{round}").as_bytes(),
                            );
                            put_tag(dir, &d, &format!("tag-{w}")).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        let index: Value =
            serde_json::from_slice(&fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), writers);
        for w in 0..writers {
            let last = Descriptor::of_bytes(
                media_type::OCI_MANIFEST,
                format!("{w}-{}", rounds - 1).as_bytes(),
            );
            assert_eq!(
                read_tag(dir.path(), &format!("tag-{w}"))
                    .unwrap()
                    .unwrap()
                    .digest,
                last.digest
            );
        }
        assert!(!dir.path().join(LOCK_FILE).exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
