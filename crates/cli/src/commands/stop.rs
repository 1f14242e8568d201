//! `brix stop`: stop a builder's daemons, keeping them and their state.

use std::process::ExitCode;

use brix_driver::Store;
use brix_driver::builder::{driver_for, resolve};

use super::node_status::runtime;

/// Arguments of `brix stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Builder name (the current builder if omitted).
    pub name: Option<String>,
}

/// Stops every node of the builder.
pub fn run(args: StopArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let ng = {
        let txn = store.txn()?;
        resolve(&txn, args.name.as_deref())?
    };
    let rt = runtime()?;
    rt.block_on(async {
        for node in &ng.nodes {
            driver_for(&ng, node)?.stop(false).await?;
        }
        Ok::<_, brix_driver::DriverError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
