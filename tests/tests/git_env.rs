//! The environment for remote git contexts (issue 14 item 10): the `git-server` set-up step's
//! smart HTTP (`git http-backend`) and sshd on the host's loopback, reached by buildkitd in a
//! builder on the host's network, and the git and ssh the BuildKit image carries. brix and
//! real buildx build `<repo>#v1:sub` (and by commit) over HTTP and over ssh (`--ssh default`,
//! an ssh-agent holding the servers' key; and with no `--ssh`, which both forward by default
//! for an ssh context) into a local output, which then holds `sub`'s files and nothing else
//! (issue 14 item 3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use brix_e2e::{E2eEnv, relative_paths, remove_node_container, run, unique_name, wait_for};

/// The tools built with, on one builder.
const TOOLS: &[&str] = &["brix", "buildx"];

/// The repository's files: `sub` is the context (with its Dockerfile), `outside.txt` must not
/// reach the output.
const FILES: &[(&str, &str)] = &[
    ("sub/Dockerfile", "FROM scratch\nCOPY . /\n"),
    ("sub/hello.txt", "hello from git\n"),
    ("sub/nested/deep.txt", "deep\n"),
    ("outside.txt", "not in the context\n"),
];

/// The files a build of `#<ref>:sub` lands in its local output.
const EXPECTED: &[&str] = &["Dockerfile", "hello.txt", "nested", "nested/deep.txt"];

#[test]
fn git_contexts_over_http_and_ssh_land_the_subfolder() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let store = env.scratch_dir("git-env-store");
    let name = unique_name("git-env");
    env.create_builder(&store, &name, "");
    // buildx cannot boot a node here (it asks for a privileged container); brix can.
    run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();
    let mut cleanup = Cleanup {
        env: &env,
        store: &store,
        builder: &name,
        agent: None,
    };
    let repo = env.git_repo("git-env", FILES);
    let agent = start_agent(&env, &mut cleanup);

    for tool in TOOLS {
        let context = format!("{}#{}:sub", repo.http_url, repo.tag);
        check_output(
            &build(&env, tool, &store, &name, &context, None),
            tool,
            &context,
        );

        // By commit id too: the server lets a client fetch any reachable commit.
        let context = format!("{}#{}:sub", repo.http_url, repo.commit);
        check_output(
            &build(&env, tool, &store, &name, &context, None),
            tool,
            &context,
        );

        let context = format!("{}#{}:sub", repo.ssh_url, repo.tag);
        let out = build(&env, tool, &store, &name, &context, Some((&agent, true)));
        check_output(&out, tool, &context);
        // No --ssh: an ssh context forwards the default agent by itself.
        let out = build(&env, tool, &store, &name, &context, Some((&agent, false)));
        check_output(&out, tool, &context);

        // A git URL as a named context beside a local one (issue 14 item 2).
        let local = env.scratch_dir("git-env-local");
        std::fs::write(
            local.join("Dockerfile"),
            "FROM scratch\nCOPY --from=src / /\n",
        )
        .expect("Dockerfile");
        let named = format!("src={}#{}:sub", repo.http_url, repo.tag);
        let out = env.scratch_dir(&format!("git-env-{tool}-named"));
        let r = run(env
            .tool_in(tool, &store)
            .args(["build", "--builder", &name, "--progress", "plain"])
            .args(["--build-context", &named])
            .arg(format!("--output=type=local,dest={}", out.display()))
            .arg(&local));
        assert!(
            r.success,
            "{tool} build --build-context {named}:\n{}",
            r.stderr
        );
        check_output(&out, tool, &named);
    }
}

/// `tool build` of the git `context` into a fresh local output; with `agent`, its socket is
/// `SSH_AUTH_SOCK` and, when asked, the build forwards it as `--ssh default`. Returns the
/// output folder.
fn build(
    env: &E2eEnv,
    tool: &str,
    store: &Path,
    builder: &str,
    context: &str,
    agent: Option<(&Path, bool)>,
) -> PathBuf {
    let out = env.scratch_dir(&format!("git-env-{tool}-out"));
    let mut c = env.tool_in(tool, store);
    c.args(["build", "--builder", builder, "--progress", "plain"])
        .arg("--output")
        .arg(format!("type=local,dest={}", out.display()));
    if let Some((socket, flag)) = agent {
        c.env("SSH_AUTH_SOCK", socket);
        if flag {
            c.args(["--ssh", "default"]);
        }
    } else {
        c.env_remove("SSH_AUTH_SOCK");
    }
    c.arg(context);
    let r = run(&mut c);
    assert!(r.success, "{tool} build {context} failed:\n{}", r.stderr);
    out
}

/// The output holds the subfolder's files, with their content, and nothing from outside it.
#[track_caller]
fn check_output(out: &Path, tool: &str, context: &str) {
    let found = relative_paths(out);
    assert_eq!(found, EXPECTED, "{tool}: the output of {context}");
    let hello = std::fs::read_to_string(out.join("hello.txt")).expect("hello.txt");
    assert_eq!(hello, "hello from git\n", "{tool}: hello.txt of {context}");
}

/// An ssh-agent holding the servers' key, on a socket of the test's own.
fn start_agent(env: &E2eEnv, cleanup: &mut Cleanup) -> PathBuf {
    let socket = env.scratch_dir("git-env-agent").join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .spawn()
        .expect("ssh-agent");
    cleanup.agent = Some(agent);
    wait_for("the ssh agent's socket", Duration::from_secs(10), || {
        if socket.exists() {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    });
    run(Command::new("ssh-add")
        .env("SSH_AUTH_SOCK", &socket)
        .arg(&env.git().ssh_key))
    .ok();
    socket
}

/// Removes the builder and stops the agent, also when the test fails.
struct Cleanup<'a> {
    env: &'a E2eEnv,
    store: &'a Path,
    builder: &'a str,
    agent: Option<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(agent) = &mut self.agent {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let _ = run(self
            .env
            .brix_in(self.store)
            .args(["rm", "--force", self.builder]));
        remove_node_container(&format!("buildx_buildkit_{}0", self.builder));
    }
}
