//! Measuring one command: wall time, CPU (user + sys) and peak memory (max RSS).
//!
//! Each measured command runs under a small helper process (`xtask bench measure`, a copy of
//! this binary) that starts it, waits for it, and reads `getrusage(RUSAGE_CHILDREN)`. Because
//! the helper has no other children, that is exactly the command's own usage plus that of
//! every descendant it waited for: for `docker buildx ...` the docker CLI and the buildx
//! plugin it runs (and the `docker exec` helpers buildx starts and reaps), and as peak memory
//! the largest RSS of any one of those processes. This is what GNU time reports too
//! (`wait4` on its child), but with microseconds instead of GNU time's hundredths of a
//! second, which matters for commands that take a few milliseconds.

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Wall time from spawn to exit, in seconds.
    pub wall_s: f64,
    /// User CPU seconds of the command and its reaped descendants.
    pub user_s: f64,
    /// System CPU seconds of the command and its reaped descendants.
    pub sys_s: f64,
    /// Largest peak resident set size among those processes, in KiB.
    pub max_rss_kib: u64,
}

impl Sample {
    /// User plus system CPU seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    fn to_json(self, exit_code: i32) -> String {
        serde_json::json!({
            "wall_s": self.wall_s,
            "user_s": self.user_s,
            "sys_s": self.sys_s,
            "max_rss_kib": self.max_rss_kib,
            "exit_code": exit_code,
        })
        .to_string()
    }
}

/// The helper side: runs `command` with stdout and stderr to `log`, then prints one JSON
/// line with the [`Sample`] and the command's exit code (-1 when a signal ended it).
pub fn helper(log: &Path, command: &[String]) -> Result<ExitCode> {
    let [program, args @ ..] = command else {
        bail!("bench measure: no command given");
    };
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    let seconds = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    let sample = Sample {
        wall_s,
        user_s: seconds(usage.user_time()),
        sys_s: seconds(usage.system_time()),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
    };
    println!("{}", sample.to_json(status.code().unwrap_or(-1)));
    Ok(ExitCode::SUCCESS)
}

/// A command to measure.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program (a path or a name on PATH).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The folder it runs in (bake reads its files and contexts relative to it); the
    /// bench's own when `None`.
    pub dir: Option<PathBuf>,
}

impl Invocation {
    /// `program args...` with no extra environment.
    pub fn new(program: impl Into<String>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// Runs it in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The command line as a person would type it (folder and environment first).
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .dir
            .iter()
            .map(|dir| format!("cd {} &&", dir.display()))
            .collect();
        parts.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        parts.push(self.program.clone());
        parts.extend(self.args.iter().cloned());
        parts.join(" ")
    }
}

/// The parent side: runs measured commands through a private copy of the xtask binary, so
/// a rebuild of `target/debug/xtask` by someone else during a long run cannot change the
/// helper under us.
#[derive(Debug)]
pub struct Meter {
    helper: PathBuf,
}

impl Meter {
    /// Copies the running xtask binary to `dir/xtask-measure`. It reads `/proc/self/exe`,
    /// which still works when cargo has replaced (deleted) the file we were started from.
    pub fn new(dir: &Path) -> Result<Self> {
        let exe = Path::new("/proc/self/exe");
        let helper = dir.join("xtask-measure");
        std::fs::copy(exe, &helper)
            .with_context(|| format!("copying the running xtask binary to {}", helper.display()))?;
        Ok(Self { helper })
    }

    /// Runs `inv` once, its output going to `log`. A non-zero exit is an error that carries
    /// the end of the log.
    pub fn run(&self, inv: &Invocation, log: &Path) -> Result<Sample> {
        let mut helper = Command::new(&self.helper);
        // The helper starts in the command's folder, and the command inherits it.
        if let Some(dir) = &inv.dir {
            helper.current_dir(dir);
        }
        let out = helper
            .args(["bench", "measure", "--log"])
            .arg(log)
            .arg("--")
            .arg(&inv.program)
            .args(&inv.args)
            .envs(inv.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running the measuring helper for `{}`", inv.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "the measuring helper failed for `{}`: {}",
                inv.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let (sample, code) = parse_helper_line(text.trim())
            .with_context(|| format!("reading the measuring helper's output {text:?}"))?;
        if code != 0 {
            bail!(
                "`{}` exited with {code}; the end of {}:\n{}",
                inv.display(),
                log.display(),
                crate::e2e::process::log_tail_from(log, 0, 15)
            );
        }
        Ok(sample)
    }
}

/// Parses the helper's JSON line into a sample and an exit code.
fn parse_helper_line(line: &str) -> Result<(Sample, i64)> {
    let value: serde_json::Value = serde_json::from_str(line)?;
    let num = |key: &str| value[key].as_f64().with_context(|| format!("no {key}"));
    let sample = Sample {
        wall_s: num("wall_s")?,
        user_s: num("user_s")?,
        sys_s: num("sys_s")?,
        max_rss_kib: value["max_rss_kib"].as_u64().context("no max_rss_kib")?,
    };
    let code = value["exit_code"].as_i64().context("no exit_code")?;
    Ok((sample, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_line_round_trips() -> Result<()> {
        let sample = Sample {
            wall_s: 0.25,
            user_s: 0.125,
            sys_s: 0.0625,
            max_rss_kib: 51200,
        };
        let (back, code) = parse_helper_line(&sample.to_json(3))?;
        assert_eq!(back, sample);
        assert_eq!(code, 3);
        assert!((back.cpu_s() - 0.1875).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn a_line_without_fields_is_an_error() {
        assert!(parse_helper_line(r#"{"wall_s":1}"#).is_err());
        assert!(parse_helper_line("not json").is_err());
    }

    #[test]
    fn invocation_displays_env_first() {
        let inv = Invocation::new("docker", &["buildx", "ls"]).env("BUILDX_CONFIG", "/x");
        assert_eq!(inv.display(), "BUILDX_CONFIG=/x docker buildx ls");
        let inv = inv.current_dir("/ctx");
        assert_eq!(
            inv.display(),
            "cd /ctx && BUILDX_CONFIG=/x docker buildx ls"
        );
    }
}
