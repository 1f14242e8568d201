//! Pushes per-platform images from the local Docker engine as one multi-platform image:
//! what `brix build --builder default --platform ... --push` does after its solves.
//!
//! ```text
//! cargo run -p brix-exporter --example push_engine_image -- \
//!     localhost:5000/app:1 app:amd64=linux/amd64 app:arm64=linux/arm64
//! ```
//!
//! Each `IMAGE[=PLATFORM]` is an image name (or ID) in the engine, with the platform it must
//! be for. The engine is `$DOCKER_HOST`, else the local socket. Prints the index digest and,
//! per platform, the manifest digest and what was uploaded.

use std::process::ExitCode;

use brix_exporter::RegistryOptions;
use brix_exporter::engine_image::{EngineImage, EngineImagePusher};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: push_engine_image REGISTRY/REPO:TAG IMAGE[=PLATFORM]...";
    let target = args.next().ok_or(usage)?;
    let images = args
        .map(|arg| -> Result<EngineImage, Box<dyn std::error::Error>> {
            Ok(match arg.split_once('=') {
                Some((name, platform)) => EngineImage::new(name).expect_platform(platform.parse()?),
                None => EngineImage::new(arg),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if images.is_empty() {
        return Err(usage.into());
    }
    // Engine 20.10 refuses API versions newer than its own: ask it which one to speak.
    let docker = bollard::Docker::connect_with_defaults()?
        .negotiate_version()
        .await?;
    let pusher = EngineImagePusher::new(docker, RegistryOptions::default());
    let pushed = pusher.push_multi_platform(&images, &[target]).await?;
    println!("{}", pushed.index.digest());
    for image in &pushed.images {
        let platform = image
            .manifest
            .platform
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        println!(
            "  {platform}: {} from {} ({} blobs uploaded, {} bytes; {} already there)",
            image.manifest.digest,
            image.source,
            image.report.uploaded,
            image.report.uploaded_bytes,
            image.report.existing
        );
    }
    Ok(())
}
