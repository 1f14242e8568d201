//! `brix history rm`: deletes build records from the builder's daemons, as
//! `docker buildx history rm` does.

use std::process::ExitCode;

use anyhow::bail;
use brix_driver::NodeGroup;
use brix_solver_client::ClientError;
use brix_solver_client::history::HistoryQuery;

use super::connect;

/// Arguments of `brix history rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Build refs to remove (from `brix history ls`).
    #[arg(value_name = "REF")]
    refs: Vec<String>,
    /// Remove all build records.
    #[arg(long)]
    all: bool,
}

/// Deletes each ref on every node; a ref counts as removed when any node had it.
pub(super) async fn run(ng: &NodeGroup, args: RmArgs) -> anyhow::Result<ExitCode> {
    if args.refs.is_empty() && !args.all {
        bail!("rm requires at least one argument");
    }
    if !args.refs.is_empty() && args.all {
        bail!("rm requires either --all or at least one argument");
    }
    let nodes = connect(ng, false).await?;
    if args.all {
        let jobs = nodes.iter().map(|n| async move {
            let history = n.client.build_history(&HistoryQuery::default()).await?;
            for entry in history.records.iter().filter(|e| e.complete) {
                n.client
                    .delete_build_record(&entry.record.r#ref)
                    .await
                    .map_err(|e| removal_error(&entry.record.r#ref, &n.node, &e))?;
            }
            Ok::<_, anyhow::Error>(())
        });
        futures_util::future::try_join_all(jobs).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // Per ref, the error of every node that did not have it.
    let jobs = nodes.iter().map(|n| {
        let refs = &args.refs;
        async move {
            let mut errors = Vec::new();
            for r in refs {
                errors.push(n.client.delete_build_record(r).await.err());
            }
            (n, errors)
        }
    });
    let per_node = futures_util::future::join_all(jobs).await;
    let mut failures = Vec::new();
    for (i, r) in args.refs.iter().enumerate() {
        let errs: Vec<String> = per_node
            .iter()
            .filter_map(|(n, errors)| errors[i].as_ref().map(|e| removal_error(r, &n.node, e)))
            .map(|e| e.to_string())
            .collect();
        if errs.len() == per_node.len() && !errs.is_empty() {
            failures.extend(errs);
        }
    }
    match failures.len() {
        0 => Ok(ExitCode::SUCCESS),
        1 => bail!("{}", failures[0]),
        n => bail!("{n} errors occurred: {}", failures.join("; ")),
    }
}

/// `removing build record X from node N: <the daemon's message>`.
fn removal_error(build_ref: &str, node: &str, err: &ClientError) -> anyhow::Error {
    let why = err
        .grpc_status()
        .map(|s| s.message().to_owned())
        .unwrap_or_else(|| err.to_string());
    anyhow::anyhow!("removing build record {build_ref} from node {node}: {why}")
}
