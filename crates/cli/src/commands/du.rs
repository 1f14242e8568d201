//! `brix du`: the builder's build cache records and their sizes, laid out as
//! `docker buildx du` prints them. Also the pieces `brix prune` shares with it: buildx's
//! `--filter` translation, go-units sizes and durations, Go time text, and connecting to
//! every node of a builder.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use brix_config::format_bytes_decimal;
use brix_driver::builder::{driver_for, resolve};
use brix_driver::{NodeGroup, Status, Store, timefmt};
use brix_solver_client::ControlClient;
use brix_solver_client::workers::CacheRecord;

use super::node_status::{print_stdout, runtime};
use crate::gotemplate::{CliFormat, Data, Struct};
use crate::tabwriter;

/// buildx's `duDefaultTableFormat`.
const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Reclaimable}}\t{{.Size}}\t{{.LastUsedAt}}";

/// buildx's `duDefaultPrettyTemplate` (`--verbose`, `--format pretty`).
const PRETTY: &str = "ID:           {{.ID}}
{{- if .Parents }}
Parents:
{{- range .Parents }}
 - {{.}}
{{- end }}
{{- end }}
Created at:   {{.CreatedAt}}
Mutable:      {{.Mutable}}
Reclaimable:  {{.Reclaimable}}
Shared:       {{.Shared}}
Size:         {{.Size}}
{{- if .Description}}
Description:  {{ .Description }}
{{- end }}
Usage count:  {{.UsageCount}}
{{- if .LastUsedAt}}
Last used:    {{ .LastUsedAt }}
{{- end }}
{{- if .Type}}
Type:         {{ .Type }}
{{- end }}
";

/// The column names of `table` formats, by field (buildx's `duCtx.Header`).
const HEADER: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Parents", "PARENTS"),
    ("CreatedAt", "CREATED AT"),
    ("Mutable", "MUTABLE"),
    ("Reclaimable", "RECLAIMABLE"),
    ("Shared", "SHARED"),
    ("Size", "SIZE"),
    ("Description", "DESCRIPTION"),
    ("UsageCount", "USAGE COUNT"),
    ("LastUsedAt", "LAST ACCESSED"),
    ("Type", "TYPE"),
];

/// Arguments of `brix du`.
#[derive(Debug, clap::Args)]
pub struct DuArgs {
    /// Builder to read (the current builder if omitted).
    /// (The global `--builder`, before or after the subcommand, as in buildx.)
    #[arg(skip)]
    pub builder: Option<String>,
    /// Filter records, `key=value` (repeatable): `id`, `parents`, `description`, `inuse`,
    /// `mutable`, `immutable`, `shared`, `private`, `type`, `until`; `key!=value` negates.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Show every field of each record (shorthand for `--format pretty`).
    #[arg(long)]
    pub verbose: bool,
    /// Output format: `table` (the default), `pretty`, `json` (one record per line), or a Go
    /// template run once per record (`{{.ID}}`, `table {{.ID}}\t{{.Size}}`; fields `ID`,
    /// `Parents`, `CreatedAt`, `Mutable`, `Reclaimable`, `Shared`, `Size`, `Description`,
    /// `UsageCount`, `LastUsedAt`, `Type`).
    #[arg(long)]
    pub format: Option<String>,
}

/// Reads the cache records of every node and prints them through the `--format` template
/// (refused before any node is contacted if it does not parse), then, for the default table
/// and `pretty` without filters, the `Shared:`/`Private:`/`Reclaimable:`/`Total:` summary.
pub fn run(args: DuArgs) -> anyhow::Result<ExitCode> {
    let format = match (args.format.as_deref(), args.verbose) {
        (Some(_), true) => bail!("--format and --verbose cannot be used together"),
        (None, false) | (Some("table"), false) => DEFAULT_TABLE,
        (None, true) | (Some("pretty"), false) => PRETTY,
        (Some(other), false) => other,
    };
    let template = CliFormat::parse(format)?;
    let filters = CacheFilters::parse(&args.filters)?;
    let ng = {
        let store = Store::open_default()?;
        let txn = store.txn()?;
        resolve(&txn, args.builder.as_deref())?
    };
    let rt = runtime()?;
    let records = rt.block_on(async {
        let clients = connect_nodes(&ng).await?;
        let wire_filters = filters.wire();
        let jobs = clients.iter().map(|(node, client)| {
            let wire_filters = &wire_filters;
            async move {
                let mut records = client
                    .disk_usage(wire_filters)
                    .await
                    .with_context(|| format!("reading the build cache of node {node}"))?;
                // BuildKit's Go client orders each node's records so: smallest first, then by ID.
                records.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.id.cmp(&b.id)));
                Ok::<_, anyhow::Error>(records)
            }
        });
        let per_node = futures_util::future::try_join_all(jobs).await?;
        Ok::<_, anyhow::Error>(per_node.into_iter().flatten().collect::<Vec<_>>())
    })?;
    let mut out = render(&template, &records, SystemTime::now())?;
    if (format == DEFAULT_TABLE || format == PRETTY) && !filters.given {
        out.push_str(&render_summary(&records));
    }
    print_stdout(&out);
    Ok(ExitCode::SUCCESS)
}

/// The records through `template`.
fn render(
    template: &CliFormat,
    records: &[CacheRecord],
    now: SystemTime,
) -> anyhow::Result<String> {
    let table = template.is_table();
    let rows: Vec<Data> = records.iter().map(|r| record_data(r, now, table)).collect();
    Ok(template.render(&rows, HEADER)?)
}

/// One record as buildx's `diskusageContext` shows it: in a table, a mutable record's ID and
/// a shared record's size get a `*`.
fn record_data(r: &CacheRecord, now: SystemTime, table: bool) -> Data {
    let star = |yes: bool| if yes && table { "*" } else { "" };
    let fields = [
        ("ID", Data::from(format!("{}{}", r.id, star(r.mutable)))),
        ("Parents", Data::strings(&r.parents)),
        ("CreatedAt", Data::from(go_time(r.created_at))),
        ("Mutable", Data::from(r.mutable)),
        ("Reclaimable", Data::from(!r.in_use)),
        ("Shared", Data::from(r.shared)),
        (
            "Size",
            Data::from(format!("{}{}", human_size(r.size), star(r.shared))),
        ),
        ("Description", Data::from(&r.description)),
        ("UsageCount", Data::from(r.usage_count)),
        ("LastUsedAt", Data::from(last_accessed(r, now))),
        ("Type", Data::from(&r.record_type)),
    ];
    // `{{json .}}` is docker's `formatter.MarshalJSON`: every method's value, by name.
    let json: BTreeMap<String, Data> = fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    fields
        .into_iter()
        .fold(
            Struct::new("*commands.diskusageContext"),
            |s, (name, value)| s.method(name, value),
        )
        .marshal_json(json)
        .into()
}

/// buildx's summary: `Shared:`/`Private:` (only when something is shared), `Reclaimable:`
/// and `Total:`, aligned with tabs as Go's tabwriter does.
fn render_summary(records: &[CacheRecord]) -> String {
    let (mut total, mut reclaimable, mut shared) = (0i64, 0i64, 0i64);
    for r in records {
        if r.size > 0 {
            total += r.size;
            if r.reclaimable() {
                reclaimable += r.size;
            }
        }
        if r.shared {
            shared += r.size;
        }
    }
    let mut text = String::new();
    if shared > 0 {
        let _ = writeln!(text, "Shared:\t{}", human_size(shared));
        let _ = writeln!(text, "Private:\t{}", human_size(total - shared));
    }
    let _ = writeln!(text, "Reclaimable:\t{}", human_size(reclaimable));
    let _ = writeln!(text, "Total:\t{}", human_size(total));
    tabwriter::align_tabs(&text, 1, 8, 1)
}

/// `3 seconds ago` from the record's last use, or empty when it was never used.
pub(crate) fn last_accessed(r: &CacheRecord, now: SystemTime) -> String {
    match r.last_used_at {
        Some(t) => format!(
            "{} ago",
            human_duration(now.duration_since(t).unwrap_or_default())
        ),
        None => String::new(),
    }
}

/// go-units `HumanSize` (decimal units) of a byte count.
pub(crate) fn human_size(bytes: i64) -> String {
    format_bytes_decimal(bytes as f64)
}

/// go-units `HumanDuration`: `Less than a second`, `3 seconds`, `About a minute`, ...
pub(crate) fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // go-units rounds hours to the nearest one.
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// A time as Go's `time.Time.String()` prints a UTC time: `2026-11-26 20:55:29.123 +0000 UTC`
/// (fraction without trailing zeros). A missing time is Go's zero time.
pub(crate) fn go_time(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let whole = timefmt::go_default(t);
    let nanos = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    if nanos == 0 || whole.len() < 19 {
        return whole;
    }
    let frac = format!("{nanos:09}");
    format!(
        "{}.{}{}",
        &whole[..19],
        frac.trim_end_matches('0'),
        &whole[19..]
    )
}

/// `--filter` values translated as buildx's `toBuildkitPruneInfo` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheFilters {
    /// `until` (or the deprecated `unused-for`): keep records used more recently than this.
    pub(crate) until: Option<Duration>,
    /// containerd-style expressions: `id~=x`, `type==regular`, `type!=regular`, ...
    pub(crate) expressions: Vec<String>,
    /// Whether any filter was given (buildx then leaves out the summary).
    pub(crate) given: bool,
}

impl CacheFilters {
    /// Parses `key=value` values (keys lower-cased, both sides trimmed, one value per key).
    pub(crate) fn parse(values: &[String]) -> anyhow::Result<Self> {
        let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for v in values.iter().filter(|v| !v.is_empty()) {
            let Some((key, value)) = v.split_once('=') else {
                bail!("bad format of filter {v:?} (expected name=value)");
            };
            by_key
                .entry(key.trim().to_ascii_lowercase())
                .or_default()
                .insert(value.trim().to_string());
        }
        if by_key.contains_key("until") && by_key.contains_key("unused-for") {
            bail!(r#"conflicting filters "until" and "unused-for""#);
        }
        let until_key = if by_key.contains_key("unused-for") {
            "unused-for"
        } else {
            "until"
        };
        let mut out = CacheFilters {
            given: !by_key.is_empty(),
            ..Default::default()
        };
        for (key, vals) in &by_key {
            let mut vals = vals.iter();
            let (Some(value), None) = (vals.next(), vals.next()) else {
                bail!("{key:?} filter expects only one value");
            };
            if key == until_key {
                let nanos = brix_config::parse_go_duration(value)
                    .filter(|n| *n >= 0)
                    .with_context(|| {
                        format!("{key:?} filter expects a duration (e.g., '24h'), not {value:?}")
                    })?;
                out.until = Some(Duration::from_nanos(nanos.unsigned_abs()));
            } else if key == "id" {
                out.expressions.push(format!("id~={value}"));
            } else if key.ends_with('!') || key.ends_with('~') {
                out.expressions.push(format!("{key}={value}"));
            } else {
                out.expressions.push(format!("{key}=={value}"));
            }
        }
        Ok(out)
    }

    /// The filter list for `DiskUsage`/`Prune`: one comma-joined expression (BuildKit ANDs
    /// them), or none.
    pub(crate) fn wire(&self) -> Vec<String> {
        if self.expressions.is_empty() {
            Vec::new()
        } else {
            vec![self.expressions.join(",")]
        }
    }
}

/// Connects to every node of `ng`. Like buildx, it fails when a node cannot be read; a node
/// that is not running is an error that says how to start it.
pub(crate) async fn connect_nodes(ng: &NodeGroup) -> anyhow::Result<Vec<(String, ControlClient)>> {
    let jobs = ng.nodes.iter().map(|node| async move {
        let driver = driver_for(ng, node)?;
        let status = driver
            .status()
            .await
            .with_context(|| format!("reading the status of node {}", node.name))?;
        if status != Status::Running {
            bail!(
                "node {} of builder {} is {status}: start it with `brix inspect --bootstrap {}`",
                node.name,
                ng.name,
                ng.name
            );
        }
        let client = driver
            .connect()
            .await
            .with_context(|| format!("connecting to node {} ({})", node.name, driver.describe()))?;
        Ok((node.name.clone(), client))
    });
    futures_util::future::try_join_all(jobs).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn record(id: &str, size: i64) -> CacheRecord {
        CacheRecord {
            id: id.into(),
            size,
            created_at: Some(at(1_700_000_000) + Duration::from_millis(250)),
            last_used_at: Some(at(1_700_000_000)),
            usage_count: 1,
            record_type: "regular".into(),
            ..Default::default()
        }
    }

    fn render_with(format: &str, records: &[CacheRecord], now: SystemTime) -> String {
        render(&CliFormat::parse(format).unwrap(), records, now).unwrap()
    }

    #[test]
    fn table_matches_buildx_layout() {
        let now = at(1_700_000_003);
        let text = render_with(
            DEFAULT_TABLE,
            &[record("6jghbf8de4f5xgoks314draqr", 4096)],
            now,
        ) + &render_summary(&[record("x", 4096)]);
        let mut r = record("6jghbf8de4f5xgoks314draqr", 4096);
        r.mutable = true;
        let text2 = render_with(DEFAULT_TABLE, &[r.clone()], now) + &render_summary(&[r]);
        // The layout captured from buildx 0.29.1 (buildx-outputs.md).
        assert_eq!(
            text2,
            "ID                           RECLAIMABLE   SIZE      LAST ACCESSED\n\
             6jghbf8de4f5xgoks314draqr*   true          4.096kB   3 seconds ago\n\
             Reclaimable:\t4.096kB\n\
             Total:\t\t4.096kB\n"
        );
        assert!(text.contains("6jghbf8de4f5xgoks314draqr   true"), "{text}");
    }

    #[test]
    fn summary_shows_shared_and_in_use() {
        let mut a = record("a", 2_000_000);
        a.shared = true;
        let mut b = record("b", 500);
        b.in_use = true;
        let s = render_summary(&[a, b, record("c", -1)]);
        assert_eq!(
            s,
            "Shared:\t\t2MB\nPrivate:\t500B\nReclaimable:\t2MB\nTotal:\t\t2.001MB\n"
        );
    }

    #[test]
    fn pretty_and_json_match_buildx_templates() {
        let now = at(1_700_000_120);
        let mut r = record("abc", 1234);
        r.parents = vec!["p1".into()];
        r.description = "mount / from exec /bin/sh -c echo > /x".into();
        let pretty = render_with(PRETTY, std::slice::from_ref(&r), now);
        assert_eq!(
            pretty,
            "ID:           abc\nParents:\n - p1\nCreated at:   2023-11-14 22:13:20.25 +0000 UTC\n\
             Mutable:      false\nReclaimable:  true\nShared:       false\nSize:         1.234kB\n\
             Description:  mount / from exec /bin/sh -c echo > /x\nUsage count:  1\n\
             Last used:    2 minutes ago\nType:         regular\n\n"
        );
        let json = render_with("json", std::slice::from_ref(&r), now);
        assert_eq!(
            json,
            "{\"CreatedAt\":\"2023-11-14 22:13:20.25 +0000 UTC\",\"Description\":\"mount / from exec /bin/sh -c echo \\u003e /x\",\
             \"ID\":\"abc\",\"LastUsedAt\":\"2 minutes ago\",\"Mutable\":false,\"Parents\":[\"p1\"],\
             \"Reclaimable\":true,\"Shared\":false,\"Size\":\"1.234kB\",\"Type\":\"regular\",\"UsageCount\":1}\n"
        );
        // Templates see buildx's fields; a table marks mutable IDs and shared sizes.
        r.mutable = true;
        r.shared = true;
        assert_eq!(
            render_with(
                "{{.ID}} {{.Parents}} {{json .Parents}} {{.UsageCount}} {{.Size}}",
                &[r.clone()],
                now
            ),
            "abc [p1] [\"p1\"] 1 1.234kB\n"
        );
        assert_eq!(
            render_with("table {{.ID}}\\t{{.Size}}\\t{{.Type}}", &[r], now),
            "ID        SIZE       TYPE\nabc*      1.234kB*   regular\n"
        );
        assert_eq!(
            render_with("{{.Parents}}|{{json .Parents}}", &[record("x", 1)], now),
            "[]|null\n"
        );
    }

    #[test]
    fn durations_read_like_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(999)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(3599)), "59 minutes");
        assert_eq!(human_duration(s(3600 + 1799)), "About an hour");
        assert_eq!(human_duration(s(3600 + 1800)), "2 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(15 * 24 * 3600)), "2 weeks");
        assert_eq!(human_duration(s(90 * 24 * 3600)), "3 months");
        assert_eq!(human_duration(s(800 * 24 * 3600)), "2 years");
    }

    #[test]
    fn filters_translate_like_buildx() {
        let f = CacheFilters::parse(&[
            "ID=abc".into(),
            "type!=regular".into(),
            "description~=exec".into(),
            "inuse=true".into(),
            "until=24h".into(),
        ])
        .unwrap();
        assert_eq!(f.until, Some(Duration::from_secs(24 * 3600)));
        assert_eq!(
            f.wire(),
            ["description~=exec,id~=abc,inuse==true,type!=regular"]
        );
        assert!(f.given);
        assert_eq!(
            CacheFilters::parse(&[]).unwrap().wire(),
            Vec::<String>::new()
        );
        assert!(CacheFilters::parse(&["novalue".into()]).is_err());
        assert!(CacheFilters::parse(&["until=1h".into(), "unused-for=2h".into()]).is_err());
        assert!(CacheFilters::parse(&["until=soon".into()]).is_err());
        assert!(CacheFilters::parse(&["type=a".into(), "type=b".into()]).is_err());
        assert_eq!(
            CacheFilters::parse(&["type=a".into(), "type=a".into()])
                .unwrap()
                .wire(),
            ["type==a"]
        );
    }
}
