//! A real CI client (issue 12): `tests/ci-client/ci-client.mjs` drives `docker buildx` through
//! docker/actions-toolkit, the library docker/setup-buildx-action and docker/build-push-action
//! are made of, in the order those actions go: version checks, `create --use` and
//! `inspect --bootstrap --builder`, `Builder.inspect`, a two-platform build with `--iidfile`,
//! `--metadata-file`, a provenance attestation and `--push`, then `history inspect` and
//! `history export --finalize`. It runs once with brix as the `docker-buildx` CLI plugin and
//! once with real buildx, and the test checks that brix gives the toolkit what buildx gives it.
//!
//! Both runs use one BuildKit daemon, the same way: each creates a docker-container builder of
//! the same name in a store of its own (`BUILDX_CONFIG`). brix's run boots it, as container
//! `buildx_buildkit_<name>0`; buildx's `create` only writes its store, and its
//! `inspect --bootstrap` finds that container running, so buildx never asks for the privileged
//! container these machines refuse. So both go through the very same toolkit calls and commands
//! with driver docker-container, which a `remote` builder for buildx would not (another
//! driver, no `network=host`, no buildkitd config, another inspect layout).
//!
//! What the actions use has to match (versions, builder name, driver, nodes, status,
//! platforms, metadata keys, digest, the pushed index, the build record's summary); every other
//! field that differs is named on stderr, and in the failure message when something must-match
//! does not.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, path, run, unique_name};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];
/// The checkout's `origin`, which buildx records as the build's VCS source.
const CHECKOUT_ORIGIN: &str = "https://example.invalid/brix/ci-client.git";
/// The script's steps, in order (its `steps` object).
const STEPS: [&str; 7] = [
    "version",
    "create",
    "bootstrap",
    "inspect",
    "build",
    "history-inspect",
    "history-export",
];

/// The script, next to this crate's sources.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ci-client/ci-client.mjs")
}

/// What one run of the script got.
struct ClientRun {
    /// `brix` or `buildx`.
    tool: &'static str,
    /// The JSON object the script printed.
    result: Value,
    /// Where its stderr (the toolkit's and the commands' output) was saved.
    log: PathBuf,
    /// The scratch folder of the run, replaced by `<root>` when results are compared.
    root: PathBuf,
    /// The image the build pushed.
    image: String,
    /// How long the script ran.
    wall: Duration,
}

impl ClientRun {
    fn step_ok(&self, step: &str) -> bool {
        self.result["steps"][step]["ok"].as_bool() == Some(true)
    }

    /// `<id>` of the build ref `<builder>/<node>/<id>`.
    fn ref_id(&self) -> Option<&str> {
        self.result["build"]["ref"].as_str()?.rsplit('/').next()
    }
}

/// Runs the script with `plugin` as `docker-buildx`, a docker config folder and a builder
/// store of its own, on the e2e engine.
fn run_client(
    env: &E2eEnv,
    tool: &'static str,
    plugin: &Path,
    modules: &Path,
    builder: &str,
    buildkitd_config: &Path,
) -> ClientRun {
    let root = env.scratch_dir(&format!("ci-client-{tool}"));
    let plugins = root.join("docker-config/cli-plugins");
    std::fs::create_dir_all(&plugins).expect("creating cli-plugins");
    std::os::unix::fs::symlink(plugin, plugins.join("docker-buildx")).expect("linking the plugin");
    // The same folder name for both runs: it is the build's name in the history record.
    let context = root.join("app");
    std::fs::create_dir_all(&context).expect("creating the context");
    // Each run builds something new, as a CI run of a new commit does.
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN uname -m > /arch && echo {} > /commit\n",
            env.busybox,
            unique_name(tool)
        ),
    )
    .expect("writing Dockerfile");
    checkout(&context);
    let runner_temp = root.join("runner-temp");
    std::fs::create_dir_all(&runner_temp).expect("creating RUNNER_TEMP");
    let image = env.registry_ref(&format!("ci-client-{tool}"), "1");

    // Run from the checkout with context `.`, as a workflow's `context: .` does.
    let mut cmd = Command::new("node");
    cmd.arg(script())
        .current_dir(&context)
        .args(["--builder", builder, "--tag", &image, "--context", "."])
        .args(["--buildkitd-config", path(buildkitd_config)])
        .env("DOCKER_CONFIG", root.join("docker-config"))
        .env("BUILDX_CONFIG", root.join("buildx"))
        .env("DOCKER_HOST", &env.docker_host)
        .env("RUNNER_TEMP", &runner_temp)
        .env("CI_CLIENT_NODE_MODULES", modules);
    // brix prefers BRIX_CONFIG (the run's store) over BUILDX_CONFIG: neither tool may see it.
    for var in [
        "BRIX_CONFIG",
        "BRIX_BUILDER",
        "BUILDX_BUILDER",
        "BRIX_PROGRESS",
        "BUILDKIT_PROGRESS",
        "DOCKER_CONTEXT",
    ] {
        cmd.env_remove(var);
    }
    let started = Instant::now();
    let r = run(&mut cmd);
    let wall = started.elapsed();
    let log = root.join("ci-client.log");
    std::fs::write(&log, &r.stderr).expect("writing the log");
    let result: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{tool}: the CI client printed no JSON ({e}):\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        )
    });
    ClientRun {
        tool,
        result,
        log,
        root,
        image,
        wall,
    }
}

/// Makes `dir` a git checkout of its own, as actions/checkout leaves the workspace (one
/// commit, an `origin`); without it the scratch folder would sit in this repository's tree.
fn checkout(dir: &Path) {
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args))
        .ok()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "the commit the CI job builds"]);
    git(&["remote", "add", "origin", CHECKOUT_ORIGIN]);
}

/// brix's builder, removed with its container and volume when the test ends.
struct BuilderGuard<'a> {
    env: &'a E2eEnv,
    store: PathBuf,
    name: String,
}

impl Drop for BuilderGuard<'_> {
    fn drop(&mut self) {
        let _ = run(self.env.brix_in(&self.store).args(["rm", &self.name]));
        brix_e2e::remove_node_container(&format!("buildx_buildkit_{}0", self.name));
    }
}

fn container_running(name: &str) -> bool {
    let r = brix_e2e::docker(["inspect", "-f", "{{.State.Running}}", name]);
    r.success && r.stdout.trim() == "true"
}

/// Must-match failures and named differences.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    differences: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    /// A must-match field: the same in both results.
    fn same(&mut self, what: &str, brix: &Value, buildx: &Value) {
        self.check(brix == buildx, || {
            format!("{what}: brix {} but buildx {}", short(brix), short(buildx))
        });
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// `sha256:` and 64 hex digits.
fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The steps that did not succeed, with their errors.
fn failed_steps(run: &ClientRun) -> Vec<String> {
    STEPS
        .iter()
        .filter(|step| !run.step_ok(step))
        .map(|step| {
            let s = &run.result["steps"][*step];
            match (s["skipped"].as_str(), s["error"].as_str()) {
                (Some(skipped), _) => format!("{}: step {step} skipped ({skipped})", run.tool),
                (None, Some(error)) => format!("{}: step {step} failed: {error}", run.tool),
                (None, None) => format!("{}: step {step} did not run", run.tool),
            }
        })
        .collect()
}

/// The result with what differs from run to run taken out: timings, paths, digests, refs.
fn normalized(run: &ClientRun) -> Value {
    let mut text = run.result.to_string();
    text = text.replace(path(&run.root), "<root>");
    text = text.replace(&run.image, "<image>");
    if let Some(id) = run.ref_id().filter(|id| !id.is_empty()) {
        text = text.replace(id, "<ref>");
    }
    let mut v: Value = serde_json::from_str(&text).expect("JSON stays JSON");
    strip(&mut v);
    v
}

/// Removes what is different on every run and rewrites digests.
fn strip(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in [
                "ms",
                "lastActivity",
                "StartedAt",
                "CompletedAt",
                "Duration",
                "duration",
                "dockerbuildSize",
                // The script's own argument list: the same by construction, with random names.
                "args",
                "dockerbuildFilename",
                "imageID",
                "digest",
            ] {
                map.remove(key);
            }
            for value in map.values_mut() {
                strip(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        Value::String(s) if is_digest(s) => *s = "sha256:<digest>".to_string(),
        _ => {}
    }
}

/// Where two JSON trees differ, as `path: brix X, buildx Y` lines.
fn diff(at: &str, brix: &Value, buildx: &Value, out: &mut Vec<String>) {
    match (brix, buildx) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{at}.{key}");
                match b.get(key) {
                    Some(other) => diff(&here, value, other, out),
                    None => out.push(format!("{here}: only brix has it ({})", short(value))),
                }
            }
            for (key, value) in b {
                if !a.contains_key(key) {
                    out.push(format!("{at}.{key}: only buildx has it ({})", short(value)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{at}[{i}]"), x, y, out);
            }
        }
        _ if brix != buildx => {
            out.push(format!(
                "{at}: brix {}, buildx {}",
                short(brix),
                short(buildx)
            ));
        }
        _ => {}
    }
}

/// The entries of the exported `.dockerbuild` (a gzipped tar of an OCI layout): the names
/// outside `blobs/sha256/` and the number of blobs.
fn dockerbuild_entries(file: &Path) -> Result<(Vec<String>, usize), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .map_err(|e| format!("{} is not gzip: {e}", file.display()))?;
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    let mut blobs = 0;
    for entry in archive
        .entries()
        .map_err(|e| format!("{} is not a tar: {e}", file.display()))?
    {
        let entry = entry.map_err(|e| format!("{}: {e}", file.display()))?;
        let name = entry
            .path()
            .map_err(|e| format!("{}: {e}", file.display()))?
            .to_string_lossy()
            .into_owned();
        match name.strip_prefix("blobs/sha256/") {
            Some(blob) if !blob.is_empty() => blobs += 1,
            _ => names.push(name),
        }
    }
    names.sort();
    Ok((names, blobs))
}

/// The pushed index as skopeo reads it: its platforms (attestations apart), how many
/// attestation manifests it has, its media type, and whether its digest is `digest`.
fn check_pushed(report: &mut Report, run: &ClientRun) -> Value {
    let (raw, index) = brix_e2e::pushed_index(&run.image);
    let platforms = brix_e2e::index_platforms(&index);
    let images: Vec<&String> = platforms
        .iter()
        .filter(|p| *p != "unknown/unknown")
        .collect();
    report.check(images == PLATFORMS.iter().collect::<Vec<_>>(), || {
        format!(
            "{}: the pushed index {} has {images:?}, not {PLATFORMS:?}: {raw}",
            run.tool, run.image
        )
    });
    let digest = format!("sha256:{:x}", Sha256::digest(raw.as_bytes()));
    report.check(
        run.result["build"]["digest"].as_str() == Some(digest.as_str()),
        || {
            format!(
                "{}: resolveDigest gave {} but the registry's index is {digest}",
                run.tool, run.result["build"]["digest"]
            )
        },
    );
    serde_json::json!({
        "mediaType": index["mediaType"],
        "platforms": platforms,
    })
}

/// The checks of one run on its own: what a CI job needs from it.
fn check_run(report: &mut Report, run: &ClientRun, builder: &str) {
    report.problems.extend(failed_steps(run));
    let tool = run.tool;
    let r = &run.result;
    let buildx = &r["buildx"];
    report.check(buildx["available"] == true, || {
        format!("{tool}: Buildx.isAvailable is {}", buildx["available"])
    });
    report.check(buildx["standalone"] == false, || {
        format!("{tool}: the toolkit did not go through the docker CLI")
    });
    let failed_ranges: Vec<&String> = buildx["satisfies"]
        .as_object()
        .map(|m| m.iter().filter(|(_, ok)| **ok != true).map(|(k, _)| k))
        .into_iter()
        .flatten()
        .collect();
    report.check(failed_ranges.is_empty(), || {
        format!(
            "{tool}: version {} does not satisfy {failed_ranges:?}",
            buildx["version"]
        )
    });

    if run.step_ok("inspect") {
        let info = &r["builder"]["info"];
        let node_name = format!("{builder}0");
        report.check(info["name"] == builder, || {
            format!("{tool}: Builder.inspect name {}", info["name"])
        });
        report.check(info["driver"] == "docker-container", || {
            format!("{tool}: Builder.inspect driver {}", info["driver"])
        });
        let nodes = info["nodes"].as_array().cloned().unwrap_or_default();
        report.check(nodes.len() == 1, || {
            format!("{tool}: Builder.inspect has {} nodes", nodes.len())
        });
        if let Some(node) = nodes.first() {
            report.check(node["name"] == node_name.as_str(), || {
                format!("{tool}: node name {}", node["name"])
            });
            report.check(node["status"] == "running", || {
                format!("{tool}: node status {}", node["status"])
            });
        }
        let platforms = r["builder"]["platforms"].as_str().unwrap_or_default();
        report.check(
            PLATFORMS
                .iter()
                .all(|p| platforms.split(',').any(|q| q == *p)),
            || format!("{tool}: the builder's platforms {platforms:?} lack one of {PLATFORMS:?}"),
        );
        report.check(r["builder"]["exists"] == true, || {
            format!("{tool}: Builder.exists is {}", r["builder"]["exists"])
        });
    }

    if run.step_ok("build") {
        let build = &r["build"];
        report.check(build["digest"].as_str().is_some_and(is_digest), || {
            format!("{tool}: resolveDigest gave {}", build["digest"])
        });
        report.check(build["imageID"] == build["digest"], || {
            format!(
                "{tool}: resolveImageID {} is not the digest {}",
                build["imageID"], build["digest"]
            )
        });
        let ref_ok = build["ref"].as_str().is_some_and(|r| {
            let parts: Vec<&str> = r.split('/').collect();
            parts.len() == 3 && parts[0] == builder && parts[1] == format!("{builder}0")
        });
        report.check(ref_ok && build["refFrom"] == "metadata", || {
            format!(
                "{tool}: build ref {} (from {})",
                build["ref"], build["refFrom"]
            )
        });
    }

    if run.step_ok("history-inspect") {
        let record = &r["history"]["inspect"];
        report.check(record["Status"] == "completed", || {
            format!("{tool}: history inspect Status {}", record["Status"])
        });
        report.check(record["Ref"].as_str() == run.ref_id(), || {
            format!(
                "{tool}: history inspect Ref {} is not the build's {:?}",
                record["Ref"],
                run.ref_id()
            )
        });
    }

    if run.step_ok("history-export") {
        let export = &r["history"]["export"];
        report.check(export["builderName"] == builder, || {
            format!("{tool}: export builderName {}", export["builderName"])
        });
        report.check(export["nodeName"] == format!("{builder}0").as_str(), || {
            format!("{tool}: export nodeName {}", export["nodeName"])
        });
        match export["dockerbuildFilename"]
            .as_str()
            .map(|f| dockerbuild_entries(Path::new(f)))
        {
            Some(Ok((names, blobs))) => report.check(
                names.iter().any(|n| n == "index.json")
                    && names.iter().any(|n| n == "oci-layout")
                    && blobs > 0,
                || format!("{tool}: the .dockerbuild holds {names:?} and {blobs} blobs"),
            ),
            Some(Err(e)) => report.problems.push(format!("{tool}: {e}")),
            None => report
                .problems
                .push(format!("{tool}: History.export named no file")),
        }
    }
}

/// brix against buildx, field by field, for what the actions read.
fn compare(report: &mut Report, brix: &ClientRun, buildx: &ClientRun) {
    let (a, b) = (&brix.result, &buildx.result);
    report.same(
        "Buildx.version",
        &a["buildx"]["version"],
        &b["buildx"]["version"],
    );
    report.same(
        "Buildx.versionSatisfies",
        &a["buildx"]["satisfies"],
        &b["buildx"]["satisfies"],
    );
    if brix.step_ok("inspect") && buildx.step_ok("inspect") {
        let (ia, ib) = (&a["builder"]["info"], &b["builder"]["info"]);
        report.same("Builder.inspect name", &ia["name"], &ib["name"]);
        report.same("Builder.inspect driver", &ia["driver"], &ib["driver"]);
        for field in [
            "name",
            "endpoint",
            "status",
            "platforms",
            "buildkit",
            "buildkitd-flags",
            "driver-opts",
        ] {
            report.same(
                &format!("Builder.inspect nodes[0].{field}"),
                &ia["nodes"][0][field],
                &ib["nodes"][0][field],
            );
        }
        for field in ["platforms", "buildkit", "container", "buildkitSatisfies"] {
            report.same(
                &format!("builder {field}"),
                &a["builder"][field],
                &b["builder"][field],
            );
        }
    }
    if brix.step_ok("build") && buildx.step_ok("build") {
        report.same(
            "metadata keys",
            &a["build"]["metadataKeys"],
            &b["build"]["metadataKeys"],
        );
        report.same(
            "containerimage.descriptor mediaType",
            &a["build"]["metadata"]["containerimage.descriptor"]["mediaType"],
            &b["build"]["metadata"]["containerimage.descriptor"]["mediaType"],
        );
        report.same(
            "Buildx.localState keys",
            &Value::from(keys(&a["build"]["localState"])),
            &Value::from(keys(&b["build"]["localState"])),
        );
        let pushed_a = check_pushed(report, brix);
        let pushed_b = check_pushed(report, buildx);
        report.same("the pushed index", &pushed_a, &pushed_b);
    }
    if brix.step_ok("history-inspect") && buildx.step_ok("history-inspect") {
        let (ra, rb) = (&a["history"]["inspect"], &b["history"]["inspect"]);
        report.same("history inspect Name", &ra["Name"], &rb["Name"]);
        // buildx's record lists the pushed index among its attachments.
        let lists_pushed = |run: &ClientRun| {
            let digest = &run.result["build"]["digest"];
            run.result["history"]["inspect"]["Attachments"]
                .as_array()
                .is_some_and(|list| list.iter().any(|a| a["Digest"] == *digest))
        };
        if lists_pushed(brix) != lists_pushed(buildx) {
            report.differences.push(format!(
                ".history.inspect.Attachments: lists the pushed index: brix {}, buildx {}",
                lists_pushed(brix),
                lists_pushed(buildx)
            ));
        }
    }
    if brix.step_ok("history-export") && buildx.step_ok("history-export") {
        let summary = |run: &ClientRun| {
            run.ref_id()
                .map(|id| run.result["history"]["export"]["summaries"][id].clone())
                .unwrap_or(Value::Null)
        };
        let (sa, sb) = (summary(brix), summary(buildx));
        for field in ["name", "status", "defaultPlatform", "error"] {
            report.same(&format!("export summary {field}"), &sa[field], &sb[field]);
        }
    }
    // Every other field, in the parts both runs got to.
    let (na, nb) = (normalized(brix), normalized(buildx));
    for (part, step) in [
        ("/buildx", "version"),
        ("/builder", "inspect"),
        ("/build", "build"),
        ("/history/inspect", "history-inspect"),
        ("/history/export", "history-export"),
    ] {
        if let (true, true, Some(pa), Some(pb)) = (
            brix.step_ok(step),
            buildx.step_ok(step),
            na.pointer(part),
            nb.pointer(part),
        ) {
            diff(&part.replace('/', "."), pa, pb, &mut report.differences);
        }
    }
}

fn timings(run: &ClientRun) -> String {
    let steps: Vec<String> = STEPS
        .iter()
        .filter_map(|step| {
            let ms = run.result["steps"][*step]["ms"].as_u64()?;
            Some(format!("{step} {ms} ms"))
        })
        .collect();
    format!(
        "{} {:.1} s ({})",
        run.tool,
        run.wall.as_secs_f64(),
        steps.join(", ")
    )
}

#[test]
fn the_actions_toolkit_gets_from_brix_what_it_gets_from_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let Some(modules) = std::env::var_os("BRIX_E2E_CI_CLIENT_MODULES").map(PathBuf::from) else {
        panic!(
            "BRIX_E2E_CI_CLIENT_MODULES is not set: run `cargo xtask e2e` (its ci-client step installs the toolkit)"
        )
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).expect("HOME");
    let real_buildx = home.join(".docker/cli-plugins/docker-buildx");
    assert!(
        real_buildx.is_file(),
        "no real buildx at {}",
        real_buildx.display()
    );

    let shared = env.scratch_dir("ci-client-shared");
    let buildkitd_config = shared.join("buildkitd.toml");
    std::fs::write(
        &buildkitd_config,
        "[registry.\"localhost:5000\"]\n  http = true\n",
    )
    .expect("writing buildkitd.toml");
    let builder = unique_name("ci-client");
    let container = format!("buildx_buildkit_{builder}0");

    let brix = run_client(
        &env,
        "brix",
        &env.brix_bin,
        &modules,
        &builder,
        &buildkitd_config,
    );
    let _guard = BuilderGuard {
        env: &env,
        store: brix.root.join("buildx"),
        name: builder.clone(),
    };
    // buildx's run needs the container brix's run boots. When that failed, brix boots it by
    // other means (its own flags), so buildx's run still shows what the later steps give.
    let mut notes = Vec::new();
    if !container_running(&container) {
        let store = brix.root.join("buildx");
        let _ = run(env.brix_in(&store).args([
            "create",
            "--name",
            &builder,
            "--driver-opt",
            "network=host",
            "--buildkitd-config",
            path(&buildkitd_config),
        ]));
        let booted = run(env
            .brix_in(&store)
            .args(["inspect", "--bootstrap", &builder]));
        notes.push(format!(
            "brix's run left no running {container}; booted it with `brix inspect --bootstrap NAME` for buildx's run: {}",
            if booted.success { "ok" } else { "failed" }
        ));
    }
    let buildx = run_client(
        &env,
        "buildx",
        &real_buildx,
        &modules,
        &builder,
        &buildkitd_config,
    );

    let mut report = Report::default();
    check_run(&mut report, &brix, &builder);
    check_run(&mut report, &buildx, &builder);
    compare(&mut report, &brix, &buildx);

    let mut summary = format!("ci_client: {}; {}\n", timings(&brix), timings(&buildx));
    for note in &notes {
        summary.push_str(&format!("ci_client: {note}\n"));
    }
    for difference in &report.differences {
        summary.push_str(&format!("ci_client: differs at {difference}\n"));
    }
    // Past the harness's capture, so the differences show on a passing run too.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    assert!(
        report.problems.is_empty(),
        "the CI client got from brix what it does not get from buildx:\n  {}\n\n{summary}logs: {} and {}",
        report.problems.join("\n  "),
        brix.log.display(),
        buildx.log.display()
    );
}
