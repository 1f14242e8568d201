//! Values of the bake language: what cty (the type system behind HCL and buildx's bake)
//! holds, reduced to what bake files can observe.

use std::collections::BTreeMap;

/// A value of the bake language.
///
/// cty keeps lists apart from tuples and maps apart from objects for type checking; bake's
/// results never show the difference, so each pair is one variant here. Sets are their own
/// variant because their order and uniqueness are observable.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// cty's null (of any type).
    #[default]
    Null,
    /// A bool.
    Bool(bool),
    /// A number. cty numbers are arbitrary-precision; every number a bake file meets fits an
    /// `f64` (integers exactly up to 2^53).
    Number(f64),
    /// A string (UTF-8, as cty's; cty normalises strings to NFC).
    String(String),
    /// A list or a tuple.
    List(Vec<Value>),
    /// A set: unique elements in cty's order (numbers ascending, strings lexically, ...).
    Set(Vec<Value>),
    /// A map or an object: keys in lexical order, as cty iterates them.
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// The cty type name of the value's kind, as HCL's messages name it (`string`,
    /// `number`, `bool`, `list`, `set`, `object`, `null`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Object(_) => "object",
        }
    }

    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A number as cty prints it when converting to a string: integers without a fraction,
/// others in the shortest form that reads back the same (`1`, `1.5`, `0.1`, `1e+21` is
/// written out in full as Go's `big.Float.Text('f', -1)` does).
pub fn number_to_string(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_cty_converts_them_to_strings() {
        assert_eq!(number_to_string(1.0), "1");
        assert_eq!(number_to_string(-3.0), "-3");
        assert_eq!(number_to_string(1.5), "1.5");
        assert_eq!(number_to_string(0.1), "0.1");
    }
}
