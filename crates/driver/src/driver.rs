//! The [`Driver`] trait: what every way of running a BuildKit daemon offers.

use futures_util::future::BoxFuture;
use std::fmt;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

use brix_solver_client::ControlClient;

use crate::DriverError;

/// A byte stream to a BuildKit daemon's gRPC endpoint (HTTP/2 is spoken on top of it).
pub trait DaemonIo: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send + ?Sized> DaemonIo for T {}

/// A boxed [`DaemonIo`], as returned by [`Driver::dial`].
pub type BoxedDaemonIo = Pin<Box<dyn DaemonIo>>;

/// Whether a node's daemon exists and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing has been created yet (no container).
    Inactive,
    /// Being booted.
    Starting,
    /// Running and reachable.
    Running,
    /// Being stopped.
    Stopping,
    /// Created but not running.
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Inactive => "inactive",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
        })
    }
}

/// What a driver can do, as buildx's `driver.Features` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// Can export OCI layout tarballs (`-o type=oci`).
    pub oci_exporter: bool,
    /// Can export Docker tarballs (`-o type=docker`).
    pub docker_exporter: bool,
    /// Can export build cache (`--cache-to`).
    pub cache_export: bool,
    /// Can build several platforms in one solve.
    pub multi_platform: bool,
    /// Can push straight from the daemon.
    pub direct_push: bool,
    /// Loads the result into the Docker image store unless told otherwise.
    pub default_load: bool,
}

impl Features {
    /// A BuildKit daemon of its own (docker-container, remote): every exporter, cache export,
    /// multi-platform solves and direct push; loads by default only when `default_load`.
    pub fn standalone_buildkit(default_load: bool) -> Self {
        Features {
            oci_exporter: true,
            docker_exporter: true,
            cache_export: true,
            multi_platform: true,
            direct_push: true,
            default_load,
        }
    }

    /// The Docker engine's own BuildKit (the `docker` driver), as buildx decides it from the
    /// engine's BuildKit workers: with the containerd image store (a worker that reports a
    /// snapshotter label) the engine holds multi-platform images and attestations, so it
    /// exports OCI and Docker tarballs, exports cache, builds several platforms in one
    /// solve and pushes itself; with the classic store it can only load one platform per
    /// image. It always loads by default.
    pub fn docker_engine(workers: &[brix_solver_client::workers::WorkerInfo]) -> Self {
        let containerd_store = workers.iter().any(|w| {
            w.labels
                .contains_key(brix_solver_client::workers::labels::SNAPSHOTTER)
        });
        Self::docker_engine_store(containerd_store)
    }

    /// The `docker` driver's features for an engine with (`true`) or without the
    /// containerd image store; see [`Features::docker_engine`].
    pub fn docker_engine_store(containerd_store: bool) -> Self {
        Features {
            oci_exporter: containerd_store,
            docker_exporter: containerd_store,
            cache_export: containerd_store,
            multi_platform: containerd_store,
            direct_push: containerd_store,
            default_load: true,
        }
    }

    /// Each feature under buildx's name for it, in the order buildx's `inspect` prints them
    /// in debug mode (sorted by name).
    pub fn named(&self) -> [(&'static str, bool); 6] {
        [
            (
                "Automatically load images to the Docker Engine image store",
                self.default_load,
            ),
            ("Cache export", self.cache_export),
            ("Direct push", self.direct_push),
            ("Docker exporter", self.docker_exporter),
            ("Multi-platform build", self.multi_platform),
            ("OCI exporter", self.oci_exporter),
        ]
    }
}

/// One event while a node boots. The CLI renders them like buildx's
/// `[internal] booting buildkit` vertex and its sub-steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapEvent {
    /// A step began, e.g. `pulling image moby/buildkit:buildx-stable-1`.
    StepStarted {
        /// The step's text.
        step: String,
    },
    /// The step with this text ended; `error` if it failed.
    StepFinished {
        /// The step's text.
        step: String,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// A one-line notice that needs no duration (e.g. a fallback that was taken).
    Notice {
        /// The message.
        message: String,
    },
    /// A log line from the daemon, shown when booting fails.
    Log {
        /// The line, without its newline.
        line: String,
    },
}

/// Receives [`BootstrapEvent`]s. A closure `|ev| ...` is a sink.
pub trait BootstrapSink: Send + Sync {
    /// Handles one event.
    fn event(&self, ev: BootstrapEvent);
}

impl<F: Fn(BootstrapEvent) + Send + Sync> BootstrapSink for F {
    fn event(&self, ev: BootstrapEvent) {
        self(ev)
    }
}

/// Options of [`Driver::rm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RmOptions {
    /// Remove even if running (kill instead of stop).
    pub force: bool,
    /// Keep the state volume (`rm --keep-state`).
    pub keep_state: bool,
    /// Keep the daemon itself (`rm --keep-daemon`): only the store entry goes.
    pub keep_daemon: bool,
}

/// One of several daemons behind one node (the kubernetes driver: a pod), with a driver
/// bound to it; `ls` and `inspect` show each as a node of its own, as buildx shows pods.
pub struct Instance {
    /// Its name (the pod's).
    pub name: String,
    /// Platforms pinned on it.
    pub platforms: Vec<brix_config::Platform>,
    /// A driver whose connections all go to this daemon.
    pub driver: Box<dyn Driver>,
}

/// One way of getting a BuildKit daemon running and connecting to it.
///
/// A driver instance is bound to one node of one builder. Methods return boxed futures so
/// that drivers can be used as `Box<dyn Driver>`.
pub trait Driver: Send + Sync {
    /// The driver's name as stored and printed: `docker-container`, `docker`, `remote`,
    /// `kubernetes`.
    fn name(&self) -> &'static str;

    /// Current status of the node's daemon (cheap: no gRPC call).
    fn status(&self) -> BoxFuture<'_, Result<Status, DriverError>>;

    /// Creates and/or starts the daemon and waits until it answers, reporting steps to `sink`.
    /// Does nothing but wait for readiness when it already runs.
    fn bootstrap<'a>(
        &'a self,
        sink: &'a dyn BootstrapSink,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Stops the daemon, keeping it and its state.
    fn stop(&self, force: bool) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Removes the daemon and, unless `keep_state`, its state.
    fn rm(&self, opts: RmOptions) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Opens one raw connection to the daemon's gRPC endpoint (HTTP/2 with prior knowledge).
    fn dial(&self) -> BoxFuture<'_, Result<BoxedDaemonIo, DriverError>>;

    /// A connected BuildKit Control client. It redials through the driver when the
    /// connection breaks (a fresh `docker exec`, upgrade or socket each time).
    fn connect(&self) -> BoxFuture<'_, Result<ControlClient, DriverError>>;

    /// The BuildKit version by other means, for daemons too old for the `Info` call.
    fn fallback_version(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }

    /// The daemons behind this node when there can be several (the kubernetes driver's
    /// running pods); empty for a node that is one daemon.
    fn instances(&self) -> BoxFuture<'_, Result<Vec<Instance>, DriverError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What this driver supports.
    fn features(&self) -> Features;

    /// A human name for where the daemon is (for messages).
    fn describe(&self) -> String;
}
