//! `brix config show` against a live BuildKit daemon: for several configs and daemon flags,
//! the GC policy brix computes (`--format json`, BuildKit's field names and units) must equal
//! the one the daemon reports for its worker (`buildctl debug workers`), rule by rule. The
//! daemon is the truth.

use std::path::Path;

use brix_e2e::{
    BUILDKIT_CAPABILITY_FLAGS, ContainerGuard, E2eEnv, daemon_workers, docker, gc_rules, run,
    unique_name,
};
use serde_json::Value;

/// One comparison: an optional buildkitd.toml and the daemon flags appended after it.
struct Case {
    name: &'static str,
    config: Option<&'static str>,
    flags: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "seed",
        config: Some("[worker.oci]\n  gc = true\n  gckeepstorage = 20000\n"),
        flags: "",
    },
    Case {
        name: "defaults",
        config: None,
        flags: "",
    },
    Case {
        name: "worker-limits",
        config: Some(
            "[worker.oci]\n  reservedSpace = \"10%\"\n  maxUsedSpace = \"50%\"\n  minFreeSpace = \"5GB\"\n",
        ),
        flags: "",
    },
    Case {
        name: "explicit-rules",
        config: Some(
            "[worker.oci]\n  gc = true\n\
             [[worker.oci.gcpolicy]]\n  keepDuration = \"24h\"\n  filters = [\"type==source.local\", \"type==exec.cachemount\"]\n  keepBytes = \"1GB\"\n\
             [[worker.oci.gcpolicy]]\n  all = true\n  keepBytes = \"2GB\"\n  maxUsedSpace = \"30%\"\n",
        ),
        flags: "",
    },
    Case {
        name: "flags-keepstorage-mb",
        config: None,
        flags: "--oci-worker-gc --oci-worker-gc-keepstorage 20000",
    },
    Case {
        name: "flags-three-parts-over-file",
        config: Some("[worker.oci]\n  reservedSpace = \"5GB\"\n"),
        flags: "--oci-worker-gc-keepstorage 1000,2000,3000",
    },
    Case {
        name: "gc-false",
        config: Some("[worker.oci]\n  gc = false\n  gckeepstorage = 20000\n"),
        flags: "",
    },
];

/// Size of the disk under BuildKit's root as BuildKit computes it: statfs blocks × bsize.
fn daemon_disk_size(container: &str) -> u64 {
    let out = docker([
        "exec",
        container,
        "stat",
        "-f",
        "-c",
        "%b %s",
        "/var/lib/buildkit",
    ])
    .ok();
    let nums: Vec<u64> = out
        .stdout
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match nums.as_slice() {
        [blocks, bsize] => blocks * bsize,
        _ => panic!("unexpected stat -f output: {:?}", out.stdout),
    }
}

/// One rule's fields in a form both sides share; numbers may arrive as JSON numbers or (in
/// protobuf JSON, for 64-bit fields) strings; a missing field is Go's zero value.
fn normalize(rule: &Value) -> (bool, Vec<String>, i64, i64, i64, i64) {
    let num = |k: &str| -> i64 {
        match &rule[k] {
            Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("{k} not i64: {rule}")),
            Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{k} not i64: {rule}")),
            Value::Null => 0,
            other => panic!("{k} has unexpected JSON {other}"),
        }
    };
    let filters = ["filter", "filters"]
        .iter()
        .find_map(|k| rule[*k].as_array())
        .map(|f| {
            f.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (
        rule["all"].as_bool().unwrap_or(false),
        filters,
        num("keepDuration"),
        num("reservedSpace"),
        num("maxUsedSpace"),
        num("minFreeSpace"),
    )
}

fn start_daemon(env: &E2eEnv, case: &Case, config: Option<&Path>) -> ContainerGuard {
    let name = unique_name(&format!("gc-{}", case.name));
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    args.extend(["--label".into(), brix_e2e::test_label()]);
    args.extend(BUILDKIT_CAPABILITY_FLAGS.iter().map(|s| s.to_string()));
    if let Some(path) = config {
        args.extend([
            "-v".into(),
            format!("{}:/etc/buildkit/buildkitd.toml:ro", path.display()),
        ]);
    }
    args.push(env.buildkit_image.clone());
    if config.is_some() {
        args.extend(["--config".into(), "/etc/buildkit/buildkitd.toml".into()]);
    }
    args.extend(case.flags.split_whitespace().map(String::from));
    docker(&args).ok();
    ContainerGuard { name }
}

/// Compares one case; returns a description of each difference (empty when brix agrees).
fn compare(env: &E2eEnv, case: &Case) -> Vec<String> {
    let dir = env.scratch_dir(&format!("gc-{}", case.name));
    let config = case.config.map(|text| {
        let path = dir.join("buildkitd.toml");
        std::fs::write(&path, text).expect("writing buildkitd.toml");
        path
    });
    // One daemon at a time: the guard removes it at the end of this function.
    let daemon = start_daemon(env, case, config.as_deref());
    let daemon_rules = gc_rules(&daemon_workers(&daemon.name));
    let disk = daemon_disk_size(&daemon.name);

    let mut cmd = env.brix();
    cmd.args(["config", "show"]);
    if let Some(path) = &config {
        cmd.arg(path);
    }
    cmd.args(["--disk-size", &disk.to_string(), "--format", "json"]);
    if !case.flags.is_empty() {
        cmd.args(["--buildkitd-flags", case.flags]);
    }
    let out = run(&mut cmd).ok();
    let shown: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("brix config show output is not JSON ({e}): {}", out.stdout));
    assert_eq!(shown["diskSize"].as_u64(), Some(disk), "{}", out.stdout);
    let brix_rules = shown["gcPolicy"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        shown["gcEnabled"].as_bool(),
        Some(!brix_rules.is_empty()),
        "{}",
        out.stdout
    );

    let mut diffs = Vec::new();
    if brix_rules.len() != daemon_rules.len() {
        diffs.push(format!(
            "{}: brix has {} rules, the daemon {}",
            case.name,
            brix_rules.len(),
            daemon_rules.len()
        ));
    }
    for (i, (b, d)) in brix_rules.iter().zip(&daemon_rules).enumerate() {
        let (b, d) = (normalize(b), normalize(d));
        if b != d {
            diffs.push(format!(
                "{} rule#{i} (disk {disk}): brix {b:?}, daemon {d:?}",
                case.name
            ));
        }
    }
    eprintln!(
        "{}: disk {disk} bytes, {} daemon rules, {}",
        case.name,
        daemon_rules.len(),
        if diffs.is_empty() {
            "brix matches"
        } else {
            "brix DIFFERS"
        }
    );
    diffs
}

#[test]
fn config_show_matches_the_daemons_gc_policy() {
    let Some(env) = E2eEnv::get() else { return };
    // Every case runs even when an earlier one differs, so one run reports them all.
    let diffs: Vec<String> = CASES.iter().flat_map(|case| compare(&env, case)).collect();
    assert!(
        diffs.is_empty(),
        "brix config show differs from BuildKit:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn cases_cover_files_flags_and_gc_off() {
    // The comparison above is only as good as its cases: keep files, flags and gc=false in.
    assert!(CASES.len() >= 6);
    assert!(
        CASES
            .iter()
            .any(|c| c.config.is_none() && c.flags.is_empty())
    );
    assert!(
        CASES
            .iter()
            .any(|c| c.config.is_some() && !c.flags.is_empty())
    );
    assert!(
        CASES
            .iter()
            .any(|c| c.config.is_some_and(|t| t.contains("gc = false")))
    );
}
