//! Merging BuildKit cache exports: N (cache manifest, cache config) pairs in, one pair out.
//!
//! Pure functions on bytes; [`super::local`] and
//! [`Registry::merge_cache`](crate::Registry::merge_cache) do the reading and writing. The
//! documentation of [`super`] describes the format and what is deduplicated.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{OciDescriptor, to_go_json};
use super::{CACHE_CONFIG_MEDIA_TYPE, CacheError, nullable};
use crate::descriptor::{Descriptor, media_type, sha256_digest};

/// One solve's cache export: the exact bytes of its cache manifest and of the cache config
/// that manifest names.
#[derive(Debug, Clone, Copy)]
pub struct CacheExport<'a> {
    /// The cache manifest (an index, or an OCI image manifest with `image-manifest=true`).
    pub manifest: &'a [u8],
    /// The `application/vnd.buildkit.cacheconfig.v0` blob the manifest names.
    pub config: &'a [u8],
}

/// The merged cache: a new cache config, and a manifest that names it and every layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedCache {
    /// The manifest's exact bytes, to push or store as they are.
    pub manifest: Vec<u8>,
    /// The manifest's media type (the first input's), digest and size.
    pub manifest_descriptor: Descriptor,
    /// The cache config's exact bytes.
    pub config: Vec<u8>,
    /// The cache config's descriptor, as the manifest names it.
    pub config_descriptor: Descriptor,
}

/// Merges cache exports into one that holds every input's layers and records.
///
/// The result has the form and media type of the first input (an index, or an OCI image
/// manifest); layers are one per blob and parent, records one per digest and inputs (their
/// results and chains unioned); the manifest lists the first input's layer descriptors in its
/// order, then the new ones, each digest once. One input is returned as it is, byte for byte.
/// The same inputs always give the same bytes.
///
/// Errors: no input ([`CacheError::NoManifests`]), a manifest without a cache config, a
/// config that is not the one its manifest names, JSON that does not parse, an index out of
/// range or a loop in a config.
pub fn merge_cache_exports(exports: &[CacheExport<'_>]) -> Result<MergedCache, CacheError> {
    let parsed = exports
        .iter()
        .map(|export| {
            let manifest = ParsedManifest::parse(export.manifest)?;
            let actual = sha256_digest(export.config);
            if actual != manifest.config.digest {
                return Err(CacheError::ConfigMismatch {
                    manifest: manifest.digest.clone(),
                    expected: manifest.config.digest.clone(),
                    actual,
                });
            }
            Ok(manifest)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (first, first_export) = match (parsed.first(), exports.first()) {
        (Some(first), Some(export)) => (first, export),
        _ => return Err(CacheError::NoManifests),
    };
    if exports.len() == 1 {
        return Ok(MergedCache {
            manifest: first_export.manifest.to_vec(),
            manifest_descriptor: Descriptor::of_bytes(first.media_type(), first_export.manifest),
            config: first_export.config.to_vec(),
            config_descriptor: first.config.to_descriptor(),
        });
    }

    let mut merger = ConfigMerger::default();
    let mut blobs: Vec<OciDescriptor> = Vec::new();
    let mut listed: HashSet<String> = HashSet::new();
    for (export, manifest) in exports.iter().zip(&parsed) {
        let config: CacheConfig =
            serde_json::from_slice(export.config).map_err(|source| CacheError::Json {
                manifest: manifest.digest.clone(),
                what: "cache config",
                source,
            })?;
        merger.add(&manifest.digest, config)?;
        for blob in &manifest.layers {
            if listed.insert(blob.digest.clone()) {
                blobs.push(blob.clone());
            }
        }
    }

    let config = to_go_json("the merged cache config", &merger.finish())?;
    let config_descriptor = OciDescriptor::of_bytes(CACHE_CONFIG_MEDIA_TYPE, &config);
    let mut document = first.document.clone();
    match first.form {
        // BuildKit lists the layers, then the config.
        Form::Index => {
            blobs.push(config_descriptor.clone());
            document.manifests = Some(blobs);
        }
        Form::ImageManifest => {
            document.config = Some(config_descriptor.clone());
            document.layers = Some(blobs);
        }
    }
    let manifest = to_go_json("the merged cache manifest", &document)?;
    Ok(MergedCache {
        manifest_descriptor: Descriptor::of_bytes(first.media_type(), &manifest),
        manifest,
        config_descriptor: config_descriptor.to_descriptor(),
        config,
    })
}

/// The descriptor of the cache config that a cache manifest names: what to fetch alongside
/// the manifest before merging.
pub fn cache_config_descriptor(manifest: &[u8]) -> Result<Descriptor, CacheError> {
    Ok(ParsedManifest::parse(manifest)?.config.to_descriptor())
}

/// Which of BuildKit's two cache manifest forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An OCI index or Docker manifest list: layers and the config are all `manifests`.
    Index,
    /// An OCI image manifest (`image-manifest=true`): `config` and `layers`.
    ImageManifest,
}

/// A cache manifest of either form, fields in Go's order (`ocispecs.Index` and
/// `ocispecs.Manifest` share `schemaVersion`, `mediaType`, `artifactType`, `subject`,
/// `annotations`), keeping any other field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheManifestDocument {
    #[serde(default, deserialize_with = "nullable")]
    schema_version: i64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<OciDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifests: Option<Vec<OciDescriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<OciDescriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A cache manifest taken apart.
struct ParsedManifest {
    /// Digest of the manifest's bytes, to name it in errors.
    digest: String,
    document: CacheManifestDocument,
    form: Form,
    config: OciDescriptor,
    /// The layer blobs, in the manifest's order.
    layers: Vec<OciDescriptor>,
}

impl ParsedManifest {
    /// Finds the config and layers as BuildKit's importer does: an image manifest whose config
    /// is a cache config, or an index whose entries include one (the last one wins).
    fn parse(bytes: &[u8]) -> Result<Self, CacheError> {
        let digest = sha256_digest(bytes);
        let document: CacheManifestDocument =
            serde_json::from_slice(bytes).map_err(|source| CacheError::Json {
                manifest: digest.clone(),
                what: "manifest",
                source,
            })?;
        let is_config = |d: &OciDescriptor| d.media_type == CACHE_CONFIG_MEDIA_TYPE;
        let (form, config, layers) = if let Some(config) = document.config.clone()
            && is_config(&config)
        {
            let layers = document.layers.clone().unwrap_or_default();
            (Form::ImageManifest, config, layers)
        } else if let Some(config) = document
            .manifests
            .iter()
            .flatten()
            .rev()
            .find(|d| is_config(d))
        {
            let layers = document
                .manifests
                .iter()
                .flatten()
                .filter(|d| !is_config(d))
                .cloned()
                .collect();
            (Form::Index, config.clone(), layers)
        } else {
            return Err(CacheError::NotCacheManifest {
                manifest: digest,
                reason: format!(
                    "neither its config nor any of its entries is a {CACHE_CONFIG_MEDIA_TYPE} \
                     (an image, or an inline cache?)"
                ),
            });
        };
        Ok(ParsedManifest {
            digest,
            document,
            form,
            config,
            layers,
        })
    }

    /// The manifest's own media type; BuildKit always writes one, Go's detection is the
    /// fallback.
    fn media_type(&self) -> &str {
        match (self.document.media_type.as_str(), self.form) {
            ("", Form::Index) => media_type::DOCKER_MANIFEST_LIST,
            ("", Form::ImageManifest) => media_type::OCI_MANIFEST,
            (declared, _) => declared,
        }
    }
}

/// BuildKit's `CacheConfig`, fields in Go's order, with anything unknown kept in `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheConfig {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    layers: Vec<CacheLayer>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    records: Vec<CacheRecord>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheLayer {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    blob: String,
    /// Index into `layers`; -1 for none. `omitempty` in Go, so 0 is written as nothing.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    parent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheRecord {
    #[serde(
        rename = "layers",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    results: Vec<CacheResult>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    chains: Vec<ChainedResult>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    digest: String,
    /// One slot per input of the operation; Go writes an empty slot as `null`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    inputs: Vec<Option<Vec<CacheInput>>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CacheResult {
    /// Index into `layers`: the top of the result's layer chain.
    #[serde(default, deserialize_with = "nullable")]
    layer: i64,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    created_at: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChainedResult {
    /// Indexes into `layers`, one per blob of the result. Go writes a nil list as `null`.
    #[serde(default)]
    layers: Option<Vec<i64>>,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    created_at: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheInput {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    selector: String,
    /// Index into `records`.
    #[serde(default, deserialize_with = "nullable")]
    link: i64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `index` as a position in a list of `len`, if it is one.
fn position(index: i64, len: usize) -> Option<usize> {
    usize::try_from(index).ok().filter(|&i| i < len)
}

/// A record's identity: its digest and, per input slot, the (selector, merged record) links.
type RecordKey = (String, Vec<Vec<(String, usize)>>);

/// Accumulates the merged config, one input at a time.
#[derive(Default)]
struct ConfigMerger {
    layers: Vec<CacheLayer>,
    layer_ids: HashMap<(String, Option<usize>), usize>,
    records: Vec<CacheRecord>,
    record_ids: HashMap<RecordKey, usize>,
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    InProgress,
    Done(usize),
}

impl ConfigMerger {
    fn add(&mut self, manifest: &str, config: CacheConfig) -> Result<(), CacheError> {
        let layers = self.add_layers(manifest, &config.layers)?;
        self.add_records(manifest, &config.records, &layers)?;
        for (key, value) in config.extra {
            self.extra.entry(key).or_insert(value);
        }
        Ok(())
    }

    fn finish(self) -> CacheConfig {
        CacheConfig {
            layers: self.layers,
            records: self.records,
            extra: self.extra,
        }
    }

    /// Adds an input's layers, parents before children; returns each one's merged index.
    fn add_layers(
        &mut self,
        manifest: &str,
        layers: &[CacheLayer],
    ) -> Result<Vec<usize>, CacheError> {
        let mut merged: Vec<Visit> = vec![Visit::New; layers.len()];
        for start in 0..layers.len() {
            if merged[start] != Visit::New {
                continue;
            }
            // Walk up to a layer already merged (or the root), then merge on the way down:
            // BuildKit sorts layers by blob, so a parent may come after its child.
            let mut path = Vec::new();
            let mut current = start;
            let mut parent = loop {
                if merged[current] == Visit::InProgress {
                    return Err(CacheError::Loop {
                        manifest: manifest.to_owned(),
                        list: "layers",
                        index: current,
                    });
                }
                merged[current] = Visit::InProgress;
                path.push(current);
                let index = layers[current].parent;
                if index == -1 {
                    break None;
                }
                let next =
                    position(index, layers.len()).ok_or_else(|| CacheError::IndexOutOfRange {
                        manifest: manifest.to_owned(),
                        location: format!("layers[{current}].parent"),
                        index,
                        len: layers.len(),
                        list: "layers",
                    })?;
                if let Visit::Done(id) = merged[next] {
                    break Some(id);
                }
                current = next;
            };
            for &i in path.iter().rev() {
                let id = self.intern_layer(&layers[i], parent);
                merged[i] = Visit::Done(id);
                parent = Some(id);
            }
        }
        Ok(merged
            .into_iter()
            .map(|v| match v {
                Visit::Done(id) => id,
                // Every layer is merged by the loop above.
                Visit::New | Visit::InProgress => 0,
            })
            .collect())
    }

    fn intern_layer(&mut self, layer: &CacheLayer, parent: Option<usize>) -> usize {
        let key = (layer.blob.clone(), parent);
        if let Some(&id) = self.layer_ids.get(&key) {
            return id;
        }
        let id = self.layers.len();
        self.layers.push(CacheLayer {
            blob: layer.blob.clone(),
            parent: parent.and_then(|p| i64::try_from(p).ok()).unwrap_or(-1),
            annotations: layer.annotations.clone(),
            extra: layer.extra.clone(),
        });
        self.layer_ids.insert(key, id);
        id
    }

    /// Adds an input's records, each after the records it links to (a depth-first walk with
    /// an explicit stack: build graphs can be deep).
    fn add_records(
        &mut self,
        manifest: &str,
        records: &[CacheRecord],
        layers: &[usize],
    ) -> Result<(), CacheError> {
        let mut merged: Vec<Visit> = vec![Visit::New; records.len()];
        for start in 0..records.len() {
            let mut stack = vec![(start, false)];
            while let Some((r, inputs_merged)) = stack.pop() {
                if inputs_merged {
                    let id = self.intern_record(manifest, r, &records[r], &merged, layers)?;
                    merged[r] = Visit::Done(id);
                    continue;
                }
                match merged[r] {
                    Visit::Done(_) => continue,
                    Visit::InProgress => {
                        return Err(CacheError::Loop {
                            manifest: manifest.to_owned(),
                            list: "records",
                            index: r,
                        });
                    }
                    Visit::New => merged[r] = Visit::InProgress,
                }
                stack.push((r, true));
                for (slot, inputs) in records[r].inputs.iter().enumerate() {
                    for (j, input) in inputs.iter().flatten().enumerate() {
                        let link = position(input.link, records.len()).ok_or_else(|| {
                            CacheError::IndexOutOfRange {
                                manifest: manifest.to_owned(),
                                location: format!("records[{r}].inputs[{slot}][{j}].link"),
                                index: input.link,
                                len: records.len(),
                                list: "records",
                            }
                        })?;
                        if !matches!(merged[link], Visit::Done(_)) {
                            stack.push((link, false));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds record `r` (whose inputs are all merged) or unions it into its twin.
    fn intern_record(
        &mut self,
        manifest: &str,
        r: usize,
        record: &CacheRecord,
        records: &[Visit],
        layers: &[usize],
    ) -> Result<usize, CacheError> {
        let layer = |index: i64, location: String| {
            position(index, layers.len())
                .map(|i| layers[i] as i64)
                .ok_or_else(|| CacheError::IndexOutOfRange {
                    manifest: manifest.to_owned(),
                    location,
                    index,
                    len: layers.len(),
                    list: "layers",
                })
        };
        let results = record
            .results
            .iter()
            .enumerate()
            .map(|(k, result)| {
                Ok(CacheResult {
                    layer: layer(result.layer, format!("records[{r}].layers[{k}].layer"))?,
                    ..result.clone()
                })
            })
            .collect::<Result<Vec<_>, CacheError>>()?;
        let chains = record
            .chains
            .iter()
            .enumerate()
            .map(|(k, chain)| {
                let indexes = match &chain.layers {
                    None => None,
                    Some(indexes) => Some(
                        indexes
                            .iter()
                            .enumerate()
                            .map(|(m, &i)| {
                                layer(i, format!("records[{r}].chains[{k}].layers[{m}]"))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                Ok(ChainedResult {
                    layers: indexes,
                    ..chain.clone()
                })
            })
            .collect::<Result<Vec<_>, CacheError>>()?;
        // Links point at merged records; within a slot they are a set, kept sorted by link
        // as BuildKit sorts them.
        let inputs: Vec<Option<Vec<CacheInput>>> = record
            .inputs
            .iter()
            .map(|slot| {
                slot.as_ref().map(|inputs| {
                    let mut linked: Vec<CacheInput> = inputs
                        .iter()
                        .map(|input| CacheInput {
                            link: match position(input.link, records.len()).map(|i| records[i]) {
                                Some(Visit::Done(id)) => id as i64,
                                // Checked and merged before this record.
                                _ => input.link,
                            },
                            ..input.clone()
                        })
                        .collect();
                    linked.sort_by(|a, b| (a.link, &a.selector).cmp(&(b.link, &b.selector)));
                    linked.dedup_by(|a, b| a.link == b.link && a.selector == b.selector);
                    linked
                })
            })
            .collect();
        let key: RecordKey = (
            record.digest.clone(),
            inputs
                .iter()
                .map(|slot| {
                    slot.iter()
                        .flatten()
                        .map(|i| (i.selector.clone(), i.link as usize))
                        .collect()
                })
                .collect(),
        );

        if let Some(&id) = self.record_ids.get(&key) {
            let twin = &mut self.records[id];
            for result in results {
                if !twin.results.contains(&result) {
                    twin.results.push(result);
                }
            }
            for chain in chains {
                if !twin.chains.contains(&chain) {
                    twin.chains.push(chain);
                }
            }
            for (field, value) in &record.extra {
                twin.extra
                    .entry(field.clone())
                    .or_insert_with(|| value.clone());
            }
            return Ok(id);
        }
        let id = self.records.len();
        self.records.push(CacheRecord {
            results,
            chains,
            digest: record.digest.clone(),
            inputs,
            extra: record.extra.clone(),
        });
        self.record_ids.insert(key, id);
        Ok(id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2025-01-01T00:00:00Z";
    const T2: &str = "2025-01-02T00:00:00Z";

    /// A fake blob digest that is easy to read in expected JSON.
    fn blob(name: &str) -> String {
        sha256_digest(name.as_bytes())
    }

    fn layer_descriptor(name: &str) -> Value {
        json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": blob(name),
            "size": name.len(),
            "annotations": {
                "buildkit/createdat": T1,
                "containerd.io/uncompressed": blob(&format!("{name}-diff")),
            }
        })
    }

    /// Serializes a config as BuildKit would, and wraps it in a manifest of the given form.
    fn export(form: Form, config: &Value, layer_names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let config = serde_json::to_vec(config).unwrap();
        let config_descriptor = json!({
            "mediaType": CACHE_CONFIG_MEDIA_TYPE,
            "digest": sha256_digest(&config),
            "size": config.len(),
        });
        let layers: Vec<Value> = layer_names.iter().map(|n| layer_descriptor(n)).collect();
        let manifest = match form {
            Form::Index => {
                let mut manifests = layers;
                manifests.push(config_descriptor);
                json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests})
            }
            Form::ImageManifest => json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": config_descriptor,
                "layers": layers,
            }),
        };
        (serde_json::to_vec(&manifest).unwrap(), config)
    }

    fn merge(inputs: &[(Vec<u8>, Vec<u8>)]) -> Result<MergedCache, CacheError> {
        let exports: Vec<CacheExport<'_>> = inputs
            .iter()
            .map(|(manifest, config)| CacheExport { manifest, config })
            .collect();
        merge_cache_exports(&exports)
    }

    fn config_of(merged: &MergedCache) -> Value {
        serde_json::from_slice(&merged.config).unwrap()
    }

    fn manifest_of(merged: &MergedCache) -> Value {
        serde_json::from_slice(&merged.manifest).unwrap()
    }

    /// amd64 and arm64 configs sharing the base record (result: layer `base`), each with its
    /// own `RUN` on top. arm64's layers are sorted so that a parent comes after its child, and
    /// amd64's base result has no `layer`: BuildKit always writes it, but Go reads an absent
    /// one as 0, and so must the merge.
    fn two_platforms(form: Form) -> [(Vec<u8>, Vec<u8>); 2] {
        let amd64 = json!({
            "layers": [
                {"blob": blob("base"), "parent": -1},
                {"blob": blob("run-amd64")},
            ],
            "records": [
                {"digest": "sha256:from", "layers": [{"createdAt": T1}]},
                {"digest": "sha256:run", "layers": [{"layer": 1, "createdAt": T1}],
                 "inputs": [[{"link": 0}]]},
            ],
        });
        let arm64 = json!({
            "layers": [
                {"blob": blob("run-arm64"), "parent": 1},
                {"blob": blob("base"), "parent": -1},
            ],
            "records": [
                {"digest": "sha256:run-arm", "layers": [{"layer": 0, "createdAt": T2}],
                 "inputs": [[{"selector": "sel", "link": 1}]]},
                {"digest": "sha256:from", "layers": [{"layer": 1, "createdAt": T1}]},
            ],
        });
        [
            export(form, &amd64, &["base", "run-amd64"]),
            export(form, &arm64, &["run-arm64", "base"]),
        ]
    }

    #[test]
    fn two_platforms_sharing_a_base_record_merge_with_every_index_remapped() {
        let merged = merge(&two_platforms(Form::Index)).unwrap();
        // Go's field order and omissions: `parent` 0 is not written, `layer` always is.
        let expected = format!(
            concat!(
                r#"{{"layers":[{{"blob":"{base}","parent":-1}},{{"blob":"{amd}"}},{{"blob":"{arm}"}}],"#,
                r#""records":["#,
                r#"{{"layers":[{{"layer":0,"createdAt":"{t1}"}}],"digest":"sha256:from"}},"#,
                r#"{{"layers":[{{"layer":1,"createdAt":"{t1}"}}],"digest":"sha256:run","inputs":[[{{"link":0}}]]}},"#,
                r#"{{"layers":[{{"layer":2,"createdAt":"{t2}"}}],"digest":"sha256:run-arm","inputs":[[{{"selector":"sel","link":0}}]]}}"#,
                r#"]}}"#
            ),
            base = blob("base"),
            amd = blob("run-amd64"),
            arm = blob("run-arm64"),
            t1 = T1,
            t2 = T2,
        );
        assert_eq!(String::from_utf8(merged.config.clone()).unwrap(), expected);
        assert_eq!(
            merged.config_descriptor.digest,
            sha256_digest(&merged.config)
        );
        assert_eq!(merged.config_descriptor.media_type, CACHE_CONFIG_MEDIA_TYPE);
        assert_eq!(merged.config_descriptor.size, merged.config.len() as u64);
    }

    #[test]
    fn the_index_form_lists_the_first_inputs_layers_then_new_ones_then_the_config() {
        let merged = merge(&two_platforms(Form::Index)).unwrap();
        assert_eq!(merged.manifest_descriptor.media_type, media_type::OCI_INDEX);
        assert_eq!(
            merged.manifest_descriptor.digest,
            sha256_digest(&merged.manifest)
        );
        let manifest = manifest_of(&merged);
        let config_entry = json!({
            "mediaType": CACHE_CONFIG_MEDIA_TYPE,
            "digest": merged.config_descriptor.digest,
            "size": merged.config.len(),
        });
        assert_eq!(
            manifest,
            json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_INDEX,
                "manifests": [
                    layer_descriptor("base"),
                    layer_descriptor("run-amd64"),
                    layer_descriptor("run-arm64"),
                    config_entry,
                ],
            })
        );
        // Compact, in Go's order.
        let text = String::from_utf8(merged.manifest).unwrap();
        assert!(
            text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"#),
            "{text}"
        );
    }

    #[test]
    fn the_image_manifest_form_stays_an_image_manifest() {
        let merged = merge(&two_platforms(Form::ImageManifest)).unwrap();
        assert_eq!(
            merged.manifest_descriptor.media_type,
            media_type::OCI_MANIFEST
        );
        let manifest = manifest_of(&merged);
        assert_eq!(
            manifest,
            json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": {
                    "mediaType": CACHE_CONFIG_MEDIA_TYPE,
                    "digest": merged.config_descriptor.digest,
                    "size": merged.config.len(),
                },
                "layers": [
                    layer_descriptor("base"),
                    layer_descriptor("run-amd64"),
                    layer_descriptor("run-arm64"),
                ],
            })
        );
        assert_eq!(
            cache_config_descriptor(&merged.manifest).unwrap(),
            merged.config_descriptor
        );
    }

    #[test]
    fn a_docker_manifest_list_keeps_its_media_type() {
        let [(a, ac), (b, bc)] = two_platforms(Form::Index);
        let relabel = |m: &[u8]| {
            let mut v: Value = serde_json::from_slice(m).unwrap();
            v["mediaType"] = json!(media_type::DOCKER_MANIFEST_LIST);
            serde_json::to_vec(&v).unwrap()
        };
        let merged = merge(&[(relabel(&a), ac), (relabel(&b), bc)]).unwrap();
        assert_eq!(
            merged.manifest_descriptor.media_type,
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            manifest_of(&merged)["mediaType"],
            media_type::DOCKER_MANIFEST_LIST
        );
    }

    #[test]
    fn the_form_of_the_first_input_wins() {
        let [index, _] = two_platforms(Form::Index);
        let [_, image] = two_platforms(Form::ImageManifest);
        let merged = merge(&[image, index]).unwrap();
        let manifest = manifest_of(&merged);
        assert_eq!(manifest["mediaType"], media_type::OCI_MANIFEST);
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);
        assert!(manifest.get("manifests").is_none());
    }

    #[test]
    fn parent_chains_share_their_common_prefix_only() {
        // a: base <- mid <- top-a ; b: base <- mid <- top-b, and `x` on base vs on mid.
        let a = json!({
            "layers": [
                {"blob": blob("base"), "parent": -1},
                {"blob": blob("mid")},
                {"blob": blob("top-a"), "parent": 1},
                {"blob": blob("x")},
            ],
            "records": [{"digest": "sha256:a", "layers": [{"layer": 2}, {"layer": 3}]}],
        });
        let b = json!({
            "layers": [
                {"blob": blob("top-b"), "parent": 2},
                {"blob": blob("x"), "parent": 2},
                {"blob": blob("mid"), "parent": 3},
                {"blob": blob("base"), "parent": -1},
            ],
            "records": [{"digest": "sha256:b", "layers": [{"layer": 0}, {"layer": 1}]}],
        });
        let merged = merge(&[
            export(Form::Index, &a, &["base", "mid", "top-a", "x"]),
            export(Form::Index, &b, &["top-b", "x", "mid", "base"]),
        ])
        .unwrap();
        let config = config_of(&merged);
        assert_eq!(
            config["layers"],
            json!([
                {"blob": blob("base"), "parent": -1},
                {"blob": blob("mid")},
                {"blob": blob("top-a"), "parent": 1},
                {"blob": blob("x")},
                {"blob": blob("top-b"), "parent": 1},
                {"blob": blob("x"), "parent": 1},
            ])
        );
        assert_eq!(
            config["records"][1]["layers"],
            json!([{"layer": 4}, {"layer": 5}])
        );
        // `x` is listed once in the manifest even though it is two layers of the config.
        let manifest = manifest_of(&merged);
        let digests: Vec<&str> = manifest["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [
                blob("base"),
                blob("mid"),
                blob("top-a"),
                blob("x"),
                blob("top-b"),
                merged.config_descriptor.digest.clone(),
            ]
        );
    }

    #[test]
    fn chains_are_remapped_and_unioned() {
        let a = json!({
            "layers": [{"blob": blob("l1"), "parent": -1}, {"blob": blob("l2"), "parent": -1}],
            "records": [{"digest": "sha256:merge", "chains": [{"layers": [0, 1], "createdAt": T1}]}],
        });
        let b = json!({
            "layers": [{"blob": blob("l3"), "parent": -1}, {"blob": blob("l2"), "parent": -1}],
            "records": [{"digest": "sha256:merge", "chains": [
                {"layers": [1, 0], "createdAt": T2},
                {"layers": [1], "createdAt": T1},
            ]}],
        });
        let merged = merge(&[
            export(Form::Index, &a, &["l1", "l2"]),
            export(Form::Index, &b, &["l3", "l2"]),
        ])
        .unwrap();
        let config = config_of(&merged);
        assert_eq!(
            config["records"],
            json!([{"digest": "sha256:merge", "chains": [
                {"layers": [0, 1], "createdAt": T1},
                {"layers": [1, 2], "createdAt": T2},
                {"layers": [1], "createdAt": T1},
            ]}])
        );
    }

    #[test]
    fn identical_exports_merge_into_one_of_each() {
        let [a, _] = two_platforms(Form::Index);
        let merged = merge(&[a.clone(), a.clone()]).unwrap();
        let original: Value = serde_json::from_slice(&a.1).unwrap();
        // Same content (BuildKit's own JSON; ours differs only in formatting).
        let config = config_of(&merged);
        assert_eq!(config["layers"], original["layers"]);
        assert_eq!(
            config["records"][0]["layers"],
            json!([{"layer": 0, "createdAt": T1}])
        );
        assert_eq!(config["records"].as_array().unwrap().len(), 2);
        assert_eq!(
            manifest_of(&merged)["manifests"].as_array().unwrap().len(),
            3
        );
    }

    #[test]
    fn records_differing_in_inputs_or_selectors_stay_apart() {
        let a = json!({
            "layers": [{"blob": blob("l"), "parent": -1}],
            "records": [
                {"digest": "sha256:src1"},
                {"digest": "sha256:src2"},
                {"digest": "sha256:op", "inputs": [[{"link": 0}, {"link": 1}]]},
                {"digest": "sha256:op", "inputs": [[{"link": 1, "selector": "s"}]]},
                {"digest": "sha256:res", "layers": [{"layer": 0}]},
            ],
        });
        // Same `op` with its links in another order (a set): the same record.
        let b = json!({
            "layers": [{"blob": blob("l"), "parent": -1}],
            "records": [
                {"digest": "sha256:src2"},
                {"digest": "sha256:src1"},
                {"digest": "sha256:op", "inputs": [[{"link": 0}, {"link": 1}]], "layers": [{"layer": 0}]},
            ],
        });
        let merged = merge(&[
            export(Form::Index, &a, &["l"]),
            export(Form::Index, &b, &["l"]),
        ])
        .unwrap();
        let config = config_of(&merged);
        let records = config["records"].as_array().unwrap();
        assert_eq!(records.len(), 5, "{config}");
        assert_eq!(
            records[2],
            json!({"digest": "sha256:op", "inputs": [[{"link": 0}, {"link": 1}]], "layers": [{"layer": 0}]})
        );
        assert_eq!(
            records[3]["inputs"],
            json!([[{"selector": "s", "link": 1}]])
        );
    }

    #[test]
    fn unknown_fields_survive_at_every_level() {
        let a = json!({
            "future": {"x": 1},
            "layers": [{"blob": blob("l"), "parent": -1, "annotations": {"createdAt": T1, "diffID": blob("d")}, "layerExtra": true}],
            "records": [{"digest": "sha256:r", "recordExtra": [1],
                         "layers": [{"layer": 0, "createdAt": T1, "resultExtra": "r"}]},
                        {"digest": "sha256:s", "inputs": [[{"link": 0, "inputExtra": 2}], null]}],
        });
        let b = json!({"other": "kept too", "future": "not replacing the first",
                       "layers": [{"blob": blob("m"), "parent": -1}]});
        let (manifest_a, config_a) = export(Form::Index, &a, &["l"]);
        let mut manifest_a: Value = serde_json::from_slice(&manifest_a).unwrap();
        manifest_a["annotations"] = json!({"org.example": "<&>"});
        manifest_a["manifestExtra"] = json!(1);
        manifest_a["manifests"][0]["descriptorExtra"] = json!("d");
        let merged = merge(&[
            (serde_json::to_vec(&manifest_a).unwrap(), config_a),
            export(Form::Index, &b, &["m"]),
        ])
        .unwrap();
        let config = config_of(&merged);
        assert_eq!(config["future"], json!({"x": 1}));
        assert_eq!(config["other"], "kept too");
        assert_eq!(config["layers"][0]["layerExtra"], true);
        assert_eq!(config["layers"][0]["annotations"]["diffID"], blob("d"));
        assert_eq!(config["records"][0]["recordExtra"], json!([1]));
        assert_eq!(config["records"][0]["layers"][0]["resultExtra"], "r");
        assert_eq!(
            config["records"][1]["inputs"],
            json!([[{"link": 0, "inputExtra": 2}], null])
        );
        let manifest = manifest_of(&merged);
        assert_eq!(manifest["annotations"]["org.example"], "<&>");
        assert_eq!(manifest["manifestExtra"], 1);
        assert_eq!(manifest["manifests"][0]["descriptorExtra"], "d");
        // Go escapes HTML characters.
        assert!(
            String::from_utf8(merged.manifest)
                .unwrap()
                .contains(r#""\u003c\u0026\u003e""#)
        );
    }

    #[test]
    fn one_input_is_returned_byte_for_byte() {
        let [(manifest, config), _] = two_platforms(Form::Index);
        let mut pretty: Value = serde_json::from_slice(&manifest).unwrap();
        pretty["unusual"] = json!("spacing");
        let manifest = serde_json::to_vec_pretty(&pretty).unwrap();
        let merged = merge(&[(manifest.clone(), config.clone())]).unwrap();
        assert_eq!(merged.manifest, manifest);
        assert_eq!(merged.config, config);
        assert_eq!(merged.manifest_descriptor.digest, sha256_digest(&manifest));
        assert_eq!(merged.config_descriptor.digest, sha256_digest(&config));
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let inputs = two_platforms(Form::ImageManifest);
        let first = merge(&inputs).unwrap();
        for _ in 0..5 {
            assert_eq!(merge(&inputs).unwrap(), first);
        }
    }

    fn out_of_range(config: Value) -> (String, i64, usize, &'static str) {
        let ok = export(
            Form::Index,
            &json!({"layers": [{"blob": blob("ok"), "parent": -1}]}),
            &["ok"],
        );
        let bad = export(Form::Index, &config, &["l"]);
        match merge(&[ok, bad]) {
            Err(CacheError::IndexOutOfRange {
                location,
                index,
                len,
                list,
                ..
            }) => (location, index, len, list),
            other => panic!("expected IndexOutOfRange, got {other:?}"),
        }
    }

    #[test]
    fn indexes_out_of_range_are_errors() {
        let l = blob("l");
        assert_eq!(
            out_of_range(json!({"layers": [{"blob": l, "parent": 5}]})),
            ("layers[0].parent".to_owned(), 5, 1, "layers")
        );
        assert_eq!(
            out_of_range(json!({"layers": [{"blob": l, "parent": -2}]})),
            ("layers[0].parent".to_owned(), -2, 1, "layers")
        );
        assert_eq!(
            out_of_range(json!({"layers": [{"blob": l, "parent": -1}],
                                "records": [{"digest": "d", "layers": [{"layer": 1}]}]})),
            ("records[0].layers[0].layer".to_owned(), 1, 1, "layers")
        );
        assert_eq!(
            out_of_range(json!({"layers": [{"blob": l, "parent": -1}],
                                "records": [{"digest": "d", "chains": [{"layers": [0, -1]}]}]})),
            ("records[0].chains[0].layers[1]".to_owned(), -1, 1, "layers")
        );
        assert_eq!(
            out_of_range(
                json!({"records": [{"digest": "d", "inputs": [[{"link": 0}], [{"link": 3}]]}]})
            ),
            ("records[0].inputs[1][0].link".to_owned(), 3, 1, "records")
        );
        // A result with no layers at all to point at.
        assert_eq!(
            out_of_range(json!({"records": [{"digest": "d", "layers": [{"createdAt": T1}]}]})),
            ("records[0].layers[0].layer".to_owned(), 0, 0, "layers")
        );
    }

    #[test]
    fn loops_are_errors() {
        let ok = export(Form::Index, &json!({}), &[]);
        let layers = json!({"layers": [{"blob": blob("a"), "parent": 1}, {"blob": blob("b")}]});
        let err = merge(&[ok.clone(), export(Form::Index, &layers, &["a", "b"])]).unwrap_err();
        assert!(
            matches!(err, CacheError::Loop { list: "layers", .. }),
            "{err}"
        );
        let records = json!({"records": [
            {"digest": "a", "inputs": [[{"link": 1}]]},
            {"digest": "b", "inputs": [[{"link": 2}]]},
            {"digest": "c", "inputs": [[{"link": 0}]]},
        ]});
        let err = merge(&[ok.clone(), export(Form::Index, &records, &[])]).unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Loop {
                    list: "records",
                    ..
                }
            ),
            "{err}"
        );
        let itself = json!({"records": [{"digest": "a", "inputs": [[{"link": 0}]]}]});
        assert!(merge(&[ok, export(Form::Index, &itself, &[])]).is_err());
    }

    #[test]
    fn deep_record_graphs_do_not_overflow_the_stack() {
        // Far deeper than a recursive walk survives on a 2 MiB test thread.
        let n = 20_000;
        let records: Vec<Value> = (0..n)
            .map(|i| {
                if i == n - 1 {
                    json!({"digest": format!("d{i}")})
                } else {
                    json!({"digest": format!("d{i}"), "inputs": [[{"link": i + 1}]]})
                }
            })
            .collect();
        let deep = export(Form::Index, &json!({"records": records}), &[]);
        let merged = merge(&[deep.clone(), deep]).unwrap();
        assert_eq!(config_of(&merged)["records"].as_array().unwrap().len(), n);
    }

    #[test]
    fn inputs_that_are_not_cache_exports_are_refused() {
        let ok = export(Form::Index, &json!({}), &[]);
        let image = json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": blob("c"), "size": 1},
            "layers": []});
        let err = merge(&[
            ok.clone(),
            (serde_json::to_vec(&image).unwrap(), b"{}".to_vec()),
        ])
        .unwrap_err();
        assert!(matches!(err, CacheError::NotCacheManifest { .. }), "{err}");

        let err = merge(&[ok.clone(), (b"not json".to_vec(), b"{}".to_vec())]).unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Json {
                    what: "manifest",
                    ..
                }
            ),
            "{err}"
        );

        let (manifest, _) = export(Form::Index, &json!({}), &[]);
        let err = merge(&[ok.clone(), (manifest, b"{\"other\":1}".to_vec())]).unwrap_err();
        assert!(matches!(err, CacheError::ConfigMismatch { .. }), "{err}");

        let (manifest, config) = export(Form::Index, &json!({"layers": "nope"}), &[]);
        let err = merge(&[ok, (manifest, config)]).unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Json {
                    what: "cache config",
                    ..
                }
            ),
            "{err}"
        );

        assert!(matches!(merge(&[]), Err(CacheError::NoManifests)));
    }

    #[test]
    fn nulls_read_as_go_reads_them() {
        let a = json!({"layers": [{"blob": blob("l"), "parent": -1, "annotations": null}],
                       "records": [{"digest": "d", "layers": null, "inputs": null,
                                    "chains": [{"layers": null}]}]});
        let b = json!({"layers": null, "records": null});
        let merged = merge(&[
            export(Form::Index, &a, &["l"]),
            export(Form::Index, &b, &[]),
        ])
        .unwrap();
        assert_eq!(
            config_of(&merged),
            json!({"layers": [{"blob": blob("l"), "parent": -1}],
                   "records": [{"digest": "d", "chains": [{"layers": null}]}]})
        );
    }
}
