//! Step 3: QEMU user emulation through binfmt_misc, registered with the `F` flag so the
//! emulators also work inside containers. The registration itself is the project's own
//! command, `brix binfmt --install`, so the e2e setup exercises it on every fresh machine.

use super::process::output;
use super::{BrixBinary, Workspace};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Emulated architectures, as `brix binfmt --install` names them, with the QEMU binary each
/// one registers.
const EMULATED: &[(&str, &str)] = &[
    ("arm64", "qemu-aarch64"),
    ("arm", "qemu-arm"),
    ("riscv64", "qemu-riscv64"),
    ("ppc64le", "qemu-ppc64le"),
    ("s390x", "qemu-s390x"),
];

/// Mounts binfmt_misc when needed and registers the emulators that are missing.
pub fn ensure(ws: &Workspace, brix: &mut BrixBinary) -> Result<String> {
    let dir = Path::new(BINFMT_DIR);
    let mount_needed = !dir.join("register").exists();
    if mount_needed {
        output(Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]))
            .context("mounting binfmt_misc (is this root on a kernel with binfmt_misc?)")?;
    }
    let missing = missing_emulators(dir);
    if missing.is_empty() {
        return Ok(format!(
            "{} already registered with the F flag",
            names(EMULATED).join(", ")
        ));
    }
    let (brix_bin, build_time) = brix.get(ws)?;
    let all = names(EMULATED).join(",");
    output(Command::new(&brix_bin).args(["binfmt", "--install", &all])).with_context(|| {
        format!("registering QEMU emulators with `brix binfmt --install {all}`")
    })?;
    let still_missing = missing_emulators(dir);
    if !still_missing.is_empty() {
        bail!(
            "`brix binfmt --install {all}` succeeded but {} is still not registered (enabled, F flag) under {BINFMT_DIR}",
            still_missing.join(", ")
        );
    }
    Ok(format!(
        "{}registered {} with `brix binfmt --install`{}",
        if mount_needed {
            "mounted binfmt_misc, "
        } else {
            ""
        },
        missing.join(", "),
        super::build_note(build_time)
    ))
}

fn names(list: &[(&'static str, &str)]) -> Vec<&'static str> {
    list.iter().map(|(name, _)| *name).collect()
}

/// The architectures with no enabled binfmt_misc entry whose interpreter is their QEMU
/// binary and whose flags contain `F`. Entries are matched by interpreter, not by name, so
/// registrations made by other tools (binfmt images, Debian's binfmt.d names) count too.
fn missing_emulators(dir: &Path) -> Vec<&'static str> {
    let entries: Vec<String> = std::fs::read_dir(dir)
        .map(|read| {
            read.filter_map(|entry| entry.ok())
                .filter(|entry| {
                    let name = entry.file_name();
                    name != "register" && name != "status"
                })
                .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    EMULATED
        .iter()
        .filter(|(_, qemu)| !entries.iter().any(|entry| entry_serves(entry, qemu)))
        .map(|(name, _)| *name)
        .collect()
}

/// Whether one `/proc/sys/fs/binfmt_misc/<entry>` text is an enabled, `F`-flagged
/// registration of `qemu` (`/usr/bin/qemu-aarch64-static`, `/usr/bin/qemu-aarch64`, ...).
fn entry_serves(entry: &str, qemu: &str) -> bool {
    let mut enabled = false;
    let mut fixed = false;
    let mut matches = false;
    for line in entry.lines() {
        if line.trim() == "enabled" {
            enabled = true;
        } else if let Some(flags) = line.strip_prefix("flags:") {
            fixed = flags.contains('F');
        } else if let Some(interpreter) = line.strip_prefix("interpreter ") {
            let file = interpreter.trim().rsplit('/').next().unwrap_or_default();
            matches = file == qemu || file == format!("{qemu}-static");
        }
    }
    enabled && fixed && matches
}

#[cfg(test)]
mod tests {
    use super::entry_serves;

    const AARCH64: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn enabled_fixed_entry_serves() {
        assert!(entry_serves(AARCH64, "qemu-aarch64"));
        assert!(!entry_serves(AARCH64, "qemu-arm"));
    }

    #[test]
    fn disabled_or_unfixed_entries_do_not_serve() {
        assert!(!entry_serves(
            &AARCH64.replace("enabled", "disabled"),
            "qemu-aarch64"
        ));
        assert!(!entry_serves(
            &AARCH64.replace("flags: F", "flags: "),
            "qemu-aarch64"
        ));
    }
}
