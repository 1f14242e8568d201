//! brix-driver: builders and the drivers that boot and connect to their BuildKit daemons
//! (docker-container, docker, remote), the builder store, and QEMU/binfmt management.

pub mod binfmt;
mod driver;
mod error;
pub mod store;
pub mod timefmt;

pub use brix_config::Platform;
pub use driver::{
    BootstrapEvent, BootstrapSink, BoxedDaemonIo, DaemonIo, Driver, Features, RmOptions, Status,
};
pub use error::DriverError;
pub use store::{Node, NodeGroup, Store, StoreError, Txn};
pub mod builder;
mod config_check;
mod daemon_info;
pub mod docker;
pub mod docker_api;
pub mod docker_container;
pub mod platforms;
pub mod remote;
pub use daemon_info::{DaemonInfo, daemon_info};
