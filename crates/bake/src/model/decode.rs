//! Decoding an evaluated block into a [`Target`] or [`Group`] with the conversions gohcl and
//! cty apply to buildx's struct fields: numbers and bools become strings, strings `"true"`
//! /`"false"` become bools, lists are lists of strings, `args`-like maps hold optional
//! strings (null = unset), and the structured attributes take CSV strings or objects.
//! Wrong types are reported as HCL reports them (`Unsuitable value type; Unsuitable value:
//! list of string required, but have string`).

use std::collections::BTreeMap;

use super::buildflags::{Attest, CacheEntry, ExportEntry, Secret, SshKey};
use super::text::{parse_bool_error, parse_go_bool};
use super::{Group, Target};
use crate::raw::{BlockKind, Position, RawBlock};
use crate::types::{self, Type};
use crate::value::{Value, number_to_string};

/// An attribute whose value does not fit its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{summary}; {detail}", position_prefix(.position))]
pub struct DecodeError {
    /// The block's name.
    pub block: String,
    /// The attribute.
    pub attribute: String,
    /// HCL's summary (`Unsuitable value type`, `Missing required argument`).
    pub summary: String,
    /// HCL's detail (`Unsuitable value: list of string required`).
    pub detail: String,
    /// Where the attribute is written, when known. The evaluator hands blocks without
    /// per-attribute positions, so this is left empty rather than pointing at the wrong place.
    pub position: Option<Box<Position>>,
}

/// `FILE:LINE,COL-COL: ` as HCL prefixes a diagnostic, or nothing.
fn position_prefix(position: &Option<Box<Position>>) -> String {
    match position {
        None => String::new(),
        Some(p) if p.line == p.end_line => {
            format!("{}:{},{}-{}: ", p.file, p.line, p.column, p.end_column)
        }
        Some(p) => format!(
            "{}:{},{}-{},{}: ",
            p.file, p.line, p.column, p.end_line, p.end_column
        ),
    }
}

/// cty's conversion of a value to `want`, its message on failure.
fn convert(value: &Value, want: &Type) -> ConvResult<Value> {
    types::convert(value, want).map_err(|e| e.message)
}

/// A conversion failure: the message after `Unsuitable value: `.
type ConvResult<T> = Result<T, String>;

/// gocty's refusal of a null where a Go value (not a pointer) is expected.
const NULL_NOT_ALLOWED: &str = "null value is not allowed";

/// Conversion to `string`; `None` for null (a Go `*string` field).
fn to_string_opt(value: &Value) -> ConvResult<Option<String>> {
    match convert(value, &Type::String)? {
        Value::String(s) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// Conversion to a non-null `string` (a Go `string` field or element).
fn to_string(value: &Value) -> ConvResult<String> {
    to_string_opt(value)?.ok_or_else(|| NULL_NOT_ALLOWED.to_string())
}

/// Conversion to `bool`; `None` for null (a Go `*bool` field).
fn to_bool_opt(value: &Value) -> ConvResult<Option<bool>> {
    match convert(value, &Type::Bool)? {
        Value::Bool(b) => Ok(Some(b)),
        _ => Ok(None),
    }
}

fn list_of_string() -> Type {
    Type::List(Box::new(Type::String))
}

fn map_of_string() -> Type {
    Type::Map(Box::new(Type::String))
}

/// Conversion to `list(string)` then to a Go `[]string`: `None` for null, null elements
/// refused.
fn to_string_list(value: &Value) -> ConvResult<Option<Vec<String>>> {
    match convert(value, &list_of_string())? {
        Value::List(items) | Value::Set(items) => items
            .iter()
            .map(to_string)
            .collect::<ConvResult<Vec<_>>>()
            .map(Some),
        _ => Ok(None),
    }
}

/// Conversion to `map(string)` with optional values (a Go `map[string]*string`).
fn to_optional_string_map(value: &Value) -> ConvResult<BTreeMap<String, Option<String>>> {
    match convert(value, &map_of_string())? {
        Value::Object(attrs) => attrs
            .iter()
            .map(|(k, v)| Ok((k.clone(), to_string_opt(v)?)))
            .collect(),
        _ => Ok(BTreeMap::new()),
    }
}

/// Conversion to a Go `map[string]string` (null values refused).
fn to_string_map(value: &Value) -> ConvResult<BTreeMap<String, String>> {
    to_optional_string_map(value)?
        .into_iter()
        .map(|(k, v)| {
            v.map(|v| (k, v))
                .ok_or_else(|| NULL_NOT_ALLOWED.to_string())
        })
        .collect()
}

/// The elements of a structured list attribute (buildx's `FromCtyValue` of `CacheOptions`,
/// `Exports`, …): a list or tuple, null refused, empty strings skipped. `element` is the
/// element type buildx names in its message (`map of string`, the secret object).
fn structured_elements(value: &Value, element: Type) -> ConvResult<Vec<&Value>> {
    match value {
        Value::Null => Err(NULL_NOT_ALLOWED.to_string()),
        Value::List(items) => Ok(items
            .iter()
            .filter(|v| !matches!(v, Value::String(s) if s.is_empty()))
            .collect()),
        other => Err(types::mismatch_message(
            &Type::of(other),
            &Type::List(Box::new(element)),
        )),
    }
}

/// An element converted to `map(string)`, nulls dropped.
fn element_string_map(value: &Value) -> ConvResult<BTreeMap<String, String>> {
    if value.is_null() {
        return Err(NULL_NOT_ALLOWED.to_string());
    }
    Ok(to_optional_string_map(value)?
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// The object type buildx converts a secret element to (every attribute optional).
fn secret_type() -> Type {
    Type::Object {
        attributes: BTreeMap::from([
            ("id".to_string(), Type::String),
            ("src".to_string(), Type::String),
            ("env".to_string(), Type::String),
        ]),
        optional: vec!["id".to_string(), "src".to_string(), "env".to_string()],
    }
}

/// The object type buildx converts an SSH element to.
fn ssh_type() -> Type {
    Type::Object {
        attributes: BTreeMap::from([
            ("id".to_string(), Type::String),
            ("paths".to_string(), list_of_string()),
        ]),
        optional: vec!["id".to_string(), "paths".to_string()],
    }
}

/// An element converted to an object type, its attributes by name (nulls included).
fn element_object(value: &Value, ty: &Type) -> ConvResult<BTreeMap<String, Value>> {
    if value.is_null() {
        return Err(NULL_NOT_ALLOWED.to_string());
    }
    match convert(value, ty)? {
        Value::Object(attrs) => Ok(attrs),
        _ => Ok(BTreeMap::new()),
    }
}

/// A string attribute of a converted object, empty when null or absent.
fn object_string(attrs: &BTreeMap<String, Value>, name: &str) -> String {
    match attrs.get(name) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Compact JSON of a value, as `ctyjson.Marshal` writes it in buildx's `type required` message.
fn compact_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&number_to_string(*n)),
            Value::String(s) => out.push_str(&crate::print::go_json_string(s)),
            Value::List(items) | Value::Set(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(attrs) => {
                out.push('{');
                for (i, (k, v)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&crate::print::go_json_string(k));
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn decode_cache_entries(value: &Value) -> ConvResult<Vec<CacheEntry>> {
    let mut out = Vec::new();
    for element in structured_elements(value, map_of_string())? {
        if let Value::String(text) = element {
            let entries =
                CacheEntry::parse_list(std::slice::from_ref(text)).map_err(|e| e.to_string())?;
            out.extend(entries.unwrap_or_default());
            continue;
        }
        let mut attrs = element_string_map(element)?;
        let kind = attrs.remove("type").unwrap_or_default();
        if kind.is_empty() {
            return Err(format!(
                "type required form> {}",
                super::text::go_quote(&compact_json(element))
            ));
        }
        out.push(CacheEntry { kind, attrs });
    }
    Ok(out)
}

fn decode_exports(value: &Value) -> ConvResult<Vec<ExportEntry>> {
    let mut out = Vec::new();
    for element in structured_elements(value, map_of_string())? {
        if let Value::String(text) = element {
            out.push(ExportEntry::parse(text).map_err(|e| e.to_string())?);
            continue;
        }
        let mut attrs = element_string_map(element)?;
        let entry = ExportEntry {
            kind: attrs.remove("type").unwrap_or_default(),
            destination: attrs.remove("dest").unwrap_or_default(),
            attrs,
        };
        entry.validate().map_err(|e| e.to_string())?;
        out.push(entry);
    }
    Ok(out)
}

fn decode_secrets(value: &Value) -> ConvResult<Vec<Secret>> {
    let mut out = Vec::new();
    for element in structured_elements(value, secret_type())? {
        if let Value::String(text) = element {
            out.push(Secret::parse(text).map_err(|e| e.to_string())?);
            continue;
        }
        let attrs = element_object(element, &secret_type())?;
        out.push(Secret {
            id: object_string(&attrs, "id"),
            file_path: object_string(&attrs, "src"),
            env: object_string(&attrs, "env"),
        });
    }
    Ok(out)
}

fn decode_ssh(value: &Value) -> ConvResult<Vec<SshKey>> {
    let mut out = Vec::new();
    for element in structured_elements(value, ssh_type())? {
        if let Value::String(text) = element {
            out.push(SshKey::parse(text));
            continue;
        }
        let attrs = element_object(element, &ssh_type())?;
        let paths = match attrs.get("paths") {
            Some(paths) => to_string_list(paths)?.unwrap_or_default(),
            None => Vec::new(),
        };
        out.push(SshKey {
            id: object_string(&attrs, "id"),
            paths,
        });
    }
    Ok(out)
}

fn decode_attests(value: &Value) -> ConvResult<Vec<Attest>> {
    let mut out = Vec::new();
    for element in structured_elements(value, map_of_string())? {
        if let Value::String(text) = element {
            out.push(Attest::parse(text).map_err(|e| e.to_string())?);
            continue;
        }
        let mut attest = Attest::default();
        for (key, value) in element_string_map(element)? {
            match key.as_str() {
                "type" => attest.kind = value,
                "disabled" => {
                    attest.disabled =
                        parse_go_bool(&value).ok_or_else(|| parse_bool_error(&value))?;
                }
                _ => {
                    attest.attrs.insert(key, value);
                }
            }
        }
        out.push(attest);
    }
    Ok(out)
}

/// A structured target attribute (`attest`, `cache-from`, `cache-to`, `output`, `secret`,
/// `ssh`) as another block sees it through a reference (`target.x.output`): parsed as the
/// target field is, then turned back into cty values as buildx's buildflags `ToCtyValue`
/// does (a list of maps of strings; a secret's and an SSH key's attributes all present).
/// Other attributes are returned unchanged. The error is the message decoding would give.
/// Fits [`crate::hcl::StructuredAttributeFn`].
pub fn structured_attribute_value(attribute: &str, value: &Value) -> Result<Value, String> {
    let string = |s: &str| Value::String(s.to_string());
    let with_attrs = |attrs: &BTreeMap<String, String>, extra: Vec<(&str, Value)>| {
        let mut map: BTreeMap<String, Value> =
            attrs.iter().map(|(k, v)| (k.clone(), string(v))).collect();
        for (k, v) in extra {
            map.insert(k.to_string(), v);
        }
        Value::Object(map)
    };
    let list = match attribute {
        "cache-from" | "cache-to" => decode_cache_entries(value)?
            .iter()
            .map(|e| with_attrs(&e.attrs, vec![("type", string(&e.kind))]))
            .collect(),
        "output" => decode_exports(value)?
            .iter()
            .map(|e| {
                with_attrs(
                    &e.attrs,
                    vec![("type", string(&e.kind)), ("dest", string(&e.destination))],
                )
            })
            .collect(),
        "attest" => decode_attests(value)?
            .iter()
            .map(|a| {
                let mut extra = vec![("type", string(&a.kind))];
                if a.disabled {
                    extra.push(("disabled", string("true")));
                }
                with_attrs(&a.attrs, extra)
            })
            .collect(),
        "secret" => decode_secrets(value)?
            .iter()
            .map(|s| {
                Value::Object(BTreeMap::from([
                    ("id".to_string(), string(&s.id)),
                    ("src".to_string(), string(&s.file_path)),
                    ("env".to_string(), string(&s.env)),
                ]))
            })
            .collect(),
        "ssh" => decode_ssh(value)?
            .iter()
            .map(|k| {
                Value::Object(BTreeMap::from([
                    ("id".to_string(), string(&k.id)),
                    (
                        "paths".to_string(),
                        Value::List(k.paths.iter().map(|p| string(p)).collect()),
                    ),
                ]))
            })
            .collect(),
        _ => return Ok(value.clone()),
    };
    Ok(Value::List(list))
}

/// Decodes one attribute, turning a conversion message into HCL's diagnostic.
struct Decoder<'a> {
    block: &'a RawBlock,
}

impl Decoder<'_> {
    fn get<T>(
        &self,
        name: &str,
        convert: impl Fn(&Value) -> ConvResult<T>,
    ) -> Result<Option<T>, DecodeError> {
        let Some(value) = self.block.attributes.get(name) else {
            return Ok(None);
        };
        convert(value).map(Some).map_err(|message| DecodeError {
            block: self.block.name.clone(),
            attribute: name.to_string(),
            summary: "Unsuitable value type".to_string(),
            detail: format!("Unsuitable value: {message}"),
            position: None,
        })
    }
}

/// Decodes a `target` block. Attributes the target does not have are ignored, as buildx's
/// partial decoding ignores them.
pub fn decode_target(block: &RawBlock) -> Result<Target, DecodeError> {
    let d = Decoder { block };
    Ok(Target {
        name: block.name.clone(),
        description: d.get("description", to_string)?.unwrap_or_default(),
        inherits: d
            .get("inherits", to_string_list)?
            .flatten()
            .unwrap_or_default(),
        annotations: d.get("annotations", to_string_list)?.flatten(),
        attest: d.get("attest", decode_attests)?,
        context: d.get("context", to_string_opt)?.flatten(),
        contexts: d.get("contexts", to_string_map)?.unwrap_or_default(),
        dockerfile: d.get("dockerfile", to_string_opt)?.flatten(),
        dockerfile_inline: d.get("dockerfile-inline", to_string_opt)?.flatten(),
        args: d.get("args", to_optional_string_map)?.unwrap_or_default(),
        labels: d.get("labels", to_optional_string_map)?.unwrap_or_default(),
        tags: d.get("tags", to_string_list)?.flatten(),
        cache_from: d.get("cache-from", decode_cache_entries)?,
        cache_to: d.get("cache-to", decode_cache_entries)?,
        target: d.get("target", to_string_opt)?.flatten(),
        secrets: d.get("secret", decode_secrets)?,
        ssh: d.get("ssh", decode_ssh)?,
        platforms: d.get("platforms", to_string_list)?.flatten(),
        outputs: d.get("output", decode_exports)?,
        pull: d.get("pull", to_bool_opt)?.flatten(),
        no_cache: d.get("no-cache", to_bool_opt)?.flatten(),
        network: d.get("network", to_string_opt)?.flatten(),
        no_cache_filter: d.get("no-cache-filter", to_string_list)?.flatten(),
        shm_size: d.get("shm-size", to_string_opt)?.flatten(),
        ulimits: d.get("ulimits", to_string_list)?.flatten(),
        call: d.get("call", to_string_opt)?.flatten(),
        entitlements: d.get("entitlements", to_string_list)?.flatten(),
        extra_hosts: d
            .get("extra-hosts", to_optional_string_map)?
            .unwrap_or_default(),
        linked: false,
    })
}

/// Decodes a `group` block; `targets` is required, as in buildx.
pub fn decode_group(block: &RawBlock) -> Result<Group, DecodeError> {
    let d = Decoder { block };
    if !block.attributes.contains_key("targets") {
        return Err(DecodeError {
            block: block.name.clone(),
            attribute: "targets".to_string(),
            summary: "Missing required argument".to_string(),
            detail: "The argument \"targets\" is required, but no definition was found."
                .to_string(),
            position: block.position.clone().map(Box::new),
        });
    }
    Ok(Group {
        name: block.name.clone(),
        description: d.get("description", to_string)?.unwrap_or_default(),
        targets: d.get("targets", to_string_list)?.flatten(),
    })
}

/// Decodes a block of either kind into the config (targets of a repeated name merged, groups
/// replaced), as buildx's HCL parser fills its `Config`.
pub fn add_block(config: &mut super::Config, block: &RawBlock) -> Result<(), DecodeError> {
    match block.kind {
        BlockKind::Target => config.add_target(decode_target(block)?),
        BlockKind::Group => config.add_group(decode_group(block)?),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn block(attrs: serde_json::Value) -> RawBlock {
        RawBlock {
            kind: BlockKind::Target,
            name: "a".to_string(),
            attributes: match crate::testutil::value(attrs) {
                Value::Object(m) => m,
                _ => BTreeMap::new(),
            },
            position: None,
        }
    }

    fn err(attrs: serde_json::Value) -> String {
        decode_target(&block(attrs)).unwrap_err().to_string()
    }

    #[test]
    fn scalars_convert_like_cty() {
        let t = decode_target(&block(serde_json::json!({
            "description": 1, "context": true, "shm-size": 128, "pull": "true", "no-cache": false,
            "tags": ["a", 1, true], "args": {"a": 1, "b": null, "c": true},
            "extra-hosts": {"h": null, "i": 1}, "contexts": {"x": "y"}, "foo": 1,
        })))
        .unwrap();
        assert_eq!(t.description, "1");
        assert_eq!(t.context.as_deref(), Some("true"));
        assert_eq!(t.shm_size.as_deref(), Some("128"));
        assert_eq!(t.pull, Some(true));
        assert_eq!(t.no_cache, Some(false));
        assert_eq!(t.tags, Some(vec!["a".into(), "1".into(), "true".into()]));
        assert_eq!(t.args["b"], None);
        assert_eq!(t.args["a"].as_deref(), Some("1"));
        assert_eq!(t.extra_hosts["i"].as_deref(), Some("1"));
    }

    #[test]
    fn wrong_types_are_worded_like_hcl() {
        let prefix = "Unsuitable value type; Unsuitable value: ";
        let cases = [
            (
                serde_json::json!({"description": null}),
                "null value is not allowed",
            ),
            (serde_json::json!({"description": ["a"]}), "string required"),
            (
                serde_json::json!({"tags": ["a", null]}),
                "null value is not allowed",
            ),
            (serde_json::json!({"tags": "a"}), "list of string required"),
            (
                serde_json::json!({"tags": {"a": 1}}),
                "list of string required",
            ),
            (
                serde_json::json!({"tags": ["a", ["b"]]}),
                "element 1: string required",
            ),
            (
                serde_json::json!({"args": {"a": [1]}}),
                "element \"a\": string required",
            ),
            (serde_json::json!({"args": ["a"]}), "map of string required"),
            (serde_json::json!({"pull": "yes"}), "a bool is required"),
            (
                serde_json::json!({"pull": "True"}),
                "a bool is required; to convert from string, use lowercase \"true\"",
            ),
            (serde_json::json!({"pull": 1}), "bool required"),
            (
                serde_json::json!({"contexts": {"a": null}}),
                "null value is not allowed",
            ),
            (
                serde_json::json!({"cache-from": 3}),
                "list of map of string required",
            ),
            (
                serde_json::json!({"cache-from": [{"ref": "x"}]}),
                "type required form> \"{\\\"ref\\\":\\\"x\\\"}\"",
            ),
            (
                serde_json::json!({"cache-from": [1]}),
                "map of string required",
            ),
            (
                serde_json::json!({"cache-from": [["x"]]}),
                "map of string required",
            ),
            (
                serde_json::json!({"output": null}),
                "null value is not allowed",
            ),
            (
                serde_json::json!({"output": "x"}),
                "list of map of string required",
            ),
            (
                serde_json::json!({"output": [{"dest": "x"}]}),
                "type is required for output",
            ),
            (
                serde_json::json!({"secret": "x"}),
                "list of object required",
            ),
            (
                serde_json::json!({"secret": ["id=a,foo=b"]}),
                "unexpected key 'foo' in 'foo=b'",
            ),
            (
                serde_json::json!({"attest": ["mode=max"]}),
                "attestation type not specified",
            ),
        ];
        for (attrs, want) in cases {
            assert_eq!(err(attrs.clone()), format!("{prefix}{want}"), "{attrs}");
        }
    }

    #[test]
    fn structured_attributes_take_strings_and_objects() {
        let t = decode_target(&block(serde_json::json!({
            "cache-from": ["a,b", "type=local,src=x", {"type": "gha"}, ""],
            "secret": ["id=a,src=b", {"id": "c", "env": "D"}, "type=env,src=E,id=e"],
            "ssh": ["default", "x=a,b", {"id": "y", "paths": ["p"]}],
            "attest": ["type=sbom", {"type": "provenance", "mode": "max"}, "type=sbom,disabled=true"],
            "output": ["type=registry", {"type": "local", "dest": "out"}, ""],
        })))
        .unwrap();
        let strings = |v: Vec<String>| v;
        assert_eq!(
            strings(
                t.cache_from
                    .unwrap()
                    .iter()
                    .map(|e| e.to_string())
                    .collect()
            ),
            ["a", "b", "type=local,src=x", "type=gha"]
        );
        assert_eq!(
            strings(t.secrets.unwrap().iter().map(|e| e.to_string()).collect()),
            ["id=a,src=b", "id=c,env=D", "id=e,env=E"]
        );
        assert_eq!(
            strings(t.ssh.unwrap().iter().map(|e| e.to_string()).collect()),
            ["default", "\"x=a,b\"", "y=p"]
        );
        assert_eq!(t.attest.unwrap().len(), 3);
        assert_eq!(
            strings(t.outputs.unwrap().iter().map(|e| e.to_string()).collect()),
            ["type=registry", "type=local,dest=out"]
        );
    }

    #[test]
    fn an_empty_structured_list_is_present_but_empty() {
        let t = decode_target(&block(serde_json::json!({"output": [""], "tags": []}))).unwrap();
        assert_eq!(t.outputs, Some(vec![]));
        assert_eq!(t.tags, Some(vec![]));
    }

    #[test]
    fn structured_attributes_read_back_as_buildx_shows_them() {
        let v = |j: serde_json::Value| crate::testutil::value(j);
        assert_eq!(
            structured_attribute_value(
                "output",
                &v(serde_json::json!(["type=local,dest=out", {"type": "image"}]))
            )
            .unwrap(),
            v(serde_json::json!([{"type": "local", "dest": "out"}, {"type": "image", "dest": ""}]))
        );
        assert_eq!(
            structured_attribute_value("cache-from", &v(serde_json::json!(["a,b"]))).unwrap(),
            v(
                serde_json::json!([{"type": "registry", "ref": "a"}, {"type": "registry", "ref": "b"}])
            )
        );
        assert_eq!(
            structured_attribute_value("secret", &v(serde_json::json!(["id=a,env=B"]))).unwrap(),
            v(serde_json::json!([{"id": "a", "src": "", "env": "B"}]))
        );
        assert_eq!(
            structured_attribute_value("ssh", &v(serde_json::json!(["default"]))).unwrap(),
            v(serde_json::json!([{"id": "default", "paths": []}]))
        );
        assert_eq!(
            structured_attribute_value(
                "attest",
                &v(serde_json::json!(["type=sbom,disabled=true"]))
            )
            .unwrap(),
            v(serde_json::json!([{"type": "sbom", "disabled": "true"}]))
        );
        assert_eq!(
            structured_attribute_value("output", &v(serde_json::json!([{"dest": "x"}])))
                .unwrap_err(),
            "type is required for output"
        );
        assert_eq!(
            structured_attribute_value("tags", &v(serde_json::json!(["a"]))).unwrap(),
            v(serde_json::json!(["a"]))
        );
    }

    #[test]
    fn groups_require_targets() {
        let mut b = block(serde_json::json!({"description": "x"}));
        b.kind = BlockKind::Group;
        assert_eq!(
            decode_group(&b).unwrap_err().to_string(),
            "Missing required argument; The argument \"targets\" is required, but no definition was found."
        );
        let mut b = block(serde_json::json!({"targets": null}));
        b.kind = BlockKind::Group;
        assert_eq!(decode_group(&b).unwrap().targets, None);
    }
}
