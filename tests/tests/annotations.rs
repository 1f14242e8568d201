//! `brix build --annotation` at every level, side by side with real buildx on one builder: a
//! two-platform `--push` (brix: one solve per platform and its own index; buildx: one
//! multi-platform solve, BuildKit's index), then the index's annotations, its entries'
//! annotations and each manifest's annotations compared between the two tools; the same for
//! a two-platform OCI tarball (and its `index.json` entry); and bad annotations refused with
//! buildx's `ERROR:` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use brix_e2e::{E2eEnv, Run, path, pushed_index, remove_node_container, run, skopeo, unique_name};
use brix_exporter::OciLayout;
use serde_json::Value;

const PLATFORMS: &str = "linux/amd64,linux/arm64";

/// The annotations both tools are given: every level, platform-qualified ones, a key given at
/// two levels at once, and a platform's value over the one for all platforms.
const ANNOTATIONS: &[&str] = &[
    "untyped=1",
    "manifest:org.opencontainers.image.title=brix e2e",
    "manifest:shared=all",
    "manifest[linux/amd64]:shared=amd64",
    "manifest[linux/arm64/v8]:arm.only=yes",
    "manifest-descriptor:md=all",
    "manifest-descriptor[linux/arm64]:md=arm64",
    "manifest-descriptor[linux/amd64]:md.amd64=yes",
    "index:org.opencontainers.image.description=two platforms",
    "index,manifest:both=yes",
    "index[linux/arm64]:index.platform.dropped=yes",
    "index-descriptor:id=yes",
];

/// A build command of `tool` (`brix` or real buildx) on the builder `name` in `store`.
fn build_command(env: &E2eEnv, store: &Path, tool: &str, name: &str) -> Command {
    let mut c = if tool == "brix" {
        env.brix_in(store)
    } else {
        let mut c = Command::new("docker");
        c.env("BUILDX_CONFIG", store)
            .env("DOCKER_HOST", &env.docker_host)
            .env_remove("BUILDX_BUILDER")
            .arg("buildx");
        c
    };
    c.args(["build", "--builder", name, "--progress", "plain"]);
    c
}

/// The `annotations` object of a JSON value, as a map (empty when there is none).
fn annotations_of(v: &Value) -> BTreeMap<String, String> {
    v["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// What a pushed index says about annotations, with the values that differ between two
/// builds by nature (the digest an attestation names) replaced: the index's annotations,
/// then per entry (`linux/amd64`, `attestation of linux/amd64`, …) its descriptor's
/// annotations and its manifest's annotations.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    index: Annotations,
    /// Per entry: its descriptor's annotations, then its manifest's.
    entries: BTreeMap<String, (Annotations, Annotations)>,
}

type Annotations = BTreeMap<String, String>;

/// [`Seen`] of the index pushed under `image`.
fn seen_pushed(image: &str) -> Seen {
    let (_, index) = pushed_index(image);
    let repository = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
    seen(&index, |digest| {
        let raw = skopeo([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repository}@{digest}"),
        ])
        .ok();
        serde_json::from_str(&raw.stdout).expect("a manifest")
    })
}

/// [`Seen`] of `index`, its manifests read with `manifest` (by digest).
fn seen(index: &Value, manifest: impl Fn(&str) -> Value) -> Seen {
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let platform_of = |digest: &str| {
        entries
            .iter()
            .find(|e| e["digest"] == digest)
            .map(|e| {
                let p = &e["platform"];
                format!(
                    "{}/{}",
                    p["os"].as_str().unwrap_or("?"),
                    p["architecture"].as_str().unwrap_or("?")
                )
            })
            .unwrap_or_else(|| format!("unknown image {digest}"))
    };
    let mut out = BTreeMap::new();
    for entry in &entries {
        let digest = entry["digest"].as_str().expect("an entry's digest");
        let manifest = manifest(digest);
        let mut descriptor = annotations_of(entry);
        let name = match descriptor.get_mut("vnd.docker.reference.digest") {
            Some(subject) => {
                let name = format!("attestation of {}", platform_of(subject));
                *subject = "<the image's digest>".into();
                name
            }
            None => platform_of(digest),
        };
        out.insert(name, (descriptor, annotations_of(&manifest)));
    }
    Seen {
        index: annotations_of(index),
        entries: out,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A docker-container builder in its own store, booted (buildx cannot boot it here), removed
/// when dropped; and a build context.
struct Builder<'a> {
    env: &'a E2eEnv,
    store: PathBuf,
    name: String,
    ctx: PathBuf,
}

impl<'a> Builder<'a> {
    fn new(env: &'a E2eEnv, purpose: &str) -> Self {
        if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
            panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
        }
        let store = env.scratch_dir(&format!("{purpose}-store"));
        let name = unique_name(purpose);
        env.create_builder(&store, &name, "");
        let builder = Builder {
            env,
            store,
            name,
            ctx: env.scratch_dir(&format!("{purpose}-ctx")),
        };
        run(env
            .brix_in(&builder.store)
            .args(["inspect", "--bootstrap", &builder.name]))
        .ok();
        std::fs::write(builder.ctx.join("a.txt"), unique_name(purpose)).expect("a.txt");
        std::fs::write(
            builder.ctx.join("Dockerfile"),
            format!("FROM {}\nCOPY a.txt /a.txt\n", env.busybox),
        )
        .expect("Dockerfile");
        builder
    }

    /// `tool build` on this builder with [`ANNOTATIONS`] for [`PLATFORMS`], then `args`.
    fn build(&self, tool: &str, args: &[&str]) -> Run {
        let mut c = build_command(self.env, &self.store, tool, &self.name);
        c.args(["--platform", PLATFORMS]);
        for a in ANNOTATIONS {
            c.args(["--annotation", a]);
        }
        run(c.args(args).arg(&self.ctx))
    }
}

impl Drop for Builder<'_> {
    fn drop(&mut self) {
        let _ = run(self
            .env
            .brix_in(&self.store)
            .args(["rm", "--force", &self.name]));
        remove_node_container(&format!("buildx_buildkit_{}0", self.name));
    }
}

#[test]
fn annotations_land_where_buildx_puts_them() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = Builder::new(&env, "annotations");
    let (store, name, ctx) = (&builder.store, &builder.name, &builder.ctx);

    let mut results = Vec::new();
    for tool in ["brix", "buildx"] {
        let image = env.registry_ref(&format!("annotations-{tool}"), "v1");
        let metadata = ctx.join(format!("{tool}-metadata.json"));
        let r = builder.build(
            tool,
            &["--push", "-t", &image, "--metadata-file", path(&metadata)],
        );
        assert!(r.success, "{tool}:\n{}", r.stderr);
        let metadata: Value =
            serde_json::from_slice(&std::fs::read(&metadata).expect("metadata file"))
                .expect("metadata JSON");
        results.push((seen_pushed(&image), metadata));
    }
    let (brix, buildx) = (&results[0], &results[1]);

    // What BuildKit does with them, as the buildx build shows.
    let expected_index = map(&[
        ("org.opencontainers.image.description", "two platforms"),
        ("both", "yes"),
        ("index.platform.dropped", "yes"),
    ]);
    assert_eq!(buildx.0.index, expected_index, "buildx's index");
    let (amd64_descriptor, amd64_manifest) = &buildx.0.entries["linux/amd64"];
    assert_eq!(
        amd64_descriptor,
        &map(&[("md", "all"), ("md.amd64", "yes")]),
        "buildx: the amd64 entry"
    );
    assert_eq!(
        amd64_manifest,
        &map(&[
            ("untyped", "1"),
            ("org.opencontainers.image.title", "brix e2e"),
            ("shared", "amd64"),
            ("both", "yes"),
        ]),
        "buildx: the amd64 manifest"
    );
    let (arm64_descriptor, arm64_manifest) = &buildx.0.entries["linux/arm64"];
    assert_eq!(
        arm64_descriptor,
        &map(&[("md", "arm64")]),
        "buildx: the arm64 entry"
    );
    assert_eq!(
        arm64_manifest,
        &map(&[
            ("untyped", "1"),
            ("org.opencontainers.image.title", "brix e2e"),
            ("shared", "all"),
            ("arm.only", "yes"),
            ("both", "yes"),
        ]),
        "buildx: the arm64 manifest"
    );
    // The attestations' entries keep only their reference annotations.
    assert_eq!(
        buildx.0.entries["attestation of linux/arm64"].0,
        map(&[
            ("vnd.docker.reference.digest", "<the image's digest>"),
            ("vnd.docker.reference.type", "attestation-manifest"),
        ]),
        "buildx: the arm64 attestation's entry"
    );

    // brix, with one solve per platform and its own index, lands every one in the same place.
    assert_eq!(
        brix.0, buildx.0,
        "brix's pushed index and manifests, then buildx's"
    );
    // The index's descriptor (index-descriptor) is nowhere in the registry; buildx's metadata
    // file shows it.
    let descriptor_annotations = |m: &Value| annotations_of(&m["containerimage.descriptor"]);
    assert_eq!(
        descriptor_annotations(&brix.1),
        descriptor_annotations(&buildx.1),
        "the metadata file's containerimage.descriptor: brix's, then buildx's\n{}\n{}",
        brix.1,
        buildx.1
    );

    // Bad annotations: refused with buildx's words.
    for bad in [
        "foo",
        "bogus:k=v",
        ":k=v",
        "manifest[bogus]:k=v",
        "manifest[linux/s390x]:k=v",
    ] {
        let lines: Vec<String> = ["brix", "buildx"]
            .iter()
            .map(|tool| {
                let mut c = build_command(&env, store, tool, name);
                let image = env.registry_ref("annotations-bad", "v1");
                c.args(["--platform", PLATFORMS, "--push", "-t", &image])
                    .args(["--annotation", bad]);
                run(c.arg(ctx)).error_line()
            })
            .collect();
        assert_eq!(lines[0], lines[1], "--annotation {bad}: brix, then buildx");
    }
    assert_eq!(
        run(build_command(&env, store, "brix", name)
            .args(["--annotation", "foo"])
            .arg(ctx))
        .error_line(),
        "ERROR: failed to build: parse annotations: invalid annotation \"foo\", expected key=value"
    );
}

#[test]
fn annotations_in_an_oci_tarball_as_buildx_writes_them() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = Builder::new(&env, "annotations-oci");
    let mut results = Vec::new();
    for tool in ["brix", "buildx"] {
        let tarball = builder.ctx.join(format!("{tool}.tar"));
        let dest = format!("type=oci,dest={}", path(&tarball));
        let r = builder.build(tool, &["-o", &dest]);
        assert!(r.success, "{tool}:\n{}", r.stderr);
        let layout =
            OciLayout::unpack_tar_file(&tarball, builder.ctx.join(format!("{tool}-layout")))
                .unwrap_or_else(|e| panic!("{tool}: unpacking {}: {e}", tarball.display()));
        let top = layout
            .index()
            .unwrap_or_else(|e| panic!("{tool}: index.json: {e}"));
        assert_eq!(top.manifests.len(), 1, "{tool}: index.json names one index");
        let entry = &top.manifests[0];
        let blob = |digest: &str| -> Value {
            serde_json::from_slice(
                &layout
                    .read_blob(digest)
                    .unwrap_or_else(|e| panic!("{tool}: blob {digest}: {e}")),
            )
            .unwrap_or_else(|e| panic!("{tool}: blob {digest} is not JSON: {e}"))
        };
        let index = blob(&entry.digest);
        results.push((seen(&index, blob), entry.annotations.get("id").cloned()));
    }
    let (brix, buildx) = (&results[0], &results[1]);
    assert_eq!(
        buildx.0.index,
        map(&[
            ("org.opencontainers.image.description", "two platforms"),
            ("both", "yes"),
            ("index.platform.dropped", "yes"),
        ]),
        "buildx's index"
    );
    assert_eq!(brix.0, buildx.0, "brix's OCI tarball, then buildx's");
    // The index-descriptor annotation is on the index.json entry.
    assert_eq!(
        buildx.1.as_deref(),
        Some("yes"),
        "buildx's index.json entry"
    );
    assert_eq!(
        brix.1, buildx.1,
        "the index.json entry: brix's, then buildx's"
    );
}
