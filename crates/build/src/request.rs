//! What one build takes, as plain data: the values `docker buildx build`'s flags take (and a
//! bake target's fields carry), spelled the same way. [`PlannedBuild::new`] reads and checks
//! them, with buildx's messages.
//!
//! [`PlannedBuild::new`]: crate::PlannedBuild::new

use std::path::PathBuf;

/// One build: the context, the Dockerfile and every setting of `buildx build`, each field the
/// value (or the values, for a repeatable flag) of the flag named in its documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The build context: a directory, a git URL (`https://…/repo.git#REF:DIR`,
    /// `git@host:org/repo.git`), an https tarball URL, or `-` (stdin: a tarball, or a
    /// Dockerfile with an empty context).
    pub context: String,
    /// `-f`: the Dockerfile (default: `CONTEXT/Dockerfile`; `-` reads it from stdin; with a
    /// remote context a relative name is inside the context).
    pub dockerfile: Option<String>,
    /// `-t`: image names (`name:tag`).
    pub tags: Vec<String>,
    /// `--build-arg`: `NAME=VALUE`, or `NAME` to take it from the environment.
    pub build_args: Vec<String>,
    /// `--target`: the stage to build.
    pub target: Option<String>,
    /// `--label`: image labels (`KEY=VALUE`).
    pub labels: Vec<String>,
    /// `--annotation`: `[TYPE[,TYPE…][PLATFORM]:]KEY=VALUE`.
    pub annotations: Vec<String>,
    /// `--platform`: target platforms, each value comma-separated.
    pub platforms: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: always look for newer base images.
    pub pull: bool,
    /// `-o`: outputs (`type=local,dest=DIR`, `type=registry`, a path, `-`, …).
    pub outputs: Vec<String>,
    /// `--push`: shorthand for `--output=type=registry`.
    pub push: bool,
    /// `--load`: shorthand for `--output=type=docker`.
    pub load: bool,
    /// `--secret`: `id=ID[,src=FILE]`, `id=ID,env=VAR`.
    pub secrets: Vec<String>,
    /// `--cache-from`: cache sources (`user/app:cache`, `type=local,src=DIR`).
    pub cache_from: Vec<String>,
    /// `--cache-to`: cache destinations (`user/app:cache`, `type=local,dest=DIR`).
    pub cache_to: Vec<String>,
    /// `--ssh`: `default|ID[=SOCKET|KEY[,KEY]]`.
    pub ssh: Vec<String>,
    /// `--build-context`: `NAME=PATH`, `NAME=docker-image://REF`,
    /// `NAME=oci-layout://PATH[:TAG][@DIGEST]`, a git or https URL.
    pub build_contexts: Vec<String>,
    /// `--network`, `--add-host`, `--allow`, `--shm-size`, `--ulimit`, `--cgroup-parent`,
    /// `--no-cache-filter`.
    pub run_options: RunOptions,
    /// `--provenance`: `true`, `false`, or its fields (`mode=max`, `builder-id=…`); `None`
    /// for buildx's default (minimal provenance for image outputs).
    pub provenance: Option<String>,
    /// `--sbom`: `true`, `false`, or its fields (`generator=IMAGE`, …).
    pub sbom: Option<String>,
    /// `--attest`: `type=sbom,generator=image`, `type=provenance,mode=max`, `disabled=true`.
    pub attests: Vec<String>,
    /// `--call`: `build` (the default), `check`, `outline`, `targets`, …, with `,format=json`
    /// or `,ignorestatus=true`.
    pub call: String,
    /// `--check[=BOOL]`: shorthand for `--call=check` (`Some("true")` for the bare flag).
    pub check: Option<String>,
    /// `--metadata-file`: where the build's result metadata is written.
    pub metadata_file: Option<PathBuf>,
    /// Gather what a metadata file holds (provenance, warnings) into the outcome even with
    /// no `metadata_file`: for a caller that writes one file for several requests (bake).
    pub collect_metadata: bool,
    /// `--iidfile`: where the image ID (or index digest) is written.
    pub iidfile: Option<PathBuf>,
    /// Also write the result, every platform in one index, as an OCI layout tarball here:
    /// for a caller that feeds it to another build as a context (bake's `target:NAME`). It is
    /// not an output the user asked for, so it changes nothing else: no attestations are
    /// added for it, and the metadata holds none of its exporter's keys.
    pub link_output: Option<PathBuf>,
}

impl BuildRequest {
    /// A build of `context` with every flag at its default (`--call build`, `--network
    /// default`).
    pub fn new(context: impl Into<String>) -> Self {
        BuildRequest {
            context: context.into(),
            dockerfile: None,
            tags: Vec::new(),
            build_args: Vec::new(),
            target: None,
            labels: Vec::new(),
            annotations: Vec::new(),
            platforms: Vec::new(),
            no_cache: false,
            pull: false,
            outputs: Vec::new(),
            push: false,
            load: false,
            secrets: Vec::new(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            ssh: Vec::new(),
            build_contexts: Vec::new(),
            run_options: RunOptions::default(),
            provenance: None,
            sbom: None,
            attests: Vec::new(),
            call: "build".to_owned(),
            check: None,
            metadata_file: None,
            collect_metadata: false,
            iidfile: None,
            link_output: None,
        }
    }
}

/// The options of the build's `RUN` instructions, and the entitlements they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// `--network`: `default`, `none` or `host`.
    pub network: String,
    /// `--add-host`: `host:ip` or `host=ip`; `host-gateway` as the IP is the engine's
    /// gateway on the docker driver.
    pub add_hosts: Vec<String>,
    /// `--allow`: `network.host`, `security.insecure`, `device[=NAME]`.
    pub allow: Vec<String>,
    /// `--shm-size`: `64m`, `1g`, … (Docker's `RAMInBytes`).
    pub shm_size: Option<String>,
    /// `--ulimit`: `NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `--no-cache-filter`: stages not to cache.
    pub no_cache_filter: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            network: "default".to_owned(),
            add_hosts: Vec::new(),
            allow: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            cgroup_parent: None,
            no_cache_filter: Vec::new(),
        }
    }
}
