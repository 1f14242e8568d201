//! HCL native syntax: parsed with `hcl-edit` (which keeps byte spans) and lowered to the
//! evaluator's syntax tree, with the checks hclsyntax's parser makes that hcl-edit does not
//! (attributes set twice).

use hcl_edit::Span as _;
use hcl_edit::expr::{
    BinaryOperator, Expression, ObjectKey as EditObjectKey, TraversalOperator, UnaryOperator,
};
use hcl_edit::structure::{BlockLabel, Structure};
use hcl_edit::template::{Directive, Element, Template};

use crate::hcl::ast::{
    Attribute, BinaryOp, Block, Body, Call, Expr, ForExpr, ObjectItem, ObjectKey, UnaryOp,
};
use crate::hcl::diagnostics::{Diag, LineIndex, Span};
use crate::value::Value;

/// Parses a whole HCL file named `file`.
pub(crate) fn parse_body(file: &str, text: &str) -> Result<Body, Vec<Diag>> {
    let index = LineIndex::new(file, text);
    let body = hcl_edit::parser::parse_body(text)
        .map_err(|e| vec![syntax_error(&e, &index, text, e.location().offset())])?;
    let lowerer = Lowerer {
        index: &index,
        text,
        base: 0,
    };
    lowerer.body(&body, index.span(0..0))
}

/// Parses `text` as a bare template (the contents of a JSON string), its positions offset
/// by `base` bytes into the file `index` describes (whose text is `file_text`).
pub(crate) fn parse_template_at(
    index: &LineIndex,
    file_text: &str,
    text: &str,
    base: usize,
) -> Result<Expr, Diag> {
    let template = hcl_edit::parser::parse_template(text)
        .map_err(|e| syntax_error(&e, index, file_text, base + e.location().offset()))?;
    let lowerer = Lowerer {
        index,
        text: file_text,
        base,
    };
    let whole = lowerer.span_of(Some(0..text.len()));
    Ok(lowerer.template(&template, whole))
}

/// Parses `text` as an HCL expression (a JSON string in a static context: a type, a
/// parameter name), its positions offset by `base` bytes into the file.
pub(crate) fn parse_expr_at(
    index: &LineIndex,
    file_text: &str,
    text: &str,
    base: usize,
) -> Result<Expr, Diag> {
    let expr = hcl_edit::parser::parse_expr(text)
        .map_err(|e| syntax_error(&e, index, file_text, base + e.location().offset()))?;
    let lowerer = Lowerer {
        index,
        text: file_text,
        base,
    };
    Ok(lowerer.expr(&expr))
}

/// HCL's parser words its errors differently from hcl-edit's: the common ones are
/// reworded as hclsyntax words them, others keep hcl-edit's explanation.
fn syntax_error(e: &hcl_edit::parser::Error, index: &LineIndex, text: &str, offset: usize) -> Diag {
    let message = e.message();
    let at = text.get(offset..).and_then(|rest| rest.chars().next());
    let width = at.map_or(1, char::len_utf8);
    let span = index.span(offset..offset + width);
    if message.contains("redefined attribute") {
        let name: String = text
            .get(offset..)
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let name_span = index.span(offset..offset + name.len());
        let first = text.get(..offset).and_then(|before| {
            before.rmatch_indices(name.as_str()).find_map(|(i, _)| {
                let line_start = before[..i].rfind('\n').map_or(0, |n| n + 1);
                let rest = before[i + name.len()..].trim_start_matches([' ', '\t']);
                (before[line_start..i].trim().is_empty() && rest.starts_with('='))
                    .then(|| index.span(i..i + name.len()))
            })
        });
        return Diag::new(
            "Attribute redefined",
            format!(
                "The argument {} was already set at {}. Each argument may be set only once.",
                crate::types::go_quote(&name),
                first.map_or_else(|| name_span.to_string(), |f| f.to_string())
            ),
            &name_span,
        );
    }
    if message.contains("expected `}`, newline or identifier") {
        // A quoted string left open runs into the next line.
        let line_start = text
            .get(..offset)
            .and_then(|b| b.rfind('\n'))
            .map_or(0, |n| n + 1);
        let line_end = text
            .get(offset..)
            .and_then(|r| r.find('\n'))
            .map_or(text.len(), |n| offset + n);
        let line = text.get(line_start..line_end).unwrap_or_default();
        if line.matches('"').count() % 2 == 1 && line_end < text.len() {
            return Diag::new(
                "Invalid multi-line string",
                "Quoted strings may not be split over multiple lines. To produce a multi-line string, either use the \\n escape to represent a newline character or use the \"heredoc\" multi-line template syntax.",
                &index.span(line_end..line_end + 1),
            );
        }
        if text.get(offset..).is_none_or(|rest| rest.trim().is_empty())
            && let Some(brace) = last_unclosed_brace(text)
        {
            return Diag::new(
                "Unclosed configuration block",
                "There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.",
                &index.span(brace..brace + 1),
            );
        }
    }
    if message.contains("expected `{`") {
        return Diag::new(
            "Invalid block definition",
            "A block definition must have block content delimited by \"{\" and \"}\", starting on the same line as the block header.",
            &span,
        );
    }
    if message.starts_with("invalid expression") {
        if at.is_some_and(|c| "@$`'^&;|?:~%\\".contains(c) || !c.is_ascii()) {
            return Diag::new(
                "Invalid character",
                "This character is not used within the language.",
                &span,
            );
        }
        return Diag::new(
            "Invalid expression",
            "Expected the start of an expression, but found an invalid expression token.",
            &span,
        );
    }
    let mut detail = message.to_string();
    if let Some(first) = detail.get(..1) {
        detail = format!("{}{}", first.to_uppercase(), &detail[1..]);
    }
    if !detail.ends_with('.') {
        detail.push('.');
    }
    Diag::new("Invalid expression", detail, &span)
}

/// The offset of the last `{` left open at the end of `text` (strings and comments
/// skipped).
fn last_unclosed_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => open.push(i),
            b'}' => {
                open.pop();
            }
            _ => {}
        }
        i += 1;
    }
    open.pop()
}

/// Lowers hcl-edit nodes whose spans are relative to `base` bytes into the file.
#[derive(Clone, Copy)]
struct Lowerer<'a> {
    index: &'a LineIndex,
    /// The whole file's text (spans are absolute offsets into it).
    text: &'a str,
    base: usize,
}

impl Lowerer<'_> {
    fn span_of(&self, range: Option<std::ops::Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        self.index
            .span(self.base + range.start..self.base + range.end)
    }

    fn body(
        &self,
        body: &hcl_edit::structure::Body,
        missing_item: Span,
    ) -> Result<Body, Vec<Diag>> {
        let mut attributes: Vec<Attribute> = Vec::new();
        let mut blocks = Vec::new();
        let mut diags = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str().to_string();
                    let name_span = self.span_of(attr.key.span());
                    if let Some(existing) = attributes.iter().find(|a| a.name == name) {
                        diags.push(Diag::new(
                            "Attribute redefined",
                            format!(
                                "The argument {name:?} was already set at {}. Each argument may be set only once.",
                                existing.name_span
                            ),
                            &name_span,
                        ));
                        continue;
                    }
                    let expr = self.expr(&attr.value);
                    let span = name_span.to(&expr.span());
                    attributes.push(Attribute {
                        name,
                        name_span,
                        expr,
                        span,
                    });
                }
                Structure::Block(block) => {
                    let kind_span = self.span_of(block.ident.span());
                    let mut labels = Vec::new();
                    let mut label_spans = Vec::new();
                    for label in &block.labels {
                        let text = match label {
                            BlockLabel::Ident(i) => i.as_str().to_string(),
                            BlockLabel::String(s) => s.as_str().to_string(),
                        };
                        labels.push(text);
                        label_spans.push(self.span_of(label.span()));
                    }
                    let header_end = label_spans.last().unwrap_or(&kind_span).end.byte;
                    let brace = self
                        .text
                        .get(header_end..)
                        .and_then(|rest| rest.find('{'))
                        .map_or(header_end, |i| header_end + i);
                    let open_brace = self.index.span(brace..brace + 1);
                    let def_span = kind_span.to(&open_brace);
                    let inner = match self.body(&block.body, open_brace.start_point()) {
                        Ok(b) => b,
                        Err(mut d) => {
                            diags.append(&mut d);
                            continue;
                        }
                    };
                    blocks.push(Block {
                        kind: block.ident.as_str().to_string(),
                        labels,
                        label_spans,
                        body: inner,
                        def_span,
                    });
                }
            }
        }
        if diags.is_empty() {
            Ok(Body {
                attributes,
                blocks,
                missing_item,
            })
        } else {
            Err(diags)
        }
    }

    fn expr(&self, expr: &Expression) -> Expr {
        let span = self.span_of(expr.span());
        match expr {
            Expression::Null(_) => Expr::Literal {
                value: Value::Null,
                span,
            },
            Expression::Bool(b) => Expr::Literal {
                value: Value::Bool(*b.value()),
                span,
            },
            Expression::Number(n) => Expr::Literal {
                value: Value::Number(n.value().as_f64().unwrap_or(f64::NAN)),
                span,
            },
            Expression::String(s) => self.quoted_literal(s.value(), span),
            Expression::Array(array) => Expr::Tuple {
                items: array.iter().map(|e| self.expr(e)).collect(),
                span,
            },
            Expression::Object(object) => {
                let items = object
                    .iter()
                    .map(|(key, value)| ObjectItem {
                        key: self.object_key(key),
                        value: self.expr(value.expr()),
                    })
                    .collect();
                Expr::Object {
                    items,
                    strict_keys: false,
                    span,
                }
            }
            Expression::StringTemplate(t) => self.template(t, span),
            Expression::HeredocTemplate(h) => {
                // The template starts on the line after `<<EOT`.
                let inner = self.span_of(h.template.span());
                let mut lowered = self.template(&h.template, inner);
                set_template_span(&mut lowered, span);
                lowered
            }
            Expression::Parenthesis(p) => Expr::Parens {
                inner: Box::new(self.expr(p.inner())),
                span,
            },
            Expression::Variable(v) => Expr::Variable {
                name: v.as_str().to_string(),
                span,
            },
            Expression::Conditional(c) => Expr::Conditional {
                condition: Box::new(self.expr(&c.cond_expr)),
                then: Box::new(self.expr(&c.true_expr)),
                otherwise: Box::new(self.expr(&c.false_expr)),
                span,
            },
            Expression::FuncCall(call) => {
                let mut name = String::new();
                for ns in &call.name.namespace {
                    name.push_str(ns.as_str());
                    name.push_str("::");
                }
                name.push_str(call.name.name.as_str());
                // hcl-edit keeps no span for the name itself: it starts the call.
                let name_span = self
                    .index
                    .span(span.start.byte..span.start.byte + name.len());
                // hcl-edit keeps no span for the arguments: the parentheses are found in
                // the text, after the name and at the end of the call.
                let after_name = name_span.end.byte;
                let open_byte = self
                    .text
                    .get(after_name..)
                    .and_then(|rest| rest.find('('))
                    .map_or(after_name, |i| after_name + i);
                let open_paren = self.index.span(open_byte..open_byte + 1);
                let close_paren = self
                    .index
                    .span(span.end.byte.saturating_sub(1)..span.end.byte);
                Expr::Call(Box::new(Call {
                    name,
                    name_span,
                    args: call.args.iter().map(|a| self.expr(a)).collect(),
                    expand_final: call.args.expand_final(),
                    open_paren,
                    close_paren,
                }))
            }
            Expression::Traversal(t) => {
                let source = self.expr(&t.expr);
                self.operators(source, &t.operators)
            }
            Expression::UnaryOp(op) => {
                let symbol = self.span_of(op.operator.span());
                Expr::Unary {
                    op: match op.operator.value() {
                        UnaryOperator::Neg => UnaryOp::Negate,
                        UnaryOperator::Not => UnaryOp::Not,
                    },
                    operand: Box::new(self.expr(&op.expr)),
                    span,
                    symbol,
                }
            }
            Expression::BinaryOp(op) => Expr::Binary {
                op: match op.operator.value() {
                    BinaryOperator::Eq => BinaryOp::Equal,
                    BinaryOperator::NotEq => BinaryOp::NotEqual,
                    BinaryOperator::LessEq => BinaryOp::LessOrEqual,
                    BinaryOperator::GreaterEq => BinaryOp::GreaterOrEqual,
                    BinaryOperator::Less => BinaryOp::Less,
                    BinaryOperator::Greater => BinaryOp::Greater,
                    BinaryOperator::Plus => BinaryOp::Add,
                    BinaryOperator::Minus => BinaryOp::Subtract,
                    BinaryOperator::Mul => BinaryOp::Multiply,
                    BinaryOperator::Div => BinaryOp::Divide,
                    BinaryOperator::Mod => BinaryOp::Modulo,
                    BinaryOperator::And => BinaryOp::And,
                    BinaryOperator::Or => BinaryOp::Or,
                },
                lhs: Box::new(self.expr(&op.lhs_expr)),
                rhs: Box::new(self.expr(&op.rhs_expr)),
                span,
            },
            Expression::ForExpr(f) => {
                let open = Span {
                    file: span.file.clone(),
                    start: span.start,
                    end: self.index.pos(span.start.byte + 1),
                };
                Expr::For(Box::new(ForExpr {
                    key_var: f.intro.key_var.as_ref().map(|k| k.as_str().to_string()),
                    value_var: f.intro.value_var.as_str().to_string(),
                    collection: self.expr(&f.intro.collection_expr),
                    key: f.key_expr.as_ref().map(|k| self.expr(k)),
                    value: self.expr(&f.value_expr),
                    condition: f.cond.as_ref().map(|c| self.expr(&c.expr)),
                    group: f.grouping,
                    span,
                    open,
                }))
            }
        }
    }

    /// A quoted string without interpolation: a one-part template, as hclsyntax has it, so
    /// its start range is the text inside the quotes.
    fn quoted_literal(&self, value: &str, span: Span) -> Expr {
        let inner_start = (span.start.byte + 1).min(span.end.byte);
        let inner_end = span.end.byte.saturating_sub(1).max(inner_start);
        let inner = self.index.span(inner_start..inner_end);
        Expr::Template {
            parts: vec![Expr::Literal {
                value: Value::String(value.to_string()),
                span: inner,
            }],
            span,
        }
    }

    fn object_key(&self, key: &EditObjectKey) -> ObjectKey {
        match key {
            EditObjectKey::Ident(ident) => ObjectKey::Keyword {
                name: ident.as_str().to_string(),
                span: self.span_of(ident.span()),
            },
            EditObjectKey::Expression(expr) => {
                let lowered = self.expr(expr);
                if let Some(kw) = lowered.as_keyword() {
                    return ObjectKey::Keyword {
                        name: kw.to_string(),
                        span: lowered.span(),
                    };
                }
                if let Some(t) = crate::hcl::ast::static_traversal(&lowered)
                    && !t.steps.is_empty()
                {
                    return ObjectKey::Ambiguous {
                        span: lowered.span(),
                    };
                }
                ObjectKey::Expr(lowered)
            }
        }
    }

    fn operators(
        &self,
        mut source: Expr,
        operators: &[hcl_edit::Decorated<TraversalOperator>],
    ) -> Expr {
        let mut i = 0;
        while i < operators.len() {
            let op = &operators[i];
            let step = self.span_of(op.span());
            match op.value() {
                TraversalOperator::GetAttr(name) => {
                    // hcl-edit's span of the step starts at the name; HCL's includes the dot.
                    let dot = self.dot_before(&step);
                    source = Expr::GetAttr {
                        source: Box::new(source),
                        name: name.as_str().to_string(),
                        step: dot,
                    };
                }
                TraversalOperator::LegacyIndex(n) => {
                    let dot = self.dot_before(&step);
                    source = Expr::Index {
                        source: Box::new(source),
                        key: Box::new(Expr::Literal {
                            value: Value::Number(*n.value() as f64),
                            span: step.clone(),
                        }),
                        literal_key: true,
                        bracket: dot,
                    };
                }
                TraversalOperator::Index(key) => {
                    let key = self.expr(key);
                    let literal_key = match &key {
                        Expr::Literal { .. } => true,
                        Expr::Template { parts, .. } => {
                            matches!(parts.as_slice(), [Expr::Literal { .. }])
                        }
                        _ => false,
                    };
                    let bracket = self.bracket_around(&step);
                    source = Expr::Index {
                        source: Box::new(source),
                        key: Box::new(key),
                        literal_key,
                        bracket,
                    };
                }
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    let full = matches!(op.value(), TraversalOperator::FullSplat(_));
                    let marker = if full {
                        self.bracket_around(&step)
                    } else {
                        self.dot_before(&step)
                    };
                    // A `.*` splat takes only the attribute steps after it; `[*]` takes all.
                    let mut end = i + 1;
                    while end < operators.len() {
                        match operators[end].value() {
                            TraversalOperator::GetAttr(_) | TraversalOperator::LegacyIndex(_) => {
                                end += 1
                            }
                            _ if full => end += 1,
                            _ => break,
                        }
                    }
                    let item = Expr::SplatItem {
                        span: marker.clone(),
                    };
                    let each = self.operators(item, &operators[i + 1..end]);
                    source = Expr::Splat {
                        source: Box::new(source),
                        each: Box::new(each),
                        marker,
                    };
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        source
    }

    /// Extends a step's range back over the `.` before it.
    fn dot_before(&self, step: &Span) -> Span {
        let before = self.text.get(..step.start.byte).unwrap_or_default();
        match before.trim_end().strip_suffix('.') {
            Some(rest) => {
                let start = self.index.pos(rest.len());
                Span {
                    file: step.file.clone(),
                    start,
                    end: step.end,
                }
            }
            None => step.clone(),
        }
    }

    /// Extends an index step's range to its brackets.
    fn bracket_around(&self, step: &Span) -> Span {
        let text = self.text;
        let mut start = step.start.byte;
        if !text.get(start..).unwrap_or_default().starts_with('[')
            && let Some(i) = text.get(..start).and_then(|t| t.rfind('['))
        {
            start = i;
        }
        let mut end = step.end.byte;
        if !text.get(..end).unwrap_or_default().ends_with(']')
            && let Some(i) = text.get(end..).and_then(|t| t.find(']'))
        {
            end = end + i + 1;
        }
        self.index.span(start..end)
    }

    fn template(&self, template: &Template, span: Span) -> Expr {
        let elements: Vec<&Element> = template.iter().collect();
        if let [Element::Interpolation(interp)] = elements.as_slice() {
            return Expr::TemplateWrap {
                inner: Box::new(self.expr(&interp.expr)),
                span,
            };
        }
        let parts = self.template_parts(&elements, span.clone(), false, false);
        Expr::Template { parts, span }
    }

    /// Lowers template elements, applying `~` strip markers to the adjacent literals
    /// (`trim_first`/`trim_last`: the markers around a directive's body).
    fn template_parts(
        &self,
        elements: &[&Element],
        whole: Span,
        trim_first: bool,
        trim_last: bool,
    ) -> Vec<Expr> {
        let mut parts: Vec<Expr> = Vec::new();
        let mut trim_next = trim_first;
        for (i, element) in elements.iter().enumerate() {
            let trim_this = std::mem::take(&mut trim_next);
            match element {
                Element::Literal(lit) => {
                    let mut text: &str = lit.as_str();
                    if trim_this {
                        text = text.trim_start();
                    }
                    let next_strips = match elements.get(i + 1) {
                        Some(next) => element_strips_before(next),
                        None => trim_last,
                    };
                    if next_strips {
                        text = text.trim_end();
                    }
                    parts.push(Expr::Literal {
                        value: Value::String(text.to_string()),
                        span: self.span_of(lit.span()),
                    });
                }
                Element::Interpolation(interp) => {
                    trim_next = interp.strip.strip_end();
                    parts.push(self.expr(&interp.expr));
                }
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(d) => {
                        trim_next = d.endif_expr.strip.strip_end();
                        let dspan = self.span_of(d.span());
                        let then_end = match &d.else_expr {
                            Some(e) => e.strip.strip_start(),
                            None => d.endif_expr.strip.strip_start(),
                        };
                        let then = self.directive_body(
                            &d.if_expr.template,
                            &dspan,
                            d.if_expr.strip.strip_end(),
                            then_end,
                        );
                        let otherwise = match &d.else_expr {
                            Some(e) => self.directive_body(
                                &e.template,
                                &dspan,
                                e.strip.strip_end(),
                                d.endif_expr.strip.strip_start(),
                            ),
                            None => empty_template(&dspan.end_point()),
                        };
                        parts.push(Expr::Conditional {
                            condition: Box::new(self.expr(&d.if_expr.cond_expr)),
                            then: Box::new(then),
                            otherwise: Box::new(otherwise),
                            span: dspan,
                        });
                    }
                    Directive::For(d) => {
                        trim_next = d.endfor_expr.strip.strip_end();
                        let dspan = self.span_of(d.span());
                        let value = self.directive_body(
                            &d.for_expr.template,
                            &dspan,
                            d.for_expr.strip.strip_end(),
                            d.endfor_expr.strip.strip_start(),
                        );
                        let open = Span {
                            file: dspan.file.clone(),
                            start: dspan.start,
                            end: self.index.pos(dspan.start.byte + 2),
                        };
                        let for_expr = Expr::For(Box::new(ForExpr {
                            key_var: d.for_expr.key_var.as_ref().map(|k| k.as_str().to_string()),
                            value_var: d.for_expr.value_var.as_str().to_string(),
                            collection: self.expr(&d.for_expr.collection_expr),
                            key: None,
                            value,
                            condition: None,
                            group: false,
                            span: dspan,
                            open,
                        }));
                        parts.push(Expr::TemplateJoin {
                            for_expr: Box::new(for_expr),
                        });
                    }
                },
            }
        }
        if parts.is_empty() {
            parts.push(Expr::Literal {
                value: Value::String(String::new()),
                span: whole.start_point(),
            });
        }
        parts
    }

    /// The template inside a directive (always a concatenation, never passed through).
    fn directive_body(
        &self,
        template: &Template,
        directive: &Span,
        trim_first: bool,
        trim_last: bool,
    ) -> Expr {
        let elements: Vec<&Element> = template.iter().collect();
        let span = template
            .span()
            .map_or_else(|| directive.clone(), |r| self.span_of(Some(r)));
        let parts = self.template_parts(&elements, span.clone(), trim_first, trim_last);
        Expr::Template { parts, span }
    }
}

/// Whether an element begins with a `~` that strips the literal before it.
fn element_strips_before(element: &Element) -> bool {
    match element {
        Element::Literal(_) => false,
        Element::Interpolation(i) => i.strip.strip_start(),
        Element::Directive(d) => match d.as_ref() {
            Directive::If(d) => d.if_expr.strip.strip_start(),
            Directive::For(d) => d.for_expr.strip.strip_start(),
        },
    }
}

fn empty_template(at: &Span) -> Expr {
    Expr::Template {
        parts: vec![Expr::Literal {
            value: Value::String(String::new()),
            span: at.clone(),
        }],
        span: at.clone(),
    }
}

fn set_template_span(expr: &mut Expr, outer: Span) {
    match expr {
        Expr::Template { span, .. } | Expr::TemplateWrap { span, .. } => *span = outer,
        _ => {}
    }
}
