//! The environment `cargo xtask e2e` sets up works as the later tests assume: the registry
//! takes pushes, QEMU runs arm64 containers, the BuildKit image boots without
//! `--privileged` and offers linux/arm64, and the current engine (dockerd 28, containerd
//! image store) runs beside the system one without taking its `docker0` away.

use brix_e2e::{
    BUILDKIT_CAPABILITY_FLAGS, ContainerGuard, E2eEnv, Engine, docker, index_platforms, run,
    skopeo, test_label, unique_name, wait_for,
};
use std::net::Ipv4Addr;
use std::process::Command;
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

/// `docker info` of `engine` as JSON.
#[track_caller]
fn info(engine: &Engine) -> serde_json::Value {
    let text = engine
        .docker(["info", "--format", "{{json .}}"])
        .ok()
        .stdout;
    serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "docker info of {} is not JSON ({err}):\n{text}",
            engine.name
        )
    })
}

#[test]
fn docker28_is_current_with_the_containerd_image_store() {
    let Some(env) = E2eEnv::get() else { return };
    let [system, current] = env.engines();
    let info28 = info(&current);
    let version = info28["ServerVersion"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("28."),
        "{} at {} reports server version {version:?}",
        current.name,
        current.host
    );
    let snapshotter = serde_json::json!(["driver-type", "io.containerd.snapshotter.v1"]);
    assert!(
        info28["DriverStatus"]
            .as_array()
            .is_some_and(|status| status.contains(&snapshotter)),
        "{} does not use the containerd snapshotter: Driver {}, DriverStatus {}",
        current.name,
        info28["Driver"],
        info28["DriverStatus"]
    );
    assert_eq!(
        info28["RegistryConfig"]["IndexConfigs"][&env.registry]["Secure"], false,
        "{} does not list {} as insecure: {}",
        current.name, env.registry, info28["RegistryConfig"]
    );
    // bookworm's runc, the same the system engine runs (unstable's needs glibc 2.38).
    let system_info = info(&system);
    assert_eq!(
        info28["RuncCommit"]["ID"], system_info["RuncCommit"]["ID"],
        "the two engines run different runc builds"
    );
    // The base image comes from the local registry, over plain HTTP.
    let uname = current
        .docker([
            "run",
            "--rm",
            "--name",
            &unique_name("uname28"),
            "--label",
            &test_label(),
            "--pull",
            "always",
            &env.busybox,
            "uname",
            "-m",
        ])
        .ok();
    assert_eq!(uname.stdout.trim(), "x86_64", "stderr: {}", uname.stderr);
}

/// `addr` (`A.B.C.D/len` or `A.B.C.D`) lies in `subnet` (`A.B.C.D/len`).
fn in_subnet(addr: &str, subnet: &str) -> bool {
    let parse = |text: &str| -> Option<(u32, u32)> {
        let (ip, len) = text.split_once('/').unwrap_or((text, "32"));
        Some((u32::from(ip.parse::<Ipv4Addr>().ok()?), len.parse().ok()?))
    };
    match (parse(addr), parse(subnet)) {
        (Some((ip, _)), Some((net, len))) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            ip & mask == net & mask
        }
        _ => false,
    }
}

#[test]
fn subnets_contain_their_addresses() {
    assert!(in_subnet("172.17.0.2/16", "172.17.0.0/16"));
    assert!(in_subnet("10.228.0.7", "10.228.0.0/24"));
    assert!(!in_subnet("10.228.1.7", "10.228.0.0/24"));
    assert!(!in_subnet("garbage", "10.228.0.0/24"));
}

/// Each engine runs a container on its own default bridge, and the system engine's
/// `docker0` is still there (a second dockerd once took it away, which broke every
/// container on the system engine's default bridge).
#[test]
fn each_engine_runs_a_container_on_its_own_bridge_and_docker0_stays() {
    let Some(env) = E2eEnv::get() else { return };
    for engine in env.engines() {
        let wanted_bridge = if engine.host == env.docker_host {
            "docker0"
        } else {
            "brix28"
        };
        let network = engine
            .docker([
                "network",
                "inspect",
                "bridge",
                "--format",
                "{{index .Options \"com.docker.network.bridge.name\"}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
            ])
            .ok()
            .stdout;
        let (bridge, subnet) = network
            .trim()
            .split_once(' ')
            .unwrap_or((network.trim(), ""));
        assert_eq!(bridge, wanted_bridge, "default bridge of {}", engine.name);
        let link = run(Command::new("ip").args(["link", "show", bridge]));
        assert!(
            link.success,
            "{} has no {bridge}: {}",
            engine.name, link.stderr
        );

        let address = engine
            .docker([
                "run",
                "--rm",
                "--name",
                &unique_name("bridge"),
                "--label",
                &test_label(),
                "--entrypoint",
                "sh",
                &env.buildkit_image,
                "-c",
                "ip -o -4 addr show eth0",
            ])
            .ok()
            .stdout;
        let inet = address
            .split_whitespace()
            .skip_while(|word| *word != "inet")
            .nth(1)
            .unwrap_or_default();
        assert!(
            in_subnet(inet, subnet),
            "a container on {} got {inet:?}, not an address in {bridge}'s {subnet}:\n{address}",
            engine.name
        );
    }
    let docker0 = run(Command::new("ip").args(["link", "show", "docker0"]));
    assert!(
        docker0.success,
        "docker0 is gone after containers ran on both engines: {}",
        docker0.stderr
    );
}
