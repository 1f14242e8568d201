//! brix as a Docker CLI plugin, through the real docker CLI: `docker brix …` from a private
//! `cli-plugins` folder, the docker CLI's global flags reaching brix, and brix installed as
//! `docker-buildx` answering as buildx 0.29.1 to the parser docker/actions-toolkit uses. The
//! plugin folders are private config folders of the test's own (`DOCKER_CONFIG`), never the
//! real `~/.docker/cli-plugins`, where real buildx lives.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, path, run, unique_name};

/// A private docker config folder whose `cli-plugins/<file>` is a link to the brix under test.
fn config_with_plugin(env: &E2eEnv, purpose: &str, file: &str) -> PathBuf {
    let config = env.scratch_dir(purpose);
    let plugins = config.join("cli-plugins");
    std::fs::create_dir_all(&plugins).expect("creating cli-plugins");
    std::os::unix::fs::symlink(&env.brix_bin, plugins.join(file)).expect("linking the plugin");
    config
}

/// The real docker CLI with nothing of the caller's brix, buildx or Docker settings: no
/// builder store of the run's own either, so brix keeps its store under the docker config
/// folder, as it does for a user.
fn docker_cli() -> Command {
    let mut c = Command::new("docker");
    for var in [
        "BRIX_CONFIG",
        "BUILDX_CONFIG",
        "BRIX_BUILDER",
        "BUILDX_BUILDER",
        "BRIX_PROGRESS",
        "BUILDKIT_PROGRESS",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_HOST",
    ] {
        c.env_remove(var);
    }
    c
}

/// `docker` with `config` as its config folder (`DOCKER_CONFIG`) and the e2e engine.
fn docker_with(env: &E2eEnv, config: &Path) -> Command {
    let mut c = docker_cli();
    c.env("DOCKER_CONFIG", config)
        .env("DOCKER_HOST", &env.docker_host);
    c
}

/// Whether brix made its builder store under the docker config folder `config` (a folder
/// with `instances/` in it, whatever its name).
fn has_store(config: &Path) -> bool {
    std::fs::read_dir(config)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("instances").is_dir())
}

/// docker/actions-toolkit's `Buildx.parseVersion` (src/buildx/buildx.ts): the first match of
/// `/\sv?([0-9a-f]{7}|[0-9.]+)/` in `docker buildx version`'s output, group 1.
fn actions_toolkit_parse_version(stdout: &str) -> Option<String> {
    let chars: Vec<char> = stdout.chars().collect();
    for start in (0..chars.len()).filter(|&i| chars[i].is_whitespace()) {
        let after = start + 1;
        // `v?` is greedy: with the `v` first, then without it.
        let mut tries = Vec::new();
        if chars.get(after) == Some(&'v') {
            tries.push(after + 1);
        }
        tries.push(after);
        for at in tries {
            if let Some(hex) = chars.get(at..at + 7)
                && hex
                    .iter()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(c))
            {
                return Some(hex.iter().collect());
            }
            let digits = chars[at..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == '.')
                .count();
            if digits > 0 {
                return Some(chars[at..at + digits].iter().collect());
            }
        }
    }
    None
}

#[test]
fn the_actions_toolkit_parser_reads_buildx_lines_as_actions_toolkit_does() {
    let parse = |s: &str| actions_toolkit_parse_version(s);
    assert_eq!(
        parse("github.com/docker/buildx v0.11.2 9872040b6626fb7d87ef7296fd5b832e8cc2ad17")
            .as_deref(),
        Some("0.11.2")
    );
    assert_eq!(
        parse("github.com/docker/buildx 0.29.1+ds1 0.29.1+ds1-4").as_deref(),
        Some("0.29.1")
    );
    assert_eq!(
        parse("github.com/docker/buildx 3019581 3019581").as_deref(),
        Some("3019581")
    );
    assert_eq!(parse("brix"), None);
}

#[test]
fn docker_brix_runs_brix_with_the_docker_cli_s_flags() {
    let Some(env) = E2eEnv::get() else { return };
    let config = config_with_plugin(&env, "plugin-brix", "docker-brix");

    let r = run(docker_with(&env, &config).args(["brix", "version"])).ok();
    assert!(
        r.stdout
            .starts_with(&format!("brix v{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.stdout
    );

    // The builder store goes where DOCKER_CONFIG says, as for brix itself.
    let r = run(docker_with(&env, &config).args(["brix", "ls"])).ok();
    assert!(
        r.stdout.lines().any(|l| l.starts_with("default")),
        "{}",
        r.stdout
    );
    assert!(
        has_store(&config),
        "no builder store under {}",
        config.display()
    );

    // A build through the docker CLI, on the engine's own BuildKit.
    let marker = unique_name("plugin-build");
    let ctx = env.scratch_dir("plugin-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo {marker} > /marker\n", env.busybox),
    )
    .expect("writing Dockerfile");
    let out = env.scratch_dir("plugin-out");
    let dest = format!("type=local,dest={}", path(&out));
    run(docker_with(&env, &config).args([
        "brix",
        "build",
        "--builder",
        "default",
        "--progress",
        "plain",
        "-o",
        &dest,
        path(&ctx),
    ]))
    .ok();
    let built = std::fs::read_to_string(out.join("marker")).unwrap_or_default();
    assert_eq!(built.trim(), marker);

    // The docker CLI's own flags before the plugin name: `--config` (where the docker CLI
    // found the plugin, and brix its store) and `-H` (the engine brix asks).
    let other = config_with_plugin(&env, "plugin-flags", "docker-brix");
    let missing = env.scratch_dir("plugin-no-engine").join("docker.sock");
    let host = format!("unix://{}", path(&missing));
    let r = run(docker_cli().args(["--config", path(&other), "-H", &host, "brix", "ls"]));
    assert!(
        r.stderr.contains(path(&missing)),
        "brix did not ask the engine -H named:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(has_store(&other), "--config did not reach brix");

    // A context that does not exist: refused, never silently the wrong engine (contexts
    // that do exist are in `contexts.rs`).
    let r = run(docker_with(&env, &config).args(["--context", "elsewhere", "brix", "ls"]));
    assert!(!r.success, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("elsewhere"), "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn docker_buildx_is_brix_under_buildx_s_names() {
    let Some(env) = E2eEnv::get() else { return };
    let config = config_with_plugin(&env, "plugin-buildx", "docker-buildx");

    let r = run(docker_with(&env, &config).args(["buildx", "version"])).ok();
    assert_eq!(
        actions_toolkit_parse_version(r.stdout.trim()).as_deref(),
        Some("0.29.1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .starts_with("github.com/docker/buildx v0.29.1 brix-v"),
        "{}",
        r.stdout
    );

    // Bare `docker buildx` prints the help and succeeds, as buildx does.
    let r = run(docker_with(&env, &config).arg("buildx")).ok();
    assert!(r.stdout.contains("Usage: docker buildx"), "{}", r.stdout);

    // The plugin metadata the docker CLI lists.
    let r = run(docker_with(&env, &config).args([
        "info",
        "--format",
        "{{range .ClientInfo.Plugins}}{{.Name}} {{.Version}} {{.Vendor}}{{\"\\n\"}}{{end}}",
    ]))
    .ok();
    assert!(
        r.stdout.lines().any(|l| l == "buildx v0.29.1 brix"),
        "{}",
        r.stdout
    );

    // Standalone under buildx's own name, as actions-toolkit runs it without docker.
    let dir = env.scratch_dir("plugin-standalone");
    std::os::unix::fs::symlink(&env.brix_bin, dir.join("buildx")).expect("linking buildx");
    let r = run(Command::new(dir.join("buildx")).arg("version")).ok();
    assert_eq!(
        actions_toolkit_parse_version(r.stdout.trim()).as_deref(),
        Some("0.29.1"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_interrupted_docker_cli_stops_the_plugin_s_build() {
    let Some(env) = E2eEnv::get() else { return };
    let config = config_with_plugin(&env, "plugin-cancel", "docker-brix");
    let ctx = env.scratch_dir("plugin-cancel-ctx");
    let marker = unique_name("plugin-cancel");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo {marker} && sleep 300\n", env.busybox),
    )
    .expect("writing Dockerfile");
    let mut docker = docker_with(&env, &config)
        .args([
            "brix",
            "build",
            "--builder",
            "default",
            "--progress",
            "plain",
            "-o",
            "type=cacheonly",
            path(&ctx),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting docker brix build");
    let stderr = docker.stderr.take().expect("stderr is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    let started = Instant::now();
    while !seen.iter().any(|l: &String| l.contains("RUN echo")) {
        match received.recv_timeout(Duration::from_secs(120).saturating_sub(started.elapsed())) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = docker.kill();
                panic!("the RUN step never started:\n{}", seen.join("\n"));
            }
        }
    }

    // SIGTERM to the docker CLI alone: its output is not a terminal, so it closes the plugin
    // socket rather than pass the signal on, and waits for the plugin to stop.
    run(Command::new("kill").args(["-TERM", &docker.id().to_string()])).ok();
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = docker.try_wait().expect("waiting for docker") {
            break status;
        }
        if stopped.elapsed() > Duration::from_secs(30) {
            let _ = docker.kill();
            panic!("docker brix build still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.extend(received.try_iter());
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    assert!(
        seen.iter().any(|l| l.contains("canceled")),
        "{}",
        seen.join("\n")
    );
}
