//! `brix config lint|show`: check a `buildkitd.toml` and show the GC policy BuildKit will
//! actually apply with it.

use std::process::ExitCode;

use anyhow::{Context, bail};
use brix_config::{
    BuildkitdConfig, BuildkitdFlags, ConfigError, ConfigFile, Diagnostic, Severity, WorkerKind,
    effective_gc_policy, format_bytes_binary, format_gc_policy, lint_bytes, ram_in_bytes,
};
use serde_json::json;

/// Arguments of `brix config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Check a buildkitd.toml: errors BuildKit would refuse, and settings that probably do not do
    /// what they look like (exit 1 on errors, 0 with only warnings).
    Lint(LintArgs),
    /// Show the garbage-collection policy a BuildKit worker applies with this config, laid out
    /// as `docker buildx inspect` prints it.
    Show(ShowArgs),
}

/// Output format of the config commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct LintArgs {
    /// The buildkitd.toml to check (`-` reads standard input).
    file: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Which worker's policy to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Worker {
    Oci,
    Containerd,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The buildkitd.toml (`-` reads standard input). Optional when --buildkitd-flags has
    /// `--config` or when only flags are given.
    file: Option<String>,
    /// Size of the disk holding BuildKit's state (bytes, or with a binary unit: `250GiB`).
    /// Percentages resolve against it; without it they resolve to 2 GB, as BuildKit does when
    /// it cannot stat the disk.
    #[arg(long, value_name = "SIZE")]
    disk_size: Option<String>,
    /// Daemon flags, as given to `create --buildkitd-flags`; they override the file.
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    buildkitd_flags: Option<String>,
    /// Which worker's policy to show.
    #[arg(long, value_enum, default_value = "oci")]
    worker: Worker,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Runs `brix config ...`.
pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Lint(a) => lint(a),
        ConfigCommand::Show(a) => show(a),
    }
}

fn read_input(file: &str) -> anyhow::Result<(Vec<u8>, String)> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        Ok((buf, "<stdin>".to_string()))
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
        Ok((bytes, file.to_string()))
    }
}

/// Writes to stdout; a closed pipe (`brix config lint x | head -1`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, diags.len() - errors)
}

fn lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    let (bytes, name) = read_input(&args.file)?;
    let diags = lint_bytes(&bytes, &name);
    let (errors, warnings) = counts(&diags);
    match args.format {
        Format::Json => {
            let out = json!({
                "file": name,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diags,
            });
            emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        }
        Format::Text => {
            let mut text = String::new();
            for d in &diags {
                text.push_str(&format!("{d}\n"));
            }
            if diags.is_empty() {
                text.push_str(&format!("{name}: no problems found\n"));
            } else {
                text.push_str(&format!(
                    "{name}: {errors} error(s), {warnings} warning(s)\n"
                ));
            }
            emit(&text)?;
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_disk_size(s: &str) -> anyhow::Result<u64> {
    match ram_in_bytes(s.trim()) {
        Some(n) if n > 0 => Ok(n as u64),
        _ => bail!("invalid --disk-size {s:?}: use a number of bytes or a size such as 250GiB"),
    }
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let disk = args.disk_size.as_deref().map(parse_disk_size).transpose()?;
    let flags = args
        .buildkitd_flags
        .as_deref()
        .map(BuildkitdFlags::parse)
        .transpose()
        .context("invalid --buildkitd-flags")?;
    let file = args.file.clone().or_else(|| {
        flags
            .as_ref()
            .and_then(|f| f.config_path().map(String::from))
    });

    let (mut config, warnings, name) = match &file {
        Some(file) => {
            let (bytes, name) = read_input(file)?;
            match ConfigFile::parse_bytes(&bytes, &name) {
                Ok(f) => (f.config, f.warnings, name),
                Err(ConfigError::Invalid { diagnostics }) => {
                    for d in &diagnostics {
                        eprintln!("{d}");
                    }
                    let (errors, _) = counts(&diagnostics);
                    eprintln!("{name}: {errors} error(s); BuildKit would refuse this file");
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => (
            BuildkitdConfig::default(),
            Vec::new(),
            "<defaults>".to_string(),
        ),
    };
    if let Some(flags) = &flags {
        flags
            .apply(&mut config)
            .context("invalid --buildkitd-flags")?;
    }
    let worker = match args.worker {
        Worker::Oci => WorkerKind::Oci,
        Worker::Containerd => WorkerKind::Containerd,
    };
    let rules = effective_gc_policy(&config.gc_config(worker), disk);
    let worker_name = match worker {
        WorkerKind::Oci => "oci",
        WorkerKind::Containerd => "containerd",
    };

    match args.format {
        Format::Json => {
            let out = json!({
                "file": name,
                "worker": worker_name,
                "diskSize": disk,
                "gcEnabled": !rules.is_empty(),
                "gcPolicy": rules,
                "passthroughFlags": flags.as_ref().map(|f| f.passthrough.clone()).unwrap_or_default(),
                "warnings": warnings,
            });
            emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        }
        Format::Text => {
            // Notes go to stderr so stdout is exactly what `buildx inspect` would print.
            for w in &warnings {
                eprintln!("{w}");
            }
            match disk {
                Some(d) => eprintln!(
                    "# {worker_name} worker, disk of {d} bytes ({})",
                    format_bytes_binary(d as f64)
                ),
                None => eprintln!(
                    "# {worker_name} worker, disk size unknown: percentages resolve to 2GB (pass --disk-size)"
                ),
            }
            if rules.is_empty() {
                eprintln!("# garbage collection is disabled (gc = false): no GC policy");
            }
            emit(&format_gc_policy(&rules))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
