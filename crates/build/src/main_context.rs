//! Where a build's context and Dockerfile come from, as buildx's `loadInputs` decides it: a
//! local folder, a URL the daemon fetches (a git repository or an https tarball), or `-`
//! (stdin holding either a tarball, served through the session's Upload service, or a
//! Dockerfile with an empty context); the Dockerfile from the context, from a path given with
//! `-f` (anywhere on disk), from stdin (`-f -`), or — with a remote context and a relative
//! `-f` — from inside the remote context.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The build's main context.
#[derive(Debug)]
pub enum ContextSource {
    /// A local folder, synced as `context`.
    Local(PathBuf),
    /// A git or https URL, the frontend's `context` attribute.
    Remote(String),
    /// A tarball read from stdin, spooled to this file and served through the session's
    /// Upload service; the frontend's `context` is its `http://buildkit-session/…` URL.
    Upload(PathBuf),
}

/// The context and Dockerfile of a build, resolved from the command line.
#[derive(Debug)]
pub struct MainContext {
    pub context: ContextSource,
    /// The local folder synced as `dockerfile`, when the Dockerfile is on this machine.
    pub dockerfile_dir: Option<PathBuf>,
    /// The frontend's `filename`.
    pub filename: String,
    /// `dockerfilekey=dockerfile`, which buildx sends when the Dockerfile is not the
    /// context's own.
    pub dockerfile_key: bool,
    /// Holds a Dockerfile or tarball read from stdin for the build's lifetime.
    pub _temp: Option<tempfile::TempDir>,
}

impl MainContext {
    /// Resolves `CONTEXT` and `-f` as buildx does, reading stdin when either is `-`.
    pub fn resolve(context: &str, file: Option<&str>) -> anyhow::Result<Self> {
        Self::resolve_with(context, file, &mut std::io::stdin().lock())
    }

    fn resolve_with(
        context: &str,
        file: Option<&str>,
        stdin: &mut dyn Read,
    ) -> anyhow::Result<Self> {
        if context.is_empty() {
            bail!(
                "failed to build: please specify build context (e.g. \".\" for the current directory)"
            );
        }
        let temp = || {
            tempfile::Builder::new()
                .prefix("brix-stdin-")
                .tempdir()
                .context("creating a folder for what is read from stdin")
        };
        if context == "-" {
            if file == Some("-") {
                bail!(
                    "failed to build: invalid argument: can't use stdin for both build context and dockerfile"
                );
            }
            let dir = temp()?;
            let mut head = Vec::with_capacity(HEADER_PEEK);
            stdin
                .take(HEADER_PEEK as u64)
                .read_to_end(&mut head)
                .context("failed to peek context header from STDIN")?;
            if is_archive(&head) {
                let path = dir.path().join("context.tar");
                let mut out = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                std::io::Write::write_all(&mut out, &head)?;
                std::io::copy(stdin, &mut out).context("reading the context from stdin")?;
                return Ok(MainContext {
                    context: ContextSource::Upload(path),
                    dockerfile_dir: None,
                    filename: file.unwrap_or("Dockerfile").to_owned(),
                    dockerfile_key: false,
                    _temp: Some(dir),
                });
            }
            if file.is_some() {
                bail!(
                    "failed to build: ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
                );
            }
            let ctx = dir.path().join("context");
            std::fs::create_dir_all(&ctx)?;
            let df = write_stdin_dockerfile(dir.path(), head, stdin)?;
            return Ok(MainContext {
                context: ContextSource::Local(ctx),
                dockerfile_dir: Some(df),
                filename: "Dockerfile".to_owned(),
                dockerfile_key: true,
                _temp: Some(dir),
            });
        }
        if Path::new(context).is_dir() {
            let ctx = PathBuf::from(context);
            let (dir, name, temp_dir, key) = match file {
                Some("-") => {
                    let t = temp()?;
                    let df = write_stdin_dockerfile(t.path(), Vec::new(), stdin)?;
                    (df, "Dockerfile".to_owned(), Some(t), true)
                }
                None => (ctx.clone(), "Dockerfile".to_owned(), None, false),
                Some(f) => {
                    let (dir, name) = split_dockerfile_path(Path::new(f));
                    (dir, name, None, false)
                }
            };
            let name = lowercase_dockerfile(&dir, name);
            check_dockerfile(&dir, &name, file)?;
            return Ok(MainContext {
                context: ContextSource::Local(ctx),
                dockerfile_dir: Some(dir),
                filename: name,
                dockerfile_key: key,
                _temp: temp_dir,
            });
        }
        if is_remote_url(context) {
            let mut resolved = MainContext {
                context: ContextSource::Remote(context.to_owned()),
                dockerfile_dir: None,
                filename: file.unwrap_or("Dockerfile").to_owned(),
                dockerfile_key: false,
                _temp: None,
            };
            match file {
                Some("-") => {
                    let t = temp()?;
                    resolved.dockerfile_dir =
                        Some(write_stdin_dockerfile(t.path(), Vec::new(), stdin)?);
                    resolved.filename = "Dockerfile".to_owned();
                    resolved.dockerfile_key = true;
                    resolved._temp = Some(t);
                }
                Some(f) if Path::new(f).is_absolute() => {
                    let (dir, name) = split_dockerfile_path(Path::new(f));
                    let name = lowercase_dockerfile(&dir, name);
                    check_dockerfile(&dir, &name, file)?;
                    resolved.dockerfile_dir = Some(dir);
                    resolved.filename = name;
                    resolved.dockerfile_key = true;
                }
                _ => {}
            }
            return Ok(resolved);
        }
        bail!("failed to build: unable to prepare context: path {context:?} not found")
    }

    /// The local context folder, if the context is one.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.context {
            ContextSource::Local(dir) => Some(dir),
            _ => None,
        }
    }
}

/// How much of stdin buildx peeks at to tell a tarball from a Dockerfile (two tar blocks).
const HEADER_PEEK: usize = 1024;

/// Writes a Dockerfile read from stdin (`head` already read) into `parent/dockerfile/` and
/// returns that folder.
fn write_stdin_dockerfile(
    parent: &Path,
    mut text: Vec<u8>,
    stdin: &mut dyn Read,
) -> anyhow::Result<PathBuf> {
    stdin
        .read_to_end(&mut text)
        .context("reading the Dockerfile from stdin")?;
    if text.iter().all(u8::is_ascii_whitespace) {
        bail!("the Dockerfile read from stdin is empty");
    }
    let dir = parent.join("dockerfile");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("Dockerfile"), text)?;
    Ok(dir)
}

/// `-f PATH` as a folder to sync and a file name in it.
fn split_dockerfile_path(file: &Path) -> (PathBuf, String) {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_owned());
    (dir, name)
}

/// buildx's `handleLowercaseDockerfile`: `Dockerfile` that does not exist but `dockerfile`
/// does is read as `dockerfile`.
fn lowercase_dockerfile(dir: &Path, name: String) -> String {
    if name == "Dockerfile" && !dir.join(&name).exists() && dir.join("dockerfile").is_file() {
        "dockerfile".to_owned()
    } else {
        name
    }
}

/// A local Dockerfile that is missing is named before any daemon is contacted.
fn check_dockerfile(dir: &Path, name: &str, given: Option<&str>) -> anyhow::Result<()> {
    let path = dir.join(name);
    if path.is_file() {
        return Ok(());
    }
    let shown = match given {
        Some(f) if f != "-" => PathBuf::from(f),
        _ => path,
    };
    bail!(
        "failed to read dockerfile: open {}: no such file or directory (give its path with -f)",
        shown.display()
    )
}

/// buildx's `IsRemoteURL`: an http(s) URL, or anything BuildKit's dockerfile frontend takes
/// for a git reference (`ssh://`, `git://`, `https://….git`, `user@host:path`,
/// `github.com/…`).
pub fn is_remote_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || git_scheme(s).is_some()
}

/// The transport of a git reference as BuildKit's `gitutil.ParseURL` reads it (`ssh` for
/// the scp-like `user@host:path`), or `None` when `s` is not one.
pub fn git_scheme(s: &str) -> Option<&'static str> {
    if s.starts_with("./") || s.starts_with("../") {
        return None;
    }
    if s.starts_with("github.com/") {
        return Some("https");
    }
    if let Some((proto, rest)) = s.split_once("://")
        && !proto.is_empty()
        && proto.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        let path = rest.split(['#', '?']).next().unwrap_or_default();
        return match proto.to_ascii_lowercase().as_str() {
            "ssh" => Some("ssh"),
            "git" => Some("git"),
            // An http(s) URL is a git reference only with the `.git` suffix.
            "http" if path.ends_with(".git") => Some("http"),
            "https" if path.ends_with(".git") => Some("https"),
            _ => None,
        };
    }
    is_scp_style(s).then_some("ssh")
}

/// `user@host:path` as BuildKit's `sshutil` pattern takes it: the user of `[A-Za-z0-9-_]`,
/// the host of `[A-Za-z0-9-.]`.
fn is_scp_style(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let Some((host, _)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// buildx's `isArchive`: bzip2, gzip or xz magic, or a first tar header Go's reader accepts.
pub fn is_archive(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 3] = [
        &[0x42, 0x5A, 0x68],
        &[0x1F, 0x8B, 0x08],
        &[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00],
    ];
    MAGIC.iter().any(|m| head.starts_with(m)) || is_tar_header(head)
}

/// Whether the first 512 bytes are a tar header with a valid checksum (an all-zero block is
/// the end of an archive, not an archive).
fn is_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = i64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_as_buildx_tells_them() {
        for url in [
            "https://example.com/ctx.tar.gz",
            "http://127.0.0.1:8080/repo.git#main:sub",
            "git@github.com:org/repo.git",
            "ssh://git@host:2222/srv/repo.git",
            "git://host/repo",
            "github.com/moby/buildkit",
        ] {
            assert!(is_remote_url(url), "{url}");
        }
        for path in ["./repo.git", "ctx", "/abs/path", "ftp://x/y.git", "a@b"] {
            assert!(!is_remote_url(path), "{path}");
        }
        assert_eq!(git_scheme("git@github.com:org/repo.git"), Some("ssh"));
        assert_eq!(git_scheme("ssh://root@127.0.0.1:2222/r.git"), Some("ssh"));
        assert_eq!(git_scheme("https://h/r.git#v1:dir"), Some("https"));
        assert_eq!(git_scheme("https://h/ctx.tar.gz"), None);
    }

    fn tar_with(name: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, &b"hi"[..])
            .expect("append");
        builder.into_inner().expect("finish")
    }

    #[test]
    fn archives_are_told_from_dockerfiles() {
        assert!(is_archive(&tar_with("Dockerfile")));
        assert!(is_archive(&[0x1F, 0x8B, 0x08, 0, 0]));
        assert!(is_archive(&[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1]));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        assert!(!is_archive(&[0u8; 1024]));
        let mut broken = tar_with("Dockerfile");
        broken[0] ^= 1;
        assert!(!is_archive(&broken));
    }

    #[test]
    fn stdin_holds_a_tarball_or_a_dockerfile() {
        let tarball = tar_with("Dockerfile");
        let ctx = MainContext::resolve_with("-", Some("sub/Dockerfile"), &mut &tarball[..])
            .expect("tarball");
        match &ctx.context {
            ContextSource::Upload(path) => {
                assert_eq!(std::fs::read(path).expect("spooled"), tarball)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ctx.filename, "sub/Dockerfile");
        assert!(ctx.dockerfile_dir.is_none());

        let text = b"FROM busybox\n";
        let ctx = MainContext::resolve_with("-", None, &mut &text[..]).expect("dockerfile");
        assert!(ctx.local_dir().is_some());
        let df = ctx.dockerfile_dir.as_ref().expect("dir").join("Dockerfile");
        assert_eq!(std::fs::read(df).expect("written"), text);

        let err = MainContext::resolve_with("-", Some("x"), &mut &text[..]).expect_err("both");
        assert_eq!(
            err.to_string(),
            "failed to build: ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles"
        );
        let err = MainContext::resolve_with("-", Some("-"), &mut &text[..]).expect_err("both");
        assert_eq!(
            err.to_string(),
            "failed to build: invalid argument: can't use stdin for both build context and dockerfile"
        );
    }

    #[test]
    fn a_folder_takes_a_dockerfile_from_stdin_or_from_anywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx_dir = dir.path().join("ctx");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&ctx_dir).expect("mkdir");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::write(elsewhere.join("build.Dockerfile"), "FROM x\n").expect("write");
        let ctx_s = ctx_dir.to_str().expect("utf-8");

        let text = b"FROM busybox\n";
        let ctx = MainContext::resolve_with(ctx_s, Some("-"), &mut &text[..]).expect("stdin");
        assert_eq!(ctx.local_dir(), Some(ctx_dir.as_path()));
        assert!(ctx.dockerfile_key);

        let outside = elsewhere.join("build.Dockerfile");
        let ctx =
            MainContext::resolve_with(ctx_s, outside.to_str(), &mut &b""[..]).expect("outside");
        assert_eq!(ctx.dockerfile_dir.as_deref(), Some(elsewhere.as_path()));
        assert_eq!(ctx.filename, "build.Dockerfile");

        std::fs::write(ctx_dir.join("dockerfile"), "FROM x\n").expect("write");
        let ctx = MainContext::resolve_with(ctx_s, None, &mut &b""[..]).expect("lowercase");
        assert_eq!(ctx.filename, "dockerfile");

        let err = MainContext::resolve_with("no/such/dir", None, &mut &b""[..]).expect_err("x");
        assert_eq!(
            err.to_string(),
            "failed to build: unable to prepare context: path \"no/such/dir\" not found"
        );
    }

    #[test]
    fn a_remote_context_reads_its_own_dockerfile_unless_given_one_here() {
        let url = "https://example.com/repo.git#main";
        let ctx =
            MainContext::resolve_with(url, Some("sub/Dockerfile"), &mut &b""[..]).expect("remote");
        assert!(matches!(&ctx.context, ContextSource::Remote(u) if u == url));
        assert_eq!(ctx.filename, "sub/Dockerfile");
        assert!(ctx.dockerfile_dir.is_none() && !ctx.dockerfile_key);

        let text = b"FROM busybox\n";
        let ctx = MainContext::resolve_with(url, Some("-"), &mut &text[..]).expect("stdin");
        assert!(ctx.dockerfile_dir.is_some() && ctx.dockerfile_key);
    }
}
