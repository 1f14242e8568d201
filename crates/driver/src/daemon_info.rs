//! Connecting to a node's daemon over its driver's dial, and what `ls`/`inspect` read from
//! it: workers (platforms, labels, GC policy) and the BuildKit version.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use brix_solver_client::proto::moby::buildkit::v1::control_client::ControlClient;
use brix_solver_client::proto::moby::buildkit::v1::{InfoRequest, ListWorkersRequest};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::DriverError;
use crate::driver::{BoxedDaemonIo, Driver};

/// BuildKit's session and control messages can be large (build results, contexts): the
/// daemon itself allows 16 MiB.
const MAX_MESSAGE: usize = 16 << 20;

/// What a running daemon reports, shaped for `ls` and `inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonInfo {
    /// BuildKit version (`v0.x.y`), empty if the daemon does not say.
    pub version: String,
    /// Worker IDs, sorted.
    pub ids: Vec<String>,
    /// Platforms of all workers, deduplicated, in worker order (`linux/arm64`, `linux/arm/v7`).
    pub platforms: Vec<String>,
    /// Labels of the first worker.
    pub labels: BTreeMap<String, String>,
    /// GC policy of the first worker.
    pub gc_policy: Vec<brix_config::GcRule>,
}

/// A tonic connector that hands out one already-dialled stream (one exec or upgrade is one
/// connection; a reconnect fails, as buildx's dialer does).
#[derive(Clone)]
struct OneShotConnector(Arc<Mutex<Option<BoxedDaemonIo>>>);

impl tower_service::Service<Uri> for OneShotConnector {
    type Response = TokioIo<BoxedDaemonIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let io = self.0.lock().ok().and_then(|mut g| g.take());
        Box::pin(async move {
            io.map(TokioIo::new).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "connection to the daemon was closed",
                )
            })
        })
    }
}

/// Opens a gRPC channel to the node's daemon over `driver.dial()`.
pub async fn connect_channel(driver: &dyn Driver) -> Result<Channel, DriverError> {
    let io = driver.dial().await?;
    let connector = OneShotConnector(Arc::new(Mutex::new(Some(io))));
    // The authority is never resolved: the connector supplies the stream.
    Endpoint::from_static("http://buildkitd")
        .connect_with_connector(connector)
        .await
        .map_err(|e| DriverError::Connect {
            endpoint: driver.describe(),
            reason: format!("{e}: {}", source_chain(&e)),
        })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push(c.to_string());
        cur = c.source();
    }
    s.join(": ")
}

/// A Control client for the node's daemon.
pub async fn control_client(driver: &dyn Driver) -> Result<ControlClient<Channel>, DriverError> {
    Ok(ControlClient::new(connect_channel(driver).await?)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// Asks the daemon for its workers and version.
pub async fn daemon_info(driver: &dyn Driver) -> Result<DaemonInfo, DriverError> {
    let mut client = control_client(driver).await?;
    let err = |what: &str, e: tonic::Status| DriverError::Connect {
        endpoint: driver.describe(),
        reason: format!("{what}: {}", e.message()),
    };
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await
        .map_err(|e| err("listing workers", e))?
        .into_inner()
        .record;
    let mut info = DaemonInfo::default();
    for (i, w) in workers.iter().enumerate() {
        info.ids.push(w.id.clone());
        for p in &w.platforms {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if !p.variant.is_empty() {
                s.push('/');
                s.push_str(&p.variant);
            }
            if !info.platforms.contains(&s) {
                info.platforms.push(s);
            }
        }
        if i == 0 {
            info.labels = w.labels.clone();
            info.gc_policy = w
                .gc_policy
                .iter()
                .map(|g| brix_config::GcRule {
                    all: g.all,
                    filters: g.filters.clone(),
                    keep_duration: g.keep_duration,
                    max_used_space: g.max_used_space,
                    min_free_space: g.min_free_space,
                    reserved_space: g.reserved_space,
                })
                .collect();
        }
    }
    info.ids.sort();
    info.version = match client.info(InfoRequest {}).await {
        Ok(r) => r
            .into_inner()
            .buildkit_version
            .map(|v| v.version)
            .unwrap_or_default(),
        // Daemons older than the Info API (e.g. Docker 20.10's): fall back to the worker's record.
        Err(s) if s.code() == tonic::Code::Unimplemented => workers
            .first()
            .and_then(|w| w.buildkit_version.as_ref())
            .map(|v| v.version.clone())
            .unwrap_or_default(),
        Err(e) => return Err(err("reading the BuildKit version", e)),
    };
    Ok(info)
}
