//! One builder store with real buildx (issue 12): brix's store is buildx's (`BUILDX_CONFIG`
//! here), and docker-container nodes are buildx's containers (`buildx_buildkit_<node>`). A
//! builder created by either tool is booted, built on, stopped and removed by the other, and
//! `use` by one is the other's current builder.

use std::path::Path;
use std::process::Command;

use brix_e2e::{E2eEnv, Run, path, run, unique_name};

fn buildx(env: &E2eEnv, store: &Path, args: &[&str]) -> Run {
    run(Command::new("docker")
        .env("BUILDX_CONFIG", store)
        .env("DOCKER_HOST", &env.docker_host)
        .env_remove("BUILDX_BUILDER")
        .arg("buildx")
        .args(args))
}

/// brix with no store of its own: it finds buildx's through `BUILDX_CONFIG`.
fn brix(env: &E2eEnv, store: &Path, args: &[&str]) -> Run {
    let mut c = env.brix_in(store);
    c.env_remove("BRIX_CONFIG").env("BUILDX_CONFIG", store);
    run(c.args(args))
}

fn current(ls: &str) -> Vec<String> {
    ls.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.ends_with('*'))
        .map(|n| n.trim_end_matches('*').to_owned())
        .collect()
}

#[test]
fn builders_cross_between_brix_and_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let store = env.scratch_dir("shared-store");
    let ctx = env.scratch_dir("shared-store-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {} > /m\n",
            env.busybox,
            unique_name("shared")
        ),
    )
    .expect("Dockerfile");
    let config = store.join("buildkitd.toml");
    std::fs::write(&config, "[registry.\"localhost:5000\"]\n  http = true\n").expect("toml");

    // Made by buildx, booted and built on by brix (buildx cannot boot it on these machines:
    // it asks for a privileged container), then used by buildx.
    let theirs = unique_name("by-buildx");
    buildx(
        &env,
        &store,
        &[
            "create",
            "--name",
            &theirs,
            "--driver",
            "docker-container",
            "--driver-opt",
            "network=host",
            "--buildkitd-config",
            path(&config),
        ],
    )
    .ok();
    let inspect = brix(&env, &store, &["inspect", "--bootstrap", &theirs]).ok();
    assert!(inspect.stdout.contains("running"), "{}", inspect.stdout);
    let containers = run(Command::new("docker").args(["ps", "--format", "{{.Names}}"]))
        .ok()
        .stdout;
    assert!(
        containers.contains(&format!("buildx_buildkit_{theirs}0")),
        "brix booted buildx's container: {containers}"
    );
    let build = ["build", "--progress", "plain", "-o", "type=cacheonly"];
    brix(
        &env,
        &store,
        &[&build[..], &["--builder", &theirs, path(&ctx)]].concat(),
    )
    .ok();
    let r = buildx(
        &env,
        &store,
        &[&build[..], &["--builder", &theirs, path(&ctx)]].concat(),
    )
    .ok();
    assert!(
        r.stderr.contains("CACHED"),
        "buildx used the same daemon: {}",
        r.stderr
    );
    let inspect = buildx(&env, &store, &["inspect", &theirs]).ok();
    assert!(inspect.stdout.contains("running"), "{}", inspect.stdout);

    // Made and booted by brix, built on, stopped and removed by buildx.
    let ours = unique_name("by-brix");
    brix(
        &env,
        &store,
        &[
            "create",
            "--name",
            &ours,
            "--driver-opt",
            "network=host",
            "--config",
            path(&config),
        ],
    )
    .ok();
    brix(&env, &store, &["inspect", "--bootstrap", &ours]).ok();
    buildx(
        &env,
        &store,
        &[&build[..], &["--builder", &ours, path(&ctx)]].concat(),
    )
    .ok();

    // `use` by one is current for the other, per endpoint and --global.
    buildx(&env, &store, &["use", &ours]).ok();
    assert_eq!(
        current(&brix(&env, &store, &["ls"]).ok().stdout),
        std::slice::from_ref(&ours)
    );
    brix(&env, &store, &["use", "--global", &theirs]).ok();
    assert_eq!(
        current(&buildx(&env, &store, &["ls"]).ok().stdout),
        std::slice::from_ref(&theirs)
    );

    buildx(&env, &store, &["stop", &ours]).ok();
    let ls = brix(&env, &store, &["ls"]).ok().stdout;
    let node_line = ls
        .lines()
        .find(|l| l.contains(&format!("{ours}0")))
        .unwrap_or_default()
        .to_owned();
    assert!(node_line.contains("stopped"), "{ls}");
    buildx(&env, &store, &["rm", &ours]).ok();
    let all = run(Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]))
        .ok()
        .stdout;
    assert!(!all.contains(&format!("buildx_buildkit_{ours}0")), "{all}");
    assert!(!brix(&env, &store, &["ls"]).ok().stdout.contains(&ours));

    brix(&env, &store, &["rm", &theirs]).ok();
    assert!(!buildx(&env, &store, &["ls"]).ok().stdout.contains(&theirs));
}
