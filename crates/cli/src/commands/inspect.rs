//! `brix inspect`: show a builder and its nodes, laid out as `docker buildx inspect`.

use std::fmt::Write as _;
use std::process::ExitCode;

use brix_driver::Store;
use brix_driver::builder::resolve;
use brix_driver::platforms;
use brix_driver::timefmt;

use super::node_status::{NodeView, boot, load_nodes, runtime, sorted_labels};
use crate::tabwriter;

/// Arguments of `brix inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Builder name (the current builder if omitted).
    pub name: Option<String>,
    /// Boot the builder's nodes first if they are not running.
    #[arg(long)]
    pub bootstrap: bool,
}

/// Loads (and with `--bootstrap` boots) the builder and prints it.
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let mut ng = {
        let txn = store.txn()?;
        resolve(&txn, args.name.as_deref())?
    };
    let rt = runtime()?;
    let mut views = rt.block_on(load_nodes(&ng, true));
    let mut boot_error = None;
    if args.bootstrap {
        match rt.block_on(boot(&ng, &mut views)) {
            Ok(true) => {
                views = rt.block_on(load_nodes(&ng, true));
                if ng.driver != "docker" {
                    let mut txn = store.txn()?;
                    if txn.exists(&ng.name)? {
                        txn.touch(&ng.name)?;
                        ng.last_activity = txn.node_group(&ng.name)?.last_activity;
                    }
                }
            }
            Ok(false) => {}
            Err(e) => boot_error = Some(e),
        }
    }
    super::node_status::print_stdout(&render(&ng, &views));
    // On stderr, so stdout keeps buildx's layout for scripts.
    for hint in emulation_hints(&views) {
        eprintln!("{hint}");
    }
    match boot_error {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// One line per running node whose workers cannot run a platform pinned on it or one of the
/// common multi-arch platforms, naming the `brix binfmt --install` command that adds them.
fn emulation_hints(views: &[NodeView]) -> Vec<String> {
    views
        .iter()
        .filter_map(|v| {
            let info = v.info.as_ref()?;
            let missing = platforms::missing_platforms(&v.node.platforms, &info.platforms);
            platforms::emulation_hint(&v.node.name, &missing)
        })
        .collect()
}

/// The text buildx prints, before column alignment.
fn render(ng: &brix_driver::NodeGroup, views: &[NodeView]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name:\t{}", ng.name);
    let _ = writeln!(s, "Driver:\t{}", ng.driver);
    if let Some(t) = ng.last_activity {
        let _ = writeln!(s, "Last Activity:\t{}", timefmt::go_default(t));
    }
    s.push('\n');
    s.push_str("Nodes:\n");
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(s, "Name:\t{}", v.node.name);
        let _ = writeln!(s, "Endpoint:\t{}", v.node.endpoint);
        if !v.node.driver_opts.is_empty() {
            let opts: Vec<String> = v
                .node
                .driver_opts
                .iter()
                .map(|(k, val)| format!("{k}={val:?}"))
                .collect();
            let _ = writeln!(s, "Driver Options:\t{}", opts.join(" "));
        }
        if let Some(err) = &v.err {
            let _ = writeln!(s, "Error:\t{}", err.replace('\n', " "));
            continue;
        }
        let _ = writeln!(s, "Status:\t{}", v.status_word());
        if !v.node.buildkitd_flags.is_empty() {
            let _ = writeln!(
                s,
                "BuildKit daemon flags:\t{}",
                v.node.buildkitd_flags.join(" ")
            );
        }
        if let Some(info) = &v.info
            && !info.version.is_empty()
        {
            let _ = writeln!(s, "BuildKit version:\t{}", info.version);
        }
        let platforms = v.platforms();
        if !platforms.is_empty() {
            let _ = writeln!(s, "Platforms:\t{}", platforms.join(", "));
        }
        // buildx prints its drivers' features in debug mode.
        if crate::debug_mode()
            && let Some(features) = v.features(&ng.driver)
        {
            s.push_str("Features:\n");
            for (name, on) in features.named() {
                let _ = writeln!(s, "\t{name}:\t{on}");
            }
        }
        if let Some(info) = &v.info {
            if !info.labels.is_empty() {
                s.push_str("Labels:\n");
                for (k, val) in sorted_labels(info) {
                    let _ = writeln!(s, "\t{k}:\t{val}");
                }
            }
            s.push_str(&brix_config::format_gc_policy(&info.gc_policy));
        }
        for (f, data) in &v.node.files {
            let _ = writeln!(s, "File#{f}:");
            for line in String::from_utf8_lossy(data).split('\n') {
                let _ = writeln!(s, "\t> {line}");
            }
        }
    }
    tabwriter::align(&s, 0, 1)
}
