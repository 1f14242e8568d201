//! The docker-container driver: BuildKit in a container on a Docker engine, named
//! `buildx_buildkit_<node>`, with its state in the volume `buildx_buildkit_<node>_state`.

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brix_solver_client::ControlClient;

use crate::DriverError;
use crate::docker_api::{ExecIo, connect_docker, docker_error, is_conflict, is_not_found};
use crate::driver::{
    BootstrapEvent, BootstrapSink, BoxedDaemonIo, Driver, Features, RmOptions, Status,
};

/// The BuildKit image used unless `--driver-opt image=` says otherwise.
pub const DEFAULT_IMAGE: &str = "moby/buildkit:buildx-stable-1";
/// Prefix of container (and `_state` volume) names: buildx's own, so that a builder in the
/// store brix shares with buildx is the same container to both tools.
pub const CONTAINER_PREFIX: &str = "buildx_buildkit_";
/// Suffix of the state volume's name.
pub const VOLUME_SUFFIX: &str = "_state";
/// Where the state volume is mounted.
pub const STATE_DIR: &str = "/var/lib/buildkit";
/// Where the config files are copied (buildkitd.toml, certs/...).
pub const CONFIG_DIR: &str = "/etc/buildkit";
/// How long bootstrap waits for the daemon's workers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Every driver option the docker-container driver accepts (`env.<NAME>` stands for any name).
pub const VALID_OPTIONS: &[&str] = &[
    "image",
    "network",
    "memory",
    "memory-swap",
    "cpu-period",
    "cpu-quota",
    "cpu-shares",
    "cpuset-cpus",
    "cpuset-mems",
    "cgroup-parent",
    "restart-policy",
    "default-load",
    "privileged",
    "env.<NAME>",
];

/// How to ask for the privileges BuildKit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivilegedMode {
    /// Privileged first; if the engine refuses ("unable to apply caps"), recreate the
    /// container with [`CAPABILITY_FALLBACK`] and say so. The default.
    #[default]
    Auto,
    /// A privileged container, as buildx always asks; failure is an error.
    Always,
    /// Never privileged: the explicit capability set and a writable cgroup mount.
    Never,
}

/// The capability-set fallback: every capability except `CAP_SYS_RESOURCE` (missing from
/// some VMs' bounding set, which makes privileged containers fail), no seccomp, no AppArmor,
/// unmasked /proc and /sys paths, and the host's cgroup tree mounted read-write so that
/// BuildKit can create cgroups for RUN steps.
pub const CAPABILITY_FALLBACK: &str = "--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined -v /sys/fs/cgroup:/sys/fs/cgroup:rw";

/// Parsed docker-container driver options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DockerContainerOptions {
    /// BuildKit image.
    pub image: Option<String>,
    /// Docker network mode (`host`, a network name, ...).
    pub network: Option<String>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory+swap limit in bytes (-1 is unlimited).
    pub memory_swap: Option<i64>,
    /// CFS period.
    pub cpu_period: Option<i64>,
    /// CFS quota.
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<i64>,
    /// CPUs the daemon may use.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the daemon may use.
    pub cpuset_mems: Option<String>,
    /// Cgroup parent (only used with the cgroupfs cgroup driver, as buildx does).
    pub cgroup_parent: Option<String>,
    /// Restart policy; `unless-stopped` by default.
    pub restart_policy: Option<RestartPolicy>,
    /// Extra environment, `NAME=value`.
    pub env: Vec<String>,
    /// Load build results into the Docker image store by default.
    pub default_load: bool,
    /// Privileged or capability set.
    pub privileged: PrivilegedMode,
}

impl DockerContainerOptions {
    /// Parses `--driver-opt` pairs; an unknown key is an error listing the valid ones.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        let mut o = Self::default();
        let invalid = |k: &str, v: &str, reason: &str| DriverError::InvalidOption {
            key: k.to_string(),
            value: v.to_string(),
            reason: reason.to_string(),
        };
        let int = |k: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| invalid(k, v, "expected an integer"))
        };
        let bytes = |k: &str, v: &str| {
            if v == "-1" {
                return Ok(-1);
            }
            brix_config::ram_in_bytes(v)
                .ok_or_else(|| invalid(k, v, "expected a size such as 512m or 2g"))
        };
        for (k, v) in opts {
            match k.as_str() {
                "image" => o.image = Some(v.clone()),
                "network" => o.network = Some(v.clone()),
                "memory" => o.memory = Some(bytes(k, v)?),
                "memory-swap" => o.memory_swap = Some(bytes(k, v)?),
                "cpu-period" => o.cpu_period = Some(int(k, v)?),
                "cpu-quota" => o.cpu_quota = Some(int(k, v)?),
                "cpu-shares" => o.cpu_shares = Some(int(k, v)?),
                "cpuset-cpus" => o.cpuset_cpus = Some(v.clone()),
                "cpuset-mems" => o.cpuset_mems = Some(v.clone()),
                "cgroup-parent" => o.cgroup_parent = Some(v.clone()),
                "restart-policy" => {
                    o.restart_policy = Some(parse_restart_policy(v).ok_or_else(|| {
                        invalid(
                            k,
                            v,
                            "expected no, always, unless-stopped or on-failure[:N]",
                        )
                    })?)
                }
                "default-load" => {
                    o.default_load =
                        parse_bool(v).ok_or_else(|| invalid(k, v, "expected true or false"))?
                }
                "privileged" => {
                    o.privileged = match v.to_ascii_lowercase().as_str() {
                        "auto" => PrivilegedMode::Auto,
                        "true" | "1" => PrivilegedMode::Always,
                        "false" | "0" => PrivilegedMode::Never,
                        _ => return Err(invalid(k, v, "expected true, false or auto")),
                    }
                }
                _ if k.starts_with("env.") => {
                    let name = &k["env.".len()..];
                    if name.is_empty() {
                        return Err(invalid(k, v, "expecting env.NAME=value"));
                    }
                    o.env.push(format!("{name}={v}"));
                }
                _ => {
                    return Err(DriverError::UnknownOption {
                        driver: "docker-container",
                        key: k.clone(),
                        valid: VALID_OPTIONS.to_vec(),
                    });
                }
            }
        }
        Ok(o)
    }

    /// The image to run.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_IMAGE)
    }
}

/// Go's `strconv.ParseBool` for the spellings driver options use.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

fn parse_restart_policy(v: &str) -> Option<RestartPolicy> {
    let (name, count) = match v.split_once(':') {
        Some((n, c)) => (n, Some(c.parse::<i64>().ok()?)),
        None => (v, None),
    };
    let name = match name {
        "no" | "" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => return None,
    };
    if count.is_some() && name != RestartPolicyNameEnum::ON_FAILURE {
        return None;
    }
    Some(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// BuildKit in a container on a Docker engine.
pub struct DockerContainerDriver {
    docker: Docker,
    endpoint: String,
    container: String,
    opts: DockerContainerOptions,
    flags: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
}

impl DockerContainerDriver {
    /// A driver for node `node` on the Docker engine at `endpoint`, with the node's stored
    /// driver options, buildkitd flags and config files.
    pub fn new(
        node: &str,
        endpoint: &str,
        driver_opts: &BTreeMap<String, String>,
        flags: Vec<String>,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, DriverError> {
        let opts = DockerContainerOptions::parse(driver_opts)?;
        Ok(Self {
            docker: connect_docker(endpoint)?,
            endpoint: endpoint.to_string(),
            container: container_name(node),
            opts,
            flags,
            files,
        })
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.container
    }

    /// The state volume's name.
    pub fn volume_name(&self) -> String {
        format!("{}{VOLUME_SUFFIX}", self.container)
    }

    fn err(&self, action: impl Into<String>, e: bollard::errors::Error) -> DriverError {
        docker_error(&self.endpoint, action, e)
    }

    /// The daemon's command line: `--config` first (so user flags win), then the flags.
    pub fn daemon_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.files.contains_key("buildkitd.toml") {
            args.push("--config".to_string());
            args.push(format!("{CONFIG_DIR}/buildkitd.toml"));
        }
        args.extend(self.flags.iter().cloned());
        args
    }

    async fn container_status(&self) -> Result<Status, DriverError> {
        match self.docker.inspect_container(&self.container, None).await {
            Ok(c) => {
                let running = c.state.and_then(|s| s.running).unwrap_or(false);
                Ok(if running {
                    Status::Running
                } else {
                    Status::Stopped
                })
            }
            Err(e) if is_not_found(&e) => Ok(Status::Inactive),
            Err(e) => Err(self.err(format!("inspecting container {}", self.container), e)),
        }
    }

    async fn pull(&self, sink: &dyn BootstrapSink) -> Result<(), DriverError> {
        let image = self.opts.image().to_string();
        let step = format!("pulling image {image}");
        sink.event(BootstrapEvent::StepStarted { step: step.clone() });
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&image)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        let mut pull_error = None;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                pull_error = Some(e);
                break;
            }
        }
        let Some(e) = pull_error else {
            sink.event(BootstrapEvent::StepFinished { step, error: None });
            return Ok(());
        };
        if crate::docker_api::is_unreachable(&e) {
            sink.event(BootstrapEvent::StepFinished {
                step,
                error: Some(e.to_string()),
            });
            return Err(self.err("pulling image", e));
        }
        let reason = e.to_string();
        match self.docker.inspect_image(&image).await {
            Ok(_) => {
                sink.event(BootstrapEvent::StepFinished { step, error: None });
                let note = format!("pulling failed, using local image {image}");
                tracing::info!("pulling {image} failed ({reason}); using the local image");
                sink.event(BootstrapEvent::StepStarted { step: note.clone() });
                sink.event(BootstrapEvent::StepFinished {
                    step: note,
                    error: None,
                });
                Ok(())
            }
            Err(ie) if is_not_found(&ie) => {
                sink.event(BootstrapEvent::StepFinished {
                    step,
                    error: Some(reason.clone()),
                });
                Err(DriverError::ImageUnavailable {
                    image,
                    pull_error: reason,
                })
            }
            Err(ie) => Err(self.err(format!("inspecting image {image}"), ie)),
        }
    }

    fn host_config(&self, privileged: bool, cgroupfs: bool, userns: bool) -> HostConfig {
        let o = &self.opts;
        let mut hc = HostConfig {
            privileged: Some(privileged),
            init: Some(true),
            restart_policy: Some(o.restart_policy.clone().unwrap_or(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            })),
            mounts: Some(vec![Mount {
                typ: Some(MountType::VOLUME),
                source: Some(self.volume_name()),
                target: Some(STATE_DIR.to_string()),
                ..Default::default()
            }]),
            network_mode: o.network.clone(),
            memory: o.memory,
            memory_swap: o.memory_swap,
            cpu_period: o.cpu_period,
            cpu_quota: o.cpu_quota,
            cpu_shares: o.cpu_shares,
            cpuset_cpus: o.cpuset_cpus.clone(),
            cpuset_mems: o.cpuset_mems.clone(),
            ..Default::default()
        };
        if cgroupfs {
            // As buildx: group all BuildKit containers so limits can be put on all builds.
            hc.cgroup_parent = Some(
                o.cgroup_parent
                    .clone()
                    .unwrap_or_else(|| "/docker/buildx".to_string()),
            );
        }
        if userns {
            hc.userns_mode = Some("host".to_string());
        }
        if !privileged {
            hc.cap_add = Some(vec!["ALL".to_string()]);
            hc.cap_drop = Some(vec!["SYS_RESOURCE".to_string()]);
            hc.security_opt = Some(vec![
                "seccomp=unconfined".to_string(),
                "apparmor=unconfined".to_string(),
            ]);
            // `--security-opt systempaths=unconfined` is a docker CLI spelling for these two.
            hc.masked_paths = Some(vec![]);
            hc.readonly_paths = Some(vec![]);
            hc.binds = Some(vec!["/sys/fs/cgroup:/sys/fs/cgroup:rw".to_string()]);
        }
        hc
    }

    /// Creates the container (not started) and copies the config files into it.
    async fn create_container(
        &self,
        privileged: bool,
        cgroupfs: bool,
        userns: bool,
    ) -> Result<bool, DriverError> {
        let body = ContainerCreateBody {
            image: Some(self.opts.image().to_string()),
            cmd: Some(self.daemon_args()),
            env: if self.opts.env.is_empty() {
                None
            } else {
                Some(self.opts.env.clone())
            },
            host_config: Some(self.host_config(privileged, cgroupfs, userns)),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&self.container)
            .build();
        match self.docker.create_container(Some(opts), body).await {
            Ok(_) => {}
            // Someone else (a concurrent brix) created it: use theirs.
            Err(e) if is_conflict(&e) => return Ok(false),
            Err(e) => return Err(self.err(format!("creating container {}", self.container), e)),
        }
        if !self.files.is_empty() {
            let tar = config_tar(&self.files).map_err(|source| DriverError::Io {
                path: "config archive".into(),
                source,
            })?;
            let opts = UploadToContainerOptionsBuilder::default()
                .path("/etc")
                .build();
            self.docker
                .upload_to_container(&self.container, Some(opts), bollard::body_full(tar.into()))
                .await
                .map_err(|e| {
                    self.err(format!("copying buildkitd.toml into {}", self.container), e)
                })?;
        }
        Ok(true)
    }

    async fn remove_container(&self, force: bool) -> Result<(), DriverError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(force)
            .v(true)
            .build();
        match self
            .docker
            .remove_container(&self.container, Some(opts))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.err(format!("removing container {}", self.container), e)),
        }
    }

    async fn start(&self) -> Result<(), bollard::errors::Error> {
        self.docker.start_container(&self.container, None).await
    }

    async fn create(&self, sink: &dyn BootstrapSink) -> Result<(), DriverError> {
        self.pull(sink).await?;
        let step = format!("creating container {}", self.container);
        sink.event(BootstrapEvent::StepStarted { step: step.clone() });
        let result = self.create_and_start(sink).await;
        sink.event(BootstrapEvent::StepFinished {
            step,
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        result
    }

    async fn create_and_start(&self, sink: &dyn BootstrapSink) -> Result<(), DriverError> {
        let (cgroupfs, userns) = match self.docker.info().await {
            Ok(info) => (
                info.cgroup_driver == Some(bollard::models::SystemInfoCgroupDriverEnum::CGROUPFS),
                info.security_options
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o.contains("name=userns")),
            ),
            Err(e) => return Err(self.err("querying the Docker engine", e)),
        };
        let privileged = self.opts.privileged != PrivilegedMode::Never;
        if !self.create_container(privileged, cgroupfs, userns).await? {
            return self.wait_ready(sink).await;
        }
        match self.start().await {
            Ok(()) => {}
            Err(e)
                if privileged
                    && self.opts.privileged == PrivilegedMode::Auto
                    && refuses_privileged(&e) =>
            {
                self.remove_container(true).await?;
                let msg = format!(
                    "this engine refuses privileged containers (unable to apply caps); recreated {} with a capability set instead ({CAPABILITY_FALLBACK})",
                    self.container
                );
                tracing::warn!("{msg}");
                sink.event(BootstrapEvent::Notice { message: msg });
                self.create_container(false, cgroupfs, userns).await?;
                self.start()
                    .await
                    .map_err(|e| self.err(format!("starting container {}", self.container), e))?;
            }
            Err(e) => {
                let hint = if refuses_privileged(&e)
                    && self.opts.privileged == PrivilegedMode::Always
                {
                    " (this engine refuses privileged containers; try --driver-opt privileged=auto)"
                } else {
                    ""
                };
                return Err(DriverError::Docker {
                    action: format!("starting container {}{hint}", self.container),
                    source: e,
                });
            }
        }
        self.wait_ready(sink).await
    }

    /// Runs a command in the container and returns (exit code, stdout, stderr).
    async fn run(&self, cmd: &[&str]) -> Result<(i64, String, String), DriverError> {
        let exec = self
            .docker
            .create_exec(
                &self.container,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                self.err(
                    format!("running {} in {}", cmd.join(" "), self.container),
                    e,
                )
            })?;
        let mut out = String::new();
        let mut err = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(|e| {
                self.err(
                    format!("running {} in {}", cmd.join(" "), self.container),
                    e,
                )
            })?
        {
            while let Some(item) = output.next().await {
                match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        err.push_str(&String::from_utf8_lossy(&message))
                    }
                    Ok(other) => out.push_str(&String::from_utf8_lossy(other.as_ref())),
                    Err(e) => return Err(self.err("reading exec output", e)),
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.err("inspecting exec", e))?
            .exit_code
            .unwrap_or(-1);
        Ok((code, out, err))
    }

    /// Waits until `buildctl debug workers` lists a worker, as buildx does, or the
    /// container stops, or [`READY_TIMEOUT`] passes; then shows the daemon's last log lines.
    async fn wait_ready(&self, sink: &dyn BootstrapSink) -> Result<(), DriverError> {
        let start = Instant::now();
        let mut attempt: u32 = 1;
        let reason = loop {
            let last = match self.run(&["buildctl", "debug", "workers"]).await {
                Ok((0, out, _)) if out.lines().count() > 1 => return Ok(()),
                Ok((0, _, _)) => "no workers yet".to_string(),
                Ok((code, _, err)) => {
                    format!("buildctl debug workers exited with {code}: {}", err.trim())
                }
                Err(e) => e.to_string(),
            };
            if self.container_status().await? != Status::Running {
                break format!("the container stopped ({last})");
            }
            if start.elapsed() >= READY_TIMEOUT {
                break last;
            }
            tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 120)).await;
            attempt += 1;
        };
        let logs = self.last_logs(20).await;
        for line in &logs {
            sink.event(BootstrapEvent::Log { line: line.clone() });
        }
        Err(DriverError::NotReady {
            what: format!("container {}", self.container),
            timeout: READY_TIMEOUT,
            reason,
            logs,
        })
    }

    async fn last_logs(&self, n: usize) -> Vec<String> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut stream = self.docker.logs(&self.container, Some(opts));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
        text.lines().map(str::to_string).collect()
    }

    /// On a local engine, the daemon's own socket reached through `/proc/<pid>/root` of the
    /// container: measured ~2 ms to connect against ~60 ms for a `docker exec` of
    /// `buildctl dial-stdio` (warm calls: 1.1 vs 1.5 ms). `None` (use dial-stdio) when the
    /// engine is remote, the socket is not where BuildKit puts it by default, we may not
    /// enter the container's root, or `BRIX_DIAL=exec` asks for dial-stdio.
    async fn connect_socket(&self) -> Option<ControlClient> {
        if !self.endpoint.starts_with("unix://")
            || std::env::var("BRIX_DIAL").as_deref() == Ok("exec")
        {
            return None;
        }
        let c = self
            .docker
            .inspect_container(&self.container, None)
            .await
            .ok()?;
        let pid = c.state.and_then(|s| s.pid).filter(|p| *p > 0)?;
        let sock = format!("/proc/{pid}/root/run/buildkit/buildkitd.sock");
        if !std::path::Path::new(&sock).exists() {
            return None;
        }
        match ControlClient::connect_unix(&sock).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!("direct socket {sock} unusable ({e}); using buildctl dial-stdio");
                None
            }
        }
    }

    /// BuildKit version as `buildkitd --version` prints it (for daemons without the Info API).
    pub async fn version(&self) -> Result<String, DriverError> {
        let (code, out, err) = self.run(&["buildkitd", "--version"]).await?;
        let fields: Vec<&str> = out.split_whitespace().collect();
        if code != 0 || fields.len() != 4 {
            return Err(DriverError::Connect {
                endpoint: self.describe(),
                reason: format!("buildkitd --version: {}", err.trim()),
            });
        }
        Ok(fields[2].to_string())
    }
}

/// Starts `buildctl dial-stdio` in `container` and returns its stdio as one stream.
async fn dial_stdio(
    docker: &Docker,
    container: &str,
    endpoint: &str,
) -> Result<ExecIo, DriverError> {
    let what = format!("buildctl dial-stdio in {container}");
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["buildctl".to_string(), "dial-stdio".to_string()]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| docker_error(endpoint, &what, e))?;
    match docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|e| docker_error(endpoint, &what, e))?
    {
        StartExecResults::Attached { output, input } => Ok(ExecIo::new(output, input, what)),
        StartExecResults::Detached => Err(DriverError::Connect {
            endpoint: format!("container {container}"),
            reason: "the exec did not attach".to_string(),
        }),
    }
}

/// `buildx_buildkit_<node>`.
pub fn container_name(node: &str) -> String {
    format!("{CONTAINER_PREFIX}{node}")
}

fn refuses_privileged(e: &bollard::errors::Error) -> bool {
    let s = e.to_string();
    s.contains("unable to apply caps") || (s.contains("apply caps") && s.contains("not permitted"))
}

/// A tar of `buildkit/<file>` entries (to be extracted in `/etc`), owned by root.
fn config_tar(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for path in files.keys() {
        let mut p = std::path::Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            p = d.parent();
        }
    }
    let mut dir_header = |path: &str| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        b.append_data(&mut h, format!("{path}/"), std::io::empty())
    };
    dir_header("buildkit")?;
    for d in &dirs {
        dir_header(&format!("buildkit/{}", d.display()))?;
    }
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("buildkit/{path}"), data.as_slice())?;
    }
    b.into_inner()
}

impl Driver for DockerContainerDriver {
    fn name(&self) -> &'static str {
        "docker-container"
    }

    fn status(&self) -> BoxFuture<'_, Result<Status, DriverError>> {
        Box::pin(self.container_status())
    }

    fn bootstrap<'a>(
        &'a self,
        sink: &'a dyn BootstrapSink,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            match self.container_status().await? {
                Status::Inactive => self.create(sink).await,
                Status::Running => self.wait_ready(sink).await,
                _ => {
                    let step = format!("starting container {}", self.container);
                    sink.event(BootstrapEvent::StepStarted { step: step.clone() });
                    let r = async {
                        self.start().await.map_err(|e| {
                            self.err(format!("starting container {}", self.container), e)
                        })?;
                        self.wait_ready(sink).await
                    }
                    .await;
                    sink.event(BootstrapEvent::StepFinished {
                        step,
                        error: r.as_ref().err().map(|e| e.to_string()),
                    });
                    r
                }
            }
        })
    }

    fn stop(&self, _force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async move {
            if self.container_status().await? == Status::Running {
                let opts = StopContainerOptionsBuilder::default().build();
                self.docker
                    .stop_container(&self.container, Some(opts))
                    .await
                    .map_err(|e| self.err(format!("stopping container {}", self.container), e))?;
            }
            Ok(())
        })
    }

    fn rm(&self, opts: RmOptions) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async move {
            if opts.keep_daemon {
                return Ok(());
            }
            if self.container_status().await? != Status::Inactive {
                // Stop first so buildkitd shuts down cleanly; `force` kills instead.
                self.remove_container(true).await?;
            }
            if !opts.keep_state {
                let vopts = RemoveVolumeOptionsBuilder::default()
                    .force(opts.force)
                    .build();
                match self
                    .docker
                    .remove_volume(&self.volume_name(), Some(vopts))
                    .await
                {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(self.err(format!("removing volume {}", self.volume_name()), e));
                    }
                }
            }
            Ok(())
        })
    }

    fn dial(&self) -> BoxFuture<'_, Result<BoxedDaemonIo, DriverError>> {
        Box::pin(async move {
            let io = dial_stdio(&self.docker, &self.container, &self.endpoint).await?;
            Ok(Box::pin(io) as BoxedDaemonIo)
        })
    }

    fn connect(&self) -> BoxFuture<'_, Result<ControlClient, DriverError>> {
        let docker = self.docker.clone();
        let container = self.container.clone();
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            if let Some(client) = self.connect_socket().await {
                return Ok(client);
            }
            let label = format!("docker-container://{container}");
            let client = ControlClient::from_connector(label, move || {
                let (docker, container, endpoint) =
                    (docker.clone(), container.clone(), endpoint.clone());
                async move {
                    dial_stdio(&docker, &container, &endpoint)
                        .await
                        .map_err(std::io::Error::other)
                }
            })
            .await?;
            Ok(client)
        })
    }

    fn fallback_version(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { self.version().await.ok() })
    }

    fn features(&self) -> Features {
        Features::standalone_buildkit(self.opts.default_load)
    }

    fn describe(&self) -> String {
        format!("container {} on {}", self.container, self.endpoint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_known_options() {
        let o = DockerContainerOptions::parse(&opts(&[
            ("image", "my/bk:1"),
            ("network", "host"),
            ("memory", "512m"),
            ("memory-swap", "-1"),
            ("cpu-quota", "50000"),
            ("restart-policy", "on-failure:3"),
            ("env.BUILDKIT_STEP_LOG_MAX_SIZE", "1"),
            ("default-load", "true"),
            ("privileged", "false"),
        ]))
        .unwrap();
        assert_eq!(o.image(), "my/bk:1");
        assert_eq!(o.memory, Some(512 * 1024 * 1024));
        assert_eq!(o.memory_swap, Some(-1));
        assert_eq!(o.restart_policy.unwrap().maximum_retry_count, Some(3));
        assert_eq!(o.env, ["BUILDKIT_STEP_LOG_MAX_SIZE=1"]);
        assert!(o.default_load);
        assert_eq!(o.privileged, PrivilegedMode::Never);
        assert_eq!(
            DockerContainerOptions::parse(&BTreeMap::new())
                .unwrap()
                .image(),
            DEFAULT_IMAGE
        );
    }

    #[test]
    fn unknown_option_lists_valid_ones() {
        let e = DockerContainerOptions::parse(&opts(&[("colour", "blue")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"colour\"") && e.contains("cpuset-cpus") && e.contains("env.<NAME>"),
            "{e}"
        );
        let e = DockerContainerOptions::parse(&opts(&[("memory", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory") && e.contains("lots"), "{e}");
        assert!(DockerContainerOptions::parse(&opts(&[("privileged", "maybe")])).is_err());
        assert!(DockerContainerOptions::parse(&opts(&[("restart-policy", "always:2")])).is_err());
    }

    #[test]
    fn config_tar_has_buildkit_tree() {
        let mut files = BTreeMap::new();
        files.insert("buildkitd.toml".to_string(), b"debug = true\n".to_vec());
        files.insert("certs/myreg.io/ca.pem".to_string(), b"PEM".to_vec());
        let data = config_tar(&files).unwrap();
        let mut ar = tar::Archive::new(data.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "buildkit/",
                "buildkit/certs/",
                "buildkit/certs/myreg.io/",
                "buildkit/buildkitd.toml",
                "buildkit/certs/myreg.io/ca.pem"
            ]
        );
    }
}
