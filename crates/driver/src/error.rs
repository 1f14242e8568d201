//! The error type of drivers and builder operations.

use std::time::Duration;

/// An error from a driver or a builder operation. Messages name the thing involved and,
/// where there is one, what to try next.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The builder store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The Docker engine could not be reached at all.
    #[error(
        "cannot reach the Docker engine at {endpoint}: {source} (is dockerd running? DOCKER_HOST or the builder's endpoint chooses the engine)"
    )]
    DockerUnreachable {
        /// The Docker endpoint tried.
        endpoint: String,
        /// The underlying error.
        source: bollard::errors::Error,
    },
    /// The TLS handshake with a Docker engine failed (a CA that did not sign the engine's
    /// certificate, a name the certificate does not carry, a refused client certificate).
    #[error(
        "error during connect: {endpoint}: tls: {reason} (the TLS files of the context or of DOCKER_CERT_PATH must match the engine's certificate)"
    )]
    DockerTls {
        /// The Docker endpoint tried.
        endpoint: String,
        /// What the TLS layer said.
        reason: String,
    },
    /// A Docker API call failed.
    #[error("{action}: {source}")]
    Docker {
        /// What was being done, e.g. `creating container buildx_buildkit_x0`.
        action: String,
        /// The underlying error.
        source: bollard::errors::Error,
    },
    /// The BuildKit image can be neither pulled nor found locally.
    #[error(
        "cannot use BuildKit image {image}: pulling it failed ({pull_error}) and it is not in the local image store\n(load or build it into this engine, or choose another with --driver-opt image=...)"
    )]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why the pull failed.
        pull_error: String,
    },
    /// The daemon did not answer in time.
    #[error("BuildKit in {what} did not become ready within {timeout:?}: {reason}{}", format_logs(.logs))]
    NotReady {
        /// The container or address.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// The last failure seen.
        reason: String,
        /// The daemon's last log lines, oldest first.
        logs: Vec<String>,
    },
    /// A driver option key is not known to this driver.
    #[error("invalid driver option {key:?} for the {driver} driver; valid options: {}", valid.join(", "))]
    UnknownOption {
        /// Driver name.
        driver: &'static str,
        /// The offending key.
        key: String,
        /// Every key the driver accepts.
        valid: Vec<&'static str>,
    },
    /// A driver option has a value that does not parse.
    #[error("invalid value {value:?} for driver option {key}: {reason}")]
    InvalidOption {
        /// Option key.
        key: String,
        /// Option value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// The buildkitd.toml file is unreadable or invalid.
    #[error("{0}")]
    Config(String),
    /// Invalid input to a builder operation (name, endpoint, flags, ...).
    #[error("{0}")]
    Invalid(String),
    /// The BuildKit client failed (connecting or calling the daemon).
    #[error(transparent)]
    Client(#[from] brix_solver_client::ClientError),
    /// The daemon could not be connected to.
    #[error("cannot connect to BuildKit at {endpoint}: {reason}")]
    Connect {
        /// Where we tried.
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// The Kubernetes API server could not be reached at all.
    #[error(
        "cannot reach the Kubernetes API server at {server}: {reason} (is the cluster running? KUBECONFIG, or the kubeconfig the builder was created with, chooses it)"
    )]
    KubernetesUnreachable {
        /// The server's URL.
        server: String,
        /// The deepest cause.
        reason: String,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn format_logs(logs: &[String]) -> String {
    if logs.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlast daemon log lines:");
    for l in logs {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}
