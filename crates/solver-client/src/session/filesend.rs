//! `moby.filesync.v1.FileSend`: receives exporter output. `local` outputs arrive as fsutil
//! `Packet`s (the client is the DiffCopy receiver); `tar`, `oci` and `docker` outputs arrive
//! as `BytesMessage` chunks of one tarball. Both use the same method, so it is served with a
//! raw codec and each frame is decoded according to the output registered for the exporter.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

use super::grpc::{BidiMethod, BidiResult, BoxFuture, RawCodec, RouteResult, serve_bidi};
use crate::fsutil::wire::Packet;
use crate::fsutil::{PlatformFolder, ReceiveError, receive_into, receive_into_platform_folder};

/// Path of the FileSend DiffCopy method.
pub const DIFF_COPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// Metadata key carrying the exporter's index in `SolveRequest.exporters`.
const EXPORTER_ID_KEY: &str = "buildkit-attachable-exporter-id";

/// Where one exporter's output goes.
pub enum OutputTarget {
    /// A `local` output: the tree is written under this directory (created if missing,
    /// with mode 0700 as buildx does; merged into if present).
    Directory(PathBuf),
    /// One platform of a multi-platform `local` output solved on its own: the tree is
    /// written under `dest/<folder>` laid out as BuildKit's own multi-platform export lays it
    /// out (the folder 0755 and dated as BuildKit dates it, absolute symlink targets moved
    /// under `/<folder>`; see [`receive_into_platform_folder`]). `dest` is created as for
    /// [`OutputTarget::Directory`].
    PlatformDirectory {
        /// The output folder the user named.
        dest: PathBuf,
        /// This platform's folder inside it.
        folder: PlatformFolder,
    },
    /// A `tar`, `oci` or `docker` output written to this file (created or truncated).
    File(PathBuf),
    /// A `tar`, `oci` or `docker` output written to a caller's writer (e.g. stdout or a
    /// `docker load` pipe). It can be used once.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

impl std::fmt::Debug for OutputTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputTarget::Directory(p) => f.debug_tuple("Directory").field(p).finish(),
            OutputTarget::PlatformDirectory { dest, folder } => f
                .debug_struct("PlatformDirectory")
                .field("dest", dest)
                .field("folder", folder)
                .finish(),
            OutputTarget::File(p) => f.debug_tuple("File").field(p).finish(),
            OutputTarget::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// `BytesMessage{data}` (field 1, bytes): the frame of tarball outputs.
#[derive(Clone, PartialEq, prost::Message)]
struct BytesFrame {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

/// The FileSend service over outputs keyed by exporter index.
#[derive(Debug, Clone)]
pub struct FileSendService {
    outputs: Arc<Mutex<HashMap<u32, OutputTarget>>>,
    peer_name: Option<Arc<str>>,
}

impl FileSendService {
    /// Serves the given outputs, keyed by their exporter's index in the solve request.
    pub fn new(outputs: HashMap<u32, OutputTarget>) -> Self {
        FileSendService {
            outputs: Arc::new(Mutex::new(outputs)),
            peer_name: None,
        }
    }

    /// Names the builder in messages about entries it sent that were refused.
    pub fn with_peer_name(mut self, name: Option<String>) -> Self {
        self.peer_name = name.map(Arc::from);
        self
    }
}

impl BidiMethod<Bytes> for FileSendService {
    type Out = Bytes;

    fn handle(&self, req: Request<Streaming<Bytes>>) -> BoxFuture<BidiResult<Bytes>> {
        let outputs = Arc::clone(&self.outputs);
        let peer = self.peer_name.clone();
        Box::pin(async move {
            let id = match req.metadata().get(EXPORTER_ID_KEY) {
                Some(v) => v
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| {
                        Status::invalid_argument("invalid buildkit-attachable-exporter-id")
                    })?,
                None => 0,
            };
            let target = {
                let mut outputs = outputs
                    .lock()
                    .map_err(|_| Status::internal("output table poisoned"))?;
                match outputs.get(&id) {
                    // A directory can be written again (e.g. one call per platform).
                    Some(OutputTarget::Directory(dir)) => OutputTarget::Directory(dir.clone()),
                    Some(OutputTarget::PlatformDirectory { dest, folder }) => {
                        OutputTarget::PlatformDirectory {
                            dest: dest.clone(),
                            folder: folder.clone(),
                        }
                    }
                    Some(_) => outputs
                        .remove(&id)
                        .ok_or_else(|| Status::internal("output vanished"))?,
                    // Tells the daemon the output is not wanted; it treats this as success.
                    None => {
                        return Err(Status::already_exists(format!(
                            "no output registered for exporter {id}"
                        )));
                    }
                }
            };
            let (tx, rx) = mpsc::channel::<Result<Bytes, Status>>(64);
            let incoming = req.into_inner();
            tokio::spawn(async move {
                let result = match target {
                    OutputTarget::Directory(dir) => {
                        receive_directory(dir, None, incoming, tx.clone(), peer).await
                    }
                    OutputTarget::PlatformDirectory { dest, folder } => {
                        receive_directory(dest, Some(folder), incoming, tx.clone(), peer).await
                    }
                    OutputTarget::File(path) => match tokio::fs::File::create(&path).await {
                        Ok(file) => receive_tarball(file, incoming).await,
                        Err(e) => Err(Status::internal(format!(
                            "cannot create {}: {e}",
                            path.display()
                        ))),
                    },
                    OutputTarget::Writer(writer) => receive_tarball(writer, incoming).await,
                };
                if let Err(status) = result {
                    tracing::warn!(exporter = id, error = %status.message(), "receiving output failed");
                    let _ = tx.send(Err(status)).await;
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
    }
}

async fn receive_directory(
    dir: PathBuf,
    folder: Option<PlatformFolder>,
    incoming: Streaming<Bytes>,
    tx: mpsc::Sender<Result<Bytes, Status>>,
    peer: Option<Arc<str>>,
) -> Result<(), Status> {
    let packets = incoming.map(|frame| {
        frame.and_then(|b| Packet::decode(b).map_err(|e| Status::invalid_argument(e.to_string())))
    });
    let (packet_tx, mut packet_rx) = mpsc::channel::<Packet>(64);
    let forward = tokio::spawn(async move {
        while let Some(p) = packet_rx.recv().await {
            if tx.send(Ok(Bytes::from(p.encode_to_vec()))).await.is_err() {
                break;
            }
        }
    });
    let result = match &folder {
        Some(f) => receive_into_platform_folder(&dir, f, Box::pin(packets), packet_tx).await,
        None => receive_into(&dir, Box::pin(packets), packet_tx).await,
    };
    let _ = forward.await;
    // Messages name the folder the tree was written to.
    let dir = match &folder {
        Some(f) => dir.join(f.name()),
        None => dir,
    };
    match result {
        Ok(summary) => {
            tracing::debug!(dir = %dir.display(), ?summary, "local output written");
            Ok(())
        }
        Err(ReceiveError::Refused { path, reason }) if peer.is_some() => {
            Err(Status::internal(format!(
                "writing output to {}: refusing {path:?} from builder {:?}: {reason}",
                dir.display(),
                peer.as_deref().unwrap_or_default()
            )))
        }
        Err(e) => Err(Status::internal(format!(
            "writing output to {}: {e}",
            dir.display()
        ))),
    }
}

async fn receive_tarball<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut incoming: Streaming<Bytes>,
) -> Result<(), Status> {
    while let Some(frame) = incoming.next().await {
        let frame =
            BytesFrame::decode(frame?).map_err(|e| Status::invalid_argument(e.to_string()))?;
        writer
            .write_all(&frame.data)
            .await
            .map_err(|e| Status::internal(format!("writing output: {e}")))?;
    }
    writer
        .shutdown()
        .await
        .map_err(|e| Status::internal(format!("closing output: {e}")))
}

impl NamedService for FileSendService {
    const NAME: &'static str = "moby.filesync.v1.FileSend";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for FileSendService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<RouteResult>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        serve_bidi(req, DIFF_COPY, RawCodec, self.clone())
    }
}
