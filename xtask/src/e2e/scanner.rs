//! Step 13: `localhost:5000/buildkit-syft-scanner:e2e`, the SBOM generator the attestation
//! tests pass as `--sbom=generator=…` (BuildKit's default, `docker/buildkit-syft-scanner`,
//! cannot be pulled on these machines, and its Go module is not served by the module proxy).
//!
//! The generator is our own small program, `xtask/assets/syft-scanner`: BuildKit's scanner
//! protocol (`BUILDKIT_SCAN_SOURCE`, `BUILDKIT_SCAN_SOURCE_EXTRAS`, `BUILDKIT_SCAN_DESTINATION`,
//! one in-toto statement per scanned filesystem) around syft v1.57.1 used as a library, the way
//! docker/buildkit-syft-scanner is built. It is compiled statically with the project's Go
//! (cold: about 5 minutes on 2 cores, most of it compiling syft's catalogers; a scanner of our
//! own that writes a minimal SPDX document would be quicker to build but would not show that
//! brix carries a real scanner's output) and packed into a `FROM scratch` image with the
//! classic builder, then pushed. One platform, the build machine's: BuildKit runs the scanner
//! on the worker's own platform whatever the target platforms are.
//!
//! The image is labelled with a digest of the wrapper's sources (go.mod, go.sum, main.go), so
//! a changed wrapper is rebuilt and an unchanged one costs a registry look-up.

use super::process::{self, output};
use super::{REGISTRY_HOST, Workspace, go_toolchain};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The image's repository and tag in the e2e registry (see [`image`]).
const REPOSITORY_TAG: &str = "buildkit-syft-scanner:e2e";
/// Image label carrying [`recipe`], checked to reuse an image that is up to date.
const RECIPE_LABEL: &str = "dev.brix.e2e.scanner-recipe";
/// The wrapper module's files; the recipe is their digest.
const SOURCES: &[&str] = &["go.mod", "go.sum", "main.go"];

/// `localhost:5000/buildkit-syft-scanner:e2e`, as the tests name it (`BRIX_E2E_SCANNER`).
pub fn image() -> String {
    format!("{REGISTRY_HOST}/{REPOSITORY_TAG}")
}

/// Builds and pushes the image unless the registry has it with the current recipe.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let image = image();
    let wrapper = ws.root.join("xtask/assets/syft-scanner");
    let recipe = recipe(&wrapper)?;
    if pushed_recipe(&image).as_deref() == Some(recipe.as_str()) {
        return Ok(format!("{image} already has recipe {recipe}"));
    }
    let bin = ws
        .e2e_dir
        .join("scanner")
        .join(&recipe)
        .join("syft-scanner");
    let compiled = !bin.is_file();
    if compiled {
        build_binary(ws, &wrapper, &bin)?;
    }
    let context = ws.e2e_dir.join("scanner-image");
    write_context(&bin, &recipe, &context)?;
    let log = ws.e2e_dir.join("scanner").join("docker.log");
    process::logged(
        Command::new("docker")
            // The classic builder: a FROM scratch + COPY image needs nothing more.
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "-t", &image])
            .arg(&context),
        &log,
    )?;
    process::logged(Command::new("docker").args(["push", &image]), &log)?;
    if pushed_recipe(&image).as_deref() != Some(recipe.as_str()) {
        bail!("after the push, {image} does not carry {RECIPE_LABEL}={recipe}");
    }
    Ok(format!(
        "{}pushed {image} (recipe {recipe})",
        if compiled {
            format!(
                "compiled the syft scanner into {}, ",
                ws.display(bin.parent().unwrap_or(&bin))
            )
        } else {
            String::new()
        }
    ))
}

/// The first 12 hex digits of the SHA-256 over the wrapper's sources.
fn recipe(wrapper: &Path) -> Result<String> {
    let mut hash = Sha256::new();
    for name in SOURCES {
        let path = wrapper.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(format!("{:x}", hash.finalize())[..12].to_owned())
}

/// The recipe label of the image in the registry, if it is there.
fn pushed_recipe(image: &str) -> Option<String> {
    let json = output(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]))
    .ok()?;
    let info: serde_json::Value = serde_json::from_str(&json).ok()?;
    info["Labels"][RECIPE_LABEL].as_str().map(str::to_owned)
}

/// `go build` the wrapper statically into `bin` (through a scratch folder, so an interrupted
/// build never leaves a binary a later run would take for a finished one).
fn build_binary(ws: &Workspace, wrapper: &Path, bin: &Path) -> Result<()> {
    let go = go_toolchain::go_binary(ws)?;
    let dir = bin.parent().context("the scanner binary has no folder")?;
    let scratch = dir.with_extension("partial");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    let log = ws.e2e_dir.join("scanner").join("go-build.log");
    println!(
        "[e2e]       scanner: compiling syft's scanner with {} (about 5 minutes; log: {})",
        go.display(),
        ws.display(&log)
    );
    process::logged(
        Command::new(&go)
            .current_dir(wrapper)
            .env("CGO_ENABLED", "0")
            // The wrapper sits in brix's git tree, which may lack git.
            .args([
                "build",
                "-trimpath",
                "-buildvcs=false",
                "-ldflags=-s -w",
                "-o",
            ])
            .arg(scratch.join("syft-scanner"))
            .arg("."),
        &log,
    )
    .context("building the syft scanner from the Go module proxy (`go env GOPROXY`)")?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&scratch, dir)
        .with_context(|| format!("moving {} to {}", scratch.display(), dir.display()))?;
    Ok(())
}

/// Writes the `docker build` context: the binary and a Dockerfile that copies it.
fn write_context(bin: &Path, recipe: &str, context: &Path) -> Result<()> {
    if context.exists() {
        std::fs::remove_dir_all(context)
            .with_context(|| format!("removing {}", context.display()))?;
    }
    std::fs::create_dir_all(context)?;
    let copied: PathBuf = context.join("syft-scanner");
    std::fs::copy(bin, &copied)
        .with_context(|| format!("copying {} to {}", bin.display(), copied.display()))?;
    let dockerfile = format!(
        "FROM scratch\n\
         COPY syft-scanner /bin/syft-scanner\n\
         LABEL {RECIPE_LABEL}=\"{recipe}\"\n\
         ENTRYPOINT [\"/bin/syft-scanner\"]\n"
    );
    std::fs::write(context.join("Dockerfile"), dockerfile)?;
    Ok(())
}

/// Whether the registry has the image now (for `--no-setup`: the tests that need it are told
/// so by `BRIX_E2E_SCANNER` being unset).
pub fn pushed() -> bool {
    pushed_recipe(&image()).is_some()
}
