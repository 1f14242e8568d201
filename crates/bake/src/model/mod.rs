//! The bake model: targets and groups as buildx's `bake.Target` / `bake.Group` hold them,
//! decoded from evaluated blocks ([`decode`]), merged the way buildx merges repeated blocks
//! and `inherits` ([`Target::merge`]), and tidied after resolution ([`Target::normalize`]).

pub mod buildflags;
pub mod decode;
pub mod text;

use std::collections::BTreeMap;

pub use buildflags::{Attest, CacheEntry, ExportEntry, FlagError, Secret, SshKey};

/// The characters a target or group name may hold, as buildx's message shows them.
pub const VALID_TARGET_NAME_CHARS: &str = "[a-zA-Z0-9_-]+";

/// A name that does not match [`VALID_TARGET_NAME_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only \"[a-zA-Z0-9_-]+\" are allowed")]
pub struct InvalidTargetName;

/// Checks a target or group name as buildx's `validateTargetName` does.
pub fn validate_target_name(name: &str) -> Result<(), InvalidTargetName> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(InvalidTargetName)
    }
}

/// A requested target name as buildx's `sanitizeTargetName` rewrites it: compose service names
/// may hold dots, which become underscores.
pub fn sanitize_target_name(name: &str) -> String {
    name.replace('.', "_")
}

/// A build target: every attribute of buildx 0.29's `bake.Target`.
///
/// `Option` stands for Go's nil where buildx tells nil from empty (a child's `tags = []`
/// replaces the parent's tags, an absent `tags` keeps them); maps of optional strings keep
/// buildx's "null means unset".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    /// The target's name (its block label or matrix name).
    pub name: String,
    /// `description`.
    pub description: String,
    /// `inherits`: targets whose attributes this one starts from, in order.
    pub inherits: Vec<String>,
    /// `annotations`.
    pub annotations: Option<Vec<String>>,
    /// `attest`.
    pub attest: Option<Vec<Attest>>,
    /// `context`.
    pub context: Option<String>,
    /// `contexts`: named build contexts.
    pub contexts: BTreeMap<String, String>,
    /// `dockerfile`.
    pub dockerfile: Option<String>,
    /// `dockerfile-inline`.
    pub dockerfile_inline: Option<String>,
    /// `args`; `None` values are unset.
    pub args: BTreeMap<String, Option<String>>,
    /// `labels`; `None` values are unset.
    pub labels: BTreeMap<String, Option<String>>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `cache-from`.
    pub cache_from: Option<Vec<CacheEntry>>,
    /// `cache-to`.
    pub cache_to: Option<Vec<CacheEntry>>,
    /// `target`: the Dockerfile stage.
    pub target: Option<String>,
    /// `secret`.
    pub secrets: Option<Vec<Secret>>,
    /// `ssh`.
    pub ssh: Option<Vec<SshKey>>,
    /// `platforms`.
    pub platforms: Option<Vec<String>>,
    /// `output`.
    pub outputs: Option<Vec<ExportEntry>>,
    /// `pull`.
    pub pull: Option<bool>,
    /// `no-cache`.
    pub no_cache: Option<bool>,
    /// `network`.
    pub network: Option<String>,
    /// `no-cache-filter`.
    pub no_cache_filter: Option<Vec<String>>,
    /// `shm-size`.
    pub shm_size: Option<String>,
    /// `ulimits`.
    pub ulimits: Option<Vec<String>>,
    /// `call`.
    pub call: Option<String>,
    /// `entitlements`.
    pub entitlements: Option<Vec<String>>,
    /// `extra-hosts`; `None` values are unset.
    pub extra_hosts: BTreeMap<String, Option<String>>,
    /// Whether the target was pulled in only as another target's `target:` context (it then
    /// builds to the cache only).
    pub linked: bool,
}

/// A `group`: a name for a list of targets and groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `targets`; `None` when written as `null` (printed so).
    pub targets: Option<Vec<String>>,
}

impl Group {
    /// The group's targets (none when null).
    pub fn target_names(&self) -> &[String] {
        self.targets.as_deref().unwrap_or_default()
    }
}

/// The targets and groups of a set of bake files, in declaration order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The groups.
    pub groups: Vec<Group>,
    /// The targets.
    pub targets: Vec<Target>,
}

/// Appends `other` to `base` when `other` is set (buildx's `if t2.X != nil { append }`).
fn append_list<T: Clone>(base: &mut Option<Vec<T>>, other: &Option<Vec<T>>) {
    if let Some(other) = other {
        base.get_or_insert_with(Vec::new)
            .extend(other.iter().cloned());
    }
}

/// Replaces `base` with `other` when `other` is set.
fn replace<T: Clone>(base: &mut Option<T>, other: &Option<T>) {
    if other.is_some() {
        base.clone_from(other);
    }
}

/// Merges the set entries of `other` into `base` (null entries are skipped).
fn merge_optional_map(
    base: &mut BTreeMap<String, Option<String>>,
    other: &BTreeMap<String, Option<String>>,
) {
    for (key, value) in other {
        if value.is_some() {
            base.insert(key.clone(), value.clone());
        }
    }
}

/// Removes duplicate and empty strings, keeping the first of each (buildx's
/// `removeDupesStr`).
pub fn remove_dupes_str(list: &mut Option<Vec<String>>) {
    if let Some(items) = list {
        let mut seen = std::collections::HashSet::new();
        items.retain(|item| !item.is_empty() && seen.insert(item.clone()));
    }
}

impl Target {
    /// A target of the given name with nothing set.
    pub fn named(name: impl Into<String>) -> Self {
        Target {
            name: name.into(),
            ..Target::default()
        }
    }

    /// Merges `other` over `self` as buildx's `Target.Merge` does, field by field: scalars
    /// replaced when set, maps merged, `tags`/`platforms`/`cache-to`/`output`/`shm-size`
    /// replaced, `annotations`/`no-cache-filter`/`ulimits`/`entitlements` appended,
    /// `attest`/`secret`/`ssh`/`cache-from` appended and de-duplicated, `inherits` appended.
    pub fn merge(&mut self, other: &Target) {
        replace(&mut self.context, &other.context);
        replace(&mut self.dockerfile, &other.dockerfile);
        replace(&mut self.dockerfile_inline, &other.dockerfile_inline);
        merge_optional_map(&mut self.args, &other.args);
        for (key, value) in &other.contexts {
            self.contexts.insert(key.clone(), value.clone());
        }
        merge_optional_map(&mut self.labels, &other.labels);
        replace(&mut self.tags, &other.tags);
        replace(&mut self.target, &other.target);
        replace(&mut self.call, &other.call);
        append_list(&mut self.annotations, &other.annotations);
        if other.attest.is_some() {
            self.attest =
                buildflags::merge_list(self.attest.take(), other.attest.clone(), Attest::dedupe);
        }
        if other.secrets.is_some() {
            self.secrets =
                buildflags::merge_list(self.secrets.take(), other.secrets.clone(), Secret::dedupe);
        }
        if other.ssh.is_some() {
            self.ssh = buildflags::merge_list(self.ssh.take(), other.ssh.clone(), SshKey::dedupe);
        }
        replace(&mut self.platforms, &other.platforms);
        if other.cache_from.is_some() {
            self.cache_from = buildflags::merge_list(
                self.cache_from.take(),
                other.cache_from.clone(),
                CacheEntry::dedupe,
            );
        }
        replace(&mut self.cache_to, &other.cache_to);
        replace(&mut self.outputs, &other.outputs);
        replace(&mut self.pull, &other.pull);
        replace(&mut self.no_cache, &other.no_cache);
        replace(&mut self.network, &other.network);
        append_list(&mut self.no_cache_filter, &other.no_cache_filter);
        replace(&mut self.shm_size, &other.shm_size);
        append_list(&mut self.ulimits, &other.ulimits);
        if !other.description.is_empty() {
            self.description.clone_from(&other.description);
        }
        append_list(&mut self.entitlements, &other.entitlements);
        merge_optional_map(&mut self.extra_hosts, &other.extra_hosts);
        self.inherits.extend(other.inherits.iter().cloned());
    }

    /// Tidies a resolved target as buildx's `normalize` does: duplicates and empty strings
    /// dropped from the string lists, the structured lists de-duplicated, `network = "host"`
    /// adding the `network.host` entitlement, empty named contexts removed.
    pub fn normalize(&mut self) {
        remove_dupes_str(&mut self.annotations);
        self.attest = buildflags::normalize_list(self.attest.take(), Attest::dedupe);
        remove_dupes_str(&mut self.tags);
        self.secrets = buildflags::normalize_list(self.secrets.take(), Secret::dedupe);
        self.ssh = buildflags::normalize_list(self.ssh.take(), SshKey::dedupe);
        remove_dupes_str(&mut self.platforms);
        self.cache_from = buildflags::normalize_list(self.cache_from.take(), CacheEntry::dedupe);
        self.cache_to = buildflags::normalize_list(self.cache_to.take(), CacheEntry::dedupe);
        self.outputs = buildflags::normalize_list(self.outputs.take(), ExportEntry::dedupe);
        remove_dupes_str(&mut self.no_cache_filter);
        remove_dupes_str(&mut self.ulimits);
        if self.network.as_deref() == Some("host") {
            self.entitlements
                .get_or_insert_with(Vec::new)
                .push("network.host".to_string());
        }
        remove_dupes_str(&mut self.entitlements);
        self.contexts.retain(|_, value| !value.is_empty());
    }
}

impl Config {
    /// The group named `name`, the first if several.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The target named `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Adds a decoded block's target the way buildx's HCL parser fills its config: a target
    /// of a name already present is merged into it.
    pub fn add_target(&mut self, target: Target) {
        match self.targets.iter_mut().find(|t| t.name == target.name) {
            Some(existing) => existing.merge(&target),
            None => self.targets.push(target),
        }
    }

    /// Adds a decoded block's group: a group of a name already present is replaced (groups
    /// have no merge in buildx).
    pub fn add_group(&mut self, group: Group) {
        match self.groups.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => *existing = group,
            None => self.groups.push(group),
        }
    }

    /// buildx's `dedupeConfig`: each group's targets de-duplicated, targets of the same name
    /// merged into the first.
    pub fn dedupe(&mut self) {
        for group in &mut self.groups {
            if let Some(targets) = &mut group.targets {
                *targets = dedup_strings(std::mem::take(targets));
            }
        }
        let mut merged: Vec<Target> = Vec::with_capacity(self.targets.len());
        for target in std::mem::take(&mut self.targets) {
            match merged.iter_mut().find(|t| t.name == target.name) {
                Some(existing) => existing.merge(&target),
                None => merged.push(target),
            }
        }
        self.targets = merged;
    }
}

/// Removes later duplicates, keeping order (buildx's `dedupSlice`).
pub fn dedup_strings(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn target_names_are_validated_like_buildx() {
        for ok in ["a", "abc", "_a", "a_b", "AbC", "AbC-0123"] {
            assert!(validate_target_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a/b", "a.b", "", "a b"] {
            assert_eq!(
                validate_target_name(bad).unwrap_err().to_string(),
                r#"only "[a-zA-Z0-9_-]+" are allowed"#
            );
        }
        assert_eq!(sanitize_target_name("web.app"), "web_app");
    }

    #[test]
    fn merge_follows_buildx_field_rules() {
        let mut base = Target::named("base");
        base.tags = Some(vec!["a".into()]);
        base.annotations = Some(vec!["x=1".into()]);
        base.args.insert("A".into(), Some("1".into()));
        base.args.insert("B".into(), Some("1".into()));
        base.cache_from = Some(vec![CacheEntry::parse("ref1").unwrap()]);
        let mut child = Target::named("child");
        child.tags = Some(vec![]);
        child.annotations = Some(vec!["y=2".into()]);
        child.args.insert("A".into(), None);
        child.args.insert("B".into(), Some("2".into()));
        child.cache_from = Some(vec![
            CacheEntry::parse("ref2").unwrap(),
            CacheEntry::parse("ref1").unwrap(),
        ]);
        child.description = "child".into();
        base.merge(&child);
        assert_eq!(base.tags, Some(vec![]));
        assert_eq!(
            base.annotations,
            Some(vec!["x=1".to_string(), "y=2".to_string()])
        );
        assert_eq!(base.args["A"], Some("1".to_string()));
        assert_eq!(base.args["B"], Some("2".to_string()));
        assert_eq!(
            base.cache_from
                .unwrap()
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>(),
            ["ref1", "ref2"]
        );
        assert_eq!(base.description, "child");
    }

    #[test]
    fn normalize_drops_duplicates_and_adds_network_host() {
        let mut t = Target::named("a");
        t.tags = Some(vec!["x".into(), "".into(), "x".into(), "y".into()]);
        t.network = Some("host".into());
        t.contexts.insert("a".into(), "".into());
        t.outputs = Some(vec![]);
        t.normalize();
        assert_eq!(t.tags, Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(t.entitlements, Some(vec!["network.host".to_string()]));
        assert!(t.contexts.is_empty());
        assert_eq!(t.outputs, None);
    }
}
