//! Typed build progress: what a `Control.Status` stream reports, as events a renderer can use
//! without knowing the protobuf types, and [`VertexTable`], which merges the stream's deltas
//! by vertex digest (BuildKit re-sends a vertex each time it starts, completes, fails or is
//! found cached).

use std::collections::HashMap;
use std::time::SystemTime;

use crate::proto::moby::buildkit::v1 as pb_control;
use crate::proto::pb;
use crate::workers::system_time;

/// One thing the daemon reported about a build.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// A vertex (build step) appeared or changed state.
    Vertex(VertexUpdate),
    /// Sub-progress of a vertex: a layer download, "transferring context", ...
    Status(StatusUpdate),
    /// Output of a running step.
    Log(LogChunk),
    /// A build warning (e.g. a Dockerfile lint finding).
    Warning(BuildWarning),
}

/// The full record of one vertex as last sent by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexUpdate {
    /// The vertex digest, unique within one solve.
    pub digest: String,
    /// Digests of the vertices it depends on.
    pub inputs: Vec<String>,
    /// Display name, e.g. `[2/3] RUN uname -m > /arch`.
    pub name: String,
    /// When it started running, if it has.
    pub started: Option<SystemTime>,
    /// When it completed (successfully or not), if it has.
    pub completed: Option<SystemTime>,
    /// Its result came from the cache.
    pub cached: bool,
    /// Why it failed; `None` while running or after success.
    pub error: Option<String>,
    /// The progress group it belongs to (`id`, `name`): such vertices count as one step.
    pub progress_group: Option<(String, String)>,
}

/// Where a vertex is, derived from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VertexState {
    /// Known but not started.
    Pending,
    /// Started, not completed.
    Running,
    /// Completed from the cache.
    Cached,
    /// Completed successfully.
    Done,
    /// Completed with an error.
    Failed,
    /// Stopped because the build was cancelled.
    Canceled,
}

impl VertexUpdate {
    /// The vertex's state.
    pub fn state(&self) -> VertexState {
        match (&self.error, self.completed, self.started) {
            (Some(e), _, _) if e.ends_with("context canceled") => VertexState::Canceled,
            (Some(_), _, _) => VertexState::Failed,
            (None, Some(_), _) if self.cached => VertexState::Cached,
            (None, Some(_), _) => VertexState::Done,
            (None, None, Some(_)) => VertexState::Running,
            (None, None, None) if self.cached => VertexState::Cached,
            (None, None, None) => VertexState::Pending,
        }
    }
}

/// Sub-progress of a vertex (`#5 transferring context: 30B done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The vertex it belongs to.
    pub vertex: String,
    /// What it is, e.g. `sha256:…` or `transferring context:`; unique within the vertex.
    pub id: String,
    /// An optional display name.
    pub name: String,
    /// Progress so far (usually bytes).
    pub current: i64,
    /// Expected total; 0 when unknown.
    pub total: i64,
    /// When this update was made.
    pub timestamp: Option<SystemTime>,
    /// When this sub-task started.
    pub started: Option<SystemTime>,
    /// When it completed.
    pub completed: Option<SystemTime>,
}

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output (1).
    Stdout,
    /// Standard error (2).
    Stderr,
    /// Anything else the daemon sent.
    Other(i64),
}

/// Raw output of a running step; may end in the middle of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The vertex it belongs to.
    pub vertex: String,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The bytes.
    pub data: Vec<u8>,
    /// When it was written.
    pub timestamp: Option<SystemTime>,
}

/// A build warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildWarning {
    /// The vertex it belongs to.
    pub vertex: String,
    /// Severity as the daemon numbers it.
    pub level: i64,
    /// One-line summary.
    pub short: String,
    /// Further lines.
    pub detail: Vec<String>,
    /// A link with more information.
    pub url: String,
    /// Where in the source (e.g. the Dockerfile) it applies.
    pub location: Option<SourceLocation>,
    /// The source's language as the frontend names it (`Dockerfile`), empty if none.
    pub language: String,
    /// The ranges as the daemon sent them, with their columns (0 where it sent none).
    pub ranges: Vec<SourceRange>,
}

/// A range in a source file: 1-based line and column of its start and end, as BuildKit's
/// `pb.Range` (0 where the daemon left a field out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceRange {
    /// Start line and column.
    pub start: (i32, i32),
    /// End line and column.
    pub end: (i32, i32),
}

/// A place in a build's source file, e.g. a Dockerfile line range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file name as the frontend knows it (e.g. `Dockerfile`).
    pub filename: String,
    /// The file's contents, when the daemon sent them (to quote the lines).
    pub data: Vec<u8>,
    /// 1-based inclusive line ranges.
    pub lines: Vec<(u32, u32)>,
}

impl SourceLocation {
    /// Builds a location from the protobuf source info and ranges.
    pub fn from_pb(info: Option<&pb::SourceInfo>, ranges: &[pb::Range]) -> Option<Self> {
        let info = info?;
        let lines = ranges
            .iter()
            .filter_map(|r| {
                let start = u32::try_from(r.start?.line).ok()?;
                let end = r
                    .end
                    .and_then(|e| u32::try_from(e.line).ok())
                    .unwrap_or(start)
                    .max(start);
                Some((start, end))
            })
            .collect();
        Some(SourceLocation {
            filename: info.filename.clone(),
            data: info.data.clone(),
            lines,
        })
    }

    /// The source lines the ranges cover, numbered (`   2 | RUN foo`), with a line of context
    /// before and after, as buildx prints them under an error. Empty without file data.
    pub fn excerpt(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.data);
        let all: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for &(start, end) in &self.lines {
            let first = start.saturating_sub(1).max(1);
            let last = (end + 1).min(u32::try_from(all.len()).unwrap_or(u32::MAX));
            for n in first..=last {
                let Some(line) = all.get(n as usize - 1) else {
                    continue;
                };
                let mark = if (start..=end).contains(&n) {
                    ">>>"
                } else {
                    "   "
                };
                out.push(format!(" {n:>3} | {mark} {line}"));
            }
        }
        out
    }
}

/// Converts one `StatusResponse` delta into events, vertices first, then statuses, logs and
/// warnings (the order BuildKit's own UI applies them in).
pub fn events_from_status(response: pb_control::StatusResponse) -> Vec<ProgressEvent> {
    let mut events = Vec::with_capacity(
        response.vertexes.len()
            + response.statuses.len()
            + response.logs.len()
            + response.warnings.len(),
    );
    for v in response.vertexes {
        events.push(ProgressEvent::Vertex(VertexUpdate {
            digest: v.digest,
            inputs: v.inputs,
            name: v.name,
            started: v.started.and_then(system_time),
            completed: v.completed.and_then(system_time),
            cached: v.cached,
            error: Some(v.error).filter(|e| !e.is_empty()),
            progress_group: v.progress_group.map(|g| (g.id, g.name)),
        }));
    }
    for s in response.statuses {
        events.push(ProgressEvent::Status(StatusUpdate {
            vertex: s.vertex,
            id: s.id,
            name: s.name,
            current: s.current,
            total: s.total,
            timestamp: s.timestamp.and_then(system_time),
            started: s.started.and_then(system_time),
            completed: s.completed.and_then(system_time),
        }));
    }
    for l in response.logs {
        events.push(ProgressEvent::Log(LogChunk {
            vertex: l.vertex,
            stream: match l.stream {
                1 => LogStream::Stdout,
                2 => LogStream::Stderr,
                n => LogStream::Other(n),
            },
            data: l.msg,
            timestamp: l.timestamp.and_then(system_time),
        }));
    }
    for w in response.warnings {
        let location = SourceLocation::from_pb(w.info.as_ref(), &w.ranges);
        events.push(ProgressEvent::Warning(BuildWarning {
            vertex: w.vertex,
            level: w.level,
            short: String::from_utf8_lossy(&w.short).into_owned(),
            detail: w
                .detail
                .iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect(),
            url: w.url,
            language: w
                .info
                .as_ref()
                .map(|i| i.language.clone())
                .unwrap_or_default(),
            ranges: w
                .ranges
                .iter()
                .map(|r| {
                    let pos = |p: Option<pb::Position>| {
                        p.map(|p| (p.line, p.character)).unwrap_or_default()
                    };
                    SourceRange {
                        start: pos(r.start),
                        end: pos(r.end),
                    }
                })
                .collect(),
            location,
        }));
    }
    events
}

/// Vertices of one solve, merged by digest, in the order they first appeared.
#[derive(Debug, Default, Clone)]
pub struct VertexTable {
    order: Vec<String>,
    by_digest: HashMap<String, VertexUpdate>,
}

impl VertexTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges a vertex record. A later record replaces the earlier one, except that a start
    /// time, once known, is kept (a re-sent record may omit it) and the earliest wins.
    /// Returns true when the vertex is new.
    pub fn apply(&mut self, update: &VertexUpdate) -> bool {
        match self.by_digest.get_mut(&update.digest) {
            Some(existing) => {
                let started = match (existing.started, update.started) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                *existing = update.clone();
                existing.started = started;
                false
            }
            None => {
                self.order.push(update.digest.clone());
                self.by_digest.insert(update.digest.clone(), update.clone());
                true
            }
        }
    }

    /// The vertex with this digest.
    pub fn get(&self, digest: &str) -> Option<&VertexUpdate> {
        self.by_digest.get(digest)
    }

    /// All vertices, in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = &VertexUpdate> {
        self.order.iter().filter_map(|d| self.by_digest.get(d))
    }

    /// How many vertices there are.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no vertex has been seen.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The vertices that failed (not cancelled), in first-seen order.
    pub fn failed(&self) -> impl Iterator<Item = &VertexUpdate> {
        self.iter().filter(|v| v.state() == VertexState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(secs: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: secs,
            nanos: 0,
        })
    }

    #[test]
    fn converts_a_delta_and_merges_by_digest() {
        let first = pb_control::StatusResponse {
            vertexes: vec![pb_control::Vertex {
                digest: "sha256:a".into(),
                name: "[1/2] FROM busybox".into(),
                started: ts(100),
                ..Default::default()
            }],
            logs: vec![pb_control::VertexLog {
                vertex: "sha256:a".into(),
                stream: 1,
                msg: b"hello\n".to_vec(),
                timestamp: ts(101),
            }],
            ..Default::default()
        };
        let second = pb_control::StatusResponse {
            vertexes: vec![pb_control::Vertex {
                digest: "sha256:a".into(),
                name: "[1/2] FROM busybox".into(),
                completed: ts(102),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut table = VertexTable::new();
        let events = events_from_status(first);
        assert_eq!(events.len(), 2);
        let ProgressEvent::Vertex(v) = &events[0] else {
            panic!("vertex first")
        };
        assert_eq!(v.state(), VertexState::Running);
        assert!(table.apply(v));
        let ProgressEvent::Log(l) = &events[1] else {
            panic!("then the log")
        };
        assert_eq!(l.stream, LogStream::Stdout);
        let events = events_from_status(second);
        let ProgressEvent::Vertex(v) = &events[0] else {
            panic!("vertex")
        };
        assert!(!table.apply(v));
        let merged = table.get("sha256:a").expect("merged");
        assert_eq!(merged.state(), VertexState::Done);
        // The start time survives a record that omits it.
        assert_eq!(
            merged.started,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn states_cover_cached_failed_and_canceled() {
        let base = VertexUpdate {
            digest: "d".into(),
            inputs: vec![],
            name: "n".into(),
            started: None,
            completed: Some(SystemTime::UNIX_EPOCH),
            cached: true,
            error: None,
            progress_group: None,
        };
        assert_eq!(base.state(), VertexState::Cached);
        let failed = VertexUpdate {
            cached: false,
            error: Some("exit code: 1".into()),
            ..base.clone()
        };
        assert_eq!(failed.state(), VertexState::Failed);
        let canceled = VertexUpdate {
            error: Some("rpc error: context canceled".into()),
            ..failed
        };
        assert_eq!(canceled.state(), VertexState::Canceled);
    }

    #[test]
    fn excerpt_marks_the_error_lines() {
        let loc = SourceLocation {
            filename: "Dockerfile".into(),
            data: b"FROM busybox\nRUN nope\nCMD x\n".to_vec(),
            lines: vec![(2, 2)],
        };
        assert_eq!(
            loc.excerpt(),
            vec![
                "   1 |     FROM busybox",
                "   2 | >>> RUN nope",
                "   3 |     CMD x"
            ]
        );
    }
}
