//! Assembling an OCI image index from per-platform manifest descriptors.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use crate::descriptor::{
    Descriptor, ImageIndex, Platform, media_type, unknown_platform, validate_digest,
};
use crate::error::{Error, Result};

/// An image index ready to push or to write into a layout: its exact bytes and their
/// descriptor. The digest is the sha256 of exactly these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledIndex {
    /// The serialized index, byte for byte what is pushed or stored.
    pub bytes: Vec<u8>,
    /// Media type, digest and size of `bytes`.
    pub descriptor: Descriptor,
    /// The parsed index (the entries in their final order).
    pub index: ImageIndex,
}

impl AssembledIndex {
    /// The index's `sha256:` digest.
    pub fn digest(&self) -> &str {
        &self.descriptor.digest
    }

    /// An already serialized index (read from a registry or a layout), kept byte for byte.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| Error::json("image index", e))?;
        let media_type = if index.media_type.is_empty() {
            media_type::OCI_INDEX.to_owned()
        } else {
            index.media_type.clone()
        };
        let descriptor = Descriptor::of_bytes(media_type, &bytes);
        Ok(AssembledIndex {
            bytes,
            descriptor,
            index,
        })
    }

    /// The `--metadata-file` entries buildx writes for a pushed index:
    /// `containerimage.digest` and `containerimage.descriptor` (the descriptor as a JSON
    /// object, not base64, with its annotations if it has any).
    pub fn metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(
            "containerimage.digest".into(),
            json!(self.descriptor.digest),
        );
        let mut descriptor = json!({
            "mediaType": self.descriptor.media_type,
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
        });
        if !self.descriptor.annotations.is_empty() {
            descriptor["annotations"] = json!(self.descriptor.annotations);
        }
        map.insert("containerimage.descriptor".into(), descriptor);
        map
    }
}

/// Assembles one image index from image manifests and attestation manifests.
///
/// Every descriptor must be an image manifest (expand nested indexes first: the registry and
/// layout readers do that) and carry a platform. Attestation manifests (annotated
/// `vnd.docker.reference.type: attestation-manifest`) get `unknown/unknown` and must point at
/// an image in the set. The same digest given twice is kept once, its annotations merged.
///
/// Order is stable and independent of how the inputs were interleaved: images in the order
/// given, then attestations in the order of the images they attest — the layout BuildKit
/// itself produces for a multi-platform push. The index is an OCI index unless one of the
/// images is a Docker schema 2 manifest, in which case it is a Docker manifest list (as buildx
/// does, since Docker-era clients expect the two not to mix).
pub fn assemble_index(descriptors: &[Descriptor]) -> Result<AssembledIndex> {
    assemble_index_with_annotations(descriptors, BTreeMap::new())
}

/// How an assembled index orders its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexOrder {
    /// Images in the order given, then attestations in the order of the images they attest:
    /// what BuildKit itself writes for a multi-platform push.
    #[default]
    ImagesThenAttestations,
    /// Exactly the order given (each source's entries as they were): what buildx's
    /// `imagetools create` writes.
    AsGiven,
}

/// [`assemble_index`] with index-level annotations.
pub fn assemble_index_with_annotations(
    descriptors: &[Descriptor],
    annotations: BTreeMap<String, String>,
) -> Result<AssembledIndex> {
    assemble_index_ordered(descriptors, annotations, IndexOrder::default())
}

/// [`assemble_index_with_annotations`] with the entries ordered as `order` says.
pub fn assemble_index_ordered(
    descriptors: &[Descriptor],
    annotations: BTreeMap<String, String>,
    order: IndexOrder,
) -> Result<AssembledIndex> {
    if descriptors.is_empty() {
        return Err(Error::EmptyIndex);
    }
    let mut merged: Vec<Descriptor> = Vec::with_capacity(descriptors.len());
    let mut position: HashMap<&str, usize> = HashMap::new();
    for descriptor in descriptors {
        validate_digest(&descriptor.digest)?;
        if media_type::is_index(&descriptor.media_type) {
            return Err(Error::InvalidDescriptor {
                what: descriptor.digest.clone(),
                reason: "is an index: expand it into its manifests before assembling".into(),
            });
        }
        if !media_type::is_manifest(&descriptor.media_type) {
            return Err(Error::InvalidDescriptor {
                what: descriptor.digest.clone(),
                reason: format!(
                    "media type {:?} cannot go into an image index",
                    descriptor.media_type
                ),
            });
        }
        match position.get(descriptor.digest.as_str()) {
            Some(&i) => {
                let existing = &mut merged[i];
                if existing.size != descriptor.size {
                    return Err(Error::InvalidDescriptor {
                        what: descriptor.digest.clone(),
                        reason: format!(
                            "given with sizes {} and {}",
                            existing.size, descriptor.size
                        ),
                    });
                }
                if descriptor.platform.is_some() {
                    existing.platform = descriptor.platform.clone();
                }
                existing.annotations.extend(descriptor.annotations.clone());
            }
            None => {
                position.insert(&descriptor.digest, merged.len());
                merged.push(descriptor.clone());
            }
        }
    }

    let given = merged.clone();
    let (attestations, images): (Vec<Descriptor>, Vec<Descriptor>) =
        merged.into_iter().partition(Descriptor::is_attestation);

    let mut by_platform: HashMap<Platform, &str> = HashMap::new();
    for image in &images {
        let platform = image
            .platform
            .as_ref()
            .ok_or_else(|| Error::MissingPlatform {
                digest: image.digest.clone(),
            })?;
        if let Some(first) = by_platform.insert(platform.clone(), &image.digest) {
            return Err(Error::DuplicatePlatform {
                platform: platform.to_string(),
                first: first.to_owned(),
                second: image.digest.clone(),
            });
        }
    }

    let entries = match order {
        IndexOrder::ImagesThenAttestations => {
            let mut entries = images.clone();
            for image in &images {
                for attestation in &attestations {
                    if attestation.attestation_subject() == Some(image.digest.as_str()) {
                        let mut attestation = attestation.clone();
                        attestation.platform = Some(unknown_platform());
                        entries.push(attestation);
                    }
                }
            }
            entries
        }
        IndexOrder::AsGiven => given
            .into_iter()
            .map(|mut d| {
                if d.is_attestation() {
                    d.platform = Some(unknown_platform());
                }
                d
            })
            .collect(),
    };
    if let Some(dangling) = attestations.iter().find(|a| {
        !images
            .iter()
            .any(|i| Some(i.digest.as_str()) == a.attestation_subject())
    }) {
        return Err(Error::DanglingAttestation {
            digest: dangling.digest.clone(),
            subject: dangling
                .attestation_subject()
                .unwrap_or("nothing")
                .to_owned(),
        });
    }

    let index_media_type = if images
        .iter()
        .any(|i| i.media_type == media_type::DOCKER_MANIFEST)
    {
        media_type::DOCKER_MANIFEST_LIST
    } else {
        media_type::OCI_INDEX
    };
    let mut index = ImageIndex::new(index_media_type);
    index.manifests = entries;
    index.annotations = annotations;
    let bytes = index.to_json();
    let descriptor = Descriptor::of_bytes(index_media_type, &bytes);
    Ok(AssembledIndex {
        bytes,
        descriptor,
        index,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::descriptor::{annotation, sha256_digest};

    fn image(n: u8, platform: &str) -> Descriptor {
        let mut d = Descriptor::of_bytes(media_type::OCI_MANIFEST, &[n; 10]);
        d.platform = Some(platform.parse().unwrap());
        d
    }

    fn attestation(n: u8, subject: &Descriptor) -> Descriptor {
        let mut d = Descriptor::of_bytes(media_type::OCI_MANIFEST, &[n; 20]);
        d.annotations.insert(
            annotation::REFERENCE_TYPE.into(),
            annotation::ATTESTATION_MANIFEST.into(),
        );
        d.annotations
            .insert(annotation::REFERENCE_DIGEST.into(), subject.digest.clone());
        d
    }

    #[test]
    fn the_two_orders_are_buildkit_s_and_imagetools_create_s() {
        let (amd, arm) = (image(1, "linux/amd64"), image(2, "linux/arm64"));
        let (att_amd, att_arm) = (attestation(3, &amd), attestation(4, &arm));
        let given = [amd.clone(), att_amd.clone(), arm.clone(), att_arm.clone()];
        let digests = |order| {
            assemble_index_ordered(&given, BTreeMap::new(), order)
                .unwrap()
                .index
                .manifests
                .iter()
                .map(|d| d.digest.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            digests(IndexOrder::ImagesThenAttestations),
            [&amd.digest, &arm.digest, &att_amd.digest, &att_arm.digest].map(String::clone)
        );
        assert_eq!(
            digests(IndexOrder::AsGiven),
            [&amd.digest, &att_amd.digest, &arm.digest, &att_arm.digest].map(String::clone)
        );
    }

    #[test]
    fn every_entry_has_a_platform_and_the_digest_is_of_the_exact_bytes() {
        let amd = image(1, "linux/amd64");
        let arm = image(2, "linux/arm64");
        let out = assemble_index(&[amd.clone(), arm.clone()]).unwrap();
        assert_eq!(out.descriptor.digest, sha256_digest(&out.bytes));
        assert_eq!(out.descriptor.size, out.bytes.len() as u64);
        assert_eq!(out.descriptor.media_type, media_type::OCI_INDEX);
        let parsed: ImageIndex = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(parsed.media_type, media_type::OCI_INDEX);
        assert_eq!(parsed.schema_version, 2);
        assert_eq!(parsed.manifests, vec![amd, arm]);
        assert!(parsed.manifests.iter().all(|m| m.platform.is_some()));
    }

    #[test]
    fn attestations_follow_the_images_in_image_order_whatever_the_input_order() {
        let amd = image(1, "linux/amd64");
        let arm = image(2, "linux/arm64");
        let att_amd = attestation(3, &amd);
        let att_arm = attestation(4, &arm);
        let a =
            assemble_index(&[amd.clone(), att_amd.clone(), arm.clone(), att_arm.clone()]).unwrap();
        let b =
            assemble_index(&[att_arm.clone(), amd.clone(), att_amd.clone(), arm.clone()]).unwrap();
        assert_eq!(a.bytes, b.bytes, "same set, same order, same digest");
        let digests: Vec<&str> = a
            .index
            .manifests
            .iter()
            .map(|m| m.digest.as_str())
            .collect();
        assert_eq!(
            digests,
            [&amd.digest, &arm.digest, &att_amd.digest, &att_arm.digest].map(String::clone)
        );
        let att = &a.index.manifests[2];
        assert_eq!(att.platform, Some(unknown_platform()));
        assert_eq!(att.annotations[annotation::REFERENCE_DIGEST], amd.digest);
    }

    #[test]
    fn no_attestations_means_none_in_the_index() {
        let out = assemble_index(&[image(1, "linux/amd64"), image(2, "linux/arm64")]).unwrap();
        assert!(out.index.manifests.iter().all(|m| !m.is_attestation()));
        assert!(!String::from_utf8(out.bytes).unwrap().contains("unknown"));
    }

    #[test]
    fn refuses_what_cannot_go_into_an_index() {
        let mut no_platform = image(1, "linux/amd64");
        no_platform.platform = None;
        assert!(matches!(
            assemble_index(&[no_platform]),
            Err(Error::MissingPlatform { .. })
        ));
        assert!(matches!(
            assemble_index(&[image(1, "linux/amd64"), image(2, "linux/amd64")]),
            Err(Error::DuplicatePlatform { .. })
        ));
        let orphan = attestation(3, &image(9, "linux/s390x"));
        assert!(matches!(
            assemble_index(&[image(1, "linux/amd64"), orphan]),
            Err(Error::DanglingAttestation { .. })
        ));
        let mut nested = image(1, "linux/amd64");
        nested.media_type = media_type::OCI_INDEX.into();
        assert!(assemble_index(&[nested]).is_err());
        assert!(matches!(assemble_index(&[]), Err(Error::EmptyIndex)));
    }

    #[test]
    fn duplicates_are_merged_and_docker_manifests_make_a_manifest_list() {
        let mut amd = image(1, "linux/amd64");
        amd.media_type = media_type::DOCKER_MANIFEST.into();
        let mut again = amd.clone();
        again.annotations.insert("org.example".into(), "x".into());
        let out = assemble_index(&[amd, again]).unwrap();
        assert_eq!(out.index.manifests.len(), 1);
        assert_eq!(out.index.manifests[0].annotations["org.example"], "x");
        assert_eq!(out.descriptor.media_type, media_type::DOCKER_MANIFEST_LIST);
    }

    #[test]
    fn metadata_matches_buildx_keys() {
        let out = assemble_index(&[image(1, "linux/amd64")]).unwrap();
        let meta = out.metadata();
        assert_eq!(
            meta["containerimage.digest"],
            out.descriptor.digest.as_str()
        );
        assert_eq!(meta["containerimage.descriptor"]["size"], out.bytes.len());
        assert_eq!(
            meta["containerimage.descriptor"]["mediaType"],
            media_type::OCI_INDEX
        );
        assert!(
            meta["containerimage.descriptor"]
                .get("annotations")
                .is_none()
        );
    }

    #[test]
    fn a_build_s_edits_annotate_the_images_the_index_and_its_descriptor() {
        let (amd, arm) = (image(1, "linux/amd64"), image(2, "linux/arm64"));
        let att = attestation(3, &amd);
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let edits = crate::IndexEdits {
            index_annotations: BTreeMap::from([("i".to_owned(), "1".to_owned())]),
            index_descriptor_annotations: BTreeMap::from([("d".to_owned(), "2".to_owned())]),
            descriptor_annotations: vec![(Some(arm64), "m".to_owned(), "3".to_owned())],
            ..Default::default()
        };
        let out = edits.assemble(vec![amd, att, arm]).unwrap();
        assert_eq!(out.index.annotations["i"], "1");
        let m: Vec<Option<&String>> = out
            .index
            .manifests
            .iter()
            .map(|d| d.annotations.get("m"))
            .collect();
        assert_eq!(m, [None, Some(&"3".to_owned()), None]);
        assert_eq!(out.descriptor.annotations["d"], "2");
        assert_eq!(
            out.metadata()["containerimage.descriptor"]["annotations"]["d"],
            "2"
        );
        // The descriptor's annotations are not in the index's bytes.
        assert!(!String::from_utf8_lossy(&out.bytes).contains("\"d\""));
    }
}
