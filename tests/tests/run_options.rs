//! `brix build`'s run options (issue 14 item 7), side by side with real buildx on the same
//! builder: `--add-host` lands in `/etc/hosts`, `--ulimit` in `ulimit -n`, `--shm-size` in
//! `/dev/shm`, `--network none` cuts a `RUN` off the registry, `--no-cache-filter` re-runs
//! that stage only; and buildx's input checks refuse bad values with buildx's words.

use std::path::{Path, PathBuf};

use brix_e2e::{E2eEnv, Run, path, remove_node_container, run, unique_name};

struct Builder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
}

impl Builder {
    fn create(purpose: &str) -> Option<Self> {
        let env = E2eEnv::get()?;
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let name = unique_name(purpose);
        env.create_builder(&store, &name, "");
        // Booted by brix: buildx cannot boot a node here (it asks for a privileged container).
        run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();
        Some(Builder { env, store, name })
    }

    /// `build --builder B --progress plain ARGS -o type=local,dest=OUT CTX` with `tool`.
    fn build(&self, tool: &str, ctx: &Path, args: &[&str]) -> (PathBuf, Run) {
        let out = self.env.scratch_dir(&format!("{tool}-out"));
        let dest = format!("type=local,dest={}", out.display());
        let mut c = self.env.tool_in(tool, &self.store);
        c.args([
            "build",
            "--builder",
            &self.name,
            "--progress",
            "plain",
            "-o",
            &dest,
        ])
        .args(args)
        .arg(ctx);
        (out, run(&mut c))
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = run(self
            .env
            .brix_in(&self.store)
            .args(["rm", "--force", &self.name]));
        remove_node_container(&format!("buildx_buildkit_{}0", self.name));
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {file} in {}: {e}", dir.display()))
}

#[test]
fn run_options_land_in_the_build_as_with_buildx() {
    let Some(b) = Builder::create("runopts") else {
        return;
    };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let ctx = b.env.scratch_dir("runopts-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {bb} AS base\n\
             RUN cat /proc/sys/kernel/random/uuid > /base\n\
             FROM {bb}\n\
             COPY --from=base /base /base\n\
             RUN echo {salt} && grep -v '^#' /etc/hosts | grep -e 'db' -e 'cache' > /hosts; \
             ulimit -n > /nofile; \
             df -k /dev/shm | tail -n 1 | awk '{{print $2}}' > /shm; \
             if printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 {port} | grep -q '200 OK'; then echo reachable; else echo unreachable; fi > /net\n",
            bb = b.env.busybox,
            port = b.env.registry.rsplit(':').next().unwrap_or("5000"),
            salt = unique_name("runopts"),
        ),
    )
    .expect("Dockerfile");
    let options = [
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "cache=fe80::1",
        "--ulimit",
        "nofile=1024:2048",
        "--shm-size",
        "128m",
    ];
    for tool in ["brix", "buildx"] {
        let (out, r) = b.build(tool, &ctx, &options);
        assert!(r.success, "{tool}: {}", r.stderr);
        let hosts = read(&out, "hosts");
        assert!(
            hosts.contains("10.1.2.3") && hosts.contains("db"),
            "{tool}: {hosts}"
        );
        assert!(
            hosts.contains("fe80::1") && hosts.contains("cache"),
            "{tool}: {hosts}"
        );
        assert_eq!(read(&out, "nofile").trim(), "1024", "{tool}");
        assert_eq!(read(&out, "shm").trim(), "131072", "{tool}: 128 MiB in KiB");
        assert_eq!(
            read(&out, "net").trim(),
            "reachable",
            "{tool}: the default network"
        );

        let (none, r) = b.build(tool, &ctx, &["--network", "none"]);
        assert!(r.success, "{tool}: {}", r.stderr);
        assert_eq!(
            read(&none, "net").trim(),
            "unreachable",
            "{tool}: --network none"
        );

        // The base stage's step runs again with --no-cache-filter base (BuildKit may still
        // reuse what follows it); without the filter every step is cached.
        let (plain, _) = b.build(tool, &ctx, &[]);
        let (again, again_run) = b.build(tool, &ctx, &[]);
        let (_, filtered) = b.build(tool, &ctx, &["--no-cache-filter", "base"]);
        assert_eq!(read(&again, "base"), read(&plain, "base"), "{tool}: cached");
        let cached = |r: &Run| r.stderr.lines().filter(|l| l.ends_with(" CACHED")).count();
        assert!(
            cached(&filtered) < cached(&again_run),
            "{tool}: the base stage ran again\n{}",
            filtered.stderr
        );
    }
}

#[test]
fn bad_inputs_get_buildx_s_message_and_exit_code() {
    let Some(b) = Builder::create("runopts-bad") else {
        return;
    };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let ctx = b.env.scratch_dir("runopts-bad-ctx");
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\n", b.env.busybox))
        .expect("Dockerfile");
    let missing = ctx.join("no-such-secret");
    let secret = format!("id=x,src={}", path(&missing));
    let cases: Vec<Vec<&str>> = vec![
        vec!["--build-arg", "=x"],
        vec!["--label", "=x"],
        vec!["-t", "Foo:bar", "-o", "type=cacheonly"],
        vec!["-t", "a:b:c"],
        vec!["--secret", &secret],
        vec!["--network", "bogus"],
        vec!["--add-host", "foo"],
        vec!["--add-host", "foo:host-gateway"],
        vec!["--allow", "foo"],
    ];
    for args in cases {
        let (_, ours) = b.build("brix", &ctx, &args);
        let (_, theirs) = b.build("buildx", &ctx, &args);
        assert_eq!(ours.error_line(), theirs.error_line(), "{args:?}");
    }
}
