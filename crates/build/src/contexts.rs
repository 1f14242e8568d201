//! `--build-context NAME=VALUE`, as buildx sends each: a `docker-image://` reference or a
//! remote URL goes to the frontend as is (`context:NAME`); a local folder becomes a local of
//! its own on the session (`local:NAME`; the frontend reads that folder's `.dockerignore`);
//! an `oci-layout://PATH[:TAG][@DIGEST]` is served from the session content store
//! (`oci:<id>`) with its tag resolved to a digest first.

use std::path::PathBuf;

use anyhow::{Context, bail};
use brix_solver_client::session::{LocalContentStore, Session, SyncedDir};

/// One named context, resolved at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// Passed to the frontend as given (`docker-image://…`, a git or https URL).
    Passthrough(String),
    /// A local folder, served under `local_name`.
    Local {
        /// The local's name on the session (the context's name; `_context`/`_dockerfile`
        /// for those two, as buildx avoids the collision).
        local_name: String,
        /// The folder.
        dir: PathBuf,
    },
    /// An OCI layout folder, served as a content store.
    OciLayout {
        /// The folder.
        dir: PathBuf,
        /// The tag looked up (`latest` unless given).
        tag: String,
        /// The manifest digest (given, or resolved from `index.json`).
        digest: String,
    },
}

/// Parses every `--build-context` value.
pub fn parse(values: &[String]) -> anyhow::Result<Vec<(String, NamedContext)>> {
    let mut out: Vec<(String, NamedContext)> = Vec::new();
    for value in values {
        let Some((name, target)) = value
            .split_once('=')
            .filter(|(n, t)| !n.is_empty() && !t.is_empty())
        else {
            bail!("invalid context value: {value}, expected key=value");
        };
        let context = resolve(name, target)?;
        out.retain(|(n, _)| n != name);
        out.push((name.to_owned(), context));
    }
    Ok(out)
}

fn is_remote(target: &str) -> bool {
    ["https://", "http://", "git://", "git@", "ssh://"]
        .iter()
        .any(|p| target.starts_with(p))
        || target.starts_with("github.com/")
}

fn resolve(name: &str, target: &str) -> anyhow::Result<NamedContext> {
    if target.starts_with("docker-image://") || target.starts_with("target:") || is_remote(target) {
        return Ok(NamedContext::Passthrough(target.to_owned()));
    }
    if let Some(rest) = target.strip_prefix("oci-layout://") {
        let (path, digest) = match rest.split_once('@') {
            Some((p, d)) => (p, Some(d.to_owned())),
            None => (rest, None),
        };
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, t.to_owned()),
            _ => (path, "latest".to_owned()),
        };
        let dir = PathBuf::from(path);
        let digest = match digest {
            Some(d) => d,
            None if let Some(why) = crate::cache::unreadable_index(&dir) => bail!(
                "failed to build: oci-layout reference {target:?} could not be resolved: {why}"
            ),
            None => {
                match brix_exporter::cache::read_tag(&dir, &tag) {
                    Ok(Some(desc)) => desc.digest,
                    Ok(None) => bail!(
                        "failed to build: oci-layout reference {target:?} could not be resolved: no manifest tagged {tag:?} in {}",
                        dir.join("index.json").display()
                    ),
                    Err(e) => {
                        return Err(anyhow::Error::from(e)).with_context(|| {
                        format!("failed to build: oci-layout reference {target:?} could not be resolved")
                    });
                    }
                }
            }
        };
        return Ok(NamedContext::OciLayout { dir, tag, digest });
    }
    let dir = PathBuf::from(target);
    let meta = std::fs::metadata(&dir).map_err(|e| {
        let why = crate::options::go_io_reason(&e);
        anyhow::anyhow!("failed to build: failed to get build context {name}: stat {target}: {why}")
    })?;
    if !meta.is_dir() {
        // buildx prints its Go struct here (`{/path <nil>}`); the path alone says the same.
        bail!("failed to build: failed to get build context path {target}: not a directory");
    }
    let local_name = match name {
        "context" | "dockerfile" => format!("_{name}"),
        other => other.to_owned(),
    };
    Ok(NamedContext::Local { local_name, dir })
}

/// Adds the named contexts to one solve: the frontend attributes, and each local folder or
/// OCI layout on the solve's session.
pub fn add_to_solve(
    contexts: &[(String, NamedContext)],
    attrs: &mut std::collections::BTreeMap<String, String>,
    session: &mut Session,
) -> anyhow::Result<()> {
    for (name, context) in contexts {
        let value = match context {
            NamedContext::Passthrough(v) => v.clone(),
            NamedContext::Local { local_name, dir } => {
                session.add_local(local_name.clone(), SyncedDir::new(dir));
                format!("local:{local_name}")
            }
            NamedContext::OciLayout { dir, tag, digest } => {
                let id = brix_solver_client::solve::new_build_ref();
                let store = LocalContentStore::open(dir)
                    .with_context(|| format!("invalid store at {}", dir.display()))?;
                session.add_content_store(format!("oci:{id}"), store);
                format!("oci-layout://{id}:{tag}@{digest}")
            }
        };
        attrs.insert(format!("context:{name}"), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sorted_into_what_the_frontend_and_the_session_get() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let got = parse(&[
            "base=docker-image://alpine:3.20".to_owned(),
            "repo=https://github.com/moby/buildkit.git#v0.34.2".to_owned(),
            format!("files={d}"),
            format!("context={d}"),
        ])
        .expect("parsed");
        assert_eq!(
            got[0].1,
            NamedContext::Passthrough("docker-image://alpine:3.20".into())
        );
        assert!(matches!(got[1].1, NamedContext::Passthrough(_)));
        assert_eq!(
            got[2].1,
            NamedContext::Local {
                local_name: "files".into(),
                dir: dir.path().to_path_buf()
            }
        );
        assert!(
            matches!(&got[3].1, NamedContext::Local { local_name, .. } if local_name == "_context")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let oci = parse(&[format!("img=oci-layout://{d}:v1@{digest}")]).expect("parsed");
        assert_eq!(
            oci[0].1,
            NamedContext::OciLayout {
                dir: dir.path().to_path_buf(),
                tag: "v1".into(),
                digest
            }
        );
    }

    #[test]
    fn bad_values_are_refused_with_buildx_s_words() {
        let err = |v: &str| parse(&[v.to_owned()]).expect_err("refused").to_string();
        assert_eq!(
            err("novalue"),
            "invalid context value: novalue, expected key=value"
        );
        assert_eq!(
            err("x=/no/such/dir"),
            "failed to build: failed to get build context x: stat /no/such/dir: no such file or directory"
        );
    }
}
