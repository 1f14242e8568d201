//! Running commands: captured output, log files, detached daemons, waiting.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Describes a command for error messages: `docker image inspect moby/buildkit`.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command to completion and returns its stdout; fails with its stderr otherwise.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}",
            describe(cmd),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and reports only whether it succeeded (for presence checks).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs a command with stdout and stderr appended to `log`; on failure the error carries the
/// log's tail, so the reason is visible without opening the file.
pub fn logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let file = open_log(log)?;
    let start = file.metadata().map(|m| m.len()).unwrap_or(0);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!(
            "`{}` failed ({status}); the end of {}:\n{}",
            describe(cmd),
            log.display(),
            log_tail_from(log, start, 30)
        );
    }
    Ok(())
}

/// Starts a long-running daemon in its own session (`setsid`), so it survives xtask's exit and
/// a Ctrl-C in the terminal, with its output appended to `log`.
pub fn spawn_detached(cmd: &Command, log: &Path) -> Result<Child> {
    let file = open_log(log)?;
    let mut detached = Command::new("setsid");
    detached.arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        detached.current_dir(dir);
    }
    detached
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(&detached)))
}

/// Polls `ready` until it returns true or `timeout` passes. Fails early when the daemon
/// exits (a port in use, a stale pid file); either way the error shows the log's tail.
pub fn wait_until(
    what: &str,
    daemon: &mut Child,
    timeout: Duration,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            bail!(
                "{what} exited ({status}) before it became ready; the end of {}:\n{}",
                log.display(),
                log_tail_from(log, 0, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "{what} did not become ready within {}s; the end of {}:\n{}",
        timeout.as_secs(),
        log.display(),
        log_tail_from(log, 0, 30)
    )
}

fn open_log(log: &Path) -> Result<File> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))
}

/// The last `lines` lines of a log written after byte offset `start`.
pub fn log_tail_from(log: &Path, start: u64, lines: usize) -> String {
    let mut text = String::new();
    let read = File::open(log).and_then(|mut file| {
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    match read {
        Ok(()) => tail(&text, lines),
        Err(err) => format!("(could not read {}: {err})", log.display()),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether an executable named `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    find_on_path(name).is_some()
}

/// The first executable named `name` on PATH.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn describe_joins_program_and_args() {
        let mut cmd = Command::new("docker");
        cmd.args(["image", "inspect"]);
        assert_eq!(describe(&cmd), "docker image inspect");
    }
}
