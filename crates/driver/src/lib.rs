//! brix-driver: builders and the drivers that boot and connect to their BuildKit daemons
//! (docker-container, docker, remote, kubernetes), the builder store, and QEMU/binfmt
//! management.
//!
//! - [`store`]: named builders on disk, the store buildx keeps (`$BRIX_CONFIG`, else
//!   `$BUILDX_CONFIG`, else `$DOCKER_CONFIG/buildx`, else `~/.docker/buildx`), shared with
//!   it; every access is a locked [`Txn`].
//! - [`docker_context`]: the docker CLI's contexts, each a `docker`-driver builder and a
//!   possible endpoint (TLS included), and the current one as the docker CLI picks it.
//! - [`builder`]: creating builders from `brix create` options, resolving the current one,
//!   and making the [`Driver`] for each node.
//! - [`Driver`]: `status`, `bootstrap` (with [`BootstrapEvent`] progress), `stop`, `rm`,
//!   `dial` (a raw HTTP/2 stream) and `connect` (a
//!   [`brix_solver_client::ControlClient`]).
//! - [`docker_container`]: BuildKit in `buildx_buildkit_<node>` with the volume
//!   `buildx_buildkit_<node>_state`. Driver option `privileged=auto|true|false` (default
//!   `auto`): `auto` asks for a privileged container like buildx and, where the engine
//!   refuses ("unable to apply caps"), recreates it with
//!   [`docker_container::CAPABILITY_FALLBACK`] and says so; `true` never falls back;
//!   `false` always uses the capability set.
//! - [`docker`]: the engine's own BuildKit through its `/grpc` endpoint (the `default`
//!   builder). [`remote`]: a daemon at `unix://` or `tcp://` (TLS with `cacert`, `cert`,
//!   `key`, `servername`). [`kubernetes`]: pods of a Deployment per node, reached by exec
//!   through the API server (kube-rs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), brix_driver::DriverError> {
//! use brix_driver::{Store, builder, daemon_info};
//!
//! let store = Store::open_default()?;
//! let ng = builder::resolve(&store.txn()?, None)?; // the current builder
//! for node in &ng.nodes {
//!     let driver = builder::driver_for(&ng, node)?;
//!     driver.bootstrap(&|ev| eprintln!("{ev:?}")).await?;
//!     let info = daemon_info(driver.as_ref()).await?;
//!     println!("{}: BuildKit {} on {}", node.name, info.version, info.platforms.join(", "));
//! }
//! # Ok(()) }
//! ```

pub mod binfmt;
mod driver;
mod error;
pub mod store;
pub mod timefmt;

pub use brix_config::Platform;
pub use driver::{
    BootstrapEvent, BootstrapSink, BoxedDaemonIo, DaemonIo, Driver, Features, Instance, RmOptions,
    Status,
};
pub use error::DriverError;
pub use store::{Node, NodeGroup, Store, StoreError, Txn};
pub mod builder;
mod config_check;
mod daemon_info;
pub mod docker;
pub mod docker_api;
pub mod docker_container;
pub mod docker_context;
mod docker_tls;
pub mod kubernetes;
pub mod platforms;
pub mod remote;
pub use daemon_info::{DaemonInfo, daemon_info};

/// A random number for names and picks (not for secrets): the standard library's randomly
/// keyed hasher over the time.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
