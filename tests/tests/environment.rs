//! The environment `cargo xtask e2e` sets up works as the later tests assume: the registry
//! takes pushes, QEMU runs arm64 containers, and the BuildKit image boots without
//! `--privileged` and offers linux/arm64.

use brix_e2e::{
    BUILDKIT_CAPABILITY_FLAGS, ContainerGuard, E2eEnv, docker, index_platforms, skopeo, test_label,
    unique_name, wait_for,
};
use std::time::Duration;

#[test]
fn registry_push_reads_back_with_skopeo() {
    let Some(env) = E2eEnv::get() else { return };
    let target = env.registry_ref("push", "copy");
    skopeo([
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", env.busybox),
        &format!("docker://{target}"),
    ])
    .ok();

    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ])
    .ok()
    .stdout;
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|err| {
        panic!("skopeo inspect --raw {target} printed invalid JSON ({err}):\n{raw}")
    });
    let platforms = index_platforms(&index);
    for wanted in ["linux/amd64", "linux/arm64"] {
        assert!(
            platforms.iter().any(|p| p == wanted),
            "{target} lists {platforms:?}, not {wanted}:\n{raw}"
        );
    }

    // Each platform's manifest is really there, with a config of the right architecture.
    for manifest in index["manifests"].as_array().into_iter().flatten() {
        let digest = manifest["digest"].as_str().unwrap_or_default();
        let arch = manifest["platform"]["architecture"]
            .as_str()
            .unwrap_or_default();
        let repo = target
            .rsplit_once(':')
            .map_or(target.as_str(), |(repo, _)| repo);
        let config = skopeo([
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{repo}@{digest}"),
        ])
        .ok()
        .stdout;
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_else(|err| {
            panic!("config of {repo}@{digest} is not JSON ({err}):\n{config}")
        });
        assert_eq!(config["architecture"], arch, "config of {repo}@{digest}");
    }
}

#[test]
fn arm64_busybox_runs_under_qemu() {
    let Some(env) = E2eEnv::get() else { return };
    docker(["pull", "--quiet", "--platform", "linux/arm64", &env.busybox]).ok();
    let name = unique_name("uname");
    let _guard = ContainerGuard { name: name.clone() };
    let run = docker([
        "run",
        "--rm",
        "--name",
        &name,
        "--label",
        &test_label(),
        "--platform",
        "linux/arm64",
        &env.busybox,
        "uname",
        "-m",
    ])
    .ok();
    assert_eq!(run.stdout.trim(), "aarch64", "stderr: {}", run.stderr);
}

#[test]
fn buildkit_image_boots_with_the_capability_set_and_offers_arm64() {
    let Some(env) = E2eEnv::get() else { return };

    // This VM refuses privileged containers; where it does, it must be for the reason
    // environment.md records. Where privileged works, there is nothing to check.
    let privileged = docker([
        "run",
        "--rm",
        "--label",
        &test_label(),
        "--privileged",
        "--entrypoint",
        "buildctl",
        &env.buildkit_image,
        "--version",
    ]);
    if !privileged.success {
        assert!(
            privileged.stderr.contains("unable to apply caps"),
            "privileged run failed for another reason than capabilities:\n{}",
            privileged.stderr
        );
    }

    let name = unique_name("buildkitd");
    let _guard = ContainerGuard { name: name.clone() };
    let mut args = vec!["run", "-d", "--name", &name];
    let label = test_label();
    args.extend(["--label", &label]);
    args.extend(BUILDKIT_CAPABILITY_FLAGS);
    args.push(&env.buildkit_image);
    docker(&args).ok();

    let workers = wait_for(
        "buildkitd in the container",
        Duration::from_secs(60),
        || {
            let run = docker(["exec", &name, "buildctl", "debug", "workers"]);
            if run.success {
                Ok(run.stdout)
            } else {
                Err(run.stderr)
            }
        },
    );
    assert!(
        workers.contains("linux/amd64") && workers.contains("linux/arm64"),
        "buildctl debug workers lists no linux/amd64 + linux/arm64:\n{workers}\nlogs:\n{}",
        docker(["logs", &name]).stderr
    );

    let version = docker(["exec", &name, "buildkitd", "--version"])
        .ok()
        .stdout;
    assert!(
        version.contains(&env.buildkit_version),
        "buildkitd --version says {version:?}, the image is labelled {}",
        env.buildkit_version
    );
}
