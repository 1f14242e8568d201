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

/// A number as cty prints it when converting to a string (Go's `big.Float.Text('f', -1)`):
/// integers without a fraction, others in the shortest form that reads back the same
/// (`1`, `1.5`, `0.1`; `1e21` is written out in full), negative zero as `-0`, infinities
/// as `+Inf` / `-Inf`.
pub fn number_to_string(n: f64) -> String {
    if n.is_infinite() {
        return if n > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if n == 0.0 && n.is_sign_negative() {
        return "-0".to_string();
    }
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// The result of `f64` arithmetic on decimal numbers as cty's 512-bit arithmetic has
/// it: when `n`'s shortest decimal form needs 16 or 17 significant digits but a 15-digit
/// decimal lies within 2 ULPs of it, that decimal (`0.1 + 0.2` is `0.3` in cty, not
/// `0.30000000000000004`); otherwise `n` itself. For the results of `+ - * /`, not for
/// every number: a genuine 17-digit result (`pow(2, 0.5)`) must keep its digits.
pub fn denoise(n: f64) -> f64 {
    if !n.is_finite() || n == 0.0 {
        return n;
    }
    let shortest = format!("{n:e}");
    let mantissa = shortest.split('e').next().unwrap_or("");
    let significant = mantissa.chars().filter(char::is_ascii_digit).count();
    if significant < 16 {
        return n;
    }
    let Ok(rounded) = format!("{n:.14e}").parse::<f64>() else {
        return n;
    };
    let ulp = (n.abs().next_up() - n.abs()).abs();
    if (rounded - n).abs() <= 2.0 * ulp {
        rounded
    } else {
        n
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
        assert_eq!(number_to_string(1e21), "1000000000000000000000");
        assert_eq!(number_to_string(0.0000001), "0.0000001");
        assert_eq!(number_to_string(f64::INFINITY), "+Inf");
        assert_eq!(number_to_string(-0.0), "-0");
        assert_eq!(number_to_string(2f64.sqrt()), "1.4142135623730951");
    }

    #[test]
    fn arithmetic_noise_is_taken_off() {
        // f64 arithmetic noise that cty's 512-bit numbers do not have
        assert_eq!(denoise(0.1 + 0.2), 0.3);
        assert_eq!(denoise(0.1 * 3.0), 0.3);
        assert_eq!(denoise(0.1 + 0.7), 0.8);
        // genuinely long numbers keep their digits
        assert_eq!(denoise(2f64.sqrt()), 2f64.sqrt());
        assert_eq!(denoise(2.0 / 3.0), 2.0 / 3.0);
        assert_eq!(denoise(0.1234567890123456), 0.1234567890123456);
    }
}
