//! The two Docker engines brix is tested with, side by side: Debian 12's dockerd 20.10
//! (classic image store, the engine's BuildKit v0.8) and dockerd 28 with containerd 2 and the
//! containerd image store (issue 18). Every docker-driver behaviour runs on both, and the seed
//! flow on the docker-container driver runs on the current engine (the system engine's run is
//! in `builders.rs`). Tests of one store say which.

use std::path::{Path, PathBuf};
use std::process::Command;

use brix_e2e::{E2eEnv, Engine, Run, path, run, unique_name};

/// brix with a builder store of the test's own, talking to `engine`.
fn brix(env: &E2eEnv, store: &Path, engine: &Engine) -> Command {
    let mut c = env.brix_in(store);
    c.env("DOCKER_HOST", &engine.host);
    c
}

fn context(env: &E2eEnv, purpose: &str, marker: &str) -> PathBuf {
    let dir = env.scratch_dir(purpose);
    // The marker keeps one test's cache from satisfying another's.
    let dockerfile = format!(
        "FROM {}\nRUN uname -m > /arch && echo {marker} > /marker\nCMD [\"cat\", \"/arch\"]\n",
        env.busybox
    );
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
    dir
}

/// The platforms of the index pushed under `image`, attestation manifests left out.
fn pushed_platforms(image: &str) -> (String, Vec<String>) {
    let (raw, index) = brix_e2e::pushed_index(image);
    let platforms = brix_e2e::index_platforms(&index)
        .into_iter()
        .filter(|p| p != "unknown/unknown")
        .collect();
    (raw, platforms)
}

/// `build --builder BUILDER --progress plain ARGS… CTX`, the same for brix and buildx.
fn build_args<'a>(builder: &'a str, args: &[&'a str], ctx: &'a Path) -> Vec<&'a str> {
    let mut all = vec!["build", "--builder", builder, "--progress", "plain"];
    all.extend_from_slice(args);
    all.push(path(ctx));
    all
}

fn two_platform_push(
    env: &E2eEnv,
    store: &Path,
    engine: &Engine,
    builder: &str,
    tag: &str,
) -> (Run, String) {
    let ctx = context(env, &format!("{tag}-ctx"), &unique_name(tag));
    let image = env.registry_ref(tag, "1");
    let r = run(brix(env, store, engine).args(build_args(
        builder,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--push",
        ],
        &ctx,
    )));
    (r, image)
}

#[test]
fn docker_driver_builds_and_pushes_two_platforms_on_both_engines() {
    let Some(env) = E2eEnv::get() else { return };
    for engine in env.engines() {
        let store = env.scratch_dir(&format!("engines-store-{}", engine.name));

        // One platform to a local folder.
        let ctx = context(&env, "engines-one", &unique_name("one"));
        let out = env.scratch_dir("engines-one-out");
        let dest = format!("type=local,dest={}", path(&out));
        let r = run(brix(&env, &store, &engine).args(build_args(
            "default",
            &["--platform", "linux/arm64", "-o", &dest],
            &ctx,
        )))
        .ok();
        assert!(
            r.stderr.contains("using docker driver"),
            "{}: {}",
            engine.name,
            r.stderr
        );
        let arch = std::fs::read_to_string(out.join("arch")).unwrap_or_default();
        assert_eq!(arch.trim(), "aarch64", "{}", engine.name);

        // Two platforms pushed as one index: brix's own export and push on the classic
        // store, the engine's on the containerd store (as buildx does there).
        let (r, image) = two_platform_push(&env, &store, &engine, "default", "engines-push");
        let r = r.ok();
        let (raw, platforms) = pushed_platforms(&image);
        assert_eq!(
            platforms,
            vec!["linux/amd64", "linux/arm64"],
            "{}: {raw}\n{}",
            engine.name,
            r.stderr
        );
        let brix_assembled = r.stderr.contains("merging manifest list");
        assert_eq!(
            brix_assembled,
            engine.name == "dockerd-20.10",
            "{}: who assembled the index?\n{}",
            engine.name,
            r.stderr
        );
        assert_eq!(
            engine.arch_in_arm64_container(&image),
            "aarch64",
            "{}",
            engine.name
        );
    }
}

/// The platforms `docker image ls --tree NAME` lists under the image.
fn tree_platforms(engine: &Engine, image: &str) -> Vec<String> {
    let tree = engine.docker(["image", "ls", "--tree", image]).ok();
    let mut platforms: Vec<String> = tree
        .stdout
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("linux/"))
                .map(str::to_owned)
        })
        .collect();
    platforms.sort();
    platforms
}

#[test]
fn load_of_two_platforms_keeps_both_on_the_containerd_store() {
    // Containerd image store only: the classic store holds one platform per image (see
    // `build.rs`, load_puts_the_native_platform_into_the_engine).
    let Some(env) = E2eEnv::get() else { return };
    let engine = env.engines()[1].clone();
    let store = env.scratch_dir("engines-load-store");
    let ctx = context(&env, "engines-load", &unique_name("load"));
    let image = format!("{}:1", unique_name("loaded"));
    let r = run(brix(&env, &store, &engine).args(build_args(
        "default",
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--load",
        ],
        &ctx,
    )))
    .ok();
    assert!(!r.stderr.contains("skipping"), "{}", r.stderr);
    engine.docker(["image", "inspect", &image]).ok();
    let platforms = tree_platforms(&engine, &image);
    assert_eq!(platforms, vec!["linux/amd64", "linux/arm64"], "{image}");
    let native = engine.docker(["run", "--rm", &image, "cat", "/arch"]).ok();
    assert_eq!(native.stdout.trim(), "x86_64");

    // Real buildx on the same engine gives the same platforms.
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        let theirs = format!("{}:1", unique_name("buildx-loaded"));
        run(Command::new("docker")
            .env("DOCKER_HOST", &engine.host)
            .env("BUILDX_CONFIG", env.scratch_dir("engines-buildx-config"))
            .arg("buildx")
            .args(build_args(
                "default",
                &[
                    "--platform",
                    "linux/amd64,linux/arm64",
                    "-t",
                    &theirs,
                    "--load",
                ],
                &ctx,
            )))
        .ok();
        assert_eq!(tree_platforms(&engine, &theirs), platforms);
        let _ = engine.docker(["rmi", "-f", &theirs]);
    }
    let _ = engine.docker(["rmi", "-f", &image]);
}

#[test]
fn seed_flow_on_the_docker_container_driver_of_the_current_engine() {
    let Some(env) = E2eEnv::get() else { return };
    let engine = env.engines()[1].clone();
    let store = env.scratch_dir("engines-seed-store");
    let config = store.join("buildkitd.toml");
    std::fs::write(
        &config,
        "[worker.oci]\n  gc = true\n  gckeepstorage = 20000\n[registry.\"localhost:5000\"]\n  http = true\n",
    )
    .expect("writing buildkitd.toml");
    let name = unique_name("engines-seed");
    run(brix(&env, &store, &engine).args([
        "create",
        "--name",
        &name,
        "--driver-opt",
        "network=host",
        "--config",
        path(&config),
    ]))
    .ok();
    let inspect = run(brix(&env, &store, &engine).args(["inspect", "--bootstrap", &name])).ok();
    assert!(inspect.stdout.contains("running"), "{}", inspect.stdout);
    assert!(inspect.stdout.contains("linux/arm64"), "{}", inspect.stdout);
    let containers = engine.docker(["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(
        containers.contains(&format!("buildx_buildkit_{name}0")),
        "the builder runs on the current engine: {containers}"
    );
    let (r, image) = two_platform_push(&env, &store, &engine, &name, "engines-seed-push");
    let r = r.ok();
    let (raw, platforms) = pushed_platforms(&image);
    assert_eq!(
        platforms,
        vec!["linux/amd64", "linux/arm64"],
        "{raw}\n{}",
        r.stderr
    );
    let _ = run(brix(&env, &store, &engine).args(["rm", "--force", &name]));
}

#[test]
fn ls_and_inspect_default_match_buildx_on_both_engines() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    for engine in env.engines() {
        let store = env.scratch_dir(&format!("engines-ls-store-{}", engine.name));
        let buildx_store = env.scratch_dir(&format!("engines-ls-buildx-{}", engine.name));
        for args in [
            &["ls"][..],
            &["ls", "--format", "json"],
            &["inspect", "default"],
            &["--builder", "default", "inspect"],
            &["--builder", "default", "ls"],
        ] {
            // In debug mode (the docker CLI's DEBUG) `inspect` also shows the driver's
            // features, which on this driver depend on the engine's image store.
            for debug in ["", "1"] {
                let ours = run(brix(&env, &store, &engine).env("DEBUG", debug).args(args)).ok();
                let theirs = run(Command::new("docker")
                    .env("DOCKER_HOST", &engine.host)
                    .env("BUILDX_CONFIG", &buildx_store)
                    .env("DEBUG", debug)
                    .env_remove("BUILDX_BUILDER")
                    .arg("buildx")
                    .args(args))
                .ok();
                assert_eq!(
                    ours.stdout, theirs.stdout,
                    "{}: brix {args:?} differs from docker buildx {args:?} (DEBUG={debug:?})",
                    engine.name
                );
                if debug == "1" && args.contains(&"inspect") {
                    assert!(
                        ours.stdout.contains("Multi-platform build:"),
                        "{}",
                        ours.stdout
                    );
                }
            }
        }
    }
}

/// On the classic image store the engine's BuildKit cannot export OCI or Docker tarballs,
/// caches or attestations: brix refuses each as buildx does, before any step (no
/// `#0 building with` header, nothing solved), with buildx's words — on one line where buildx
/// prints three, as every brix error is (CI tools show the last line) — and, unlike buildx,
/// without leaving an empty `dest` file.
#[test]
fn classic_store_refusals_match_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let engine = env
        .engines()
        .into_iter()
        .find(|e| e.name == "dockerd-20.10")
        .expect("the system engine (classic image store)");
    let store = env.scratch_dir("engines-refusals-store");
    let buildx_store = env.scratch_dir("engines-refusals-buildx");
    let ctx = context(&env, "engines-refusals", "refusals");
    let out = env.scratch_dir("engines-refusals-out");
    let oci = format!("type=oci,dest={}", out.join("i.tar").display());
    let docker_tar = format!("type=docker,dest={}", out.join("d.tar").display());
    let cache = format!("type=local,dest={}", out.join("cache").display());
    for args in [
        vec!["-o", oci.as_str()],
        vec!["-o", docker_tar.as_str()],
        vec!["--cache-to", cache.as_str()],
        vec!["--provenance", "mode=max", "-o", "type=cacheonly"],
    ] {
        let ours = run(brix(&env, &store, &engine).args(build_args("default", &args, &ctx)));
        // buildx creates the `dest` file before it refuses, and leaves it empty; brix
        // writes nothing (on purpose: a failed build leaves no file behind).
        assert_eq!(
            std::fs::read_dir(&out).map_or(0, |d| d.count()),
            0,
            "brix {args:?} was refused but wrote into {}",
            out.display()
        );
        let theirs = run(Command::new("docker")
            .env("DOCKER_HOST", &engine.host)
            .env("BUILDX_CONFIG", &buildx_store)
            .env_remove("BUILDX_BUILDER")
            .arg("buildx")
            .args(build_args("default", &args, &ctx)));
        assert!(
            !theirs.success,
            "buildx {args:?} succeeded:\n{}",
            theirs.stderr
        );
        assert!(!ours.success, "brix {args:?} succeeded:\n{}", ours.stderr);
        let buildx_error = theirs
            .stderr
            .trim_end()
            .lines()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            ours.stderr.trim_end(),
            buildx_error,
            "brix {args:?} (left) vs buildx, its three lines joined (right)"
        );
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).expect("output folder");
    }
}
