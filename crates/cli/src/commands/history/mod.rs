//! `brix history`: the builder's build records, read from its daemons' build history API, as
//! `docker buildx history` shows them (`ls`, `inspect`, `inspect attachment`, `logs`, `rm`,
//! `export`). Records live in the daemon, so brix and buildx see each other's builds.
//!
//! This module holds what the subcommands share: connecting to the builder's nodes, reading
//! records across them (`REF`, `^N`, `--filter`), and buildx's build names and durations.

mod export;
mod inspect;
mod logs;
mod ls;
mod rm;

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use brix_driver::builder::resolve;
use brix_driver::{NodeGroup, Store, timefmt};
use brix_solver_client::ControlClient;
use brix_solver_client::history::{HistoryEntry, HistoryQuery};

use super::du::connect_nodes;
use super::node_status::{boot, load_nodes, runtime};

/// buildx asks each node for at most this many records.
const RECORDS_LIMIT: i32 = 50;

/// Arguments of `brix history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Builder whose records to use (the current builder if omitted).
    /// (The global `--builder`, before or after the subcommand, as in buildx.)
    #[arg(skip)]
    pub builder: Option<String>,
    #[command(subcommand)]
    command: HistoryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HistoryCommand {
    /// List build records.
    Ls(ls::LsArgs),
    /// Inspect a build record.
    Inspect(inspect::InspectArgs),
    /// Print the logs of a build record.
    Logs(logs::LogsArgs),
    /// Remove build records.
    Rm(rm::RmArgs),
    /// Export build records into a Docker Desktop bundle (`.dockerbuild`).
    Export(export::ExportArgs),
}

/// Runs one `brix history` subcommand.
pub fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let ng = {
        let store = Store::open_default()?;
        let txn = store.txn()?;
        resolve(&txn, args.builder.as_deref())?
    };
    let rt = runtime()?;
    rt.block_on(async {
        match args.command {
            HistoryCommand::Ls(a) => ls::run(&ng, a).await,
            HistoryCommand::Inspect(a) => inspect::run(&ng, a).await,
            HistoryCommand::Logs(a) => logs::run(&ng, a).await,
            HistoryCommand::Rm(a) => rm::run(&ng, a).await,
            HistoryCommand::Export(a) => export::run(&ng, a).await,
        }
    })
}

/// One connected node of the builder.
struct NodeClient {
    builder: String,
    node: String,
    client: ControlClient,
}

/// Connects to every node of `ng`. With `boot`, nodes that are not running are started
/// first (buildx boots the builder for `ls`, `inspect` and `export`; `logs` and `rm` only
/// read what is running).
async fn connect(ng: &NodeGroup, boot_first: bool) -> anyhow::Result<Vec<NodeClient>> {
    if boot_first {
        let mut views = load_nodes(ng, false).await;
        boot(ng, &mut views).await?;
        if let Some(err) = views.iter().find_map(|v| v.err.as_ref()) {
            bail!("{err}");
        }
    }
    Ok(connect_nodes(ng)
        .await?
        .into_iter()
        .map(|(node, client)| NodeClient {
            builder: ng.name.clone(),
            node,
            client,
        })
        .collect())
}

/// A record with the node it lives on.
struct Record<'a> {
    entry: HistoryEntry,
    node: &'a NodeClient,
    /// The daemon's clock when it sent the record.
    daemon_time: Option<SystemTime>,
}

impl Record<'_> {
    fn build_ref(&self) -> &str {
        &self.entry.record.r#ref
    }

    /// `builder/node/ref`, the form `--metadata-file`'s `buildx.build.ref` and Docker
    /// Desktop use.
    fn full_ref(&self) -> String {
        format!(
            "{}/{}/{}",
            self.node.builder,
            self.node.node,
            self.build_ref()
        )
    }

    fn created_at(&self) -> SystemTime {
        self.entry.created_at().unwrap_or(UNIX_EPOCH)
    }

    /// How long the build took, or has taken so far by the daemon's clock.
    fn duration(&self) -> Option<Duration> {
        let end = self.entry.completed_at().or(self.daemon_time)?;
        Some(end.duration_since(self.created_at()).unwrap_or_default())
    }

    /// What buildx keeps on the client about this build (`refs/<builder>/<node>/<ref>`).
    fn local_state(&self) -> Option<LocalState> {
        LocalState::read(&self.node.builder, &self.node.node, self.build_ref())
    }
}

/// Which records [`query_records`] keeps.
#[derive(Debug, Default)]
struct QueryOptions {
    filters: Vec<String>,
    completed_only: bool,
}

/// The records of `reference` (a build ref, `^N` for the N-th newest, or empty for all)
/// across `nodes`, newest first, as buildx's `queryRecords`.
async fn query_records<'a>(
    nodes: &'a [NodeClient],
    reference: &str,
    opts: &QueryOptions,
) -> anyhow::Result<Vec<Record<'a>>> {
    let (build_ref, mut offset) = match reference.strip_prefix('^') {
        Some(n) => {
            let n: usize = n
                .parse()
                .with_context(|| format!("invalid offset {reference:?}"))?;
            (String::new(), Some(n))
        }
        None => (reference.to_owned(), None),
    };
    let filters = if opts.filters.is_empty() {
        None
    } else {
        Some(HistoryFilters::parse(&opts.filters)?)
    };
    let query = HistoryQuery {
        build_ref,
        filters: filters.as_ref().map(|f| vec![f.wire()]).unwrap_or_default(),
        limit: RECORDS_LIMIT,
        active_only: false,
    };
    let jobs = nodes.iter().map(|node| {
        let query = &query;
        async move {
            let history = match node.client.build_history(query).await {
                Ok(history) => history,
                Err(e) if e.is_unimplemented() => bail!(
                    "node {} keeps no build history: BuildKit v0.11 or later does (Docker 23 or \
                     later for the docker driver)",
                    node.node
                ),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("reading the build history of node {}", node.node)
                    });
                }
            };
            Ok::<_, anyhow::Error>((node, history))
        }
    });
    let mut out = Vec::new();
    for (node, history) in futures_util::future::try_join_all(jobs).await? {
        let daemon_time = history.daemon_time.as_deref().and_then(parse_rfc3339_nano);
        for entry in history.records {
            if opts.completed_only && !entry.complete {
                continue;
            }
            // Daemons that do not filter (BuildKit before v0.20) are filtered here.
            if filters.as_ref().is_some_and(|f| !f.matches(&entry)) {
                continue;
            }
            out.push(Record {
                entry,
                node,
                daemon_time,
            });
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at()));
    if let Some(offset) = offset.as_mut() {
        let mut rest = out.into_iter();
        let mut picked = None;
        for r in rest.by_ref() {
            if *offset > 0 {
                *offset -= 1;
                continue;
            }
            picked = Some(r);
            break;
        }
        if *offset > 0 {
            bail!("no completed build found with offset {offset}");
        }
        out = picked.into_iter().collect();
    }
    Ok(out)
}

/// The first record of `reference` (the newest when empty), or buildx's error.
async fn one_record<'a>(nodes: &'a [NodeClient], reference: &str) -> anyhow::Result<Record<'a>> {
    let records = query_records(nodes, reference, &QueryOptions::default()).await?;
    match records.into_iter().next() {
        Some(r) => Ok(r),
        None if reference.is_empty() => bail!("no records found"),
        None => bail!("no record found for ref {reference:?}"),
    }
}

/// `--filter` values as buildx translates them (`dockerFiltersToBuildkit`): the expressions
/// the daemon evaluates, and the same checks done here for daemons that ignore them.
#[derive(Debug)]
struct HistoryFilters {
    /// `key==value`, `key~=value`, `key!=value`, `key<value`, ... as sent.
    wire: Vec<String>,
    checks: Vec<FilterCheck>,
}

#[derive(Debug)]
enum FilterCheck {
    /// `ref`, `repository` or `status` compared with `=` (contains; `status`: equals) or `!=`.
    Value {
        key: String,
        value: String,
        negate: bool,
    },
    /// `startedAt`, `completedAt` (Unix seconds) or `duration` (nanoseconds) compared with
    /// `<`, `<=`, `>` or `>=`.
    Time {
        key: String,
        op: String,
        against: i128,
    },
}

impl HistoryFilters {
    fn parse(values: &[String]) -> anyhow::Result<Self> {
        let mut wire = Vec::new();
        let mut checks = Vec::new();
        let now = SystemTime::now();
        for f in values {
            // As buildx: the first of these separators found anywhere splits the filter.
            let Some((key, value, sep)) = ["!=", "=", "<=", "<", ">=", ">"]
                .iter()
                .find_map(|sep| f.split_once(sep).map(|(k, v)| (k, v, *sep)))
            else {
                bail!("invalid filter {f:?}");
            };
            let sent_sep = match key {
                "ref" | "repository" | "status" => {
                    if sep != "=" && sep != "!=" {
                        bail!("invalid separator for {f:?}, expected = or !=");
                    }
                    checks.push(FilterCheck::Value {
                        key: key.to_owned(),
                        value: value.to_owned(),
                        negate: sep == "!=",
                    });
                    match (sep, key) {
                        ("=", "status") => "==",
                        ("=", _) => "~=",
                        _ => sep,
                    }
                }
                "startedAt" | "completedAt" | "duration" => {
                    if sep == "=" || sep == "!=" {
                        bail!("invalid separator for {f:?}, expected <=, <, >= or >");
                    }
                    checks.push(FilterCheck::Time {
                        key: key.to_owned(),
                        op: sep.to_owned(),
                        against: time_filter_operand(key, value, now)?,
                    });
                    sep
                }
                _ => bail!("unsupported filter {f:?}"),
            };
            wire.push(format!("{key}{sent_sep}{value}"));
        }
        Ok(HistoryFilters { wire, checks })
    }

    /// The one filter string sent to the daemon: the expressions as one CSV record.
    fn wire(&self) -> String {
        self.wire
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn matches(&self, entry: &HistoryEntry) -> bool {
        self.checks.iter().all(|c| c.matches(entry))
    }
}

impl FilterCheck {
    fn matches(&self, entry: &HistoryEntry) -> bool {
        let rec = &entry.record;
        match self {
            FilterCheck::Value { key, value, negate } => {
                let actual = match key.as_str() {
                    "ref" => rec.r#ref.clone(),
                    "repository" => rec
                        .frontend_attrs
                        .get("vcs:source")
                        .cloned()
                        .or_else(|| {
                            rec.frontend_attrs
                                .get("context")
                                .filter(|c| looks_like_git(c))
                                .map(|c| git_remote(c))
                        })
                        .unwrap_or_default(),
                    _ => match (&rec.completed_at, &rec.error) {
                        (None, _) => "running".to_owned(),
                        (Some(_), None) => "completed".to_owned(),
                        (Some(_), Some(e)) if e.message.contains("context canceled") => {
                            "canceled".to_owned()
                        }
                        (Some(_), Some(_)) => "error".to_owned(),
                    },
                };
                if *negate {
                    actual != *value
                } else if key == "status" {
                    actual == *value
                } else {
                    actual.contains(value.as_str())
                }
            }
            FilterCheck::Time { key, op, against } => {
                let secs = |t: Option<SystemTime>| -> i128 {
                    t.map(|t| unix_nanos(t).div_euclid(1_000_000_000))
                        .unwrap_or(0)
                };
                let actual = match key.as_str() {
                    "startedAt" => secs(entry.created_at()),
                    "completedAt" => secs(entry.completed_at()),
                    _ => match (entry.created_at(), entry.completed_at()) {
                        (Some(c), Some(d)) => unix_nanos(d) - unix_nanos(c),
                        _ => 0,
                    },
                };
                match op.as_str() {
                    ">=" => actual >= *against,
                    "<=" => actual <= *against,
                    ">" => actual > *against,
                    _ => actual < *against,
                }
            }
        }
    }
}

/// What a time filter compares with: for `startedAt`/`completedAt` the Unix second a Go
/// duration ago (or of an RFC 3339 time), for `duration` the duration in nanoseconds.
fn time_filter_operand(key: &str, value: &str, now: SystemTime) -> anyhow::Result<i128> {
    let duration = brix_config::parse_go_duration(value);
    if key == "duration" {
        return duration
            .map(i128::from)
            .with_context(|| format!("invalid duration {value}"));
    }
    let at = match duration {
        Some(nanos) => unix_nanos(now) - i128::from(nanos),
        None => timefmt::parse_rfc3339(value)
            .map(unix_nanos)
            .with_context(|| format!("invalid time {value}"))?,
    };
    Ok(at.div_euclid(1_000_000_000))
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// One CSV field as Go's `encoding/csv` writes it: quoted when it holds a comma, a quote or
/// a line break, or starts with a space.
fn csv_field(field: &str) -> String {
    let needs_quotes = field == r"\."
        || field.contains([',', '"', '\r', '\n'])
        || field.starts_with(|c: char| c.is_whitespace());
    if needs_quotes {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Whether a build context names a Git repository (the forms BuildKit's Dockerfile
/// frontend reads as Git).
fn looks_like_git(context: &str) -> bool {
    let base = context.split('#').next().unwrap_or(context);
    context.starts_with("git://")
        || context.starts_with("git@")
        || base.ends_with(".git")
        || ((context.starts_with("https://") || context.starts_with("http://"))
            && (base.starts_with("https://github.com/") || base.starts_with("http://github.com/")))
}

/// A Git context's remote: the URL without its `#ref:subdir` fragment.
fn git_remote(context: &str) -> String {
    context.split('#').next().unwrap_or(context).to_owned()
}

/// `2026-12-01T21:28:28.846797149Z` (the daemon's clock header) with its fraction.
fn parse_rfc3339_nano(s: &str) -> Option<SystemTime> {
    let whole = timefmt::parse_rfc3339(s)?;
    let nanos = s
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|frac| {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            format!("{digits:0<9}")[..9].parse::<u32>().unwrap_or(0)
        })
        .unwrap_or(0);
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// buildx's `formatDuration`: `0.4s` under a minute, else `2m 5s`.
fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m {:2}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// What buildx writes on the client for each build it runs (`refs/<builder>/<node>/<ref>` in
/// its config folder, which is brix's store when they share one): where the context and the
/// Dockerfile were.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
struct LocalState {
    #[serde(rename = "Target", default, skip_serializing_if = "String::is_empty")]
    target: String,
    #[serde(rename = "LocalPath", default)]
    local_path: String,
    #[serde(rename = "DockerfilePath", default)]
    dockerfile_path: String,
    #[serde(rename = "GroupRef", default, skip_serializing_if = "String::is_empty")]
    group_ref: String,
}

impl LocalState {
    fn read(builder: &str, node: &str, build_ref: &str) -> Option<Self> {
        let safe = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
        if !(safe(builder) && safe(node) && safe(build_ref)) {
            return None;
        }
        let root = brix_driver::store::default_root().ok()?;
        let path = root.join("refs").join(builder).join(node).join(build_ref);
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// The name buildx gives a build (`BuildName`): `BUILDKIT_BUILD_NAME`, else the Dockerfile's
/// folder or the context, with the target, else the Git source.
fn build_name(
    attrs: &std::collections::BTreeMap<String, String>,
    ls: Option<&LocalState>,
) -> String {
    if let Some(v) = attrs
        .get("build-arg:BUILDKIT_BUILD_NAME")
        .filter(|v| !v.is_empty())
    {
        return v.clone();
    }
    let target = attrs.get("target").cloned().unwrap_or_default();
    let context_path = match attrs.get("context") {
        Some(v) => v.clone(),
        None => attrs
            .get("vcs:localdir:context")
            .filter(|v| *v != ".")
            .cloned()
            .unwrap_or_default(),
    };
    let vcs_source = match attrs.get("vcs:source") {
        Some(v) => v.clone(),
        None => attrs
            .get("input:context")
            .filter(|v| looks_like_git(v))
            .cloned()
            .unwrap_or_default(),
    };
    let mut dockerfile_path = attrs
        .get("filename")
        .filter(|v| *v != "Dockerfile")
        .cloned()
        .unwrap_or_default();
    if let Some(dir) = attrs.get("vcs:localdir:dockerfile").filter(|v| *v != ".") {
        dockerfile_path = join_clean(dir, &dockerfile_path);
    }
    let mut local_path = String::new();
    if let Some(ls) = ls.filter(|ls| !is_remote_url(&ls.local_path)) {
        if !ls.local_path.is_empty() && ls.local_path != "-" {
            local_path = ls.local_path.clone();
        }
        if !ls.dockerfile_path.is_empty()
            && ls.dockerfile_path != "-"
            && ls.dockerfile_path != "Dockerfile"
        {
            dockerfile_path = ls.dockerfile_path.clone();
        }
    }

    const DEFAULT_FILENAME: &str = "/Dockerfile";
    let has_default_filename =
        dockerfile_path.ends_with(DEFAULT_FILENAME) || dockerfile_path.is_empty();
    let dockerfile_path = dockerfile_path
        .strip_suffix(DEFAULT_FILENAME)
        .unwrap_or(&dockerfile_path)
        .to_owned();

    let mut res = String::new();
    if dockerfile_path.starts_with(&local_path) && dockerfile_path.len() > local_path.len() {
        let from = local_path.rfind('/').map(|i| i + 1).unwrap_or(0);
        res = dockerfile_path[from..].to_owned();
    } else {
        let bpath = if dockerfile_path.is_empty() {
            &local_path
        } else {
            &dockerfile_path
        };
        if !bpath.is_empty() {
            let lidx = bpath.rfind('/');
            res = bpath[lidx.map(|i| i + 1).unwrap_or(0)..].to_owned();
            if !has_default_filename {
                let dir = match lidx {
                    Some(i) => go_base(&bpath[..i]),
                    None => go_base(bpath),
                };
                res = join_clean(&dir, &res);
            }
        }
    }
    if !context_path.is_empty() {
        res = context_path;
    }
    if !target.is_empty() {
        res = if res.is_empty() {
            target
        } else {
            format!("{res} ({target})")
        };
    }
    if res.is_empty() && !vcs_source.is_empty() {
        return vcs_source;
    }
    res
}

/// Whether buildx treats a context as remote (`urlutil.IsRemoteURL`): a URL or a Git address.
fn is_remote_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || looks_like_git(s)
}

/// Go's `filepath.Base`.
fn go_base(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Go's `filepath.Join` (joined, then cleaned lexically).
fn join_clean(a: &str, b: &str) -> String {
    let joined = match (a.is_empty(), b.is_empty()) {
        (true, true) => return String::new(),
        (true, false) => b.to_owned(),
        (false, true) => a.to_owned(),
        (false, false) => format!("{a}/{b}"),
    };
    clean_path(Path::new(&joined))
}

/// Go's `filepath.Clean`, lexically.
fn clean_path(p: &Path) -> String {
    let mut parts: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                Some(Component::RootDir) => {}
                _ => parts.push(c),
            },
            other => parts.push(other),
        }
    }
    let out: PathBuf = parts.iter().collect();
    let s = out.to_string_lossy().into_owned();
    if s.is_empty() { ".".into() } else { s }
}

/// Go's `filepath.Rel(base, target)` for two absolute (or two relative) paths, lexically.
fn relative_path(base: &str, target: &str) -> Option<String> {
    let base = clean_path(Path::new(base));
    let target = clean_path(Path::new(target));
    if base.starts_with('/') != target.starts_with('/') {
        return None;
    }
    let split = |s: &str| -> Vec<String> {
        s.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect()
    };
    let (b, t) = (split(&base), split(&target));
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    if b[common..].iter().any(|c| c == "..") {
        return None;
    }
    let mut out: Vec<String> = vec!["..".to_owned(); b.len() - common];
    out.extend(t[common..].iter().cloned());
    Some(if out.is_empty() {
        ".".to_owned()
    } else {
        out.join("/")
    })
}

/// A gRPC code's name as Go's `codes.Code.String()` writes it.
fn grpc_code_name(code: i32) -> String {
    let name = match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        other => return format!("Code({other})"),
    };
    name.to_owned()
}

/// Escapes `<`, `>`, `&`, U+2028 and U+2029 as Go's `json.Marshal` does (inside strings,
/// the only place these characters occur in serialized JSON).
fn go_json_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Docker Desktop's link to a build.
fn desktop_url(full_ref: &str) -> String {
    format!("docker-desktop://dashboard/build/{full_ref}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn build_names_follow_buildx() {
        let ls = LocalState {
            local_path: "/tmp/hist/fail".into(),
            ..Default::default()
        };
        assert_eq!(
            build_name(&attrs(&[("filename", "Dockerfile")]), Some(&ls)),
            "fail"
        );
        assert_eq!(build_name(&attrs(&[("filename", "Dockerfile")]), None), "");
        assert_eq!(
            build_name(
                &attrs(&[("filename", "Dockerfile"), ("target", "app")]),
                Some(&ls)
            ),
            "fail (app)"
        );
        assert_eq!(
            build_name(&attrs(&[("build-arg:BUILDKIT_BUILD_NAME", "named")]), None),
            "named"
        );
        let nested = LocalState {
            local_path: "/src/proj".into(),
            dockerfile_path: "/src/proj/docker/app/Dockerfile".into(),
            ..Default::default()
        };
        assert_eq!(build_name(&attrs(&[]), Some(&nested)), "proj/docker/app");
        let other = LocalState {
            local_path: "/src/proj".into(),
            dockerfile_path: "/elsewhere/dir/app.Dockerfile".into(),
            ..Default::default()
        };
        assert_eq!(build_name(&attrs(&[]), Some(&other)), "dir/app.Dockerfile");
        assert_eq!(
            build_name(
                &attrs(&[("vcs:source", "https://github.com/a/b.git")]),
                None
            ),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            build_name(
                &attrs(&[("context", "https://github.com/a/b.git#main")]),
                None
            ),
            "https://github.com/a/b.git#main"
        );
    }

    #[test]
    fn filters_translate_like_buildx() {
        let f = HistoryFilters::parse(&["status=error".into(), "ref=abc".into()]).unwrap();
        assert_eq!(f.wire(), "status==error,ref~=abc");
        let f = HistoryFilters::parse(&["ref!=a,b".into()]).unwrap();
        assert_eq!(f.wire(), "\"ref!=a,b\"");
        assert!(HistoryFilters::parse(&["status<x".into()]).is_err());
        assert!(HistoryFilters::parse(&["name=x".into()]).is_err());
        assert!(HistoryFilters::parse(&["nothing".into()]).is_err());
        let f = HistoryFilters::parse(&["startedAt<1h".into()]).unwrap();
        assert_eq!(f.wire.len(), 1);
        assert!(HistoryFilters::parse(&["duration<soon".into()]).is_err());
    }

    #[test]
    fn local_filter_checks_match_records() {
        let mut entry = HistoryEntry {
            record: Default::default(),
            complete: true,
        };
        entry.record.r#ref = "abcdef".into();
        entry.record.created_at = Some(brix_solver_client::history::Timestamp {
            seconds: 100,
            nanos: 0,
        });
        entry.record.completed_at = Some(brix_solver_client::history::Timestamp {
            seconds: 103,
            nanos: 0,
        });
        let f = HistoryFilters::parse(&["status=completed".into(), "ref=cde".into()]).unwrap();
        assert!(f.matches(&entry));
        let f = HistoryFilters::parse(&["duration>2s".into()]).unwrap();
        assert!(f.matches(&entry));
        let f = HistoryFilters::parse(&["duration<2s".into()]).unwrap();
        assert!(!f.matches(&entry));
        entry.record.error = Some(Default::default());
        let f = HistoryFilters::parse(&["status=error".into()]).unwrap();
        assert!(f.matches(&entry));
    }

    #[test]
    fn durations_and_times_read_like_buildx() {
        assert_eq!(format_duration(Duration::from_millis(389)), "0.4s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m  5s");
        assert_eq!(format_duration(Duration::from_secs(3671)), "61m 11s");
        let t = parse_rfc3339_nano("2026-12-01T21:28:28.8467Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(),
            846_700_000
        );
        assert_eq!(grpc_code_name(2), "Unknown");
        assert_eq!(grpc_code_name(1), "Canceled");
    }

    #[test]
    fn relative_paths_are_lexical() {
        assert_eq!(
            relative_path("/tmp/hist", "/tmp/hist/fail").unwrap(),
            "fail"
        );
        assert_eq!(
            relative_path("/tmp/hist", "/tmp/other").unwrap(),
            "../other"
        );
        assert_eq!(relative_path("/a", "/a").unwrap(), ".");
        assert!(relative_path("/a", "b").is_none());
        assert_eq!(join_clean("docker/app", ""), "docker/app");
        assert_eq!(join_clean("a/../b", "c"), "b/c");
        assert_eq!(go_base("/src/proj/"), "proj");
    }
}
