//! `brix rm`: remove builders, their daemons and (unless `--keep-state`) their state.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use brix_driver::builder::{DEFAULT_BUILDER, driver_for, resolve};
use brix_driver::{NodeGroup, RmOptions, Status, Store};

use super::node_status::{load_nodes, runtime};

/// Arguments of `brix rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Builders to remove (the current builder if none).
    pub names: Vec<String>,
    /// Keep the BuildKit state volume.
    #[arg(long)]
    pub keep_state: bool,
    /// Keep the BuildKit daemon running; only forget the builder.
    #[arg(long)]
    pub keep_daemon: bool,
    /// Remove every builder whose nodes are all not running.
    #[arg(long)]
    pub all_inactive: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

async fn remove(ng: &NodeGroup, opts: RmOptions) -> Result<(), brix_driver::DriverError> {
    for node in &ng.nodes {
        let driver = driver_for(ng, node)?;
        if !opts.keep_daemon {
            driver.stop(true).await?;
        }
        driver.rm(opts).await?;
    }
    Ok(())
}

/// Removes the builders; prints `<name> removed` for each, as buildx does.
pub fn run(args: RmArgs) -> anyhow::Result<ExitCode> {
    if args.all_inactive && !args.names.is_empty() {
        anyhow::bail!("cannot name builders together with --all-inactive");
    }
    let opts = RmOptions {
        force: true,
        keep_state: args.keep_state,
        keep_daemon: args.keep_daemon,
    };
    let store = Store::open_default()?;
    let rt = runtime()?;
    if args.all_inactive {
        if !args.force
            && !confirm(
                "WARNING! This will remove all builders that are not in running state. Are you sure you want to continue?",
            )?
        {
            return Ok(ExitCode::SUCCESS);
        }
        let mut txn = store.txn()?;
        for ng in txn.list()? {
            let views = rt.block_on(load_nodes(&ng, false));
            if views.iter().any(|v| v.status == Some(Status::Running)) {
                continue;
            }
            rt.block_on(remove(&ng, opts))?;
            txn.remove(&ng.name)?;
            eprintln!("{} removed", ng.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let names = if args.names.is_empty() {
        vec![None]
    } else {
        args.names.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut failed = false;
    for name in names {
        let mut txn = store.txn()?;
        let result = (|| {
            let ng = resolve(&txn, name)?;
            if ng.name == DEFAULT_BUILDER && ng.driver == "docker" {
                return Err(anyhow::anyhow!(
                    "the default builder (the Docker engine's own BuildKit) cannot be removed"
                ));
            }
            let r = rt.block_on(remove(&ng, opts));
            txn.remove(&ng.name)?;
            r?;
            Ok(ng.name)
        })();
        match result {
            Ok(n) => eprintln!("{n} removed"),
            Err(e) => {
                eprintln!(
                    "failed to remove {}: {e:#}",
                    name.unwrap_or("the current builder")
                );
                failed = true;
            }
        }
    }
    if failed {
        anyhow::bail!("failed to remove one or more builders");
    }
    Ok(ExitCode::SUCCESS)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("refusing to ask for confirmation without a terminal; pass -f");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
