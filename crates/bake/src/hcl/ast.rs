//! The one syntax tree both HCL native syntax and HCL's JSON syntax are lowered to, shaped
//! like hclsyntax's expression nodes so the evaluator can follow HCL's semantics closely.

use crate::hcl::diagnostics::Span;
use crate::value::Value;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Or,
    And,
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Negate,
}

/// An expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// A literal value (number, bool, null, or a string without interpolation).
    Literal { value: Value, span: Span },
    /// A template: its parts converted to strings and concatenated.
    Template { parts: Vec<Expr>, span: Span },
    /// A template made of a single interpolation: its value, unconverted.
    TemplateWrap { inner: Box<Expr>, span: Span },
    /// A `%{for}` directive: the strings its `for` produces, joined.
    TemplateJoin { for_expr: Box<Expr> },
    /// A reference to a variable of the scope.
    Variable { name: String, span: Span },
    /// `.name` applied to a value; `step` is the range of `.name`.
    GetAttr {
        source: Box<Expr>,
        name: String,
        step: Span,
    },
    /// `[key]` applied to a value; `literal_key` when the key is a literal (HCL's traversal
    /// index step rather than an index expression).
    Index {
        source: Box<Expr>,
        key: Box<Expr>,
        literal_key: bool,
        bracket: Span,
    },
    /// `source[*]…` / `source.*…`: `each` is evaluated for every element, with
    /// [`Expr::SplatItem`] standing for the element.
    Splat {
        source: Box<Expr>,
        each: Box<Expr>,
        marker: Span,
    },
    /// The current element of the innermost splat.
    SplatItem { span: Span },
    /// `[a, b]`.
    Tuple { items: Vec<Expr>, span: Span },
    /// `{k = v}`; `strict_keys` for JSON objects, whose keys may not repeat.
    Object {
        items: Vec<ObjectItem>,
        strict_keys: bool,
        span: Span,
    },
    /// `name(args)`, `name(args...)` when `expand_final`.
    Call(Box<Call>),
    /// `cond ? a : b`.
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
        span: Span,
    },
    /// `a op b`.
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        span: Span,
    },
    /// `!a`, `-a`.
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
        span: Span,
        symbol: Span,
    },
    /// `[for …]` / `{for …}`.
    For(Box<ForExpr>),
    /// `(inner)`.
    Parens { inner: Box<Expr>, span: Span },
    /// Source that could not be parsed (only inside JSON strings, whose templates are
    /// parsed when evaluated): evaluating it reports the parse error.
    Invalid {
        diag: Box<crate::hcl::diagnostics::Diag>,
    },
}

/// A function call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub name: String,
    pub name_span: Span,
    pub args: Vec<Expr>,
    pub expand_final: bool,
    pub open_paren: Span,
    pub close_paren: Span,
}

impl Call {
    /// The range of the whole call.
    pub fn span(&self) -> Span {
        self.name_span.to(&self.close_paren)
    }

    /// The range of the name and the opening parenthesis (HCL's `StartRange`).
    pub fn start_span(&self) -> Span {
        self.name_span.to(&self.open_paren)
    }
}

/// One `key = value` of an object constructor.
#[derive(Debug, Clone)]
pub(crate) struct ObjectItem {
    pub key: ObjectKey,
    pub value: Expr,
}

/// An object constructor key.
#[derive(Debug, Clone)]
pub(crate) enum ObjectKey {
    /// A bare identifier (or `null`/`true`/`false`): the literal name.
    Keyword { name: String, span: Span },
    /// A bare traversal with several steps (`a.b`), which HCL rejects as ambiguous.
    Ambiguous { span: Span },
    /// Any other expression, evaluated and converted to a string.
    Expr(Expr),
}

/// A `for` expression.
#[derive(Debug, Clone)]
pub(crate) struct ForExpr {
    pub key_var: Option<String>,
    pub value_var: String,
    pub collection: Expr,
    /// `Some` for the object form.
    pub key: Option<Expr>,
    pub value: Expr,
    pub condition: Option<Expr>,
    pub group: bool,
    pub span: Span,
    /// The opening bracket or brace (HCL's `OpenRange`).
    pub open: Span,
}

impl Expr {
    /// The expression's whole range.
    pub fn span(&self) -> Span {
        match self {
            Expr::Literal { span, .. }
            | Expr::Template { span, .. }
            | Expr::TemplateWrap { span, .. }
            | Expr::Variable { span, .. }
            | Expr::SplatItem { span }
            | Expr::Tuple { span, .. }
            | Expr::Object { span, .. }
            | Expr::Conditional { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Unary { span, .. }
            | Expr::Parens { span, .. } => span.clone(),
            Expr::TemplateJoin { for_expr } => for_expr.span(),
            Expr::GetAttr { source, step, .. } => source.span().to(step),
            Expr::Index {
                source, bracket, ..
            } => source.span().to(bracket),
            Expr::Splat {
                source,
                each,
                marker,
            } => source.span().to(marker).to(&each.span()),
            Expr::Call(call) => call.span(),
            Expr::For(f) => f.span.clone(),
            Expr::Invalid { diag } => diag.subject.clone().unwrap_or_else(|| Span {
                file: "".into(),
                start: Default::default(),
                end: Default::default(),
            }),
        }
    }

    /// HCL's `StartRange`: where diagnostics about the expression as a value point.
    pub fn start_span(&self) -> Span {
        match self {
            Expr::Template { parts, span } => parts.first().map_or(span.clone(), Expr::start_span),
            Expr::Tuple { span, .. } | Expr::Object { span, .. } => Span {
                file: span.file.clone(),
                start: span.start,
                end: crate::hcl::diagnostics::Pos {
                    line: span.start.line,
                    column: span.start.column + 1,
                    byte: span.start.byte + 1,
                },
            },
            Expr::Call(call) => call.start_span(),
            Expr::Conditional { condition, .. } => condition.start_span(),
            Expr::Binary { lhs, .. } => lhs.start_span(),
            Expr::Unary { symbol, .. } => symbol.clone(),
            Expr::For(f) => f.open.clone(),
            Expr::Splat { marker, .. } => marker.clone(),
            Expr::Index {
                source,
                literal_key: false,
                ..
            } => source.start_span(),
            Expr::Parens { inner, .. } => inner.start_span(),
            Expr::TemplateJoin { for_expr } => for_expr.start_span(),
            _ => self.span(),
        }
    }

    /// HCL's `ExprAsKeyword`: the name when the expression is a bare identifier.
    pub fn as_keyword(&self) -> Option<&str> {
        match self {
            Expr::Variable { name, .. } => Some(name),
            Expr::Literal {
                value: Value::Null, ..
            } => Some("null"),
            Expr::Literal {
                value: Value::Bool(true),
                ..
            } => Some("true"),
            Expr::Literal {
                value: Value::Bool(false),
                ..
            } => Some("false"),
            _ => None,
        }
    }

    /// The elements when the expression is a tuple constructor (HCL's `ExprList`).
    pub fn as_list(&self) -> Option<&[Expr]> {
        match self {
            Expr::Tuple { items, .. } => Some(items),
            _ => None,
        }
    }
}

/// A root reference found in an expression: a variable name and the static steps after it
/// (HCL's `hcl.Traversal` from `Expression.Variables()`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Traversal {
    pub root: String,
    pub steps: Vec<TraversalStep>,
    pub span: Span,
}

/// A static step of a traversal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TraversalStep {
    Attr(String),
    Index(Value),
}

/// Every root traversal of `expr` not bound locally (by `for` or a splat), in source order,
/// as hclsyntax's `Variables()` finds them.
pub(crate) fn variables(expr: &Expr) -> Vec<Traversal> {
    let mut out = Vec::new();
    collect_variables(expr, &mut Vec::new(), &mut out);
    out
}

fn collect_variables(expr: &Expr, locals: &mut Vec<String>, out: &mut Vec<Traversal>) {
    if let Some(traversal) = static_traversal(expr) {
        if !locals.contains(&traversal.root) {
            out.push(traversal);
        }
        return;
    }
    match expr {
        Expr::Literal { .. } | Expr::SplatItem { .. } | Expr::Invalid { .. } => {}
        Expr::Variable { .. } => {}
        Expr::Template { parts, .. } => {
            for part in parts {
                collect_variables(part, locals, out);
            }
        }
        Expr::TemplateWrap { inner, .. } | Expr::Parens { inner, .. } => {
            collect_variables(inner, locals, out)
        }
        Expr::TemplateJoin { for_expr } => collect_variables(for_expr, locals, out),
        Expr::GetAttr { source, .. } => collect_variables(source, locals, out),
        Expr::Index { source, key, .. } => {
            collect_variables(source, locals, out);
            collect_variables(key, locals, out);
        }
        Expr::Splat { source, each, .. } => {
            collect_variables(source, locals, out);
            collect_variables(each, locals, out);
        }
        Expr::Tuple { items, .. } => {
            for item in items {
                collect_variables(item, locals, out);
            }
        }
        Expr::Object { items, .. } => {
            for item in items {
                if let ObjectKey::Expr(key) = &item.key {
                    collect_variables(key, locals, out);
                }
                collect_variables(&item.value, locals, out);
            }
        }
        Expr::Call(call) => {
            for arg in &call.args {
                collect_variables(arg, locals, out);
            }
        }
        Expr::Conditional {
            condition,
            then,
            otherwise,
            ..
        } => {
            collect_variables(condition, locals, out);
            collect_variables(then, locals, out);
            collect_variables(otherwise, locals, out);
        }
        Expr::Binary { lhs, rhs, .. } => {
            collect_variables(lhs, locals, out);
            collect_variables(rhs, locals, out);
        }
        Expr::Unary { operand, .. } => collect_variables(operand, locals, out),
        Expr::For(f) => {
            collect_variables(&f.collection, locals, out);
            let before = locals.len();
            if let Some(k) = &f.key_var {
                locals.push(k.clone());
            }
            locals.push(f.value_var.clone());
            if let Some(key) = &f.key {
                collect_variables(key, locals, out);
            }
            collect_variables(&f.value, locals, out);
            if let Some(cond) = &f.condition {
                collect_variables(cond, locals, out);
            }
            locals.truncate(before);
        }
    }
}

/// The traversal when `expr` is a variable followed only by attribute and literal-index
/// steps (hclsyntax's `ScopeTraversalExpr`).
pub(crate) fn static_traversal(expr: &Expr) -> Option<Traversal> {
    match expr {
        Expr::Variable { name, span } => Some(Traversal {
            root: name.clone(),
            steps: Vec::new(),
            span: span.clone(),
        }),
        Expr::GetAttr { source, name, step } => {
            let mut t = static_traversal(source)?;
            t.steps.push(TraversalStep::Attr(name.clone()));
            t.span = t.span.to(step);
            Some(t)
        }
        Expr::Index {
            source,
            key,
            literal_key: true,
            bracket,
        } => {
            let mut t = static_traversal(source)?;
            let value = match key.as_ref() {
                Expr::Literal { value, .. } => value.clone(),
                Expr::Template { parts, .. } => match parts.as_slice() {
                    [Expr::Literal { value, .. }] => value.clone(),
                    _ => return None,
                },
                _ => return None,
            };
            t.steps.push(TraversalStep::Index(value));
            t.span = t.span.to(bracket);
            Some(t)
        }
        _ => None,
    }
}

/// Names of every function called in `expr`, in source order (hclsyntax `VisitAll` over
/// function call nodes).
pub(crate) fn function_calls(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    collect_calls(expr, &mut out);
    out
}

fn collect_calls(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::Literal { .. }
        | Expr::SplatItem { .. }
        | Expr::Variable { .. }
        | Expr::Invalid { .. } => {}
        Expr::Template { parts, .. } => parts.iter().for_each(|p| collect_calls(p, out)),
        Expr::TemplateWrap { inner, .. } | Expr::Parens { inner, .. } => collect_calls(inner, out),
        Expr::TemplateJoin { for_expr } => collect_calls(for_expr, out),
        Expr::GetAttr { source, .. } => collect_calls(source, out),
        Expr::Index { source, key, .. } => {
            collect_calls(source, out);
            collect_calls(key, out);
        }
        Expr::Splat { source, each, .. } => {
            collect_calls(source, out);
            collect_calls(each, out);
        }
        Expr::Tuple { items, .. } => items.iter().for_each(|i| collect_calls(i, out)),
        Expr::Object { items, .. } => {
            for item in items {
                if let ObjectKey::Expr(key) = &item.key {
                    collect_calls(key, out);
                }
                collect_calls(&item.value, out);
            }
        }
        Expr::Call(call) => {
            out.push(call.name.clone());
            call.args.iter().for_each(|a| collect_calls(a, out));
        }
        Expr::Conditional {
            condition,
            then,
            otherwise,
            ..
        } => {
            collect_calls(condition, out);
            collect_calls(then, out);
            collect_calls(otherwise, out);
        }
        Expr::Binary { lhs, rhs, .. } => {
            collect_calls(lhs, out);
            collect_calls(rhs, out);
        }
        Expr::Unary { operand, .. } => collect_calls(operand, out),
        Expr::For(f) => {
            collect_calls(&f.collection, out);
            if let Some(k) = &f.key {
                collect_calls(k, out);
            }
            collect_calls(&f.value, out);
            if let Some(c) = &f.condition {
                collect_calls(c, out);
            }
        }
    }
}

/// An attribute `name = expr`.
#[derive(Debug, Clone)]
pub(crate) struct Attribute {
    pub name: String,
    pub name_span: Span,
    pub expr: Expr,
    /// The whole `name = expr` range.
    pub span: Span,
}

/// A block `type "label" { … }`.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub kind: String,
    pub labels: Vec<String>,
    pub label_spans: Vec<Span>,
    pub body: Body,
    /// HCL's `DefRange`: the block header (type and labels, to the opening brace).
    pub def_span: Span,
}

/// The contents of a file or a block.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<Block>,
    /// Where a missing attribute is reported (HCL's `MissingItemRange`).
    pub missing_item: Span,
}

impl Body {
    /// The attribute named `name`, if written.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}
