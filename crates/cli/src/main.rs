//! `brix`: build multi-architecture container images on BuildKit, the way `docker buildx` does.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Build multi-architecture container images with BuildKit.
#[derive(Debug, Parser)]
#[command(name = "brix", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show or manage QEMU emulators (binfmt_misc) for foreign architectures.
    Binfmt(commands::binfmt::BinfmtArgs),
    /// Show the brix version.
    Version(commands::version::VersionArgs),
    /// Check a buildkitd.toml and show the GC policy it gives.
    Config(commands::config::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Binfmt(args) => commands::binfmt::run(args),
        Command::Version(args) => commands::version::run(args),
        Command::Config(args) => commands::config::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
