//! Type constraint expressions (`string`, `list(number)`, `object({a = optional(string)})`)
//! read as hcl's `ext/typeexpr` `TypeConstraint` reads them.

use std::collections::BTreeMap;

use crate::hcl::ast::{Expr, ObjectKey};
use crate::hcl::diagnostics::Diag;
use crate::types::Type;

const INVALID: &str = "Invalid type specification";

/// The type constraint `expr` spells, or hcl's diagnostics for a malformed one.
pub(crate) fn type_constraint(expr: &Expr) -> Result<Type, Vec<Diag>> {
    let mut diags = Vec::new();
    let ty = get_type(expr, &mut diags);
    if diags.is_empty() { Ok(ty) } else { Err(diags) }
}

fn get_type(expr: &Expr, diags: &mut Vec<Diag>) -> Type {
    let span = expr.span();
    if let Some(keyword) = expr.as_keyword() {
        return match keyword {
            "bool" => Type::Bool,
            "string" => Type::String,
            "number" => Type::Number,
            "any" => Type::Any,
            "list" | "map" | "set" => {
                diags.push(Diag::new(
                    INVALID,
                    format!(
                        "The {keyword} type constructor requires one argument specifying the element type."
                    ),
                    &span,
                ));
                Type::Any
            }
            "object" => {
                diags.push(Diag::new(
                    INVALID,
                    "The object type constructor requires one argument specifying the attribute types and values as a map.",
                    &span,
                ));
                Type::Any
            }
            "tuple" => {
                diags.push(Diag::new(
                    INVALID,
                    "The tuple type constructor requires one argument specifying the element types as a list.",
                    &span,
                ));
                Type::Any
            }
            other => {
                diags.push(Diag::new(
                    INVALID,
                    format!(
                        "The keyword {} is not a valid type specification.",
                        crate::types::go_quote(other)
                    ),
                    &span,
                ));
                Type::Any
            }
        };
    }
    let call = match expr {
        Expr::Call(call) if !call.expand_final => call,
        Expr::Parens { inner, .. } => return get_type(inner, diags),
        _ => {
            diags.push(Diag::new(
                INVALID,
                "A type specification is either a primitive type keyword (bool, number, string) or a complex type constructor call, like list(string).",
                &span,
            ));
            return Type::Any;
        }
    };
    let args_span = call.open_paren.to(&call.close_paren);
    match call.name.as_str() {
        "bool" | "string" | "number" => {
            diags.push(Diag::new(
                INVALID,
                format!(
                    "Primitive type keyword {} does not expect arguments.",
                    crate::types::go_quote(&call.name)
                ),
                &args_span,
            ));
            return Type::Any;
        }
        "any" => {
            diags.push(Diag::new(
                INVALID,
                "Type constraint keyword \"any\" does not expect arguments.",
                &args_span,
            ));
            return Type::Any;
        }
        _ => {}
    }
    if call.args.len() != 1 {
        let subject = match call.args.as_slice() {
            [_, second, .., last] => second.span().to(&last.span()),
            [_, second] => second.span(),
            _ => args_span.clone(),
        };
        let detail = match call.name.as_str() {
            "list" | "set" | "map" => Some(format!(
                "The {} type constructor requires one argument specifying the element type.",
                call.name
            )),
            "object" => Some(
                "The object type constructor requires one argument specifying the attribute types and values as a map."
                    .to_string(),
            ),
            "tuple" => Some(
                "The tuple type constructor requires one argument specifying the element types as a list."
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(detail) = detail {
            diags.push(Diag::new(INVALID, detail, &subject));
            return Type::Any;
        }
    }
    match call.name.as_str() {
        "list" => Type::List(Box::new(get_type(&call.args[0], diags))),
        "set" => Type::Set(Box::new(get_type(&call.args[0], diags))),
        "map" => Type::Map(Box::new(get_type(&call.args[0], diags))),
        "object" => {
            let Expr::Object { items, .. } = &call.args[0] else {
                diags.push(Diag::new(
                    INVALID,
                    "Object type constructor requires a map whose keys are attribute names and whose values are the corresponding attribute types.",
                    &call.args[0].span(),
                ));
                return Type::Any;
            };
            let mut attributes = BTreeMap::new();
            let mut optional = Vec::new();
            for item in items {
                let name = match &item.key {
                    ObjectKey::Keyword { name, .. } => name.clone(),
                    ObjectKey::Expr(e) => match e.as_keyword() {
                        Some(k) => k.to_string(),
                        None => {
                            diags.push(Diag::new(
                                INVALID,
                                "Object constructor map keys must be attribute names.",
                                &e.span(),
                            ));
                            continue;
                        }
                    },
                    ObjectKey::Ambiguous { span } => {
                        diags.push(Diag::new(
                            INVALID,
                            "Object constructor map keys must be attribute names.",
                            span,
                        ));
                        continue;
                    }
                };
                if attributes.contains_key(&name) {
                    diags.push(Diag::new(
                        INVALID,
                        "Object constructor map keys must be unique.",
                        &item.value.span(),
                    ));
                    continue;
                }
                let mut type_expr = &item.value;
                if let Expr::Call(inner) = &item.value
                    && inner.name == "optional"
                {
                    match inner.args.as_slice() {
                        [] => {
                            diags.push(Diag::new(
                                INVALID,
                                "Optional attribute modifier requires the attribute type as its argument.",
                                &inner.open_paren.to(&inner.close_paren),
                            ));
                            continue;
                        }
                        [only] => {
                            optional.push(name.clone());
                            type_expr = only;
                        }
                        _ => {
                            diags.push(Diag::new(
                                INVALID,
                                "Optional attribute modifier expects only one argument: the attribute type.",
                                &inner.open_paren.to(&inner.close_paren),
                            ));
                            type_expr = &inner.args[0];
                        }
                    }
                }
                let ty = get_type(type_expr, diags);
                attributes.insert(name, ty);
            }
            Type::Object {
                attributes,
                optional,
            }
        }
        "tuple" => {
            let Some(items) = call.args[0].as_list() else {
                diags.push(Diag::new(
                    INVALID,
                    "Tuple type constructor requires a list of element types.",
                    &call.args[0].span(),
                ));
                return Type::Any;
            };
            Type::Tuple(items.iter().map(|e| get_type(e, diags)).collect())
        }
        "optional" => {
            diags.push(Diag::new(
                INVALID,
                "Keyword \"optional\" is valid only as a modifier for object type attributes.",
                &call.name_span,
            ));
            Type::Any
        }
        other => {
            diags.push(Diag::new(
                INVALID,
                format!(
                    "Keyword {} is not a valid type constructor.",
                    crate::types::go_quote(other)
                ),
                &span,
            ));
            Type::Any
        }
    }
}
