//! BuildKit cache exports (`--cache-to type=registry` and `type=local`) merged across the
//! per-platform solves of one build.
//!
//! # Why merge
//!
//! brix builds each platform of a multi-platform build in its own solve, possibly on different
//! nodes. With `--cache-to type=registry,ref=R` (or `type=local,dest=DIR`) every solve exports
//! its own cache manifest under the same name, so whichever finishes last would win and the
//! other platforms' cache records would be lost (buildx has this bug on multi-node builders).
//! Instead, each solve exports, the daemon returns the descriptor of the manifest it wrote
//! (`ExporterResponse["cache.manifest"]`, see [`descriptor_from_exporter_response`]), and
//! brix merges those manifests into one, which it publishes under `R`
//! ([`Registry::merge_cache`](crate::Registry::merge_cache)) or tags in `DIR`'s `index.json`
//! ([`local::merge_local_cache`], then [`local::put_tag`]). BuildKit, buildx and buildctl read
//! the result as any cache they exported themselves.
//!
//! # The format
//!
//! A cache manifest is either an index (OCI index, or Docker manifest list when
//! `oci-mediatypes=false`) whose entries are the layer blobs plus one descriptor of media type
//! [`CACHE_CONFIG_MEDIA_TYPE`], or (`image-manifest=true`) an OCI image manifest whose `config`
//! is that descriptor and whose `layers` are the blobs. The cache config lists `layers`
//! (`{"blob", "parent", "annotations"}`, `parent` an index into `layers`, `-1` for none) and
//! `records` (`{"digest", "layers": [{"layer"}], "chains": [{"layers": [..]}], "inputs":
//! [[{"selector", "link"}]]}`, `layer` an index into `layers`, `link` into `records`). As in
//! Go's `encoding/json` with `omitempty`, an absent index is 0.
//!
//! # What the merge does
//!
//! [`merge::merge_cache_exports`] renumbers every input's layers and records into one list:
//! - a layer is identified by its blob and its (renumbered) parent, so a base layer shared by
//!   the platforms appears once, while the same blob on different parents stays two layers;
//! - a record is identified by its digest and its (renumbered) inputs, so a record shared by
//!   the platforms (a context copy, a common base) appears once, with the union of the results
//!   and chains each input had for it;
//! - every index (`parent`, a result's `layer`, a chain's `layers`, an input's `link`) is
//!   rewritten, and one that points outside its list is an error, never a panic;
//! - fields brix does not know are carried over untouched.
//!
//! The merged manifest has the first input's form and media type, its layer descriptors (with
//! their annotations) in the first input's order followed by the new ones, each digest once.
//! Layer blobs are never copied: each solve has already put its own where the cache goes.
//! The same inputs always give the same bytes.

use serde::Deserialize as _;

use crate::descriptor::{Descriptor, validate_digest};

mod json;
pub mod local;
pub mod merge;
mod registry;

pub use local::{merge_local_cache, put_tag, read_tag};
pub use merge::{CacheExport, MergedCache, cache_config_descriptor, merge_cache_exports};

/// Media type of BuildKit's cache config blob (`cacheimporttypes.CacheConfigMediaTypeV0`).
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";

/// The key of a solve's exporter response that holds the exported cache manifest's descriptor.
pub const EXPORTER_RESPONSE_KEY: &str = "cache.manifest";

/// Everything that can go wrong while merging cache exports.
///
/// `manifest` fields name the cache manifest at fault by its digest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// There was nothing to merge.
    #[error("no cache manifests to merge: the solves returned no cache.manifest")]
    NoManifests,
    /// A manifest or cache config is not the JSON it should be.
    #[error("cache manifest {manifest}: cannot parse its {what}: {source}")]
    Json {
        /// The cache manifest's digest.
        manifest: String,
        /// What did not parse: `manifest` or `cache config`.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest has no cache config: it is an image, an inline cache, or something else.
    #[error("{manifest} is not a BuildKit cache manifest: {reason}")]
    NotCacheManifest {
        /// The manifest's digest.
        manifest: String,
        /// What is missing.
        reason: String,
    },
    /// The cache config given with a manifest is not the one the manifest names.
    #[error("cache manifest {manifest} names cache config {expected}, but was given {actual}")]
    ConfigMismatch {
        /// The manifest's digest.
        manifest: String,
        /// The config digest the manifest names.
        expected: String,
        /// The digest of the config bytes given.
        actual: String,
    },
    /// A cache config refers to a layer or record that it does not have.
    #[error(
        "cache manifest {manifest}: {location} is {index}, but the cache config has {len} {list}"
    )]
    IndexOutOfRange {
        /// The manifest's digest.
        manifest: String,
        /// Where the index is, e.g. `records[3].inputs[0][1].link`.
        location: String,
        /// The index found there.
        index: i64,
        /// How many entries the list it points into has.
        len: usize,
        /// Which list: `layers` or `records`.
        list: &'static str,
    },
    /// A layer's parents or a record's inputs lead back to itself.
    #[error("cache manifest {manifest}: {list}[{index}] depends on itself")]
    Loop {
        /// The manifest's digest.
        manifest: String,
        /// `layers` or `records`.
        list: &'static str,
        /// The entry's index in its input's list.
        index: usize,
    },
    /// Reading or writing a blob, `index.json` or the registry failed, or a digest is invalid.
    #[error(transparent)]
    Exporter(#[from] crate::Error),
}

/// Decodes a solve's `cache.manifest` exporter response: the JSON descriptor of the cache
/// manifest the solve exported (plain JSON, unlike `containerimage.descriptor`, which is
/// base64). The digest is checked, since it becomes a file name for local caches.
pub fn descriptor_from_exporter_response(value: &str) -> Result<Descriptor, CacheError> {
    let descriptor: Descriptor = serde_json::from_str(value.trim()).map_err(|e| {
        crate::Error::json(
            format!("{EXPORTER_RESPONSE_KEY} from the solve response"),
            e,
        )
    })?;
    validate_digest(&descriptor.digest)?;
    Ok(descriptor)
}

/// The manifests to merge, each digest once (two solves that exported the same cache give one
/// manifest), in the order given; every digest is validated first.
fn distinct_manifests(manifests: &[Descriptor]) -> Result<Vec<&Descriptor>, CacheError> {
    let mut distinct: Vec<&Descriptor> = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        validate_digest(&manifest.digest)?;
        if !distinct.iter().any(|d| d.digest == manifest.digest) {
            distinct.push(manifest);
        }
    }
    Ok(distinct)
}

/// Deserializes `null` as the type's default, as Go's `encoding/json` leaves a field untouched
/// when it reads `null`.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::descriptor::sha256_digest;

    #[test]
    fn exporter_response_is_plain_json_with_a_valid_digest() {
        let digest = sha256_digest(b"m");
        let json = format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":1}}"#
        );
        let d = descriptor_from_exporter_response(&json).unwrap();
        assert_eq!(d.digest, digest);
        let bad = r#"{"mediaType":"x","digest":"sha256:../../etc","size":1}"#;
        assert!(matches!(
            descriptor_from_exporter_response(bad),
            Err(CacheError::Exporter(crate::Error::InvalidDescriptor { .. }))
        ));
        assert!(descriptor_from_exporter_response("not json").is_err());
    }

    #[test]
    fn distinct_manifests_keep_the_first_of_each_digest() {
        let a = Descriptor::of_bytes("x", b"a");
        let b = Descriptor::of_bytes("x", b"b");
        let list = [a.clone(), b.clone(), a.clone()];
        let distinct = distinct_manifests(&list).unwrap();
        assert_eq!(distinct, vec![&a, &b]);
        let mut bad = a;
        bad.digest = "sha256:ABC".into();
        assert!(distinct_manifests(&[bad]).is_err());
    }
}
