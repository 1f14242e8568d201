//! Build-context fidelity: brix's filesync sender against real buildx's, on the same BuildKit
//! daemon. A generated context with the awkward cases (10,000 files in nested folders,
//! relative/absolute/dangling symlinks, a hard link, an empty folder, a `.dockerignore` with a `!`
//! exception, 0755/0600/0700 modes, an old sub-second mtime, names that are not UTF-8, a
//! 20 MB file) is built by both tools with `FROM scratch` + `COPY . /ctx/` to a tar, and the
//! two tars must list exactly the same entries under `ctx/`: names (bytes), types, modes,
//! owners, sizes, link targets, contents and mtimes. Tar mtimes are whole seconds, so a
//! busybox stage also writes `stat.txt` (each entry's nanosecond mtime, mode and owner as
//! the daemon sees it), which must be equal too, keep the old mtime's nanoseconds and show
//! every owner reset to 0:0. A second identical brix build must then be all cached and send
//! under 1 MB of context.
//!
//! Needs `BRIX_E2E_BUILDX=1` (real buildx installed), which `cargo xtask e2e` sets.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use brix_e2e::{E2eEnv, Run, path, run, unique_name};
use sha2::{Digest, Sha256};

/// The registry speaks plain HTTP; the builder reaches it on the host's loopback.
const BUILDKITD_TOML: &str = "[registry.\"localhost:5000\"]\n  http = true\n";
/// `FROM scratch` keeps `ctx/` to exactly what the context sync produced. The tar exporter
/// keeps only whole seconds of mtimes, so a busybox stage also lists every entry's mtime
/// with nanoseconds, owner and mode, as the daemon sees them, into `/stat.txt`.
fn dockerfile(busybox: &str) -> String {
    format!(
        "FROM scratch AS ctx\n\
         COPY . /ctx/\n\
         FROM {busybox} AS stat\n\
         RUN --mount=from=ctx,target=/m cd /m && find ctx -exec stat -c '%n|%y|%a|%u:%g' {{}} + | sort > /stat.txt\n\
         FROM ctx\n\
         COPY --from=stat /stat.txt /stat.txt\n"
    )
}
/// Excludes the `ignored` subtree but re-includes one file in it, and every `*.tmp`.
const DOCKERIGNORE: &str = "ignored\n!ignored/keep.txt\n**/*.tmp\n";
/// Number of small files under `src/` (100 × 10 folders × 10 files).
const SMALL_FILES: usize = 10_000;
/// Size of the one large file.
const LARGE_FILE: usize = 20 * 1024 * 1024;
/// A mtime far from "now", with nanoseconds, so a truncated or rounded mtime shows.
const OLD_MTIME: &str = "2001-01-01 00:00:00.123456789 UTC";
/// The second build may resend metadata but no file contents.
const SECOND_SYNC_LIMIT: u64 = 1_000_000;

/// One brix builder (docker-container driver) and one buildx `remote` builder on the same
/// container; both are removed on drop, also when the test fails.
struct Builders {
    env: E2eEnv,
    brix_store: PathBuf,
    buildx_store: PathBuf,
    brix_name: String,
    buildx_name: String,
}

impl Builders {
    fn brix(&self) -> Command {
        self.env.brix_in(&self.brix_store)
    }

    fn buildx(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("buildx")
            .env("BUILDX_CONFIG", &self.buildx_store)
            .env("DOCKER_HOST", &self.env.docker_host)
            .env_remove("BUILDX_BUILDER")
            .env_remove("BUILDKIT_PROGRESS");
        c
    }
}

impl Drop for Builders {
    fn drop(&mut self) {
        let _ = self
            .buildx()
            .args(["rm", "--force", &self.buildx_name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self
            .brix()
            .args(["rm", "--force", &self.brix_name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn brix_sends_the_context_exactly_as_buildx_does() {
    let Some(env) = E2eEnv::get() else { return };
    assert_eq!(
        std::env::var("BRIX_E2E_BUILDX").as_deref(),
        Ok("1"),
        "real buildx is not installed: run `cargo xtask e2e` without --no-setup once (its \
         buildx step installs it)"
    );
    let brix_store = env.scratch_dir("fidelity-brix-store");
    let buildx_store = env.scratch_dir("fidelity-buildx-store");
    let builders = Builders {
        brix_name: unique_name("fidelity"),
        buildx_name: unique_name("fidelity-buildx"),
        brix_store,
        buildx_store,
        env,
    };
    let b = &builders;
    let config = b.brix_store.join("buildkitd.toml");
    std::fs::write(&config, BUILDKITD_TOML).expect("writing buildkitd.toml");
    run(b.brix().args([
        "create",
        "--name",
        &b.brix_name,
        "--driver",
        "docker-container",
        "--driver-opt",
        "network=host",
        "--config",
        path(&config),
        "--bootstrap",
    ]))
    .ok();
    // brix names a builder's node `<builder>0` and its container `buildx_buildkit_<node>`.
    let container = format!("buildx_buildkit_{}0", b.brix_name);
    brix_e2e::docker(["inspect", "--type", "container", &container]).ok();
    run(b.buildx().args([
        "create",
        "--name",
        &b.buildx_name,
        "--driver",
        "remote",
        &format!("docker-container://{container}"),
    ]))
    .ok();

    let ctx = b.env.scratch_dir("fidelity-ctx");
    make_context(&ctx, &b.env.busybox);
    let out = b.env.scratch_dir("fidelity-out");
    let buildx_tar = out.join("buildx.tar");
    let brix_tar = out.join("brix.tar");

    // --no-cache on both: the COPY's cache key is the content checksum, which leaves mtimes
    // out, so a cached COPY would hand one tool's result to the other.
    let started = std::time::Instant::now();
    let buildx = run(b.buildx().args([
        "build",
        "--builder",
        &b.buildx_name,
        "--progress",
        "rawjson",
        "--no-cache",
        "-o",
        &format!("type=tar,dest={}", path(&buildx_tar)),
        path(&ctx),
    ]))
    .ok();
    eprintln!(
        "buildx build: {:.1}s, context sent: {} bytes",
        started.elapsed().as_secs_f64(),
        context_bytes(&buildx.stderr)
    );
    let started = std::time::Instant::now();
    let first = brix_build(b, &ctx, &brix_tar, true);
    eprintln!(
        "brix build: {:.1}s, context sent: {} bytes",
        started.elapsed().as_secs_f64(),
        context_bytes(&first.stderr)
    );
    // The daemon counts the encoded STAT and DATA packets it receives, so equal counts mean
    // the two senders' packets have the same sizes (a field sent by one and not the other
    // shows here even when the copied files come out the same).
    assert_eq!(
        context_bytes(&first.stderr),
        context_bytes(&buildx.stderr),
        "brix and buildx sent different amounts of context"
    );

    let theirs = listing(&buildx_tar);
    let ours = listing(&brix_tar);
    assert!(
        theirs.len() > SMALL_FILES,
        "buildx's tar has only {} entries under ctx/",
        theirs.len()
    );
    let diff = brix_e2e::describe_differences(&ours, &theirs, show);
    assert!(
        diff.is_empty(),
        "brix's ctx/ differs from buildx's ({} entries vs {}):\n{diff}",
        ours.len(),
        theirs.len()
    );
    check_expected_entries(&ours);

    // The daemon's own view, with nanosecond mtimes and owners.
    let our_stats = stat_lines(&brix_tar);
    let their_stats = stat_lines(&buildx_tar);
    assert_eq!(
        our_stats.len(),
        ours.len() - 1,
        "stat.txt should list every entry under ctx/"
    );
    let stat_diff: Vec<String> = our_stats
        .iter()
        .zip(&their_stats)
        .filter(|(a, b)| a != b)
        .take(60)
        .map(|(a, b)| {
            format!(
                "  brix   {}\n  buildx {}",
                a.escape_ascii(),
                b.escape_ascii()
            )
        })
        .collect();
    assert!(
        stat_diff.is_empty() && our_stats.len() == their_stats.len(),
        "the daemon's stat of ctx/ differs ({} lines vs {}):\n{}",
        our_stats.len(),
        their_stats.len(),
        stat_diff.join("\n")
    );
    let ancient = our_stats
        .iter()
        .find(|l| l.starts_with(b"ctx/old/ancient.txt|"))
        .expect("stat.txt lists ctx/old/ancient.txt");
    assert!(
        ancient
            .windows(b"2001-01-01 00:00:00.123456789".len())
            .any(|w| w == b"2001-01-01 00:00:00.123456789"),
        "the nanoseconds of the old mtime were lost: {}",
        ancient.escape_ascii()
    );
    for line in &our_stats {
        assert!(
            line.ends_with(b"|0:0"),
            "the context's owners must be reset to 0:0: {}",
            line.escape_ascii()
        );
    }
    eprintln!(
        "compared {} entries under ctx/; ctx/old/ancient.txt mtime {}",
        ours.len(),
        ours[&b"ctx/old/ancient.txt"[..]].mtime
    );

    // The same build again: the daemon diffs against brix's previous sync (same shared key),
    // so no file content should travel and COPY is a cache hit.
    let second_tar = out.join("brix-second.tar");
    let second = brix_build(b, &ctx, &second_tar, false);
    let sent = context_bytes(&second.stderr);
    eprintln!("second brix build: context sent: {sent} bytes");
    assert!(
        sent < SECOND_SYNC_LIMIT,
        "the second build sent {sent} bytes of context (limit {SECOND_SYNC_LIMIT}):\n{}",
        second.stderr
    );
    let uncached = uncached_steps(&second.stderr);
    assert!(
        uncached.is_empty(),
        "steps not CACHED on the second build: {uncached:?}\n{}",
        second.stderr
    );
}

/// `brix build --progress rawjson -o type=tar,dest=TAR CTX`.
fn brix_build(b: &Builders, ctx: &Path, tar: &Path, no_cache: bool) -> Run {
    let mut c = b.brix();
    c.args(["build", "--builder", &b.brix_name, "--progress", "rawjson"]);
    if no_cache {
        c.arg("--no-cache");
    }
    c.args(["-o", &format!("type=tar,dest={}", path(tar)), path(ctx)]);
    run(&mut c).ok()
}

/// Writes the test context into `dir`.
fn make_context(dir: &Path, busybox: &str) {
    let write = |rel: &[u8], data: &[u8]| {
        let p = dir.join(OsStr::from_bytes(rel));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("creating a context folder");
        }
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    };
    let chmod = |rel: &str, mode: u32| {
        let p = dir.join(rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
    };
    write(b"Dockerfile", dockerfile(busybox).as_bytes());
    write(b".dockerignore", DOCKERIGNORE.as_bytes());
    for i in 0..SMALL_FILES {
        let rel = format!("src/d{:02}/e{}/f{}.txt", i / 100, (i / 10) % 10, i % 10);
        write(rel.as_bytes(), format!("file {i}\n").as_bytes());
    }
    // Incompressible, deterministic bytes (xorshift), so size and content both matter.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..LARGE_FILE / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    write(b"big/blob.bin", &big);

    std::fs::create_dir_all(dir.join("links")).expect("creating links/");
    for (name, target) in [
        ("rel", "../src/d00/e0/f0.txt"),
        ("abs", "/etc/hostname"),
        ("dangling", "../does/not/exist"),
        ("dir", "../src/d01"),
    ] {
        symlink(target, dir.join("links").join(name)).expect("creating a symlink");
    }
    std::fs::create_dir_all(dir.join("empty")).expect("creating empty/");

    write(b"ignored/drop.txt", b"dropped\n");
    write(b"ignored/keep.txt", b"kept\n");
    write(b"ignored/sub/deep.txt", b"dropped too\n");
    write(b"junk.tmp", b"temporary\n");
    write(b"src/d02/junk.tmp", b"temporary\n");

    write(b"modes/run.sh", b"#!/bin/sh\necho hi\n");
    chmod("modes/run.sh", 0o755);
    write(b"modes/secret.key", b"secret\n");
    chmod("modes/secret.key", 0o600);
    write(b"modes/private/inner.txt", b"inner\n");
    chmod("modes/private", 0o700);

    // A hard link: fsutil sends the second name as a link to the first.
    write(b"hard/a.txt", b"one inode, two names\n");
    std::fs::hard_link(dir.join("hard/a.txt"), dir.join("hard/b.txt"))
        .expect("creating a hard link");

    write(b"caf\xe9", b"latin-1 name\n");
    write(
        b"dir\xff/n\xe9e.txt",
        b"latin-1 name in a non-UTF-8 folder\n",
    );
    write("unicode/naïve ☃.txt".as_bytes(), b"UTF-8 name\n");

    write(b"old/ancient.txt", b"from 2001\n");
    symlink("ancient.txt", dir.join("old/link")).expect("creating old/link");
    // Children first: writing into a folder updates its mtime.
    for rel in ["old/ancient.txt", "old/link", "old"] {
        let status = Command::new("touch")
            .args(["-h", "-d", OLD_MTIME])
            .arg(dir.join(rel))
            .status()
            .expect("running touch");
        assert!(status.success(), "touch -h -d {OLD_MTIME} {rel} failed");
    }
}

/// What the comparison looks at for one tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: String,
    mode: u32,
    owner: (u64, u64),
    size: u64,
    link: Option<Vec<u8>>,
    sha256: Option<String>,
    /// Seconds, with the PAX `mtime` (fractional seconds) when the tar has one.
    mtime: String,
}

/// The entries under `ctx/` of an exported tar, by path bytes (without a trailing `/`).
fn listing(tar_path: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let file = std::fs::File::open(tar_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out = BTreeMap::new();
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("reading {}: {e}", tar_path.display()));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", tar_path.display()));
        let mut name = entry.path_bytes().into_owned();
        if let Some(rest) = name.strip_prefix(b"./") {
            name = rest.to_vec();
        }
        if name.last() == Some(&b'/') {
            name.pop();
        }
        if !(name == b"ctx" || name.starts_with(b"ctx/")) {
            continue;
        }
        let header = entry.header();
        let kind = format!("{:?}", header.entry_type());
        let mode = header.mode().expect("tar entry mode");
        let size = header.size().expect("tar entry size");
        let owner = (
            header.uid().expect("tar entry uid"),
            header.gid().expect("tar entry gid"),
        );
        let mut mtime = header.mtime().expect("tar entry mtime").to_string();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                if ext.key() == Ok("mtime") {
                    mtime = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                }
            }
        }
        let sha256 = if entry.header().entry_type().is_file() {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf).expect("reading a tar entry");
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Some(format!("{:x}", hasher.finalize()))
        } else {
            None
        };
        // `ctx/` itself is the COPY's destination, made by the daemon at copy time (its
        // mtime is the build's "now", not the context root's), so its mtime says nothing
        // about the sender.
        if name == b"ctx" {
            mtime = "(made by COPY)".to_owned();
        }
        out.insert(
            name,
            Entry {
                kind,
                mode,
                owner,
                size,
                link,
                sha256,
                mtime,
            },
        );
    }
    out
}

/// The lines of `/stat.txt` in an exported tar, without the one for `ctx` itself (made by
/// COPY at build time).
fn stat_lines(tar_path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(tar_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("reading {}: {e}", tar_path.display()));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", tar_path.display()));
        let name = entry.path_bytes().into_owned();
        if name != b"stat.txt" && name != b"./stat.txt" {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).expect("reading stat.txt");
        return text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && !l.starts_with(b"ctx|"))
            .map(<[u8]>::to_vec)
            .collect();
    }
    panic!("{} has no stat.txt", tar_path.display());
}

/// A readable line per difference (at most 60), or "" when the listings are equal.
fn show(e: &Entry) -> String {
    let mut s = format!(
        "{} {:o} {}:{} {}B mtime={}",
        e.kind, e.mode, e.owner.0, e.owner.1, e.size, e.mtime
    );
    if let Some(link) = &e.link {
        s.push_str(&format!(" -> {}", link.escape_ascii()));
    }
    if let Some(sha) = &e.sha256 {
        s.push_str(&format!(" sha256:{}", &sha[..12]));
    }
    s
}

/// Guards against a comparison of two equally wrong listings: the awkward entries are there
/// and the ignored ones are not.
fn check_expected_entries(entries: &BTreeMap<Vec<u8>, Entry>) {
    let get = |name: &[u8]| {
        entries
            .get(name)
            .unwrap_or_else(|| panic!("ctx/ has no {}", name.escape_ascii()))
    };
    assert_eq!(
        get(b"ctx/links/abs").link.as_deref(),
        Some(&b"/etc/hostname"[..])
    );
    assert_eq!(
        get(b"ctx/links/dangling").link.as_deref(),
        Some(&b"../does/not/exist"[..])
    );
    assert_eq!(get(b"ctx/modes/run.sh").mode & 0o7777, 0o755);
    assert_eq!(get(b"ctx/modes/secret.key").mode & 0o7777, 0o600);
    assert_eq!(get(b"ctx/big/blob.bin").size, LARGE_FILE as u64);
    assert!(get(b"ctx/old/ancient.txt").mtime.starts_with("978307200"));
    let hard = get(b"ctx/hard/b.txt");
    assert_eq!(
        (hard.kind.as_str(), hard.link.as_deref()),
        ("Link", Some(&b"ctx/hard/a.txt"[..])),
        "the hard link should stay a hard link"
    );
    get(b"ctx/empty");
    get(b"ctx/caf\xe9");
    get(b"ctx/dir\xff/n\xe9e.txt");
    get(b"ctx/ignored/keep.txt");
    for gone in [
        &b"ctx/ignored/drop.txt"[..],
        b"ctx/ignored/sub/deep.txt",
        b"ctx/junk.tmp",
        b"ctx/src/d02/junk.tmp",
    ] {
        assert!(
            !entries.contains_key(gone),
            "{} should have been excluded by .dockerignore",
            gone.escape_ascii()
        );
    }
}

/// The rawjson status lines, parsed.
fn rawjson(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// Bytes reported by the "transferring context:" statuses: the largest `current` of each
/// vertex's status, summed over vertexes (the .dockerignore read and the context itself).
fn context_bytes(stderr: &str) -> u64 {
    let mut per_vertex: BTreeMap<String, u64> = BTreeMap::new();
    for batch in rawjson(stderr) {
        for status in batch["statuses"].as_array().into_iter().flatten() {
            if status["id"].as_str() != Some("transferring context:") {
                continue;
            }
            let vertex = status["vertex"].as_str().unwrap_or_default().to_owned();
            let current = status["current"].as_u64().unwrap_or(0);
            let slot = per_vertex.entry(vertex).or_default();
            *slot = (*slot).max(current);
        }
    }
    per_vertex.values().sum()
}

/// The names of the build steps (`[n/m] ...`) whose final state is not cached.
fn uncached_steps(stderr: &str) -> Vec<String> {
    let mut last: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for batch in rawjson(stderr) {
        for v in batch["vertexes"].as_array().into_iter().flatten() {
            let digest = v["digest"].as_str().unwrap_or_default().to_owned();
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let cached = v["cached"].as_bool().unwrap_or(false);
            let slot = last.entry(digest).or_insert((name, false));
            slot.1 |= cached;
        }
    }
    let steps: Vec<_> = last.values().filter(|(name, _)| is_step(name)).collect();
    assert!(
        !steps.is_empty(),
        "no build steps in the rawjson output:\n{stderr}"
    );
    steps
        .into_iter()
        .filter(|(_, cached)| !cached)
        .map(|(name, _)| name.clone())
        .collect()
}

/// A Dockerfile step's vertex name that can be a cache hit: `[ctx 1/1] COPY . /ctx/`, not
/// `[internal] ...`, and not `FROM`: BuildKit reports an image source whose layers it has
/// as done, never as cached (the flag comes from the daemon, not from the client).
fn is_step(name: &str) -> bool {
    name.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(counter, command)| {
            counter.contains('/')
                && !counter.contains("internal")
                && !command.trim_start().starts_with("FROM ")
        })
}
