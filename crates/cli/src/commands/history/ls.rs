//! `brix history ls`: the builder's build records as `docker buildx history ls` lists them.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use brix_driver::{NodeGroup, timefmt};
use serde_json::{Value, json};

use super::{
    QueryOptions, Record, build_name, connect, desktop_url, format_duration, go_json_escape,
    query_records,
};
use crate::commands::du::human_duration;
use crate::commands::node_status::print_stdout;
use crate::tabwriter;

/// Arguments of `brix history ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Output format: `table` (the default) or `json` (one record per line).
    #[arg(long, default_value = "table")]
    format: String,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter records (repeatable): `ref`, `repository` or `status` with `=` or `!=`
    /// (e.g. `status=error`); `startedAt`, `completedAt` or `duration` with `<` or `>`.
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// List records for the current Git repository only.
    #[arg(long)]
    local: bool,
}

/// Lists the records of every node, running builds first, then the newest first.
pub(super) async fn run(ng: &NodeGroup, args: LsArgs) -> anyhow::Result<ExitCode> {
    // `table` and `json` are buildx's fixed layouts; anything else is a Go template over
    // buildx's `lsContext` (parsed before any daemon is asked).
    let template = match args.format.as_str() {
        "table" | "json" => None,
        other => Some(crate::gotemplate::CliFormat::parse(other)?),
    };
    let json = args.format == "json";
    let mut filters = Vec::new();
    if args.local {
        filters.push(format!("repository={}", local_repository()?));
    }
    filters.extend(args.filters.iter().cloned());
    let nodes = connect(ng, true).await?;
    let mut records = query_records(
        &nodes,
        "",
        &QueryOptions {
            filters,
            completed_only: false,
        },
    )
    .await?;
    // Running builds first, then the newest first.
    records.sort_by_key(|r| {
        (
            r.entry.record.completed_at.is_some(),
            std::cmp::Reverse(r.created_at()),
        )
    });
    let now = SystemTime::now();
    let out = if let Some(template) = &template {
        render_template(template, &records, now, !args.no_trunc)?
    } else if json {
        render_json(&records)
    } else {
        use std::io::IsTerminal;
        render_table(
            &records,
            now,
            !args.no_trunc,
            std::io::stdout().is_terminal(),
        )
    };
    print_stdout(&out);
    Ok(ExitCode::SUCCESS)
}

/// The remote URL of the Git repository in the current folder (`origin`, else `upstream`),
/// as buildx's `--local` filters on.
fn local_repository() -> anyhow::Result<String> {
    let dir = std::env::current_dir().context("reading the current folder")?;
    for remote in ["origin", "upstream"] {
        let out = std::process::Command::new("git")
            .args(["remote", "get-url", remote])
            .current_dir(&dir)
            .stderr(std::process::Stdio::null())
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) if dir.join(".git").is_dir() => {
                return Err(e).context("git was not found in the system");
            }
            Err(e) => return Err(e).context("could not find git repository for local filter"),
        };
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !url.is_empty() {
            return Ok(strip_credentials(&url));
        }
    }
    bail!("could not get remote URL for local filter: no remote URL found")
}

/// A remote URL without `user:password@`.
fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_owned(),
    }
}

fn status_word(r: &Record<'_>) -> &'static str {
    match (&r.entry.record.completed_at, &r.entry.record.error) {
        (None, _) => "Running",
        (Some(_), Some(_)) => "Error",
        (Some(_), None) => "Completed",
    }
}

/// `0.4s`, or `1.2s+` for a build still running (by the daemon's clock).
fn duration_text(r: &Record<'_>) -> String {
    match r.duration() {
        None => String::new(),
        Some(d) if r.entry.record.completed_at.is_none() => format!("{}+", format_duration(d)),
        Some(d) => format_duration(d),
    }
}

/// buildx's `trimBeginning`: the last `n` bytes, led by `..`.
fn trim_beginning(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut start = s.len() - n + 2;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("..{}", &s[start..])
}

/// The record's build name, as buildx names it; `trunc`: its last 36 bytes, as in tables.
fn display_name(r: &Record<'_>, trunc: bool) -> String {
    let name = build_name(&r.entry.record.frontend_attrs, r.local_state().as_ref());
    if trunc {
        trim_beginning(&name, 36)
    } else {
        name
    }
}

/// `5 minutes ago`, as buildx's `CreatedAt`.
fn created_ago(r: &Record<'_>, now: SystemTime) -> String {
    format!(
        "{} ago",
        human_duration(now.duration_since(r.created_at()).unwrap_or_default())
    )
}

/// The table: docker's formatter columns (min width 10, padding 3); the last column is
/// Docker Desktop's link, shown only on a terminal.
fn render_table(records: &[Record<'_>], now: SystemTime, trunc: bool, term: bool) -> String {
    let mut text = String::from("BUILD ID\tNAME\tSTATUS\tCREATED AT\tDURATION\t\n");
    for r in records {
        let name = display_name(r, trunc);
        let created = created_ago(r, now);
        let link = if term {
            format!(
                "\x1b]8;;{}\x1b\\Open\x1b]8;;\x1b\\",
                desktop_url(&r.full_ref())
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "{}\t{name}\t{}\t{created}\t{}\t{link}",
            r.build_ref(),
            status_word(r),
            duration_text(r)
        );
    }
    tabwriter::align(&text, 10, 3)
}

/// The records through a `--format` template: buildx's `lsContext` methods (`Ref`,
/// `FullRef`, `Name`, `Status`, `CreatedAt`, `Duration`, `Link`) and its `{{json .}}`.
fn render_template(
    template: &crate::gotemplate::CliFormat,
    records: &[Record<'_>],
    now: SystemTime,
    trunc: bool,
) -> anyhow::Result<String> {
    use crate::gotemplate::{Data, Struct};
    let table = template.is_table();
    let rows: Vec<Data> = records
        .iter()
        .map(|r| {
            let name = display_name(r, trunc && table);
            let created = created_ago(r, now);
            let link = if table {
                String::new()
            } else {
                desktop_url(&r.full_ref())
            };
            let json: serde_json::Value =
                serde_json::from_str(record_json(r).trim()).unwrap_or(Value::Null);
            Struct::new("*history.lsContext")
                .method("Ref", r.build_ref().to_owned())
                .method("FullRef", r.full_ref())
                .method("Name", name)
                .method("Status", status_word(r))
                .method("CreatedAt", created)
                .method("Duration", duration_text(r))
                .method("Link", link)
                .marshal_json(Data::from(&json))
                .into()
        })
        .collect();
    Ok(template.render(
        &rows,
        &[
            ("Ref", "BUILD ID"),
            ("Name", "NAME"),
            ("Status", "STATUS"),
            ("CreatedAt", "CREATED AT"),
            ("Duration", "DURATION"),
            ("Link", ""),
        ],
    )?)
}

/// One JSON object per record with buildx's keys (sorted, as Go encodes a map).
fn render_json(records: &[Record<'_>]) -> String {
    records.iter().map(record_json).collect()
}

/// One record's `--format json` line.
fn record_json(r: &Record<'_>) -> String {
    let mut out = String::new();
    {
        let rec = &r.entry.record;
        let name = build_name(&rec.frontend_attrs, r.local_state().as_ref());
        let mut m = serde_json::Map::new();
        m.insert("cached_steps".into(), json!(rec.num_cached_steps));
        if let Some(t) = r.entry.completed_at() {
            m.insert("completed_at".into(), json!(timefmt::rfc3339_nano(t)));
        }
        m.insert("completed_steps".into(), json!(rec.num_completed_steps));
        m.insert(
            "created_at".into(),
            json!(timefmt::rfc3339_nano(r.created_at())),
        );
        m.insert("name".into(), json!(name));
        m.insert("ref".into(), json!(r.full_ref()));
        m.insert("status".into(), json!(status_word(r)));
        m.insert("total_steps".into(), json!(rec.num_total_steps));
        out.push_str(&go_json_escape(&Value::Object(m).to_string()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_from_the_start() {
        assert_eq!(trim_beginning("short", 36), "short");
        let long = "a".repeat(30) + "/0123456789";
        let t = trim_beginning(&long, 36);
        assert_eq!(t.len(), 36);
        assert!(t.starts_with("..") && t.ends_with("/0123456789"), "{t}");
    }

    #[test]
    fn credentials_are_left_out_of_remote_urls() {
        assert_eq!(
            strip_credentials("https://user:tok@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            strip_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(
            strip_credentials("https://github.com/a/b@c.git"),
            "https://github.com/a/b@c.git"
        );
    }
}
