//! Issue 17: pushes through real faults. A two-platform layout of 2 × 100 MB incompressible
//! layers is pushed by brix's client-side push (`Registry::push_layout`, what `brix build`
//! runs for the docker driver's own pushes and `cargo xtask bench` measures) through the
//! `fault-proxy` set-up step's proxies to their registry:
//!
//! - nginx answering a random part of the blob and manifest requests with 503, or 429 and
//!   `Retry-After: 1`: the push completes;
//! - toxiproxy cutting each connection (with a TCP reset) after 32 MiB, mid-blob, until the
//!   first cut: the push completes, every blob whole under its digest;
//! - toxiproxy disabled mid-push, as a registry that went down and stays down: the push fails
//!   in one line naming the registry, within bounded retries, no tag exists, and once the
//!   registry is back the same push completes; `brix imagetools create` to the stopped
//!   registry exits 1 with one line naming it, and creates no tag.
//!
//! What is checked is read from the registry itself (its tag list, and every blob fetched
//! and verified by skopeo), never from brix's report alone.

use std::path::Path;
use std::time::{Duration, Instant};

use brix_e2e::{
    E2eEnv, FaultProxies, TcpFaultProxy, index_platforms, layouts, skopeo, unique_name,
};
use brix_exporter::registry::PushReport;
use brix_exporter::{OciLayout, Registry, RegistryOptions};

/// Each platform's layer: the 2 × 100 MB.
const LAYER_SIZE: usize = 100_000_000;
/// Where toxiproxy cuts a connection: well inside a layer.
const CUT_AFTER: u64 = 32 * 1024 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// brix's client-side push of `layout` to `repository` (`host/name`) under tag `1`.
fn push(layout: &OciLayout, repository: &str) -> Result<PushReport, brix_exporter::Error> {
    let registry = Registry::new(RegistryOptions::default());
    runtime().block_on(registry.push_layout(layout, repository, &["1".into()]))
}

/// The same, on a thread of its own, so the test can act while it runs.
fn push_in_background(
    layout: &OciLayout,
    repository: &str,
) -> std::thread::JoinHandle<(Result<PushReport, brix_exporter::Error>, Duration)> {
    let layout = OciLayout::open(layout.root()).unwrap_or_else(|e| panic!("{e}"));
    let repository = repository.to_owned();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = push(&layout, &repository);
        (result, started.elapsed())
    })
}

/// A seed no earlier run used: the layers are new to the registry.
fn seed(salt: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ salt
}

/// Checks, on the registry itself, that `name:1` is the index `digest` with both platforms
/// and that every manifest and blob under it is there and whole: skopeo copies all of it
/// out, verifying each digest. Returns what is wrong, if anything.
fn check_complete(faults: &FaultProxies, name: &str, digest: &str, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let image = format!("docker://{}/{name}:1", faults.upstream);
    let raw = skopeo(["inspect", "--raw", "--tls-verify=false", &image]);
    if !raw.success {
        return vec![format!(
            "{name}:1 is not in the registry: {}",
            raw.stderr.trim()
        )];
    }
    match serde_json::from_str::<serde_json::Value>(&raw.stdout) {
        Ok(index) => {
            let platforms = index_platforms(&index);
            if platforms != ["linux/amd64", "linux/arm64"] {
                problems.push(format!("{name}:1 lists {platforms:?}: {index}"));
            }
        }
        Err(e) => problems.push(format!("{name}:1 is not JSON ({e}): {}", raw.stdout)),
    }
    let tagged = skopeo([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &image,
    ]);
    if tagged.stdout.trim() != digest {
        problems.push(format!(
            "{name}:1 points at {:?}, the push reported {digest}",
            tagged.stdout.trim()
        ));
    }
    let out = scratch.join(format!("pulled-{}", name.replace('/', "-")));
    let copy = skopeo([
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        &image,
        &format!("oci:{}", out.display()),
    ]);
    if !copy.success {
        problems.push(format!(
            "skopeo could not copy every blob of {name}:1 out: {}",
            copy.stderr.trim()
        ));
    }
    let _ = std::fs::remove_dir_all(&out);
    problems
}

/// The error of a failed push in one line, as a user would see it.
fn one_line(err: &brix_exporter::Error) -> String {
    err.to_string()
}

#[test]
fn injected_503s_and_429s_are_retried_and_the_push_completes() {
    let Some(env) = E2eEnv::get() else { return };
    let faults = env.fault_proxies();
    let dir = env.scratch_dir("faults-http");
    let (layout, layers) = layouts::two_platform_layout(&dir.join("layout"), LAYER_SIZE, seed(1));
    // nginx faults a random 15% of the blob and manifest requests; a push makes about twenty
    // of them, so now and then one goes through without any: then push to a new repository,
    // until faults were hit (each push must complete).
    let mut problems = Vec::new();
    let mut injected = 0;
    let mut pushes = 0;
    let mut names = Vec::new();
    while injected == 0 && pushes < 3 {
        pushes += 1;
        let name = unique_name("faults-http");
        names.push(name.clone());
        let repository = format!("{}/{name}", faults.http_faults);
        let started = Instant::now();
        let result = push(&layout, &repository);
        let took = started.elapsed();
        injected += faults.injected_faults(&name);
        match result {
            Ok(report) => {
                eprintln!(
                    "push {pushes} through {} completed in {took:?}; {} injected faults so far",
                    faults.http_faults, injected
                );
                problems.extend(check_complete(&faults, &name, report.digest(), &dir));
            }
            Err(err) => {
                problems.push(format!(
                    "push {pushes} through injected 503/429 ({} faults for {name}) failed after {took:?}: {}",
                    faults.injected_faults(&name),
                    one_line(&err)
                ));
                let tags = faults.tags(&name);
                if !tags.is_empty() {
                    problems.push(format!("the failed push left tags {tags:?} on {name}"));
                }
            }
        }
        if !problems.is_empty() {
            break;
        }
    }
    // After a failed push, requests nginx had already passed on may still reach the
    // registry for a moment.
    std::thread::sleep(Duration::from_secs(1));
    for name in &names {
        faults.forget(name, &layers);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        injected > 0,
        "nginx injected no fault in {pushes} pushes: is the fault-proxy step's configuration in use?"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_connection_reset_mid_blob_is_retried_and_every_blob_arrives_whole() {
    let Some(env) = E2eEnv::get() else { return };
    let faults = env.fault_proxies();
    let dir = env.scratch_dir("faults-reset");
    let (layout, layers) = layouts::two_platform_layout(&dir.join("layout"), LAYER_SIZE, seed(2));
    let proxy = faults.tcp_proxy("faults-reset", &faults.upstream_addr());
    // Every connection is cut after CUT_AFTER bytes from the client; a reset_peer toxic that
    // never fires (toxicity 0) makes toxiproxy close with SO_LINGER 0, so the cut is a TCP
    // reset on both sides.
    proxy.add_toxic(
        "cut",
        "limit_data",
        1.0,
        serde_json::json!({ "bytes": CUT_AFTER }),
    );
    proxy.add_toxic(
        "rst",
        "reset_peer",
        0.0,
        serde_json::json!({ "timeout": 0 }),
    );
    let name = unique_name("faults-reset");
    let pushing = push_in_background(&layout, &format!("{}/{name}", proxy.host()));

    // Until a connection has been cut: one that ended having carried close to CUT_AFTER
    // bytes (no connection can carry more, and none of the push's small requests comes
    // near it). Then the faults stop, so a retry can get through.
    let waited = Instant::now();
    let mut cut = false;
    while !pushing.is_finished() && waited.elapsed() < Duration::from_secs(120) {
        if proxy.upstream_bytes_of_closed_connections() >= CUT_AFTER - 1024 * 1024 {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.remove_toxic("cut");
    proxy.remove_toxic("rst");
    let (result, took) = pushing
        .join()
        .unwrap_or_else(|_| panic!("the push panicked"));

    let mut problems = Vec::new();
    if !cut {
        problems.push(format!(
            "no connection was cut within {:?} (the push {} after {took:?})",
            waited.elapsed(),
            if result.is_ok() {
                "completed"
            } else {
                "failed"
            }
        ));
    }
    match result {
        Ok(report) => {
            eprintln!("push through a reset mid-blob completed in {took:?}");
            problems.extend(check_complete(&faults, &name, report.digest(), &dir));
        }
        Err(err) => {
            problems.push(format!(
                "the push did not recover from a connection reset mid-blob (after {took:?}): {}",
                one_line(&err)
            ));
            let tags = faults.tags(&name);
            if tags.is_empty() {
                // As issue 17 asks after any failed push: the same push again completes.
                match push(&layout, &format!("{}/{name}", proxy.host())) {
                    Ok(report) => {
                        eprintln!("the re-run after the failed push completed");
                        problems.extend(check_complete(&faults, &name, report.digest(), &dir));
                    }
                    Err(err) => problems.push(format!(
                        "the re-run without faults failed too: {}",
                        one_line(&err)
                    )),
                }
            } else {
                problems.push(format!("the failed push left tags {tags:?} on {name}"));
            }
        }
    }
    drop(proxy);
    faults.forget(&name, &layers);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Disables `proxy` once the push to `name` has started sending a blob, and waits for the
/// push to end.
fn stop_mid_push(
    faults: &FaultProxies,
    proxy: &TcpFaultProxy,
    name: &str,
    pushing: std::thread::JoinHandle<(Result<PushReport, brix_exporter::Error>, Duration)>,
) -> (Result<PushReport, brix_exporter::Error>, Duration) {
    let seen = Instant::now();
    while !faults.upload_started(name)
        && seen.elapsed() < Duration::from_secs(60)
        && !pushing.is_finished()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        faults.upload_started(name),
        "no upload of {name} started within 60 s (push finished: {})",
        pushing.is_finished()
    );
    // Some bytes flow, so the registry goes away in the middle of a blob.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !pushing.is_finished(),
        "the push finished before the registry was stopped: slow it down more"
    );
    proxy.set_enabled(false);
    pushing
        .join()
        .unwrap_or_else(|_| panic!("the push panicked instead of returning an error"))
}

#[test]
fn a_registry_that_stays_down_fails_in_one_line_and_leaves_no_tag() {
    let Some(env) = E2eEnv::get() else { return };
    let faults = env.fault_proxies();
    let dir = env.scratch_dir("faults-down");
    let (layout, layers) = layouts::two_platform_layout(&dir.join("layout"), LAYER_SIZE, seed(3));
    let proxy = faults.tcp_proxy("faults-down", &faults.upstream_addr());
    // 20 MB/s per connection: the push takes seconds, and is surely mid-blob when stopped.
    proxy.add_toxic(
        "slow",
        "bandwidth",
        1.0,
        serde_json::json!({ "rate": 20 * 1024 }),
    );
    let name = unique_name("faults-down");
    let repository = format!("{}/{name}", proxy.host());
    let mut problems = Vec::new();

    let (result, took) = stop_mid_push(
        &faults,
        &proxy,
        &name,
        push_in_background(&layout, &repository),
    );
    match result {
        Ok(_) => problems.push("the push succeeded although the registry went down".into()),
        Err(err) => {
            let message = one_line(&err);
            eprintln!("the push to the stopped registry failed after {took:?}: {message}");
            if message.contains('\n') {
                problems.push(format!("not one line: {message:?}"));
            }
            if !message.contains(&proxy.host()) {
                problems.push(format!(
                    "the error does not name {}: {message}",
                    proxy.host()
                ));
            }
            if took > Duration::from_secs(60) {
                problems.push(format!("retries held the failed push for {took:?}"));
            }
        }
    }
    let tags = faults.tags(&name);
    if !tags.is_empty() {
        problems.push(format!("the failed push left tags {tags:?} on {name}"));
    }

    // `brix imagetools create` of what is in the registry into the stopped one: exit 1,
    // one line naming it, no tag.
    let source = unique_name("faults-down-source");
    match push(&layout, &format!("{}/{source}", faults.upstream)) {
        Err(err) => problems.push(format!(
            "pushing the source image directly failed: {}",
            one_line(&err)
        )),
        Ok(_) => {
            let copy = unique_name("faults-down-copy");
            let out = env
                .brix()
                .args([
                    "imagetools",
                    "create",
                    "-t",
                    &format!("{}/{copy}:1", proxy.host()),
                    &format!("{}/{source}:1", faults.upstream),
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running brix: {e}"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            eprintln!(
                "brix imagetools create to the stopped registry: {} {lines:?}",
                out.status
            );
            if out.status.code() != Some(1) {
                problems.push(format!(
                    "brix imagetools create to a stopped registry: {} (expected exit 1)",
                    out.status
                ));
            }
            if lines.len() != 1 || !lines[0].contains(&proxy.host()) {
                problems.push(format!(
                    "brix imagetools create: not one line naming {}: {lines:?}",
                    proxy.host()
                ));
            }
            if !faults.tags(&copy).is_empty() {
                problems.push(format!("brix imagetools create left a tag on {copy}"));
            }
        }
    }
    faults.forget(&source, &layers);

    // Back up: the same push completes.
    proxy.set_enabled(true);
    proxy.remove_toxic("slow");
    match push(&layout, &repository) {
        Ok(report) => problems.extend(check_complete(&faults, &name, report.digest(), &dir)),
        Err(err) => problems.push(format!(
            "the re-run once the registry was back failed: {}",
            one_line(&err)
        )),
    }
    drop(proxy);
    faults.forget(&name, &layers);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
