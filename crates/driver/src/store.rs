//! The builder store: named builders (node groups) on disk, in buildx's JSON shape.
//!
//! The store is buildx's own (`$BUILDX_CONFIG`, else `$DOCKER_CONFIG/buildx`, else
//! `~/.docker/buildx`; `$BRIX_CONFIG` overrides all three), so a builder created by either
//! tool is listed, used and removed by the other. Its layout, which both tools read and
//! write (under the same `flock` on `.lock`):
//!
//! | path | contents |
//! |---|---|
//! | `instances/<name>` | the [`NodeGroup`] as JSON |
//! | `current` | `{"Key":"<docker endpoint>","Name":"<builder>","Global":false}` |
//! | `defaults/<first 20 hex of sha256(key)>` | builder name, written by `use --default` |
//! | `activity/<name>` | RFC 3339 UTC time of the last save |
//! | `refs/<builder>/<node>/<build ref>` | [`LocalState`]: what a build was started from |
//!
//! Every read and write happens inside a [`Txn`], which holds an exclusive lock on `.lock`
//! for its lifetime, so two brix processes never interleave their updates. Each file is
//! written to a temporary file in the same directory, fsynced, then renamed over the target.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use brix_config::Platform;

use crate::timefmt;

const INSTANCES_DIR: &str = "instances";
const DEFAULTS_DIR: &str = "defaults";
const ACTIVITY_DIR: &str = "activity";
const CURRENT_FILE: &str = "current";
const REFS_DIR: &str = "refs";

/// What one build was started from (`refs/<builder>/<node>/<ref>`), in buildx's
/// `localstate.State` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalState {
    /// The target stage, or `default`.
    pub target: String,
    /// The build context: an absolute path, or the remote context as given.
    pub local_path: String,
    /// The Dockerfile's absolute path when `-f` named one, else empty.
    pub dockerfile_path: String,
    /// The bake group the build belongs to, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_ref: String,
}
const LOCK_FILE: &str = ".lock";

/// An error reading or writing the builder store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No home directory and no `BRIX_CONFIG`/`DOCKER_CONFIG` to place the store in.
    #[error(
        "cannot find the builder store: set BUILDX_CONFIG or BRIX_CONFIG (or DOCKER_CONFIG, or HOME)"
    )]
    NoRoot,
    /// A file or directory of the store could not be read or written.
    #[error("builder store {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A store file is not valid JSON of the expected shape.
    #[error("builder store file {path} is corrupt ({source}); fix or delete it")]
    Corrupt {
        /// The corrupt file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A builder or node name does not match `^[a-zA-Z][a-zA-Z0-9._-]*$`.
    #[error(
        "invalid name {0:?}: a name needs to start with a letter and may only contain letters, digits and ._-"
    )]
    InvalidName(String),
    /// No builder of this name exists in the store.
    #[error("no builder {0:?} found (see `brix ls`)")]
    NotFound(String),
}

/// One builder: a named group of BuildKit nodes driven by one driver.
///
/// Serialised exactly as buildx serialises its `store.NodeGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// Builder name (lower case).
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver name: `docker-container`, `docker` or `remote`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The nodes, in creation order.
    #[serde(rename = "Nodes", default, deserialize_with = "null_as_default")]
    pub nodes: Vec<Node>,
    /// Whether nodes are discovered at run time (buildx's kubernetes driver); always false here.
    #[serde(rename = "Dynamic", default)]
    pub dynamic: bool,
    /// Time of the last save; kept in `activity/<name>`, not in the instance file.
    #[serde(skip)]
    pub last_activity: Option<SystemTime>,
}

/// One node of a builder: one BuildKit daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Node name, by default `<builder><index>`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Where the node lives: a Docker endpoint for docker-container, a BuildKit address for remote.
    #[serde(rename = "Endpoint")]
    pub endpoint: String,
    /// Platforms pinned with `create --platform`, serialised as OCI platform objects.
    #[serde(rename = "Platforms", default, deserialize_with = "null_as_default")]
    pub platforms: Vec<Platform>,
    /// Driver options (`--driver-opt k=v`).
    #[serde(rename = "DriverOpts", default, deserialize_with = "null_as_default")]
    pub driver_opts: BTreeMap<String, String>,
    /// Flags for `buildkitd` (buildx keeps the JSON name `Flags`).
    #[serde(rename = "Flags", default, deserialize_with = "null_as_default")]
    pub buildkitd_flags: Vec<String>,
    /// Files copied into the daemon's `/etc/buildkit/`: `buildkitd.toml` and registry certificates.
    #[serde(
        rename = "Files",
        default,
        with = "base64_files",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub files: BTreeMap<String, Vec<u8>>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go's `map[string][]byte` marshals its values as standard base64 strings.
mod base64_files {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeMap};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &STANDARD.encode(v))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let raw: Option<BTreeMap<String, String>> = Option::deserialize(d)?;
        raw.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                STANDARD
                    .decode(v.as_bytes())
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

impl NodeGroup {
    /// The first free node name `<builder><i>`.
    pub fn next_node_name(&self) -> String {
        (0..)
            .map(|i| format!("{}{i}", self.name))
            .find(|n| !self.nodes.iter().any(|node| &node.name == n))
            .unwrap_or_default()
    }

    /// Index of the node called `name`.
    pub fn find_node(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

/// The record of the current builder (`current`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Current {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Global", default)]
    global: bool,
}

/// Checks a builder or node name against buildx's rule and returns it lower-cased.
pub fn validate_name(name: &str) -> Result<String, StoreError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// The directory that holds the builder store, shared with buildx: `$BRIX_CONFIG`, else
/// buildx's `$BUILDX_CONFIG`, else `$DOCKER_CONFIG/buildx`, else `~/.docker/buildx`.
pub fn default_root() -> Result<PathBuf, StoreError> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = non_empty("BRIX_CONFIG").or_else(|| non_empty("BUILDX_CONFIG")) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = non_empty("DOCKER_CONFIG") {
        return Ok(PathBuf::from(p).join("buildx"));
    }
    non_empty("HOME")
        .map(|h| PathBuf::from(h).join(".docker").join("buildx"))
        .ok_or(StoreError::NoRoot)
}

/// A builder store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at [`default_root`], creating its directories.
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(default_root()?)
    }

    /// Opens (and creates if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for d in [INSTANCES_DIR, DEFAULTS_DIR, ACTIVITY_DIR] {
            let p = root.join(d);
            create_dir_private(&p).map_err(|source| StoreError::Io { path: p, source })?;
        }
        Ok(Self { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts a transaction: blocks until the store's lock file is exclusively ours.
    pub fn txn(&self) -> Result<Txn<'_>, StoreError> {
        let path = self.root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        lock.lock()
            .map_err(|source| StoreError::Io { path, source })?;
        Ok(Txn {
            store: self,
            _lock: lock,
        })
    }
}

fn create_dir_private(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

/// A locked view of the store. The lock is released when the value is dropped.
#[derive(Debug)]
pub struct Txn<'a> {
    store: &'a Store,
    // Holding the file keeps the advisory lock; closing it releases the lock.
    _lock: File,
}

impl Txn<'_> {
    fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.store.root.join(rel)
    }

    /// All builders, sorted by name.
    pub fn list(&self) -> Result<Vec<NodeGroup>, StoreError> {
        let dir = self.path(INSTANCES_DIR);
        let entries = fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Temporary files of an interrupted write are not builders.
            if name.starts_with('.') {
                continue;
            }
            match self.node_group(&name) {
                Ok(ng) => out.push(ng),
                Err(StoreError::NotFound(_)) => continue,
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The builder called `name` (case-insensitive), or [`StoreError::NotFound`].
    pub fn node_group(&self, name: &str) -> Result<NodeGroup, StoreError> {
        let name = validate_name(name)?;
        let path = self.path(Path::new(INSTANCES_DIR).join(&name));
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name));
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut ng: NodeGroup =
            serde_json::from_slice(&data).map_err(|source| StoreError::Corrupt { path, source })?;
        ng.last_activity = self.last_activity(&name)?;
        Ok(ng)
    }

    /// Whether a builder called `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        match self.node_group(name) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the builder and stamps its last activity with the current time.
    pub fn save(&mut self, ng: &mut NodeGroup) -> Result<(), StoreError> {
        let name = validate_name(&ng.name)?;
        ng.name = name.clone();
        let now = SystemTime::now();
        self.write(
            Path::new(ACTIVITY_DIR).join(&name),
            timefmt::rfc3339(now).as_bytes(),
        )?;
        ng.last_activity = Some(now);
        let data = serde_json::to_vec(ng).map_err(|source| StoreError::Corrupt {
            path: self.path(INSTANCES_DIR).join(&name),
            source,
        })?;
        self.write(Path::new(INSTANCES_DIR).join(&name), &data)
    }

    /// Updates only the last-activity time of `name`.
    pub fn touch(&mut self, name: &str) -> Result<(), StoreError> {
        let name = validate_name(name)?;
        self.write(
            Path::new(ACTIVITY_DIR).join(&name),
            timefmt::rfc3339(SystemTime::now()).as_bytes(),
        )
    }

    /// Removes the builder's files from the store (not its daemon).
    pub fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        let name = validate_name(name)?;
        for rel in [
            Path::new(ACTIVITY_DIR).join(&name),
            Path::new(INSTANCES_DIR).join(&name),
        ] {
            let p = self.path(rel);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path: p, source }),
            }
        }
        Ok(())
    }

    fn last_activity(&self, name: &str) -> Result<Option<SystemTime>, StoreError> {
        let path = self.path(Path::new(ACTIVITY_DIR).join(name));
        match fs::read_to_string(&path) {
            Ok(s) => Ok(timefmt::parse_rfc3339(s.trim())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Makes `name` the current builder for the Docker endpoint `key`.
    ///
    /// `global` keeps it current whatever the endpoint; `default` also records it as the
    /// endpoint's default, which survives switching to another builder elsewhere.
    /// An empty `name` means the endpoint's own `default` builder.
    pub fn set_current(
        &mut self,
        key: &str,
        name: &str,
        global: bool,
        default: bool,
    ) -> Result<(), StoreError> {
        let cur = Current {
            key: key.to_string(),
            name: name.to_string(),
            global,
        };
        let data = serde_json::to_vec(&cur).map_err(|source| StoreError::Corrupt {
            path: self.path(CURRENT_FILE),
            source,
        })?;
        self.write(CURRENT_FILE, &data)?;
        let def = Path::new(DEFAULTS_DIR).join(key_hash(key));
        if default {
            self.write(&def, name.as_bytes())?;
        } else {
            let _ = fs::remove_file(self.path(def));
        }
        Ok(())
    }

    /// The name of the current builder for the Docker endpoint `key`, if one was chosen and
    /// still exists. `None` means the endpoint's `default` builder.
    pub fn current(&self, key: &str) -> Result<Option<String>, StoreError> {
        let path = self.path(CURRENT_FILE);
        match fs::read(&path) {
            Ok(data) => {
                let cur: Current =
                    serde_json::from_slice(&data).map_err(|source| StoreError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if !cur.name.is_empty() && (cur.global || cur.key == key) {
                    if self.exists(&cur.name)? {
                        return Ok(Some(cur.name));
                    }
                    if cur.key == key {
                        return Ok(None);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        let def = self.path(Path::new(DEFAULTS_DIR).join(key_hash(key)));
        match fs::read_to_string(&def) {
            Ok(name) if self.exists(name.trim())? => Ok(Some(name.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path: def, source }),
        }
    }

    /// Records what a build was started from, as buildx keeps it for `history` and Docker's
    /// tooling: `refs/<builder>/<node>/<build ref>`.
    pub fn save_local_state(
        &mut self,
        builder: &str,
        node: &str,
        build_ref: &str,
        state: &LocalState,
    ) -> Result<(), StoreError> {
        let dir = Path::new(REFS_DIR).join(builder).join(node);
        let abs = self.path(&dir);
        create_dir_private(&abs).map_err(|source| StoreError::Io { path: abs, source })?;
        let data = serde_json::to_vec(state).map_err(|source| StoreError::Corrupt {
            path: self.path(dir.join(build_ref)),
            source,
        })?;
        self.write(dir.join(build_ref), &data)
    }

    /// Atomic write: temp file in the same directory, fsync, rename, fsync the directory.
    fn write(&self, rel: impl AsRef<Path>, data: &[u8]) -> Result<(), StoreError> {
        let path = self.path(rel);
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(&self.store.root).to_path_buf();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{file_name}-{}", std::process::id()));
        let result = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err)
    }
}

fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..20].to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn temp_store() -> (tempdir::Dir, Store) {
        let d = tempdir::Dir::new();
        let s = Store::open(d.path()).expect("open store");
        (d, s)
    }

    /// A tiny self-cleaning temporary directory, to avoid a dev-dependency for one use.
    mod tempdir {
        use std::path::{Path, PathBuf};
        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "brix-store-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).expect("tempdir");
                Dir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn names_follow_buildx_rule() {
        assert_eq!(validate_name("Builder-Test").unwrap(), "builder-test");
        assert_eq!(validate_name("a.b_c-1").unwrap(), "a.b_c-1");
        for bad in ["", "1abc", "-x", "a b", "a/b", "ä"] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn reads_buildx_json_shape() {
        let json = r#"{"Name":"mybuilder","Driver":"docker-container","Dynamic":false,
 "Nodes":[{"Name":"mybuilder0","Endpoint":"unix:///var/run/docker.sock",
   "Platforms":[{"architecture":"arm64","os":"linux"}],
   "DriverOpts":{"image":"moby/buildkit:buildx-stable-1"},
   "Flags":["--allow-insecure-entitlement=network.host"],
   "Files":{"buildkitd.toml":"W3dvcmtlci5vY2ldCg=="}}]}"#;
        let ng: NodeGroup = serde_json::from_str(json).unwrap();
        assert_eq!(ng.nodes[0].platforms[0].to_string(), "linux/arm64");
        assert_eq!(ng.nodes[0].files["buildkitd.toml"], b"[worker.oci]\n");
        let back = serde_json::to_value(&ng).unwrap();
        assert_eq!(
            back["Nodes"][0]["Files"]["buildkitd.toml"],
            "W3dvcmtlci5vY2ldCg=="
        );
        assert_eq!(
            back["Nodes"][0]["Flags"][0],
            "--allow-insecure-entitlement=network.host"
        );
        // buildx writes null for empty Go slices and maps.
        let ng: NodeGroup = serde_json::from_str(
            r#"{"Name":"x","Driver":"remote","Nodes":[{"Name":"x0","Endpoint":"unix:///s","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}"#,
        )
        .unwrap();
        assert!(ng.nodes[0].platforms.is_empty());
    }

    #[test]
    fn save_list_remove_roundtrip() {
        let (_d, s) = temp_store();
        let mut t = s.txn().unwrap();
        let mut ng = NodeGroup {
            name: "Zeta".into(),
            driver: "remote".into(),
            ..Default::default()
        };
        ng.nodes.push(Node {
            name: ng.next_node_name(),
            endpoint: "unix:///x".into(),
            ..Default::default()
        });
        t.save(&mut ng).unwrap();
        let mut a = NodeGroup {
            name: "alpha".into(),
            driver: "remote".into(),
            ..Default::default()
        };
        t.save(&mut a).unwrap();
        let names: Vec<_> = t.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        let z = t.node_group("ZETA").unwrap();
        assert_eq!(z.nodes[0].name, "Zeta0");
        assert!(z.last_activity.is_some());
        t.remove("zeta").unwrap();
        assert!(matches!(t.node_group("zeta"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn local_state_is_buildx_s_refs_file() {
        let (dir, store) = temp_store();
        let mut t = store.txn().unwrap();
        let state = LocalState {
            target: "default".into(),
            local_path: "/src/app".into(),
            dockerfile_path: String::new(),
            group_ref: String::new(),
        };
        t.save_local_state("b", "b0", "abc123", &state).unwrap();
        let written = std::fs::read_to_string(dir.path().join("refs/b/b0/abc123")).unwrap();
        // What buildx 0.29 wrote for the same build.
        assert_eq!(
            written,
            r#"{"Target":"default","LocalPath":"/src/app","DockerfilePath":""}"#
        );
    }

    #[test]
    fn current_is_per_endpoint() {
        let (_d, s) = temp_store();
        let mut t = s.txn().unwrap();
        let mut ng = NodeGroup {
            name: "b1".into(),
            driver: "remote".into(),
            ..Default::default()
        };
        t.save(&mut ng).unwrap();
        assert_eq!(t.current("unix:///a").unwrap(), None);
        t.set_current("unix:///a", "b1", false, false).unwrap();
        assert_eq!(t.current("unix:///a").unwrap().as_deref(), Some("b1"));
        assert_eq!(t.current("unix:///b").unwrap(), None);
        t.set_current("unix:///a", "b1", true, false).unwrap();
        assert_eq!(t.current("unix:///b").unwrap().as_deref(), Some("b1"));
        t.remove("b1").unwrap();
        assert_eq!(t.current("unix:///a").unwrap(), None);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let (d, s) = temp_store();
        fs::write(d.path().join("instances/broken"), b"{not json").unwrap();
        let t = s.txn().unwrap();
        let err = t.node_group("broken").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("instances/broken") && msg.contains("corrupt"),
            "{msg}"
        );
        assert!(t.list().is_err());
    }

    #[test]
    fn concurrent_writers_do_not_corrupt() {
        let (_d, s) = temp_store();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let mut t = s.txn().unwrap();
                        let mut ng = NodeGroup {
                            name: "shared".into(),
                            driver: format!("d{i}-{j}"),
                            ..Default::default()
                        };
                        t.save(&mut ng).unwrap();
                        t.node_group("shared").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(s.txn().unwrap().node_group("shared").is_ok());
    }
}
