//! Turning samples into the report: medians, brix/baseline ratios, the verdict against the
//! issue's targets, a Markdown table for the terminal and the README, and JSON.

use super::machine::{Machine, Versions};
use super::measure::Sample;
use super::scenarios::{CaseResult, Target, ToolRuns};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Medians of each metric over a tool's samples (each metric on its own).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medians {
    /// Wall seconds.
    pub wall_s: f64,
    /// User + sys CPU seconds.
    pub cpu_s: f64,
    /// Peak RSS in MiB.
    pub rss_mib: f64,
}

impl Medians {
    /// `None` when there are no samples.
    pub fn of(samples: &[Sample]) -> Option<Self> {
        Some(Self {
            wall_s: median(samples.iter().map(|s| s.wall_s))?,
            cpu_s: median(samples.iter().map(Sample::cpu_s))?,
            rss_mib: median(samples.iter().map(|s| s.max_rss_kib as f64 / 1024.0))?,
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// brix divided by the baseline, per metric; throughput is the baseline's wall over brix's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratios {
    /// Wall-time ratio.
    pub wall: f64,
    /// CPU ratio.
    pub cpu: f64,
    /// Peak-memory ratio.
    pub rss: f64,
    /// Throughput ratio (same bytes for both, so the inverse wall ratio).
    pub throughput: f64,
}

impl Ratios {
    /// The ratios of two tools' medians.
    pub fn of(brix: &Medians, baseline: &Medians) -> Self {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Self {
            wall: div(brix.wall_s, baseline.wall_s),
            cpu: div(brix.cpu_s, baseline.cpu_s),
            rss: div(brix.rss_mib, baseline.rss_mib),
            throughput: div(baseline.wall_s, brix.wall_s),
        }
    }
}

/// How a case came out against its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A tool's command failed: the case has no comparison.
    Failed(String),
    /// The issue sets no target for this case.
    NoTarget,
    /// Every target met.
    Met,
    /// The targets missed, as `wall 0.45 > 0.30`.
    Missed(Vec<String>),
}

impl Verdict {
    /// Short text for the table.
    pub fn text(&self) -> String {
        match self {
            Verdict::Failed(who) => format!("FAILED ({who})"),
            Verdict::NoTarget => "-".into(),
            Verdict::Met => "met".into(),
            Verdict::Missed(what) => format!("missed: {}", what.join(", ")),
        }
    }
}

/// Compares ratios with a target.
pub fn verdict(target: &Target, ratios: &Ratios) -> Verdict {
    let mut missed = Vec::new();
    let mut any = false;
    let mut at_most = |name: &str, limit: Option<f64>, value: f64| {
        if let Some(limit) = limit {
            any = true;
            if value.is_nan() || value > limit {
                missed.push(format!("{name} {value:.2} > {limit:.2}"));
            }
        }
    };
    at_most("wall", target.wall_max, ratios.wall);
    at_most("CPU", target.cpu_max, ratios.cpu);
    at_most("memory", target.rss_max, ratios.rss);
    if let Some(limit) = target.throughput_min {
        any = true;
        if ratios.throughput.is_nan() || ratios.throughput < limit {
            missed.push(format!("throughput {:.2} < {limit:.2}", ratios.throughput));
        }
    }
    if !any {
        Verdict::NoTarget
    } else if missed.is_empty() {
        Verdict::Met
    } else {
        Verdict::Missed(missed)
    }
}

/// The target as the table shows it: `wall <= 0.3x, memory <= 0.3x`.
pub fn target_text(target: &Target) -> String {
    let mut parts = Vec::new();
    if let Some(v) = target.wall_max {
        parts.push(format!("wall ≤ {v}×"));
    }
    if let Some(v) = target.cpu_max {
        parts.push(format!("CPU ≤ {v}×"));
    }
    if let Some(v) = target.rss_max {
        parts.push(format!("mem ≤ {v}×"));
    }
    if let Some(v) = target.throughput_min {
        parts.push(format!("throughput ≥ {v}×"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// A case with its medians, ratios and verdict worked out.
#[derive(Debug, Clone)]
pub struct Row {
    /// The measurements.
    pub result: CaseResult,
    /// brix's medians.
    pub brix: Option<Medians>,
    /// The baseline's medians.
    pub baseline: Option<Medians>,
    /// Present when both tools have medians.
    pub ratios: Option<Ratios>,
    /// Against the target.
    pub verdict: Verdict,
}

impl Row {
    /// Works out a case's row. A tool that failed makes the case FAILED even when the
    /// other one has numbers.
    pub fn new(result: CaseResult) -> Self {
        let brix = Medians::of(&result.brix.samples).filter(|_| result.brix.failure.is_none());
        let baseline =
            Medians::of(&result.baseline.samples).filter(|_| result.baseline.failure.is_none());
        let ratios = match (&brix, &baseline) {
            (Some(b), Some(x)) => Some(Ratios::of(b, x)),
            _ => None,
        };
        let failed: Vec<&str> = [&result.brix, &result.baseline]
            .into_iter()
            .filter(|r| r.failure.is_some() || r.samples.is_empty())
            .map(|r| r.tool.as_str())
            .collect();
        let verdict = match &ratios {
            Some(r) if failed.is_empty() => verdict(&result.case.target, r),
            _ => Verdict::Failed(failed.join(", ")),
        };
        Self {
            result,
            brix,
            baseline,
            ratios,
            verdict,
        }
    }
}

/// The Markdown table: one line per case.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| case | vs | wall brix | wall base | wall × | CPU brix | CPU base | CPU × | \
         mem brix | mem base | mem × | target | result |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    let secs = |m: &Option<Medians>, f: fn(&Medians) -> f64| match m {
        Some(m) => format!("{:.3} s", f(m)),
        None => "FAILED".into(),
    };
    let mib = |m: &Option<Medians>| match m {
        Some(m) => format!("{:.1} MiB", m.rss_mib),
        None => "FAILED".into(),
    };
    let ratio = |r: Option<f64>| r.map_or("-".into(), |v| format!("{v:.2}"));
    for row in rows {
        let r = &row.ratios;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.result.case.name,
            row.result.case.baseline,
            secs(&row.brix, |m| m.wall_s),
            secs(&row.baseline, |m| m.wall_s),
            ratio(r.map(|r| r.wall)),
            secs(&row.brix, |m| m.cpu_s),
            secs(&row.baseline, |m| m.cpu_s),
            ratio(r.map(|r| r.cpu)),
            mib(&row.brix),
            mib(&row.baseline),
            ratio(r.map(|r| r.rss)),
            target_text(&row.result.case.target),
            row.verdict.text(),
        );
    }
    out
}

/// Lines under the table: throughput of the push case, and why a case failed.
pub fn notes(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        if let (Some(bytes), Some(b), Some(x)) = (row.result.upload_bytes, row.brix, row.baseline) {
            let _ = writeln!(
                out,
                "- {}: {:.1} MB per run; brix {:.0} MB/s, {} {:.0} MB/s (throughput ratio {:.2})",
                row.result.case.name,
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / b.wall_s,
                row.result.case.baseline,
                bytes as f64 / 1e6 / x.wall_s,
                x.wall_s / b.wall_s,
            );
        }
        for runs in [&row.result.brix, &row.result.baseline] {
            if let Some(failure) = &runs.failure {
                let first = failure.lines().take(4).collect::<Vec<_>>().join(" / ");
                let _ = writeln!(
                    out,
                    "- {} FAILED for {}: {first}",
                    row.result.case.name, runs.tool
                );
            }
        }
    }
    out
}

/// Everything about one bench run that the report and the JSON show.
#[derive(Debug, Clone)]
pub struct Report {
    /// UTC time the bench started, RFC 3339.
    pub started: String,
    /// How the bench was invoked.
    pub command: String,
    /// Measured pairs per case.
    pub pairs: usize,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// Load average when the measurements started and ended.
    pub load_start: String,
    /// See `load_start`.
    pub load_end: String,
    /// Tool versions.
    pub versions: Versions,
    /// One row per case.
    pub rows: Vec<Row>,
}

/// How the numbers are taken, printed with every report.
pub const METHOD: &str = "Medians over the measured runs; each run is one process tree \
    started and reaped by a measuring helper: wall = spawn to exit; CPU = user + sys of the \
    command and every descendant it reaped (docker CLI + buildx plugin + buildx's `docker exec` \
    helpers); mem = largest peak RSS of any single process of that tree. brix is the release \
    build; both tools use the same BuildKit container (brix connects to its socket, buildx's \
    remote driver through `docker exec buildctl dial-stdio`).";

impl Report {
    /// The report as text: machine, versions, table, notes.
    pub fn text(&self) -> String {
        let m = &self.machine;
        let v = &self.versions;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "`{}` — {} UTC, {} measured pairs per case{}",
            self.command,
            self.started,
            self.pairs,
            if self.quick {
                " (--quick: small fixtures, not for quoting)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "machine: {}, {} cores, {:.1} GiB, Linux {}; load average {} at start, {} at end",
            m.cpu, m.cores, m.memory_gib, m.kernel, self.load_start, self.load_end
        );
        let _ = writeln!(
            out,
            "versions: brix {}; buildx {}; BuildKit {}; dockerd {}; {}\n",
            v.brix.replace('\n', " "),
            v.buildx,
            v.buildkit,
            v.dockerd,
            v.skopeo
        );
        out.push_str(&table(&self.rows));
        let notes = notes(&self.rows);
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes);
        }
        out
    }

    /// The report as JSON, with every sample.
    pub fn json(&self) -> Value {
        let m = &self.machine;
        let v = &self.versions;
        json!({
            "started": self.started,
            "command": self.command,
            "pairs": self.pairs,
            "quick": self.quick,
            "method": METHOD,
            "machine": {
                "cpu": m.cpu,
                "cores": m.cores,
                "memory_gib": m.memory_gib,
                "kernel": m.kernel,
                "load_average_start": self.load_start,
                "load_average_end": self.load_end,
            },
            "versions": {
                "brix": v.brix,
                "buildx": v.buildx,
                "buildkit": v.buildkit,
                "dockerd": v.dockerd,
                "skopeo": v.skopeo,
            },
            "cases": self.rows.iter().map(row_json).collect::<Vec<_>>(),
        })
    }
}

fn row_json(row: &Row) -> Value {
    let case = &row.result.case;
    let t = &case.target;
    json!({
        "name": case.name,
        "scenario": case.scenario,
        "description": case.description,
        "baseline": case.baseline,
        "target": {
            "wall_max": t.wall_max,
            "cpu_max": t.cpu_max,
            "rss_max": t.rss_max,
            "throughput_min": t.throughput_min,
        },
        "upload_bytes": row.result.upload_bytes,
        "brix": tool_json(&row.result.brix, row.brix),
        "baseline_runs": tool_json(&row.result.baseline, row.baseline),
        "ratios": row.ratios.map(|r| json!({
            "wall": r.wall,
            "cpu": r.cpu,
            "rss": r.rss,
            "throughput": r.throughput,
        })),
        "result": row.verdict.text(),
    })
}

fn tool_json(runs: &ToolRuns, medians: Option<Medians>) -> Value {
    json!({
        "tool": runs.tool,
        "command": runs.command,
        "failure": runs.failure,
        "median": medians.map(|m| json!({
            "wall_s": m.wall_s,
            "cpu_s": m.cpu_s,
            "max_rss_mib": m.rss_mib,
        })),
        "runs": runs.samples.iter().map(|s| json!({
            "wall_s": s.wall_s,
            "user_s": s.user_s,
            "sys_s": s.sys_s,
            "max_rss_kib": s.max_rss_kib,
        })).collect::<Vec<_>>(),
    })
}

/// UTC date and time for `unix_secs`: (`20261126T221500Z` for file names,
/// `2026-11-26T22:15:00Z`).
pub fn utc_timestamp(unix_secs: u64) -> (String, String) {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (h, min, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}T{h:02}{min:02}{s:02}Z"),
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Sizes;
    use crate::bench::scenarios::all_cases;

    fn sample(wall_s: f64, cpu: f64, rss_mib: u64) -> Sample {
        Sample {
            wall_s,
            user_s: cpu,
            sys_s: 0.0,
            max_rss_kib: rss_mib * 1024,
        }
    }

    fn runs(tool: &str, samples: Vec<Sample>, failure: Option<&str>) -> ToolRuns {
        ToolRuns {
            tool: tool.into(),
            command: format!("{tool} ls"),
            samples,
            failure: failure.map(str::to_string),
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(utc_timestamp(0).1, "1970-01-01T00:00:00Z");
        // 2026-11-26 23:15:07 UTC.
        assert_eq!(
            utc_timestamp(1_795_734_907),
            (
                "20261126T231507Z".to_string(),
                "2026-11-26T23:15:07Z".to_string()
            )
        );
        assert_eq!(utc_timestamp(951_782_400).1, "2000-02-29T00:00:00Z");
    }

    #[test]
    fn verdicts_follow_the_targets() {
        let ls = Target {
            wall_max: Some(0.3),
            rss_max: Some(0.3),
            ..Target::default()
        };
        let r = |wall, rss| Ratios {
            wall,
            cpu: 1.0,
            rss,
            throughput: 1.0 / wall,
        };
        assert_eq!(verdict(&ls, &r(0.1, 0.2)), Verdict::Met);
        assert_eq!(
            verdict(&ls, &r(0.1, 0.5)),
            Verdict::Missed(vec!["memory 0.50 > 0.30".into()])
        );
        assert_eq!(verdict(&Target::default(), &r(2.0, 2.0)), Verdict::NoTarget);
        let push = Target {
            throughput_min: Some(0.9),
            ..Target::default()
        };
        assert_eq!(verdict(&push, &r(1.0, 1.0)), Verdict::Met);
        assert!(matches!(verdict(&push, &r(1.25, 1.0)), Verdict::Missed(_)));
    }

    #[test]
    fn a_failed_tool_makes_the_row_failed_and_the_table_says_so() {
        let case = all_cases(&Sizes::full()).remove(0);
        let row = Row::new(CaseResult {
            case,
            brix: runs("brix", vec![], Some("brix: unknown command")),
            baseline: runs("buildx", vec![sample(0.2, 0.1, 50)], None),
            upload_bytes: None,
        });
        assert_eq!(row.verdict, Verdict::Failed("brix".into()));
        let text = table(std::slice::from_ref(&row));
        assert!(
            text.contains("| ls | buildx | FAILED | 0.200 s |"),
            "{text}"
        );
        assert!(notes(&[row]).contains("ls FAILED for brix: brix: unknown command"));
    }

    #[test]
    fn ratios_and_table_for_a_measured_case() {
        let case = all_cases(&Sizes::full()).remove(0);
        let row = Row::new(CaseResult {
            case,
            brix: runs(
                "brix",
                vec![sample(0.02, 0.01, 10), sample(0.04, 0.01, 10)],
                None,
            ),
            baseline: runs("buildx", vec![sample(0.2, 0.1, 50)], None),
            upload_bytes: None,
        });
        let ratios = row.ratios.expect("both tools measured");
        assert!((ratios.wall - 0.15).abs() < 1e-9);
        assert!((ratios.rss - 0.2).abs() < 1e-9);
        assert_eq!(row.verdict, Verdict::Met);
        assert!(table(&[row]).contains("| 0.15 |"));
    }
}
