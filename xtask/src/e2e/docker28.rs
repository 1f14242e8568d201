//! Steps `docker28` and `docker28-images`: a current Docker engine beside the system one
//! (Debian 12's dockerd 20.10 on `/var/run/docker.sock`), so tests can run against both.
//!
//! dockerd 28 and containerd 2 come from Debian unstable's `docker.io` and `containerd`
//! packages, downloaded through a private apt sources list and unpacked with `dpkg -x` under
//! `target/e2e/docker28/pkgs` (nothing is installed into the system). They run with
//! bookworm's own runc (unstable's needs glibc 2.38; the unstable binaries used here need
//! only 2.34), which they find on PATH because no unstable runc is unpacked. Everything the
//! engine owns is its own: containerd (config, root, state, socket), data-root, exec-root,
//! pid file, containerd namespaces, cgroup parent and the bridge `brix28` (made here, with
//! `iptables` off). It uses the containerd image store (`features.containerd-snapshotter`)
//! and treats the registry on `localhost:5000` as insecure.
//!
//! A second dockerd can take the system engine's `docker0` away, after which every container
//! on the system engine's default bridge fails with `could not find bridge docker0`: when it
//! starts with state from an earlier run and has `default-address-pools` set (or starts with
//! `--bridge none`), moby's `configureNetworking` deletes the link named `docker0`, whatever
//! bridge it was told to use. So this engine sets no address pools and has a bridge, and the
//! step checks `docker0` before and after starting it and fails when it changed.

use super::dockerd::ping;
use super::process::{self, output};
use super::{BUILDKIT_IMAGE, Workspace};
use crate::bench::setup::download_unstable_debs;
use anyhow::{Context, Result, bail};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Debian unstable packages, and the major versions this engine is meant to have.
const DOCKER_PACKAGE: &str = "docker.io";
const DOCKER_MAJOR: &str = "28";
const CONTAINERD_PACKAGE: &str = "containerd";
const CONTAINERD_MAJOR: &str = "2";
/// bookworm's runc (from the system's docker.io), the one both engines run containers with.
const BOOKWORM_RUNC: &str = "/usr/sbin/runc";

/// The system engine's default bridge, which must survive this engine.
const SYSTEM_BRIDGE: &str = "docker0";
/// This engine's default bridge and its address (the gateway of its containers).
const BRIDGE: &str = "brix28";
const BRIDGE_ADDRESS: &str = "10.228.0.1/24";
/// containerd namespaces and the cgroup parent of this engine's containers.
const NAMESPACE: &str = "brix28";
const PLUGINS_NAMESPACE: &str = "brix28-plugins";
const CGROUP_PARENT: &str = "/brix28";
/// The engine's second listener: TCP with TLS, client certificates required (what a TLS
/// docker context points at), with its CA and the client's files in `tls/`.
pub const TLS_ADDRESS: &str = "127.0.0.1:2376";
/// Unix socket paths longer than this do not fit `sockaddr_un` (108 bytes with the NUL),
/// allowing for the `.ttrpc` suffix containerd adds.
const MAX_SOCKET_PATH: usize = 100;

/// The engine's files, all under `target/e2e/docker28/`.
#[derive(Debug)]
pub struct Docker28 {
    dir: PathBuf,
    /// `pkgs/`: the unpacked .debs (`usr/sbin/dockerd`, `usr/bin/containerd`, ...).
    pkgs: PathBuf,
    /// dockerd's API socket, `docker.sock`.
    pub socket: PathBuf,
    containerd_socket: PathBuf,
    /// `tls/`: `ca.pem`, the engine's `server-cert.pem`/`server-key.pem`, and a client's
    /// `cert.pem`/`key.pem` (a TLS docker context's files).
    pub tls_dir: PathBuf,
}

impl Docker28 {
    /// The engine's paths in this workspace.
    pub fn new(ws: &Workspace) -> Self {
        let dir = ws.e2e_dir.join("docker28");
        Self {
            pkgs: dir.join("pkgs"),
            socket: dir.join("docker.sock"),
            containerd_socket: dir.join("containerd").join("containerd.sock"),
            tls_dir: dir.join("tls"),
            dir,
        }
    }

    /// The engine's address as `DOCKER_HOST` takes it: `unix:///.../docker28/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `docker ARGS` against this engine.
    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host());
        cmd
    }

    fn dockerd(&self) -> PathBuf {
        self.pkgs.join("usr/sbin/dockerd")
    }

    fn containerd(&self) -> PathBuf {
        self.pkgs.join("usr/bin/containerd")
    }

    /// PATH for both daemons: the unstable binaries first (containerd-shim-runc-v2,
    /// docker-proxy), then the system's, where `runc` is bookworm's.
    fn daemon_path(&self) -> String {
        format!(
            "PATH={}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.pkgs.join("usr/sbin").display(),
            self.pkgs.join("usr/bin").display()
        )
    }
}

/// Starts containerd 2 and dockerd 28 unless the engine already answers `GET /_ping`,
/// fetching the packages first when they are not unpacked yet.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let engine = Docker28::new(ws);
    let before = system_bridge()?;
    if ping(&engine.socket).is_some() && !tls_listening() {
        // Started by a version of this step without the TLS listener.
        stop_dockerd(&engine)?;
    }
    if let Some(api) = ping(&engine.socket) {
        if UnixStream::connect(&engine.containerd_socket).is_ok() {
            return Ok(format!(
                "already running (API {api}) on {}",
                ws.display(&engine.socket)
            ));
        }
        // dockerd answers without its containerd (killed): it reconnects to a new one within
        // a few seconds (its retries back off to 3 s), which an image listing shows.
        if let Some(mut containerd) = start_containerd(&engine)? {
            process::wait_until(
                "containerd, until dockerd 28 reconnected to it",
                &mut containerd,
                Duration::from_secs(30),
                &engine.dir.join("dockerd.log"),
                || process::succeeds(engine.docker().args(["image", "ls", "--quiet"])),
            )?;
        }
        return Ok(format!(
            "restarted containerd for the running dockerd (API {api}) on {}",
            ws.display(&engine.socket)
        ));
    }
    for socket in [&engine.socket, &engine.containerd_socket] {
        let length = socket.as_os_str().len();
        if length > MAX_SOCKET_PATH {
            bail!(
                "{} is {length} bytes long, too long for a unix socket; use a shorter CARGO_TARGET_DIR",
                socket.display()
            );
        }
    }
    super::packages::require_command("ip")?;
    anyhow::ensure!(
        Path::new(BOOKWORM_RUNC).is_file(),
        "{BOOKWORM_RUNC} is missing (bookworm's runc comes with the system's docker.io)"
    );
    let fetched = ensure_packages(ws, &engine)?;
    let versions = versions(&engine)?;
    ensure_bridge()?;
    ensure_tls_files(&engine)?;
    start_containerd(&engine)?;
    let api = start_dockerd(&engine)?;
    let after = bridge_addresses(SYSTEM_BRIDGE)?;
    if after.as_ref() != Some(&before) {
        bail!(
            "the system engine's {SYSTEM_BRIDGE} (addresses {before:?}) is {} since dockerd \
             {DOCKER_MAJOR} started; containers on the system engine's default bridge fail with \
             `could not find bridge {SYSTEM_BRIDGE}`. Restart the system dockerd, or make the \
             bridge again: ip link add {SYSTEM_BRIDGE} type bridge && ip addr add {} dev \
             {SYSTEM_BRIDGE} && ip link set {SYSTEM_BRIDGE} up",
            match &after {
                None => "gone".to_string(),
                Some(addresses) => format!("changed to {addresses:?}"),
            },
            before.first().map_or("172.17.0.1/16", String::as_str)
        );
    }
    Ok(format!(
        "{fetched}started {versions} (API {api}) on {} and tcp://{TLS_ADDRESS} (TLS, client \
         certificates in {}), bridge {BRIDGE} {BRIDGE_ADDRESS}, {SYSTEM_BRIDGE} untouched; logs: \
         {}/{{containerd,dockerd}}.log",
        ws.display(&engine.socket),
        ws.display(&engine.tls_dir),
        ws.display(&engine.dir)
    ))
}

/// Fails with a hint when the engine is not answering (for `--no-setup`).
pub fn require_running(ws: &Workspace) -> Result<()> {
    let engine = Docker28::new(ws);
    ping(&engine.socket).map(|_| ()).with_context(|| {
        format!(
            "dockerd {DOCKER_MAJOR} does not answer on {}; run `cargo xtask e2e --setup-only`",
            engine.socket.display()
        )
    })
}

/// Loads into this engine the images the tests need that no registry has: the BuildKit
/// image the `buildkit` step built into the system engine (`docker save | docker load`).
/// After a load, one container on each engine shows both still run containers.
pub fn ensure_images(ws: &Workspace) -> Result<String> {
    let engine = Docker28::new(ws);
    require_running(ws)?;
    let wanted = image_identity(&mut Command::new("docker"), BUILDKIT_IMAGE)
        .with_context(|| format!("{BUILDKIT_IMAGE} is not in the system engine"))?;
    if image_identity(&mut engine.docker(), BUILDKIT_IMAGE).as_ref() == Some(&wanted) {
        return Ok(format!("{BUILDKIT_IMAGE} already loaded"));
    }
    copy_image(&engine, BUILDKIT_IMAGE)?;
    if image_identity(&mut engine.docker(), BUILDKIT_IMAGE).as_ref() != Some(&wanted) {
        bail!(
            "`docker load` succeeded but {BUILDKIT_IMAGE} in dockerd {DOCKER_MAJOR} differs from the system engine's"
        );
    }
    for (name, mut docker) in [
        ("the system engine", Command::new("docker")),
        ("dockerd 28", engine.docker()),
    ] {
        output(docker.args([
            "run",
            "--rm",
            "--entrypoint",
            "buildctl",
            BUILDKIT_IMAGE,
            "--version",
        ]))
        .with_context(|| format!("{name} does not run a container of {BUILDKIT_IMAGE}"))?;
    }
    Ok(format!(
        "loaded {BUILDKIT_IMAGE} from the system engine; a container runs on both engines"
    ))
}

/// What tells two copies of an image apart across engines whose image ids differ (the
/// containerd store names images by manifest, 20.10 by config): creation time and labels,
/// which the BuildKit image's version and recipe labels make specific.
fn image_identity(docker: &mut Command, image: &str) -> Option<String> {
    output(docker.args([
        "image",
        "inspect",
        "--format",
        "{{.Created}} {{json .Config.Labels}}",
        image,
    ]))
    .ok()
    .map(|text| text.trim().to_string())
}

/// `docker save IMAGE | docker -H <this engine> load`, without a copy on disk.
fn copy_image(engine: &Docker28, image: &str) -> Result<()> {
    let mut save = Command::new("docker");
    save.args(["save", image]);
    let mut saving = save
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", process::describe(&save)))?;
    let archive = saving.stdout.take().context("docker save has no stdout")?;
    let mut load = engine.docker();
    load.args(["load", "--quiet"]).stdin(archive);
    let loaded = load.output();
    // `load` holds the pipe's read end: with it open, a save whose load ended early would
    // block on a full pipe forever.
    drop(load);
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            let _ = saving.kill();
            let _ = saving.wait();
            return Err(err).context("could not start `docker load`");
        }
    };
    let saved = saving.wait()?;
    // A failed load makes the save fail too (a closed pipe), so the load's reason comes first.
    if !loaded.status.success() {
        bail!(
            "loading {image} into dockerd {DOCKER_MAJOR} failed ({}): {}",
            loaded.status,
            String::from_utf8_lossy(&loaded.stderr).trim()
        );
    }
    anyhow::ensure!(saved.success(), "`docker save {image}` failed ({saved})");
    Ok(())
}

/// Downloads and unpacks the two packages unless dockerd and containerd are unpacked;
/// returns what was fetched, for the step's line.
fn ensure_packages(ws: &Workspace, engine: &Docker28) -> Result<String> {
    let shim = engine.pkgs.join("usr/bin/containerd-shim-runc-v2");
    if [engine.dockerd(), engine.containerd(), shim]
        .iter()
        .all(|binary| binary.is_file())
    {
        return Ok(String::new());
    }
    let debs = download_unstable_debs(
        &engine.dir.join("apt"),
        &[DOCKER_PACKAGE, CONTAINERD_PACKAGE],
    )?;
    // Unpacked beside and moved into place, so an interrupted run never leaves half a tree
    // that a later run would take for a whole one.
    let partial = engine.pkgs.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    for deb in &debs {
        output(Command::new("dpkg").arg("-x").arg(deb).arg(&partial))?;
    }
    if engine.pkgs.exists() {
        std::fs::remove_dir_all(&engine.pkgs)?;
    }
    std::fs::rename(&partial, &engine.pkgs)?;
    let names: Vec<&str> = debs
        .iter()
        .filter_map(|deb| deb.file_name()?.to_str())
        .collect();
    Ok(format!(
        "fetched {} into {}; ",
        names.join(", "),
        ws.display(&engine.pkgs)
    ))
}

/// `dockerd 28.5.2+dfsg4, containerd 2.1.9+unknown`, after checking the major versions.
fn versions(engine: &Docker28) -> Result<String> {
    let dockerd = output(Command::new(engine.dockerd()).arg("--version"))?;
    let dockerd = dockerd_version(&dockerd)
        .with_context(|| format!("unexpected `dockerd --version`: {dockerd}"))?;
    let containerd = output(Command::new(engine.containerd()).arg("--version"))?;
    let containerd = containerd_version(&containerd)
        .with_context(|| format!("unexpected `containerd --version`: {containerd}"))?;
    for (name, version, major, package) in [
        ("dockerd", dockerd, DOCKER_MAJOR, DOCKER_PACKAGE),
        (
            "containerd",
            containerd,
            CONTAINERD_MAJOR,
            CONTAINERD_PACKAGE,
        ),
    ] {
        if version.split('.').next() != Some(major) {
            bail!(
                "{name} in {} is {version}, not {major}.x: Debian unstable's {package} moved on; \
                 pin it or update {DOCKER_PACKAGE}/{CONTAINERD_PACKAGE} in xtask/src/e2e/docker28.rs",
                engine.pkgs.display()
            );
        }
    }
    Ok(format!("dockerd {dockerd}, containerd {containerd}"))
}

/// `Docker version 28.5.2+dfsg4, build 3ef3c07` → `28.5.2+dfsg4`.
fn dockerd_version(text: &str) -> Option<&str> {
    let rest = text.trim().strip_prefix("Docker version ")?;
    Some(rest.split(',').next()?.trim())
}

/// `containerd github.com/containerd/containerd/v2 2.1.9+unknown <revision>` → `2.1.9+unknown`.
fn containerd_version(text: &str) -> Option<&str> {
    text.split_whitespace().nth(2)
}

/// The system engine's bridge as `ip` reports it: its IPv4 addresses, or an error saying it
/// is missing (the state the trap above leaves).
fn system_bridge() -> Result<Vec<String>> {
    bridge_addresses(SYSTEM_BRIDGE)?.with_context(|| {
        format!(
            "{SYSTEM_BRIDGE} (the system engine's default bridge) does not exist, so its \
             containers fail with `could not find bridge {SYSTEM_BRIDGE}`; restart the system \
             dockerd (it makes {SYSTEM_BRIDGE} at start)"
        )
    })
}

/// The IPv4 addresses of interface `name`, or `None` when there is no such interface.
fn bridge_addresses(name: &str) -> Result<Option<Vec<String>>> {
    let mut cmd = Command::new("ip");
    cmd.args(["-o", "-4", "addr", "show", "dev", name]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}`", process::describe(&cmd)))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("does not exist") {
            return Ok(None);
        }
        bail!("`{}` failed: {stderr}", process::describe(&cmd));
    }
    Ok(Some(inet_addresses(&String::from_utf8_lossy(&out.stdout))))
}

/// The `inet ADDR/LEN` words of `ip -o -4 addr` output.
fn inet_addresses(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|word| *word == "inet")?;
            words.next().map(str::to_string)
        })
        .collect()
}

/// Makes the bridge `brix28` with its address, unless it exists; brings it up either way.
fn ensure_bridge() -> Result<()> {
    let addresses = match bridge_addresses(BRIDGE)? {
        Some(addresses) => addresses,
        None => {
            output(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
            Vec::new()
        }
    };
    if addresses.is_empty() {
        output(Command::new("ip").args(["addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE]))?;
    } else if !addresses.iter().any(|a| a == BRIDGE_ADDRESS) {
        bail!(
            "{BRIDGE} exists with addresses {addresses:?}, not {BRIDGE_ADDRESS}; remove it \
             (ip link del {BRIDGE}) and run again"
        );
    }
    output(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    Ok(())
}

/// Starts this engine's containerd unless its socket takes connections; returns the new
/// daemon, if any.
fn start_containerd(engine: &Docker28) -> Result<Option<Child>> {
    if UnixStream::connect(&engine.containerd_socket).is_ok() {
        return Ok(None);
    }
    let dir = engine.dir.join("containerd");
    let config = dir.join("config.toml");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        &config,
        containerd_config(
            &dir.join("root"),
            &dir.join("state"),
            &engine.containerd_socket,
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let log = engine.dir.join("containerd.log");
    let mut cmd = Command::new("env");
    cmd.arg(engine.daemon_path())
        .arg(engine.containerd())
        .arg("--config")
        .arg(&config);
    let mut daemon = process::spawn_detached(&cmd, &log)?;
    process::wait_until(
        "containerd",
        &mut daemon,
        Duration::from_secs(30),
        &log,
        || UnixStream::connect(&engine.containerd_socket).is_ok(),
    )?;
    Ok(Some(daemon))
}

/// containerd's config: its own root, state and socket; the CRI and pod sandbox plugins
/// (Kubernetes only) and NRI (a socket in /var/run) off; the `opt` plugin's folder inside
/// `root`.
fn containerd_config(root: &Path, state: &Path, socket: &Path) -> String {
    // JSON string escapes are valid TOML basic strings.
    let quote = |path: &Path| serde_json::Value::from(path.to_string_lossy()).to_string();
    format!(
        "version = 3\n\
         root = {}\n\
         state = {}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.cri.v1.images\", \
         \"io.containerd.cri.v1.runtime\", \"io.containerd.podsandbox.controller.v1.podsandbox\", \
         \"io.containerd.grpc.v1.sandbox-controllers\", \"io.containerd.nri.v1.nri\"]\n\
         \n\
         [grpc]\n  address = {}\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}\n",
        quote(root),
        quote(state),
        quote(socket),
        quote(&root.join("opt")),
    )
}

/// dockerd's daemon.json: what has no flag of its own below. No `default-address-pools`:
/// with them, a restart deletes the system engine's `docker0` (see the module comment).
fn daemon_json() -> String {
    serde_json::json!({
        "features": { "containerd-snapshotter": true },
        "insecure-registries": [super::REGISTRY_HOST],
    })
    .to_string()
}

/// Starts dockerd 28 on this engine's containerd and waits for `GET /_ping`; returns the API
/// version.
fn start_dockerd(engine: &Docker28) -> Result<String> {
    let pidfile = engine.dir.join("docker.pid");
    clear_stale_pidfile(&pidfile)?;
    let config = engine.dir.join("daemon.json");
    std::fs::write(&config, daemon_json())
        .with_context(|| format!("writing {}", config.display()))?;
    let log = engine.dir.join("dockerd.log");
    let mut cmd = Command::new("env");
    cmd.arg(engine.daemon_path())
        .arg(engine.dockerd())
        .arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(engine.dir.join("data"))
        .arg("--exec-root")
        .arg(engine.dir.join("exec"))
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--host")
        .arg(engine.host())
        .arg("--host")
        .arg(format!("tcp://{TLS_ADDRESS}"))
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(engine.tls_dir.join("ca.pem"))
        .arg("--tlscert")
        .arg(engine.tls_dir.join("server-cert.pem"))
        .arg("--tlskey")
        .arg(engine.tls_dir.join("server-key.pem"))
        .arg("--containerd")
        .arg(&engine.containerd_socket)
        .args(["--containerd-namespace", NAMESPACE])
        .args(["--containerd-plugins-namespace", PLUGINS_NAMESPACE])
        .args(["--cgroup-parent", CGROUP_PARENT])
        .args(["--bridge", BRIDGE])
        // No iptables rules (the system engine owns the host's), and no host sysctls.
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
        ]);
    let mut daemon = process::spawn_detached(&cmd, &log)?;
    let mut api = None;
    process::wait_until(
        "dockerd 28",
        &mut daemon,
        Duration::from_secs(60),
        &log,
        || {
            api = ping(&engine.socket);
            api.is_some()
        },
    )?;
    Ok(api.unwrap_or_default())
}

/// Whether something accepts connections on the TLS listener's address.
fn tls_listening() -> bool {
    std::net::TcpStream::connect_timeout(
        &TLS_ADDRESS.parse().expect("TLS_ADDRESS is an address"),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// Stops the running dockerd 28 (SIGTERM to the pid in its pid file) and waits until it has
/// exited; its containerd keeps running.
fn stop_dockerd(engine: &Docker28) -> Result<()> {
    let pidfile = engine.dir.join("docker.pid");
    let pid = std::fs::read_to_string(&pidfile)
        .with_context(|| format!("dockerd 28 answers but {} is missing", pidfile.display()))?;
    let pid = pid.trim();
    output(Command::new("kill").args(["-TERM", pid]))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(Path::new("/proc").join(pid).join("stat"))
        .is_ok_and(|stat| is_live_dockerd(&stat))
    {
        if std::time::Instant::now() > deadline {
            bail!("dockerd {pid} did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Makes the TLS listener's files unless they exist: a CA of its own, the engine's
/// certificate for `127.0.0.1`/`localhost` and a client certificate, all signed by that CA
/// (EC P-256 keys: quick to make).
fn ensure_tls_files(engine: &Docker28) -> Result<()> {
    let dir = &engine.tls_dir;
    let wanted = [
        "ca.pem",
        "server-cert.pem",
        "server-key.pem",
        "cert.pem",
        "key.pem",
    ];
    if wanted.iter().all(|f| dir.join(f).is_file()) {
        return Ok(());
    }
    super::packages::require_command("openssl")?;
    let partial = dir.with_extension("partial");
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
            &["-subj", "/CN=brix e2e docker CA"],
        ]
        .concat(),
    )?;
    for (name, key, cert, extensions) in [
        (
            "localhost",
            "server-key.pem",
            "server-cert.pem",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "key.pem",
            "cert.pem",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        let csr = format!("{name}.csr");
        let ext = format!("{name}.ext");
        std::fs::write(partial.join(&ext), extensions)?;
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
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
            cert,
            "-days",
            "3650",
            "-extfile",
            &ext,
        ])?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&partial, dir)?;
    Ok(())
}

/// Removes a pid file whose process is not a running dockerd (left by a killed daemon; a
/// recycled pid would make dockerd refuse to start). A live dockerd that holds it but does
/// not answer is an error: starting a second one would fail anyway.
fn clear_stale_pidfile(pidfile: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(pidfile) else {
        return Ok(());
    };
    let pid = text.trim();
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid).join("stat"));
    if !pid.is_empty() && stat.is_ok_and(|stat| is_live_dockerd(&stat)) {
        bail!(
            "dockerd {pid} holds {} but does not answer; stop it (kill {pid}) and run again",
            pidfile.display()
        );
    }
    std::fs::remove_file(pidfile).with_context(|| format!("removing {}", pidfile.display()))
}

/// Whether `/proc/<pid>/stat` describes a dockerd that has not exited (a killed daemon
/// stays a zombie, state `Z`, until it is reaped).
fn is_live_dockerd(stat: &str) -> bool {
    let Some((_, rest)) = stat.split_once(" (") else {
        return false;
    };
    let Some((comm, rest)) = rest.rsplit_once(") ") else {
        return false;
    };
    comm == "dockerd" && !matches!(rest.chars().next(), Some('Z' | 'X') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_binaries_output() {
        assert_eq!(
            dockerd_version("Docker version 28.5.2+dfsg4, build 3ef3c07c\n"),
            Some("28.5.2+dfsg4")
        );
        assert_eq!(dockerd_version("dockerd: unknown"), None);
        assert_eq!(
            containerd_version("containerd github.com/containerd/containerd/v2 2.1.9+unknown \n"),
            Some("2.1.9+unknown")
        );
    }

    #[test]
    fn zombies_and_other_programs_are_not_a_live_dockerd() {
        assert!(is_live_dockerd("7862 (dockerd) S 1 7862 7862 0 -1"));
        assert!(!is_live_dockerd("7862 (dockerd) Z 1 7862 7862 0 -1"));
        assert!(!is_live_dockerd("7862 (sleep) S 1 7862 7862 0 -1"));
        assert!(!is_live_dockerd("garbage"));
    }

    #[test]
    fn inet_addresses_come_from_ip_oneline_output() {
        let text = "5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(inet_addresses(text), vec!["172.17.0.1/16"]);
        assert!(inet_addresses("").is_empty());
    }

    #[test]
    fn containerd_config_keeps_everything_under_its_folder() {
        let config = containerd_config(
            Path::new("/t/root"),
            Path::new("/t/state"),
            Path::new("/t/c.sock"),
        );
        assert!(config.contains("root = \"/t/root\""), "{config}");
        assert!(config.contains("state = \"/t/state\""), "{config}");
        assert!(config.contains("address = \"/t/c.sock\""), "{config}");
        assert!(config.contains("path = \"/t/root/opt\""), "{config}");
        assert!(config.contains("io.containerd.grpc.v1.cri"), "{config}");
    }

    #[test]
    fn daemon_json_enables_the_containerd_store_and_the_local_registry() {
        let json: serde_json::Value =
            serde_json::from_str(&daemon_json()).expect("daemon.json is JSON");
        assert_eq!(json["features"]["containerd-snapshotter"], true);
        assert_eq!(json["insecure-registries"][0], "localhost:5000");
        // With address pools set, dockerd deletes `docker0` when it restarts.
        assert!(json.get("default-address-pools").is_none());
    }
}
