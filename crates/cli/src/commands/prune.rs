//! `brix prune`: remove build cache from every node of a builder, with `docker buildx
//! prune`'s flags, confirmation prompt and output.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use brix_driver::Store;
use brix_driver::builder::resolve;
use brix_solver_client::workers::{CacheRecord, PruneOptions};

use super::du::{CacheFilters, connect_nodes, go_time, human_size, last_accessed};
use super::node_status::{print_stdout, runtime};
use crate::tabwriter;

const NORMAL_WARNING: &str =
    "WARNING! This will remove all dangling build cache. Are you sure you want to continue?";
const ALL_CACHE_WARNING: &str =
    "WARNING! This will remove all build cache. Are you sure you want to continue?";

/// Arguments of `brix prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Builder to prune (the current builder if omitted).
    /// (The global `--builder`, before or after the subcommand, as in buildx.)
    #[arg(skip)]
    pub builder: Option<String>,
    /// Also remove internal and frontend records.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter records, `key=value` (repeatable): `until=24h`, `id`, `parents`,
    /// `description`, `inuse`, `mutable`, `immutable`, `shared`, `private`, `type`.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Amount of disk space always allowed to keep for cache (e.g. `10GB`, binary units).
    #[arg(long, value_name = "SIZE")]
    pub reserved_space: Option<String>,
    /// Deprecated spelling of --reserved-space.
    #[arg(long, value_name = "SIZE", hide = true)]
    pub keep_storage: Option<String>,
    /// Maximum amount of disk space allowed to keep for cache.
    #[arg(long, value_name = "SIZE")]
    pub max_used_space: Option<String>,
    /// Target amount of free disk space after pruning.
    #[arg(long, value_name = "SIZE")]
    pub min_free_space: Option<String>,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Show every field of each removed record.
    #[arg(long)]
    pub verbose: bool,
}

/// Asks for confirmation (unless `-f`), prunes every node concurrently, and prints the
/// records removed and the space reclaimed.
pub fn run(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let filters = CacheFilters::parse(&args.filters)?;
    if args.keep_storage.is_some() {
        // cobra's wording for a deprecated flag, as buildx prints it.
        eprintln!(
            "Flag --keep-storage has been deprecated, keep-storage flag has been changed to reserved-space"
        );
    }
    let reserved = args
        .reserved_space
        .as_deref()
        .or(args.keep_storage.as_deref());
    let options = PruneOptions {
        all: args.all,
        filters: filters.wire(),
        keep_duration: filters.until,
        reserved_space: size_flag("--reserved-space", reserved)?,
        max_used_space: size_flag("--max-used-space", args.max_used_space.as_deref())?,
        min_free_space: size_flag("--min-free-space", args.min_free_space.as_deref())?,
    };

    if !args.force {
        let warning = if args.all {
            ALL_CACHE_WARNING
        } else {
            NORMAL_WARNING
        };
        if !confirm(warning)? {
            return Ok(ExitCode::SUCCESS);
        }
    }

    let ng = {
        let store = Store::open_default()?;
        let txn = store.txn()?;
        resolve(&txn, args.builder.as_deref())?
    };
    let rt = runtime()?;
    let removed = rt.block_on(async {
        let clients = connect_nodes(&ng).await?;
        let jobs = clients.iter().map(|(node, client)| {
            let options = &options;
            async move {
                client
                    .prune(options)
                    .await
                    .with_context(|| format!("pruning the build cache of node {node}"))
            }
        });
        let per_node = futures_util::future::try_join_all(jobs).await?;
        Ok::<_, anyhow::Error>(per_node.into_iter().flatten().collect::<Vec<_>>())
    })?;
    print_stdout(&render(&removed, args.verbose, SystemTime::now()));
    Ok(ExitCode::SUCCESS)
}

/// Parses a size flag as Docker's `MemBytes` does (go-units `RAMInBytes`: binary units).
fn size_flag(flag: &str, value: Option<&str>) -> anyhow::Result<i64> {
    match value {
        None => Ok(0),
        Some(v) => match brix_config::ram_in_bytes(v) {
            Some(bytes) => Ok(bytes),
            None => bail!(
                "invalid {flag} value {v:?}: give a size such as 512MB or 10GB (binary units), or a number of bytes"
            ),
        },
    }
}

/// Prints `warning [y/N] ` on stdout and reads one line; only `y` or `Y` confirms, and a
/// closed stdin is a no.
fn confirm(warning: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(out, "{warning} [y/N] ").and_then(|()| out.flush())?;
    drop(out);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer to the confirmation prompt")?;
    Ok(answer
        .trim_end_matches(['\n', '\r'])
        .eq_ignore_ascii_case("y"))
}

/// What buildx prints after a prune: the removed records (a table, whose header is aligned
/// with the first row only because buildx flushes its tabwriter after every row, or the
/// verbose blocks), then `Total:` with the space reclaimed.
fn render(removed: &[CacheRecord], verbose: bool, now: SystemTime) -> String {
    let mut out = String::new();
    for (i, r) in removed.iter().enumerate() {
        if verbose {
            out.push_str(&tabwriter::align_tabs(&verbose_block(r, now), 1, 8, 1));
            continue;
        }
        let mut chunk = String::new();
        if i == 0 {
            chunk.push_str("ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n");
        }
        let id = if r.mutable {
            format!("{}*", r.id)
        } else {
            r.id.clone()
        };
        let size = if r.shared {
            format!("{}*", human_size(r.size))
        } else {
            human_size(r.size)
        };
        let _ = writeln!(
            chunk,
            "{id:<40}\t{:<5}\t{size:<10}\t{}",
            !r.in_use,
            last_accessed(r, now)
        );
        out.push_str(&tabwriter::align_tabs(&chunk, 1, 8, 1));
    }
    let total: i64 = removed.iter().map(|r| r.size).sum();
    out.push_str(&tabwriter::align_tabs(
        &format!("Total:\t{}\n", human_size(total)),
        1,
        8,
        1,
    ));
    out
}

/// buildx's `printVerbose` lines for one record, before alignment.
fn verbose_block(r: &CacheRecord, now: SystemTime) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ID:\t{}", r.id);
    if !r.parents.is_empty() {
        let _ = writeln!(s, "Parent:\t{}", r.parents.join(","));
    }
    let _ = writeln!(s, "Created at:\t{}", go_time(r.created_at));
    let _ = writeln!(s, "Mutable:\t{}", r.mutable);
    let _ = writeln!(s, "Reclaimable:\t{}", !r.in_use);
    let _ = writeln!(s, "Shared:\t{}", r.shared);
    let _ = writeln!(s, "Size:\t{}", human_size(r.size));
    if !r.description.is_empty() {
        let _ = writeln!(s, "Description:\t{}", r.description);
    }
    let _ = writeln!(s, "Usage count:\t{}", r.usage_count);
    if r.last_used_at.is_some() {
        let _ = writeln!(s, "Last used:\t{}", last_accessed(r, now));
    }
    if !r.record_type.is_empty() {
        let _ = writeln!(s, "Type:\t{}", r.record_type);
    }
    s.push('\n');
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record(id: &str, size: i64) -> CacheRecord {
        CacheRecord {
            id: id.into(),
            size,
            created_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            last_used_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            usage_count: 2,
            record_type: "regular".into(),
            ..Default::default()
        }
    }

    #[test]
    fn table_rows_are_flushed_one_by_one_like_buildx() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_005);
        let a = record("yc7b6qzhiry9wxwids79pgj6d", 4096);
        let mut b = record("p4m8g1uv34lxa0hk5rw0xky9g", 1_000_000);
        b.mutable = true;
        let text = render(&[a, b], false, now);
        let pad = |id: &str| format!("{id:<40}");
        assert_eq!(
            text,
            format!(
                "ID\t\t\t\t\t\tRECLAIMABLE\tSIZE\t\tLAST ACCESSED\n\
                 {}\ttrue \t\t4.096kB   \t5 seconds ago\n\
                 {}\ttrue \t1MB       \t5 seconds ago\n\
                 Total:\t1.004MB\n",
                pad("yc7b6qzhiry9wxwids79pgj6d"),
                pad("p4m8g1uv34lxa0hk5rw0xky9g*")
            )
        );
        assert_eq!(render(&[], false, now), "Total:\t0B\n");
    }

    #[test]
    fn verbose_blocks_align_keys_with_tabs() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_005);
        let mut r = record("abc", 10);
        r.parents = vec!["p1".into(), "p2".into()];
        let text = render(&[r], true, now);
        assert_eq!(
            text,
            "ID:\t\tabc\nParent:\t\tp1,p2\nCreated at:\t2023-11-14 22:13:20 +0000 UTC\n\
             Mutable:\tfalse\nReclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t10B\n\
             Usage count:\t2\nLast used:\t5 seconds ago\nType:\t\tregular\n\nTotal:\t10B\n"
        );
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size_flag("--x", Some("1GB")).unwrap(), 1 << 30);
        assert_eq!(size_flag("--x", Some("0")).unwrap(), 0);
        assert_eq!(size_flag("--x", None).unwrap(), 0);
        assert!(size_flag("--x", Some("lots")).is_err());
    }
}
