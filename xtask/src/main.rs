//! Developer tasks for brix: `cargo xtask codegen`, `cargo xtask e2e`, `cargo xtask bench`.

mod bench;
mod codegen;
mod e2e;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "brix developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Generate the Rust protobuf/gRPC code in crates/solver-client/src/proto from proto/.
    Codegen {
        /// Do not write; fail if the committed generated code is stale.
        #[arg(long)]
        check: bool,
    },
    /// Install and start Docker, a registry, QEMU and the test images, then run tests/.
    E2e(e2e::E2eArgs),
    /// Measure brix against real buildx (and skopeo) on the same BuildKit daemon.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.task {
        Task::Codegen { check } => codegen::run(check),
        // The exit code is the e2e tests' own.
        Task::E2e(args) => match e2e::run(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Task::Bench(args) => match bench::run(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
