//! Build history: the records a BuildKit daemon keeps of each build
//! (`Control.ListenBuildHistory`, `Control.UpdateBuildHistory`), and the blobs they point at
//! — step logs, traces, provenance, error details — read from the daemon's content store
//! (containerd's `Content` service, which buildkitd serves on the same connection).
//!
//! ```no_run
//! # async fn demo(client: brix_solver_client::ControlClient) -> Result<(), Box<dyn std::error::Error>> {
//! use brix_solver_client::history::HistoryQuery;
//! let history = client.build_history(&HistoryQuery::default()).await?;
//! for entry in &history.records {
//!     println!("{} {:?}", entry.record.r#ref, entry.created_at());
//! }
//! if let Some(logs) = history.records.first().and_then(|e| e.record.logs.as_ref()) {
//!     let bytes = client.read_blob(&logs.digest, 16 << 20).await?;
//!     println!("{} bytes of logs", bytes.len());
//! }
//! # Ok(()) }
//! ```

use std::time::SystemTime;

use prost::Message;

use crate::control::{ClientError, ControlClient};
use crate::proto::containerd::services::content::v1 as pb_content;
use crate::proto::google::rpc;
use crate::proto::moby::buildkit::v1 as pb_control;
use crate::solve::{SolveFailure, decode_failure};
use crate::workers::system_time;

pub use crate::proto::moby::buildkit::v1::BuildHistoryRecord;
/// The protobuf timestamp type of record times.
pub use prost_types::Timestamp;

/// The response header with the daemon's clock (RFC 3339 with nanoseconds) when it answered:
/// how long a running build has taken, measured without the client's clock.
pub const CURRENT_TIMESTAMP_HEADER: &str = "buildkit-current-timestamp";

/// Which records [`ControlClient::build_history`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only the record with this build ref (empty: every record).
    pub build_ref: String,
    /// BuildKit's history filters, e.g. `status==error`, `ref~=abc` (BuildKit v0.20 and later
    /// apply them; older daemons ignore them).
    pub filters: Vec<String>,
    /// At most this many records, the newest first (0: no limit).
    pub limit: i32,
    /// Only builds still running.
    pub active_only: bool,
}

/// One build record as the daemon reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The record.
    pub record: BuildHistoryRecord,
    /// Whether the daemon reported it as finished (a `COMPLETE` event) rather than running.
    pub complete: bool,
}

impl HistoryEntry {
    /// When the build started.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.record.created_at.and_then(system_time)
    }

    /// When the build finished (`None` while it runs).
    pub fn completed_at(&self) -> Option<SystemTime> {
        self.record.completed_at.and_then(system_time)
    }
}

/// The records read by [`ControlClient::build_history`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildHistory {
    /// The records, in the order the daemon sent them.
    pub records: Vec<HistoryEntry>,
    /// The daemon's clock when it answered ([`CURRENT_TIMESTAMP_HEADER`]), as it sent it.
    pub daemon_time: Option<String>,
}

/// What a content store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// When it was committed.
    pub created_at: Option<SystemTime>,
}

/// Errors from reading build history blobs.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The daemon could not be reached or the call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The blob is bigger than the caller allows.
    #[error("blob {digest} is larger than {limit} bytes")]
    TooLarge {
        /// Its digest.
        digest: String,
        /// The caller's limit.
        limit: u64,
    },
    /// The daemon sent a chunk at an offset other than the next one expected.
    #[error("blob {digest}: the daemon sent data at offset {offset}, expected {expected}")]
    OutOfOrder {
        /// Its digest.
        digest: String,
        /// The offset sent.
        offset: i64,
        /// The offset expected.
        expected: u64,
    },
}

impl ControlClient {
    /// The daemon's build records matching `query` (`ListenBuildHistory` with `EarlyExit`:
    /// what exists now, without waiting for further builds). Deleted records are left out.
    pub async fn build_history(&self, query: &HistoryQuery) -> Result<BuildHistory, ClientError> {
        let error =
            |status| ClientError::from_status(self.endpoint(), "ListenBuildHistory", status);
        let response = self
            .raw()
            .listen_build_history(pb_control::BuildHistoryRequest {
                active_only: query.active_only,
                r#ref: query.build_ref.clone(),
                early_exit: true,
                filter: query.filters.clone(),
                limit: query.limit,
            })
            .await
            .map_err(error)?;
        let daemon_time = response
            .metadata()
            .get(CURRENT_TIMESTAMP_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut stream = response.into_inner();
        let mut records = Vec::new();
        while let Some(event) = stream.message().await.map_err(error)? {
            let kind = pb_control::BuildHistoryEventType::try_from(event.r#type).ok();
            let Some(record) = event.record else { continue };
            if kind == Some(pb_control::BuildHistoryEventType::Deleted) {
                continue;
            }
            records.push(HistoryEntry {
                record,
                complete: kind == Some(pb_control::BuildHistoryEventType::Complete),
            });
        }
        Ok(BuildHistory {
            records,
            daemon_time,
        })
    }

    /// Deletes the record of build `build_ref` (and, once nothing else uses them, its blobs).
    pub async fn delete_build_record(&self, build_ref: &str) -> Result<(), ClientError> {
        self.update_build_history(pb_control::UpdateBuildHistoryRequest {
            r#ref: build_ref.to_owned(),
            delete: true,
            ..Default::default()
        })
        .await
    }

    /// Pins (keeps past the daemon's history limits) or unpins the record of `build_ref`.
    pub async fn pin_build_record(&self, build_ref: &str, pinned: bool) -> Result<(), ClientError> {
        self.update_build_history(pb_control::UpdateBuildHistoryRequest {
            r#ref: build_ref.to_owned(),
            pinned,
            ..Default::default()
        })
        .await
    }

    /// Asks the daemon to write out what it still holds for `build_ref` (its trace) now,
    /// rather than when it gets to it (BuildKit v0.16 and later).
    pub async fn finalize_build_record(&self, build_ref: &str) -> Result<(), ClientError> {
        self.update_build_history(pb_control::UpdateBuildHistoryRequest {
            r#ref: build_ref.to_owned(),
            finalize: true,
            ..Default::default()
        })
        .await
    }

    async fn update_build_history(
        &self,
        request: pb_control::UpdateBuildHistoryRequest,
    ) -> Result<(), ClientError> {
        self.raw()
            .update_build_history(request)
            .await
            .map(|_| ())
            .map_err(|status| {
                ClientError::from_status(self.endpoint(), "UpdateBuildHistory", status)
            })
    }

    /// What the daemon's content store knows about the blob `digest`, or `None` when it does
    /// not have it (`Content.Info`).
    pub async fn blob_info(&self, digest: &str) -> Result<Option<BlobInfo>, ClientError> {
        let response = self
            .content()
            .info(pb_content::InfoRequest {
                digest: digest.to_owned(),
            })
            .await;
        match response {
            Ok(response) => Ok(response.into_inner().info.map(|info| BlobInfo {
                digest: info.digest,
                size: info.size,
                created_at: info.created_at.and_then(system_time),
            })),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(ClientError::from_status(
                self.endpoint(),
                "Content.Info",
                status,
            )),
        }
    }

    /// The whole blob `digest` from the daemon's content store (`Content.Read`), refused when
    /// it grows past `max_size` bytes. The caller checks the digest where it matters.
    pub async fn read_blob(&self, digest: &str, max_size: u64) -> Result<Vec<u8>, ContentError> {
        let error = |status| ClientError::from_status(self.endpoint(), "Content.Read", status);
        let mut stream = self
            .content()
            .read(pb_content::ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            })
            .await
            .map_err(error)?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(error)? {
            let expected = out.len() as u64;
            if u64::try_from(chunk.offset).ok() != Some(expected) {
                return Err(ContentError::OutOfOrder {
                    digest: digest.to_owned(),
                    offset: chunk.offset,
                    expected,
                });
            }
            if expected + chunk.data.len() as u64 > max_size {
                return Err(ContentError::TooLarge {
                    digest: digest.to_owned(),
                    limit: max_size,
                });
            }
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }
}

/// Decodes a record's external error blob (`BuildHistoryRecord.externalError`: a
/// `google.rpc.Status` with BuildKit's typed details) into the failing step and the source
/// lines it points at. `None` when the bytes are not a status.
pub fn decode_error_blob(bytes: &[u8]) -> Option<SolveFailure> {
    let status = rpc::Status::decode(bytes).ok()?;
    let grpc = tonic::Status::with_details(
        tonic::Code::from(status.code),
        status.message,
        bytes::Bytes::copy_from_slice(bytes),
    );
    Some(decode_failure(&grpc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;
    use crate::proto::errdefs;

    #[test]
    fn error_blobs_decode_to_the_failing_step() {
        let vertex = errdefs::Vertex {
            digest: "sha256:abc".into(),
        };
        let status = rpc::Status {
            code: 2,
            message: "process did not complete successfully: exit code: 3".into(),
            details: vec![prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: vertex.encode_to_vec(),
            }],
        };
        let failure = decode_error_blob(&status.encode_to_vec()).unwrap();
        assert_eq!(failure.code, tonic::Code::Unknown);
        assert_eq!(failure.vertex.as_deref(), Some("sha256:abc"));
        assert!(failure.message.contains("exit code: 3"));
        assert!(decode_error_blob(b"\xff\xff not a status").is_none());
    }

    #[test]
    fn entries_read_their_times() {
        let entry = HistoryEntry {
            record: BuildHistoryRecord {
                created_at: Some(prost_types::Timestamp {
                    seconds: 10,
                    nanos: 5,
                }),
                ..Default::default()
            },
            complete: false,
        };
        assert_eq!(
            entry.created_at(),
            Some(std::time::UNIX_EPOCH + std::time::Duration::new(10, 5))
        );
        assert_eq!(entry.completed_at(), None);
    }
}
