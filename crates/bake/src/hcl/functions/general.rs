//! Booleans, equality, `coalesce`, cty's bytes functions and buildx's `homedir`.

use super::{Failure, Outcome, arg, bool_arg, string};
use crate::types::{Type, convert, unify, values_equal};
use crate::value::Value;

/// `not(val)`.
pub(super) fn not(args: &[Value]) -> Outcome {
    Ok(Value::Bool(!bool_arg(args, 0)?))
}

/// `and(a, b)`.
pub(super) fn and(args: &[Value]) -> Outcome {
    Ok(Value::Bool(bool_arg(args, 0)? && bool_arg(args, 1)?))
}

/// `or(a, b)`.
pub(super) fn or(args: &[Value]) -> Outcome {
    Ok(Value::Bool(bool_arg(args, 0)? || bool_arg(args, 1)?))
}

/// `equal(a, b)`: cty equality, which never converts (`equal(1, "1")` is false).
pub(super) fn equal(args: &[Value]) -> Outcome {
    Ok(Value::Bool(values_equal(arg(args, 0), arg(args, 1))))
}

/// `notequal(a, b)`.
pub(super) fn not_equal(args: &[Value]) -> Outcome {
    Ok(Value::Bool(!values_equal(arg(args, 0), arg(args, 1))))
}

/// `coalesce(vals...)`: the first argument that is not null (an empty string counts),
/// converted to the type all arguments unify to.
pub(super) fn coalesce(args: &[Value]) -> Outcome {
    let types: Vec<Type> = args.iter().map(Type::of).collect();
    let Some(unified) = unify(&types, true) else {
        return Err(Failure::call("all arguments must have the same type"));
    };
    let first = args
        .iter()
        .find(|v| !v.is_null())
        .ok_or_else(|| Failure::call("no non-null arguments"))?;
    convert(first, &unified).map_err(|e| Failure::call(e.message))
}

/// Why a value is not cty's bytes capsule (no value a bake file makes is one), as cty's
/// conversion words it.
pub(super) fn not_bytes(_value: &Value) -> String {
    // Whatever the value, as the measured buildx's cty words it (cty 1.17 adds ", but have
    // TYPE" for a primitive).
    "bytes required".to_string()
}

/// `byteslen(buf)`: never reached, the argument cannot be converted to bytes.
pub(super) fn bytes_len(args: &[Value]) -> Outcome {
    Err(Failure::arg(0, not_bytes(arg(args, 0))))
}

/// `bytesslice(buf, offset, length)`: as `byteslen`.
pub(super) fn bytes_slice(args: &[Value]) -> Outcome {
    Err(Failure::arg(0, not_bytes(arg(args, 0))))
}

/// `homedir()`: the user's home directory (`$HOME`, else the passwd entry, as Go's
/// `os.UserHomeDir` then `user.Current` find it).
pub(super) fn homedir(_args: &[Value]) -> Outcome {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Ok(string(home.to_string_lossy()));
    }
    if let Some(home) = passwd_home() {
        return Ok(string(home));
    }
    Ok(string("/"))
}

/// The current user's home directory from /etc/passwd.
fn passwd_home() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .and_then(|r| r.split_whitespace().next().map(str::to_string))
        })?;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 5 && fields[2] == uid).then(|| fields[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, fails, list, n, obj, ok, s, strs};
    use crate::value::Value;

    #[test]
    fn booleans_match_cty() {
        assert_eq!(ok("not", vec![b(true)]), b(false));
        assert_eq!(ok("and", vec![b(true), s("false")]), b(false));
        assert_eq!(ok("or", vec![b(false), b(true)]), b(true));
        assert_eq!(
            fails("or", vec![b(false), n(1.0)]),
            "Invalid value for \"b\" parameter: bool required."
        );
        assert_eq!(
            fails("not", vec![Value::Null]),
            "Invalid value for \"val\" parameter: argument must not be null."
        );
    }

    #[test]
    fn equality_matches_cty() {
        assert_eq!(ok("equal", vec![n(1.0), s("1")]), b(false));
        assert_eq!(ok("equal", vec![Value::Null, Value::Null]), b(true));
        assert_eq!(
            ok("equal", vec![list(vec![n(1.0)]), list(vec![n(1.0)])]),
            b(true)
        );
        assert_eq!(
            ok("equal", vec![obj(&[("a", n(1.0))]), obj(&[("a", n(1.0))])]),
            b(true)
        );
        assert_eq!(ok("equal", vec![Value::Null, n(1.0)]), b(false));
        assert_eq!(ok("notequal", vec![n(1.0), n(2.0)]), b(true));
    }

    #[test]
    fn coalesce_skips_only_nulls() {
        // buildx: coalesce("", "x") is "" — only nulls are skipped
        assert_eq!(ok("coalesce", vec![s(""), s("x")]), s(""));
        assert_eq!(ok("coalesce", vec![n(1.0), s("a")]), s("1"));
        assert_eq!(ok("coalesce", vec![Value::Null, n(2.0), s("a")]), s("2"));
        assert_eq!(
            ok("coalesce", vec![strs(&["a"]), list(vec![n(1.0), n(2.0)])]),
            strs(&["a"])
        );
        assert_eq!(
            ok(
                "coalesce",
                vec![obj(&[("a", n(1.0))]), obj(&[("b", s("x"))])]
            ),
            obj(&[("a", s("1"))])
        );
        assert_eq!(
            fails("coalesce", vec![]),
            "Call to function \"coalesce\" failed: all arguments must have the same type."
        );
        assert_eq!(
            fails("coalesce", vec![Value::Null]),
            "Call to function \"coalesce\" failed: no non-null arguments."
        );
        assert_eq!(
            fails("coalesce", vec![list(vec![n(1.0)]), s("a")]),
            "Call to function \"coalesce\" failed: all arguments must have the same type."
        );
        assert_eq!(
            fails("coalesce", vec![b(true), n(1.0)]),
            "Call to function \"coalesce\" failed: all arguments must have the same type."
        );
    }

    #[test]
    fn bytes_functions_reject_every_bake_value() {
        assert_eq!(
            fails("byteslen", vec![s("abc")]),
            "Invalid value for \"buf\" parameter: bytes required."
        );
        assert_eq!(
            fails("byteslen", vec![list(vec![n(1.0)])]),
            "Invalid value for \"buf\" parameter: bytes required."
        );
        assert_eq!(
            fails("byteslen", vec![Value::Null]),
            "Invalid value for \"buf\" parameter: argument must not be null."
        );
        assert_eq!(
            fails("bytesslice", vec![s("abc"), n(0.0), n(1.0)]),
            "Invalid value for \"buf\" parameter: bytes required."
        );
    }

    #[test]
    fn homedir_is_absolute() {
        let Value::String(home) = ok("homedir", vec![]) else {
            panic!("not a string")
        };
        assert!(home.starts_with('/'), "{home}");
    }
}
