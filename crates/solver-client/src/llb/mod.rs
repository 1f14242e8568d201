//! A builder for BuildKit's low-level build graph (LLB), for solves that do not go through
//! a Dockerfile.
//!
//! A [`State`] is one output of a graph vertex (or the empty `scratch`). Sources start a
//! graph, [`State::run`] adds a process execution on top of a state, [`State::file`] adds file
//! operations, and [`State::marshal`] turns the graph into the `pb.Definition` a
//! `SolveRequest` carries:
//!
//! ```
//! use brix_solver_client::llb::{self, FileActions, Platform};
//! let arm64 = Platform::parse("linux/arm64").expect("platform");
//! let base = llb::image("docker.io/library/busybox:latest").platform(arm64.clone()).into_state();
//! let built = base
//!     .run(["/bin/sh", "-c", "uname -m > /arch"])
//!     .custom_name("record the architecture")
//!     .root();
//! let out = llb::scratch().file(FileActions::new().copy(&built, "/arch", "/arch"));
//! let definition = out.marshal(&arm64).expect("marshal");
//! assert_eq!(definition.def.len(), 4); // image, exec, file, terminal
//! ```
//!
//! Marshalling is deterministic (maps are ordered, ops are hashed from their exact bytes), so
//! the same graph yields the same bytes and digests every time. Ops appear inputs-first,
//! each once, with the inputs-only terminal op last, as BuildKit's Go client emits them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};

pub use brix_config::Platform;

use crate::proto::pb;

/// Description key that sets a vertex's name in progress output.
const CUSTOM_NAME: &str = "llb.customname";

/// A graph that cannot be marshalled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LlbError {
    /// A solve needs at least one real operation.
    #[error("cannot marshal an empty (scratch) state: give the solve at least one operation")]
    Scratch,
    /// A path in a file action must be absolute.
    #[error("file action path {0:?} must be absolute")]
    RelativePath(String),
}

/// The digest BuildKit uses for an op: `sha256:` and the hex SHA-256 of its exact bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in sum {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// One output of a vertex, or scratch (nothing).
#[derive(Debug, Clone, Default)]
pub struct State {
    output: Option<Output>,
    /// Platform inherited by execs and file ops built on this state.
    platform: Option<Platform>,
}

#[derive(Debug, Clone)]
struct Output {
    vertex: Arc<Vertex>,
    index: i64,
}

impl Output {
    fn key(&self) -> (*const Vertex, i64) {
        (Arc::as_ptr(&self.vertex), self.index)
    }
}

#[derive(Debug, Default, Clone)]
struct OpMeta {
    custom_name: Option<String>,
    ignore_cache: bool,
}

impl OpMeta {
    fn to_proto(&self) -> Option<pb::OpMetadata> {
        if self.custom_name.is_none() && !self.ignore_cache {
            return None;
        }
        let mut md = pb::OpMetadata {
            ignore_cache: self.ignore_cache,
            ..Default::default()
        };
        if let Some(name) = &self.custom_name {
            md.description.insert(CUSTOM_NAME.to_owned(), name.clone());
        }
        Some(md)
    }
}

#[derive(Debug)]
struct Vertex {
    kind: VertexKind,
    /// `None` on a source means "not platform specific" (no platform in the op); on execs
    /// and file ops it means "the default platform given to marshal".
    platform: Option<Platform>,
    meta: OpMeta,
}

#[derive(Debug)]
enum VertexKind {
    Source {
        identifier: String,
        attrs: BTreeMap<String, String>,
    },
    Exec {
        meta: Box<pb::Meta>,
        /// Sorted by destination; the root mount (`/`) first.
        mounts: Vec<(String, ExecMount)>,
        network: pb::NetMode,
        security: pb::SecurityMode,
    },
    File {
        base: Option<Output>,
        actions: Vec<FileAction>,
    },
}

/// The empty filesystem.
pub fn scratch() -> State {
    State::default()
}

/// An image source (`docker-image://`). Short names are normalized as Docker does
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn image(reference: &str) -> ImageSource {
    ImageSource {
        reference: normalize_image_ref(reference),
        platform: None,
        custom_name: None,
    }
}

/// A local directory the client's session serves under `name` (`local://name`).
pub fn local(name: &str) -> LocalSource {
    LocalSource {
        name: name.to_owned(),
        session_id: None,
        include_patterns: Vec::new(),
        exclude_patterns: Vec::new(),
        follow_paths: Vec::new(),
        shared_key_hint: None,
        custom_name: None,
    }
}

/// Builder of an image source; see [`image`].
#[derive(Debug, Clone)]
pub struct ImageSource {
    reference: String,
    platform: Option<Platform>,
    custom_name: Option<String>,
}

impl ImageSource {
    /// Pulls the image for this platform (default: the platform given to marshal). Execs
    /// built on the resulting state run on it too.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The name shown in progress output.
    pub fn custom_name(mut self, name: impl Into<String>) -> Self {
        self.custom_name = Some(name.into());
        self
    }

    /// The image's root filesystem.
    pub fn into_state(self) -> State {
        let vertex = Vertex {
            kind: VertexKind::Source {
                identifier: format!("docker-image://{}", self.reference),
                attrs: BTreeMap::new(),
            },
            // Image sources are platform specific: marshal fills in the default.
            platform: self.platform.clone(),
            meta: OpMeta {
                custom_name: self.custom_name,
                ignore_cache: false,
            },
        };
        State {
            output: Some(Output {
                vertex: Arc::new(vertex),
                index: 0,
            }),
            platform: self.platform,
        }
    }
}

impl From<ImageSource> for State {
    fn from(source: ImageSource) -> State {
        source.into_state()
    }
}

/// Builder of a local source; see [`local`].
#[derive(Debug, Clone)]
pub struct LocalSource {
    name: String,
    session_id: Option<String>,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    follow_paths: Vec<String>,
    shared_key_hint: Option<String>,
    custom_name: Option<String>,
}

impl LocalSource {
    /// The session that serves the directory (`local.session`). Without it the daemon
    /// looks in the solve's session.
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Only send paths matching these patterns.
    pub fn include_patterns<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        patterns: I,
    ) -> Self {
        self.include_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Do not send paths matching these (`.dockerignore` syntax).
    pub fn exclude_patterns<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        patterns: I,
    ) -> Self {
        self.exclude_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Resolve symlinks along these paths and send their targets too.
    pub fn follow_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.follow_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// A key that lets the daemon reuse an earlier copy of this directory.
    pub fn shared_key_hint(mut self, hint: impl Into<String>) -> Self {
        self.shared_key_hint = Some(hint.into());
        self
    }

    /// The name shown in progress output.
    pub fn custom_name(mut self, name: impl Into<String>) -> Self {
        self.custom_name = Some(name.into());
        self
    }

    /// The directory's contents.
    pub fn into_state(self) -> State {
        let mut attrs = BTreeMap::new();
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned());
        if let Some(id) = self.session_id.filter(|s| !s.is_empty()) {
            attrs.insert("local.session".to_owned(), id);
        }
        if !self.include_patterns.is_empty() {
            attrs.insert(
                "local.includepattern".to_owned(),
                json(&self.include_patterns),
            );
        }
        if !self.exclude_patterns.is_empty() {
            attrs.insert(
                "local.excludepatterns".to_owned(),
                json(&self.exclude_patterns),
            );
        }
        if !self.follow_paths.is_empty() {
            attrs.insert("local.followpaths".to_owned(), json(&self.follow_paths));
        }
        if let Some(hint) = self.shared_key_hint.filter(|s| !s.is_empty()) {
            attrs.insert("local.sharedkeyhint".to_owned(), hint);
        }
        let vertex = Vertex {
            kind: VertexKind::Source {
                identifier: format!("local://{}", self.name),
                attrs,
            },
            // Local sources are not platform specific; Go leaves the platform out.
            platform: None,
            meta: OpMeta {
                custom_name: self.custom_name,
                ignore_cache: false,
            },
        };
        State {
            output: Some(Output {
                vertex: Arc::new(vertex),
                index: 0,
            }),
            platform: None,
        }
    }
}

impl From<LocalSource> for State {
    fn from(source: LocalSource) -> State {
        source.into_state()
    }
}

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    /// Shared by all users at once.
    #[default]
    Shared,
    /// One user at a time; others get a fresh copy.
    Private,
    /// One user at a time; others wait.
    Locked,
}

/// A mount of an exec besides its root filesystem.
#[derive(Debug, Clone)]
pub enum ExecMount {
    /// Another state's filesystem (or a directory of it).
    Bind {
        /// What is mounted.
        source: State,
        /// A path inside the source to mount instead of its root.
        selector: Option<String>,
        /// Read-only mounts produce no output.
        readonly: bool,
    },
    /// A persistent cache directory.
    Cache {
        /// Cache ID; mounts with the same ID share contents.
        id: String,
        /// Concurrency mode.
        sharing: CacheSharing,
    },
    /// An in-memory filesystem.
    Tmpfs {
        /// Size limit in bytes, if any.
        size: Option<i64>,
    },
    /// A session secret as a file.
    Secret {
        /// Secret ID in the session.
        id: String,
        /// Owner user ID.
        uid: u32,
        /// Owner group ID.
        gid: u32,
        /// File mode.
        mode: u32,
        /// Do not fail when the session lacks the secret.
        optional: bool,
    },
}

impl ExecMount {
    /// A writable bind mount of `source`.
    pub fn bind(source: &State) -> Self {
        ExecMount::Bind {
            source: source.clone(),
            selector: None,
            readonly: false,
        }
    }

    /// A read-only bind mount of `source`.
    pub fn readonly(source: &State) -> Self {
        ExecMount::Bind {
            source: source.clone(),
            selector: None,
            readonly: true,
        }
    }

    /// A shared cache mount.
    pub fn cache(id: impl Into<String>) -> Self {
        ExecMount::Cache {
            id: id.into(),
            sharing: CacheSharing::Shared,
        }
    }

    /// A tmpfs without a size limit.
    pub fn tmpfs() -> Self {
        ExecMount::Tmpfs { size: None }
    }

    /// A required secret owned by root with mode 0400.
    pub fn secret(id: impl Into<String>) -> Self {
        ExecMount::Secret {
            id: id.into(),
            uid: 0,
            gid: 0,
            mode: 0o400,
            optional: false,
        }
    }

    fn source(&self) -> Option<&Output> {
        match self {
            ExecMount::Bind { source, .. } => source.output.as_ref(),
            _ => None,
        }
    }

    /// Whether this mount produces an output state.
    fn has_output(&self) -> bool {
        matches!(
            self,
            ExecMount::Bind {
                readonly: false,
                ..
            }
        )
    }
}

/// Builder of a process execution; see [`State::run`].
#[derive(Debug, Clone)]
pub struct Exec {
    root: State,
    meta: pb::Meta,
    mounts: BTreeMap<String, ExecMount>,
    network: pb::NetMode,
    security: pb::SecurityMode,
    op_meta: OpMeta,
    platform: Option<Platform>,
}

impl Exec {
    /// Sets an environment variable (replacing an earlier value of the same name).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        let prefix = format!("{key}=");
        self.meta.env.retain(|e| !e.starts_with(&prefix));
        self.meta.env.push(format!("{key}={value}"));
        self
    }

    /// The working directory (default `/`).
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.meta.cwd = dir.into();
        self
    }

    /// The user to run as (`name`, `uid`, `uid:gid`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.meta.user = user.into();
        self
    }

    /// Adds a mount at `dest` (replacing an earlier one there).
    pub fn mount(mut self, dest: impl Into<String>, mount: ExecMount) -> Self {
        self.mounts.insert(dest.into(), mount);
        self
    }

    /// Uses the host's network namespace (needs the `network.host` entitlement).
    pub fn host_network(mut self) -> Self {
        self.network = pb::NetMode::Host;
        self
    }

    /// Runs on this platform instead of the root state's.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The name shown in progress output.
    pub fn custom_name(mut self, name: impl Into<String>) -> Self {
        self.op_meta.custom_name = Some(name.into());
        self
    }

    /// Never reuse a cached result of this step.
    pub fn ignore_cache(mut self) -> Self {
        self.op_meta.ignore_cache = true;
        self
    }

    /// Builds the vertex and returns its outputs: the root filesystem and every writable
    /// bind mount's filesystem after the process ran.
    pub fn build(self) -> ExecOutputs {
        let platform = self.platform.or_else(|| self.root.platform.clone());
        let mut mounts: Vec<(String, ExecMount)> = vec![(
            "/".to_owned(),
            ExecMount::Bind {
                source: self.root,
                selector: None,
                readonly: false,
            },
        )];
        mounts.extend(self.mounts.into_iter().filter(|(dest, _)| dest != "/"));
        let outputs: Vec<String> = mounts
            .iter()
            .filter(|(_, m)| m.has_output())
            .map(|(dest, _)| dest.clone())
            .collect();
        let mut meta = self.meta;
        if meta.cwd.is_empty() {
            meta.cwd = "/".to_owned();
        }
        let vertex = Arc::new(Vertex {
            kind: VertexKind::Exec {
                meta: Box::new(meta),
                mounts,
                network: self.network,
                security: self.security,
            },
            platform: platform.clone(),
            meta: self.op_meta,
        });
        let states = outputs
            .into_iter()
            .enumerate()
            .map(|(i, dest)| {
                let state = State {
                    output: Some(Output {
                        vertex: Arc::clone(&vertex),
                        index: i as i64,
                    }),
                    platform: platform.clone(),
                };
                (dest, state)
            })
            .collect();
        ExecOutputs { states }
    }

    /// Builds the vertex and returns the root filesystem after the process ran.
    pub fn root(self) -> State {
        let mut outputs = self.build();
        outputs.states.remove("/").unwrap_or_default()
    }
}

/// The output states of an exec, by mount destination (`/` is the root).
#[derive(Debug, Clone)]
pub struct ExecOutputs {
    states: BTreeMap<String, State>,
}

impl ExecOutputs {
    /// The root filesystem after the process ran.
    pub fn root(&self) -> State {
        self.states.get("/").cloned().unwrap_or_default()
    }

    /// The filesystem of the writable bind mount at `dest` after the process ran.
    pub fn mount(&self, dest: &str) -> Option<State> {
        self.states.get(dest).cloned()
    }
}

#[derive(Debug, Clone)]
enum FileAction {
    Mkdir {
        path: String,
        mode: u32,
        parents: bool,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
    },
    Copy {
        source: State,
        src: String,
        dest: String,
        options: CopyOptions,
    },
}

/// Options of a copy action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Follow a symlink at `src` instead of copying the link.
    pub follow_symlink: bool,
    /// For a directory `src`, copy its contents rather than the directory itself.
    pub copy_dir_contents: bool,
    /// Create missing parents of `dest`.
    pub create_dest_path: bool,
    /// Treat `src` as a glob.
    pub allow_wildcard: bool,
    /// Do not fail when a glob matches nothing.
    pub allow_empty_wildcard: bool,
    /// Mode of the copied files, if changed.
    pub mode: Option<u32>,
}

/// A chain of file operations applied in order; see [`State::file`].
#[derive(Debug, Clone, Default)]
pub struct FileActions {
    actions: Vec<FileAction>,
    meta: OpMeta,
}

impl FileActions {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a directory (and its parents) with `mode`.
    pub fn mkdir(mut self, path: impl Into<String>, mode: u32) -> Self {
        self.actions.push(FileAction::Mkdir {
            path: path.into(),
            mode,
            parents: true,
        });
        self
    }

    /// Creates a file with `mode` and contents.
    pub fn mkfile(mut self, path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        self.actions.push(FileAction::Mkfile {
            path: path.into(),
            mode,
            data: data.into(),
        });
        self
    }

    /// Removes a path; a missing path is not an error.
    pub fn rm(mut self, path: impl Into<String>) -> Self {
        self.actions.push(FileAction::Rm {
            path: path.into(),
            allow_not_found: true,
        });
        self
    }

    /// Copies `src` from another state to `dest` (creating `dest`'s parents).
    pub fn copy(self, source: &State, src: impl Into<String>, dest: impl Into<String>) -> Self {
        self.copy_with(
            source,
            src,
            dest,
            CopyOptions {
                create_dest_path: true,
                ..Default::default()
            },
        )
    }

    /// Copies with explicit options.
    pub fn copy_with(
        mut self,
        source: &State,
        src: impl Into<String>,
        dest: impl Into<String>,
        options: CopyOptions,
    ) -> Self {
        self.actions.push(FileAction::Copy {
            source: source.clone(),
            src: src.into(),
            dest: dest.into(),
            options,
        });
        self
    }

    /// The name shown in progress output.
    pub fn custom_name(mut self, name: impl Into<String>) -> Self {
        self.meta.custom_name = Some(name.into());
        self
    }
}

impl State {
    /// Whether this is the empty filesystem.
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The platform execs and file ops built on this state run on.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    /// The same state, with later execs and file ops running on `platform`.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Starts a process execution with this state as its root filesystem.
    pub fn run<I, S>(&self, args: I) -> Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec {
            root: self.clone(),
            meta: pb::Meta {
                args: args.into_iter().map(Into::into).collect(),
                ..Default::default()
            },
            mounts: BTreeMap::new(),
            network: pb::NetMode::Unset,
            security: pb::SecurityMode::Sandbox,
            op_meta: OpMeta::default(),
            platform: None,
        }
    }

    /// Applies file actions on top of this state.
    pub fn file(&self, actions: FileActions) -> State {
        let vertex = Vertex {
            kind: VertexKind::File {
                base: self.output.clone(),
                actions: actions.actions,
            },
            platform: self.platform.clone(),
            meta: actions.meta,
        };
        State {
            output: Some(Output {
                vertex: Arc::new(vertex),
                index: 0,
            }),
            platform: self.platform.clone(),
        }
    }

    /// Marshals the graph that produces this state. `default_platform` is used for image
    /// sources, execs and file ops that have none (BuildKit's Go client uses the client's
    /// own platform).
    pub fn marshal(&self, default_platform: &Platform) -> Result<pb::Definition, LlbError> {
        let output = self.output.as_ref().ok_or(LlbError::Scratch)?;
        let mut m = Marshaller {
            default_platform,
            digests: HashMap::new(),
            seen: HashSet::new(),
            def: pb::Definition::default(),
        };
        let digest = m.vertex(&output.vertex)?;
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest,
                index: output.index,
            }],
            ..Default::default()
        };
        m.def.def.push(terminal.encode_to_vec());
        Ok(m.def)
    }
}

struct Marshaller<'a> {
    default_platform: &'a Platform,
    digests: HashMap<*const Vertex, String>,
    seen: HashSet<String>,
    def: pb::Definition,
}

impl Marshaller<'_> {
    /// Marshals a vertex after its inputs and returns its digest.
    fn vertex(&mut self, v: &Arc<Vertex>) -> Result<String, LlbError> {
        if let Some(d) = self.digests.get(&Arc::as_ptr(v)) {
            return Ok(d.clone());
        }
        let mut inputs = InputList::default();
        let op = match &v.kind {
            VertexKind::Source { identifier, attrs } => pb::op::Op::Source(pb::SourceOp {
                identifier: identifier.clone(),
                attrs: attrs.clone(),
            }),
            VertexKind::Exec {
                meta,
                mounts,
                network,
                security,
            } => {
                let mut output = 0i64;
                let mut pb_mounts = Vec::with_capacity(mounts.len());
                for (dest, mount) in mounts {
                    let input = match mount.source() {
                        Some(src) => inputs.index_of(self, src)?,
                        None => -1,
                    };
                    let mut pm = pb::Mount {
                        input,
                        dest: dest.clone(),
                        output: -1,
                        ..Default::default()
                    };
                    if mount.has_output() {
                        pm.output = output;
                        output += 1;
                    }
                    match mount {
                        ExecMount::Bind {
                            selector, readonly, ..
                        } => {
                            pm.selector = selector.clone().unwrap_or_default();
                            pm.readonly = *readonly;
                            pm.mount_type = pb::MountType::Bind as i32;
                        }
                        ExecMount::Cache { id, sharing } => {
                            pm.mount_type = pb::MountType::Cache as i32;
                            pm.cache_opt = Some(pb::CacheOpt {
                                id: id.clone(),
                                sharing: match sharing {
                                    CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                                    CacheSharing::Private => pb::CacheSharingOpt::Private,
                                    CacheSharing::Locked => pb::CacheSharingOpt::Locked,
                                } as i32,
                            });
                        }
                        ExecMount::Tmpfs { size } => {
                            pm.mount_type = pb::MountType::Tmpfs as i32;
                            pm.tmpfs_opt = Some(pb::TmpfsOpt {
                                size: size.unwrap_or(0),
                            });
                        }
                        ExecMount::Secret {
                            id,
                            uid,
                            gid,
                            mode,
                            optional,
                        } => {
                            pm.mount_type = pb::MountType::Secret as i32;
                            pm.secret_opt = Some(pb::SecretOpt {
                                id: id.clone(),
                                uid: *uid,
                                gid: *gid,
                                mode: *mode,
                                optional: *optional,
                            });
                        }
                    }
                    pb_mounts.push(pm);
                }
                pb::op::Op::Exec(pb::ExecOp {
                    meta: Some(pb::Meta::clone(meta)),
                    mounts: pb_mounts,
                    network: *network as i32,
                    security: *security as i32,
                    ..Default::default()
                })
            }
            VertexKind::File { base, actions } => {
                let base_index = match base {
                    Some(b) => inputs.index_of(self, b)?,
                    None => -1,
                };
                // Secondary inputs (copy sources) get their input slots first, so that
                // "len(inputs) + j" below names the output of action j.
                let mut secondaries = Vec::with_capacity(actions.len());
                for action in actions {
                    secondaries.push(match action {
                        FileAction::Copy { source, .. } => match &source.output {
                            Some(src) => inputs.index_of(self, src)?,
                            None => -1,
                        },
                        _ => -1,
                    });
                }
                let n_inputs = inputs.len() as i64;
                let last = actions.len().saturating_sub(1);
                let mut pb_actions = Vec::with_capacity(actions.len());
                for (j, action) in actions.iter().enumerate() {
                    let input = if j == 0 {
                        base_index
                    } else {
                        n_inputs + j as i64 - 1
                    };
                    let output = if j == last { 0 } else { -1 };
                    let pb_action = match action {
                        FileAction::Mkdir {
                            path,
                            mode,
                            parents,
                        } => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                            path: absolute(path)?,
                            mode: *mode as i32,
                            make_parents: *parents,
                            timestamp: -1,
                            ..Default::default()
                        }),
                        FileAction::Mkfile { path, mode, data } => {
                            pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                                path: absolute(path)?,
                                mode: *mode as i32,
                                data: data.clone(),
                                timestamp: -1,
                                ..Default::default()
                            })
                        }
                        FileAction::Rm {
                            path,
                            allow_not_found,
                        } => pb::file_action::Action::Rm(pb::FileActionRm {
                            path: absolute(path)?,
                            allow_not_found: *allow_not_found,
                            allow_wildcard: false,
                        }),
                        FileAction::Copy {
                            src, dest, options, ..
                        } => pb::file_action::Action::Copy(pb::FileActionCopy {
                            src: absolute(src)?,
                            dest: absolute(dest)?,
                            mode: options.mode.map_or(-1, |m| m as i32),
                            follow_symlink: options.follow_symlink,
                            dir_copy_contents: options.copy_dir_contents,
                            create_dest_path: options.create_dest_path,
                            allow_wildcard: options.allow_wildcard,
                            allow_empty_wildcard: options.allow_empty_wildcard,
                            timestamp: -1,
                            ..Default::default()
                        }),
                    };
                    pb_actions.push(pb::FileAction {
                        input,
                        secondary_input: secondaries[j],
                        output,
                        action: Some(pb_action),
                    });
                }
                pb::op::Op::File(pb::FileOp {
                    actions: pb_actions,
                })
            }
        };
        let platform = match (&v.kind, &v.platform) {
            (VertexKind::Source { identifier, .. }, p) if !is_platform_specific(identifier) => {
                p.as_ref().map(to_pb_platform)
            }
            (_, Some(p)) => Some(to_pb_platform(p)),
            (_, None) => Some(to_pb_platform(self.default_platform)),
        };
        let op = pb::Op {
            inputs: inputs.list,
            op: Some(op),
            platform,
            constraints: Some(pb::WorkerConstraints::default()),
        };
        let bytes = op.encode_to_vec();
        let digest = digest_of(&bytes);
        if self.seen.insert(digest.clone()) {
            self.def.def.push(bytes);
            if let Some(md) = v.meta.to_proto() {
                self.def.metadata.insert(digest.clone(), md);
            }
        }
        self.digests.insert(Arc::as_ptr(v), digest.clone());
        Ok(digest)
    }
}

/// The inputs of one op, deduplicated by (vertex, output).
#[derive(Default)]
struct InputList {
    keys: Vec<(*const Vertex, i64)>,
    list: Vec<pb::Input>,
}

impl InputList {
    fn index_of(&mut self, m: &mut Marshaller<'_>, output: &Output) -> Result<i64, LlbError> {
        if let Some(i) = self.keys.iter().position(|k| *k == output.key()) {
            return Ok(i as i64);
        }
        let digest = m.vertex(&output.vertex)?;
        self.keys.push(output.key());
        self.list.push(pb::Input {
            digest,
            index: output.index,
        });
        Ok(self.list.len() as i64 - 1)
    }

    fn len(&self) -> usize {
        self.list.len()
    }
}

fn absolute(path: &str) -> Result<String, LlbError> {
    if path.starts_with('/') {
        Ok(path.to_owned())
    } else {
        Err(LlbError::RelativePath(path.to_owned()))
    }
}

/// Sources whose contents depend on the platform (BuildKit's `platformSpecificSource`).
fn is_platform_specific(identifier: &str) -> bool {
    identifier.starts_with("docker-image://") || identifier.starts_with("oci-layout://")
}

fn to_pb_platform(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone().unwrap_or_default(),
        os_features: p.os_features.clone(),
    }
}

/// Docker's reference normalization: a missing registry is `docker.io`, a single-component
/// Docker Hub name gets `library/`, and a missing tag (without digest) is `latest`.
fn normalize_image_ref(reference: &str) -> String {
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (reference, None),
    };
    let has_domain =
        rest.is_some() && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_domain, rest) {
        (true, _) => reference.to_owned(),
        (false, Some(_)) => format!("docker.io/{reference}"),
        (false, None) => format!("docker.io/library/{reference}"),
    };
    let name_part = full.rsplit('/').next().unwrap_or_default();
    if !name_part.contains(':') && !full.contains('@') {
        full.push_str(":latest");
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        Platform::new("linux", "amd64", "")
    }

    fn decode(def: &pb::Definition) -> Vec<pb::Op> {
        def.def
            .iter()
            .map(|b| pb::Op::decode(&b[..]).expect("op decodes"))
            .collect()
    }

    fn graph() -> State {
        let base = image("busybox")
            .platform(Platform::new("linux", "arm64", ""))
            .into_state();
        let ctx = local("context")
            .session_id("sess")
            .exclude_patterns(["*.tmp"])
            .into_state();
        let built = base
            .run(["/bin/sh", "-c", "cp -r /src /out && uname -m > /arch"])
            .env("A", "1")
            .env("B", "2")
            .mount("/src", ExecMount::readonly(&ctx))
            .mount("/cache", ExecMount::cache("c1"))
            .mount("/run/secrets/tok", ExecMount::secret("tok"))
            .mount("/tmp", ExecMount::tmpfs())
            .custom_name("build it")
            .root();
        scratch().file(
            FileActions::new()
                .mkdir("/out", 0o755)
                .copy(&built, "/arch", "/out/arch")
                .copy(&ctx, "/", "/out/src")
                .mkfile("/out/marker", 0o644, b"x".to_vec())
                .rm("/out/src/junk"),
        )
    }

    #[test]
    fn same_graph_same_bytes_and_digests() {
        let a = graph().marshal(&amd64()).expect("marshal");
        let b = graph().marshal(&amd64()).expect("marshal");
        assert_eq!(a.def, b.def);
        assert_eq!(a.metadata, b.metadata);
        assert_eq!(a.encode_to_vec(), b.encode_to_vec());
    }

    #[test]
    fn terminal_op_is_inputs_only_and_last() {
        let def = graph().marshal(&amd64()).expect("marshal");
        let ops = decode(&def);
        let terminal = ops.last().expect("ops");
        assert!(
            terminal.op.is_none() && terminal.platform.is_none() && terminal.constraints.is_none()
        );
        assert_eq!(terminal.inputs.len(), 1);
        assert_eq!(
            terminal.inputs[0].digest,
            digest_of(&def.def[def.def.len() - 2])
        );
        assert!(matches!(ops[ops.len() - 2].op, Some(pb::op::Op::File(_))));
    }

    #[test]
    fn inputs_come_before_dependents_and_appear_once() {
        let def = graph().marshal(&amd64()).expect("marshal");
        let digests: Vec<String> = def.def.iter().map(|b| digest_of(b)).collect();
        let unique: HashSet<_> = digests.iter().collect();
        assert_eq!(unique.len(), digests.len(), "no duplicate ops");
        // image, local, exec, file, terminal: the local source is used twice but sent once.
        assert_eq!(digests.len(), 5);
        for (i, op) in decode(&def).iter().enumerate() {
            for input in &op.inputs {
                let at = digests
                    .iter()
                    .position(|d| *d == input.digest)
                    .expect("input is in the definition");
                assert!(at < i, "input {at} must precede op {i}");
            }
        }
    }

    #[test]
    fn platforms_follow_the_go_client() {
        let def = graph().marshal(&amd64()).expect("marshal");
        for op in decode(&def).iter().take(def.def.len() - 1) {
            assert!(op.constraints.is_some());
            match &op.op {
                Some(pb::op::Op::Source(s)) if s.identifier.starts_with("local://") => {
                    assert_eq!(op.platform, None);
                    assert_eq!(
                        s.attrs.get("local.session").map(String::as_str),
                        Some("sess")
                    );
                    assert_eq!(
                        s.attrs.get("local.excludepatterns").map(String::as_str),
                        Some(r#"["*.tmp"]"#)
                    );
                }
                Some(pb::op::Op::Source(s)) => {
                    assert_eq!(
                        s.identifier,
                        "docker-image://docker.io/library/busybox:latest"
                    );
                    assert_eq!(
                        op.platform.as_ref().map(|p| p.architecture.as_str()),
                        Some("arm64")
                    );
                }
                // The exec inherits the image's platform; the scratch-based file op gets the default.
                Some(pb::op::Op::Exec(_)) => assert_eq!(
                    op.platform.as_ref().map(|p| p.architecture.as_str()),
                    Some("arm64")
                ),
                Some(pb::op::Op::File(_)) => assert_eq!(
                    op.platform.as_ref().map(|p| p.architecture.as_str()),
                    Some("amd64")
                ),
                other => panic!("unexpected op {other:?}"),
            }
        }
    }

    #[test]
    fn exec_mounts_are_sorted_with_outputs_and_inputs_deduplicated() {
        let def = graph().marshal(&amd64()).expect("marshal");
        let ops = decode(&def);
        let exec = ops
            .iter()
            .find_map(|op| match &op.op {
                Some(pb::op::Op::Exec(e)) => Some((op, e)),
                _ => None,
            })
            .expect("exec");
        let (op, exec) = exec;
        let dests: Vec<_> = exec.mounts.iter().map(|m| m.dest.as_str()).collect();
        assert_eq!(dests, ["/", "/cache", "/run/secrets/tok", "/src", "/tmp"]);
        let outputs: Vec<_> = exec.mounts.iter().map(|m| m.output).collect();
        assert_eq!(outputs, [0, -1, -1, -1, -1]);
        let inputs: Vec<_> = exec.mounts.iter().map(|m| m.input).collect();
        assert_eq!(inputs, [0, -1, -1, 1, -1]);
        assert_eq!(op.inputs.len(), 2);
        let meta = exec.meta.as_ref().expect("meta");
        assert_eq!(meta.env, ["A=1", "B=2"]);
        assert_eq!(meta.cwd, "/");
        assert_eq!(
            def.metadata
                .get(&digest_of(&def.def[2]))
                .and_then(|m| m.description.get("llb.customname"))
                .map(String::as_str),
            Some("build it")
        );
    }

    #[test]
    fn file_actions_chain_through_their_outputs() {
        let def = graph().marshal(&amd64()).expect("marshal");
        let ops = decode(&def);
        let (op, file) = ops
            .iter()
            .find_map(|op| match &op.op {
                Some(pb::op::Op::File(f)) => Some((op, f)),
                _ => None,
            })
            .expect("file op");
        // Two distinct copy sources: the exec's root and the local context.
        assert_eq!(op.inputs.len(), 2);
        let shape: Vec<(i64, i64, i64)> = file
            .actions
            .iter()
            .map(|a| (a.input, a.secondary_input, a.output))
            .collect();
        assert_eq!(
            shape,
            [
                (-1, -1, -1),
                (2, 0, -1),
                (3, 1, -1),
                (4, -1, -1),
                (5, -1, 0)
            ]
        );
    }

    #[test]
    fn rejects_scratch_and_relative_paths() {
        assert_eq!(
            scratch().marshal(&amd64()).expect_err("scratch"),
            LlbError::Scratch
        );
        let bad = scratch().file(FileActions::new().mkdir("rel", 0o755));
        assert_eq!(
            bad.marshal(&amd64()).expect_err("relative"),
            LlbError::RelativePath("rel".into())
        );
    }

    #[test]
    fn normalizes_image_references() {
        assert_eq!(
            normalize_image_ref("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image_ref("user/app:1"), "docker.io/user/app:1");
        assert_eq!(
            normalize_image_ref("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(
            normalize_image_ref("ghcr.io/a/b@sha256:abc"),
            "ghcr.io/a/b@sha256:abc"
        );
    }
}
