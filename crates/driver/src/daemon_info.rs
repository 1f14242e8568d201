//! What `ls` and `inspect` read from a node's daemon: workers (platforms, labels, GC policy)
//! and the BuildKit version.

use std::collections::BTreeMap;

use crate::DriverError;
use crate::driver::Driver;

/// What a running daemon reports, shaped for `ls` and `inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonInfo {
    /// BuildKit version (`v0.x.y`), empty if it cannot be known.
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

/// Connects through the driver and asks the daemon for its workers and version.
pub async fn daemon_info(driver: &dyn Driver) -> Result<DaemonInfo, DriverError> {
    let client = driver.connect().await?;
    // Both questions at once, over the one connection (a round trip less through an exec).
    let (workers, version) = tokio::join!(client.list_workers(), client.info());
    let workers = workers?;
    let mut info = DaemonInfo::default();
    for (i, w) in workers.iter().enumerate() {
        info.ids.push(w.id.clone());
        for p in &w.platforms {
            let s = p.to_string();
            if !info.platforms.contains(&s) {
                info.platforms.push(s);
            }
        }
        if i == 0 {
            info.labels = w.labels.clone();
            info.gc_policy = w.gc_policy.clone();
        }
    }
    info.ids.sort();
    info.version = match version {
        Ok(v) => v.version,
        // Daemons older than the Info call: the worker record, then the driver's own way.
        Err(e)
            if e.grpc_status()
                .is_some_and(|s| s.code() == tonic::Code::Unimplemented) =>
        {
            match workers
                .first()
                .map(|w| w.buildkit_version.version.clone())
                .filter(|v| !v.is_empty())
            {
                Some(v) => v,
                None => driver.fallback_version().await.unwrap_or_default(),
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(info)
}
