//! `containerd.services.content.v1.Content`: content stores on the client, which the daemon
//! reads and writes through the session — `--cache-to`/`--cache-from type=local` (store
//! `local:<dir as given>`) and, later, OCI layout contexts (`oci:<id>`). Each call names its
//! store in the `buildkit-attachable-store-id` metadata; the answers follow containerd's
//! content server (its codes and messages), which is what the daemon's proxy store expects.

mod filters;
mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::containerd::services::content::v1 as pb;
use crate::proto::containerd::services::content::v1::content_server::Content;
use filters::Filters;
use store::Ingest;
pub use store::{ContentStoreError, LocalContentStore};

/// The metadata key that names the store a call is for.
pub const STORE_ID_KEY: &str = "buildkit-attachable-store-id";

/// Every method of the service, as announced to the daemon.
pub const METHODS: [&str; 9] = [
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Update",
    "/containerd.services.content.v1.Content/List",
    "/containerd.services.content.v1.Content/Delete",
    "/containerd.services.content.v1.Content/Read",
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.content.v1.Content/ListStatuses",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/Abort",
];

/// Infos per `ListContentResponse` (containerd's server sends the same batches).
const LIST_BATCH: usize = 100;

/// A boxed response stream of the service.
type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Content service over stores keyed by their ID.
#[derive(Debug, Clone)]
pub struct ContentService {
    stores: Arc<BTreeMap<String, LocalContentStore>>,
}

impl ContentService {
    /// Serves the given stores, keyed by the ID the daemon names them by.
    pub fn new(stores: BTreeMap<String, LocalContentStore>) -> Self {
        ContentService {
            stores: Arc::new(stores),
        }
    }

    /// The store a call is for: InvalidArgument without the metadata, NotFound for an ID
    /// that was not registered (as BuildKit's own session store answers).
    fn choose<T>(&self, request: &Request<T>) -> Result<LocalContentStore, Status> {
        let id = request
            .metadata()
            .get(STORE_ID_KEY)
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks metadata {STORE_ID_KEY:?}"))
            })?
            .to_str()
            .map_err(|_| Status::invalid_argument(format!("invalid {STORE_ID_KEY} metadata")))?;
        self.stores
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown store {id}")))
    }
}

#[tonic::async_trait]
impl Content for ContentService {
    async fn info(
        &self,
        request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        store::blob_hex(&request.get_ref().digest)?;
        let info = self
            .choose(&request)?
            .info(&request.get_ref().digest)
            .await?;
        Ok(Response::new(pb::InfoResponse { info: Some(info) }))
    }

    /// Labels are not kept by a local store: the update is accepted and the blob's info
    /// returned as it is, so the daemon's label bookkeeping never fails a build.
    async fn update(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        let digest = request
            .get_ref()
            .info
            .as_ref()
            .map(|info| info.digest.as_str())
            .unwrap_or_default();
        store::blob_hex(digest)?;
        let info = self.choose(&request)?.info(digest).await?;
        Ok(Response::new(pb::UpdateResponse { info: Some(info) }))
    }

    type ListStream = ResponseStream<pb::ListContentResponse>;

    async fn list(
        &self,
        request: Request<pb::ListContentRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let store = self.choose(&request)?;
        let filters = Filters::parse(&request.get_ref().filters)?;
        let infos = store.list(&filters).await?;
        let batches: Vec<_> = infos
            .chunks(LIST_BATCH)
            .map(|batch| {
                Ok(pb::ListContentResponse {
                    info: batch.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(batches))))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteContentRequest>,
    ) -> Result<Response<()>, Status> {
        store::blob_hex(&request.get_ref().digest)?;
        self.choose(&request)?
            .delete(&request.get_ref().digest)
            .await?;
        Ok(Response::new(()))
    }

    type ReadStream = ResponseStream<pb::ReadContentResponse>;

    async fn read(
        &self,
        request: Request<pb::ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let req = request.get_ref();
        store::blob_hex(&req.digest)?;
        let reader = self
            .choose(&request)?
            .open_blob(&req.digest, req.offset, req.size)
            .await?;
        let chunks = futures_util::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader
                .next_chunk()
                .await?
                .map(|(offset, data)| (pb::ReadContentResponse { offset, data }, reader)))
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.choose(&request)?.status(&request.get_ref().r#ref)?;
        Ok(Response::new(pb::StatusResponse {
            status: Some(status),
        }))
    }

    async fn list_statuses(
        &self,
        request: Request<pb::ListStatusesRequest>,
    ) -> Result<Response<pb::ListStatusesResponse>, Status> {
        let store = self.choose(&request)?;
        let filters = Filters::parse(&request.get_ref().filters)?;
        Ok(Response::new(pb::ListStatusesResponse {
            statuses: store.list_statuses(&filters)?,
        }))
    }

    type WriteStream = ResponseStream<pb::WriteContentResponse>;

    async fn write(
        &self,
        request: Request<Streaming<pb::WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let store = self.choose(&request)?;
        let state = WriteState {
            store,
            incoming: request.into_inner(),
            ingest: None,
            done: false,
        };
        // One answer per request, produced as the daemon reads them; dropping the stream
        // (the daemon hung up) drops the ingest, which cleans up after itself.
        let answers = futures_util::stream::try_unfold(state, |mut state| async move {
            let answer = state.next_answer().await;
            match answer {
                Ok(Some(answer)) => Ok(Some((answer, state))),
                Ok(None) => {
                    state.finish().await;
                    Ok(None)
                }
                Err(status) => {
                    state.finish().await;
                    Err(status)
                }
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn abort(&self, request: Request<pb::AbortRequest>) -> Result<Response<()>, Status> {
        self.choose(&request)?
            .abort(&request.get_ref().r#ref)
            .await?;
        Ok(Response::new(()))
    }
}

/// One Write call: the daemon's requests, and the ingest they started.
struct WriteState {
    store: LocalContentStore,
    incoming: Streaming<pb::WriteContentRequest>,
    ingest: Option<Ingest>,
    done: bool,
}

impl WriteState {
    /// Reads the next request and answers it; `None` when the daemon closed its side or the
    /// write was committed.
    async fn next_answer(&mut self) -> Result<Option<pb::WriteContentResponse>, Status> {
        if self.done {
            return Ok(None);
        }
        let Some(req) = self.incoming.message().await? else {
            return Ok(None);
        };
        let action = pb::WriteAction::try_from(req.action).map_err(|_| {
            Status::invalid_argument(format!("unknown write action {}", req.action))
        })?;
        let ingest = match &mut self.ingest {
            Some(ingest) => ingest,
            None => {
                if req.r#ref.is_empty() {
                    return Err(Status::invalid_argument(
                        "first message must have a reference",
                    ));
                }
                let ingest = self
                    .store
                    .begin_write(&req.r#ref, req.total, &req.expected)
                    .await?;
                self.ingest.insert(ingest)
            }
        };
        let mut answer = pb::WriteContentResponse {
            action: req.action,
            offset: ingest.offset(),
            ..Default::default()
        };
        if !req.expected.is_empty() {
            ingest.expect(&req.expected).await?;
        }
        ingest.set_total(req.total);
        match action {
            pb::WriteAction::Stat => {}
            pb::WriteAction::Write | pb::WriteAction::Commit => {
                ingest.write_at(req.offset, &req.data).await?;
                answer.offset = ingest.offset();
            }
        }
        answer.total = ingest.total();
        let (started_at, updated_at) = ingest.times();
        answer.started_at = Some(started_at.into());
        answer.updated_at = Some(updated_at.into());
        answer.digest = ingest.digest();
        if action == pb::WriteAction::Commit {
            self.done = true;
            if let Some(ingest) = self.ingest.take() {
                answer.digest = ingest.commit().await?;
            }
        }
        Ok(Some(answer))
    }

    /// Ends the call: a write that was not committed is discarded.
    async fn finish(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.discard().await;
        }
    }
}
