//! Type constraints of the bake language (`string`, `list(string)`, `object({a=number})`,
//! `any`), as variable `type`s and the `convert` function take them, and cty's conversion of
//! a value to one.

use std::collections::BTreeMap;

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
