//! `--metadata-file`'s `buildx.build.provenance` keys, as buildx 0.29 writes them
//! (`build/provenance.go`): after the solve, the SLSA provenance predicate the daemon keeps in
//! the build's history record; `min` mode (the default of `BUILDX_METADATA_PROVENANCE`) leaves
//! out its `buildConfig` and `metadata`. buildx puts it in the exporter response base64-encoded
//! and its metadata writer decodes it back, so the file holds the predicate as a JSON object.
//!
//! The predicate's members are kept in the blob's order: BuildKit wrote it from the same Go
//! struct buildx decodes it into, so that order is the one buildx's `json.Marshal` gives, and
//! the file is indented as Go's `json.MarshalIndent` indents it, order kept.

use std::collections::BTreeMap;

use anyhow::Context;
use brix_solver_client::ControlClient;
use brix_solver_client::history::HistoryQuery;
use brix_solver_client::proto::moby::buildkit::v1::BuildResultInfo;
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The metadata key of a single-platform build's provenance; multi-platform builds add
/// `/<platform>`.
pub(crate) const PROVENANCE_KEY: &str = "buildx.build.provenance";

/// The largest provenance blob read into memory.
const MAX_PROVENANCE_BLOB: u64 = 16 << 20;

/// How much of the provenance goes into the metadata file (`BUILDX_METADATA_PROVENANCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProvenanceMode {
    /// Without `buildConfig` and `metadata` (the default).
    Min,
    /// The whole predicate.
    Max,
    /// No provenance key.
    Disabled,
}

impl ProvenanceMode {
    /// buildx's `ParseMetadataProvenance`: `min`, `max`, `disabled`, a false boolean
    /// (disabled); anything else, unset included, is `min`.
    pub(crate) fn parse(value: Option<&str>) -> Self {
        match value.unwrap_or_default() {
            "min" => Self::Min,
            "max" => Self::Max,
            "disabled" => Self::Disabled,
            v if crate::go::parse_bool(v) == Some(false) => Self::Disabled,
            _ => Self::Min,
        }
    }

    /// The mode `BUILDX_METADATA_PROVENANCE` asks for.
    pub(crate) fn from_env() -> Self {
        Self::parse(std::env::var("BUILDX_METADATA_PROVENANCE").ok().as_deref())
    }
}

/// The provenance predicates of build `build_ref`'s record: one `(None, predicate)` for a
/// record with one result, `(Some(platform), predicate)` per platform for a multi-platform
/// record.
pub(crate) async fn record_provenance(
    client: &ControlClient,
    build_ref: &str,
    mode: ProvenanceMode,
) -> anyhow::Result<Vec<(Option<String>, Box<RawValue>)>> {
    let history = client
        .build_history(&HistoryQuery {
            build_ref: build_ref.to_owned(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("reading the build record of {build_ref}"))?;
    let mut out = Vec::new();
    for entry in &history.records {
        let record = &entry.record;
        let results: Vec<(Option<String>, &BuildResultInfo)> = if !record.results.is_empty() {
            record
                .results
                .iter()
                .map(|(platform, r)| (Some(platform.clone()), r))
                .collect()
        } else {
            record.result.iter().map(|r| (None, r)).collect()
        };
        for (platform, result) in results {
            let Some(descriptor) = result.attestations.iter().find(|a| {
                a.media_type == "application/vnd.in-toto+json"
                    && a.annotations
                        .get("in-toto.io/predicate-type")
                        .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"))
            }) else {
                continue;
            };
            let blob = client
                .read_blob(&descriptor.digest, MAX_PROVENANCE_BLOB)
                .await
                .context("failed to load provenance blob from build record")?;
            let predicate_type = &descriptor.annotations["in-toto.io/predicate-type"];
            out.push((platform, predicate_json(&blob, predicate_type, mode)?));
        }
    }
    Ok(out)
}

/// The SLSA v1 predicate type; buildx writes such predicates converted to v0.2.
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// The predicate `blob` (of `predicate_type`) as buildx puts it in the metadata file: in
/// SLSA v0.2 (BuildKit's `ConvertToSLSA02` for a v1 one), compact, in Go's escaping, the
/// members of `min` mode only.
pub(crate) fn predicate_json(
    blob: &[u8],
    predicate_type: &str,
    mode: ProvenanceMode,
) -> anyhow::Result<Box<RawValue>> {
    if predicate_type == SLSA_V1 {
        let v1: SlsaV1 = serde_json::from_slice(blob).context("failed to unmarshal provenance")?;
        let mut json = String::new();
        go_compact(
            &v1.to_v02(mode).context("failed to marshal provenance")?,
            &mut json,
        );
        return RawValue::from_string(json).context("failed to marshal provenance");
    }
    let Members(members) =
        serde_json::from_slice(blob).context("failed to unmarshal provenance")?;
    let mut json = String::from("{");
    for (key, value) in &members {
        if mode == ProvenanceMode::Min && (key == "buildConfig" || key == "metadata") {
            continue;
        }
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(&serde_json::to_string(key).context("failed to marshal provenance")?);
        json.push(':');
        go_compact(value.get(), &mut json);
    }
    json.push('}');
    RawValue::from_string(json).context("failed to marshal provenance")
}

/// The metadata file's text: `metadata` and the `predicates` (kept as written) in one object,
/// indented as Go's `json.MarshalIndent(…, "", "  ")`, which for plain values is what
/// `serde_json::to_string_pretty` writes.
pub(crate) fn metadata_file_text(
    metadata: &serde_json::Map<String, serde_json::Value>,
    predicates: &BTreeMap<String, Box<RawValue>>,
) -> serde_json::Result<String> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Member<'a> {
        Value(&'a serde_json::Value),
        Raw(&'a RawValue),
    }
    let mut members: BTreeMap<&str, Member> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), Member::Value(v)))
        .collect();
    for (k, v) in predicates {
        members.insert(k, Member::Raw(v));
    }
    Ok(go_indent(&serde_json::to_string(&members)?))
}

/// Compact JSON `text` indented by two spaces a level, as Go's `json.Indent` does it (empty
/// objects and arrays stay `{}` and `[]`).
fn go_indent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// A JSON object's members in the order written.
#[derive(Default)]
struct Members(Vec<(String, Box<RawValue>)>);

/// The parts of BuildKit's SLSA v1 predicate (`ProvenancePredicateSLSA1`) its v0.2 form is
/// made of; the parts carried over unchanged stay as written.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SlsaV1 {
    build_definition: V1BuildDefinition,
    run_details: V1RunDetails,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct V1BuildDefinition {
    external_parameters: V1ExternalParameters,
    internal_parameters: Option<Members>,
    resolved_dependencies: Option<Vec<V1Resource>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1ExternalParameters {
    #[serde(rename = "configSource")]
    config_source: V1ConfigSource,
    request: Option<Members>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1ConfigSource {
    uri: String,
    digest: BTreeMap<String, String>,
    path: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1Resource {
    uri: String,
    digest: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1RunDetails {
    builder: V1Builder,
    metadata: Option<V1Metadata>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1Builder {
    id: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct V1Metadata {
    #[serde(rename = "invocationId")]
    invocation_id: String,
    #[serde(rename = "startedOn")]
    started_on: Option<Box<RawValue>>,
    #[serde(rename = "finishedOn")]
    finished_on: Option<Box<RawValue>>,
    buildkit_metadata: Option<Box<RawValue>>,
    buildkit_hermetic: bool,
    buildkit_completeness: V1Completeness,
    buildkit_reproducible: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct V1Completeness {
    request: bool,
    resolved_dependencies: bool,
}

impl SlsaV1 {
    /// BuildKit's `ConvertToSLSA02` marshalled: `ProvenancePredicateSLSA02`'s members in Go's
    /// order; `min` mode without `buildConfig` and `metadata`.
    fn to_v02(&self, mode: ProvenanceMode) -> serde_json::Result<String> {
        use serde_json::{Value, to_string as json};
        let definition = &self.build_definition;
        let mut out = format!(
            r#"{{"builder":{{"id":{}}},"buildType":"https://mobyproject.org/buildkit@v1""#,
            json(&self.run_details.builder.id)?
        );
        if let Some(deps) = definition
            .resolved_dependencies
            .as_ref()
            .filter(|d| !d.is_empty())
        {
            let materials: Vec<String> = deps
                .iter()
                .map(|d| {
                    let mut m = Vec::new();
                    if !d.uri.is_empty() {
                        m.push(format!(r#""uri":{}"#, json(&d.uri)?));
                    }
                    if !d.digest.is_empty() {
                        m.push(format!(r#""digest":{}"#, json(&d.digest)?));
                    }
                    Ok(format!("{{{}}}", m.join(",")))
                })
                .collect::<serde_json::Result<_>>()?;
            out.push_str(&format!(r#","materials":[{}]"#, materials.join(",")));
        }
        let source = &definition.external_parameters.config_source;
        let mut config_source = Vec::new();
        if !source.uri.is_empty() {
            config_source.push(format!(r#""uri":{}"#, json(&source.uri)?));
        }
        if !source.digest.is_empty() {
            config_source.push(format!(r#""digest":{}"#, json(&source.digest)?));
        }
        if !source.path.is_empty() {
            config_source.push(format!(r#""entryPoint":{}"#, json(&source.path)?));
        }
        // `Environment`: the builder's platform and the custom members of the internal
        // parameters, marshalled through a Go map (sorted).
        let mut environment: BTreeMap<String, Value> = BTreeMap::new();
        let mut build_config = None;
        let mut platform = Value::String(String::new());
        for (k, v) in definition.internal_parameters.iter().flat_map(|m| &m.0) {
            match k.as_str() {
                "buildConfig" => build_config = Some(v.get()),
                "builderPlatform" => platform = serde_json::from_str(v.get())?,
                _ => {
                    environment.insert(k.clone(), serde_json::from_str(v.get())?);
                }
            }
        }
        environment.entry("platform".into()).or_insert(platform);
        // `Parameters`: the members buildx's struct knows, in its order (newer daemons add
        // some, e.g. `compatibilityVersion`, that buildx's decoding drops).
        let request = definition.external_parameters.request.as_ref();
        let parameters: Vec<String> = ["frontend", "args", "secrets", "ssh", "locals"]
            .iter()
            .filter_map(|known| {
                let (k, v) = request?.0.iter().find(|(k, _)| k == known)?;
                let empty = matches!(v.get(), "null" | "\"\"" | "{}" | "[]");
                (!empty).then(|| format!("{}:{}", json(k).unwrap_or_default(), v.get()))
            })
            .collect();
        out.push_str(&format!(
            r#","invocation":{{"configSource":{{{}}},"parameters":{{{}}},"environment":{}}}"#,
            config_source.join(","),
            parameters.join(","),
            json(&environment)?
        ));
        if mode == ProvenanceMode::Min {
            out.push('}');
            return Ok(out);
        }
        if let Some(build_config) = build_config.filter(|b| *b != "null") {
            out.push_str(&format!(r#","buildConfig":{build_config}"#));
        }
        if let Some(md) = &self.run_details.metadata {
            let mut m = Vec::new();
            if !md.invocation_id.is_empty() {
                m.push(format!(
                    r#""buildInvocationID":{}"#,
                    json(&md.invocation_id)?
                ));
            }
            for (key, time) in [
                ("buildStartedOn", &md.started_on),
                ("buildFinishedOn", &md.finished_on),
            ] {
                if let Some(t) = time.as_ref().filter(|t| t.get() != "null") {
                    m.push(format!(r#""{key}":{}"#, t.get()));
                }
            }
            m.push(format!(
                r#""completeness":{{"parameters":{},"environment":true,"materials":{}}}"#,
                md.buildkit_completeness.request, md.buildkit_completeness.resolved_dependencies
            ));
            m.push(format!(r#""reproducible":{}"#, md.buildkit_reproducible));
            m.push(format!(
                r#""https://mobyproject.org/buildkit@v1#metadata":{}"#,
                md.buildkit_metadata.as_ref().map_or("{}", |b| b.get())
            ));
            if md.buildkit_hermetic {
                m.push(r#""https://mobyproject.org/buildkit@v1#hermetic":true"#.into());
            }
            out.push_str(&format!(r#","metadata":{{{}}}"#, m.join(",")));
        }
        out.push('}');
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Valid JSON `text` as Go's `json.Marshal` writes it: no whitespace between tokens, and in
/// strings `<`, `>`, `&`, U+2028 and U+2029 escaped.
fn go_compact(text: &str, out: &mut String) {
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => {
                    escaped = false;
                    out.push(c);
                }
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                _ => out.push(c),
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_read_as_buildx_reads_it() {
        use ProvenanceMode::*;
        for (value, mode) in [
            (None, Min),
            (Some(""), Min),
            (Some("min"), Min),
            (Some("max"), Max),
            (Some("disabled"), Disabled),
            (Some("false"), Disabled),
            (Some("0"), Disabled),
            (Some("F"), Disabled),
            (Some("true"), Min),
            (Some("1"), Min),
            (Some("MAX"), Min),
            (Some("Disabled"), Min),
            (Some("off"), Min),
        ] {
            assert_eq!(ProvenanceMode::parse(value), mode, "{value:?}");
        }
    }

    fn encoded(blob: &str, mode: ProvenanceMode) -> String {
        predicate_json(blob.as_bytes(), "https://slsa.dev/provenance/v0.2", mode)
            .unwrap()
            .get()
            .to_owned()
    }

    const PREDICATE: &str = r#"{
  "builder": {
    "id": ""
  },
  "buildType": "https://mobyproject.org/buildkit@v1",
  "materials": [
    {
      "uri": "pkg:docker/busybox@latest?platform=linux%2Famd64",
      "digest": { "sha256": "ab" }
    }
  ],
  "invocation": {
    "configSource": { "entryPoint": "Dockerfile" },
    "parameters": { "frontend": "dockerfile.v0", "args": { "build-arg:A": "x <y> & z" } }
  },
  "buildConfig": { "llbDefinition": [ { "id": "step0" } ] },
  "metadata": { "buildInvocationID": "abc", "completeness": { "parameters": true } }
}"#;

    #[test]
    fn min_mode_drops_build_config_and_metadata_and_keeps_go_order() {
        let min = encoded(PREDICATE, ProvenanceMode::Min);
        assert_eq!(
            min,
            concat!(
                r#"{"builder":{"id":""},"buildType":"https://mobyproject.org/buildkit@v1","#,
                r#""materials":[{"uri":"pkg:docker/busybox@latest?platform=linux%2Famd64","#,
                r#""digest":{"sha256":"ab"}}],"invocation":{"configSource":{"entryPoint":"#,
                r#""Dockerfile"},"parameters":{"frontend":"dockerfile.v0","args":{"#,
                r#""build-arg:A":"x \u003cy\u003e \u0026 z"}}}}"#
            )
        );
    }

    #[test]
    fn max_mode_keeps_every_member() {
        let max = encoded(PREDICATE, ProvenanceMode::Max);
        let keys: Vec<String> = serde_json::from_str::<Members>(&max)
            .unwrap()
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "builder",
                "buildType",
                "materials",
                "invocation",
                "buildConfig",
                "metadata"
            ]
        );
        assert!(max.ends_with(
            r#""metadata":{"buildInvocationID":"abc","completeness":{"parameters":true}}}"#
        ));
    }

    #[test]
    fn a_blob_that_is_not_an_object_is_refused() {
        for bad in ["[1]", "not json", ""] {
            let err = predicate_json(bad.as_bytes(), SLSA_V1, ProvenanceMode::Min).unwrap_err();
            assert!(
                format!("{err:#}").contains("failed to unmarshal provenance"),
                "{err:#}"
            );
        }
    }

    #[test]
    fn the_metadata_file_is_indented_as_serde_json_and_go_indent_it() {
        let metadata = serde_json::json!({
            "containerimage.descriptor": {"mediaType": "m", "size": 3, "annotations": {}},
            "empty": [],
            "image.name": "a \"quoted\" {name}, [x]: y",
            "buildx.build.warnings": [{"short": "c2hvcnQ=", "range": [{"start": {"line": 1}}]}],
        });
        let metadata = metadata.as_object().unwrap();
        assert_eq!(
            metadata_file_text(metadata, &BTreeMap::new()).unwrap(),
            serde_json::to_string_pretty(metadata).unwrap()
        );
        let predicate = predicate_json(
            PREDICATE.as_bytes(),
            "https://slsa.dev/provenance/v0.2",
            ProvenanceMode::Min,
        )
        .unwrap();
        let predicates = BTreeMap::from([(PROVENANCE_KEY.to_owned(), predicate)]);
        let text = metadata_file_text(metadata, &predicates).unwrap();
        assert!(
            text.contains(concat!(
                "  \"buildx.build.provenance\": {\n",
                "    \"builder\": {\n",
                "      \"id\": \"\"\n",
                "    },\n",
                "    \"buildType\": \"https://mobyproject.org/buildkit@v1\",\n",
                "    \"materials\": [\n",
            )),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back["buildx.build.provenance"]["buildType"],
            "https://mobyproject.org/buildkit@v1"
        );
        assert_eq!(back["image.name"], metadata["image.name"]);
    }

    #[test]
    fn a_v1_predicate_is_written_as_buildx_converts_it_to_v02() {
        let v1 = r#"{"buildDefinition":{"buildType":"https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md",
          "externalParameters":{"configSource":{"path":"Dockerfile"},
            "request":{"frontend":"dockerfile.v0","args":{"build-arg:A":"<x>"},"locals":[{"name":"context"}],"compatibilityVersion":30}},
          "internalParameters":{"buildConfig":{"llbDefinition":[{"id":"step0"}]},"builderPlatform":"linux/amd64","targetPlatform":"linux/arm64","dockerfileVersion":"1.28.0"},
          "resolvedDependencies":[{"uri":"pkg:docker/busybox@latest","digest":{"sha256":"ab"},"name":"n"}]},
          "runDetails":{"builder":{"id":""},"metadata":{"invocationId":"inv","startedOn":"2026-01-01T00:00:00.5Z",
            "buildkit_metadata":{"vcs":{"revision":"r"}},"buildkit_completeness":{"request":true,"resolvedDependencies":false}}}}"#;
        let min = predicate_json(v1.as_bytes(), SLSA_V1, ProvenanceMode::Min).unwrap();
        assert_eq!(
            min.get(),
            concat!(
                r#"{"builder":{"id":""},"buildType":"https://mobyproject.org/buildkit@v1","#,
                r#""materials":[{"uri":"pkg:docker/busybox@latest","digest":{"sha256":"ab"}}],"#,
                r#""invocation":{"configSource":{"entryPoint":"Dockerfile"},"parameters":{"#,
                r#""frontend":"dockerfile.v0","args":{"build-arg:A":"\u003cx\u003e"},"#,
                r#""locals":[{"name":"context"}]},"environment":{"dockerfileVersion":"1.28.0","#,
                r#""platform":"linux/amd64","targetPlatform":"linux/arm64"}}}"#
            )
        );
        let max = predicate_json(v1.as_bytes(), SLSA_V1, ProvenanceMode::Max).unwrap();
        assert!(
            max.get().ends_with(concat!(
                r#"}},"buildConfig":{"llbDefinition":[{"id":"step0"}]},"metadata":{"#,
                r#""buildInvocationID":"inv","buildStartedOn":"2026-01-01T00:00:00.5Z","#,
                r#""completeness":{"parameters":true,"environment":true,"materials":false},"#,
                r#""reproducible":false,"https://mobyproject.org/buildkit@v1#metadata":"#,
                r#"{"vcs":{"revision":"r"}}}}"#
            )),
            "{}",
            max.get()
        );
    }
}
