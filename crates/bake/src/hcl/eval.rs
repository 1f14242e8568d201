//! The expression evaluator: hclsyntax's semantics over [`Value`]s.
//!
//! An expression evaluates to a value or to the diagnostics explaining why it has none
//! (where HCL would produce an unknown value along with its diagnostics). Siblings are all
//! evaluated so that every problem in, say, a list is reported, as HCL does.

use std::collections::BTreeMap;

use crate::hcl::ast::{BinaryOp, Call, Expr, ForExpr, ObjectKey, UnaryOp};
use crate::hcl::diagnostics::{Diag, Span, diags_error_text};
use crate::hcl::functions as stdlib;
use crate::hcl::typeexpr;
use crate::types::{self, Type};
use crate::value::{Value, number_to_string};

/// The result of evaluating an expression.
pub(crate) type EvalResult = Result<Value, Vec<Diag>>;

/// A user-defined `function` block, ready to call.
#[derive(Debug, Clone)]
pub(crate) struct UserFunction {
    pub params: Vec<String>,
    pub variadic: Option<String>,
    pub result: Expr,
}

/// A scope of variables: the innermost names first, then the enclosing scopes'.
pub(crate) struct Scope<'a> {
    parent: Option<&'a Scope<'a>>,
    vars: ScopeVars<'a>,
}

enum ScopeVars<'a> {
    Borrowed(&'a BTreeMap<String, Value>),
    Owned(BTreeMap<String, Value>),
}

/// The name the current splat element is bound to (not an identifier, so no clash).
const SPLAT_ITEM: &str = "\u{0}splat";

impl<'a> Scope<'a> {
    /// A root scope over `vars`.
    pub fn root(vars: &'a BTreeMap<String, Value>) -> Scope<'a> {
        Scope {
            parent: None,
            vars: ScopeVars::Borrowed(vars),
        }
    }

    /// A child scope with its own `vars`.
    pub fn child(&'a self, vars: BTreeMap<String, Value>) -> Scope<'a> {
        Scope {
            parent: Some(self),
            vars: ScopeVars::Owned(vars),
        }
    }

    fn map(&self) -> &BTreeMap<String, Value> {
        match &self.vars {
            ScopeVars::Borrowed(m) => m,
            ScopeVars::Owned(m) => m,
        }
    }

    /// The value of `name`, innermost first.
    pub fn lookup(&self, name: &str) -> Option<&Value> {
        self.map()
            .get(name)
            .or_else(|| self.parent.and_then(|p| p.lookup(name)))
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .map()
            .keys()
            .filter(|k| k.as_str() != SPLAT_ITEM)
            .cloned()
            .collect();
        if let Some(p) = self.parent {
            names.extend(p.names());
        }
        names
    }
}

/// What evaluation can call and reference beyond the scope: the global variables (for user
/// functions, which see only those) and the user functions defined so far.
pub(crate) struct Evaluator<'a> {
    pub globals: &'a BTreeMap<String, Value>,
    pub user_functions: &'a BTreeMap<String, UserFunction>,
    /// Globals that are (empty) maps rather than objects, which HCL words differently
    /// when an attribute is missing.
    pub empty_maps: &'a std::collections::BTreeSet<String>,
}

impl Evaluator<'_> {
    /// Evaluates `expr` in `scope`.
    pub fn eval(&self, expr: &Expr, scope: &Scope<'_>) -> EvalResult {
        match expr {
            Expr::Literal { value, .. } => Ok(value.clone()),
            Expr::Template { parts, span } => self.template(parts, span, scope),
            Expr::TemplateWrap { inner, .. } | Expr::Parens { inner, .. } => {
                self.eval(inner, scope)
            }
            Expr::TemplateJoin { for_expr } => self.template_join(for_expr, scope),
            Expr::Variable { name, span } => match scope.lookup(name) {
                Some(v) => Ok(v.clone()),
                None => {
                    let suggestion = name_suggestion(name, &scope.names())
                        .map(|s| format!(" Did you mean {}?", types::go_quote(&s)))
                        .unwrap_or_default();
                    Err(vec![Diag::new(
                        "Unknown variable",
                        format!(
                            "There is no variable named {}.{suggestion}",
                            types::go_quote(name)
                        ),
                        span,
                    )])
                }
            },
            Expr::GetAttr { source, name, step } => {
                let value = self.eval(source, scope)?;
                if let Expr::Variable { name: root, .. } = source.as_ref()
                    && self.empty_maps.contains(root)
                    && matches!(&value, Value::Object(m) if m.is_empty())
                {
                    return Err(vec![Diag::new(
                        "Missing map element",
                        format!(
                            "This map does not have an element with the key {}.",
                            types::go_quote(name)
                        ),
                        step,
                    )]);
                }
                get_attr(&value, name, step).map_err(|d| vec![d])
            }
            Expr::Index {
                source,
                key,
                bracket,
                ..
            } => {
                let (coll, key) = both(self.eval(source, scope), self.eval(key, scope))?;
                index(&coll, &key, bracket).map_err(|d| vec![d])
            }
            Expr::Splat {
                source,
                each,
                marker,
            } => self.splat(source, each, marker, scope),
            Expr::SplatItem { .. } => Ok(scope.lookup(SPLAT_ITEM).cloned().unwrap_or_default()),
            Expr::Tuple { items, .. } => {
                let mut values = Vec::with_capacity(items.len());
                let mut diags = Vec::new();
                for item in items {
                    match self.eval(item, scope) {
                        Ok(v) => values.push(v),
                        Err(mut d) => diags.append(&mut d),
                    }
                }
                if diags.is_empty() {
                    Ok(Value::List(values))
                } else {
                    Err(diags)
                }
            }
            Expr::Object {
                items, strict_keys, ..
            } => self.object(items, *strict_keys, scope),
            Expr::Call(call) => self.call(call, scope),
            Expr::Conditional {
                condition,
                then,
                otherwise,
                span,
            } => self.conditional(condition, then, otherwise, span, scope),
            Expr::Binary { op, lhs, rhs, span } => self.binary(*op, lhs, rhs, span, scope),
            Expr::Unary {
                op, operand, span, ..
            } => self.unary(*op, operand, span, scope),
            Expr::For(f) => self.for_expr(f, scope),
            Expr::Invalid { diag } => Err(vec![diag.as_ref().clone()]),
        }
    }

    fn template(&self, parts: &[Expr], whole: &Span, scope: &Scope<'_>) -> EvalResult {
        let _ = whole;
        let mut out = String::new();
        let mut diags = Vec::new();
        for part in parts {
            match self.eval(part, scope) {
                Err(mut d) => diags.append(&mut d),
                Ok(Value::Null) => diags.push(Diag::new(
                    "Invalid template interpolation value",
                    "The expression result is null. Cannot include a null value in a string template.",
                    &part.span(),
                )),
                Ok(value) => match to_string(&value) {
                    Ok(s) => out.push_str(&s),
                    Err(e) => diags.push(Diag::new(
                        "Invalid template interpolation value",
                        format!("Cannot include the given value in a string template: {e}."),
                        &part.span(),
                    )),
                },
            }
        }
        if diags.is_empty() {
            Ok(Value::String(out))
        } else {
            Err(diags)
        }
    }

    fn template_join(&self, for_expr: &Expr, scope: &Scope<'_>) -> EvalResult {
        let tuple = self.eval(for_expr, scope)?;
        let Value::List(items) = tuple else {
            return Ok(Value::String(String::new()));
        };
        let mut out = String::new();
        let mut diags = Vec::new();
        let span = for_expr.span();
        for item in items {
            if item.is_null() {
                diags.push(Diag::new(
                    "Invalid template interpolation value",
                    "An iteration result is null. Cannot include a null value in a string template.",
                    &span,
                ));
                continue;
            }
            match to_string(&item) {
                Ok(s) => out.push_str(&s),
                Err(e) => diags.push(Diag::new(
                    "Invalid template interpolation value",
                    format!(
                        "Cannot include one of the interpolation results into the string template: {e}."
                    ),
                    &span,
                )),
            }
        }
        if diags.is_empty() {
            Ok(Value::String(out))
        } else {
            Err(diags)
        }
    }

    fn splat(&self, source: &Expr, each: &Expr, marker: &Span, scope: &Scope<'_>) -> EvalResult {
        let value = self.eval(source, scope)?;
        let (items, was_list) = match value {
            // An untyped null splats to an empty tuple, as cty's dynamic null does.
            Value::Null => return Ok(Value::List(Vec::new())),
            Value::List(items) => (items, true),
            Value::Set(items) => (items, true),
            other => (vec![other], false),
        };
        let _ = (marker, was_list);
        let mut out = Vec::with_capacity(items.len());
        let mut diags = Vec::new();
        for item in items {
            let child = scope.child(BTreeMap::from([(SPLAT_ITEM.to_string(), item)]));
            match self.eval(each, &child) {
                Ok(v) => out.push(v),
                Err(mut d) => diags.append(&mut d),
            }
        }
        if diags.is_empty() {
            Ok(Value::List(out))
        } else {
            Err(diags)
        }
    }

    fn object(
        &self,
        items: &[crate::hcl::ast::ObjectItem],
        strict_keys: bool,
        scope: &Scope<'_>,
    ) -> EvalResult {
        let mut out = BTreeMap::new();
        let mut key_spans: BTreeMap<String, Span> = BTreeMap::new();
        let mut diags = Vec::new();
        for item in items {
            let (key, key_span) = match &item.key {
                ObjectKey::Keyword { name, span } => {
                    (Ok(Value::String(name.clone())), span.clone())
                }
                ObjectKey::Ambiguous { span } => (
                    Err(vec![Diag::new(
                        "Ambiguous attribute key",
                        "If this expression is intended to be a reference, wrap it in parentheses. If it's instead intended as a literal name containing periods, wrap it in quotes to create a string literal.",
                        span,
                    )]),
                    span.clone(),
                ),
                ObjectKey::Expr(e) => (self.eval(e, scope), e.span()),
            };
            let value = self.eval(&item.value, scope);
            let key = match key {
                Ok(k) => k,
                Err(mut d) => {
                    diags.append(&mut d);
                    if let Err(mut d) = value {
                        diags.append(&mut d);
                    }
                    continue;
                }
            };
            let value = match value {
                Ok(v) => Some(v),
                Err(mut d) => {
                    diags.append(&mut d);
                    None
                }
            };
            if key.is_null() {
                let (summary, detail, subject) = if strict_keys {
                    (
                        "Invalid object key expression",
                        "Cannot use null value as an object key.",
                        key_span.clone(),
                    )
                } else {
                    (
                        "Null value as key",
                        "Can't use a null value as a key.",
                        item.value.span(),
                    )
                };
                diags.push(Diag::new(summary, detail, &subject));
                continue;
            }
            let key = match types::convert(&key, &Type::String) {
                Ok(Value::String(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    let (summary, detail) = if strict_keys {
                        (
                            "Invalid object key expression",
                            format!("Cannot use this expression as an object key: {e}."),
                        )
                    } else {
                        (
                            "Incorrect key type",
                            format!("Can't use this value as a key: {e}."),
                        )
                    };
                    diags.push(Diag::new(summary, detail, &key_span));
                    continue;
                }
            };
            if strict_keys && let Some(previous) = key_spans.get(&key) {
                diags.push(Diag::new(
                    "Duplicate object attribute",
                    format!(
                        "An attribute named {} was already defined at {previous}.",
                        types::go_quote(&key)
                    ),
                    &key_span,
                ));
                continue;
            }
            key_spans.insert(key.clone(), key_span);
            if let Some(v) = value {
                out.insert(key, v);
            }
        }
        if diags.is_empty() {
            Ok(Value::Object(out))
        } else {
            Err(diags)
        }
    }

    fn conditional(
        &self,
        condition: &Expr,
        then: &Expr,
        otherwise: &Expr,
        span: &Span,
        scope: &Scope<'_>,
    ) -> EvalResult {
        let then_value = self.eval(then, scope);
        let else_value = self.eval(otherwise, scope);
        // HCL unifies the two results' types (a number and a string make a string); a
        // literal null takes the other side's type.
        let mut result_type = None;
        if let (Ok(t), Ok(f)) = (&then_value, &else_value)
            && !t.is_null()
            && !f.is_null()
        {
            let (tt, ft) = (Type::of(t), Type::of(f));
            match types::unify(&[tt.clone(), ft.clone()], true) {
                Some(ty) => result_type = Some(ty),
                None => {
                    return Err(vec![Diag::new(
                        "Inconsistent conditional result types",
                        format!(
                            "The true and false result expressions must have consistent types. {}.",
                            describe_type_mismatch(&tt, &ft)
                        ),
                        &then.span().to(&otherwise.span()),
                    )]);
                }
            }
        }
        let cond = self.eval(condition, scope)?;
        if cond.is_null() {
            return Err(vec![Diag::new(
                "Null condition",
                "The condition value is null. Conditions must either be true or false.",
                &condition.span(),
            )]);
        }
        let truth = match types::convert(&cond, &Type::Bool) {
            Ok(Value::Bool(b)) => b,
            _ => {
                return Err(vec![Diag::new(
                    "Incorrect condition type",
                    "The condition expression must be of type bool.",
                    &condition.span(),
                )]);
            }
        };
        let _ = span;
        let (chosen, chosen_expr, which) = if truth {
            (then_value, then, "true")
        } else {
            (else_value, otherwise, "false")
        };
        let value = chosen?;
        match result_type {
            Some(ty) => types::convert(&value, &ty).map_err(|e| {
                vec![Diag::new(
                    "Inconsistent conditional result types",
                    format!("The {which} result value has the wrong type: {e}."),
                    &chosen_expr.span(),
                )]
            }),
            None => Ok(value),
        }
    }

    fn binary(
        &self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        span: &Span,
        scope: &Scope<'_>,
    ) -> EvalResult {
        let left = self.eval(lhs, scope);
        let right = self.eval(rhs, scope);
        let param = match op {
            BinaryOp::Equal | BinaryOp::NotEqual => None,
            BinaryOp::And | BinaryOp::Or => Some(Type::Bool),
            _ => Some(Type::Number),
        };
        let (left, right) = match &param {
            None => both(left, right)?,
            Some(ty) => {
                // Conversion problems are reported first, then the operands' own.
                let mut conversion = Vec::new();
                let left = left.map(|v| {
                    types::convert(&v, ty).map_err(|e| {
                        conversion.push(Diag::new(
                            "Invalid operand",
                            format!("Unsuitable value for left operand: {e}."),
                            &lhs.span(),
                        ))
                    })
                });
                let right = right.map(|v| {
                    types::convert(&v, ty).map_err(|e| {
                        conversion.push(Diag::new(
                            "Invalid operand",
                            format!("Unsuitable value for right operand: {e}."),
                            &rhs.span(),
                        ))
                    })
                });
                if !conversion.is_empty() {
                    if let Err(mut d) = left {
                        conversion.append(&mut d);
                    }
                    if let Err(mut d) = right {
                        conversion.append(&mut d);
                    }
                    return Err(conversion);
                }
                let left = left.map(|r| r.unwrap_or_default());
                let right = right.map(|r| r.unwrap_or_default());
                if matches!(op, BinaryOp::And | BinaryOp::Or)
                    && let Some(short) = short_circuit(op, &left, &right)
                {
                    return short;
                }
                both(left, right)?
            }
        };
        let failed = |detail: &str| {
            Err(vec![Diag::new(
                "Operation failed",
                format!("Error during operation: {detail}."),
                span,
            )])
        };
        if param.is_some() && (left.is_null() || right.is_null()) {
            return failed("argument must not be null");
        }
        let number = |v: &Value| match v {
            Value::Number(n) => *n,
            _ => f64::NAN,
        };
        let boolean = |v: &Value| matches!(v, Value::Bool(true));
        let (a, b) = (number(&left), number(&right));
        Ok(match op {
            BinaryOp::Equal => Value::Bool(types::values_equal(&left, &right)),
            BinaryOp::NotEqual => Value::Bool(!types::values_equal(&left, &right)),
            BinaryOp::And => Value::Bool(boolean(&left) && boolean(&right)),
            BinaryOp::Or => Value::Bool(boolean(&left) || boolean(&right)),
            BinaryOp::Greater => Value::Bool(a > b),
            BinaryOp::GreaterOrEqual => Value::Bool(a >= b),
            BinaryOp::Less => Value::Bool(a < b),
            BinaryOp::LessOrEqual => Value::Bool(a <= b),
            BinaryOp::Add => Value::Number(crate::value::denoise(a + b)),
            BinaryOp::Subtract => Value::Number(crate::value::denoise(a - b)),
            BinaryOp::Multiply => Value::Number(crate::value::denoise(a * b)),
            BinaryOp::Divide => {
                if a == 0.0 && b == 0.0 || a.is_infinite() && b.is_infinite() {
                    return failed("can't divide zero by zero or infinity by infinity");
                }
                Value::Number(crate::value::denoise(a / b))
            }
            // cty: the remainder of a truncated division; a zero divisor gives the dividend.
            BinaryOp::Modulo => {
                if b == 0.0 {
                    Value::Number(a)
                } else if a.is_infinite() || b.is_infinite() {
                    Value::Number(a * b)
                } else {
                    Value::Number(crate::value::denoise(a - (a / b).trunc() * b))
                }
            }
        })
    }

    fn unary(&self, op: UnaryOp, operand: &Expr, span: &Span, scope: &Scope<'_>) -> EvalResult {
        let value = self.eval(operand, scope)?;
        let ty = match op {
            UnaryOp::Not => Type::Bool,
            UnaryOp::Negate => Type::Number,
        };
        let value = types::convert(&value, &ty).map_err(|e| {
            vec![Diag::new(
                "Invalid operand",
                format!("Unsuitable value for unary operand: {e}."),
                &operand.span(),
            )]
        })?;
        match (op, value) {
            (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
            (UnaryOp::Negate, Value::Number(n)) => Ok(Value::Number(-n)),
            _ => Err(vec![Diag::new(
                "Operation failed",
                "Error during operation: argument must not be null.",
                span,
            )]),
        }
    }

    fn for_expr(&self, f: &ForExpr, scope: &Scope<'_>) -> EvalResult {
        let collection = self.eval(&f.collection, scope)?;
        let elements: Vec<(Value, Value)> = match collection {
            Value::Null => {
                return Err(vec![Diag::new(
                    "Iteration over null value",
                    "A null value cannot be used as the collection in a 'for' expression.",
                    &f.collection.span(),
                )]);
            }
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Number(i as f64), v))
                .collect(),
            // A set's elements are their own keys.
            Value::Set(items) => items.into_iter().map(|v| (v.clone(), v)).collect(),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect(),
            other => {
                return Err(vec![Diag::new(
                    "Iteration over non-iterable value",
                    format!(
                        "A value of type {} cannot be used as the collection in a 'for' expression.",
                        Type::of(&other).friendly_name()
                    ),
                    &f.collection.span(),
                )]);
            }
        };
        let mut diags = Vec::new();
        let mut known = true;
        let mut tuple = Vec::new();
        let mut object: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (key, value) in elements {
            let mut vars = BTreeMap::new();
            if let Some(k) = &f.key_var {
                vars.insert(k.clone(), key);
            }
            vars.insert(f.value_var.clone(), value);
            let child = scope.child(vars);
            if let Some(cond) = &f.condition {
                match self.eval(cond, &child) {
                    Err(mut d) => {
                        diags.append(&mut d);
                        known = false;
                        continue;
                    }
                    Ok(Value::Null) => {
                        if known {
                            diags.push(Diag::new(
                                "Invalid 'for' condition",
                                "The value of the 'if' clause must not be null.",
                                &cond.span(),
                            ));
                        }
                        known = false;
                        continue;
                    }
                    Ok(v) => match types::convert(&v, &Type::Bool) {
                        Ok(Value::Bool(false)) => continue,
                        Ok(_) => {}
                        Err(e) => {
                            if known {
                                diags.push(Diag::new(
                                    "Invalid 'for' condition",
                                    format!("The 'if' clause value is invalid: {e}."),
                                    &cond.span(),
                                ));
                            }
                            known = false;
                            continue;
                        }
                    },
                }
            }
            match &f.key {
                None => match self.eval(&f.value, &child) {
                    Ok(v) => tuple.push(v),
                    Err(mut d) => diags.append(&mut d),
                },
                Some(key_expr) => {
                    let key = match self.eval(key_expr, &child) {
                        Err(mut d) => {
                            diags.append(&mut d);
                            known = false;
                            continue;
                        }
                        Ok(Value::Null) => {
                            if known {
                                diags.push(Diag::new(
                                    "Invalid object key",
                                    "Key expression in 'for' expression must not produce a null value.",
                                    &key_expr.span(),
                                ));
                            }
                            known = false;
                            continue;
                        }
                        Ok(k) => match types::convert(&k, &Type::String) {
                            Ok(Value::String(s)) => s,
                            Ok(_) => continue,
                            Err(e) => {
                                if known {
                                    diags.push(Diag::new(
                                        "Invalid object key",
                                        format!(
                                            "The key expression produced an invalid result: {e}."
                                        ),
                                        &key_expr.span(),
                                    ));
                                }
                                known = false;
                                continue;
                            }
                        },
                    };
                    let value = match self.eval(&f.value, &child) {
                        Ok(v) => v,
                        Err(mut d) => {
                            diags.append(&mut d);
                            Value::Null
                        }
                    };
                    if f.group {
                        groups.entry(key).or_default().push(value);
                    } else if let std::collections::btree_map::Entry::Vacant(slot) =
                        object.entry(key.clone())
                    {
                        slot.insert(value);
                    } else {
                        diags.push(Diag::new(
                            "Duplicate object key",
                            format!(
                                "Two different items produced the key {} in this 'for' expression. If duplicates are expected, use the ellipsis (...) after the value expression to enable grouping by key.",
                                types::go_quote(&key)
                            ),
                            &key_expr.span(),
                        ));
                    }
                }
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(match &f.key {
            None => Value::List(tuple),
            Some(_) if f.group => Value::Object(
                groups
                    .into_iter()
                    .map(|(k, v)| (k, Value::List(v)))
                    .collect(),
            ),
            Some(_) => Value::Object(object),
        })
    }

    fn call(&self, call: &Call, scope: &Scope<'_>) -> EvalResult {
        match call.name.as_str() {
            "try" if !self.user_shadowed(&call.name) => return self.call_try(call, scope),
            "can" if !self.user_shadowed(&call.name) => return self.call_can(call, scope),
            "convert" if !self.user_shadowed(&call.name) => {
                return self.call_convert(call, scope);
            }
            _ => {}
        }
        let args = self.call_args(call, scope)?;
        if stdlib_has(&call.name) {
            return stdlib_call(call, args);
        }
        if let Some(function) = self.user_functions.get(&call.name) {
            return self.call_user(call, function, args);
        }
        let mut available = stdlib_names();
        available.extend(self.user_functions.keys().cloned());
        available.extend(["try", "can", "convert"].map(String::from));
        let suggestion = name_suggestion(&call.name, &available)
            .map(|s| format!(" Did you mean {}?", types::go_quote(&s)))
            .unwrap_or_default();
        Err(vec![Diag::new(
            "Call to unknown function",
            format!(
                "There is no function named {}.{suggestion}",
                types::go_quote(&call.name)
            ),
            &call.name_span,
        )])
    }

    /// `try`, `can` and `convert` are the standard library's; a user function of the same
    /// name is never defined (buildx skips it), so they are never shadowed.
    fn user_shadowed(&self, _name: &str) -> bool {
        false
    }

    /// Evaluates the arguments, expanding a final `...` argument.
    fn call_args(&self, call: &Call, scope: &Scope<'_>) -> Result<Vec<ArgValue>, Vec<Diag>> {
        let mut diags = Vec::new();
        let mut args = Vec::new();
        let count = call.args.len();
        for (i, arg) in call.args.iter().enumerate() {
            let value = self.eval(arg, scope);
            if call.expand_final && i + 1 == count {
                let value = match value {
                    Ok(v) => v,
                    Err(mut d) => {
                        diags.append(&mut d);
                        return Err(diags);
                    }
                };
                match value {
                    Value::List(items) | Value::Set(items) => {
                        for item in items {
                            args.push(ArgValue {
                                value: item,
                                start: arg.span(),
                            });
                        }
                    }
                    Value::Null => {
                        diags.push(Diag::new(
                            "Invalid expanding argument value",
                            "The expanding argument (indicated by ...) must not be null.",
                            &arg.span(),
                        ));
                        return Err(diags);
                    }
                    _ => {
                        diags.push(Diag::new(
                            "Invalid expanding argument value",
                            "The expanding argument (indicated by ...) must be of a tuple, list, or set type.",
                            &arg.span(),
                        ));
                        return Err(diags);
                    }
                }
                continue;
            }
            match value {
                Ok(v) => args.push(ArgValue {
                    value: v,
                    start: arg.start_span(),
                }),
                Err(mut d) => diags.append(&mut d),
            }
        }
        if diags.is_empty() {
            Ok(args)
        } else {
            Err(diags)
        }
    }

    fn call_user(&self, call: &Call, function: &UserFunction, args: Vec<ArgValue>) -> EvalResult {
        if args.len() < function.params.len() {
            let qualifier = if function.variadic.is_some() {
                " at least"
            } else {
                ""
            };
            return Err(vec![Diag::new(
                "Not enough function arguments",
                format!(
                    "Function {} expects{qualifier} {} argument(s). Missing value for {}.",
                    types::go_quote(&call.name),
                    function.params.len(),
                    types::go_quote(&function.params[args.len()])
                ),
                &call.close_paren,
            )]);
        }
        if function.variadic.is_none() && args.len() > function.params.len() {
            return Err(vec![Diag::new(
                "Too many function arguments",
                format!(
                    "Function {} expects only {} argument(s).",
                    types::go_quote(&call.name),
                    function.params.len()
                ),
                &args[function.params.len()].start,
            )]);
        }
        // cty refuses null arguments unless a parameter allows them; user functions' don't.
        for (i, arg) in args.iter().enumerate() {
            if arg.value.is_null() {
                let name = function
                    .params
                    .get(i)
                    .or(function.variadic.as_ref())
                    .cloned()
                    .unwrap_or_default();
                return Err(vec![Diag::new(
                    "Invalid function argument",
                    format!(
                        "Invalid value for {} parameter: argument must not be null.",
                        types::go_quote(&name)
                    ),
                    &arg.start,
                )]);
            }
        }
        let mut vars = BTreeMap::new();
        let mut rest = Vec::new();
        for (i, arg) in args.into_iter().enumerate() {
            match function.params.get(i) {
                Some(name) => {
                    vars.insert(name.clone(), arg.value);
                }
                None => rest.push(arg.value),
            }
        }
        if let Some(name) = &function.variadic {
            vars.insert(name.clone(), Value::List(rest));
        }
        let root = Scope::root(self.globals);
        let inner = root.child(vars);
        self.eval(&function.result, &inner).map_err(|diags| {
            vec![Diag::new(
                "Error in function call",
                format!(
                    "Call to function {} failed: {}.",
                    types::go_quote(&call.name),
                    diags_error_text(&diags)
                ),
                &call.start_span(),
            )]
        })
    }

    /// hcl's `ext/tryfunc` `try`: the first argument that evaluates without errors.
    fn call_try(&self, call: &Call, scope: &Scope<'_>) -> EvalResult {
        let mut collected = Vec::new();
        for arg in &call.args {
            match self.eval(arg, scope) {
                Ok(v) => return Ok(v),
                Err(mut d) => collected.append(&mut d),
            }
        }
        let message = if call.args.is_empty() {
            "at least one argument is required".to_string()
        } else {
            let mut buf = String::from("no expression succeeded:\n");
            for diag in &collected {
                match &diag.subject {
                    Some(subject) => buf.push_str(&format!(
                        "- {} (at {subject})\n  {}\n",
                        diag.summary, diag.detail
                    )),
                    None => buf.push_str(&format!("- {}\n  {}\n", diag.summary, diag.detail)),
                }
            }
            buf.push_str("\nAt least one expression must produce a successful result");
            buf
        };
        Err(vec![Diag::new(
            "Error in function call",
            format!("Call to function \"try\" failed: {message}."),
            &call.start_span(),
        )])
    }

    /// hcl's `ext/tryfunc` `can`: whether its argument evaluates without errors.
    fn call_can(&self, call: &Call, scope: &Scope<'_>) -> EvalResult {
        match call.args.as_slice() {
            [] => Err(vec![Diag::new(
                "Not enough function arguments",
                "Function \"can\" expects 1 argument(s). Missing value for \"expression\".",
                &call.close_paren,
            )]),
            [arg] => Ok(Value::Bool(self.eval(arg, scope).is_ok())),
            [_, extra, ..] => Err(vec![Diag::new(
                "Too many function arguments",
                "Function \"can\" expects only 1 argument(s).",
                &extra.start_span(),
            )]),
        }
    }

    /// hcl's `ext/typeexpr` `convert(value, type)`.
    fn call_convert(&self, call: &Call, scope: &Scope<'_>) -> EvalResult {
        let (value_expr, type_expr) = match call.args.as_slice() {
            [v, t] => (v, t),
            [] | [_] => {
                let missing = if call.args.is_empty() {
                    "value"
                } else {
                    "type"
                };
                return Err(vec![Diag::new(
                    "Not enough function arguments",
                    format!(
                        "Function \"convert\" expects 2 argument(s). Missing value for {}.",
                        types::go_quote(missing)
                    ),
                    &call.close_paren,
                )]);
            }
            [_, _, extra, ..] => {
                return Err(vec![Diag::new(
                    "Too many function arguments",
                    "Function \"convert\" expects only 2 argument(s).",
                    &extra.start_span(),
                )]);
            }
        };
        let value = self.eval(value_expr, scope);
        let ty = typeexpr::type_constraint(type_expr);
        let (value, ty) = match (value, ty) {
            (Ok(v), Ok(t)) => (v, t),
            (v, t) => {
                let mut diags = Vec::new();
                if let Err(mut d) = v {
                    diags.append(&mut d);
                }
                if let Err(mut d) = t {
                    diags.append(&mut d);
                }
                return Err(diags);
            }
        };
        types::convert(&value, &ty).map_err(|e| {
            vec![Diag::new(
                "Invalid function argument",
                format!("Invalid value for \"value\" parameter: {e}."),
                &value_expr.start_span(),
            )]
        })
    }
}

/// An evaluated call argument and where it is written.
pub(crate) struct ArgValue {
    pub value: Value,
    pub start: Span,
}

fn both(a: EvalResult, b: EvalResult) -> Result<(Value, Value), Vec<Diag>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut diags = Vec::new();
            if let Err(mut d) = a {
                diags.append(&mut d);
            }
            if let Err(mut d) = b {
                diags.append(&mut d);
            }
            Err(diags)
        }
    }
}

/// hclsyntax's `||`/`&&` short circuit: a controlling operand decides even when the other
/// has errors.
fn short_circuit(op: BinaryOp, left: &EvalResult, right: &EvalResult) -> Option<EvalResult> {
    let controlling = matches!(op, BinaryOp::Or);
    let is = |r: &EvalResult, b: bool| matches!(r, Ok(Value::Bool(v)) if *v == b);
    let is_null = |r: &EvalResult| matches!(r, Ok(Value::Null));
    match (left, right) {
        (Err(l), Err(_)) => {
            let _ = l;
            None
        }
        _ if is(left, controlling) => Some(Ok(Value::Bool(controlling))),
        // A null reads as false when asked whether it is false (cty's `False()`).
        _ if !controlling && is_null(left) => Some(Ok(Value::Bool(false))),
        _ if is(right, controlling) => Some(Ok(Value::Bool(controlling))),
        _ if !controlling && is_null(right) => Some(Ok(Value::Bool(false))),
        (Err(d), _) => Some(Err(d.clone())),
        (_, Err(d)) => Some(Err(d.clone())),
        _ => None,
    }
}

/// A value converted to a string as templates convert it.
pub(crate) fn to_string(value: &Value) -> Result<String, types::ConversionError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_to_string(*n)),
        Value::Bool(b) => Ok(b.to_string()),
        other => match types::convert(other, &Type::String)? {
            Value::String(s) => Ok(s),
            _ => Ok(String::new()),
        },
    }
}

/// hcl's `GetAttr`.
pub(crate) fn get_attr(value: &Value, name: &str, step: &Span) -> Result<Value, Diag> {
    match value {
        Value::Null => Err(Diag::new(
            "Attempt to get attribute from null value",
            "This value is null, so it does not have any attributes.",
            step,
        )),
        Value::Object(map) => map.get(name).cloned().ok_or_else(|| {
            Diag::new(
                "Unsupported attribute",
                format!(
                    "This object does not have an attribute named {}.",
                    types::go_quote(name)
                ),
                step,
            )
        }),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Err(Diag::new(
            "Unsupported attribute",
            format!(
                "Can't access attributes on a primitive-typed value ({}).",
                Type::of(value).friendly_name()
            ),
            step,
        )),
        Value::List(_) | Value::Set(_) => Err(Diag::new(
            "Unsupported attribute",
            "This value does not have any attributes.",
            step,
        )),
    }
}

/// hcl's `Index`.
pub(crate) fn index(collection: &Value, key: &Value, bracket: &Span) -> Result<Value, Diag> {
    const INVALID: &str = "Invalid index";
    if collection.is_null() {
        return Err(Diag::new(
            "Attempt to index null value",
            "This value is null, so it does not have any indices.",
            bracket,
        ));
    }
    if key.is_null() {
        return Err(Diag::new(
            INVALID,
            "Can't use a null value as an indexing key.",
            bracket,
        ));
    }
    let not_found = |detail: &str| {
        Diag::new(
            INVALID,
            format!("The given key does not identify an element in this collection value{detail}"),
            bracket,
        )
    };
    match collection {
        Value::List(items) => {
            let n = match types::convert(key, &Type::Number) {
                Ok(Value::Number(n)) => n,
                Ok(_) => return Err(not_found(".")),
                Err(e) => return Err(not_found(&format!(": {e}."))),
            };
            if n.fract() != 0.0 {
                return Err(not_found(
                    ": indexing a sequence requires a whole number, but the given index has a fractional part.",
                ));
            }
            if n < 0.0 {
                return Err(not_found(
                    ": a negative number is not a valid index for a sequence.",
                ));
            }
            if n as usize >= items.len() {
                if items.is_empty() {
                    return Err(not_found(": the collection has no elements."));
                }
                return Err(not_found(
                    ": the given index is greater than or equal to the length of the collection.",
                ));
            }
            Ok(items[n as usize].clone())
        }
        Value::Object(map) => {
            let was_number = matches!(key, Value::Number(_));
            let name = match types::convert(key, &Type::String) {
                Ok(Value::String(s)) => s,
                Ok(_) => return Err(not_found(".")),
                Err(e) => return Err(not_found(&format!(": {e}."))),
            };
            map.get(&name).cloned().ok_or_else(|| {
                if was_number {
                    not_found(
                        ". An object only supports looking up attributes by name, not by numeric index.",
                    )
                } else {
                    not_found(".")
                }
            })
        }
        Value::Set(_) => Err(Diag::new(
            INVALID,
            "Elements of a set are identified only by their value and don't have any separate index or key to select with, so it's only possible to perform operations across all elements of the set.",
            bracket,
        )),
        _ => Err(Diag::new(
            INVALID,
            "This value does not have any indices.",
            bracket,
        )),
    }
}

/// hclsyntax's `describeConditionalTypeMismatch`.
fn describe_type_mismatch(t: &Type, f: &Type) -> String {
    if let (Type::Object { attributes: ta, .. }, Type::Object { attributes: fa, .. }) = (t, f) {
        for (name, aty) in ta {
            match fa.get(name) {
                None => {
                    return format!(
                        "The 'true' value includes object attribute {}, which is absent in the 'false' value",
                        types::go_quote(name)
                    );
                }
                Some(fty) if fty != aty => {
                    return format!(
                        "Type mismatch for object attribute {}: {}",
                        types::go_quote(name),
                        describe_type_mismatch(aty, fty)
                    );
                }
                _ => {}
            }
        }
        for name in fa.keys() {
            if !ta.contains_key(name) {
                return format!(
                    "The 'false' value includes object attribute {}, which is absent in the 'true' value",
                    types::go_quote(name)
                );
            }
        }
    }
    if let (Type::Tuple(te), Type::Tuple(fe)) = (t, f) {
        if te.len() != fe.len() {
            return format!(
                "The 'true' tuple has length {}, but the 'false' tuple has length {}",
                te.len(),
                fe.len()
            );
        }
        for (i, (a, b)) in te.iter().zip(fe).enumerate() {
            if a != b {
                return format!(
                    "Type mismatch for tuple element {i}: {}",
                    describe_type_mismatch(a, b)
                );
            }
        }
    }
    let (tn, fname) = (t.friendly_name(), f.friendly_name());
    if tn == fname {
        return "At least one deeply-nested attribute or element is not compatible across both the 'true' and the 'false' value".to_string();
    }
    format!("The 'true' value is {tn}, but the 'false' value is {fname}")
}

/// HCL's `nameSuggestion`: the first of `candidates` within edit distance 2 of `given`.
pub(crate) fn name_suggestion(given: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .find(|c| levenshtein(given, c) < 3)
        .cloned()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---- The standard library boundary ----------------------------------------------------

/// Whether the standard library has a function of that name.
fn stdlib_has(name: &str) -> bool {
    stdlib::is_function(name)
}

/// Every standard library function name (for "Did you mean" suggestions).
fn stdlib_names() -> Vec<String> {
    stdlib::names().map(str::to_string).collect()
}

/// Calls a standard library function and places its error as HCL places it: argument
/// problems at the argument, arity problems at the parenthesis or the extra argument,
/// other failures at the call.
fn stdlib_call(call: &Call, args: Vec<ArgValue>) -> EvalResult {
    let starts: Vec<Span> = args.iter().map(|a| a.start.clone()).collect();
    let values: Vec<Value> = args.into_iter().map(|a| a.value).collect();
    match stdlib::call(&call.name, values) {
        None => Err(vec![Diag::new(
            "Call to unknown function",
            format!(
                "There is no function named {}.",
                types::go_quote(&call.name)
            ),
            &call.name_span,
        )]),
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => {
            let (summary, detail) = e.summary_and_detail();
            let subject = match &e {
                stdlib::FunctionError::NotEnoughArguments { .. } => call.close_paren.clone(),
                stdlib::FunctionError::TooManyArguments { expected, .. } => starts
                    .get(*expected)
                    .cloned()
                    .unwrap_or_else(|| call.start_span()),
                stdlib::FunctionError::InvalidArgument { index, .. } => {
                    starts.get(*index).cloned().unwrap_or_else(|| call.span())
                }
                stdlib::FunctionError::CallFailed { .. } => call.start_span(),
            };
            Err(vec![Diag::new(summary, detail, &subject)])
        }
    }
}
