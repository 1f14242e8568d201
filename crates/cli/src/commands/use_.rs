//! `brix use`: choose the current builder for this Docker endpoint.

use std::process::ExitCode;

use brix_driver::Store;
use brix_driver::builder::DEFAULT_BUILDER;
use brix_driver::docker_api::current_store_key;
use brix_driver::docker_context;

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
    let key = current_store_key();
    if !txn.exists(&args.name)? {
        // A docker context, as buildx treats it: the current one (or `default` while it is
        // current) means "no stored builder"; another one is switched to with docker.
        let current_context = docker_context::current_name();
        if args.name == DEFAULT_BUILDER && current_context != DEFAULT_BUILDER {
            anyhow::bail!("run `docker context use default` to switch to default context");
        }
        if args.name == DEFAULT_BUILDER || args.name == current_context {
            txn.set_current(&key, "", false, false)?;
            return Ok(ExitCode::SUCCESS);
        }
        if docker_context::list().iter().any(|c| c.name == args.name) {
            anyhow::bail!(
                "run `docker context use {0}` to switch to context {0}",
                args.name
            );
        }
    }
    let ng = txn.node_group(&args.name)?;
    txn.set_current(&key, &ng.name, args.global, args.default)?;
    Ok(ExitCode::SUCCESS)
}
