//! `moby.filesync.v1.FileSync`: serves the client's local directories (build context,
//! Dockerfile directory, ...) to the daemon with the fsutil sender.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

use super::grpc::{BidiMethod, BidiResult, BoxFuture, RouteResult, serve_bidi};
use crate::fsutil::wire::Packet;
use crate::fsutil::{FileSyncSender, FilterOptions};

/// Path of the DiffCopy method, as exposed in the session's method list.
pub const DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";

/// One local directory the daemon may read, under a name such as `context` or `dockerfile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedDir {
    /// The directory on disk.
    pub path: PathBuf,
    /// Exclude patterns applied after the ones the daemon asks for (they win), e.g. to keep
    /// a secrets directory out of every build.
    pub extra_excludes: Vec<String>,
}

impl SyncedDir {
    /// A directory with no extra options.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SyncedDir {
            path: path.into(),
            extra_excludes: Vec::new(),
        }
    }
}

/// The FileSync service over a name → directory map.
#[derive(Debug, Clone)]
pub struct FileSyncService {
    dirs: Arc<BTreeMap<String, SyncedDir>>,
}

impl FileSyncService {
    /// Serves the given directories.
    pub fn new(dirs: BTreeMap<String, SyncedDir>) -> Self {
        FileSyncService {
            dirs: Arc::new(dirs),
        }
    }
}

impl BidiMethod<Packet> for FileSyncService {
    type Out = Packet;

    fn handle(&self, req: Request<Streaming<Packet>>) -> BoxFuture<BidiResult<Packet>> {
        let dirs = Arc::clone(&self.dirs);
        Box::pin(async move {
            let md = req.metadata();
            let name = metadata_values(md, "dir-name")?
                .into_iter()
                .next()
                .unwrap_or_default();
            let Some(dir) = dirs.get(&name) else {
                return Err(Status::not_found(format!(
                    "no access allowed to dir {name:?}"
                )));
            };
            let mut opts = FilterOptions {
                include_patterns: metadata_values(md, "include-patterns")?,
                exclude_patterns: metadata_values(md, "exclude-patterns")?,
                follow_paths: metadata_values(md, "followpaths")?,
            };
            opts.exclude_patterns
                .extend(dir.extra_excludes.iter().cloned());
            tracing::debug!(name, dir = %dir.path.display(), ?opts, "daemon requested local files");

            let sender = FileSyncSender::new(&dir.path, &opts)
                .map_err(|e| Status::invalid_argument(format!("local {name:?}: {e}")))?;
            let (tx, rx) = mpsc::channel(64);
            let incoming = req.into_inner();
            tokio::spawn(async move {
                match sender.run(incoming, tx.clone()).await {
                    Ok(summary) => tracing::debug!(name, ?summary, "local files sent"),
                    Err(e) => {
                        tracing::warn!(name, error = %e, "sending local files failed");
                        let _ = tx.send(Err(Status::unknown(e.to_string()))).await;
                    }
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
    }
}

impl NamedService for FileSyncService {
    const NAME: &'static str = "moby.filesync.v1.FileSync";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for FileSyncService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<RouteResult>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // TarStream is declared but no daemon calls it (only diffcopy is supported).
        serve_bidi(
            req,
            DIFF_COPY,
            tonic_prost::ProstCodec::<Packet, Packet>::default(),
            self.clone(),
        )
    }
}

/// All values of a metadata key, query-unescaped when the daemon also sent `<key>-encoded`
/// (BuildKit escapes every value of a key when any of them is not ASCII).
pub(crate) fn metadata_values(md: &MetadataMap, key: &str) -> Result<Vec<String>, Status> {
    let encoded = md.get(format!("{key}-encoded").as_str()).is_some();
    md.get_all(key)
        .iter()
        .map(|v| {
            let raw = String::from_utf8_lossy(v.as_bytes()).into_owned();
            if encoded {
                query_unescape(&raw).ok_or_else(|| {
                    Status::invalid_argument(format!("metadata {key}: invalid escape in {raw:?}"))
                })
            } else {
                Ok(raw)
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` on a malformed escape.
pub(crate) fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_like_go() {
        assert_eq!(
            query_unescape("caf%C3%A9+x%2Fy").as_deref(),
            Some("café x/y")
        );
        assert_eq!(query_unescape("100%"), None);
        assert_eq!(query_unescape("%zz"), None);
    }

    #[test]
    fn reads_repeated_and_encoded_metadata() {
        let mut md = MetadataMap::new();
        md.append("exclude-patterns", "a".parse().expect("ascii"));
        md.append("exclude-patterns", "b/**".parse().expect("ascii"));
        md.append("followpaths", "caf%C3%A9".parse().expect("ascii"));
        md.append("followpaths-encoded", "1".parse().expect("ascii"));
        assert_eq!(
            metadata_values(&md, "exclude-patterns").expect("values"),
            ["a", "b/**"]
        );
        assert_eq!(
            metadata_values(&md, "followpaths").expect("values"),
            ["café"]
        );
        assert!(
            metadata_values(&md, "include-patterns")
                .expect("values")
                .is_empty()
        );
    }
}
