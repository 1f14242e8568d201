//! `brix build` bad-input cases of issue 5 that need a real daemon: a context file the
//! sender cannot read is a clear error naming it, and Ctrl-C during a solve cancels it,
//! exits 130 and leaves the builder free for the next build.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, Run, docker, path, remove_node_container, run, unique_name};

/// The registry speaks plain HTTP; the builder reaches it on the host's loopback.
const BUILDKITD_TOML: &str = "[registry.\"localhost:5000\"]\n  http = true\n";

/// A docker-container builder with its own BRIX_CONFIG, removed (with its container and
/// volume) when dropped, also when the test panics.
struct Builder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
}

impl Builder {
    fn create(env: E2eEnv, purpose: &str) -> Self {
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let config = store.join("buildkitd.toml");
        std::fs::write(&config, BUILDKITD_TOML).expect("writing buildkitd.toml");
        let b = Builder {
            env,
            store,
            name: unique_name(purpose),
        };
        run(b.cmd().args([
            "create",
            "--name",
            &b.name,
            "--driver-opt",
            "network=host",
            "--config",
            path(&config),
            "--bootstrap",
        ]))
        .ok();
        b
    }

    fn cmd(&self) -> Command {
        self.cmd_of(self.env.brix())
    }

    /// Gives `c` (a `brix` command, possibly behind a wrapper) this builder's environment.
    fn cmd_of(&self, mut c: Command) -> Command {
        self.env.brix_env(&mut c, &self.store);
        c
    }

    /// `build --builder <ours> --progress plain`, the arguments every build here starts with.
    fn build_args(&self) -> [&str; 5] {
        ["build", "--builder", &self.name, "--progress", "plain"]
    }

    fn build(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(self.build_args()).args(args);
        run(&mut c)
    }

    /// The BuildKit container of this builder's only node.
    fn container(&self) -> String {
        format!("buildx_buildkit_{}0", self.name)
    }

    /// A build context with `Dockerfile` and nothing else.
    fn context(&self, purpose: &str, dockerfile: &str) -> PathBuf {
        let dir = self.env.scratch_dir(purpose);
        std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
        dir
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // In case `brix rm` could not run (e.g. the test failed before the store existed).
        remove_node_container(&self.container());
    }
}

#[test]
fn unreadable_context_file_is_a_clear_error() {
    let Some(env) = E2eEnv::get() else { return };
    let b = Builder::create(env, "unreadable");
    let marker = unique_name("unreadable");
    let ctx = b.context(
        "unreadable-ctx",
        &format!("FROM {}\nCOPY . /ctx\nRUN echo {marker}\n", b.env.busybox),
    );
    let secret = ctx.join("secret.txt");
    std::fs::write(&secret, "hidden\n").expect("writing secret.txt");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000))
        .expect("chmod 000 secret.txt");
    // The tests run as root, which reads mode-0000 files through CAP_DAC_OVERRIDE. Run brix
    // as root without that capability (and CAP_DAC_READ_SEARCH): the file's owner bits then
    // apply, so opening it fails with EACCES, while the root-owned docker.sock and the
    // config store stay reachable.
    let mut setpriv = Command::new("setpriv");
    setpriv.args([
        "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search",
    ]);
    setpriv.arg(&b.env.brix_bin);
    let mut c = b.cmd_of(setpriv);
    c.args(b.build_args())
        .args(["--output", "type=cacheonly", path(&ctx)]);
    // Sanity check of the premise: without the capabilities the file really is unreadable.
    let probe = run(Command::new("setpriv")
        .args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "cat",
        ])
        .arg(&secret));
    assert!(!probe.success, "the probe read {}", secret.display());

    let out = run(&mut c);
    assert!(
        !out.success,
        "build of an unreadable context succeeded:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(path(&secret)),
        "the error should name {}:\n{}",
        secret.display(),
        out.stderr
    );
    assert!(
        out.stderr.contains("ermission denied"),
        "the error should give the OS error:\n{}",
        out.stderr
    );
}

#[test]
fn ctrl_c_cancels_the_solve_and_exits_130() {
    let Some(env) = E2eEnv::get() else { return };
    let b = Builder::create(env, "ctrl-c");
    let marker = unique_name("ctrl-c");
    let ctx = b.context(
        "ctrl-c-ctx",
        &format!("FROM {}\nRUN echo {marker} && sleep 60\n", b.env.busybox),
    );
    let mut c = b.cmd();
    c.args(b.build_args())
        .args(["--output", "type=cacheonly", path(&ctx)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("starting brix build");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Wait for the plain printer to show the RUN step running.
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let hit = line.contains("RUN echo") && line.contains("sleep 60");
                log.push_str(&line);
                log.push('\n');
                if hit {
                    break true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    if !started {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the RUN step never showed:\n{log}");
    }
    // Let the step's process start in the builder before interrupting.
    let container = b.container();
    let sleeping = || {
        let ps = docker(["exec", &container, "ps", "-o", "args"]);
        ps.success && ps.stdout.lines().any(|l| l.trim() == "sleep 60")
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !sleeping() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(sleeping(), "`sleep 60` never ran in {container}:\n{log}");

    let kill = run(Command::new("kill").args(["-INT", &child.id().to_string()]));
    assert!(kill.success, "{}", kill.stderr);
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for brix build") {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brix build still running 10s after SIGINT:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    log.extend(rx.try_iter().map(|l| l + "\n"));
    eprintln!(
        "exited {:?} {:.1}s after SIGINT",
        status.code(),
        interrupted.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("canceled"), "{log}");

    // The daemon cancelled the solve: its `sleep 60` goes away.
    let until = Instant::now() + Duration::from_secs(10);
    while sleeping() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !sleeping(),
        "`sleep 60` still runs in {container} after Ctrl-C"
    );

    // And the builder is free: another build on it runs right away.
    let quick = b.context(
        "ctrl-c-next",
        &format!("FROM {}\nRUN echo {marker}-next\n", b.env.busybox),
    );
    let started = Instant::now();
    b.build(&["--output", "type=cacheonly", path(&quick)]).ok();
    let took = started.elapsed();
    eprintln!("next build: {:.1}s", took.as_secs_f64());
    assert!(took < Duration::from_secs(30), "next build took {took:?}");
}
