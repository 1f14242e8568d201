//! The machine a bench ran on and the versions of everything measured, for the report.

use super::setup::{self, Binaries, CONTAINER, ToolEnv};
use crate::e2e::process::output;
use std::process::Command;

/// Hardware and kernel, read from /proc.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// MemTotal, in GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description; unknown fields read "unknown".
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_string()),
        }
    }
}

/// The value after `key:` on the first line that starts with `key`.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_string())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Versions of the measured tools and of what they talk to.
#[derive(Debug, Clone)]
pub struct Versions {
    /// `brix version`.
    pub brix: String,
    /// `docker buildx version`.
    pub buildx: String,
    /// `buildkitd --version` in the bench's daemon.
    pub buildkit: String,
    /// The Docker engine's version.
    pub dockerd: String,
    /// `skopeo --version`.
    pub skopeo: String,
}

impl Versions {
    /// Asks each tool; a tool that does not answer is "unknown (<reason>)".
    pub fn read(env: &ToolEnv, bins: &Binaries) -> Self {
        let ask = |cmd: &mut Command| match output(cmd) {
            Ok(text) => text.trim().to_string(),
            Err(err) => format!("unknown ({})", first_line(&format!("{err:#}"))),
        };
        Self {
            brix: ask(&mut env.brix(bins, &["version"])),
            buildx: setup::buildx_version().unwrap_or_else(|| "unknown".into()),
            buildkit: ask(Command::new("docker").args([
                "exec",
                CONTAINER,
                "buildkitd",
                "--version",
            ])),
            dockerd: ask(Command::new("docker").args([
                "version",
                "--format",
                "{{.Server.Version}} (API {{.Server.APIVersion}})",
            ])),
            skopeo: ask(Command::new("skopeo").arg("--version")),
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_reads_proc_style_lines() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nMemTotal:       24683892 kB\n";
        assert_eq!(field(text, "model name").as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(field(text, "MemTotal").as_deref(), Some("24683892 kB"));
        assert_eq!(field(text, "flags"), None);
    }
}
