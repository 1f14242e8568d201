//! Issue 6: the registry stops in the middle of a push. The push must fail with one clear
//! error naming the registry (no panic, no stack of causes, no long retry hang), no tag may
//! point at a half-pushed index, and once the registry is back a re-run completes.
//!
//! The test runs its own `docker-registry serve` on a free loopback port with storage in a
//! scratch folder, so it can kill and restart it without disturbing the shared registry on
//! 127.0.0.1:5000 that other tests use at the same time.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brix_e2e::{E2eEnv, index_platforms, layouts, skopeo, unique_name, wait_for};
use brix_exporter::{OciLayout, Registry, RegistryOptions};

/// Size of each platform's single layer: big enough that the push takes a moment on loopback.
const LAYER_SIZE: usize = 60 * 1024 * 1024;

/// A `docker-registry serve` of this test's own, killed when dropped (also on panic).
struct OwnRegistry {
    addr: String,
    config: PathBuf,
    log: PathBuf,
    data: PathBuf,
    child: Option<Child>,
}

impl OwnRegistry {
    /// Writes the configuration (free loopback port, storage under `dir/data`) and starts it.
    fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("finding a free loopback port: {e}"))
            .port();
        let addr = format!("127.0.0.1:{port}");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        let config = dir.join("config.yml");
        let yaml = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: \"{}\"\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            data.display()
        );
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let mut registry = OwnRegistry {
            addr,
            config,
            log: dir.join("registry.log"),
            data,
            child: None,
        };
        registry.restart();
        registry
    }

    /// (Re)starts the registry on the same port and storage and waits until `GET /v2/`
    /// answers 200.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start docker-registry: {e}"));
        self.child = Some(child);
        let addr = self.addr.clone();
        wait_for(
            &format!("docker-registry on {addr}"),
            Duration::from_secs(30),
            || match v2_status(&addr) {
                Some(200) => Ok(()),
                other => Err(format!("GET /v2/ gave {other:?}")),
            },
        );
    }

    /// Kills the registry at once (SIGKILL: no graceful shutdown, as a crash would be).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where the registry keeps `repository`'s uploads, links and manifests.
    fn repository_dir(&self, repository: &str) -> PathBuf {
        self.data
            .join("docker/registry/v2/repositories")
            .join(repository)
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The HTTP status of `GET /v2/` on `addr`, or None when nothing answers.
fn v2_status(addr: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// A two-platform layout with one incompressible `size`-byte layer per platform, new content
/// for every `seed` so nothing is found from an earlier run.
fn big_two_platform_layout(dir: &Path, size: usize, seed: u64) -> OciLayout {
    let layout = OciLayout::create(dir).unwrap_or_else(|e| panic!("{e}"));
    let mut images = Vec::new();
    for (n, arch) in ["amd64", "arm64"].iter().enumerate() {
        let data = layouts::random_bytes(size, seed, n as u64);
        // An uncompressed tar layer: the registry does not look inside, and skopeo copies it
        // as it is.
        let layer = layout
            .write_blob("application/vnd.oci.image.layer.v1.tar", &data)
            .unwrap_or_else(|e| panic!("{e}"));
        images.push(layouts::single_layer_image(
            &layout,
            arch,
            &layer,
            &layer.digest,
        ));
    }
    layouts::set_index(&layout, &images);
    layout
}

/// Whether `dir` exists and holds at least one entry.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[test]
fn registry_stopped_mid_push_gives_one_error_and_a_rerun_completes() {
    let Some(env) = E2eEnv::get() else { return };
    let dir = env.scratch_dir("push-interrupted");
    let mut own = OwnRegistry::start(&dir.join("registry"));
    let layout =
        big_two_platform_layout(&dir.join("layout"), LAYER_SIZE, std::process::id().into());
    let repo = unique_name("push-interrupted");
    let repository = format!("{}/{repo}", own.addr);
    let tagged = format!("{repository}:1");

    // Push in the background; stop the registry as soon as the first upload has started.
    let pushing = {
        let layout = OciLayout::open(layout.root()).unwrap_or_else(|e| panic!("{e}"));
        let repository = repository.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let registry = Registry::new(RegistryOptions::default());
            let result =
                runtime().block_on(registry.push_layout(&layout, &repository, &["1".into()]));
            (result, started.elapsed())
        })
    };
    let uploads = own.repository_dir(&repo).join("_uploads");
    let seen = Instant::now();
    while !has_entries(&uploads)
        && seen.elapsed() < Duration::from_secs(30)
        && !pushing.is_finished()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        has_entries(&uploads),
        "no upload started in {} within 30 s (push finished: {})",
        uploads.display(),
        pushing.is_finished()
    );
    // Let some bytes flow, so the registry dies in the middle of a blob.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !pushing.is_finished(),
        "the push finished before the registry was stopped: make the layers bigger"
    );
    own.kill();

    let (result, took) = pushing
        .join()
        .unwrap_or_else(|_| panic!("the push panicked instead of returning an error"));
    let err = match result {
        Ok(report) => panic!("the push succeeded although the registry was killed: {report:?}"),
        Err(err) => err,
    };
    let message = err.to_string();
    eprintln!("interrupted push failed after {took:?}: {message}");
    assert!(
        !message.contains('\n'),
        "one line, not a stack: {message:?}"
    );
    assert!(
        message.contains(&own.addr),
        "the error names the registry {}: {message}",
        own.addr
    );
    assert!(
        message.contains("not reachable"),
        "the error says the registry is unreachable: {message}"
    );
    assert!(
        std::error::Error::source(&err).is_none(),
        "no chain of causes behind {message:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "retries held the push for {took:?}"
    );

    // Back on the same storage: the tag must not exist (the index is pushed last, the tag
    // after it).
    own.restart();
    let missing = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{tagged}"),
    ]);
    assert!(
        !missing.success,
        "the tag exists after an interrupted push:\n{}",
        missing.stdout
    );

    // A re-run completes.
    let registry = Registry::new(RegistryOptions::default());
    let report = runtime()
        .block_on(registry.push_layout(&layout, &repository, &["1".into()]))
        .unwrap_or_else(|e| panic!("the re-run of the push failed: {e}"));
    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{tagged}"),
    ])
    .ok()
    .stdout;
    let index: serde_json::Value =
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("skopeo inspect --raw: {e}:\n{raw}"));
    assert_eq!(
        index_platforms(&index),
        ["linux/amd64", "linux/arm64"],
        "{index:#}"
    );
    let digest = skopeo([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{tagged}"),
    ])
    .ok()
    .stdout;
    assert_eq!(
        digest.trim(),
        report.digest(),
        "the tag points at the pushed index"
    );
    // Every manifest and blob is there: skopeo copies all of it.
    skopeo([
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{tagged}"),
        &format!("oci:{}", dir.join("pulled").display()),
    ])
    .ok();
    drop(own);
    let _ = std::fs::remove_dir_all(&dir);
}
