//! `brix ls`: list builders and their nodes, as `docker buildx ls` does.

use std::collections::BTreeMap;
use std::process::ExitCode;

use brix_driver::builder::list_all;
use brix_driver::docker_api::current_store_key;
use brix_driver::{NodeGroup, Store, timefmt};
use serde_json::{Value, json};

use super::node_status::{NodeView, load_nodes, runtime};
use crate::gotemplate::{CliFormat, Data, Struct};

/// buildx's `lsDefaultTableFormat`.
const DEFAULT_TABLE: &str =
    "table {{.Name}}\t{{.DriverEndpoint}}\t{{.Status}}\t{{.Buildkit}}\t{{.Platforms}}";

/// The column names of `table` formats, by field (buildx's `lsCtx.Header`).
const HEADER: &[(&str, &str)] = &[
    ("Name", "NAME/NODE"),
    ("DriverEndpoint", "DRIVER/ENDPOINT"),
    ("LastActivity", "LAST ACTIVITY"),
    ("Status", "STATUS"),
    ("Buildkit", "BUILDKIT"),
    ("Platforms", "PLATFORMS"),
];

/// Arguments of `brix ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Output format: `table`, `json` (one builder object per line), or a Go template, run
    /// once per builder and once per node (`{{.Name}}`, `table {{.Name}}\t{{.Status}}`;
    /// fields `Name`, `DriverEndpoint`, `LastActivity`, `Status`, `Buildkit`, `Platforms`,
    /// `Error`, `Builder`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not truncate the platform list.
    #[arg(long)]
    pub no_trunc: bool,
    /// The global `--builder`: marked as the current one.
    #[arg(skip)]
    pub builder: Option<String>,
}

/// Loads every builder's nodes concurrently and prints a row per builder and per node through
/// the `--format` template (refused before anything is contacted if it does not parse).
pub fn run(args: LsArgs) -> anyhow::Result<ExitCode> {
    let format = if args.format == "table" {
        DEFAULT_TABLE
    } else {
        &args.format
    };
    let format = CliFormat::parse(format)?;
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
    let style = RowStyle {
        table: format.is_table(),
        trunc: !args.no_trunc,
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (ng, views) in &loaded {
        let builder = Builder::new(ng, views, ng.name == current);
        rows.push(builder.row(None, style));
        for v in views {
            // `json` is one object per builder; templates also run once per node.
            if args.format != "json" {
                rows.push(builder.row(Some(v), style));
            }
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
    super::node_status::print_stdout(&format.render(&rows, HEADER)?);
    // As buildx: the errors only after a table.
    if style.table && !errors.is_empty() {
        eprintln!();
        for e in errors {
            eprintln!("{e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How rows show their values: `table` formats add the current builder's `*` and the node
/// indents, and truncate platform lists unless `--no-trunc`.
#[derive(Debug, Clone, Copy)]
struct RowStyle {
    table: bool,
    trunc: bool,
}

/// One builder as `ls` templates see it (buildx's `lsContext` and `lsBuilder`).
struct Builder<'a> {
    ng: &'a NodeGroup,
    current: bool,
    /// `.Builder`, the same in the builder's row and in its nodes' rows.
    data: Data,
    /// What `{{json .}}` prints: the `--format json` object.
    json: Data,
}

impl<'a> Builder<'a> {
    fn new(ng: &'a NodeGroup, views: &[NodeView], current: bool) -> Self {
        let json = Data::from(&builder_json(ng, views, current));
        // buildx's `Builder.MarshalJSON` (`{{json .Builder}}`): no `Current`, in this order.
        let marshal = Struct::new("builder.Builder")
            .field("Name", &ng.name)
            .field("Driver", &ng.driver)
            .field(
                "LastActivity",
                ng.last_activity
                    .map(timefmt::rfc3339_nano)
                    .unwrap_or_else(|| ZERO_TIME.to_owned()),
            )
            .field("Dynamic", ng.dynamic)
            .field(
                "Nodes",
                Data::List(views.iter().map(node_marshal_json).collect()),
            );
        let data = Struct::new("*commands.lsBuilder")
            .field("Name", &ng.name)
            .field("Driver", &ng.driver)
            .field("LastActivity", super::du::go_time(ng.last_activity))
            .field("Dynamic", ng.dynamic)
            .field("Current", current)
            .method("Nodes", Data::List(views.iter().map(node_data).collect()))
            .marshal_json(marshal)
            .into();
        Builder {
            ng,
            current,
            data,
            json,
        }
    }

    /// The row of the builder (`view` none) or of one of its nodes.
    fn row(&self, view: Option<&NodeView>, style: RowStyle) -> Data {
        let indent = |s: &str| {
            if style.table {
                format!(" \\_ {s}")
            } else {
                s.to_owned()
            }
        };
        let ng = self.ng;
        let row = Struct::new("*commands.lsContext").field("Builder", self.data.clone());
        let (row, error) = match view {
            None => {
                let star = if self.current && style.table { "*" } else { "" };
                let row = row
                    .method("Name", format!("{}{star}", ng.name))
                    .method("DriverEndpoint", &ng.driver)
                    .method(
                        "LastActivity",
                        ng.last_activity.map(timefmt::rfc3339).unwrap_or_default(),
                    )
                    .method("Status", "")
                    .method("Buildkit", "")
                    .method("Platforms", "");
                (row, String::new())
            }
            Some(v) => {
                let pf = v.platforms();
                let platforms = if style.trunc && style.table {
                    truncate_platforms(&pf, 4)
                } else {
                    pf.join(", ")
                };
                let row = row
                    .method("Name", indent(&v.node.name))
                    .method("DriverEndpoint", indent(&v.node.endpoint))
                    .method("LastActivity", "")
                    .method("Status", v.status_word())
                    .method("Buildkit", version(v))
                    .method("Platforms", platforms);
                (row, v.err.clone().unwrap_or_default())
            }
        };
        // `lsContext` is a Go `error` (its `Error` method), so `{{.}}` prints that.
        row.method("Error", &error)
            .display(error)
            .marshal_json(self.json.clone())
            .into()
    }
}

/// Go's zero `time.Time` in JSON.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn version(v: &NodeView) -> String {
    v.info
        .as_ref()
        .map(|i| i.version.clone())
        .unwrap_or_default()
}

/// A node as `.Builder.Nodes` gives it: the fields of buildx's `builder.Node` scripts read.
fn node_data(v: &NodeView) -> Data {
    let platforms: Vec<Data> = v
        .platforms_plain()
        .iter()
        .filter_map(|p| brix_config::Platform::parse(p).ok())
        .map(|p| super::imagetools::platform_data(&p, "v1.Platform"))
        .collect();
    let info = v.info.as_ref();
    Struct::new("builder.Node")
        .field("Name", &v.node.name)
        .field("Endpoint", &v.node.endpoint)
        .field("DriverOpts", Data::string_map(&v.node.driver_opts))
        .field("BuildkitdFlags", Data::strings(&v.node.buildkitd_flags))
        .field("Version", version(v))
        .field("Err", v.err.as_ref().map_or(Data::Nil, Data::from))
        .field("IDs", Data::strings(info.map_or(&[][..], |i| &i.ids)))
        .field(
            "Platforms",
            if platforms.is_empty() {
                Data::NilList
            } else {
                Data::List(platforms)
            },
        )
        .field(
            "Labels",
            info.map_or(Data::NilMap, |i| Data::string_map(&i.labels)),
        )
        .marshal_json(node_marshal_json(v))
        .into()
}

/// buildx's `builder.Node.MarshalJSON`, as `{{json .Builder}}` shows it.
fn node_marshal_json(v: &NodeView) -> Data {
    let info = v.info.as_ref();
    let gc: Vec<Data> = info
        .map(|i| i.gc_policy.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            Struct::new("*client.PruneInfo")
                .tagged("All", "all", false, r.all)
                .tagged("Filter", "filter", false, Data::strings(&r.filters))
                .tagged("KeepDuration", "keepDuration", false, r.keep_duration)
                .tagged("ReservedSpace", "reservedSpace", false, r.reserved_space)
                .tagged("MaxUsedSpace", "maxUsedSpace", false, r.max_used_space)
                .tagged("MinFreeSpace", "minFreeSpace", false, r.min_free_space)
                .into()
        })
        .collect();
    let files = files_base64(v);
    let labels = info.map_or(Data::NilMap, |i| Data::string_map(&i.labels));
    let ids = Data::strings(info.map_or(&[][..], |i| &i.ids));
    let err = v.err.as_deref().unwrap_or("").trim().to_owned();
    [
        ("Flags", Data::strings(&v.node.buildkitd_flags)),
        ("DriverOpts", Data::string_map(&v.node.driver_opts)),
        ("Files", Data::string_map(&files)),
        ("Status", Data::from(v.status_word())),
        ("Version", Data::from(version(v))),
        ("Err", Data::from(err)),
        ("IDs", ids),
        ("Platforms", Data::strings(&v.platforms_plain())),
        ("GCPolicy", Data::List(gc)),
        ("Labels", labels),
    ]
    .into_iter()
    .fold(
        Struct::new("builder.Node")
            .field("Name", &v.node.name)
            .field("Endpoint", &v.node.endpoint),
        |s, (name, value)| s.tagged(name, name, true, value),
    )
    .into()
}

/// The node's files as JSON shows them (base64, as Go encodes `[]byte`).
fn files_base64(v: &NodeView) -> BTreeMap<String, String> {
    use base64::Engine;
    v.node
        .files
        .iter()
        .map(|(k, d)| {
            (
                k.clone(),
                base64::engine::general_purpose::STANDARD.encode(d),
            )
        })
        .collect()
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
                m.insert("Files".into(), json!(files_base64(v)));
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
        .unwrap_or_else(|| ZERO_TIME.to_string());
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
