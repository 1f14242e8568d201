//! The "push by digest on each runner, then merge" CI workflow (issue 12): two single-platform
//! builds pushed by digest with `--metadata-file`, then `imagetools create -t TAG --annotation
//! … REPO@DIGEST…` — brix's index is byte for byte the one real buildx's `imagetools create`
//! makes from the same inputs.

use std::process::Command;

use brix_e2e::{E2eEnv, path, run, unique_name};

#[test]
fn per_platform_pushes_by_digest_merge_into_the_index_buildx_makes() {
    let Some(env) = E2eEnv::get() else { return };
    let store = env.scratch_dir("merge-store");
    let name = unique_name("merge");
    let brix = |args: &[&str]| run(env.brix_in(&store).args(args));
    env.create_builder(&store, &name, "");
    let ctx = env.scratch_dir("merge-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN uname -m > /arch && echo {} > /m\n",
            env.busybox,
            unique_name("m")
        ),
    )
    .expect("Dockerfile");
    let repository = format!("{}/{}", env.registry, unique_name("merge-app"));

    // One runner per platform: pushed by digest, the digest read from the metadata file.
    let mut digests = Vec::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let metadata = store.join(format!("{}.json", platform.replace('/', "-")));
        let output = format!(
            "type=image,name={repository},push-by-digest=true,name-canonical=true,push=true"
        );
        brix(&[
            "build",
            "--builder",
            &name,
            "--progress",
            "plain",
            "--platform",
            platform,
            "-o",
            &output,
            "--metadata-file",
            path(&metadata),
            path(&ctx),
        ])
        .ok();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
        let digest = meta["containerimage.digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no containerimage.digest in {meta}"))
            .to_owned();
        assert!(digest.starts_with("sha256:"), "{digest}");
        digests.push(format!("{repository}@{digest}"));
    }

    // The merge, with annotations, by both tools (a dry run prints the index).
    let tag = format!("{repository}:1");
    let merge = [
        "imagetools",
        "create",
        "--dry-run",
        "-t",
        &tag,
        "--annotation",
        "index:org.opencontainers.image.source=https://example.invalid/app",
        "--annotation",
        "manifest-descriptor[linux/arm64]:org.example.runner=arm64",
    ];
    let sources: Vec<&str> = digests.iter().map(String::as_str).collect();
    let ours = brix(&[&merge[..], &sources[..]].concat()).ok().stdout;
    let index: serde_json::Value = serde_json::from_str(&ours).expect("index json");
    assert_eq!(
        index["annotations"]["org.opencontainers.image.source"], "https://example.invalid/app",
        "{ours}"
    );
    assert_eq!(
        brix_e2e::index_platforms(&index)
            .into_iter()
            .filter(|p| p != "unknown/unknown")
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "{ours}"
    );
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        let buildx_config = env.scratch_dir("merge-buildx");
        let theirs = run(Command::new("docker")
            .env("BUILDX_CONFIG", &buildx_config)
            .env("DOCKER_HOST", &env.docker_host)
            .arg("buildx")
            .args(merge)
            .args(&sources))
        .ok()
        .stdout;
        assert_eq!(ours, theirs, "brix and buildx made different indexes");
    }

    // And for real: the tag serves that index.
    let pushed = brix(&[&merge[..1], &merge[1..2], &merge[3..], &sources[..]].concat()).ok();
    let digest = pushed.stdout.trim().to_owned();
    let (raw, _) = brix_e2e::pushed_index(&tag);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        digest,
        "the pushed index is the printed digest"
    );

    // One source and nothing to change: an index is pushed as it is, a single manifest too
    // with --prefer-index=false, and wrapped in a new index by default — as buildx does.
    let index_digest = digest;
    // Each platform's push is an index (the image and its provenance): its image manifest
    // is the single-manifest source.
    let (_, per_platform) = brix_e2e::pushed_index(&digests[0]);
    let single_manifest = per_platform["manifests"][0]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no manifest in {per_platform}"))
        .to_owned();
    let manifest_source = format!("{repository}@{single_manifest}");
    let tools: &[&str] = if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        &["brix", "buildx"]
    } else {
        &["brix"]
    };
    let mut wrapped = Vec::new();
    for tool in tools {
        let create = |target: &str, extra: &[&str], source: &str| {
            let mut c = if *tool == "brix" {
                env.brix_in(&store)
            } else {
                let mut c = Command::new("docker");
                c.env("BUILDX_CONFIG", env.scratch_dir("merge-buildx"))
                    .env("DOCKER_HOST", &env.docker_host)
                    .arg("buildx");
                c
            };
            run(c
                .args(["imagetools", "create", "-t", target])
                .args(extra)
                .arg(source))
            .ok();
            let (raw, _) = brix_e2e::pushed_index(target);
            format!("sha256:{}", sha256_hex(raw.as_bytes()))
        };
        let same_index = create(&format!("{repository}:copy-{tool}"), &[], &tag);
        assert_eq!(
            same_index, index_digest,
            "{tool}: one index source is kept as it is"
        );
        let manifest = create(
            &format!("{repository}:manifest-{tool}"),
            &["--prefer-index=false"],
            &manifest_source,
        );
        assert_eq!(
            manifest, single_manifest,
            "{tool}: --prefer-index=false keeps the manifest"
        );
        wrapped.push(create(
            &format!("{repository}:wrapped-{tool}"),
            &[],
            &digests[0],
        ));
        assert_ne!(
            wrapped[0], single_manifest,
            "{tool}: a new index over the manifest"
        );
    }
    if let [ours, theirs] = &wrapped[..] {
        assert_eq!(ours, theirs, "the same index over one manifest");
    }
    let _ = brix(&["rm", "--force", &name]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}
