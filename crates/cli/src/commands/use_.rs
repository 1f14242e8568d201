//! `brix use`: choose the current builder for this Docker endpoint.

use std::process::ExitCode;

use brix_driver::Store;
use brix_driver::builder::DEFAULT_BUILDER;
use brix_driver::docker_api::current_docker_endpoint;

/// Arguments of `brix use`.
#[derive(Debug, clap::Args)]
pub struct UseArgs {
    /// Builder name (`default` is the Docker engine's own BuildKit).
    pub name: String,
    /// Keep the builder current when the Docker endpoint changes.
    #[arg(long)]
    pub global: bool,
    /// Make the builder the default for this Docker endpoint.
    #[arg(long)]
    pub default: bool,
}

/// Records the current builder in the store.
pub fn run(args: UseArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let mut txn = store.txn()?;
    let key = current_docker_endpoint();
    if args.name == DEFAULT_BUILDER {
        txn.set_current(&key, "", false, false)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ng = txn.node_group(&args.name)?;
    txn.set_current(&key, &ng.name, args.global, args.default)?;
    Ok(ExitCode::SUCCESS)
}
