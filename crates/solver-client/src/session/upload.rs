//! `moby.upload.v1.Upload`: bytes the daemon fetches from the client as an
//! `http://buildkit-session/<id>` URL — buildx's build context read from stdin (`build - <
//! ctx.tar`), which the dockerfile frontend reads like any https tarball context.
//!
//! Each upload is a file the client has already written (stdin spooled to disk), so every
//! `Pull` sends it whole from the start. BuildKit's provider hands its reader out once; a file
//! can be served again, which the per-platform solves of one build need when they share it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::moby::upload::v1::BytesMessage;
use crate::proto::moby::upload::v1::upload_server::Upload;

/// The one method of the service, as announced to the daemon.
pub const PULL: &str = "/moby.upload.v1.Upload/Pull";

/// The host of every upload URL (BuildKit's `uploadprovider`).
pub const URL_PREFIX: &str = "http://buildkit-session/";

/// The metadata key naming the URL path a `Pull` asks for.
const KEY_URL_PATH: &str = "urlpath";

/// The largest chunk sent in one message, as BuildKit's provider sends them.
const CHUNK: usize = 3 * 1024 * 1024;

/// The Upload service over an ID → file map.
#[derive(Debug, Clone, Default)]
pub struct UploadService {
    files: BTreeMap<String, PathBuf>,
}

impl UploadService {
    /// Serves each file under its ID (the last component of its URL).
    pub fn new(files: BTreeMap<String, PathBuf>) -> Self {
        UploadService { files }
    }

    /// The file a `Pull` for `url_path` (`/<id>`, as the daemon sends it) names.
    fn file_for(&self, url_path: &str) -> Result<PathBuf, Status> {
        // As BuildKit: the path's last component is the ID.
        let id = url_path.rsplit('/').next().unwrap_or_default();
        self.files
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no http response from session for {id}")))
    }
}

#[tonic::async_trait]
impl Upload for UploadService {
    type PullStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn pull(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let url_path = request
            .metadata()
            .get(KEY_URL_PATH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let path = self.file_for(&url_path)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            Status::not_found(format!("cannot read upload {}: {e}", path.display()))
        })?;
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                match (&mut file).take(CHUNK as u64).read_to_end(&mut chunk).await {
                    Ok(0) => break,
                    Ok(_) => {
                        let message = BytesMessage { data: chunk };
                        if tx.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let status =
                            Status::internal(format!("reading upload {}: {e}", path.display()));
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
