//! `brix history` against a real BuildKit daemon: after a build that works and one that
//! fails, `ls` lists both (refs, status, duration), `logs` replays the failing step's output,
//! `inspect` shows its error and the Dockerfile lines, `inspect attachment` prints the
//! provenance, `export` writes a `.dockerbuild` bundle and `rm` deletes a record. With
//! `BRIX_E2E_BUILDX` set, real buildx uses the same builder from the same store, adds a build
//! of its own, and prints the same for every record.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use brix_e2e::{E2eEnv, Run, path, run, unique_name};
use serde_json::Value;

/// A build context with `dockerfile` in it.
fn context(env: &E2eEnv, purpose: &str, dockerfile: &str) -> PathBuf {
    let dir = env.scratch_dir(purpose);
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
    dir
}

/// `brix history ARGS…` on builder `name`.
fn history(env: &E2eEnv, store: &Path, name: &str, args: &[&str]) -> Run {
    run(env
        .brix_in(store)
        .args(["history", "--builder", name])
        .args(args))
}

/// The records `history ls --format json` prints, by build ID (the last part of `ref`).
fn records(out: &str) -> BTreeMap<String, Value> {
    out.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let id = v["ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_else(|| panic!("no ref: {l}"))
                .to_owned();
            (id, v)
        })
        .collect()
}

/// The files of a gzipped tarball, by name.
fn untar_gz(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("a tarball") {
        let mut entry = entry.expect("a tar entry");
        let name = entry.path().expect("an entry name").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("reading a tar entry");
        files.insert(name, data);
    }
    files
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    files
        .get(&name)
        .unwrap_or_else(|| panic!("{name} is not in the bundle"))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[test]
fn history_lists_replays_inspects_exports_and_removes_builds() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("history-store");
    let name = unique_name("history");
    run(env
        .brix_in(&store)
        .args(["create", "--name", &name, "--driver-opt", "network=host"]))
    .ok();
    let marker = unique_name("mark");
    let ok_ctx = context(
        &env,
        "history-ok",
        &format!("FROM {}\nRUN echo {marker}-ok\n", env.busybox),
    );
    let fail_ctx = context(
        &env,
        "history-fail",
        &format!(
            "FROM {}\nRUN echo {marker}-before\nRUN echo {marker}-fails >&2 && exit 3\n",
            env.busybox
        ),
    );
    let metadata = env.scratch_dir("history-md").join("md.json");
    let build = |ctx: &Path, extra: &[&str]| {
        run(env
            .brix_in(&store)
            .args(["build", "--builder", &name, "--progress", "plain"])
            .args(extra)
            .arg(path(ctx)))
    };
    build(&ok_ctx, &["--metadata-file", path(&metadata)]).ok();
    let md = json(&std::fs::read(&metadata).expect("the metadata file"));
    let full_ref = md["buildx.build.ref"].as_str().expect("buildx.build.ref");
    assert!(
        full_ref.starts_with(&format!("{name}/{name}0/")),
        "{full_ref}"
    );
    let ok_id = full_ref.rsplit('/').next().unwrap_or_default().to_owned();
    let failed = build(&fail_ctx, &[]);
    assert!(!failed.success, "the failing build failed");

    // ls: both builds, newest first, with their status and duration.
    let ls = history(&env, &store, &name, &["ls", "--format", "json"]).ok();
    let recs = records(&ls.stdout);
    assert_eq!(recs.len(), 2, "{}", ls.stdout);
    let ok_rec = &recs[&ok_id];
    assert_eq!(ok_rec["status"], "Completed", "{ok_rec}");
    assert_eq!(ok_rec["ref"], full_ref);
    assert!(ok_rec["completed_at"].is_string(), "{ok_rec}");
    assert!(ok_rec["total_steps"].as_i64().unwrap_or(0) > 0, "{ok_rec}");
    let (fail_id, fail_rec) = recs
        .iter()
        .find(|(id, _)| **id != ok_id)
        .expect("the failed build's record");
    assert_eq!(fail_rec["status"], "Error", "{fail_rec}");
    let first_line = ls.stdout.lines().next().unwrap_or_default();
    assert!(
        first_line.contains(fail_id.as_str()),
        "newest first: {}",
        ls.stdout
    );
    let table = history(&env, &store, &name, &["ls"]).ok().stdout;
    assert!(
        table.starts_with("BUILD ID  ") && table.contains("DURATION"),
        "{table}"
    );
    for (id, status) in [(ok_id.as_str(), "Completed"), (fail_id.as_str(), "Error")] {
        let row = table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} is not listed:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells.contains(&status), "{row}");
        let duration = cells.last().copied().unwrap_or_default();
        assert!(
            duration.ends_with('s') && duration.contains('.'),
            "a duration such as 0.4s: {row}"
        );
    }
    let errors = history(
        &env,
        &store,
        &name,
        &["ls", "--format", "json", "--filter", "status=error"],
    )
    .ok();
    assert_eq!(
        records(&errors.stdout).keys().collect::<Vec<_>>(),
        [fail_id]
    );

    // logs: the failing step's output and error, replayed by the daemon.
    let logs = history(&env, &store, &name, &["logs", fail_id]).ok();
    assert!(
        logs.stderr.contains(&format!("{marker}-fails")),
        "{}",
        logs.stderr
    );
    assert!(
        logs.stderr.contains("ERROR: process \"/bin/sh -c echo")
            && logs.stderr.contains("exit code: 3"),
        "{}",
        logs.stderr
    );
    assert!(
        logs.stderr
            .contains(&format!(" > [3/3] RUN echo {marker}-fails")),
        "{}",
        logs.stderr
    );
    let newest = history(&env, &store, &name, &["logs"]).ok();
    assert_eq!(newest.stderr, logs.stderr, "no REF means the newest build");

    // inspect: the error, the Dockerfile lines and the step's output.
    let inspect = history(&env, &store, &name, &["inspect", fail_id])
        .ok()
        .stdout;
    assert!(
        inspect.contains("Error:\t\tUnknown process \"/bin/sh -c echo")
            && inspect.contains("exit code: 3"),
        "{inspect}"
    );
    assert!(inspect.contains("Dockerfile:3\n"), "{inspect}");
    assert!(
        inspect.contains(&format!(" 3 | >>> RUN echo {marker}-fails >&2 && exit 3")),
        "{inspect}"
    );
    assert!(
        inspect.contains(&format!("> {marker}-fails\n")),
        "{inspect}"
    );
    let inspected = json(
        history(
            &env,
            &store,
            &name,
            &["inspect", "--format", "json", fail_id],
        )
        .ok()
        .stdout
        .as_bytes(),
    );
    assert_eq!(inspected["Status"], "failed");
    assert_eq!(inspected["Error"]["Code"], 2);
    assert_eq!(inspected["Error"]["Logs"][0], format!("{marker}-fails"));
    assert!(
        inspected["Duration"].as_u64().unwrap_or(0) > 0,
        "{inspected}"
    );
    let previous = json(
        history(&env, &store, &name, &["inspect", "--format", "json", "^1"])
            .ok()
            .stdout
            .as_bytes(),
    );
    assert_eq!(
        previous["Ref"],
        ok_id.as_str(),
        "^1 is the build before the newest"
    );

    // inspect attachment: the provenance of the build that worked.
    let provenance = history(
        &env,
        &store,
        &name,
        &["inspect", "attachment", &ok_id, "--type", "provenance"],
    )
    .ok();
    let provenance = json(provenance.stdout.as_bytes());
    assert!(
        provenance["buildDefinition"]["resolvedDependencies"].is_array(),
        "{provenance}"
    );

    // export: a .dockerbuild bundle with the record, its logs and its trace.
    let bundle_path = env.scratch_dir("history-export").join("ok.dockerbuild");
    history(
        &env,
        &store,
        &name,
        &["export", "--finalize", "-o", path(&bundle_path), &ok_id],
    )
    .ok();
    let files = untar_gz(&std::fs::read(&bundle_path).expect("the bundle"));
    for (file, bytes) in &files {
        if let Some(hex) = file.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            use sha2::Digest;
            assert_eq!(format!("{:x}", sha2::Sha256::digest(bytes)), hex, "{file}");
        }
    }
    let index = json(&files["index.json"]);
    let manifest = json(blob(
        &files,
        index["manifests"][0]["digest"].as_str().unwrap_or(""),
    ));
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.historyrecord.v0"
    );
    let record = json(blob(
        &files,
        manifest["config"]["digest"].as_str().unwrap_or(""),
    ));
    assert_eq!(record["Ref"], ok_id.as_str());
    let layer_types: Vec<&str> = manifest["layers"]
        .as_array()
        .map(|l| l.iter().filter_map(|d| d["mediaType"].as_str()).collect())
        .unwrap_or_default();
    for kind in [
        "application/vnd.buildkit.status.v0",
        "application/vnd.buildkit.otlp.json.v0",
    ] {
        assert!(layer_types.contains(&kind), "{kind}: {layer_types:?}");
    }

    // Real buildx on the same daemon sees the same records and prints the same.
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        side_by_side_with_buildx(&env, &store, &name, fail_id, &ok_id, &bundle_path);
    }

    // rm: the record goes; a ref no node has is an error that names it.
    history(&env, &store, &name, &["rm", &ok_id]).ok();
    let after = history(&env, &store, &name, &["ls", "--format", "json"]).ok();
    assert!(
        !records(&after.stdout).contains_key(&ok_id),
        "{}",
        after.stdout
    );
    let unknown = history(&env, &store, &name, &["rm", "nosuchbuildref"]);
    assert!(
        !unknown.success && unknown.stderr.contains("nosuchbuildref"),
        "{}",
        unknown.stderr
    );
    let _ = run(env.brix_in(&store).args(["rm", "--force", &name]));
}

/// buildx's `history` output for the same records, compared with brix's: buildx uses the
/// same builder from the same store (as it would on a machine where both are installed), so
/// both read the same records and the same client-side state. One more build, by buildx,
/// shows that each tool lists the other's builds.
fn side_by_side_with_buildx(
    env: &E2eEnv,
    store: &Path,
    name: &str,
    fail_id: &str,
    ok_id: &str,
    bundle: &Path,
) {
    let buildx = |args: &[&str]| {
        run(Command::new("docker")
            .env("BUILDX_CONFIG", store)
            .env("DOCKER_HOST", &env.docker_host)
            .env_remove("BUILDX_BUILDER")
            .args(["buildx", "--builder", name])
            .args(args))
    };
    let ctx = context(
        env,
        "history-buildx",
        &format!("FROM {}\nRUN echo {}\n", env.busybox, unique_name("bx")),
    );
    buildx(&["build", "--progress", "plain", path(&ctx)]).ok();

    // ls: the same records, field for field, the buildx build among them.
    let ours = history(env, store, name, &["ls", "--format", "json"])
        .ok()
        .stdout;
    let theirs = buildx(&["history", "ls", "--format", "json"]).ok().stdout;
    assert_eq!(records(&ours).len(), 3, "{ours}");
    assert_eq!(
        records(&ours),
        records(&theirs),
        "history ls --format json differs"
    );
    // A Go template, as scripts pass one: the same lines.
    let format = [
        "ls",
        "--format",
        "{{.Ref}} {{.Name}} {{.Status}} {{json .Ref}}",
    ];
    let ours_t = history(env, store, name, &format).ok().stdout;
    let theirs_t = buildx(&[&["history"][..], &format[..]].concat())
        .ok()
        .stdout;
    assert_eq!(ours_t, theirs_t, "history ls --format TEMPLATE differs");
    let buildx_id = records(&ours)
        .into_keys()
        .find(|id| id != fail_id && id != ok_id)
        .unwrap_or_default();

    for id in [fail_id, ok_id, buildx_id.as_str()] {
        // logs: the same replay, byte for byte.
        let ours = history(env, store, name, &["logs", id]).ok();
        let theirs = buildx(&["history", "logs", id]).ok();
        assert_eq!(ours.stderr, theirs.stderr, "history logs {id} differs");

        // inspect: the same text but for brix's command name and buildx's pointer to its
        // --debug stack traces (brix has none to show).
        let ours = history(env, store, name, &["inspect", id]).ok().stdout;
        let theirs = buildx(&["history", "inspect", id])
            .ok()
            .stdout
            .replace("Enable --debug to see stack traces for error\n", "")
            .replace("docker buildx history logs", "brix history logs");
        assert_eq!(ours, theirs, "history inspect {id} differs");
        let ours = json(
            history(env, store, name, &["inspect", "--format", "json", id])
                .ok()
                .stdout
                .as_bytes(),
        );
        let mut theirs = json(
            buildx(&["history", "inspect", "--format", "json", id])
                .ok()
                .stdout
                .as_bytes(),
        );
        if let Some(e) = theirs.get_mut("Error").and_then(Value::as_object_mut) {
            e.remove("Stack");
        }
        assert_eq!(ours, theirs, "history inspect --format json {id} differs");
    }

    // export: the same record and the same layers; the trace differs only in what buildx's
    // span type drops (InstrumentationScope), so its digest is left out.
    let theirs_path = bundle.with_file_name("buildx.dockerbuild");
    buildx(&[
        "history",
        "export",
        "--finalize",
        "-o",
        path(&theirs_path),
        ok_id,
    ])
    .ok();
    let load = |p: &Path| {
        let files = untar_gz(&std::fs::read(p).expect("a bundle"));
        let index = json(&files["index.json"]);
        let manifest = json(blob(
            &files,
            index["manifests"][0]["digest"].as_str().unwrap_or(""),
        ));
        let mut record = json(blob(
            &files,
            manifest["config"]["digest"].as_str().unwrap_or(""),
        ));
        if let Some(t) = record.get_mut("trace").and_then(Value::as_object_mut) {
            t.remove("digest");
            t.remove("size");
        }
        let layers: Vec<(Value, Value)> = manifest["layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|d| d["mediaType"] != "application/vnd.buildkit.otlp.json.v0")
                    .map(|d| (d["mediaType"].clone(), d["digest"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        (record, layers)
    };
    assert_eq!(load(bundle), load(&theirs_path), "history export differs");
}
