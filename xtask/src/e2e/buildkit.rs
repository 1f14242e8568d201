//! Step 6: the BuildKit daemon image `moby/buildkit:buildx-stable-1`, made here because no
//! BuildKit image can be pulled on these machines and no Debian package ships buildkitd.
//!
//! buildkitd and buildctl are built from the BuildKit Go module through the wrapper module in
//! `xtask/assets/buildkit-wrapper` (`go install ...@version` is refused because BuildKit's go.mod
//! has `exclude` directives). The image is busybox + buildkitd + buildctl + Debian's runc with
//! its shared libraries, `ENTRYPOINT ["buildkitd"]`, `VOLUME /var/lib/buildkit`: what buildx's
//! docker-container driver (and brix's) expects of that image. Like the official image (whose
//! Dockerfile runs `apk add git openssh pigz xz`), it also carries the host's git (with its
//! helpers in `/usr/lib/git-core`), ssh, pigz and xz with their libraries, which buildkitd runs
//! from its PATH: git and ssh for remote git contexts, pigz and xz for layer compression.

use super::process::{self, output};
use super::{BUILDKIT_IMAGE, Workspace, busybox, go_toolchain};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned BuildKit release. v0.34.2 is the newest release on the module proxy (checked
/// 2026-11-26 with `go list -m -versions github.com/moby/buildkit`); its go.mod says
/// `go 1.26.8`, which the Go on these machines (go1.26.8) accepts, and it builds with
/// CGO_ENABLED=0. Keep in step with `xtask/assets/buildkit-wrapper/go.mod`.
pub const BUILDKIT_VERSION: &str = "v0.34.2";

/// Image label carrying the BuildKit version, checked to reuse an image that is up to date.
pub const VERSION_LABEL: &str = "dev.brix.e2e.buildkit-version";
/// Image label carrying the revision of the recipe below; bump it when the image changes
/// shape, so existing machines rebuild it.
const RECIPE_LABEL: &str = "dev.brix.e2e.buildkit-recipe";
/// Revision 2 added git, ssh, pigz and xz ([`IMAGE_TOOLS`]).
const RECIPE: &str = "2";

/// Host files copied into the image at the same paths (folders whole, symlinks as symlinks),
/// with the Debian package each comes from, for the message when one is missing. ELF files
/// bring the libraries `ldd` names.
const IMAGE_TOOLS: &[(&str, &str)] = &[
    ("/usr/bin/git", "git"),
    // `git-remote-http(s)` for http(s) remotes, `git-submodule` and the shell helpers it
    // sources; the other entries are links to `git`.
    ("/usr/lib/git-core", "git"),
    // What `git init` copies into a new repository (without it, a warning on every init).
    ("/usr/share/git-core/templates", "git"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/pigz", "pigz"),
    ("/usr/bin/unpigz", "pigz"),
    ("/usr/bin/xz", "xz-utils"),
    ("/usr/bin/unxz", "xz-utils"),
    ("/usr/bin/xzcat", "xz-utils"),
];

/// Builds the image unless one with the pinned version and recipe exists.
/// Where `buildkitd` and `buildctl` of [`BUILDKIT_VERSION`] are built.
pub fn bin_dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("buildkit").join(BUILDKIT_VERSION)
}

pub fn ensure(ws: &Workspace) -> Result<String> {
    let bin_dir = bin_dir(ws);
    if image_is_current() {
        // The tests run the host's buildctl too; an engine that kept the image while
        // `target/` was cleaned has none, so take the image's own.
        let copied = if bin_dir.join("buildctl").is_file() {
            String::new()
        } else {
            copy_binaries_out_of_image(&bin_dir)?;
            format!("; copied its buildctl to {}", ws.display(&bin_dir))
        };
        return Ok(format!(
            "{BUILDKIT_IMAGE} already has BuildKit {BUILDKIT_VERSION}{copied}"
        ));
    }
    let built_binaries =
        !(bin_dir.join("buildkitd").is_file() && bin_dir.join("buildctl").is_file());
    if built_binaries {
        build_binaries(ws, &bin_dir)?;
    }
    let context = ws.e2e_dir.join("buildkit-image");
    write_context(ws, &bin_dir, &context)?;
    let log = ws.e2e_dir.join("buildkit").join("docker-build.log");
    process::logged(
        Command::new("docker")
            // The classic builder: present on every engine, and a FROM scratch + COPY image
            // needs nothing more.
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "-t", BUILDKIT_IMAGE])
            .arg(&context),
        &log,
    )?;
    if !image_is_current() {
        bail!(
            "`docker build` succeeded but {BUILDKIT_IMAGE} does not carry {VERSION_LABEL}={BUILDKIT_VERSION}"
        );
    }
    if let Err(err) = check_image_tools() {
        // Otherwise its labels would make the next run take it for a good one.
        let _ = output(Command::new("docker").args(["rmi", BUILDKIT_IMAGE]));
        return Err(err);
    }
    Ok(format!(
        "{}built {BUILDKIT_IMAGE} with BuildKit {BUILDKIT_VERSION}, git, ssh, pigz and xz",
        if built_binaries {
            format!(
                "compiled buildkitd and buildctl into {}, ",
                ws.display(&bin_dir)
            )
        } else {
            String::new()
        }
    ))
}

fn image_is_current() -> bool {
    let format = format!(
        "{{{{ index .Config.Labels \"{VERSION_LABEL}\" }}}} {{{{ index .Config.Labels \"{RECIPE_LABEL}\" }}}}"
    );
    output(Command::new("docker").args(["image", "inspect", "--format", &format, BUILDKIT_IMAGE]))
        .is_ok_and(|labels| labels.trim() == format!("{BUILDKIT_VERSION} {RECIPE}"))
}

/// Copies `buildkitd` and `buildctl` out of the current image into `bin_dir` (through a
/// created, never started, container), so the host's binaries match the daemon's.
fn copy_binaries_out_of_image(bin_dir: &Path) -> Result<()> {
    let scratch = bin_dir.with_extension("partial");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    let container = output(Command::new("docker").args(["create", BUILDKIT_IMAGE]))
        .context("creating a container of the BuildKit image to copy buildctl out of it")?;
    let container = container.trim().to_string();
    let copied = ["buildkitd", "buildctl"].iter().try_for_each(|name| {
        output(
            Command::new("docker")
                .arg("cp")
                .arg(format!("{container}:/usr/bin/{name}"))
                .arg(scratch.join(name)),
        )
        .map(drop)
        .with_context(|| format!("copying /usr/bin/{name} out of {BUILDKIT_IMAGE}"))
    });
    let _ = output(Command::new("docker").args(["rm", "-f", &container]));
    copied?;
    if bin_dir.exists() {
        std::fs::remove_dir_all(bin_dir)?;
    }
    std::fs::rename(&scratch, bin_dir)
        .with_context(|| format!("moving {} to {}", scratch.display(), bin_dir.display()))?;
    Ok(())
}

/// `go build` buildkitd and buildctl from the wrapper module, statically (CGO_ENABLED=0).
fn build_binaries(ws: &Workspace, bin_dir: &Path) -> Result<()> {
    let go = go_toolchain::go_binary(ws)?;
    let wrapper = ws.root.join("xtask/assets/buildkit-wrapper");
    let log = ws
        .e2e_dir
        .join("buildkit")
        .join(format!("go-build-{BUILDKIT_VERSION}.log"));
    // Build into a scratch folder and move into place, so an interrupted build never leaves
    // a half-written binary that a later run would take for a finished one.
    let scratch = bin_dir.with_extension("partial");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    println!(
        "[e2e]       buildkit: compiling buildkitd and buildctl {BUILDKIT_VERSION} with {} (a few minutes; log: {})",
        go.display(),
        ws.display(&log)
    );
    process::logged(
        Command::new(&go)
            .current_dir(&wrapper)
            .env("CGO_ENABLED", "0")
            // Release builds stamp the version at link time; without it the daemon reports
            // v0.0.0+unknown to clients (`buildctl debug info`, `brix inspect`).
            // No VCS stamping: the wrapper sits in brix's git tree, which may lack git.
            .args(["build", "-trimpath", "-buildvcs=false", "-o"])
            .arg(&scratch)
            .arg(format!(
                "-ldflags=-s -w -X github.com/moby/buildkit/version.Version={BUILDKIT_VERSION}"
            ))
            .args([
                "github.com/moby/buildkit/cmd/buildkitd",
                "github.com/moby/buildkit/cmd/buildctl",
            ]),
        &log,
    )
    .context(
        "building BuildKit from the Go module (is the Go module proxy reachable? `go env GOPROXY`)",
    )?;
    if bin_dir.exists() {
        std::fs::remove_dir_all(bin_dir)?;
    }
    std::fs::rename(&scratch, bin_dir)
        .with_context(|| format!("moving {} to {}", scratch.display(), bin_dir.display()))?;
    Ok(())
}

/// Writes the `docker build` context: `rootfs/` and a Dockerfile that copies it.
fn write_context(ws: &Workspace, bin_dir: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        std::fs::remove_dir_all(context)
            .with_context(|| format!("removing {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    let applets = busybox::applets(ws)?;
    busybox::write_rootfs_dir(ws, "amd64", &applets, &rootfs)?;

    let usr_bin = rootfs.join("usr/bin");
    std::fs::create_dir_all(&usr_bin)?;
    for name in ["buildkitd", "buildctl"] {
        copy(&bin_dir.join(name), &usr_bin.join(name))?;
    }
    // Debian's runc is dynamically linked: its libraries go to the same paths inside the
    // image, so the ELF interpreter and the loader's default search path find them.
    let runc = process::find_on_path("runc")
        .or_else(|| Some(PathBuf::from("/usr/sbin/runc")).filter(|p| p.is_file()))
        .context("runc is not installed (it comes with docker.io)")?;
    copy(&runc, &usr_bin.join("runc"))?;
    for library in shared_libraries(&runc)? {
        let relative = library.strip_prefix("/").unwrap_or(&library);
        let dest = rootfs.join(relative);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        copy(&library, &dest)?;
    }

    add_host_tools(&rootfs)?;

    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         LABEL {VERSION_LABEL}=\"{BUILDKIT_VERSION}\" {RECIPE_LABEL}=\"{RECIPE}\"\n\
         VOLUME /var/lib/buildkit\n\
         ENTRYPOINT [\"buildkitd\"]\n"
    );
    std::fs::write(context.join("Dockerfile"), dockerfile)?;
    Ok(())
}

/// Copies [`IMAGE_TOOLS`] and the libraries of every ELF file among them into `rootfs`.
fn add_host_tools(rootfs: &Path) -> Result<()> {
    let mut elf_files = Vec::new();
    for (path, package) in IMAGE_TOOLS {
        let path = Path::new(path);
        if std::fs::symlink_metadata(path).is_err() {
            bail!(
                "{} is missing: the package {package} is not installed (the `packages` step installs it)",
                path.display()
            );
        }
        copy_tree(path, &rootfs.join(path.strip_prefix("/")?), &mut elf_files)?;
    }
    let mut libraries = std::collections::BTreeSet::new();
    for file in &elf_files {
        libraries.extend(dynamic_libraries(file)?);
    }
    for library in libraries {
        let dest = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        copy(&library, &dest)?;
    }
    Ok(())
}

/// Copies `from` to `to`: a folder with everything beneath it, a symlink as a symlink (same
/// target), a file with its permissions; pushes the ELF files it copied onto `elf_files`.
fn copy_tree(from: &Path, to: &Path, elf_files: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        std::os::unix::fs::symlink(&target, to)
            .with_context(|| format!("linking {} to {}", to.display(), target.display()))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut entries = std::fs::read_dir(from)
            .with_context(|| format!("listing {}", from.display()))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()?;
        entries.sort();
        for name in entries {
            copy_tree(&from.join(&name), &to.join(&name), elf_files)?;
        }
    } else {
        copy(from, to)?;
        let mut magic = [0u8; 4];
        let is_elf = std::fs::File::open(from)
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if is_elf {
            elf_files.push(from.to_path_buf());
        }
    }
    Ok(())
}

/// [`shared_libraries`] of an ELF file that may be statically linked (then none).
fn dynamic_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return Ok(parse_ldd(&stdout));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if format!("{stdout}{stderr}").contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    bail!("`ldd {}` failed: {}", binary.display(), stderr.trim())
}

/// Runs each tool of the new image once (`--version`), so a missing library fails the step
/// rather than a test. By absolute paths: busybox's sh runs its own applets (`xz`, `unxz`)
/// before PATH, where buildkitd's exec finds the real ones.
fn check_image_tools() -> Result<()> {
    output(Command::new("docker").args([
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        BUILDKIT_IMAGE,
        "-c",
        "/usr/bin/git --version && { /usr/bin/git remote-http 2>&1 | grep -q remote-curl; } \
         && /usr/bin/ssh -V && /usr/bin/pigz --version && /usr/bin/unpigz --version \
         && /usr/bin/xz --version && /usr/bin/unxz --version",
    ]))
    .with_context(|| format!("running git, ssh, pigz and xz in {BUILDKIT_IMAGE}"))?;
    Ok(())
}

/// Copies a file (following symlinks) and keeps its permissions.
fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// The absolute paths `ldd` resolves for a binary (libraries and the ELF interpreter).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(binary))?;
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_ldd;
    use std::path::PathBuf;

    #[test]
    fn ldd_output_gives_libraries_and_interpreter() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibseccomp.so.2 => /lib/x86_64-linux-gnu/libseccomp.so.2 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libseccomp.so.2"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
