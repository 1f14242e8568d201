//! Type constraints of the bake language (`string`, `list(string)`, `object({a=number})`,
//! `any`), as variable `type`s and the `convert` function take them, and cty's conversion of
//! a value to one.
//!
//! [`Value`] keeps no type, so a value's type is implied from its shape ([`Type::of`]): a
//! list is a tuple of its elements' types, a map an object, a null of any type. Conversion
//! then follows cty's `convert` package: which conversions exist between two types (safe
//! ones, and the unsafe ones HCL also allows: string to number or bool, list to set, map to
//! object), how element types unify, and the words of its errors.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::value::{Value, number_to_string};

/// A cty type constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `any`: no constraint (cty's DynamicPseudoType).
    Any,
    /// `string`.
    String,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `list(T)`.
    List(Box<Type>),
    /// `set(T)`.
    Set(Box<Type>),
    /// `map(T)`.
    Map(Box<Type>),
    /// `tuple([T, …])`.
    Tuple(Vec<Type>),
    /// `object({name = T, …})`; an attribute named in `optional` may be missing
    /// (`optional(T)` in the type expression).
    Object {
        /// The attributes and their types.
        attributes: BTreeMap<String, Type>,
        /// The attributes declared `optional(…)`.
        optional: Vec<String>,
    },
}

impl Type {
    /// An object type without optional attributes.
    pub fn object(attributes: BTreeMap<String, Type>) -> Type {
        Type::Object {
            attributes,
            optional: Vec::new(),
        }
    }

    /// The type cty gives a value of this shape: a list is a tuple of its elements' types,
    /// a map an object, a set a set of its elements' unified type, a null `any` (a null
    /// carries no type here).
    pub fn of(value: &Value) -> Type {
        match value {
            Value::Null => Type::Any,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => Type::Tuple(items.iter().map(Type::of).collect()),
            Value::Set(items) => {
                let types: Vec<Type> = items.iter().map(Type::of).collect();
                Type::Set(Box::new(unify(&types, true).unwrap_or(Type::Any)))
            }
            Value::Object(attributes) => Type::object(
                attributes
                    .iter()
                    .map(|(name, value)| (name.clone(), Type::of(value)))
                    .collect(),
            ),
        }
    }

    /// The type as cty names it in messages (`string`, `list of number`, `object`,
    /// `dynamic` for `any`).
    pub fn friendly_name(&self) -> String {
        self.name(false)
    }

    /// The type as cty names it when it is a constraint a value must meet: as
    /// [`Type::friendly_name`], but `any type` for `any` and `list of any single type`
    /// for `list(any)`.
    pub fn friendly_name_for_constraint(&self) -> String {
        self.name(true)
    }

    fn name(&self, constraint: bool) -> String {
        let element = |ety: &Type| {
            if constraint && *ety == Type::Any {
                "any single type".to_string()
            } else {
                ety.name(constraint)
            }
        };
        match self {
            Type::Any if constraint => "any type".to_string(),
            Type::Any => "dynamic".to_string(),
            Type::String => "string".to_string(),
            Type::Number => "number".to_string(),
            Type::Bool => "bool".to_string(),
            Type::List(ety) => format!("list of {}", element(ety)),
            Type::Set(ety) => format!("set of {}", element(ety)),
            Type::Map(ety) => format!("map of {}", element(ety)),
            Type::Tuple(_) => "tuple".to_string(),
            Type::Object { .. } => "object".to_string(),
        }
    }

    /// Whether this is `string`, `number` or `bool`.
    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::String | Type::Number | Type::Bool)
    }

    /// Whether this is a list, set or map type.
    pub fn is_collection(&self) -> bool {
        matches!(self, Type::List(_) | Type::Set(_) | Type::Map(_))
    }

    /// The element type of a list, set or map type.
    pub fn element_type(&self) -> Option<&Type> {
        match self {
            Type::List(ety) | Type::Set(ety) | Type::Map(ety) => Some(ety),
            _ => None,
        }
    }

    /// Whether `any` appears anywhere in the type.
    pub fn has_dynamic_types(&self) -> bool {
        match self {
            Type::Any => true,
            Type::String | Type::Number | Type::Bool => false,
            Type::List(ety) | Type::Set(ety) | Type::Map(ety) => ety.has_dynamic_types(),
            Type::Tuple(etys) => etys.iter().any(Type::has_dynamic_types),
            Type::Object { attributes, .. } => attributes.values().any(Type::has_dynamic_types),
        }
    }

    /// The same type with every object's `optional` markers dropped (the type a converted
    /// value has).
    pub fn without_optional_attributes(&self) -> Type {
        match self {
            Type::List(ety) => Type::List(Box::new(ety.without_optional_attributes())),
            Type::Set(ety) => Type::Set(Box::new(ety.without_optional_attributes())),
            Type::Map(ety) => Type::Map(Box::new(ety.without_optional_attributes())),
            Type::Tuple(etys) => {
                Type::Tuple(etys.iter().map(Type::without_optional_attributes).collect())
            }
            Type::Object { attributes, .. } => Type::object(
                attributes
                    .iter()
                    .map(|(name, aty)| (name.clone(), aty.without_optional_attributes()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Whether the attribute `name` of this object type is optional.
    fn attribute_optional(&self, name: &str) -> bool {
        matches!(self, Type::Object { optional, .. } if optional.iter().any(|o| o == name))
    }

    /// The type with every object's optional list sorted and deduplicated, so that
    /// derived equality compares types as cty does.
    fn normalized(&self) -> Type {
        match self {
            Type::List(ety) => Type::List(Box::new(ety.normalized())),
            Type::Set(ety) => Type::Set(Box::new(ety.normalized())),
            Type::Map(ety) => Type::Map(Box::new(ety.normalized())),
            Type::Tuple(etys) => Type::Tuple(etys.iter().map(Type::normalized).collect()),
            Type::Object {
                attributes,
                optional,
            } => {
                let mut optional: Vec<String> = optional
                    .iter()
                    .filter(|name| attributes.contains_key(*name))
                    .cloned()
                    .collect();
                optional.sort();
                optional.dedup();
                Type::Object {
                    attributes: attributes
                        .iter()
                        .map(|(n, t)| (n.clone(), t.normalized()))
                        .collect(),
                    optional,
                }
            }
            other => other.clone(),
        }
    }
}

/// One step of the path to the part of a value a conversion failed on.
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    /// An element of a list, set or tuple, by position.
    Index(usize),
    /// An element of a map, by key.
    Key(String),
    /// An attribute of an object.
    Attribute(String),
}

/// A value could not be converted to a type; `message` is worded as cty words it
/// (`a number is required`, `attribute "x" is required`, …) and is all HCL prints.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConversionError {
    /// Where in the value the conversion failed (empty: the value itself).
    pub path: Vec<PathStep>,
    /// What is wrong, as cty says it.
    pub message: String,
}

impl ConversionError {
    fn at(path: &[PathStep], message: impl Into<String>) -> Self {
        ConversionError {
            path: path.to_vec(),
            message: message.into(),
        }
    }
}

/// Converts `value` to type `ty` as cty's `convert.Convert` does (safe and unsafe
/// conversions: number and bool to string, numeric strings to number, `"true"`/`"false"`/
/// `"1"`/`"0"` to bool, tuples to lists and sets, objects to maps and objects, lists to sets
/// deduplicated and sorted). Nulls stay null; missing optional attributes become null.
pub fn convert(value: &Value, ty: &Type) -> Result<Value, ConversionError> {
    let want = ty.normalized();
    let have = Type::of(value);
    if have == want.without_optional_attributes() {
        return Ok(value.clone());
    }
    if !conversion_exists(&have, &want, true) {
        return Err(ConversionError::at(&[], mismatch_message(&have, &want)));
    }
    let mut path = Vec::new();
    apply(value, &have, &want, true, &mut path)
}

/// Whether cty has a conversion from type `from` to type `to` (`unsafe_ok`: also the
/// conversions that can fail on some values).
pub(crate) fn conversion_exists(from: &Type, to: &Type, unsafe_ok: bool) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (_, Type::Any) => true,
        (Type::Any, _) => unsafe_ok,
        (Type::Number | Type::Bool, Type::String) => true,
        (Type::String, Type::Number | Type::Bool) => unsafe_ok,
        (
            Type::Object {
                attributes: have, ..
            },
            Type::Object {
                attributes: want, ..
            },
        ) => want.iter().all(|(name, wty)| match have.get(name) {
            Some(hty) => hty == wty || conversion_exists(hty, wty, unsafe_ok),
            None => to.attribute_optional(name),
        }),
        (Type::Tuple(have), Type::Tuple(want)) => {
            have.len() == want.len()
                && have
                    .iter()
                    .zip(want)
                    .all(|(h, w)| h == w || conversion_exists(h, w, unsafe_ok))
        }
        (Type::List(hety), Type::List(wety))
        | (Type::Set(hety), Type::List(wety) | Type::Set(wety)) => {
            hety == wety || conversion_exists(hety, wety, unsafe_ok)
        }
        (Type::List(hety), Type::Set(wety)) => {
            unsafe_ok && (hety == wety || conversion_exists(hety, wety, unsafe_ok))
        }
        (Type::Map(hety), Type::Map(wety)) => conversion_exists(hety, wety, unsafe_ok),
        (Type::Tuple(etys), Type::List(wety) | Type::Set(wety)) => {
            sequence_element_type(etys, wety, unsafe_ok).is_some()
        }
        (Type::Object { attributes, .. }, Type::Map(wety)) => {
            let atys: Vec<Type> = attributes.values().cloned().collect();
            object_element_type(&atys, wety, unsafe_ok).is_some()
        }
        (Type::Map(hety), Type::Object { attributes, .. }) => {
            unsafe_ok
                && attributes.iter().all(|(name, aty)| {
                    aty == &**hety
                        || conversion_exists(hety, aty, unsafe_ok)
                        || to.attribute_optional(name)
                })
        }
        _ => false,
    }
}

/// The element type a tuple with element types `etys` converts to as a list or set of
/// `want`, or None when it cannot (cty unifies the elements when `want` is `any`).
fn sequence_element_type(etys: &[Type], want: &Type, unsafe_ok: bool) -> Option<Type> {
    if etys.is_empty() {
        return Some(want.clone());
    }
    let ety = if *want == Type::Any {
        let unified = unify(etys, unsafe_ok)?;
        if unified == Type::Any && etys.iter().any(|t| *t != Type::Any) {
            return None;
        }
        unified
    } else {
        want.clone()
    };
    etys.iter()
        .all(|t| *t == ety || conversion_exists(t, &ety, unsafe_ok))
        .then_some(ety)
}

/// As [`sequence_element_type`], for an object's attribute types becoming a map.
fn object_element_type(atys: &[Type], want: &Type, unsafe_ok: bool) -> Option<Type> {
    if atys.is_empty() {
        return Some(want.clone());
    }
    let ety = if *want == Type::Any {
        unify(atys, unsafe_ok)?
    } else {
        want.clone()
    };
    atys.iter()
        .all(|t| *t == ety || conversion_exists(t, &ety, unsafe_ok))
        .then_some(ety)
}

/// Converts a value whose implied type is `from` to `to`; a conversion is known to exist.
fn apply(
    value: &Value,
    from: &Type,
    to: &Type,
    unsafe_ok: bool,
    path: &mut Vec<PathStep>,
) -> Result<Value, ConversionError> {
    if *to == Type::Any || value.is_null() {
        return Ok(value.clone());
    }
    if from == &to.without_optional_attributes() {
        return Ok(value.clone());
    }
    match (value, from, to) {
        (_, Type::Any, _) => convert(value, to).map_err(|mut err| {
            let mut full = path.clone();
            full.append(&mut err.path);
            ConversionError {
                path: full,
                message: err.message,
            }
        }),
        (Value::Number(n), _, Type::String) => Ok(Value::String(number_to_string(*n))),
        (Value::Bool(b), _, Type::String) => Ok(Value::String(b.to_string())),
        (Value::String(s), _, Type::Number) => parse_number(s)
            .map(Value::Number)
            .ok_or_else(|| ConversionError::at(path, "a number is required")),
        (Value::String(s), _, Type::Bool) => string_to_bool(s)
            .map(Value::Bool)
            .map_err(|m| ConversionError::at(path, m)),
        (
            Value::Object(attrs),
            Type::Object {
                attributes: atys, ..
            },
            Type::Object {
                attributes: want, ..
            },
        ) => {
            let mut out = BTreeMap::new();
            for (name, wty) in want {
                match (attrs.get(name), atys.get(name)) {
                    (Some(v), Some(aty)) => {
                        path.push(PathStep::Attribute(name.clone()));
                        let converted = apply(v, aty, wty, unsafe_ok, path)?;
                        path.pop();
                        out.insert(name.clone(), converted);
                    }
                    _ => {
                        out.insert(name.clone(), Value::Null);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        (Value::List(items), Type::Tuple(etys), Type::Tuple(want)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, ((item, ety), wty)) in items.iter().zip(etys).zip(want).enumerate() {
                path.push(PathStep::Index(i));
                out.push(apply(item, ety, wty, unsafe_ok, path)?);
                path.pop();
            }
            Ok(Value::List(out))
        }
        (Value::List(items), Type::Tuple(etys), Type::List(wety) | Type::Set(wety)) => {
            let ety =
                sequence_element_type(etys, wety, unsafe_ok).unwrap_or_else(|| (**wety).clone());
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, ity)) in items.iter().zip(etys).enumerate() {
                path.push(PathStep::Index(i));
                out.push(apply(item, ity, &ety, unsafe_ok, path)?);
                path.pop();
            }
            if ety.has_dynamic_types() {
                if matches!(to, Type::Set(_)) {
                    // cty converts to a set without unifying: the element types must match
                    let types: Vec<Type> = out.iter().map(Type::of).collect();
                    if types.windows(2).any(|w| !types_match(&w[0], &w[1])) {
                        return Err(ConversionError::at(
                            path,
                            "element types must all match for conversion to set",
                        ));
                    }
                } else {
                    out = unify_elements(out, path, unsafe_ok)?;
                }
            }
            Ok(if matches!(to, Type::Set(_)) {
                make_set(out, &ety)
            } else {
                Value::List(out)
            })
        }
        (Value::Set(items), Type::Set(_), Type::List(wety) | Type::Set(wety)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                out.push(apply(item, &Type::of(item), wety, unsafe_ok, path)?);
                path.pop();
            }
            Ok(if matches!(to, Type::Set(_)) {
                make_set(out, wety)
            } else {
                Value::List(out)
            })
        }
        (
            Value::Object(attrs),
            Type::Object {
                attributes: atys, ..
            },
            Type::Map(wety),
        ) => {
            let types: Vec<Type> = atys.values().cloned().collect();
            let ety =
                object_element_type(&types, wety, unsafe_ok).unwrap_or_else(|| (**wety).clone());
            let mut out = BTreeMap::new();
            for (name, item) in attrs {
                let ity = atys.get(name).cloned().unwrap_or_else(|| Type::of(item));
                path.push(PathStep::Key(name.clone()));
                out.insert(name.clone(), apply(item, &ity, &ety, unsafe_ok, path)?);
                path.pop();
            }
            if ety.is_collection() || matches!(ety, Type::Object { .. }) {
                let names: Vec<String> = out.keys().cloned().collect();
                let values = unify_elements(out.into_values().collect(), path, unsafe_ok)?;
                out = names.into_iter().zip(values).collect();
            }
            Ok(Value::Object(out))
        }
        _ => Err(ConversionError::at(path, mismatch_message(from, to))),
    }
}

/// Converts already-converted elements to their unified type when the target element
/// type left room (`any` inside), as cty does after a conversion to a list or map.
fn unify_elements(
    elems: Vec<Value>,
    path: &mut Vec<PathStep>,
    unsafe_ok: bool,
) -> Result<Vec<Value>, ConversionError> {
    if elems.is_empty() {
        return Ok(elems);
    }
    let types: Vec<Type> = elems.iter().map(Type::of).collect();
    let Some(unified) = unify(&types, unsafe_ok) else {
        return Err(ConversionError::at(
            path,
            "cannot find a common base type for all elements",
        ));
    };
    let mut out = Vec::with_capacity(elems.len());
    for (i, (elem, ety)) in elems.into_iter().zip(types).enumerate() {
        if ety == unified || !conversion_exists(&ety, &unified, unsafe_ok) {
            out.push(elem);
            continue;
        }
        path.push(PathStep::Index(i));
        out.push(apply(&elem, &ety, &unified, unsafe_ok, path)?);
        path.pop();
    }
    Ok(out)
}

/// Whether two implied types are the same, a null's `any` matching anything (a typed
/// null in cty).
fn types_match(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Any, _) | (_, Type::Any) => true,
        (Type::List(x), Type::List(y))
        | (Type::Set(x), Type::Set(y))
        | (Type::Map(x), Type::Map(y)) => types_match(x, y),
        (Type::Tuple(x), Type::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| types_match(p, q))
        }
        (Type::Object { attributes: x, .. }, Type::Object { attributes: y, .. }) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| types_match(p, q)))
        }
        _ => a == b,
    }
}

/// Parses a string as cty parses a number (Go's `big.ParseFloat` in base 10): an optional
/// sign, digits with an optional fraction, an optional exponent, or `Inf`.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned == "Inf" || unsigned == "inf" {
        let infinite = if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Some(infinite);
    }
    let bytes = unsigned.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.parse::<f64>().ok()
}

fn string_to_bool(text: &str) -> Result<bool, &'static str> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => match text.to_lowercase().as_str() {
            "true" => Err("a bool is required; to convert from string, use lowercase \"true\""),
            "false" => Err("a bool is required; to convert from string, use lowercase \"false\""),
            _ => Err("a bool is required"),
        },
    }
}

/// Why a value of type `got` does not convert to `want`, in cty's words
/// (`convert.MismatchMessage`).
pub(crate) fn mismatch_message(got: &Type, want: &Type) -> String {
    match (got, want) {
        (Type::Object { .. }, Type::Object { .. }) => mismatch_objects(got, want),
        (Type::Tuple(_), Type::List(ety)) if **ety == Type::Any => {
            "all list elements must have the same type".to_string()
        }
        (Type::Tuple(_), Type::Set(ety)) if **ety == Type::Any => {
            "all set elements must have the same type".to_string()
        }
        (Type::Object { .. }, Type::Map(ety)) if **ety == Type::Any => {
            "all map elements must have the same type".to_string()
        }
        (Type::Tuple(_) | Type::Object { .. }, _) if want.is_collection() => {
            mismatch_collection_from_structural(got, want)
        }
        _ if got.is_collection() && want.is_collection() => mismatch_collections(got, want),
        // cty 1.17 adds ", but have TYPE" where the two are not likely to confuse; the
        // buildx 0.29.1 this project is measured against (Debian's build, on an older cty)
        // says only what is required, and brix says what it says.
        _ => format!("{} required", want.friendly_name_for_constraint()),
    }
}

fn mismatch_objects(got: &Type, want: &Type) -> String {
    let (
        Type::Object {
            attributes: have, ..
        },
        Type::Object {
            attributes: wanted, ..
        },
    ) = (got, want)
    else {
        return "incorrect object attributes".to_string();
    };
    let mut missing = Vec::new();
    let mut unsafe_mismatch: Option<String> = None;
    let mut safe_mismatch: Option<String> = None;
    for (name, wty) in wanted {
        let Some(hty) = have.get(name) else {
            if !want.attribute_optional(name) {
                missing.push(name.clone());
            }
            continue;
        };
        if hty == wty {
            continue;
        }
        if unsafe_mismatch.is_some() {
            continue;
        }
        if !conversion_exists(hty, wty, true) {
            unsafe_mismatch = Some(format!(
                "attribute {}: {}",
                go_quote(name),
                mismatch_message(hty, wty)
            ));
        }
        if safe_mismatch.is_none() && !conversion_exists(hty, wty, false) {
            safe_mismatch = Some(format!(
                "attribute {}: {}",
                go_quote(name),
                mismatch_message(hty, wty)
            ));
        }
    }
    missing.sort();
    match missing.len() {
        0 => unsafe_mismatch
            .or(safe_mismatch)
            .unwrap_or_else(|| "incorrect object attributes".to_string()),
        1 => format!("attribute {} is required", go_quote(&missing[0])),
        2 => format!(
            "attributes {} and {} are required",
            go_quote(&missing[0]),
            go_quote(&missing[1])
        ),
        _ => {
            let (last, rest) = missing.split_last().unwrap_or((&missing[0], &[]));
            let listed: Vec<String> = rest.iter().map(|n| format!("{}, ", go_quote(n))).collect();
            format!(
                "attributes {}and {} are required",
                listed.concat(),
                go_quote(last)
            )
        }
    }
}

fn mismatch_collection_from_structural(got: &Type, want: &Type) -> String {
    let required = format!("{} required", want.friendly_name_for_constraint());
    let wety = match (want, got) {
        (Type::List(ety) | Type::Set(ety), Type::Tuple(_)) => ety,
        (Type::Map(ety), Type::Object { .. }) => ety,
        _ => return required,
    };
    match got {
        Type::Tuple(etys) => {
            for (i, ety) in etys.iter().enumerate() {
                if ety == &**wety || conversion_exists(ety, wety, true) {
                    continue;
                }
                return format!("element {i}: {}", mismatch_message(ety, wety));
            }
            format!(
                "all elements must be {}",
                wety.friendly_name_for_constraint()
            )
        }
        Type::Object { attributes, .. } => {
            for (name, aty) in attributes {
                if aty == &**wety || conversion_exists(aty, wety, true) {
                    continue;
                }
                return format!(
                    "element {}: {}",
                    go_quote(name),
                    mismatch_message(aty, wety)
                );
            }
            format!(
                "all elements must be {}",
                wety.friendly_name_for_constraint()
            )
        }
        _ => required,
    }
}

fn mismatch_collections(got: &Type, want: &Type) -> String {
    let required = format!("{} required", want.friendly_name_for_constraint());
    let noun = match (want, got) {
        (Type::List(_), Type::List(_) | Type::Set(_)) => "list element type",
        (Type::Set(_), Type::List(_) | Type::Set(_)) => "set element type",
        (Type::Map(_), Type::Map(_)) => "map element type",
        _ => return required,
    };
    match (got.element_type(), want.element_type()) {
        (Some(gety), Some(wety)) => format!("incorrect {noun}: {}", mismatch_message(gety, wety)),
        _ => required,
    }
}

/// The most general type all of `types` convert to, as cty's `convert.Unify` (or
/// `UnifyUnsafe` with `unsafe_ok`) finds it; None when there is none.
pub(crate) fn unify(types: &[Type], unsafe_ok: bool) -> Option<Type> {
    if types.is_empty() {
        return None;
    }
    if types.iter().all(|t| t == &types[0]) {
        return Some(types[0].clone());
    }
    let count = |f: fn(&Type) -> bool| types.iter().filter(|t| f(t)).count();
    let maps = count(|t| matches!(t, Type::Map(_)));
    let lists = count(|t| matches!(t, Type::List(_)));
    let sets = count(|t| matches!(t, Type::Set(_)));
    let objects = count(|t| matches!(t, Type::Object { .. }));
    let tuples = count(|t| matches!(t, Type::Tuple(_)));
    let dynamics = count(|t| *t == Type::Any);
    let n = types.len();
    if maps > 0 && maps + dynamics == n {
        return unify_collections(Type::Map, types, unsafe_ok, dynamics > 0);
    }
    if maps > 0 && maps + objects + dynamics == n {
        if let Some(ty @ Type::Map(_)) = unify_objects_as_maps(types, unsafe_ok) {
            return Some(ty);
        }
    } else if lists > 0 && lists + dynamics == n {
        return unify_collections(Type::List, types, unsafe_ok, dynamics > 0);
    } else if lists > 0 && lists + tuples + dynamics == n {
        if let Some(ty @ Type::List(_)) = unify_tuples_as_list(types, unsafe_ok) {
            return Some(ty);
        }
    } else if sets > 0 && sets + dynamics == n {
        return unify_collections(Type::Set, types, unsafe_ok, dynamics > 0);
    } else if objects > 0 && objects + dynamics == n {
        return unify_object_types(types, unsafe_ok, dynamics > 0);
    } else if tuples > 0 && tuples + dynamics == n {
        return unify_tuple_types(types, unsafe_ok, dynamics > 0);
    } else if objects > 0 && tuples > 0 {
        return None;
    }

    'preferences: for want_index in sort_types(types) {
        let want = &types[want_index];
        for (i, candidate) in types.iter().enumerate() {
            if i == want_index || candidate == want {
                continue;
            }
            if !conversion_exists(candidate, want, unsafe_ok) {
                continue 'preferences;
            }
        }
        return Some(want.clone());
    }
    None
}

fn unify_collections(
    make: fn(Box<Type>) -> Type,
    types: &[Type],
    unsafe_ok: bool,
    has_dynamic: bool,
) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let etys: Vec<Type> = types
        .iter()
        .filter_map(|t| t.element_type().cloned())
        .collect();
    let ety = unify(&etys, unsafe_ok)?;
    let result = make(Box::new(ety));
    types
        .iter()
        .all(|t| *t == result || conversion_exists(t, &result, unsafe_ok))
        .then_some(result)
}

fn unify_objects_as_maps(types: &[Type], unsafe_ok: bool) -> Option<Type> {
    let objects: Vec<Type> = types
        .iter()
        .filter(|t| matches!(t, Type::Object { .. }))
        .cloned()
        .collect();
    let map = unify_objects_to_map(&objects, unsafe_ok)?;
    let replaced: Vec<Type> = types
        .iter()
        .map(|t| {
            if matches!(t, Type::Object { .. }) {
                map.clone()
            } else {
                t.clone()
            }
        })
        .collect();
    unify(&replaced, unsafe_ok).filter(|t| matches!(t, Type::Map(_)))
}

fn unify_tuples_as_list(types: &[Type], unsafe_ok: bool) -> Option<Type> {
    let tuples: Vec<Type> = types
        .iter()
        .filter(|t| matches!(t, Type::Tuple(_)))
        .cloned()
        .collect();
    let list = unify_tuples_to_list(&tuples, unsafe_ok)?;
    let replaced: Vec<Type> = types
        .iter()
        .map(|t| {
            if matches!(t, Type::Tuple(_)) {
                list.clone()
            } else {
                t.clone()
            }
        })
        .collect();
    unify(&replaced, unsafe_ok).filter(|t| matches!(t, Type::List(_)))
}

fn unify_object_types(types: &[Type], unsafe_ok: bool, has_dynamic: bool) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let attrs: Vec<&BTreeMap<String, Type>> = types
        .iter()
        .filter_map(|t| match t {
            Type::Object { attributes, .. } => Some(attributes),
            _ => None,
        })
        .collect();
    let first = attrs[0];
    let same_names = attrs
        .iter()
        .all(|a| a.len() == first.len() && a.keys().all(|k| first.contains_key(k)));
    if !same_names {
        return unify_objects_to_map(types, unsafe_ok);
    }
    let mut result = BTreeMap::new();
    for name in first.keys() {
        let across: Vec<Type> = attrs.iter().filter_map(|a| a.get(name).cloned()).collect();
        result.insert(name.clone(), unify(&across, unsafe_ok)?);
    }
    let result = Type::object(result);
    if types
        .iter()
        .all(|t| *t == result || conversion_exists(t, &result, unsafe_ok))
    {
        Some(result)
    } else {
        unify_objects_to_map(types, unsafe_ok)
    }
}

fn unify_objects_to_map(types: &[Type], unsafe_ok: bool) -> Option<Type> {
    let atys: Vec<Type> = types
        .iter()
        .flat_map(|t| match t {
            Type::Object { attributes, .. } => attributes.values().cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    let ety = unify(&atys, unsafe_ok)?;
    let result = Type::Map(Box::new(ety));
    types
        .iter()
        .all(|t| *t == result || conversion_exists(t, &result, unsafe_ok))
        .then_some(result)
}

fn unify_tuple_types(types: &[Type], unsafe_ok: bool, has_dynamic: bool) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let etys: Vec<&Vec<Type>> = types
        .iter()
        .filter_map(|t| match t {
            Type::Tuple(etys) => Some(etys),
            _ => None,
        })
        .collect();
    let len = etys[0].len();
    if etys.iter().any(|e| e.len() != len) {
        return unify_tuples_to_list(types, unsafe_ok);
    }
    let mut result = Vec::with_capacity(len);
    for i in 0..len {
        let across: Vec<Type> = etys.iter().map(|e| e[i].clone()).collect();
        result.push(unify(&across, unsafe_ok)?);
    }
    let result = Type::Tuple(result);
    if types
        .iter()
        .all(|t| *t == result || conversion_exists(t, &result, unsafe_ok))
    {
        Some(result)
    } else {
        unify_tuples_to_list(types, unsafe_ok)
    }
}

fn unify_tuples_to_list(types: &[Type], unsafe_ok: bool) -> Option<Type> {
    let etys: Vec<Type> = types
        .iter()
        .flat_map(|t| match t {
            Type::Tuple(etys) => etys.clone(),
            _ => Vec::new(),
        })
        .collect();
    let ety = unify(&etys, unsafe_ok)?;
    let result = Type::List(Box::new(ety));
    types
        .iter()
        .all(|t| *t == result || conversion_exists(t, &result, unsafe_ok))
        .then_some(result)
}

/// cty's preference order for unification: indices of `types`, most general first.
fn sort_types(types: &[Type]) -> Vec<usize> {
    let n = types.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n.saturating_sub(1) {
        for j in i + 1..n {
            match compare_types(&types[i], &types[j]) {
                Ordering::Less => edges[i].push(j),
                Ordering::Greater => edges[j].push(i),
                Ordering::Equal => {}
            }
        }
    }
    let mut in_degree = vec![0usize; n];
    for outs in &edges {
        for &j in outs {
            in_degree[j] += 1;
        }
    }
    let mut result: Vec<usize> = (0..n).filter(|&i| in_degree[i] == 0).collect();
    let mut next = 0;
    while next < result.len() {
        let i = result[next];
        next += 1;
        for &j in &edges[i] {
            in_degree[j] -= 1;
            if in_degree[j] == 0 {
                result.push(j);
            }
        }
    }
    result
}

/// cty's `compareTypes`: Less when `a` is preferred over `b` as a unification result.
fn compare_types(a: &Type, b: &Type) -> Ordering {
    if *a == Type::Any || *b == Type::Any {
        return match (*a == Type::Any, *b == Type::Any) {
            (false, true) => Ordering::Less,
            (true, false) => Ordering::Greater,
            _ => Ordering::Equal,
        };
    }
    if a.is_primitive() && b.is_primitive() && (*a == Type::String || *b == Type::String) {
        return match (*a == Type::String, *b == Type::String) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            _ => Ordering::Equal,
        };
    }
    match (a, b) {
        (Type::List(x), Type::List(y))
        | (Type::Set(x), Type::Set(y))
        | (Type::Map(x), Type::Map(y)) => {
            return compare_types(x, y);
        }
        _ => {}
    }
    let swapped = matches!(
        (a, b),
        (Type::Tuple(_), Type::List(_))
            | (Type::Object { .. }, Type::Map(_))
            | (Type::Set(_), Type::Tuple(_))
            | (Type::Set(_), Type::List(_))
    );
    let (a, b, swap) = if swapped { (b, a, true) } else { (a, b, false) };
    let flip = |o: Ordering| if swap { o.reverse() } else { o };
    match (a, b) {
        (Type::Tuple(_) | Type::List(_), Type::Set(_)) => flip(Ordering::Less),
        (Type::List(_), Type::Tuple(_)) => flip(Ordering::Less),
        (Type::Map(_), Type::Object { .. }) => flip(Ordering::Less),
        (Type::Object { attributes: x, .. }, Type::Object { attributes: y, .. }) => {
            if x.len() != y.len() || x.keys().any(|k| !y.contains_key(k)) {
                return Ordering::Equal;
            }
            let cmps: Vec<Ordering> = x
                .iter()
                .filter_map(|(k, t)| y.get(k).map(|u| compare_types(t, u)))
                .collect();
            flip(super_order(&cmps))
        }
        (Type::Tuple(x), Type::Tuple(y)) => {
            if x.len() != y.len() {
                return Ordering::Equal;
            }
            let cmps: Vec<Ordering> = x.iter().zip(y).map(|(t, u)| compare_types(t, u)).collect();
            flip(super_order(&cmps))
        }
        _ => Ordering::Equal,
    }
}

fn super_order(cmps: &[Ordering]) -> Ordering {
    let a_super = cmps.contains(&Ordering::Less);
    let b_super = cmps.contains(&Ordering::Greater);
    match (a_super, b_super) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Builds a set value from `elems` as cty does: duplicates (by cty equality) dropped and
/// the rest in cty's order — strings lexically, numbers ascending, false before true,
/// other values by their hash text, nulls last. `ety` is the element type when known
/// (`any` to imply it from the elements).
pub(crate) fn make_set(elems: Vec<Value>, ety: &Type) -> Value {
    let ety = if *ety == Type::Any {
        let types: Vec<Type> = elems.iter().map(Type::of).collect();
        unify(&types, true).unwrap_or(Type::Any)
    } else {
        ety.clone()
    };
    let mut unique: Vec<Value> = Vec::with_capacity(elems.len());
    for elem in elems {
        if !unique.iter().any(|u| values_equal(u, &elem)) {
            unique.push(elem);
        }
    }
    unique.sort_by(|a, b| set_order(a, b, &ety));
    Value::Set(unique)
}

fn set_order(a: &Value, b: &Value, ety: &Type) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => set_hash_text(a, ety).cmp(&set_hash_text(b, ety)),
    }
}

/// The text cty hashes a set element by, which also orders non-primitive elements.
fn set_hash_text(value: &Value, ty: &Type) -> String {
    let mut out = String::new();
    append_hash_text(value, ty, &mut out);
    out
}

fn append_hash_text(value: &Value, ty: &Type, out: &mut String) {
    match value {
        Value::Null => out.push('~'),
        Value::Number(n) => out.push_str(&crate::hcl::functions::gofmt::format_float_g(*n, 10)),
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::String(s) => out.push_str(&go_quote(s)),
        Value::List(items) | Value::Set(items) => {
            let (open, close, etys): (char, char, Vec<Type>) = match ty {
                Type::List(ety) | Type::Set(ety) => ('[', ']', vec![(**ety).clone(); items.len()]),
                Type::Tuple(etys) if etys.len() == items.len() => ('<', '>', etys.clone()),
                _ if matches!(value, Value::Set(_)) => {
                    ('[', ']', items.iter().map(Type::of).collect())
                }
                _ => ('<', '>', items.iter().map(Type::of).collect()),
            };
            out.push(open);
            for (item, ety) in items.iter().zip(&etys) {
                append_hash_text(item, ety, out);
                out.push(';');
            }
            out.push(close);
        }
        Value::Object(attrs) => {
            if let Type::Map(ety) = ty {
                out.push('{');
                for (key, item) in attrs {
                    out.push_str(&go_quote(key));
                    out.push(':');
                    append_hash_text(item, ety, out);
                    out.push(';');
                }
                out.push('}');
            } else {
                out.push('<');
                for (name, item) in attrs {
                    let aty = match ty {
                        Type::Object { attributes, .. } => attributes.get(name).cloned(),
                        _ => None,
                    };
                    append_hash_text(item, &aty.unwrap_or_else(|| Type::of(item)), out);
                    out.push(';');
                }
                out.push('>');
            }
        }
    }
}

/// cty's equality of two known values: same kind and equal content; null equals only null.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Set(x), Value::Set(y)) => {
            x.iter().all(|p| y.iter().any(|q| values_equal(p, q)))
                && y.iter().all(|q| x.iter().any(|p| values_equal(p, q)))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| values_equal(p, q)))
        }
        _ => false,
    }
}

/// A string quoted as Go's `strconv.Quote` (and so `%q`) quotes it.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e000}'..='\u{f8ff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }
    fn n(number: f64) -> Value {
        Value::Number(number)
    }
    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }
    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    fn list_of(ty: Type) -> Type {
        Type::List(Box::new(ty))
    }
    fn set_of(ty: Type) -> Type {
        Type::Set(Box::new(ty))
    }
    fn map_of(ty: Type) -> Type {
        Type::Map(Box::new(ty))
    }
    fn object_type(pairs: &[(&str, Type)], optional: &[&str]) -> Type {
        Type::Object {
            attributes: pairs
                .iter()
                .map(|(k, t)| (k.to_string(), t.clone()))
                .collect(),
            optional: optional.iter().map(|o| o.to_string()).collect(),
        }
    }
    fn err(value: Value, ty: Type) -> String {
        convert(&value, &ty)
            .expect_err("conversion should fail")
            .message
    }

    #[test]
    fn primitives_convert_as_cty_does() {
        assert_eq!(convert(&n(1.5), &Type::String), Ok(s("1.5")));
        assert_eq!(convert(&Value::Bool(true), &Type::String), Ok(s("true")));
        assert_eq!(convert(&s("1."), &Type::Number), Ok(n(1.0)));
        assert_eq!(convert(&s(".5"), &Type::Number), Ok(n(0.5)));
        assert_eq!(convert(&s("+5"), &Type::Number), Ok(n(5.0)));
        assert_eq!(convert(&s("1E3"), &Type::Number), Ok(n(1000.0)));
        assert_eq!(convert(&s("Inf"), &Type::Number), Ok(n(f64::INFINITY)));
        assert_eq!(convert(&s("1"), &Type::Bool), Ok(Value::Bool(true)));
        assert_eq!(convert(&s("false"), &Type::Bool), Ok(Value::Bool(false)));
        for bad in ["1e", " 1", "0x10", "1_000", ""] {
            assert_eq!(err(s(bad), Type::Number), "a number is required", "{bad:?}");
        }
        assert_eq!(
            err(s("True"), Type::Bool),
            "a bool is required; to convert from string, use lowercase \"true\""
        );
        assert_eq!(err(s("yes"), Type::Bool), "a bool is required");
        assert_eq!(err(Value::Bool(true), Type::Number), "number required");
        assert_eq!(err(n(1.0), Type::Bool), "bool required");
        assert_eq!(convert(&Value::Null, &Type::String), Ok(Value::Null));
        assert_eq!(convert(&n(1.0), &Type::Any), Ok(n(1.0)));
    }

    #[test]
    fn collections_convert_as_cty_does() {
        assert_eq!(
            convert(&list(vec![n(1.0), s("a")]), &list_of(Type::String)),
            Ok(list(vec![s("1"), s("a")]))
        );
        assert_eq!(
            err(list(vec![n(1.0), Value::Bool(true)]), list_of(Type::Number)),
            "element 1: number required"
        );
        assert_eq!(
            err(
                list(vec![n(1.0), list(vec![n(2.0)])]),
                list_of(Type::String)
            ),
            "element 1: string required"
        );
        assert_eq!(
            convert(&obj(&[("a", n(1.0)), ("b", s("x"))]), &map_of(Type::String)),
            Ok(obj(&[("a", s("1")), ("b", s("x"))]))
        );
        assert_eq!(
            err(
                obj(&[("a", n(1.0)), ("b", list(vec![n(1.0)]))]),
                map_of(Type::String)
            ),
            "element \"b\": string required"
        );
        assert_eq!(
            convert(&list(vec![s("b"), s("a"), s("b")]), &set_of(Type::String)),
            Ok(Value::Set(vec![s("a"), s("b")]))
        );
        assert_eq!(
            convert(
                &list(vec![n(3.0), n(1.0), n(2.0), n(1.0)]),
                &set_of(Type::Number)
            ),
            Ok(Value::Set(vec![n(1.0), n(2.0), n(3.0)]))
        );
        assert_eq!(
            convert(
                &list(vec![Value::Bool(true), Value::Bool(false)]),
                &set_of(Type::Bool)
            ),
            Ok(Value::Set(vec![Value::Bool(false), Value::Bool(true)]))
        );
        assert_eq!(
            convert(&list(vec![s("a"), n(1.0)]), &set_of(Type::String)),
            Ok(Value::Set(vec![s("1"), s("a")]))
        );
        assert_eq!(
            convert(
                &list(vec![list(vec![n(2.0)]), list(vec![n(1.0), n(1.0)])]),
                &set_of(list_of(Type::Number))
            ),
            Ok(Value::Set(vec![
                list(vec![n(1.0), n(1.0)]),
                list(vec![n(2.0)])
            ]))
        );
        assert_eq!(
            err(s("a"), list_of(Type::String)),
            "list of string required"
        );
        assert_eq!(err(list(vec![s("a")]), Type::String), "string required");
        assert_eq!(
            err(list(vec![n(1.0)]), map_of(Type::String)),
            "map of string required"
        );
        assert_eq!(
            err(obj(&[("a", n(1.0))]), list_of(Type::String)),
            "list of string required"
        );
        assert_eq!(
            convert(&list(vec![]), &list_of(Type::String)),
            Ok(list(vec![]))
        );
        assert_eq!(
            convert(&list(vec![Value::Null, s("a")]), &list_of(Type::String)),
            Ok(list(vec![Value::Null, s("a")]))
        );
        assert_eq!(
            err(list(vec![s("1"), s("x")]), list_of(Type::Number)),
            "a number is required"
        );
    }

    #[test]
    fn any_element_types_unify() {
        assert_eq!(
            convert(&list(vec![n(1.0), s("a")]), &list_of(Type::Any)),
            Ok(list(vec![s("1"), s("a")]))
        );
        assert_eq!(
            convert(
                &list(vec![obj(&[("a", s("x"))]), obj(&[("a", n(1.0))])]),
                &list_of(Type::Any)
            ),
            Ok(list(vec![obj(&[("a", s("x"))]), obj(&[("a", s("1"))])]))
        );
        assert_eq!(
            convert(
                &list(vec![list(vec![n(1.0)]), list(vec![s("a")])]),
                &list_of(Type::Any)
            ),
            Ok(list(vec![list(vec![s("1")]), list(vec![s("a")])]))
        );
        assert_eq!(
            convert(
                &obj(&[("a", obj(&[("x", n(1.0))])), ("b", obj(&[("x", s("s"))]))]),
                &map_of(Type::Any)
            ),
            Ok(obj(&[
                ("a", obj(&[("x", s("1"))])),
                ("b", obj(&[("x", s("s"))]))
            ]))
        );
        assert_eq!(
            err(list(vec![n(1.0), list(vec![n(1.0)])]), list_of(Type::Any)),
            "all list elements must have the same type"
        );
        assert_eq!(
            convert(&list(vec![n(1.0), n(2.0)]), &set_of(Type::Any)),
            Ok(Value::Set(vec![n(1.0), n(2.0)]))
        );
        assert_eq!(
            err(
                list(vec![obj(&[("a", n(1.0))]), obj(&[("a", s("x"))])]),
                set_of(map_of(Type::Any))
            ),
            "element types must all match for conversion to set"
        );
    }

    #[test]
    fn objects_and_tuples_convert_as_cty_does() {
        let ab = object_type(&[("a", Type::String), ("b", Type::Number)], &[]);
        assert_eq!(
            err(obj(&[("a", n(1.0))]), ab),
            "attribute \"b\" is required"
        );
        let optional = object_type(&[("a", Type::String), ("b", Type::Number)], &["b"]);
        assert_eq!(
            convert(&obj(&[("a", n(1.0))]), &optional),
            Ok(obj(&[("a", s("1")), ("b", Value::Null)]))
        );
        let bc = object_type(&[("b", Type::Number), ("c", Type::Number)], &[]);
        assert_eq!(
            err(obj(&[("a", n(1.0))]), bc),
            "attributes \"b\" and \"c\" are required"
        );
        let bcd = object_type(
            &[
                ("b", Type::Number),
                ("c", Type::Number),
                ("d", Type::Number),
            ],
            &[],
        );
        assert_eq!(
            err(obj(&[("a", n(1.0))]), bcd),
            "attributes \"b\", \"c\", and \"d\" are required"
        );
        let nested = object_type(&[("a", list_of(Type::String))], &[]);
        assert_eq!(
            convert(&obj(&[("a", list(vec![n(1.0)]))]), &nested),
            Ok(obj(&[("a", list(vec![s("1")]))]))
        );
        let extra_dropped = object_type(&[], &[]);
        assert_eq!(
            convert(&obj(&[("a", n(1.0))]), &extra_dropped),
            Ok(obj(&[]))
        );
        assert_eq!(err(s("x"), object_type(&[], &[])), "object required");
        assert_eq!(
            convert(&list(vec![n(1.0)]), &Type::Tuple(vec![Type::String])),
            Ok(list(vec![s("1")]))
        );
        assert_eq!(
            err(list(vec![n(1.0), n(2.0)]), Type::Tuple(vec![Type::String])),
            "tuple required"
        );
        assert_eq!(
            err(
                list(vec![s("a"), n(1.0)]),
                Type::Tuple(vec![Type::Number, Type::String])
            ),
            "a number is required"
        );
        assert_eq!(
            err(
                obj(&[("a", list(vec![n(1.0)]))]),
                object_type(&[("a", Type::String)], &[])
            ),
            "attribute \"a\": string required"
        );
    }

    #[test]
    fn friendly_names_match_cty() {
        assert_eq!(list_of(Type::String).friendly_name(), "list of string");
        assert_eq!(map_of(Type::Number).friendly_name(), "map of number");
        assert_eq!(set_of(Type::Any).friendly_name(), "set of dynamic");
        assert_eq!(
            list_of(Type::Any).friendly_name_for_constraint(),
            "list of any single type"
        );
        assert_eq!(Type::Any.friendly_name_for_constraint(), "any type");
        assert_eq!(Type::Tuple(vec![]).friendly_name(), "tuple");
        assert_eq!(object_type(&[], &[]).friendly_name(), "object");
    }

    #[test]
    fn unification_prefers_the_most_general_type() {
        assert_eq!(
            unify(&[Type::Number, Type::String], true),
            Some(Type::String)
        );
        assert_eq!(unify(&[Type::Number, Type::Bool], true), None);
        assert_eq!(unify(&[Type::Any, Type::String], true), Some(Type::String));
        assert_eq!(unify(&[Type::Any, Type::String], false), Some(Type::Any));
        assert_eq!(
            unify(
                &[
                    Type::Tuple(vec![Type::Number]),
                    Type::Tuple(vec![Type::String, Type::String])
                ],
                true
            ),
            Some(list_of(Type::String))
        );
    }

    #[test]
    fn go_quoting_matches_strconv() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("é\u{1}\u{a0}"), "\"é\\x01\\u00a0\"");
    }
}
