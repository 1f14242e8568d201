//! `brix dial-stdio`: stdin and stdout carry a raw connection to a node's BuildKit. Checked
//! with BuildKit's own client: `buildctl debug workers` through a unix socket that socat
//! serves by running `brix dial-stdio` per connection, side by side with `docker buildx
//! dial-stdio` on the same daemon.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, path, run, unique_name};

/// socat listening on `socket`, running `command` (no `:` in it: socat's address syntax) for
/// each connection with `envs`; killed on drop.
struct Relay(Child);

impl Relay {
    fn start(socket: &Path, command: &str, envs: &[(&str, &Path)]) -> Self {
        let child = Command::new("socat")
            .envs(envs.iter().map(|(k, v)| (*k, *v)))
            .arg(format!("UNIX-LISTEN:{},fork", path(socket)))
            .arg(format!("EXEC:{command}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting socat (installed by cargo xtask e2e): {e}"));
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "socat did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn buildctl() -> PathBuf {
    PathBuf::from(std::env::var("BRIX_E2E_BUILDCTL").expect("BRIX_E2E_BUILDCTL"))
}

/// `buildctl debug workers` through `socket`: the worker table.
fn workers_through(socket: &Path) -> String {
    run(Command::new(buildctl())
        .arg("--addr")
        .arg(format!("unix://{}", path(socket)))
        .args(["debug", "workers"]))
    .ok()
    .stdout
}

#[test]
fn buildctl_reaches_the_builder_through_dial_stdio_as_through_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("dial-stdio-store");
    let name = unique_name("dial");
    run(env
        .brix_in(&store)
        .args(["create", "--name", &name, "--driver-opt", "network=host"]))
    .ok();
    let dir = env.scratch_dir("dial-stdio");

    // The node is booted by dial-stdio itself.
    let ours = dir.join("brix.sock");
    let docker_host = PathBuf::from(&env.docker_host);
    let brix_envs = [
        ("BRIX_CONFIG", store.as_path()),
        ("DOCKER_HOST", docker_host.as_path()),
    ];
    let command = format!("{} dial-stdio --builder {name}", path(&env.brix_bin));
    let relay = Relay::start(&ours, &command, &brix_envs);
    let table = workers_through(&ours);
    assert!(table.contains("linux/amd64"), "{table}");
    assert!(table.contains("linux/arm64"), "{table}");
    // A second connection works as well (one dial-stdio per connection).
    assert_eq!(workers_through(&ours), table);

    // The global --builder and --platform pick the node too.
    let by_platform = dir.join("platform.sock");
    let command = format!(
        "{} --builder {name} dial-stdio --platform linux/arm64",
        path(&env.brix_bin)
    );
    let _platform_relay = Relay::start(&by_platform, &command, &brix_envs);
    assert_eq!(workers_through(&by_platform), table);

    // Real buildx on the same daemon (a remote builder on the same container).
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        let buildx_config = env.scratch_dir("dial-stdio-buildx");
        let bx_name = unique_name("dial-bx");
        run(Command::new("docker")
            .env("BUILDX_CONFIG", &buildx_config)
            .env("DOCKER_HOST", &env.docker_host)
            .args(["buildx", "create", "--name", &bx_name, "--driver", "remote"])
            .arg(format!("docker-container://buildx_buildkit_{name}0")))
        .ok();
        let theirs = dir.join("buildx.sock");
        let command = format!("docker buildx --builder {bx_name} dial-stdio");
        let _buildx_relay = Relay::start(
            &theirs,
            &command,
            &[
                ("BUILDX_CONFIG", buildx_config.as_path()),
                ("DOCKER_HOST", docker_host.as_path()),
            ],
        );
        assert_eq!(workers_through(&theirs), table, "brix and buildx differ");
    }
    drop(relay);
    let _ = run(env.brix_in(&store).args(["rm", "--force", &name]));
}

#[test]
fn a_platform_no_node_builds_is_refused() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("dial-stdio-bad");
    let r = run(env
        .brix_in(&store)
        .args([
            "dial-stdio",
            "--builder",
            "default",
            "--platform",
            "linux/mips64",
        ])
        .stdin(Stdio::null()));
    assert!(!r.success);
    assert!(r.stderr.contains("linux/mips64"), "{}", r.stderr);
    assert!(
        r.stderr.contains("brix binfmt --install mips64"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
}
