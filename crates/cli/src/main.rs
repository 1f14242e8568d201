//! `brix`: build multi-architecture container images on BuildKit, the way `docker buildx` does.

mod commands;
mod errors;
mod files;
mod gotemplate;
mod plugin;
mod progress;
mod tabwriter;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Build multi-architecture container images with BuildKit.
#[derive(Debug, Parser)]
#[command(name = "brix", version, about, long_about = None)]
struct Cli {
    /// Override the configured builder, for every command that acts on one (as
    /// `docker buildx --builder NAME …`).
    #[arg(long, global = true)]
    builder: Option<String>,
    /// Enable debug logging (to stderr).
    #[arg(short = 'D', long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run and matched at once: the size of the largest variant (`build`'s many
// flags) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Build from a file (docker-bake.hcl, docker-bake.json, compose.yaml).
    Bake(commands::bake::BakeArgs),
    /// Show or manage QEMU emulators (binfmt_misc) for foreign architectures.
    Binfmt(commands::binfmt::BinfmtArgs),
    /// Build images from a Dockerfile, one solve per platform.
    #[command(alias = "b")]
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
    /// Proxy stdin and stdout to a node's BuildKit daemon.
    DialStdio(commands::dial_stdio::DialStdioArgs),
    /// Commands to work on build records.
    History(commands::history::HistoryArgs),
}

/// `-D/--debug` was given.
static DEBUG_FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The docker CLI's debug mode, as buildx reads it: `-D/--debug`, or `DEBUG` set and not empty.
pub(crate) fn debug_mode() -> bool {
    DEBUG_FLAG.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var_os("DEBUG").is_some_and(|v| !v.is_empty())
}

fn main() -> ExitCode {
    let run = match plugin::prepare() {
        Ok(plugin::Invocation::Run(run)) => run,
        Ok(plugin::Invocation::Metadata(personality)) => {
            println!("{}", plugin::metadata_json(personality));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("ERROR: {}", errors::one_line(&err));
            return ExitCode::FAILURE;
        }
    };
    let cli = match parse(&run) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli.debug {
        DEBUG_FLAG.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // `-D` logs brix's debug lines; RUST_LOG, when set, chooses the levels itself (down to
    // `trace` of every library).
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    if cli.debug || rust_log.is_some() {
        let filter = rust_log.unwrap_or_else(|| "debug,h2=info,hyper=info".to_owned());
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init();
    }
    let command = match cli.builder {
        Some(builder) => with_builder(cli.command, builder),
        None => cli.command,
    };
    let result = match command {
        Command::Bake(args) => commands::bake::run(args),
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
        Command::DialStdio(args) => commands::dial_stdio::run(args),
        Command::History(args) => commands::history::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ERROR: {}", errors::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// Parses brix's arguments with the name `run` shows in help (`docker buildx` as buildx); no
/// command at all prints the help and succeeds, as buildx does.
fn parse(run: &plugin::Run) -> Result<Cli, ExitCode> {
    let matches = Cli::command()
        .bin_name(&run.display_name)
        .try_get_matches_from(&run.args);
    let mut cli = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            // A closed pipe (`docker buildx | head`) is not an error.
            let _ = write!(std::io::stdout(), "{}", err.render());
            return Err(ExitCode::SUCCESS);
        }
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            eprint!("{}", usage_error(&err.to_string(), &run.display_name));
            // The docker CLI's (and so buildx's) status for a usage error.
            return Err(ExitCode::from(125));
        }
    };
    if let Command::Version(args) = &mut cli.command {
        args.as_buildx = run.personality == plugin::Personality::Buildx;
    }
    Ok(cli)
}

/// clap's text for a usage error, its last line the error itself (CI tools show only the last
/// line of stderr): clap's `For more information` line becomes `error: … (see '… --help')`.
fn usage_error(clap_text: &str, display_name: &str) -> String {
    let mut lines: Vec<&str> = clap_text.trim_end().lines().collect();
    if lines
        .last()
        .is_some_and(|l| l.starts_with("For more information"))
    {
        lines.pop();
    }
    let first = lines.first().copied().unwrap_or("error: invalid arguments");
    let mut out = String::new();
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    let first = first.strip_prefix("error: ").unwrap_or(first);
    out.push_str(&format!("error: {first} (see '{display_name} --help')\n"));
    out
}

/// Applies the global `--builder` to the commands that act on a builder, where the command's
/// own argument does not name one (that one wins, as in buildx).
fn with_builder(command: Command, builder: String) -> Command {
    match command {
        Command::Build(mut a) => {
            a.builder.get_or_insert(builder);
            Command::Build(a)
        }
        Command::Bake(mut a) => {
            a.builder.get_or_insert(builder);
            Command::Bake(a)
        }
        Command::Du(mut a) => {
            a.builder.get_or_insert(builder);
            Command::Du(a)
        }
        Command::Prune(mut a) => {
            a.builder.get_or_insert(builder);
            Command::Prune(a)
        }
        Command::Inspect(mut a) => {
            a.name.get_or_insert(builder);
            Command::Inspect(a)
        }
        Command::Stop(mut a) => {
            a.name.get_or_insert(builder);
            Command::Stop(a)
        }
        Command::Rm(mut a) => {
            if a.names.is_empty() {
                a.names.push(builder);
            }
            Command::Rm(a)
        }
        Command::DialStdio(mut a) => {
            a.builder.get_or_insert(builder);
            Command::DialStdio(a)
        }
        Command::History(mut a) => {
            a.builder.get_or_insert(builder);
            Command::History(a)
        }
        Command::Ls(mut a) => {
            a.builder = Some(builder);
            Command::Ls(a)
        }
        Command::Imagetools(mut a) => {
            a.builder.get_or_insert(builder);
            Command::Imagetools(a)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_ends_with_the_error() {
        let err = Cli::try_parse_from(["brix", "build", "--foo", "."]).expect_err("usage");
        let text = usage_error(&err.to_string(), "brix");
        let last = text.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            "error: unexpected argument '--foo' found (see 'brix --help')"
        );
        assert!(text.contains("Usage:"), "{text}");
        assert!(!text.contains("For more information"), "{text}");
    }

    fn parsed(args: &[&str]) -> Command {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.builder {
            Some(b) => with_builder(cli.command, b),
            None => cli.command,
        }
    }

    #[test]
    fn the_global_builder_applies_unless_the_command_names_one() {
        match parsed(&["brix", "--builder", "x", "b", "."]) {
            Command::Build(a) => assert_eq!(a.builder.as_deref(), Some("x")),
            other => panic!("{other:?}"),
        }
        match parsed(&["brix", "--builder", "x", "build", "--builder", "y", "."]) {
            Command::Build(a) => assert_eq!(a.builder.as_deref(), Some("y")),
            other => panic!("{other:?}"),
        }
        match parsed(&["brix", "--builder", "x", "inspect"]) {
            Command::Inspect(a) => assert_eq!(a.name.as_deref(), Some("x")),
            other => panic!("{other:?}"),
        }
        match parsed(&["brix", "--builder", "x", "rm", "z"]) {
            Command::Rm(a) => assert_eq!(a.names, ["z"]),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["brix", "-D", "ls"]).is_ok());
    }
}
