//! The `docker` driver's multi-platform push (brix-exporter's `engine_image`): two
//! single-platform images built by the engine's own BuildKit (the arm64 one with a RUN under
//! QEMU) are taken out of the engine, pushed with brix's registry code as one OCI index, and
//! checked with skopeo (an independent client) and by running the arm64 image. It runs on
//! both engines: `docker save` writes uncompressed layers on the classic store and the
//! registry's compressed blobs on the containerd image store.

use std::process::Command;

use brix_e2e::{E2eEnv, Engine, index_platforms, run, skopeo, test_label, unique_name};
use brix_exporter::RegistryOptions;
use brix_exporter::descriptor::{media_type, sha256_digest};
use brix_exporter::engine_image::{
    EngineImage, EngineImageError, EngineImagePusher, remove_engine_images,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// `skopeo inspect --raw [--config]` of `reference`, as text (the exact bytes served).
#[track_caller]
fn skopeo_raw(reference: &str, config: bool) -> String {
    let target = format!("docker://{reference}");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if config {
        args.push("--config");
    }
    args.push(&target);
    skopeo(args).ok().stdout
}

#[track_caller]
fn json(text: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{text}"))
}

/// Runs `cat /arch` in `reference` for `platform`, pulled fresh from the registry.
#[track_caller]
fn arch_file(engine: &Engine, reference: &str, platform: &str) -> String {
    // Engine 20.10 keeps one platform per name: drop the local copy so `run` pulls.
    let _ = engine.docker(["rmi", reference]);
    let out = engine
        .docker([
            "run",
            "--rm",
            "--label",
            &test_label(),
            "--platform",
            platform,
            reference,
            "cat",
            "/arch",
        ])
        .ok()
        .stdout;
    let _ = engine.docker(["rmi", reference]);
    out.trim().to_owned()
}

#[test]
fn engine_images_of_two_platforms_are_pushed_as_one_index() {
    let Some(env) = E2eEnv::get() else { return };
    for engine in env.engines() {
        push_engine_images(&env, &engine);
    }
}

fn push_engine_images(env: &E2eEnv, engine: &Engine) {
    let context = env.scratch_dir("engine-push");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nRUN uname -m > /arch\n", env.busybox),
    )
    .unwrap_or_else(|e| panic!("writing the Dockerfile: {e}"));

    // One engine name per platform: engine 20.10 keeps one platform per name.
    let local = unique_name("engine-push-local");
    let amd64 = format!("{local}:linux-amd64");
    let arm64 = format!("{local}:linux-arm64");
    for (name, platform) in [(&amd64, "linux/amd64"), (&arm64, "linux/arm64")] {
        run(Command::new("docker")
            .env("DOCKER_BUILDKIT", "1")
            // The engine's own BuildKit, whatever builder buildx has as current.
            .env("BUILDX_BUILDER", "default")
            .env("DOCKER_HOST", &engine.host)
            // One image per name, without an attestation manifest beside it.
            .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
            .args(["build", "--platform", platform, "--label", &test_label()])
            .args(["-t", name])
            .arg(&context))
        .ok();
    }
    let images = [
        EngineImage::new(&amd64)
            .expect_platform("linux/amd64".parse().unwrap_or_else(|e| panic!("{e}"))),
        EngineImage::new(&arm64)
            .expect_platform("linux/arm64".parse().unwrap_or_else(|e| panic!("{e}"))),
    ];
    let target = env.registry_ref("engine-push-test", "1");
    let repository = target
        .rsplit_once(':')
        .map(|(repo, _)| repo.to_owned())
        .unwrap_or_else(|| panic!("{target} has no tag"));
    let also = format!("{repository}:also");

    let rt = runtime();
    let (first, second) = rt.block_on(async {
        let socket = engine.host.trim_start_matches("unix://");
        let docker = bollard::Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
            .unwrap_or_else(|e| panic!("connecting to the Docker engine {}: {e}", engine.name))
            .negotiate_version()
            .await
            .unwrap_or_else(|e| panic!("asking the Docker engine for its API version: {e}"));
        let pusher = EngineImagePusher::new(docker.clone(), RegistryOptions::default());
        let first = pusher
            .push_multi_platform(&images, &[target.clone(), also.clone()])
            .await
            .unwrap_or_else(|e| panic!("first push on {}: {e}", engine.name));
        // Pushed again: the same manifests (reproducible gzip), so nothing is uploaded.
        let second = pusher
            .push_multi_platform(&images, std::slice::from_ref(&target))
            .await
            .unwrap_or_else(|e| panic!("second push: {e}"));

        // An image that is not for the platform asked for is refused before anything is sent.
        let wrong = EngineImage::new(&amd64)
            .expect_platform("linux/arm64".parse().unwrap_or_else(|e| panic!("{e}")));
        let err = pusher
            .push_image(&wrong, &repository)
            .await
            .err()
            .unwrap_or_else(|| panic!("{amd64} was pushed as linux/arm64"));
        assert!(
            matches!(err, EngineImageError::PlatformMismatch { .. }),
            "{err}"
        );

        // The temporary names go away; a second removal is not an error.
        remove_engine_images(&docker, &[&amd64, &arm64])
            .await
            .unwrap_or_else(|e| panic!("removing the engine images: {e}"));
        remove_engine_images(&docker, &[&amd64])
            .await
            .unwrap_or_else(|e| panic!("removing an image that is gone: {e}"));
        let err = pusher
            .push_image(&EngineImage::new(&amd64), &repository)
            .await
            .err()
            .unwrap_or_else(|| panic!("{amd64} was pushed after its removal"));
        assert!(matches!(err, EngineImageError::NotInEngine { .. }), "{err}");
        (first, second)
    });

    assert_eq!(first.index.digest(), second.index.digest());
    assert_eq!(first.images.len(), 2, "two images, one repository");
    assert!(
        first
            .images
            .iter()
            .all(|i| i.report.uploaded > 0 || i.report.existing > 0),
        "{:?}",
        first.images
    );
    for image in &second.images {
        assert_eq!(
            image.report.uploaded, 0,
            "second push of {} uploaded blobs: {:?}",
            image.source, image.report
        );
    }

    // What skopeo reads is the index brix assembled, under both tags.
    for reference in [&target, &also] {
        let raw = skopeo_raw(reference, false);
        assert_eq!(
            sha256_digest(raw.as_bytes()),
            first.index.digest(),
            "{reference}"
        );
        let index = json(&raw, reference);
        assert_eq!(index["mediaType"], media_type::OCI_INDEX, "{index:#}");
        assert_eq!(
            index_platforms(&index),
            ["linux/amd64", "linux/arm64"],
            "{index:#}"
        );
    }

    // Each manifest is OCI with gzip layers, and its config names its architecture.
    let index = json(&skopeo_raw(&target, false), &target);
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        let digest = entry["digest"].as_str().unwrap_or_default();
        let by_digest = format!("{repository}@{digest}");
        let manifest = json(&skopeo_raw(&by_digest, false), &by_digest);
        assert_eq!(
            manifest["mediaType"],
            media_type::OCI_MANIFEST,
            "{manifest:#}"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            media_type::OCI_CONFIG,
            "{manifest:#}"
        );
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        assert!(!layers.is_empty(), "{manifest:#}");
        for layer in &layers {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{manifest:#}"
            );
        }
        let config = json(&skopeo_raw(&by_digest, true), &by_digest);
        assert_eq!(config["architecture"], arch, "{config:#}");
        assert_eq!(config["os"], "linux", "{config:#}");
    }

    // The engine pulls the index and picks each platform; the arm64 RUN ran under QEMU.
    assert_eq!(arch_file(engine, &target, "linux/arm64"), "aarch64");
    assert_eq!(arch_file(engine, &target, "linux/amd64"), "x86_64");
}
