//! The architectures brix can emulate, their names and aliases, and the one table of ELF
//! magic/mask values used to register them with `binfmt_misc`.

use std::fmt;
use std::str::FromStr;

use super::BinfmtError;

/// A CPU architecture that QEMU user-mode emulation can run, named as in OCI platforms
/// (`linux/<arch>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// `linux/amd64` (x86-64), emulated by `qemu-x86_64`.
    Amd64,
    /// `linux/arm64` (AArch64), emulated by `qemu-aarch64`.
    Arm64,
    /// `linux/arm/v7` and `linux/arm/v6` (32-bit little-endian ARM), emulated by `qemu-arm`.
    Arm,
    /// `linux/riscv64`, emulated by `qemu-riscv64`.
    Riscv64,
    /// `linux/ppc64le`, emulated by `qemu-ppc64le`.
    Ppc64le,
    /// `linux/s390x`, emulated by `qemu-s390x`.
    S390x,
    /// `linux/386` (32-bit x86), emulated by `qemu-i386`.
    I386,
    /// `linux/mips64` (big-endian), emulated by `qemu-mips64`.
    Mips64,
    /// `linux/mips64le`, emulated by `qemu-mips64el`.
    Mips64le,
    /// `linux/loong64` (LoongArch64), emulated by `qemu-loongarch64`.
    Loong64,
}

/// One row of the emulator table: names and the ELF header pattern binfmt_misc matches.
struct ArchSpec {
    /// OCI architecture name.
    name: &'static str,
    /// Platform string as BuildKit reports it.
    platform: &'static str,
    /// QEMU's name for the target (`qemu-<this>`).
    qemu: &'static str,
    /// First bytes of an ELF executable for this architecture (`e_ident` .. `e_machine`).
    magic: &'static [u8; 20],
    /// Which bits of `magic` must match. The values are those of QEMU's
    /// `scripts/qemu-binfmt-conf.sh`, which tonistiigi/binfmt and Debian also use, so that our
    /// registrations behave exactly like theirs.
    mask: &'static [u8; 20],
}

// The mask ignores e_ident[EI_OSABI..] padding and accepts both ET_EXEC (2) and ET_DYN (3)
// through the `\xfe` on the low byte of e_type.
const SPECS: [(Arch, ArchSpec); 10] = [
    (
        Arch::Amd64,
        ArchSpec {
            name: "amd64",
            platform: "linux/amd64",
            qemu: "x86_64",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Arm64,
        ArchSpec {
            name: "arm64",
            platform: "linux/arm64",
            qemu: "aarch64",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Arm,
        ArchSpec {
            name: "arm",
            platform: "linux/arm/v7",
            qemu: "arm",
            magic: b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Riscv64,
        ArchSpec {
            name: "riscv64",
            platform: "linux/riscv64",
            qemu: "riscv64",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Ppc64le,
        ArchSpec {
            name: "ppc64le",
            platform: "linux/ppc64le",
            qemu: "ppc64le",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
        },
    ),
    (
        Arch::S390x,
        ArchSpec {
            name: "s390x",
            platform: "linux/s390x",
            qemu: "s390x",
            magic: b"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        },
    ),
    (
        Arch::I386,
        ArchSpec {
            name: "386",
            platform: "linux/386",
            qemu: "i386",
            magic: b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Mips64,
        ArchSpec {
            name: "mips64",
            platform: "linux/mips64",
            qemu: "mips64",
            magic: b"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
        },
    ),
    (
        Arch::Mips64le,
        ArchSpec {
            name: "mips64le",
            platform: "linux/mips64le",
            qemu: "mips64el",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
    (
        Arch::Loong64,
        ArchSpec {
            name: "loong64",
            platform: "linux/loong64",
            qemu: "loongarch64",
            magic: b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x02\x01",
            mask:
                b"\xff\xff\xff\xff\xff\xff\xff\xfc\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
        },
    ),
];

impl Arch {
    /// Every architecture brix knows how to register, in the order `brix binfmt` lists them.
    pub const ALL: [Arch; 10] = [
        Arch::Amd64,
        Arch::Arm64,
        Arch::Arm,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::S390x,
        Arch::I386,
        Arch::Mips64,
        Arch::Mips64le,
        Arch::Loong64,
    ];

    fn spec(self) -> &'static ArchSpec {
        // SPECS is ordered like the enum, so the discriminant indexes it; the unit test
        // `table_is_in_enum_order` keeps that true.
        &SPECS[self as usize].1
    }

    /// The OCI architecture name (`arm64`, `386`, ...).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The platform BuildKit reports when it can run this architecture (`linux/arm/v7` for arm).
    pub fn platform(self) -> &'static str {
        self.spec().platform
    }

    /// QEMU's name for this target, as in `qemu-<name>` (`aarch64`, `x86_64`, ...).
    pub fn qemu_name(self) -> &'static str {
        self.spec().qemu
    }

    /// The binfmt_misc entry name brix registers: `qemu-<qemu name>`, the name
    /// tonistiigi/binfmt and Debian use too, so tools agree on which entry is which.
    pub fn entry_name(self) -> String {
        format!("qemu-{}", self.qemu_name())
    }

    /// The ELF header bytes binfmt_misc matches for this architecture (at offset 0).
    pub fn magic(self) -> &'static [u8] {
        self.spec().magic
    }

    /// The mask applied to [`Arch::magic`] when matching.
    pub fn mask(self) -> &'static [u8] {
        self.spec().mask
    }

    /// Maps a kernel machine name (`uname -m`, `/proc/sys/kernel/arch`) or a Rust
    /// `target_arch` to an architecture. Returns `None` for machines brix does not emulate.
    pub fn from_machine(machine: &str) -> Option<Arch> {
        Some(match machine.trim() {
            "x86_64" | "amd64" => Arch::Amd64,
            "aarch64" | "arm64" => Arch::Arm64,
            m if m == "arm" || m.starts_with("armv") => Arch::Arm,
            "riscv64" => Arch::Riscv64,
            "ppc64le" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            "x86" | "i386" | "i486" | "i586" | "i686" => Arch::I386,
            // uname says mips64 for both byte orders; Rust's target_arch does too. Little
            // endian is by far the common one for Linux mips64 hosts.
            "mips64el" | "mips64le" => Arch::Mips64le,
            "mips64" => {
                if cfg!(target_endian = "little") {
                    Arch::Mips64le
                } else {
                    Arch::Mips64
                }
            }
            "loongarch64" | "loong64" => Arch::Loong64,
            _ => return None,
        })
    }

    /// The architectures this host runs without emulation when its own architecture is
    /// `self`: itself, plus 386 on amd64 (the kernel's IA-32 compatibility, which BuildKit
    /// also detects as native). Registering an emulator for a native architecture would make
    /// the kernel send native binaries to QEMU, because binfmt_misc is consulted before the
    /// ELF loader, so these are never installed.
    pub fn natively_runs(self) -> &'static [Arch] {
        match self {
            Arch::Amd64 => &[Arch::Amd64, Arch::I386],
            Arch::Arm64 => &[Arch::Arm64],
            Arch::Arm => &[Arch::Arm],
            Arch::Riscv64 => &[Arch::Riscv64],
            Arch::Ppc64le => &[Arch::Ppc64le],
            Arch::S390x => &[Arch::S390x],
            Arch::I386 => &[Arch::I386],
            Arch::Mips64 => &[Arch::Mips64],
            Arch::Mips64le => &[Arch::Mips64le],
            Arch::Loong64 => &[Arch::Loong64],
        }
    }

    /// Parses an architecture or platform as a user writes it: `arm64`, `aarch64`,
    /// `linux/arm64`, `arm/v7`, `armhf`, `x86_64`, `i386`, `ppc64el`, ... (case-insensitive).
    pub fn parse(input: &str) -> Result<Arch, BinfmtError> {
        let unknown = || BinfmtError::UnknownArch {
            input: input.to_string(),
        };
        let lower = input.trim().to_ascii_lowercase();
        let mut parts = lower.split('/');
        let first = parts.next().unwrap_or_default();
        // `linux/arm64[/v8]` or `arm64[/v8]`; any other OS cannot be emulated by QEMU user mode.
        let (arch, variant) = if first == "linux" {
            (parts.next().ok_or_else(unknown)?, parts.next())
        } else {
            (first, parts.next())
        };
        if parts.next().is_some() {
            return Err(unknown());
        }
        let parsed = match arch {
            "amd64" | "x86_64" | "x86-64" | "x64" => Arch::Amd64,
            "arm64" | "aarch64" | "arm64v8" => Arch::Arm64,
            "arm" | "armhf" | "armel" | "armv7" | "armv7l" | "armv6" | "armv6l" | "arm32v7"
            | "arm32v6" => Arch::Arm,
            "riscv64" => Arch::Riscv64,
            "ppc64le" | "ppc64el" | "powerpc64le" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            "386" | "i386" | "i686" | "x86" => Arch::I386,
            "mips64" => Arch::Mips64,
            "mips64le" | "mips64el" => Arch::Mips64le,
            "loong64" | "loongarch64" => Arch::Loong64,
            _ => return Err(unknown()),
        };
        // Accept the variants OCI platforms use with each architecture and nothing else, so
        // a typo like `arm/7` is not silently taken for arm.
        let variant_ok = match (parsed, variant) {
            (_, None) => true,
            (Arch::Arm, Some(v)) => matches!(v, "v5" | "v6" | "v7"),
            (Arch::Arm64, Some(v)) => matches!(v, "v8" | "v9"),
            (Arch::Amd64, Some(v)) => matches!(v, "v1" | "v2" | "v3" | "v4"),
            _ => false,
        };
        if variant_ok {
            Ok(parsed)
        } else {
            Err(unknown())
        }
    }

    /// Parses a comma-separated list (`arm64,riscv64` or `all`) into architectures, in the
    /// order given and without duplicates. `all` stands for [`Arch::ALL`].
    pub fn parse_list(input: &str) -> Result<Vec<Arch>, BinfmtError> {
        let mut out: Vec<Arch> = Vec::new();
        for item in input.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let arches = if item.eq_ignore_ascii_case("all") {
                Arch::ALL.to_vec()
            } else {
                vec![Arch::parse(item)?]
            };
            for arch in arches {
                if !out.contains(&arch) {
                    out.push(arch);
                }
            }
        }
        if out.is_empty() {
            return Err(BinfmtError::UnknownArch {
                input: input.to_string(),
            });
        }
        Ok(out)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = BinfmtError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::parse(s)
    }
}

impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (i, (arch, _)) in SPECS.iter().enumerate() {
            assert_eq!(*arch as usize, i, "{arch:?} is out of place in SPECS");
            assert_eq!(Arch::ALL[i], *arch);
        }
    }

    #[test]
    fn magic_is_an_elf_header_for_the_right_machine() {
        // e_machine values from the ELF spec, read with the byte order e_ident says.
        let expected: [(Arch, u8, u16); 10] = [
            (Arch::Amd64, 2, 0x3e),
            (Arch::Arm64, 2, 0xb7),
            (Arch::Arm, 1, 0x28),
            (Arch::Riscv64, 2, 0xf3),
            (Arch::Ppc64le, 2, 0x15),
            (Arch::S390x, 2, 0x16),
            (Arch::I386, 1, 0x03),
            (Arch::Mips64, 2, 0x08),
            (Arch::Mips64le, 2, 0x08),
            (Arch::Loong64, 2, 0x102),
        ];
        for (arch, class, machine) in expected {
            let m = arch.magic();
            assert_eq!(&m[..4], b"\x7fELF", "{arch}");
            assert_eq!(m[4], class, "{arch} ELF class");
            let e_machine = if m[5] == 2 {
                u16::from_be_bytes([m[18], m[19]])
            } else {
                u16::from_le_bytes([m[18], m[19]])
            };
            assert_eq!(e_machine, machine, "{arch} e_machine");
            assert_eq!(arch.mask().len(), m.len());
        }
    }

    #[test]
    fn aliases_parse() {
        let cases = [
            ("arm64", Arch::Arm64),
            ("aarch64", Arch::Arm64),
            ("linux/arm64", Arch::Arm64),
            ("linux/arm64/v8", Arch::Arm64),
            ("ARM64", Arch::Arm64),
            ("armhf", Arch::Arm),
            ("arm/v7", Arch::Arm),
            ("linux/arm/v6", Arch::Arm),
            ("riscv64", Arch::Riscv64),
            ("ppc64le", Arch::Ppc64le),
            ("ppc64el", Arch::Ppc64le),
            ("s390x", Arch::S390x),
            ("x86_64", Arch::Amd64),
            ("amd64", Arch::Amd64),
            ("linux/amd64/v3", Arch::Amd64),
            ("i386", Arch::I386),
            ("386", Arch::I386),
            ("mips64el", Arch::Mips64le),
            ("loongarch64", Arch::Loong64),
        ];
        for (input, arch) in cases {
            assert_eq!(Arch::parse(input).ok(), Some(arch), "{input}");
        }
        for bad in [
            "",
            "sparc",
            "windows/arm64",
            "arm/7",
            "linux/",
            "riscv64/v1",
            "a/b/c/d",
        ] {
            assert!(Arch::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn lists_parse_without_duplicates() {
        let list = Arch::parse_list("arm64, aarch64,linux/riscv64").ok();
        assert_eq!(list, Some(vec![Arch::Arm64, Arch::Riscv64]));
        assert_eq!(Arch::parse_list("all").ok(), Some(Arch::ALL.to_vec()));
        assert!(Arch::parse_list(" , ").is_err());
        let err = Arch::parse_list("arm64,sparc").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("sparc")));
    }

    #[test]
    fn machines_map_to_arches() {
        assert_eq!(Arch::from_machine("x86_64\n"), Some(Arch::Amd64));
        assert_eq!(Arch::from_machine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_machine("armv7l"), Some(Arch::Arm));
        assert_eq!(Arch::from_machine("i686"), Some(Arch::I386));
        assert_eq!(Arch::from_machine("sparc64"), None);
        assert_eq!(Arch::Amd64.natively_runs(), &[Arch::Amd64, Arch::I386]);
        assert_eq!(Arch::Arm64.natively_runs(), &[Arch::Arm64]);
    }
}
