//! QEMU user-mode emulation through the kernel's `binfmt_misc`: which foreign architectures
//! this host can run, and registering, removing and re-registering static QEMU emulators.
//!
//! This is the seed's four manual QEMU steps (`docker run --privileged tonistiigi/binfmt
//! --install all`, `apt-get install qemu-user-static`, checking with `uname -m`, and
//! `multiarch/qemu-user-static --reset` when it "stops working") as one library.
//!
//! Registrations are made the way tonistiigi/binfmt makes them: magic/mask patterns from
//! QEMU's `qemu-binfmt-conf.sh`, entry names `qemu-<target>`, flags `POCF`. The `F` flag is
//! what matters most: the kernel opens the interpreter once, at registration, so emulation
//! also works inside containers and in BuildKit's chrooted platform check, neither of which
//! contains QEMU. That requires a statically linked QEMU, which brix takes from the host
//! (Debian's `qemu-user-static`). The `P` flag keeps the program's argv\[0\], without which
//! busybox applets called through their links run as the wrong applet (`cat` as `sh`).
//!
//! Debian's QEMU only understands `P` when it is started under a name ending in
//! `-binfmt-P`, so brix registers `/usr/libexec/qemu-binfmt/<target>-binfmt-P` (Debian's link
//! to `qemu-<target>-static`) with `POCF` when it exists, and otherwise the static
//! `/usr/bin/qemu-<target>-static` with `CF` (`P` with that path would shift every
//! argument). An `F` entry without `P` on a host that has the `-binfmt-P` link counts as
//! [`EmulationState::NoPreserveArgv0`], which `install` upgrades.
//!
//! [`BinfmtMisc`] works on this machine's kernel; [`EngineBinfmt`] does the same for the
//! host of a Docker engine (another machine, or a VM) through a short-lived helper
//! container. [`suggestion_for`] is the message builders give for an unsupported platform.
//!
//! ```no_run
//! use brix_driver::binfmt::{Arch, BinfmtMisc, InstallOptions};
//!
//! let binfmt = BinfmtMisc::system();
//! for outcome in binfmt.install(&[Arch::Arm64], &InstallOptions::default())? {
//!     println!("{outcome}");
//! }
//! # Ok::<(), brix_driver::binfmt::BinfmtError>(())
//! ```

mod arch;
mod elf;
mod engine;
mod entry;

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use arch::Arch;
pub use elf::Linkage;
pub use engine::{DEFAULT_HELPER_IMAGE, EngineBinfmt, HELPER_LABEL};
pub use entry::{
    BinfmtEntry, PRESERVE_ARGV0_SUFFIX, REGISTER_FLAGS, REGISTER_FLAGS_PRESERVE_ARGV0,
    preserves_argv0, register_flags_for, register_line,
};

/// Where the kernel's binfmt_misc file system is mounted on every Linux distribution.
pub const DEFAULT_BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Directories searched for static QEMU emulators, in order.
pub const DEFAULT_EMULATOR_DIRS: [&str; 2] = ["/usr/bin", "/usr/local/bin"];

/// Directories searched first for Debian's `<target>-binfmt-P` links to static QEMU, which
/// are registered with `P` (see [`PRESERVE_ARGV0_SUFFIX`]).
pub const DEFAULT_BINFMT_P_DIRS: [&str; 1] = ["/usr/libexec/qemu-binfmt"];

/// The Debian package that ships static QEMU emulators.
pub const QEMU_STATIC_PACKAGE: &str = "qemu-user-static";

/// What can go wrong while reading or changing binfmt_misc registrations.
#[derive(Debug, thiserror::Error)]
pub enum BinfmtError {
    /// The user named an architecture brix does not know.
    #[error(
        "unknown architecture `{input}`: expected `all` or a comma-separated list of amd64, \
         arm64, arm, riscv64, ppc64le, s390x, 386, mips64, mips64le, loong64 \
         (aliases such as aarch64, linux/arm64, armhf, arm/v7, x86_64 are accepted)"
    )]
    UnknownArch {
        /// What was given.
        input: String,
    },
    /// binfmt_misc is not mounted and could not be mounted.
    #[error(
        "binfmt_misc is not mounted at {path} and mounting it failed: {detail}; mount it as \
         root with `mount -t binfmt_misc binfmt_misc {path}`",
        path = path.display()
    )]
    NotMounted {
        /// The mount point.
        path: PathBuf,
        /// What `mount` said.
        detail: String,
    },
    /// Changing registrations needs root (or CAP_SYS_ADMIN), and we were refused.
    #[error(
        "{action} needs root: {path}: permission denied; run it as root (sudo)",
        path = path.display()
    )]
    PermissionDenied {
        /// What was being done (`registering qemu-aarch64`).
        action: String,
        /// The file that could not be written.
        path: PathBuf,
    },
    /// No statically linked QEMU for the architecture exists on the host.
    #[error(
        "no static QEMU emulator for {arch}: looked for {}; install the Debian package \
         {QEMU_STATIC_PACKAGE} (`apt-get install {QEMU_STATIC_PACKAGE}`)",
        display_paths(looked_for)
    )]
    NoStaticEmulator {
        /// The architecture.
        arch: Arch,
        /// Every path that was tried.
        looked_for: Vec<PathBuf>,
    },
    /// The only QEMU found is dynamically linked, which would fail inside containers.
    #[error(
        "{path} is dynamically linked, so as a binfmt interpreter it would fail inside \
         containers; install the Debian package {QEMU_STATIC_PACKAGE} for a static \
         qemu-{qemu}-static",
        path = path.display(),
        qemu = arch.qemu_name()
    )]
    DynamicEmulator {
        /// The architecture.
        arch: Arch,
        /// The dynamically linked emulator that was found.
        path: PathBuf,
    },
    /// An entry with brix's name exists but matches another file format.
    #[error(
        "binfmt_misc entry {name} exists but does not match {arch} executables; remove it \
         with `echo -1 > {path}` and retry",
        path = path.display()
    )]
    NameTaken {
        /// The architecture being registered.
        arch: Arch,
        /// The entry name.
        name: String,
        /// The entry's file.
        path: PathBuf,
    },
    /// The kernel refused the registration line (or the interpreter path is unusable).
    #[error("registering {name} through {path} failed: {detail}", path = path.display())]
    Register {
        /// The entry name.
        name: String,
        /// The `register` file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// After registering, the entry is not there or lacks `F`.
    #[error("registered {name} but the kernel shows {detail}; check {path}", path = path.display())]
    Verify {
        /// The entry name.
        name: String,
        /// The entry's file.
        path: PathBuf,
        /// What the kernel shows instead.
        detail: String,
    },
    /// Removing an entry failed.
    #[error("removing binfmt_misc entry {path} failed: {source}", path = path.display())]
    Remove {
        /// The entry's file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading the binfmt_misc directory or an entry failed.
    #[error("reading {path} failed: {source}", path = path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The Docker engine runs on another machine, whose kernel this machine's
    /// registrations do not reach.
    #[error(
        "the Docker engine at {docker_host} is not on this machine, and emulators are \
         registered per kernel: manage them through a helper container on that engine \
         (what `brix binfmt` does) or run `brix binfmt --install` on the engine's host"
    )]
    RemoteEngine {
        /// The `DOCKER_HOST` value.
        docker_host: String,
    },
    /// The engine's host has another architecture than this machine, so this machine's
    /// QEMU binaries cannot run there.
    #[error(
        "the Docker engine's host is {engine} but this machine is {host}, so its QEMU \
         binaries cannot be used there: run `brix binfmt --install` on the engine's host"
    )]
    EngineArch {
        /// The engine's architecture as `docker version` reports it.
        engine: String,
        /// This machine's architecture.
        host: String,
    },
    /// The helper container on the Docker engine failed.
    #[error("binfmt helper container on the Docker engine: {step} failed: {detail}")]
    Helper {
        /// What was being done.
        step: String,
        /// What docker or the helper said.
        detail: String,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How one architecture can be run on this host right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmulationState {
    /// The host runs it without emulation.
    Native,
    /// An enabled entry with `F` and a static (or unreadable, hence unknown) interpreter:
    /// works on the host and in containers.
    Working,
    /// An enabled entry with `F` and a static interpreter, but without `P` while the host
    /// has a `-binfmt-P` emulator that `install` would register with it: programs run, in
    /// containers too, but lose their argv\[0\], so busybox applets called through their
    /// links run as the wrong applet.
    NoPreserveArgv0,
    /// Registered and enabled, but without `F`: works on the host only, not in containers
    /// or BuildKit's platform check.
    NoFixBinary,
    /// Registered with `F`, but the interpreter is dynamically linked: fails in containers.
    DynamicInterpreter,
    /// Registered but disabled.
    Disabled,
    /// No entry matches the architecture.
    NotRegistered,
}

impl EmulationState {
    /// Whether containers (and BuildKit) can run this architecture's programs (for
    /// [`EmulationState::NoPreserveArgv0`], those that do not depend on their argv\[0\]).
    pub fn usable_in_containers(self) -> bool {
        matches!(
            self,
            EmulationState::Native | EmulationState::Working | EmulationState::NoPreserveArgv0
        )
    }

    /// Whether `install` would change something for this state (given an emulator): every
    /// state but native and working.
    pub fn needs_install(self) -> bool {
        !matches!(self, EmulationState::Native | EmulationState::Working)
    }

    /// A short word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EmulationState::Native => "native",
            EmulationState::Working => "ok",
            EmulationState::NoPreserveArgv0 => "no P flag",
            EmulationState::NoFixBinary => "no F flag",
            EmulationState::DynamicInterpreter => "dynamic qemu",
            EmulationState::Disabled => "disabled",
            EmulationState::NotRegistered => "not registered",
        }
    }
}

/// The emulation status of one architecture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmulatorStatus {
    /// The architecture.
    pub arch: Arch,
    /// Its platform (`linux/arm64`).
    pub platform: &'static str,
    /// Whether the host runs it natively.
    pub native: bool,
    /// The summary.
    pub state: EmulationState,
    /// The entry that decides `state` (the best of `entries`), if any.
    pub entry: Option<BinfmtEntry>,
    /// Every binfmt_misc entry that matches the architecture's executables (by pattern).
    pub entries: Vec<BinfmtEntry>,
    /// The static QEMU emulator on the host that `install` would register, if any: a
    /// `-binfmt-P` link when the host has one.
    pub emulator: Option<PathBuf>,
}

impl EmulatorStatus {
    /// The flags `install` would register `emulator` with (`POCF` or `CF`).
    pub fn emulator_flags(&self) -> Option<&'static str> {
        self.emulator.as_deref().map(register_flags_for)
    }
}

/// Options for [`BinfmtMisc::install`].
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Re-register even architectures that already work (this is what `reset` does).
    pub force: bool,
    /// Report architectures without a static emulator as skipped instead of failed
    /// (for `--install all`, which means "all that this host can emulate").
    pub skip_missing_emulators: bool,
}

impl InstallOptions {
    /// What `reset` installs with: everything re-registered, a missing emulator an error.
    pub const RESET: InstallOptions = InstallOptions {
        force: true,
        skip_missing_emulators: false,
    };
}

/// What `install` (or `reset`) did for one architecture.
#[derive(Debug)]
pub enum InstallOutcome {
    /// Registered a new entry (and removed the old ones it replaces).
    Registered {
        /// The architecture.
        arch: Arch,
        /// The entry as the kernel shows it after registration.
        entry: BinfmtEntry,
        /// Entries for the same architecture that were removed first.
        replaced: Vec<BinfmtEntry>,
        /// Whether the architecture already worked in containers before (a forced
        /// re-registration, as `reset` does).
        was_working: bool,
    },
    /// Already usable in containers; nothing was changed.
    AlreadyInstalled {
        /// The architecture.
        arch: Arch,
        /// The working entry.
        entry: BinfmtEntry,
    },
    /// The host runs the architecture natively; registering an emulator would hijack it.
    Native {
        /// The architecture.
        arch: Arch,
    },
    /// No static emulator, and the options said to skip rather than fail.
    NoEmulator {
        /// The architecture.
        arch: Arch,
        /// Every path that was tried.
        looked_for: Vec<PathBuf>,
    },
    /// The architecture could not be registered.
    Failed {
        /// The architecture.
        arch: Arch,
        /// Why.
        error: BinfmtError,
    },
}

impl InstallOutcome {
    /// The architecture this outcome is about.
    pub fn arch(&self) -> Arch {
        match self {
            InstallOutcome::Registered { arch, .. }
            | InstallOutcome::AlreadyInstalled { arch, .. }
            | InstallOutcome::Native { arch }
            | InstallOutcome::NoEmulator { arch, .. }
            | InstallOutcome::Failed { arch, .. } => *arch,
        }
    }

    /// Whether this is a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, InstallOutcome::Failed { .. })
    }

    /// A one-word summary (`installed`, `re-registered`, `already-installed`, `native`,
    /// `no-emulator`, `failed`) for machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            InstallOutcome::Registered {
                was_working: true, ..
            } => "re-registered",
            InstallOutcome::Registered { .. } => "installed",
            InstallOutcome::AlreadyInstalled { .. } => "already-installed",
            InstallOutcome::Native { .. } => "native",
            InstallOutcome::NoEmulator { .. } => "no-emulator",
            InstallOutcome::Failed { .. } => "failed",
        }
    }
}

fn describe_entry(e: &BinfmtEntry) -> String {
    format!(
        "{} ({}, flags \"{}\", {})",
        e.name,
        if e.enabled { "enabled" } else { "disabled" },
        e.flags,
        e.interpreter.display()
    )
}

impl fmt::Display for InstallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallOutcome::Registered {
                entry,
                replaced,
                was_working,
                ..
            } => {
                // Say why an old entry went: the reader wants to know whether emulation was
                // broken before (no F, disabled, dynamic QEMU) or simply renewed (reset).
                let verb = if replaced.is_empty() || !was_working {
                    "installed"
                } else {
                    "re-registered"
                };
                write!(
                    f,
                    "{verb}: {} -> {} (flags {})",
                    entry.name,
                    entry.interpreter.display(),
                    entry.flags
                )?;
                if !replaced.is_empty() {
                    let why = if replaced.iter().any(|e| e.enabled && !e.fix_binary()) {
                        "re-registered with F, replacing"
                    } else if entry.preserve_argv0()
                        && replaced
                            .iter()
                            .any(|e| e.enabled && e.fix_binary() && !e.preserve_argv0())
                    {
                        "re-registered with P so programs keep their argv[0] (busybox \
                         applets), replacing"
                    } else {
                        "replacing"
                    };
                    let old: Vec<String> = replaced.iter().map(describe_entry).collect();
                    write!(f, "; {why} {}", old.join(", "))?;
                }
                Ok(())
            }
            InstallOutcome::AlreadyInstalled { entry, .. } => {
                write!(f, "already installed: {}", describe_entry(entry))
            }
            InstallOutcome::Native { .. } => f.write_str("skipped: native on this host"),
            InstallOutcome::NoEmulator { looked_for, .. } => write!(
                f,
                "skipped: no static QEMU (looked for {}; Debian package {QEMU_STATIC_PACKAGE})",
                display_paths(looked_for)
            ),
            InstallOutcome::Failed { error, .. } => write!(f, "failed: {error}"),
        }
    }
}

/// What `uninstall` did for one architecture.
#[derive(Debug)]
pub enum UninstallOutcome {
    /// Removed these entries.
    Removed {
        /// The architecture.
        arch: Arch,
        /// The names of the removed entries.
        entries: Vec<String>,
    },
    /// No entry matched; nothing to do.
    NotRegistered {
        /// The architecture.
        arch: Arch,
    },
    /// Removing failed.
    Failed {
        /// The architecture.
        arch: Arch,
        /// Why.
        error: BinfmtError,
    },
}

impl UninstallOutcome {
    /// The architecture this outcome is about.
    pub fn arch(&self) -> Arch {
        match self {
            UninstallOutcome::Removed { arch, .. }
            | UninstallOutcome::NotRegistered { arch }
            | UninstallOutcome::Failed { arch, .. } => *arch,
        }
    }

    /// Whether this is a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, UninstallOutcome::Failed { .. })
    }

    /// A one-word summary (`removed`, `not-registered`, `failed`).
    pub fn kind(&self) -> &'static str {
        match self {
            UninstallOutcome::Removed { .. } => "removed",
            UninstallOutcome::NotRegistered { .. } => "not-registered",
            UninstallOutcome::Failed { .. } => "failed",
        }
    }
}

impl fmt::Display for UninstallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UninstallOutcome::Removed { entries, .. } => {
                write!(f, "uninstalled: {}", entries.join(", "))
            }
            UninstallOutcome::NotRegistered { .. } => f.write_str("not registered"),
            UninstallOutcome::Failed { error, .. } => write!(f, "failed: {error}"),
        }
    }
}

/// What registering one architecture takes (see [`BinfmtMisc::plan_install`]).
pub(crate) struct InstallPlan {
    /// The host's static emulator to register.
    pub(crate) interpreter: PathBuf,
    /// Entries for the architecture to remove first.
    pub(crate) replace: Vec<BinfmtEntry>,
    /// Whether the architecture worked before (a forced re-registration).
    pub(crate) was_working: bool,
}

/// The result of looking for a static emulator. A `-binfmt-P` path in `Static` is to be
/// registered with `P` ([`register_flags_for`]).
enum EmulatorLookup {
    Static(PathBuf),
    OnlyDynamic(PathBuf),
    Missing(Vec<PathBuf>),
}

/// A binfmt_misc mount and the host facts that decide what to register there.
///
/// [`BinfmtMisc::system`] is the real one; [`BinfmtMisc::new`] points at another directory
/// (a test fixture, or a binfmt_misc mounted elsewhere).
#[derive(Debug, Clone)]
pub struct BinfmtMisc {
    root: PathBuf,
    emulator_dirs: Vec<PathBuf>,
    binfmt_p_dirs: Vec<PathBuf>,
    host_arch: Option<Arch>,
    /// Whether entries' interpreter paths name files on this machine (false for entries
    /// read from another machine's kernel through a helper container).
    local_interpreters: bool,
}

impl BinfmtMisc {
    /// The host's binfmt_misc at `/proc/sys/fs/binfmt_misc`, emulators from
    /// [`DEFAULT_BINFMT_P_DIRS`] and [`DEFAULT_EMULATOR_DIRS`], and the running kernel's
    /// architecture.
    pub fn system() -> BinfmtMisc {
        BinfmtMisc {
            root: PathBuf::from(DEFAULT_BINFMT_MISC),
            emulator_dirs: DEFAULT_EMULATOR_DIRS.iter().map(PathBuf::from).collect(),
            binfmt_p_dirs: DEFAULT_BINFMT_P_DIRS.iter().map(PathBuf::from).collect(),
            host_arch: host_arch(),
            local_interpreters: true,
        }
    }

    /// Like [`BinfmtMisc::system`] but with binfmt_misc at `root`.
    pub fn new(root: impl Into<PathBuf>) -> BinfmtMisc {
        BinfmtMisc {
            root: root.into(),
            ..BinfmtMisc::system()
        }
    }

    /// Searches these directories for static emulators instead of the defaults.
    pub fn with_emulator_dirs(mut self, dirs: Vec<PathBuf>) -> BinfmtMisc {
        self.emulator_dirs = dirs;
        self
    }

    /// Searches these directories for `<target>-binfmt-P` links (registered with `P`)
    /// instead of [`DEFAULT_BINFMT_P_DIRS`]; an empty list disables `P` registrations.
    pub fn with_binfmt_p_dirs(mut self, dirs: Vec<PathBuf>) -> BinfmtMisc {
        self.binfmt_p_dirs = dirs;
        self
    }

    /// Treats `arch` as the host architecture (`None`: no architecture is native).
    pub fn with_host_arch(mut self, arch: Option<Arch>) -> BinfmtMisc {
        self.host_arch = arch;
        self
    }

    /// The binfmt_misc directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host architecture, if brix knows it.
    pub fn host_arch(&self) -> Option<Arch> {
        self.host_arch
    }

    /// Whether the host runs `arch` without emulation.
    pub fn is_native(&self, arch: Arch) -> bool {
        self.host_arch
            .is_some_and(|host| host.natively_runs().contains(&arch))
    }

    /// Whether binfmt_misc is mounted (its `register` file exists).
    pub fn is_mounted(&self) -> bool {
        self.root.join("register").exists()
    }

    /// Mounts binfmt_misc at the root if it is not mounted yet (needs root).
    ///
    /// This runs `mount(8)` rather than calling mount(2): the workspace forbids `unsafe`,
    /// which a libc call needs, and util-linux `mount` is on every host where registering
    /// is possible at all. The mount is left in place so later status reads work, as
    /// systemd's `proc-sys-fs-binfmt_misc.mount` would leave it.
    pub fn ensure_mounted(&self) -> Result<(), BinfmtError> {
        if self.is_mounted() {
            return Ok(());
        }
        let not_mounted = |detail: String| BinfmtError::NotMounted {
            path: self.root.clone(),
            detail,
        };
        let output = Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(&self.root)
            .output()
            .map_err(|e| not_mounted(format!("cannot run `mount`: {e}")))?;
        if !output.status.success() {
            // mount(8) adds a second line pointing at dmesg; the first says what failed.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().next().unwrap_or_default().trim();
            return Err(not_mounted(format!(
                "`mount` failed ({}): {first}",
                output.status
            )));
        }
        if !self.is_mounted() {
            return Err(not_mounted(format!(
                "`mount` succeeded but {} is still missing",
                self.root.join("register").display()
            )));
        }
        Ok(())
    }

    /// Every parseable entry in binfmt_misc, sorted by name. Entries that cannot be read or
    /// parsed (other tools' oddities) are left out; only a failure to list the directory
    /// is an error.
    pub fn entries(&self) -> Result<Vec<BinfmtEntry>, BinfmtError> {
        let read_err = |source| BinfmtError::Read {
            path: self.root.clone(),
            source,
        };
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.root).map_err(read_err)? {
            let dirent = dirent.map_err(read_err)?;
            let name = dirent.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            let Ok(text) = fs::read_to_string(dirent.path()) else {
                continue;
            };
            if let Ok(entry) = BinfmtEntry::parse(&name, &text) {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The status of every architecture in [`Arch::ALL`]. When binfmt_misc is not mounted,
    /// no entries are visible and every foreign architecture shows as not registered; call
    /// [`BinfmtMisc::is_mounted`] to tell the two apart.
    pub fn status(&self) -> Result<Vec<EmulatorStatus>, BinfmtError> {
        let entries = if self.is_mounted() {
            self.entries()?
        } else {
            Vec::new()
        };
        Ok(Arch::ALL
            .iter()
            .map(|&arch| self.status_of(arch, &entries))
            .collect())
    }

    pub(crate) fn status_of(&self, arch: Arch, all: &[BinfmtEntry]) -> EmulatorStatus {
        let entries: Vec<BinfmtEntry> = all.iter().filter(|e| e.matches(arch)).cloned().collect();
        let native = self.is_native(arch);
        let emulator = match self.find_emulator(arch) {
            EmulatorLookup::Static(path) => Some(path),
            _ => None,
        };
        // An entry without P only falls short when install would register one with P.
        let p_available = emulator.as_deref().is_some_and(preserves_argv0);
        // The best entry decides: several can match (say Debian's and one made by hand), and
        // which one the kernel picks depends on registration order, which it does not show.
        let judged: Vec<(EmulationState, &BinfmtEntry)> = entries
            .iter()
            .map(|e| (entry_state(e, self.local_interpreters, p_available), e))
            .collect();
        let best = judged.iter().min_by_key(|(state, _)| state_rank(*state));
        let state = match best {
            _ if native => EmulationState::Native,
            Some((state, _)) => *state,
            None => EmulationState::NotRegistered,
        };
        EmulatorStatus {
            arch,
            platform: arch.platform(),
            native,
            state,
            entry: best.map(|(_, e)| (*e).clone()),
            entries,
            emulator,
        }
    }

    fn find_emulator(&self, arch: Arch) -> EmulatorLookup {
        let q = arch.qemu_name();
        // Debian's `<target>-binfmt-P` links come first: registered with P they keep argv[0].
        // Opening follows the link, so the check is on the QEMU it points at. Then Debian's
        // qemu-user-static names, qemu-<target>-static; a plain qemu-<target> is accepted
        // when it is static (newer Debian builds qemu-user statically).
        let binfmt_p = format!("{q}{PRESERVE_ARGV0_SUFFIX}");
        let candidates = self
            .binfmt_p_dirs
            .iter()
            .map(|dir| dir.join(&binfmt_p))
            .chain(self.emulator_dirs.iter().flat_map(|dir| {
                [format!("qemu-{q}-static"), format!("qemu-{q}")].map(|name| dir.join(name))
            }));
        let mut looked_for = Vec::new();
        let mut dynamic = None;
        for path in candidates {
            looked_for.push(path.clone());
            let Ok(mut file) = fs::File::open(&path) else {
                continue;
            };
            match elf::linkage(&mut file) {
                Ok(Linkage::Static) => return EmulatorLookup::Static(path),
                Ok(Linkage::Dynamic) => {
                    dynamic.get_or_insert(path);
                }
                Ok(Linkage::NotElf) | Err(_) => {}
            }
        }
        match dynamic {
            Some(path) => EmulatorLookup::OnlyDynamic(path),
            None => EmulatorLookup::Missing(looked_for),
        }
    }

    /// Registers static QEMU emulators for `arches`, mounting binfmt_misc first if needed:
    /// a `-binfmt-P` link with the `POCF` flags when the host has one, else the static
    /// QEMU with `CF`. Native architectures are skipped; so are those that already work (an
    /// enabled entry with `F` and a static interpreter, and `P` if a `-binfmt-P` link
    /// exists) unless `options.force`. Entries for the same architecture that fall short
    /// (no `F`, no `P`, disabled, dynamic interpreter) are removed and replaced.
    ///
    /// Per-architecture problems are reported in the outcomes; the `Err` case is for what
    /// stops everything (binfmt_misc cannot be mounted or listed).
    pub fn install(
        &self,
        arches: &[Arch],
        options: &InstallOptions,
    ) -> Result<Vec<InstallOutcome>, BinfmtError> {
        self.ensure_mounted()?;
        let mut outcomes = Vec::with_capacity(arches.len());
        for &arch in arches {
            // Re-read for each architecture: a failed or partial earlier step must not leave
            // us working from a stale picture.
            let entries = self.entries()?;
            outcomes.push(self.install_one(arch, &entries, options));
        }
        Ok(outcomes)
    }

    fn install_one(
        &self,
        arch: Arch,
        all: &[BinfmtEntry],
        options: &InstallOptions,
    ) -> InstallOutcome {
        let plan = match self.plan_install(arch, all, options) {
            Ok(plan) => plan,
            Err(outcome) => return *outcome,
        };
        // Remove every entry for this architecture first: the kernel uses the most recently
        // registered match, but a leftover broken entry is confusing in `status` and would
        // win again if ours were removed.
        for old in &plan.replace {
            if let Err(error) = self.remove_entry(&old.name, "replacing an emulator") {
                return InstallOutcome::Failed { arch, error };
            }
        }
        match self.register(arch, &plan.interpreter) {
            Ok(entry) => InstallOutcome::Registered {
                arch,
                entry,
                replaced: plan.replace,
                was_working: plan.was_working,
            },
            Err(error) => InstallOutcome::Failed { arch, error },
        }
    }

    /// Decides what installing `arch` takes, given the current entries: either an outcome
    /// right away (native, already working, no emulator, name taken) or the entries to
    /// remove and the host emulator to register.
    pub(crate) fn plan_install(
        &self,
        arch: Arch,
        all: &[BinfmtEntry],
        options: &InstallOptions,
    ) -> Result<InstallPlan, Box<InstallOutcome>> {
        if self.is_native(arch) {
            return Err(Box::new(InstallOutcome::Native { arch }));
        }
        let status = self.status_of(arch, all);
        if !options.force
            && status.state == EmulationState::Working
            && let Some(entry) = status.entry
        {
            return Err(Box::new(InstallOutcome::AlreadyInstalled { arch, entry }));
        }
        let interpreter = match self.find_emulator(arch) {
            EmulatorLookup::Static(path) => path,
            EmulatorLookup::OnlyDynamic(path) => {
                let error = BinfmtError::DynamicEmulator { arch, path };
                return Err(Box::new(InstallOutcome::Failed { arch, error }));
            }
            EmulatorLookup::Missing(looked_for) if options.skip_missing_emulators => {
                return Err(Box::new(InstallOutcome::NoEmulator { arch, looked_for }));
            }
            EmulatorLookup::Missing(looked_for) => {
                let error = BinfmtError::NoStaticEmulator { arch, looked_for };
                return Err(Box::new(InstallOutcome::Failed { arch, error }));
            }
        };
        let name = arch.entry_name();
        if let Some(other) = all.iter().find(|e| e.name == name && !e.matches(arch)) {
            let error = BinfmtError::NameTaken {
                arch,
                name,
                path: self.root.join(&other.name),
            };
            return Err(Box::new(InstallOutcome::Failed { arch, error }));
        }
        Ok(InstallPlan {
            interpreter,
            replace: status.entries,
            was_working: status.state == EmulationState::Working,
        })
    }

    fn register(&self, arch: Arch, interpreter: &Path) -> Result<BinfmtEntry, BinfmtError> {
        let name = arch.entry_name();
        let register = self.root.join("register");
        let flags = register_flags_for(interpreter);
        let line =
            register_line(arch, interpreter, flags).ok_or_else(|| BinfmtError::Register {
                name: name.clone(),
                path: register.clone(),
                detail: format!(
                    "interpreter path {} contains `:` or is not UTF-8",
                    interpreter.display()
                ),
            })?;
        let io_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                BinfmtError::PermissionDenied {
                    action: format!("registering {name}"),
                    path: register.clone(),
                }
            } else {
                let detail = match e.raw_os_error() {
                    Some(17) => format!("an entry named {name} already exists ({e})"),
                    _ => e.to_string(),
                };
                BinfmtError::Register {
                    name: name.clone(),
                    path: register.clone(),
                    detail,
                }
            }
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(&register)
            .map_err(io_err)?;
        // The kernel parses one registration per write(2), so the line goes in one call.
        let written = file.write(line.as_bytes()).map_err(io_err)?;
        if written != line.len() {
            return Err(BinfmtError::Register {
                name,
                path: register,
                detail: format!("short write ({written} of {} bytes)", line.len()),
            });
        }
        let path = self.root.join(&name);
        let text = fs::read_to_string(&path).map_err(|source| BinfmtError::Read {
            path: path.clone(),
            source,
        })?;
        let entry = BinfmtEntry::parse(&name, &text).map_err(|detail| BinfmtError::Verify {
            name: name.clone(),
            path: path.clone(),
            detail,
        })?;
        if !entry.is_registration_of(arch, flags) {
            return Err(BinfmtError::Verify {
                name,
                path,
                detail: describe_entry(&entry),
            });
        }
        Ok(entry)
    }

    fn remove_entry(&self, name: &str, action: &str) -> Result<(), BinfmtError> {
        let path = self.root.join(name);
        let result = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"-1"));
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                Err(BinfmtError::PermissionDenied {
                    action: action.to_string(),
                    path,
                })
            }
            Err(source) => Err(BinfmtError::Remove { path, source }),
        }
    }

    /// Removes every entry that matches each of `arches` (whoever registered it), by writing
    /// `-1` to it. Mounts binfmt_misc first if needed.
    pub fn uninstall(&self, arches: &[Arch]) -> Result<Vec<UninstallOutcome>, BinfmtError> {
        self.ensure_mounted()?;
        let mut outcomes = Vec::with_capacity(arches.len());
        for &arch in arches {
            let matching: Vec<BinfmtEntry> = self
                .entries()?
                .into_iter()
                .filter(|e| e.matches(arch))
                .collect();
            if matching.is_empty() {
                outcomes.push(UninstallOutcome::NotRegistered { arch });
                continue;
            }
            let mut removed = Vec::new();
            let mut failure = None;
            for entry in matching {
                match self.remove_entry(&entry.name, "removing an emulator") {
                    Ok(()) => removed.push(entry.name),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            outcomes.push(match failure {
                Some(error) => UninstallOutcome::Failed { arch, error },
                None => UninstallOutcome::Removed {
                    arch,
                    entries: removed,
                },
            });
        }
        Ok(outcomes)
    }

    /// Removes and re-registers emulators: the fix for emulation that "stops working"
    /// (entries without `F`, disabled, or pointing at a QEMU that was upgraded away).
    /// With an empty `arches`, resets every foreign architecture that has any entry now.
    /// An architecture's entries are only removed once its static emulator is known to
    /// exist, so a reset never leaves the host worse off.
    pub fn reset(&self, arches: &[Arch]) -> Result<Vec<InstallOutcome>, BinfmtError> {
        self.ensure_mounted()?;
        let targets = self.reset_targets(arches, || self.entries())?;
        self.install(&targets, &InstallOptions::RESET)
    }

    /// What `reset` re-registers: `arches`, or with none given every foreign architecture
    /// that has an entry in `entries()` (read only then).
    pub(crate) fn reset_targets(
        &self,
        arches: &[Arch],
        entries: impl FnOnce() -> Result<Vec<BinfmtEntry>, BinfmtError>,
    ) -> Result<Vec<Arch>, BinfmtError> {
        if !arches.is_empty() {
            return Ok(arches.to_vec());
        }
        let entries = entries()?;
        Ok(Arch::ALL
            .into_iter()
            .filter(|&a| !self.is_native(a) && entries.iter().any(|e| e.matches(a)))
            .collect())
    }
}

/// The state one entry alone would give its architecture; `p_available` says whether the
/// host has a `-binfmt-P` emulator, which makes an entry without `P` fall short.
fn entry_state(entry: &BinfmtEntry, local_interpreter: bool, p_available: bool) -> EmulationState {
    if !entry.enabled {
        return EmulationState::Disabled;
    }
    if !entry.fix_binary() {
        return EmulationState::NoFixBinary;
    }
    let working = if p_available && !entry.preserve_argv0() {
        EmulationState::NoPreserveArgv0
    } else {
        EmulationState::Working
    };
    // With F the kernel holds the interpreter open, so the file at the path may since have
    // changed; it is still the best evidence of what was registered. Unreadable means
    // unknown, and unknown is given the benefit of the doubt.
    if !local_interpreter {
        return working;
    }
    match fs::File::open(&entry.interpreter).map(|mut f| elf::linkage(&mut f)) {
        Ok(Ok(Linkage::Dynamic)) => EmulationState::DynamicInterpreter,
        _ => working,
    }
}

fn state_rank(state: EmulationState) -> u8 {
    match state {
        EmulationState::Native | EmulationState::Working => 0,
        EmulationState::NoPreserveArgv0 => 1,
        EmulationState::DynamicInterpreter => 2,
        EmulationState::NoFixBinary => 3,
        EmulationState::Disabled => 4,
        EmulationState::NotRegistered => 5,
    }
}

/// The architecture of the running kernel: `/proc/sys/kernel/arch` (the kernel's
/// `uname -m`), else the architecture brix was compiled for.
pub fn host_arch() -> Option<Arch> {
    fs::read_to_string("/proc/sys/kernel/arch")
        .ok()
        .and_then(|m| Arch::from_machine(&m))
        .or_else(|| Arch::from_machine(std::env::consts::ARCH))
}

/// The status of every architecture on this host (see [`BinfmtMisc::status`]).
pub fn status() -> Result<Vec<EmulatorStatus>, BinfmtError> {
    BinfmtMisc::system().status()
}

/// Registers emulators on this host (see [`BinfmtMisc::install`]).
pub fn install(
    arches: &[Arch],
    options: &InstallOptions,
) -> Result<Vec<InstallOutcome>, BinfmtError> {
    BinfmtMisc::system().install(arches, options)
}

/// Removes emulators from this host (see [`BinfmtMisc::uninstall`]).
pub fn uninstall(arches: &[Arch]) -> Result<Vec<UninstallOutcome>, BinfmtError> {
    BinfmtMisc::system().uninstall(arches)
}

/// Re-registers emulators on this host (see [`BinfmtMisc::reset`]).
pub fn reset(arches: &[Arch]) -> Result<Vec<InstallOutcome>, BinfmtError> {
    BinfmtMisc::system().reset(arches)
}

/// What to tell a user whose builder cannot run `platform` (`linux/arm64`, `arm/v7`, ...):
/// how to add QEMU emulation for it, or a native node. `None` when QEMU user emulation
/// cannot help (another OS, an architecture brix does not emulate).
///
/// Pure: it does not look at the host, so `inspect` and `build` can call it for any node.
pub fn suggestion_for(platform: &str) -> Option<String> {
    let arch = Arch::parse(platform).ok()?;
    Some(format!(
        "{platform} is supported by no node: run `brix binfmt --install {arch}` on the \
         builder's host to emulate it with QEMU, or add a native {arch} node with \
         `brix create --append`"
    ))
}

/// Checks that a Docker endpoint (`DOCKER_HOST`) is on this machine, so registering
/// emulators here affects the engine's kernel. Unix sockets, `npipe://`, `fd://` and TCP to
/// a loopback address count as local; `ssh://` and other TCP hosts do not.
pub fn check_engine_is_local(docker_host: Option<&str>) -> Result<(), BinfmtError> {
    let Some(host) = docker_host.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let local = if host.starts_with("unix://")
        || host.starts_with("npipe://")
        || host.starts_with("fd://")
        || host.starts_with('/')
    {
        true
    } else if let Some(rest) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .or_else(|| host.strip_prefix("https://"))
    {
        let authority = rest.split('/').next().unwrap_or_default();
        let hostname = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or_default()
        };
        hostname == "localhost" || hostname == "::1" || hostname.starts_with("127.")
    } else {
        false
    };
    if local {
        Ok(())
    } else {
        Err(BinfmtError::RemoteEngine {
            docker_host: host.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "brix-binfmt-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = fs::remove_dir_all(&dir);
            if let Err(e) = fs::create_dir_all(dir.join("binfmt_misc")) {
                panic!("creating {}: {e}", dir.display());
            }
            for sub in ["bin", "libexec"] {
                if let Err(e) = fs::create_dir_all(dir.join(sub)) {
                    panic!("creating {}: {e}", dir.display());
                }
            }
            Scratch(dir)
        }

        fn write(&self, rel: &str, bytes: &[u8]) {
            if let Err(e) = fs::write(self.0.join(rel), bytes) {
                panic!("writing {rel}: {e}");
            }
        }

        /// A symlink at `rel` pointing at `target` (relative to the link's directory), as
        /// Debian's `/usr/libexec/qemu-binfmt/<target>-binfmt-P` links are.
        fn link(&self, rel: &str, target: &str) {
            if let Err(e) = std::os::unix::fs::symlink(target, self.0.join(rel)) {
                panic!("linking {rel}: {e}");
            }
        }

        fn binfmt(&self) -> BinfmtMisc {
            BinfmtMisc::new(self.0.join("binfmt_misc"))
                .with_emulator_dirs(vec![self.0.join("bin")])
                .with_binfmt_p_dirs(vec![self.0.join("libexec")])
                .with_host_arch(Some(Arch::Amd64))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn entry_text(arch: Arch, enabled: bool, interpreter: &Path, flags: &str) -> String {
        format!(
            "{}\ninterpreter {}\nflags: {flags}\noffset 0\nmagic {}\nmask {}\n",
            if enabled { "enabled" } else { "disabled" },
            interpreter.display(),
            hex(arch.magic()),
            hex(arch.mask())
        )
    }

    /// A 64-bit ELF header with no program headers: static as far as `linkage` can tell.
    fn static_elf() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b
    }

    fn dynamic_elf() -> Vec<u8> {
        let mut b = static_elf();
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&3u32.to_le_bytes());
        b.extend(ph);
        b
    }

    fn find(statuses: &[EmulatorStatus], arch: Arch) -> &EmulatorStatus {
        match statuses.iter().find(|s| s.arch == arch) {
            Some(s) => s,
            None => panic!("no status for {arch}"),
        }
    }

    #[test]
    fn status_reads_entries_by_pattern() {
        let t = Scratch::new();
        t.write("binfmt_misc/register", b"");
        t.write("binfmt_misc/status", b"enabled\n");
        t.write("bin/qemu-aarch64-static", &static_elf());
        t.write("bin/qemu-riscv64", &dynamic_elf());
        let aarch64 = t.0.join("bin/qemu-aarch64-static");
        // Debian's name and flags for arm64; a flagless arm entry under another name;
        // a disabled s390x one; an unrelated extension entry.
        t.write(
            "binfmt_misc/qemu-aarch64",
            entry_text(Arch::Arm64, true, &aarch64, "POCF").as_bytes(),
        );
        t.write(
            "binfmt_misc/arm",
            entry_text(Arch::Arm, true, Path::new("/usr/bin/qemu-arm"), "").as_bytes(),
        );
        t.write(
            "binfmt_misc/qemu-s390x",
            entry_text(Arch::S390x, false, Path::new("/x"), "F").as_bytes(),
        );
        t.write(
            "binfmt_misc/wine",
            b"enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n",
        );
        let statuses = match t.binfmt().status() {
            Ok(s) => s,
            Err(e) => panic!("status: {e}"),
        };
        assert_eq!(statuses.len(), Arch::ALL.len());

        let arm64 = find(&statuses, Arch::Arm64);
        assert_eq!(arm64.state, EmulationState::Working);
        assert_eq!(
            arm64.entry.as_ref().map(|e| e.name.as_str()),
            Some("qemu-aarch64")
        );
        assert_eq!(arm64.emulator.as_deref(), Some(aarch64.as_path()));

        let arm = find(&statuses, Arch::Arm);
        assert_eq!(arm.state, EmulationState::NoFixBinary);
        assert_eq!(arm.entries.len(), 1);
        assert_eq!(arm.emulator, None);

        assert_eq!(find(&statuses, Arch::S390x).state, EmulationState::Disabled);
        let amd64 = find(&statuses, Arch::Amd64);
        assert!(amd64.native && amd64.state == EmulationState::Native);
        assert!(find(&statuses, Arch::I386).native);
        let riscv = find(&statuses, Arch::Riscv64);
        // A dynamic qemu-riscv64 is not an emulator brix would register.
        assert_eq!(riscv.state, EmulationState::NotRegistered);
        assert_eq!(riscv.emulator, None);
    }

    #[test]
    fn an_f_entry_with_a_dynamic_interpreter_is_flagged() {
        let t = Scratch::new();
        t.write("binfmt_misc/register", b"");
        t.write("bin/qemu-arm", &dynamic_elf());
        let interp = t.0.join("bin/qemu-arm");
        t.write(
            "binfmt_misc/qemu-arm",
            entry_text(Arch::Arm, true, &interp, "F").as_bytes(),
        );
        let statuses = t.binfmt().status().unwrap_or_default();
        assert_eq!(
            find(&statuses, Arch::Arm).state,
            EmulationState::DynamicInterpreter
        );
    }

    #[test]
    fn lookup_prefers_a_binfmt_p_link_to_a_static_qemu() {
        let t = Scratch::new();
        t.write("binfmt_misc/register", b"");
        // arm64: Debian's link to the static QEMU wins, and is registered with P.
        t.write("bin/qemu-aarch64-static", &static_elf());
        t.link("libexec/aarch64-binfmt-P", "../bin/qemu-aarch64-static");
        // arm: the link points at a dynamic QEMU, so the static one is used, without P.
        t.write("bin/qemu-arm", &dynamic_elf());
        t.write("bin/qemu-arm-static", &static_elf());
        t.link("libexec/arm-binfmt-P", "../bin/qemu-arm");
        // riscv64: a dangling link is no emulator.
        t.write("bin/qemu-riscv64-static", &static_elf());
        t.link("libexec/riscv64-binfmt-P", "../bin/qemu-riscv64-gone");
        // s390x: only a dynamic link: a dynamic emulator, which install refuses.
        t.write("bin/qemu-s390x", &dynamic_elf());
        t.link("libexec/s390x-binfmt-P", "../bin/qemu-s390x");
        let statuses = t.binfmt().status().unwrap_or_default();

        let arm64 = find(&statuses, Arch::Arm64);
        assert_eq!(
            arm64.emulator.as_deref(),
            Some(t.0.join("libexec/aarch64-binfmt-P").as_path())
        );
        assert_eq!(arm64.emulator_flags(), Some("POCF"));
        let arm = find(&statuses, Arch::Arm);
        assert_eq!(
            arm.emulator.as_deref(),
            Some(t.0.join("bin/qemu-arm-static").as_path())
        );
        assert_eq!(arm.emulator_flags(), Some("CF"));
        let riscv = find(&statuses, Arch::Riscv64);
        assert_eq!(
            riscv.emulator.as_deref(),
            Some(t.0.join("bin/qemu-riscv64-static").as_path())
        );
        assert_eq!(riscv.emulator_flags(), Some("CF"));
        assert_eq!(find(&statuses, Arch::S390x).emulator, None);

        let plan = t
            .binfmt()
            .plan_install(Arch::Arm64, &[], &InstallOptions::default());
        assert!(plan.is_ok_and(
            |p| p.interpreter == t.0.join("libexec/aarch64-binfmt-P") && p.replace.is_empty()
        ));
        let outcome = t
            .binfmt()
            .plan_install(Arch::S390x, &[], &InstallOptions::default())
            .err()
            .map(|o| o.to_string());
        assert!(
            outcome
                .as_deref()
                .is_some_and(|o| o.contains("s390x-binfmt-P is dynamically linked")),
            "{outcome:?}"
        );
        // With no binfmt-P directory, the static QEMU is used as before.
        let plain = t.binfmt().with_binfmt_p_dirs(Vec::new());
        let statuses = plain.status().unwrap_or_default();
        let arm64 = find(&statuses, Arch::Arm64);
        assert_eq!(
            arm64.emulator.as_deref(),
            Some(t.0.join("bin/qemu-aarch64-static").as_path())
        );
        assert_eq!(arm64.emulator_flags(), Some("CF"));
    }

    #[test]
    fn an_f_entry_without_p_is_upgraded_when_a_binfmt_p_link_exists() {
        let t = Scratch::new();
        t.write("binfmt_misc/register", b"");
        t.write("bin/qemu-aarch64-static", &static_elf());
        t.write("bin/qemu-arm-static", &static_elf());
        t.link("libexec/aarch64-binfmt-P", "../bin/qemu-aarch64-static");
        let aarch64 = t.0.join("bin/qemu-aarch64-static");
        let arm = t.0.join("bin/qemu-arm-static");
        // What brix registered before it knew about P (the kernel adds O for C).
        t.write(
            "binfmt_misc/qemu-aarch64",
            entry_text(Arch::Arm64, true, &aarch64, "OCF").as_bytes(),
        );
        // arm has no binfmt-P link: its CF entry is as good as this host can do.
        t.write(
            "binfmt_misc/qemu-arm",
            entry_text(Arch::Arm, true, &arm, "OCF").as_bytes(),
        );
        let binfmt = t.binfmt();
        let entries = binfmt.entries().unwrap_or_default();
        let statuses = binfmt.status().unwrap_or_default();
        let arm64 = find(&statuses, Arch::Arm64);
        assert_eq!(arm64.state, EmulationState::NoPreserveArgv0);
        assert!(arm64.state.usable_in_containers() && arm64.state.needs_install());
        assert_eq!(find(&statuses, Arch::Arm).state, EmulationState::Working);

        // install (without force) replaces the arm64 entry, and leaves arm alone.
        let options = InstallOptions::default();
        let plan = match binfmt.plan_install(Arch::Arm64, &entries, &options) {
            Ok(plan) => plan,
            Err(outcome) => panic!("arm64 was not planned for an upgrade: {outcome}"),
        };
        assert_eq!(plan.interpreter, t.0.join("libexec/aarch64-binfmt-P"));
        assert_eq!(plan.replace.len(), 1);
        assert!(!plan.was_working);
        assert!(matches!(
            binfmt
                .plan_install(Arch::Arm, &entries, &options)
                .err()
                .as_deref(),
            Some(InstallOutcome::AlreadyInstalled { .. })
        ));

        // The outcome says why the old entry went.
        let new_text = entry_text(
            Arch::Arm64,
            true,
            &t.0.join("libexec/aarch64-binfmt-P"),
            "POCF",
        );
        let entry = BinfmtEntry::parse("qemu-aarch64", &new_text);
        let Ok(entry) = entry else {
            panic!("fixture entry did not parse")
        };
        let outcome = InstallOutcome::Registered {
            arch: Arch::Arm64,
            entry,
            replaced: plan.replace,
            was_working: plan.was_working,
        };
        let text = outcome.to_string();
        assert!(
            text.starts_with("installed: qemu-aarch64 -> ")
                && text.contains("aarch64-binfmt-P (flags POCF)")
                && text.contains("re-registered with P")
                && text.contains("flags \"OCF\""),
            "{text}"
        );

        // Once registered with P, arm64 is installed.
        t.write("binfmt_misc/qemu-aarch64", new_text.as_bytes());
        let entries = binfmt.entries().unwrap_or_default();
        assert_eq!(
            find(&binfmt.status().unwrap_or_default(), Arch::Arm64).state,
            EmulationState::Working
        );
        assert!(matches!(
            binfmt
                .plan_install(Arch::Arm64, &entries, &options)
                .err()
                .as_deref(),
            Some(InstallOutcome::AlreadyInstalled { .. })
        ));
    }

    #[test]
    fn unmounted_binfmt_misc_shows_nothing_registered() {
        let t = Scratch::new();
        let binfmt = t.binfmt();
        assert!(!binfmt.is_mounted());
        let statuses = binfmt.status().unwrap_or_default();
        assert!(
            statuses
                .iter()
                .all(|s| s.native || s.state == EmulationState::NotRegistered)
        );
    }

    #[test]
    fn suggestion_names_the_install_command() {
        let s = suggestion_for("linux/arm64");
        assert!(s.is_some_and(|s| s.contains("brix binfmt --install arm64")
            && s.starts_with("linux/arm64 is supported by no node")));
        assert!(suggestion_for("linux/arm/v7").is_some_and(|s| s.contains("--install arm`")));
        assert_eq!(suggestion_for("windows/amd64"), None);
        assert_eq!(suggestion_for("linux/sparc64"), None);
    }

    #[test]
    fn engine_locality() {
        for local in [
            None,
            Some(""),
            Some("unix:///var/run/docker.sock"),
            Some("unix:///run/user/1000/docker.sock"),
            Some("tcp://127.0.0.1:2375"),
            Some("tcp://localhost:2376"),
            Some("tcp://[::1]:2375"),
        ] {
            assert!(check_engine_is_local(local).is_ok(), "{local:?}");
        }
        for remote in [
            "ssh://me@builder",
            "tcp://10.0.0.5:2376",
            "tcp://builder.lan:2375",
        ] {
            let err = check_engine_is_local(Some(remote))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.is_some_and(|e| e.contains(remote) && e.contains("engine's host")),
                "{remote}"
            );
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let err = BinfmtError::NoStaticEmulator {
            arch: Arch::Arm64,
            looked_for: vec![PathBuf::from("/usr/bin/qemu-aarch64-static")],
        }
        .to_string();
        assert!(err.contains("/usr/bin/qemu-aarch64-static") && err.contains("qemu-user-static"));
        let err = BinfmtError::PermissionDenied {
            action: "registering qemu-aarch64".into(),
            path: PathBuf::from("/proc/sys/fs/binfmt_misc/register"),
        }
        .to_string();
        assert!(err.starts_with("registering qemu-aarch64 needs root"));
    }
}
