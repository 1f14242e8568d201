//! Multi-platform output fidelity: brix's `local` and `tar` outputs against real buildx's, on
//! the same builder. BuildKit writes buildx's from one solve through fsutil's `SubDirFS`
//! (a `linux_amd64/` folder per platform, absolute symlink targets moved under it, hard
//! links inside it, the destination created 0700); brix solves each platform on its own and
//! lays the folders out itself. An awkward context (absolute, relative and dangling symlinks,
//! links to `/` and with `//`, `.` and `..`, a non-UTF-8 file name and symlink, a hard link,
//! 0600/0755/04755 files, 0700/0750/01777/02755 folders, names that need the USTAR prefix or
//! PAX) is `COPY`d into `FROM scratch` and built for linux/arm64,linux/amd64 by both tools:
//!
//! - `-o type=local`: the trees must be identical (names as bytes, types, modes, sizes, link
//!   targets, contents, hard-link groups, mtimes to the nanosecond) and both destinations
//!   0700; again with `SOURCE_DATE_EPOCH`, which also dates the platform folders;
//! - `-o type=tar`: the two tarballs must be the same bytes.
//!
//! One target differs on purpose: BuildKit joins an absolute target to the folder before
//! cleaning it, so `/../../etc/passwd` comes out as `/etc/passwd`, outside the platform's
//! tree; brix keeps it inside (`/linux_amd64/etc/passwd`). A second, one-link context checks
//! exactly that.
//!
//! Needs `BRIX_E2E_BUILDX=1` (real buildx installed), which `cargo xtask e2e` sets.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use brix_e2e::{E2eEnv, path, run, unique_name};
use sha2::{Digest, Sha256};

/// Both tools build for these, in this order; BuildKit writes the folders sorted by name.
const PLATFORMS: &str = "linux/arm64,linux/amd64";
const FOLDERS: [&str; 2] = ["linux_amd64", "linux_arm64"];
const DOCKERFILE: &str = "FROM scratch\nCOPY . /\n";

/// One builder, made by brix and used by both tools through the shared store; removed on
/// drop, also when the test fails.
struct Builder {
    env: E2eEnv,
    store: PathBuf,
    name: String,
}

impl Builder {
    fn brix(&self) -> Command {
        let mut c = self.env.brix_in(&self.store);
        c.env_remove("SOURCE_DATE_EPOCH");
        c
    }

    fn buildx(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("buildx")
            .env("BUILDX_CONFIG", &self.store)
            .env("DOCKER_HOST", &self.env.docker_host)
            .env_remove("BUILDX_BUILDER")
            .env_remove("BUILDKIT_PROGRESS")
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// `build --platform PLATFORMS -f <dockerfile> -o OUTPUT CTX` with brix or buildx.
    fn build(&self, mut tool: Command, ctx: &Path, dockerfile: &Path, output: &str) {
        tool.args(["build", "--builder", &self.name, "--progress", "plain"])
            .args(["--platform", PLATFORMS, "-f", path(dockerfile)])
            .args(["-o", output, path(ctx)]);
        run(&mut tool).ok();
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let _ = self
            .brix()
            .args(["rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn multi_platform_local_and_tar_outputs_match_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    assert_eq!(
        std::env::var("BRIX_E2E_BUILDX").as_deref(),
        Ok("1"),
        "real buildx is not installed: run `cargo xtask e2e` without --no-setup once (its \
         buildx step installs it)"
    );
    let store = env.scratch_dir("output-fidelity-store");
    let name = unique_name("output-fidelity");
    env.create_builder(&store, &name, "");
    let b = Builder { env, store, name };
    // brix boots the node (buildx cannot start a privileged container on every engine;
    // brix falls back to a capability set); buildx then builds on the running node.
    run(b.brix().args(["inspect", "--bootstrap", &b.name])).ok();

    let work = b.env.scratch_dir("output-fidelity");
    let ctx = work.join("ctx");
    make_context(&ctx);
    let dockerfile = work.join("Dockerfile");
    std::fs::write(&dockerfile, DOCKERFILE).expect("writing the Dockerfile");

    // local: the destinations do not exist yet, so each tool creates its own.
    let out = work.join("out");
    std::fs::create_dir_all(&out).expect("creating out/");
    for epoch in [None, Some("1000")] {
        let suffix = epoch.map_or(String::new(), |e| format!("-epoch{e}"));
        let theirs_dir = out.join(format!("buildx-local{suffix}"));
        let ours_dir = out.join(format!("brix-local{suffix}"));
        let mut buildx = b.buildx();
        let mut brix = b.brix();
        if let Some(e) = epoch {
            buildx.env("SOURCE_DATE_EPOCH", e);
            brix.env("SOURCE_DATE_EPOCH", e);
        }
        let dest = |d: &Path| format!("type=local,dest={}", path(d));
        b.build(buildx, &ctx, &dockerfile, &dest(&theirs_dir));
        b.build(brix, &ctx, &dockerfile, &dest(&ours_dir));

        let theirs = tree_listing(&theirs_dir);
        let ours = tree_listing(&ours_dir);
        check_expected_entries(&theirs);
        let diff = brix_e2e::describe_differences(&ours, &theirs, show);
        assert!(
            diff.is_empty(),
            "brix's local output {} differs from buildx's {} ({} entries vs {}):\n{diff}",
            ours_dir.display(),
            theirs_dir.display(),
            ours.len(),
            theirs.len()
        );
        let root_mode = |d: &Path| std::fs::metadata(d).expect("stat").mode() & 0o7777;
        assert_eq!(
            (root_mode(&ours_dir), root_mode(&theirs_dir)),
            (0o700, 0o700),
            "the destination folders' own modes (brix, buildx)"
        );
        if let Some(e) = epoch {
            let secs: i64 = e.parse().expect("epoch");
            for folder in FOLDERS {
                assert_eq!(ours[folder.as_bytes()].mtime, (secs, 0), "{folder}");
            }
        }
        eprintln!(
            "local{suffix}: {} entries identical, destinations 0700",
            ours.len()
        );
    }

    // tar: the same bytes.
    let theirs_tar = out.join("buildx.tar");
    let ours_tar = out.join("brix.tar");
    let tar = |t: &Path| format!("type=tar,dest={}", path(t));
    b.build(b.buildx(), &ctx, &dockerfile, &tar(&theirs_tar));
    b.build(b.brix(), &ctx, &dockerfile, &tar(&ours_tar));
    let theirs = std::fs::read(&theirs_tar).expect("reading buildx's tar");
    let ours = std::fs::read(&ours_tar).expect("reading brix's tar");
    if ours != theirs {
        let (a, b) = (tar_listing(&ours_tar), tar_listing(&theirs_tar));
        let first = ours.iter().zip(&theirs).position(|(x, y)| x != y);
        panic!(
            "brix's tar ({} bytes) differs from buildx's ({} bytes), first at byte {first:?}; \
             entries:\n{}",
            ours.len(),
            theirs.len(),
            brix_e2e::describe_differences(&a, &b, show)
        );
    }
    let names = tar_listing(&ours_tar);
    for folder in FOLDERS {
        let abs = &names[format!("{folder}/abs").as_bytes()];
        assert_eq!(
            abs.link.as_deref(),
            Some(format!("/{folder}/etc/hostname").as_bytes()),
            "{folder}/abs"
        );
    }
    eprintln!("tar: {} bytes identical", ours.len());

    // The one deliberate difference: a target that climbs above its root.
    let escape = work.join("escape");
    std::fs::create_dir_all(&escape).expect("creating escape/");
    symlink("/../../etc/passwd", escape.join("dotdot")).expect("creating escape/dotdot");
    let theirs_dir = out.join("buildx-escape");
    let ours_dir = out.join("brix-escape");
    let dest = |d: &Path| format!("type=local,dest={}", path(d));
    b.build(b.buildx(), &escape, &dockerfile, &dest(&theirs_dir));
    b.build(b.brix(), &escape, &dockerfile, &dest(&ours_dir));
    for folder in FOLDERS {
        let target = |d: &Path| {
            std::fs::read_link(d.join(folder).join("dotdot"))
                .unwrap_or_else(|e| panic!("readlink in {}: {e}", d.display()))
        };
        assert_eq!(
            target(&ours_dir),
            Path::new(&format!("/{folder}/etc/passwd")),
            "brix keeps `..` inside the platform's folder"
        );
        eprintln!(
            "{folder}/dotdot -> brix {}, buildx {} (BuildKit's path.Join)",
            target(&ours_dir).display(),
            target(&theirs_dir).display()
        );
    }
}

/// Writes the awkward context into `dir`.
fn make_context(dir: &Path) {
    let write = |rel: &[u8], data: &[u8], mode: u32| {
        let p = dir.join(OsStr::from_bytes(rel));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("creating a context folder");
        }
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        chmod(&p, mode);
    };
    let mkdir = |rel: &str, mode: u32| {
        let p = dir.join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        chmod(&p, mode);
    };
    let link = |target: &[u8], rel: &[u8]| {
        let p = dir.join(OsStr::from_bytes(rel));
        symlink(OsStr::from_bytes(target), &p)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
    };
    std::fs::create_dir_all(dir).expect("creating the context");
    write(b"file", b"hello\n", 0o644);
    std::fs::hard_link(dir.join("file"), dir.join("hard")).expect("creating a hard link");
    write(b"priv", b"secret", 0o600);
    write(b"exe", b"#!/bin/sh\n", 0o755);
    write(b"suid", b"s", 0o4755);
    write(b"sub/deep/f", b"x", 0o644);
    mkdir("sub", 0o750);
    mkdir("private", 0o700);
    mkdir("tmp", 0o1777);
    mkdir("sgid", 0o2755);
    mkdir("empty", 0o755);
    write(b"bad\xff\xfename", b"", 0o644);
    let long = "n".repeat(95);
    write(format!("longdir/{long}").as_bytes(), b"", 0o644);
    // 99 bytes: USTAR at the root; under `linux_amd64/` only with the prefix field.
    write("m".repeat(99).as_bytes(), b"", 0o644);
    // 120 bytes in one component: PAX either way.
    write("w".repeat(120).as_bytes(), b"", 0o644);
    link(b"/etc/hostname", b"abs");
    link(b"sub/deep/f", b"rel");
    link(b"/nonexistent/x", b"dangling");
    link(b"nope", b"dangling_rel");
    link(b"/", b"root");
    link(b"/etc/", b"trail");
    link(b"//etc//./x/../y", b"messy");
    link(b"../../..", b"up");
    link(b"/tgt\xff", b"lnk\xfe");
    link(format!("/{long}/{long}").as_bytes(), b"longlink");
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// What the comparison looks at for one entry of a tree or a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    size: u64,
    link: Option<Vec<u8>>,
    sha256: Option<String>,
    /// Seconds and nanoseconds.
    mtime: (i64, i64),
    /// For a file with more than one name: the first of its names (in path order).
    hard_link_group: Option<Vec<u8>>,
}

/// Every entry under `root` (not `root` itself), by path bytes relative to it.
fn tree_listing(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let p = entry.expect("a folder entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            if meta.is_dir() {
                stack.push(p.clone());
            }
            found.push((p, meta));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, meta) in found {
        let rel = p
            .strip_prefix(root)
            .expect("below the root")
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = meta.file_type();
        let (kind, link, sha256) = if ft.is_symlink() {
            let target = std::fs::read_link(&p).expect("readlink");
            (
                "symlink",
                Some(target.as_os_str().as_bytes().to_vec()),
                None,
            )
        } else if ft.is_dir() {
            ("dir", None, None)
        } else {
            let data = std::fs::read(&p).expect("read");
            ("file", None, Some(format!("{:x}", Sha256::digest(&data))))
        };
        let hard_link_group = (ft.is_file() && meta.nlink() > 1).then(|| {
            inodes
                .entry(meta.ino())
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                size: if ft.is_dir() { 0 } else { meta.len() },
                link,
                sha256,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                hard_link_group,
            },
        );
    }
    out
}

/// Every entry of a tarball, by name (without a trailing `/`), for messages.
fn tar_listing(tar_path: &Path) -> BTreeMap<Vec<u8>, Entry> {
    use std::io::Read;
    let file = std::fs::File::open(tar_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("reading a tar") {
        let mut entry = entry.expect("reading a tar entry");
        let mut name = entry.path_bytes().into_owned();
        if name.last() == Some(&b'/') {
            name.pop();
        }
        let header = entry.header().clone();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hard link",
            _ => "file",
        };
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("reading a tar entry");
        out.insert(
            name,
            Entry {
                kind,
                mode: header.mode().expect("mode"),
                size: header.size().expect("size"),
                hard_link_group: None,
                sha256: (kind == "file").then(|| format!("{:x}", Sha256::digest(&data))),
                link,
                mtime: (
                    i64::try_from(header.mtime().expect("mtime")).expect("mtime"),
                    0,
                ),
            },
        );
    }
    out
}

/// Guards against a comparison of two equally wrong listings.
fn check_expected_entries(entries: &BTreeMap<Vec<u8>, Entry>) {
    for folder in FOLDERS {
        let get = |rel: &[u8]| {
            let name = [folder.as_bytes(), b"/", rel].concat();
            entries
                .get(&name)
                .unwrap_or_else(|| panic!("buildx's output has no {}", name.escape_ascii()))
        };
        assert_eq!(entries[folder.as_bytes()].mode, 0o755, "{folder}");
        for (rel, target) in [
            (&b"abs"[..], format!("/{folder}/etc/hostname")),
            (b"dangling", format!("/{folder}/nonexistent/x")),
            (b"root", format!("/{folder}")),
            (b"trail", format!("/{folder}/etc")),
            (b"messy", format!("/{folder}/etc/y")),
            (b"rel", "sub/deep/f".to_owned()),
            (b"dangling_rel", "nope".to_owned()),
            (b"up", "../../..".to_owned()),
        ] {
            assert_eq!(
                get(rel).link.as_deref(),
                Some(target.as_bytes()),
                "{folder}/{}",
                rel.escape_ascii()
            );
        }
        // A non-UTF-8 name and target, moved under the folder.
        assert_eq!(
            get(b"lnk\xfe").link.as_deref(),
            Some(&[b"/", folder.as_bytes(), b"/tgt\xff"].concat()[..]),
            "{folder}/lnk\\xfe"
        );
        for (rel, mode) in [
            (&b"priv"[..], 0o600),
            (b"exe", 0o755),
            (b"suid", 0o4755),
            (b"sub", 0o750),
            (b"private", 0o700),
            (b"tmp", 0o1777),
            (b"sgid", 0o2755),
        ] {
            assert_eq!(get(rel).mode, mode, "{folder}/{}", rel.escape_ascii());
        }
        assert!(get(b"bad\xff\xfename").kind == "file");
        assert_eq!(
            get(b"hard").hard_link_group.as_deref(),
            Some([folder.as_bytes(), b"/file"].concat().as_slice()),
            "{folder}/hard is a hard link of {folder}/file"
        );
    }
}

/// A readable line per difference (at most 60), or "" when the listings are equal.
fn show(e: &Entry) -> String {
    let mut s = format!(
        "{} {:o} {}B mtime={}.{:09}",
        e.kind, e.mode, e.size, e.mtime.0, e.mtime.1
    );
    if let Some(link) = &e.link {
        s.push_str(&format!(" -> {}", link.escape_ascii()));
    }
    if let Some(sha) = &e.sha256 {
        s.push_str(&format!(" sha256:{}", &sha[..12]));
    }
    if let Some(group) = &e.hard_link_group {
        s.push_str(&format!(" same inode as {}", group.escape_ascii()));
    }
    s
}
