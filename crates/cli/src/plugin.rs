//! brix as a Docker CLI plugin (`docker brix …`), and under buildx's names (`docker buildx …`
//! when installed as `docker-buildx`, or run as `buildx`).
//!
//! The docker CLI finds `docker-<name>` in `<config dir>/cli-plugins`, runs it once with
//! `docker-cli-plugin-metadata` (a JSON description), then runs it with its own arguments
//! unchanged: `docker -H unix:///x.sock brix build .` runs `docker-brix -H unix:///x.sock brix
//! build .` with `DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND` and `DOCKER_CLI_PLUGIN_SOCKET` set
//! (docker/cli `cli-plugins/manager`, `cmd/docker/docker.go`). [`prepare`] turns that call into
//! brix's own arguments: the docker CLI's global flags before the plugin name become what brix
//! reads (`-H` → `DOCKER_HOST`, `--config` → `DOCKER_CONFIG`, `-D` → brix's `-D`), and the
//! name decides whether brix answers as itself or as buildx.

// Where the docker CLI's `--tlscacert`, `--tlscert` and `--tlskey` reach brix's docker
// client (read with `DOCKER_TLS`/`DOCKER_TLS_VERIFY` for the `default` context).
use brix_driver::docker_context::{TLS_CA_VAR, TLS_CERT_VAR, TLS_KEY_VAR};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

use anyhow::{Context, bail};

use crate::commands::version::{BRIX_VERSION, BUILDX_VERSION};

/// The argument the docker CLI asks a plugin's metadata with.
const METADATA_SUBCOMMAND: &str = "docker-cli-plugin-metadata";
/// Set by the docker CLI on every plugin it runs (to the command it was run as).
const PLUGIN_ENV: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";
/// The docker CLI's socket: it closes it when it is interrupted and its output is not a
/// terminal, and the plugin is to stop (docker/cli `cli-plugins/socket`).
const SOCKET_ENV: &str = "DOCKER_CLI_PLUGIN_SOCKET";

/// The name brix answers under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// `brix`, `docker brix`.
    Brix,
    /// `buildx`, `docker-buildx`, `docker buildx`: buildx's names and version.
    Buildx,
}

impl Personality {
    /// The personality of a plugin name (`buildx` in `docker buildx`) or an executable's file
    /// name (`docker-buildx`, `buildx`).
    fn of_name(name: &str) -> Self {
        match name.strip_prefix("docker-").unwrap_or(name) {
            "buildx" => Self::Buildx,
            _ => Self::Brix,
        }
    }
}

/// What this process is to do.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// Print the plugin metadata ([`metadata_json`]) and exit.
    Metadata(Personality),
    /// Run a brix command.
    Run(Run),
}

/// A brix command line, ready for clap.
#[derive(Debug, PartialEq)]
pub struct Run {
    /// Whether brix answers as itself or as buildx.
    pub personality: Personality,
    /// The name help texts show: `docker brix`, `docker buildx`, or the executable's name.
    pub display_name: String,
    /// The arguments for clap, the display name first.
    pub args: Vec<OsString>,
    /// Environment the docker CLI's global flags ask for (`DOCKER_HOST`, `DOCKER_CONFIG`).
    env: Vec<(&'static str, OsString)>,
    /// The plugin name the docker CLI runs brix under (`brix` in `docker brix`), if it does.
    plugin: Option<String>,
}

/// Reads this process's arguments and environment: prints nothing, but when the docker CLI's
/// global flags ask for environment variables, runs brix again with them (brix reads
/// `DOCKER_HOST` and `DOCKER_CONFIG` from its environment, and so do the `docker` commands it
/// starts; changing its own environment would take `unsafe`) and does not return unless that
/// fails. As a plugin, also starts watching the docker
/// CLI's socket: when the CLI closes it, brix stops with status 130, as buildx cancels.
pub fn prepare() -> anyhow::Result<Invocation> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invocation = Invocation::parse(args, std::env::var_os(PLUGIN_ENV).is_some())?;
    if let Invocation::Run(run) = &invocation {
        if !run.env.is_empty() {
            return Err(run.reexec()).context("running brix again with the docker CLI's flags");
        }
        if run.plugin.is_some() {
            watch_cli_socket();
        }
    }
    Ok(invocation)
}

impl Invocation {
    /// The invocation for the command line `args` (the program first); `as_plugin` is whether
    /// the docker CLI's plugin variable is set.
    fn parse(args: Vec<OsString>, as_plugin: bool) -> anyhow::Result<Self> {
        let program = args
            .first()
            .map(std::path::Path::new)
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "brix".into());
        if args.get(1).map(OsString::as_os_str) == Some(OsStr::new(METADATA_SUBCOMMAND)) {
            return Ok(Self::Metadata(Personality::of_name(&program)));
        }
        let rest = args.get(1..).unwrap_or_default();
        if as_plugin && let Some(call) = PluginCall::parse(rest, &program) {
            return call.into_run().map(Self::Run);
        }
        let mut clap_args = vec![OsString::from(&program)];
        clap_args.extend_from_slice(rest);
        Ok(Self::Run(Run {
            personality: Personality::of_name(&program),
            display_name: program,
            args: clap_args,
            env: Vec::new(),
            plugin: None,
        }))
    }
}

impl Run {
    /// Replaces this process with brix again, with [`Run::env`] set and the docker CLI's
    /// global flags gone; returns only the error when that fails.
    fn reexec(&self) -> std::io::Error {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => return err,
        };
        let program = std::env::args_os()
            .next()
            .unwrap_or_else(|| exe.clone().into());
        // Keep the plugin call's shape (`NAME ARGS…`, the display name that is first in
        // `args` left out), so the new process answers under the same name.
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg0(program);
        cmd.args(self.plugin.iter());
        cmd.args(self.args.iter().skip(1));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.exec()
    }
}

/// A call from the docker CLI: `[DOCKER GLOBAL FLAGS…] NAME ARGS…`, or `help NAME ARGS…` for
/// `docker help NAME`.
#[derive(Debug, Default)]
struct PluginCall {
    name: String,
    /// `docker help NAME …`.
    help: bool,
    /// `-H/--host`, each given.
    hosts: Vec<OsString>,
    /// `--config`.
    config: Option<OsString>,
    /// `-c/--context`.
    context: Option<String>,
    /// `-D/--debug`, or `-l/--log-level debug`.
    debug: bool,
    /// `--tls`, or `--tlsverify` (which turns TLS on whatever its value, as in the docker CLI).
    tls: bool,
    /// `--tlsverify`'s value, when given.
    tls_verify: Option<bool>,
    /// `--tlscacert`, `--tlscert`, `--tlskey`: the files in place of the docker CLI's
    /// defaults (`$DOCKER_CERT_PATH/{ca,cert,key}.pem`).
    tls_files: Vec<(&'static str, OsString)>,
    /// The plugin's own arguments, after its name.
    args: Vec<OsString>,
}

impl PluginCall {
    /// Splits `args` (after the program) as the docker CLI passes them, or `None` when they
    /// are not a call for this plugin (`program` is the executable's file name): brix was
    /// started with the plugin variable inherited, and its arguments are its own.
    fn parse(args: &[OsString], program: &str) -> Option<Self> {
        let mut call = Self::default();
        let mut i = 0;
        while let Some(arg) = args.get(i) {
            i += 1;
            let arg = arg.to_str()?;
            if arg == "help" && !call.help {
                call.help = true;
                continue;
            }
            if !arg.starts_with('-') {
                let ours = arg == "brix"
                    || arg == "buildx"
                    || program.strip_prefix("docker-") == Some(arg);
                if !ours {
                    return None;
                }
                call.name = arg.to_owned();
                call.args = args[i..].to_vec();
                return Some(call);
            }
            if call.help {
                return None;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (flag, inline) = match long.split_once('=') {
                    Some((f, v)) => (f, Some(v)),
                    None => (long, None),
                };
                match flag {
                    "debug" => call.debug = parse_bool(inline)?,
                    "tls" => call.tls |= parse_bool(inline)?,
                    "tlsverify" => {
                        call.tls_verify = Some(parse_bool(inline)?);
                        call.tls = true;
                    }
                    "config" | "context" | "host" | "log-level" | "tlscacert" | "tlscert"
                    | "tlskey" => {
                        let value = match inline {
                            Some(v) => OsString::from(v),
                            None => {
                                i += 1;
                                args.get(i - 1)?.clone()
                            }
                        };
                        call.set(flag, value)?;
                    }
                    _ => return None,
                }
                continue;
            }
            // Shorthands, possibly combined as pflag allows: `-D`, `-Hunix:///x`, `-H=x`,
            // `-Dl debug`.
            for (at, c) in arg[1..].char_indices() {
                let flag = match c {
                    'D' => {
                        call.debug = true;
                        continue;
                    }
                    'H' => "host",
                    'c' => "context",
                    'l' => "log-level",
                    _ => return None,
                };
                let inline = &arg[1 + at + c.len_utf8()..];
                let value = if inline.is_empty() {
                    i += 1;
                    args.get(i - 1)?.clone()
                } else {
                    OsString::from(inline.strip_prefix('=').unwrap_or(inline))
                };
                call.set(flag, value)?;
                break;
            }
        }
        None
    }

    /// Records the value of the long flag `flag`.
    fn set(&mut self, flag: &str, value: OsString) -> Option<()> {
        match flag {
            "host" => self.hosts.push(value),
            "config" => self.config = Some(value),
            "context" => self.context = Some(value.into_string().ok()?),
            "log-level" => self.debug |= matches!(value.to_str(), Some("debug" | "trace")),
            "tlscacert" => self.tls_files.push((TLS_CA_VAR, value)),
            "tlscert" => self.tls_files.push((TLS_CERT_VAR, value)),
            "tlskey" => self.tls_files.push((TLS_KEY_VAR, value)),
            _ => {}
        }
        Some(())
    }

    /// The brix command line for this call, or why brix cannot honour its global flags.
    fn into_run(self) -> anyhow::Result<Run> {
        if self.hosts.len() > 1 {
            bail!(
                "specify only one -H (the docker CLI was given {})",
                self.hosts.len()
            );
        }
        // `default` is what -H/DOCKER_HOST already mean.
        let context = self.context.filter(|c| c != "default");
        if context.is_some() && !self.hosts.is_empty() {
            bail!("conflicting options: either specify --host or --context, not both");
        }
        let display_name = format!("docker {}", self.name);
        let mut args = vec![OsString::from(&display_name)];
        if self.debug {
            args.push("-D".into());
        }
        if self.help {
            args.push("help".into());
        }
        args.extend(self.args);
        let mut env = Vec::new();
        if let Some(host) = self.hosts.into_iter().next() {
            env.push(("DOCKER_HOST", host));
        }
        if let Some(config) = self.config {
            env.push(("DOCKER_CONFIG", config));
        }
        // TLS as the docker CLI sets it up for `-H tcp://…`: `--tlsverify` (or
        // DOCKER_TLS_VERIFY already set) verifies, `--tls` alone or `--tlsverify=false` does
        // not; certificate files mean nothing without TLS.
        if self.tls {
            let verify = self.tls_verify.unwrap_or_else(|| {
                std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
            });
            env.push(("DOCKER_TLS", "1".into()));
            env.push(("DOCKER_TLS_VERIFY", if verify { "1" } else { "" }.into()));
            env.extend(self.tls_files);
        }
        // `--context NAME` wins over DOCKER_HOST, as in the docker CLI: brix reads the context
        // from DOCKER_CONTEXT, and an empty DOCKER_HOST counts as unset.
        if let Some(context) = context {
            env.push(("DOCKER_CONTEXT", context.into()));
            env.push(("DOCKER_HOST", OsString::new()));
        }
        Ok(Run {
            personality: Personality::of_name(&self.name),
            display_name,
            args,
            env,
            plugin: Some(self.name),
        })
    }
}

/// Go's `strconv.ParseBool` for a bool flag's `=VALUE` (none means true), as pflag reads it.
fn parse_bool(value: Option<&str>) -> Option<bool> {
    match value {
        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Some(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Some(false),
        Some(_) => None,
    }
}

/// The plugin metadata the docker CLI asks for with `docker-cli-plugin-metadata`; as buildx,
/// `Version` is buildx's, so tools that check the buildx plugin's version accept it.
pub fn metadata_json(personality: Personality) -> String {
    let (version, description) = match personality {
        Personality::Brix => (
            format!("v{BRIX_VERSION}"),
            "Build multi-architecture images on BuildKit (buildx's commands, in Rust)".to_owned(),
        ),
        Personality::Buildx => (
            format!("v{BUILDX_VERSION}"),
            format!("Docker Buildx, as brix v{BRIX_VERSION}"),
        ),
    };
    let metadata = serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "brix",
        "Version": version,
        "ShortDescription": description,
        "URL": env!("CARGO_PKG_REPOSITORY"),
    });
    serde_json::to_string_pretty(&metadata).unwrap_or_default()
}

/// Connects to the docker CLI's socket, if it gave one, and stops brix (status 130) when the
/// CLI closes it: the CLI does that when it is interrupted while its output is not a terminal
/// (on a terminal the interrupt reaches brix itself).
fn watch_cli_socket() {
    let Some(addr) = std::env::var_os(SOCKET_ENV) else {
        return;
    };
    let Ok(mut stream) = connect_cli_socket(&addr) else {
        return;
    };
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        eprintln!("ERROR: canceled: the docker CLI was interrupted");
        std::process::exit(130);
    });
}

/// The CLI's socket: `@name` is in Linux's abstract namespace, anything else a path.
fn connect_cli_socket(addr: &OsStr) -> std::io::Result<UnixStream> {
    #[cfg(target_os = "linux")]
    if let Some(name) = addr.as_bytes().strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        return UnixStream::connect_addr(&addr);
    }
    UnixStream::connect(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str], as_plugin: bool) -> Run {
        match Invocation::parse(os(args), as_plugin).expect("parses") {
            Invocation::Run(run) => run,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metadata_is_asked_by_its_argument_and_answered_under_the_file_name() {
        let parse = |args: &[&str]| Invocation::parse(os(args), false).expect("parses");
        assert_eq!(
            parse(&["/p/cli-plugins/docker-brix", METADATA_SUBCOMMAND]),
            Invocation::Metadata(Personality::Brix)
        );
        assert_eq!(
            parse(&["/p/cli-plugins/docker-buildx", METADATA_SUBCOMMAND]),
            Invocation::Metadata(Personality::Buildx)
        );
        let json: serde_json::Value =
            serde_json::from_str(&metadata_json(Personality::Buildx)).expect("json");
        assert_eq!(json["SchemaVersion"], "0.1.0");
        assert_eq!(json["Version"], format!("v{BUILDX_VERSION}"));
        assert_eq!(json["Vendor"], "brix");
    }

    #[test]
    fn standalone_keeps_its_arguments_and_answers_as_buildx_under_its_names() {
        let r = run(&["/usr/bin/brix", "ls"], false);
        assert_eq!(r.personality, Personality::Brix);
        assert_eq!(r.args, os(&["brix", "ls"]));
        assert!(r.plugin.is_none() && r.env.is_empty());
        assert_eq!(
            run(&["buildx", "version"], false).personality,
            Personality::Buildx
        );
        let r = run(&["/x/docker-buildx", "version"], false);
        assert_eq!(
            (r.personality, r.display_name.as_str()),
            (Personality::Buildx, "docker-buildx")
        );
        // The plugin variable inherited by a plain `brix` call changes nothing.
        let r = run(&["brix", "-D", "ls"], true);
        assert_eq!((r.args, r.plugin), (os(&["brix", "-D", "ls"]), None));
    }

    #[test]
    fn plugin_calls_turn_the_docker_flags_into_brix_flags_and_environment() {
        let r = run(&["/c/cli-plugins/docker-brix", "brix", "build", "."], true);
        assert_eq!(r.args, os(&["docker brix", "build", "."]));
        assert!(r.plugin.as_deref() == Some("brix") && r.env.is_empty());

        let r = run(
            &[
                "/c/cli-plugins/docker-buildx",
                "-H",
                "unix:///d.sock",
                "--config=/cfg",
                "-D",
                "--context",
                "default",
                "buildx",
                "ls",
            ],
            true,
        );
        assert_eq!(r.personality, Personality::Buildx);
        assert_eq!(r.args, os(&["docker buildx", "-D", "ls"]));
        assert_eq!(
            r.env,
            [
                ("DOCKER_HOST", OsString::from("unix:///d.sock")),
                ("DOCKER_CONFIG", OsString::from("/cfg"))
            ]
        );

        let r = run(
            &["docker-brix", "-Hunix:///e.sock", "-l", "debug", "brix"],
            true,
        );
        assert_eq!(r.args, os(&["docker brix", "-D"]));
        assert_eq!(r.env, [("DOCKER_HOST", OsString::from("unix:///e.sock"))]);
        let r = run(&["docker-brix", "-Dl=info", "brix", "version"], true);
        assert_eq!(r.args, os(&["docker brix", "-D", "version"]));

        // `docker help brix build` runs `docker-brix help brix build`.
        let r = run(&["docker-brix", "help", "brix", "build"], true);
        assert_eq!(r.args, os(&["docker brix", "help", "build"]));
        // A plugin installed under another name is called by that name.
        let r = run(&["/p/docker-bx", "bx", "ls"], true);
        assert_eq!(
            (r.personality, r.args),
            (Personality::Brix, os(&["docker bx", "ls"]))
        );
    }

    #[test]
    fn tls_flags_become_the_docker_clis_tls_environment() {
        let r = run(
            &[
                "docker-brix",
                "-H",
                "tcp://h:2376",
                "--tlsverify",
                "--tlscacert",
                "/c/ca.pem",
                "brix",
                "ls",
            ],
            true,
        );
        assert!(
            r.env.contains(&("DOCKER_TLS_VERIFY", "1".into())),
            "{:?}",
            r.env
        );
        assert!(
            r.env.contains(&(TLS_CA_VAR, "/c/ca.pem".into())),
            "{:?}",
            r.env
        );
        let r = run(&["docker-brix", "--tlsverify=false", "brix", "ls"], true);
        assert!(r.env.contains(&("DOCKER_TLS", "1".into())), "{:?}", r.env);
        assert!(
            r.env.contains(&("DOCKER_TLS_VERIFY", OsString::new())),
            "{:?}",
            r.env
        );
        // Certificate files without TLS are ignored, as the docker CLI ignores them.
        let r = run(
            &["docker-brix", "--tlscert", "/c/cert.pem", "brix", "ls"],
            true,
        );
        assert!(
            !r.env.iter().any(|(k, _)| *k == TLS_CERT_VAR),
            "{:?}",
            r.env
        );
    }

    #[test]
    fn contexts_become_docker_context_and_two_hosts_are_refused() {
        let err = |args: &[&str]| {
            Invocation::parse(os(args), true)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&["docker-brix", "-H", "a", "-H", "b", "brix", "ls"]).contains("only one"));
        assert!(
            err(&["docker-brix", "-c", "remote", "-H", "a", "brix", "ls"])
                .contains("either specify --host or --context")
        );
        // The context reaches brix as DOCKER_CONTEXT, over any DOCKER_HOST.
        let r = run(&["docker-brix", "--context", "remote", "brix", "ls"], true);
        assert_eq!(r.args, os(&["docker brix", "ls"]));
        assert!(
            r.env.contains(&("DOCKER_CONTEXT", "remote".into())),
            "{:?}",
            r.env
        );
        assert!(
            r.env.contains(&("DOCKER_HOST", OsString::new())),
            "{:?}",
            r.env
        );
        let r = run(
            &[
                "docker-buildx",
                "-c",
                "remote",
                "buildx",
                "--builder",
                "x",
                "version",
            ],
            true,
        );
        assert_eq!(r.args, os(&["docker buildx", "--builder", "x", "version"]));
        assert!(
            run(&["docker-brix", "--tls=false", "brix", "ls"], true)
                .plugin
                .is_some()
        );
    }
}
