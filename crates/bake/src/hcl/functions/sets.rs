//! Set functions: `sethaselement`, `setunion`, `setintersection`, `setsubtract`,
//! `setsymmetricdifference` and `setproduct`. Results are sets in cty's order.

use super::{Failure, Outcome, arg};
use crate::types::{Type, convert, make_set, unify, values_equal};
use crate::value::Value;

fn elements(value: &Value) -> &[Value] {
    match value {
        Value::Set(items) | Value::List(items) => items,
        _ => &[],
    }
}

/// `sethaselement(set, elem)`.
pub(super) fn has_element(args: &[Value]) -> Outcome {
    let element = arg(args, 1);
    Ok(Value::Bool(
        elements(arg(args, 0))
            .iter()
            .any(|e| values_equal(e, element)),
    ))
}

/// The element type the sets unify to (cty's `setOperationReturnType`).
fn result_element_type(args: &[Value]) -> Result<Type, Failure> {
    let mut etys = Vec::new();
    for value in args {
        let ety = match Type::of(value) {
            Type::Set(ety) => *ety,
            _ => Type::Any,
        };
        if elements(value).is_empty() && ety == Type::Any {
            continue;
        }
        etys.push(ety);
    }
    if etys.is_empty() {
        return Ok(Type::Any);
    }
    unify(&etys, true)
        .ok_or_else(|| Failure::call("given sets must all have compatible element types"))
}

/// Applies a set operation across all arguments, left to right.
fn set_operation(args: &[Value], operation: fn(Vec<Value>, &[Value]) -> Vec<Value>) -> Outcome {
    let ety = result_element_type(args)?;
    let target = Type::Set(Box::new(ety.clone()));
    let mut sets = Vec::with_capacity(args.len());
    for (i, value) in args.iter().enumerate() {
        let converted = convert(value, &target).map_err(|e| Failure::arg(i, e.message))?;
        sets.push(elements(&converted).to_vec());
    }
    let mut sets = sets.into_iter();
    let mut result = sets.next().unwrap_or_default();
    for other in sets {
        result = operation(result, &other);
    }
    Ok(make_set(result, &ety))
}

fn contains(items: &[Value], value: &Value) -> bool {
    items.iter().any(|item| values_equal(item, value))
}

/// `setunion(first_set, other_sets...)`.
pub(super) fn union(args: &[Value]) -> Outcome {
    set_operation(args, |mut a, b| {
        a.extend(b.iter().cloned());
        a
    })
}

/// `setintersection(first_set, other_sets...)`.
pub(super) fn intersection(args: &[Value]) -> Outcome {
    set_operation(args, |a, b| {
        a.into_iter().filter(|v| contains(b, v)).collect()
    })
}

/// `setsubtract(a, b)`.
pub(super) fn subtract(args: &[Value]) -> Outcome {
    set_operation(args, |a, b| {
        a.into_iter().filter(|v| !contains(b, v)).collect()
    })
}

/// `setsymmetricdifference(first_set, other_sets...)`.
pub(super) fn symmetric_difference(args: &[Value]) -> Outcome {
    set_operation(args, |a, b| {
        let mut out: Vec<Value> = a.iter().filter(|v| !contains(b, v)).cloned().collect();
        out.extend(b.iter().filter(|v| !contains(&a, v)).cloned());
        out
    })
}

/// `setproduct(sets...)`: every combination of one element from each argument, as a list
/// of tuples when all arguments are lists, else as a set.
pub(super) fn product(args: &[Value]) -> Outcome {
    if args.len() < 2 {
        return Err(Failure::call("at least two arguments are required"));
    }
    let mut etys = Vec::with_capacity(args.len());
    let mut all_lists = true;
    for (i, value) in args.iter().enumerate() {
        match value {
            Value::Set(_) => {
                all_lists = false;
                etys.push(match Type::of(value) {
                    Type::Set(ety) => *ety,
                    _ => Type::Any,
                });
            }
            Value::List(items) if items.is_empty() => etys.push(Type::Any),
            Value::List(items) => {
                let types: Vec<Type> = items.iter().map(Type::of).collect();
                let ety = unify(&types, true)
                    .ok_or_else(|| Failure::arg(i, "all elements must be of the same type"))?;
                etys.push(ety);
            }
            _ => return Err(Failure::arg(i, "a set or a list is required")),
        }
    }
    let mut columns: Vec<Vec<Value>> = Vec::with_capacity(args.len());
    for (value, ety) in args.iter().zip(&etys) {
        let column = elements(value)
            .iter()
            .map(|e| convert(e, ety).map_err(|err| Failure::call(err.message)))
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(column);
    }
    let mut rows: Vec<Vec<Value>> = vec![Vec::new()];
    for column in &columns {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                column.iter().map(move |e| {
                    let mut next = row.clone();
                    next.push(e.clone());
                    next
                })
            })
            .collect();
    }
    let tuples: Vec<Value> = rows.into_iter().map(Value::List).collect();
    if all_lists {
        Ok(Value::List(tuples))
    } else {
        Ok(make_set(tuples, &Type::Tuple(etys)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, fails, list, n, ok, s, strs};
    use crate::value::Value;

    fn set(items: &[&str]) -> Value {
        Value::Set(items.iter().map(|i| s(i)).collect())
    }

    #[test]
    fn set_operations_match_cty() {
        assert_eq!(ok("sethaselement", vec![strs(&["a"]), s("a")]), b(true));
        assert_eq!(ok("sethaselement", vec![strs(&["a"]), n(1.0)]), b(false));
        assert_eq!(
            ok("sethaselement", vec![list(vec![n(1.0)]), s("1")]),
            b(false)
        );
        assert_eq!(
            ok("setunion", vec![strs(&["a"]), strs(&["b", "a"])]),
            set(&["a", "b"])
        );
        assert_eq!(
            ok("setunion", vec![strs(&["a"]), list(vec![n(1.0)])]),
            set(&["1", "a"])
        );
        assert_eq!(
            ok("setunion", vec![list(vec![]), list(vec![n(1.0)])]),
            Value::Set(vec![n(1.0)])
        );
        assert_eq!(ok("setunion", vec![strs(&["b"])]), set(&["b"]));
        assert_eq!(
            ok(
                "setintersection",
                vec![strs(&["a", "b"]), strs(&["b", "c"])]
            ),
            set(&["b"])
        );
        assert_eq!(
            ok(
                "setintersection",
                vec![list(vec![n(1.0), n(2.0)]), list(vec![])]
            ),
            Value::Set(vec![])
        );
        assert_eq!(
            ok("setsubtract", vec![strs(&["a", "b"]), strs(&["b"])]),
            set(&["a"])
        );
        assert_eq!(
            ok(
                "setsymmetricdifference",
                vec![strs(&["a", "b"]), strs(&["b", "c"])]
            ),
            set(&["a", "c"])
        );
        assert_eq!(
            fails(
                "setunion",
                vec![list(vec![list(vec![n(1.0)])]), strs(&["a"])]
            ),
            "Call to function \"setunion\" failed: given sets must all have compatible element types."
        );
        assert_eq!(
            fails("setunion", vec![Value::Null, strs(&["a"])]),
            "Invalid value for \"first_set\" parameter: argument must not be null."
        );
        assert_eq!(
            fails("setunion", vec![s("a"), strs(&["a"])]),
            "Invalid value for \"first_set\" parameter: set of any single type required."
        );
    }

    #[test]
    fn setproduct_matches_cty() {
        assert_eq!(
            ok(
                "setproduct",
                vec![strs(&["a", "b"]), list(vec![n(1.0), n(2.0)])]
            ),
            list(vec![
                list(vec![s("a"), n(1.0)]),
                list(vec![s("a"), n(2.0)]),
                list(vec![s("b"), n(1.0)]),
                list(vec![s("b"), n(2.0)]),
            ])
        );
        assert_eq!(
            ok("setproduct", vec![list(vec![n(1.0), s("a")]), strs(&["x"])]),
            list(vec![list(vec![s("1"), s("x")]), list(vec![s("a"), s("x")])])
        );
        assert_eq!(
            ok("setproduct", vec![list(vec![]), strs(&["a"])]),
            list(vec![])
        );
        assert_eq!(
            ok("setproduct", vec![set(&["b", "a"]), strs(&["x"])]),
            Value::Set(vec![list(vec![s("a"), s("x")]), list(vec![s("b"), s("x")])])
        );
        assert_eq!(
            fails("setproduct", vec![strs(&["a"])]),
            "Call to function \"setproduct\" failed: at least two arguments are required."
        );
        assert_eq!(
            fails("setproduct", vec![s("a"), strs(&["a"])]),
            "Invalid value for \"sets\" parameter: a set or a list is required."
        );
        assert_eq!(
            fails(
                "setproduct",
                vec![list(vec![list(vec![n(1.0)]), s("a")]), strs(&["x"])]
            ),
            "Invalid value for \"sets\" parameter: all elements must be of the same type."
        );
    }
}
