//! Resolution as buildx's `ReadTargets` does it: requested names matched (globs too) and
//! expanded through groups, each target built from its `inherits` chain and its overrides,
//! `target:NAME` contexts pulling the linked targets in, and the `default` group that
//! `--print` shows synthesised from the request.

use std::collections::{BTreeMap, HashMap};

use crate::model::text::{go_quote, path_clean, path_match};
use crate::model::{Config, ExportEntry, Group, Target, dedup_strings, sanitize_target_name};
use crate::overrides::{OverrideError, Overrides};

/// Why targets could not be resolved, worded as buildx words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A requested glob matched no group or target.
    #[error("could not find any target matching {}", go_quote(.0))]
    NoMatch(String),
    /// A requested, inherited or linked target does not exist.
    #[error("failed to find target {0}")]
    TargetNotFound(String),
    /// An override could not be parsed or applied.
    #[error(transparent)]
    Override(#[from] OverrideError),
    /// A target names itself in a `target:` context.
    #[error("target {0} cannot link to itself")]
    SelfLink(String),
    /// `target:` contexts that loop.
    #[error("infinite loop from {from} to {to}")]
    LinkLoop {
        /// The target whose context closes the loop.
        from: String,
        /// The target it links to.
        to: String,
    },
    /// A multi-platform target linking one whose platforms do not cover its own.
    #[error(
        "target {linked} can't be used by {user} because its platforms {} are not a subset of {}",
        go_list(.user_platforms),
        go_list(.linked_platforms)
    )]
    PlatformsNotSubset {
        /// The linked target.
        linked: String,
        /// The target using it.
        user: String,
        /// The user's platforms.
        user_platforms: Vec<String>,
        /// The linked target's platforms.
        linked_platforms: Vec<String>,
    },
    /// `context = "-"`.
    #[error("context from stdin not allowed in bake")]
    StdinContext,
    /// `dockerfile = "-"`.
    #[error("dockerfile from stdin not allowed in bake")]
    StdinDockerfile,
    /// A `shm-size` that is no size.
    #[error("invalid value {0} for membytes key shm-size")]
    ShmSize(String),
    /// An output its exporter cannot write (`dest is required for local exporter`).
    #[error("{0}")]
    Output(String),
    /// An annotation that does not parse (`invalid annotation "x", expected key=value`).
    #[error("{0}")]
    Annotation(String),
    /// A ulimit that does not parse (`invalid ulimit type: foo`).
    #[error("{0}")]
    Ulimit(String),
    /// A secret without an id.
    #[error("secret missing ID")]
    SecretMissingId,
    /// A secret file that cannot be read (`failed to stat X: stat X: no such file or
    /// directory`).
    #[error("failed to stat {path}: stat {path}: {reason}")]
    SecretFile {
        /// The file as written.
        path: String,
        /// Why, as Go words it.
        reason: String,
    },
}

/// A string list as Go's `%v` prints it: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// The resolved request: the targets to build by name and the groups `--print` shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolved {
    /// The targets, requested and linked, by name.
    pub targets: BTreeMap<String, Target>,
    /// The groups involved, and `default` listing what was asked for.
    pub groups: BTreeMap<String, Group>,
}

impl Config {
    /// The names a requested name stands for (buildx's `matchNames`): itself, or for a glob
    /// the groups then targets it matches.
    pub fn match_names(&self, pattern: &str) -> Result<Vec<String>, ResolveError> {
        if !pattern.contains(['*', '?', '[', ']']) {
            return Ok(vec![pattern.to_string()]);
        }
        let names: Vec<String> = self
            .groups
            .iter()
            .map(|g| &g.name)
            .chain(self.targets.iter().map(|t| &t.name))
            .filter(|name| path_match(pattern, name).unwrap_or(false))
            .cloned()
            .collect();
        if names.is_empty() {
            return Err(ResolveError::NoMatch(pattern.to_string()));
        }
        Ok(names)
    }

    /// The targets and groups a name expands to (buildx's `ResolveGroup`): a group's
    /// members recursively, a name that is no group as itself. A group seen again while
    /// being expanded contributes its own name as a target, as in buildx (so `group "foo"
    /// { targets = ["foo"] }` builds the target `foo`).
    pub fn resolve_group(&self, name: &str) -> (Vec<String>, Vec<String>) {
        let mut visited: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        let (targets, groups) = self.expand_group(name, &mut visited);
        (dedup_strings(targets), dedup_strings(groups))
    }

    fn expand_group(
        &self,
        name: &str,
        visited: &mut HashMap<String, (Vec<String>, Vec<String>)>,
    ) -> (Vec<String>, Vec<String>) {
        if let Some(seen) = visited.get(name) {
            return seen.clone();
        }
        let Some(group) = self.group(name) else {
            return (vec![name.to_string()], Vec::new());
        };
        visited.insert(name.to_string(), (Vec::new(), Vec::new()));
        let mut targets = Vec::new();
        let mut groups = vec![name.to_string()];
        for member in group.target_names() {
            let (member_targets, member_groups) = self.expand_group(member, visited);
            if member_targets.is_empty() {
                targets.push(member.clone());
            } else {
                targets.extend(member_targets);
            }
            groups.extend(member_groups);
        }
        visited.insert(name.to_string(), (targets.clone(), groups.clone()));
        (targets, groups)
    }

    /// One target fully resolved (buildx's `ResolveTarget`): inherits merged in order, its
    /// own attributes over them, its overrides applied, normalised, `inherits` cleared, and
    /// the defaults `context = "."` and `dockerfile = "Dockerfile"` (also for an empty one).
    pub fn resolve_target(
        &self,
        name: &str,
        overrides: &Overrides,
    ) -> Result<Target, ResolveError> {
        let mut visited: HashMap<String, Option<Target>> = HashMap::new();
        let mut target = self
            .resolve_inherited(name, &mut visited, overrides)?
            .ok_or_else(|| ResolveError::TargetNotFound(name.to_string()))?;
        target.inherits.clear();
        if target.context.is_none() {
            target.context = Some(".".to_string());
        }
        if target.dockerfile.as_deref().is_none_or(str::is_empty) {
            target.dockerfile = Some("Dockerfile".to_string());
        }
        Ok(target)
    }

    /// buildx's `Config.target`: `None` for a target met again through an `inherits` cycle
    /// (it then contributes nothing).
    fn resolve_inherited(
        &self,
        name: &str,
        visited: &mut HashMap<String, Option<Target>>,
        overrides: &Overrides,
    ) -> Result<Option<Target>, ResolveError> {
        if let Some(seen) = visited.get(name) {
            return Ok(seen.clone());
        }
        visited.insert(name.to_string(), None);
        let declared = self
            .target(name)
            .ok_or_else(|| ResolveError::TargetNotFound(name.to_string()))?;
        let mut inherited = Target::default();
        for parent in &declared.inherits {
            if let Some(parent) = self.resolve_inherited(parent, visited, overrides)? {
                inherited.merge(&parent);
            }
        }
        let mut resolved = Target::default();
        resolved.merge(&inherited);
        resolved.merge(declared);
        resolved.name = name.to_string();
        resolved.add_overrides(overrides.for_target(name))?;
        resolved.normalize();
        visited.insert(name.to_string(), Some(resolved.clone()));
        Ok(Some(resolved))
    }

    /// Follows `target:NAME` contexts from `name` (buildx's `loadLinks`): a linked target not
    /// requested is resolved and builds to the cache only; entitlements of linked targets
    /// are added to the user's; multi-platform users need their platforms covered.
    fn load_links(
        &self,
        name: &str,
        targets: &mut BTreeMap<String, Target>,
        overrides: &Overrides,
        visited: &[String],
    ) -> Result<(), ResolveError> {
        let mut visited = visited.to_vec();
        visited.push(name.to_string());
        let contexts: Vec<String> = targets
            .get(name)
            .map(|t| t.contexts.values().cloned().collect())
            .unwrap_or_default();
        for context in contexts {
            let Some(linked) = context.strip_prefix("target:") else {
                continue;
            };
            if linked == name {
                return Err(ResolveError::SelfLink(linked.to_string()));
            }
            if visited.iter().any(|v| v == linked) {
                return Err(ResolveError::LinkLoop {
                    from: name.to_string(),
                    to: linked.to_string(),
                });
            }
            if !targets.contains_key(linked) {
                let mut t = self.resolve_target(linked, overrides)?;
                t.outputs = Some(vec![ExportEntry {
                    kind: "cacheonly".to_string(),
                    ..ExportEntry::default()
                }]);
                t.linked = true;
                targets.insert(linked.to_string(), t);
            }
            self.load_links(linked, targets, overrides, &visited)?;
            let (linked_entitlements, linked_platforms) = match targets.get(linked) {
                Some(t) => (
                    t.entitlements.clone().unwrap_or_default(),
                    t.platforms.clone().unwrap_or_default(),
                ),
                None => continue,
            };
            let Some(user) = targets.get_mut(name) else {
                continue;
            };
            for entitlement in linked_entitlements {
                let list = user.entitlements.get_or_insert_with(Vec::new);
                if !list.contains(&entitlement) {
                    list.push(entitlement);
                }
            }
            let user_platforms = user.platforms.clone().unwrap_or_default();
            if user_platforms.len() > 1
                && linked_platforms.len() > 1
                && !user_platforms.iter().all(|p| linked_platforms.contains(p))
            {
                return Err(ResolveError::PlatformsNotSubset {
                    linked: linked.to_string(),
                    user: name.to_string(),
                    user_platforms,
                    linked_platforms,
                });
            }
        }
        Ok(())
    }
}

/// Resolves the requested names against a config as buildx's `ReadTargets` does.
/// `lookup_env` gives `--set NAME.args.KEY` without a value its value.
pub fn read_targets(
    config: &Config,
    requested: &[String],
    overrides: &[String],
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ResolveError> {
    let mut names = Vec::new();
    for name in requested {
        names.extend(config.match_names(&sanitize_target_name(name))?);
    }
    let names = dedup_strings(names);
    let overrides = Overrides::parse(config, overrides, lookup_env)?;

    let mut resolved = Resolved::default();
    for name in &names {
        let (targets, groups) = config.resolve_group(name);
        for target in targets {
            let t = config.resolve_target(&target, &overrides)?;
            resolved.targets.insert(target, t);
        }
        for group in groups {
            if let Some(g) = config.group(&group) {
                resolved.groups.insert(group, g.clone());
            }
        }
    }

    // The `default` group lists what was asked for, unless `default` itself was a group.
    let has_default_group = resolved.groups.contains_key("default");
    for name in &names {
        if has_default_group && name == "default" {
            continue;
        }
        let default = resolved
            .groups
            .entry("default".to_string())
            .or_insert_with(|| Group {
                name: "default".to_string(),
                ..Group::default()
            });
        default
            .targets
            .get_or_insert_with(Vec::new)
            .push(name.clone());
    }
    if let Some(default) = resolved.groups.get_mut("default")
        && let Some(targets) = default.targets.take()
    {
        let mut targets = dedup_strings(targets);
        targets.sort();
        default.targets = Some(targets);
    }

    let requested_targets: Vec<String> = resolved.targets.keys().cloned().collect();
    for name in requested_targets {
        config.load_links(&name, &mut resolved.targets, &overrides, &[])?;
    }
    Ok(resolved)
}

/// buildx's `IsRemoteURL`: an http(s) URL, or a git reference (`git://`, `ssh://`,
/// `https://….git`, `user@host:path`, `github.com/…`).
pub fn is_remote_url(s: &str) -> bool {
    if s.starts_with("http://") || s.starts_with("https://") || s.starts_with("github.com/") {
        return true;
    }
    if s.starts_with("./") || s.starts_with("../") {
        return false;
    }
    if let Some((proto, _)) = s.split_once("://")
        && !proto.is_empty()
        && proto.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return matches!(proto.to_ascii_lowercase().as_str(), "ssh" | "git");
    }
    // scp-like `user@host:path`.
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

/// What buildx's `runBake` does to the resolved targets before `--print` shows them: the
/// `SOURCE_DATE_EPOCH` build argument added from the environment (unless a target sets it),
/// and the changes its conversion to build options writes back (`TargetsToBuildOpt`): the
/// context path cleaned and stripped of `cwd://`, a file output (`tar`, `oci`, `docker` as a
/// tarball) without `dest` going to stdout (`-`); `-` as context or Dockerfile refused.
pub fn prepare_for_build(
    resolved: &mut Resolved,
    source_date_epoch: Option<&str>,
) -> Result<(), ResolveError> {
    for target in resolved.targets.values_mut() {
        if let Some(epoch) = source_date_epoch.filter(|e| !e.is_empty())
            && !target.args.contains_key("SOURCE_DATE_EPOCH")
        {
            target
                .args
                .insert("SOURCE_DATE_EPOCH".to_string(), Some(epoch.to_string()));
        }
    }
    for target in resolved.targets.values_mut() {
        if target.context.as_deref() == Some("-") {
            return Err(ResolveError::StdinContext);
        }
        if target.dockerfile.as_deref() == Some("-") {
            return Err(ResolveError::StdinDockerfile);
        }
        let mut context = target.context.clone().unwrap_or_else(|| ".".to_string());
        if !context.starts_with("cwd://") && !is_remote_url(&context) {
            context = path_clean(&context);
        }
        if let Some(local) = context.strip_prefix("cwd://") {
            context = path_clean(local);
        }
        target.context = Some(context);
        for output in target.outputs.iter_mut().flatten() {
            let writes_file = match output.kind.as_str() {
                "tar" => true,
                "oci" | "docker" => output
                    .attrs
                    .get("tar")
                    .and_then(|v| crate::model::text::parse_go_bool(v))
                    .unwrap_or(true),
                _ => false,
            };
            if writes_file && output.destination.is_empty() && output.kind != "docker" {
                output.destination = "-".to_string();
            }
        }
    }
    Ok(())
}

/// The checks buildx's conversion to build options makes (so before `--print` too), target
/// by target: `shm-size` a size, secrets readable as its secret store reads them (an id; one
/// without `env` or `src` is the variable of its id when set, else the file of that name),
/// outputs writable by their exporter, annotations and ulimits well formed. Paths are
/// relative to `dir`. Platforms, SSH agents and source policies are left to the build.
pub fn check_build_options(
    resolved: &Resolved,
    lookup_env: &dyn Fn(&str) -> Option<String>,
    dir: &std::path::Path,
) -> Result<(), ResolveError> {
    for target in resolved.targets.values() {
        if let Some(size) = &target.shm_size
            && crate::model::text::ram_in_bytes(size).is_err()
        {
            return Err(ResolveError::ShmSize(size.clone()));
        }
        check_secrets(target, lookup_env, dir)?;
        check_outputs(target, dir)?;
        for annotation in target.annotations.iter().flatten() {
            check_annotation(annotation)?;
        }
        for ulimit in target.ulimits.iter().flatten() {
            crate::model::text::parse_ulimit(ulimit).map_err(ResolveError::Ulimit)?;
        }
    }
    Ok(())
}

/// An OS error as Go words it.
fn go_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

fn check_secrets(
    target: &Target,
    lookup_env: &dyn Fn(&str) -> Option<String>,
    dir: &std::path::Path,
) -> Result<(), ResolveError> {
    for secret in target.secrets.iter().flatten() {
        if secret.id.is_empty() {
            return Err(ResolveError::SecretMissingId);
        }
        let mut path = secret.file_path.clone();
        if secret.env.is_empty() && path.is_empty() && lookup_env(&secret.id).is_none() {
            path = secret.id.clone();
        }
        if path.is_empty() {
            continue;
        }
        if let Err(e) = std::fs::metadata(dir.join(&path)) {
            return Err(ResolveError::SecretFile {
                reason: go_reason(&e),
                path,
            });
        }
    }
    Ok(())
}

/// buildx's `CreateExports` checks: directory exporters need a `dest` other than `-` that
/// is no file, file exporters a `dest` that is no directory, and one output at most on
/// stdout.
fn check_outputs(target: &Target, dir: &std::path::Path) -> Result<(), ResolveError> {
    let mut stdout_used = false;
    for output in target.outputs.iter().flatten() {
        let kind = output.kind.as_str();
        let (file, directory) = match kind {
            "local" => (false, true),
            "tar" => (true, false),
            "oci" | "docker" => {
                let tar = output
                    .attrs
                    .get("tar")
                    .and_then(|v| crate::model::text::parse_go_bool(v))
                    .unwrap_or(true);
                (tar, !tar)
            }
            _ => (false, false),
        };
        let dest = output.destination.as_str();
        if directory {
            if dest.is_empty() {
                return Err(ResolveError::Output(format!(
                    "dest is required for {kind} exporter"
                )));
            }
            if dest == "-" {
                return Err(ResolveError::Output(format!(
                    "dest cannot be stdout for {kind} exporter"
                )));
            }
            if std::fs::metadata(dir.join(dest)).is_ok_and(|m| !m.is_dir()) {
                return Err(ResolveError::Output(format!(
                    "destination directory {dest} is a file"
                )));
            }
        }
        if file {
            if dest == "-" {
                if stdout_used {
                    return Err(ResolveError::Output(
                        "multiple outputs configured to write to stdout".to_string(),
                    ));
                }
                stdout_used = true;
            } else if !dest.is_empty()
                && std::fs::metadata(dir.join(dest)).is_ok_and(|m| m.is_dir())
            {
                return Err(ResolveError::Output(format!(
                    "destination file {dest} is a directory"
                )));
            }
        }
    }
    Ok(())
}

/// buildx's `ParseAnnotations` checks: `KEY=VALUE`, optionally `TYPES:KEY=VALUE` with types
/// among `index`, `index-descriptor`, `manifest`, `manifest-descriptor`, each optionally
/// followed by a `[platform]`.
fn check_annotation(annotation: &str) -> Result<(), ResolveError> {
    if annotation.is_empty() {
        return Ok(());
    }
    let Some((key, _)) = annotation.split_once('=') else {
        return Err(ResolveError::Annotation(format!(
            "invalid annotation {}, expected key=value",
            go_quote(annotation)
        )));
    };
    let Some((types, _)) = key.split_once(':') else {
        return Ok(());
    };
    for type_and_platform in types.split(',') {
        let (kind, platform) = match type_and_platform.split_once('[') {
            Some((kind, rest)) => match rest.strip_suffix(']') {
                Some(platform) => (kind, Some(platform)),
                None => (type_and_platform, Some("")),
            },
            None => (type_and_platform, None),
        };
        let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        let platform_ok = platform.is_none_or(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
        });
        if !kind_ok || !platform_ok {
            return Err(ResolveError::Annotation(format!(
                "invalid annotation type {}, expected type and optional platform in square brackets",
                go_quote(type_and_platform)
            )));
        }
        if !matches!(
            kind,
            "index" | "index-descriptor" | "manifest" | "manifest-descriptor"
        ) {
            return Err(ResolveError::Annotation(format!(
                "unknown annotation type {}",
                go_quote(kind)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;
    use crate::testutil::config;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn read(cfg: &Config, targets: &[&str], overrides: &[&str]) -> Result<Resolved, ResolveError> {
        let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        read_targets(cfg, &targets, &overrides, &no_env)
    }

    fn default_group(r: &Resolved) -> Vec<String> {
        r.groups["default"].target_names().to_vec()
    }

    fn web_config() -> Config {
        config(json!([
            ["target", "webDEP", {
                "args": {"VAR_INHERITED": "webDEP", "VAR_BOTH": "webDEP"},
                "no-cache": true, "shm-size": "128m", "ulimits": ["nofile=1024:1024"],
                "extra-hosts": {"my_hostname": "8.8.8.8"}
            }],
            ["target", "webapp", {
                "dockerfile": "Dockerfile.webapp",
                "args": {"VAR_BOTH": "webapp"},
                "annotations": ["index,manifest:org.opencontainers.image.authors=dvdksn"],
                "attest": ["type=provenance,mode=max"],
                "platforms": ["linux/amd64"],
                "secret": ["id=FOO,env=FOO"],
                "inherits": ["webDEP"]
            }]
        ]))
    }

    fn arg(t: &Target, key: &str) -> Option<String> {
        t.args.get(key).cloned().flatten()
    }

    #[test]
    fn read_targets_no_overrides() {
        let r = read(&web_config(), &["webapp"], &[]).unwrap();
        assert_eq!(r.targets.len(), 1);
        let t = &r.targets["webapp"];
        assert_eq!(t.dockerfile.as_deref(), Some("Dockerfile.webapp"));
        assert_eq!(t.context.as_deref(), Some("."));
        assert_eq!(arg(t, "VAR_INHERITED").as_deref(), Some("webDEP"));
        assert_eq!(t.no_cache, Some(true));
        assert_eq!(t.shm_size.as_deref(), Some("128m"));
        assert_eq!(
            t.ulimits.as_deref(),
            Some(&["nofile=1024:1024".to_string()][..])
        );
        assert_eq!(t.extra_hosts["my_hostname"].as_deref(), Some("8.8.8.8"));
        assert_eq!(t.pull, None);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(default_group(&r), ["webapp"]);
    }

    #[test]
    fn read_targets_overrides() {
        let cfg = web_config();
        assert_eq!(
            read(&cfg, &["webapp"], &["nosuchtarget.context=foo"])
                .unwrap_err()
                .to_string(),
            "could not find any target matching 'nosuchtarget'"
        );
        let r = read(
            &cfg,
            &["webapp"],
            &[
                "webapp.args.VAR_UNSET",
                "webapp.args.VAR_EMPTY=",
                "webapp.args.VAR_SET=bananas",
                "webapp.args.VAR_INHERITED=override",
            ],
        )
        .unwrap();
        let t = &r.targets["webapp"];
        assert!(!t.args.contains_key("VAR_UNSET"));
        assert_eq!(arg(t, "VAR_EMPTY").as_deref(), Some(""));
        assert_eq!(arg(t, "VAR_SET").as_deref(), Some("bananas"));
        assert_eq!(arg(t, "VAR_BOTH").as_deref(), Some("webapp"));
        assert_eq!(arg(t, "VAR_INHERITED").as_deref(), Some("override"));

        // Overriding the parent reaches the child, but not over the child's own values.
        let r = read(
            &cfg,
            &["webapp"],
            &[
                "webDEP.args.VAR_INHERITED=override",
                "webDEP.args.VAR_BOTH=override",
            ],
        )
        .unwrap();
        let t = &r.targets["webapp"];
        assert_eq!(arg(t, "VAR_INHERITED").as_deref(), Some("override"));
        assert_eq!(arg(t, "VAR_BOTH").as_deref(), Some("webapp"));

        let r = read(
            &cfg,
            &["webapp"],
            &["webapp.annotations=index,manifest:org.opencontainers.image.vendor=docker"],
        )
        .unwrap();
        assert_eq!(
            r.targets["webapp"].annotations.as_deref().unwrap(),
            [
                "index,manifest:org.opencontainers.image.authors=dvdksn",
                "index,manifest:org.opencontainers.image.vendor=docker"
            ]
        );
        for set in ["webapp.attest=type=sbom", "webapp.attest+=type=sbom"] {
            let r = read(&cfg, &["webapp"], &[set]).unwrap();
            let kinds: Vec<&str> = r.targets["webapp"]
                .attest
                .iter()
                .flatten()
                .map(|a| a.kind.as_str())
                .collect();
            assert_eq!(kinds, ["provenance", "sbom"]);
        }
        assert!(read(&cfg, &["webapp"], &["webapp.context"]).is_err());
        let r = read(
            &cfg,
            &["webapp"],
            &[
                "webapp.context=foo",
                "webapp.no-cache=false",
                "webapp.pull=false",
                "webapp.shm-size=256m",
            ],
        )
        .unwrap();
        let t = &r.targets["webapp"];
        assert_eq!(t.context.as_deref(), Some("foo"));
        assert_eq!(t.no_cache, Some(false));
        assert_eq!(t.pull, Some(false));
        assert_eq!(t.shm_size.as_deref(), Some("256m"));

        let r = read(&cfg, &["webapp"], &["webapp.secrets=id=BAR,env=BAR"]).unwrap();
        let ids: Vec<&str> = r.targets["webapp"]
            .secrets
            .iter()
            .flatten()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["BAR"]);
        let r = read(&cfg, &["webapp"], &["webapp.secrets+=id=BAR,env=BAR"]).unwrap();
        let ids: Vec<&str> = r.targets["webapp"]
            .secrets
            .iter()
            .flatten()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["FOO", "BAR"]);
    }

    #[test]
    fn pattern_overrides() {
        let cfg = web_config();
        for overrides in [
            &["web*.dockerfile=foo"][..],
            &["web*.dockerfile=foo", "*.args.VAR_BOTH=bar"],
        ] {
            let r = read(&cfg, &["webapp", "webDEP"], overrides).unwrap();
            assert_eq!(r.targets.len(), 2);
            assert_eq!(r.targets["webapp"].dockerfile.as_deref(), Some("foo"));
            assert_eq!(r.targets["webDEP"].dockerfile.as_deref(), Some("foo"));
            assert_eq!(
                arg(&r.targets["webapp"], "VAR_INHERITED").as_deref(),
                Some("webDEP")
            );
            assert_eq!(default_group(&r), ["webDEP", "webapp"]);
        }
        assert_eq!(
            read(&cfg, &["webapp"], &["nomatch*.dockerfile=foo"])
                .unwrap_err()
                .to_string(),
            "could not find any target matching 'nomatch*'"
        );
    }

    #[test]
    fn override_merge_of_platforms_and_outputs() {
        let cfg =
            config(json!([["target", "app", {"platforms": ["linux/amd64"], "output": ["foo"]}]]));
        let r = read(
            &cfg,
            &["app"],
            &[
                "app.platform=linux/arm",
                "app.platform=linux/ppc64le",
                "app.output=type=registry",
            ],
        )
        .unwrap();
        let t = &r.targets["app"];
        assert_eq!(
            t.platforms.as_deref().unwrap(),
            ["linux/arm", "linux/ppc64le"]
        );
        assert_eq!(
            t.outputs
                .iter()
                .flatten()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
            ["type=registry"]
        );
        // `app.output=` empties the outputs.
        let cfg = config(json!([["target", "app", {"output": ["./bin"]}]]));
        let r = read(&cfg, &["app"], &["app.output="]).unwrap();
        assert_eq!(r.targets["app"].outputs, None);
    }

    #[test]
    fn contexts_inherit_and_reset() {
        let cfg = config(json!([
            ["target", "base", {"contexts": {"foo": "bar", "abc": "def"}}],
            ["target", "app", {"inherits": ["base"], "contexts": {"foo": "baz"}}]
        ]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        let c = &r.targets["app"].contexts;
        assert_eq!(
            (c.len(), c["foo"].as_str(), c["abc"].as_str()),
            (2, "baz", "def")
        );
        let r = read(
            &cfg,
            &["app"],
            &["app.contexts.foo=bay", "base.contexts.ghi=jkl"],
        )
        .unwrap();
        let c = &r.targets["app"].contexts;
        assert_eq!(
            (c.len(), c["foo"].as_str(), c["ghi"].as_str()),
            (3, "bay", "jkl")
        );
        let r = read(&cfg, &["app"], &["app.contexts.foo="]).unwrap();
        let c = &r.targets["app"].contexts;
        assert_eq!((c.len(), c["abc"].as_str()), (1, "def"));
    }

    #[test]
    fn linked_targets() {
        let cfg = config(json!([
            ["target", "base", {"contexts": {"foo": "bar", "abc": "def"}}],
            ["target", "app", {"contexts": {"foo": "baz", "bar": "target:bar"}}]
        ]));
        assert_eq!(
            read(&cfg, &["app"], &[]).unwrap_err().to_string(),
            "failed to find target bar"
        );

        let cfg = config(json!([
            ["target", "base", {}],
            ["target", "mid", {"output": ["foo"], "contexts": {"parent": "target:base"}}],
            ["target", "app", {"contexts": {"foo": "baz", "bar": "target:mid"}}],
            ["target", "unused", {}]
        ]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(r.targets.len(), 3);
        assert_eq!(r.targets["app"].contexts.len(), 2);
        let mid = &r.targets["mid"];
        assert_eq!(
            mid.outputs
                .iter()
                .flatten()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
            ["type=cacheonly"]
        );
        assert!(mid.linked);
        assert_eq!(mid.contexts.len(), 1);
        assert!(r.targets["base"].contexts.is_empty());
        // Only the requested target is in the default group.
        assert_eq!(default_group(&r), ["app"]);

        let cfg = config(json!([
            ["target", "mid", {"output": ["foo"], "contexts": {"parent": "target:app"}}],
            ["target", "app", {"contexts": {"foo": "baz", "bar": "target:mid"}}]
        ]));
        assert!(
            read(&cfg, &["app", "mid"], &[])
                .unwrap_err()
                .to_string()
                .starts_with("infinite loop from")
        );

        let cfg = config(json!([["target", "app", {"contexts": {"x": "target:app"}}]]));
        assert_eq!(
            read(&cfg, &["app"], &[]).unwrap_err().to_string(),
            "target app cannot link to itself"
        );
    }

    #[test]
    fn linked_target_platforms() {
        let with = |mid: serde_json::Value| {
            config(json!([
                ["target", "mid", {"output": ["foo"], "platforms": mid}],
                ["target", "app", {"contexts": {"bar": "target:mid"}, "platforms": ["linux/amd64", "linux/arm64"]}]
            ]))
        };
        assert!(read(&with(json!(["linux/amd64", "linux/arm64"])), &["app"], &[]).is_ok());
        assert!(
            read(
                &with(json!(["linux/amd64", "linux/riscv64", "linux/arm64"])),
                &["app"],
                &[]
            )
            .is_ok()
        );
        assert_eq!(
            read(
                &with(json!(["linux/amd64", "linux/riscv64"])),
                &["app"],
                &[]
            )
            .unwrap_err()
            .to_string(),
            "target mid can't be used by app because its platforms [linux/amd64 linux/arm64] are not a subset of [linux/amd64 linux/riscv64]"
        );
    }

    #[test]
    fn default_and_specified_targets() {
        let cfg = config(json!([["target", "default", {"dockerfile": "test"}]]));
        let r = read(&cfg, &["default"], &[]).unwrap();
        assert_eq!((r.groups.len(), r.targets.len()), (1, 1));
        assert_eq!(r.targets["default"].dockerfile.as_deref(), Some("test"));

        let cfg = config(json!([["target", "image", {"dockerfile": "test"}]]));
        assert_eq!(
            read(&cfg, &["default"], &[]).unwrap_err().to_string(),
            "failed to find target default"
        );
        let r = read(&cfg, &["image"], &[]).unwrap();
        assert_eq!(default_group(&r), ["image"]);
    }

    #[test]
    fn groups_expand() {
        let cfg = config(json!([
            ["group", "foo", {"targets": ["image"]}],
            ["target", "image", {"dockerfile": "test"}]
        ]));
        let r = read(&cfg, &["foo"], &[]).unwrap();
        assert_eq!(r.groups.len(), 2);
        assert_eq!(default_group(&r), ["foo"]);
        assert_eq!(r.groups["foo"].target_names(), ["image"]);
        assert_eq!(r.targets.len(), 1);

        // A group and a target of the same name: the group wins.
        let cfg = config(json!([
            ["group", "foo", {"targets": ["image"]}],
            ["target", "foo", {"dockerfile": "bar"}],
            ["target", "image", {"dockerfile": "test"}]
        ]));
        for request in [&["foo"][..], &["foo", "foo"]] {
            let r = read(&cfg, request, &[]).unwrap();
            assert_eq!(r.groups.len(), 2);
            assert_eq!(default_group(&r), ["foo"]);
            assert_eq!(r.targets.len(), 1);
            assert_eq!(r.targets["image"].dockerfile.as_deref(), Some("test"));
        }

        // A group naming a target of its own name builds that target.
        let cfg = config(json!([
            ["group", "foo", {"targets": ["foo", "image"]}],
            ["target", "foo", {"dockerfile": "bar"}],
            ["target", "image", {"output": ["type=docker"]}]
        ]));
        let r = read(&cfg, &["foo"], &[]).unwrap();
        assert_eq!(r.targets.len(), 2);
        assert_eq!(r.targets["foo"].dockerfile.as_deref(), Some("bar"));
        let r = read(&cfg, &["foo", "image"], &[]).unwrap();
        assert_eq!(default_group(&r), ["foo", "image"]);
    }

    #[test]
    fn nested_groups_with_the_same_target() {
        let cfg = config(json!([
            ["group", "a", {"targets": ["b", "c"]}],
            ["group", "b", {"targets": ["d"]}],
            ["group", "c", {"targets": ["b"]}],
            ["target", "d", {"context": ".", "dockerfile": "./testdockerfile"}],
            ["group", "e", {"targets": ["a", "f"]}],
            ["target", "f", {"context": "./foo"}]
        ]));
        let cases: &[(&[&str], &[&str], usize)] = &[
            (&["a"], &["a", "b", "c", "default"], 1),
            (&["b"], &["b", "default"], 1),
            (&["c"], &["b", "c", "default"], 1),
            (&["d"], &["default"], 1),
            (&["e"], &["a", "b", "c", "default", "e"], 2),
            (&["a", "e"], &["a", "b", "c", "default", "e"], 2),
        ];
        for (names, groups, count) in cases {
            let r = read(&cfg, names, &[]).unwrap();
            assert_eq!(r.groups.keys().collect::<Vec<_>>(), *groups, "{names:?}");
            assert_eq!(default_group(&r), *names);
            assert_eq!(r.targets.len(), *count);
            assert_eq!(
                r.targets["d"].dockerfile.as_deref(),
                Some("./testdockerfile")
            );
        }
    }

    #[test]
    fn nested_inherits() {
        let cfg = config(json!([
            ["target", "a", {"args": {"foo": "123", "bar": "234"}}],
            ["target", "b", {"inherits": ["a"], "args": {"bar": "567"}}],
            ["target", "c", {"inherits": ["a"], "args": {"baz": "890"}}],
            ["target", "d", {"inherits": ["b", "c"]}]
        ]));
        type Case<'a> = (&'a [&'a str], [(&'a str, &'a str); 3]);
        let cases: &[Case] = &[
            (&[], [("bar", "234"), ("baz", "890"), ("foo", "123")]),
            (
                &["a.args.foo=321", "b.args.bar=432"],
                [("bar", "234"), ("baz", "890"), ("foo", "321")],
            ),
            (
                &["a.args.foo=321", "c.args.bar=432"],
                [("bar", "432"), ("baz", "890"), ("foo", "321")],
            ),
        ];
        for (overrides, want) in cases {
            let r = read(&cfg, &["d"], overrides).unwrap();
            let got: Vec<(String, String)> = r.targets["d"]
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{overrides:?}");
        }
    }

    #[test]
    fn nested_inherits_with_group() {
        let cfg = config(json!([
            ["target", "grandparent", {"output": ["type=docker"], "args": {"BAR": "fuu"}}],
            ["target", "parent", {"inherits": ["grandparent"], "args": {"FOO": "bar"}}],
            ["target", "child1", {"inherits": ["parent"]}],
            ["target", "child2", {"inherits": ["parent"], "args": {"FOO2": "bar2"}}],
            ["group", "default", {"targets": ["child1", "child2"]}]
        ]));
        let r = read(
            &cfg,
            &["default"],
            &["grandparent.args.BAR=fii", "child1.args.FOO=baaar"],
        )
        .unwrap();
        assert_eq!(default_group(&r), ["child1", "child2"]);
        assert_eq!(arg(&r.targets["child1"], "FOO").as_deref(), Some("baaar"));
        assert_eq!(arg(&r.targets["child1"], "BAR").as_deref(), Some("fii"));
        assert_eq!(arg(&r.targets["child2"], "FOO").as_deref(), Some("bar"));
        assert_eq!(arg(&r.targets["child2"], "FOO2").as_deref(), Some("bar2"));
        for child in ["child1", "child2"] {
            assert_eq!(
                r.targets[child]
                    .outputs
                    .iter()
                    .flatten()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>(),
                ["type=docker"]
            );
        }
    }

    #[test]
    fn inherits_cycles_contribute_nothing() {
        let cfg = config(json!([
            ["target", "a", {"inherits": ["b"], "tags": ["a"]}],
            ["target", "b", {"inherits": ["a"], "args": {"B": "1"}}]
        ]));
        let r = read(&cfg, &["a"], &[]).unwrap();
        assert_eq!(r.targets["a"].tags.as_deref().unwrap(), ["a"]);
        assert_eq!(arg(&r.targets["a"], "B").as_deref(), Some("1"));
    }

    #[test]
    fn group_default_with_targets() {
        let cfg = config(json!([
            ["target", "default", {"dockerfile": "Dockerfile", "platforms": ["linux/amd64"]}],
            ["target", "multiarch", {"dockerfile": "Dockerfile"}]
        ]));
        let r = read(&cfg, &["default", "multiarch"], &[]).unwrap();
        assert_eq!(r.groups.len(), 1);
        assert_eq!(default_group(&r), ["default", "multiarch"]);

        let cfg = config(json!([
            ["group", "default", {"targets": ["app", "multiarch"]}],
            ["target", "app", {}],
            ["target", "foo", {}],
            ["target", "multiarch", {}]
        ]));
        let r = read(&cfg, &["default", "foo"], &[]).unwrap();
        assert_eq!(r.groups.len(), 1);
        assert_eq!(default_group(&r), ["app", "foo", "multiarch"]);
    }

    #[test]
    fn match_names_globs_groups_then_targets() {
        let cfg = config(json!([
            ["group", "default", {"targets": ["foo", "foo-bar"]}],
            ["group", "baz", {"targets": ["baz-foo", "baz-bar", "baz-fuu"]}],
            ["target", "foo", {}], ["target", "foo-bar", {}], ["target", "foo-baz", {}], ["target", "foo-fuu", {}],
            ["target", "bar-foo", {}], ["target", "bar-baz", {}], ["target", "bar-fuu", {}],
            ["target", "baz-foo", {}], ["target", "baz-bar", {}], ["target", "baz-fuu", {}]
        ]));
        let cases: &[(&[&str], &[&str])] = &[
            (&["foo"], &["foo"]),
            (&["foo-*"], &["foo-bar", "foo-baz", "foo-fuu"]),
            (&["baz*"], &["baz-bar", "baz-foo", "baz-fuu"]),
            (
                &["*"],
                &[
                    "bar-baz", "bar-foo", "bar-fuu", "baz-bar", "baz-foo", "baz-fuu", "foo",
                    "foo-bar", "foo-baz", "foo-fuu",
                ],
            ),
            (
                &["*", "default"],
                &[
                    "bar-baz", "bar-foo", "bar-fuu", "baz-bar", "baz-foo", "baz-fuu", "foo",
                    "foo-bar", "foo-baz", "foo-fuu",
                ],
            ),
        ];
        for (pattern, want) in cases {
            let r = read(&cfg, pattern, &[]).unwrap();
            assert_eq!(r.targets.keys().collect::<Vec<_>>(), *want, "{pattern:?}");
        }
        assert_eq!(
            read(&cfg, &["aaa-*"], &[]).unwrap_err().to_string(),
            r#"could not find any target matching "aaa-*""#
        );
    }

    #[test]
    fn attest_duplicates_keep_the_last_of_a_type() {
        let cfg = config(json!([["target", "default", {
            "attest": ["type=sbom", "type=sbom,generator=custom", "type=sbom,foo=bar", "type=provenance,mode=max"]
        }]]));
        let strs = |r: &Resolved| {
            let mut v: Vec<String> = r.targets["default"]
                .attest
                .iter()
                .flatten()
                .map(|a| a.to_string())
                .collect();
            v.sort();
            v
        };
        let r = read(&cfg, &["default"], &[]).unwrap();
        assert_eq!(strs(&r), ["type=provenance,mode=max", "type=sbom,foo=bar"]);
        let r = read(&cfg, &["default"], &["*.attest=type=sbom,disabled=true"]).unwrap();
        assert_eq!(
            strs(&r),
            ["type=provenance,mode=max", "type=sbom,disabled=true"]
        );
    }

    #[test]
    fn entitlements_and_network_host() {
        let cfg = config(
            json!([["target", "app", {"entitlements": ["security.insecure", "network.host"]}]]),
        );
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(
            r.targets["app"].entitlements.as_deref().unwrap(),
            ["security.insecure", "network.host"]
        );
        let cfg =
            config(json!([["target", "app", {"dockerfile": "app.Dockerfile", "network": "host"}]]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(
            r.targets["app"].entitlements.as_deref().unwrap(),
            ["network.host"]
        );
        let cfg = config(json!([["target", "app", {"network": "none"}]]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(r.targets["app"].entitlements, None);
    }

    #[test]
    fn empty_values_and_defaults() {
        let cfg = config(json!([["target", "app", {"output": [""], "dockerfile": ""}]]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(r.targets["app"].outputs, None);
        assert_eq!(r.targets["app"].dockerfile.as_deref(), Some("Dockerfile"));
        let cfg = config(json!([["target", "app", {"cache-from": ["ref1,ref2"]}]]));
        let r = read(&cfg, &["app"], &[]).unwrap();
        assert_eq!(
            r.targets["app"]
                .cache_from
                .iter()
                .flatten()
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
            ["ref1", "ref2"]
        );
    }

    #[test]
    fn prepare_for_build_cleans_context_and_fills_stdout_outputs() {
        let cfg = config(json!([["target", "a", {
            "context": "./foo/../bar/",
            "output": ["type=tar", "type=oci,tar=false,dest=x", "type=docker", "type=oci"]
        }], ["target", "b", {"context": "cwd://foo/./x"}], ["target", "c", {"context": "https://github.com/a/b.git"}]]));
        let mut r = read(&cfg, &["a", "b", "c"], &[]).unwrap();
        prepare_for_build(&mut r, Some("123")).unwrap();
        let a = &r.targets["a"];
        assert_eq!(a.context.as_deref(), Some("bar"));
        assert_eq!(
            a.outputs
                .iter()
                .flatten()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
            [
                "type=tar,dest=-",
                "type=oci,dest=x,tar=false",
                "type=docker",
                "type=oci,dest=-"
            ]
        );
        assert_eq!(arg(a, "SOURCE_DATE_EPOCH").as_deref(), Some("123"));
        assert_eq!(r.targets["b"].context.as_deref(), Some("foo/x"));
        assert_eq!(
            r.targets["c"].context.as_deref(),
            Some("https://github.com/a/b.git")
        );

        let cfg = config(json!([["target", "a", {"context": "-"}]]));
        let mut r = read(&cfg, &["a"], &[]).unwrap();
        assert_eq!(
            prepare_for_build(&mut r, None).unwrap_err().to_string(),
            "context from stdin not allowed in bake"
        );
    }

    #[test]
    fn secrets_are_checked_like_the_secret_store() {
        let cfg = config(
            json!([["target", "a", {"secret": ["id=x,src=/nonexistent/brix-secret", "id=ENVSET"]}]]),
        );
        let r = read(&cfg, &["a"], &[]).unwrap();
        let dir = std::path::Path::new("/");
        let env = |k: &str| (k == "ENVSET").then(|| "v".to_string());
        let check_secrets =
            |r: &Resolved, env: &dyn Fn(&str) -> Option<String>, dir: &std::path::Path| {
                check_build_options(r, env, dir)
            };
        assert_eq!(
            check_secrets(&r, &env, dir).unwrap_err().to_string(),
            "failed to stat /nonexistent/brix-secret: stat /nonexistent/brix-secret: no such file or directory"
        );
        let cfg = config(json!([["target", "a", {"secret": ["id=ENVSET", "env=X"]}]]));
        let r = read(&cfg, &["a"], &[]).unwrap();
        assert_eq!(
            check_secrets(&r, &env, dir).unwrap_err().to_string(),
            "secret missing ID"
        );
        let cfg = config(json!([["target", "a", {"secret": ["id=ENVSET", "id=tmp,src=tmp"]}]]));
        let r = read(&cfg, &["a"], &[]).unwrap();
        assert!(check_secrets(&r, &env, dir).is_ok());
    }

    #[test]
    fn build_options_are_checked_like_buildx() {
        let check = |attrs: serde_json::Value| {
            let cfg = config(json!([["target", "a", attrs]]));
            let mut r = read(&cfg, &["a"], &[]).unwrap();
            prepare_for_build(&mut r, None).unwrap();
            check_build_options(&r, &|_| None, std::path::Path::new("/"))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            check(json!({"shm-size": "1x"})).as_deref(),
            Some("invalid value 1x for membytes key shm-size")
        );
        assert_eq!(
            check(json!({"output": ["type=local"]})).as_deref(),
            Some("dest is required for local exporter")
        );
        assert_eq!(
            check(json!({"output": ["type=oci,tar=false,dest=-"]})).as_deref(),
            Some("dest cannot be stdout for oci exporter")
        );
        assert_eq!(
            check(json!({"output": ["type=tar", "type=oci"]})).as_deref(),
            Some("multiple outputs configured to write to stdout")
        );
        assert_eq!(
            check(json!({"output": ["type=tar,dest=/"]})).as_deref(),
            Some("destination file / is a directory")
        );
        assert_eq!(
            check(json!({"annotations": ["foo"]})).as_deref(),
            Some(r#"invalid annotation "foo", expected key=value"#)
        );
        assert_eq!(
            check(json!({"annotations": ["bad:k=v"]})).as_deref(),
            Some(r#"unknown annotation type "bad""#)
        );
        assert_eq!(
            check(json!({"annotations": ["Index:k=v"]})).as_deref(),
            Some(
                r#"invalid annotation type "Index", expected type and optional platform in square brackets"#
            )
        );
        assert_eq!(
            check(json!({"annotations": ["index,manifest[linux/amd64]:k=v", "k=v"]})),
            None
        );
        assert_eq!(
            check(json!({"ulimits": ["foo=1"]})).as_deref(),
            Some("invalid ulimit type: foo")
        );
        assert_eq!(
            check(json!({"shm-size": "128m", "output": ["type=tar", "type=local,dest=out"]})),
            None
        );
    }

    #[test]
    fn dotted_names_are_sanitized() {
        let cfg = config(json!([["target", "web_app", {}]]));
        let r = read(&cfg, &["web.app"], &[]).unwrap();
        assert!(r.targets.contains_key("web_app"));
    }
}
