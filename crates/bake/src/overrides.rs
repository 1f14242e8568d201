//! `--set PATTERN.KEY[+]=VALUE` overrides as buildx parses and applies them, and the
//! command-line flags bake turns into such overrides (`--push`, `--load`, `--no-cache`,
//! `--pull`, `--call`, `--sbom`, `--provenance`).

use std::collections::BTreeMap;

use crate::model::buildflags::{self, FlagError};
use crate::model::text::{csv_fields, parse_bool_error, parse_go_bool, path_match};
use crate::model::{Attest, CacheEntry, Config, ExportEntry, Secret, SshKey, Target};

/// Why an override could not be parsed or applied, worded as buildx words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// `--set foo=bar`: no `.` in the key.
    #[error("invalid override key {0}, expected target.name")]
    InvalidKey(String),
    /// `--set foo.context`: no value for a key other than `args.X`.
    #[error("invalid override {0}, expected target.name=value")]
    MissingValue(String),
    /// `--set foo.args=x`: `args` without a name.
    #[error("invalid key {0}, args requires name")]
    ArgsRequiresName(String),
    /// `--set foo.contexts=x`: `contexts` without a name.
    #[error("invalid key {0}, contexts requires name")]
    ContextsRequiresName(String),
    /// The pattern matched no target.
    #[error("could not find any target matching '{0}'")]
    NoMatch(String),
    /// The pattern is not a valid glob.
    #[error("could not match targets with '{0}': syntax error in pattern")]
    BadPattern(String),
    /// A map key (`labels`, `args`, …) given without its name.
    #[error("invalid format for {key}, expecting {key}.<{name}>=<{value}>")]
    InvalidFormat {
        /// The map attribute.
        key: &'static str,
        /// What the entry name stands for.
        name: &'static str,
        /// What the value stands for.
        value: &'static str,
    },
    /// A bool key with a value Go's `strconv.ParseBool` refuses.
    #[error("invalid value {value} for boolean key {key}")]
    InvalidBool {
        /// The value given.
        value: String,
        /// The key.
        key: &'static str,
    },
    /// A `cache-from`/`cache-to` entry that does not parse.
    #[error(transparent)]
    Cache(FlagError),
    /// An `output`/`secrets`/`ssh` entry that does not parse (buildx says "outputs" for all).
    #[error("invalid value for outputs: {0}")]
    Outputs(FlagError),
    /// An `attest` entry that does not parse.
    #[error("invalid value for attest: {0}")]
    Attest(FlagError),
    /// A key bake does not know.
    #[error("unknown key: {0}")]
    UnknownKey(String),
    /// A `--call` value that does not parse.
    #[error("{0}")]
    Call(String),
}

/// One key's override for one target: the last scalar value, the list values in order, and
/// whether the last list value was given with `+=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Override {
    /// The value, for scalar keys.
    pub value: String,
    /// The values, for list keys (`tags`, `platform`, `output`, …).
    pub values: Vec<String>,
    /// Whether the list values append to the target's (`+=`).
    pub append: bool,
}

/// Parsed overrides: per target name, its keys (`args.FOO`, `tags`) in the order first
/// given. buildx keeps them in a Go map, so applies them in no fixed order; the order given
/// on the command line is the one a user expects when two keys interact (`output` and
/// `push`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    per_target: BTreeMap<String, Vec<(String, Override)>>,
}

/// The keys whose values accumulate as lists.
const LIST_KEYS: &[&str] = &[
    "output",
    "cache-to",
    "cache-from",
    "tags",
    "platform",
    "secrets",
    "ssh",
    "attest",
    "entitlements",
    "network",
    "annotations",
];

impl Overrides {
    /// The overrides of one target, in order.
    pub fn for_target(&self, name: &str) -> &[(String, Override)] {
        self.per_target
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Parses `--set` values against the config as buildx's `newOverrides` does. `lookup_env`
    /// gives `args.NAME` without a value its value from the environment (skipped when unset).
    pub fn parse(
        config: &Config,
        values: &[String],
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, OverrideError> {
        let mut overrides = Overrides::default();
        for raw in values {
            let (key_part, value) = match raw.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (raw.as_str(), None),
            };
            let append = key_part.ends_with('+');
            let key = key_part.strip_suffix('+').unwrap_or(key_part);
            let keys: Vec<&str> = key.splitn(3, '.').collect();
            if keys.len() < 2 {
                return Err(OverrideError::InvalidKey(key.to_string()));
            }
            let pattern = keys[0];
            if value.is_none() && keys[1] != "args" {
                return Err(OverrideError::MissingValue(raw.clone()));
            }
            let names = expand_targets(config, pattern)?;
            let okey = keys[1..].join(".");
            for name in names {
                let entries = overrides.per_target.entry(name).or_default();
                let (index, is_new) = match entries.iter().position(|(k, _)| *k == okey) {
                    Some(i) => (i, false),
                    None => {
                        entries.push((okey.clone(), Override::default()));
                        (entries.len() - 1, true)
                    }
                };
                let mut current = entries[index].1.clone();
                match keys[1] {
                    k if LIST_KEYS.contains(&k) => {
                        if let Some(value) = value {
                            current.append = append;
                            current.values.push(value.to_string());
                        }
                    }
                    "args" | "contexts" => {
                        if keys.len() != 3 {
                            return Err(if keys[1] == "args" {
                                OverrideError::ArgsRequiresName(key_part.to_string())
                            } else {
                                OverrideError::ContextsRequiresName(key_part.to_string())
                            });
                        }
                        match value {
                            Some(value) => current.value = value.to_string(),
                            None => match lookup_env(keys[2]) {
                                Some(env) => current.value = env,
                                None => {
                                    // buildx skips an unset variable without recording the key;
                                    // drop the placeholder added above when it is new.
                                    if is_new {
                                        entries.remove(index);
                                    }
                                    continue;
                                }
                            },
                        }
                    }
                    _ => {
                        if let Some(value) = value {
                            current.value = value.to_string();
                        }
                    }
                }
                entries[index].1 = current;
            }
        }
        Ok(overrides)
    }
}

/// The targets an override pattern names (buildx's `expandTargets`): an exact target name,
/// else every target the glob matches.
fn expand_targets(config: &Config, pattern: &str) -> Result<Vec<String>, OverrideError> {
    if config.targets.iter().any(|t| t.name == pattern) {
        return Ok(vec![pattern.to_string()]);
    }
    let mut names = Vec::new();
    for target in &config.targets {
        match path_match(pattern, &target.name) {
            Ok(true) => names.push(target.name.clone()),
            Ok(false) => {}
            Err(_) => return Err(OverrideError::BadPattern(pattern.to_string())),
        }
    }
    if names.is_empty() {
        return Err(OverrideError::NoMatch(pattern.to_string()));
    }
    Ok(names)
}

fn parse_bool_key(value: &str, key: &'static str) -> Result<bool, OverrideError> {
    parse_go_bool(value).ok_or_else(|| OverrideError::InvalidBool {
        value: value.to_string(),
        key,
    })
}

/// Replaces or appends a list as `+=` says.
fn set_list(list: &mut Option<Vec<String>>, o: &Override) {
    if o.append {
        list.get_or_insert_with(Vec::new)
            .extend(o.values.iter().cloned());
    } else {
        *list = Some(o.values.clone());
    }
}

impl Target {
    /// Applies one target's overrides as buildx's `AddOverrides` does.
    pub fn add_overrides(&mut self, overrides: &[(String, Override)]) -> Result<(), OverrideError> {
        for (key, o) in overrides {
            let value = o.value.clone();
            let (head, name) = match key.split_once('.') {
                Some((head, name)) => (head, Some(name)),
                None => (key.as_str(), None),
            };
            let map_entry = |key: &'static str, what: &'static str, value_name: &'static str| {
                name.ok_or(OverrideError::InvalidFormat {
                    key,
                    name: what,
                    value: value_name,
                })
            };
            match head {
                "context" => self.context = Some(value),
                "dockerfile" => self.dockerfile = Some(value),
                "args" => {
                    let name = map_entry("args", "name", "value")?;
                    self.args.insert(name.to_string(), Some(value));
                }
                "contexts" => {
                    let name = map_entry("contexts", "name", "value")?;
                    self.contexts.insert(name.to_string(), value);
                }
                "labels" => {
                    let name = map_entry("labels", "name", "value")?;
                    self.labels.insert(name.to_string(), Some(value));
                }
                "tags" => set_list(&mut self.tags, o),
                "cache-from" | "cache-to" => {
                    let parsed = CacheEntry::parse_list(&o.values).map_err(OverrideError::Cache)?;
                    let field = if head == "cache-from" {
                        &mut self.cache_from
                    } else {
                        &mut self.cache_to
                    };
                    *field = if o.append {
                        merge_cache(field.take(), parsed)
                    } else {
                        parsed
                    };
                }
                "target" => self.target = Some(value),
                "call" => self.call = Some(value),
                "secrets" => {
                    let parsed = Secret::parse_list(&o.values).map_err(OverrideError::Outputs)?;
                    self.secrets = if o.append {
                        buildflags::merge_list(self.secrets.take(), Some(parsed), Secret::dedupe)
                    } else {
                        Some(parsed)
                    };
                }
                "ssh" => {
                    let parsed = SshKey::parse_list(&o.values);
                    self.ssh = if o.append {
                        buildflags::merge_list(self.ssh.take(), Some(parsed), SshKey::dedupe)
                    } else {
                        Some(parsed)
                    };
                }
                "platform" => set_list(&mut self.platforms, o),
                "output" => {
                    let parsed =
                        ExportEntry::parse_list(&o.values).map_err(OverrideError::Outputs)?;
                    self.outputs = if o.append {
                        buildflags::merge_list(
                            self.outputs.take(),
                            Some(parsed),
                            ExportEntry::dedupe,
                        )
                    } else {
                        Some(parsed)
                    };
                }
                "entitlements" => {
                    self.entitlements
                        .get_or_insert_with(Vec::new)
                        .extend(o.values.iter().cloned());
                }
                "annotations" => {
                    self.annotations
                        .get_or_insert_with(Vec::new)
                        .extend(o.values.iter().cloned());
                }
                "attest" => {
                    let parsed = Attest::parse_list(&o.values).map_err(OverrideError::Attest)?;
                    self.attest =
                        buildflags::merge_list(self.attest.take(), Some(parsed), Attest::dedupe);
                }
                "no-cache" => self.no_cache = Some(parse_bool_key(&value, "no-cache")?),
                // buildx fills these from the list values, which `--set` never records for
                // them: the override empties the attribute.
                "no-cache-filter" => set_list(&mut self.no_cache_filter, o),
                "shm-size" => self.shm_size = Some(value),
                "ulimits" => set_list(&mut self.ulimits, o),
                // `network` is recorded as a list key but read as a scalar, so buildx sets it
                // to the empty string.
                "network" => self.network = Some(value),
                "pull" => self.pull = Some(parse_bool_key(&value, "pull")?),
                "push" => {
                    let push = parse_bool_key(&value, "push")?;
                    self.outputs = set_push_override(self.outputs.take(), push);
                }
                "load" => {
                    let load = parse_bool_key(&value, "load")?;
                    self.outputs = set_load_override(self.outputs.take(), load);
                }
                "extra-hosts" => {
                    let name = map_entry("extra-hosts", "hostname", "ip")?;
                    self.extra_hosts.insert(name.to_string(), Some(value));
                }
                other => return Err(OverrideError::UnknownKey(other.to_string())),
            }
        }
        Ok(())
    }
}

/// `CacheOptions.Merge` (which, unlike the other lists, normalises an absent other too).
fn merge_cache(
    base: Option<Vec<CacheEntry>>,
    other: Option<Vec<CacheEntry>>,
) -> Option<Vec<CacheEntry>> {
    match other {
        None => buildflags::normalize_list(base, CacheEntry::dedupe),
        other => buildflags::merge_list(base, other, CacheEntry::dedupe),
    }
}

/// `*.push=BOOL` as buildx's `setPushOverride` applies it: `false` drops registry outputs
/// and sets `push=false` on image ones; `true` sets `push=true` on image outputs and, when
/// every output is `docker` (or there is none), adds `type=image,push=true`.
pub fn set_push_override(
    outputs: Option<Vec<ExportEntry>>,
    push: bool,
) -> Option<Vec<ExportEntry>> {
    if !push {
        let mut outputs = outputs?;
        let mut i = 0;
        while i < outputs.len() {
            match outputs[i].kind.as_str() {
                "registry" => {
                    // Swap-remove, as buildx does (the order of the rest changes).
                    outputs.swap_remove(i);
                    continue;
                }
                "image" => {
                    outputs[i]
                        .attrs
                        .insert("push".to_string(), "false".to_string());
                }
                _ => {}
            }
            i += 1;
        }
        return Some(outputs);
    }
    let mut outputs = outputs;
    let mut add_image = true;
    for output in outputs.iter_mut().flatten() {
        if output.kind != "docker" {
            add_image = false;
        }
        if output.kind == "image" {
            output.attrs.insert("push".to_string(), "true".to_string());
        }
    }
    if add_image {
        outputs.get_or_insert_with(Vec::new).push(ExportEntry {
            kind: "image".to_string(),
            attrs: BTreeMap::from([("push".to_string(), "true".to_string())]),
            destination: String::new(),
        });
    }
    outputs
}

/// `*.load=BOOL` as buildx's `setLoadOverride` applies it: `true` adds `type=docker` unless
/// a `docker` output without `dest` exists or an output other than image/registry/oci does.
pub fn set_load_override(
    outputs: Option<Vec<ExportEntry>>,
    load: bool,
) -> Option<Vec<ExportEntry>> {
    if !load {
        return outputs;
    }
    for output in outputs.iter().flatten() {
        match output.kind.as_str() {
            "docker" if output.destination.is_empty() => return outputs,
            "docker" | "image" | "registry" | "oci" => {}
            _ => return outputs,
        }
    }
    let mut outputs = outputs;
    outputs.get_or_insert_with(Vec::new).push(ExportEntry {
        kind: "docker".to_string(),
        ..ExportEntry::default()
    });
    outputs
}

/// `--call` as buildx's `ParseCallFunc` reads it: `NAME[,format=F][,ignorestatus=BOOL]`;
/// `build` (the default) and the empty string mean no call; `check` is `lint`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallFunc {
    /// The method (`lint`, `outline`, `targets`, …).
    pub name: String,
    /// `format=`.
    pub format: String,
    /// `ignorestatus=`.
    pub ignore_status: bool,
}

impl CallFunc {
    /// Parses a `--call` value; `None` for a plain build.
    pub fn parse(input: &str) -> Result<Option<Self>, OverrideError> {
        if input.is_empty() {
            return Ok(None);
        }
        let fields = csv_fields(input).map_err(|e| OverrideError::Call(e.to_string()))?;
        let mut call = CallFunc::default();
        for field in &fields {
            match field.split_once('=') {
                Some(("format", v)) => call.format = v.to_string(),
                Some(("ignorestatus", v)) => {
                    call.ignore_status = parse_go_bool(v).ok_or_else(|| {
                        OverrideError::Call(format!(
                            "invalid ignorestatus print value: {v}: {}",
                            parse_bool_error(v)
                        ))
                    })?;
                }
                Some(_) => {
                    return Err(OverrideError::Call(format!("invalid print field: {field}")));
                }
                None => {
                    if !call.name.is_empty() {
                        return Err(OverrideError::Call(format!("invalid print value: {input}")));
                    }
                    call.name = field.clone();
                }
            }
        }
        if call.name == "check" {
            call.name = "lint".to_string();
        }
        if call.name == "build" {
            return Ok(None);
        }
        Ok(Some(call))
    }
}

/// The bake flags that are shorthands for `--set` overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlagOverrides {
    /// `--push`.
    pub push: bool,
    /// `--load`.
    pub load: bool,
    /// `--call` (or `--check`), as given; empty or `build` for none.
    pub call: String,
    /// `--no-cache`, when given.
    pub no_cache: Option<bool>,
    /// `--pull`, when given.
    pub pull: Option<bool>,
    /// `--sbom`, as given.
    pub sbom: String,
    /// `--provenance`, as given.
    pub provenance: String,
}

impl FlagOverrides {
    /// The `--set` values the flags stand for, appended after the user's own as buildx's
    /// `runBake` appends them.
    pub fn to_set_values(&self) -> Result<Vec<String>, OverrideError> {
        let mut out = Vec::new();
        if self.push {
            out.push("*.push=true".to_string());
        }
        if self.load {
            out.push("*.load=true".to_string());
        }
        if let Some(call) = CallFunc::parse(&self.call)? {
            out.push(format!("*.call={}", call.name));
        }
        if let Some(no_cache) = self.no_cache {
            out.push(format!("*.no-cache={no_cache}"));
        }
        if let Some(pull) = self.pull {
            out.push(format!("*.pull={pull}"));
        }
        if !self.sbom.is_empty() {
            out.push(format!(
                "*.attest={}",
                Attest::canonicalize("sbom", &self.sbom)
            ));
        }
        if !self.provenance.is_empty() {
            out.push(format!(
                "*.attest={}",
                Attest::canonicalize("provenance", &self.provenance)
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn config(names: &[&str]) -> Config {
        Config {
            groups: vec![],
            targets: names.iter().map(|n| Target::named(*n)).collect(),
        }
    }

    fn parse(names: &[&str], values: &[&str]) -> Result<Overrides, OverrideError> {
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Overrides::parse(&config(names), &values, &|k| {
            (k == "FROMENV").then(|| "env".to_string())
        })
    }

    fn apply(target: &mut Target, values: &[&str]) -> Result<(), OverrideError> {
        let o = parse(&[target.name.clone().as_str()], values)?;
        target.add_overrides(o.for_target(&target.name))
    }

    #[test]
    fn parse_errors_are_worded_like_buildx() {
        let cases = [
            ("a=1", "invalid override key a, expected target.name"),
            (
                "a.context",
                "invalid override a.context, expected target.name=value",
            ),
            ("a.args=1", "invalid key a.args, args requires name"),
            (
                "a.contexts=1",
                "invalid key a.contexts, contexts requires name",
            ),
            ("b.context=x", "could not find any target matching 'b'"),
            (
                "nomatch*.dockerfile=foo",
                "could not find any target matching 'nomatch*'",
            ),
            (
                "[.context=x",
                "could not match targets with '[': syntax error in pattern",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse(&["a"], &[value]).unwrap_err().to_string(),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn apply_errors_are_worded_like_buildx() {
        let cases = [
            ("a.foo=1", "unknown key: foo"),
            (
                "a.labels=1",
                "invalid format for labels, expecting labels.<name>=<value>",
            ),
            (
                "a.extra-hosts=1",
                "invalid format for extra-hosts, expecting extra-hosts.<hostname>=<ip>",
            ),
            ("a.pull=maybe", "invalid value maybe for boolean key pull"),
            ("a.no-cache=x", "invalid value x for boolean key no-cache"),
            (
                "a.output=type=local,x",
                "invalid value for outputs: invalid value x",
            ),
            (
                "a.attest=mode=max",
                "invalid value for attest: attestation type not specified",
            ),
            ("a.cache-from=src=x", r#"type required form> "src=x""#),
        ];
        for (value, want) in cases {
            let mut t = Target::named("a");
            assert_eq!(
                apply(&mut t, &[value]).unwrap_err().to_string(),
                want,
                "{value}"
            );
        }
    }

    #[test]
    fn args_without_value_come_from_the_environment() {
        let mut t = Target::named("a");
        apply(&mut t, &["a.args.UNSET", "a.args.EMPTY=", "a.args.FROMENV"]).unwrap();
        assert!(!t.args.contains_key("UNSET"));
        assert_eq!(t.args["EMPTY"].as_deref(), Some(""));
        assert_eq!(t.args["FROMENV"].as_deref(), Some("env"));
    }

    #[test]
    fn list_overrides_replace_or_append() {
        let mut t = Target::named("a");
        t.platforms = Some(vec!["linux/amd64".into()]);
        apply(
            &mut t,
            &["a.platform+=linux/arm64", "a.platform+=linux/riscv64"],
        )
        .unwrap();
        assert_eq!(
            t.platforms.as_ref().unwrap(),
            &["linux/amd64", "linux/arm64", "linux/riscv64"]
        );
        let mut t = Target::named("a");
        t.platforms = Some(vec!["linux/amd64".into()]);
        apply(
            &mut t,
            &["a.platform+=linux/arm64", "a.platform=linux/riscv64"],
        )
        .unwrap();
        assert_eq!(
            t.platforms.as_ref().unwrap(),
            &["linux/arm64", "linux/riscv64"]
        );
        let mut t = Target::named("a");
        apply(&mut t, &["a.tags=x", "a.tags+=y", "a.no-cache=1"]).unwrap();
        assert_eq!(t.tags.as_ref().unwrap(), &["x", "y"]);
        assert_eq!(t.no_cache, Some(true));
    }

    #[test]
    fn network_and_no_cache_filter_keep_buildx_quirks() {
        let mut t = Target::named("a");
        t.network = Some("none".into());
        t.no_cache_filter = Some(vec!["x".into()]);
        apply(&mut t, &["a.network=host", "a.no-cache-filter=y"]).unwrap();
        assert_eq!(t.network.as_deref(), Some(""));
        assert_eq!(t.no_cache_filter, Some(vec![]));
    }

    fn outputs(t: &Target) -> Vec<String> {
        t.outputs.iter().flatten().map(|o| o.to_string()).collect()
    }

    #[test]
    fn push_and_load_overrides_like_buildx() {
        let with_output = |out: &[&str]| {
            let mut t = Target::named("a");
            if !out.is_empty() {
                t.outputs = Some(out.iter().map(|o| ExportEntry::parse(o).unwrap()).collect());
            }
            t
        };
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&[], "a.push=true", &["type=image,push=true"]),
            (
                &["type=image,compression=zstd"],
                "a.push=true",
                &["type=image,compression=zstd,push=true"],
            ),
            (
                &["type=image,compression=zstd"],
                "a.push=false",
                &["type=image,compression=zstd,push=false"],
            ),
            (&["type=registry"], "a.push=true", &["type=registry"]),
            (&["type=registry"], "a.push=false", &[]),
            (
                &["type=local,dest=out"],
                "a.push=true",
                &["type=local,dest=out"],
            ),
            (&[], "a.load=true", &["type=docker"]),
            (&["type=docker"], "a.load=true", &["type=docker"]),
            (
                &["type=image"],
                "a.load=true",
                &["type=image", "type=docker"],
            ),
            (&["type=image"], "a.load=false", &["type=image"]),
            (
                &["type=registry"],
                "a.load=true",
                &["type=registry", "type=docker"],
            ),
            (
                &["type=oci,dest=out"],
                "a.load=true",
                &["type=oci,dest=out", "type=docker"],
            ),
            (
                &["type=docker,dest=out"],
                "a.load=true",
                &["type=docker,dest=out", "type=docker"],
            ),
            (
                &["type=local,dest=out"],
                "a.load=true",
                &["type=local,dest=out"],
            ),
        ];
        for (given, set, want) in cases {
            let mut t = with_output(given);
            apply(&mut t, &[set]).unwrap();
            assert_eq!(outputs(&t), *want, "{given:?} {set}");
        }
        // --push then --load, as the CLI orders them.
        let mut t = with_output(&[]);
        apply(&mut t, &["a.push=true", "a.load=true"]).unwrap();
        assert_eq!(outputs(&t), ["type=image,push=true", "type=docker"]);
    }

    #[test]
    fn flags_become_set_values() {
        let flags = FlagOverrides {
            push: true,
            load: true,
            call: "check".into(),
            no_cache: Some(false),
            pull: Some(true),
            sbom: "true".into(),
            provenance: "mode=max".into(),
        };
        assert_eq!(
            flags.to_set_values().unwrap(),
            [
                "*.push=true",
                "*.load=true",
                "*.call=lint",
                "*.no-cache=false",
                "*.pull=true",
                "*.attest=type=sbom,disabled=false",
                "*.attest=type=provenance,mode=max",
            ]
        );
        let build = FlagOverrides {
            call: "build".into(),
            ..FlagOverrides::default()
        };
        assert!(build.to_set_values().unwrap().is_empty());
        assert_eq!(
            CallFunc::parse("outline,format=json").unwrap().unwrap(),
            CallFunc {
                name: "outline".into(),
                format: "json".into(),
                ignore_status: false
            }
        );
        assert_eq!(
            CallFunc::parse("a,b").unwrap_err().to_string(),
            "invalid print value: a,b"
        );
        assert_eq!(
            CallFunc::parse("lint,x=1").unwrap_err().to_string(),
            "invalid print field: x=1"
        );
    }

    #[test]
    fn patterns_expand_over_targets_only() {
        let o = parse(&["webapp", "webDEP", "other"], &["web*.dockerfile=foo"]).unwrap();
        assert_eq!(o.for_target("webapp").len(), 1);
        assert_eq!(o.for_target("webDEP").len(), 1);
        assert!(o.for_target("other").is_empty());
    }
}
