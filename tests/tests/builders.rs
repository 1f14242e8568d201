//! Builders against the real Docker engine and BuildKit image: the seed's
//! `create --config` / `use` / `inspect --bootstrap` flow, `ls`, `stop`, `rm`, the remote
//! driver, and one clear error for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use brix_e2e::{
    BUILDKIT_CAPABILITY_FLAGS, ContainerGuard, E2eEnv, Run, daemon_workers, docker, gc_rules,
    remove_node_container, run, unique_name, wait_for,
};

/// The seed's buildkitd.toml: GC on, `gckeepstorage = 20000` (bytes to today's BuildKit).
const SEED_CONFIG: &str = "[worker.oci]\n  gc = true\n  gckeepstorage = 20000\n";

/// One test's private brix store; removes the builder (container and volume) when dropped.
struct Builders {
    env: E2eEnv,
    config: PathBuf,
    created: Vec<String>,
}

impl Builders {
    fn new(env: E2eEnv, purpose: &str) -> Self {
        let config = env.scratch_dir(&format!("{purpose}-store"));
        Self {
            env,
            config,
            created: Vec::new(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = self.env.brix_in(&self.config);
        c.env("BRIX_PROGRESS", "plain");
        c
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.cmd().args(args))
    }

    fn track(&mut self, name: &str) {
        self.created.push(name.to_string());
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.config.join(file);
        std::fs::write(&p, text).expect("writing test file");
        p
    }
}

impl Drop for Builders {
    fn drop(&mut self) {
        for name in &self.created {
            let _ = self.brix(&["rm", "-f", name]);
            remove_node_container(&format!("buildx_buildkit_{name}0"));
        }
    }
}

/// `Key: value` lines of `inspect` output (first occurrence after `Nodes:` for node keys).
fn field<'a>(text: &'a str, section_after: &str, key: &str) -> Option<&'a str> {
    let start = text
        .find(section_after)
        .map(|i| i + section_after.len())
        .unwrap_or(0);
    text[start..]
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(str::trim))
}

fn exists(kind: &str, name: &str) -> bool {
    docker([kind, "inspect", name]).success
}

/// The GC rules `inspect` should print for BuildKit's JSON rules, as buildx prints them.
fn format_rules(rules: &[serde_json::Value]) -> String {
    let rules: Vec<brix_config::GcRule> = rules
        .iter()
        .map(|r| brix_config::GcRule {
            all: r["all"].as_bool().unwrap_or(false),
            filters: r["filter"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            keep_duration: r["keepDuration"].as_i64().unwrap_or(0),
            reserved_space: r["reservedSpace"].as_i64().unwrap_or(0),
            max_used_space: r["maxUsedSpace"].as_i64().unwrap_or(0),
            min_free_space: r["minFreeSpace"].as_i64().unwrap_or(0),
        })
        .collect();
    brix_config::format_gc_policy(&rules)
}

fn ls_json(b: &Builders) -> Vec<serde_json::Value> {
    let out = b.brix(&["ls", "--format", "json"]).ok();
    out.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("ls json line is not JSON ({e}): {l}"))
        })
        .collect()
}

#[test]
fn seed_flow_create_use_inspect_bootstrap_stop_rm() {
    let Some(env) = E2eEnv::get() else { return };
    let mut b = Builders::new(env, "seed");
    let name = unique_name("seed");
    let container = format!("buildx_buildkit_{name}0");
    let volume = format!("{container}_state");
    let cfg = b.write("buildkitd.toml", SEED_CONFIG);
    b.track(&name);

    let out = b
        .brix(&[
            "create",
            "--name",
            &name,
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ])
        .ok();
    assert_eq!(out.stdout.trim(), name);
    assert!(
        !exists("container", &container),
        "create alone must not start a daemon"
    );
    b.brix(&["use", &name]).ok();

    let out = b.brix(&["inspect", "--bootstrap"]).ok();
    assert!(
        out.stderr.contains("booting buildkit"),
        "progress: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("creating container {container}")),
        "progress: {}",
        out.stderr
    );
    let text = out.stdout;
    assert_eq!(field(&text, "", "Name"), Some(name.as_str()), "{text}");
    assert_eq!(
        field(&text, "", "Driver"),
        Some("docker-container"),
        "{text}"
    );
    assert!(field(&text, "", "Last Activity").is_some(), "{text}");
    assert_eq!(
        field(&text, "Nodes:", "Name"),
        Some(format!("{name}0").as_str()),
        "{text}"
    );
    assert_eq!(field(&text, "Nodes:", "Status"), Some("running"), "{text}");
    assert_eq!(
        field(&text, "Nodes:", "BuildKit version"),
        Some(b.env.buildkit_version.as_str()),
        "{text}"
    );
    let platforms = field(&text, "Nodes:", "Platforms").unwrap_or_default();
    assert!(
        platforms.split(", ").any(|p| p == "linux/arm64"),
        "platforms: {platforms}"
    );
    assert!(
        platforms.split(", ").any(|p| p == "linux/amd64"),
        "platforms: {platforms}"
    );
    // The daemon runs with the seed config: BuildKit's own report of its GC rules, printed
    // the buildx way, is what inspect shows.
    let rules = gc_rules(&daemon_workers(&container));
    assert_eq!(
        rules.len(),
        4,
        "seed config gives BuildKit's 4 default rules: {rules:?}"
    );
    let expected = format_rules(&rules);
    assert!(expected.contains("Reserved Space: 19.53KiB"), "{expected}");
    assert!(
        text.contains(&expected),
        "inspect GC rules differ from BuildKit's:\n{text}\nexpected:\n{expected}"
    );
    assert!(text.contains("File#buildkitd.toml:"), "{text}");

    // ls: default (docker) and this builder, current marked; JSON parses and agrees.
    let table = b.brix(&["ls"]).ok().stdout;
    assert!(table.starts_with("NAME/NODE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{name}*")) && l.contains("docker-container")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("default ") && l.contains("docker")),
        "{table}"
    );
    let builders = ls_json(&b);
    let mine = builders
        .iter()
        .find(|v| v["Name"] == name.as_str())
        .expect("builder in ls json");
    assert_eq!(mine["Driver"], "docker-container");
    assert_eq!(mine["Current"], true);
    assert_eq!(mine["Nodes"][0]["Status"], "running");
    assert_eq!(
        mine["Nodes"][0]["GCPolicy"],
        serde_json::Value::Array(rules)
    );
    let default = builders
        .iter()
        .find(|v| v["Name"] == "default")
        .expect("default in ls json");
    assert_eq!(default["Driver"], "docker");
    // The docker driver reaches the engine's own BuildKit through /grpc.
    assert_eq!(default["Nodes"][0]["Status"], "running", "{default}");
    assert!(
        default["Nodes"][0]["Platforms"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{default}"
    );

    // stop, inspect says stopped; inspect --bootstrap starts it again.
    b.brix(&["stop", &name]).ok();
    let text = b.brix(&["inspect", &name]).ok().stdout;
    assert_eq!(field(&text, "Nodes:", "Status"), Some("stopped"), "{text}");
    let out = b.brix(&["inspect", "--bootstrap", &name]).ok();
    assert!(
        out.stderr
            .contains(&format!("starting container {container}")),
        "{}",
        out.stderr
    );
    assert_eq!(
        field(&out.stdout, "Nodes:", "Status"),
        Some("running"),
        "{}",
        out.stdout
    );

    // rm removes the container, the volume and the store entry.
    let out = b.brix(&["rm", &name]).ok();
    assert!(
        out.stderr.contains(&format!("{name} removed")),
        "{}",
        out.stderr
    );
    assert!(!exists("container", &container));
    assert!(!exists("volume", &volume));
    let out = b.brix(&["inspect", &name]);
    assert!(
        !out.success && out.stderr.contains("no builder"),
        "{}",
        out.stderr
    );
}

#[test]
fn rm_keep_state_keeps_the_volume() {
    let Some(env) = E2eEnv::get() else { return };
    let mut b = Builders::new(env, "keep-state");
    let name = unique_name("keep");
    b.track(&name);
    let container = format!("buildx_buildkit_{name}0");
    let volume = format!("{container}_state");
    b.brix(&["create", "--name", &name, "--bootstrap"]).ok();
    assert!(exists("container", &container));
    b.brix(&["rm", "--keep-state", &name]).ok();
    assert!(!exists("container", &container));
    assert!(exists("volume", &volume), "--keep-state must keep {volume}");
    docker(["volume", "rm", &volume]).ok();
}

/// A BuildKit daemon started by hand, its socket in a host folder.
fn start_socket_daemon(env: &E2eEnv, dir: &Path) -> ContainerGuard {
    let name = unique_name("remote-bk");
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    args.extend(BUILDKIT_CAPABILITY_FLAGS.iter().map(|s| s.to_string()));
    args.extend([
        "-v".into(),
        format!("{}:/run/buildkit", dir.display()),
        env.buildkit_image.clone(),
    ]);
    docker(&args).ok();
    let guard = ContainerGuard { name };
    let sock = dir.join("buildkitd.sock");
    wait_for("buildkitd socket", Duration::from_secs(30), || {
        if sock.exists() {
            Ok(())
        } else {
            Err(format!("{} missing", sock.display()))
        }
    });
    guard
}

#[test]
fn remote_builder_on_a_unix_socket_answers_inspect() {
    let Some(env) = E2eEnv::get() else { return };
    let dir = env.scratch_dir("remote-sock");
    let _daemon = start_socket_daemon(&env, &dir);
    let mut b = Builders::new(env, "remote");
    let name = unique_name("remote");
    b.track(&name);
    let endpoint = format!("unix://{}/buildkitd.sock", dir.display());
    b.brix(&["create", "--driver", "remote", "--name", &name, &endpoint])
        .ok();
    let text = wait_for("remote builder running", Duration::from_secs(30), || {
        let out = b.brix(&["inspect", &name]);
        match field(&out.stdout, "Nodes:", "Status") {
            Some("running") if out.success => Ok(out.stdout),
            _ => Err(format!("{}{}", out.stdout, out.stderr)),
        }
    });
    assert_eq!(field(&text, "", "Driver"), Some("remote"), "{text}");
    assert_eq!(
        field(&text, "Nodes:", "Endpoint"),
        Some(endpoint.as_str()),
        "{text}"
    );
    assert_eq!(
        field(&text, "Nodes:", "BuildKit version"),
        Some(b.env.buildkit_version.as_str()),
        "{text}"
    );
    assert!(
        field(&text, "Nodes:", "Platforms").is_some_and(|p| p.contains("linux/amd64")),
        "{text}"
    );
    assert!(text.contains("GC Policy rule#0:"), "{text}");
    let builders = ls_json(&b);
    let mine = builders
        .iter()
        .find(|v| v["Name"] == name.as_str())
        .expect("remote builder in ls json");
    assert_eq!(mine["Nodes"][0]["Status"], "running");
    b.brix(&["rm", &name]).ok();
}

/// Runs `openssl ARGS...` in `dir`.
#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args)).ok();
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate (all X.509 v3,
/// which rustls requires).
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writing server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .expect("writing client.ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=brix-e2e-ca",
        ],
    );
    for (name, cn) in [("server", "localhost"), ("client", "brix-e2e-client")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

#[test]
fn remote_builder_over_tls_with_client_certificates_answers_inspect() {
    let Some(env) = E2eEnv::get() else { return };
    let certs = env.scratch_dir("remote-tls-certs");
    make_certs(&certs);
    let name = unique_name("remote-tls-bk");
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "-p".into(),
        "127.0.0.1::1234".into(),
    ];
    args.extend(BUILDKIT_CAPABILITY_FLAGS.iter().map(|s| s.to_string()));
    args.extend([
        "-v".into(),
        format!("{}:/certs:ro", certs.display()),
        env.buildkit_image.clone(),
        "--addr".into(),
        "tcp://0.0.0.0:1234".into(),
        "--tlscacert".into(),
        "/certs/ca.pem".into(),
        "--tlscert".into(),
        "/certs/server.pem".into(),
        "--tlskey".into(),
        "/certs/server-key.pem".into(),
    ]);
    docker(&args).ok();
    let _daemon = ContainerGuard { name: name.clone() };
    let port = docker(["port", &name, "1234/tcp"]).ok().stdout;
    let port = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .expect("published port")
        .trim()
        .to_string();
    let endpoint = format!("tcp://127.0.0.1:{port}");

    let mut b = Builders::new(env, "remote-tls");
    let c = |f: &str| certs.join(f).display().to_string();
    let with_client = unique_name("tls");
    b.track(&with_client);
    let opts = format!(
        "cacert={},cert={},key={}",
        c("ca.pem"),
        c("client.pem"),
        c("client-key.pem")
    );
    b.brix(&[
        "create",
        "--driver",
        "remote",
        "--name",
        &with_client,
        "--driver-opt",
        &opts,
        &endpoint,
    ])
    .ok();
    let text = wait_for(
        "TLS remote builder running",
        Duration::from_secs(30),
        || {
            let out = b.brix(&["inspect", &with_client]);
            match field(&out.stdout, "Nodes:", "Status") {
                Some("running") if out.success => Ok(out.stdout),
                _ => Err(format!("{}{}", out.stdout, out.stderr)),
            }
        },
    );
    assert_eq!(
        field(&text, "Nodes:", "BuildKit version"),
        Some(b.env.buildkit_version.as_str()),
        "{text}"
    );
    assert!(text.contains("GC Policy rule#0:"), "{text}");

    // Without a client certificate the daemon refuses the handshake: the node shows an
    // error that says so, instead of hanging.
    let no_client = unique_name("tls-nocert");
    b.track(&no_client);
    let opts = format!("cacert={}", c("ca.pem"));
    b.brix(&[
        "create",
        "--driver",
        "remote",
        "--name",
        &no_client,
        "--driver-opt",
        &opts,
        &endpoint,
    ])
    .ok();
    // TLS 1.3 lets the client finish its handshake before the daemon checks for a client
    // certificate, so the refusal shows either while connecting (inactive) or on the
    // first call (an error naming the endpoint; its text depends on timing).
    let out = b.brix(&["inspect", &no_client]).ok();
    let status = field(&out.stdout, "Nodes:", "Status");
    let err = field(&out.stdout, "Nodes:", "Error").unwrap_or_default();
    assert!(
        status == Some("inactive") || err.contains(&endpoint),
        "{}",
        out.stdout
    );
}

/// Asserts `out` failed with a message containing every one of `needles`.
#[track_caller]
fn fails_with(out: Run, needles: &[&str]) {
    assert!(
        !out.success,
        "`{}` should fail but succeeded:\n{}",
        out.command, out.stdout
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "`{}`: stderr lacks {n:?}:\n{}",
            out.command,
            out.stderr
        );
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn bad_input_gives_one_clear_error_each() {
    let Some(env) = E2eEnv::get() else { return };
    let mut b = Builders::new(env, "bad-input");

    fails_with(
        b.brix(&[
            "create",
            "--name",
            &unique_name("drv"),
            "--driver",
            "kubernetes-ish",
        ]),
        &["unknown driver", "docker-container"],
    );
    fails_with(
        b.brix(&[
            "create",
            "--name",
            &unique_name("opt"),
            "--driver-opt",
            "colour=blue",
        ]),
        &[
            "invalid driver option \"colour\"",
            "cpuset-cpus",
            "privileged",
        ],
    );
    fails_with(
        b.brix(&["create", "--name", "1-not-a-name"]),
        &["invalid name", "1-not-a-name"],
    );

    // A malformed config creates nothing: no store entry, no container.
    let bad = b.write("bad.toml", "[worker.oci]\ngc = true\ngckeepstorage = \n");
    let name = unique_name("badcfg");
    b.track(&name);
    fails_with(
        b.brix(&[
            "create",
            "--name",
            &name,
            "--bootstrap",
            "--config",
            bad.to_str().expect("utf-8 path"),
        ]),
        &["bad.toml:3"],
    );
    assert!(!exists("container", &format!("buildx_buildkit_{name}0")));
    fails_with(b.brix(&["inspect", &name]), &["no builder"]);

    // The Docker engine is down.
    let dead = format!("unix://{}/dead.sock", b.config.display());
    let out =
        run(b
            .cmd()
            .env("DOCKER_HOST", &dead)
            .args(["create", "--name", &unique_name("down")]));
    fails_with(out, &["cannot reach the Docker engine", "dead.sock"]);

    // The image can be neither pulled nor found locally.
    let name = unique_name("noimage");
    b.track(&name);
    fails_with(
        b.brix(&[
            "create",
            "--name",
            &name,
            "--driver-opt",
            "image=brix-e2e-missing/buildkit:none",
            "--bootstrap",
        ]),
        &[
            "brix-e2e-missing/buildkit:none",
            "not in the local image store",
        ],
    );

    // A builder that does not exist.
    let ghost = unique_name("ghost");
    for cmd in [
        ["inspect", ghost.as_str()],
        ["use", ghost.as_str()],
        ["stop", ghost.as_str()],
        ["rm", ghost.as_str()],
    ] {
        fails_with(b.brix(&cmd), &["no builder", &ghost]);
    }
}
