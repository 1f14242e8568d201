//! Step 16: registries behind TLS with certificates the system does not trust (issue 17), each
//! a distribution registry (Debian's docker-registry) reached by a host name that `/etc/hosts`
//! maps to 127.0.0.1 — BuildKit speaks plain HTTP to loopback *addresses* (`localhost`,
//! `127.0.0.1`) whatever its config says, so only a name makes it use TLS:
//!
//! - `registry.brix.test:5443` serves the certificate Docker's registry documentation tells
//!   people to make: one `openssl req -x509` certificate that is its own CA (`CA:TRUE`),
//!   served as the registry's certificate and trusted by copying it to
//!   `/etc/docker/certs.d/HOST:PORT/ca.crt`.
//! - `mtls.brix.test:5444` serves a certificate signed by a private CA and requires client
//!   certificates signed by that CA (`http.tls.clientcas`).
//! - `untrusted.brix.test:5445` serves a certificate like the first, whose CA is installed
//!   nowhere: trusted only where a test names it (a builder's buildkitd.toml, skopeo's
//!   `--cert-dir`), and otherwise the certificate error tests expect.
//!
//! Everything is made here under `target/e2e/tls-registry/`: each registry's key material
//! (`<name>/pki/`), config, log, pid file and storage, and `certs.d/HOST:PORT/` in Docker's
//! layout (`ca.crt`, and `client.cert`, `client.key` for the mTLS one), which the tests use as
//! skopeo's `--cert-dir`. The first two are also installed as users do, into
//! `/etc/docker/certs.d/HOST:PORT/` (the Docker engines read it too, harmlessly; BuildKit
//! never does: builders trust them through buildkitd.toml).
//!
//! Docker gives a container on the host network (`--driver-opt network=host`, the tests'
//! builders) a copy of the host's `/etc/hosts` made when the container is created, so the
//! names resolve in the builders the tests create after this step.

use super::Workspace;
use super::hosts::{self, ETC_HOSTS, address_of};
use super::process;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One of the TLS registries.
#[derive(Debug)]
pub struct TlsRegistry {
    /// Its folder under `target/e2e/tls-registry/`.
    dir: &'static str,
    /// The host name `/etc/hosts` maps to 127.0.0.1.
    pub name: &'static str,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// A private CA and client certificates, rather than Docker's self-signed certificate.
    mutual: bool,
    /// Whether its CA goes into `/etc/docker/certs.d/HOST:PORT/`.
    installed: bool,
}

/// The registry with the self-signed certificate of Docker's documentation.
pub const SELF_SIGNED: TlsRegistry = TlsRegistry {
    dir: "self-signed",
    name: "registry.brix.test",
    port: 5443,
    mutual: false,
    installed: true,
};
/// The registry with a private CA that requires client certificates.
pub const MUTUAL: TlsRegistry = TlsRegistry {
    dir: "mutual",
    name: "mtls.brix.test",
    port: 5444,
    mutual: true,
    installed: true,
};
/// The registry whose CA is installed nowhere.
pub const UNTRUSTED: TlsRegistry = TlsRegistry {
    dir: "untrusted",
    name: "untrusted.brix.test",
    port: 5445,
    mutual: false,
    installed: false,
};
const REGISTRIES: [&TlsRegistry; 3] = [&SELF_SIGNED, &MUTUAL, &UNTRUSTED];

/// Where Docker (and brix's own registry client) look for a registry's CA and client pair.
const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";
/// Certificates are made again when they expire within this many seconds (30 days): the
/// self-signed ones are valid 365 days, as Docker's documentation makes them.
const RENEW_BEFORE_SECS: u64 = 30 * 24 * 3600;

impl TlsRegistry {
    /// `HOST:PORT`, as image references, buildkitd.toml and `certs.d` name it.
    pub fn host(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn dir(&self, ws: &Workspace) -> PathBuf {
        root(ws).join(self.dir)
    }

    fn pki(&self, ws: &Workspace) -> PathBuf {
        self.dir(ws).join("pki")
    }

    /// Its folder in Docker's `certs.d` layout under `target/e2e/tls-registry/certs.d/`.
    fn cert_dir(&self, ws: &Workspace) -> PathBuf {
        certs_dir(ws).join(self.host())
    }

    /// The files of its `certs.d` folder: the CA, and the client pair of the mTLS one.
    fn client_files(&self) -> &'static [&'static str] {
        if self.mutual {
            &["ca.crt", "client.cert", "client.key"]
        } else {
            &["ca.crt"]
        }
    }

    /// The certificate and key the registry serves, in its `pki/`.
    fn server_pair(&self) -> (&'static str, &'static str) {
        if self.mutual {
            ("server.crt", "server.key")
        } else {
            ("domain.crt", "domain.key")
        }
    }

    /// Whether `GET /v2/` answers 200 over TLS verified against its CA for its host name
    /// (with the client pair for the mTLS one), as a client with its `certs.d` folder sees it.
    fn answers(&self, ws: &Workspace) -> bool {
        let dir = self.cert_dir(ws);
        let mut probe = Command::new("timeout");
        probe
            .args([
                "10",
                "openssl",
                "s_client",
                "-quiet",
                "-verify_return_error",
            ])
            .args(["-connect", &self.addr(), "-servername", self.name])
            .args(["-verify_hostname", self.name, "-CAfile"])
            .arg(dir.join("ca.crt"));
        if self.mutual {
            probe
                .arg("-cert")
                .arg(dir.join("client.cert"))
                .arg("-key")
                .arg(dir.join("client.key"));
        }
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host());
        http_status_of(&mut probe, &request) == Some(200)
    }
}

/// `target/e2e/tls-registry`.
fn root(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("tls-registry")
}

/// `target/e2e/tls-registry/certs.d`: one `HOST:PORT/` folder per registry in Docker's layout.
pub fn certs_dir(ws: &Workspace) -> PathBuf {
    root(ws).join("certs.d")
}

/// Whether the host names resolve and every registry answers over verified TLS.
pub fn running(ws: &Workspace) -> bool {
    let hosts = std::fs::read_to_string(ETC_HOSTS).unwrap_or_default();
    missing_names(&hosts, &host_names()).is_empty()
        && REGISTRIES.iter().all(|registry| registry.answers(ws))
}

/// The variables the tests read (`tests/src/lib.rs`, `TlsRegistries`).
pub fn test_env(ws: &Workspace) -> Vec<(&'static str, String)> {
    vec![
        (
            "BRIX_E2E_TLS_CERTS",
            certs_dir(ws).to_string_lossy().into_owned(),
        ),
        ("BRIX_E2E_TLS_SELF_SIGNED", SELF_SIGNED.host()),
        ("BRIX_E2E_TLS_MUTUAL", MUTUAL.host()),
        ("BRIX_E2E_TLS_UNTRUSTED", UNTRUSTED.host()),
    ]
}

fn host_names() -> Vec<&'static str> {
    REGISTRIES.iter().map(|registry| registry.name).collect()
}

/// Maps the host names, makes what key material is missing or about to expire, installs the
/// trusted CAs, and starts whichever registry does not answer.
pub fn ensure(ws: &Workspace) -> Result<String> {
    super::packages::require_command("docker-registry")?;
    super::packages::require_command("openssl")?;
    let mut done = Vec::new();
    if let Some(added) = ensure_hosts()? {
        done.push(added);
    }
    let mut made = Vec::new();
    let mut started = Vec::new();
    for registry in REGISTRIES {
        if ensure_material(ws, registry)? {
            made.push(registry.name);
        }
        ensure_installed(ws, registry)?;
        if !registry.answers(ws) {
            start(ws, registry)?;
            started.push(registry.host());
        }
    }
    if !made.is_empty() {
        done.push(format!("made certificates for {}", made.join(", ")));
    }
    let hosts: Vec<String> = REGISTRIES.iter().map(|r| r.host()).collect();
    if started.is_empty() {
        done.push(format!("already running: {}", hosts.join(", ")));
    } else {
        done.push(format!("started {}", started.join(", ")));
    }
    Ok(format!(
        "{}; CAs of {} and {} in {DOCKER_CERTS_D}, {} nowhere; files in {}",
        done.join("; "),
        SELF_SIGNED.host(),
        MUTUAL.host(),
        UNTRUSTED.host(),
        ws.display(&root(ws))
    ))
}

/// Appends one line mapping the host names that `/etc/hosts` lacks to 127.0.0.1; says what
/// it added, or nothing. Fails when a name is mapped to another address.
fn ensure_hosts() -> Result<Option<String>> {
    let text =
        std::fs::read_to_string(ETC_HOSTS).with_context(|| format!("reading {ETC_HOSTS}"))?;
    let names = host_names();
    for name in &names {
        if let Some(address) = address_of(&text, name)
            && address != "127.0.0.1"
        {
            bail!(
                "{ETC_HOSTS} maps {name} to {address}; the e2e TLS registries need it on 127.0.0.1: remove that line"
            );
        }
    }
    let missing = missing_names(&text, &names);
    if missing.is_empty() {
        return Ok(None);
    }
    hosts::append_line(&text, &hosts_line(&missing))?;
    Ok(Some(format!(
        "mapped {} to 127.0.0.1 in {ETC_HOSTS}",
        missing.join(", ")
    )))
}

/// The names `hosts` does not map at all.
fn missing_names<'n>(hosts: &str, names: &[&'n str]) -> Vec<&'n str> {
    names
        .iter()
        .copied()
        .filter(|name| address_of(hosts, name).is_none())
        .collect()
}

fn hosts_line(names: &[&str]) -> String {
    format!(
        "127.0.0.1 {} # cargo xtask e2e: the TLS registries (target/e2e/tls-registry)\n",
        names.join(" ")
    )
}

/// Makes the registry's key material unless all of it is there and valid for 30 more days,
/// then lays out its `certs.d` folder. Returns whether it made new material.
fn ensure_material(ws: &Workspace, registry: &TlsRegistry) -> Result<bool> {
    let pki = registry.pki(ws);
    let (server_cert, server_key) = registry.server_pair();
    let files: Vec<&str> = [server_cert, server_key]
        .into_iter()
        .chain(registry.client_files().iter().copied())
        .collect();
    let fresh = files.iter().all(|file| pki.join(file).is_file())
        && files
            .iter()
            .filter(|file| !file.ends_with(".key"))
            .all(|cert| valid_for_a_while(&pki.join(cert)));
    let made = !fresh;
    if made {
        let partial = pki.with_extension("partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial)
                .with_context(|| format!("removing {}", partial.display()))?;
        }
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        if registry.mutual {
            make_private_ca(&partial, registry.name)?;
        } else {
            make_self_signed(&partial, registry.name)?;
        }
        if pki.exists() {
            std::fs::remove_dir_all(&pki).with_context(|| format!("removing {}", pki.display()))?;
        }
        std::fs::rename(&partial, &pki)
            .with_context(|| format!("renaming {} to {}", partial.display(), pki.display()))?;
    }
    sync_files(&pki, &registry.cert_dir(ws), registry.client_files())?;
    Ok(made)
}

fn valid_for_a_while(cert: &Path) -> bool {
    process::succeeds(
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-checkend",
                &RENEW_BEFORE_SECS.to_string(),
            ])
            .arg("-in")
            .arg(cert),
    )
}

/// Docker's documentation's certificate, made as it says (`openssl req -newkey rsa:4096
/// -nodes -sha256 -keyout domain.key -addext "subjectAltName = DNS:HOST" -x509 -days 365
/// -out domain.crt`, with the subject it prompts for given as `-subj`): self-signed, so
/// `CA:TRUE`, and served as the registry's own certificate. Its `ca.crt` is the same file.
fn make_self_signed(dir: &Path, name: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-sha256",
            "-keyout",
            "domain.key",
            "-addext",
            &format!("subjectAltName = DNS:{name}"),
            "-x509",
            "-days",
            "365",
            "-out",
            "domain.crt",
            "-subj",
            &format!("/CN={name}"),
        ],
    )?;
    std::fs::copy(dir.join("domain.crt"), dir.join("ca.crt"))
        .with_context(|| format!("copying domain.crt to ca.crt in {}", dir.display()))?;
    Ok(())
}

/// A private CA (`ca.crt`), a server certificate for `name` it signs (`server.crt`), and a
/// client certificate it signs (`client.cert`, `client.key`, Docker's names for the pair).
fn make_private_ca(dir: &Path, name: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=brix e2e private CA",
        ],
    )?;
    let leaves = [
        (
            "server",
            "server.key",
            "server.crt",
            name,
            format!(
                "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:{name}\n"
            ),
        ),
        (
            "client",
            "client.key",
            "client.cert",
            "brix-e2e-client",
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n"
                .to_string(),
        ),
    ];
    for (serial, (what, key, cert, subject, extensions)) in (2u32..).zip(leaves) {
        let ext = format!("{what}.ext");
        std::fs::write(dir.join(&ext), extensions)
            .with_context(|| format!("writing {}", dir.join(&ext).display()))?;
        let csr = format!("{what}.csr");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-sha256",
                "-keyout",
                key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={subject}"),
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-sha256",
                "-days",
                "3650",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial.to_string(),
                "-extfile",
                &ext,
                "-out",
                cert,
            ],
        )?;
    }
    Ok(())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    process::output(Command::new("openssl").current_dir(dir).args(args)).map(drop)
}

/// Copies `files` from `from` to `to` where they differ (keys stay private to root).
fn sync_files(from: &Path, to: &Path, files: &[&str]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for file in files {
        let source = from.join(file);
        let data =
            std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        let target = to.join(file);
        if std::fs::read(&target).ok().as_deref() == Some(&data[..]) {
            continue;
        }
        let partial = target.with_extension("partial");
        std::fs::write(&partial, &data)
            .with_context(|| format!("writing {}", partial.display()))?;
        let mode = if file.ends_with(".key") { 0o600 } else { 0o644 };
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&partial, &target)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// Puts the registry's `certs.d` files into `/etc/docker/certs.d/HOST:PORT/` when its CA is
/// to be trusted there, and takes that folder away when it is not (the negative case needs
/// a CA that is installed nowhere).
fn ensure_installed(ws: &Workspace, registry: &TlsRegistry) -> Result<()> {
    let system = Path::new(DOCKER_CERTS_D).join(registry.host());
    if registry.installed {
        sync_files(&registry.cert_dir(ws), &system, registry.client_files())
    } else if system.exists() {
        std::fs::remove_dir_all(&system).with_context(|| format!("removing {}", system.display()))
    } else {
        Ok(())
    }
}

/// Starts the registry, after stopping the one this step started before (it serves material
/// that was made again, or it stopped answering); fails when something else holds the port.
fn start(ws: &Workspace, registry: &TlsRegistry) -> Result<()> {
    let dir = registry.dir(ws);
    let config = dir.join("registry.yml");
    let pid_file = dir.join("registry.pid");
    stop_own(&pid_file, &config)?;
    if TcpStream::connect_timeout(
        &registry.addr().parse().context("a socket address")?,
        Duration::from_secs(2),
    )
    .is_ok()
    {
        bail!(
            "something listens on {} but does not answer as {} with this checkout's certificates (another checkout's e2e TLS registry, or another server); stop it and run again",
            registry.addr(),
            registry.host()
        );
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let pki = registry.pki(ws);
    let (cert, key) = registry.server_pair();
    let client_ca = registry.mutual.then(|| pki.join("ca.crt"));
    std::fs::write(
        &config,
        registry_config(
            registry,
            &data,
            &pki.join(cert),
            &pki.join(key),
            client_ca.as_deref(),
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let daemon = super::registry::serve(
        &format!("the TLS registry {}", registry.host()),
        &config,
        &dir.join("registry.log"),
        || registry.answers(ws),
    )?;
    std::fs::write(&pid_file, daemon.id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))
}

/// Stops the registry whose pid `pid_file` holds when that process is still a
/// `docker-registry` serving `config` (a pid can be reused), and waits until it has exited.
fn stop_own(pid_file: &Path, config: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return Ok(());
    };
    let pid = text.trim();
    let proc_dir = Path::new("/proc").join(pid);
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let ours = args
        .first()
        .is_some_and(|program| program.ends_with("docker-registry"))
        && args.iter().any(|arg| Path::new(arg) == config);
    if pid.is_empty() || !ours {
        return Ok(());
    }
    process::output(Command::new("kill").args(["-TERM", pid]))?;
    for _ in 0..100 {
        let exited = std::fs::read_to_string(proc_dir.join("stat"))
            .map(|stat| stat.contains(") Z "))
            .unwrap_or(true);
        if exited {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "docker-registry {pid} (from {}) did not exit within 10 s of SIGTERM",
        pid_file.display()
    )
}

/// The registry's configuration: loopback only, its own storage, TLS with its certificate,
/// and for the mTLS one the CA client certificates must be signed by.
fn registry_config(
    registry: &TlsRegistry,
    data: &Path,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> String {
    let quote = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: tls-registry-{}\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {}\n  tls:\n    certificate: {}\n    key: {}\n",
        registry.dir,
        quote(data),
        registry.addr(),
        quote(cert),
        quote(key)
    );
    if let Some(ca) = client_ca {
        yaml.push_str(&format!("    clientcas:\n      - {}\n", quote(ca)));
    }
    yaml
}

/// Runs `probe` with `request` on its stdin and returns the HTTP status on the first line of
/// its output, or None when it fails or prints no status line.
fn http_status_of(probe: &mut Command, request: &str) -> Option<u16> {
    let mut child = probe
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A failed write (the handshake was refused and the probe exited) shows in its status.
    let _ = child.stdin.take()?.write_all(request.as_bytes());
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    out.status.success().then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_are_read_as_resolvers_read_them() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 registry.brix.test\n\
                     127.0.0.1 vm registry.brix.test # e2e\n10.0.0.2 MTLS.brix.test\n";
        assert_eq!(address_of(hosts, "registry.brix.test"), Some("127.0.0.1"));
        assert_eq!(address_of(hosts, "mtls.brix.test"), Some("10.0.0.2"));
        assert_eq!(address_of(hosts, "untrusted.brix.test"), None);
        assert_eq!(missing_names(hosts, &host_names()), ["untrusted.brix.test"]);
    }

    #[test]
    fn the_added_line_maps_every_missing_name_once() {
        let line = hosts_line(&["a.brix.test", "b.brix.test"]);
        assert!(
            line.starts_with("127.0.0.1 a.brix.test b.brix.test #"),
            "{line}"
        );
        assert!(missing_names(&line, &["a.brix.test", "b.brix.test"]).is_empty());
    }

    #[test]
    fn only_the_mutual_registry_asks_for_client_certificates() {
        let config = registry_config(
            &MUTUAL,
            Path::new("/d"),
            Path::new("/s.crt"),
            Path::new("/s.key"),
            Some(Path::new("/ca.crt")),
        );
        assert!(config.contains("addr: 127.0.0.1:5444"), "{config}");
        assert!(
            config.contains("tls:\n    certificate: \"/s.crt\"\n    key: \"/s.key\"\n"),
            "{config}"
        );
        assert!(
            config.contains("clientcas:\n      - \"/ca.crt\""),
            "{config}"
        );
        let config = registry_config(
            &SELF_SIGNED,
            Path::new("/d"),
            Path::new("/c"),
            Path::new("/k"),
            None,
        );
        assert!(!config.contains("clientcas"), "{config}");
    }

    #[test]
    fn the_registries_use_distinct_free_ports_and_names() {
        let taken = [
            5000, 5001, 5002, 5003, 5004, 5010, 5012, 9000, 8418, 8474, 2222, 2376,
        ];
        let mut ports: Vec<u16> = REGISTRIES.iter().map(|r| r.port).collect();
        assert!(ports.iter().all(|p| !taken.contains(p)));
        ports.dedup();
        assert_eq!(ports.len(), REGISTRIES.len());
        assert!(REGISTRIES.iter().all(|r| r.name.ends_with(".brix.test")));
    }
}
