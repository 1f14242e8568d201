//! `brix build` against the real Docker engine, a docker-container BuildKit builder with QEMU,
//! and the local registry: per-platform local outputs, the cache on a second build, the
//! multi-platform push to one index, a two-platform OCI tarball, `--load` on the classic
//! store, and a clear error for each kind of bad input (the docker driver on both engines is
//! in `engines.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use brix_e2e::{E2eEnv, Run, docker, path, run, skopeo, unique_name};

/// The registry speaks plain HTTP; the builder reaches it on the host's loopback.
const BUILDKITD_TOML: &str = "[registry.\"localhost:5000\"]\n  http = true\n";

/// One docker-container builder shared by the tests of this file (booting one takes
/// seconds). Its container and volume are named `buildx_buildkit_brix-e2e-…`, which
/// `cargo xtask e2e` removes after the run.
struct Builder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
}

fn builder() -> Option<&'static Builder> {
    static BUILDER: OnceLock<Option<Builder>> = OnceLock::new();
    BUILDER
        .get_or_init(|| {
            let env = E2eEnv::get()?;
            let store = env.scratch_dir("build-store");
            let name = unique_name("build");
            let config = store.join("buildkitd.toml");
            std::fs::write(&config, BUILDKITD_TOML).expect("writing buildkitd.toml");
            let b = Builder { env, store, name };
            b.brix(&[
                "create",
                "--name",
                &b.name,
                "--driver-opt",
                "network=host",
                "--config",
                config.to_str().expect("utf-8 path"),
            ])
            .ok();
            // Booted once here: the tests of this file build on it in parallel, and two
            // processes booting one node at once race over its container.
            b.brix(&["inspect", "--bootstrap", &b.name]).ok();
            Some(b)
        })
        .as_ref()
}

impl Builder {
    fn cmd(&self) -> Command {
        self.env.brix_in(&self.store)
    }

    fn brix(&self, args: &[&str]) -> Run {
        run(self.cmd().args(args))
    }

    /// `brix build --builder <ours> --progress plain ARGS...`
    fn build(&self, args: &[&str]) -> Run {
        self.build_on(&self.name, args)
    }

    /// `brix build --builder BUILDER --progress plain ARGS...`
    fn build_on(&self, builder: &str, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(["build", "--builder", builder, "--progress", "plain"]);
        c.args(args);
        run(&mut c)
    }

    /// A two-platform build of `ctx` on `builder`, pushed as `image`.
    fn push_two_platforms(&self, builder: &str, image: &str, ctx: &Path) -> Run {
        self.build_on(
            builder,
            &[
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                image,
                "--push",
                path(ctx),
            ],
        )
    }

    /// A build context with `Dockerfile` and nothing else.
    fn context(&self, purpose: &str, dockerfile: &str) -> PathBuf {
        let dir = self.env.scratch_dir(purpose);
        std::fs::write(dir.join("Dockerfile"), dockerfile).expect("writing Dockerfile");
        dir
    }

    fn arch_dockerfile(&self, marker: &str) -> String {
        // The marker keeps one test's cache from satisfying another's.
        format!(
            "FROM {}\nRUN uname -m > /arch && echo {marker} > /marker\nCMD [\"cat\", \"/arch\"]\n",
            self.env.busybox
        )
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_owned()
}

#[test]
fn two_platforms_to_local_folders_then_all_cached() {
    let Some(b) = builder() else { return };
    let ctx = b.context("local-ctx", &b.arch_dockerfile(&unique_name("local")));
    let out = b.env.scratch_dir("local-out");
    let dest = format!("type=local,dest={}", path(&out));
    let timed_build = |which: &str| {
        let started = std::time::Instant::now();
        let r = b
            .build(&[
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                &dest,
                path(&ctx),
            ])
            .ok();
        eprintln!(
            "{which} two-platform build: {:.1}s",
            started.elapsed().as_secs_f64()
        );
        r
    };
    let first = timed_build("first");
    assert_eq!(read(&out.join("linux_amd64/arch")), "x86_64");
    assert_eq!(read(&out.join("linux_arm64/arch")), "aarch64");
    // The plain printer's layout: numbered steps with platform-prefixed names.
    assert!(
        first.stderr.contains("#0 building with"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("[linux/arm64 2/2] RUN uname -m"),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains(" DONE "), "{}", first.stderr);

    let second = timed_build("cached");
    // Every build step after FROM is reported CACHED, for both platforms.
    for platform in ["linux/amd64", "linux/arm64"] {
        let title = format!("[{platform} 2/2] RUN uname -m");
        let id = second
            .stderr
            .lines()
            .find(|l| l.contains(&title))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {title}:\n{}", second.stderr))
            .to_owned();
        assert!(
            second.stderr.lines().any(|l| l == format!("{id} CACHED")),
            "{title} not cached:\n{}",
            second.stderr
        );
        assert!(
            !second
                .stderr
                .lines()
                .any(|l| l == format!("{id} DONE") || l.starts_with(&format!("{id} DONE "))),
            "{title} was rebuilt:\n{}",
            second.stderr
        );
    }
}

#[test]
fn multi_platform_push_makes_one_index() {
    let Some(b) = builder() else { return };
    let ctx = b.context("push-ctx", &b.arch_dockerfile(&unique_name("push")));
    let image = b.env.registry_ref("app", "1");
    let meta = b.env.scratch_dir("push-meta").join("meta.json");
    let started = std::time::Instant::now();
    let out = b
        .build(&[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--push",
            "--metadata-file",
            path(&meta),
            path(&ctx),
        ])
        .ok();
    eprintln!(
        "two-platform build + push: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.stderr
            .contains(&format!("pushing manifest for {image}@sha256:")),
        "{}",
        out.stderr
    );

    let (raw, index) = brix_e2e::pushed_index(&image);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let platforms = brix_e2e::index_platforms(&index);
    assert!(
        platforms.contains(&"linux/amd64".to_owned()),
        "{platforms:?}"
    );
    assert!(
        platforms.contains(&"linux/arm64".to_owned()),
        "{platforms:?}"
    );

    // Each platform's config names its architecture.
    let repo = image.rsplit_once(':').map(|(r, _)| r).expect("tagged");
    for m in index["manifests"].as_array().expect("manifests") {
        let arch = m["platform"]["architecture"].as_str().unwrap_or_default();
        if arch == "unknown" {
            continue;
        }
        let digest = m["digest"].as_str().expect("digest");
        let config = skopeo([
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repo}@{digest}"),
        ])
        .ok();
        let config: serde_json::Value = serde_json::from_str(&config.stdout).expect("config JSON");
        assert_eq!(config["architecture"], arch, "config of {digest}");
    }

    // The metadata file names the index, as buildx writes it.
    let meta: serde_json::Value =
        serde_json::from_str(&read(&meta)).expect("metadata file is JSON");
    let digest = meta["containerimage.digest"]
        .as_str()
        .expect("containerimage.digest");
    assert_eq!(meta["containerimage.descriptor"]["digest"], digest);
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(
        meta["buildx.build.ref"]
            .as_str()
            .is_some_and(|r| r.starts_with(&b.name))
    );

    assert_eq!(
        b.env.engines()[0].arch_in_arm64_container(&image),
        "aarch64"
    );
}

#[test]
fn two_platform_oci_tarball_is_one_index_skopeo_accepts() {
    let Some(b) = builder() else { return };
    let ctx = b.context("oci-ctx", &b.arch_dockerfile(&unique_name("oci")));
    let tarball = b.env.scratch_dir("oci-out").join("out.tar");
    b.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=oci,dest={}", path(&tarball)),
        path(&ctx),
    ])
    .ok();
    let target = b.env.registry_ref("oci", "1");
    skopeo([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", path(&tarball)),
        &format!("docker://{target}"),
    ])
    .ok();
    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ])
    .ok();
    let index: serde_json::Value = serde_json::from_str(&raw.stdout).expect("index JSON");
    let platforms = brix_e2e::index_platforms(&index);
    assert!(
        platforms.contains(&"linux/amd64".to_owned()),
        "{platforms:?}"
    );
    assert!(
        platforms.contains(&"linux/arm64".to_owned()),
        "{platforms:?}"
    );
}

#[test]
fn bad_inputs_fail_clearly() {
    let Some(b) = builder() else { return };
    // No Dockerfile.
    let empty = b.env.scratch_dir("no-dockerfile");
    let r = b.build(&[path(&empty)]);
    assert!(!r.success);
    assert!(
        r.stderr.contains("Dockerfile") && r.stderr.contains("no such file"),
        "{}",
        r.stderr
    );

    // A syntax error names the line.
    let bad = b.context("syntax", &format!("FROM {}\nRUNN echo hi\n", b.env.busybox));
    let r = b.build(&[path(&bad)]);
    assert!(!r.success);
    assert!(r.stderr.contains("line 2"), "{}", r.stderr);
    assert!(r.stderr.contains("RUNN"), "{}", r.stderr);

    // An unknown target stage.
    let ok = b.context("target", &b.arch_dockerfile("target"));
    let r = b.build(&["--target", "nope", path(&ok)]);
    assert!(!r.success);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);

    // A platform that is not one.
    let r = b.build(&["--platform", "linux/bogus", path(&ok)]);
    assert!(!r.success);
    assert!(r.stderr.contains("linux/bogus"), "{}", r.stderr);

    // A real platform no node supports: the error says how to get emulation.
    let r = b.build(&["--platform", "linux/mips64", path(&ok)]);
    assert!(!r.success);
    assert!(r.stderr.contains("linux/mips64"), "{}", r.stderr);
    assert!(
        r.stderr.contains("brix binfmt --install mips64"),
        "{}",
        r.stderr
    );
}

/// The classic image store (the system engine): one platform per image name. The docker
/// driver on both engines is in `engines.rs`.
#[test]
fn load_puts_the_native_platform_into_the_engine() {
    let Some(b) = builder() else { return };
    let ctx = b.context("load-ctx", &b.arch_dockerfile(&unique_name("load")));
    let image = format!("{}:1", unique_name("loaded"));
    let r = b
        .build(&[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &image,
            "--load",
            path(&ctx),
        ])
        .ok();
    assert!(r.stderr.contains("skipping linux/arm64"), "{}", r.stderr);
    let ran = docker(["run", "--rm", &image, "cat", "/arch"]).ok();
    let _ = docker(["rmi", "-f", &image]);
    assert_eq!(ran.stdout.trim(), "x86_64");
}

#[test]
fn two_nodes_build_one_platform_each_into_one_index() {
    // A builder whose second node is pinned to linux/arm64: each platform is solved on its
    // own node, each result pushed by digest, and brix assembles and pushes the index.
    let Some(b) = builder() else { return };
    let name = unique_name("two-nodes");
    let config = b.store.join("buildkitd.toml");
    let common = [
        "--driver-opt",
        "network=host",
        "--config",
        path(&config),
        "--name",
        &name,
    ];
    b.brix(&[&["create"][..], &common[..]].concat()).ok();
    // A node's endpoint must differ from the others' (as in buildx): the second one reaches
    // the same engine through a symlink to its socket.
    let socket = b
        .env
        .docker_host
        .strip_prefix("unix://")
        .expect("the e2e engine listens on a unix socket");
    let link = b.env.scratch_dir("second-endpoint").join("docker.sock");
    std::os::unix::fs::symlink(socket, &link).expect("symlinking the docker socket");
    let endpoint = format!("unix://{}", path(&link));
    b.brix(
        &[
            &["create", "--append", "--platform", "linux/arm64"][..],
            &common[..],
            &[endpoint.as_str()][..],
        ]
        .concat(),
    )
    .ok();
    let ctx = b.context("two-nodes-ctx", &b.arch_dockerfile(&unique_name("nodes")));
    let image = b.env.registry_ref("two-nodes", "1");
    let r = b.push_two_platforms(&name, &image, &ctx).ok();
    assert!(
        r.stderr.contains(&format!("merging manifest list {image}")),
        "the index was not assembled by brix:\n{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("pushing manifest for {image}@sha256:")),
        "{}",
        r.stderr
    );
    let (_, index) = brix_e2e::pushed_index(&image);
    let platforms = brix_e2e::index_platforms(&index);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(platforms.contains(&p.to_owned()), "{platforms:?}");
    }
    assert_eq!(
        b.env.engines()[0].arch_in_arm64_container(&image),
        "aarch64"
    );
    let _ = b.brix(&["rm", "--force", &name]);
}
