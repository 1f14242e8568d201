//! `brix du` and `brix prune` against a real docker-container builder, checked against the
//! daemon's own view (`buildctl du` inside the builder's container), and the `inspect` hint
//! for a platform a node is pinned to but cannot run.

use std::path::PathBuf;
use std::process::Command;

use brix_config::format_bytes_decimal;
use brix_e2e::{E2eEnv, Run, docker, path, remove_node_container, run, unique_name};

const PRUNE_WARNING: &str =
    "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ";

/// One test's builder in its own brix store; removes the builder, its container and its
/// state volume when dropped (also when the test panics).
struct CacheBuilder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
}

impl CacheBuilder {
    /// Creates and boots a docker-container builder on the host network.
    fn create(env: E2eEnv, purpose: &str, extra: &[&str]) -> Self {
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let b = Self {
            env,
            store,
            name: unique_name(purpose),
        };
        let mut args = vec![
            "create",
            "--name",
            &b.name,
            "--driver-opt",
            "network=host",
            "--bootstrap",
        ];
        args.extend_from_slice(extra);
        b.brix(&args).ok();
        b
    }

    fn cmd(&self) -> Command {
        self.env.brix_in(&self.store)
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.cmd().args(args))
    }

    fn container(&self) -> String {
        format!("buildx_buildkit_{}0", self.name)
    }

    /// The records as the daemon itself reports them (`buildctl du`, JSON with byte sizes).
    fn buildctl_records(&self) -> Vec<serde_json::Value> {
        let out = docker([
            "exec",
            &self.container(),
            "buildctl",
            "du",
            "--format",
            "{{json .}}",
        ])
        .ok();
        match serde_json::from_str::<serde_json::Value>(out.stdout.trim()) {
            Ok(serde_json::Value::Array(records)) => records,
            Ok(serde_json::Value::Null) => Vec::new(),
            other => panic!("buildctl du JSON: {other:?}\n{}", out.stdout),
        }
    }
}

impl Drop for CacheBuilder {
    fn drop(&mut self) {
        let _ = self.brix(&["rm", "-f", &self.name]);
        remove_node_container(&self.container());
    }
}

/// `brix du`'s table rows (between the header and the summary), as (id, rest of the line).
fn table_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.contains(":\t"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| id.trim_end_matches('*').to_owned())
        .collect()
}

/// The value after `key:` and its tabs in a summary line, e.g. `Total:\t\t6MB` -> `6MB`.
fn summary(stdout: &str, key: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim_start_matches('\t').to_owned())
}

/// Total and reclaimable bytes as buildx counts them, from `buildctl du` JSON records.
fn expected_sizes(records: &[serde_json::Value]) -> (i64, i64) {
    let mut total = 0;
    let mut reclaimable = 0;
    for r in records {
        let size = r["size"].as_i64().unwrap_or(0);
        if size > 0 {
            total += size;
            if !r["inUse"].as_bool().unwrap_or(false) {
                reclaimable += size;
            }
        }
    }
    (total, reclaimable)
}

#[test]
fn du_lists_the_build_cache_and_prune_reclaims_it() {
    let Some(env) = E2eEnv::get() else { return };
    let b = CacheBuilder::create(env, "cache", &[]);

    // A build whose cache holds ~3 MB: the context's payload and the COPY of it.
    let ctx = b.env.scratch_dir("cache-ctx");
    let marker = unique_name("payload");
    let payload: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .chain(marker.bytes())
        .collect();
    std::fs::write(ctx.join("payload.bin"), &payload).expect("writing payload");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY payload.bin /payload.bin\n",
    )
    .expect("writing Dockerfile");
    let out_dir = b.env.scratch_dir("cache-out");
    let dest = format!("type=local,dest={}", path(&out_dir));
    b.brix(&[
        "build",
        "--builder",
        &b.name,
        "--progress",
        "plain",
        "-o",
        &dest,
        path(&ctx),
    ])
    .ok();

    // du: buildx's table and summary, with the daemon's records and byte counts.
    let du = b.brix(&["du", "--builder", &b.name]).ok().stdout;
    let header = du.lines().next().unwrap_or_default();
    assert!(header.starts_with("ID "), "{du}");
    assert!(header.contains("   RECLAIMABLE   SIZE"), "{du}");
    assert!(header.ends_with("   LAST ACCESSED"), "{du}");
    let records = b.buildctl_records();
    let (total, reclaimable) = expected_sizes(&records);
    assert!(total >= 3_000_000, "cache holds only {total} bytes:\n{du}");
    let mut ours = table_ids(&du);
    let mut theirs: Vec<String> = records
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{du}");
    assert!(
        du.ends_with(&format!(
            "Reclaimable:\t{}\nTotal:\t\t{}\n",
            format_bytes_decimal(reclaimable as f64),
            format_bytes_decimal(total as f64)
        )),
        "expected total {total} bytes, reclaimable {reclaimable}:\n{du}"
    );
    assert!(du.lines().any(|l| l.contains(" ago")), "{du}");

    // --format json: one object per record, same IDs; --verbose: one block per record.
    let json = b
        .brix(&["du", "--builder", &b.name, "--format", "json"])
        .ok()
        .stdout;
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects.len(), theirs.len(), "{json}");
    for o in &objects {
        assert!(theirs.iter().any(|id| o["ID"] == id.as_str()), "{o}");
        assert!(o["Size"].as_str().is_some_and(|s| s.ends_with('B')), "{o}");
        assert!(o["Reclaimable"].is_boolean(), "{o}");
    }
    let verbose = b
        .brix(&["du", "--builder", &b.name, "--verbose"])
        .ok()
        .stdout;
    assert_eq!(
        verbose
            .lines()
            .filter(|l| l.starts_with("ID:           "))
            .count(),
        theirs.len(),
        "{verbose}"
    );
    assert!(verbose.contains("Created at:   "), "{verbose}");
    assert_eq!(
        summary(&verbose, "Total"),
        Some(format_bytes_decimal(total as f64))
    );
    // With a filter buildx leaves the summary out.
    let filtered = b
        .brix(&["du", "--builder", &b.name, "--filter", "type=regular"])
        .ok()
        .stdout;
    assert_eq!(summary(&filtered, "Total"), None, "{filtered}");

    // prune without -f asks; a closed stdin answers no, and nothing is removed.
    let asked = b.brix(&["prune", "--builder", &b.name]).ok();
    assert_eq!(asked.stdout, PRUNE_WARNING);
    assert_eq!(expected_sizes(&b.buildctl_records()).0, total);

    // prune -a -f --keep-storage 0: every record goes; the total is what du counted.
    let pruned = b
        .brix(&[
            "prune",
            "--builder",
            &b.name,
            "-a",
            "-f",
            "--keep-storage",
            "0",
        ])
        .ok();
    assert!(
        pruned.stderr.contains("--keep-storage has been deprecated"),
        "{}",
        pruned.stderr
    );
    let first = pruned.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("ID\t") && first.contains("RECLAIMABLE\tSIZE"),
        "{}",
        pruned.stdout
    );
    let removed = pruned.stdout.lines().count() - 2;
    assert!(removed >= 1, "{}", pruned.stdout);
    let reclaimed = summary(&pruned.stdout, "Total").unwrap_or_default();
    assert!(
        pruned.stdout.ends_with(&format!("Total:\t{reclaimed}\n")),
        "{}",
        pruned.stdout
    );
    let after_records = b.buildctl_records();
    let (after_total, _) = expected_sizes(&after_records);
    assert!(
        after_total < total - 3_000_000,
        "du total went from {total} to only {after_total} bytes:\n{}",
        pruned.stdout
    );
    // What prune reports removed accounts for the drop (records of size 0 aside).
    let sizes_removed: i64 = total - after_total;
    assert_eq!(
        reclaimed,
        format_bytes_decimal(sizes_removed as f64),
        "{}",
        pruned.stdout
    );

    // du agrees with the daemon after the prune.
    let du_after = b.brix(&["du", "--builder", &b.name]).ok().stdout;
    assert_eq!(
        summary(&du_after, "Total"),
        Some(format_bytes_decimal(after_total as f64)),
        "{du_after}"
    );
    assert_eq!(
        table_ids(&du_after).len(),
        after_records.len(),
        "{du_after}"
    );
}

#[test]
fn inspect_hints_at_emulation_for_a_pinned_platform_no_worker_runs() {
    let Some(env) = E2eEnv::get() else { return };
    // arm64 runs through the QEMU that `cargo xtask e2e` registers; mips64le is never
    // registered there, so the worker cannot run it although the node is pinned to it.
    let b = CacheBuilder::create(env, "hint", &["--platform", "linux/arm64,linux/mips64le"]);
    let out = b.brix(&["inspect", &b.name]).ok();
    let platforms = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Platforms:"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        platforms.starts_with("linux/arm64*, linux/mips64le*"),
        "{}",
        out.stdout
    );
    assert!(
        platforms.split(", ").any(|p| p == "linux/riscv64"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("hint:"),
        "stdout keeps buildx's layout:\n{}",
        out.stdout
    );
    let hints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("hint:"))
        .collect();
    assert_eq!(
        hints,
        [format!(
            "hint: node {}0 cannot run linux/mips64le: run `brix binfmt --install mips64le` on the builder's host to emulate it with QEMU",
            b.name
        )],
        "{}",
        out.stderr
    );
}
