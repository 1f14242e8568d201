//! OCI content descriptors, image indexes and manifests: the JSON objects this crate reads and
//! writes, with field order and omission rules matching Go's `image-spec` types so that what
//! brix writes reads like what buildx and BuildKit write.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Media types this crate knows.
pub mod media_type {
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker schema 2 manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 2 image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker schema 1 manifest, which cannot go into an index.
    pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker schema 1 signed manifest.
    pub const DOCKER_MANIFEST_V1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// Every index and manifest type, for the registry's `Accept` header.
    pub const ALL_MANIFESTS: &[&str] = &[
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
    ];

    /// True for OCI indexes and Docker manifest lists.
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }

    /// True for OCI and Docker schema 2 image manifests.
    pub fn is_manifest(media_type: &str) -> bool {
        media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
    }
}

/// Annotation keys BuildKit and buildx put on index entries.
pub mod annotation {
    /// `attestation-manifest` on an attestation entry.
    pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
    /// The digest of the image an attestation entry attests.
    pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
    /// The value of [`REFERENCE_TYPE`] for attestations.
    pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
    /// The image name of an entry of an OCI layout's `index.json`.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// containerd's image name annotation, which BuildKit also writes into `index.json`.
    pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
}

/// The platform an image runs on: brix-config's shared type, which serializes as the OCI
/// platform object (`{"architecture":"arm64","os":"linux"}`) and displays as `linux/arm64`.
pub use brix_config::Platform;

/// `unknown/unknown`, the platform BuildKit gives attestation manifests.
pub fn unknown_platform() -> Platform {
    Platform::new("unknown", "unknown", "")
}

/// An OCI content descriptor: what a manifest, index or blob is, where to find it, and how big.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content. Docker-era JSON may omit it.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` digest of the referenced bytes.
    pub digest: String,
    /// Size of the referenced bytes.
    pub size: u64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform of the image (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type (artifacts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with the given media type.
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// True for the `unknown/unknown` attestation entries BuildKit adds when provenance or SBOMs
    /// are on.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get(annotation::REFERENCE_TYPE)
            .map(String::as_str)
            == Some(annotation::ATTESTATION_MANIFEST)
    }

    /// The image an attestation entry attests.
    pub fn attestation_subject(&self) -> Option<&str> {
        if self.is_attestation() {
            self.annotations
                .get(annotation::REFERENCE_DIGEST)
                .map(String::as_str)
        } else {
            None
        }
    }

    /// Decodes the `containerimage.descriptor` value of a BuildKit solve response: base64 of
    /// the JSON descriptor of the exported manifest or index.
    pub fn from_solve_response(value: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidDescriptor {
            what: "containerimage.descriptor from the solve response".into(),
            reason,
        };
        let json = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let descriptor: Descriptor = serde_json::from_slice(&json)
            .map_err(|e| bad(format!("not a JSON descriptor: {e}")))?;
        validate_digest(&descriptor.digest)?;
        Ok(descriptor)
    }
}

/// An OCI image index (or Docker manifest list: the JSON is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` or the Docker manifest list type; may be
    /// absent in an OCI layout's `index.json`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The manifests (or nested indexes) this index points at.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An empty index with the given media type.
    pub fn new(media_type: impl Into<String>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: media_type.into(),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Serializes as BuildKit does: two-space indented JSON.
    pub fn to_json(&self) -> Vec<u8> {
        to_pretty_json(self)
    }
}

/// An OCI image manifest (or Docker schema 2 manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type; may be absent in OCI manifests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform fields of an image config, enough to fill in a manifest's platform.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfigPlatform {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: String,
    /// OS version.
    #[serde(rename = "os.version", default)]
    pub os_version: String,
}

impl ImageConfigPlatform {
    /// Reads the platform from image config JSON.
    pub fn from_config_json(what: &str, bytes: &[u8]) -> Result<Platform> {
        let config: ImageConfigPlatform =
            serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
        if config.os.is_empty() || config.architecture.is_empty() {
            return Err(Error::InvalidDescriptor {
                what: what.to_owned(),
                reason: "image config has no os or architecture".into(),
            });
        }
        let mut platform = Platform::new(&config.os, &config.architecture, &config.variant);
        platform.os_version = Some(config.os_version).filter(|v| !v.is_empty());
        Ok(platform)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Checks that `digest` is `sha256:` followed by 64 lower-case hex digits.
///
/// Digests become file names in OCI layouts, so anything else (other algorithms, `..`) is
/// refused rather than trusted.
pub fn validate_digest(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::InvalidDescriptor {
            what: format!("digest {digest:?}"),
            reason: "only sha256 digests are supported".into(),
        })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::InvalidDescriptor {
            what: format!("digest {digest:?}"),
            reason: "expected sha256: and 64 lower-case hex digits".into(),
        });
    }
    Ok(hex)
}

/// Guesses the media type of manifest JSON that does not say it, as buildx does: a `config`
/// means a Docker schema 2 manifest, `fsLayers` schema 1, anything else a manifest list.
pub fn detect_media_type(bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: String,
        config: Option<serde_json::Value>,
        fs_layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Error::json("manifest", e))?;
    Ok(if !probe.media_type.is_empty() {
        probe.media_type
    } else if probe.config.is_some() {
        media_type::DOCKER_MANIFEST.to_owned()
    } else if probe.fs_layers.is_some() {
        media_type::DOCKER_MANIFEST_V1.to_owned()
    } else {
        media_type::DOCKER_MANIFEST_LIST.to_owned()
    })
}

pub(crate) fn to_pretty_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn descriptor_from_solve_response_decodes_base64_json() {
        let json = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:f06f489175ea9c83f945b5dc0e04f2123fc9d06727aef66a79264b9dc308ff73","size":1607}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        let d = Descriptor::from_solve_response(&b64).unwrap();
        assert_eq!(d.media_type, media_type::OCI_INDEX);
        assert_eq!(d.size, 1607);
        assert!(Descriptor::from_solve_response("not base64!").is_err());
    }

    #[test]
    fn validate_digest_refuses_paths_and_other_algorithms() {
        assert!(validate_digest(&sha256_digest(b"x")).is_ok());
        assert!(validate_digest("sha512:abcd").is_err());
        assert!(validate_digest("sha256:../../etc/passwd").is_err());
        assert!(validate_digest(&sha256_digest(b"x").to_uppercase()).is_err());
    }

    #[test]
    fn descriptor_json_field_order_matches_image_spec() {
        let mut d = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"{}");
        d.platform = Some(unknown_platform());
        d.annotations.insert("k".into(), "v".into());
        let json = String::from_utf8(serde_json::to_vec(&d).unwrap()).unwrap();
        let order: Vec<usize> = ["mediaType", "digest", "size", "annotations", "platform"]
            .iter()
            .map(|k| json.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn media_type_is_detected_like_buildx() {
        assert_eq!(
            detect_media_type(br#"{"config":{}}"#).unwrap(),
            media_type::DOCKER_MANIFEST
        );
        assert_eq!(
            detect_media_type(br#"{"manifests":[]}"#).unwrap(),
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            detect_media_type(br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#)
                .unwrap(),
            media_type::OCI_INDEX
        );
    }
}
