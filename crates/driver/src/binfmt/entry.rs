//! The text formats of `binfmt_misc`: the per-entry files the kernel shows, and the line
//! written to `register`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Arch;

/// One registration as shown in `/proc/sys/fs/binfmt_misc/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinfmtEntry {
    /// The entry's file name (`qemu-aarch64`).
    pub name: String,
    /// `enabled` (true) or `disabled` (false).
    pub enabled: bool,
    /// The interpreter path given at registration.
    pub interpreter: PathBuf,
    /// The flag letters (`F`, `POCF`, ...); empty when none.
    pub flags: String,
    /// Where the magic is matched in the file.
    pub offset: u32,
    /// The magic bytes, for magic (`M`) entries.
    #[serde(serialize_with = "hex_opt")]
    pub magic: Option<Vec<u8>>,
    /// The mask over the magic; `None` means every bit counts.
    #[serde(serialize_with = "hex_opt")]
    pub mask: Option<Vec<u8>>,
    /// The file extension, for extension (`E`) entries.
    pub extension: Option<String>,
}

fn hex_opt<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&to_hex(b)),
        None => s.serialize_none(),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl BinfmtEntry {
    /// Parses the contents of an entry file. Returns a description of what is wrong when
    /// the text is not an entry (no `enabled`/`disabled` line or no interpreter).
    ///
    /// The kernel writes, one per line: `enabled|disabled`, `interpreter PATH`,
    /// `flags: LETTERS`, then `offset N`, `magic HEX`, `mask HEX` for magic entries or
    /// `extension .EXT` for extension entries.
    pub fn parse(name: &str, text: &str) -> Result<BinfmtEntry, String> {
        let mut lines = text.lines();
        let enabled = match lines.next().map(str::trim) {
            Some("enabled") => true,
            Some("disabled") => false,
            other => {
                return Err(format!(
                    "expected `enabled` or `disabled` on the first line, found {other:?}"
                ));
            }
        };
        let mut entry = BinfmtEntry {
            name: name.to_string(),
            enabled,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: None,
            mask: None,
            extension: None,
        };
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "interpreter" => entry.interpreter = PathBuf::from(value),
                "flags:" => entry.flags = value.trim().to_string(),
                "offset" => {
                    entry.offset = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad offset line {line:?}"))?;
                }
                "magic" => {
                    entry.magic =
                        Some(from_hex(value).ok_or_else(|| format!("bad magic line {line:?}"))?);
                }
                "mask" => {
                    entry.mask =
                        Some(from_hex(value).ok_or_else(|| format!("bad mask line {line:?}"))?);
                }
                "extension" => entry.extension = Some(value.trim().to_string()),
                // Newer kernels may add lines; they do not change what we look at.
                _ => {}
            }
        }
        if entry.interpreter.as_os_str().is_empty() {
            return Err("no `interpreter` line".to_string());
        }
        Ok(entry)
    }

    /// Whether the entry has the fix-binary flag `F`: the kernel opened the interpreter at
    /// registration, so it also runs in containers and chroots that do not contain QEMU.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// Whether the entry has the preserve-argv0 flag `P`: the program gets the argv\[0\]
    /// it was started with, which multi-call binaries such as busybox need.
    pub fn preserve_argv0(&self) -> bool {
        self.flags.contains('P')
    }

    /// Whether this entry is what registering `arch` with `flags` must leave behind: enabled,
    /// with `F`, matching `arch`'s executables, and with `P` exactly when `flags` has it.
    pub fn is_registration_of(&self, arch: Arch, flags: &str) -> bool {
        self.enabled
            && self.fix_binary()
            && self.matches(arch)
            && self.preserve_argv0() == flags.contains('P')
    }

    /// Whether this entry sends executables of `arch` to an interpreter: a magic entry at
    /// offset 0 whose pattern agrees with `arch`'s on every bit both check, and which checks
    /// at least the ELF class and machine bytes `arch` checks. Matching by pattern rather
    /// than by name recognises entries that other tools named differently, e.g. Debian's.
    pub fn matches(&self, arch: Arch) -> bool {
        let Some(magic) = &self.magic else {
            return false;
        };
        if self.offset != 0 {
            return false;
        }
        let (want_magic, want_mask) = (arch.magic(), arch.mask());
        if magic.len() < want_magic.len() {
            return false;
        }
        let mask_at = |i: usize| {
            self.mask
                .as_ref()
                .map_or(0xff, |m| m.get(i).copied().unwrap_or(0))
        };
        // e_ident[EI_CLASS] and e_machine tell architectures apart.
        const IDENTIFYING: [usize; 3] = [4, 18, 19];
        if IDENTIFYING
            .iter()
            .any(|&i| mask_at(i) & want_mask[i] != want_mask[i])
        {
            return false;
        }
        (0..want_magic.len()).all(|i| {
            let both = mask_at(i) & want_mask[i];
            magic[i] & both == want_magic[i] & both
        })
    }
}

/// The flags brix registers with: `F` so the emulator works inside containers (BuildKit's
/// platform check runs its test binary chrooted, without QEMU in the chroot), and `C` as
/// tonistiigi/binfmt does, so set-uid programs in emulated stages (`su`, `ping`) get the same
/// credentials they would natively and buildx users see the same behaviour.
pub const REGISTER_FLAGS: &str = "CF";

/// The flags brix registers a Debian `-binfmt-P` interpreter with: [`REGISTER_FLAGS`] plus
/// `P` (preserve argv\[0\]) and `O` (implied by `C`), as tonistiigi/binfmt registers them.
/// Without `P` the kernel replaces the program's argv\[0\] with its path, so multi-call
/// binaries (busybox applets run through their links) run as the wrong program.
pub const REGISTER_FLAGS_PRESERVE_ARGV0: &str = "POCF";

/// How a Debian QEMU interpreter path ends when that QEMU expects the extra argv\[0\]
/// argument the `P` flag adds. Debian's QEMU (patch "linux-user: handle binfmt-misc P flag
/// as a separate exe name") only takes that argument when its own argv\[0\] ends so, and
/// `qemu-user-static` ships `/usr/libexec/qemu-binfmt/<target>-binfmt-P` links for it.
pub const PRESERVE_ARGV0_SUFFIX: &str = "-binfmt-P";

/// Whether `interpreter` is a `-binfmt-P` path, the only kind brix registers with `P`:
/// `P` with any other Debian QEMU path would shift every argument of every program.
pub fn preserves_argv0(interpreter: &Path) -> bool {
    interpreter
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(PRESERVE_ARGV0_SUFFIX))
}

/// The flags to register `interpreter` with: [`REGISTER_FLAGS_PRESERVE_ARGV0`] for a
/// `-binfmt-P` path, [`REGISTER_FLAGS`] otherwise.
pub fn register_flags_for(interpreter: &Path) -> &'static str {
    if preserves_argv0(interpreter) {
        REGISTER_FLAGS_PRESERVE_ARGV0
    } else {
        REGISTER_FLAGS
    }
}

/// Builds the line written to `binfmt_misc/register` to send `arch`'s executables to
/// `interpreter`: `:qemu-<arch>:M:0:<magic>:<mask>:<interpreter>:<flags>`, every magic and
/// mask byte escaped as `\xHH` so none can be read as the `:` separator.
///
/// Returns `None` when the interpreter path cannot be registered (it contains `:` or a
/// newline, or is not valid UTF-8).
pub fn register_line(arch: Arch, interpreter: &Path, flags: &str) -> Option<String> {
    let interp = interpreter.to_str()?;
    if interp.is_empty() || interp.contains([':', '\n']) {
        return None;
    }
    let escape = |bytes: &[u8]| {
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "\\x{b:02x}");
            out
        })
    };
    Some(format!(
        ":{}:M:0:{}:{}:{}:{}",
        arch.entry_name(),
        escape(arch.magic()),
        escape(arch.mask()),
        interp,
        flags
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_AARCH64: &str = "enabled\n\
        interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: POF\n\
        offset 0\n\
        magic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn parses_an_entry_file() {
        let entry = match BinfmtEntry::parse("qemu-aarch64", DEBIAN_AARCH64) {
            Ok(entry) => entry,
            Err(err) => panic!("Debian's entry did not parse: {err}"),
        };
        assert!(entry.enabled && entry.fix_binary());
        assert_eq!(entry.flags, "POF");
        assert_eq!(
            entry.interpreter,
            PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(entry.magic.as_deref(), Some(Arch::Arm64.magic()));
        assert_eq!(entry.mask.as_deref(), Some(Arch::Arm64.mask()));
    }

    #[test]
    fn parses_disabled_and_flagless_entries() {
        let text = "disabled\ninterpreter /usr/bin/qemu-arm\nflags: \noffset 0\n\
                    magic 7f454c4601010100000000000000000002002800\n\
                    mask ffffffffffffff00fffffffffffffffffeffffff\n";
        let entry = BinfmtEntry::parse("arm", text).ok();
        assert!(
            entry
                .as_ref()
                .is_some_and(|e| !e.enabled && !e.fix_binary())
        );
        assert!(entry.is_some_and(|e| e.matches(Arch::Arm) && !e.matches(Arch::Arm64)));
    }

    #[test]
    fn parses_extension_entries_and_rejects_garbage() {
        let text = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";
        let entry = BinfmtEntry::parse("wine", text).ok();
        assert!(
            entry
                .as_ref()
                .is_some_and(|e| e.extension.as_deref() == Some(".exe"))
        );
        assert!(entry.is_some_and(|e| Arch::ALL.iter().all(|a| !e.matches(*a))));
        assert!(BinfmtEntry::parse("x", "").is_err());
        assert!(BinfmtEntry::parse("x", "enabled\n").is_err());
        assert!(BinfmtEntry::parse("x", "enabled\ninterpreter /a\nmagic 7g\n").is_err());
    }

    #[test]
    fn matching_is_by_pattern_and_tells_arches_apart() {
        for arch in Arch::ALL {
            let entry = BinfmtEntry {
                name: "anything".into(),
                enabled: true,
                interpreter: "/x".into(),
                flags: "F".into(),
                offset: 0,
                // The kernel may show the magic already masked.
                magic: Some(
                    arch.magic()
                        .iter()
                        .zip(arch.mask())
                        .map(|(a, b)| a & b)
                        .collect(),
                ),
                mask: Some(arch.mask().to_vec()),
                extension: None,
            };
            let matched: Vec<Arch> = Arch::ALL
                .into_iter()
                .filter(|a| entry.matches(*a))
                .collect();
            assert_eq!(matched, vec![arch], "entry for {arch} matched {matched:?}");
        }
    }

    #[test]
    fn an_entry_that_ignores_the_machine_matches_nothing() {
        let mut mask = Arch::Arm64.mask().to_vec();
        mask[18] = 0;
        let entry = BinfmtEntry {
            name: "loose".into(),
            enabled: true,
            interpreter: "/x".into(),
            flags: String::new(),
            offset: 0,
            magic: Some(Arch::Arm64.magic().to_vec()),
            mask: Some(mask),
            extension: None,
        };
        assert!(!entry.matches(Arch::Arm64));
    }

    #[test]
    fn builds_a_register_line() {
        let line = register_line(Arch::Arm64, Path::new("/usr/bin/qemu-aarch64-static"), "CF");
        assert_eq!(
            line.as_deref(),
            Some(
                ":qemu-aarch64:M:0:\
                 \\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\
                 \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
                 /usr/bin/qemu-aarch64-static:CF"
            )
        );
        assert!(register_line(Arch::Arm, Path::new("/a:b"), "F").is_none());
        let line = register_line(
            Arch::Arm64,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
            register_flags_for(Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")),
        );
        assert!(
            line.is_some_and(|l| l.ends_with(":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POCF"))
        );
        assert!(register_line(Arch::Arm, Path::new(""), "F").is_none());
    }

    #[test]
    fn only_binfmt_p_paths_get_the_p_flag() {
        for (path, flags) in [
            ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "POCF"),
            ("/brix-riscv64-binfmt-P", "POCF"),
            ("/usr/bin/qemu-aarch64-static", "CF"),
            ("/usr/bin/qemu-aarch64", "CF"),
            ("/usr/libexec/qemu-binfmt-P/qemu-arm", "CF"),
            ("/usr/bin/aarch64-binfmt-p", "CF"),
        ] {
            assert_eq!(register_flags_for(Path::new(path)), flags, "{path}");
        }
        let entry = BinfmtEntry::parse("qemu-aarch64", DEBIAN_AARCH64).ok();
        assert!(entry.is_some_and(|e| e.preserve_argv0()));
    }
}
