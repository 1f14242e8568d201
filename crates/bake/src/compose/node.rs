//! The compose model as compose-go handles it before binding it to structs: a YAML tree of
//! maps, lists and scalars, merged across files with compose's override rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ComposeError;

/// One node of a compose file (YAML decoded as go-yaml decodes it into `interface{}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`, `~` or nothing.
    Null,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping (Go maps have no order; keys are kept sorted).
    Map(BTreeMap<String, Node>),
}

impl Node {
    /// The Go type name compose-go's messages give the value (`%T`).
    pub fn go_type(&self) -> &'static str {
        match self {
            Node::Null => "<nil>",
            Node::Bool(_) => "bool",
            Node::Int(_) => "int",
            Node::Float(_) => "float64",
            Node::Str(_) => "string",
            Node::Seq(_) => "[]interface {}",
            Node::Map(_) => "map[string]interface {}",
        }
    }

    /// The value as Go's `fmt.Sprint` prints it (`<nil>` for null).
    pub fn sprint(&self) -> String {
        match self {
            Node::Null => "<nil>".to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => go_sprint_float(*f),
            Node::Str(s) => s.clone(),
            Node::Seq(items) => {
                let parts: Vec<String> = items.iter().map(Node::sprint).collect();
                format!("[{}]", parts.join(" "))
            }
            Node::Map(map) => {
                let parts: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.sprint()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
        }
    }

    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Node>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A float as Go's `%v` prints it: shortest digits, exponent form below 1e-4 or from 1e6.
pub fn go_sprint_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits; Go's %v (strconv's shortest
    // 'g') switches to the exponent form when the exponent is < -4 or >= 6.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return format!("{f}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    let mut out = mantissa.to_string();
    let _ = write!(out, "e{sign}{:02}", exponent.abs());
    out
}

/// A dotted path into the model (`services.web.build.args`), list elements as `[]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreePath(Vec<String>);

impl TreePath {
    /// The root.
    pub fn root() -> Self {
        TreePath(Vec::new())
    }

    /// A child path.
    pub fn next(&self, part: &str) -> Self {
        let mut parts = self.0.clone();
        parts.push(part.to_string());
        TreePath(parts)
    }

    /// Whether the path matches a pattern of parts where `*` is any one part.
    pub fn matches(&self, pattern: &[&str]) -> bool {
        self.0.len() == pattern.len()
            && self.0.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
    }

    /// The parts.
    pub fn parts(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for TreePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Paths marked `!reset` or `!override` in a file: removed from what earlier files defined
/// before this file is merged in.
pub type ResetPaths = Vec<TreePath>;

/// Converts a parsed YAML document into a node, recording `!reset`/`!override` paths and
/// refusing non-string keys as compose-go does.
pub fn from_yaml(
    value: serde_norway::Value,
    path: &TreePath,
    resets: &mut ResetPaths,
) -> Result<Option<Node>, ComposeError> {
    use serde_norway::Value;
    Ok(Some(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Node::Str(s),
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if let Some(node) = from_yaml(item, &path.next(&i.to_string()), resets)? {
                    out.push(node);
                }
            }
            Node::Seq(out)
        }
        Value::Mapping(mapping) => {
            let mut out = BTreeMap::new();
            for (key, item) in mapping {
                let key = match key {
                    Value::String(s) => s,
                    other => {
                        let location = if path.parts().is_empty() {
                            "at top level".to_string()
                        } else {
                            format!("in {path}")
                        };
                        let shown = match other {
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            _ => "<key>".to_string(),
                        };
                        return Err(ComposeError::Message(format!(
                            "non-string key {location}: {shown}"
                        )));
                    }
                };
                if let Some(node) = from_yaml(item, &path.next(&key), resets)? {
                    out.insert(key, node);
                }
            }
            Node::Map(out)
        }
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            if tag == "!reset" {
                resets.push(path.clone());
                return Ok(None);
            }
            if tag == "!override" {
                resets.push(path.clone());
            }
            return from_yaml(tagged.value, path, resets);
        }
    }))
}

/// Removes from `dict` every path a later file resets or overrides (compose-go's
/// `ResetProcessor.Apply`).
pub fn apply_resets(dict: &mut BTreeMap<String, Node>, resets: &ResetPaths, path: &TreePath) {
    let keys: Vec<String> = dict.keys().cloned().collect();
    for key in keys {
        let next = path.next(&key);
        if resets.iter().any(|r| r == &next) {
            dict.remove(&key);
            continue;
        }
        if let Some(Node::Map(child)) = dict.get_mut(&key) {
            apply_resets(child, resets, &next);
        }
    }
}

/// Whether a path matches one of the merge/unicity patterns given as dotted strings.
fn path_is(path: &TreePath, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    path.matches(&parts)
}

/// compose-go's `convertIntoSequence`: a mapping becomes sorted `key=value` entries (a key
/// alone for null, one entry per element of a list value).
fn into_sequence(node: Node) -> Vec<Node> {
    match node {
        Node::Map(map) => {
            let mut seq: Vec<String> = Vec::new();
            for (k, v) in map {
                match v {
                    Node::Null => seq.push(k),
                    Node::Seq(items) => {
                        for item in items {
                            seq.push(format!("{k}={}", item.sprint()));
                        }
                    }
                    other => seq.push(format!("{k}={}", other.sprint())),
                }
            }
            seq.sort();
            seq.into_iter().map(Node::Str).collect()
        }
        Node::Seq(items) => items,
        Node::Str(s) => vec![Node::Str(s)],
        _ => Vec::new(),
    }
}

/// The build section as a mapping (`build: ./dir` is its context).
fn into_build(node: Node) -> BTreeMap<String, Node> {
    match node {
        Node::Str(context) => BTreeMap::from([("context".to_string(), Node::Str(context))]),
        Node::Map(map) => map,
        _ => BTreeMap::new(),
    }
}

/// Merges `other` over `base` as compose-go's `override.Merge` does: mappings merged key by
/// key, lists appended, scalars replaced; `build`, `args`, `labels`, `environment`,
/// `extra_hosts`, … by their special rules.
pub fn merge(base: Node, other: Node, path: &TreePath) -> Result<Node, ComposeError> {
    const TO_SEQUENCE: &[&str] = &[
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.labels",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.env_file",
        "services.*.label_file",
        "services.*.environment",
        "services.*.labels",
        "services.*.sysctls",
        "services.*.tmpfs",
        "networks.*.labels",
        "volumes.*.labels",
    ];
    const OVERRIDE: &[&str] = &[
        "services.*.command",
        "services.*.entrypoint",
        "services.*.healthcheck.test",
    ];
    if TO_SEQUENCE.iter().any(|p| path_is(path, p)) {
        let mut seq = into_sequence(base);
        seq.extend(into_sequence(other));
        return Ok(Node::Seq(seq));
    }
    if OVERRIDE.iter().any(|p| path_is(path, p)) {
        return Ok(other);
    }
    if path_is(path, "services.*.extra_hosts") || path_is(path, "services.*.build.extra_hosts") {
        let mut seq = into_sequence(base);
        for item in into_sequence(other) {
            if !seq.contains(&item) {
                seq.push(item);
            }
        }
        return Ok(Node::Seq(seq));
    }
    if path_is(path, "services.*.build") {
        return merge_mappings(into_build(base), into_build(other), path).map(Node::Map);
    }
    if path_is(path, "services.*.ulimits.*") || path_is(path, "services.*.build.ulimits.*") {
        return Ok(other);
    }
    if other == Node::Null {
        return Ok(base);
    }
    match (base, other) {
        (Node::Map(base), Node::Map(other)) => merge_mappings(base, other, path).map(Node::Map),
        (Node::Seq(mut base), Node::Seq(other)) => {
            base.extend(other);
            Ok(Node::Seq(base))
        }
        (Node::Map(_) | Node::Seq(_), _) => {
            Err(ComposeError::Message(format!("cannot override {path}")))
        }
        (_, other) => Ok(other),
    }
}

/// Merges two mappings key by key.
pub fn merge_mappings(
    mut base: BTreeMap<String, Node>,
    other: BTreeMap<String, Node>,
    path: &TreePath,
) -> Result<BTreeMap<String, Node>, ComposeError> {
    for (key, value) in other {
        match base.remove(&key) {
            None => {
                base.insert(key, value);
            }
            Some(existing) => {
                let merged = merge(existing, value, &path.next(&key))?;
                base.insert(key, merged);
            }
        }
    }
    Ok(base)
}

/// compose-go's `EnforceUnicity` for the lists bake reads: a later `KEY=…` entry replaces an
/// earlier entry of the same key in place.
pub fn enforce_unicity(node: &mut Node, path: &TreePath) -> Result<(), ComposeError> {
    const KEYED: &[&str] = &[
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.platform",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.environment",
        "services.*.labels",
        "services.*.profiles",
    ];
    match node {
        Node::Map(map) => {
            for (key, child) in map.iter_mut() {
                enforce_unicity(child, &path.next(key))?;
            }
        }
        Node::Seq(items) if KEYED.iter().any(|p| path_is(path, p)) => {
            let mut out: Vec<Node> = Vec::with_capacity(items.len());
            let mut keys: Vec<String> = Vec::new();
            for (i, entry) in std::mem::take(items).into_iter().enumerate() {
                let Node::Str(text) = &entry else {
                    return Err(ComposeError::Message(format!(
                        "{}: unexpected type {}",
                        path.next(&format!("[{i}]")),
                        entry.go_type()
                    )));
                };
                let key = text
                    .split_once('=')
                    .map_or(text.as_str(), |(k, _)| k)
                    .to_string();
                match keys.iter().position(|k| *k == key) {
                    Some(j) => out[j] = entry,
                    None => {
                        keys.push(key);
                        out.push(entry);
                    }
                }
            }
            *items = out;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_sprint_float(1.0), "1");
        assert_eq!(go_sprint_float(1.5), "1.5");
        assert_eq!(go_sprint_float(1e21), "1e+21");
        assert_eq!(go_sprint_float(123456789.0), "1.23456789e+08");
        assert_eq!(go_sprint_float(100000.0), "100000");
        assert_eq!(go_sprint_float(1e6), "1e+06");
        assert_eq!(go_sprint_float(0.00001), "1e-05");
    }

    fn map(pairs: &[(&str, Node)]) -> Node {
        Node::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn args_merge_into_sorted_entries() {
        let base = map(&[("b", Node::Int(1)), ("a", Node::Null)]);
        let other = map(&[("b", Node::Int(2))]);
        let path = TreePath::root()
            .next("services")
            .next("x")
            .next("build")
            .next("args");
        let mut merged = merge(base, other, &path).unwrap();
        assert_eq!(
            merged,
            Node::Seq(vec![
                Node::Str("a".into()),
                Node::Str("b=1".into()),
                Node::Str("b=2".into())
            ])
        );
        enforce_unicity(&mut merged, &path).unwrap();
        assert_eq!(
            merged,
            Node::Seq(vec![Node::Str("a".into()), Node::Str("b=2".into())])
        );
    }
}
