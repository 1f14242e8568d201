//! `brix history export`: build records as a Docker Desktop bundle (`.dockerbuild`), the
//! archive `docker buildx history export` writes and `docker/build-push-action` uploads: a
//! gzipped OCI layout whose image manifest per record has the record as its config
//! (`application/vnd.buildkit.historyrecord.v0`) and the record's trace (with secrets
//! masked), logs, error details, attestations and result manifests as layers. Several
//! records go under one index.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use brix_driver::NodeGroup;
use brix_exporter::descriptor::{media_type, sha256_digest, validate_digest};
use brix_solver_client::history::BuildHistoryRecord;
use brix_solver_client::proto::moby::buildkit::v1 as pb;
use serde::Serialize;

use super::{LocalState, NodeClient, QueryOptions, Record, connect, go_json_escape, query_records};

/// The config media type of a record's manifest.
const HISTORY_RECORD_MEDIA_TYPE: &str = "application/vnd.buildkit.historyrecord.v0";
/// Where a result descriptor's own media type is kept (the layer says `application/json`, so
/// that nothing walks into it).
const REF_DESCRIPTOR_MEDIA_TYPE: &str = "vnd.export-build.descriptor.mediatype";
/// The index annotation naming each record's build ref.
const HISTORY_REFERENCE: &str = "vnd.buildkit.history.reference";
/// The largest blob put into a bundle.
const MAX_BUNDLE_BLOB: u64 = 512 << 20;

/// Arguments of `brix history export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Builds to export (refs or `^N`; the newest if none).
    #[arg(value_name = "REF")]
    refs: Vec<String>,
    /// Output file path (stdout if omitted, unless it is a terminal).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Export all build records for the builder.
    #[arg(long)]
    all: bool,
    /// Ensure build records are finalized (their traces written) before exporting.
    #[arg(long)]
    finalize: bool,
}

/// Picks the records as buildx does, then writes the bundle.
pub(super) async fn run(ng: &NodeGroup, args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.all && !args.refs.is_empty() {
        bail!("cannot specify refs when using --all");
    }
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write to console, use --output to specify a file");
    }
    let nodes = connect(ng, true).await?;
    let refs = if args.refs.is_empty() {
        vec![String::new()]
    } else {
        args.refs.clone()
    };
    let completed = QueryOptions {
        completed_only: true,
        ..Default::default()
    };
    let mut chosen: Vec<Record<'_>> = Vec::new();
    for reference in &refs {
        let records = query_records(&nodes, reference, &completed).await?;
        if records.is_empty() {
            if reference.is_empty() {
                bail!("no records found");
            }
            bail!("no record found for ref {reference:?}");
        }
        let mut to_export = records;
        if !args.all && reference.is_empty() {
            let latest = to_export[0].build_ref().to_owned();
            let same = to_export
                .iter()
                .take_while(|r| r.build_ref() == latest)
                .count();
            to_export.truncate(same);
        }
        if args.finalize {
            let mut seen = HashSet::new();
            let mut finalized = false;
            for rec in to_export.iter().filter(|r| r.entry.record.trace.is_none()) {
                if seen.insert((rec.node.node.clone(), rec.build_ref().to_owned())) {
                    finalized = true;
                    rec.node
                        .client
                        .finalize_build_record(rec.build_ref())
                        .await
                        .with_context(|| format!("finalizing build record {}", rec.build_ref()))?;
                }
            }
            if finalized {
                let again = if args.all {
                    reference.clone()
                } else {
                    to_export[0].build_ref().to_owned()
                };
                to_export = query_records(&nodes, &again, &completed).await?;
            }
        }
        chosen.extend(to_export);
        if args.all {
            break;
        }
    }

    let mut bundle = Bundle::default();
    let mut manifests = Vec::new();
    for rec in &chosen {
        let platform = default_platform(ng, rec.node).await;
        let mut desc = export_record(&mut bundle, rec, platform)
            .await
            .with_context(|| format!("failed to export record {}", rec.build_ref()))?;
        if chosen.len() > 1 {
            desc.annotations
                .insert(HISTORY_REFERENCE.into(), rec.build_ref().to_owned());
        }
        manifests.push(desc);
    }
    let top = if manifests.len() == 1 {
        manifests.remove(0)
    } else {
        bundle.add_json(
            media_type::OCI_INDEX,
            &IndexJson {
                schema_version: 2,
                media_type: media_type::OCI_INDEX,
                manifests,
            },
        )?
    };
    let archive = bundle
        .archive(&top)
        .context("failed to create dockerbuild archive")?;
    match &args.output {
        Some(path) => crate::files::write_atomically(path, &archive).with_context(|| {
            format!(
                "failed to create output file {:?}",
                path.display().to_string()
            )
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&archive)
                .and_then(|()| out.flush())
                .context("writing the bundle to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The platform the record's node builds for by default: its first pinned platform, else
/// its first worker's (the bundle's `DefaultPlatform`).
async fn default_platform(ng: &NodeGroup, node: &NodeClient) -> String {
    if let Some(p) = ng
        .nodes
        .iter()
        .find(|n| n.name == node.node)
        .and_then(|n| n.platforms.first())
    {
        return p.to_string();
    }
    let workers = node.client.list_workers().await.unwrap_or_default();
    workers
        .first()
        .and_then(|w| w.platforms.first())
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The blobs gathered for the archive, by digest.
#[derive(Default)]
struct Bundle {
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Adds `value` as Go's `json.MarshalIndent(value, "", "  ")` writes it.
    fn add_json(&mut self, media_type: &str, value: &impl Serialize) -> anyhow::Result<Descriptor> {
        let text = serde_json::to_string_pretty(value).context("failed to marshal data")?;
        Ok(self.add(media_type, go_json_escape(&text).into_bytes()))
    }

    fn add(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let desc = Descriptor {
            media_type: media_type.to_owned(),
            digest: sha256_digest(&bytes),
            size: bytes.len() as i64,
            annotations: BTreeMap::new(),
        };
        self.blobs.insert(desc.digest.clone(), bytes);
        desc
    }

    /// Copies blob `desc` from the node's content store (checking its digest), as the layer
    /// descriptor buildx writes for it; `None` when it is already in.
    async fn copy(
        &mut self,
        rec: &Record<'_>,
        desc: &pb::Descriptor,
        visited: &mut HashSet<String>,
    ) -> anyhow::Result<Option<Descriptor>> {
        if !visited.insert(desc.digest.clone()) {
            return Ok(None);
        }
        validate_digest(&desc.digest).context("failed to parse digest")?;
        if !self.blobs.contains_key(&desc.digest) {
            let bytes = rec
                .node
                .client
                .read_blob(&desc.digest, MAX_BUNDLE_BLOB)
                .await
                .with_context(|| format!("reading blob {}", desc.digest))?;
            if sha256_digest(&bytes) != desc.digest {
                bail!("blob {} does not match its digest", desc.digest);
            }
            self.blobs.insert(desc.digest.clone(), bytes);
        }
        Ok(Some(Descriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            annotations: desc.annotations.clone(),
        }))
    }

    /// The gzipped OCI layout with `top` as its only `index.json` entry: entries sorted by
    /// name, as containerd's archive exporter writes them.
    fn archive(&self, top: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let index = serde_json::to_string(&IndexJson {
            schema_version: 2,
            media_type: media_type::OCI_INDEX,
            manifests: vec![top.clone()],
        })?;
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let dir = |name: &str| -> anyhow::Result<tar::Header> {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_path(name)?;
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            h.set_cksum();
            Ok(h)
        };
        let file = |name: &str, mode: u32, len: usize| -> anyhow::Result<tar::Header> {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_path(name)?;
            h.set_mode(mode);
            h.set_size(len as u64);
            h.set_mtime(0);
            h.set_cksum();
            Ok(h)
        };
        tar.append(&dir("blobs/")?, std::io::empty())?;
        tar.append(&dir("blobs/sha256/")?, std::io::empty())?;
        for (digest, bytes) in &self.blobs {
            let name = format!("blobs/sha256/{}", validate_digest(digest)?);
            tar.append(&file(&name, 0o444, bytes.len())?, bytes.as_slice())?;
        }
        tar.append(&file("index.json", 0o644, index.len())?, index.as_bytes())?;
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tar.append(&file("oci-layout", 0o444, layout.len())?, &layout[..])?;
        Ok(tar.into_inner()?.finish()?)
    }
}

/// buildx's `exportRecord`: the record's manifest, its blobs added to the bundle.
async fn export_record(
    bundle: &mut Bundle,
    rec: &Record<'_>,
    default_platform: String,
) -> anyhow::Result<Descriptor> {
    let mut record = rec.entry.record.clone();
    sanitize_record(&mut record);
    let mut visited = HashSet::new();
    let mut layers = Vec::new();
    if let Some(trace) = record.trace.clone() {
        let desc = bundle
            .copy(rec, &trace, &mut visited)
            .await
            .context("failed to load trace descriptor")?;
        if let Some(desc) = desc {
            let text = bundle.blobs.get(&desc.digest).cloned().unwrap_or_default();
            let clean = sanitize_trace(&text).context("failed to sanitize trace")?;
            let clean = bundle.add(&desc.media_type, clean);
            if let Some(t) = record.trace.as_mut() {
                t.digest = clean.digest.clone();
                t.size = clean.size;
            }
            layers.push(clean);
        }
    }
    let config = bundle
        .add_json(
            HISTORY_RECORD_MEDIA_TYPE,
            &BundleRecord {
                record: RecordJson::from(&record),
                default_platform,
                local_state: rec.local_state(),
            },
        )
        .context("failed to write history record")?;
    if let Some(logs) = &record.logs {
        layers.extend(
            bundle
                .copy(rec, logs, &mut visited)
                .await
                .context("failed to load logs descriptor")?,
        );
    }
    if let Some(result) = &record.result {
        layers.extend(load_result(bundle, rec, result, &mut visited).await?);
    }
    if let Some(ext) = &record.external_error {
        layers.extend(
            bundle
                .copy(rec, ext, &mut visited)
                .await
                .context("failed to load external error descriptor")?,
        );
    }
    for result in record.results.values() {
        layers.extend(load_result(bundle, rec, result, &mut visited).await?);
    }
    bundle
        .add_json(
            media_type::OCI_MANIFEST,
            &ManifestJson {
                schema_version: 2,
                media_type: media_type::OCI_MANIFEST,
                config,
                layers,
            },
        )
        .context("failed to write manifest")
}

/// A result's attestations and result manifests as layers (the manifests typed
/// `application/json`, their own type kept in an annotation).
async fn load_result(
    bundle: &mut Bundle,
    rec: &Record<'_>,
    result: &pb::BuildResultInfo,
    visited: &mut HashSet<String>,
) -> anyhow::Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for a in &result.attestations {
        out.extend(
            bundle
                .copy(rec, a, visited)
                .await
                .context("failed to load attestation descriptor")?,
        );
    }
    for r in result.results.values() {
        if let Some(mut desc) = bundle
            .copy(rec, r, visited)
            .await
            .context("failed to load result descriptor")?
        {
            let original = std::mem::replace(&mut desc.media_type, "application/json".into());
            desc.annotations
                .insert(REF_DESCRIPTOR_MEDIA_TYPE.into(), original);
            out.push(desc);
        }
    }
    Ok(out)
}

/// Keeps only `scope` and `ref` of each cache import (the rest may hold credentials).
fn sanitize_record(record: &mut BuildHistoryRecord) {
    if let Some(v) = record.frontend_attrs.get_mut("cache-imports") {
        *v = sanitize_cache_imports(v).unwrap_or_default();
    }
}

fn sanitize_cache_imports(v: &str) -> Option<String> {
    #[derive(serde::Deserialize, Serialize)]
    struct CacheImport {
        #[serde(rename = "Type", default)]
        kind: String,
        #[serde(rename = "Attrs", default)]
        attrs: Option<BTreeMap<String, String>>,
    }
    let mut list: Vec<CacheImport> = serde_json::from_str(v).ok()?;
    for c in &mut list {
        let kept: BTreeMap<String, String> = c
            .attrs
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k == "scope" || k == "ref")
            .collect();
        c.attrs = Some(kept);
    }
    serde_json::to_string(&list)
        .ok()
        .map(|s| go_json_escape(&s))
}

/// The trace (a stream of JSON spans) with secrets in its strings masked as buildx does:
/// `token=…`, `ghtoken=…`, `access_key_id=…`, `secret_access_key=…`, `session_token=…`
/// values and GitHub `ghs_` tokens become `xxxxx`. The text is otherwise left as it is.
fn sanitize_trace(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(text).context("the trace is not UTF-8")?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Every JSON string literal is decoded, masked and, if that changed it, re-encoded.
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let literal_len =
            string_literal_len(&rest[start..]).context("the trace has an unterminated string")?;
        let literal = &rest[start..start + literal_len];
        let decoded: String = serde_json::from_str(literal).context("the trace is not JSON")?;
        let masked = mask_secrets(&decoded);
        if masked == decoded {
            out.push_str(literal);
        } else {
            out.push_str(&go_json_escape(&serde_json::to_string(&masked)?));
        }
        rest = &rest[start + literal_len..];
    }
    out.push_str(rest);
    Ok(out.into_bytes())
}

/// The length of the JSON string literal at the start of `s` (which starts with `"`).
fn string_literal_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// buildx's `sanitizeCommand`: `(?i)(ghtoken|token|access_key_id|secret_access_key|
/// session_token)=[^ ,]+` becomes `$1=xxxxx`, then `ghs_` and 36 letters or digits become
/// `xxxxx`.
fn mask_secrets(value: &str) -> String {
    const KEYS: [&str; 5] = [
        "ghtoken",
        "token",
        "access_key_id",
        "secret_access_key",
        "session_token",
    ];
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    'scan: while i < value.len() {
        for key in KEYS {
            let end = i + key.len();
            if value.is_char_boundary(end)
                && value[i..end].eq_ignore_ascii_case(key)
                && value[end..].starts_with('=')
            {
                let secret = value[end + 1..]
                    .find([' ', ','])
                    .unwrap_or(value.len() - end - 1);
                if secret > 0 {
                    out.push_str(&value[i..end]);
                    out.push_str("=xxxxx");
                    i = end + 1 + secret;
                    continue 'scan;
                }
            }
        }
        let c = value[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(pos) = rest.find("ghs_") {
        let after = &rest[pos + 4..];
        if after.len() >= 36 && after.as_bytes()[..36].iter().all(u8::is_ascii_alphanumeric) {
            masked.push_str(&rest[..pos]);
            masked.push_str("xxxxx");
            rest = &after[36..];
        } else {
            masked.push_str(&rest[..pos + 4]);
            rest = after;
        }
    }
    masked.push_str(rest);
    masked
}

/// An OCI descriptor as Go's image-spec types encode it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// buildx's `bundle.Record`: the history record as Go's `encoding/json` writes the
/// generated protobuf type, then the default platform and the client's local state.
#[derive(Serialize)]
struct BundleRecord {
    #[serde(flatten)]
    record: RecordJson,
    #[serde(rename = "DefaultPlatform")]
    default_platform: String,
    #[serde(rename = "localState", skip_serializing_if = "Option::is_none")]
    local_state: Option<LocalState>,
}

/// `BuildHistoryRecord` with the protobuf field names and Go's `omitempty` rules.
#[derive(Serialize)]
struct RecordJson {
    #[serde(rename = "Ref", skip_serializing_if = "String::is_empty")]
    r#ref: String,
    #[serde(rename = "Frontend", skip_serializing_if = "String::is_empty")]
    frontend: String,
    #[serde(rename = "FrontendAttrs", skip_serializing_if = "BTreeMap::is_empty")]
    frontend_attrs: BTreeMap<String, String>,
    #[serde(rename = "Exporters", skip_serializing_if = "Vec::is_empty")]
    exporters: Vec<ExporterJson>,
    #[serde(rename = "error", skip_serializing_if = "Option::is_none")]
    error: Option<StatusJson>,
    #[serde(rename = "CreatedAt", skip_serializing_if = "Option::is_none")]
    created_at: Option<TimestampJson>,
    #[serde(rename = "CompletedAt", skip_serializing_if = "Option::is_none")]
    completed_at: Option<TimestampJson>,
    #[serde(rename = "logs", skip_serializing_if = "Option::is_none")]
    logs: Option<DescriptorJson>,
    #[serde(
        rename = "ExporterResponse",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    exporter_response: BTreeMap<String, String>,
    #[serde(rename = "Result", skip_serializing_if = "Option::is_none")]
    result: Option<ResultJson>,
    #[serde(rename = "Results", skip_serializing_if = "BTreeMap::is_empty")]
    results: BTreeMap<String, ResultJson>,
    #[serde(rename = "Generation", skip_serializing_if = "is_zero")]
    generation: i32,
    #[serde(rename = "trace", skip_serializing_if = "Option::is_none")]
    trace: Option<DescriptorJson>,
    #[serde(rename = "pinned", skip_serializing_if = "std::ops::Not::not")]
    pinned: bool,
    #[serde(rename = "numCachedSteps", skip_serializing_if = "is_zero")]
    num_cached_steps: i32,
    #[serde(rename = "numTotalSteps", skip_serializing_if = "is_zero")]
    num_total_steps: i32,
    #[serde(rename = "numCompletedSteps", skip_serializing_if = "is_zero")]
    num_completed_steps: i32,
    #[serde(rename = "externalError", skip_serializing_if = "Option::is_none")]
    external_error: Option<DescriptorJson>,
    #[serde(rename = "numWarnings", skip_serializing_if = "is_zero")]
    num_warnings: i32,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Serialize)]
struct ExporterJson {
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(rename = "Attrs", skip_serializing_if = "BTreeMap::is_empty")]
    attrs: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct StatusJson {
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<AnyJson>,
}

#[derive(Serialize)]
struct AnyJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    type_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
}

#[derive(Serialize)]
struct TimestampJson {
    #[serde(skip_serializing_if = "is_zero")]
    seconds: i64,
    #[serde(skip_serializing_if = "is_zero")]
    nanos: i32,
}

#[derive(Serialize)]
struct DescriptorJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    media_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(skip_serializing_if = "is_zero")]
    size: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ResultJson {
    #[serde(rename = "ResultDeprecated", skip_serializing_if = "Option::is_none")]
    result_deprecated: Option<DescriptorJson>,
    #[serde(rename = "Attestations", skip_serializing_if = "Vec::is_empty")]
    attestations: Vec<DescriptorJson>,
    /// Go encodes integer map keys as strings, sorted as strings.
    #[serde(rename = "Results", skip_serializing_if = "BTreeMap::is_empty")]
    results: BTreeMap<String, DescriptorJson>,
}

impl From<&pb::Descriptor> for DescriptorJson {
    fn from(d: &pb::Descriptor) -> Self {
        DescriptorJson {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            annotations: d.annotations.clone(),
        }
    }
}

impl From<&pb::BuildResultInfo> for ResultJson {
    fn from(r: &pb::BuildResultInfo) -> Self {
        ResultJson {
            result_deprecated: r.result_deprecated.as_ref().map(Into::into),
            attestations: r.attestations.iter().map(Into::into).collect(),
            results: r
                .results
                .iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect(),
        }
    }
}

impl From<&BuildHistoryRecord> for RecordJson {
    fn from(r: &BuildHistoryRecord) -> Self {
        use base64::Engine;
        let ts = |t: &Option<brix_solver_client::history::Timestamp>| {
            t.as_ref().map(|t| TimestampJson {
                seconds: t.seconds,
                nanos: t.nanos,
            })
        };
        RecordJson {
            r#ref: r.r#ref.clone(),
            frontend: r.frontend.clone(),
            frontend_attrs: r.frontend_attrs.clone(),
            exporters: r
                .exporters
                .iter()
                .map(|e| ExporterJson {
                    kind: e.r#type.clone(),
                    attrs: e.attrs.clone(),
                })
                .collect(),
            error: r.error.as_ref().map(|e| StatusJson {
                code: e.code,
                message: e.message.clone(),
                details: e
                    .details
                    .iter()
                    .map(|d| AnyJson {
                        type_url: d.type_url.clone(),
                        value: base64::engine::general_purpose::STANDARD.encode(&d.value),
                    })
                    .collect(),
            }),
            created_at: ts(&r.created_at),
            completed_at: ts(&r.completed_at),
            logs: r.logs.as_ref().map(Into::into),
            exporter_response: r.exporter_response.clone(),
            result: r.result.as_ref().map(Into::into),
            results: r
                .results
                .iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect(),
            generation: r.generation,
            trace: r.trace.as_ref().map(Into::into),
            pinned: r.pinned,
            num_cached_steps: r.num_cached_steps,
            num_total_steps: r.num_total_steps,
            num_completed_steps: r.num_completed_steps,
            external_error: r.external_error.as_ref().map(Into::into),
            num_warnings: r.num_warnings,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_like_buildx() {
        assert_eq!(
            mask_secrets("type=gha,token=abc123,scope=x"),
            "type=gha,token=xxxxx,scope=x"
        );
        assert_eq!(mask_secrets("GHTOKEN=a b"), "GHTOKEN=xxxxx b");
        assert_eq!(
            mask_secrets("secret_access_key=k session_token=t"),
            "secret_access_key=xxxxx session_token=xxxxx"
        );
        assert_eq!(mask_secrets("token="), "token=");
        let ghs = format!("x ghs_{} y", "a".repeat(36));
        assert_eq!(mask_secrets(&ghs), "x xxxxx y");
        assert_eq!(mask_secrets("ghs_short"), "ghs_short");
        assert_eq!(mask_secrets("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn traces_keep_their_text_but_not_their_secrets() {
        let trace = b"{\n  \"Name\": \"a\\\"b\",\n  \"Value\": \"token=s3cret,x\"\n}\n";
        let clean = String::from_utf8(sanitize_trace(trace).unwrap()).unwrap();
        assert_eq!(
            clean,
            "{\n  \"Name\": \"a\\\"b\",\n  \"Value\": \"token=xxxxx,x\"\n}\n"
        );
    }

    #[test]
    fn cache_imports_keep_only_scope_and_ref() {
        let v = r#"[{"Type":"gha","Attrs":{"scope":"s","token":"t","url":"u"}}]"#;
        assert_eq!(
            sanitize_cache_imports(v).unwrap(),
            r#"[{"Type":"gha","Attrs":{"scope":"s"}}]"#
        );
        assert!(sanitize_cache_imports("not json").is_none());
    }

    #[test]
    fn records_encode_like_go() {
        let record = BuildHistoryRecord {
            r#ref: "r".into(),
            frontend: "dockerfile.v0".into(),
            created_at: Some(brix_solver_client::history::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
            num_total_steps: 2,
            ..Default::default()
        };
        let text = serde_json::to_string(&BundleRecord {
            record: RecordJson::from(&record),
            default_platform: "linux/amd64".into(),
            local_state: None,
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"Ref":"r","Frontend":"dockerfile.v0","CreatedAt":{"seconds":5},"numTotalSteps":2,"DefaultPlatform":"linux/amd64"}"#
        );
    }
}
