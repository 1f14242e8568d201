//! The bake language: HCL (and HCL's JSON syntax) evaluated with buildx's semantics.
//!
//! [`parse_files`] does what buildx's `bake.ParseFiles` does with the HCL and JSON files of a
//! bake definition (compose files are someone else's): each file is parsed by its extension
//! (`.json` as HCL's JSON syntax, `.hcl` as HCL, anything else as HCL then JSON), the files
//! are merged, and `hclparser.Parse`'s evaluation runs over them: variables (defaults,
//! types, environment overrides, validation), `function` blocks, top-level attributes,
//! references between blocks, `matrix`.
//!
//! # What the decoder must know about the result
//!
//! * Blocks come in file order, one per matrix combination, repeated when a file (or the
//!   same file) defines a block again: buildx **merges** a repeated target into the first
//!   (`Target.Merge`: later non-null attributes override, `args`/`labels`/`extra-hosts`/
//!   `contexts` merge by key, `attest`/`secret`/`ssh`/`cache-from`/`annotations`/
//!   `no-cache-filter`/`ulimits`/`entitlements`/`inherits` append) but **replaces** a
//!   repeated group wholly (at the first one's position).
//! * Attribute values are already converted to buildx's field types: strings, bools, lists
//!   of strings, maps of strings (`args`, `labels`, `extra-hosts` may hold null elements,
//!   which buildx drops), and for `attest`, `cache-from`, `cache-to`, `output`, `secret`,
//!   `ssh` a list whose elements are either strings (still to parse as CSV) or maps of
//!   strings. An attribute set to null is present as [`Value::Null`]: treat it as unset.
//! * Only the attributes buildx knows are kept; others are ignored (buildx ignores them
//!   silently, without evaluating them).
//! * A matrix target renamed into several targets adds, after all blocks, a synthesized
//!   group block (position `None`) named by the block's label, listing the new names, as
//!   buildx's `ParseFiles` does.

mod ast;
mod diagnostics;
mod eval;
pub mod functions;
mod json;
mod loader;
mod parse;
mod typeexpr;
mod variables;

use std::collections::BTreeMap;

pub use diagnostics::{Diagnostic, Diagnostics};

use crate::raw::{RawConfig, VariableInfo};
use crate::value::Value;

/// Normalizes a structured target attribute (`attest`, `cache-from`, `cache-to`,
/// `output`, `secret`, `ssh`) into the form other blocks see when they reference it: a list
/// of maps of strings, as buildx's buildflags types convert back to cty (a
/// `"type=local,dest=out"` string becomes `{type = "local", dest = "out"}`). The argument
/// is the attribute's decoded list; an `Err` text is reported as buildx reports a value it
/// cannot decode.
pub type StructuredAttributeFn = fn(attribute: &str, value: &Value) -> Result<Value, String>;

/// What evaluation takes from its surroundings.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// The process environment buildx would see: variables are overridden from it.
    pub env: BTreeMap<String, String>,
    /// `BAKE_CMD_CONTEXT`: the context the bake command was given (`cwd://` by default).
    pub cmd_context: String,
    /// `BAKE_LOCAL_PLATFORM`: the local platform (`linux/amd64`).
    pub local_platform: String,
    /// More built-in variables beyond the two above (buildx's `Opt.Vars`): strings that
    /// cannot be redefined or overridden.
    pub extra_builtins: BTreeMap<String, String>,
    /// How references see structured attributes; without it they see the list as written
    /// (maps converted to maps of strings, strings left as they are).
    pub structured_attribute: Option<StructuredAttributeFn>,
}

/// Parses and evaluates the HCL and JSON bake files `files` (in order; compose files must
/// already be set aside) with buildx 0.29's semantics.
pub fn parse_files(files: &[crate::File], opts: &EvalOptions) -> Result<RawConfig, Diagnostics> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                String::from_utf8_lossy(&f.data).into_owned(),
            )
        })
        .collect();
    let mut bodies = Vec::with_capacity(files.len());
    for (name, text) in &sources {
        match parse_file(name, text) {
            Ok(body) => bodies.push(body),
            Err(diags) => return Err(Diagnostics::from_diags(&diags, &sources)),
        }
    }
    loader::load(&bodies, opts).map_err(|diags| Diagnostics::from_diags(&diags, &sources))
}

/// buildx's `ParseHCLFile`: by extension, and for others HCL first, then JSON (named with
/// the extension appended, as buildx names them in messages).
fn parse_file(name: &str, text: &str) -> Result<ast::Body, Vec<diagnostics::Diag>> {
    if name.ends_with(".json") {
        return json::parse_body(name, text);
    }
    if name.ends_with(".hcl") {
        return parse::parse_body(name, text);
    }
    match parse::parse_body(&format!("{name}.hcl"), text) {
        Ok(body) => Ok(body),
        Err(hcl_diags) => json::parse_body(&format!("{name}.json"), text).map_err(|_| hcl_diags),
    }
}

/// The text buildx shows for a variable in `--list variables` (its `value` field): None for
/// null (`<null>`); a typed variable's value as cty's JSON of its type (a string unquoted);
/// an untyped primitive as a string; other untyped values as JSON.
pub fn variable_value_text(variable: &VariableInfo) -> Option<String> {
    if variable.value.is_null() {
        return None;
    }
    match (&variable.type_expr, &variable.value) {
        (Some(ty), value) if ty == "any type" => Some(format!(
            "{{\"value\":{},\"type\":{}}}",
            json_text(value),
            type_json(value)
        )),
        (Some(ty), Value::String(s)) if ty == "string" => Some(s.clone()),
        (Some(_), value) => Some(json_text(value)),
        (None, Value::String(s)) => Some(s.clone()),
        (None, Value::Number(n)) => Some(crate::value::number_to_string(*n)),
        (None, Value::Bool(b)) => Some(b.to_string()),
        (None, value) => Some(json_text(value)),
    }
}

/// cty's JSON of a value.
fn json_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => crate::value::number_to_string(*n),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::List(items) | Value::Set(items) => format!(
            "[{}]",
            items.iter().map(json_text).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap_or_default(),
                    json_text(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// cty's JSON of a value's type (for `any`-typed variables).
fn type_json(value: &Value) -> String {
    match value {
        Value::Null => "\"dynamic\"".to_string(),
        Value::Bool(_) => "\"bool\"".to_string(),
        Value::Number(_) => "\"number\"".to_string(),
        Value::String(_) => "\"string\"".to_string(),
        Value::List(items) => format!(
            "[\"tuple\",[{}]]",
            items.iter().map(type_json).collect::<Vec<_>>().join(",")
        ),
        Value::Set(items) => format!(
            "[\"set\",{}]",
            items.first().map_or("\"dynamic\"".to_string(), type_json)
        ),
        Value::Object(map) => format!(
            "[\"object\",{{{}}}]",
            map.iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::to_string(k).unwrap_or_default(),
                    type_json(v)
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests;
