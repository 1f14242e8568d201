//! Step 5: `localhost:5000/busybox:latest`, an OCI image index of linux/amd64 and linux/arm64
//! made from Debian's busybox-static.
//!
//! The OCI layout is written here (layer tar.gz, config, manifests, index) and copied to the
//! registry with `skopeo copy --all`. That avoids `docker import`, which on engine 20.10
//! ignores `--platform` (environment.md), and needs no BuildKit. Timestamps are fixed, so the
//! same busybox .debs always give the same digests.

use super::packages::{BUSYBOX_ARCHES, busybox_dir};
use super::process::output;
use super::{BUSYBOX_IMAGE, Workspace};
use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Publishes the image unless the registry already has it with both platforms.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let reference = format!("docker://{BUSYBOX_IMAGE}");
    if let Ok(platforms) = remote_platforms(&reference)
        && has_all_platforms(&platforms)
    {
        return Ok(format!(
            "{BUSYBOX_IMAGE} already has {}",
            platforms.join(", ")
        ));
    }
    let applets = applets(ws)?;
    let layout = ws.e2e_dir.join("busybox-oci");
    write_layout(ws, &layout, &applets)?;
    output(
        Command::new("skopeo")
            .args(["copy", "--all", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(&reference),
    )?;
    let platforms = remote_platforms(&reference)?;
    if !has_all_platforms(&platforms) {
        bail!(
            "after the push, {BUSYBOX_IMAGE} lists only {}",
            platforms.join(", ")
        );
    }
    Ok(format!(
        "pushed {BUSYBOX_IMAGE} ({}, {} applets)",
        platforms.join(", "),
        applets.len()
    ))
}

fn has_all_platforms(platforms: &[String]) -> bool {
    BUSYBOX_ARCHES
        .iter()
        .all(|arch| platforms.iter().any(|p| *p == format!("linux/{arch}")))
}

/// `os/arch` of each manifest in the index at `reference`.
fn remote_platforms(reference: &str) -> Result<Vec<String>> {
    let raw =
        output(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", reference]))?;
    let index: Value = serde_json::from_str(&raw).context("skopeo printed invalid JSON")?;
    Ok(index["manifests"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| {
                    format!(
                        "{}/{}",
                        m["platform"]["os"].as_str().unwrap_or("?"),
                        m["platform"]["architecture"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The applet names busybox was built with (`busybox --list`), run natively on amd64.
pub fn applets(ws: &Workspace) -> Result<Vec<String>> {
    let busybox = busybox_dir(ws, "amd64").join("bin/busybox");
    let list = output(Command::new(&busybox).arg("--list"))
        .with_context(|| format!("listing applets of {}", busybox.display()))?;
    let mut applets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    if applets.is_empty() {
        bail!("{} --list printed no applets", busybox.display());
    }
    Ok(applets)
}

/// Writes a busybox rootfs (bin/busybox, a link per applet, /tmp, /etc/passwd) into `dir`,
/// for build contexts.
pub fn write_rootfs_dir(ws: &Workspace, arch: &str, applets: &[String], dir: &Path) -> Result<()> {
    for (path, entry) in rootfs_entries(ws, arch, applets)? {
        let dest = dir.join(&path);
        match entry {
            RootfsEntry::Dir(mode) => {
                std::fs::create_dir_all(&dest)?;
                set_mode(&dest, mode)?;
            }
            RootfsEntry::File(bytes, mode) => {
                std::fs::write(&dest, bytes)
                    .with_context(|| format!("writing {}", dest.display()))?;
                set_mode(&dest, mode)?;
            }
            RootfsEntry::Symlink(target) => {
                std::os::unix::fs::symlink(&target, &dest)
                    .with_context(|| format!("linking {}", dest.display()))?;
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

enum RootfsEntry {
    Dir(u32),
    File(Vec<u8>, u32),
    Symlink(String),
}

/// The rootfs in order (parents before children).
fn rootfs_entries(
    ws: &Workspace,
    arch: &str,
    applets: &[String],
) -> Result<Vec<(PathBuf, RootfsEntry)>> {
    let busybox_path = busybox_dir(ws, arch).join("bin/busybox");
    let busybox = std::fs::read(&busybox_path)
        .with_context(|| format!("reading {}", busybox_path.display()))?;
    let mut entries = vec![
        (PathBuf::from("bin"), RootfsEntry::Dir(0o755)),
        (PathBuf::from("etc"), RootfsEntry::Dir(0o755)),
        (PathBuf::from("root"), RootfsEntry::Dir(0o700)),
        (PathBuf::from("tmp"), RootfsEntry::Dir(0o1777)),
        (PathBuf::from("bin/busybox"), RootfsEntry::File(busybox, 0o755)),
        (
            PathBuf::from("etc/passwd"),
            RootfsEntry::File(
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".to_vec(),
                0o644,
            ),
        ),
        (
            PathBuf::from("etc/group"),
            RootfsEntry::File(b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
        ),
    ];
    entries.extend(applets.iter().map(|name| {
        (
            PathBuf::from("bin").join(name),
            RootfsEntry::Symlink("busybox".to_string()),
        )
    }));
    Ok(entries)
}

/// An uncompressed layer tar of the rootfs with fixed owners and timestamps.
fn layer_tar(ws: &Workspace, arch: &str, applets: &[String]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in rootfs_entries(ws, arch, applets)? {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            RootfsEntry::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_size(0);
                builder.append_data(&mut header, &path, std::io::empty())?;
            }
            RootfsEntry::File(bytes, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &path, bytes.as_slice())?;
            }
            RootfsEntry::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Writes one blob into the layout and returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Result<Value> {
    let digest = sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    let path = layout.join("blobs/sha256").join(hex);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() }))
}

/// Writes the OCI layout: one manifest per architecture, an index over them, and a top-level
/// `index.json` naming that index `latest`.
fn write_layout(ws: &Workspace, layout: &Path, applets: &[String]) -> Result<()> {
    if layout.exists() {
        std::fs::remove_dir_all(layout)
            .with_context(|| format!("removing {}", layout.display()))?;
    }
    std::fs::create_dir_all(layout.join("blobs/sha256"))
        .with_context(|| format!("creating {}", layout.display()))?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;

    let mut manifests = Vec::new();
    for arch in BUSYBOX_ARCHES {
        let tar = layer_tar(ws, arch, applets)?;
        let diff_id = sha256_digest(&tar);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&tar)?;
        let layer = put_blob(layout, OCI_LAYER_GZIP, &gz.finish()?)?;
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": { "Env": [PATH_ENV], "Cmd": ["sh"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{
                "created": "1970-01-01T00:00:00Z",
                "created_by": "cargo xtask e2e: Debian busybox-static",
            }],
        });
        let config = put_blob(layout, OCI_CONFIG, &serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        let mut descriptor = put_blob(layout, OCI_MANIFEST, &serde_json::to_vec(&manifest)?)?;
        descriptor["platform"] = json!({ "architecture": arch, "os": "linux" });
        manifests.push(descriptor);
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut index_descriptor = put_blob(layout, OCI_INDEX, &serde_json::to_vec(&index)?)?;
    index_descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": "latest" });
    let top =
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [index_descriptor] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top)?)?;
    Ok(())
}
