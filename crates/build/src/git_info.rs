//! What buildx tells the build about the git checkout its context is in (BUILDX_GIT_INFO,
//! on by default): the frontend attributes `vcs:source` (the remote, credentials redacted),
//! `vcs:revision` (the commit, `-dirty` when BUILDX_GIT_CHECK_DIRTY asks and the tree is
//! modified), `vcs:localdir:context` and `vcs:localdir:dockerfile` (both relative to the
//! checkout's root). They land in the provenance and the build record (`VCSRepository`,
//! `VCSRevision`), where CI tools read them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::go::parse_bool as parse_go_bool;

/// The attributes for a build of `context` with the Dockerfile in `dockerfile_dir`; empty
/// when the context is not in a git checkout, git is missing, or BUILDX_GIT_INFO is false.
pub fn git_attributes(context: &Path, dockerfile_dir: &Path) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let wanted = std::env::var("BUILDX_GIT_INFO")
        .ok()
        .and_then(|v| parse_go_bool(&v))
        .unwrap_or(true);
    if !wanted {
        return attrs;
    }
    let Ok(context) = std::path::absolute(context) else {
        return attrs;
    };
    let Some(facts) = checkout_facts(&context) else {
        return attrs;
    };
    if let Some(sha) = facts.revision {
        attrs.insert("vcs:revision".into(), sha);
    }
    if let Some(url) = facts.source {
        attrs.insert("vcs:source".into(), url);
    }
    if let Some(root) = facts.root {
        let relative = |dir: &Path| -> String {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            match canon(&dir).strip_prefix(canon(&root)) {
                Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
                Ok(rel) => rel.display().to_string(),
                Err(_) => dir.display().to_string(),
            }
        };
        attrs.insert("vcs:localdir:context".into(), relative(&context));
        attrs.insert("vcs:localdir:dockerfile".into(), relative(dockerfile_dir));
    }
    attrs
}

/// What git says of the checkout a context folder is in.
#[derive(Debug, Clone)]
struct CheckoutFacts {
    /// The commit, `-dirty` appended when BUILDX_GIT_CHECK_DIRTY asks and the tree is modified.
    revision: Option<String>,
    /// The remote (origin, else the first), credentials redacted.
    source: Option<String>,
    /// The checkout's top folder.
    root: Option<PathBuf>,
}

/// The facts of `context`'s checkout (`None` outside one), asked of git once per folder and
/// process: bake's targets often share a context, and each question is a `git` process.
fn checkout_facts(context: &Path) -> Option<CheckoutFacts> {
    static KNOWN: std::sync::Mutex<BTreeMap<PathBuf, Option<CheckoutFacts>>> =
        std::sync::Mutex::new(BTreeMap::new());
    // A poisoned lock only means a panic elsewhere mid-insert; the map is still sound.
    let lock = || KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(facts) = lock().get(context) {
        return facts.clone();
    }
    let facts = ask_git(context);
    lock().insert(context.to_path_buf(), facts.clone());
    facts
}

fn ask_git(context: &Path) -> Option<CheckoutFacts> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(context)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // One process for both: the answers come a line each, in the order asked.
    let top = git(&["rev-parse", "--is-inside-work-tree", "--show-toplevel"])?;
    let mut lines = top.lines();
    if lines.next() != Some("true") {
        return None;
    }
    let root = lines.next().filter(|l| !l.is_empty()).map(PathBuf::from);
    let revision = git(&["rev-parse", "HEAD"])
        .filter(|s| !s.is_empty())
        .map(|mut sha| {
            let check_dirty = std::env::var("BUILDX_GIT_CHECK_DIRTY")
                .ok()
                .and_then(|v| parse_go_bool(&v))
                .unwrap_or(false);
            if check_dirty && git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) {
                sha.push_str("-dirty");
            }
            sha
        });
    let source = git(&["remote", "get-url", "origin"])
        .or_else(|| {
            let first = git(&["remote"])?.lines().next()?.to_owned();
            git(&["remote", "get-url", &first])
        })
        .filter(|u| !u.is_empty())
        .map(|u| redact_credentials(&u));
    Some(CheckoutFacts {
        revision,
        source,
        root,
    })
}

/// buildx's `urlutil.RedactCredentials`: `https://user:pass@host` → `https://xxxxx:xxxxx@host`.
fn redact_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() => "xxxxx:xxxxx",
        Some(_) => ":xxxxx",
        None if !userinfo.is_empty() => "xxxxx",
        None => return url.to_owned(),
    };
    format!("{scheme}://{masked}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_as_buildx_does() {
        assert_eq!(
            redact_credentials("https://user:token@github.com/o/r.git"),
            "https://xxxxx:xxxxx@github.com/o/r.git"
        );
        assert_eq!(
            redact_credentials("https://token@github.com/o/r.git"),
            "https://xxxxx@github.com/o/r.git"
        );
        assert_eq!(
            redact_credentials("https://github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            redact_credentials("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }

    #[test]
    fn a_checkout_gives_its_remote_revision_and_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(repo.join("app/docker")).expect("mkdir");
        std::fs::write(repo.join("app/docker/Dockerfile"), "FROM scratch\n").expect("write");
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "x"]);
        git(&[
            "remote",
            "add",
            "origin",
            "https://u:secret@example.invalid/o/r.git",
        ]);
        let attrs = git_attributes(&repo.join("app"), &repo.join("app/docker"));
        assert_eq!(
            attrs.get("vcs:source").map(String::as_str),
            Some("https://xxxxx:xxxxx@example.invalid/o/r.git")
        );
        assert_eq!(attrs.get("vcs:revision").map(String::len), Some(40));
        assert_eq!(
            attrs.get("vcs:localdir:context").map(String::as_str),
            Some("app")
        );
        assert_eq!(
            attrs.get("vcs:localdir:dockerfile").map(String::as_str),
            Some("app/docker")
        );
        // Outside a checkout: nothing.
        let other = tempfile::tempdir().expect("tempdir");
        assert!(git_attributes(other.path(), other.path()).is_empty());
    }
}
