//! `brix build --sbom`, `--provenance` and `--attest`, side by side with real buildx on one
//! builder: a two-platform `--push` with an SBOM from the e2e scanner image
//! (`BRIX_E2E_SCANNER`, BuildKit's scanner protocol around syft) and a `mode=max`
//! provenance (brix: one solve per platform and its own index; buildx: one multi-platform
//! solve, BuildKit's index), then the index's layout compared between the two tools: entries,
//! platforms (`unknown/unknown` for the attestations), annotations, the attestation
//! manifests' layers and predicate types; the SPDX documents read back, by hand and with
//! `buildx imagetools inspect`. Disabled SBOMs give none, and what buildx refuses is refused
//! with its `ERROR:` line and exit code 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use brix_e2e::{E2eEnv, Run, SharedBuilder, path, pushed_index, run, skopeo, unique_name};
use serde_json::Value;

const PLATFORMS: &str = "linux/amd64,linux/arm64";
const SPDX: &str = "https://spdx.dev/Document";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// A docker-container builder in its own store, booted (buildx cannot boot it here), removed
/// when dropped; and a build context whose image no earlier run built.
struct Builder<'a> {
    env: &'a E2eEnv,
    shared: SharedBuilder,
    ctx: PathBuf,
}

impl<'a> Builder<'a> {
    fn new(env: &'a E2eEnv, purpose: &str) -> Self {
        let builder = Builder {
            env,
            shared: SharedBuilder::new(env, purpose),
            ctx: env.scratch_dir(&format!("{purpose}-ctx")),
        };
        std::fs::write(builder.ctx.join("a.txt"), unique_name(purpose)).expect("a.txt");
        std::fs::write(
            builder.ctx.join("Dockerfile"),
            format!("FROM {}\nCOPY a.txt /a.txt\n", env.busybox),
        )
        .expect("Dockerfile");
        builder
    }

    /// `tool build` on this builder for [`PLATFORMS`] with `args`.
    fn build(&self, tool: &str, args: &[&str]) -> Run {
        run(&mut self.build_command(tool, args))
    }

    fn build_command(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = self.shared.build(tool);
        c.args(["--progress", "plain"])
            .args(["--platform", PLATFORMS])
            .args(args)
            .arg(&self.ctx);
        c
    }

    /// `tool build --push` of a fresh repository with `args`; returns the image pushed.
    fn push(&self, tool: &str, purpose: &str, args: &[&str]) -> String {
        let image = self.env.registry_ref(&format!("{purpose}-{tool}"), "v1");
        let r = self.build(tool, &[&["--push", "-t", &image][..], args].concat());
        assert!(r.success, "{tool} {args:?}:\n{}", r.stderr);
        image
    }
}

/// Runs `cmd` to completion; returns its exit code and its outcome.
fn run_with_code(cmd: &mut Command) -> (Option<i32>, Run) {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    let outcome = Run {
        command: format!("{cmd:?}"),
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (output.status.code(), outcome)
}

/// The scanner image `cargo xtask e2e` pushed (its `scanner` step).
fn scanner(env: &E2eEnv) -> &str {
    env.scanner.as_deref().expect(
        "BRIX_E2E_SCANNER: the SBOM scanner image of `cargo xtask e2e` (its `scanner` set-up step)",
    )
}

/// One entry of a pushed index, as far as its layout goes: the digest an attestation names
/// replaced by the platform of the image it attests.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    media_type: String,
    platform: String,
    annotations: BTreeMap<String, String>,
    config_media_type: String,
    /// Each layer's media type and annotations.
    layers: Vec<(String, BTreeMap<String, String>)>,
}

/// The layout of the index pushed under `image`: its media type, then its entries in order
/// (`linux/amd64`, …, `attestation of linux/amd64`, …).
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    media_type: String,
    entries: Vec<(String, Entry)>,
    /// Entry name → its manifest's digest, to read blobs (not compared).
    digests: BTreeMap<String, String>,
}

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

fn platform_of(v: &Value) -> String {
    let p = &v["platform"];
    format!(
        "{}/{}",
        p["os"].as_str().unwrap_or("?"),
        p["architecture"].as_str().unwrap_or("?")
    )
}

fn repository(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(repo, _)| repo)
}

/// The manifest `digest` in the repository of `image`, as skopeo reads it.
fn manifest(image: &str, digest: &str) -> Value {
    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}@{digest}", repository(image)),
    ])
    .ok();
    serde_json::from_str(&raw.stdout).expect("a manifest")
}

fn layout(image: &str) -> Layout {
    let (_, index) = pushed_index(image);
    let list = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut entries = Vec::new();
    let mut digests = BTreeMap::new();
    for entry in &list {
        let digest = entry["digest"].as_str().expect("an entry's digest");
        let mut annotations = annotations_of(entry);
        let name = match annotations.get_mut("vnd.docker.reference.digest") {
            Some(subject) => {
                let attested = list
                    .iter()
                    .find(|e| e["digest"] == subject.as_str())
                    .map_or_else(|| format!("unknown image {subject}"), platform_of);
                *subject = "<the image's digest>".into();
                format!("attestation of {attested}")
            }
            None => platform_of(entry),
        };
        let manifest = manifest(image, digest);
        let layers = manifest["layers"]
            .as_array()
            .map(|layers| {
                layers
                    .iter()
                    .map(|l| {
                        let media_type = l["mediaType"].as_str().unwrap_or_default().to_owned();
                        (media_type, annotations_of(l))
                    })
                    .collect()
            })
            .unwrap_or_default();
        digests.insert(name.clone(), digest.to_owned());
        entries.push((
            name,
            Entry {
                media_type: entry["mediaType"].as_str().unwrap_or_default().to_owned(),
                platform: platform_of(entry),
                annotations,
                config_media_type: manifest["config"]["mediaType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                layers,
            },
        ));
    }
    Layout {
        media_type: index["mediaType"].as_str().unwrap_or_default().to_owned(),
        entries,
        digests,
    }
}

/// The predicate types of an entry's layers.
fn predicate_types(entry: &Entry) -> Vec<&str> {
    entry
        .layers
        .iter()
        .filter_map(|(_, a)| a.get("in-toto.io/predicate-type").map(String::as_str))
        .collect()
}

/// The in-toto statements (layers) of the attestation manifest `digest`, copied out of the
/// registry by skopeo into `dir`, by predicate type.
fn statements(image: &str, digest: &str, dir: &Path) -> BTreeMap<String, Value> {
    skopeo([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}@{digest}", repository(image)),
        &format!("oci:{}:attestation", path(dir)),
    ])
    .ok();
    let blob = |digest: &str| {
        let file = dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    let manifest = manifest(image, digest);
    let mut out = BTreeMap::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let statement: Value =
            serde_json::from_slice(&blob(layer["digest"].as_str().expect("a layer digest")))
                .expect("an in-toto statement");
        let kind = statement["predicateType"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        out.insert(kind, statement);
    }
    out
}

/// The `name@version` of each package an SPDX document lists.
fn spdx_packages(doc: &Value) -> Vec<String> {
    doc["packages"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    format!(
                        "{}@{}",
                        p["name"].as_str().unwrap_or("?"),
                        p["versionInfo"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sbom_and_provenance_land_where_buildx_puts_them() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = Builder::new(&env, "attest");
    let generator = format!("--sbom=generator={}", scanner(&env));
    let args = [generator.as_str(), "--provenance=mode=max"];
    let images: Vec<String> = ["brix", "buildx"]
        .iter()
        .map(|tool| builder.push(tool, "attest", &args))
        .collect();
    let (brix, buildx) = (layout(&images[0]), layout(&images[1]));

    // What BuildKit makes of them, as buildx's push shows: an attestation manifest per
    // platform, after the images, with the SBOM then the provenance.
    let names: Vec<&str> = buildx.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "linux/amd64",
            "linux/arm64",
            "attestation of linux/amd64",
            "attestation of linux/arm64"
        ],
        "buildx's index: {buildx:#?}"
    );
    for (name, entry) in &buildx.entries[2..] {
        assert_eq!(entry.platform, "unknown/unknown", "buildx: {name}");
        assert_eq!(
            entry
                .annotations
                .get("vnd.docker.reference.type")
                .map(String::as_str),
            Some("attestation-manifest"),
            "buildx: {name}"
        );
        assert_eq!(predicate_types(entry), [SPDX, SLSA_V1], "buildx: {name}");
        assert!(
            entry
                .layers
                .iter()
                .all(|(media_type, _)| media_type == "application/vnd.in-toto+json"),
            "buildx: {name}: {entry:?}"
        );
    }

    // brix, with one solve per platform and its own index, lays them out the same way.
    assert_eq!(
        (&brix.media_type, &brix.entries),
        (&buildx.media_type, &buildx.entries),
        "brix's pushed index and manifests, then buildx's"
    );

    // brix's statements: an SPDX document of the image it is attached to, listing the
    // busybox the image is made of; a mode=max provenance.
    for platform in ["linux/amd64", "linux/arm64"] {
        let name = format!("attestation of {platform}");
        let dir = env.scratch_dir(&format!("attest-{}", platform.replace('/', "-")));
        let statements = statements(&images[0], &brix.digests[&name], &dir);
        let sbom = &statements[SPDX];
        assert_eq!(
            sbom["subject"][0]["digest"]["sha256"]
                .as_str()
                .map(|d| format!("sha256:{d}")),
            Some(brix.digests[platform].clone()),
            "brix: the SBOM of {platform} names its image: {sbom:#}"
        );
        let doc = &sbom["predicate"];
        assert!(
            doc["spdxVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("SPDX-2.")),
            "brix: {platform}: {doc:#}"
        );
        assert!(
            spdx_packages(doc)
                .iter()
                .any(|p| p.starts_with("busybox@1.")),
            "brix: {platform}: the SBOM lists busybox: {:?}",
            spdx_packages(doc)
        );
        let provenance = &statements[SLSA_V1]["predicate"];
        assert!(
            provenance["buildDefinition"]["internalParameters"]["buildConfig"].is_object(),
            "brix: {platform}: mode=max provenance has the build's definition: {provenance:#}"
        );
    }

    // A consumer of attestations reads brix's as it reads buildx's.
    let sboms: Vec<BTreeMap<String, Vec<String>>> = images
        .iter()
        .map(|image| {
            let r = run(env.buildx_in(&builder.shared.store).args([
                "imagetools",
                "inspect",
                image,
                "--format",
                "{{json .SBOM}}",
            ]))
            .ok();
            let by_platform: BTreeMap<String, Value> =
                serde_json::from_str(&r.stdout).expect("imagetools' SBOM JSON");
            by_platform
                .into_iter()
                .map(|(p, s)| (p, spdx_packages(&s["SPDX"])))
                .collect()
        })
        .collect();
    assert_eq!(
        sboms[0].keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "imagetools inspect: brix's SBOMs"
    );
    assert_eq!(
        sboms[0], sboms[1],
        "imagetools inspect: brix's SBOMs, then buildx's"
    );
}

#[test]
fn a_disabled_sbom_is_left_out_as_buildx_leaves_it_out() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = Builder::new(&env, "attest-off");
    let generator = format!("--sbom=generator={}", scanner(&env));
    for args in [
        vec!["--sbom=false"],
        vec!["--attest", "type=sbom,disabled=true"],
        // The first value of a type wins.
        vec!["--attest", "type=sbom,disabled=true", generator.as_str()],
    ] {
        let layouts: Vec<Layout> = ["brix", "buildx"]
            .iter()
            .map(|tool| layout(&builder.push(tool, "attest-off", &args)))
            .collect();
        for (name, entry) in &layouts[0].entries {
            assert!(
                !predicate_types(entry).contains(&SPDX),
                "brix {args:?}: {name} has an SBOM: {entry:?}"
            );
        }
        // The default provenance stays.
        assert_eq!(
            predicate_types(&layouts[1].entries[2].1),
            [SLSA_V1],
            "buildx {args:?}"
        );
        assert_eq!(
            layouts[0].entries, layouts[1].entries,
            "{args:?}: brix's index, then buildx's"
        );
    }
}

#[test]
fn bad_attestations_are_refused_with_buildx_s_words() {
    let Some(env) = E2eEnv::get() else { return };
    let builder = Builder::new(&env, "attest-bad");
    for bad in [
        &["--attest", "type=foo"][..],
        &["--attest", "mode=max"],
        &["--attest", "type"],
        &["--attest="],
        &["--sbom=foo"],
        &["--provenance=max"],
        &["--attest", "type=sbom,disabled=maybe"],
        &["--attest", "type=sbom,generator="],
        &["--attest", "type=sbom,\"generator=x"],
    ] {
        let runs: Vec<Run> = ["brix", "buildx"]
            .iter()
            .map(|tool| {
                let (code, r) = run_with_code(&mut builder.build_command(tool, bad));
                assert_eq!(code, Some(1), "{tool} {bad:?}:\n{}", r.stderr);
                r
            })
            .collect();
        assert_eq!(
            runs[0].error_line(),
            runs[1].error_line(),
            "{bad:?}: brix, then buildx"
        );
    }
    // Refused before any daemon is asked: even the builder is never looked up.
    let r = run(env.brix_in(&builder.shared.store).args([
        "build",
        "--builder",
        "no-such-builder",
        "--attest",
        "type=foo",
        path(&builder.ctx),
    ]));
    assert_eq!(
        r.error_line(),
        "ERROR: failed to build: failed to solve: unknown attestation type \"foo\""
    );

    // The engine's own BuildKit on the classic image store keeps no attestations: buildx
    // refuses them there, and so does brix (on one line).
    let lines: Vec<String> = ["brix", "buildx"]
        .iter()
        .map(|tool| {
            run(env
                .tool_in(tool, &builder.shared.store)
                .args(["build", "--builder", "default", "--sbom=true"])
                .arg(&builder.ctx))
            .error_line()
        })
        .collect();
    assert!(
        lines[0].starts_with(&lines[1]),
        "the docker driver: brix's line, then buildx's first\n{}\n{}",
        lines[0],
        lines[1]
    );
}
