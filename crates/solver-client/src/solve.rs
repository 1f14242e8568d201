//! One solve: a `Control.Solve` call with its `Control.Status` progress stream and the
//! session that serves it, run together (the daemon waits only 5 s for the session and 6 s
//! for the job named by the status request), with typed errors that keep BuildKit's error
//! details (the failing vertex, the Dockerfile lines).
//!
//! ```no_run
//! # async fn demo(client: brix_solver_client::ControlClient) -> Result<(), Box<dyn std::error::Error>> {
//! use brix_solver_client::session::{Session, SyncedDir};
//! use brix_solver_client::solve::{SolveSpec, solve};
//! let mut session = Session::new("hello");
//! session.add_local("context", SyncedDir::new("."));
//! session.add_local("dockerfile", SyncedDir::new("."));
//! let running = session.run_over_control(&mut client.raw()).await?;
//! let spec = SolveSpec::dockerfile().attr("platform", "linux/arm64");
//! let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(async move { while let Some(batch) = rx.recv().await { println!("{batch:?}") } });
//! let result = solve(&client, spec, running, events).await?;
//! println!("{:?}", result.exporter_response);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;

use crate::control::{ClientError, ControlClient};
use crate::progress::{ProgressEvent, SourceLocation, events_from_status};
use crate::proto::errdefs;
use crate::proto::google::rpc;
use crate::proto::moby::buildkit::v1 as pb_control;
use crate::session::{RunningSession, SessionError};

/// The Dockerfile frontend built into BuildKit.
pub const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";

/// How long to keep reading progress after `Solve` returned (the stream normally ends by
/// itself right away; BuildKit's Go client gives up after the same 5 s of silence).
const STATUS_DRAIN: Duration = Duration::from_secs(5);

/// What to solve and where the result goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolveSpec {
    /// The job ID (`SolveRequest.Ref`); a random one is used when empty.
    pub build_ref: String,
    /// The frontend, e.g. [`DOCKERFILE_FRONTEND`].
    pub frontend: String,
    /// Frontend options: `filename`, `target`, `platform`, `build-arg:NAME`, ...
    pub frontend_attrs: BTreeMap<String, String>,
    /// Outputs. The index of each is its exporter ID on the session's FileSend calls.
    pub exporters: Vec<ExporterSpec>,
    /// Entitlements asked for (`network.host`, `security.insecure`).
    pub entitlements: Vec<String>,
    /// Remote caches to import from (`--cache-from`).
    pub cache_imports: Vec<CacheOption>,
    /// Remote caches to export to (`--cache-to`).
    pub cache_exports: Vec<CacheOption>,
}

impl SolveSpec {
    /// A Dockerfile build (`dockerfile.v0`) with no options yet.
    pub fn dockerfile() -> Self {
        SolveSpec {
            frontend: DOCKERFILE_FRONTEND.to_owned(),
            ..Default::default()
        }
    }

    /// Sets one frontend attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.frontend_attrs.insert(key.into(), value.into());
        self
    }

    /// Adds an output.
    pub fn exporter(mut self, exporter: ExporterSpec) -> Self {
        self.exporters.push(exporter);
        self
    }

    pub(crate) fn to_request(&self, build_ref: &str, session_id: &str) -> pb_control::SolveRequest {
        let exporters: Vec<pb_control::Exporter> = self
            .exporters
            .iter()
            .map(|e| pb_control::Exporter {
                r#type: e.kind.clone(),
                attrs: e.attrs.clone(),
            })
            .collect();
        // Daemons older than v0.13 read only the single deprecated exporter fields.
        let (exporter_deprecated, exporter_attrs_deprecated) = exporters
            .first()
            .map(|e| (e.r#type.clone(), e.attrs.clone()))
            .unwrap_or_default();
        let entries = |options: &[CacheOption]| -> Vec<pb_control::CacheOptionsEntry> {
            options
                .iter()
                .map(|c| pb_control::CacheOptionsEntry {
                    r#type: c.kind.clone(),
                    attrs: c.attrs.clone(),
                })
                .collect()
        };
        let mut frontend_attrs = self.frontend_attrs.clone();
        // A frontend resolves its cache imports itself, from this attribute (the JSON of the
        // protobuf entries, as BuildKit's Go client writes it).
        if !self.frontend.is_empty() && !self.cache_imports.is_empty() {
            #[derive(serde::Serialize)]
            struct Entry<'a> {
                #[serde(rename = "Type")]
                kind: &'a str,
                #[serde(rename = "Attrs", skip_serializing_if = "BTreeMap::is_empty")]
                attrs: &'a BTreeMap<String, String>,
            }
            let json: Vec<Entry<'_>> = self
                .cache_imports
                .iter()
                .map(|c| Entry {
                    kind: &c.kind,
                    attrs: &c.attrs,
                })
                .collect();
            if let Ok(json) = serde_json::to_string(&json) {
                frontend_attrs
                    .entry("cache-imports".to_owned())
                    .or_insert(json);
            }
        }
        let cache = (!self.cache_imports.is_empty() || !self.cache_exports.is_empty()).then(|| {
            pb_control::CacheOptions {
                exports: entries(&self.cache_exports),
                imports: entries(&self.cache_imports),
                ..Default::default()
            }
        });
        pb_control::SolveRequest {
            r#ref: build_ref.to_owned(),
            session: session_id.to_owned(),
            frontend: self.frontend.clone(),
            frontend_attrs,
            cache,
            entitlements: self.entitlements.clone(),
            exporters,
            exporter_deprecated,
            exporter_attrs_deprecated,
            ..Default::default()
        }
    }
}

/// One output of a solve: an exporter type (`image`, `moby`, `local`, `tar`, `oci`,
/// `docker`) and its attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExporterSpec {
    /// The exporter type.
    pub kind: String,
    /// Its attributes, e.g. `name`, `push`, `push-by-digest`.
    pub attrs: BTreeMap<String, String>,
}

impl ExporterSpec {
    /// An exporter of type `kind` without attributes.
    pub fn new(kind: impl Into<String>) -> Self {
        ExporterSpec {
            kind: kind.into(),
            attrs: BTreeMap::new(),
        }
    }

    /// Sets one attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.insert(key.into(), value.into());
        self
    }
}

/// One remote cache import or export (`SolveRequest.Cache`): a backend (`registry`, `local`,
/// `inline`, `gha`, `s3`, `azblob`) and its attributes (`ref`, `mode`, `dest`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOption {
    /// The backend.
    pub kind: String,
    /// Its attributes.
    pub attrs: BTreeMap<String, String>,
}

/// What a successful solve returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolveResult {
    /// The job ID the solve ran under.
    pub build_ref: String,
    /// The exporters' response: `containerimage.digest`, `containerimage.descriptor`
    /// (base64 JSON), `containerimage.config.digest`, `image.name`, ...
    pub exporter_response: BTreeMap<String, String>,
}

/// Why a build failed, with what BuildKit's error details say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveFailure {
    /// The daemon's message, e.g. `process "/bin/sh -c false" did not complete
    /// successfully: exit code: 1`.
    pub message: String,
    /// The gRPC code.
    pub code: tonic::Code,
    /// Digest of the vertex that failed, when the daemon said.
    pub vertex: Option<String>,
    /// Where in the Dockerfile (or other source) the failure is, when the daemon said.
    pub locations: Vec<SourceLocation>,
}

impl std::fmt::Display for SolveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to solve: {}", self.message)
    }
}

/// A failed solve.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The session could not be served.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The build itself failed (a step, the Dockerfile, an export).
    #[error("{0}")]
    Failed(Box<SolveFailure>),
    /// The daemon could not be reached or refused the call.
    #[error(transparent)]
    Client(ClientError),
}

impl SolveError {
    /// The build failure details, when the build itself failed.
    pub fn failure(&self) -> Option<&SolveFailure> {
        match self {
            SolveError::Failed(f) => Some(f),
            _ => None,
        }
    }
}

/// Runs one solve over `session` (already connected), streaming its progress to `progress`
/// (one batch per status message), and closes the session once the solve — exporters
/// included — has finished. Dropping the returned future cancels the build: the gRPC calls
/// are reset and the daemon stops the job, and the session goes with it.
pub async fn solve(
    client: &ControlClient,
    spec: SolveSpec,
    session: RunningSession,
    progress: mpsc::UnboundedSender<Vec<ProgressEvent>>,
) -> Result<SolveResult, SolveError> {
    let build_ref = if spec.build_ref.is_empty() {
        new_build_ref()
    } else {
        spec.build_ref.clone()
    };
    let request = spec.to_request(&build_ref, session.id());
    let status_task = follow_status(client, &build_ref, progress);

    let outcome = client.solve(request).await;
    // The session stays up until here: exporters call back into it during Solve, and each
    // waits for its receiver to finish (the FileSend response ends after the last byte is
    // written, a local output's FIN after the last file), so nothing is still being written
    // when Solve returns. The daemon keeps its end of the tunnel open until the client
    // leaves, so a graceful close would only wait; like the Go client, just hang up.
    drop(session);
    drain_status(status_task).await;
    let response = outcome.map_err(failure_from_client_error)?;
    Ok(SolveResult {
        build_ref,
        exporter_response: response.exporter_response,
    })
}

/// Streams the progress of the job `build_ref` to `progress`, one batch per status message.
/// Status is opened alongside Solve: the daemon holds it up to 6 s for the job to appear.
pub(crate) fn follow_status(
    client: &ControlClient,
    build_ref: &str,
    progress: mpsc::UnboundedSender<Vec<ProgressEvent>>,
) -> AbortOnDrop {
    let status_client = client.clone();
    let status_ref = build_ref.to_owned();
    AbortOnDrop(tokio::spawn(async move {
        let mut stream = match status_client.status(&status_ref).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "status stream not available");
                return;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    let events = events_from_status(response);
                    if !events.is_empty() && progress.send(events).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "status stream ended with an error");
                    return;
                }
            }
        }
    }))
}

/// Lets the progress stream of a finished solve deliver what is left (it normally ends by
/// itself right away), then closes it.
pub(crate) async fn drain_status(mut status_task: AbortOnDrop) {
    if tokio::time::timeout(STATUS_DRAIN, &mut status_task.0)
        .await
        .is_err()
    {
        tracing::debug!("status stream still open {STATUS_DRAIN:?} after the solve; closing it");
    }
}

/// Aborts the task when dropped, so cancelling a solve also stops its status reader.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn failure_from_client_error(err: ClientError) -> SolveError {
    let Some(status) = err.grpc_status() else {
        return SolveError::Client(err);
    };
    SolveError::Failed(Box::new(decode_failure(status)))
}

/// Reads BuildKit's typed error details (`errdefs.Vertex`, `errdefs.Source`) out of a gRPC
/// status. The payloads are protobuf despite their `+json` type URLs.
pub fn decode_failure(status: &tonic::Status) -> SolveFailure {
    let mut failure = SolveFailure {
        message: status.message().to_owned(),
        code: status.code(),
        vertex: None,
        locations: Vec::new(),
    };
    let Ok(details) = rpc::Status::decode(status.details()) else {
        tracing::debug!(len = status.details().len(), "undecodable error details");
        return failure;
    };
    for any in details.details {
        let url = any.type_url.as_str();
        if url.ends_with("errdefs.Vertex+json") {
            if let Some(digest) = decode_vertex_detail(&any.value) {
                failure.vertex = Some(digest);
            }
        } else if url.ends_with("errdefs.Source+json")
            && let Some(loc) = decode_source_detail(&any.value)
        {
            failure.locations.push(loc);
        } else if let Some(prefix) = wrapping_detail_prefix(url, &any.value) {
            // BuildKit's Go client wraps the error in the typed error each of these details
            // stands for, whose message names it: the message the user sees from buildx.
            failure.message = format!("{prefix}: {}", failure.message);
        }
    }
    failure
}

/// The words BuildKit's Go client puts before an error that carries an `errdefs.Subrequest`
/// or `errdefs.FrontendCap` detail (`unsupported request frontend.foo`, `unsupported frontend
/// capability …`), from the detail's protobuf or protojson payload.
fn wrapping_detail_prefix(url: &str, value: &[u8]) -> Option<String> {
    let name = |value: &[u8]| -> Option<String> {
        if value.first() == Some(&b'{') {
            let v: serde_json::Value = serde_json::from_slice(value).ok()?;
            return Some(v["name"].as_str().unwrap_or_default().to_owned());
        }
        None
    };
    if url.ends_with("errdefs.Subrequest+json") {
        let name =
            name(value).or_else(|| errdefs::Subrequest::decode(value).ok().map(|s| s.name))?;
        Some(format!("unsupported request {name}"))
    } else if url.ends_with("errdefs.FrontendCap+json") {
        let name =
            name(value).or_else(|| errdefs::FrontendCap::decode(value).ok().map(|s| s.name))?;
        Some(format!("unsupported frontend capability {name}"))
    } else {
        None
    }
}

/// An `errdefs.Vertex` detail. Despite the `+json` type URL, older daemons send protobuf
/// bytes; current ones send protojson. Both are read.
fn decode_vertex_detail(value: &[u8]) -> Option<String> {
    if value.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(value).ok()?;
        return v["digest"]
            .as_str()
            .map(str::to_owned)
            .filter(|d| !d.is_empty());
    }
    errdefs::Vertex::decode(value)
        .ok()
        .map(|v| v.digest)
        .filter(|d| !d.is_empty())
}

/// An `errdefs.Source` detail (protojson or protobuf, see [`decode_vertex_detail`]).
fn decode_source_detail(value: &[u8]) -> Option<SourceLocation> {
    if value.first() == Some(&b'{') {
        use base64::Engine;
        let v: serde_json::Value = serde_json::from_slice(value).ok()?;
        let info = &v["info"];
        let data = info["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default();
        let line = |p: &serde_json::Value| p["line"].as_i64().and_then(|l| u32::try_from(l).ok());
        let lines = v["ranges"]
            .as_array()
            .map(|ranges| {
                ranges
                    .iter()
                    .filter_map(|r| {
                        let start = line(&r["start"])?;
                        let end = line(&r["end"]).unwrap_or(start).max(start);
                        Some((start, end))
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(SourceLocation {
            filename: info["filename"].as_str().unwrap_or_default().to_owned(),
            data,
            lines,
        });
    }
    let s = errdefs::Source::decode(value).ok()?;
    SourceLocation::from_pb(s.info.as_ref(), &s.ranges)
}

/// A 25-character base-36 random ID, the format BuildKit's own clients use for job IDs (and
/// session IDs: `identity.NewID`; never contains `:`).
pub fn new_build_ref() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    let mut n = if random.is_ok() {
        u128::from_le_bytes(bytes)
    } else {
        // No /dev/urandom: fall back to the std hasher's per-process random keys.
        use std::hash::{BuildHasher, Hasher};
        let mut value = 0u128;
        for _ in 0..2 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default(),
            );
            value = (value << 64) | u128::from(h.finish());
        }
        value
    };
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 25];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.iter().map(|b| *b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pb;

    #[test]
    fn request_carries_session_frontend_and_both_exporter_forms() {
        let spec = SolveSpec::dockerfile()
            .attr("platform", "linux/arm64")
            .exporter(ExporterSpec::new("image").attr("push", "true"));
        let req = spec.to_request("ref1", "sess1");
        assert_eq!(req.r#ref, "ref1");
        assert_eq!(req.session, "sess1");
        assert_eq!(req.frontend, "dockerfile.v0");
        assert_eq!(req.frontend_attrs["platform"], "linux/arm64");
        assert_eq!(req.exporters.len(), 1);
        assert_eq!(req.exporter_deprecated, "image");
        assert_eq!(req.exporter_attrs_deprecated["push"], "true");
    }

    #[test]
    fn decodes_vertex_and_source_details() {
        let source = errdefs::Source {
            info: Some(pb::SourceInfo {
                filename: "Dockerfile".into(),
                data: b"FROM busybox\nRUN false\n".to_vec(),
                definition: None,
                language: "Dockerfile".into(),
            }),
            ranges: vec![pb::Range {
                start: Some(pb::Position {
                    line: 2,
                    character: 0,
                }),
                end: Some(pb::Position {
                    line: 2,
                    character: 0,
                }),
            }],
        };
        let details = rpc::Status {
            code: 2,
            message: "boom".into(),
            details: vec![
                prost_types::Any {
                    type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                    value: errdefs::Vertex {
                        digest: "sha256:abc".into(),
                    }
                    .encode_to_vec(),
                },
                prost_types::Any {
                    type_url: "github.com/moby/buildkit/errdefs.Source+json".into(),
                    value: source.encode_to_vec(),
                },
            ],
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unknown,
            "process did not complete successfully",
            details.encode_to_vec().into(),
        );
        let failure = decode_failure(&status);
        assert_eq!(failure.vertex.as_deref(), Some("sha256:abc"));
        assert_eq!(failure.locations.len(), 1);
        assert_eq!(failure.locations[0].lines, vec![(2, 2)]);
        assert!(failure.to_string().starts_with("failed to solve: process"));
    }

    #[test]
    fn decodes_protojson_details_from_current_daemons() {
        let source = br#"{"info":{"filename":"Dockerfile","data":"RlJPTSBhClJVTk4geAo="},"ranges":[{"start":{"line":2},"end":{"line":2}}]}"#;
        let loc = decode_source_detail(source).expect("source");
        assert_eq!(loc.filename, "Dockerfile");
        assert_eq!(loc.lines, vec![(2, 2)]);
        assert_eq!(loc.excerpt()[1], "   2 | >>> RUNN x");
        assert_eq!(
            decode_vertex_detail(br#"{"digest":"sha256:abc"}"#).as_deref(),
            Some("sha256:abc")
        );
    }

    #[test]
    fn subrequest_and_capability_details_name_what_is_missing() {
        let details = rpc::Status {
            code: 12,
            message: "unsupported request frontend.foo".into(),
            details: vec![prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Subrequest+json".into(),
                value: errdefs::Subrequest {
                    name: "frontend.foo".into(),
                }
                .encode_to_vec(),
            }],
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unimplemented,
            "unsupported request frontend.foo",
            details.encode_to_vec().into(),
        );
        assert_eq!(
            decode_failure(&status).message,
            "unsupported request frontend.foo: unsupported request frontend.foo"
        );
        assert_eq!(
            wrapping_detail_prefix(
                "github.com/moby/buildkit/errdefs.FrontendCap+json",
                br#"{"name":"moby.buildkit.frontend.contexts"}"#
            )
            .as_deref(),
            Some("unsupported frontend capability moby.buildkit.frontend.contexts")
        );
    }

    #[test]
    fn build_refs_are_random_base36() {
        let a = new_build_ref();
        assert_eq!(a.len(), 25);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, new_build_ref());
    }

    #[test]
    fn caches_go_in_the_request_and_imports_in_the_frontend_s_attribute() {
        let mut spec = SolveSpec::dockerfile();
        spec.cache_imports.push(CacheOption {
            kind: "local".into(),
            attrs: BTreeMap::from([
                ("src".into(), "/c".into()),
                ("digest".into(), "sha256:ab".into()),
            ]),
        });
        spec.cache_exports.push(CacheOption {
            kind: "registry".into(),
            attrs: BTreeMap::from([("ref".into(), "r/x:c".into())]),
        });
        let request = spec.to_request("ref", "session");
        let cache = request.cache.expect("cache options");
        assert_eq!(cache.imports[0].r#type, "local");
        assert_eq!(cache.exports[0].attrs["ref"], "r/x:c");
        assert_eq!(
            request.frontend_attrs["cache-imports"],
            r#"[{"Type":"local","Attrs":{"digest":"sha256:ab","src":"/c"}}]"#
        );
        assert!(SolveSpec::dockerfile().to_request("r", "s").cache.is_none());
    }
}
