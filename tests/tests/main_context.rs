//! Where the context and the Dockerfile come from (issue 14 item 3), side by side with real
//! buildx on one builder: a tarball on stdin (plain and gzipped, served through the session's
//! Upload service, on two platforms), `-f -` beside a folder, `-f` naming a Dockerfile outside
//! the context, an http tarball URL served by a real HTTP server on loopback, and buildx's
//! refusals of ambiguous stdin use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use brix_e2e::{
    E2eEnv, Run, SharedBuilder, path, relative_paths, run, run_with_stdin, unique_name,
};

/// `TOOL build --builder NAME --progress plain ARGS…`.
fn build(builder: &SharedBuilder, tool: &str, args: &[&str]) -> Command {
    let mut c = builder.build(tool);
    c.args(["--progress", "plain"]).args(args);
    c
}

/// A context folder: a Dockerfile that copies the context, files, and a second Dockerfile in
/// a subfolder.
fn context(env: &E2eEnv, marker: &str) -> PathBuf {
    let ctx = env.scratch_dir("main-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nCOPY . /ctx/\n# {marker}\n"),
    )
    .expect("Dockerfile");
    std::fs::create_dir_all(ctx.join("sub")).expect("mkdir");
    std::fs::write(
        ctx.join("sub/Other.Dockerfile"),
        "FROM scratch\nCOPY sub /other/\n",
    )
    .expect("Other.Dockerfile");
    std::fs::write(ctx.join("a.txt"), "a\n").expect("a.txt");
    std::fs::write(ctx.join("sub/b.txt"), "b\n").expect("b.txt");
    ctx
}

/// `tar -c[z]f FILE -C DIR .`
fn tarball(env: &E2eEnv, dir: &Path, gzip: bool) -> PathBuf {
    let out = env
        .scratch_dir("main-ctx-tar")
        .join(if gzip { "ctx.tar.gz" } else { "ctx.tar" });
    let flags = if gzip { "-czf" } else { "-cf" };
    run(Command::new("tar")
        .arg(flags)
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .arg("."))
    .ok();
    out
}

/// Builds with both tools into local folders and returns what landed in each.
fn side_by_side(
    env: &E2eEnv,
    builder: &SharedBuilder,
    purpose: &str,
    args: &[&str],
    stdin: Option<&Path>,
) -> Vec<(PathBuf, Vec<String>)> {
    ["brix", "buildx"]
        .into_iter()
        .map(|tool| {
            let out = env.scratch_dir(&format!("main-ctx-{purpose}-{tool}"));
            let dest = format!("type=local,dest={}", path(&out));
            let mut c = build(builder, tool, &["-o", &dest]);
            c.args(args);
            let r: Run = match stdin {
                Some(input) => run_with_stdin(&mut c, input),
                None => run(&mut c),
            };
            assert!(r.success, "{purpose}: {tool}: {}", r.stderr);
            let listing = relative_paths(&out);
            (out, listing)
        })
        .collect()
}

#[track_caller]
fn assert_same(purpose: &str, results: &[(PathBuf, Vec<String>)], expected: &[&str]) {
    let (brix, buildx) = (&results[0].1, &results[1].1);
    assert_eq!(
        brix, buildx,
        "{purpose}: the same files land with both tools"
    );
    for e in expected {
        assert!(
            brix.iter().any(|p| p == e),
            "{purpose}: {e} is missing from {brix:?}"
        );
    }
}

#[test]
fn stdin_and_dockerfile_sources_match_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = SharedBuilder::new(&env, "main-ctx");
    let ctx = context(&env, &unique_name("stdin"));

    // A tarball on stdin is the context, on two platforms (one upload served to each
    // platform's solve).
    let tar = tarball(&env, &ctx, false);
    let r = side_by_side(
        &env,
        &builder,
        "stdin-tar",
        &["--platform", "linux/amd64,linux/arm64", "-"],
        Some(&tar),
    );
    assert_same(
        "stdin-tar",
        &r,
        &[
            "linux_amd64/ctx/a.txt",
            "linux_arm64/ctx/sub/b.txt",
            "linux_arm64/ctx/Dockerfile",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(r[0].0.join("linux_arm64/ctx/a.txt")).expect("a.txt"),
        "a\n"
    );

    // A gzipped tarball, with -f naming a Dockerfile inside it.
    let tgz = tarball(&env, &ctx, true);
    let r = side_by_side(
        &env,
        &builder,
        "stdin-tgz",
        &["-f", "sub/Other.Dockerfile", "-"],
        Some(&tgz),
    );
    assert_same("stdin-tgz", &r, &["other/b.txt"]);

    // `-f -` beside a folder: the Dockerfile from stdin, the context from the folder.
    let piped = env.scratch_dir("main-ctx-piped").join("Dockerfile");
    std::fs::write(&piped, "FROM scratch\nCOPY a.txt /piped/\n").expect("Dockerfile");
    let ctx_s = path(&ctx).to_owned();
    let r = side_by_side(
        &env,
        &builder,
        "f-stdin",
        &["-f", "-", &ctx_s],
        Some(&piped),
    );
    assert_same("f-stdin", &r, &["piped/a.txt"]);

    // `-f` outside the context.
    let outside = env.scratch_dir("main-ctx-outside").join("build.Dockerfile");
    std::fs::write(&outside, "FROM scratch\nCOPY sub/b.txt /outside/\n").expect("Dockerfile");
    let r = side_by_side(
        &env,
        &builder,
        "f-outside",
        &["-f", path(&outside), &ctx_s],
        None,
    );
    assert_same("f-outside", &r, &["outside/b.txt"]);

    // buildx's refusals, word for word.
    let refusals: [(&str, &[&str], Option<&Path>); 3] = [
        ("both-stdin", &["-f", "-", "-"], Some(&piped)),
        ("ambiguous", &["-f", "Dockerfile", "-"], Some(&piped)),
        ("missing", &["no/such/context"], None),
    ];
    for (purpose, args, stdin) in refusals {
        let lines: Vec<String> = ["brix", "buildx"]
            .into_iter()
            .map(|tool| {
                let mut c = build(&builder, tool, args);
                let r = match stdin {
                    Some(input) => run_with_stdin(&mut c, input),
                    None => run(&mut c),
                };
                r.error_line()
            })
            .collect();
        assert_eq!(lines[0], lines[1], "{purpose}: the same error");
    }
}

/// A real HTTP server (Python's `http.server`) serving `dir` on a free loopback port.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn serve(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server");
        brix_e2e::wait_for(
            "the HTTP server",
            std::time::Duration::from_secs(20),
            || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        );
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_http_tarball_context_matches_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = SharedBuilder::new(&env, "main-ctx");
    let ctx = context(&env, &unique_name("http"));
    let tgz = tarball(&env, &ctx, true);
    let server = HttpServer::serve(tgz.parent().expect("folder"));
    let url = format!("http://127.0.0.1:{}/ctx.tar.gz", server.port);
    let r = side_by_side(&env, &builder, "http-tar", &[&url], None);
    assert_same("http-tar", &r, &["ctx/a.txt", "ctx/sub/b.txt"]);
    let r = side_by_side(
        &env,
        &builder,
        "http-tar-f",
        &["-f", "sub/Other.Dockerfile", &url],
        None,
    );
    assert_same("http-tar-f", &r, &["other/b.txt"]);
}
