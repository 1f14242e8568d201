//! Step 17: a single-node Kubernetes cluster for the `kubernetes` driver's tests (issue 16),
//! everything on loopback and everything under `target/e2e/kubernetes/`.
//!
//! - kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl
//!   [`KUBERNETES_VERSION`], and etcd [`ETCD_VERSION`] (the one Kubernetes 1.34 itself names
//!   in `build/dependencies.yaml`), built from the Go module proxy through the wrapper module
//!   `xtask/assets/kubernetes`: `k8s.io/kubernetes` replaces its staging modules (`k8s.io/api`,
//!   `k8s.io/client-go`, …) with local folders, so `go install k8s.io/kubernetes/cmd/…@v1.34.x`
//!   is refused; the wrapper requires it and pins each staging module at the matching v0.34.x
//!   with `replace` lines. etcd's server module resolves inside the same module graph with
//!   only etcd's own modules and bbolt moved up. The binaries are cached under
//!   `bin/<kubernetes>-etcd<etcd>/`, so a warm run builds nothing.
//! - containerd 2.1 from Debian unstable, unpacked (not installed) as the `docker28` step
//!   unpacks it, run as an instance of its own (config, root, state, socket) with the CRI
//!   plugin on, bookworm's runc, Debian's containernetworking-plugins (a bridge `brixk8s0` with
//!   host-local addresses; containerd sets up each pod's loopback itself with the `loopback`
//!   plugin from the same folder) and a pause image built here from the Kubernetes module's
//!   `build/pause/linux/pause.c` (`gcc -static`), packed as an OCI image tarball and imported
//!   with `ctr -n k8s.io images import` as the sandbox image. The BuildKit image comes from the
//!   system engine the same way (`docker save | ctr images import -`).
//! - kubelet with the cgroupfs driver under its own cgroup root [`CGROUP_ROOT`]; the API server
//!   reaches it as [`KUBELET_HOST`], a name this step maps to 127.0.0.1 in `/etc/hosts` (a
//!   kubelet refuses a loopback node IP, so the API server is told to prefer host names).
//!   Like every kubelet, it sets `vm.overcommit_memory=1`, `kernel.panic=10` and
//!   `kernel.panic_on_oops=1` on the host when it starts (its `protectKernelDefaults` would
//!   fail instead).
//! - Certificates (a CA, the API server's, the kubelet's serving and client certificates, the
//!   controllers' and the admin's client certificates, the service-account key) are made with
//!   openssl in `pki/`; `kubeconfig` is the admin's, with the material inline.
//!
//! [`ensure`] ends with a probe: a hostNetwork pod of the BuildKit image must reach Running
//! and `kubectl exec` into it must work (the driver execs `buildctl dial-stdio` through the
//! API server the same way); the pod is deleted afterwards.

use super::hosts::{self, ETC_HOSTS, address_of};
use super::process::{self, output};
use super::registry::http_status;
use super::{BUILDKIT_IMAGE, Workspace, go_toolchain};
use crate::bench::setup::download_unstable_debs;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes release, as `k8s.io/kubernetes` tags it; its staging modules are at
/// [`STAGING_VERSION`]. Keep both in step with `xtask/assets/kubernetes/go.mod`.
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// (Checked against the wrapper by a unit test.)
#[cfg(test)]
const STAGING_VERSION: &str = "v0.34.4";
/// etcd's server module, in the same wrapper.
pub const ETCD_VERSION: &str = "v3.6.5";
/// What the binaries are built from, in the wrapper's module graph.
const KUBERNETES_COMMANDS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
];
const ETCD_PACKAGE: &str = "go.etcd.io/etcd/server/v3";
/// containerd from Debian unstable, and the minor version it must have.
const CONTAINERD_PACKAGE: &str = "containerd";
const CONTAINERD_MINOR: &str = "2.1";
/// bookworm's runc, as for the `docker28` engine.
const BOOKWORM_RUNC: &str = "/usr/sbin/runc";
/// Debian's containernetworking-plugins.
const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The sandbox image, under the name Kubernetes 1.34 uses for it.
const PAUSE_VERSION: &str = "3.10.1";
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10.1";
/// The BuildKit image as containerd names it after `ctr images import`.
const BUILDKIT_CRI_IMAGE: &str = "docker.io/moby/buildkit:buildx-stable-1";

/// The kubelet's host name (also the node's name), mapped to 127.0.0.1 in `/etc/hosts`.
pub const KUBELET_HOST: &str = "kubelet.brix.test";
/// Where each daemon listens (loopback only).
const ETCD_ADDR: &str = "127.0.0.1:2479";
const ETCD_PEER_ADDR: &str = "127.0.0.1:2480";
/// The API server's address, as the kubeconfig names it.
pub const API_ADDR: &str = "127.0.0.1:6443";
const CONTROLLER_MANAGER_PORT: u16 = 10257;
const SCHEDULER_PORT: u16 = 10259;
const KUBELET_PORT: u16 = 10250;
const KUBELET_HEALTHZ_ADDR: &str = "127.0.0.1:10248";
/// Service addresses (nothing routes them: no kube-proxy) and the pod network's bridge.
const SERVICE_CIDR: &str = "10.96.0.0/24";
const SERVICE_IP: &str = "10.96.0.1";
const POD_CIDR: &str = "10.229.0.0/24";
const CNI_BRIDGE: &str = "brixk8s0";
/// The kubelet's cgroup root (cgroupfs driver): every pod's cgroup is under it.
const CGROUP_ROOT: &str = "/brix-k8s";
/// The probe pod [`ensure`] runs at the end.
const PROBE_POD: &str = "brix-e2e-probe";
/// Unix socket paths longer than this do not fit `sockaddr_un` (with room for suffixes).
const MAX_SOCKET_PATH: usize = 100;

/// The cluster's files, all under `target/e2e/kubernetes/`.
struct Cluster {
    dir: PathBuf,
    /// The Go-built binaries of this version pair.
    bin: PathBuf,
    /// The unpacked containerd .deb.
    pkgs: PathBuf,
    pki: PathBuf,
    containerd_socket: PathBuf,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn new(ws: &Workspace) -> Self {
        let dir = ws.e2e_dir.join("kubernetes");
        Self {
            bin: dir
                .join("bin")
                .join(format!("{KUBERNETES_VERSION}-etcd{ETCD_VERSION}")),
            pkgs: dir.join("pkgs"),
            pki: dir.join("pki"),
            containerd_socket: dir.join("containerd").join("containerd.sock"),
            kubeconfig: dir.join("kubeconfig"),
            dir,
        }
    }

    fn log(&self, daemon: &str) -> PathBuf {
        self.dir.join(format!("{daemon}.log"))
    }

    fn containerd(&self) -> PathBuf {
        self.pkgs.join("usr/bin/containerd")
    }

    /// `ctr` of the unpacked containerd, on this cluster's socket and CRI namespace.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new(self.pkgs.join("usr/bin/ctr"));
        cmd.arg("--address")
            .arg(&self.containerd_socket)
            .args(["--namespace", "k8s.io"]);
        cmd
    }

    /// `kubectl` as the cluster's admin.
    fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

/// Whether every daemon answers and the node is Ready.
pub fn running(ws: &Workspace) -> bool {
    let cluster = Cluster::new(ws);
    Daemon::ALL.iter().all(|daemon| daemon.answers(&cluster)) && node_ready(&cluster)
}

/// The variables the tests read: the admin kubeconfig and kubectl, once the cluster runs.
pub fn test_env(ws: &Workspace) -> Vec<(String, String)> {
    if !running(ws) {
        return Vec::new();
    }
    let cluster = Cluster::new(ws);
    vec![
        (
            "BRIX_E2E_KUBECONFIG".to_string(),
            cluster.kubeconfig.to_string_lossy().into_owned(),
        ),
        (
            "BRIX_E2E_KUBECTL".to_string(),
            cluster.bin.join("kubectl").to_string_lossy().into_owned(),
        ),
    ]
}

/// Leaves a healthy cluster alone (refreshing only the BuildKit image when the system
/// engine's changed); otherwise builds and makes what is missing, starts each daemon that
/// does not answer, waits for the node to be Ready and runs the probe pod.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let cluster = Cluster::new(ws);
    let stale = stale_daemons(&cluster);
    if stale.is_empty() && running(ws) {
        let images = ensure_buildkit_image(&cluster)?
            .map(|imported| format!("; {imported}"))
            .unwrap_or_default();
        return Ok(format!(
            "already running: Kubernetes {KUBERNETES_VERSION}, node {KUBELET_HOST} Ready{images}; \
             kubeconfig {}",
            ws.display(&cluster.kubeconfig)
        ));
    }
    let socket = &cluster.containerd_socket;
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "{} is too long for a unix socket; use a shorter CARGO_TARGET_DIR",
            socket.display()
        );
    }
    for command in ["openssl", "gcc", "docker"] {
        super::packages::require_command(command)?;
    }
    for needed in [
        PathBuf::from(BOOKWORM_RUNC),
        Path::new(CNI_BIN_DIR).join("bridge"),
    ] {
        anyhow::ensure!(
            needed.is_file(),
            "{} is missing (runc comes with docker.io, the CNI plugins with \
             containernetworking-plugins: run the `packages` step)",
            needed.display()
        );
    }
    std::fs::create_dir_all(&cluster.dir)
        .with_context(|| format!("creating {}", cluster.dir.display()))?;
    let mut done = Vec::new();
    done.extend(ensure_hosts()?);
    done.extend(ensure_containerd_package(ws, &cluster)?);
    done.extend(ensure_binaries(ws, &cluster)?);
    let containerd_version = containerd_version(&cluster)?;
    done.extend(ensure_pki(&cluster)?);
    write_configs(&cluster)?;

    let mut started = Vec::new();
    for daemon in Daemon::ALL {
        if stale.contains(daemon) && daemon.answers(&cluster) {
            daemon.stop(&cluster)?;
            done.push(format!(
                "stopped {} (its flags or config changed)",
                daemon.name()
            ));
        }
        if !daemon.answers(&cluster) {
            daemon.start(&cluster)?;
            started.push(daemon.name());
        }
        if *daemon == Daemon::Containerd {
            done.extend(ensure_pause_image(ws, &cluster)?);
            done.extend(ensure_buildkit_image(&cluster)?);
        }
    }
    let ready_in = wait_for_node(&cluster)?;
    let probe = probe(&cluster)?;
    done.push(format!(
        "started {} (node Ready after {ready_in:.1}s); {probe}",
        if started.is_empty() {
            "nothing".to_string()
        } else {
            started.join(", ")
        }
    ));
    Ok(format!(
        "{}; Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}, containerd {containerd_version}; \
         kubeconfig {}, logs {}/*.log",
        done.join("; "),
        ws.display(&cluster.kubeconfig),
        ws.display(&cluster.dir)
    ))
}

/// The cluster's daemons, in the order they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Etcd,
    ApiServer,
    ControllerManager,
    Scheduler,
    Containerd,
    Kubelet,
}

impl Daemon {
    const ALL: &'static [Daemon] = &[
        Daemon::Etcd,
        Daemon::ApiServer,
        Daemon::ControllerManager,
        Daemon::Scheduler,
        Daemon::Containerd,
        Daemon::Kubelet,
    ];

    fn name(self) -> &'static str {
        match self {
            Daemon::Etcd => "etcd",
            Daemon::ApiServer => "kube-apiserver",
            Daemon::ControllerManager => "kube-controller-manager",
            Daemon::Scheduler => "kube-scheduler",
            Daemon::Containerd => "containerd",
            Daemon::Kubelet => "kubelet",
        }
    }

    /// Whether the daemon answers its health check.
    fn answers(self, cluster: &Cluster) -> bool {
        match self {
            Daemon::Etcd => http_status(ETCD_ADDR, "/health") == Some(200),
            Daemon::ApiServer => raw_get(cluster, None, "/readyz"),
            Daemon::ControllerManager => {
                raw_get(cluster, Some(CONTROLLER_MANAGER_PORT), "/healthz")
            }
            Daemon::Scheduler => raw_get(cluster, Some(SCHEDULER_PORT), "/healthz"),
            Daemon::Containerd => UnixStream::connect(&cluster.containerd_socket).is_ok(),
            Daemon::Kubelet => http_status(KUBELET_HEALTHZ_ADDR, "/healthz") == Some(200),
        }
    }

    /// The daemon's command line.
    fn command(self, cluster: &Cluster) -> Command {
        let pki = |name: &str| cluster.pki.join(name);
        let dir = &cluster.dir;
        match self {
            Daemon::Etcd => {
                let mut cmd = Command::new(cluster.bin.join("etcd"));
                cmd.args(["--name", "brix-e2e"])
                    .arg("--data-dir")
                    .arg(dir.join("etcd"))
                    .arg(format!("--listen-client-urls=http://{ETCD_ADDR}"))
                    .arg(format!("--advertise-client-urls=http://{ETCD_ADDR}"))
                    .arg(format!("--listen-peer-urls=http://{ETCD_PEER_ADDR}"))
                    .arg(format!(
                        "--initial-advertise-peer-urls=http://{ETCD_PEER_ADDR}"
                    ))
                    .arg(format!(
                        "--initial-cluster=brix-e2e=http://{ETCD_PEER_ADDR}"
                    ));
                cmd
            }
            Daemon::ApiServer => {
                let mut cmd = Command::new(cluster.bin.join("kube-apiserver"));
                let (host, port) = API_ADDR.split_once(':').unwrap_or((API_ADDR, "6443"));
                cmd.arg(format!("--etcd-servers=http://{ETCD_ADDR}"))
                    .arg(format!("--bind-address={host}"))
                    .arg(format!("--secure-port={port}"))
                    .arg(flag("tls-cert-file", &pki("apiserver.pem")))
                    .arg(flag("tls-private-key-file", &pki("apiserver-key.pem")))
                    .arg(flag("client-ca-file", &pki("ca.pem")))
                    .arg(flag(
                        "kubelet-client-certificate",
                        &pki("apiserver-kubelet-client.pem"),
                    ))
                    .arg(flag(
                        "kubelet-client-key",
                        &pki("apiserver-kubelet-client-key.pem"),
                    ))
                    .arg(flag("kubelet-certificate-authority", &pki("ca.pem")))
                    .arg("--kubelet-preferred-address-types=Hostname")
                    .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                    .arg(flag("service-account-key-file", &pki("sa.pub")))
                    .arg(flag("service-account-signing-key-file", &pki("sa-key.pem")))
                    .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                    // The front-proxy CA the controllers read from the API server (without
                    // it they log an error every 10 s); no certificate has the allowed name.
                    .arg(flag("requestheader-client-ca-file", &pki("ca.pem")))
                    .arg("--requestheader-allowed-names=front-proxy-client")
                    .arg("--requestheader-username-headers=X-Remote-User")
                    .arg("--requestheader-group-headers=X-Remote-Group")
                    .arg("--requestheader-extra-headers-prefix=X-Remote-Extra-")
                    .arg("--authorization-mode=Node,RBAC")
                    .arg("--enable-admission-plugins=NodeRestriction")
                    // BuildKit pods run privileged, as buildx's driver makes them.
                    .arg("--allow-privileged=true")
                    // Endpoints may not be loopback addresses, and nothing routes the
                    // `kubernetes` service here anyway (no kube-proxy).
                    .arg("--endpoint-reconciler-type=none")
                    .arg("--profiling=false");
                cmd
            }
            Daemon::ControllerManager => {
                let mut cmd = Command::new(cluster.bin.join("kube-controller-manager"));
                let kubeconfig = dir.join("kube-controller-manager.kubeconfig");
                cmd.arg(flag("kubeconfig", &kubeconfig))
                    .arg(flag("authentication-kubeconfig", &kubeconfig))
                    .arg(flag("authorization-kubeconfig", &kubeconfig))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--secure-port={CONTROLLER_MANAGER_PORT}"))
                    .arg(flag("tls-cert-file", &pki("components.pem")))
                    .arg(flag("tls-private-key-file", &pki("components-key.pem")))
                    .arg(flag("service-account-private-key-file", &pki("sa-key.pem")))
                    .arg(flag("root-ca-file", &pki("ca.pem")))
                    .arg(flag("cluster-signing-cert-file", &pki("ca.pem")))
                    .arg(flag("cluster-signing-key-file", &pki("ca-key.pem")))
                    .arg("--use-service-account-credentials=true")
                    .arg("--leader-elect=false")
                    .arg("--profiling=false");
                cmd
            }
            Daemon::Scheduler => {
                let mut cmd = Command::new(cluster.bin.join("kube-scheduler"));
                let kubeconfig = dir.join("kube-scheduler.kubeconfig");
                cmd.arg(flag("kubeconfig", &kubeconfig))
                    .arg(flag("authentication-kubeconfig", &kubeconfig))
                    .arg(flag("authorization-kubeconfig", &kubeconfig))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--secure-port={SCHEDULER_PORT}"))
                    .arg(flag("tls-cert-file", &pki("components.pem")))
                    .arg(flag("tls-private-key-file", &pki("components-key.pem")))
                    .arg("--leader-elect=false")
                    .arg("--profiling=false");
                cmd
            }
            Daemon::Containerd => {
                // The unpacked shim first on PATH; runc is bookworm's (named in the config).
                let mut cmd = Command::new("env");
                cmd.arg(format!(
                    "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    cluster.pkgs.join("usr/bin").display()
                ))
                .arg(cluster.containerd())
                .arg("--config")
                .arg(dir.join("containerd").join("config.toml"));
                cmd
            }
            Daemon::Kubelet => {
                let mut cmd = Command::new(cluster.bin.join("kubelet"));
                cmd.arg(flag("config", &dir.join("kubelet-config.json")))
                    .arg(flag("kubeconfig", &dir.join("kubelet.kubeconfig")))
                    .arg(format!("--hostname-override={KUBELET_HOST}"))
                    .arg(flag("root-dir", &dir.join("kubelet")))
                    .arg("--v=1");
                cmd
            }
        }
    }

    /// Starts the daemon detached and waits until it answers.
    fn start(self, cluster: &Cluster) -> Result<()> {
        if self == Daemon::Kubelet {
            ensure_cgroup_root()?;
        }
        let log = cluster.log(self.name());
        let command = self.command(cluster);
        let mut daemon = process::spawn_detached(&command, &log)?;
        write(&self.pidfile(cluster), &format!("{}\n", daemon.id()))?;
        write(&self.argsfile(cluster), &process::describe(&command))?;
        process::wait_until(
            self.name(),
            &mut daemon,
            Duration::from_secs(90),
            &log,
            || self.answers(cluster),
        )
    }
}

/// Makes [`CGROUP_ROOT`] in every cgroup v1 hierarchy: the kubelet refuses a cgroup root
/// that does not exist, and makes only what is beneath it.
fn ensure_cgroup_root() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let relative = CGROUP_ROOT.trim_start_matches('/');
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, mount_point, "cgroup" | "cgroup2", ..] = fields[..] {
            let dir = Path::new(mount_point).join(relative);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the kubelet's cgroup root {}", dir.display()))?;
        }
    }
    Ok(())
}

impl Daemon {
    /// Where [`Daemon::start`] records the pid (of `setsid`, which execs the daemon).
    fn pidfile(self, cluster: &Cluster) -> PathBuf {
        cluster.dir.join(format!("{}.pid", self.name()))
    }

    /// Where [`Daemon::start`] records the command line it started the daemon with.
    fn argsfile(self, cluster: &Cluster) -> PathBuf {
        cluster.dir.join(format!("{}.args", self.name()))
    }

    /// Whether the daemon was started with another command line than this step's (a flag
    /// changed); a daemon started by hand, with no record, counts as current.
    fn started_differently(self, cluster: &Cluster) -> bool {
        std::fs::read_to_string(self.argsfile(cluster))
            .is_ok_and(|args| args != process::describe(&self.command(cluster)))
    }

    /// Stops the daemon this step started (SIGTERM to the recorded pid, after checking that
    /// the process is still that daemon, then SIGKILL) and waits until it has exited.
    fn stop(self, cluster: &Cluster) -> Result<()> {
        let pidfile = self.pidfile(cluster);
        let pid = std::fs::read_to_string(&pidfile).with_context(|| {
            format!(
                "{} runs but {} is missing; stop it and run again",
                self.name(),
                pidfile.display()
            )
        })?;
        let pid = pid.trim();
        let alive = || {
            let proc_dir = Path::new("/proc").join(pid);
            let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X']));
            !zombie
                && String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|arg| arg.ends_with(self.name()))
        };
        if !alive() {
            bail!(
                "{} answers but pid {pid} in {} is not it; stop it and run again",
                self.name(),
                pidfile.display()
            );
        }
        // The API server drains its watches for longer than a test set-up should wait: after
        // 20 s the daemon is killed (it keeps no state of its own; etcd's is fsynced).
        for (signal, wait) in [("-TERM", 20), ("-KILL", 10)] {
            output(Command::new("kill").args([signal, pid]))?;
            let deadline = Instant::now() + Duration::from_secs(wait);
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if !alive() {
                return Ok(());
            }
        }
        bail!(
            "{} (pid {pid}) did not exit after SIGTERM and SIGKILL",
            self.name()
        )
    }
}

/// `--name=PATH`.
fn flag(name: &str, path: &Path) -> String {
    format!("--{name}={}", path.display())
}

/// `kubectl get --raw PATH` against the API server, or against a controller's port on
/// 127.0.0.1 (their serving certificate is signed by the cluster's CA).
fn raw_get(cluster: &Cluster, port: Option<u16>, path: &str) -> bool {
    if !cluster.kubeconfig.is_file() || !cluster.bin.join("kubectl").is_file() {
        return false;
    }
    let mut cmd = cluster.kubectl();
    if let Some(port) = port {
        cmd.arg(format!("--server=https://127.0.0.1:{port}"));
    }
    cmd.args(["--request-timeout=5s", "get", "--raw", path]);
    process::succeeds(&mut cmd)
}

/// Whether the node reports Ready.
fn node_ready(cluster: &Cluster) -> bool {
    output(cluster.kubectl().args([
        "--request-timeout=5s",
        "get",
        "node",
        KUBELET_HOST,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]))
    .is_ok_and(|status| status.trim() == "True")
}

/// Waits until the node is Ready; returns how long that took.
fn wait_for_node(cluster: &Cluster) -> Result<f64> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if node_ready(cluster) {
            return Ok(started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let conditions = output(cluster.kubectl().args([
        "get",
        "node",
        KUBELET_HOST,
        "-o",
        "jsonpath={range .status.conditions[*]}{.type}={.status} {.message}{\"\\n\"}{end}",
    ]))
    .unwrap_or_else(|err| format!("{err:#}"));
    bail!(
        "node {KUBELET_HOST} is not Ready after 120 s:\n{}\nthe end of {}:\n{}",
        conditions.trim(),
        cluster.log("kubelet").display(),
        process::log_tail_from(&cluster.log("kubelet"), 0, 30)
    )
}

/// Maps [`KUBELET_HOST`] to 127.0.0.1 with one line of its own, unless a line maps it there;
/// fails when a line maps it elsewhere. Other lines are left as they are.
fn ensure_hosts() -> Result<Option<String>> {
    let text =
        std::fs::read_to_string(ETC_HOSTS).with_context(|| format!("reading {ETC_HOSTS}"))?;
    match address_of(&text, KUBELET_HOST) {
        Some("127.0.0.1") => return Ok(None),
        Some(address) => bail!(
            "{ETC_HOSTS} maps {KUBELET_HOST} to {address}; the e2e cluster's API server reaches \
             its kubelet there on 127.0.0.1: remove that line"
        ),
        None => {}
    }
    hosts::append_line(
        &text,
        &format!(
            "127.0.0.1 {KUBELET_HOST} # cargo xtask e2e: the Kubernetes cluster's kubelet (target/e2e/kubernetes)\n"
        ),
    )?;
    Ok(Some(format!(
        "mapped {KUBELET_HOST} to 127.0.0.1 in {ETC_HOSTS}"
    )))
}

/// Downloads and unpacks Debian unstable's containerd unless it is unpacked.
fn ensure_containerd_package(ws: &Workspace, cluster: &Cluster) -> Result<Option<String>> {
    let shim = cluster.pkgs.join("usr/bin/containerd-shim-runc-v2");
    let ctr = cluster.pkgs.join("usr/bin/ctr");
    if [cluster.containerd(), shim, ctr]
        .iter()
        .all(|b| b.is_file())
    {
        return Ok(None);
    }
    let debs = download_unstable_debs(&cluster.dir.join("apt"), &[CONTAINERD_PACKAGE])?;
    // Unpacked beside and moved into place: an interrupted run never leaves half a tree.
    let partial = cluster.pkgs.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    for deb in &debs {
        output(Command::new("dpkg").arg("-x").arg(deb).arg(&partial))?;
    }
    if cluster.pkgs.exists() {
        std::fs::remove_dir_all(&cluster.pkgs)?;
    }
    std::fs::rename(&partial, &cluster.pkgs)?;
    let names: Vec<&str> = debs
        .iter()
        .filter_map(|deb| deb.file_name()?.to_str())
        .collect();
    Ok(Some(format!(
        "fetched {} into {}",
        names.join(", "),
        ws.display(&cluster.pkgs)
    )))
}

/// containerd's version, after checking it is [`CONTAINERD_MINOR`].x.
fn containerd_version(cluster: &Cluster) -> Result<String> {
    let text = output(Command::new(cluster.containerd()).arg("--version"))?;
    // `containerd github.com/containerd/containerd/v2 2.1.5~ds1 <revision>`
    let version = text
        .split_whitespace()
        .nth(2)
        .with_context(|| format!("unexpected `containerd --version`: {text}"))?;
    if !version.starts_with(&format!("{CONTAINERD_MINOR}.")) {
        bail!(
            "containerd in {} is {version}, not {CONTAINERD_MINOR}.x: Debian unstable's \
             {CONTAINERD_PACKAGE} moved on; delete that folder after updating \
             CONTAINERD_MINOR in xtask/src/e2e/kubernetes.rs (and checking the config)",
            cluster.pkgs.display()
        );
    }
    Ok(version.to_string())
}

/// Builds the binaries unless this version pair is built: one `go build` of the wrapper
/// module, into a scratch folder moved into place when complete.
fn ensure_binaries(ws: &Workspace, cluster: &Cluster) -> Result<Option<String>> {
    let names: Vec<&str> = KUBERNETES_COMMANDS
        .iter()
        .copied()
        .chain(["etcd"])
        .collect();
    if names.iter().all(|name| cluster.bin.join(name).is_file()) {
        return Ok(None);
    }
    let go = go_toolchain::go_binary(ws)?;
    let wrapper = ws.root.join("xtask/assets/kubernetes");
    let log = cluster.dir.join(format!(
        "go-build-{KUBERNETES_VERSION}-etcd{ETCD_VERSION}.log"
    ));
    let scratch = cluster.bin.with_extension("partial");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    println!(
        "[e2e]       kubernetes: compiling Kubernetes {KUBERNETES_VERSION} and etcd {ETCD_VERSION} \
         with {} (15-25 minutes on 2 cores with an empty Go build cache; log: {})",
        go.display(),
        ws.display(&log)
    );
    let started = Instant::now();
    let mut build = Command::new("nice");
    build
        .args(["-n", "10"])
        .arg(&go)
        .current_dir(&wrapper)
        // Static binaries, as Kubernetes' release builds them.
        .env("CGO_ENABLED", "0")
        // No VCS stamping: the wrapper sits in brix's git tree, which may lack git.
        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&scratch)
        .arg(format!("-ldflags={}", version_ldflags()))
        .args(
            KUBERNETES_COMMANDS
                .iter()
                .map(|name| format!("k8s.io/kubernetes/cmd/{name}")),
        )
        .arg(ETCD_PACKAGE);
    process::logged(&mut build, &log).context(
        "building Kubernetes and etcd from the Go module proxy (is it reachable? `go env GOPROXY`)",
    )?;
    // `go build -o DIR` names a `/vN` package's binary after the element before it.
    let etcd = scratch.join("server");
    if etcd.is_file() {
        std::fs::rename(&etcd, scratch.join("etcd"))?;
    }
    for name in &names {
        anyhow::ensure!(
            scratch.join(name).is_file(),
            "`go build` left no {name} in {}",
            scratch.display()
        );
    }
    if cluster.bin.exists() {
        std::fs::remove_dir_all(&cluster.bin)?;
    }
    std::fs::rename(&scratch, &cluster.bin)
        .with_context(|| format!("moving {} to {}", scratch.display(), cluster.bin.display()))?;
    Ok(Some(format!(
        "built {} in {:.0}s into {}",
        names.join(", "),
        started.elapsed().as_secs_f64(),
        ws.display(&cluster.bin)
    )))
}

/// The version stamps Kubernetes' release builds set at link time (`hack/lib/version.sh`):
/// without them every binary reports v0.0.0-master, and the kubelet's version is the node's.
fn version_ldflags() -> String {
    let minor = KUBERNETES_VERSION
        .trim_start_matches("v1.")
        .split('.')
        .next()
        .unwrap_or_default();
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (name, value) in [
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", "1"),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            flags.push(format!("-X {package}.{name}={value}"));
        }
    }
    flags.join(" ")
}

/// One certificate the cluster uses, signed by its CA.
struct Certificate {
    /// `NAME.pem` and `NAME-key.pem` in `pki/`.
    name: &'static str,
    subject: String,
    /// openssl extension lines.
    extensions: String,
}

const SERVER: &str = "extendedKeyUsage=serverAuth\n";
const CLIENT: &str = "extendedKeyUsage=clientAuth\n";

/// Every certificate, with its subject (a client's CN is its user name, O its group).
fn certificates() -> Vec<Certificate> {
    vec![
        Certificate {
            name: "apiserver",
            subject: "/CN=kube-apiserver".into(),
            extensions: format!(
                "{SERVER}subjectAltName=IP:127.0.0.1,IP:{SERVICE_IP},DNS:localhost,DNS:kubernetes,\
                 DNS:kubernetes.default,DNS:kubernetes.default.svc,\
                 DNS:kubernetes.default.svc.cluster.local\n"
            ),
        },
        Certificate {
            name: "components",
            subject: "/CN=kube-controllers".into(),
            extensions: format!("{SERVER}subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        },
        Certificate {
            name: "kubelet",
            subject: format!("/CN={KUBELET_HOST}"),
            extensions: format!("{SERVER}subjectAltName=DNS:{KUBELET_HOST},IP:127.0.0.1\n"),
        },
        Certificate {
            name: "apiserver-kubelet-client",
            subject: "/O=system:masters/CN=kube-apiserver-kubelet-client".into(),
            extensions: CLIENT.into(),
        },
        Certificate {
            name: "admin",
            subject: "/O=system:masters/CN=brix-e2e-admin".into(),
            extensions: CLIENT.into(),
        },
        Certificate {
            name: "kubelet-client",
            subject: format!("/O=system:nodes/CN=system:node:{KUBELET_HOST}"),
            extensions: CLIENT.into(),
        },
        Certificate {
            name: "kube-controller-manager",
            subject: "/CN=system:kube-controller-manager".into(),
            extensions: CLIENT.into(),
        },
        Certificate {
            name: "kube-scheduler",
            subject: "/CN=system:kube-scheduler".into(),
            extensions: CLIENT.into(),
        },
    ]
}

/// Makes the key material unless all of it is there: the CA, every [`certificates`] pair
/// (EC P-256) and the service-account key (RSA 2048), in a scratch folder moved into place.
fn ensure_pki(cluster: &Cluster) -> Result<Option<String>> {
    let certificates = certificates();
    let mut wanted = vec![
        "ca.pem".to_string(),
        "ca-key.pem".into(),
        "sa-key.pem".into(),
        "sa.pub".into(),
    ];
    for cert in &certificates {
        wanted.push(format!("{}.pem", cert.name));
        wanted.push(format!("{}-key.pem", cert.name));
    }
    if wanted.iter().all(|file| cluster.pki.join(file).is_file()) {
        return Ok(None);
    }
    let partial = cluster.pki.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    let openssl = |args: &[&str]| -> Result<()> {
        output(Command::new("openssl").current_dir(&partial).args(args)).map(|_| ())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "3650"],
            &["-subj", "/CN=brix e2e Kubernetes CA"],
        ]
        .concat(),
    )?;
    for cert in &certificates {
        let key = format!("{}-key.pem", cert.name);
        let pem = format!("{}.pem", cert.name);
        let csr = format!("{}.csr", cert.name);
        let ext = format!("{}.ext", cert.name);
        std::fs::write(partial.join(&ext), &cert.extensions)?;
        openssl(
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &cert.subject],
            ]
            .concat(),
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "3650",
            "-extfile",
            &ext,
        ])?;
    }
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa-key.pem",
    ])?;
    openssl(&["pkey", "-in", "sa-key.pem", "-pubout", "-out", "sa.pub"])?;
    if cluster.pki.exists() {
        std::fs::remove_dir_all(&cluster.pki)?;
    }
    std::fs::rename(&partial, &cluster.pki)?;
    Ok(Some(format!(
        "made a CA and {} certificates with openssl",
        certificates.len()
    )))
}

/// Writes the kubeconfigs, containerd's config, the CNI network and the kubelet's config
/// (cheap, and so always as this version of the step wants them).
fn write_configs(cluster: &Cluster) -> Result<()> {
    let read = |name: &str| -> Result<String> {
        let path = cluster.pki.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let ca = read("ca.pem")?;
    for (file, cert) in [
        (cluster.kubeconfig.clone(), "admin"),
        (cluster.dir.join("kubelet.kubeconfig"), "kubelet-client"),
        (
            cluster.dir.join("kube-controller-manager.kubeconfig"),
            "kube-controller-manager",
        ),
        (
            cluster.dir.join("kube-scheduler.kubeconfig"),
            "kube-scheduler",
        ),
    ] {
        let text = kubeconfig(
            &ca,
            &read(&format!("{cert}.pem"))?,
            &read(&format!("{cert}-key.pem"))?,
        );
        write(&file, &text)?;
    }
    for (file, text, _) in daemon_configs(cluster) {
        write(&file, &text)?;
    }
    Ok(())
}

/// The config files of containerd (with its CNI network) and the kubelet, as this version of
/// the step wants them, with the daemon that reads each.
fn daemon_configs(cluster: &Cluster) -> Vec<(PathBuf, String, Daemon)> {
    let cni_dir = cluster.dir.join("cni");
    vec![
        (
            cluster.dir.join("containerd").join("config.toml"),
            containerd_config(cluster, &cni_dir.join("net.d")),
            Daemon::Containerd,
        ),
        (
            cni_dir.join("net.d").join("10-brix-e2e.conflist"),
            cni_config(&cni_dir.join("ipam")),
            Daemon::Containerd,
        ),
        (
            cluster.dir.join("kubelet-config.json"),
            kubelet_config(cluster),
            Daemon::Kubelet,
        ),
    ]
}

/// The daemons started with other flags than this step's, or whose config file on disk
/// differs from what [`daemon_configs`] wants: a running one is restarted.
fn stale_daemons(cluster: &Cluster) -> Vec<Daemon> {
    let mut stale: Vec<Daemon> = Daemon::ALL
        .iter()
        .copied()
        .filter(|daemon| daemon.started_differently(cluster))
        .collect();
    for (file, text, daemon) in daemon_configs(cluster) {
        if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str())
            && !stale.contains(&daemon)
        {
            stale.push(daemon);
        }
    }
    stale
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A kubeconfig (JSON is YAML) for one client certificate, everything inline, so the file
/// works wherever it is copied.
fn kubeconfig(ca: &str, cert: &str, key: &str) -> String {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "brix-e2e",
            "cluster": {
                "server": format!("https://{API_ADDR}"),
                "certificate-authority-data": b64(ca),
            },
        }],
        "users": [{
            "name": "brix-e2e",
            "user": {
                "client-certificate-data": b64(cert),
                "client-key-data": b64(key),
            },
        }],
        "contexts": [{
            "name": "brix-e2e",
            "context": { "cluster": "brix-e2e", "user": "brix-e2e", "namespace": "default" },
        }],
        "current-context": "brix-e2e",
    });
    format!("{value:#}\n")
}

/// containerd's config: its own root, state and socket; the CRI plugin with bookworm's runc
/// (cgroupfs, as the kubelet), the pause image as the pinned sandbox image, the CNI network
/// of [`cni_config`]; NRI off (a socket in /var/run). `restrict_oom_score_adj`: the kubelet
/// gives pause containers an `oom_score_adj` of -998, which this machine's kernel refuses to
/// lower to (runc then fails with "can't get final child's PID from pipe"), so containerd caps
/// it at its own.
fn containerd_config(cluster: &Cluster, cni_conf_dir: &Path) -> String {
    // JSON string escapes are valid TOML basic strings.
    let quote = |path: &Path| serde_json::Value::from(path.to_string_lossy()).to_string();
    let dir = cluster.dir.join("containerd");
    let root = dir.join("root");
    format!(
        "version = 3\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.nri.v1.nri\"]\n\
         \n\
         [grpc]\n  address = {socket}\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n\
         \n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
         \n\
         [plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"\n\
         [plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = \"{PAUSE_IMAGE}\"\n\
         \n\
         [plugins.\"io.containerd.cri.v1.runtime\"]\n  restrict_oom_score_adj = true\n\
         [plugins.\"io.containerd.cri.v1.runtime\".cni]\n  bin_dirs = [\"{CNI_BIN_DIR}\"]\n  conf_dir = {cni}\n\
         [plugins.\"io.containerd.cri.v1.runtime\".containerd]\n  default_runtime_name = \"runc\"\n\
         [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]\n  BinaryName = \"{BOOKWORM_RUNC}\"\n  SystemdCgroup = false\n",
        root = quote(&root),
        state = quote(&dir.join("state")),
        socket = quote(&cluster.containerd_socket),
        opt = quote(&root.join("opt")),
        cni = quote(cni_conf_dir),
    )
}

/// The pod network: a bridge of its own with host-local addresses (no masquerading; the
/// BuildKit pods use the host's network).
fn cni_config(ipam_dir: &Path) -> String {
    let value = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "brix-e2e",
        "plugins": [{
            "type": "bridge",
            "bridge": CNI_BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": POD_CIDR }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_dir,
            },
        }],
    });
    format!("{value:#}\n")
}

/// The kubelet's configuration: cgroupfs under [`CGROUP_ROOT`], containerd's socket, its
/// serving certificate, webhook authentication and authorization against the API server,
/// loopback only, and eviction and image GC thresholds low enough for a shared disk (an
/// image GC'd here cannot be pulled back).
fn kubelet_config(cluster: &Cluster) -> String {
    let pki = |name: &str| cluster.pki.join(name);
    let (_, healthz_port) = KUBELET_HEALTHZ_ADDR.split_once(':').unwrap_or_default();
    let value = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port.parse::<u16>().unwrap_or(10248),
        "tlsCertFile": pki("kubelet.pem"),
        "tlsPrivateKeyFile": pki("kubelet-key.pem"),
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": pki("ca.pem") },
        },
        "authorization": { "mode": "Webhook" },
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": CGROUP_ROOT,
        "containerRuntimeEndpoint": format!("unix://{}", cluster.containerd_socket.display()),
        "podLogsDir": cluster.dir.join("pod-logs"),
        "failSwapOn": false,
        "clusterDomain": "cluster.local",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": false,
        "rotateCertificates": false,
    });
    format!("{value:#}\n")
}

/// Builds the pause image and imports it unless containerd has it.
fn ensure_pause_image(ws: &Workspace, cluster: &Cluster) -> Result<Option<String>> {
    if has_image(cluster, PAUSE_IMAGE)? {
        return Ok(None);
    }
    let dir = cluster.dir.join("pause");
    let tarball = dir.join(format!("pause-{PAUSE_VERSION}.tar"));
    if !tarball.is_file() {
        build_pause_image(ws, &dir, &tarball)?;
    }
    output(cluster.ctr().args(["images", "import"]).arg(&tarball))
        .with_context(|| format!("importing {} into containerd", tarball.display()))?;
    Ok(Some(format!(
        "built {PAUSE_IMAGE} from the Kubernetes module's pause.c and imported it"
    )))
}

/// Whether containerd's k8s.io namespace has an image of that name.
fn has_image(cluster: &Cluster, name: &str) -> Result<bool> {
    let list = output(cluster.ctr().args(["images", "ls", "--quiet"]))?;
    Ok(list.lines().any(|line| line.trim() == name))
}

/// `gcc -static` of `build/pause/linux/pause.c` from the Kubernetes module (in the Go module
/// cache after the build), packed as a one-layer OCI image tarball named [`PAUSE_IMAGE`].
fn build_pause_image(ws: &Workspace, dir: &Path, tarball: &Path) -> Result<()> {
    let wrapper = ws.root.join("xtask/assets/kubernetes");
    let module_dir = output(
        Command::new(go_toolchain::go_binary(ws)?)
            .current_dir(&wrapper)
            .args(["list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"]),
    )
    .context("locating k8s.io/kubernetes in the Go module cache")?;
    let source = Path::new(module_dir.trim()).join("build/pause/linux/pause.c");
    std::fs::create_dir_all(dir)?;
    let binary = dir.join("pause");
    output(
        Command::new("gcc")
            .args(["-Os", "-Wall", "-Werror", "-static", "-s"])
            .arg(format!("-DVERSION=v{PAUSE_VERSION}-brix-e2e"))
            .arg("-o")
            .arg(&binary)
            .arg(&source),
    )
    .with_context(|| format!("compiling {}", source.display()))?;
    let layer = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let bytes = std::fs::read(&binary)?;
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, "pause", bytes.as_slice())?;
        builder.into_inner()?
    };
    let digest = |bytes: &[u8]| format!("sha256:{:x}", Sha256::digest(bytes));
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": ["/pause"], "User": "65535:65535" },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": {
                "io.containerd.image.name": PAUSE_IMAGE,
                "org.opencontainers.image.ref.name": PAUSE_VERSION,
            },
        }],
    }))?;
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: String, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, path, bytes)?;
        Ok(())
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json".into(), &index)?;
    for blob in [&layer, &config, &manifest] {
        let hex = digest(blob);
        let hex = hex.trim_start_matches("sha256:");
        add(format!("blobs/sha256/{hex}"), blob)?;
    }
    let bytes = archive.into_inner()?;
    let partial = tarball.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, tarball)?;
    Ok(())
}

/// Imports the system engine's BuildKit image into containerd unless the copy there is the
/// same image (docker's image ID, recorded beside the import); says what it imported.
fn ensure_buildkit_image(cluster: &Cluster) -> Result<Option<String>> {
    let id = output(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        BUILDKIT_IMAGE,
    ]))
    .with_context(|| {
        format!("{BUILDKIT_IMAGE} is not in the system engine; run the `buildkit` step first")
    })?;
    let id = id.trim();
    let marker = cluster.dir.join("images").join("buildkit.id");
    if std::fs::read_to_string(&marker).is_ok_and(|old| old.trim() == id)
        && has_image(cluster, BUILDKIT_CRI_IMAGE)?
    {
        return Ok(None);
    }
    let mut save = Command::new("docker");
    save.args(["save", BUILDKIT_IMAGE]);
    let mut saving = save
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", process::describe(&save)))?;
    let archive = saving.stdout.take().context("docker save has no stdout")?;
    let mut import = cluster.ctr();
    import.args(["images", "import", "-"]).stdin(archive);
    let imported = import.output();
    // `import` holds the pipe's read end: with it open, a save whose import ended early
    // would block on a full pipe forever.
    drop(import);
    let imported = match imported {
        Ok(imported) => imported,
        Err(err) => {
            let _ = saving.kill();
            let _ = saving.wait();
            return Err(err).context("could not start `ctr images import`");
        }
    };
    let saved = saving.wait()?;
    if !imported.status.success() {
        bail!(
            "importing {BUILDKIT_IMAGE} into the cluster's containerd failed ({}): {}",
            imported.status,
            String::from_utf8_lossy(&imported.stderr).trim()
        );
    }
    anyhow::ensure!(
        saved.success(),
        "`docker save {BUILDKIT_IMAGE}` failed ({saved})"
    );
    anyhow::ensure!(
        has_image(cluster, BUILDKIT_CRI_IMAGE)?,
        "`ctr images import` succeeded but containerd has no {BUILDKIT_CRI_IMAGE}"
    );
    write(&marker, id)?;
    Ok(Some(format!(
        "imported {BUILDKIT_IMAGE} from the system engine"
    )))
}

/// The probe pod: hostNetwork, the BuildKit image (never pulled), a command that waits.
fn probe_pod() -> String {
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": PROBE_POD,
            "namespace": "default",
            "labels": { "app.kubernetes.io/managed-by": "brix-xtask-e2e" },
        },
        "spec": {
            "hostNetwork": true,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "buildkit",
                "image": BUILDKIT_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    });
    format!("{value:#}\n")
}

/// Runs the probe pod until Running, execs `buildctl --version` in it through the API server
/// and deletes it; returns what it saw.
fn probe(cluster: &Cluster) -> Result<String> {
    let started = Instant::now();
    let manifest = cluster.dir.join("probe-pod.json");
    write(&manifest, &probe_pod())?;
    output(cluster.kubectl().args([
        "delete",
        "pod",
        PROBE_POD,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
    ]))?;
    // The pod is refused until the controller-manager has made the `default` service
    // account of its namespace.
    let mut created = Err(anyhow::anyhow!("not tried"));
    while started.elapsed() < Duration::from_secs(60) {
        created = output(cluster.kubectl().arg("create").arg("-f").arg(&manifest));
        if created.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    created.context("creating the probe pod")?;
    let waited = output(cluster.kubectl().args([
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        &format!("pod/{PROBE_POD}"),
        "--timeout=120s",
    ]));
    if let Err(err) = waited {
        let described = output(cluster.kubectl().args(["describe", "pod", PROBE_POD]))
            .unwrap_or_else(|err| format!("{err:#}"));
        return Err(err).with_context(|| {
            format!(
                "the probe pod did not reach Running:\n{}\nsee {} and {}",
                process::tail(&described, 25),
                cluster.log("kubelet").display(),
                cluster.log("containerd").display()
            )
        });
    }
    let running_in = started.elapsed().as_secs_f64();
    let version =
        output(
            cluster
                .kubectl()
                .args(["exec", PROBE_POD, "--", "buildctl", "--version"]),
        )
        .with_context(|| {
            format!(
                "`kubectl exec` into the running probe pod failed (API server → kubelet → \
             containerd); see {}, {} and {}",
                cluster.log("kube-apiserver").display(),
                cluster.log("kubelet").display(),
                cluster.log("containerd").display()
            )
        })?;
    anyhow::ensure!(
        version.starts_with("buildctl "),
        "`kubectl exec {PROBE_POD} -- buildctl --version` printed {version:?}"
    );
    output(
        cluster
            .kubectl()
            .args(["delete", "pod", PROBE_POD, "--wait=true", "--timeout=60s"]),
    )?;
    Ok(format!(
        "probe pod Running after {running_in:.1}s, `kubectl exec` ran {}, pod deleted",
        version
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper's go.mod pins what the constants say.
    #[test]
    fn the_wrapper_module_pins_the_versions_named_here() {
        let go_mod = include_str!("../../assets/kubernetes/go.mod");
        assert!(
            go_mod.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}")),
            "{go_mod}"
        );
        assert!(
            go_mod.contains(&format!("{ETCD_PACKAGE} {ETCD_VERSION}")),
            "{go_mod}"
        );
        let replaces: Vec<&str> = go_mod
            .lines()
            .filter(|line| line.contains(" => "))
            .collect();
        assert!(replaces.len() > 25, "{go_mod}");
        for line in replaces {
            assert!(line.trim_end().ends_with(STAGING_VERSION), "{line}");
        }
    }

    #[test]
    fn version_stamps_name_the_release() {
        let flags = version_ldflags();
        assert!(flags.contains("-X k8s.io/component-base/version.gitVersion=v1.34."));
        assert!(flags.contains("-X k8s.io/client-go/pkg/version.gitMinor=34 "));
    }

    #[test]
    fn the_kubelet_host_name_is_found_in_hosts_lines() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 kubelet.brix.test\n127.0.0.1 kubelet.brix.test # e2e\n";
        assert_eq!(address_of(hosts, KUBELET_HOST), Some("127.0.0.1"));
        assert_eq!(address_of("127.0.0.1 localhost\n", KUBELET_HOST), None);
    }

    #[test]
    fn configs_keep_everything_under_the_clusters_folder() {
        let ws = Workspace {
            root: PathBuf::from("/w"),
            target_dir: PathBuf::from("/w/target"),
            e2e_dir: PathBuf::from("/w/target/e2e"),
        };
        let cluster = Cluster::new(&ws);
        let config = containerd_config(&cluster, Path::new("/w/target/e2e/kubernetes/cni/net.d"));
        assert!(
            config.contains("root = \"/w/target/e2e/kubernetes/containerd/root\""),
            "{config}"
        );
        assert!(
            config.contains(&format!("sandbox = \"{PAUSE_IMAGE}\"")),
            "{config}"
        );
        assert!(config.contains("SystemdCgroup = false"), "{config}");
        let kubelet: serde_json::Value =
            serde_json::from_str(&kubelet_config(&cluster)).expect("JSON");
        assert_eq!(kubelet["cgroupDriver"], "cgroupfs");
        assert_eq!(kubelet["address"], "127.0.0.1");
        assert_eq!(
            kubelet["containerRuntimeEndpoint"],
            "unix:///w/target/e2e/kubernetes/containerd/containerd.sock"
        );
        let cni: serde_json::Value =
            serde_json::from_str(&cni_config(Path::new("/i"))).expect("JSON");
        assert_eq!(cni["plugins"][0]["bridge"], CNI_BRIDGE);
        assert_eq!(cni["plugins"][0]["ipam"]["type"], "host-local");
    }
}
