//! The docker driver: the Docker engine's own BuildKit, reached through the engine API's
//! `/grpc` endpoint (an HTTP/1.1 upgrade to h2c, then gRPC on the raw socket).

use futures_util::future::BoxFuture;

use brix_solver_client::ControlClient;

use crate::DriverError;
use crate::docker_api::{connect_docker, docker_error};
use crate::driver::{BootstrapSink, BoxedDaemonIo, Driver, Features, RmOptions, Status};

/// The engine's BuildKit.
pub struct DockerDriver {
    /// As the node stores it: an address, or a docker context's name (`default` included).
    endpoint: String,
    /// The engine's address, for messages.
    host: String,
    docker: bollard::Docker,
}

impl DockerDriver {
    /// A driver for the engine at `endpoint` (`unix://…`, `tcp://…`, or a docker context's
    /// name).
    pub fn new(endpoint: &str) -> Result<Self, DriverError> {
        Ok(Self {
            endpoint: endpoint.to_string(),
            host: crate::docker_api::resolve_endpoint(endpoint)?.host,
            docker: connect_docker(endpoint)?,
        })
    }

    /// The engine's version string, e.g. `20.10.24+dfsg1`.
    async fn engine_version(&self) -> Option<String> {
        self.docker.version().await.ok().and_then(|v| v.version)
    }
}

/// `POST /grpc` with an h2c upgrade on the engine socket; the upgraded connection then
/// carries gRPC with HTTP/2 prior knowledge.
async fn upgrade_grpc(endpoint: &str) -> Result<BoxedDaemonIo, DriverError> {
    crate::docker_api::upgrade_h2c(endpoint, "/grpc", &[]).await
}

/// The BuildKit version vendored in Docker engines whose BuildKit predates the `Info` call
/// (as buildx maps them); newer engines answer `Info` themselves.
pub fn engine_buildkit_version(engine: &str) -> Option<&'static str> {
    let mut parts = engine.split(['.', '-', '+']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    match (major, minor) {
        (20, 10) => Some("v0.8+unknown"),
        (22, 6) => Some("v0.10.3"),
        (23, _) => Some("v0.10+unknown"),
        _ => None,
    }
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn status(&self) -> BoxFuture<'_, Result<Status, DriverError>> {
        Box::pin(async move {
            self.docker
                .ping()
                .await
                .map_err(|e| docker_error(&self.host, "pinging the Docker engine", e))?;
            Ok(Status::Running)
        })
    }

    fn bootstrap<'a>(
        &'a self,
        _sink: &'a dyn BootstrapSink,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        // The engine runs its BuildKit itself; booting means the engine answers.
        Box::pin(async move { self.status().await.map(|_| ()) })
    }

    fn stop(&self, _force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async { Ok(()) })
    }

    fn rm(&self, _opts: RmOptions) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async { Ok(()) })
    }

    fn dial(&self) -> BoxFuture<'_, Result<BoxedDaemonIo, DriverError>> {
        Box::pin(upgrade_grpc(&self.endpoint))
    }

    fn connect(&self) -> BoxFuture<'_, Result<ControlClient, DriverError>> {
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let client = ControlClient::from_connector(
                format!("docker /grpc at {}", self.host),
                move || {
                    let endpoint = endpoint.clone();
                    async move { upgrade_grpc(&endpoint).await.map_err(std::io::Error::other) }
                },
            )
            .await?;
            Ok(client)
        })
    }

    fn fallback_version(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let v = self.engine_version().await?;
            engine_buildkit_version(&v).map(str::to_string)
        })
    }

    fn features(&self) -> Features {
        // What the engine's store can do shows in its BuildKit workers: callers that have
        // listed them use `Features::docker_engine`. Without them, the classic store's
        // features (load only; brix's own exporter assembles multi-platform results).
        Features {
            default_load: true,
            ..Default::default()
        }
    }

    fn describe(&self) -> String {
        format!("the Docker engine at {}", self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_engines_map_to_their_buildkit() {
        assert_eq!(
            engine_buildkit_version("20.10.24+dfsg1"),
            Some("v0.8+unknown")
        );
        assert_eq!(engine_buildkit_version("23.0.6"), Some("v0.10+unknown"));
        assert_eq!(engine_buildkit_version("28.5.2"), None);
        assert_eq!(engine_buildkit_version("garbage"), None);
    }
}
