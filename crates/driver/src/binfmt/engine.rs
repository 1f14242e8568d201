//! Emulators on the host of a Docker engine that may be another machine, through a helper
//! container: the way `docker run --privileged tonistiigi/binfmt --install` works, but with
//! this machine's static QEMU copied in, since no binfmt image can be pulled.
//!
//! The helper mounts binfmt_misc in its own mount namespace and writes the registrations.
//! Registrations are kernel-wide, and with the `F` flag the kernel opens the interpreter at
//! registration time (inside the helper), so they keep working after the helper is removed.
//!
//! The engine is reached with the `docker` command line, so `DOCKER_HOST`, `--context`
//! settings and SSH endpoints all work the way they do for the user's own `docker` calls.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    Arch, BinfmtEntry, BinfmtError, BinfmtMisc, EmulatorStatus, InstallOptions, InstallOutcome,
    InstallPlan, UninstallOutcome, register_flags_for, register_line,
};

/// The image the helper runs in by default: the BuildKit image brix's docker-container
/// builders use, which every engine brix builds on has or can pull, and which has `sh`.
pub const DEFAULT_HELPER_IMAGE: &str = "moby/buildkit:buildx-stable-1";

/// Label on helper containers, so leftovers of an interrupted run can be found.
pub const HELPER_LABEL: &str = "dev.brix.binfmt-helper";

/// The emulators a Docker engine's host runs, managed through helper containers.
#[derive(Debug, Clone)]
pub struct EngineBinfmt {
    image: String,
    /// Decisions use the local logic, with the engine's architecture as "native" and
    /// without looking at interpreter files, which live on the engine's host.
    planner: BinfmtMisc,
}

impl EngineBinfmt {
    /// Connects to the engine the `docker` command line talks to now and checks that its
    /// architecture is this machine's, because the emulators copied into the helper are
    /// this machine's binaries.
    pub fn connect(image: &str) -> Result<EngineBinfmt, BinfmtError> {
        let out = docker_output(
            &["version", "--format", "{{.Server.Arch}}"],
            "asking the engine for its architecture",
        )?;
        let engine = out.trim().to_string();
        let engine_arch = Arch::parse(&engine).ok();
        let local = BinfmtMisc::system();
        if engine_arch.is_none() || engine_arch != local.host_arch() {
            return Err(BinfmtError::EngineArch {
                engine,
                host: local.host_arch().map_or("unknown", Arch::name).to_string(),
            });
        }
        let mut planner = local.with_host_arch(engine_arch);
        planner.local_interpreters = false;
        Ok(EngineBinfmt {
            image: image.to_string(),
            planner,
        })
    }

    /// The engine host's architecture.
    pub fn host_arch(&self) -> Option<Arch> {
        self.planner.host_arch()
    }

    /// The engine host's registrations, as [`BinfmtMisc::status`] gives them for this
    /// machine. `emulator` still names this machine's static QEMU (what `install` copies).
    pub fn status(&self) -> Result<Vec<EmulatorStatus>, BinfmtError> {
        let entries = self.entries()?;
        Ok(Arch::ALL
            .iter()
            .map(|&arch| self.planner.status_of(arch, &entries))
            .collect())
    }

    fn entries(&self) -> Result<Vec<BinfmtEntry>, BinfmtError> {
        let out = self.run_helper(&script(&[]), &[])?;
        Ok(parse_dump(&out))
    }

    /// Registers emulators on the engine's host, with the same decisions as
    /// [`BinfmtMisc::install`].
    pub fn install(
        &self,
        arches: &[Arch],
        options: &InstallOptions,
    ) -> Result<Vec<InstallOutcome>, BinfmtError> {
        let before = self.entries()?;
        // Decided now (Ok) or waiting for the helper's run (Err with the plan).
        let mut outcomes: Vec<Result<InstallOutcome, (Arch, InstallPlan)>> = Vec::new();
        let mut actions = Vec::new();
        let mut files = Vec::new();
        for &arch in arches {
            match self.planner.plan_install(arch, &before, options) {
                Err(outcome) => outcomes.push(Ok(*outcome)),
                Ok(plan) => {
                    let name = arch.entry_name();
                    let in_helper = helper_path(arch, &plan.interpreter);
                    let flags = register_flags_for(&in_helper);
                    let Some(line) = register_line(arch, &in_helper, flags) else {
                        let error = BinfmtError::Register {
                            name,
                            path: in_helper,
                            detail: "the interpreter path cannot be registered".to_string(),
                        };
                        outcomes.push(Ok(InstallOutcome::Failed { arch, error }));
                        continue;
                    };
                    for old in &plan.replace {
                        actions.push(Action::Remove {
                            arch,
                            name: old.name.clone(),
                        });
                    }
                    actions.push(Action::Register { arch, name, line });
                    files.push((plan.interpreter.clone(), in_helper));
                    outcomes.push(Err((arch, plan)));
                }
            }
        }
        if actions.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let out = self.run_helper(&script(&actions), &files)?;
        let after = parse_dump(&out);
        let failures = parse_failures(&out);
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(outcome) => outcome,
                Err((arch, plan)) => {
                    let name = arch.entry_name();
                    let entry = after.iter().find(|e| e.name == name);
                    match (failures.iter().find(|(a, _)| *a == arch), entry) {
                        (None, Some(e))
                            if e.is_registration_of(
                                arch,
                                register_flags_for(&plan.interpreter),
                            ) =>
                        {
                            InstallOutcome::Registered {
                                arch,
                                entry: e.clone(),
                                replaced: plan.replace,
                                was_working: plan.was_working,
                            }
                        }
                        (failure, entry) => InstallOutcome::Failed {
                            arch,
                            error: BinfmtError::Helper {
                                step: format!("registering {name}"),
                                detail: failure.map(|(_, d)| d.clone()).unwrap_or_else(|| {
                                    entry.map_or("no entry appeared".to_string(), |e| {
                                        format!("the kernel shows flags {:?}", e.flags)
                                    })
                                }),
                            },
                        },
                    }
                }
            })
            .collect())
    }

    /// Removes every entry matching each of `arches` on the engine's host.
    pub fn uninstall(&self, arches: &[Arch]) -> Result<Vec<UninstallOutcome>, BinfmtError> {
        let before = self.entries()?;
        let mut actions = Vec::new();
        for &arch in arches {
            for e in before.iter().filter(|e| e.matches(arch)) {
                actions.push(Action::Remove {
                    arch,
                    name: e.name.clone(),
                });
            }
        }
        let failures = if actions.is_empty() {
            Vec::new()
        } else {
            parse_failures(&self.run_helper(&script(&actions), &[])?)
        };
        Ok(arches
            .iter()
            .map(|&arch| {
                let names: Vec<String> = before
                    .iter()
                    .filter(|e| e.matches(arch))
                    .map(|e| e.name.clone())
                    .collect();
                if let Some((_, detail)) = failures.iter().find(|(a, _)| *a == arch) {
                    UninstallOutcome::Failed {
                        arch,
                        error: BinfmtError::Helper {
                            step: format!("removing {}", names.join(", ")),
                            detail: detail.clone(),
                        },
                    }
                } else if names.is_empty() {
                    UninstallOutcome::NotRegistered { arch }
                } else {
                    UninstallOutcome::Removed {
                        arch,
                        entries: names,
                    }
                }
            })
            .collect())
    }

    /// Removes and re-registers emulators on the engine's host (see [`BinfmtMisc::reset`]).
    pub fn reset(&self, arches: &[Arch]) -> Result<Vec<InstallOutcome>, BinfmtError> {
        let targets = self.planner.reset_targets(arches, || self.entries())?;
        self.install(&targets, &InstallOptions::RESET)
    }

    /// Runs `script` in a fresh helper container with `files` (local path, path inside)
    /// copied in first, removes the container, and returns its output.
    fn run_helper(
        &self,
        script: &str,
        files: &[(PathBuf, PathBuf)],
    ) -> Result<String, BinfmtError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "brix-binfmt-helper-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // CAP_SYS_ADMIN to mount binfmt_misc and register; an unmasked /proc/sys and no
        // seccomp/AppArmor filter so the mount is allowed. This is less than --privileged,
        // which some engines refuse.
        let label = format!("{HELPER_LABEL}=1");
        docker_output(
            &[
                "create",
                "--name",
                &name,
                "--label",
                &label,
                "--network",
                "none",
                "--cap-add",
                "SYS_ADMIN",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "--entrypoint",
                "sh",
                &self.image,
                "-c",
                script,
            ],
            "creating the helper container",
        )?;
        let _remove = RemoveContainer(name.clone());
        for (local, inside) in files {
            let target = format!("{name}:{}", inside.display());
            let local = local.to_string_lossy();
            docker_output(
                &["cp", "--follow-link", &local, &target],
                "copying QEMU into the helper container",
            )?;
        }
        docker_output(
            &["start", "--attach", &name],
            "running the helper container",
        )
    }
}

/// Where the helper gets its copy of `local` (`docker cp --follow-link` copies the QEMU a
/// `-binfmt-P` link points at): `/brix-<file name>`, so a `-binfmt-P` link stays a
/// `-binfmt-P` path (`/brix-aarch64-binfmt-P`), which Debian's QEMU needs to see to accept
/// the extra argument of the `P` flag, and a plain QEMU stays plain.
fn helper_path(arch: Arch, local: &Path) -> PathBuf {
    let file_name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("qemu-{}-static", arch.qemu_name()));
    PathBuf::from(format!("/brix-{file_name}"))
}

/// Removes the helper container when dropped, also on errors.
struct RemoveContainer(String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn docker_output(args: &[&str], step: &str) -> Result<String, BinfmtError> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BinfmtError::Helper {
            step: step.to_string(),
            detail: format!("cannot run `docker`: {e}"),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(BinfmtError::Helper {
            step: step.to_string(),
            detail: format!("`docker {}` failed ({}): {said}", args[0], output.status),
        });
    }
    Ok(stdout)
}

/// One change the helper makes.
enum Action {
    Remove {
        arch: Arch,
        name: String,
    },
    Register {
        arch: Arch,
        name: String,
        line: String,
    },
}

const DUMP_START: &str = "brix-entry ";
const DUMP_END: &str = "brix-end";
const FAILED: &str = "brix-failed ";

/// The helper's shell script: mount binfmt_misc if needed, apply `actions` (reporting each
/// failure as `brix-failed <arch> <what>`), then print every entry between markers.
/// Names and lines are single-quoted; they never contain a quote (entry names are
/// `[A-Za-z0-9_.-]`-ish as the kernel shows them, lines are built by `register_line`).
fn script(actions: &[Action]) -> String {
    let mut s = String::from(
        "m=/proc/sys/fs/binfmt_misc\n\
         if [ ! -e \"$m/register\" ]; then\n\
         mount -t binfmt_misc binfmt_misc \"$m\" 2>/dev/null || busybox mount -t binfmt_misc binfmt_misc \"$m\" || { echo 'cannot mount binfmt_misc in the helper' >&2; exit 3; }\n\
         fi\n",
    );
    let quote = |t: &str| format!("'{}'", t.replace('\'', ""));
    for action in actions {
        match action {
            Action::Remove { arch, name } => s.push_str(&format!(
                "echo -1 > \"$m\"/{n} || echo {FAILED}{arch} removing {n}\n",
                n = quote(name)
            )),
            Action::Register { arch, name, line } => s.push_str(&format!(
                "printf '%s' {l} > \"$m/register\" || echo {FAILED}{arch} registering {n}\n",
                l = quote(line),
                n = quote(name)
            )),
        }
    }
    s.push_str(&format!(
        "for f in \"$m\"/*; do n=${{f##*/}}; case \"$n\" in register|status) continue;; esac; \
         echo '{DUMP_START}'\"$n\"; cat \"$f\"; echo '{DUMP_END}'; done\n"
    ));
    s
}

/// The entries the helper printed.
fn parse_dump(out: &str) -> Vec<BinfmtEntry> {
    let mut entries = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix(DUMP_START) {
            current = Some((name.to_string(), String::new()));
        } else if line == DUMP_END {
            if let Some((name, text)) = current.take()
                && let Ok(entry) = BinfmtEntry::parse(&name, &text)
            {
                entries.push(entry);
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// The `brix-failed <arch> <what>` lines the helper printed.
fn parse_failures(out: &str) -> Vec<(Arch, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix(FAILED))
        .filter_map(|rest| {
            let (arch, what) = rest.split_once(' ')?;
            Some((
                Arch::parse(arch).ok()?,
                format!("{what} failed in the helper"),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_and_failures_parse() {
        let out = format!(
            "{DUMP_START}qemu-aarch64\nenabled\ninterpreter /brix-qemu-aarch64-static\nflags: OCF\n\
             offset 0\nmagic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n{DUMP_END}\n\
             {FAILED}riscv64 registering 'qemu-riscv64'\n"
        );
        let entries = parse_dump(&out);
        assert_eq!(entries.len(), 1);
        assert!(entries[0].matches(Arch::Arm64) && entries[0].fix_binary());
        let failures = parse_failures(&out);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, Arch::Riscv64);
    }

    #[test]
    fn a_binfmt_p_emulator_stays_binfmt_p_in_the_helper() {
        let p = helper_path(
            Arch::Arm64,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
        );
        assert_eq!(p, PathBuf::from("/brix-aarch64-binfmt-P"));
        assert_eq!(register_flags_for(&p), "POCF");
        let line = register_line(Arch::Arm64, &p, register_flags_for(&p));
        assert!(line.is_some_and(|l| l.ends_with(":/brix-aarch64-binfmt-P:POCF")));

        let p = helper_path(Arch::Riscv64, Path::new("/usr/bin/qemu-riscv64-static"));
        assert_eq!(p, PathBuf::from("/brix-qemu-riscv64-static"));
        assert_eq!(register_flags_for(&p), "CF");
    }

    #[test]
    fn script_quotes_lines_and_reports_failures() {
        let line = register_line(Arch::Arm64, Path::new("/brix-qemu-aarch64-static"), "CF");
        let Some(line) = line else {
            panic!("no register line")
        };
        let s = script(&[
            Action::Remove {
                arch: Arch::Arm64,
                name: "qemu-aarch64".into(),
            },
            Action::Register {
                arch: Arch::Arm64,
                name: "qemu-aarch64".into(),
                line: line.clone(),
            },
        ]);
        assert!(s.contains("echo -1 > \"$m\"/'qemu-aarch64' || echo brix-failed arm64 removing"));
        assert!(s.contains(&format!("printf '%s' '{line}' > \"$m/register\"")));
        assert!(s.contains("mount -t binfmt_misc"));
    }
}
