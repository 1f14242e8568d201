//! What `bake --print` and `bake --list` write, byte for byte as buildx writes them: Go's
//! `encoding/json` of buildx's structs (struct field order, map keys sorted, empty fields
//! omitted, HTML-escaped strings, two-space indent) and `text/tabwriter` tables.

use std::collections::BTreeMap;

use crate::model::{Attest, CacheEntry, Config, ExportEntry, Group, Secret, SshKey, Target};
use crate::raw::VariableInfo;
use crate::types::Type;
use crate::value::{Value, number_to_string};

/// A JSON value with its object members in the order Go writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum GoJson {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, already formatted.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<GoJson>),
    /// An object, members in output order.
    Object(Vec<(String, GoJson)>),
}

/// A string as Go's `encoding/json` writes it: quoted, `<`, `>`, `&`, U+2028 and U+2029
/// escaped (HTML-safe, the default), control characters as `\n`-style or `\u00XX` escapes.
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl GoJson {
    /// `json.MarshalIndent(v, "", "  ")`.
    pub fn to_indented(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out
    }

    /// `json.Marshal(v)`.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        let newline = |out: &mut String, level: usize| {
            out.push('\n');
            for _ in 0..level {
                out.push_str("  ");
            }
        };
        match self {
            GoJson::Null => out.push_str("null"),
            GoJson::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            GoJson::Number(n) => out.push_str(n),
            GoJson::String(s) => out.push_str(&go_json_string(s)),
            GoJson::Array(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    item.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push(']');
            }
            GoJson::Object(members) => {
                if members.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    out.push_str(&go_json_string(key));
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    value.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push('}');
            }
        }
    }
}

/// Builds a JSON object member by member, leaving out empty fields as `omitempty` does.
#[derive(Default)]
struct ObjectBuilder {
    members: Vec<(String, GoJson)>,
}

impl ObjectBuilder {
    fn put(&mut self, key: &str, value: GoJson) {
        self.members.push((key.to_string(), value));
    }

    fn string(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.put(key, GoJson::String(value.to_string()));
        }
    }

    fn opt_string(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.put(key, GoJson::String(v.clone()));
        }
    }

    fn opt_bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.put(key, GoJson::Bool(v));
        }
    }

    fn strings(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            self.put(key, strings_json(values));
        }
    }

    fn list<T>(&mut self, key: &str, values: &Option<Vec<T>>, each: impl Fn(&T) -> GoJson) {
        if let Some(values) = values
            && !values.is_empty()
        {
            self.put(key, GoJson::Array(values.iter().map(each).collect()));
        }
    }

    fn string_map(&mut self, key: &str, map: &BTreeMap<String, String>) {
        if !map.is_empty() {
            self.put(
                key,
                GoJson::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), GoJson::String(v.clone())))
                        .collect(),
                ),
            );
        }
    }

    fn optional_string_map(
        &mut self,
        key: &str,
        map: &BTreeMap<String, Option<String>>,
        escape: bool,
    ) {
        if !map.is_empty() {
            let members = map
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Some(v) if escape => GoJson::String(escape_interpolation(v)),
                        Some(v) => GoJson::String(v.clone()),
                        None => GoJson::Null,
                    };
                    (k.clone(), value)
                })
                .collect();
            self.put(key, GoJson::Object(members));
        }
    }

    fn finish(self) -> GoJson {
        GoJson::Object(self.members)
    }
}

fn strings_json(values: &[String]) -> GoJson {
    GoJson::Array(values.iter().map(|v| GoJson::String(v.clone())).collect())
}

/// `${` → `$${` and `%{` → `%%{`, as buildx's `Target.MarshalJSON` escapes printed values so
/// the output reads back as HCL/JSON bake definition.
fn escape_interpolation(s: &str) -> String {
    s.replace("${", "$${").replace("%{", "%%{")
}

/// A map entry of strings with some fixed members added, keys sorted (how buildx marshals
/// its cache, export and attest entries: a Go map).
fn sorted_members(attrs: &BTreeMap<String, String>, extra: Vec<(&str, GoJson)>) -> GoJson {
    let mut members: BTreeMap<String, GoJson> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), GoJson::String(v.clone())))
        .collect();
    for (k, v) in extra {
        members.insert(k.to_string(), v);
    }
    GoJson::Object(members.into_iter().collect())
}

/// A cache entry as `CacheOptionsEntry.MarshalJSON` writes it.
pub fn cache_entry_json(entry: &CacheEntry) -> GoJson {
    sorted_members(
        &entry.attrs,
        vec![("type", GoJson::String(entry.kind.clone()))],
    )
}

/// An output as `ExportEntry.MarshalJSON` writes it.
pub fn export_entry_json(entry: &ExportEntry) -> GoJson {
    let mut extra = vec![("type", GoJson::String(entry.kind.clone()))];
    if !entry.destination.is_empty() {
        extra.push(("dest", GoJson::String(entry.destination.clone())));
    }
    sorted_members(&entry.attrs, extra)
}

/// An attestation as `Attest.MarshalJSON` writes it.
pub fn attest_json(attest: &Attest) -> GoJson {
    let mut extra = vec![("type", GoJson::String(attest.kind.clone()))];
    if attest.disabled {
        extra.push(("disabled", GoJson::Bool(true)));
    }
    sorted_members(&attest.attrs, extra)
}

/// A secret as its struct marshals.
pub fn secret_json(secret: &Secret) -> GoJson {
    let mut o = ObjectBuilder::default();
    o.string("id", &secret.id);
    o.string("src", &secret.file_path);
    o.string("env", &secret.env);
    o.finish()
}

/// An SSH key as its struct marshals.
pub fn ssh_json(ssh: &SshKey) -> GoJson {
    let mut o = ObjectBuilder::default();
    o.string("id", &ssh.id);
    o.strings("paths", &ssh.paths);
    o.finish()
}

/// A target as buildx's `Target.MarshalJSON` writes it.
pub fn target_json(t: &Target) -> GoJson {
    let mut o = ObjectBuilder::default();
    o.string("description", &t.description);
    o.strings("inherits", &t.inherits);
    o.list("annotations", &t.annotations, |a| {
        GoJson::String(escape_interpolation(a))
    });
    o.list("attest", &t.attest, attest_json);
    o.opt_string("context", &t.context);
    o.string_map("contexts", &t.contexts);
    o.opt_string("dockerfile", &t.dockerfile);
    o.opt_string(
        "dockerfile-inline",
        &t.dockerfile_inline.as_deref().map(escape_interpolation),
    );
    o.optional_string_map("args", &t.args, true);
    o.optional_string_map("labels", &t.labels, true);
    o.list("tags", &t.tags, |s| GoJson::String(s.clone()));
    o.list("cache-from", &t.cache_from, cache_entry_json);
    o.list("cache-to", &t.cache_to, cache_entry_json);
    o.opt_string("target", &t.target);
    o.list("secret", &t.secrets, secret_json);
    o.list("ssh", &t.ssh, ssh_json);
    o.list("platforms", &t.platforms, |s| GoJson::String(s.clone()));
    o.list("output", &t.outputs, export_entry_json);
    o.opt_bool("pull", t.pull);
    o.opt_bool("no-cache", t.no_cache);
    o.opt_string("network", &t.network);
    o.list("no-cache-filter", &t.no_cache_filter, |s| {
        GoJson::String(s.clone())
    });
    o.opt_string("shm-size", &t.shm_size);
    o.list("ulimits", &t.ulimits, |s| GoJson::String(s.clone()));
    o.opt_string("call", &t.call);
    o.list("entitlements", &t.entitlements, |s| {
        GoJson::String(s.clone())
    });
    o.optional_string_map("extra-hosts", &t.extra_hosts, true);
    o.finish()
}

/// A group as its struct marshals (`targets` always present, `null` when null).
pub fn group_json(g: &Group) -> GoJson {
    let mut o = ObjectBuilder::default();
    o.string("description", &g.description);
    o.put(
        "targets",
        match &g.targets {
            Some(targets) => strings_json(targets),
            None => GoJson::Null,
        },
    );
    o.finish()
}

/// The `--print` document: `{"group": …, "target": …}` (`group` left out when empty,
/// `target` always present), indented, with the trailing newline `fmt.Fprintln` adds.
pub fn print_definition(
    groups: &BTreeMap<String, Group>,
    targets: &BTreeMap<String, Target>,
) -> String {
    let mut o = ObjectBuilder::default();
    if !groups.is_empty() {
        o.put(
            "group",
            GoJson::Object(
                groups
                    .iter()
                    .map(|(k, g)| (k.clone(), group_json(g)))
                    .collect(),
            ),
        );
    }
    o.put(
        "target",
        GoJson::Object(
            targets
                .iter()
                .map(|(k, t)| (k.clone(), target_json(t)))
                .collect(),
        ),
    );
    let mut out = o.finish().to_indented();
    out.push('\n');
    out
}

/// What `--list` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `targets`.
    Targets,
    /// `variables`.
    Variables,
}

/// How `--list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// The tab-aligned table (the default).
    Table,
    /// Indented JSON.
    Json,
}

/// A parsed `--list` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRequest {
    /// What to list.
    pub kind: ListKind,
    /// How.
    pub format: ListFormat,
}

/// A `--list` value that does not parse, worded as buildx's `parseList` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The CSV does not split.
    #[error(transparent)]
    Csv(#[from] crate::model::text::CsvError),
    /// A field without `=`.
    #[error("invalid value {0}")]
    InvalidValue(String),
    /// A key other than `type` and `format`.
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey {
        /// The key, lower-cased and trimmed.
        key: String,
        /// The whole field.
        field: String,
    },
    /// A type other than `targets` and `variables`.
    #[error("invalid list type {}", crate::model::text::go_quote(.0))]
    InvalidType(String),
    /// A format other than `table` and `json`.
    #[error("invalid list format {}", crate::model::text::go_quote(.0))]
    InvalidFormat(String),
}

/// Parses `--list targets`, `--list variables` or `--list type=targets,format=json`.
pub fn parse_list(input: &str) -> Result<ListRequest, ListError> {
    let fields = crate::model::text::csv_fields(input)?;
    let mut kind = String::new();
    let mut format = String::new();
    if fields.len() == 1 && fields[0] == input && !input.starts_with("type=") {
        kind = input.to_string();
    }
    if kind.is_empty() {
        for field in &fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(ListError::InvalidValue(field.clone()));
            };
            match key.trim().to_lowercase().as_str() {
                "type" => kind = value.to_string(),
                "format" => format = value.to_string(),
                other => {
                    return Err(ListError::UnexpectedKey {
                        key: other.to_string(),
                        field: field.clone(),
                    });
                }
            }
        }
    }
    let kind = match kind.as_str() {
        "targets" => ListKind::Targets,
        "variables" => ListKind::Variables,
        _ => return Err(ListError::InvalidType(kind)),
    };
    let format = match format.as_str() {
        "" | "table" => ListFormat::Table,
        "json" => ListFormat::Json,
        _ => return Err(ListError::InvalidFormat(format)),
    };
    Ok(ListRequest { kind, format })
}

/// Aligns tab-separated lines as Go's `tabwriter.NewWriter(w, 1, 8, 1, '\t', 0)` does:
/// every cell but a line's last is padded with tabs to its column's width (widest cell plus
/// one, rounded up to a multiple of eight).
fn tab_align(lines: &[Vec<String>]) -> String {
    const TAB_WIDTH: usize = 8;
    let columns = lines
        .iter()
        .map(|l| l.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut widths = vec![1usize; columns];
    for line in lines {
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 1);
        }
    }
    let mut out = String::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                let width = widths[i].div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let padding = width - cell.chars().count();
                for _ in 0..padding.div_ceil(TAB_WIDTH) {
                    out.push('\t');
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `--list targets`: targets and groups by name, private ones (`_…`) left out, a group's
/// description followed by its sorted targets.
pub fn list_targets(config: &Config, format: ListFormat) -> String {
    struct Entry {
        name: String,
        description: String,
        group: bool,
    }
    let mut entries: Vec<Entry> = config
        .targets
        .iter()
        .map(|t| Entry {
            name: t.name.clone(),
            description: t.description.clone(),
            group: false,
        })
        .chain(config.groups.iter().map(|g| {
            let mut targets = g.target_names().to_vec();
            targets.sort();
            let names = targets.join(", ");
            let description = match (g.description.is_empty(), names.is_empty()) {
                (_, true) => g.description.clone(),
                (true, false) => names,
                (false, false) => format!("{} ({names})", g.description),
            };
            Entry {
                name: g.name.clone(),
                description,
                group: true,
            }
        }))
        .filter(|e| !e.name.starts_with('_'))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        ListFormat::Table => {
            let mut lines = vec![vec!["TARGET".to_string(), "DESCRIPTION".to_string()]];
            lines.extend(entries.into_iter().map(|e| vec![e.name, e.description]));
            tab_align(&lines)
        }
        ListFormat::Json => {
            let items: Vec<GoJson> = entries
                .into_iter()
                .map(|e| {
                    let mut o = ObjectBuilder::default();
                    o.put("name", GoJson::String(e.name));
                    o.string("description", &e.description);
                    if e.group {
                        o.put("group", GoJson::Bool(true));
                    }
                    o.finish()
                })
                .collect();
            // buildx collects the entries into a nil slice: nothing listed encodes as null.
            json_lines(if items.is_empty() {
                GoJson::Null
            } else {
                GoJson::Array(items)
            })
        }
    }
}

/// `json.Encoder` with a two-space indent: the document and a newline.
fn json_lines(value: GoJson) -> String {
    let mut out = value.to_indented();
    out.push('\n');
    out
}

/// `--list variables`: the variables by name with their type (as cty names the constraint,
/// `list of string`) and value in effect.
pub fn list_variables(variables: &[VariableInfo], format: ListFormat) -> String {
    let mut vars: Vec<&VariableInfo> = variables.iter().collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<(String, String, Option<String>, String)> = vars
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                v.type_expr.clone().unwrap_or_default(),
                variable_value_string(&v.value, v.type_expr.as_deref()),
                v.description.clone().unwrap_or_default(),
            )
        })
        .collect();
    match format {
        ListFormat::Table => {
            let mut lines = vec![vec![
                "VARIABLE".to_string(),
                "TYPE".to_string(),
                "VALUE".to_string(),
                "DESCRIPTION".to_string(),
            ]];
            lines.extend(rows.into_iter().map(|(name, ty, value, description)| {
                vec![
                    name,
                    ty,
                    value.unwrap_or_else(|| "<null>".to_string()),
                    description,
                ]
            }));
            tab_align(&lines)
        }
        ListFormat::Json => {
            let items = rows
                .into_iter()
                .map(|(name, ty, value, description)| {
                    let mut o = ObjectBuilder::default();
                    o.put("name", GoJson::String(name));
                    o.string("description", &description);
                    o.string("type", &ty);
                    if let Some(value) = value {
                        o.put("value", GoJson::String(value));
                    }
                    o.finish()
                })
                .collect();
            json_lines(GoJson::Array(items))
        }
    }
}

/// `--list variables` when no HCL/JSON file was read (compose files only): buildx has no
/// variable list at all then, which its JSON form prints as `null`.
pub fn list_no_variables(format: ListFormat) -> String {
    match format {
        ListFormat::Table => tab_align(&[vec![
            "VARIABLE".to_string(),
            "TYPE".to_string(),
            "VALUE".to_string(),
            "DESCRIPTION".to_string(),
        ]]),
        ListFormat::Json => json_lines(GoJson::Null),
    }
}

/// The value column of `--list variables` as buildx's parser renders it: a typed value as
/// cty's JSON (a `string` unquoted, `any` wrapped with its type), an untyped primitive as a
/// string, other untyped values as cty's JSON; `None` for null. The value is already
/// converted to its type by the evaluator, so its shape gives the JSON.
fn variable_value_string(value: &Value, constraint: Option<&str>) -> Option<String> {
    if value.is_null() {
        return None;
    }
    Some(match (constraint, value) {
        (Some("any type"), value) => format!(
            "{{\"value\":{},\"type\":{}}}",
            cty_json(value),
            cty_type_json(&Type::of(value))
        ),
        (Some("string"), Value::String(s)) => go_json_string(s).trim_matches('"').to_string(),
        (Some(_), value) => cty_json(value),
        (None, Value::String(s)) => s.clone(),
        (None, Value::Number(n)) => number_to_string(*n),
        (None, Value::Bool(b)) => b.to_string(),
        (None, value) => cty_json(value),
    })
}

/// cty's JSON for a type (`"string"`, `["list","string"]`, `["object",{"a":"number"}]`).
fn cty_type_json(t: &Type) -> String {
    match t {
        Type::Any => "\"dynamic\"".to_string(),
        Type::String => "\"string\"".to_string(),
        Type::Number => "\"number\"".to_string(),
        Type::Bool => "\"bool\"".to_string(),
        Type::List(e) => format!("[\"list\",{}]", cty_type_json(e)),
        Type::Set(e) => format!("[\"set\",{}]", cty_type_json(e)),
        Type::Map(e) => format!("[\"map\",{}]", cty_type_json(e)),
        Type::Tuple(items) => format!(
            "[\"tuple\",[{}]]",
            items
                .iter()
                .map(cty_type_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Type::Object { attributes, .. } => {
            let attrs = attributes
                .iter()
                .map(|(k, v)| format!("{}:{}", go_json_string(k), cty_type_json(v)))
                .collect::<Vec<_>>()
                .join(",");
            format!("[\"object\",{{{attrs}}}]")
        }
    }
}

/// `ctyjson.Marshal` of a value (strings HTML-escaped as Go's `json.Marshal` escapes them).
fn cty_json(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(*n),
        Value::String(s) => go_json_string(s),
        Value::List(items) | Value::Set(items) => {
            format!(
                "[{}]",
                items.iter().map(cty_json).collect::<Vec<_>>().join(",")
            )
        }
        Value::Object(attrs) => format!(
            "{{{}}}",
            attrs
                .iter()
                .map(|(k, v)| format!("{}:{}", go_json_string(k), cty_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(go_json_string("x<y>&z"), r#""x\u003cy\u003e\u0026z""#);
        assert_eq!(
            go_json_string("a\"\\\n\t\u{1}\u{8}"),
            r#""a\"\\\n\t\u0001\b""#
        );
    }

    #[test]
    fn indented_json_matches_marshal_indent() {
        let v = GoJson::Object(vec![
            ("a".into(), GoJson::Array(vec![GoJson::String("x".into())])),
            ("b".into(), GoJson::Object(vec![])),
            ("c".into(), GoJson::Array(vec![])),
        ]);
        assert_eq!(
            v.to_indented(),
            "{\n  \"a\": [\n    \"x\"\n  ],\n  \"b\": {},\n  \"c\": []\n}"
        );
        assert_eq!(v.to_compact(), r#"{"a":["x"],"b":{},"c":[]}"#);
    }

    #[test]
    fn list_values_parse_like_buildx() {
        assert_eq!(
            parse_list("targets").unwrap(),
            ListRequest {
                kind: ListKind::Targets,
                format: ListFormat::Table
            }
        );
        assert_eq!(
            parse_list("type=variables,format=json").unwrap(),
            ListRequest {
                kind: ListKind::Variables,
                format: ListFormat::Json
            }
        );
        assert_eq!(
            parse_list("foo").unwrap_err().to_string(),
            r#"invalid list type "foo""#
        );
        assert_eq!(
            parse_list("type=targets,format=yaml")
                .unwrap_err()
                .to_string(),
            r#"invalid list format "yaml""#
        );
        assert_eq!(
            parse_list("type=targets,x=1").unwrap_err().to_string(),
            "unexpected key 'x' in 'x=1'"
        );
        assert_eq!(
            parse_list("a,b").unwrap_err().to_string(),
            "invalid value a"
        );
    }

    fn var(
        name: &str,
        type_expr: Option<&str>,
        value: serde_json::Value,
        description: Option<&str>,
    ) -> VariableInfo {
        VariableInfo {
            name: name.into(),
            description: description.map(String::from),
            type_expr: type_expr.map(String::from),
            default: None,
            value: crate::testutil::value(value),
        }
    }

    /// The variables of a file checked against `docker buildx bake --list variables`.
    fn sample_variables() -> Vec<VariableInfo> {
        use serde_json::json;
        vec![
            var("K", Some("bool"), json!(null), None),
            var("A", None, json!("x<y"), None),
            var("B", None, json!(1.5), None),
            var(
                "C",
                Some("list of string"),
                json!(["a", "b"]),
                Some("the C"),
            ),
            var("D", Some("any type"), json!([1]), None),
            var("E", None, json!({"a": 1, "b": [true]}), None),
            var("F", None, json!(""), None),
            var("G", Some("string"), json!("q\"z"), None),
            var("H", Some("object"), json!({"a": 1, "b": null}), None),
            var("I", Some("map of number"), json!({"x": 2}), None),
            var("J", None, json!(null), None),
        ]
    }

    #[test]
    fn variables_table_matches_buildx() {
        let want = "VARIABLE\tTYPE\t\tVALUE\t\t\t\t\t\tDESCRIPTION\n\
A\t\t\t\tx<y\t\t\t\t\t\t\n\
B\t\t\t\t1.5\t\t\t\t\t\t\n\
C\t\tlist of string\t[\"a\",\"b\"]\t\t\t\t\tthe C\n\
D\t\tany type\t{\"value\":[1],\"type\":[\"tuple\",[\"number\"]]}\t\n\
E\t\t\t\t{\"a\":1,\"b\":[true]}\t\t\t\t\n\
F\t\t\t\t\t\t\t\t\t\t\n\
G\t\tstring\t\tq\\\"z\t\t\t\t\t\t\n\
H\t\tobject\t\t{\"a\":1,\"b\":null}\t\t\t\t\n\
I\t\tmap of number\t{\"x\":2}\t\t\t\t\t\t\n\
J\t\t\t\t<null>\t\t\t\t\t\t\n\
K\t\tbool\t\t<null>\t\t\t\t\t\t\n";
        assert_eq!(list_variables(&sample_variables(), ListFormat::Table), want);
    }

    #[test]
    fn variables_json_matches_buildx() {
        let got = list_variables(&sample_variables(), ListFormat::Json);
        assert!(
            got.starts_with("[\n  {\n    \"name\": \"A\",\n    \"value\": \"x\\u003cy\"\n  },\n")
        );
        assert!(got.contains(
            "  {\n    \"name\": \"C\",\n    \"description\": \"the C\",\n    \"type\": \"list of string\",\n    \"value\": \"[\\\"a\\\",\\\"b\\\"]\"\n  },\n"
        ));
        assert!(got.contains("  {\n    \"name\": \"F\",\n    \"value\": \"\"\n  },\n"));
        assert!(got.contains("  {\n    \"name\": \"J\"\n  },\n"));
        assert!(got.ends_with("  {\n    \"name\": \"K\",\n    \"type\": \"bool\"\n  }\n]\n"));
    }

    fn sample_config() -> Config {
        let group = |name: &str, targets: &[&str], description: &str| Group {
            name: name.into(),
            description: description.into(),
            targets: Some(targets.iter().map(|s| s.to_string()).collect()),
        };
        let mut private = Target::named("_priv");
        private.description = "p".into();
        Config {
            groups: vec![
                group("g", &["default", "_priv"], "grp"),
                group("h", &["z", "default"], ""),
                group("e", &[], ""),
            ],
            targets: vec![Target::named("default"), private],
        }
    }

    #[test]
    fn targets_table_and_json_match_buildx() {
        assert_eq!(
            list_targets(&sample_config(), ListFormat::Table),
            "TARGET\tDESCRIPTION\ndefault\t\ne\t\ng\tgrp (_priv, default)\nh\tdefault, z\n"
        );
        assert_eq!(
            list_targets(&sample_config(), ListFormat::Json),
            "[\n  {\n    \"name\": \"default\"\n  },\n  {\n    \"name\": \"e\",\n    \"group\": true\n  },\n  {\n    \"name\": \"g\",\n    \"description\": \"grp (_priv, default)\",\n    \"group\": true\n  },\n  {\n    \"name\": \"h\",\n    \"description\": \"default, z\",\n    \"group\": true\n  }\n]\n"
        );
    }
}
