//! Collection functions: cty's (`length`, `element`, `lookup`, `merge`, `flatten`,
//! `slice`, `concat`, `range`, …) and buildx's `indexof`.
//!
//! cty tells a map from an object and a list from a tuple; [`Value`] does not. Where cty
//! accepts one and refuses the other (`length` takes a map, not an object), a
//! [`Value::Object`] is taken as the one accepted, so that no bake file buildx accepts is
//! refused.

use std::collections::BTreeMap;

use super::{Failure, Outcome, arg, number_arg, string, string_arg, whole_number};
use crate::types::{Type, go_quote, values_equal};
use crate::value::{Value, denoise};

fn friendly(value: &Value) -> String {
    Type::of(value).friendly_name()
}

/// `hasindex(collection, key)`.
pub(super) fn has_index(args: &[Value]) -> Outcome {
    let key = arg(args, 1);
    match arg(args, 0) {
        Value::List(items) => Ok(Value::Bool(match key {
            Value::Number(n) => n.fract() == 0.0 && *n >= 0.0 && (*n as usize) < items.len(),
            _ => false,
        })),
        Value::Object(attributes) => Ok(Value::Bool(match key {
            Value::String(k) => attributes.contains_key(k),
            _ => false,
        })),
        _ => Err(Failure::call("collection must be a list, a map or a tuple")),
    }
}

/// `index(collection, key)`: the element at a list position or map key.
pub(super) fn index(args: &[Value]) -> Outcome {
    let key = arg(args, 1);
    match arg(args, 0) {
        Value::List(items) => {
            let Value::Number(n) = key else {
                return Err(Failure::call("key for tuple must be number"));
            };
            let i = whole_number(*n)
                .map_err(|m| Failure::call(format!("invalid key for tuple: {m}")))?;
            if i < 0 || i as usize >= items.len() {
                return Err(Failure::call(format!(
                    "key must be between 0 and {} inclusive",
                    items.len()
                )));
            }
            Ok(items[i as usize].clone())
        }
        Value::Object(attributes) => {
            let Value::String(k) = key else {
                return Err(Failure::call("key for map must be string"));
            };
            attributes
                .get(k)
                .cloned()
                .ok_or_else(|| Failure::call("invalid index"))
        }
        _ => Err(Failure::call("collection must be a list, a map or a tuple")),
    }
}

/// `length(collection)`: the number of elements (strings are not collections in cty).
pub(super) fn length(args: &[Value]) -> Outcome {
    match arg(args, 0) {
        Value::List(items) | Value::Set(items) => Ok(Value::Number(items.len() as f64)),
        Value::Object(attributes) => Ok(Value::Number(attributes.len() as f64)),
        _ => Err(Failure::call("collection must be a list, a map or a tuple")),
    }
}

/// `element(list, index)`: the element at `index` modulo the length (negative indexes
/// count from the end).
pub(super) fn element(args: &[Value]) -> Outcome {
    let Value::List(items) = arg(args, 0) else {
        return Err(Failure::call(format!(
            "cannot read elements from {}",
            friendly(arg(args, 0))
        )));
    };
    let index = whole_number(number_arg(args, 1)?)
        .map_err(|m| Failure::call(format!("invalid index: {m}")))?;
    if items.is_empty() {
        return Err(Failure::call(
            "cannot use element function with an empty list",
        ));
    }
    let len = items.len() as i64;
    Ok(items[index.rem_euclid(len) as usize].clone())
}

/// `coalescelist(vals...)`: the first list that is not empty.
pub(super) fn coalesce_list(args: &[Value]) -> Outcome {
    if args.is_empty() {
        return Err(Failure::call("at least one argument is required"));
    }
    if args.iter().any(|a| !matches!(a, Value::List(_))) {
        return Err(Failure::call(
            "coalescelist arguments must be lists or tuples",
        ));
    }
    args.iter()
        .find(|a| matches!(a, Value::List(items) if !items.is_empty()))
        .cloned()
        .ok_or_else(|| Failure::call("no non-null arguments"))
}

/// `compact(list)`: the list without empty and null strings.
pub(super) fn compact(args: &[Value]) -> Outcome {
    let Value::List(items) = arg(args, 0) else {
        return Err(Failure::call("list of string required"));
    };
    Ok(Value::List(
        items
            .iter()
            .filter(|v| matches!(v, Value::String(s) if !s.is_empty()))
            .cloned()
            .collect(),
    ))
}

/// `contains(list, value)`: whether an element equals `value` (no conversion).
pub(super) fn contains(args: &[Value]) -> Outcome {
    let (Value::List(items) | Value::Set(items)) = arg(args, 0) else {
        return Err(Failure::call("argument must be list, tuple, or set"));
    };
    Ok(Value::Bool(
        items.iter().any(|item| values_equal(arg(args, 1), item)),
    ))
}

/// `distinct(list)`: the elements without repeats, first occurrences kept in order.
pub(super) fn distinct(args: &[Value]) -> Outcome {
    let Value::List(items) = arg(args, 0) else {
        return Err(Failure::call("list required"));
    };
    let mut unique: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !unique.iter().any(|u| values_equal(u, item)) {
            unique.push(item.clone());
        }
    }
    Ok(Value::List(unique))
}

/// `chunklist(list, size)`: the list in chunks of `size` (0: one chunk).
pub(super) fn chunklist(args: &[Value]) -> Outcome {
    let Value::List(items) = arg(args, 0) else {
        return Err(Failure::call("list required"));
    };
    let size = whole_number(number_arg(args, 1)?)
        .map_err(|m| Failure::call(format!("invalid size: {m}")))?;
    if size < 0 {
        return Err(Failure::call("the size argument must be positive"));
    }
    if items.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    if size == 0 {
        return Ok(Value::List(vec![Value::List(items.clone())]));
    }
    Ok(Value::List(
        items
            .chunks(size as usize)
            .map(|c| Value::List(c.to_vec()))
            .collect(),
    ))
}

fn flatten_into(items: &[Value], out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::List(inner) | Value::Set(inner) => flatten_into(inner, out),
            other => out.push(other.clone()),
        }
    }
}

/// `flatten(list)`: nested lists, sets and tuples replaced by their elements.
pub(super) fn flatten(args: &[Value]) -> Outcome {
    let (Value::List(items) | Value::Set(items)) = arg(args, 0) else {
        return Err(Failure::call("can only flatten lists, sets and tuples"));
    };
    let mut out = Vec::new();
    flatten_into(items, &mut out);
    Ok(Value::List(out))
}

/// `keys(inputMap)`: the keys in lexical order.
pub(super) fn keys(args: &[Value]) -> Outcome {
    let Value::Object(attributes) = arg(args, 0) else {
        return Err(Failure::arg(0, "must have map or object type"));
    };
    Ok(Value::List(attributes.keys().map(string).collect()))
}

/// `values(mapping)`: the values in key order.
pub(super) fn values(args: &[Value]) -> Outcome {
    let Value::Object(attributes) = arg(args, 0) else {
        return Err(Failure::call(
            "values() requires a map as the first argument",
        ));
    };
    Ok(Value::List(attributes.values().cloned().collect()))
}

/// `lookup(inputMap, key, default)`: the value at `key`, or `default`.
pub(super) fn lookup(args: &[Value]) -> Outcome {
    let Value::Object(attributes) = arg(args, 0) else {
        return Err(Failure::arg(
            0,
            "lookup() requires a map as the first argument",
        ));
    };
    let key = string_arg(args, 1)?;
    Ok(attributes
        .get(key)
        .cloned()
        .unwrap_or_else(|| arg(args, 2).clone()))
}

/// `merge(maps...)`: later keys win; nulls are skipped.
pub(super) fn merge(args: &[Value]) -> Outcome {
    let mut merged = BTreeMap::new();
    // cty checks the arguments' types in order but stops at a null (it has no type);
    // a wrong argument after it then fails while being iterated
    for value in args {
        match value {
            Value::Null => break,
            Value::Object(_) => {}
            other => {
                return Err(Failure::call(format!(
                    "arguments must be maps or objects, got {}",
                    go_quote(&friendly(other))
                )));
            }
        }
    }
    for value in args {
        match value {
            Value::Null => {}
            Value::Object(attributes) => merged.extend(attributes.clone()),
            Value::List(items) | Value::Set(items) if !items.is_empty() => {
                return Err(Failure::call(
                    "panic in function implementation: not a string",
                ));
            }
            Value::List(_) | Value::Set(_) => {}
            _ => {
                return Err(Failure::call(
                    "panic in function implementation: attempt to iterate on non-collection, non-tuple type",
                ));
            }
        }
    }
    Ok(Value::Object(merged))
}

/// `reverselist(list)`.
pub(super) fn reverse_list(args: &[Value]) -> Outcome {
    match arg(args, 0) {
        Value::List(items) | Value::Set(items) => {
            Ok(Value::List(items.iter().rev().cloned().collect()))
        }
        other => Err(Failure::arg(
            0,
            format!(
                "can only reverse list or tuple values, not {}",
                friendly(other)
            ),
        )),
    }
}

/// `slice(list, start_index, end_index)`: the elements from start up to (not including) end.
pub(super) fn slice(args: &[Value]) -> Outcome {
    let items = match arg(args, 0) {
        Value::List(items) => items,
        Value::Set(_) => {
            return Err(Failure::arg(
                0,
                "cannot slice a set, because its elements do not have indices; explicitly convert to a list if the ordering of the result is not important",
            ));
        }
        _ => return Err(Failure::arg(0, "must be a list or tuple value")),
    };
    let start = whole_number(number_arg(args, 1)?)
        .map_err(|m| Failure::arg(1, format!("invalid start index: {m}")))?;
    if start < 0 {
        return Err(Failure::arg(1, "start index must not be less than zero"));
    }
    if start as usize > items.len() {
        return Err(Failure::arg(
            1,
            "start index must not be greater than the length of the list",
        ));
    }
    let end = whole_number(number_arg(args, 2)?)
        .map_err(|m| Failure::arg(2, format!("invalid end index: {m}")))?;
    if end < 0 {
        return Err(Failure::arg(2, "end index must not be less than zero"));
    }
    if end as usize > items.len() {
        return Err(Failure::arg(
            2,
            "end index must not be greater than the length of the list",
        ));
    }
    if start > end {
        return Err(Failure::arg(
            1,
            "start index must not be greater than end index",
        ));
    }
    Ok(Value::List(items[start as usize..end as usize].to_vec()))
}

/// `zipmap(keys, values)`: a map from the keys to the values at the same positions.
pub(super) fn zipmap(args: &[Value]) -> Outcome {
    let Value::List(keys) = arg(args, 0) else {
        return Err(Failure::call("list of string required"));
    };
    let Value::List(values) = arg(args, 1) else {
        return Err(Failure::call(
            "values argument must be a list or tuple value",
        ));
    };
    if keys.len() != values.len() {
        return Err(Failure::call(format!(
            "number of keys ({}) does not match number of values ({})",
            keys.len(),
            values.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        let Value::String(key) = key else {
            return Err(Failure::call(format!(
                "keys list has null value at index {i}"
            )));
        };
        out.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(out))
}

/// `concat(seqs...)`: the lists one after another.
pub(super) fn concat(args: &[Value]) -> Outcome {
    if args.is_empty() {
        return Err(Failure::call("at least one argument is required"));
    }
    let mut out = Vec::new();
    for (i, value) in args.iter().enumerate() {
        match value {
            Value::List(items) => out.extend(items.iter().cloned()),
            other => {
                return Err(Failure::arg(
                    i,
                    format!(
                        "all arguments must be lists or tuples; got {}",
                        friendly(other)
                    ),
                ));
            }
        }
    }
    Ok(Value::List(out))
}

/// `range(params...)`: `range(end)`, `range(start, end)` or `range(start, end, step)`.
pub(super) fn range(args: &[Value]) -> Outcome {
    let numbers: Vec<f64> = (0..args.len())
        .map(|i| number_arg(args, i))
        .collect::<Result<_, _>>()?;
    let (start, end, step) = match numbers.as_slice() {
        [end] => (0.0, *end, if *end < 0.0 { -1.0 } else { 1.0 }),
        [start, end] => (*start, *end, if end < start { -1.0 } else { 1.0 }),
        [start, end, step] => (*start, *end, *step),
        _ => return Err(Failure::call("must have one, two, or three arguments")),
    };
    // cty's zero-step check compares value identity and never fires: a zero step runs
    // into the 1024-value limit instead
    let down = step < 0.0;
    if down && end > start {
        return Err(Failure::arg(
            1,
            "end must be less than start when step is negative",
        ));
    }
    if !down && end < start {
        return Err(Failure::arg(
            1,
            "end must be greater than start when step is positive",
        ));
    }
    // cty adds the step in 512-bit precision; `start + i·step`, with f64 noise taken off,
    // comes closest (`range(0, 1, 0.1)` has ten elements, not eleven)
    let mut out = Vec::new();
    let mut current = start;
    while (down && current > end) || (!down && current < end) {
        if out.len() >= 1024 {
            return Err(Failure::call(
                "more than 1024 values were generated; either decrease the difference between start and end or use a smaller step",
            ));
        }
        out.push(Value::Number(current));
        current = denoise(start + out.len() as f64 * step);
    }
    Ok(Value::List(out))
}

/// `indexof(list, value)` (buildx): the position of the first element equal to `value`.
pub(super) fn index_of(args: &[Value]) -> Outcome {
    let Value::List(items) = arg(args, 0) else {
        return Err(Failure::call("argument must be a list or tuple"));
    };
    if items.is_empty() {
        return Err(Failure::call("cannot search an empty list"));
    }
    items
        .iter()
        .position(|item| values_equal(item, arg(args, 1)))
        .map(|i| Value::Number(i as f64))
        .ok_or_else(|| Failure::call("item not found"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, fails, list, n, obj, ok, s, strs};
    use crate::value::Value;

    fn nums(items: &[f64]) -> Value {
        Value::List(items.iter().map(|i| n(*i)).collect())
    }
    fn call_err(name: &str, message: &str) -> String {
        format!("Call to function \"{name}\" failed: {message}.")
    }

    #[test]
    fn indexing_matches_cty() {
        assert_eq!(ok("hasindex", vec![nums(&[1.0, 2.0]), n(1.0)]), b(true));
        assert_eq!(ok("hasindex", vec![nums(&[1.0, 2.0]), n(5.0)]), b(false));
        assert_eq!(ok("hasindex", vec![nums(&[1.0, 2.0]), s("1")]), b(false));
        assert_eq!(ok("hasindex", vec![nums(&[1.0, 2.0]), n(-1.0)]), b(false));
        assert_eq!(ok("hasindex", vec![obj(&[("a", n(1.0))]), s("a")]), b(true));
        assert_eq!(
            fails("hasindex", vec![s("abc"), n(1.0)]),
            call_err("hasindex", "collection must be a list, a map or a tuple")
        );
        assert_eq!(ok("index", vec![nums(&[1.0, 2.0]), n(1.0)]), n(2.0));
        assert_eq!(
            fails("index", vec![nums(&[1.0, 2.0]), n(5.0)]),
            call_err("index", "key must be between 0 and 2 inclusive")
        );
        assert_eq!(
            fails("index", vec![nums(&[1.0, 2.0]), s("1")]),
            call_err("index", "key for tuple must be number")
        );
        assert_eq!(
            fails("index", vec![nums(&[1.0, 2.0]), n(1.5)]),
            call_err(
                "index",
                "invalid key for tuple: value must be a whole number, between -9223372036854775808 and 9223372036854775807"
            )
        );
        assert_eq!(ok("index", vec![obj(&[("a", n(1.0))]), s("a")]), n(1.0));
        assert_eq!(
            fails("index", vec![obj(&[("a", n(1.0))]), s("b")]),
            call_err("index", "invalid index")
        );
    }

    #[test]
    fn length_and_element_match_cty() {
        assert_eq!(ok("length", vec![nums(&[1.0, 2.0])]), n(2.0));
        assert_eq!(ok("length", vec![Value::Set(vec![s("a")])]), n(1.0));
        assert_eq!(ok("length", vec![obj(&[("a", n(1.0))])]), n(1.0));
        assert_eq!(
            fails("length", vec![s("héllo")]),
            call_err("length", "collection must be a list, a map or a tuple")
        );
        assert_eq!(
            fails("length", vec![Value::Null]),
            "Invalid value for \"collection\" parameter: argument must not be null."
        );
        assert_eq!(ok("element", vec![nums(&[1.0, 2.0, 3.0]), n(4.0)]), n(2.0));
        assert_eq!(ok("element", vec![nums(&[1.0, 2.0, 3.0]), n(-1.0)]), n(3.0));
        assert_eq!(
            fails("element", vec![nums(&[]), n(0.0)]),
            call_err("element", "cannot use element function with an empty list")
        );
        assert_eq!(
            fails("element", vec![s("abc"), n(0.0)]),
            call_err("element", "cannot read elements from string")
        );
        assert_eq!(
            fails("element", vec![obj(&[]), n(0.0)]),
            call_err("element", "cannot read elements from object")
        );
        assert_eq!(
            fails("element", vec![nums(&[1.0]), n(1.5)]),
            call_err(
                "element",
                "invalid index: value must be a whole number, between -9223372036854775808 and 9223372036854775807"
            )
        );
    }

    #[test]
    fn list_functions_match_cty() {
        assert_eq!(
            ok("coalescelist", vec![nums(&[]), nums(&[1.0])]),
            nums(&[1.0])
        );
        assert_eq!(
            ok("coalescelist", vec![nums(&[1.0]), strs(&["a"])]),
            nums(&[1.0])
        );
        assert_eq!(
            fails("coalescelist", vec![nums(&[]), nums(&[])]),
            call_err("coalescelist", "no non-null arguments")
        );
        assert_eq!(
            fails("coalescelist", vec![]),
            call_err("coalescelist", "at least one argument is required")
        );
        assert_eq!(
            fails("coalescelist", vec![Value::Null, strs(&["a"])]),
            call_err(
                "coalescelist",
                "coalescelist arguments must be lists or tuples"
            )
        );
        assert_eq!(
            ok(
                "compact",
                vec![list(vec![s("a"), s(""), Value::Null, s("b")])]
            ),
            strs(&["a", "b"])
        );
        assert_eq!(ok("compact", vec![list(vec![n(1.0), s("")])]), strs(&["1"]));
        assert_eq!(ok("contains", vec![strs(&["a", "b"]), s("a")]), b(true));
        assert_eq!(ok("contains", vec![nums(&[1.0]), s("1")]), b(false));
        assert_eq!(ok("contains", vec![nums(&[]), n(1.0)]), b(false));
        assert_eq!(
            ok("contains", vec![list(vec![nums(&[1.0])]), nums(&[1.0])]),
            b(true)
        );
        assert_eq!(
            fails("contains", vec![s("abc"), s("a")]),
            call_err("contains", "argument must be list, tuple, or set")
        );
        assert_eq!(
            ok("distinct", vec![list(vec![n(1.0), n(2.0), n(1.0), s("1")])]),
            strs(&["1", "2"])
        );
        assert_eq!(
            ok("distinct", vec![strs(&["a", "b", "a"])]),
            strs(&["a", "b"])
        );
        assert_eq!(
            ok(
                "distinct",
                vec![list(vec![nums(&[1.0]), nums(&[1.0]), nums(&[2.0])])]
            ),
            list(vec![nums(&[1.0]), nums(&[2.0])])
        );
        assert_eq!(
            ok("chunklist", vec![nums(&[1.0, 2.0, 3.0, 4.0, 5.0]), n(2.0)]),
            list(vec![nums(&[1.0, 2.0]), nums(&[3.0, 4.0]), nums(&[5.0])])
        );
        assert_eq!(
            ok("chunklist", vec![nums(&[1.0, 2.0, 3.0]), n(0.0)]),
            list(vec![nums(&[1.0, 2.0, 3.0])])
        );
        assert_eq!(ok("chunklist", vec![nums(&[]), n(2.0)]), list(vec![]));
        assert_eq!(
            fails("chunklist", vec![nums(&[1.0]), n(-1.0)]),
            call_err("chunklist", "the size argument must be positive")
        );
        assert_eq!(
            ok(
                "flatten",
                vec![list(vec![
                    list(vec![n(1.0), list(vec![n(2.0), list(vec![n(3.0)])])]),
                    n(4.0),
                    list(vec![])
                ])]
            ),
            nums(&[1.0, 2.0, 3.0, 4.0])
        );
        assert_eq!(
            ok(
                "flatten",
                vec![list(vec![Value::Null, list(vec![Value::Null])])]
            ),
            list(vec![Value::Null, Value::Null])
        );
        assert_eq!(
            fails("flatten", vec![s("a")]),
            call_err("flatten", "can only flatten lists, sets and tuples")
        );
        assert_eq!(
            ok("reverselist", vec![nums(&[1.0, 2.0, 3.0])]),
            nums(&[3.0, 2.0, 1.0])
        );
        assert_eq!(
            fails("reverselist", vec![s("abc")]),
            "Invalid value for \"list\" parameter: can only reverse list or tuple values, not string."
        );
        assert_eq!(
            ok("concat", vec![nums(&[1.0]), strs(&["a"]), list(vec![])]),
            list(vec![n(1.0), s("a")])
        );
        assert_eq!(
            fails("concat", vec![]),
            call_err("concat", "at least one argument is required")
        );
        assert_eq!(
            fails("concat", vec![nums(&[1.0]), s("a")]),
            "Invalid value for \"seqs\" parameter: all arguments must be lists or tuples; got string."
        );
    }

    #[test]
    fn slice_checks_bounds_as_cty_does() {
        let l = || nums(&[1.0, 2.0, 3.0]);
        assert_eq!(
            ok("slice", vec![nums(&[1.0, 2.0, 3.0, 4.0]), n(1.0), n(3.0)]),
            nums(&[2.0, 3.0])
        );
        assert_eq!(ok("slice", vec![l(), n(3.0), n(3.0)]), nums(&[]));
        let param = |p: &str, m: &str| format!("Invalid value for \"{p}\" parameter: {m}.");
        assert_eq!(
            fails("slice", vec![l(), n(2.0), n(1.0)]),
            param(
                "start_index",
                "start index must not be greater than end index"
            )
        );
        assert_eq!(
            fails("slice", vec![l(), n(-1.0), n(1.0)]),
            param("start_index", "start index must not be less than zero")
        );
        assert_eq!(
            fails("slice", vec![l(), n(0.0), n(4.0)]),
            param(
                "end_index",
                "end index must not be greater than the length of the list"
            )
        );
        assert_eq!(
            fails("slice", vec![l(), n(4.0), n(4.0)]),
            param(
                "start_index",
                "start index must not be greater than the length of the list"
            )
        );
        assert_eq!(
            fails("slice", vec![s("abc"), n(0.0), n(1.0)]),
            param("list", "must be a list or tuple value")
        );
        assert!(
            fails("slice", vec![Value::Set(vec![n(1.0)]), n(0.0), n(1.0)])
                .contains("cannot slice a set")
        );
    }

    #[test]
    fn map_functions_match_cty() {
        let m = || obj(&[("b", n(1.0)), ("a", n(2.0))]);
        assert_eq!(ok("keys", vec![m()]), strs(&["a", "b"]));
        assert_eq!(ok("keys", vec![obj(&[])]), strs(&[]));
        assert_eq!(
            fails("keys", vec![nums(&[1.0])]),
            "Invalid value for \"inputMap\" parameter: must have map or object type."
        );
        assert_eq!(ok("values", vec![m()]), nums(&[2.0, 1.0]));
        assert_eq!(
            fails("values", vec![nums(&[1.0])]),
            call_err("values", "values() requires a map as the first argument")
        );
        assert_eq!(
            ok("lookup", vec![obj(&[("a", n(1.0))]), s("a"), n(2.0)]),
            n(1.0)
        );
        assert_eq!(
            ok("lookup", vec![obj(&[("a", n(1.0))]), s("b"), n(2.0)]),
            n(2.0)
        );
        assert_eq!(
            fails("lookup", vec![obj(&[("a", n(1.0))]), s("b")]),
            "Function \"lookup\" expects 3 argument(s). Missing value for \"default\"."
        );
        assert_eq!(
            fails("lookup", vec![nums(&[1.0]), s("a"), n(2.0)]),
            "Invalid value for \"inputMap\" parameter: lookup() requires a map as the first argument."
        );
        assert_eq!(
            fails("lookup", vec![obj(&[]), s("b"), Value::Null]),
            "Invalid value for \"default\" parameter: argument must not be null."
        );
        assert_eq!(
            ok(
                "merge",
                vec![
                    obj(&[("a", n(1.0))]),
                    obj(&[("b", n(2.0))]),
                    obj(&[("a", n(3.0))])
                ]
            ),
            obj(&[("a", n(3.0)), ("b", n(2.0))])
        );
        assert_eq!(ok("merge", vec![]), obj(&[]));
        assert_eq!(
            ok("merge", vec![Value::Null, obj(&[("a", n(1.0))])]),
            obj(&[("a", n(1.0))])
        );
        assert_eq!(
            ok(
                "merge",
                vec![
                    obj(&[("a", obj(&[("x", n(1.0))]))]),
                    obj(&[("a", obj(&[("y", n(2.0))]))])
                ]
            ),
            obj(&[("a", obj(&[("y", n(2.0))]))])
        );
        assert_eq!(
            fails("merge", vec![obj(&[]), nums(&[1.0])]),
            call_err("merge", "arguments must be maps or objects, got \"tuple\"")
        );
        assert_eq!(
            ok("zipmap", vec![strs(&["a", "b"]), nums(&[1.0, 2.0])]),
            obj(&[("a", n(1.0)), ("b", n(2.0))])
        );
        assert_eq!(
            ok("zipmap", vec![strs(&["a", "a"]), nums(&[1.0, 2.0])]),
            obj(&[("a", n(2.0))])
        );
        assert_eq!(
            fails("zipmap", vec![strs(&["a"]), nums(&[1.0, 2.0])]),
            call_err(
                "zipmap",
                "number of keys (1) does not match number of values (2)"
            )
        );
        assert_eq!(
            fails(
                "zipmap",
                vec![list(vec![s("a"), Value::Null]), nums(&[1.0, 2.0])]
            ),
            call_err("zipmap", "keys list has null value at index 1")
        );
        assert_eq!(
            fails("zipmap", vec![strs(&["a"]), s("x")]),
            call_err("zipmap", "values argument must be a list or tuple value")
        );
    }

    #[test]
    fn range_matches_cty() {
        assert_eq!(ok("range", vec![n(3.0)]), nums(&[0.0, 1.0, 2.0]));
        assert_eq!(ok("range", vec![n(1.0), n(4.0)]), nums(&[1.0, 2.0, 3.0]));
        assert_eq!(ok("range", vec![n(4.0), n(1.0)]), nums(&[4.0, 3.0, 2.0]));
        assert_eq!(
            ok("range", vec![n(0.0), n(1.0), n(0.25)]),
            nums(&[0.0, 0.25, 0.5, 0.75])
        );
        assert_eq!(ok("range", vec![n(-3.0)]), nums(&[0.0, -1.0, -2.0]));
        assert_eq!(ok("range", vec![n(0.0), n(0.0)]), nums(&[]));
        assert_eq!(ok("range", vec![n(1.5)]), nums(&[0.0, 1.0]));
        let Value::List(tenths) = ok("range", vec![n(0.0), n(1.0), n(0.1)]) else {
            panic!("not a list")
        };
        assert_eq!(tenths.len(), 10);
        assert_eq!(tenths[3], n(0.3));
        assert_eq!(
            ok("range", vec![n(0.0), n(0.3), n(0.1)]),
            nums(&[0.0, 0.1, 0.2])
        );
        let param = |m: &str| format!("Invalid value for \"params\" parameter: {m}.");
        assert_eq!(
            fails("range", vec![n(1.0), n(4.0), n(-1.0)]),
            param("end must be less than start when step is negative")
        );
        assert_eq!(
            fails("range", vec![n(4.0), n(1.0), n(1.0)]),
            param("end must be greater than start when step is positive")
        );
        assert!(
            fails("range", vec![n(0.0), n(2000.0)])
                .contains("more than 1024 values were generated")
        );
        assert!(
            fails("range", vec![n(0.0), n(1.0), n(0.0)])
                .contains("more than 1024 values were generated")
        );
        assert_eq!(
            fails("range", vec![]),
            call_err("range", "must have one, two, or three arguments")
        );
    }

    // buildx's TestIndexOf
    #[test]
    fn indexof_matches_buildx() {
        let input = || list(vec![s("one"), n(2.0), n(3.0), s("four")]);
        assert_eq!(ok("indexof", vec![input(), s("one")]), n(0.0));
        assert_eq!(ok("indexof", vec![input(), s("four")]), n(3.0));
        assert_eq!(
            fails("indexof", vec![input(), s("3")]),
            call_err("indexof", "item not found")
        );
        assert_eq!(
            fails("indexof", vec![list(vec![]), s("c")]),
            call_err("indexof", "cannot search an empty list")
        );
        assert_eq!(
            fails("indexof", vec![s("abc"), s("c")]),
            call_err("indexof", "argument must be a list or tuple")
        );
    }
}
