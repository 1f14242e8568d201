//! `brix`: build multi-architecture container images on BuildKit, the way `docker buildx` does.

mod commands;
mod errors;
mod progress;
mod tabwriter;

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
    /// Build images from a Dockerfile, one solve per platform.
    Build(commands::build::BuildArgs),
    /// Show the brix version.
    Version(commands::version::VersionArgs),
    /// Inspect images in a registry and merge images into multi-platform indexes.
    Imagetools(commands::imagetools::ImagetoolsArgs),
    /// Check a buildkitd.toml and show the GC policy it gives.
    Config(commands::config::ConfigArgs),
    /// Create a builder (or add, change or remove one of its nodes).
    Create(commands::create::CreateArgs),
    /// Set the current builder.
    Use(commands::use_::UseArgs),
    /// Show a builder and its nodes.
    Inspect(commands::inspect::InspectArgs),
    /// List builders and their nodes.
    Ls(commands::ls::LsArgs),
    /// Remove builders.
    Rm(commands::rm::RmArgs),
    /// Stop a builder's daemons.
    Stop(commands::stop::StopArgs),
    /// Show the builder's build cache and its disk usage.
    Du(commands::du::DuArgs),
    /// Remove build cache from the builder.
    Prune(commands::prune::PruneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Binfmt(args) => commands::binfmt::run(args),
        Command::Build(args) => commands::build::run(args),
        Command::Version(args) => commands::version::run(args),
        Command::Imagetools(args) => commands::imagetools::run(args),
        Command::Config(args) => commands::config::run(args),
        Command::Create(args) => commands::create::run(args),
        Command::Use(args) => commands::use_::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Ls(args) => commands::ls::run(args),
        Command::Rm(args) => commands::rm::run(args),
        Command::Stop(args) => commands::stop::run(args),
        Command::Du(args) => commands::du::run(args),
        Command::Prune(args) => commands::prune::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", errors::one_line(&err));
            ExitCode::FAILURE
        }
    }
}
