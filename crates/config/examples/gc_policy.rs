//! Prints the GC policy a BuildKit worker would apply for a `buildkitd.toml`.
//!
//! ```text
//! cargo run -p brix-config --example gc_policy -- buildkitd.toml [DISK_SIZE_BYTES] [--buildkitd-flags "..."]
//! ```

use std::process::ExitCode;

use brix_config::{BuildkitdFlags, ConfigFile, WorkerKind, effective_gc_policy, format_gc_policy};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: gc_policy FILE [DISK_SIZE_BYTES] [--buildkitd-flags \"...\"]");
        return ExitCode::from(2);
    };
    let disk: Option<u64> = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok());
    let flags = args
        .iter()
        .position(|a| a == "--buildkitd-flags")
        .and_then(|i| args.get(i + 1));

    let mut file = match ConfigFile::load(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &file.warnings {
        eprintln!("{w}");
    }
    if let Some(flags) = flags {
        let applied = BuildkitdFlags::parse(flags).and_then(|f| f.apply(&mut file.config));
        if let Err(e) = applied {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let rules = effective_gc_policy(&file.config.gc_config(WorkerKind::Oci), disk);
    if rules.is_empty() {
        println!("GC disabled: no policy");
    }
    print!("{}", format_gc_policy(&rules));
    ExitCode::SUCCESS
}
