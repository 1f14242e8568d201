//! `cargo xtask bench`: brix side by side with real buildx (and skopeo) on the same builders.
//!
//! 1. Sets up the environment as `cargo xtask e2e --setup-only` does, installs real buildx
//!    (Debian unstable's `docker-buildx`) if `docker buildx` does not run, and builds brix
//!    in release mode.
//! 2. Makes one BuildKit daemon both tools use: `brix create --driver docker-container` on
//!    the host network (plain HTTP to the local registry), and a buildx `remote` builder
//!    pointed at the same container. Both tools get private builder stores under
//!    `target/bench/`.
//! 3. Runs each case (see `scenarios`) as a warm-up run of each tool, then alternating
//!    measured pairs, and prints a Markdown table of medians and brix/baseline ratios with
//!    the machine and versions; the same goes to `target/bench/bench-<UTC time>.json` and
//!    `target/bench/latest.json`.
//!
//! A case whose command fails is reported as FAILED in the table (with the reason below
//! it), never left out.

mod fixtures;
mod machine;
mod measure;
mod report;
mod scenarios;
pub(crate) mod setup;

use crate::e2e::Workspace;
use anyhow::{Context, Result, bail};
use fixtures::ContextSize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Measured pairs per case, after one warm-up run of each tool [default: 5, or 2 with
    /// --quick].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pairs: Option<u16>,
    /// Run only these scenarios or cases (repeatable or comma-separated): ls-inspect (ls, inspect,
    /// inspect-dial-stdio), warm (warm-push), cold (cold-context, one-file-changed), push
    /// (push-layout, push-token-throughput), qemu (qemu-multistage), bake (bake-print, bake-cold-context),
    /// kubernetes (kubernetes-inspect).
    #[arg(long = "scenario", value_delimiter = ',', value_name = "NAME")]
    scenarios: Vec<String>,
    /// A smoke run of the harness: 2 pairs, a 1,000-file / 16 MB context and 2 x 20 MB
    /// layers. The table says so; its numbers are not for quoting.
    #[arg(long)]
    quick: bool,
    /// Skip `cargo xtask e2e --setup-only` (dockerd, registry, images and QEMU are up).
    #[arg(long)]
    no_setup: bool,
    /// Leave the two bench builders (and their daemon) running afterwards.
    #[arg(long)]
    keep_builders: bool,
    #[command(subcommand)]
    helper: Option<Helper>,
}

/// Internal subcommands (the measuring helper runs as a copy of this binary).
#[derive(Debug, clap::Subcommand)]
enum Helper {
    /// Run one command and print its wall time and resource usage as JSON.
    #[command(hide = true)]
    Measure {
        /// Where the command's stdout and stderr go.
        #[arg(long)]
        log: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Fixture sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// The cold build's context.
    pub context: ContextSize,
    /// Bytes of random data in each layer of the pushed layout.
    pub layer_bytes: u64,
}

impl Sizes {
    /// The sizes: 10,000 files / 160 MB, 2 x 100 MB layers.
    pub fn full() -> Self {
        Self {
            context: ContextSize {
                files: 10_000,
                bytes: 160_000_000,
            },
            layer_bytes: 100_000_000,
        }
    }

    /// `--quick`.
    pub fn quick() -> Self {
        Self {
            context: ContextSize {
                files: 1_000,
                bytes: 16_000_000,
            },
            layer_bytes: 20_000_000,
        }
    }
}

/// Folders under `<target>/bench`.
#[derive(Debug, Clone)]
pub struct BenchDirs {
    /// `<target>/bench`: fixtures, stores, reports.
    pub root: PathBuf,
    /// `<target>/bench/logs`: the output of every measured run.
    pub logs: PathBuf,
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if let Some(Helper::Measure { log, command }) = &args.helper {
        return measure::helper(log, command);
    }
    let invoked = invoked_command();
    let ws = Workspace::locate()?;
    let root = ws.target_dir.join("bench");
    let dirs = BenchDirs {
        logs: root.join("logs"),
        root,
    };
    if dirs.logs.exists() {
        std::fs::remove_dir_all(&dirs.logs)?;
    }
    std::fs::create_dir_all(&dirs.logs)
        .with_context(|| format!("creating {}", dirs.logs.display()))?;
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let pairs = usize::from(args.pairs.unwrap_or(if args.quick { 2 } else { 5 }));
    let cases = select_cases(&scenarios::all_cases(&sizes), &args.scenarios)?;
    // First, before the builds below give cargo (or anyone) a chance to replace our binary.
    let meter = measure::Meter::new(&dirs.root)?;

    if !args.no_setup {
        step("environment (cargo xtask e2e --setup-only)", || {
            setup::e2e_setup().map(|()| "ready".into())
        })?;
    }
    step("buildx", || setup::ensure_buildx(&dirs))?;
    crate::e2e::process::on_path("skopeo")
        .then_some(())
        .context("skopeo is not installed; run `cargo xtask e2e --setup-only`")?;
    let mut bins = None;
    step("release build of brix", || {
        let built = setup::build_release(&ws)?;
        let text = format!(
            "{} and {}",
            ws.display(&built.brix),
            ws.display(&built.push_layout)
        );
        bins = Some(built);
        Ok(text)
    })?;
    let bins = bins.context("the release build produced no binaries")?;
    let env = setup::ToolEnv::new(&dirs);
    step("builders", || setup::create_builders(&dirs, &env, &bins))?;
    let versions = machine::Versions::read(&env, &bins);

    let started = utc_now();
    let load_start = machine::load_average();
    let mut runner = scenarios::Runner {
        ws: &ws,
        dirs: &dirs,
        env: &env,
        bins: &bins,
        meter: &meter,
        sizes: &sizes,
        run_counter: 0,
    };
    let mut rows = Vec::new();
    for case in &cases {
        println!("[bench] {}: {}", case.name, case.description);
        rows.push(report::Row::new(runner.run_case(case, pairs)));
    }
    let report = report::Report {
        started: started.1,
        command: invoked,
        pairs,
        quick: args.quick,
        machine: machine::Machine::read(),
        load_start,
        load_end: machine::load_average(),
        versions,
        rows,
    };
    if !args.keep_builders {
        setup::remove_builders(&env, &bins);
    }

    let text = report.text();
    println!("\n{text}");
    let json = serde_json::to_string_pretty(&report.json())?;
    let file = dirs.root.join(format!("bench-{}.json", started.0));
    std::fs::write(&file, &json).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(dirs.root.join("latest.json"), &json)?;
    std::fs::write(dirs.root.join("latest.md"), &text)?;
    println!(
        "\nwritten: {} (and latest.json, latest.md); run logs in {}",
        ws.display(&file),
        ws.display(&dirs.logs)
    );
    let failed = report
        .rows
        .iter()
        .any(|r| matches!(r.verdict, report::Verdict::Failed(_)));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The cases `--scenario` selects (all when it is empty), in their usual order.
fn select_cases(all: &[scenarios::Case], wanted: &[String]) -> Result<Vec<scenarios::Case>> {
    for name in wanted {
        if !all.iter().any(|c| c.name == name || c.scenario == name) {
            let mut known: Vec<&str> = all.iter().flat_map(|c| [c.scenario, c.name]).collect();
            known.dedup();
            bail!(
                "unknown scenario {name:?}; choose from {}",
                known.join(", ")
            );
        }
    }
    Ok(all
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| w == c.name || w == c.scenario))
        .cloned()
        .collect())
}

/// Runs a setup step and prints one line with its outcome and time.
fn step(name: &str, work: impl FnOnce() -> Result<String>) -> Result<()> {
    let started = Instant::now();
    let result = work();
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(summary) => {
            println!("[bench] {name}: {summary} ({secs:.1}s)");
            Ok(())
        }
        Err(err) => {
            println!("[bench] {name}: FAILED ({secs:.1}s)");
            Err(err.context(format!("bench step {name} failed")))
        }
    }
}

/// `cargo xtask bench ARGS` as typed, for the report.
fn invoked_command() -> String {
    let mut parts = vec!["cargo xtask bench".to_string()];
    parts.extend(std::env::args().skip(2));
    parts.join(" ")
}

fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    report::utc_timestamp(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_select_by_scenario_or_case_name() -> Result<()> {
        let all = scenarios::all_cases(&Sizes::full());
        let names = |wanted: &[&str]| -> Result<Vec<&str>> {
            let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
            Ok(select_cases(&all, &wanted)?
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>())
        };
        assert_eq!(names(&["cold"])?, ["cold-context", "one-file-changed"]);
        assert_eq!(
            names(&["push", "ls"])?,
            ["ls", "push-layout", "push-token-throughput"]
        );
        assert_eq!(
            names(&["push-token-throughput"])?,
            ["push-token-throughput"]
        );
        assert_eq!(names(&["bake"])?, ["bake-print", "bake-cold-context"]);
        assert_eq!(names(&["kubernetes"])?, ["kubernetes-inspect"]);
        assert_eq!(names(&[])?.len(), all.len());
        assert!(names(&["nope"]).is_err());
        Ok(())
    }
}
