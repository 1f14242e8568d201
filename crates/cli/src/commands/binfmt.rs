//! `brix binfmt`: show, install, uninstall and reset QEMU emulators in the kernel's
//! binfmt_misc, so builders can run foreign architectures.

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
                  registration works inside containers (the F flag). --install registers \
                  the host's static QEMU (Debian package qemu-user-static) with the F flag; \
                  --uninstall removes registrations; --reset removes and re-registers them. \
                  Changing registrations needs root."
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
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
    let system = BinfmtMisc::system();
    if args.install.is_none() && args.uninstall.is_none() && args.reset.is_none() {
        return show_status(&system, args.format);
    }
    // Registrations live in the kernel of the machine that runs the engine; changing this
    // machine's would not help a remote engine.
    let docker_host = std::env::var("DOCKER_HOST").ok();
    binfmt::check_engine_is_local(docker_host.as_deref()).map_err(one_line)?;

    if let Some(list) = &args.uninstall {
        let arches = Arch::parse_list(list).map_err(one_line)?;
        let outcomes = system
            .uninstall(&arches)
            .map_err(|e| command_error("--uninstall", e))?;
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
        println!("nothing registered to reset; use `brix binfmt --reset all` to register all");
    }
    // A permission error on the first architecture will repeat for every other one; say it
    // once, as the command's error.
    if let Some(InstallOutcome::Failed {
        error: err @ BinfmtError::PermissionDenied { .. },
        ..
    }) = outcomes.first()
    {
        anyhow::bail!("brix binfmt {flag} needs root: {err}");
    }
    let rows = outcomes
        .iter()
        .map(|o| (o.arch(), o.kind(), o.to_string()))
        .collect();
    print_outcomes(rows, args.format)?;
    Ok(exit_code(failed))
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
    match err {
        BinfmtError::PermissionDenied { .. } | BinfmtError::NotMounted { .. } => {
            anyhow::anyhow!("brix binfmt {flag} needs root: {err}")
        }
        other => anyhow::anyhow!("brix binfmt {flag}: {other}"),
    }
}

fn print_outcomes(rows: Vec<(Arch, &'static str, String)>, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            for (arch, _, message) in rows {
                println!("{:<9} {message}", arch.name());
            }
        }
        Format::Json => {
            let json: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|(arch, kind, message)| {
                    serde_json::json!({
                        "arch": arch.name(),
                        "platform": arch.platform(),
                        "result": kind,
                        "message": message,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json).context("encoding JSON")?
            );
        }
    }
    Ok(())
}

fn show_status(system: &BinfmtMisc, format: Format) -> anyhow::Result<ExitCode> {
    // Mounting is harmless and makes registrations visible; when it fails (not root),
    // show what can be known and say why the rest is missing.
    let mount_note = system.ensure_mounted().err();
    let statuses = system.status().map_err(one_line)?;
    match format {
        Format::Json => {
            let json = serde_json::json!({
                "binfmt_misc": system.root(),
                "mounted": system.is_mounted(),
                "host": system.host_arch(),
                "emulators": statuses,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).context("encoding JSON")?
            );
        }
        Format::Table => print_status_table(&statuses),
    }
    if let Some(err) = mount_note {
        eprintln!("note: registrations unknown: {err}");
    } else if format == Format::Table {
        let fixable: Vec<&str> = statuses
            .iter()
            .filter(|s| !s.state.usable_in_containers() && s.emulator.is_some())
            .map(|s| s.arch.name())
            .collect();
        if !fixable.is_empty() {
            println!(
                "\nTo emulate {} in containers, run `brix binfmt --install {}` as root.",
                fixable.join(", "),
                fixable.join(",")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status_table(statuses: &[EmulatorStatus]) {
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
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
