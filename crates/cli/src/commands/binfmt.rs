//! `brix binfmt`: show, install, uninstall and reset QEMU emulators in the kernel's
//! binfmt_misc, so builders can run foreign architectures.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use brix_driver::binfmt::{
    self, Arch, BinfmtError, BinfmtMisc, EmulationState, EmulatorStatus, InstallOptions,
    InstallOutcome, UninstallOutcome,
};

/// Arguments of `brix binfmt`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Show or manage QEMU emulators (binfmt_misc) for foreign architectures",
    long_about = "Without flags, shows for each architecture whether this host runs it \
                  natively or through a registered QEMU emulator, and whether that \
                  registration works inside containers (the F flag) and keeps programs' \
                  argv[0] (the P flag). --install registers the host's static QEMU (Debian \
                  package qemu-user-static) with the F flag, and with P through Debian's \
                  /usr/libexec/qemu-binfmt/<target>-binfmt-P links when they exist; \
                  --uninstall removes registrations; --reset removes and re-registers them. \
                  Changing registrations needs root. When DOCKER_HOST names an engine on \
                  another machine (or with --via-container), the engine host's emulators \
                  are shown and changed through a short-lived helper container instead."
)]
pub struct BinfmtArgs {
    /// Register emulators: `all` or a comma-separated list (arm64,riscv64,linux/arm/v7, ...).
    #[arg(long, value_name = "ARCHS", conflicts_with_all = ["uninstall", "reset"])]
    install: Option<String>,
    /// Remove registrations: `all` or a comma-separated list of architectures.
    #[arg(long, value_name = "ARCHS", conflicts_with = "reset")]
    uninstall: Option<String>,
    /// Remove and re-register emulators: the given architectures, `all`, or (with no value)
    /// every foreign architecture that is registered now.
    #[arg(long, value_name = "ARCHS", num_args = 0..=1)]
    reset: Option<Option<String>>,
    /// Work on the Docker engine's host through a helper container, as is done
    /// automatically when DOCKER_HOST names another machine (useful when the engine runs in
    /// a VM on this machine).
    #[arg(long)]
    via_container: bool,
    /// Image the helper container runs (it needs `sh`; the static QEMU is copied in).
    #[arg(long, value_name = "IMAGE", default_value = binfmt::DEFAULT_HELPER_IMAGE)]
    helper_image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Where registrations are read and changed: this machine's kernel, or the Docker engine
/// host's through a helper container.
enum Target {
    Local(BinfmtMisc),
    Engine(binfmt::EngineBinfmt),
}

impl Target {
    fn status(&self) -> Result<Vec<EmulatorStatus>, BinfmtError> {
        match self {
            Target::Local(t) => t.status(),
            Target::Engine(t) => t.status(),
        }
    }

    fn install(
        &self,
        arches: &[Arch],
        options: &InstallOptions,
    ) -> Result<Vec<InstallOutcome>, BinfmtError> {
        match self {
            Target::Local(t) => t.install(arches, options),
            Target::Engine(t) => t.install(arches, options),
        }
    }

    fn uninstall(&self, arches: &[Arch]) -> Result<Vec<UninstallOutcome>, BinfmtError> {
        match self {
            Target::Local(t) => t.uninstall(arches),
            Target::Engine(t) => t.uninstall(arches),
        }
    }

    fn reset(&self, arches: &[Arch]) -> Result<Vec<InstallOutcome>, BinfmtError> {
        match self {
            Target::Local(t) => t.reset(arches),
            Target::Engine(t) => t.reset(arches),
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A table (status) or one line per architecture (changes).
    Table,
    /// JSON.
    Json,
}

/// Runs `brix binfmt`.
pub fn run(args: BinfmtArgs) -> anyhow::Result<ExitCode> {
    // Registrations live in the kernel of the machine that runs the engine: for an engine
    // elsewhere, go through a helper container on it.
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let remote = binfmt::check_engine_is_local(docker_host.as_deref()).is_err();
    let system = if remote || args.via_container {
        Target::Engine(binfmt::EngineBinfmt::connect(&args.helper_image).map_err(one_line)?)
    } else {
        Target::Local(BinfmtMisc::system())
    };
    if args.install.is_none() && args.uninstall.is_none() && args.reset.is_none() {
        return show_status(&system, args.format);
    }

    if let Some(list) = &args.uninstall {
        let arches = Arch::parse_list(list).map_err(one_line)?;
        let outcomes = system
            .uninstall(&arches)
            .map_err(|e| command_error("--uninstall", e))?;
        if let Some(UninstallOutcome::Failed { error, .. }) = outcomes.first()
            && let Some(err) = needs_root("--uninstall", error)
        {
            return Err(err);
        }
        let failed = outcomes.iter().any(UninstallOutcome::is_failure);
        let rows = outcomes
            .iter()
            .map(|o| (o.arch(), o.kind(), o.to_string()))
            .collect();
        print_outcomes(rows, args.format)?;
        return Ok(exit_code(failed));
    }

    let (flag, outcomes) = if let Some(list) = &args.install {
        let is_all = list
            .split(',')
            .any(|s| s.trim().eq_ignore_ascii_case("all"));
        let arches = Arch::parse_list(list).map_err(one_line)?;
        let options = InstallOptions {
            force: false,
            // `all` means every architecture this host has an emulator for, as with
            // tonistiigi/binfmt; a named architecture without one is an error.
            skip_missing_emulators: is_all,
        };
        ("--install", system.install(&arches, &options))
    } else {
        let arches = match args.reset.as_ref().and_then(Option::as_deref) {
            Some(list) => Arch::parse_list(list).map_err(one_line)?,
            None => Vec::new(),
        };
        ("--reset", system.reset(&arches))
    };
    let outcomes = outcomes.map_err(|e| command_error(flag, e))?;
    let failed = outcomes.iter().any(InstallOutcome::is_failure);
    if outcomes.is_empty() && args.format == Format::Table {
        emit("nothing registered to reset; use `brix binfmt --reset all` to register all\n")?;
    }
    // A permission error on the first architecture will repeat for every other one; say it
    // once, as the command's error.
    if let Some(InstallOutcome::Failed { error, .. }) = outcomes.first()
        && let Some(err) = needs_root(flag, error)
    {
        return Err(err);
    }
    // `all` skips architectures without an emulator; if that is every one, the host has no
    // static QEMU at all, which is an error worth its own message.
    let registered_any = outcomes.iter().any(|o| {
        matches!(
            o,
            InstallOutcome::Registered { .. } | InstallOutcome::AlreadyInstalled { .. }
        )
    });
    let none_found = outcomes
        .iter()
        .any(|o| matches!(o, InstallOutcome::NoEmulator { .. }));
    if !registered_any && none_found && !failed {
        print_outcomes(rows_of(&outcomes), args.format)?;
        anyhow::bail!(
            "brix binfmt {flag}: no static QEMU emulator found on this host; install the \
             Debian package {} (`apt-get install {}`)",
            binfmt::QEMU_STATIC_PACKAGE,
            binfmt::QEMU_STATIC_PACKAGE
        );
    }
    print_outcomes(rows_of(&outcomes), args.format)?;
    Ok(exit_code(failed))
}

fn rows_of(outcomes: &[InstallOutcome]) -> Vec<(Arch, &'static str, String)> {
    outcomes
        .iter()
        .map(|o| (o.arch(), o.kind(), o.to_string()))
        .collect()
}

/// The command's error when `error` means "not root": said once, naming the command.
fn needs_root(flag: &str, error: &BinfmtError) -> Option<anyhow::Error> {
    match error {
        BinfmtError::PermissionDenied { action, path } => Some(anyhow::anyhow!(
            "brix binfmt {flag} needs root: {action}: cannot write {}: permission denied",
            path.display()
        )),
        _ => None,
    }
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn one_line(err: BinfmtError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

fn command_error(flag: &str, err: BinfmtError) -> anyhow::Error {
    if let Some(root) = needs_root(flag, &err) {
        return root;
    }
    match err {
        BinfmtError::NotMounted { .. } => anyhow::anyhow!("brix binfmt {flag} needs root: {err}"),
        other => anyhow::anyhow!("brix binfmt {flag}: {other}"),
    }
}

/// One architecture's result in `--format json` output of a change.
#[derive(serde::Serialize)]
struct OutcomeRow {
    arch: Arch,
    platform: &'static str,
    /// A one-word result, as [`InstallOutcome::kind`] and [`UninstallOutcome::kind`] name them.
    result: &'static str,
    /// The line the table format prints.
    message: String,
}

fn print_outcomes(rows: Vec<(Arch, &'static str, String)>, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let text: String = rows
                .iter()
                .map(|(arch, _, message)| format!("{:<9} {message}\n", arch.name()))
                .collect();
            emit(&text)?;
        }
        Format::Json => {
            let json: Vec<OutcomeRow> = rows
                .into_iter()
                .map(|(arch, result, message)| OutcomeRow {
                    arch,
                    platform: arch.platform(),
                    result,
                    message,
                })
                .collect();
            let json = serde_json::to_string_pretty(&json).context("encoding JSON")?;
            emit(&format!("{json}\n"))?;
        }
    }
    Ok(())
}

/// The JSON document of `brix binfmt --format json`.
#[derive(serde::Serialize)]
struct StatusReport<'a> {
    /// Where binfmt_misc is (expected to be) mounted on this machine; `null` when the
    /// Docker engine host's registrations are shown.
    binfmt_misc: Option<&'a std::path::Path>,
    /// Whether these are the Docker engine host's registrations, read through a helper.
    docker_engine_host: bool,
    /// Whether it is mounted; when not, registrations are unknown.
    mounted: bool,
    /// The host architecture.
    host: Option<Arch>,
    /// One status per known architecture.
    emulators: &'a [EmulatorStatus],
}

fn show_status(target: &Target, format: Format) -> anyhow::Result<ExitCode> {
    // Mounting is harmless and makes registrations visible; when it fails (not root),
    // show what can be known and say why the rest is missing. (A helper container mounts
    // binfmt_misc in its own namespace.)
    let (mount_note, mounted, root, host) = match target {
        Target::Local(system) => {
            let note = system.ensure_mounted().err();
            let root = Some(system.root().to_path_buf());
            (note, system.is_mounted(), root, system.host_arch())
        }
        Target::Engine(engine) => (None, true, None, engine.host_arch()),
    };
    let statuses = target.status().map_err(one_line)?;
    match format {
        Format::Json => {
            let report = StatusReport {
                binfmt_misc: root.as_deref(),
                docker_engine_host: matches!(target, Target::Engine(_)),
                mounted,
                host,
                emulators: &statuses,
            };
            let json = serde_json::to_string_pretty(&report).context("encoding JSON")?;
            emit(&format!("{json}\n"))?;
        }
        Format::Table => emit(&status_table(&statuses, mounted))?,
    }
    if let Some(err) = mount_note {
        eprintln!("note: registrations unknown: {err}");
    } else if format == Format::Table {
        let fixable = |no_p: bool| -> Vec<&str> {
            statuses
                .iter()
                .filter(|s| s.state.needs_install() && s.emulator.is_some())
                .filter(|s| (s.state == EmulationState::NoPreserveArgv0) == no_p)
                .map(|s| s.arch.name())
                .collect()
        };
        let (missing, no_p) = (fixable(false), fixable(true));
        if !missing.is_empty() || !no_p.is_empty() {
            emit("\n")?;
        }
        if !missing.is_empty() {
            emit(&format!(
                "To emulate {} in containers, run `brix binfmt --install {}` as root.\n",
                missing.join(", "),
                missing.join(",")
            ))?;
        }
        if !no_p.is_empty() {
            // Programs run, so this is easy to miss until a busybox `cat` behaves as `sh`.
            emit(&format!(
                "{} {} registered without the P flag: emulated programs lose their argv[0], so \
                 busybox applets called through their links run as the wrong applet. Run \
                 `brix binfmt --install {}` as root to re-register with P.\n",
                no_p.join(", "),
                if no_p.len() == 1 { "is" } else { "are" },
                no_p.join(",")
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`brix binfmt | head`) ends the output quietly instead of
/// panicking as `println!` would.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// The status table. When binfmt_misc is not mounted, registrations cannot be seen, so
/// foreign architectures show `unknown` rather than a misleading `not registered`.
fn status_table(statuses: &[EmulatorStatus], mounted: bool) -> String {
    let mut rows = vec![[
        "ARCH".to_string(),
        "PLATFORM".to_string(),
        "STATUS".to_string(),
        "ENTRY".to_string(),
        "ENABLED".to_string(),
        "FLAGS".to_string(),
        "INTERPRETER".to_string(),
        "STATIC EMULATOR".to_string(),
    ]];
    for s in statuses {
        let entry = s.entry.as_ref();
        let dash = || "-".to_string();
        rows.push([
            s.arch.name().to_string(),
            s.platform.to_string(),
            match s.state {
                // Native wins over an entry, but a matching entry for a native architecture
                // would divert native binaries to QEMU: show it.
                EmulationState::Native if !s.entries.is_empty() => "native (entry!)".into(),
                EmulationState::NotRegistered if !mounted => "unknown".into(),
                state => state.as_str().to_string(),
            },
            match entry {
                Some(e) if s.entries.len() > 1 => format!("{} (+{})", e.name, s.entries.len() - 1),
                Some(e) => e.name.clone(),
                None => dash(),
            },
            entry.map_or_else(dash, |e| if e.enabled { "yes" } else { "no" }.to_string()),
            entry.map_or_else(dash, |e| {
                if e.flags.is_empty() {
                    "(none)".to_string()
                } else {
                    e.flags.clone()
                }
            }),
            entry.map_or_else(dash, |e| e.interpreter.display().to_string()),
            s.emulator
                .as_ref()
                .map_or_else(|| "missing".to_string(), |p| p.display().to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}
