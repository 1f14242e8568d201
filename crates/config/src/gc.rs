//! The garbage-collection policy a BuildKit worker will actually apply, computed from its
//! config exactly as `buildkitd` does (`cmd/buildkitd/main.go` `getGCPolicy`,
//! `config.DefaultGCPolicy`, `DetectDefaultGCCap`), and printed the way buildx prints it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::GcConfig;
use crate::units::{DiskSpace, format_bytes_binary, format_go_duration, resolve_bytes};

const HOUR_NS: i64 = 3_600_000_000_000;
/// `DetectDefaultGCCap` (Linux): reserve min(10% of disk, 10 GB).
const RESERVE_PERCENT: i64 = 10;
const RESERVE_BYTES: i64 = 10_000_000_000;
/// Max used space: min(80% of disk, 100 GB).
const MAX_PERCENT: i64 = 80;
const MAX_BYTES: i64 = 100_000_000_000;
/// Min free space: 20% of disk.
const FREE_PERCENT: i64 = 20;

/// One effective GC rule, in BuildKit's units (bytes, nanoseconds). Serializes as BuildKit's
/// `client.PruneInfo` JSON, with keys in the order `buildx ls --format json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcRule {
    /// Also prune internal and frontend records.
    pub all: bool,
    /// Prune filters; `null` in JSON when empty, as Go prints a nil slice.
    #[serde(rename = "filter", serialize_with = "ser_filters")]
    pub filters: Vec<String>,
    /// Keep records used within this many nanoseconds.
    #[serde(rename = "keepDuration")]
    pub keep_duration: i64,
    /// Maximum space the cache may use, in bytes.
    #[serde(rename = "maxUsedSpace")]
    pub max_used_space: i64,
    /// Free disk space to keep, in bytes.
    #[serde(rename = "minFreeSpace")]
    pub min_free_space: i64,
    /// Space never freed, in bytes.
    #[serde(rename = "reservedSpace")]
    pub reserved_space: i64,
}

fn ser_filters<S: serde::Serializer>(f: &[String], s: S) -> Result<S::Ok, S::Error> {
    if f.is_empty() {
        s.serialize_none()
    } else {
        f.serialize(s)
    }
}

/// A disk-space value as BuildKit holds it internally: bytes or a percentage (zero = unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Space {
    bytes: i64,
    percentage: i64,
}

impl Space {
    fn of(d: Option<&DiskSpace>) -> Self {
        d.map_or_else(Space::default, |d| Space {
            bytes: d.bytes(),
            percentage: d.percentage(),
        })
    }
    fn pct(percentage: i64) -> Self {
        Space {
            bytes: 0,
            percentage,
        }
    }
    fn bytes(bytes: i64) -> Self {
        Space {
            bytes,
            percentage: 0,
        }
    }
    fn resolve(self, disk: Option<u64>) -> i64 {
        resolve_bytes(self.bytes, self.percentage, disk)
    }
}

/// The effective policy of a worker whose GC settings are `gc`, on a disk of `disk_total`
/// bytes (`None` when unknown: percentages then resolve to 2 GB, as in BuildKit).
///
/// - `gc = false` gives no rules at all.
/// - Without `[[gcpolicy]]` rules, BuildKit's 4 default rules are used with the worker-level
///   limits: `reservedSpace`/`maxUsedSpace`/`minFreeSpace`, else `gckeepstorage` as reserved
///   space, else `DetectDefaultGCCap` (min(10%, 10 GB), min(80%, 100 GB), 20%).
/// - In explicit rules, the deprecated `keepBytes` counts as `reservedSpace` when that is unset.
pub fn effective_gc_policy(gc: &GcConfig, disk_total: Option<u64>) -> Vec<GcRule> {
    if gc.gc == Some(false) {
        return Vec::new();
    }
    if gc.gcpolicy.is_empty() {
        return default_policy(gc, disk_total);
    }
    gc.gcpolicy
        .iter()
        .map(|rule| {
            let mut reserved = Space::of(rule.reserved_space.as_ref());
            let keep = Space::of(rule.keep_bytes.as_ref());
            if reserved == Space::default() && keep != Space::default() {
                reserved = keep;
            }
            GcRule {
                all: rule.all.unwrap_or(false),
                filters: rule.filters.clone().unwrap_or_default(),
                keep_duration: rule.keep_duration.as_ref().map_or(0, |d| d.nanos()),
                reserved_space: reserved.resolve(disk_total),
                max_used_space: Space::of(rule.max_used_space.as_ref()).resolve(disk_total),
                min_free_space: Space::of(rule.min_free_space.as_ref()).resolve(disk_total),
            }
        })
        .collect()
}

fn default_policy(gc: &GcConfig, disk: Option<u64>) -> Vec<GcRule> {
    let mut reserved = Space::of(gc.reserved_space.as_ref());
    let mut max = Space::of(gc.max_used_space.as_ref());
    let mut free = Space::of(gc.min_free_space.as_ref());
    let unset = |r: Space, m: Space, f: Space| {
        r == Space::default() && m == Space::default() && f == Space::default()
    };
    if unset(reserved, max, free) {
        reserved = Space::of(gc.gckeepstorage.as_ref());
    }
    if unset(reserved, max, free) {
        reserved = Space::pct(RESERVE_PERCENT);
        if reserved.resolve(disk) > RESERVE_BYTES {
            reserved = Space::bytes(RESERVE_BYTES);
        }
        max = Space::pct(MAX_PERCENT);
        if max.resolve(disk) > MAX_BYTES {
            max = Space::bytes(MAX_BYTES);
        }
        free = Space::pct(FREE_PERCENT);
    }
    let limits = |all: bool, keep_duration: i64| GcRule {
        all,
        filters: Vec::new(),
        keep_duration,
        reserved_space: reserved.resolve(disk),
        max_used_space: max.resolve(disk),
        min_free_space: free.resolve(disk),
    };
    vec![
        // Easily reproducible data unused for 2 days, once the cache passes 512 MB.
        GcRule {
            all: false,
            filters: vec![
                "type==source.local".into(),
                "type==exec.cachemount".into(),
                "type==source.git.checkout".into(),
            ],
            keep_duration: 48 * HOUR_NS,
            max_used_space: 512_000_000,
            ..GcRule::default()
        },
        // Anything unused for 60 days.
        limits(false, 60 * 24 * HOUR_NS),
        // Unshared cache under the cap.
        limits(false, 0),
        // Everything, internal records included, under the cap.
        limits(true, 0),
    ]
}

/// Prints rules exactly as `docker buildx inspect` does (a tabwriter with one space of
/// padding, one column block per rule), e.g.
///
/// ```text
/// GC Policy rule#1:
///  All:            false
///  Keep Duration:  1440h0m0s
///  Reserved Space: 19.53KiB
/// ```
pub fn format_gc_policy(rules: &[GcRule]) -> String {
    let mut out = String::new();
    for (i, rule) in rules.iter().enumerate() {
        let _ = writeln!(out, "GC Policy rule#{i}:");
        let mut rows: Vec<(&str, String)> = vec![("All:", rule.all.to_string())];
        if !rule.filters.is_empty() {
            rows.push(("Filters:", rule.filters.join(" ")));
        }
        if rule.keep_duration > 0 {
            rows.push(("Keep Duration:", format_go_duration(rule.keep_duration)));
        }
        if rule.reserved_space > 0 {
            rows.push((
                "Reserved Space:",
                format_bytes_binary(rule.reserved_space as f64),
            ));
        }
        if rule.max_used_space > 0 {
            rows.push((
                "Max Used Space:",
                format_bytes_binary(rule.max_used_space as f64),
            ));
        }
        if rule.min_free_space > 0 {
            rows.push((
                "Min Free Space:",
                format_bytes_binary(rule.min_free_space as f64),
            ));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0)
            + 1;
        for (k, v) in rows {
            let _ = writeln!(out, " {k:<width$}{v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GcPolicyRule;
    use crate::units::{Duration, Spelling};

    const SEED_DISK: u64 = 270_553_174_016;

    fn disk(s: &str) -> Option<DiskSpace> {
        let spelling = if s.parse::<i64>().is_ok() {
            Spelling::Integer
        } else {
            Spelling::String
        };
        Some(DiskSpace::parse(s, spelling).expect("valid size"))
    }

    #[test]
    fn seed_gckeepstorage_20000_is_bytes() {
        let gc = GcConfig {
            gc: Some(true),
            gckeepstorage: disk("20000"),
            ..GcConfig::default()
        };
        let rules = effective_gc_policy(&gc, Some(SEED_DISK));
        assert_eq!(rules.len(), 4);
        // Rule 0: fixed by BuildKit, independent of the worker limits.
        assert_eq!(rules[0].filters.len(), 3);
        assert_eq!(rules[0].keep_duration, 172_800_000_000_000);
        assert_eq!(rules[0].max_used_space, 512_000_000);
        assert_eq!(
            (
                rules[0].reserved_space,
                rules[0].min_free_space,
                rules[0].all
            ),
            (0, 0, false)
        );
        // Rules 1-3: gckeepstorage becomes reservedSpace; max and free stay 0 because the
        // worker limits were no longer "unset" once reserved was taken from gckeepstorage.
        for r in &rules[1..] {
            assert_eq!(r.reserved_space, 20000);
            assert_eq!((r.max_used_space, r.min_free_space), (0, 0));
            assert!(r.filters.is_empty());
        }
        assert_eq!(rules[1].keep_duration, 5_184_000_000_000_000);
        assert_eq!((rules[2].keep_duration, rules[3].keep_duration), (0, 0));
        assert_eq!(
            (rules[1].all, rules[2].all, rules[3].all),
            (false, false, true)
        );
    }

    #[test]
    fn seed_output_matches_buildx_inspect() {
        let gc = GcConfig {
            gc: Some(true),
            gckeepstorage: disk("20000"),
            ..GcConfig::default()
        };
        let text = format_gc_policy(&effective_gc_policy(&gc, Some(SEED_DISK)));
        let expected = "GC Policy rule#0:
 All:            false
 Filters:        type==source.local type==exec.cachemount type==source.git.checkout
 Keep Duration:  48h0m0s
 Max Used Space: 488.3MiB
GC Policy rule#1:
 All:            false
 Keep Duration:  1440h0m0s
 Reserved Space: 19.53KiB
GC Policy rule#2:
 All:            false
 Reserved Space: 19.53KiB
GC Policy rule#3:
 All:            true
 Reserved Space: 19.53KiB
";
        assert_eq!(text, expected);
    }

    #[test]
    fn json_matches_buildx_ls() {
        let gc = GcConfig {
            gckeepstorage: disk("20000"),
            ..GcConfig::default()
        };
        let json = serde_json::to_string(&effective_gc_policy(&gc, None)).expect("json");
        // Copied from `docker buildx ls --format json` against the same config.
        let expected = r#"[{"all":false,"filter":["type==source.local","type==exec.cachemount","type==source.git.checkout"],"keepDuration":172800000000000,"maxUsedSpace":512000000,"minFreeSpace":0,"reservedSpace":0},{"all":false,"filter":null,"keepDuration":5184000000000000,"maxUsedSpace":0,"minFreeSpace":0,"reservedSpace":20000},{"all":false,"filter":null,"keepDuration":0,"maxUsedSpace":0,"minFreeSpace":0,"reservedSpace":20000},{"all":true,"filter":null,"keepDuration":0,"maxUsedSpace":0,"minFreeSpace":0,"reservedSpace":20000}]"#;
        assert_eq!(json, expected);
    }

    #[test]
    fn defaults_detect_gc_cap() {
        // 270553174016 bytes: 10% = 25 GiB -> 26 GB > 10 GB cap -> 10 GB;
        // 80% = 201 GiB -> 202 GB > 100 GB cap -> 100 GB; 20% = 50 GiB -> 51 GB.
        let rules = effective_gc_policy(&GcConfig::default(), Some(SEED_DISK));
        assert_eq!(rules.len(), 4);
        for r in &rules[1..] {
            assert_eq!(r.reserved_space, 10_000_000_000);
            assert_eq!(r.max_used_space, 100_000_000_000);
            assert_eq!(r.min_free_space, 51_000_000_000);
        }
        // A 50 GiB disk: 10% = 5 GiB -> 6 GB; 80% = 40 GiB -> 41 GB; 20% = 10 GiB -> 11 GB.
        let small = effective_gc_policy(&GcConfig::default(), Some(50 << 30));
        assert_eq!(
            (
                small[1].reserved_space,
                small[1].max_used_space,
                small[1].min_free_space
            ),
            (6_000_000_000, 41_000_000_000, 11_000_000_000)
        );
        // Unknown disk: every percentage is 2 GB.
        let unknown = effective_gc_policy(&GcConfig::default(), None);
        assert_eq!(
            (
                unknown[3].reserved_space,
                unknown[3].max_used_space,
                unknown[3].min_free_space
            ),
            (2_000_000_000, 2_000_000_000, 2_000_000_000)
        );
    }

    #[test]
    fn worker_limits_win_over_gckeepstorage() {
        let gc = GcConfig {
            gckeepstorage: disk("20000"),
            max_used_space: disk("60%"),
            ..GcConfig::default()
        };
        let rules = effective_gc_policy(&gc, Some(100 << 30));
        // reserved stays 0: gckeepstorage only applies when all three limits are unset.
        assert_eq!(rules[1].reserved_space, 0);
        assert_eq!(rules[1].max_used_space, 61_000_000_000);
        assert_eq!(rules[1].min_free_space, 0);
    }

    #[test]
    fn gc_false_has_no_policy() {
        let gc = GcConfig {
            gc: Some(false),
            gckeepstorage: disk("20000"),
            ..GcConfig::default()
        };
        assert!(effective_gc_policy(&gc, Some(SEED_DISK)).is_empty());
    }

    #[test]
    fn explicit_rules_map_keep_bytes() {
        let gc = GcConfig {
            gcpolicy: vec![
                GcPolicyRule {
                    keep_bytes: disk("512000000"),
                    keep_duration: Some(Duration::from_secs(172_800)),
                    filters: Some(vec!["type==source.local".into()]),
                    ..GcPolicyRule::default()
                },
                GcPolicyRule {
                    all: Some(true),
                    keep_bytes: disk("1GB"),
                    reserved_space: disk("10%"),
                    ..GcPolicyRule::default()
                },
            ],
            ..GcConfig::default()
        };
        let rules = effective_gc_policy(&gc, Some(100 << 30));
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].reserved_space, 512_000_000);
        assert_eq!(rules[0].keep_duration, 172_800_000_000_000);
        // reservedSpace set: keepBytes ignored; 10% of 100 GiB = 10 GiB -> 11 GB.
        assert_eq!(rules[1].reserved_space, 11_000_000_000);
        assert!(rules[1].all);
    }
}
