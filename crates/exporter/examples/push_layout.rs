//! Pushes an OCI layout (a directory, or a tarball such as `-o type=oci,dest=out.tar`
//! writes) to a registry, blobs first and the index last, and prints what it did.
//!
//! ```text
//! cargo run -p brix-exporter --example push_layout -- LAYOUT REGISTRY/REPO [TAG...]
//! cargo run -p brix-exporter --example push_layout -- out.tar localhost:5000/app 1 latest
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use brix_exporter::{OciLayout, Registry, RegistryOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layout, repository, tags @ ..] = args.as_slice() else {
        eprintln!("usage: push_layout LAYOUT-DIR-OR-TAR REGISTRY/REPO [TAG...]");
        return ExitCode::from(2);
    };
    match push(PathBuf::from(layout), repository, tags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn push(path: PathBuf, repository: &str, tags: &[String]) -> brix_exporter::Result<()> {
    // A tarball is unpacked next to itself first (verifying every blob), then pushed from disk.
    let (layout, scratch) = if path.is_dir() {
        (OciLayout::open(&path)?, None)
    } else {
        let dir = path.with_extension("unpacked");
        (OciLayout::unpack_tar_file(&path, &dir)?, Some(dir))
    };
    let registry = Registry::new(RegistryOptions::default());
    let started = Instant::now();
    let result = registry.push_layout(&layout, repository, tags).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = result?;
    let seconds = started.elapsed().as_secs_f64();
    println!("{}", report.digest());
    eprintln!(
        "pushed {} in {seconds:.2}s: {} blobs uploaded ({:.1} MB, {:.1} MB/s), {} already there, {} mounted, {} manifests",
        report.descriptor.media_type,
        report.uploaded,
        report.uploaded_bytes as f64 / 1e6,
        report.uploaded_bytes as f64 / 1e6 / seconds.max(1e-9),
        report.existing,
        report.mounted,
        report.manifests,
    );
    Ok(())
}
