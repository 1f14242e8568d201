//! `brix ls`: list builders and their nodes, as `docker buildx ls` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use brix_driver::builder::list_all;
use brix_driver::docker_api::current_store_key;
use brix_driver::{NodeGroup, Store, timefmt};
use serde_json::{Value, json};

use super::node_status::{NodeView, load_nodes, runtime};
use crate::tabwriter;

/// Arguments of `brix ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Output format: `table` or `json` (one builder object per line).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not truncate the platform list.
    #[arg(long)]
    pub no_trunc: bool,
    /// The global `--builder`: marked as the current one.
    #[arg(skip)]
    pub builder: Option<String>,
}

/// Loads every builder's nodes concurrently and prints them.
pub fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    if args.format != "table" && args.format != "json" {
        anyhow::bail!("unsupported --format {:?}: use table or json", args.format);
    }
    let store = Store::open_default()?;
    let (builders, current) = {
        let txn = store.txn()?;
        let current = txn.current(&current_store_key())?;
        let env = args
            .builder
            .clone()
            .or_else(brix_driver::builder::builder_from_env);
        (
            list_all(&txn)?,
            match env.or(current) {
                Some(name) => name,
                // As buildx: the current docker context must exist.
                None => brix_driver::docker_context::current()
                    .map(|c| c.name)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "no builder {:?} found",
                            brix_driver::docker_context::current_name()
                        )
                    })?,
            },
        )
    };
    let rt = runtime()?;
    let loaded: Vec<(NodeGroup, Vec<NodeView>)> = rt.block_on(async {
        let futs = builders.into_iter().map(|ng| async move {
            let views = load_nodes(&ng, true).await;
            (ng, views)
        });
        futures_util::future::join_all(futs).await
    });
    if args.format == "json" {
        let mut out = String::new();
        for (ng, views) in &loaded {
            out.push_str(&format!(
                "{}\n",
                builder_json(ng, views, ng.name == current)
            ));
        }
        super::node_status::print_stdout(&out);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = String::from("NAME/NODE\tDRIVER/ENDPOINT\tSTATUS\tBUILDKIT\tPLATFORMS\n");
    let mut errors = Vec::new();
    for (ng, views) in &loaded {
        let star = if ng.name == current { "*" } else { "" };
        let _ = writeln!(t, "{}{star}\t{}\t\t\t", ng.name, ng.driver);
        for v in views {
            let pf = v.platforms();
            let platforms = if args.no_trunc {
                pf.join(", ")
            } else {
                truncate_platforms(&pf, 4)
            };
            let version = v
                .info
                .as_ref()
                .map(|i| i.version.clone())
                .unwrap_or_default();
            let _ = writeln!(
                t,
                " \\_ {}\t \\_ {}\t{}\t{version}\t{platforms}",
                v.node.name,
                v.node.endpoint,
                v.status_word()
            );
            if let Some(e) = &v.err {
                errors.push(format!(
                    "Failed to get status for {} ({}): {}",
                    ng.name,
                    v.node.name,
                    e.trim()
                ));
            }
        }
    }
    super::node_status::print_stdout(&tabwriter::align(&t, 10, 3));
    if !errors.is_empty() {
        eprintln!();
        for e in errors {
            eprintln!("{e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One builder as buildx's `ls --format json` prints it (keys sorted, as Go's map encoding does).
fn builder_json(ng: &NodeGroup, views: &[NodeView], current: bool) -> Value {
    let nodes: Vec<Value> = views
        .iter()
        .map(|v| {
            let mut m = serde_json::Map::new();
            m.insert("Name".into(), json!(v.node.name));
            m.insert("Endpoint".into(), json!(v.node.endpoint));
            if !v.node.buildkitd_flags.is_empty() {
                m.insert("Flags".into(), json!(v.node.buildkitd_flags));
            }
            if !v.node.driver_opts.is_empty() {
                m.insert("DriverOpts".into(), json!(v.node.driver_opts));
            }
            if !v.node.files.is_empty() {
                use base64::Engine;
                let files: BTreeMap<&String, String> = v
                    .node
                    .files
                    .iter()
                    .map(|(k, d)| (k, base64::engine::general_purpose::STANDARD.encode(d)))
                    .collect();
                m.insert("Files".into(), json!(files));
            }
            let status = v.status_word();
            if !status.is_empty() {
                m.insert("Status".into(), json!(status));
            }
            if let Some(e) = &v.err {
                m.insert("Err".into(), json!(e.trim()));
            }
            if let Some(info) = &v.info {
                if !info.version.is_empty() {
                    m.insert("Version".into(), json!(info.version));
                }
                if !info.ids.is_empty() {
                    m.insert("IDs".into(), json!(info.ids));
                }
                if !info.gc_policy.is_empty() {
                    m.insert("GCPolicy".into(), json!(info.gc_policy));
                }
                if !info.labels.is_empty() {
                    m.insert("Labels".into(), json!(info.labels));
                }
            }
            let pf = v.platforms_plain();
            if !pf.is_empty() {
                m.insert("Platforms".into(), json!(pf));
            }
            Value::Object(m)
        })
        .collect();
    let last = ng
        .last_activity
        .map(timefmt::rfc3339)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    json!({
        "Name": ng.name,
        "Driver": ng.driver,
        "LastActivity": last,
        "Dynamic": ng.dynamic,
        "Nodes": nodes,
        "Current": current,
    })
}

/// buildx's platform truncation for the table: major platforms first, variants grouped as
/// `linux/amd64 (+4)`, at most `max` groups, then `(N more)`.
fn truncate_platforms(pfs: &[String], max: usize) -> String {
    const MAJOR: &[&str] = &[
        "linux/amd64",
        "linux/arm64",
        "linux/arm",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64",
    ];
    let os_arch = |pf: &str| {
        let p = pf.trim_end_matches('*');
        let mut it = p.split('/');
        match (it.next(), it.next()) {
            (Some(os), Some(arch)) => Some(format!("{os}/{arch}")),
            _ => None,
        }
    };
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in MAJOR {
        for pf in pfs {
            if groups.len() >= max {
                break;
            }
            if os_arch(pf).as_deref() == Some(*m) {
                groups.entry(m.to_string()).or_default().push(pf.clone());
            }
        }
    }
    let mut left: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pf in pfs {
        if groups.len() >= max {
            break;
        }
        if let Some(k) = os_arch(pf)
            && !groups.contains_key(&k)
        {
            left.entry(k).or_default().push(pf.clone());
        }
    }
    groups.extend(left);
    let mut out = Vec::new();
    let mut count = 0;
    let mut render = |k: &str, list: &[String], out: &mut Vec<String>| {
        if list.len() == 1 {
            out.push(list[0].clone());
            count += 1;
        } else {
            let star = if list.iter().any(|p| p.ends_with('*')) {
                "*"
            } else {
                ""
            };
            out.push(format!("{k}{star} (+{})", list.len()));
            count += list.len();
        }
    };
    for m in MAJOR {
        if let Some(list) = groups.get(*m) {
            render(m, list, &mut out);
        }
    }
    for (k, list) in &groups {
        if out.len() >= max {
            break;
        }
        if !MAJOR.contains(&k.as_str()) {
            render(k, list, &mut out);
        }
    }
    let more = pfs.len().saturating_sub(count);
    if more > 0 {
        out.push(format!("({more} more)"));
    }
    out.join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn truncates_like_buildx() {
        let pfs: Vec<String> = [
            "linux/amd64",
            "linux/amd64/v2",
            "linux/amd64/v3",
            "linux/amd64/v4",
            "linux/arm64",
            "linux/riscv64",
            "linux/ppc64le",
            "linux/s390x",
            "linux/386",
            "linux/arm/v7",
            "linux/arm/v6",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            truncate_platforms(&pfs, 4),
            "linux/amd64 (+4), linux/arm64, linux/arm (+2), linux/ppc64le, (3 more)"
        );
        let d: Vec<String> = [
            "linux/amd64",
            "linux/386",
            "linux/arm64",
            "linux/riscv64",
            "linux/ppc64le",
            "linux/s390x",
            "linux/arm/v7",
            "linux/arm/v6",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            truncate_platforms(&d, 4),
            "linux/amd64, linux/arm64, linux/arm (+2), linux/ppc64le, (3 more)"
        );
        assert_eq!(
            truncate_platforms(&["linux/arm64*".into(), "linux/amd64".into()], 4),
            "linux/amd64, linux/arm64*"
        );
    }
}
