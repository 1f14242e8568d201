//! Builder operations on top of the store and the drivers: create/append/leave, resolving
//! which builder a command means, and making the driver for each node.

use std::collections::BTreeMap;
use std::path::Path;

use crate::docker_api::{current_docker_endpoint, current_store_key};
use crate::docker_container::DockerContainerDriver;
use crate::docker_context;
use crate::store::{Node, NodeGroup, StoreError, Txn, validate_name};
use crate::{Driver, DriverError};
use brix_config::Platform;

/// Drivers that `create --driver` accepts.
pub const CREATABLE_DRIVERS: &[&str] = &["docker-container", "kubernetes", "remote"];

/// The name of the per-endpoint builder that uses the Docker engine's own BuildKit.
pub const DEFAULT_BUILDER: &str = "default";

/// What `brix create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Builder name; generated (`adjective_surname`, as buildx) when absent.
    pub name: Option<String>,
    /// Driver; `docker-container` when absent (or the existing builder's with `--append`).
    pub driver: Option<String>,
    /// Node name; `<builder><index>` when absent.
    pub node: Option<String>,
    /// Platforms to pin on the node (`linux/arm64`, comma-separated lists allowed).
    pub platforms: Vec<String>,
    /// `--buildkitd-flags`, one shell-quoted string.
    pub buildkitd_flags: Option<String>,
    /// `--buildkitd-config` / `--config` file.
    pub config_file: Option<std::path::PathBuf>,
    /// `--driver-opt` values, each `k=v[,k=v...]`.
    pub driver_opts: Vec<String>,
    /// Positional endpoint (Docker host, or BuildKit address for remote).
    pub endpoint: Option<String>,
    /// Add a node to an existing builder.
    pub append: bool,
}

/// The result of [`create`]: the saved builder and the builder as it was before (for rollback).
#[derive(Debug, Clone)]
pub struct Created {
    /// The builder as saved.
    pub group: NodeGroup,
    /// The builder before this change; `None` if it is new.
    pub previous: Option<NodeGroup>,
    /// Lint warnings about the buildkitd.toml (e.g. `gckeepstorage` read as bytes).
    pub warnings: Vec<String>,
}

/// Creates a builder or adds/updates a node, validates everything, and saves it.
/// Nothing is created on any engine: callers check the nodes and roll back with
/// [`rollback`] if a node cannot be reached.
pub fn create(txn: &mut Txn<'_>, opts: &CreateOptions) -> Result<Created, DriverError> {
    let name = match &opts.name {
        Some(n) if n == DEFAULT_BUILDER => {
            return Err(DriverError::Invalid(
                "default is a reserved name and cannot be used for a builder".into(),
            ));
        }
        Some(n) => validate_name(n)?,
        None if opts.append => return Err(DriverError::Invalid("--append requires --name".into())),
        None => generate_name(txn)?,
    };
    let existing = match txn.node_group(&name) {
        Ok(ng) => Some(ng),
        Err(crate::StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if opts.append && existing.is_none() {
        return Err(DriverError::Invalid(format!(
            "failed to find builder {name:?} to append to"
        )));
    }
    let driver = match (&opts.driver, &existing) {
        (Some(d), _) => d.clone(),
        (None, Some(ng)) => ng.driver.clone(),
        (None, None) => "docker-container".to_string(),
    };
    if !CREATABLE_DRIVERS.contains(&driver.as_str()) {
        let hint = if driver == "docker" {
            " (the docker driver cannot be created: use the builder named \"default\")"
        } else {
            ""
        };
        return Err(DriverError::Invalid(format!(
            "unknown driver {driver:?}{hint}; valid drivers: {}",
            CREATABLE_DRIVERS.join(", ")
        )));
    }
    if let Some(ng) = &existing {
        if opts.node.is_none() && !opts.append {
            return Err(DriverError::Invalid(format!(
                "builder {name:?} already exists; use --append to add a node, --node to change one, or `brix rm {name}` first"
            )));
        }
        if ng.driver != driver {
            return Err(DriverError::Invalid(format!(
                "builder {name:?} uses the {} driver, not {driver}",
                ng.driver
            )));
        }
    }

    let driver_opts = parse_driver_opts(&opts.driver_opts)?;
    let platforms = parse_platforms(&opts.platforms)?;
    let files = match &opts.config_file {
        Some(p) if driver == "remote" => {
            return Err(DriverError::Invalid(format!(
                "the remote driver does not take a buildkitd config file ({}): configure the daemon itself",
                p.display()
            )));
        }
        Some(p) => Some(load_config_files(p)?),
        None => None,
    };
    let warnings = match &opts.config_file {
        Some(p) if files.is_some() => crate::config_check::warnings(p),
        _ => Vec::new(),
    };
    let flags = match &opts.buildkitd_flags {
        Some(_) if driver == "remote" => {
            return Err(DriverError::Invalid(
                "the remote driver does not take --buildkitd-flags: configure the daemon itself"
                    .into(),
            ));
        }
        Some(f) => Some(buildkitd_flags(f, &driver, &driver_opts, files.as_ref())?),
        None => Some(buildkitd_flags("", &driver, &driver_opts, files.as_ref())?),
    };

    let endpoint = match driver.as_str() {
        "kubernetes" => {
            if let Some(ep) = &opts.endpoint {
                return Err(DriverError::Invalid(format!(
                    "kubernetes driver does not support endpoint args {ep:?}"
                )));
            }
            // As buildx: a node id in the endpoint keeps each node's endpoint unique, so
            // `--append` can add more; the cluster is `$KUBECONFIG`'s at create time.
            let id = match &opts.node {
                Some(n) => n.clone(),
                None => crate::kubernetes::generate_deployment_id(),
            };
            let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_default();
            crate::kubernetes::endpoint(&name, &id, &kubeconfig)
        }
        "remote" => {
            let ep = opts
                .endpoint
                .clone()
                .or_else(|| std::env::var("BUILDKIT_HOST").ok().filter(|h| !h.is_empty()))
                .ok_or_else(|| DriverError::Invalid("the remote driver needs an endpoint: brix create --driver remote tcp://host:port (or unix:///path)".into()))?;
            crate::remote::validate_endpoint(&ep)?;
            ep
        }
        // As buildx: a docker context is kept by name (its engine may move), the `default`
        // context by its address.
        _ => match &opts.endpoint {
            Some(ep) if ep == docker_context::DEFAULT_CONTEXT => current_docker_endpoint(),
            Some(ep) if ep.contains("://") => ep.clone(),
            Some(ep) => match docker_context::get(ep) {
                Ok(_) => ep.clone(),
                Err(_) => {
                    return Err(DriverError::Invalid(format!(
                        "invalid endpoint {ep:?}: give a docker context (see `docker context ls`) or a Docker host such as unix:///var/run/docker.sock or tcp://host:2375"
                    )));
                }
            },
            None => match docker_context::current_name() {
                name if name == docker_context::DEFAULT_CONTEXT => current_docker_endpoint(),
                name => name,
            },
        },
    };

    // Validate the options against the driver now, so a bad option never reaches the store.
    match driver.as_str() {
        "docker-container" => {
            crate::docker_container::DockerContainerOptions::parse(&driver_opts)?;
        }
        "remote" => {
            crate::remote::RemoteOptions::parse(&driver_opts)?;
        }
        "kubernetes" => {
            crate::kubernetes::options::KubernetesOptions::parse(&driver_opts)?;
        }
        _ => {}
    }

    let mut ng = existing.clone().unwrap_or_else(|| NodeGroup {
        name: name.clone(),
        driver: driver.clone(),
        ..Default::default()
    });
    let idx = opts.node.as_deref().and_then(|n| ng.find_node(n));
    match idx {
        Some(i) => {
            let n = &mut ng.nodes[i];
            if opts.endpoint.is_some() {
                n.endpoint = endpoint.clone();
            }
            if !platforms.is_empty() {
                n.platforms = platforms;
            }
            if opts.buildkitd_flags.is_some() {
                n.buildkitd_flags = flags.unwrap_or_default();
            }
            if !opts.driver_opts.is_empty() {
                n.driver_opts = driver_opts;
            }
            if let Some(f) = files {
                n.files.extend(f);
            }
        }
        None => {
            if existing.is_some() && !opts.append {
                return Err(DriverError::Invalid(format!(
                    "node {:?} not found in builder {name:?}; did you mean --append?",
                    opts.node.clone().unwrap_or_default()
                )));
            }
            let node_name = match &opts.node {
                Some(n) => validate_name(n)?,
                None => ng.next_node_name(),
            };
            ng.nodes.push(Node {
                name: node_name,
                endpoint: endpoint.clone(),
                platforms,
                driver_opts,
                buildkitd_flags: flags.unwrap_or_default(),
                files: files.unwrap_or_default(),
            });
        }
    }
    if ng.nodes.iter().filter(|n| n.endpoint == endpoint).count() > 1 {
        return Err(DriverError::Invalid(format!(
            "invalid duplicate endpoint {endpoint}"
        )));
    }
    txn.save(&mut ng)?;
    Ok(Created {
        group: ng,
        previous: existing,
        warnings,
    })
}

/// Undoes [`create`]: restores the previous builder, or removes a new one.
pub fn rollback(txn: &mut Txn<'_>, created: &Created) -> Result<(), DriverError> {
    match &created.previous {
        Some(prev) => txn.save(&mut prev.clone())?,
        None => txn.remove(&created.group.name)?,
    }
    Ok(())
}

/// Removes node `node` from builder `name` (`create --leave`); the last node cannot leave.
pub fn leave(txn: &mut Txn<'_>, name: &str, node: &str) -> Result<NodeGroup, DriverError> {
    let mut ng = txn.node_group(name)?;
    let i = ng.find_node(node).ok_or_else(|| {
        DriverError::Invalid(format!("node {node:?} not found in builder {name:?}"))
    })?;
    if ng.nodes.len() == 1 {
        return Err(DriverError::Invalid(format!(
            "cannot remove the last node of {name:?}; use `brix rm {name}` instead"
        )));
    }
    ng.nodes.remove(i);
    txn.save(&mut ng)?;
    Ok(ng)
}

/// Adjectives and surnames for generated builder names: `adjective_surname`, the shape
/// buildx's generated names have (the docker CLI's names generator), so scripts that match
/// on it keep working.
const NAME_ADJECTIVES: &[&str] = &[
    "agile",
    "amazing",
    "bold",
    "brave",
    "calm",
    "clever",
    "cool",
    "crisp",
    "eager",
    "elastic",
    "epic",
    "fervent",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "patient",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];
const NAME_SURNAMES: &[&str] = &[
    "babbage",
    "bartik",
    "bell",
    "booth",
    "brattain",
    "cerf",
    "clarke",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermi",
    "franklin",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "morse",
    "newton",
    "noether",
    "pascal",
    "ramanujan",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yalow",
];

fn generate_name(txn: &Txn<'_>) -> Result<String, DriverError> {
    for attempt in 0..12u32 {
        let n = crate::random_u64();
        let adjective = NAME_ADJECTIVES[(n % NAME_ADJECTIVES.len() as u64) as usize];
        let surname = NAME_SURNAMES[((n >> 32) % NAME_SURNAMES.len() as u64) as usize];
        // As the docker generator does on a clash: a digit after the name.
        let name = if attempt < 6 {
            format!("{adjective}_{surname}")
        } else {
            format!("{adjective}_{surname}{}", n % 10)
        };
        if !txn.exists(&name)? {
            return Ok(name);
        }
    }
    Err(DriverError::Invalid(
        "failed to generate a builder name; pass --name".into(),
    ))
}

/// Parses `k=v[,k=v]` driver options (buildx reads each value as a CSV record).
pub fn parse_driver_opts(values: &[String]) -> Result<BTreeMap<String, String>, DriverError> {
    let mut m = BTreeMap::new();
    for v in values {
        for field in split_csv(v) {
            let (k, val) = field.split_once('=').ok_or_else(|| {
                DriverError::Invalid(format!(
                    "invalid driver option {field:?}, expecting key=value"
                ))
            })?;
            m.insert(k.to_string(), val.to_string());
        }
    }
    Ok(m)
}

/// Splits one CSV record, honouring double quotes (`"a,b"` stays one field).
fn split_csv(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

/// Parses `--platform` values (repeatable, comma-separated) into normalised OCI platforms.
pub fn parse_platforms(values: &[String]) -> Result<Vec<Platform>, DriverError> {
    let mut out: Vec<Platform> = Vec::new();
    for v in values {
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let p =
                Platform::parse(s).map_err(|e| DriverError::Invalid(format!("--platform: {e}")))?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Splits `--buildkitd-flags` like a shell and adds `--allow-insecure-entitlement=network.host`
/// for container drivers unless the user set entitlements, as buildx does.
pub fn buildkitd_flags(
    input: &str,
    driver: &str,
    driver_opts: &BTreeMap<String, String>,
    files: Option<&BTreeMap<String, Vec<u8>>>,
) -> Result<Vec<String>, DriverError> {
    let mut flags = if input.trim().is_empty() {
        Vec::new()
    } else {
        shlex::split(input).ok_or_else(|| {
            DriverError::Invalid(format!(
                "cannot parse --buildkitd-flags {input:?}: unbalanced quotes"
            ))
        })?
    };
    let mut entitlements = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        if let Some(v) = flags[i].strip_prefix("--allow-insecure-entitlement=") {
            entitlements.push(v.to_string());
        } else if flags[i] == "--allow-insecure-entitlement"
            && let Some(v) = flags.get(i + 1)
        {
            entitlements.push(v.clone());
            i += 1;
        }
        i += 1;
    }
    let in_config = files
        .and_then(|f| f.get("buildkitd.toml"))
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("insecure-entitlements")
                .and_then(|v| v.as_array())
                .cloned()
        })
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("network.host")));
    let has_host = entitlements.iter().any(|e| e == "network.host");
    let wants_host_net =
        driver == "docker-container" && driver_opts.get("network").is_some_and(|n| n == "host");
    // Container drivers isolate the network, so buildx lets builds ask for the host's.
    let container_driver = driver == "docker-container" || driver == "kubernetes";
    if (wants_host_net && !has_host) || (container_driver && entitlements.is_empty() && !in_config)
    {
        flags.push("--allow-insecure-entitlement=network.host".to_string());
    }
    Ok(flags)
}

/// Reads a buildkitd.toml, validates it with brix-config, copies the registry CA and key
/// pair files it names, and rewrites their paths to `/etc/buildkit/certs/<host>/<file>`.
/// Returns the files to place under `/etc/buildkit/`, keyed by relative path.
pub fn load_config_files(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, DriverError> {
    let text = std::fs::read_to_string(path).map_err(|source| DriverError::Io {
        path: format!("buildkitd config {}", path.display()),
        source,
    })?;
    crate::config_check::validate(path, &text)?;
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        DriverError::Config(format!("{}: {}", path.display(), e.message()))
    })?;
    let mut files = BTreeMap::new();
    let mut rewritten = false;
    if let Some(toml::Value::Table(registries)) = table.get_mut("registry") {
        for (host, conf) in registries.iter_mut() {
            let Some(conf) = conf.as_table_mut() else {
                continue;
            };
            let dir: String = host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            // Runs of invalid characters become one underscore, as buildx's regexp does.
            let mut prefix = String::from("certs/");
            let mut last_us = false;
            for c in dir.chars() {
                if c == '_' && last_us {
                    continue;
                }
                last_us = c == '_';
                prefix.push(c);
            }
            let mut copy = |p: &str, what: &str| -> Result<String, DriverError> {
                let base = Path::new(p)
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rel = format!("{prefix}/{base}");
                let data = std::fs::read(p).map_err(|source| DriverError::Io {
                    path: format!("{what} file {p} (named in {})", path.display()),
                    source,
                })?;
                files.insert(rel.clone(), data);
                Ok(format!("/etc/buildkit/{rel}"))
            };
            if let Some(toml::Value::Array(cas)) = conf.get_mut("ca") {
                for ca in cas.iter_mut() {
                    if let Some(p) = ca.as_str().map(str::to_string) {
                        *ca = toml::Value::String(copy(&p, "registry CA")?);
                        rewritten = true;
                    }
                }
            }
            if let Some(toml::Value::Array(kps)) = conf.get_mut("keypair") {
                for kp in kps.iter_mut().filter_map(|k| k.as_table_mut()) {
                    for field in ["key", "cert"] {
                        if let Some(p) = kp.get(field).and_then(|v| v.as_str()).map(str::to_string)
                            && !p.is_empty()
                        {
                            kp.insert(
                                field.to_string(),
                                toml::Value::String(copy(&p, "registry key pair")?),
                            );
                            rewritten = true;
                        }
                    }
                }
            }
        }
    }
    // Keep the user's file byte for byte unless paths had to change.
    let out = if rewritten {
        toml::to_string(&table)
            .map_err(|e| DriverError::Config(format!("{}: {e}", path.display())))?
    } else {
        text
    };
    files.insert("buildkitd.toml".to_string(), out.into_bytes());
    Ok(files)
}

/// The synthetic `default` builder: the current Docker engine's own BuildKit.
pub fn default_builder() -> NodeGroup {
    NodeGroup {
        name: DEFAULT_BUILDER.to_string(),
        driver: "docker".to_string(),
        nodes: vec![Node {
            name: DEFAULT_BUILDER.to_string(),
            endpoint: DEFAULT_BUILDER.to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The builder the environment names: `$BRIX_BUILDER`, else buildx's `$BUILDX_BUILDER` (what
/// docker/setup-buildx-action and scripts written for buildx set); empty values are unset.
pub fn builder_from_env() -> Option<String> {
    ["BRIX_BUILDER", "BUILDX_BUILDER"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|s| !s.is_empty()))
}

/// The builder a command means: `name` if given (`default` included), else the environment's
/// ([`builder_from_env`]), else the current builder for this Docker endpoint, else `default`.
///
/// A docker context is a builder too (the `docker` driver on its engine): named directly, or
/// as the current context when no builder is current. A current context that does not exist
/// (`DOCKER_CONTEXT` misspelt) is an error, never a silent fallback to another engine.
pub fn resolve(txn: &Txn<'_>, name: Option<&str>) -> Result<NodeGroup, DriverError> {
    let env = builder_from_env();
    let name = match name.map(str::to_string).or(env) {
        Some(n) => n,
        None => match txn.current(&current_store_key())? {
            Some(n) => n,
            None => match docker_context::current() {
                Ok(ctx) => ctx.name,
                Err(_) => {
                    let name = docker_context::current_name();
                    return Err(DriverError::Invalid(format!(
                        "no builder {name:?} found: the current docker context (DOCKER_CONTEXT or `docker context use`) does not exist; see `docker context ls`"
                    )));
                }
            },
        },
    };
    if name == DEFAULT_BUILDER {
        return Ok(default_builder());
    }
    match txn.node_group(&name) {
        Err(StoreError::NotFound(missing)) => match docker_context::get(&name) {
            Ok(ctx) => Ok(context_builder(&ctx.name)),
            Err(_) => Err(StoreError::NotFound(missing).into()),
        },
        other => Ok(other?),
    }
}

/// The docker context `ng` is, when it is one and not the current context: buildx refuses
/// to build there (`use \`docker --context=NAME buildx\` to switch to context "NAME"`),
/// brix builds there and says so.
pub fn non_current_context(ng: &NodeGroup) -> Option<String> {
    let is_context = ng.driver == "docker"
        && ng.nodes.len() == 1
        && ng.nodes[0].endpoint == ng.name
        && ng.name != DEFAULT_BUILDER
        && docker_context::get(&ng.name).is_ok();
    (is_context && docker_context::current_name() != ng.name).then(|| ng.name.clone())
}

/// The builder a docker context is: the `docker` driver on that context's engine, one node
/// named after it.
pub fn context_builder(context: &str) -> NodeGroup {
    if context == DEFAULT_BUILDER {
        return default_builder();
    }
    NodeGroup {
        name: context.to_string(),
        driver: "docker".to_string(),
        nodes: vec![Node {
            name: context.to_string(),
            endpoint: context.to_string(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Every builder in the store, sorted by name, then one per docker context (sorted, `default`
/// included) whose name no stored builder has, in the order `brix ls` shows them (buildx's).
pub fn list_all(txn: &Txn<'_>) -> Result<Vec<NodeGroup>, DriverError> {
    let mut all = txn.list()?;
    for ctx in docker_context::list() {
        if !all.iter().any(|ng| ng.name == ctx.name) {
            all.push(context_builder(&ctx.name));
        }
    }
    Ok(all)
}

/// Makes the driver for `node` of builder `ng`.
pub fn driver_for(ng: &NodeGroup, node: &Node) -> Result<Box<dyn Driver>, DriverError> {
    driver_for_context(ng, node, "")
}

/// [`driver_for`], for a build of the context at `context_key` (its absolute path, as
/// buildx's `ContextPathHash`): the kubernetes driver's `loadbalance=sticky` sends the builds
/// of one context to one pod.
pub fn driver_for_context(
    ng: &NodeGroup,
    node: &Node,
    context_key: &str,
) -> Result<Box<dyn Driver>, DriverError> {
    match ng.driver.as_str() {
        "kubernetes" => Ok(Box::new(crate::kubernetes::KubernetesDriver::new(
            node,
            context_key,
        )?)),
        "docker-container" => Ok(Box::new(DockerContainerDriver::new(
            &node.name,
            &node.endpoint,
            &node.driver_opts,
            node.buildkitd_flags.clone(),
            node.files.clone(),
        )?)),
        // The endpoint is resolved by the driver: an address, or a docker context's name
        // (`default`: the default context, DOCKER_HOST or the local socket).
        "docker" => Ok(Box::new(crate::docker::DockerDriver::new(&node.endpoint)?)),
        "remote" => Ok(Box::new(crate::remote::RemoteDriver::new(
            &node.endpoint,
            &node.driver_opts,
        )?)),
        other => Err(DriverError::Invalid(format!(
            "builder {:?} uses unknown driver {other:?}; valid drivers: docker, {}",
            ng.name,
            CREATABLE_DRIVERS.join(", ")
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn platforms_normalise() {
        let p = parse_platforms(&[
            "linux/amd64,linux/arm64".into(),
            "linux/arm".into(),
            "aarch64".into(),
        ])
        .unwrap();
        let s: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert!(parse_platforms(&["linux/arm64/v8/x".into()]).is_err());
        assert!(parse_platforms(&["linux/".into()]).is_err());
    }

    #[test]
    fn driver_opts_csv() {
        let m =
            parse_driver_opts(&["image=a:b,network=host".into(), "\"env.X=1,2\"".into()]).unwrap();
        assert_eq!(m["image"], "a:b");
        assert_eq!(m["network"], "host");
        assert_eq!(m["env.X"], "1,2");
        assert!(parse_driver_opts(&["novalue".into()]).is_err());
    }

    #[test]
    fn entitlement_added_like_buildx() {
        let none = BTreeMap::new();
        assert_eq!(
            buildkitd_flags("--debug", "docker-container", &none, None).unwrap(),
            ["--debug", "--allow-insecure-entitlement=network.host"]
        );
        assert_eq!(
            buildkitd_flags(
                "--allow-insecure-entitlement security.insecure",
                "docker-container",
                &none,
                None
            )
            .unwrap(),
            ["--allow-insecure-entitlement", "security.insecure"]
        );
        let host: BTreeMap<_, _> = [("network".to_string(), "host".to_string())].into();
        assert_eq!(
            buildkitd_flags(
                "--allow-insecure-entitlement=security.insecure",
                "docker-container",
                &host,
                None
            )
            .unwrap(),
            [
                "--allow-insecure-entitlement=security.insecure",
                "--allow-insecure-entitlement=network.host"
            ]
        );
        let mut files = BTreeMap::new();
        files.insert(
            "buildkitd.toml".to_string(),
            b"insecure-entitlements = [\"network.host\"]\n".to_vec(),
        );
        assert!(
            buildkitd_flags("", "docker-container", &none, Some(&files))
                .unwrap()
                .is_empty()
        );
        assert!(
            buildkitd_flags("", "remote", &none, None)
                .unwrap()
                .is_empty()
        );
        assert!(buildkitd_flags("'unbalanced", "docker-container", &none, None).is_err());
    }

    #[test]
    fn config_files_rewrite_cert_paths() {
        let dir = std::env::temp_dir().join(format!("brix-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), b"CA").unwrap();
        std::fs::write(dir.join("k.pem"), b"KEY").unwrap();
        let cfg = dir.join("buildkitd.toml");
        std::fs::write(
            &cfg,
            format!(
                "[registry.\"my.reg:5000\"]\n  ca = [\"{0}/ca.pem\"]\n  [[registry.\"my.reg:5000\".keypair]]\n    key = \"{0}/k.pem\"\n    cert = \"{0}/k.pem\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let files = load_config_files(&cfg).unwrap();
        assert_eq!(files["certs/my.reg_5000/ca.pem"], b"CA");
        assert_eq!(files["certs/my.reg_5000/k.pem"], b"KEY");
        let toml = String::from_utf8(files["buildkitd.toml"].clone()).unwrap();
        assert!(
            toml.contains("/etc/buildkit/certs/my.reg_5000/ca.pem"),
            "{toml}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
