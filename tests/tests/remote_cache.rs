//! Remote build cache (issue 13), against a real registry and BuildKit, side by side with real
//! buildx: a two-platform build whose `RUN` steps write random values exports its cache; after
//! `buildctl prune --all` the same build importing it gets the same values (the steps were not
//! re-run) for every platform — on one node, and on a two-node builder with one registry ref
//! and one local folder, where buildx keeps only one platform's records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brix_e2e::{E2eEnv, Run, docker, path, remove_node_container, run, unique_name};

const PLATFORMS: &str = "linux/amd64,linux/arm64";
const PLATFORM_DIRS: [&str; 2] = ["linux_amd64", "linux_arm64"];

/// A builder in its own store, removed (containers and volumes) when dropped.
struct Builder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
    nodes: usize,
}

impl Builder {
    /// One node (amd64, arm64 under QEMU); with `arm64_node`, a first node whose worker
    /// offers linux/amd64 only and a second node pinned to linux/arm64, so that both tools
    /// build each platform on its own node (with QEMU on the first node, buildx would build
    /// both there, in one solve).
    fn create(purpose: &str, arm64_node: bool) -> Option<Self> {
        let env = E2eEnv::get()?;
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let name = unique_name(purpose);
        let worker = if arm64_node {
            "[worker.oci]\n  platforms = [\"linux/amd64\"]\n"
        } else {
            ""
        };
        env.create_builder(&store, &name, worker);
        let b = Builder {
            env,
            store,
            name,
            nodes: 1,
        };
        let mut b = b;
        if arm64_node {
            let config = b.store.join(format!("{}-arm64.buildkitd.toml", b.name));
            std::fs::write(
                &config,
                format!("[registry.\"{}\"]\n  http = true\n", b.env.registry),
            )
            .expect("buildkitd.toml");
            // A node's endpoint must differ from the others' (as in buildx): the second one
            // reaches the same engine through a symlink to its socket.
            let socket = b
                .env
                .docker_host
                .strip_prefix("unix://")
                .expect("the e2e engine listens on a unix socket")
                .to_owned();
            let link = b.env.scratch_dir("rcache-endpoint").join("docker.sock");
            std::os::unix::fs::symlink(&socket, &link).expect("symlinking the docker socket");
            let endpoint = format!("unix://{}", path(&link));
            b.brix(&[
                "create",
                "--append",
                "--name",
                &b.name,
                "--platform",
                "linux/arm64",
                "--driver-opt",
                "network=host",
                "--config",
                path(&config),
                &endpoint,
            ])
            .ok();
            b.nodes = 2;
        }
        b.brix(&["inspect", "--bootstrap", &b.name]).ok();
        Some(b)
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.env.brix_in(&self.store).args(args))
    }

    /// Real buildx on the same store (it uses the nodes brix booted).
    fn buildx(&self, args: &[&str]) -> Run {
        run(self.env.buildx_in(&self.store).args(args))
    }

    /// The nodes whose daemon holds build records (after a prune: the nodes a build used).
    fn nodes_with_records(&self) -> Vec<usize> {
        (0..self.nodes)
            .filter(|i| {
                let du = docker([
                    "exec",
                    &format!("buildx_buildkit_{}{i}", self.name),
                    "buildctl",
                    "du",
                ])
                .ok()
                .stdout;
                !du.lines()
                    .any(|l| l.starts_with("Total:") && l.ends_with("\t0B"))
            })
            .collect()
    }

    /// Empties every node's build cache.
    fn prune(&self) {
        for i in 0..self.nodes {
            docker([
                "exec",
                &format!("buildx_buildkit_{}{i}", self.name),
                "buildctl",
                "prune",
                "--all",
            ])
            .ok();
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = self.brix(&["rm", "--force", &self.name]);
        for i in 0..self.nodes {
            remove_node_container(&format!("buildx_buildkit_{}{i}", self.name));
        }
    }
}

/// A two-stage context: `base` writes a random `/first`; the final stage copies it and
/// writes a random `/second`.
fn context(env: &E2eEnv, purpose: &str) -> PathBuf {
    let ctx = env.scratch_dir(purpose);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {bb} AS base\n\
             RUN cat /proc/sys/kernel/random/uuid > /first && echo {salt} >> /first\n\
             FROM {bb}\n\
             COPY --from=base /first /first\n\
             RUN cat /proc/sys/kernel/random/uuid > /second && uname -m > /arch\n",
            bb = env.busybox,
            salt = unique_name("salt"),
        ),
    )
    .expect("Dockerfile");
    ctx
}

/// `file` of each platform folder of a two-platform local output.
fn values(out: &Path, file: &str) -> BTreeMap<&'static str, String> {
    PLATFORM_DIRS
        .iter()
        .map(|p| {
            let f = out.join(p).join(file);
            let v = std::fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
            (*p, v)
        })
        .collect()
}

/// The platforms whose `file` is the same in both outputs.
fn restored(before: &Path, after: &Path, file: &str) -> Vec<&'static str> {
    let (a, b) = (values(before, file), values(after, file));
    PLATFORM_DIRS
        .iter()
        .copied()
        .filter(|p| a[p] == b[p])
        .collect()
}

/// Builds both platforms of `ctx` into a fresh local folder with the extra flags.
fn build(b: &Builder, tool: &str, ctx: &Path, extra: &[&str]) -> (PathBuf, Run) {
    let out = b.env.scratch_dir(&format!("{tool}-out"));
    let dest = format!("type=local,dest={}", out.display());
    let mut args = vec![
        "build",
        "--builder",
        &b.name,
        "--progress",
        "plain",
        "--platform",
        PLATFORMS,
        "-o",
        &dest,
    ];
    args.extend_from_slice(extra);
    args.push(path(ctx));
    let r = if tool == "buildx" {
        b.buildx(&args)
    } else {
        b.brix(&args)
    };
    (out, r.ok())
}

#[test]
fn registry_local_and_inline_caches_restore_both_platforms_after_a_prune() {
    let Some(b) = Builder::create("rcache", false) else {
        return;
    };
    let cache_ref = b.env.registry_ref("rcache-reg", "cache");
    let local = b.env.scratch_dir("rcache-local");
    let image = b.env.registry_ref("rcache-inline", "v1");
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "registry",
            vec![
                "--cache-to".into(),
                format!("type=registry,ref={cache_ref},mode=max"),
            ],
            vec!["--cache-from".into(), cache_ref.clone()],
        ),
        (
            "local",
            vec![
                "--cache-to".into(),
                format!("type=local,dest={},mode=max", local.display()),
            ],
            vec![
                "--cache-from".into(),
                format!("type=local,src={}", local.display()),
            ],
        ),
        (
            "inline",
            vec![
                "--cache-to".into(),
                "type=inline".into(),
                "-o".into(),
                format!("type=image,name={image},push=true"),
            ],
            vec!["--cache-from".into(), image.clone()],
        ),
    ];
    for (kind, export, import) in cases {
        let ctx = context(&b.env, &format!("rcache-{kind}-ctx"));
        let export: Vec<&str> = export.iter().map(String::as_str).collect();
        let import: Vec<&str> = import.iter().map(String::as_str).collect();
        let (first, r) = build(&b, "brix", &ctx, &export);
        if kind == "registry" {
            assert!(
                r.stderr.contains("exporting cache to registry"),
                "{kind}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("merging the cache of 2 platforms"),
                "{kind}: {}",
                r.stderr
            );
        }
        b.prune();
        let (second, r) = build(&b, "brix", &ctx, &import);
        assert!(
            r.stderr.contains("importing cache manifest from"),
            "{kind}: {}",
            r.stderr
        );
        assert_eq!(
            restored(&first, &second, "second"),
            PLATFORM_DIRS,
            "{kind}: every platform's last step comes from the cache\n{}",
            r.stderr
        );
    }
    // The local folder is an OCI layout with the cache under `latest`.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(local.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "latest",
        "{index}"
    );
    assert!(local.join("oci-layout").is_file());

    // A cache registry that is down fails the build with one line naming it, unless the
    // export may fail (`ignore-error=true`): then the step shows the error and the build
    // succeeds, as with buildx.
    let ctx = context(&b.env, "rcache-down-ctx");
    let down = "type=registry,ref=127.0.0.1:1/cache:c";
    let out = b.env.scratch_dir("rcache-down-out");
    let dest = format!("type=local,dest={}", out.display());
    let r = run(b
        .env
        .brix_in(&b.store)
        .args([
            "build",
            "--builder",
            &b.name,
            "--progress",
            "plain",
            "--cache-to",
            down,
            "-o",
            &dest,
        ])
        .arg(&ctx));
    assert!(!r.success, "{}", r.stderr);
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ERROR: failed to build: failed to solve: ")
            && last.contains("127.0.0.1:1"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.starts_with("ERROR: "))
            .count(),
        1,
        "{}",
        r.stderr
    );
    let ignored = format!("{down},ignore-error=true");
    let r = run(b
        .env
        .brix_in(&b.store)
        .args([
            "build",
            "--builder",
            &b.name,
            "--progress",
            "plain",
            "--cache-to",
            &ignored,
            "-o",
            &dest,
        ])
        .arg(&ctx));
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stderr.contains("127.0.0.1:1"),
        "the step shows the error: {}",
        r.stderr
    );
}

#[test]
fn mode_max_keeps_the_first_stage_and_mode_min_only_the_last() {
    let Some(b) = Builder::create("rcache-mode", false) else {
        return;
    };
    for mode in ["max", "min"] {
        let ctx = context(&b.env, &format!("rcache-{mode}-ctx"));
        let cache = b.env.registry_ref(&format!("rcache-{mode}"), "cache");
        let to = format!("type=registry,ref={cache},mode={mode}");
        // The first stage alone, before and after, shows whether its step was cached.
        let (base_before, _) = build(&b, "brix", &ctx, &["--target", "base"]);
        let (full, _) = build(&b, "brix", &ctx, &["--cache-to", &to]);
        let _ = base_before;
        b.prune();
        let (base_after, _) = build(
            &b,
            "brix",
            &ctx,
            &["--cache-from", &cache, "--target", "base"],
        );
        let kept = restored(&full, &base_after, "first");
        match mode {
            "max" => assert_eq!(kept, PLATFORM_DIRS, "mode=max keeps the base stage"),
            _ => assert!(
                kept.is_empty(),
                "mode=min keeps only the final stage: {kept:?}"
            ),
        }
        b.prune();
        let (full_after, _) = build(&b, "brix", &ctx, &["--cache-from", &cache]);
        assert_eq!(
            restored(&full, &full_after, "second"),
            PLATFORM_DIRS,
            "mode={mode} keeps the final stage"
        );
    }
}

/// On a two-node builder (the second node pinned to linux/arm64) brix builds each platform
/// on its own node, natively, and still exports ONE registry ref and ONE local folder holding
/// both platforms' records. Real buildx on the same builder is run too, and what it does is
/// asserted: it picks the first node that lists a platform, and with QEMU every node lists
/// linux/arm64, so it builds both platforms on the first node in one solve (never using the
/// arm64 node), which is how its one cache keeps both here; where the first node cannot run
/// arm64 (separate machines) each node exports its own platform's cache to the same ref and
/// the last one wins (buildx #1044, buildkit #2758).
#[test]
fn one_ref_and_one_folder_hold_both_nodes_platforms() {
    let Some(b) = Builder::create("rcache-2n", true) else {
        return;
    };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    for tool in ["brix", "buildx"] {
        let ctx = context(&b.env, &format!("rcache-2n-{tool}-ctx"));
        let cache_ref = b.env.registry_ref(&format!("rcache-2n-{tool}"), "cache");
        let local = b.env.scratch_dir(&format!("rcache-2n-{tool}-local"));
        let to_reg = format!("type=registry,ref={cache_ref},mode=max");
        let to_local = format!("type=local,dest={},mode=max", local.display());
        let from_local = format!("type=local,src={}", local.display());

        for (kind, to, from) in [
            ("registry", to_reg.as_str(), cache_ref.as_str()),
            ("local", to_local.as_str(), from_local.as_str()),
        ] {
            b.prune();
            let (first, _) = build(&b, tool, &ctx, &["--cache-to", to]);
            let used = b.nodes_with_records();
            b.prune();
            let (second, _) = build(&b, tool, &ctx, &["--cache-from", from]);
            let kept = restored(&first, &second, "second");
            eprintln!("{tool}: built on nodes {used:?}; its {kind} cache restored {kept:?}");
            if tool == "brix" {
                assert_eq!(used, [0, 1], "brix builds each platform on its own node");
            } else {
                assert_eq!(
                    used,
                    [0],
                    "buildx builds both platforms on the first node that lists them"
                );
            }
            assert_eq!(
                kept, PLATFORM_DIRS,
                "{tool}: the {kind} cache holds both platforms"
            );
        }
    }

    // What buildx's nodes do when each builds its own platform: each exports that platform's
    // cache to the same ref, and the ref keeps the last one. Shown with one buildx run per
    // platform (the export each node makes), then a two-platform import.
    let ctx = context(&b.env, "rcache-2n-split-ctx");
    let cache_ref = b.env.registry_ref("rcache-2n-split", "cache");
    let to = format!("type=registry,ref={cache_ref},mode=max");
    b.prune();
    let mut exported = BTreeMap::new();
    for (platform, dir) in [
        ("linux/amd64", "linux_amd64"),
        ("linux/arm64", "linux_arm64"),
    ] {
        let out = b.env.scratch_dir("rcache-2n-split-out");
        let dest = format!("type=local,dest={}", out.display());
        b.buildx(&[
            "build",
            "--builder",
            &b.name,
            "--platform",
            platform,
            "--cache-to",
            &to,
            "-o",
            &dest,
            path(&ctx),
        ])
        .ok();
        let value = std::fs::read_to_string(out.join("second")).expect("second");
        exported.insert(dir, value);
    }
    b.prune();
    let (second, _) = build(&b, "buildx", &ctx, &["--cache-from", &cache_ref]);
    let imported = values(&second, "second");
    let kept: Vec<&str> = PLATFORM_DIRS
        .iter()
        .copied()
        .filter(|p| imported[p] == exported[p])
        .collect();
    eprintln!("buildx: one export per platform to one ref restored {kept:?}");
    assert_eq!(
        kept,
        ["linux_arm64"],
        "the ref keeps the last platform's export"
    );
}

#[test]
fn local_caches_cross_between_brix_and_buildx() {
    let Some(b) = Builder::create("rcache-x", false) else {
        return;
    };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    for (writer, reader) in [("brix", "buildx"), ("buildx", "brix")] {
        let ctx = context(&b.env, &format!("rcache-x-{writer}-ctx"));
        let local = b.env.scratch_dir(&format!("rcache-x-{writer}"));
        let to = format!("type=local,dest={},mode=max", local.display());
        let from = format!("type=local,src={}", local.display());
        let (first, _) = build(&b, writer, &ctx, &["--cache-to", &to]);
        b.prune();
        let (second, r) = build(&b, reader, &ctx, &["--cache-from", &from]);
        assert_eq!(
            restored(&first, &second, "second"),
            PLATFORM_DIRS,
            "{reader} reads the local cache {writer} wrote\n{}",
            r.stderr
        );
        b.prune();
    }
}

#[test]
fn bad_cache_entries_are_refused_before_any_solve_as_buildx_refuses_them() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("rcache-bad-store");
    let ctx = env.scratch_dir("rcache-bad-ctx");
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\n", env.busybox)).expect("Dockerfile");
    let cases = [
        (
            "--cache-to",
            "type=registry",
            "ERROR: failed to build: registry cache exporter requires ref",
        ),
        (
            "--cache-from",
            "type=registry",
            "registry cache importer requires ref",
        ),
        (
            "--cache-to",
            "type=local",
            "local cache exporter requires dest",
        ),
        (
            "--cache-from",
            "type=local",
            "local cache importer requires src",
        ),
        // buildx 0.29's own spelling.
        (
            "--cache-to",
            "ref=x",
            "ERROR: type required form> \"ref=x\"",
        ),
        (
            "--cache-to",
            "type=local,dest=\"x",
            "ERROR: parse error on line 1, column 17: bare \" in non-quoted-field",
        ),
        (
            "--cache-to",
            "type=nope,ref=x",
            "ERROR: failed to build: failed to solve: unknown cache exporter: \"nope\"",
        ),
        (
            "--cache-to",
            "type=registry,ref=localhost:5000/x,image-manifest=true,oci-mediatypes=false",
            "OCI mediatypes are required for image-manifest cache format",
        ),
    ];
    for (flag, value, message) in cases {
        // No builder exists in this store: an entry that passed the checks would stop at
        // the builder instead, so the message shows the check ran first.
        let r = run(env
            .brix_in(&store)
            .args(["build", "--builder", "none-such", flag, value])
            .arg(&ctx));
        assert!(!r.success, "{flag} {value} was accepted");
        assert!(
            r.stderr.contains(message),
            "{flag} {value}: expected {message:?} in\n{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
}

/// The docker driver: on the classic image store the engine's BuildKit cannot export a cache,
/// and brix refuses with buildx's words (on one line); `inline` is always possible. On the
/// containerd image store (dockerd 28) the engine exports and imports a registry cache.
#[test]
fn docker_driver_refuses_what_the_engine_cannot_export_as_buildx_does() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let [classic, current] = env.engines();
    let store = env.scratch_dir("rcache-docker-store");
    let ctx = env.scratch_dir("rcache-docker-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN cat /proc/sys/kernel/random/uuid > /second && echo {}\n",
            env.busybox,
            unique_name("docker")
        ),
    )
    .expect("Dockerfile");
    let local = env.scratch_dir("rcache-docker-local");
    let to_local = format!("type=local,dest={}", local.display());
    let on = |engine: &brix_e2e::Engine, tool: &str, args: &[&str]| -> Run {
        let mut c = env.tool_in(tool, &store);
        c.env("DOCKER_HOST", &engine.host)
            .args(["build", "--builder", "default", "--progress", "plain"])
            .args(args)
            .arg(&ctx);
        run(&mut c)
    };
    let ours = on(&classic, "brix", &["--cache-to", &to_local]);
    let theirs = on(&classic, "buildx", &["--cache-to", &to_local]);
    assert!(
        !ours.success && !theirs.success,
        "{}\n{}",
        ours.stderr,
        theirs.stderr
    );
    let their_error = theirs.stderr[theirs.stderr.find("ERROR:").expect("buildx's ERROR")..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        ours.stderr.lines().last().unwrap_or_default(),
        their_error,
        "buildx's words on one line"
    );
    on(&classic, "brix", &["--cache-to", "type=inline"]).ok();

    // The engine on the containerd store exports and imports a registry cache itself.
    let cache = env.registry_ref("rcache-docker", "cache");
    let out1 = env.scratch_dir("rcache-docker-out1");
    let out2 = env.scratch_dir("rcache-docker-out2");
    let to = format!("type=registry,ref={cache},mode=max");
    let dest = |d: &Path| format!("type=local,dest={}", d.display());
    on(&current, "brix", &["--cache-to", &to, "-o", &dest(&out1)]).ok();
    current
        .docker(["builder", "prune", "--all", "--force"])
        .ok();
    let r = on(
        &current,
        "brix",
        &["--cache-from", &cache, "-o", &dest(&out2)],
    )
    .ok();
    let read = |d: &Path| std::fs::read_to_string(d.join("second")).expect("second");
    assert_eq!(
        read(&out1),
        read(&out2),
        "restored from the registry cache\n{}",
        r.stderr
    );
}

/// `s3` against a real S3-compatible server (gofakes3, started by `cargo xtask e2e`), with the
/// credentials taken from the AWS environment as buildx takes them: both platforms restored
/// after a prune (each platform's solve also writes and reads `NAME-<platform>`).
#[test]
fn s3_cache_restores_both_platforms_with_credentials_from_the_environment() {
    let Some(b) = Builder::create("rcache-s3", false) else {
        return;
    };
    let endpoint = std::env::var("BRIX_E2E_S3")
        .expect("BRIX_E2E_S3: the S3 server of `cargo xtask e2e` (its `s3` set-up step)");
    let ctx = context(&b.env, "rcache-s3-ctx");
    let s3 = format!(
        "type=s3,endpoint_url={endpoint},bucket=brix-e2e,region=us-east-1,use_path_style=true,name={}",
        unique_name("s3")
    );
    let to = format!("{s3},mode=max");
    let with_aws = |args: &[&str]| -> (PathBuf, Run) {
        let out = b.env.scratch_dir("rcache-s3-out");
        let dest = format!("type=local,dest={}", out.display());
        let r = run(b
            .env
            .brix_in(&b.store)
            .env("AWS_ACCESS_KEY_ID", "brix-e2e")
            .env("AWS_SECRET_ACCESS_KEY", "brix-e2e-secret")
            .args(["build", "--builder", &b.name, "--progress", "plain"])
            .args(["--platform", PLATFORMS, "-o", &dest])
            .args(args)
            .arg(&ctx))
        .ok();
        (out, r)
    };
    let (first, r) = with_aws(&["--cache-to", &to]);
    assert!(
        r.stderr.contains("exporting cache to Amazon S3"),
        "{}",
        r.stderr
    );
    b.prune();
    let (second, r) = with_aws(&["--cache-from", &s3]);
    assert_eq!(
        restored(&first, &second, "second"),
        PLATFORM_DIRS,
        "both platforms from the s3 cache\n{}",
        r.stderr
    );
}
