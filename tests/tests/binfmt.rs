//! `brix binfmt` against the real kernel and Docker engine: removing, registering and
//! resetting arm64 emulation changes what containers can run, directly and through a helper
//! container on the engine, and what a freshly started docker-container builder reports and
//! builds (issue 7: without arm64 `inspect --bootstrap` lacks linux/arm64 and an arm64 build
//! fails naming `brix binfmt --install arm64`; after `--install` and `--reset` it builds).
//! Registrations carry the `P` flag through Debian's `aarch64-binfmt-P` link, so busybox
//! applets keep their argv[0]; an older `F`-only registration is upgraded by `--install`.
//!
//! binfmt_misc registrations are global to the kernel, so everything here is one `#[test]`:
//! the steps must run in order, and nothing else in this binary may use arm64 emulation
//! while arm64 is uninstalled. `cargo test` runs test binaries one after another, so other
//! files' tests (which need arm64) never overlap with this one. Whatever happens, arm64 is
//! left installed when the test ends.

use brix_e2e::{
    ContainerGuard, E2eEnv, Run, TEST_LABEL, docker, path, remove_node_container, run, unique_name,
};
use std::path::{Path, PathBuf};

const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
/// The arm64 ELF magic as the kernel prints it in an entry's `magic` line.
const AARCH64_MAGIC: &str = "magic 7f454c460201010000000000000000000200b700";

/// Re-registers arm64 when dropped, so a failing assertion does not leave the machine
/// without arm64 emulation for the tests that follow.
struct LeaveArm64Installed<'a>(&'a E2eEnv);

impl Drop for LeaveArm64Installed<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .brix()
            .args(["binfmt", "--install", "arm64"])
            .output();
    }
}

fn brix(env: &E2eEnv, args: &[&str]) -> Run {
    run(env.brix().args(args))
}

/// The registry speaks plain HTTP; the builders reach it on the host's loopback.
const BUILDKITD_TOML: &str = "[registry.\"localhost:5000\"]\n  http = true\n";

/// A docker-container builder in the test's own brix store, created but not booted: BuildKit
/// detects the emulators it can run when its daemon starts, so each check of what the
/// kernel offers uses a new builder (a new container). Removes the builder, its container
/// and its state volume when dropped, also when the test panics.
struct FreshBuilder<'a> {
    env: &'a E2eEnv,
    store: &'a Path,
    name: String,
}

impl<'a> FreshBuilder<'a> {
    #[track_caller]
    fn create(env: &'a E2eEnv, store: &'a Path, purpose: &str) -> Self {
        let b = Self {
            env,
            store,
            name: unique_name(purpose),
        };
        let config = store.join("buildkitd.toml");
        b.brix(&[
            "create",
            "--name",
            &b.name,
            "--driver-opt",
            "network=host",
            "--config",
            path(&config),
        ])
        .ok();
        b
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.env.brix_in(self.store).args(args))
    }

    /// `brix inspect --bootstrap <name>`: starts the daemon, which detects emulators now.
    #[track_caller]
    fn inspect_bootstrap(&self) -> Run {
        self.brix(&["inspect", "--bootstrap", &self.name]).ok()
    }

    /// `brix build` of `ctx` for linux/arm64 with output `output`.
    fn build_arm64(&self, output: &str, ctx: &Path) -> Run {
        self.brix(&[
            "build",
            "--builder",
            &self.name,
            "--platform",
            "linux/arm64",
            "--progress",
            "plain",
            "-o",
            output,
            path(ctx),
        ])
    }

    /// Boots the builder, checks that it lists linux/arm64, and builds the arm64 RUN step
    /// under emulation.
    #[track_caller]
    fn assert_builds_arm64(&self, ctx: &Path) {
        let out = self.inspect_bootstrap();
        let platforms = inspect_platforms(&out.stdout);
        assert!(
            platforms.iter().any(|p| p == "linux/arm64"),
            "{platforms:?}\n{}",
            out.stdout
        );
        let dest = self.env.scratch_dir("binfmt-out");
        let built = self
            .build_arm64(&format!("type=local,dest={}", path(&dest)), ctx)
            .ok();
        let arch = std::fs::read_to_string(dest.join("arch")).unwrap_or_else(|err| {
            panic!(
                "the arm64 build wrote no {}/arch ({err}):\n{}",
                dest.display(),
                built.stderr
            )
        });
        assert_eq!(arch.trim(), "aarch64", "{}", built.stderr);
    }

    fn container(&self) -> String {
        format!("buildx_buildkit_{}0", self.name)
    }
}

impl Drop for FreshBuilder<'_> {
    fn drop(&mut self) {
        let _ = self.brix(&["rm", "-f", &self.name]);
        remove_node_container(&self.container());
    }
}

/// The platforms on the `Platforms:` line of `brix inspect`, without the `*` that marks
/// pinned ones.
fn inspect_platforms(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Platforms:"))
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().trim_end_matches('*').to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A build context whose arm64 RUN step needs emulation and writes the architecture it ran
/// on to `/arch`.
fn arm64_context(env: &E2eEnv) -> PathBuf {
    let dir = env.scratch_dir("binfmt-ctx");
    let dockerfile = format!("FROM {}\nRUN uname -m > /arch\n", env.busybox);
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
    dir
}

/// The arm64 row of `brix binfmt --format json`.
#[track_caller]
fn arm64_status(env: &E2eEnv) -> serde_json::Value {
    let out = brix(env, &["binfmt", "--format", "json"]).ok().stdout;
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|err| {
        panic!("brix binfmt --format json printed invalid JSON ({err}):\n{out}")
    });
    assert_eq!(report["mounted"], true, "{out}");
    report["emulators"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["arch"] == "arm64"))
        .cloned()
        .unwrap_or_else(|| panic!("no arm64 row in:\n{out}"))
}

/// The texts of every binfmt_misc entry that matches arm64 executables, read directly from
/// the kernel (not through brix), whatever the entries are named.
fn kernel_arm64_entries() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(BINFMT_MISC) else {
        panic!("{BINFMT_MISC} cannot be listed: is binfmt_misc mounted?");
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name() != "register" && e.file_name() != "status")
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.lines().any(|line| line == AARCH64_MAGIC))
        .collect()
}

/// `uname -m` in an arm64 busybox container.
fn uname_in_arm64_container(env: &E2eEnv) -> Run {
    in_arm64_container(env, &["uname", "-m"])
}

/// `sh -c 'echo hi > /x; cat /x'` in an arm64 busybox container: prints `hi` only when
/// `cat` (a busybox applet started through its link) keeps its argv[0], which takes the `P`
/// flag; without it busybox runs `cat` as `sh`, which says `hi: not found`.
fn argv0_in_arm64_container(env: &E2eEnv) -> Run {
    in_arm64_container(env, &["sh", "-c", "echo hi > /x; cat /x"])
}

/// The flags of the one kernel entry for arm64.
#[track_caller]
fn kernel_arm64_flags() -> String {
    let entries = kernel_arm64_entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0]
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_default()
        .to_owned()
}

/// Registers arm64 by hand, as an older brix or a distribution package would have, with
/// `interpreter` and `flags`.
#[track_caller]
fn register_arm64_by_hand(interpreter: &str, flags: &str) {
    let magic = "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00";
    let mask = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff";
    let line = format!(":qemu-aarch64:M:0:{magic}:{mask}:{interpreter}:{flags}");
    if let Err(err) = std::fs::write(Path::new(BINFMT_MISC).join("register"), &line) {
        panic!("registering an arm64 entry by hand ({line}): {err}");
    }
}

/// `args` in an arm64 busybox container.
fn in_arm64_container(env: &E2eEnv, args: &[&str]) -> Run {
    let name = unique_name("binfmt-arm64");
    let _guard = ContainerGuard { name: name.clone() };
    let label = format!("{TEST_LABEL}=1");
    let mut all = vec![
        "run",
        "--rm",
        "--name",
        &name,
        "--label",
        &label,
        "--platform",
        "linux/arm64",
        &env.busybox,
    ];
    all.extend_from_slice(args);
    docker(all)
}

#[test]
fn uninstall_install_and_reset_arm64_emulation() {
    let Some(env) = E2eEnv::get() else { return };
    assert!(
        Path::new(&env.brix_bin).is_file(),
        "BRIX_E2E_BRIX_BIN={} is not a file: build brix first (cargo build -p brix)",
        env.brix_bin.display()
    );
    let _restore = LeaveArm64Installed(&env);
    // Have the arm64 image locally first, so the failing run below fails for lack of
    // emulation and not for a pull.
    docker(["pull", "--quiet", "--platform", "linux/arm64", &env.busybox]).ok();
    // Everything the builders need that does not depend on emulation is prepared before
    // arm64 is removed, so the machine is without it as briefly as possible.
    let store = env.scratch_dir("binfmt-store");
    std::fs::write(store.join("buildkitd.toml"), BUILDKITD_TOML).expect("writing buildkitd.toml");
    let ctx = arm64_context(&env);
    let without = FreshBuilder::create(&env, &store, "binfmt-without");

    // 1. Uninstall: no entry for arm64 remains, whoever made it, and arm64 containers fail.
    let out = brix(&env, &["binfmt", "--uninstall", "arm64"]).ok().stdout;
    assert!(
        out.starts_with("arm64") && (out.contains("uninstalled") || out.contains("not registered")),
        "{out}"
    );
    assert_eq!(kernel_arm64_entries(), Vec::<String>::new());
    let status = arm64_status(&env);
    assert_eq!(status["state"], "not-registered", "{status}");
    assert_eq!(status["entries"], serde_json::json!([]), "{status}");
    let failed = uname_in_arm64_container(&env);
    // Checked by message, so a run that fails for another reason (a pull, say) cannot pass.
    assert!(
        !failed.success && failed.stderr.contains("exec format error"),
        "arm64 container without emulation did not fail with `exec format error`:\n{}{}",
        failed.stdout,
        failed.stderr
    );
    // A builder started now cannot run arm64: inspect does not list it and hints at the
    // install command; an arm64 build with a RUN step fails with the same suggestion.
    let out = without.inspect_bootstrap();
    let platforms = inspect_platforms(&out.stdout);
    assert!(
        platforms.iter().any(|p| p == "linux/amd64")
            && !platforms.iter().any(|p| p == "linux/arm64"),
        "{platforms:?}\n{}",
        out.stdout
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("hint:")
            && l.contains("linux/arm64")
            && l.contains("`brix binfmt --install arm64")),
        "no hint naming `brix binfmt --install arm64`:\n{}",
        out.stderr
    );
    let failed = without.build_arm64("type=cacheonly", &ctx);
    assert!(
        !failed.success
            && format!("{}{}", failed.stdout, failed.stderr)
                .contains("brix binfmt --install arm64"),
        "the arm64 build without emulation did not fail naming `brix binfmt --install arm64`:\n{}{}",
        failed.stdout,
        failed.stderr
    );

    // 2. Install: one entry with F and P, through Debian's -binfmt-P link, and arm64
    // containers run, busybox applets included.
    let out = brix(&env, &["binfmt", "--install", "arm64"]).ok().stdout;
    drop(without);
    assert!(
        out.contains("installed: qemu-aarch64 -> /usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
        "{out}"
    );
    let entries = kernel_arm64_entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let flags = kernel_arm64_flags();
    assert!(
        entries[0].starts_with("enabled") && flags.contains('F') && flags.contains('P'),
        "{}",
        entries[0]
    );
    let status = arm64_status(&env);
    assert_eq!(status["state"], "working", "{status}");
    assert!(
        status["entry"]["flags"]
            .as_str()
            .is_some_and(|f| f.contains('F')),
        "{status}"
    );
    let ran = uname_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "aarch64", "stderr: {}", ran.stderr);
    let ran = argv0_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "hi", "stderr: {}", ran.stderr);
    // A builder started now lists arm64 and builds the RUN step under emulation.
    FreshBuilder::create(&env, &store, "binfmt-installed").assert_builds_arm64(&ctx);

    // Installing again changes nothing.
    let out = brix(&env, &["binfmt", "--install", "aarch64"]).ok().stdout;
    assert!(out.contains("already installed: qemu-aarch64"), "{out}");

    // An F entry without P (what brix registered before, with the static QEMU itself):
    // arm64 programs run, but busybox applets lose their argv[0]. `--install` (no --force)
    // upgrades it to P and says so.
    let out = brix(&env, &["binfmt", "--uninstall", "arm64"]).ok().stdout;
    assert!(out.contains("uninstalled"), "{out}");
    let emulator = status["emulator"]
        .as_str()
        .unwrap_or_else(|| panic!("no static emulator in {status}"));
    let static_qemu =
        std::fs::canonicalize(emulator).unwrap_or_else(|err| panic!("resolving {emulator}: {err}"));
    let static_qemu = path(&static_qemu).to_owned();
    assert!(
        static_qemu.ends_with("qemu-aarch64-static"),
        "{static_qemu}"
    );
    register_arm64_by_hand(&static_qemu, "CF");
    let status = arm64_status(&env);
    assert_eq!(status["state"], "no-preserve-argv0", "{status}");
    let table = brix(&env, &["binfmt"]).ok().stdout;
    assert!(
        table.contains("no P flag") && table.contains("arm64 is registered without the P flag"),
        "{table}"
    );
    let ran = uname_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "aarch64", "stderr: {}", ran.stderr);
    let wrong = argv0_in_arm64_container(&env);
    assert!(
        wrong.stdout.trim() != "hi" && wrong.stderr.contains("not found"),
        "busybox `cat` kept its argv[0] without the P flag?\n{}{}",
        wrong.stdout,
        wrong.stderr
    );
    let out = brix(&env, &["binfmt", "--install", "arm64"]).ok().stdout;
    assert!(
        out.contains("installed: qemu-aarch64 -> /usr/libexec/qemu-binfmt/aarch64-binfmt-P")
            && out.contains("re-registered with P"),
        "{out}"
    );
    assert!(kernel_arm64_flags().contains('P'));
    assert_eq!(arm64_status(&env)["state"], "working");
    let ran = argv0_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "hi", "stderr: {}", ran.stderr);

    // 3. The seed's "QEMU stops working": an entry without F, as distribution packages
    // register them, runs arm64 binaries on the host but not in containers, whose file
    // system has no QEMU. Reproduce it with the host's own emulator...
    let out = brix(&env, &["binfmt", "--uninstall", "arm64"]).ok().stdout;
    assert!(out.contains("uninstalled"), "{out}");
    register_arm64_by_hand(&static_qemu, "");
    let status = arm64_status(&env);
    assert_eq!(status["state"], "no-fix-binary", "{status}");
    let broken = uname_in_arm64_container(&env);
    // The kernel looks the interpreter up inside the container, where it does not exist.
    assert!(
        !broken.success && broken.stderr.contains("no such file or directory"),
        "arm64 container with an entry without F did not fail for the missing QEMU:\n{}{}",
        broken.stdout,
        broken.stderr
    );

    // ...and fix it with --reset (no list: everything registered now).
    let out = brix(&env, &["binfmt", "--reset"]).ok().stdout;
    let arm64_line = out
        .lines()
        .find(|l| l.starts_with("arm64"))
        .unwrap_or_default();
    assert!(
        arm64_line.contains("installed: qemu-aarch64")
            && arm64_line.contains("re-registered with F"),
        "{out}"
    );
    assert_eq!(arm64_status(&env)["state"], "working");
    let ran = uname_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "aarch64", "stderr: {}", ran.stderr);

    // A reset of a working arm64 leaves it working.
    let out = brix(&env, &["binfmt", "--reset", "linux/arm64"])
        .ok()
        .stdout;
    assert!(out.contains("re-registered: qemu-aarch64"), "{out}");
    let ran = uname_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "aarch64", "stderr: {}", ran.stderr);

    // 4. The same through a helper container on the engine (what a remote DOCKER_HOST
    // gets): the registration's interpreter exists only inside the removed helper, and
    // with F it keeps working.
    let out = brix(&env, &["binfmt", "--via-container", "--uninstall", "arm64"])
        .ok()
        .stdout;
    assert!(out.contains("uninstalled: qemu-aarch64"), "{out}");
    assert_eq!(kernel_arm64_entries(), Vec::<String>::new());
    let failed = uname_in_arm64_container(&env);
    assert!(
        !failed.success && failed.stderr.contains("exec format error"),
        "{}{}",
        failed.stdout,
        failed.stderr
    );
    let out = brix(&env, &["binfmt", "--via-container", "--install", "arm64"])
        .ok()
        .stdout;
    // The copy of the -binfmt-P link keeps its suffix, so the helper's registration has P.
    assert!(
        out.contains("installed: qemu-aarch64 -> /brix-aarch64-binfmt-P (flags POCF)"),
        "{out}"
    );
    let entries = kernel_arm64_entries();
    assert!(
        entries.len() == 1 && entries[0].contains("interpreter /brix-aarch64-binfmt-P"),
        "{entries:?}"
    );
    assert!(kernel_arm64_flags().contains('P'));
    let ran = uname_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "aarch64", "stderr: {}", ran.stderr);
    let ran = argv0_in_arm64_container(&env).ok();
    assert_eq!(ran.stdout.trim(), "hi", "stderr: {}", ran.stderr);
    let helpers = docker([
        "ps",
        "--all",
        "--quiet",
        "--filter",
        "label=dev.brix.binfmt-helper",
    ])
    .ok()
    .stdout;
    assert_eq!(helpers.trim(), "", "helper containers were left behind");

    // Back to the host's own registration for the tests that follow.
    let out = brix(&env, &["binfmt", "--reset", "arm64"]).ok().stdout;
    assert!(
        out.contains("re-registered: qemu-aarch64 -> /usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
        "{out}"
    );
    // The reset left arm64 working for a builder started now.
    FreshBuilder::create(&env, &store, "binfmt-reset").assert_builds_arm64(&ctx);
}
