//! A [`BuildRequest`] read and checked, as buildx does before it contacts a daemon: the
//! context and Dockerfile found (stdin read), the flags parsed into frontend attributes,
//! outputs, secrets, SSH agents, caches, named contexts, annotations and attestations, each
//! refused with buildx's message, in buildx's order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use brix_config::Platform;
use brix_solver_client::session::{SecretSource, SshSource};

use crate::call::CallMethod;
use crate::error::{BuildError, Failure};
use crate::main_context::{self, MainContext};
use crate::outputs::{self, Output};
use crate::{BuildRequest, annotations, attestations, cache, contexts, git_info, options, ssh};

/// A build request ready for [`build`](crate::build): everything it asks for, checked.
#[derive(Debug)]
pub struct PlannedBuild {
    /// The request as given (its target, context and file name go into the builder's local
    /// state; its metadata and image ID files are written at the end).
    pub(crate) request: BuildRequest,
    /// The context and the Dockerfile.
    pub(crate) main: MainContext,
    pub(crate) platforms: Vec<Platform>,
    pub(crate) frontend_attrs: BTreeMap<String, String>,
    pub(crate) outputs: Vec<Output>,
    /// Which of `outputs` is the request's `link_output` (the last one), if it has one.
    pub(crate) link_output: Option<usize>,
    pub(crate) secrets: BTreeMap<String, SecretSource>,
    /// `--cache-from`, local tags resolved to digests.
    pub(crate) cache_imports: Vec<cache::CacheEntry>,
    /// `--cache-to` (and `BUILDKIT_INLINE_CACHE`).
    pub(crate) cache_exports: Vec<cache::CacheEntry>,
    /// Entitlements asked for (`--allow`, `--network host`).
    pub(crate) entitlements: Vec<String>,
    /// `--ssh` agents by ID.
    pub(crate) ssh: Vec<(String, SshSource)>,
    /// `--build-context`, resolved.
    pub(crate) named_contexts: Vec<(String, contexts::NamedContext)>,
    /// `--annotation`.
    pub(crate) annotations: annotations::Annotations,
    pub(crate) provenance: Option<String>,
    /// `--attest`, `--provenance` and `--sbom` as given (the other types' attributes, and
    /// whether any is asked for).
    pub(crate) attestations: attestations::Attestations,
    /// The provenance for the engine's BuildKit on the containerd image store, which also
    /// loads images with attestations.
    pub(crate) engine_store_provenance: Option<String>,
    /// A short random ID naming this build's temporary images (docker driver pushes).
    pub(crate) build_id: String,
    /// `--call`/`--check`: the frontend method asked for instead of a build.
    pub(crate) call: Option<CallMethod>,
}

impl PlannedBuild {
    /// Reads and checks `request` as buildx does before it builds (stdin is read when the
    /// context or the Dockerfile is `-`). `warn` gets what buildx warns about meanwhile (a
    /// local cache folder that is not there), without the `WARNING: ` prefix.
    pub fn new(request: BuildRequest, warn: &dyn Fn(&str)) -> Result<Self, BuildError> {
        plan(request, warn).map_err(|e| BuildError::from(Failure::from(e)))
    }

    /// The request this plan was made from.
    pub fn request(&self) -> &BuildRequest {
        &self.request
    }

    /// The `--call` method asked for, when the request is a call and not a build.
    pub fn call(&self) -> Option<&CallMethod> {
        self.call.as_ref()
    }

    /// The outputs the user asked for: all but the link output.
    pub(crate) fn user_outputs(&self) -> impl Iterator<Item = &Output> {
        let link = self.link_output;
        self.outputs
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != link)
            .map(|(_, o)| o)
    }
}

fn plan(request: BuildRequest, warn: &dyn Fn(&str)) -> anyhow::Result<PlannedBuild> {
    let args = &request;
    let main = MainContext::resolve(&args.context, args.dockerfile.as_deref())?;
    let mut platforms: Vec<Platform> = Vec::new();
    for value in &args.platforms {
        for p in Platform::parse_list(value)? {
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
    }

    let mut attrs = BTreeMap::new();
    attrs.insert("filename".to_owned(), main.filename.clone());
    if main.dockerfile_key {
        attrs.insert("dockerfilekey".to_owned(), "dockerfile".to_owned());
    }
    if args.context != "-"
        && let (Some(context_dir), Some(dockerfile_dir)) =
            (main.local_dir(), main.dockerfile_dir.as_deref())
    {
        attrs.extend(git_info::git_attributes(context_dir, dockerfile_dir));
    }
    if let Some(t) = &args.target {
        attrs.insert("target".to_owned(), t.clone());
    }
    for a in args.build_args.iter().chain(&args.labels) {
        options::check_key_value(a)?;
    }
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                attrs.insert(format!("build-arg:{k}"), v.to_owned());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    attrs.insert(format!("build-arg:{a}"), v);
                }
            }
        }
    }
    // As buildx: the environment's SOURCE_DATE_EPOCH becomes the build argument of that name
    // unless --build-arg sets it.
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        attrs
            .entry("build-arg:SOURCE_DATE_EPOCH".to_owned())
            .or_insert(epoch);
    }
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        attrs.insert(format!("label:{k}"), v.to_owned());
    }
    if args.no_cache {
        attrs.insert("no-cache".to_owned(), String::new());
    }
    if args.pull {
        attrs.insert("image-resolve-mode".to_owned(), "pull".to_owned());
    }

    let entitlements = args.run_options.apply(&mut attrs)?;
    let named_contexts = contexts::parse(&args.build_contexts)?;
    options::check_tags(&args.tags)?;
    let outputs = outputs::resolve_outputs(&args.outputs, args.push, args.load, &args.tags)?;

    let mut secrets = BTreeMap::new();
    for s in &args.secrets {
        let (id, source) = parse_secret(s)?;
        if let SecretSource::File(path) = &source {
            options::check_secret_file(path)?;
        }
        secrets.insert(id, source);
    }
    // After the secrets, as buildx checks them.
    // As buildx: a git context over ssh forwards the default agent unless --ssh is given.
    let ssh = if args.ssh.is_empty() && main_context::git_scheme(&args.context) == Some("ssh") {
        ssh::parse_ssh_flags(&["default".to_owned()])?
    } else {
        ssh::parse_ssh_flags(&args.ssh)?
    };
    // After the SSH agents, as buildx reads them.
    let annotations = annotations::Annotations::parse(&args.annotations)?;

    let env = |name: &str| std::env::var(name).ok();
    let mut cache_exports = cache::parse_entries(&args.cache_to, cache::Direction::Export, &env)?;
    // As buildx: a true BUILDKIT_INLINE_CACHE build argument asks for the inline cache.
    if attrs
        .get("build-arg:BUILDKIT_INLINE_CACHE")
        .and_then(|v| crate::go::parse_bool(v))
        == Some(true)
        && !cache_exports.iter().any(|e| e.kind == "inline")
    {
        cache_exports.push(cache::CacheEntry {
            kind: "inline".to_owned(),
            attrs: BTreeMap::new(),
        });
    }
    let cache_imports = cache::resolve_local_imports(
        cache::parse_entries(&args.cache_from, cache::Direction::Import, &env)?,
        warn,
    )?;

    let attestations = attestations::Attestations::parse(
        &args.attests,
        args.provenance.as_deref(),
        args.sbom.as_deref(),
    )?;
    let requested = attestations.provenance();
    let provenance = match requested {
        Some(asked) => asked.map(str::to_owned),
        None if no_default_attestations()? => None,
        None => Some("mode=min".to_owned()),
    };
    // Like buildx, provenance goes with image outputs only unless asked for explicitly. A
    // `docker` tarball with an attestation has no manifest.json, which engines without the
    // containerd image store cannot load, so `--load` leaves it out too unless asked.
    let default_on = outputs.iter().any(Output::is_image)
        && !outputs.iter().any(|o| matches!(o, Output::Docker { .. }));
    // The containerd image store loads images with attestations, and buildx adds its default
    // provenance there for `--load` too.
    let engine_store_provenance = if requested.is_none()
        && !outputs
            .iter()
            .any(|o| o.is_image() || matches!(o, Output::Docker { dest: None, .. }))
    {
        None
    } else {
        provenance.clone()
    };
    let provenance = if requested.is_none() && !default_on {
        None
    } else {
        provenance
    };
    // What the daemon would refuse in the attestations, as buildx reports it: after every
    // check of buildx's own.
    attestations.check(&attrs)?;
    // BuildKit checks this when it exports, after the build: last.
    annotations.check_platforms(&platforms)?;
    // `--call` and `--check` are read once the build's own flags are.
    let call = crate::call::requested(&args.call, args.check.as_deref())?;
    // Added after every decision the user's outputs make (attestations, provenance).
    let mut outputs = outputs;
    let link_output = args.link_output.as_ref().map(|path| {
        outputs.push(Output::Oci {
            dest: outputs::Dest::File(path.clone()),
            attrs: BTreeMap::new(),
        });
        outputs.len() - 1
    });

    Ok(PlannedBuild {
        main,
        platforms,
        frontend_attrs: attrs,
        outputs,
        link_output,
        secrets,
        cache_imports,
        cache_exports,
        entitlements,
        ssh,
        named_contexts,
        annotations,
        provenance,
        attestations,
        engine_store_provenance,
        build_id: brix_solver_client::solve::new_build_ref()[..10].to_owned(),
        call,
        request,
    })
}

/// `BUILDX_NO_DEFAULT_ATTESTATIONS`, read as buildx reads it (Go's `strconv.ParseBool`).
fn no_default_attestations() -> anyhow::Result<bool> {
    const VAR: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";
    match std::env::var(VAR) {
        Err(_) => Ok(false),
        Ok(v) => crate::go::parse_bool(&v).with_context(|| {
            format!(
                "invalid {VAR}: strconv.ParseBool: parsing {v:?}: invalid syntax (use 1 or 0, true or false)"
            )
        }),
    }
}

fn parse_secret(s: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut kind = None;
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .with_context(|| format!("invalid --secret {s:?}: expected key=value fields"))?;
        match k {
            "type" => kind = Some(v.to_owned()),
            "id" => id = Some(v.to_owned()),
            "src" | "source" => src = Some(v.to_owned()),
            "env" => env = Some(v.to_owned()),
            other => bail!("invalid --secret {s:?}: unknown key {other:?}"),
        }
    }
    let id = id.with_context(|| format!("invalid --secret {s:?}: id is required"))?;
    let source = match (kind.as_deref(), src, env) {
        (Some("env"), _, Some(e)) | (None, None, Some(e)) => SecretSource::Env(e),
        (Some("env"), _, None) => SecretSource::Env(id.clone()),
        (_, Some(p), _) => SecretSource::File(PathBuf::from(p)),
        (_, None, _) => {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
    };
    Ok((id, source))
}

/// `linux/arm/v7` → `linux_arm_v7`: the per-platform folder buildx uses in local and tar
/// outputs.
pub(crate) fn platform_dir(p: &Platform) -> String {
    p.to_string().replace('/', "_")
}

/// The build's `SOURCE_DATE_EPOCH` (its build argument), which dates multi-platform output
/// folders as BuildKit dates them.
pub(crate) fn source_date_epoch(attrs: &BTreeMap<String, String>) -> Option<i64> {
    attrs
        .get("build-arg:SOURCE_DATE_EPOCH")
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attestations(request: &BuildRequest) -> attestations::Attestations {
        attestations::Attestations::parse(
            &request.attests,
            request.provenance.as_deref(),
            request.sbom.as_deref(),
        )
        .expect("valid")
    }

    #[test]
    fn attestation_fields_reach_the_parser() {
        let mut request = BuildRequest::new(".");
        assert_eq!(
            attestations(&request),
            attestations::Attestations::default()
        );
        request.attests = vec!["type=provenance,mode=max,builder-id=https://ci/run/1".into()];
        request.sbom = Some("true".into());
        let a = attestations(&request);
        assert_eq!(
            a.provenance(),
            Some(Some("type=provenance,builder-id=https://ci/run/1,mode=max"))
        );
        assert_eq!(
            a.other_frontend_attrs(),
            vec![("attest:sbom".to_owned(), "type=sbom".to_owned())]
        );
        let mut request = BuildRequest::new(".");
        request.provenance = Some("true".into());
        request.sbom = Some("generator=r/s:1".into());
        let a = attestations(&request);
        assert_eq!(a.provenance(), Some(Some("type=provenance")));
        assert_eq!(
            a.other_frontend_attrs(),
            vec![(
                "attest:sbom".to_owned(),
                "type=sbom,generator=r/s:1".to_owned()
            )]
        );
        let mut request = BuildRequest::new(".");
        request.provenance = Some("false".into());
        assert_eq!(attestations(&request).provenance(), Some(None));
    }

    #[test]
    fn a_request_is_checked_before_any_daemon_is_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        let mut request = BuildRequest::new(dir.path().display().to_string());
        request.build_args = vec!["=x".into()];
        let err = PlannedBuild::new(request.clone(), &|_| {}).expect_err("refused");
        assert_eq!(err.to_string(), "invalid key-value pair \"=x\": empty key");
        request.build_args = vec!["A=1".into()];
        request.call = "check,format=json".into();
        let planned = PlannedBuild::new(request, &|_| {}).expect("valid");
        assert_eq!(planned.frontend_attrs["build-arg:A"], "1");
        assert_eq!(planned.frontend_attrs["filename"], "Dockerfile");
        assert_eq!(
            planned.call().map(|c| (c.name.as_str(), c.format.as_str())),
            Some(("lint", "json"))
        );
    }
}
