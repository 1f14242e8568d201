//! `brix bake` builds (issue 15), side by side with real buildx 0.29 on one builder: a group
//! of three two-platform targets sharing a context (two from a `matrix`), one of them `FROM`
//! another target through a `target:` context and a `dockerfile-inline`, pushed with `--push`, with the metadata file
//! buildx writes; then one target's local output shows the dependency's result in it.

use std::path::Path;

use brix_e2e::{E2eEnv, Run, SharedBuilder, index_platforms, pushed_index, run};

const BAKE_FILE: &str = r#"
variable "REPO" {}
group "default" {
  targets = ["app", "tool"]
}
target "_common" {
  context   = "src"
  platforms = ["linux/amd64", "linux/arm64"]
}
target "base" {
  inherits = ["_common"]
  args     = { MSG = "from-base" }
}
target "app" {
  inherits          = ["_common"]
  contexts          = { base = "target:base" }
  dockerfile-inline = "FROM base\nRUN cat /msg > /copied\n"
  tags              = ["${REPO}-app:1"]
}
target "tool" {
  name     = "tool-${v}"
  matrix   = { v = ["a", "b"] }
  inherits = ["_common"]
  args     = { MSG = "tool-${v}" }
  tags     = ["${REPO}-tool-${v}:1"]
}
"#;

fn bake(b: &SharedBuilder, tool: &str, dir: &Path, repo: &str, args: &[&str]) -> Run {
    let mut c = b.env.tool_in(tool, &b.store);
    run(c
        .current_dir(dir)
        .env("REPO", repo)
        .args(["bake", "--builder", &b.name, "--progress", "plain"])
        .args(args))
}

/// The platforms of an index's manifests, attestation manifests (`unknown/unknown`)
/// included, sorted.
fn platforms(image: &str) -> Vec<String> {
    let mut out = index_platforms(&pushed_index(image).1);
    out.sort();
    out
}

/// Each target's metadata keys.
fn metadata_keys(path: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(path).expect("metadata file");
    let value: serde_json::Value = serde_json::from_str(&text).expect("metadata JSON");
    let mut out: Vec<(String, Vec<String>)> = value
        .as_object()
        .expect("an object")
        .iter()
        .map(|(target, m)| {
            let mut keys: Vec<String> = m
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            (target.clone(), keys)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn bake_pushes_a_group_with_a_linked_target_as_buildx_does() {
    let Some(env) = E2eEnv::get() else { return };
    let b = SharedBuilder::new(&env, "bake");
    let dir = env.scratch_dir("bake-build");
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::write(
        dir.join("src/Dockerfile"),
        format!("FROM {}\nARG MSG\nRUN echo $MSG > /msg\n", env.busybox),
    )
    .expect("Dockerfile");
    std::fs::write(dir.join("docker-bake.hcl"), BAKE_FILE).expect("bake file");

    let mut results = Vec::new();
    for tool in ["buildx", "brix"] {
        let repo = format!(
            "{}/{}",
            env.registry,
            brix_e2e::unique_name(&format!("bake-{tool}"))
        );
        let metadata = dir.join(format!("metadata-{tool}.json"));
        let r = bake(
            &b,
            tool,
            &dir,
            &repo,
            &[
                "--push",
                "--metadata-file",
                metadata.to_str().expect("utf-8"),
            ],
        );
        assert!(r.success, "{tool} bake --push:\n{}", r.stderr);
        for target in ["app", "tool-a", "tool-b"] {
            assert!(
                r.stderr.contains(&format!("[{target} "))
                    || r.stderr.contains(&format!("[{target}]")),
                "{tool}: no step of {target} in the progress:\n{}",
                r.stderr
            );
        }
        results.push((
            tool,
            platforms(&format!("{repo}-app:1")),
            [
                platforms(&format!("{repo}-tool-a:1")),
                platforms(&format!("{repo}-tool-b:1")),
            ],
            metadata_keys(&metadata),
        ));
    }
    let (_, bx_app, bx_tool, bx_meta) = &results[0];
    let (_, app, tool, meta) = &results[1];
    assert_eq!(app, bx_app, "app's index");
    assert_eq!(tool, bx_tool, "tool's index");
    // Every target built is in the metadata file, with buildx's keys: the linked `base`
    // too (buildx keeps its result inside the build; brix's OCI layout for `app` leaves no
    // trace in it: no image keys, and the per-platform provenance of a build without outputs).
    assert_eq!(meta, bx_meta, "each target's metadata keys");

    // The dependency's result is what the dependent was built from.
    for tool in ["buildx", "brix"] {
        let out = dir.join(format!("out-{tool}"));
        let r = bake(
            &b,
            tool,
            &dir,
            "unused",
            &[
                "app",
                "--set",
                &format!("app.output=type=local,dest={}", out.display()),
                "--set",
                "app.platform=linux/arm64",
            ],
        );
        assert!(r.success, "{tool} bake app to a folder:\n{}", r.stderr);
        let copied = std::fs::read_to_string(out.join("copied")).expect("/copied in the output");
        assert_eq!(copied.trim(), "from-base", "{tool}");
    }
}

#[test]
fn bake_spreads_targets_over_the_nodes_of_one_platform() {
    let Some(env) = E2eEnv::get() else { return };
    let b = SharedBuilder::new(&env, "bake-spread");
    // A second amd64 node on the same builder, on the other engine (one node per endpoint,
    // as buildx has it), with the same buildkitd.toml.
    let config = b.store.join(format!("{}.buildkitd.toml", b.name));
    let second = env.engines()[1].host.clone();
    run(env
        .brix_in(&b.store)
        .args([
            "create",
            "--append",
            "--name",
            &b.name,
            "--driver-opt",
            "network=host",
        ])
        .arg("--config")
        .arg(&config)
        .arg(&second))
    .ok();
    run(env
        .brix_in(&b.store)
        .args(["inspect", "--bootstrap", &b.name]))
    .ok();
    let dir = env.scratch_dir("bake-spread");
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}\nARG N\nRUN echo $N > /n && sleep 2\n", env.busybox),
    )
    .expect("Dockerfile");
    std::fs::write(
        dir.join("docker-bake.hcl"),
        format!(
            "group \"default\" {{\n  targets = [\"one\", \"two\"]\n}}\n\
             target \"one\" {{\n  platforms = [\"linux/amd64\"]\n  args = {{ N = \"{}\" }}\n}}\n\
             target \"two\" {{\n  platforms = [\"linux/amd64\"]\n  args = {{ N = \"{}\" }}\n}}\n",
            brix_e2e::unique_name("one"),
            brix_e2e::unique_name("two")
        ),
    )
    .expect("bake file");
    let r = bake(&b, "brix", &dir, "unused", &[]);
    assert!(r.success, "{}", r.stderr);
    let node_of = |target: &str| -> String {
        let prefix = format!("[{target} linux/amd64] running on node ");
        r.stderr
            .lines()
            .find_map(|l| {
                l.split_once(&prefix)
                    .map(|(_, node)| node.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no node shown for {target}:\n{}", r.stderr))
    };
    let (one, two) = (node_of("one"), node_of("two"));
    assert_ne!(one, two, "both targets ran on {one}:\n{}", r.stderr);
    // At the same time: each target's RUN started before the other's finished.
    let position = |needle: &str| {
        r.stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", r.stderr))
    };
    let started = |t: &str| position(&format!("[{t} 2/2] RUN"));
    let finished = |t: &str| r.stderr.rfind(&format!("[{t} 2/2] RUN")).unwrap_or(0);
    assert!(
        started("one") < finished("two") && started("two") < finished("one"),
        "the two RUN steps did not overlap:\n{}",
        r.stderr
    );
}

#[test]
fn a_failed_target_stops_the_others_and_is_reported_as_buildx_reports_it() {
    let Some(env) = E2eEnv::get() else { return };
    let b = SharedBuilder::new(&env, "bake-fail");
    let dir = env.scratch_dir("bake-fail");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nARG MODE\nRUN if [ \"$MODE\" = fail ]; then exit 3; fi; sleep 60\n",
            env.busybox
        ),
    )
    .expect("Dockerfile");
    std::fs::write(
        dir.join("docker-bake.hcl"),
        "group \"default\" {\n  targets = [\"fails\", \"slow\"]\n}\n\
         target \"fails\" {\n  args = { MODE = \"fail\" }\n}\n\
         target \"slow\" {\n  args = { MODE = \"slow\" }\n}\n",
    )
    .expect("bake file");
    for args in [&[][..], &["fails"]] {
        let mut lines = Vec::new();
        for tool in ["buildx", "brix"] {
            let started = std::time::Instant::now();
            let r = bake(&b, tool, &dir, "unused", args);
            assert!(!r.success, "{tool} bake {args:?} succeeded");
            // The slow target's minute-long RUN was canceled, not waited for.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(40),
                "{tool} waited for the other target"
            );
            lines.push(r.error_line());
        }
        assert_eq!(
            lines[1], lines[0],
            "brix's error line (bake {args:?}) differs from buildx's"
        );
    }
}
