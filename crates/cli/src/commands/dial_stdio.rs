//! `brix dial-stdio`: stdin and stdout carry a raw connection to one node's BuildKit gRPC
//! endpoint, as `docker buildx dial-stdio` does (what `buildctl --addr docker-container://…`-
//! style tools and remote drivers of other clients connect through). The node is the builder's
//! first, or with `--platform` the one that builds that platform (native first, as for
//! builds); it is booted first when it is not running.

use std::process::ExitCode;

use anyhow::Context;
use brix_config::Platform;
use brix_driver::Store;
use brix_driver::builder::{driver_for, resolve};
use tokio::io::AsyncWriteExt;

use super::node_status::runtime;
use crate::progress::printer::{Printer, ProgressMode};
use brix_build::nodes;

/// Arguments of `brix dial-stdio`.
#[derive(Debug, clap::Args)]
pub struct DialStdioArgs {
    /// Override the configured builder.
    /// (The global `--builder`, before or after the subcommand, as in buildx.)
    #[arg(skip)]
    pub builder: Option<String>,
    /// Target platform: picks the node that builds it.
    #[arg(long, env = "DOCKER_DEFAULT_PLATFORM")]
    pub platform: Option<String>,
    /// Progress output while booting the node (default: none, as buildx).
    #[arg(long, value_enum, default_value = "none")]
    pub progress: ProgressMode,
}

/// Connects and proxies until the daemon closes the connection.
pub fn run(args: DialStdioArgs) -> anyhow::Result<ExitCode> {
    let platform = args
        .platform
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
        .transpose()?;
    let store = Store::open_default()?;
    let ng = {
        let txn = store.txn()?;
        resolve(&txn, args.builder.as_deref())?
    };
    let rt = runtime()?;
    rt.block_on(async {
        let printer = Printer::new(
            args.progress.resolve(),
            None,
            format!("builder: {}", ng.name),
        );
        let connected = nodes::connect_nodes(&ng, &printer).await;
        printer.finish();
        let connected = connected?;
        let index = match &platform {
            Some(p) => nodes::assign(&connected, std::slice::from_ref(p))?[0],
            None => 0,
        };
        let node = &connected[index].node;
        let driver = driver_for(&ng, node)?;
        let stream = driver
            .dial()
            .await
            .with_context(|| format!("dialing node {} of builder {:?}", node.name, ng.name))?;
        proxy(stream).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Copies stdin to the daemon (then half-closes it) and the daemon to stdout; done when the
/// daemon's side ends.
async fn proxy(stream: brix_driver::BoxedDaemonIo) -> anyhow::Result<()> {
    let (mut from_daemon, mut to_daemon) = tokio::io::split(stream);
    let upload = async move {
        let mut stdin = tokio::io::stdin();
        let copied = tokio::io::copy(&mut stdin, &mut to_daemon).await;
        let _ = to_daemon.shutdown().await;
        copied
    };
    let download = async move {
        let mut stdout = tokio::io::stdout();
        let copied = tokio::io::copy(&mut from_daemon, &mut stdout).await;
        let _ = stdout.flush().await;
        copied
    };
    tokio::pin!(upload);
    let mut upload_done = false;
    tokio::pin!(download);
    loop {
        tokio::select! {
            r = &mut upload, if !upload_done => {
                upload_done = true;
                r.context("copying stdin to the builder")?;
            }
            r = &mut download => {
                r.context("copying the builder's output to stdout")?;
                return Ok(());
            }
        }
    }
}
