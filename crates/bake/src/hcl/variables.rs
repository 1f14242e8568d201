//! Environment overrides of variables, parsed as buildx's hclparser parses them: by the
//! variable's type (primitives, CSV for lists, sets, tuples and maps, JSON from a
//! `NAME_JSON` variable), or by the type of an untyped default.

use std::collections::BTreeMap;

use crate::types::Type;
use crate::value::Value;

/// A string parsed as a primitive of type `ty` (buildx's `convertPrimitive`).
pub(crate) fn convert_primitive(name: &str, text: &str, ty: &Type) -> Result<Value, String> {
    match ty {
        Type::String => Ok(Value::String(text.to_string())),
        Type::Bool => match parse_go_bool(text) {
            Some(b) => Ok(Value::Bool(b)),
            None => Err(format!(
                "failed to parse {name} as bool: strconv.ParseBool: parsing {}: invalid syntax",
                crate::types::go_quote(text)
            )),
        },
        Type::Number => match parse_go_float(text) {
            Some(n) if n.is_nan() || n.is_infinite() => Err(format!(
                "failed to parse {name} as number: invalid number value"
            )),
            Some(n) => Ok(Value::Number(n)),
            None => Err(format!(
                "failed to parse {name} as number: strconv.ParseFloat: parsing {}: invalid syntax",
                crate::types::go_quote(text)
            )),
        },
        other => Err(format!(
            "{name} of type {} is not a primitive",
            other.friendly_name()
        )),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms (and `inf`/`nan` words, which
/// the caller rejects).
fn parse_go_float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return Some(f64::NAN);
    }
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    text.parse::<f64>().ok()
}

/// Whether buildx reads an override of this type as CSV.
pub(crate) fn supported_csv_type(ty: &Type) -> bool {
    matches!(
        ty,
        Type::List(_) | Type::Set(_) | Type::Tuple(_) | Type::Map(_)
    )
}

/// A CSV override parsed into a list, set, tuple or map (buildx's `valueFromCSV`).
pub(crate) fn value_from_csv(name: &str, text: &str, ty: &Type) -> Result<Value, String> {
    let fields =
        csv_fields(text, ',').map_err(|e| format!("failed to parse {text} as CSV: {e}"))?;
    let unsupported = || {
        format!(
            "unsupported type {} for CSV specification",
            ty.friendly_name()
        )
    };
    let element = |field: &str, ety: &Type, verb: &str| {
        convert_primitive(name, field, ety).map_err(|e| {
            format!(
                "failed to parse element {verb} type {}: {e}",
                ty.friendly_name()
            )
        })
    };
    match ty {
        Type::List(ety) | Type::Set(ety) => {
            if !ety.is_primitive() {
                return Err(unsupported());
            }
            let elems = fields
                .iter()
                .map(|f| element(f, ety, "of"))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, Type::Set(_)) {
                crate::types::convert(&Value::List(elems), ty).map_err(|e| e.to_string())
            } else {
                Ok(Value::List(elems))
            }
        }
        Type::Tuple(etys) => {
            if etys.len() != fields.len() {
                return Err(format!(
                    "{} expects {} elements but only {} provided",
                    ty.friendly_name(),
                    etys.len(),
                    fields.len()
                ));
            }
            let mut elems = Vec::new();
            for (ety, field) in etys.iter().zip(&fields) {
                if !ety.is_primitive() {
                    return Err(unsupported());
                }
                elems.push(element(field, ety, "of")?);
            }
            Ok(Value::List(elems))
        }
        Type::Map(ety) => {
            if !ety.is_primitive() {
                return Err(unsupported());
            }
            let mut map = BTreeMap::new();
            for field in &fields {
                let pair = csv_fields(field, ':').map_err(|e| {
                    format!("failed to parse {field} as k/v for variable {name}: {e}")
                })?;
                if pair.len() != 2 {
                    return Err(format!(
                        "expected one k/v pair but got {} pieces from {field}",
                        pair.len()
                    ));
                }
                let value = element(&pair[1], ety, "from")?;
                map.insert(pair[0].clone(), value);
            }
            Ok(Value::Object(map))
        }
        _ => Err(unsupported()),
    }
}

/// One CSV record's fields, as Go's CSV reader (and go-csvvalue) splits them: quoted fields
/// with `""` escapes, no trimming.
fn csv_fields(text: &str, separator: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    let column = |consumed: usize| consumed + 1;
    let mut consumed = 0usize;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            consumed += 1;
            loop {
                match chars.next() {
                    Some('"') => {
                        consumed += 1;
                        match chars.peek() {
                            Some('"') => {
                                chars.next();
                                consumed += 1;
                                field.push('"');
                            }
                            Some(c) if *c == separator => break,
                            None => break,
                            Some(_) => {
                                return Err(format!(
                                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                                    column(consumed)
                                ));
                            }
                        }
                    }
                    Some(c) => {
                        consumed += 1;
                        field.push(c);
                    }
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            column(consumed)
                        ));
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == separator {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        column(consumed)
                    ));
                }
                field.push(c);
                chars.next();
                consumed += 1;
            }
        }
        fields.push(field);
        match chars.next() {
            Some(_) => consumed += 1,
            None => break,
        }
    }
    Ok(fields)
}

/// A `NAME_JSON` override decoded as cty's JSON decoding decodes it into type `ty`.
pub(crate) fn value_from_json(text: &str, ty: &Type) -> Result<Value, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    from_json(&json, ty)
}

fn from_json(json: &serde_json::Value, ty: &Type) -> Result<Value, String> {
    use serde_json::Value as J;
    if json.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        Type::Any => Ok(plain(json)),
        Type::Bool => match json {
            J::Bool(b) => Ok(Value::Bool(*b)),
            J::String(s) => {
                crate::types::convert(&Value::String(s.clone()), ty).map_err(|e| e.to_string())
            }
            _ => Err("bool is required".to_string()),
        },
        Type::Number => match json {
            J::Number(n) => n
                .as_f64()
                .map(Value::Number)
                .ok_or_else(|| "number is required".to_string()),
            J::String(s) => s
                .parse::<f64>()
                .map(Value::Number)
                .map_err(|_| format!("can't convert {} to number", crate::types::go_quote(s))),
            _ => Err("number is required".to_string()),
        },
        Type::String => match json {
            J::String(s) => Ok(Value::String(s.clone())),
            J::Number(n) => Ok(Value::String(n.to_string())),
            J::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err("string is required".to_string()),
        },
        Type::List(ety) | Type::Set(ety) => match json {
            J::Array(items) => {
                let elems = items
                    .iter()
                    .map(|i| from_json(i, ety))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, Type::Set(_)) {
                    crate::types::convert(&Value::List(elems), ty).map_err(|e| e.to_string())
                } else {
                    Ok(Value::List(elems))
                }
            }
            _ => Err("missing expected [".to_string()),
        },
        Type::Tuple(etys) => match json {
            J::Array(items) if items.len() == etys.len() => Ok(Value::List(
                items
                    .iter()
                    .zip(etys)
                    .map(|(i, t)| from_json(i, t))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            J::Array(_) => Err("wrong number of elements in tuple".to_string()),
            _ => Err("missing expected [".to_string()),
        },
        Type::Map(ety) => match json {
            J::Object(map) => Ok(Value::Object(
                map.iter()
                    .map(|(k, v)| from_json(v, ety).map(|v| (k.clone(), v)))
                    .collect::<Result<BTreeMap<_, _>, _>>()?,
            )),
            _ => Err("missing expected {".to_string()),
        },
        Type::Object {
            attributes,
            optional,
        } => match json {
            J::Object(map) => {
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    let aty = attributes.get(k).ok_or_else(|| {
                        format!("unsupported attribute {}", crate::types::go_quote(k))
                    })?;
                    out.insert(k.clone(), from_json(v, aty)?);
                }
                for name in attributes.keys() {
                    if !out.contains_key(name) {
                        if optional.contains(name) {
                            out.insert(name.clone(), Value::Null);
                        } else {
                            return Err(format!(
                                "missing expected attribute {}",
                                crate::types::go_quote(name)
                            ));
                        }
                    }
                }
                Ok(Value::Object(out))
            }
            _ => Err("missing expected {".to_string()),
        },
    }
}

fn plain(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::List(items.iter().map(plain).collect()),
        J::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn csv_splits_like_go() {
        assert_eq!(csv_fields("hi,there", ',').unwrap(), vec!["hi", "there"]);
        assert_eq!(csv_fields("\"a,b\",c", ',').unwrap(), vec!["a,b", "c"]);
        assert_eq!(csv_fields("", ',').unwrap(), vec![""]);
        assert!(csv_fields("\"hello,world", ',').is_err());
        assert!(csv_fields("a\"b", ',').is_err());
    }

    #[test]
    fn primitives_parse_like_strconv() {
        assert_eq!(
            convert_primitive("X", "5.1", &Type::Number).unwrap(),
            Value::Number(5.1)
        );
        assert_eq!(
            convert_primitive("X", "0", &Type::Bool).unwrap(),
            Value::Bool(false)
        );
        assert!(
            convert_primitive("FOO", "NaN", &Type::Number)
                .unwrap_err()
                .contains("failed to parse FOO as number")
        );
        assert!(
            convert_primitive("IS_FOO", "maybe", &Type::Bool)
                .unwrap_err()
                .contains("failed to parse IS_FOO as bool")
        );
    }
}
