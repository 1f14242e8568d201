//! HCL's JSON syntax (`docker-bake.json`), as hcl/v2's `json` package reads it: a JSON
//! document whose strings are templates (`"${FOO}"` works), whose block types are objects
//! keyed by label (or arrays of them), and whose properties are attributes otherwise.
//!
//! JSON is scanned here rather than with serde_json because HCL reports `FILE:LINE,COL`
//! positions and keeps repeated properties in order; serde_json's string unescaping is used
//! for string tokens, which is what Go's `encoding/json` does for hcl.

use crate::hcl::ast::{Attribute, Block, Body, Expr, ObjectItem, ObjectKey};
use crate::hcl::diagnostics::{Diag, LineIndex, Span};
use crate::hcl::parse;
use crate::value::Value;

/// A JSON value with its source range.
#[derive(Debug, Clone)]
enum Node {
    Object {
        attrs: Vec<Property>,
        open: Span,
        close: Span,
    },
    Array {
        values: Vec<Node>,
        open: Span,
        span: Span,
    },
    String {
        value: String,
        span: Span,
    },
    Number {
        value: f64,
        span: Span,
    },
    Bool {
        value: bool,
        span: Span,
    },
    Null {
        span: Span,
    },
}

#[derive(Debug, Clone)]
struct Property {
    name: String,
    name_span: Span,
    value: Node,
}

impl Node {
    fn span(&self) -> Span {
        match self {
            Node::Object { open, close, .. } => open.to(close),
            Node::Array { span, .. }
            | Node::String { span, .. }
            | Node::Number { span, .. }
            | Node::Bool { span, .. }
            | Node::Null { span } => span.clone(),
        }
    }

    fn start_span(&self) -> Span {
        match self {
            Node::Object { open, .. } | Node::Array { open, .. } => open.clone(),
            other => other.span(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    BraceO,
    BraceC,
    BrackO,
    BrackC,
    Comma,
    Colon,
    Equals,
    String,
    Number,
    Keyword,
    Invalid,
    Eof,
}

#[derive(Clone, Copy)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

fn scan(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'{' => Tok::BraceO,
            b'}' => Tok::BraceC,
            b'[' => Tok::BrackO,
            b']' => Tok::BrackC,
            b',' => Tok::Comma,
            b':' => Tok::Colon,
            b'=' => Tok::Equals,
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                tokens.push(Token {
                    kind: Tok::String,
                    start,
                    end: i,
                });
                continue;
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Tok::Number,
                    start,
                    end: i,
                });
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Tok::Keyword,
                    start,
                    end: i,
                });
                continue;
            }
            _ => Tok::Invalid,
        };
        // Single-character tokens (an invalid one spans its whole character).
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        i += len;
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: Tok::Eof,
        start: bytes.len(),
        end: bytes.len(),
    });
    tokens
}

struct Parser<'a> {
    text: &'a str,
    index: &'a LineIndex,
    tokens: Vec<Token>,
    pos: usize,
}

type ParseResult = Result<Node, Diag>;

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn read(&mut self) -> Token {
        let i = self.pos.min(self.tokens.len() - 1);
        if self.tokens[i].kind != Tok::Eof {
            self.pos += 1;
        }
        self.tokens[i]
    }

    fn span(&self, tok: &Token) -> Span {
        self.index.span(tok.start..tok.end)
    }

    fn peek_span(&self) -> Span {
        self.span(self.peek())
    }

    fn value(&mut self) -> ParseResult {
        let tok = self.peek();
        let span = self.span(tok);
        let fail = |summary: &str, detail: &str| Err(Diag::new(summary, detail, &span));
        const START: &str =
            "A JSON value must start with a brace, a bracket, a number, a string, or a keyword.";
        match tok.kind {
            Tok::BraceO => self.object(),
            Tok::BrackO => self.array(),
            Tok::Number => {
                let (start, end) = (tok.start, tok.end);
                self.read();
                match serde_json::from_str::<serde_json::Number>(&self.text[start..end])
                    .ok()
                    .and_then(|n| n.as_f64())
                {
                    Some(value) => Ok(Node::Number { value, span }),
                    None => fail(
                        "Invalid JSON number",
                        "There is a syntax error in the given JSON number.",
                    ),
                }
            }
            Tok::String => {
                let (start, end) = (tok.start, tok.end);
                self.read();
                match serde_json::from_str::<String>(&self.text[start..end]) {
                    Ok(value) => Ok(Node::String { value, span }),
                    Err(_) => fail(
                        "Invalid JSON string",
                        "There is a syntax error in the given JSON string.",
                    ),
                }
            }
            Tok::Keyword => {
                let word = self.text[tok.start..tok.end].to_string();
                self.read();
                match word.as_str() {
                    "true" => Ok(Node::Bool { value: true, span }),
                    "false" => Ok(Node::Bool { value: false, span }),
                    "null" => Ok(Node::Null { span }),
                    "undefined" | "NaN" | "Infinity" => fail(
                        "Invalid JSON keyword",
                        &format!(
                            "The JavaScript identifier {} cannot be used in JSON.",
                            crate::types::go_quote(&word)
                        ),
                    ),
                    _ => {
                        let suggestion = ["true", "false", "null"]
                            .iter()
                            .find(|k| k.starts_with(&word[..1]))
                            .map(|k| format!(" Did you mean {}?", crate::types::go_quote(k)))
                            .unwrap_or_default();
                        fail(
                            "Invalid JSON keyword",
                            &format!(
                                "{} is not a valid JSON keyword.{suggestion}",
                                crate::types::go_quote(&word)
                            ),
                        )
                    }
                }
            }
            Tok::BraceC => fail("Missing JSON value", START),
            Tok::BrackC => fail("Missing array element value", START),
            Tok::Eof => fail("Missing value", "The JSON data ends prematurely."),
            _ => fail("Invalid start of value", START),
        }
    }

    fn object(&mut self) -> ParseResult {
        let open_tok = self.read();
        let open = self.index.span(open_tok.start..open_tok.end);
        let mut attrs = Vec::new();
        loop {
            if self.peek().kind == Tok::BraceC {
                break;
            }
            let key = self.value()?;
            let Node::String {
                value: name,
                span: name_span,
            } = key
            else {
                return Err(Diag::new(
                    "Invalid object property name",
                    "A JSON object property name must be a string",
                    &key.start_span(),
                ));
            };
            let colon_kind = self.peek().kind;
            let colon_span = self.peek_span();
            self.read();
            if colon_kind != Tok::Colon {
                let (summary, detail) = match colon_kind {
                    Tok::BraceC | Tok::Comma => (
                        "Missing object value",
                        "A JSON object attribute must have a value, introduced by a colon.",
                    ),
                    Tok::Equals => (
                        "Missing property value colon",
                        "JSON uses a colon as its name/value delimiter, not an equals sign.",
                    ),
                    _ => (
                        "Missing property value colon",
                        "A colon must appear between an object property's name and its value.",
                    ),
                };
                return Err(Diag::new(summary, detail, &colon_span));
            }
            let value = self.value()?;
            attrs.push(Property {
                name,
                name_span,
                value,
            });
            match self.peek().kind {
                Tok::Comma => {
                    let comma = self.peek_span();
                    self.read();
                    if self.peek().kind == Tok::BraceC {
                        return Err(Diag::new(
                            "Trailing comma in object",
                            "JSON does not permit a trailing comma after the final property in an object.",
                            &comma,
                        ));
                    }
                }
                Tok::Eof => {
                    return Err(Diag::new(
                        "Unclosed object",
                        "No closing brace was found for this JSON object.",
                        &open,
                    ));
                }
                Tok::BrackC => {
                    self.read();
                    return Err(Diag::new(
                        "Mismatched braces",
                        "A JSON object must be closed with a brace, not a bracket.",
                        &self.peek_span(),
                    ));
                }
                Tok::BraceC => break,
                _ => {
                    self.read();
                    return Err(Diag::new(
                        "Missing attribute seperator comma",
                        "A comma must appear between each property definition in an object.",
                        &self.peek_span(),
                    ));
                }
            }
        }
        let close_tok = self.read();
        let close = self.index.span(close_tok.start..close_tok.end);
        Ok(Node::Object { attrs, open, close })
    }

    fn array(&mut self) -> ParseResult {
        let open_tok = self.read();
        let open = self.index.span(open_tok.start..open_tok.end);
        let mut values = Vec::new();
        loop {
            if self.peek().kind == Tok::BrackC {
                break;
            }
            values.push(self.value()?);
            match self.peek().kind {
                Tok::Comma => {
                    let comma = self.peek_span();
                    self.read();
                    if self.peek().kind == Tok::BrackC {
                        return Err(Diag::new(
                            "Trailing comma in array",
                            "JSON does not permit a trailing comma after the final value in an array.",
                            &comma,
                        ));
                    }
                }
                Tok::Colon => {
                    self.read();
                    return Err(Diag::new(
                        "Invalid array value",
                        "A colon is not used to introduce values in a JSON array.",
                        &self.peek_span(),
                    ));
                }
                Tok::Eof => {
                    return Err(Diag::new(
                        "Unclosed object",
                        "No closing bracket was found for this JSON array.",
                        &open,
                    ));
                }
                Tok::BraceC => {
                    self.read();
                    return Err(Diag::new(
                        "Mismatched brackets",
                        "A JSON array must be closed with a bracket, not a brace.",
                        &self.peek_span(),
                    ));
                }
                Tok::BrackC => break,
                _ => {
                    self.read();
                    return Err(Diag::new(
                        "Missing attribute seperator comma",
                        "A comma must appear between each value in an array.",
                        &self.peek_span(),
                    ));
                }
            }
        }
        let close_tok = self.read();
        let close = self.index.span(close_tok.start..close_tok.end);
        Ok(Node::Array {
            values,
            span: open.to(&close),
            open,
        })
    }
}

/// Parses a JSON bake file named `file` into the same body shape an HCL file has: the
/// `target`, `group`, `variable` and `function` properties become blocks (and a variable's
/// `validation`), everything else attributes.
pub(crate) fn parse_body(file: &str, text: &str) -> Result<Body, Vec<Diag>> {
    let index = LineIndex::new(file, text);
    let mut parser = Parser {
        text,
        index: &index,
        tokens: scan(text),
        pos: 0,
    };
    let root = parser.value().map_err(|d| vec![d])?;
    if parser.peek().kind != Tok::Eof {
        return Err(vec![Diag::new(
            "Extraneous data after value",
            "Extra characters appear after the JSON value.",
            &parser.peek_span(),
        )]);
    }
    if !matches!(root, Node::Object { .. } | Node::Array { .. }) {
        return Err(vec![Diag::new(
            "Root value must be object",
            "The root value in a JSON-based configuration must be either a JSON object or a JSON array of objects.",
            &root.start_span(),
        )]);
    }
    let lowerer = Lowerer {
        index: &index,
        text,
    };
    lowerer.root_body(&root)
}

struct Lowerer<'a> {
    index: &'a LineIndex,
    text: &'a str,
}

/// How the properties of a JSON body are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// The file: four block types, everything else attributes.
    Root,
    /// A `variable`: `validation` blocks, the rest attributes (extra ones ignored).
    Variable,
    /// A `validation` or `function`: only the named attributes.
    Strict(&'static [&'static str]),
    /// A `target` or `group`: every property an attribute.
    Attributes,
}

impl Lowerer<'_> {
    fn root_body(&self, root: &Node) -> Result<Body, Vec<Diag>> {
        self.body(root, BodyKind::Root)
    }

    fn missing_item(node: &Node) -> Span {
        match node {
            Node::Object { close, .. } => close.clone(),
            Node::Array { open, .. } => open.clone(),
            other => other.start_span(),
        }
    }

    /// hcl's `collectDeepAttrs`: an object's properties, or those of an array of objects.
    fn deep_attrs<'n>(
        &self,
        node: &'n Node,
        label: Option<&str>,
        diags: &mut Vec<Diag>,
    ) -> Vec<&'n Property> {
        match node {
            Node::Null { .. } => Vec::new(),
            Node::Object { attrs, .. } => attrs.iter().collect(),
            Node::Array { values, .. } => {
                let mut out = Vec::new();
                for v in values {
                    match v {
                        Node::Object { attrs, .. } => out.extend(attrs.iter()),
                        other => diags.push(Diag::new(
                            "Incorrect JSON value type",
                            match label {
                                Some(l) => format!(
                                    "A JSON object is required here, to specify {l} labels for this block."
                                ),
                                None => "A JSON object is required here, to define arguments and child blocks.".to_string(),
                            },
                            &other.start_span(),
                        )),
                    }
                }
                out
            }
            other => {
                diags.push(Diag::new(
                    "Incorrect JSON value type",
                    match label {
                        Some(l) => format!(
                            "Either a JSON object or JSON array of objects is required here, to specify {l} labels for this block."
                        ),
                        None => "Either a JSON object or JSON array of objects is required here, to define arguments and child blocks.".to_string(),
                    },
                    &other.start_span(),
                ));
                Vec::new()
            }
        }
    }

    fn body(&self, node: &Node, kind: BodyKind) -> Result<Body, Vec<Diag>> {
        let mut diags = Vec::new();
        let props = self.deep_attrs(node, None, &mut diags);
        let mut attributes: Vec<Attribute> = Vec::new();
        let mut blocks = Vec::new();
        for prop in props {
            if prop.name == "//" {
                continue;
            }
            let block_kind = match (kind, prop.name.as_str()) {
                (BodyKind::Root, "target" | "group" | "variable" | "function") => {
                    Some((prop.name.as_str(), true))
                }
                (BodyKind::Variable, "validation") => Some(("validation", false)),
                _ => None,
            };
            if let Some((block_type, labeled)) = block_kind {
                self.unpack_block(prop, block_type, labeled, &mut blocks, &mut diags);
                continue;
            }
            if let BodyKind::Strict(allowed) = kind
                && !allowed.contains(&prop.name.as_str())
            {
                let suggestion = crate::hcl::eval::name_suggestion(
                    &prop.name,
                    &allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
                .map(|s| format!(" Did you mean {}?", crate::types::go_quote(&s)))
                .unwrap_or_default();
                diags.push(Diag::new(
                    "Extraneous JSON object property",
                    format!(
                        "No argument or block type is named {}.{suggestion}",
                        crate::types::go_quote(&prop.name)
                    ),
                    &prop.name_span,
                ));
                continue;
            }
            if let Some(existing) = attributes.iter().find(|a| a.name == prop.name) {
                let (summary, detail) = if kind == BodyKind::Root {
                    (
                        "Duplicate attribute definition",
                        format!(
                            "The argument {} was already set at {}.",
                            crate::types::go_quote(&prop.name),
                            existing.span
                        ),
                    )
                } else {
                    (
                        "Duplicate argument",
                        format!(
                            "The argument {} was already set at {}.",
                            crate::types::go_quote(&prop.name),
                            existing.span
                        ),
                    )
                };
                diags.push(Diag::new(summary, detail, &prop.name_span));
                continue;
            }
            let expr = match (kind, prop.name.as_str()) {
                // These are read statically by HCL (type expressions, parameter names):
                // a JSON string there holds HCL expression syntax.
                (BodyKind::Variable, "type") | (BodyKind::Strict(_), "variadic_params") => {
                    self.static_expr(&prop.value)
                }
                (BodyKind::Strict(_), "params") => match &prop.value {
                    Node::Array { values, span, .. } => Expr::Tuple {
                        items: values.iter().map(|v| self.static_expr(v)).collect(),
                        span: span.clone(),
                    },
                    other => self.static_expr(other),
                },
                // A variable's description is decoded without evaluation: verbatim.
                (BodyKind::Variable, "description") => match &prop.value {
                    Node::String { value, span } => Expr::Literal {
                        value: Value::String(value.clone()),
                        span: span.clone(),
                    },
                    other => self.expr(other),
                },
                _ => self.expr(&prop.value),
            };
            attributes.push(Attribute {
                name: prop.name.clone(),
                name_span: prop.name_span.clone(),
                span: prop.name_span.to(&prop.value.span()),
                expr,
            });
        }
        if diags.is_empty() {
            Ok(Body {
                attributes,
                blocks,
                missing_item: Self::missing_item(node),
            })
        } else {
            Err(diags)
        }
    }

    /// hcl's `unpackBlock` for block types with one label (`labeled`) or none.
    fn unpack_block(
        &self,
        prop: &Property,
        block_type: &str,
        labeled: bool,
        blocks: &mut Vec<Block>,
        diags: &mut Vec<Diag>,
    ) {
        let body_kind = match block_type {
            "variable" => BodyKind::Variable,
            "function" => BodyKind::Strict(&["params", "variadic_params", "result"]),
            "validation" => BodyKind::Strict(&["condition", "error_message"]),
            _ => BodyKind::Attributes,
        };
        if !labeled {
            self.push_blocks(
                &prop.value,
                block_type,
                body_kind,
                Vec::new(),
                Vec::new(),
                blocks,
                diags,
            );
            return;
        }
        let labels = self.deep_attrs(&prop.value, Some("name"), diags);
        if labels.is_empty() && !matches!(prop.value, Node::Null { .. }) {
            diags.push(Diag::new(
                "Missing block label",
                format!(
                    "At least one object property is required, whose name represents the {block_type} block's name."
                ),
                &prop.value.start_span(),
            ));
            return;
        }
        for label in labels {
            self.push_blocks(
                &label.value,
                block_type,
                body_kind,
                vec![label.name.clone()],
                vec![label.name_span.clone()],
                blocks,
                diags,
            );
        }
    }

    /// The blocks one JSON value holds: an object is one, an array several, null none.
    #[allow(clippy::too_many_arguments)]
    fn push_blocks(
        &self,
        node: &Node,
        block_type: &str,
        body_kind: BodyKind,
        labels: Vec<String>,
        label_spans: Vec<Span>,
        blocks: &mut Vec<Block>,
        diags: &mut Vec<Diag>,
    ) {
        let def_span = node.start_span();
        let instances: Vec<&Node> = match node {
            Node::Null { .. } => Vec::new(),
            Node::Object { .. } => vec![node],
            Node::Array { values, .. } => values.iter().collect(),
            other => {
                diags.push(Diag::new(
                    "Incorrect JSON value type",
                    format!(
                        "Either a JSON object or a JSON array is required, representing the contents of one or more {} blocks.",
                        crate::types::go_quote(block_type)
                    ),
                    &other.start_span(),
                ));
                Vec::new()
            }
        };
        for instance in instances {
            match self.body(instance, body_kind) {
                Ok(body) => blocks.push(Block {
                    kind: block_type.to_string(),
                    labels: labels.clone(),
                    label_spans: label_spans.clone(),
                    body,
                    def_span: def_span.clone(),
                }),
                Err(mut d) => diags.append(&mut d),
            }
        }
    }

    /// A JSON value as an HCL JSON expression: strings are templates.
    fn expr(&self, node: &Node) -> Expr {
        match node {
            Node::String { value, span } => Expr::TemplateWrap {
                inner: Box::new(self.template(value, span)),
                span: span.clone(),
            },
            Node::Number { value, span } => Expr::Literal {
                value: Value::Number(*value),
                span: span.clone(),
            },
            Node::Bool { value, span } => Expr::Literal {
                value: Value::Bool(*value),
                span: span.clone(),
            },
            Node::Null { span } => Expr::Literal {
                value: Value::Null,
                span: span.clone(),
            },
            Node::Array { values, span, .. } => Expr::Tuple {
                items: values.iter().map(|v| self.expr(v)).collect(),
                span: span.clone(),
            },
            Node::Object { attrs, .. } => Expr::Object {
                items: attrs
                    .iter()
                    .map(|p| ObjectItem {
                        key: ObjectKey::Expr(self.template(&p.name, &p.name_span)),
                        value: self.expr(&p.value),
                    })
                    .collect(),
                strict_keys: true,
                span: node.span(),
            },
        }
    }

    /// The template a JSON string holds, positioned just inside its opening quote.
    fn template(&self, value: &str, span: &Span) -> Expr {
        match parse::parse_template_at(self.index, self.text, value, span.start.byte + 1) {
            Ok(expr) => expr,
            Err(diag) => Expr::Invalid {
                diag: Box::new(diag),
            },
        }
    }

    /// A JSON string read as an HCL expression (how hcl reads JSON in static contexts).
    fn static_expr(&self, node: &Node) -> Expr {
        match node {
            Node::String { value, span } => {
                match parse::parse_expr_at(self.index, self.text, value, span.start.byte + 1) {
                    Ok(expr) => expr,
                    Err(diag) => Expr::Invalid {
                        diag: Box::new(diag),
                    },
                }
            }
            other => self.expr(other),
        }
    }
}
