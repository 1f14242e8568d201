//! Helpers for this crate's unit tests.

use crate::value::Value;

/// A bake value from JSON (`serde_json::json!` literals): arrays become lists, objects
/// objects.
pub fn value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(value).collect()),
        serde_json::Value::Object(members) => {
            Value::Object(members.into_iter().map(|(k, v)| (k, value(v))).collect())
        }
    }
}

/// Raw blocks from `[["target"|"group", NAME, {ATTRIBUTES}], …]`, in order.
pub fn blocks(json: serde_json::Value) -> Vec<crate::raw::RawBlock> {
    let serde_json::Value::Array(items) = json else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let serde_json::Value::Array(parts) = item else {
                return None;
            };
            let mut parts = parts.into_iter();
            let kind = match parts.next()?.as_str()? {
                "group" => crate::raw::BlockKind::Group,
                _ => crate::raw::BlockKind::Target,
            };
            let name = parts.next()?.as_str()?.to_string();
            let attributes = match value(parts.next()?) {
                Value::Object(attrs) => attrs,
                _ => Default::default(),
            };
            Some(crate::raw::RawBlock {
                kind,
                name,
                attributes,
                position: None,
            })
        })
        .collect()
}

/// A config decoded from [`blocks`] as the HCL parser would fill it; panics on a decode
/// error (tests give valid blocks).
pub fn config(json: serde_json::Value) -> crate::model::Config {
    let mut config = crate::model::Config::default();
    for block in blocks(json) {
        if let Err(err) = crate::model::decode::add_block(&mut config, &block) {
            panic!("test blocks do not decode: {err}");
        }
    }
    config.dedupe();
    config
}
