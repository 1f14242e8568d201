//! `brix config lint|show`, run as the built binary (no daemon needed).

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "config",
        "tests",
        "fixtures",
        name,
    ]
    .iter()
    .collect();
    p.display().to_string()
}

fn brix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brix"))
        .args(args)
        .output()
        .expect("the brix binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(name: &str, content: &[u8]) -> String {
    // Under the target directory (cargo's scratch space for integration tests), so runs leave
    // nothing behind in /tmp.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("brix-config-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write temp file");
    path.display().to_string()
}

#[test]
fn lint_seed_warns_and_exits_zero() {
    let seed = fixture("seed.toml");
    let o = brix(&["config", "lint", &seed]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{seed}:3:19: warning[BKC001]")),
        "{out}"
    );
    assert!(out.contains("20000 bytes (19.53KiB)"), "{out}");
    assert!(
        out.contains("--oci-worker-gc-keepstorage 20000` means 20000 MB"),
        "{out}"
    );
    assert!(out.contains("fix: reservedSpace = \"20GB\""), "{out}");
    assert!(
        out.contains(&format!("{seed}:3:3: warning[BKC002]")),
        "{out}"
    );
}

#[test]
fn lint_json_lists_codes() {
    let seed = fixture("seed.toml");
    let o = brix(&["config", "lint", &seed, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 2);
    let codes: Vec<&str> = v["diagnostics"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["BKC002", "BKC001"]);
    assert_eq!(v["diagnostics"][1]["line"], 3);
    assert_eq!(v["diagnostics"][1]["column"], 19);
    assert!(
        v["diagnostics"][1]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("20GB"))
    );
}

#[test]
fn lint_errors_exit_one_with_location() {
    let bad = temp_file(
        "bad.toml",
        b"[worker.oci]\ngc = true\nreservedSpace = \"20 parsecs\"\n",
    );
    let o = brix(&["config", "lint", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "{bad}:3:17: error[BKC102]: worker.oci.reservedSpace: invalid disk size"
        )),
        "{out}"
    );
    let garbage = temp_file("garbage.toml", &[0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff, 0xfe]);
    let o = brix(&["config", "lint", &garbage]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("error[BKC105]"), "{}", stdout(&o));
}

#[test]
fn lint_missing_file_is_an_error() {
    let o = brix(&["config", "lint", "/nonexistent/buildkitd.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read /nonexistent/buildkitd.toml"));
}

#[test]
fn show_seed_prints_buildx_layout() {
    let seed = fixture("seed.toml");
    let o = brix(&["config", "show", &seed, "--disk-size", "270553174016"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
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
    assert_eq!(stdout(&o), expected);
    // The lint warnings still reach the user, on stderr.
    assert!(stderr(&o).contains("BKC001"));
}

#[test]
fn show_flags_win_and_are_megabytes() {
    let seed = fixture("seed.toml");
    let o = brix(&[
        "config",
        "show",
        &seed,
        "--buildkitd-flags",
        "--oci-worker-gc-keepstorage 20000 --some-future-flag",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rules = v["gcPolicy"].as_array().expect("gcPolicy");
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[1]["reservedSpace"], 20_000_000_000i64);
    assert_eq!(rules[1]["keepDuration"], 5_184_000_000_000_000i64);
    assert_eq!(rules[0]["filter"][0], "type==source.local");
    assert!(rules[1]["filter"].is_null());
    assert_eq!(rules[3]["all"], true);
    assert_eq!(v["passthroughFlags"][0], "--some-future-flag");
}

#[test]
fn show_gc_disabled_prints_no_rules() {
    let f = temp_file("nogc.toml", b"[worker.oci]\ngc = false\n");
    let o = brix(&["config", "show", &f, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["gcPolicy"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["gcEnabled"], false);
    let o = brix(&["config", "show", &f]);
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("disabled"));
}

#[test]
fn show_refuses_broken_file() {
    let f = temp_file("broken.toml", b"[worker.oci]\nmaxUsedSpace = \"150%\"\n");
    let o = brix(&["config", "show", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{f}:2:16: error[BKC102]")),
        "{}",
        stderr(&o)
    );
    let o = brix(&["config", "show", "--disk-size", "lots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid --disk-size"));
}
