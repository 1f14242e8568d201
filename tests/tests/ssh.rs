//! `--ssh` (issue 14 item 1), side by side with real buildx on one builder: a `RUN
//! --mount=type=ssh` step runs Debian's `ssh-add -l` against the agent the session forwards —
//! an agent brix runs over a key file, and the user's own agent socket under an ID — and lists
//! the key; a key file that does not exist is refused with buildx's words.

use std::path::{Path, PathBuf};
use std::process::Command;

use brix_e2e::{E2eEnv, Run, path, remove_node_container, run, unique_name};

/// Copies `binary` and the shared libraries `ldd` names into `rootfs` at their own paths, so
/// it runs in a busybox image.
fn add_binary(rootfs: &Path, binary: &str) {
    let mut files = vec![PathBuf::from(binary)];
    let ldd = run(Command::new("ldd").arg(binary)).ok();
    for line in ldd.stdout.lines() {
        let candidate = line
            .split("=>")
            .nth(1)
            .unwrap_or(line)
            .split_whitespace()
            .next()
            .unwrap_or("");
        if candidate.starts_with('/') {
            files.push(PathBuf::from(candidate));
        }
    }
    for file in files {
        let dest = rootfs.join(file.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
    }
}

#[test]
fn ssh_agents_are_forwarded_to_run_steps_as_with_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let store = env.scratch_dir("ssh-store");
    let name = unique_name("ssh");
    env.create_builder(&store, &name, "");
    run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();
    struct Cleanup<'a>(&'a E2eEnv, &'a Path, &'a str, Option<std::process::Child>);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if let Some(agent) = &mut self.3 {
                let _ = agent.kill();
                let _ = agent.wait();
            }
            let _ = run(self.0.brix_in(self.1).args(["rm", "--force", self.2]));
            remove_node_container(&format!("buildx_buildkit_{}0", self.2));
        }
    }
    let mut cleanup = Cleanup(&env, &store, &name, None);

    let keys = env.scratch_dir("ssh-keys");
    let key = keys.join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "brix-e2e", "-f"])
        .arg(&key))
    .ok();
    let fingerprint = run(Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub")))
    .ok()
    .stdout
    .split_whitespace()
    .nth(1)
    .expect("fingerprint")
    .to_owned();
    // The user's own agent, holding the key, under the ID `mine`.
    let socket = keys.join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    cleanup.3 = Some(agent);
    brix_e2e::wait_for(
        "the ssh agent's socket",
        std::time::Duration::from_secs(10),
        || {
            if socket.exists() {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        },
    );
    run(Command::new("ssh-add")
        .env("SSH_AUTH_SOCK", &socket)
        .arg(&key))
    .ok();

    let ctx = env.scratch_dir("ssh-ctx");
    let rootfs = ctx.join("rootfs");
    add_binary(&rootfs, "/usr/bin/ssh-add");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\n\
             COPY rootfs/ /\n\
             RUN --mount=type=ssh echo {} && ssh-add -l > /default\n\
             RUN --mount=type=ssh,id=mine ssh-add -l > /mine\n",
            env.busybox,
            unique_name("ssh")
        ),
    )
    .expect("Dockerfile");
    let default = format!("default={}", path(&key));
    let mine = format!("mine={}", path(&socket));
    for tool in ["brix", "buildx"] {
        let out = env.scratch_dir(&format!("ssh-{tool}-out"));
        let dest = format!("type=local,dest={}", out.display());
        let mut c = env.tool_in(tool, &store);
        c.args(["build", "--builder", &name, "--progress", "plain"])
            .args(["--platform", "linux/amd64", "-o", &dest])
            .args(["--ssh", &default, "--ssh", &mine])
            .arg(&ctx);
        let r: Run = run(&mut c);
        assert!(r.success, "{tool}: {}", r.stderr);
        for file in ["default", "mine"] {
            let listed = std::fs::read_to_string(out.join(file)).expect("ssh-add -l output");
            assert!(
                listed.contains(&fingerprint) && listed.contains("ED25519"),
                "{tool}: the {file} agent lists the key: {listed}"
            );
        }
    }

    // A key file that does not exist: buildx's words, before any solve.
    let missing = format!("default={}", path(&keys.join("nope")));
    let ours = run(env
        .brix_in(&store)
        .args(["build", "--builder", &name, "--ssh", &missing])
        .arg(&ctx));
    let theirs = run(env
        .buildx_in(&store)
        .args(["build", "--builder", &name, "--ssh", &missing])
        .arg(&ctx));
    assert_eq!(ours.error_line(), theirs.error_line());
}
