//! Compose files as bake reads them (buildx's `bake/compose.go` over compose-go): the files
//! loaded, interpolated from the environment and `.env`, merged (later files override),
//! `include` and `extends` applied, checked against the parts of the compose schema bake
//! keeps (`image`, `build`, `environment`, `env_file` of services, and `secrets`), and every
//! service with a `build` section turned into a target, its `x-bake` extension applied.

pub mod dotenv;
pub mod node;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::File;
use crate::model::text::go_quote;
use crate::model::{
    Attest, CacheEntry, Config, ExportEntry, Group, Secret, SshKey, Target, dedup_strings,
    sanitize_target_name, validate_target_name,
};
use node::{Node, ResetPaths, TreePath};
use template::TemplateError;

/// Why compose files could not be read, worded as compose-go and buildx word it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The YAML does not parse.
    #[error("failed to parse {file}: yaml: {message}")]
    Yaml {
        /// The file's name (empty when detecting the format).
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The files hold nothing.
    #[error("empty compose file")]
    Empty,
    /// The project breaks a compose rule (`service "x" has neither an image nor a build
    /// context specified`).
    #[error("{0}: invalid compose project")]
    Invalid(String),
    /// A value does not meet the compose schema (`services.a.build additional properties
    /// 'foo' not allowed`).
    #[error("{0}")]
    Schema(String),
    /// A `.env` or `env_file` that does not parse.
    #[error(transparent)]
    Dotenv(#[from] dotenv::DotenvError),
    /// Any other failure, worded as compose-go or buildx words it.
    #[error("{0}")]
    Message(String),
}

impl ComposeError {
    fn msg(s: impl Into<String>) -> Self {
        ComposeError::Message(s.into())
    }
}

/// The environment compose files are interpolated from, and the folder relative paths
/// (`.env`, `env_file`, `include`) are read from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComposeEnv {
    /// The variables.
    pub vars: BTreeMap<String, String>,
    /// The folder relative paths are read from (the working directory).
    pub working_dir: PathBuf,
}

impl ComposeEnv {
    /// buildx's `composeEnv`: the given variables (the process environment), with the
    /// variables of `WORKING_DIR/.env` added where not already set.
    pub fn with_dot_env(
        vars: BTreeMap<String, String>,
        working_dir: PathBuf,
    ) -> Result<Self, ComposeError> {
        let mut env = ComposeEnv { vars, working_dir };
        let path = env.working_dir.join(".env");
        if path.is_file() {
            let data = std::fs::read(&path)
                .map_err(|e| ComposeError::msg(format!("open {}: {e}", path.display())))?;
            let mut parsed = BTreeMap::new();
            let current = env.vars.clone();
            dotenv::parse_into(&String::from_utf8_lossy(&data), &mut parsed, &|k| {
                current.get(k).cloned()
            })?;
            for (key, value) in parsed {
                env.vars.entry(key).or_insert(value);
            }
        }
        Ok(env)
    }

    /// The process environment and the working directory's `.env`.
    pub fn from_process() -> Result<Self, ComposeError> {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::with_dot_env(std::env::vars().collect(), dir)
    }

    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.resolve(path))
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.working_dir.join(p)
        }
    }
}

/// Whether a file is a compose file, as buildx's `validateComposeFile` decides: `.yml` /
/// `.yaml` always (the error, if it does not load, is the file's), `.json` / `.hcl` never,
/// anything else when it loads as compose.
pub fn detect(file: &File, env: &ComposeEnv) -> (bool, Option<ComposeError>) {
    let lower = file.name.to_lowercase();
    if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        return (true, validate(&file.data, env).err());
    }
    if lower.ends_with(".json") || lower.ends_with(".hcl") {
        return (false, None);
    }
    match validate(&file.data, env) {
        Ok(()) => (true, None),
        Err(err) => (false, Some(err)),
    }
}

/// Loads one file's content alone (unnamed, without the consistency checks) as buildx does to
/// tell compose files apart.
fn validate(data: &[u8], env: &ComposeEnv) -> Result<(), ComposeError> {
    let files = [File {
        name: String::new(),
        data: data.to_vec(),
    }];
    load_project(&files, env, false).map(|_| ())
}

/// Reads compose files into bake's config (buildx's `ParseComposeFiles`): a `default` group
/// of every service that builds, one target per such service.
pub fn parse_compose_files(files: &[File], env: &ComposeEnv) -> Result<Config, ComposeError> {
    let project = load_project(files, env, true)?;
    project_to_config(&project)
}

/// A service as bake reads it.
#[derive(Debug, Clone, Default)]
struct Service {
    name: String,
    image: String,
    build: Option<BTreeMap<String, Node>>,
    environment: BTreeMap<String, Option<String>>,
    /// `env_file` entries: path and whether it must exist.
    env_files: Vec<(String, bool)>,
}

/// A top-level secret.
#[derive(Debug, Clone, Default)]
struct SecretDefinition {
    file: String,
    environment: String,
    external: bool,
}

/// The loaded project.
#[derive(Debug, Clone, Default)]
struct Project {
    services: Vec<Service>,
    secrets: BTreeMap<String, SecretDefinition>,
    environment: BTreeMap<String, String>,
}

/// The project name: `name:` of the files (interpolated), else `COMPOSE_PROJECT_NAME`,
/// else `bake`.
fn project_name(files: &[File], env: &BTreeMap<String, String>) -> Result<String, ComposeError> {
    let mut name = env
        .get("COMPOSE_PROJECT_NAME")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "bake".to_string());
    let mut from_file = String::new();
    for file in files {
        for doc in serde_norway::Deserializer::from_slice(&file.data) {
            let Ok(value) = <serde_norway::Value as serde::Deserialize>::deserialize(doc) else {
                break;
            };
            if let Some(serde_norway::Value::String(n)) = value.get("name")
                && !n.is_empty()
            {
                from_file = n.clone();
            }
        }
    }
    let from_file = interpolate_string(&from_file, &TreePath::root().next("name"), env)?;
    if !from_file.is_empty() {
        name = from_file;
    }
    Ok(name)
}

fn interpolate_string(
    s: &str,
    path: &TreePath,
    env: &BTreeMap<String, String>,
) -> Result<String, ComposeError> {
    template::substitute(s, &|k| env.get(k).cloned()).map_err(|err| match err {
        TemplateError::Invalid(template) => ComposeError::msg(format!(
            "invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{template}"
        )),
        other => ComposeError::msg(format!("error while interpolating {path}: {other}")),
    })
}

/// Interpolates every string of the tree (keys are left alone).
fn interpolate(
    node: &mut Node,
    path: &TreePath,
    env: &BTreeMap<String, String>,
) -> Result<(), ComposeError> {
    match node {
        Node::Str(s) => *s = interpolate_string(s, path, env)?,
        Node::Map(map) => {
            for (key, child) in map.iter_mut() {
                interpolate(child, &path.next(key), env)?;
            }
        }
        Node::Seq(items) => {
            for child in items.iter_mut() {
                interpolate(child, &path.next("[]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// One YAML document: its top-level mapping and the paths it resets.
type Document = (BTreeMap<String, Node>, ResetPaths);

/// Parses one file into its documents (`!reset`/`!override` paths recorded per document).
fn parse_documents(file: &File) -> Result<Vec<Document>, ComposeError> {
    let yaml_error = |e: serde_norway::Error| ComposeError::Yaml {
        file: file.name.clone(),
        message: e.to_string(),
    };
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_slice(&file.data) {
        let mut value =
            <serde_norway::Value as serde::Deserialize>::deserialize(doc).map_err(yaml_error)?;
        value.apply_merge().map_err(yaml_error)?;
        if value.is_null() {
            continue;
        }
        let mut resets = ResetPaths::new();
        match node::from_yaml(value, &TreePath::root(), &mut resets)? {
            Some(Node::Map(map)) => docs.push((map, resets)),
            Some(Node::Null) | None => {}
            Some(_) => return Err(ComposeError::msg("top-level object must be a mapping")),
        }
    }
    Ok(docs)
}

/// Reads files into the merged, canonical model (compose-go's `loadYamlModel`), paths
/// resolved against `rel_dir` (empty for the main project).
fn load_model(
    files: &[File],
    env: &ComposeEnv,
    vars: &BTreeMap<String, String>,
    rel_dir: &str,
    included: &[String],
) -> Result<BTreeMap<String, Node>, ComposeError> {
    let mut dict: BTreeMap<String, Node> = BTreeMap::new();
    for file in files {
        for (mut doc, resets) in parse_documents(file)? {
            let mut root = Node::Map(std::mem::take(&mut doc));
            interpolate(&mut root, &TreePath::root(), vars)?;
            let Node::Map(mut doc) = root else {
                continue;
            };
            apply_extends(&mut doc, &file.name, env, vars)?;
            node::apply_resets(&mut dict, &resets, &TreePath::root());
            let mut included = included.to_vec();
            included.push(file.name.clone());
            apply_include(&mut doc, env, vars, &included)?;
            dict = node::merge_mappings(dict, doc, &TreePath::root())?;
            let mut root = Node::Map(dict);
            node::enforce_unicity(&mut root, &TreePath::root())?;
            canonical(&mut root)?;
            node::enforce_unicity(&mut root, &TreePath::root())?;
            dict = match root {
                Node::Map(m) => m,
                _ => BTreeMap::new(),
            };
        }
    }
    set_defaults(&mut dict);
    resolve_paths(&mut dict, rel_dir);
    resolve_environment(&mut dict, vars);
    Ok(dict)
}

/// `extends` of the services of one document, from the same document or another file.
fn apply_extends(
    doc: &mut BTreeMap<String, Node>,
    file_name: &str,
    env: &ComposeEnv,
    vars: &BTreeMap<String, String>,
) -> Result<(), ComposeError> {
    let Some(services) = doc.get("services") else {
        return Ok(());
    };
    let Node::Map(services) = services else {
        return Err(ComposeError::msg("services must be a mapping"));
    };
    let mut services = services.clone();
    let names: Vec<String> = services.keys().cloned().collect();
    for name in names {
        let mut chain = vec![(file_name.to_string(), name.clone())];
        if let Some(merged) = extend_service(&name, &services, file_name, env, vars, &mut chain)? {
            services.insert(name, merged);
        }
    }
    doc.insert("services".to_string(), Node::Map(services));
    Ok(())
}

fn extend_service(
    name: &str,
    services: &BTreeMap<String, Node>,
    file_name: &str,
    env: &ComposeEnv,
    vars: &BTreeMap<String, String>,
    chain: &mut Vec<(String, String)>,
) -> Result<Option<Node>, ComposeError> {
    let Some(service) = services.get(name) else {
        return Ok(None);
    };
    let Node::Map(service) = service else {
        if *service == Node::Null {
            return Ok(None);
        }
        return Err(ComposeError::msg(format!(
            "services.{name} must be a mapping"
        )));
    };
    let Some(extends) = service.get("extends") else {
        return Ok(Some(Node::Map(service.clone())));
    };
    let (reference, file) = match extends {
        Node::Str(s) => (s.clone(), None),
        Node::Map(m) => match m.get("service") {
            Some(Node::Str(s)) => (
                s.clone(),
                m.get("file").and_then(Node::as_str).map(str::to_string),
            ),
            _ => {
                return Err(ComposeError::msg(format!(
                    "extends.{name}.service is required"
                )));
            }
        },
        _ => return Ok(Some(Node::Map(service.clone()))),
    };
    let (base_services, base_file) = match &file {
        Some(path) => {
            let data = env.read(path).map_err(|e| {
                ComposeError::msg(format!("open {}: {e}", env.resolve(path).display()))
            })?;
            let other = File {
                name: path.clone(),
                data,
            };
            let mut services = BTreeMap::new();
            for (mut doc, _) in parse_documents(&other)? {
                let mut root = Node::Map(std::mem::take(&mut doc));
                interpolate(&mut root, &TreePath::root(), vars)?;
                if let Node::Map(mut doc) = root {
                    let dir = relative_dir(path);
                    resolve_paths(&mut doc, &dir);
                    if let Some(Node::Map(s)) = doc.remove("services") {
                        services.extend(s);
                    }
                }
            }
            if !services.contains_key(&reference) {
                return Err(ComposeError::msg(format!(
                    "cannot extend service {} in {file_name}: service {} not found in {path}",
                    go_quote(name),
                    go_quote(&reference)
                )));
            }
            (services, path.clone())
        }
        None => {
            if !services.contains_key(&reference) {
                return Err(ComposeError::msg(format!(
                    "cannot extend service {} in {file_name}: service {} not found",
                    go_quote(name),
                    go_quote(&reference)
                )));
            }
            (services.clone(), file_name.to_string())
        }
    };
    let link = (base_file.clone(), reference.clone());
    if chain.contains(&link) {
        let mut lines = vec![
            "Circular reference:".to_string(),
            format!("  {} in {}", chain[0].1, chain[0].0),
        ];
        for (f, s) in chain.iter().skip(1).chain(std::iter::once(&link)) {
            lines.push(format!("  extends {s} in {f}"));
        }
        return Err(ComposeError::msg(lines.join("\n")));
    }
    chain.push(link);
    let Some(base) = extend_service(&reference, &base_services, &base_file, env, vars, chain)?
    else {
        return Ok(Some(Node::Map(service.clone())));
    };
    let merged = node::merge(
        base,
        Node::Map(service.clone()),
        &TreePath::root().next("services").next("x"),
    )?;
    let mut merged = match merged {
        Node::Map(m) => m,
        _ => BTreeMap::new(),
    };
    merged.remove("extends");
    Ok(Some(Node::Map(merged)))
}

/// The folder of a file, as the relative path compose-go's loader resolves it against.
fn relative_dir(path: &str) -> String {
    match Path::new(path).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
        _ => ".".to_string(),
    }
}

/// `include`: other compose projects whose services and secrets are imported.
fn apply_include(
    doc: &mut BTreeMap<String, Node>,
    env: &ComposeEnv,
    vars: &BTreeMap<String, String>,
    included: &[String],
) -> Result<(), ComposeError> {
    let Some(include) = doc.remove("include") else {
        return Ok(());
    };
    let Node::Seq(entries) = include else {
        return Err(ComposeError::msg(format!(
            "`include` must be a list, got {}",
            include.sprint()
        )));
    };
    for entry in entries {
        let (paths, env_files) = match entry {
            Node::Str(p) => (vec![p], Vec::new()),
            Node::Map(m) => {
                let strings = |n: Option<&Node>| -> Vec<String> {
                    match n {
                        Some(Node::Str(s)) => vec![s.clone()],
                        Some(Node::Seq(items)) => items.iter().map(Node::sprint).collect(),
                        _ => Vec::new(),
                    }
                };
                (strings(m.get("path")), strings(m.get("env_file")))
            }
            _ => continue,
        };
        let Some(main) = paths.first() else {
            continue;
        };
        if included.contains(main) {
            let mut chain = included.to_vec();
            chain.push(main.clone());
            return Err(ComposeError::msg(format!(
                "include cycle detected:\n{}\n include {}",
                chain[0],
                chain[1..].join("\n include ")
            )));
        }
        let dir = relative_dir(main);
        let mut include_vars = vars.clone();
        let env_files = if env_files.is_empty() {
            let default = Path::new(&dir).join(".env");
            if env.resolve(&default.to_string_lossy()).is_file() {
                vec![default.to_string_lossy().into_owned()]
            } else {
                Vec::new()
            }
        } else {
            env_files
        };
        for env_file in env_files {
            let data = env
                .read(&env_file)
                .map_err(|e| ComposeError::msg(format!("stat {env_file}: {e}")))?;
            let mut parsed = BTreeMap::new();
            dotenv::parse_into(&String::from_utf8_lossy(&data), &mut parsed, &|k| {
                vars.get(k).cloned()
            })?;
            for (k, v) in parsed {
                include_vars.entry(k).or_insert(v);
            }
        }
        let mut files = Vec::new();
        for path in &paths {
            let data = env.read(path).map_err(|e| {
                ComposeError::msg(format!("open {}: {e}", env.resolve(path).display()))
            })?;
            files.push(File {
                name: path.clone(),
                data,
            });
        }
        let imported = load_model(&files, env, &include_vars, &dir, included)?;
        for key in ["services", "volumes", "networks", "secrets", "configs"] {
            let Some(Node::Map(from)) = imported.get(key) else {
                continue;
            };
            let target = doc
                .entry(key.to_string())
                .or_insert_with(|| Node::Map(BTreeMap::new()));
            let Node::Map(to) = target else {
                continue;
            };
            for (name, value) in from {
                match to.get(name) {
                    Some(existing) if existing == value => {}
                    Some(_) => {
                        return Err(ComposeError::msg(format!(
                            "{key}.{name} conflicts with imported resource"
                        )));
                    }
                    None => {
                        to.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// compose-go's canonical transforms for what bake reads.
fn canonical(root: &mut Node) -> Result<(), ComposeError> {
    let Some(root) = root.as_map_mut() else {
        return Ok(());
    };
    if let Some(Node::Map(services)) = root.get_mut("services") {
        for (name, service) in services.iter_mut() {
            let Node::Map(service) = service else {
                continue;
            };
            let path = format!("services.{name}");
            if let Some(build) = service.get_mut("build") {
                canonical_build(build, &format!("{path}.build"))?;
            }
            if let Some(env_file) = service.get_mut("env_file") {
                let entry = |n: Node| match n {
                    Node::Str(s) => Node::Map(BTreeMap::from([
                        ("path".to_string(), Node::Str(s)),
                        ("required".to_string(), Node::Bool(true)),
                    ])),
                    Node::Map(mut m) => {
                        m.entry("required".to_string()).or_insert(Node::Bool(true));
                        Node::Map(m)
                    }
                    _ => Node::Null,
                };
                *env_file = match std::mem::replace(env_file, Node::Null) {
                    s @ Node::Str(_) => Node::Seq(vec![entry(s)]),
                    Node::Seq(items) => Node::Seq(items.into_iter().map(entry).collect()),
                    other => {
                        return Err(ComposeError::msg(format!(
                            "{path}.env_file: invalid type {} for env_file",
                            other.go_type()
                        )));
                    }
                };
            }
        }
    }
    if let Some(Node::Map(secrets)) = root.get_mut("secrets") {
        for secret in secrets.values_mut() {
            if let Node::Map(m) = secret
                && let Some(Node::Map(external)) = m.get("external").cloned()
            {
                m.insert("external".to_string(), Node::Bool(true));
                if let Some(name) = external.get("name")
                    && !m.contains_key("name")
                {
                    m.insert("name".to_string(), name.clone());
                }
            }
        }
    }
    Ok(())
}

fn canonical_build(build: &mut Node, path: &str) -> Result<(), ComposeError> {
    match build {
        Node::Str(context) => {
            *build = Node::Map(BTreeMap::from([(
                "context".to_string(),
                Node::Str(std::mem::take(context)),
            )]));
        }
        Node::Map(_) => {}
        other => {
            return Err(ComposeError::msg(format!(
                "{path}: invalid type {} for build",
                other.go_type()
            )));
        }
    }
    let Some(build) = build.as_map_mut() else {
        return Ok(());
    };
    if let Some(Node::Seq(secrets)) = build.get_mut("secrets") {
        for (i, secret) in secrets.iter_mut().enumerate() {
            match secret {
                Node::Str(source) => {
                    *secret = Node::Map(BTreeMap::from([(
                        "source".to_string(),
                        Node::Str(std::mem::take(source)),
                    )]));
                }
                Node::Map(_) => {}
                other => {
                    return Err(ComposeError::msg(format!(
                        "{path}.secrets.[{i}]: unsupported type {}",
                        other.go_type()
                    )));
                }
            }
        }
    }
    for key in ["provenance", "sbom"] {
        if let Some(value) = build.get_mut(key)
            && !matches!(value, Node::Str(_))
        {
            *value = Node::Str(value.sprint());
        }
    }
    if let Some(contexts) = build.get_mut("additional_contexts") {
        match contexts {
            Node::Map(_) => {}
            Node::Seq(items) => {
                let mut map = BTreeMap::new();
                for item in items.iter() {
                    let text = item.sprint();
                    let Some((k, v)) = text.split_once('=') else {
                        return Err(ComposeError::msg(format!(
                            "{path}.additional_contexts: invalid value {text}, expected key=value"
                        )));
                    };
                    map.insert(k.to_string(), Node::Str(v.to_string()));
                }
                *contexts = Node::Map(map);
            }
            other => {
                return Err(ComposeError::msg(format!(
                    "{path}.additional_contexts: invalid type {}",
                    other.go_type()
                )));
            }
        }
    }
    if let Some(ssh) = build.get_mut("ssh") {
        match ssh {
            Node::Map(_) => {}
            Node::Seq(items) => {
                let mut map = BTreeMap::new();
                for item in items.iter() {
                    let Node::Str(text) = item else {
                        return Err(ComposeError::msg(format!(
                            "invalid ssh key type {}",
                            item.go_type()
                        )));
                    };
                    match text.split_once('=') {
                        Some((id, p)) => {
                            map.insert(id.to_string(), Node::Str(p.to_string()));
                        }
                        None if text == "default" => {
                            map.insert(text.clone(), Node::Null);
                        }
                        None => {
                            return Err(ComposeError::msg(format!(
                                "invalid ssh key {}",
                                go_quote(text)
                            )));
                        }
                    }
                }
                *ssh = Node::Map(map);
            }
            other => {
                return Err(ComposeError::msg(format!(
                    "{path}.ssh: invalid type {} for ssh",
                    other.go_type()
                )));
            }
        }
    }
    if let Some(Node::Map(ulimits)) = build.get("ulimits") {
        for (name, value) in ulimits {
            if !matches!(value, Node::Map(_) | Node::Int(_)) {
                return Err(ComposeError::msg(format!(
                    "{path}.ulimits.{name}: invalid type {} for external",
                    value.go_type()
                )));
            }
        }
    }
    Ok(())
}

/// compose-go's `SetDefaultValues` for builds: a build without context builds `.`.
fn set_defaults(dict: &mut BTreeMap<String, Node>) {
    if let Some(Node::Map(services)) = dict.get_mut("services") {
        for service in services.values_mut() {
            if let Node::Map(service) = service
                && let Some(Node::Map(build)) = service.get_mut("build")
            {
                build
                    .entry("context".to_string())
                    .or_insert_with(|| Node::Str(".".to_string()));
            }
        }
    }
}

/// Whether a context is remote for compose-go's path resolution.
fn is_remote_context(s: &str) -> bool {
    [
        "https://",
        "http://",
        "git://",
        "ssh://",
        "github.com/",
        "git@",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// `filepath.Join(dir, path)` for a relative path, `~` expanded; absolute paths kept.
fn join_path(dir: &str, path: &str) -> String {
    let path = match path.strip_prefix("~") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match std::env::var("HOME") {
            Ok(home) => format!("{home}{rest}"),
            Err(_) => path.to_string(),
        },
        _ => path.to_string(),
    };
    if path.is_empty() || path.starts_with('/') {
        return path;
    }
    let joined = if dir.is_empty() {
        path
    } else {
        format!("{dir}/{path}")
    };
    crate::model::text::path_clean(&joined)
}

/// A build context path resolved against `dir` (remote and `service:` contexts kept).
fn context_path(dir: &str, path: &str) -> String {
    if path.contains("://") || path.starts_with("service:") || is_remote_context(path) {
        return path.to_string();
    }
    join_path(dir, path)
}

/// compose-go's `ResolveRelativePaths` for what bake reads.
fn resolve_paths(dict: &mut BTreeMap<String, Node>, dir: &str) {
    if let Some(Node::Map(services)) = dict.get_mut("services") {
        for service in services.values_mut() {
            let Node::Map(service) = service else {
                continue;
            };
            if let Some(Node::Map(build)) = service.get_mut("build") {
                if let Some(Node::Str(context)) = build.get_mut("context") {
                    *context = context_path(dir, context);
                }
                if let Some(Node::Map(contexts)) = build.get_mut("additional_contexts") {
                    for value in contexts.values_mut() {
                        if let Node::Str(s) = value {
                            *s = context_path(dir, s);
                        }
                    }
                }
                if let Some(Node::Map(ssh)) = build.get_mut("ssh") {
                    for value in ssh.values_mut() {
                        if let Node::Str(s) = value {
                            *s = join_path(dir, s);
                        }
                    }
                }
            }
            if let Some(Node::Seq(env_files)) = service.get_mut("env_file") {
                for entry in env_files.iter_mut() {
                    if let Node::Map(m) = entry
                        && let Some(Node::Str(p)) = m.get_mut("path")
                    {
                        *p = join_path(dir, p);
                    }
                }
            }
        }
    }
    if let Some(Node::Map(secrets)) = dict.get_mut("secrets") {
        for secret in secrets.values_mut() {
            if let Node::Map(m) = secret
                && let Some(Node::Str(p)) = m.get_mut("file")
            {
                *p = join_path(dir, p);
            }
        }
    }
}

/// compose-go's `ResolveEnvironment`: `environment` list entries without `=` take their
/// value from the environment when it has one.
fn resolve_environment(dict: &mut BTreeMap<String, Node>, vars: &BTreeMap<String, String>) {
    if let Some(Node::Map(services)) = dict.get_mut("services") {
        for service in services.values_mut() {
            if let Node::Map(service) = service
                && let Some(Node::Seq(entries)) = service.get_mut("environment")
            {
                for entry in entries.iter_mut() {
                    if let Node::Str(name) = entry
                        && !name.contains('=')
                        && let Some(value) = vars.get(name.as_str())
                    {
                        *name = format!("{name}={value}");
                    }
                }
            }
        }
    }
}

/// The compose schema's checks on the parts bake keeps, with its messages.
mod schema {
    use super::{ComposeError, Node};
    use std::collections::BTreeMap;

    fn name_ok(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    fn type_error(path: &str, want: &str) -> ComposeError {
        ComposeError::Schema(format!("{path} must be a {want}"))
    }

    fn additional(path: &str, keys: &[&String]) -> ComposeError {
        let list: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
        ComposeError::Schema(format!(
            "{path} additional properties {} not allowed",
            list.join(", ")
        ))
    }

    fn is_string(n: &Node) -> bool {
        matches!(n, Node::Str(_))
    }

    fn is_integer(n: &Node) -> bool {
        matches!(n, Node::Int(_)) || matches!(n, Node::Float(f) if f.fract() == 0.0)
    }

    fn expect(path: &str, n: &Node, ok: bool, want: &str) -> Result<(), ComposeError> {
        let _ = n;
        if ok {
            Ok(())
        } else {
            Err(type_error(path, want))
        }
    }

    fn list_of_strings(path: &str, n: &Node) -> Result<(), ComposeError> {
        let Node::Seq(items) = n else {
            return Err(type_error(path, "array"));
        };
        for (i, item) in items.iter().enumerate() {
            expect(&format!("{path}.{i}"), item, is_string(item), "string")?;
        }
        Ok(())
    }

    fn list_or_dict(path: &str, n: &Node) -> Result<(), ComposeError> {
        match n {
            Node::Map(m) => {
                for (k, v) in m {
                    if matches!(v, Node::Seq(_) | Node::Map(_)) {
                        return Err(type_error(
                            &format!("{path}.{k}"),
                            "boolean, null, number or string",
                        ));
                    }
                }
                Ok(())
            }
            Node::Seq(_) => list_of_strings(path, n),
            _ => Err(type_error(path, "mapping")),
        }
    }

    fn string_or_integer(path: &str, n: &Node) -> Result<(), ComposeError> {
        expect(path, n, is_string(n) || is_integer(n), "integer or string")
    }

    fn check_object(
        path: &str,
        map: &BTreeMap<String, Node>,
        check: impl Fn(&str, &str, &Node) -> Option<Result<(), ComposeError>>,
    ) -> Result<(), ComposeError> {
        let mut unknown = Vec::new();
        for (key, value) in map {
            if key.starts_with("x-") {
                continue;
            }
            match check(&format!("{path}.{key}"), key, value) {
                Some(result) => result?,
                None => unknown.push(key),
            }
        }
        if !unknown.is_empty() {
            return Err(additional(path, &unknown));
        }
        Ok(())
    }

    fn build(path: &str, n: &Node) -> Result<(), ComposeError> {
        let Node::Map(map) = n else {
            return Err(type_error(path, "string"));
        };
        check_object(path, map, |p, key, v| {
            Some(match key {
                "context" | "dockerfile" | "dockerfile_inline" | "network" | "target"
                | "isolation" => expect(p, v, is_string(v), "string"),
                "entitlements" | "cache_from" | "cache_to" | "tags" | "platforms" => {
                    list_of_strings(p, v)
                }
                "args" | "ssh" | "labels" | "additional_contexts" => list_or_dict(p, v),
                "no_cache" | "pull" | "privileged" => expect(
                    p,
                    v,
                    matches!(v, Node::Bool(_) | Node::Str(_)),
                    "boolean or string",
                ),
                "provenance" | "sbom" => expect(
                    p,
                    v,
                    matches!(v, Node::Bool(_) | Node::Str(_)),
                    "boolean or string",
                ),
                "shm_size" => string_or_integer(p, v),
                "extra_hosts" => match v {
                    Node::Map(m) => m.iter().try_for_each(|(k, host)| match host {
                        Node::Str(_) => Ok(()),
                        Node::Seq(_) => list_of_strings(&format!("{p}.{k}"), host),
                        _ => Err(type_error(&format!("{p}.{k}"), "string")),
                    }),
                    Node::Seq(_) => list_of_strings(p, v),
                    _ => Err(type_error(p, "mapping")),
                },
                "secrets" => match v {
                    Node::Seq(items) => {
                        items
                            .iter()
                            .enumerate()
                            .try_for_each(|(i, item)| match item {
                                Node::Str(_) => Ok(()),
                                Node::Map(m) => {
                                    check_object(&format!("{p}.{i}"), m, |pp, k, vv| {
                                        Some(match k {
                                            "source" | "target" => {
                                                expect(pp, vv, is_string(vv), "string")
                                            }
                                            "uid" | "gid" => expect(
                                                pp,
                                                vv,
                                                is_string(vv) || is_integer(vv),
                                                "integer or string",
                                            ),
                                            "mode" => expect(
                                                pp,
                                                vv,
                                                is_string(vv)
                                                    || matches!(vv, Node::Int(_) | Node::Float(_)),
                                                "number or string",
                                            ),
                                            _ => return None,
                                        })
                                    })
                                }
                                _ => Err(type_error(&format!("{p}.{i}"), "string")),
                            })
                    }
                    _ => Err(type_error(p, "array")),
                },
                "ulimits" => match v {
                    Node::Map(m) => m.iter().try_for_each(|(k, limit)| {
                        let lp = format!("{p}.{k}");
                        match limit {
                            Node::Map(lm) => {
                                for required in ["soft", "hard"] {
                                    if !lm.contains_key(required) {
                                        return Err(ComposeError::Schema(format!(
                                            "{lp} missing property '{required}'"
                                        )));
                                    }
                                }
                                check_object(&lp, lm, |pp, kk, vv| {
                                    Some(match kk {
                                        "soft" | "hard" => string_or_integer(pp, vv),
                                        _ => return None,
                                    })
                                })
                            }
                            other => string_or_integer(&lp, other),
                        }
                    }),
                    _ => Err(type_error(p, "mapping")),
                },
                _ => return None,
            })
        })
    }

    fn env_file(path: &str, n: &Node) -> Result<(), ComposeError> {
        match n {
            Node::Str(_) => Ok(()),
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| match item {
                    Node::Str(_) => Ok(()),
                    Node::Map(m) => check_object(&format!("{path}.{i}"), m, |p, k, v| {
                        Some(match k {
                            "path" | "format" => expect(p, v, is_string(v), "string"),
                            "required" => expect(
                                p,
                                v,
                                matches!(v, Node::Bool(_) | Node::Str(_)),
                                "boolean or string",
                            ),
                            _ => return None,
                        })
                    }),
                    _ => Err(type_error(&format!("{path}.{i}"), "string")),
                }),
            _ => Err(type_error(path, "string")),
        }
    }

    /// Checks the filtered model (services' `image`, `build`, `environment`, `env_file`, and
    /// the `secrets`).
    pub fn validate(model: &BTreeMap<String, Node>) -> Result<(), ComposeError> {
        if let Some(services) = model.get("services") {
            let Node::Map(services) = services else {
                return Err(type_error("services", "mapping"));
            };
            let bad: Vec<&String> = services.keys().filter(|k| !name_ok(k)).collect();
            if !bad.is_empty() {
                return Err(additional("services", &bad));
            }
            for (name, service) in services {
                let path = format!("services.{name}");
                let Node::Map(service) = service else {
                    return Err(type_error(&path, "mapping"));
                };
                check_object(&path, service, |p, key, v| {
                    Some(match key {
                        "image" => expect(p, v, is_string(v), "string"),
                        "build" => build(p, v),
                        "environment" => list_or_dict(p, v),
                        "env_file" => env_file(p, v),
                        _ => return None,
                    })
                })?;
            }
        }
        if let Some(secrets) = model.get("secrets") {
            let Node::Map(secrets) = secrets else {
                return Err(type_error("secrets", "mapping"));
            };
            let bad: Vec<&String> = secrets.keys().filter(|k| !name_ok(k)).collect();
            if !bad.is_empty() {
                return Err(additional("secrets", &bad));
            }
            for (name, secret) in secrets {
                let path = format!("secrets.{name}");
                let Node::Map(secret) = secret else {
                    if *secret == Node::Null {
                        continue;
                    }
                    return Err(type_error(&path, "mapping"));
                };
                check_object(&path, secret, |p, key, v| {
                    Some(match key {
                        "name" | "environment" | "file" | "driver" | "template_driver" => {
                            expect(p, v, is_string(v), "string")
                        }
                        "external" => expect(
                            p,
                            v,
                            matches!(v, Node::Bool(_) | Node::Str(_) | Node::Map(_)),
                            "boolean, mapping or string",
                        ),
                        "labels" => list_or_dict(p, v),
                        "driver_opts" => expect(p, v, matches!(v, Node::Map(_)), "mapping"),
                        _ => return None,
                    })
                })?;
            }
        }
        Ok(())
    }
}

/// Loads the project bake reads (buildx's `loadComposeFiles`).
fn load_project(
    files: &[File],
    env: &ComposeEnv,
    check_consistency: bool,
) -> Result<Project, ComposeError> {
    let mut vars = env.vars.clone();
    let name = project_name(files, &vars)?;
    vars.insert("COMPOSE_PROJECT_NAME".to_string(), name);
    let model = load_model(files, env, &vars, "", &[])?;
    if model.is_empty() {
        return Err(ComposeError::Empty);
    }
    // buildx keeps only what it reads before validating.
    let mut filtered: BTreeMap<String, Node> = BTreeMap::new();
    if let Some(Node::Map(services)) = model.get("services") {
        let mut kept = BTreeMap::new();
        for (name, service) in services {
            match service {
                Node::Null => {
                    kept.insert(name.clone(), Node::Map(BTreeMap::new()));
                }
                Node::Map(m) => {
                    let fields: BTreeMap<String, Node> = m
                        .iter()
                        .filter(|(k, _)| {
                            matches!(k.as_str(), "image" | "build" | "environment" | "env_file")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    kept.insert(name.clone(), Node::Map(fields));
                }
                _ => {}
            }
        }
        filtered.insert("services".to_string(), Node::Map(kept));
    }
    if let Some(secrets) = model.get("secrets") {
        filtered.insert("secrets".to_string(), secrets.clone());
    }
    if filtered.is_empty() {
        return Err(ComposeError::msg("empty compose file"));
    }
    schema::validate(&filtered)?;
    let project = to_project(&filtered, &vars)?;
    if check_consistency {
        check_project(&project)?;
    }
    resolve_service_environment(project, env)
}

fn to_project(
    model: &BTreeMap<String, Node>,
    vars: &BTreeMap<String, String>,
) -> Result<Project, ComposeError> {
    let mut project = Project {
        environment: vars.clone(),
        ..Project::default()
    };
    if let Some(Node::Map(services)) = model.get("services") {
        for (name, service) in services {
            let Node::Map(service) = service else {
                continue;
            };
            let environment = match service.get("environment") {
                Some(node) => mapping_with_equals(node)?,
                None => BTreeMap::new(),
            };
            let mut env_files = Vec::new();
            if let Some(Node::Seq(files)) = service.get("env_file") {
                for file in files {
                    if let Node::Map(m) = file {
                        let path = m.get("path").map(Node::sprint).unwrap_or_default();
                        let required = match m.get("required") {
                            Some(Node::Bool(b)) => *b,
                            Some(Node::Str(s)) => compose_bool(s).unwrap_or(true),
                            _ => true,
                        };
                        env_files.push((path, required));
                    }
                }
            }
            project.services.push(Service {
                name: name.clone(),
                image: service
                    .get("image")
                    .and_then(Node::as_str)
                    .unwrap_or_default()
                    .to_string(),
                build: service.get("build").and_then(Node::as_map).cloned(),
                environment,
                env_files,
            });
        }
    }
    if let Some(Node::Map(secrets)) = model.get("secrets") {
        for (name, secret) in secrets {
            let Node::Map(secret) = secret else {
                project
                    .secrets
                    .insert(name.clone(), SecretDefinition::default());
                continue;
            };
            project.secrets.insert(
                name.clone(),
                SecretDefinition {
                    file: secret.get("file").map(Node::sprint).unwrap_or_default(),
                    environment: secret
                        .get("environment")
                        .map(Node::sprint)
                        .unwrap_or_default(),
                    external: match secret.get("external") {
                        Some(Node::Bool(b)) => *b,
                        Some(Node::Str(s)) => compose_bool(s).unwrap_or(false),
                        Some(Node::Map(_)) => true,
                        _ => false,
                    },
                },
            );
        }
    }
    Ok(project)
}

/// compose-go's string-to-bool cast.
fn compose_bool(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Some(true),
        "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A `MappingWithEquals` (`args`, `environment`): a map of optional strings, or a list of
/// `KEY[=VALUE]`.
fn mapping_with_equals(node: &Node) -> Result<BTreeMap<String, Option<String>>, ComposeError> {
    let mut out = BTreeMap::new();
    match node {
        Node::Map(m) => {
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    match v {
                        Node::Null => None,
                        other => Some(other.sprint()),
                    },
                );
            }
        }
        Node::Seq(items) => {
            for item in items {
                let text = item.sprint();
                let (key, value) = match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (text.clone(), None),
                };
                if key.ends_with(char::is_whitespace) {
                    return Err(ComposeError::msg(format!(
                        "environment variable {key} is declared with a trailing space"
                    )));
                }
                out.insert(key, value);
            }
        }
        other => {
            return Err(ComposeError::msg(format!(
                "unexpected value type {} for mapping",
                other.go_type()
            )));
        }
    }
    Ok(out)
}

/// compose-go's consistency checks that concern what bake keeps.
fn check_project(project: &Project) -> Result<(), ComposeError> {
    for service in &project.services {
        let Some(build) = &service.build else {
            if service.image.is_empty() {
                return Err(ComposeError::Invalid(format!(
                    "service {} has neither an image nor a build context specified",
                    go_quote(&service.name)
                )));
            }
            continue;
        };
        let string = |k: &str| build.get(k).map(Node::sprint).unwrap_or_default();
        if !string("dockerfile_inline").is_empty() && !string("dockerfile").is_empty() {
            return Err(ComposeError::Invalid(format!(
                "service {} declares mutualy exclusive dockerfile and dockerfile_inline",
                go_quote(&service.name)
            )));
        }
        if let Some(Node::Map(contexts)) = build.get("additional_contexts") {
            for (name, value) in contexts {
                if let Some(target) = value.sprint().strip_prefix("service:") {
                    match project.services.iter().find(|s| s.name == target) {
                        None => {
                            return Err(ComposeError::msg(format!(
                                "service {} declares unknown service {} as additional contexts {name}",
                                go_quote(&service.name),
                                go_quote(target)
                            )));
                        }
                        Some(s) if s.build.is_none() => {
                            return Err(ComposeError::msg(format!(
                                "service {} declares non-buildable service {} as additional contexts {name}",
                                go_quote(&service.name),
                                go_quote(target)
                            )));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        for secret in build_secrets(build) {
            if !project.secrets.contains_key(&secret) {
                return Err(ComposeError::Invalid(format!(
                    "service {} refers to undefined build secret {secret}",
                    go_quote(&service.name)
                )));
            }
        }
    }
    for (name, secret) in &project.secrets {
        if !secret.external && secret.file.is_empty() && secret.environment.is_empty() {
            return Err(ComposeError::Invalid(format!(
                "secret {} must declare either `file` or `environment`",
                go_quote(name)
            )));
        }
    }
    Ok(())
}

/// The sources of a build's secrets, in order.
fn build_secrets(build: &BTreeMap<String, Node>) -> Vec<String> {
    match build.get("secrets") {
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(|i| i.as_map().and_then(|m| m.get("source")).map(Node::sprint))
            .collect(),
        _ => Vec::new(),
    }
}

/// compose-go's `WithServicesEnvironmentResolved`: unset entries filled from the project
/// environment, `env_file`s read under them, the service's own entries winning.
fn resolve_service_environment(
    mut project: Project,
    env: &ComposeEnv,
) -> Result<Project, ComposeError> {
    let project_env = project.environment.clone();
    for service in &mut project.services {
        let files = service.env_files.clone();
        let mut own = std::mem::take(&mut service.environment);
        for (key, value) in own.iter_mut() {
            if value.is_none()
                && let Some(v) = project_env.get(key)
            {
                *value = Some(v.clone());
            }
        }
        let mut environment: BTreeMap<String, String> = own
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for (path, required) in files {
            let data = match env.read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if required {
                        return Err(ComposeError::msg(format!(
                            "env file {} not found: stat {}: no such file or directory",
                            path, path
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(ComposeError::msg(format!("open {path}: {e}"))),
            };
            let own_for_lookup = own.clone();
            let mut parsed = environment.clone();
            dotenv::parse_into(&String::from_utf8_lossy(&data), &mut parsed, &|k| {
                project_env
                    .get(k)
                    .cloned()
                    .or_else(|| own_for_lookup.get(k).cloned().flatten())
            })?;
            environment = parsed;
        }
        let mut resolved: BTreeMap<String, Option<String>> =
            environment.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for (k, v) in own {
            resolved.insert(k, v);
        }
        service.environment = resolved;
    }
    Ok(project)
}

/// docker's `MemBytes.String()` (go-units `BytesSize`): four significant digits and a binary
/// unit (`128MiB`, `1.5GiB`, `512B`).
fn bytes_size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    // `%.4g`: four significant digits, trailing zeros dropped.
    let digits = if size >= 1000.0 {
        0
    } else if size >= 100.0 {
        1
    } else if size >= 10.0 {
        2
    } else {
        3
    };
    let mut text = format!("{size:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

fn node_int(node: Option<&Node>) -> i64 {
    match node {
        Some(Node::Int(i)) => *i,
        Some(Node::Float(f)) => *f as i64,
        Some(Node::Str(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// A string list field (`StringList`: a string or a list of strings).
fn string_list(node: Option<&Node>) -> Result<Option<Vec<String>>, ComposeError> {
    match node {
        None => Ok(None),
        Some(Node::Str(s)) => Ok(Some(vec![s.clone()])),
        Some(Node::Seq(items)) => items
            .iter()
            .map(|i| match i {
                Node::Str(s) => Ok(s.clone()),
                _ => Err(ComposeError::msg(
                    "invalid type []interface {} for string list",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ComposeError::msg(format!(
            "invalid type {} for string list",
            other.go_type()
        ))),
    }
}

/// A `Mapping` field (`additional_contexts`): values as strings, null as empty.
fn string_mapping(node: &Node) -> BTreeMap<String, String> {
    match node {
        Node::Map(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        Node::Null => String::new(),
                        other => other.sprint(),
                    },
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// buildx's `composeToBuildkitNamedContexts`: `service:NAME` and `target:NAME` link the
/// (sanitised) target.
fn named_contexts(contexts: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    contexts
        .iter()
        .map(|(k, v)| {
            let value = match v.split_once(':') {
                Some(("service" | "target", name)) => {
                    format!("target:{}", sanitize_target_name(name))
                }
                _ => v.clone(),
            };
            (k.clone(), value)
        })
        .collect()
}

/// The `extra_hosts` of a build: `host=ip` / `host:ip` entries or a map, several addresses of
/// one host joined with commas.
fn extra_hosts(node: &Node) -> Result<BTreeMap<String, Vec<String>>, ComposeError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match node {
        Node::Map(m) => {
            for (host, value) in m {
                let ips = match value {
                    Node::Null => vec![String::new()],
                    Node::Str(s) => vec![s.clone()],
                    Node::Seq(items) => items.iter().map(Node::sprint).collect(),
                    _ => {
                        return Err(ComposeError::msg(
                            "unexpected value type map[string]interface {} for extra_hosts entry",
                        ));
                    }
                };
                out.entry(host.clone()).or_default().extend(ips);
            }
        }
        Node::Seq(items) => {
            for item in items {
                let text = item.sprint();
                // `host=ip` is preferred; `host:ip` (the first colon) for compatibility.
                let (host, ip) = match text.split_once('=') {
                    Some(pair) => pair,
                    None => match text.split_once(':') {
                        Some(pair) => pair,
                        None => {
                            return Err(ComposeError::msg(format!(
                                "invalid additional host, missing IP: {text}"
                            )));
                        }
                    },
                };
                out.entry(host.to_string())
                    .or_default()
                    .push(ip.to_string());
            }
        }
        other => {
            return Err(ComposeError::msg(format!(
                "unexpected value type {} for extra_hosts",
                other.go_type()
            )));
        }
    }
    // compose-go's cleanup: IPv6 addresses given in brackets lose them.
    for ips in out.values_mut() {
        for ip in ips.iter_mut() {
            if ip.starts_with('[') && ip.ends_with(']') {
                *ip = ip[1..ip.len() - 1].to_string();
            }
        }
    }
    Ok(out)
}

/// A value of `x-bake` given as a list or as a whitespace-separated string.
fn xbake_strings(node: Option<&Node>) -> Result<Vec<String>, ComposeError> {
    match node {
        None | Some(Node::Null) => Ok(Vec::new()),
        Some(Node::Seq(items)) => items
            .iter()
            .map(|i| match i {
                Node::Seq(_) | Node::Map(_) => Err(ComposeError::msg(format!(
                    "yaml: unmarshal errors:\n  cannot unmarshal !!{} into string",
                    if matches!(i, Node::Seq(_)) {
                        "seq"
                    } else {
                        "map"
                    }
                ))),
                Node::Null => Ok(String::new()),
                other => Ok(other.sprint()),
            })
            .collect(),
        Some(Node::Map(_)) => Err(ComposeError::msg(
            "yaml: unmarshal errors:\n  cannot unmarshal !!map into string",
        )),
        Some(other) => Ok(other
            .sprint()
            .split_whitespace()
            .map(str::to_string)
            .collect()),
    }
}

fn xbake_bool(node: Option<&Node>, key: &str) -> Result<Option<bool>, ComposeError> {
    match node {
        None | Some(Node::Null) => Ok(None),
        Some(Node::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ComposeError::msg(format!(
            "yaml: unmarshal errors:\n  cannot unmarshal {} `{}` into bool ({key})",
            match other {
                Node::Int(_) => "!!int",
                Node::Float(_) => "!!float",
                Node::Str(_) => "!!str",
                Node::Seq(_) => "!!seq",
                _ => "!!map",
            },
            other.sprint()
        ))),
    }
}

/// Applies a build's `x-bake` extension as buildx's `composeExtTarget` does.
fn apply_xbake(target: &mut Target, ext: &BTreeMap<String, Node>) -> Result<(), ComposeError> {
    let tags = xbake_strings(ext.get("tags"))?;
    if !tags.is_empty() {
        let mut all = target.tags.take().unwrap_or_default();
        all.extend(tags);
        target.tags = Some(dedup_strings(all));
    }
    for (key, to) in [("cache-from", true), ("cache-to", false)] {
        let values = xbake_strings(ext.get(key))?;
        if values.is_empty() {
            continue;
        }
        let parsed =
            CacheEntry::parse_list(&values).map_err(|e| ComposeError::msg(e.to_string()))?;
        let field = if to {
            &mut target.cache_from
        } else {
            &mut target.cache_to
        };
        *field = crate::model::buildflags::merge_list(field.take(), parsed, CacheEntry::dedupe);
    }
    let secrets = xbake_strings(ext.get("secret"))?;
    if !secrets.is_empty() {
        let parsed = Secret::parse_list(&secrets).map_err(|e| ComposeError::msg(e.to_string()))?;
        target.secrets = crate::model::buildflags::merge_list(
            target.secrets.take(),
            Some(parsed),
            Secret::dedupe,
        );
    }
    let ssh = xbake_strings(ext.get("ssh"))?;
    if !ssh.is_empty() {
        let parsed = SshKey::parse_list(&ssh);
        let mut merged =
            crate::model::buildflags::merge_list(target.ssh.take(), Some(parsed), SshKey::dedupe);
        if let Some(keys) = &mut merged {
            keys.sort();
        }
        target.ssh = merged;
    }
    let platforms = xbake_strings(ext.get("platforms"))?;
    if !platforms.is_empty() {
        let mut all = target.platforms.take().unwrap_or_default();
        all.extend(platforms);
        target.platforms = Some(dedup_strings(all));
    }
    let outputs = xbake_strings(ext.get("output"))?;
    if !outputs.is_empty() {
        let parsed =
            ExportEntry::parse_list(&outputs).map_err(|e| ComposeError::msg(e.to_string()))?;
        target.outputs = crate::model::buildflags::merge_list(
            target.outputs.take(),
            Some(parsed),
            ExportEntry::dedupe,
        );
    }
    if let Some(pull) = xbake_bool(ext.get("pull"), "pull")? {
        target.pull = Some(pull);
    }
    if let Some(no_cache) = xbake_bool(ext.get("no-cache"), "no-cache")? {
        target.no_cache = Some(no_cache);
    }
    let filters = xbake_strings(ext.get("no-cache-filter"))?;
    if !filters.is_empty() {
        let mut all = target.no_cache_filter.take().unwrap_or_default();
        all.extend(filters);
        target.no_cache_filter = Some(dedup_strings(all));
    }
    if let Some(contexts) = ext.get("contexts") {
        let contexts = match contexts {
            Node::Map(_) => string_mapping(contexts),
            Node::Null => BTreeMap::new(),
            _ => {
                return Err(ComposeError::msg(
                    "yaml: unmarshal errors:\n  cannot unmarshal into map (contexts)",
                ));
            }
        };
        // Contexts already set by `additional_contexts` win.
        for (k, v) in named_contexts(&contexts) {
            target.contexts.entry(k).or_insert(v);
        }
    }
    Ok(())
}

/// One service with a build section as buildx's `ParseCompose` turns it into a target.
fn service_target(
    service: &Service,
    build: &BTreeMap<String, Node>,
    project: &Project,
) -> Result<Target, ComposeError> {
    let name = sanitize_target_name(&service.name);
    validate_target_name(&name)
        .map_err(|e| ComposeError::msg(format!("invalid service name {}: {e}", go_quote(&name))))?;
    let string = |k: &str| build.get(k).map(Node::sprint).filter(|s| !s.is_empty());
    let mut target = Target::named(name);
    target.context = string("context");
    target.dockerfile = string("dockerfile");
    target.dockerfile_inline = string("dockerfile_inline");
    if let Some(contexts) = build.get("additional_contexts") {
        target.contexts = named_contexts(&string_mapping(contexts));
    }
    if let Some(shm) = build.get("shm_size") {
        let bytes = match shm {
            Node::Int(i) => *i,
            other => {
                crate::model::text::ram_in_bytes(&other.sprint()).map_err(ComposeError::Message)?
            }
        };
        if bytes > 0 {
            target.shm_size = Some(bytes_size(bytes));
        }
    }
    target.network = string("network");
    if let Some(Node::Map(ulimits)) = build.get("ulimits") {
        let mut list = Vec::new();
        for (limit, value) in ulimits {
            let (soft, hard) = match value {
                Node::Map(m) => (node_int(m.get("soft")), node_int(m.get("hard"))),
                // A single value sets neither soft nor hard in buildx's conversion.
                _ => (0, 0),
            };
            let ulimit = crate::model::text::parse_ulimit(&format!("{limit}={soft}:{hard}"))
                .map_err(ComposeError::Message)?;
            list.push(ulimit);
        }
        target.ulimits = Some(list);
    }
    if let Some(hosts) = build.get("extra_hosts") {
        for (host, ips) in extra_hosts(hosts)? {
            target.extra_hosts.insert(host, Some(ips.join(",")));
        }
    }
    if let Some(Node::Map(ssh)) = build.get("ssh") {
        let mut keys: Vec<SshKey> = ssh
            .iter()
            .map(|(id, path)| SshKey {
                id: id.clone(),
                paths: match path {
                    Node::Null => Vec::new(),
                    other => Some(other.sprint())
                        .filter(|p| !p.is_empty())
                        .into_iter()
                        .collect(),
                },
            })
            .collect();
        keys.sort();
        if !keys.is_empty() {
            target.ssh = Some(keys);
        }
    }
    let mut secrets = Vec::new();
    for source in build_secrets(build) {
        let definition = project.secrets.get(&source).cloned().unwrap_or_default();
        if definition.external {
            return Err(ComposeError::msg(format!(
                "unsupported external secret {source}"
            )));
        }
        secrets.push(Secret {
            id: source,
            file_path: definition.file,
            env: definition.environment,
        });
    }
    if !secrets.is_empty() {
        target.secrets = Some(secrets);
    }
    if let Some(labels) = build.get("labels") {
        let labels = match labels {
            Node::Seq(items) => items
                .iter()
                .map(|i| {
                    let text = i.sprint();
                    let (k, v) = text.split_once('=').unwrap_or((text.as_str(), ""));
                    (k.to_string(), Some(v.to_string()))
                })
                .collect(),
            other => mapping_with_equals(other)?
                .into_iter()
                .map(|(k, v)| (k, Some(v.unwrap_or_default())))
                .collect(),
        };
        target.labels = labels;
    }
    let cache = |key: &str| -> Result<Option<Vec<CacheEntry>>, ComposeError> {
        let values = string_list(build.get(key))?.unwrap_or_default();
        CacheEntry::parse_list(&values).map_err(|e| ComposeError::msg(e.to_string()))
    };
    target.cache_from = cache("cache_from")?;
    target.cache_to = cache("cache_to")?;
    let mut attests = Vec::new();
    if let Some(sbom) = string("sbom") {
        attests.push(Attest::canonicalize("sbom", &sbom));
    }
    if let Some(provenance) = string("provenance") {
        attests.push(Attest::canonicalize("provenance", &provenance));
    }
    target.attest = Attest::parse_all(&attests).map_err(|e| ComposeError::msg(e.to_string()))?;
    let flag = |k: &str| match build.get(k) {
        Some(Node::Bool(true)) => Some(true),
        Some(Node::Str(s)) if compose_bool(s) == Some(true) => Some(true),
        _ => None,
    };
    target.no_cache = flag("no_cache");
    target.pull = flag("pull");
    target.tags = string_list(build.get("tags"))?;
    if let Some(args) = build.get("args") {
        for (key, value) in mapping_with_equals(args)? {
            let value = value.or_else(|| {
                service
                    .environment
                    .get(&key)
                    .cloned()
                    .flatten()
                    .or_else(|| project.environment.get(&key).cloned())
            });
            if let Some(value) = value {
                target.args.insert(key, Some(value));
            }
        }
    }
    target.platforms = string_list(build.get("platforms"))?;
    if let Some(Node::Map(ext)) = build.get("x-bake") {
        apply_xbake(&mut target, ext)?;
    }
    target.target = string("target");
    if target.tags.as_ref().is_none_or(Vec::is_empty) && !service.image.is_empty() {
        target.tags = Some(vec![service.image.clone()]);
    }
    Ok(target)
}

fn project_to_config(project: &Project) -> Result<Config, ComposeError> {
    let mut config = Config::default();
    if project.services.is_empty() {
        return Ok(config);
    }
    let mut group = Group {
        name: "default".to_string(),
        ..Group::default()
    };
    for service in &project.services {
        let Some(build) = &service.build else {
            continue;
        };
        let target = service_target(service, build, project)?;
        group
            .targets
            .get_or_insert_with(Vec::new)
            .push(target.name.clone());
        config.targets.push(target);
    }
    config.groups.push(group);
    config.dedupe();
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests;
