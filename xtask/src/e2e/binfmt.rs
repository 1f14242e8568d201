//! Step 3: QEMU user emulation through binfmt_misc, registered with the `F` flag so the
//! emulators also work inside containers, and with `P` (through Debian's
//! `/usr/libexec/qemu-binfmt/<target>-binfmt-P` links) so emulated programs keep their
//! argv[0], which busybox applets need. The registration itself is the project's own
//! command, `brix binfmt --install`, so the e2e setup exercises it on every fresh machine.

use super::process::output;
use super::{BrixBinary, Workspace};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static puts `<target>-binfmt-P` links, which `brix binfmt
/// --install` registers with `P` when they exist.
const BINFMT_P_DIR: &str = "/usr/libexec/qemu-binfmt";

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
    let p_dir = Path::new(BINFMT_P_DIR);
    let flags = if EMULATED.iter().all(|(_, qemu)| wants_p(p_dir, qemu)) {
        "the P and F flags"
    } else if EMULATED.iter().any(|(_, qemu)| wants_p(p_dir, qemu)) {
        "the F flag (and P where a -binfmt-P link exists)"
    } else {
        "the F flag"
    };
    let missing = missing_emulators(dir, p_dir);
    if missing.is_empty() {
        return Ok(format!(
            "{} already registered with {flags}",
            names(EMULATED).join(", ")
        ));
    }
    let (brix_bin, build_time) = brix.get(ws)?;
    let all = names(EMULATED).join(",");
    output(Command::new(&brix_bin).args(["binfmt", "--install", &all])).with_context(|| {
        format!("registering QEMU emulators with `brix binfmt --install {all}`")
    })?;
    let still_missing = missing_emulators(dir, p_dir);
    if !still_missing.is_empty() {
        bail!(
            "`brix binfmt --install {all}` succeeded but {} is still not registered (enabled, {flags}) under {BINFMT_DIR}",
            still_missing.join(", ")
        );
    }
    Ok(format!(
        "{}registered {} with {flags} by `brix binfmt --install`{}",
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

/// Whether `p_dir` has Debian's `-binfmt-P` link for `qemu` (`qemu-aarch64`), so the
/// registration should have the `P` flag.
fn wants_p(p_dir: &Path, qemu: &str) -> bool {
    p_dir.join(binfmt_p_name(qemu)).exists()
}

/// Debian's `-binfmt-P` link name for `qemu`: `qemu-aarch64` -> `aarch64-binfmt-P`.
fn binfmt_p_name(qemu: &str) -> String {
    format!("{}-binfmt-P", qemu.strip_prefix("qemu-").unwrap_or(qemu))
}

/// The architectures with no enabled binfmt_misc entry whose interpreter is their QEMU
/// binary and whose flags contain `F`, and `P` when `p_dir` has the architecture's
/// `-binfmt-P` link (an older registration without `P` is upgraded by `brix binfmt
/// --install`). Entries are matched by interpreter, not by name, so registrations made by
/// other tools (binfmt images, Debian's binfmt.d names) count too.
fn missing_emulators(dir: &Path, p_dir: &Path) -> Vec<&'static str> {
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
        .filter(|(_, qemu)| {
            let need_p = wants_p(p_dir, qemu);
            !entries
                .iter()
                .any(|entry| entry_serves(entry, qemu, need_p))
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Whether one `/proc/sys/fs/binfmt_misc/<entry>` text is an enabled, `F`-flagged
/// registration of `qemu` (`/usr/bin/qemu-aarch64-static`, `/usr/bin/qemu-aarch64`,
/// `/usr/libexec/qemu-binfmt/aarch64-binfmt-P`, ...), with `P` when `need_p`. A `-binfmt-P`
/// interpreter always needs `P`: Debian's QEMU then expects the extra argv[0] argument.
fn entry_serves(entry: &str, qemu: &str, need_p: bool) -> bool {
    let mut enabled = false;
    let mut fixed = false;
    let mut preserved = false;
    let mut matches = false;
    let mut binfmt_p = false;
    for line in entry.lines() {
        if line.trim() == "enabled" {
            enabled = true;
        } else if let Some(flags) = line.strip_prefix("flags:") {
            fixed = flags.contains('F');
            preserved = flags.contains('P');
        } else if let Some(interpreter) = line.strip_prefix("interpreter ") {
            let file = interpreter.trim().rsplit('/').next().unwrap_or_default();
            binfmt_p =
                file == binfmt_p_name(qemu) || file.ends_with(&format!("-{}", binfmt_p_name(qemu)));
            matches = file == qemu || file == format!("{qemu}-static") || binfmt_p;
        }
    }
    enabled && fixed && matches && (preserved || !(need_p || binfmt_p))
}

#[cfg(test)]
mod tests {
    use super::{entry_serves, missing_emulators};

    const AARCH64: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
    const AARCH64_P: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn enabled_fixed_entry_serves() {
        assert!(entry_serves(AARCH64, "qemu-aarch64", false));
        assert!(!entry_serves(AARCH64, "qemu-arm", false));
    }

    #[test]
    fn disabled_or_unfixed_entries_do_not_serve() {
        assert!(!entry_serves(
            &AARCH64.replace("enabled", "disabled"),
            "qemu-aarch64",
            false
        ));
        assert!(!entry_serves(
            &AARCH64.replace("flags: F", "flags: "),
            "qemu-aarch64",
            false
        ));
    }

    #[test]
    fn p_is_needed_when_a_binfmt_p_link_exists() {
        // An old CF registration needs an upgrade once the -binfmt-P link is there.
        assert!(!entry_serves(AARCH64, "qemu-aarch64", true));
        assert!(entry_serves(AARCH64_P, "qemu-aarch64", true));
        assert!(entry_serves(AARCH64_P, "qemu-aarch64", false));
        assert!(!entry_serves(AARCH64_P, "qemu-arm", true));
        // brix's helper-container copy of the link.
        assert!(entry_serves(
            &AARCH64_P.replace("/usr/libexec/qemu-binfmt/", "/brix-"),
            "qemu-aarch64",
            true
        ));
        // A -binfmt-P interpreter without P shifts every argument: not serving.
        assert!(!entry_serves(
            &AARCH64_P.replace("flags: POCF", "flags: OCF"),
            "qemu-aarch64",
            false
        ));
    }

    #[test]
    fn missing_emulators_asks_for_p_only_where_a_link_exists() {
        let root = std::env::temp_dir().join(format!("xtask-binfmt-{}", std::process::id()));
        let (dir, p_dir) = (root.join("binfmt_misc"), root.join("libexec"));
        for d in [&dir, &p_dir] {
            std::fs::create_dir_all(d).expect("creating fixture dirs");
        }
        std::fs::write(dir.join("qemu-aarch64"), AARCH64).expect("writing fixture entry");
        let arm = AARCH64.replace("aarch64", "arm");
        std::fs::write(dir.join("qemu-arm"), arm).expect("writing fixture entry");
        let before = missing_emulators(&dir, &p_dir);
        std::fs::write(p_dir.join("aarch64-binfmt-P"), b"").expect("writing fixture link");
        let after = missing_emulators(&dir, &p_dir);
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            !before.contains(&"arm64") && !before.contains(&"arm"),
            "{before:?}"
        );
        assert!(
            after.contains(&"arm64") && !after.contains(&"arm"),
            "{after:?}"
        );
    }
}
