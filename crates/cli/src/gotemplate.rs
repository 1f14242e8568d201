//! Go `text/template` for the `--format` flags of `ls`, `du` and `imagetools inspect`: the
//! subset buildx documents and scripts use, evaluated over a small data model that says, per
//! value, what Go would see (field and method names, `nil` kinds, `MarshalJSON`).
//!
//! - [`Template::parse`] refuses what Go refuses, worded as Go words it (`template: :1:
//!   function "x" not defined`, `unexpected EOF`, …), so a bad `--format` fails before a daemon
//!   or registry is contacted.
//! - Actions: field chains (`.A.B`, `$x.A`, `(pipe).A`), `.`, variables (`$x := …`, `$x = …`),
//!   literals, pipelines, `if`/`else if`/`else`, `range` (lists, maps, integers; `break`,
//!   `continue`, `else`), `with`/`else with`, comments and `{{-`/`-}}` trimming.
//! - Functions: Go's builtins (`and or not len index slice print printf println html js
//!   urlquery eq ne lt le gt ge`), plus either docker's CLI set (`json split join title lower
//!   upper pad truncate`, [`Funcs::DockerCli`]) or buildx's `imagetools inspect` set (an
//!   indented `json` only, [`Funcs::Imagetools`]). `call` and `define`/`template`/`block` are
//!   refused as unsupported.
//! - [`CliFormat`] is docker's CLI formatter around it: `table …` (a header row and
//!   `text/tabwriter` columns), `json` (`{{json .}}`), literal `\t`/`\n`.

use std::collections::BTreeMap;
use std::fmt;

use crate::tabwriter;
use brix_build::go::json_string;

/// Why a template could not be parsed or executed, worded as Go's `text/template` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

// ---------------------------------------------------------------------------------------------
// The data model
// ---------------------------------------------------------------------------------------------

/// A value as a Go template sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// A nil pointer or interface: prints `<nil>`, JSON `null`.
    Nil,
    /// A missing map key: prints `<no value>`, is false.
    NoValue,
    /// A `bool`.
    Bool(bool),
    /// An `int` (or any integer type).
    Int(i64),
    /// A `float64`.
    Float(f64),
    /// A `string`.
    Str(String),
    /// A slice.
    List(Vec<Data>),
    /// A nil slice: prints `[]`, JSON `null`.
    NilList,
    /// A map with string keys (Go prints and marshals it sorted).
    Map(BTreeMap<String, Data>),
    /// A nil map: prints `map[]`, JSON `null`.
    NilMap,
    /// A struct, with fields and methods.
    Struct(Box<Struct>),
    /// A value brix cannot provide: using it fails with this message.
    Unavailable(String),
}

/// A Go struct (or pointer to one) with its fields and no-argument methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    type_name: String,
    members: Vec<Member>,
    marshal_json: Option<Data>,
    display: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    name: String,
    kind: MemberKind,
    value: Data,
}

#[derive(Debug, Clone, PartialEq)]
enum MemberKind {
    /// A field, with its JSON key and `omitempty` (no key: `json:"-"`).
    Field { json: Option<(String, bool)> },
    /// A method: templates call it, `json` and `%v` do not see it.
    Method,
}

impl Struct {
    /// A struct of Go type `type_name` (as Go names it in messages, e.g. `*commands.lsContext`).
    pub fn new(type_name: impl Into<String>) -> Self {
        Struct {
            type_name: type_name.into(),
            members: Vec::new(),
            marshal_json: None,
            display: None,
        }
    }

    /// A field marshalled under its own name (an untagged Go field).
    pub fn field(self, name: &str, value: impl Into<Data>) -> Self {
        let json = Some((name.to_owned(), false));
        self.member(name, MemberKind::Field { json }, value.into())
    }

    /// A field with a `json:"key"` (or `json:"key,omitempty"`) tag.
    pub fn tagged(self, name: &str, key: &str, omitempty: bool, value: impl Into<Data>) -> Self {
        let json = Some((key.to_owned(), omitempty));
        self.member(name, MemberKind::Field { json }, value.into())
    }

    /// A no-argument method: templates see it, `json` and `%v` do not.
    pub fn method(self, name: &str, value: impl Into<Data>) -> Self {
        self.member(name, MemberKind::Method, value.into())
    }

    /// What `json` prints for this value instead of its fields (a Go `MarshalJSON` method).
    pub fn marshal_json(mut self, json: impl Into<Data>) -> Self {
        self.marshal_json = Some(json.into());
        self
    }

    /// What printing this value shows (a Go `String()` or `Error()` method).
    pub fn display(mut self, text: impl Into<String>) -> Self {
        self.display = Some(text.into());
        self
    }

    fn member(mut self, name: &str, kind: MemberKind, value: Data) -> Self {
        self.members.push(Member {
            name: name.to_owned(),
            kind,
            value,
        });
        self
    }

    fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn fields(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.kind, MemberKind::Field { .. }))
    }
}

impl From<Struct> for Data {
    fn from(s: Struct) -> Self {
        Data::Struct(Box::new(s))
    }
}
impl From<&str> for Data {
    fn from(s: &str) -> Self {
        Data::Str(s.to_owned())
    }
}
impl From<String> for Data {
    fn from(s: String) -> Self {
        Data::Str(s)
    }
}
impl From<&String> for Data {
    fn from(s: &String) -> Self {
        Data::Str(s.clone())
    }
}
impl From<bool> for Data {
    fn from(b: bool) -> Self {
        Data::Bool(b)
    }
}
impl From<i64> for Data {
    fn from(n: i64) -> Self {
        Data::Int(n)
    }
}
impl From<u64> for Data {
    fn from(n: u64) -> Self {
        Data::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<Vec<Data>> for Data {
    fn from(items: Vec<Data>) -> Self {
        Data::List(items)
    }
}
impl From<BTreeMap<String, Data>> for Data {
    fn from(map: BTreeMap<String, Data>) -> Self {
        Data::Map(map)
    }
}

impl From<&serde_json::Value> for Data {
    /// JSON as Go's `interface{}` decoding gives it: objects are maps.
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value;
        match v {
            Value::Null => Data::Nil,
            Value::Bool(b) => Data::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Data::Int(i),
                None => Data::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Data::Str(s.clone()),
            Value::Array(items) => Data::List(items.iter().map(Data::from).collect()),
            Value::Object(map) => Data::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Data::from(v)))
                    .collect(),
            ),
        }
    }
}

impl Data {
    /// A `[]string`; empty is a nil slice (`null` in JSON, `[]` printed), as Go's unset slices.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Data {
        if items.is_empty() {
            Data::NilList
        } else {
            Data::List(items.iter().map(|s| Data::from(s.as_ref())).collect())
        }
    }

    /// A `map[string]string`; empty is a nil map.
    pub fn string_map<'a>(items: impl IntoIterator<Item = (&'a String, &'a String)>) -> Data {
        let map: BTreeMap<String, Data> = items
            .into_iter()
            .map(|(k, v)| (k.clone(), Data::from(v)))
            .collect();
        if map.is_empty() {
            Data::NilMap
        } else {
            Data::Map(map)
        }
    }

    fn type_name(&self) -> String {
        match self {
            Data::Nil | Data::NoValue | Data::Unavailable(_) => "<nil>".into(),
            Data::Bool(_) => "bool".into(),
            Data::Int(_) => "int".into(),
            Data::Float(_) => "float64".into(),
            Data::Str(_) => "string".into(),
            Data::List(items) => format!("[]{}", elem_type(items.iter())),
            Data::NilList => "[]string".into(),
            Data::Map(m) => format!("map[string]{}", elem_type(m.values())),
            Data::NilMap => "map[string]string".into(),
            Data::Struct(s) => s.type_name.clone(),
        }
    }

    /// Go's truth: false, 0, "", nil and empty collections are false.
    fn truth(&self) -> Result<bool, String> {
        Ok(match self {
            Data::Nil | Data::NoValue | Data::NilList | Data::NilMap => false,
            Data::Bool(b) => *b,
            Data::Int(n) => *n != 0,
            Data::Float(f) => *f != 0.0,
            Data::Str(s) => !s.is_empty(),
            Data::List(items) => !items.is_empty(),
            Data::Map(m) => !m.is_empty(),
            Data::Struct(_) => true,
            Data::Unavailable(why) => return Err(why.clone()),
        })
    }

    /// The first unavailable value inside, if any.
    fn unavailable(&self) -> Option<&str> {
        match self {
            Data::Unavailable(why) => Some(why),
            Data::List(items) => items.iter().find_map(Data::unavailable),
            Data::Map(m) => m.values().find_map(Data::unavailable),
            Data::Struct(s) => s.members.iter().find_map(|m| m.value.unavailable()),
            _ => None,
        }
    }
}

fn elem_type<'a>(mut items: impl Iterator<Item = &'a Data>) -> String {
    match items.next() {
        None | Some(Data::Str(_)) => "string".into(),
        Some(Data::Struct(s)) => s.type_name.trim_start_matches('*').to_owned(),
        Some(_) => "interface {}".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Printing (fmt's %v) and JSON (encoding/json)
// ---------------------------------------------------------------------------------------------

/// `fmt.Sprint(v)` for one value.
fn go_print(d: &Data) -> String {
    let mut out = String::new();
    format_value(&mut out, d, 'v', &Spec::default());
    out
}

/// A Go float as `%v` prints it: `%g` with the shortest digits, in exponent form below
/// 1e-4 and from 1e+06 on.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = format!("{f:e}"); // the shortest digits: "1.5e3"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// encoding/json's float text.
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{}", exp.abs());
    }
    format!("{f}")
}

/// How `json` lays its output out.
#[derive(Debug, Clone, Copy)]
struct JsonStyle {
    /// `json.MarshalIndent(v, "", "  ")` rather than compact.
    indent: bool,
    /// Escape `<`, `>` and `&` (`json.Marshal`), rather than an encoder with
    /// `SetEscapeHTML(false)`. A `MarshalJSON` result is always escaped: Go's `json.Marshal`
    /// made it.
    escape_html: bool,
}

fn write_json(out: &mut String, d: &Data, style: JsonStyle, depth: usize) -> Result<(), String> {
    let newline = |out: &mut String, depth: usize| {
        if style.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
    };
    let colon = if style.indent { ": " } else { ":" };
    match d {
        Data::Nil | Data::NoValue | Data::NilList | Data::NilMap => out.push_str("null"),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Int(n) => out.push_str(&n.to_string()),
        Data::Float(f) => out.push_str(&json_float(*f)),
        Data::Str(s) => json_string(out, s, style.escape_html),
        Data::Unavailable(why) => return Err(why.clone()),
        Data::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(out, item, style, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        Data::Map(_) | Data::Struct(_) => {
            let entries: Vec<(&str, &Data)> = match d {
                Data::Map(m) => m.iter().map(|(k, v)| (k.as_str(), v)).collect(),
                Data::Struct(s) => {
                    if let Some(json) = &s.marshal_json {
                        let escaped = JsonStyle {
                            escape_html: true,
                            ..style
                        };
                        return write_json(out, json, escaped, depth);
                    }
                    s.fields()
                        .filter_map(|m| match &m.kind {
                            MemberKind::Field {
                                json: Some((key, omitempty)),
                            } if !(*omitempty && is_empty(&m.value)) => {
                                Some((key.as_str(), &m.value))
                            }
                            _ => None,
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_string(out, key, style.escape_html);
                out.push_str(colon);
                write_json(out, value, style, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
    }
    Ok(())
}

/// Go's `omitempty`: false, 0, "", nil, and empty slices and maps.
fn is_empty(d: &Data) -> bool {
    match d {
        Data::Nil | Data::NoValue | Data::NilList | Data::NilMap => true,
        Data::Bool(b) => !b,
        Data::Int(n) => *n == 0,
        Data::Float(f) => *f == 0.0,
        Data::Str(s) => s.is_empty(),
        Data::List(items) => items.is_empty(),
        Data::Map(m) => m.is_empty(),
        Data::Struct(_) | Data::Unavailable(_) => false,
    }
}

/// `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `%` directive's flags, width and precision.
#[derive(Debug, Clone, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    fn pad(&self, out: &mut String, text: &str, numeric: bool) {
        let len = text.chars().count();
        let fill = self.width.unwrap_or(0).saturating_sub(len);
        if fill == 0 {
            out.push_str(text);
        } else if self.minus {
            out.push_str(text);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if self.zero && numeric {
            let (sign, digits) = match text.strip_prefix(['-', '+']) {
                Some(rest) => (&text[..1], rest),
                None => ("", text),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(text);
        }
    }
}

/// fmt's formatting of one operand with one verb (`%v`, `%s`, `%d`, …).
fn format_value(out: &mut String, d: &Data, verb: char, spec: &Spec) {
    let bad = |out: &mut String| {
        if matches!(d, Data::Nil | Data::NoValue) {
            out.push_str(&format!("%!{verb}(<nil>)"));
        } else {
            out.push_str(&format!("%!{verb}({}={})", d.type_name(), go_print(d)));
        }
    };
    match d {
        Data::Nil | Data::NoValue | Data::Unavailable(_) => {
            let text = if matches!(d, Data::NoValue) && verb == 'v' && !spec.plus {
                "<no value>"
            } else {
                "<nil>"
            };
            if verb == 'v' {
                spec.pad(out, text, false)
            } else {
                bad(out)
            }
        }
        Data::Bool(b) => match verb {
            'v' | 't' => spec.pad(out, if *b { "true" } else { "false" }, false),
            _ => bad(out),
        },
        Data::Int(n) => {
            let n = *n;
            let signed = |digits: String| {
                let sign = if n < 0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else if spec.space {
                    " "
                } else {
                    ""
                };
                format!("{sign}{digits}")
            };
            let abs = n.unsigned_abs();
            match verb {
                'v' | 'd' => spec.pad(out, &signed(abs.to_string()), true),
                'x' => spec.pad(out, &signed(format!("{abs:x}")), true),
                'X' => spec.pad(out, &signed(format!("{abs:X}")), true),
                'o' => spec.pad(out, &signed(format!("{abs:o}")), true),
                'b' => spec.pad(out, &signed(format!("{abs:b}")), true),
                'c' => {
                    let c = u32::try_from(n).ok().and_then(char::from_u32);
                    spec.pad(out, &c.unwrap_or('\u{fffd}').to_string(), false)
                }
                'q' => {
                    let c = u32::try_from(n).ok().and_then(char::from_u32);
                    let quoted = go_quote(&c.unwrap_or('\u{fffd}').to_string());
                    let inner = &quoted[1..quoted.len() - 1];
                    let inner = if inner == "'" { "\\'" } else { inner };
                    spec.pad(out, &format!("'{}'", inner.replace("\\\"", "\"")), false)
                }
                'U' => spec.pad(out, &format!("U+{abs:04X}"), false),
                _ => bad(out),
            }
        }
        Data::Float(f) => {
            let f = *f;
            let text = match verb {
                'v' | 'g' | 'G' => match spec.precision {
                    None => go_float(f),
                    Some(p) => format_g(f, p),
                },
                'f' | 'F' => format!("{f:.*}", spec.precision.unwrap_or(6)),
                'e' | 'E' => go_exp(f, spec.precision.unwrap_or(6), verb == 'E'),
                _ => return bad(out),
            };
            let text = if spec.plus && f >= 0.0 {
                format!("+{text}")
            } else {
                text
            };
            spec.pad(out, &text, true)
        }
        Data::Str(s) => match verb {
            'v' | 's' => {
                let text: String = match spec.precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                };
                spec.pad(out, &text, false)
            }
            'q' => spec.pad(out, &go_quote(s), false),
            'x' | 'X' => {
                let mut hex = String::new();
                for b in s.bytes() {
                    hex.push_str(&if verb == 'x' {
                        format!("{b:02x}")
                    } else {
                        format!("{b:02X}")
                    });
                }
                spec.pad(out, &hex, false)
            }
            _ => bad(out),
        },
        Data::List(_) | Data::NilList => {
            let items: &[Data] = match d {
                Data::List(items) => items,
                _ => &[],
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_value(out, item, verb, spec);
            }
            out.push(']');
        }
        Data::Map(_) | Data::NilMap => {
            out.push_str("map[");
            if let Data::Map(m) = d {
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    format_value(out, &Data::Str(k.clone()), verb, spec);
                    out.push(':');
                    format_value(out, v, verb, spec);
                }
            }
            out.push(']');
        }
        Data::Struct(s) => {
            if let Some(text) = &s.display
                && matches!(verb, 'v' | 's' | 'q')
            {
                return format_value(out, &Data::Str(text.clone()), verb, spec);
            }
            out.push('{');
            for (i, m) in s.fields().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if spec.plus && verb == 'v' {
                    out.push_str(&m.name);
                    out.push(':');
                }
                format_value(out, &m.value, verb, spec);
            }
            out.push('}');
        }
    }
}

/// `%e` with Go's exponent (`1.500000e+00`).
fn go_exp(f: f64, precision: usize, upper: bool) -> String {
    let sci = format!("{f:.precision$e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exp.abs())
}

/// `%.Ng`.
fn format_g(f: f64, precision: usize) -> String {
    let p = precision.max(1);
    let sci = format!("{f:.*e}", p - 1);
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let text = go_exp(f, p - 1, false);
        match text.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => text,
        }
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        let text = format!("{f:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    }
}

/// `fmt.Sprintf`.
fn go_sprintf(format: &str, args: &[Data]) -> String {
    let mut out = String::new();
    let mut args_used = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => {} // Go's alternate forms (`%#v`, `%#x`) print as the plain verb here.
                _ => break,
            }
            chars.next();
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            if chars.peek() == Some(&'*') {
                chars.next();
                let n = match args.get(args_used) {
                    Some(Data::Int(n)) => usize::try_from(*n).ok(),
                    _ => None,
                };
                args_used += 1;
                return n;
            }
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            digits.parse().ok()
        };
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(args_used) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        args_used += 1;
        if verb == 'T' {
            spec.pad(&mut out, &arg.type_name(), false);
            continue;
        }
        if !"vtdbcoqxXUeEfFgGs".contains(verb) {
            out.push_str(&format!("%!{verb}({}={})", arg.type_name(), go_print(arg)));
            continue;
        }
        format_value(&mut out, arg, verb, &spec);
    }
    if args_used < args.len() {
        let extra: Vec<String> = args[args_used..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), go_print(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    Eof,
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Ident,
    Field,
    Variable,
    Dot,
    Str,
    RawStr,
    CharConst,
    Number,
    Bool,
    Nil,
    Char,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    // Keywords.
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    pos: usize,
    val: String,
    line: usize,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tok {
            Tok::Eof => f.write_str("EOF"),
            Tok::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", go_quote(&head))
            }
            _ => f.write_str(&go_quote(&self.val)),
        }
    }
}

impl Tok {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Tok::Block
                | Tok::Break
                | Tok::Continue
                | Tok::Define
                | Tok::Else
                | Tok::End
                | Tok::If
                | Tok::Range
                | Tok::Template
                | Tok::With
        )
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Go's lexer: text and actions, then the tokens of each action. A lexing error becomes an
/// `Error` item where it happened, so errors earlier in the template win, as in Go.
struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: usize,
    items: Vec<Item>,
}

impl<'a> Lexer<'a> {
    fn lex(input: &'a str) -> Vec<Item> {
        let mut l = Lexer {
            input,
            pos: 0,
            start: 0,
            paren_depth: 0,
            items: Vec::new(),
        };
        let mut inside = false;
        loop {
            let more = if inside {
                l.inside_action(&mut inside)
            } else {
                l.text(&mut inside)
            };
            if !more {
                break;
            }
        }
        l.items
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: char) {
        self.pos -= c.len_utf8();
    }

    fn line_at(&self, pos: usize) -> usize {
        1 + self.input[..pos].matches('\n').count()
    }

    fn emit(&mut self, tok: Tok) {
        let val = self.input[self.start..self.pos].to_owned();
        self.items.push(Item {
            tok,
            pos: self.start,
            val,
            line: self.line_at(self.start),
        });
        self.ignore();
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    /// Stops lexing with an error item.
    fn error(&mut self, msg: impl Into<String>) -> bool {
        self.items.push(Item {
            tok: Tok::Error,
            pos: self.start,
            val: msg.into(),
            line: self.line_at(self.pos),
        });
        false
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        let mut chars = rest.chars();
        if let (Some(s), Some('-')) = (chars.next(), chars.next())
            && is_space(s)
            && rest[2..].starts_with("}}")
        {
            return (true, true);
        }
        (rest.starts_with("}}"), false)
    }

    fn has_left_trim(s: &str) -> bool {
        let mut c = s.chars();
        c.next() == Some('-') && c.next().is_some_and(is_space)
    }

    fn text(&mut self, inside: &mut bool) -> bool {
        if let Some(x) = self.rest().find("{{") {
            let delim = self.pos + x;
            let mut end = delim;
            if Self::has_left_trim(&self.input[delim + 2..]) {
                end = self.input[self.start..delim]
                    .trim_end_matches(is_space)
                    .len()
                    + self.start;
            }
            if end > self.start {
                self.pos = end;
                self.emit(Tok::Text);
            }
            self.pos = delim;
            self.ignore();
            return self.left_delim(inside);
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Tok::Text);
        }
        self.items.push(Item {
            tok: Tok::Eof,
            pos: self.pos,
            val: String::new(),
            line: self.line_at(self.pos),
        });
        false
    }

    fn left_delim(&mut self, inside: &mut bool) -> bool {
        self.pos += 2;
        let trim = Self::has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.ignore();
            return self.comment();
        }
        self.emit(Tok::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        *inside = true;
        true
    }

    fn comment(&mut self) -> bool {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.error("unclosed comment");
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter");
        }
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
        }
        self.ignore();
        true
    }

    fn right_delim(&mut self, inside: &mut bool) -> bool {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += 2;
        self.emit(Tok::RightDelim);
        if trim {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
            self.ignore();
        }
        *inside = false;
        true
    }

    fn inside_action(&mut self, inside: &mut bool) -> bool {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.right_delim(inside);
            }
            return self.error("unclosed left paren");
        }
        let Some(c) = self.next() else {
            return self.error("unclosed action");
        };
        match c {
            c if is_space(c) => {
                self.backup(c);
                self.space();
            }
            '=' => self.emit(Tok::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=");
                }
                self.emit(Tok::Declare);
            }
            '|' => self.emit(Tok::Pipe),
            '"' => return self.quote(),
            '`' => return self.raw_quote(),
            '$' => return self.variable(),
            '\'' => return self.char_const(),
            '.' if self.peek().is_some_and(|n| !n.is_ascii_digit()) => return self.field(),
            '.' | '+' | '-' | '0'..='9' => {
                self.backup(c);
                return self.number();
            }
            c if is_alnum(c) => {
                self.backup(c);
                return self.identifier();
            }
            '(' => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
            }
            ')' => {
                if self.paren_depth == 0 {
                    return self.error("unexpected right paren");
                }
                self.paren_depth -= 1;
                self.emit(Tok::RParen);
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char),
            c => {
                return self.error(format!(
                    "unrecognized character in action: U+{:04X} {}",
                    c as u32,
                    go_quote_char(c)
                ));
            }
        }
        true
    }

    fn space(&mut self) {
        while let Some(c) = self.peek().filter(|c| is_space(*c)) {
            self.next();
            // A space before `-}}` belongs to the trim marker.
            if self.rest().starts_with("-}}") {
                self.backup(c);
                break;
            }
        }
        if self.pos > self.start {
            self.emit(Tok::Space);
        }
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    fn identifier(&mut self) -> bool {
        while let Some(c) = self.peek().filter(|c| is_alnum(*c)) {
            let _ = c;
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        let tok = match &self.input[self.start..self.pos] {
            "block" => Tok::Block,
            "break" => Tok::Break,
            "continue" => Tok::Continue,
            "define" => Tok::Define,
            "else" => Tok::Else,
            "end" => Tok::End,
            "if" => Tok::If,
            "range" => Tok::Range,
            "nil" => Tok::Nil,
            "template" => Tok::Template,
            "with" => Tok::With,
            "true" | "false" => Tok::Bool,
            _ => Tok::Ident,
        };
        self.emit(tok);
        true
    }

    fn bad_character(&mut self) -> bool {
        let c = self.peek().unwrap_or(' ');
        self.error(format!(
            "bad character U+{:04X} {}",
            c as u32,
            go_quote_char(c)
        ))
    }

    fn field(&mut self) -> bool {
        self.field_or_variable(Tok::Field)
    }

    fn variable(&mut self) -> bool {
        self.field_or_variable(Tok::Variable)
    }

    fn field_or_variable(&mut self, tok: Tok) -> bool {
        if self.at_terminator() {
            self.emit(if tok == Tok::Variable {
                Tok::Variable
            } else {
                Tok::Dot
            });
            return true;
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        self.emit(tok);
        true
    }

    fn quote(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return self.error("unterminated quoted string"),
                    Some(_) => {}
                },
                Some('\n') | None => return self.error("unterminated quoted string"),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::Str);
        true
    }

    fn raw_quote(&mut self) -> bool {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string"),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::RawStr);
        true
    }

    fn char_const(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return self.error("unterminated character constant"),
                    Some(_) => {}
                },
                Some('\n') | None => return self.error("unterminated character constant"),
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::CharConst);
        true
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            let text = self.input[self.start..self.pos].to_owned();
            return self.error(format!("bad number syntax: {}", go_quote(&text)));
        }
        self.emit(Tok::Number);
        true
    }
}

fn go_quote_char(c: char) -> String {
    let q = go_quote(&c.to_string());
    format!("'{}'", &q[1..q.len() - 1])
}

// ---------------------------------------------------------------------------------------------
// Parse tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Control {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    decls: Vec<String>,
    is_assign: bool,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Arg {
    pos: usize,
    kind: ArgKind,
}

#[derive(Debug, Clone)]
enum ArgKind {
    Field(Vec<String>),
    Variable(String, Vec<String>),
    Chain(Box<Arg>, Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str { quoted: String, text: String },
    Ident(String),
    Pipe(Box<Pipe>),
}

#[derive(Debug, Clone)]
struct Number {
    text: String,
    int: Option<i64>,
    float: Option<f64>,
    is_char: bool,
}

impl Number {
    /// The value Go gives an untyped constant (`idealConstant`).
    fn value(&self) -> Result<Data, String> {
        let hex_int = {
            let t = self.text.trim_start_matches(['+', '-']);
            (t.starts_with("0x") || t.starts_with("0X")) && !t.contains(['p', 'P'])
        };
        if let Some(f) = self.float
            && !hex_int
            && !self.is_char
            && self.text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Data::Float(f));
        }
        match self.int {
            Some(n) => Ok(Data::Int(n)),
            None => Err(format!("{} overflows int", self.text)),
        }
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decls.is_empty() {
            write!(f, "{} ", self.decls.join(", "))?;
            f.write_str(if self.is_assign { "= " } else { ":= " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match &a.kind {
                ArgKind::Pipe(p) => write!(f, "({p})")?,
                _ => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = |f: &mut fmt::Formatter<'_>, idents: &[String]| {
            idents.iter().try_for_each(|i| write!(f, ".{i}"))
        };
        match &self.kind {
            ArgKind::Field(idents) => fields(f, idents),
            ArgKind::Variable(name, idents) => {
                f.write_str(name)?;
                fields(f, idents)
            }
            ArgKind::Chain(node, idents) => {
                match &node.kind {
                    ArgKind::Pipe(p) => write!(f, "({p})")?,
                    _ => write!(f, "{node}")?,
                }
                fields(f, idents)
            }
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Number(n) => f.write_str(&n.text),
            ArgKind::Str { quoted, .. } => f.write_str(quoted),
            ArgKind::Ident(name) => f.write_str(name),
            ArgKind::Pipe(p) => write!(f, "({p})"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Which functions a template may call besides Go's builtins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funcs {
    /// docker's CLI template functions (`ls`, `du`): `json` (compact, HTML left as is),
    /// `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`.
    DockerCli,
    /// buildx's `imagetools inspect`: `json` only, indented by two spaces.
    Imagetools,
    /// Go's builtins only (buildx's `history inspect --format`).
    Builtins,
}

const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js",
    "urlquery", "eq", "ne", "lt", "le", "gt", "ge",
];
const CLI_FUNCS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];
const UNSUPPORTED: &[&str] = &["call"];

impl Funcs {
    fn defines(self, name: &str) -> bool {
        BUILTINS.contains(&name)
            || match self {
                Funcs::DockerCli => CLI_FUNCS.contains(&name),
                Funcs::Imagetools => name == "json",
                Funcs::Builtins => false,
            }
    }
}

struct Parser {
    name: String,
    items: Vec<Item>,
    at: usize,
    funcs: Funcs,
    vars: Vec<String>,
    range_depth: usize,
}

type ParseResult<T> = Result<T, TemplateError>;

impl Parser {
    fn error(&self, msg: impl fmt::Display) -> TemplateError {
        let line = self
            .items
            .get(self.at.saturating_sub(1))
            .map_or(1, |i| i.line);
        TemplateError(format!("template: {}:{line}: {msg}", self.name))
    }

    fn next(&mut self) -> ParseResult<Item> {
        let item = self.items.get(self.at).cloned().unwrap_or(Item {
            tok: Tok::Eof,
            pos: 0,
            val: String::new(),
            line: 1,
        });
        if self.at < self.items.len() {
            self.at += 1;
        }
        if item.tok == Tok::Error {
            return Err(TemplateError(format!(
                "template: {}:{}: {}",
                self.name, item.line, item.val
            )));
        }
        Ok(item)
    }

    fn backup(&mut self) {
        self.at = self.at.saturating_sub(1);
    }

    fn peek(&mut self) -> ParseResult<Item> {
        let item = self.next()?;
        self.backup();
        Ok(item)
    }

    fn next_non_space(&mut self) -> ParseResult<Item> {
        loop {
            let item = self.next()?;
            if item.tok != Tok::Space {
                return Ok(item);
            }
        }
    }

    fn peek_non_space(&mut self) -> ParseResult<Item> {
        let item = self.next_non_space()?;
        self.backup();
        Ok(item)
    }

    fn unexpected(&self, item: &Item, context: &str) -> TemplateError {
        self.error(format!("unexpected {item} in {context}"))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> ParseResult<Item> {
        let item = self.next_non_space()?;
        if item.tok != tok {
            return Err(self.unexpected(&item, context));
        }
        Ok(item)
    }

    fn parse_root(&mut self) -> ParseResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek()?.tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => root.push(n),
                Parsed::End => return Err(self.error("unexpected {{end}}")),
                Parsed::Else => return Err(self.error("unexpected {{else}}")),
            }
        }
        Ok(root)
    }

    /// The nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> ParseResult<(Vec<Node>, Parsed)> {
        let mut list = Vec::new();
        while self.peek_non_space()?.tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                other => return Ok((list, other)),
            }
        }
        Err(self.error("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> ParseResult<Parsed> {
        let item = self.next_non_space()?;
        match item.tok {
            Tok::Text => Ok(Parsed::Node(Node::Text(item.val))),
            Tok::LeftDelim => self.action(),
            _ => Err(self.unexpected(&item, "input")),
        }
    }

    fn action(&mut self) -> ParseResult<Parsed> {
        let item = self.next_non_space()?;
        match item.tok {
            Tok::Block | Tok::Define | Tok::Template => {
                return Err(self.error(format!("{{{{{}}}}} is not supported by brix", item.val)));
            }
            Tok::Break | Tok::Continue => {
                let name = item.val.clone();
                let token = self.next_non_space()?;
                if token.tok != Tok::RightDelim {
                    return Err(self.unexpected(&token, &format!("{{{{{name}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.error(format!("{{{{{name}}}}} outside {{{{range}}}}")));
                }
                return Ok(Parsed::Node(if item.tok == Tok::Break {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            Tok::Else => {
                let peek = self.peek_non_space()?;
                if peek.tok != Tok::If && peek.tok != Tok::With {
                    self.expect(Tok::RightDelim, "else")?;
                } else {
                    self.next_non_space()?;
                    self.backup();
                }
                return Ok(Parsed::Else);
            }
            Tok::End => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            Tok::If => return Ok(Parsed::Node(Node::If(self.control("if")?))),
            Tok::Range => return Ok(Parsed::Node(Node::Range(self.control("range")?))),
            Tok::With => return Ok(Parsed::Node(Node::With(self.control("with")?))),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Parsed::Node(Node::Action(pipe)))
    }

    fn control(&mut self, context: &str) -> ParseResult<Control> {
        let vars = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Parsed::Else = next {
            let peek = self.peek()?.tok;
            if context == "if" && peek == Tok::If {
                self.next()?;
                else_list = Some(vec![Node::If(self.control("if")?)]);
            } else if context == "with" && peek == Tok::With {
                self.next()?;
                else_list = Some(vec![Node::With(self.control("with")?)]);
            } else {
                let (list, next) = self.item_list()?;
                if !matches!(next, Parsed::End) {
                    return Err(self.error("expected end; found {{else}}"));
                }
                else_list = Some(list);
            }
        }
        self.vars.truncate(vars);
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> ParseResult<Pipe> {
        let mut pipe = Pipe {
            pos: self.peek_non_space()?.pos,
            decls: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space()?;
            if v.tok != Tok::Variable {
                break;
            }
            let start = self.at;
            self.next_non_space()?;
            let next = self.peek_non_space()?;
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.tok == Tok::Assign;
                    self.next_non_space()?;
                    pipe.decls.push(v.val.clone());
                    self.vars.push(v.val);
                }
                Tok::Char if next.val == "," => {
                    self.next_non_space()?;
                    pipe.decls.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decls.len() < 2 {
                        match self.peek_non_space()?.tok {
                            Tok::Variable | Tok::RightDelim | Tok::RParen => continue 'decls,
                            _ => return Err(self.error("range can only initialize variables")),
                        }
                    }
                    return Err(self.error(format!("too many declarations in {context}")));
                }
                _ => self.at = start,
            }
            break;
        }
        loop {
            let token = self.next_non_space()?;
            if token.tok == end {
                if pipe.cmds.is_empty() {
                    return Err(self.error(format!("missing value for {context}")));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(
                        c.args[0].kind,
                        ArgKind::Bool(_)
                            | ArgKind::Dot
                            | ArgKind::Nil
                            | ArgKind::Number(_)
                            | ArgKind::Str { .. }
                    ) {
                        return Err(self.error(format!(
                            "non executable command in pipeline stage {}",
                            i + 1
                        )));
                    }
                }
                return Ok(pipe);
            }
            match token.tok {
                Tok::Bool
                | Tok::CharConst
                | Tok::Dot
                | Tok::Field
                | Tok::Ident
                | Tok::Number
                | Tok::Nil
                | Tok::RawStr
                | Tok::Str
                | Tok::Variable
                | Tok::LParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn command(&mut self) -> ParseResult<Command> {
        let mut cmd = Command {
            pos: self.peek_non_space()?.pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space()?;
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next()?;
            match token.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.error("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> ParseResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek()?.tok != Tok::Field {
            return Ok(Some(node));
        }
        let pos = self.peek()?.pos;
        let mut idents = Vec::new();
        while self.peek()?.tok == Tok::Field {
            idents.push(self.next()?.val[1..].to_owned());
        }
        let kind = match node.kind {
            ArgKind::Field(mut first) => {
                first.extend(idents);
                ArgKind::Field(first)
            }
            ArgKind::Variable(name, mut first) => {
                first.extend(idents);
                ArgKind::Variable(name, first)
            }
            ArgKind::Bool(_)
            | ArgKind::Str { .. }
            | ArgKind::Number(_)
            | ArgKind::Nil
            | ArgKind::Dot => {
                return Err(self.error(format!(
                    "unexpected . after term {}",
                    go_quote(&node.to_string())
                )));
            }
            _ => ArgKind::Chain(Box::new(node), idents),
        };
        Ok(Some(Arg { pos, kind }))
    }

    fn term(&mut self) -> ParseResult<Option<Arg>> {
        let token = self.next_non_space()?;
        let pos = token.pos;
        let kind = match token.tok {
            Tok::Ident => {
                if UNSUPPORTED.contains(&token.val.as_str()) {
                    return Err(self.error(format!(
                        "function {} is not supported by brix",
                        go_quote(&token.val)
                    )));
                }
                if !self.funcs.defines(&token.val) {
                    return Err(
                        self.error(format!("function {} not defined", go_quote(&token.val)))
                    );
                }
                ArgKind::Ident(token.val)
            }
            Tok::Dot => ArgKind::Dot,
            Tok::Nil => ArgKind::Nil,
            Tok::Variable => {
                let name = token.val;
                if !self.vars.contains(&name) && name != "$" {
                    return Err(self.error(format!("undefined variable {}", go_quote(&name))));
                }
                ArgKind::Variable(name, Vec::new())
            }
            Tok::Field => ArgKind::Field(vec![token.val[1..].to_owned()]),
            Tok::Bool => ArgKind::Bool(token.val == "true"),
            Tok::CharConst | Tok::Number => ArgKind::Number(self.number(&token)?),
            Tok::LParen => ArgKind::Pipe(Box::new(
                self.pipeline("parenthesized pipeline", Tok::RParen)?,
            )),
            Tok::Str | Tok::RawStr => {
                let text = unquote(&token.val).ok_or_else(|| self.error("invalid syntax"))?;
                ArgKind::Str {
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Arg { pos, kind }))
    }

    fn number(&self, token: &Item) -> ParseResult<Number> {
        let text = token.val.clone();
        if token.tok == Tok::CharConst {
            let c = unquote(&text)
                .and_then(|s| {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(c),
                        _ => None,
                    }
                })
                .ok_or_else(|| self.error(format!("malformed character constant: {text}")))?;
            return Ok(Number {
                int: Some(i64::from(u32::from(c))),
                float: Some(f64::from(u32::from(c))),
                is_char: true,
                text,
            });
        }
        if text.ends_with('i') {
            return Err(self.error("complex numbers are not supported by brix"));
        }
        let int = parse_go_int(&text);
        let mut float = int.map(|n| n as f64);
        if int.is_none() {
            let f = parse_go_float(&text);
            if f.is_some() && !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(self.error(format!("integer overflow: {}", go_quote(&text))));
            }
            float = f;
        }
        let int = int.or_else(|| {
            float
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        });
        if int.is_none() && float.is_none() {
            return Err(self.error(format!("illegal number syntax: {}", go_quote(&text))));
        }
        Ok(Number {
            text,
            int,
            float,
            is_char: false,
        })
    }
}

enum Parsed {
    Node(Node),
    End,
    Else,
}

/// `strconv.ParseInt(text, 0, 64)`: a sign, a base prefix (`0x`, `0o`, `0b`, or `0` for
/// octal) and `_` between digits.
fn parse_go_int(text: &str) -> Option<i64> {
    if !underscores_ok(text) {
        return None;
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, rest) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let (radix, digits) = match rest.get(..2) {
        Some("0x" | "0X") => (16, &rest[2..]),
        Some("0o" | "0O") => (8, &rest[2..]),
        Some("0b" | "0B") => (2, &rest[2..]),
        _ if rest.len() > 1 && rest.starts_with('0') => (8, &rest[1..]),
        _ => (10, rest),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

/// Go's `underscoreOK`: each `_` sits between digits (or after a base prefix).
fn underscores_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// `strconv.ParseFloat(text, 64)` for the decimal forms templates use.
fn parse_go_float(text: &str) -> Option<f64> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if clean.contains(['x', 'X']) {
        return None;
    }
    clean.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `strconv.Unquote` for `"…"`, `` `…` `` and `'…'`.
fn unquote(quoted: &str) -> Option<String> {
    let first = quoted.chars().next()?;
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    if !quoted.ends_with(first) || quoted.len() < 2 {
        return None;
    }
    if first == '`' {
        return Some(inner.replace('\r', ""));
    }
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == first {
                return None;
            }
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<u32> {
            let digits: String = chars.take(n).collect();
            (digits.len() == n)
                .then(|| u32::from_str_radix(&digits, 16).ok())
                .flatten()
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' if first == '"' => out.push('"'),
            '\'' if first == '\'' => out.push('\''),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?)?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?)?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let digits = format!("{e}{rest}");
                let n = u32::from_str_radix(&digits, 8)
                    .ok()
                    .filter(|_| digits.len() == 3)?;
                out.push(char::from_u32(n).filter(|_| n <= 255)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    text: String,
    root: Vec<Node>,
    funcs: Funcs,
}

/// Which `json` and header functions a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// docker's table header: `json`, `split`, `join`, `title`, `lower`, `upper` and
    /// `truncate` return their first (string) argument.
    Header,
}

/// An execution error and the node it happened at.
struct Fail {
    pos: Option<usize>,
    context: String,
    msg: String,
}

type Exec<T> = Result<T, Fail>;

enum Flow {
    Normal,
    Break,
    Continue,
}

impl Template {
    /// Parses `text` with the functions of `funcs` (an unnamed template, as docker's CLI
    /// formatter makes them).
    pub fn parse(text: &str, funcs: Funcs) -> Result<Self, TemplateError> {
        Self::parse_named("", text, funcs)
    }

    /// [`Template::parse`] for a template Go would create as `template.New(name)`: its name
    /// is in every message.
    pub fn parse_named(name: &str, text: &str, funcs: Funcs) -> Result<Self, TemplateError> {
        let mut parser = Parser {
            name: name.to_owned(),
            items: Lexer::lex(text),
            at: 0,
            funcs,
            vars: vec!["$".to_owned()],
            range_depth: 0,
        };
        let root = parser.parse_root()?;
        Ok(Template {
            name: name.to_owned(),
            text: text.to_owned(),
            root,
            funcs,
        })
    }

    /// Whether the template starts with an action on the field `name`, as buildx tests
    /// `strings.HasPrefix(tpl.Root.String(), "{{.Manifest")`.
    pub fn starts_with_field(&self, name: &str) -> bool {
        match self.root.first() {
            Some(Node::Action(pipe)) if pipe.decls.is_empty() => matches!(
                pipe.cmds.first().and_then(|c| c.args.first()).map(|a| &a.kind),
                Some(ArgKind::Field(idents)) if idents[0].starts_with(name)
            ),
            _ => false,
        }
    }

    /// Runs the template on `data`, appending to `out`; on an error, `out` keeps what was
    /// written before it, as Go's writer does.
    pub fn execute_into(&self, data: &Data, out: &mut String) -> Result<(), TemplateError> {
        self.run(data, out, Mode::Normal)
    }

    fn run(&self, data: &Data, out: &mut String, mode: Mode) -> Result<(), TemplateError> {
        let mut state = State {
            tmpl: self,
            mode,
            vars: vec![("$".to_owned(), data.clone())],
            out,
        };
        match state.walk(data, &self.root) {
            Ok(_) => Ok(()),
            Err(fail) => Err(self.exec_error(fail)),
        }
    }

    fn exec_error(&self, fail: Fail) -> TemplateError {
        let Some(pos) = fail.pos else {
            return TemplateError(format!("template: {}: {}", self.name, fail.msg));
        };
        let before = &self.text[..pos.min(self.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - i - 1,
            None => pos,
        };
        TemplateError(format!(
            "template: {name}:{line}:{col}: executing \"{name}\" at <{}>: {}",
            fail.context,
            fail.msg,
            name = self.name
        ))
    }
}

struct State<'t> {
    tmpl: &'t Template,
    mode: Mode,
    vars: Vec<(String, Data)>,
    out: &'t mut String,
}

fn fail(pos: usize, context: impl fmt::Display, msg: impl Into<String>) -> Fail {
    Fail {
        pos: Some(pos),
        context: context.to_string(),
        msg: msg.into(),
    }
}

impl State<'_> {
    fn walk(&mut self, dot: &Data, list: &[Node]) -> Exec<Flow> {
        for node in list {
            let flow = match node {
                Node::Text(text) => {
                    self.out.push_str(text);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let value = self.eval_pipeline(dot, pipe)?;
                    if pipe.decls.is_empty() {
                        self.print(&value, pipe)?;
                    }
                    Flow::Normal
                }
                Node::If(c) | Node::With(c) => {
                    let mark = self.vars.len();
                    let value = self.eval_pipeline(dot, &c.pipe)?;
                    let truth = value.truth().map_err(|e| fail(c.pipe.pos, &c.pipe, e))?;
                    let flow = if truth {
                        let inner = if matches!(node, Node::With(_)) {
                            &value
                        } else {
                            dot
                        };
                        self.walk(inner, &c.list)?
                    } else if let Some(else_list) = &c.else_list {
                        self.walk(dot, else_list)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    flow
                }
                Node::Range(c) => {
                    let mark = self.vars.len();
                    let flow = self.range(dot, c)?;
                    self.vars.truncate(mark);
                    flow
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Data, c: &Control) -> Exec<Flow> {
        let value = self.eval_pipeline(dot, &c.pipe)?;
        let items: Vec<(Data, Data)> = match &value {
            Data::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Data::Int(i as i64), v.clone()))
                .collect(),
            Data::Map(m) => m
                .iter()
                .map(|(k, v)| (Data::Str(k.clone()), v.clone()))
                .collect(),
            Data::Int(n) => {
                if c.pipe.decls.len() > 1 {
                    return Err(fail(
                        c.pipe.pos,
                        &c.pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (0..*n).map(|i| (Data::Int(i), Data::Int(i))).collect()
            }
            Data::NilList | Data::NilMap | Data::NoValue | Data::Nil => Vec::new(),
            Data::Unavailable(why) => return Err(fail(c.pipe.pos, &c.pipe, why.clone())),
            other => {
                return Err(fail(
                    c.pipe.pos,
                    &c.pipe,
                    format!("range can't iterate over {}", go_print(other)),
                ));
            }
        };
        if items.is_empty() {
            if let Some(else_list) = &c.else_list {
                return self.walk(dot, else_list);
            }
            return Ok(Flow::Normal);
        }
        let mark = self.vars.len();
        for (index, elem) in items {
            if c.pipe.is_assign {
                if c.pipe.decls.len() > 1 {
                    self.set_var(&c.pipe.decls[0], index.clone(), &c.pipe)?;
                    self.set_var(&c.pipe.decls[1], elem.clone(), &c.pipe)?;
                } else if let Some(name) = c.pipe.decls.first() {
                    self.set_var(name, elem.clone(), &c.pipe)?;
                }
            } else {
                let n = self.vars.len();
                if !c.pipe.decls.is_empty() {
                    self.vars[n - 1].1 = elem.clone();
                }
                if c.pipe.decls.len() > 1 {
                    self.vars[n - 2].1 = index;
                }
            }
            let flow = self.walk(&elem, &c.list)?;
            self.vars.truncate(mark);
            if let Flow::Break = flow {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, value: &Data, pipe: &Pipe) -> Exec<()> {
        if let Some(why) = value.unavailable() {
            return Err(fail(pipe.pos, pipe, why));
        }
        self.out.push_str(&go_print(value));
        Ok(())
    }

    fn set_var(&mut self, name: &str, value: Data, at: &Pipe) -> Exec<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(fail(at.pos, at, format!("undefined variable: {name}"))),
        }
    }

    fn var(&self, name: &str, at: &Arg) -> Exec<Data> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| fail(at.pos, at, format!("undefined variable: {name}")))
    }

    fn eval_pipeline(&mut self, dot: &Data, pipe: &Pipe) -> Exec<Data> {
        let mut value: Option<Data> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Data::NoValue);
        for name in &pipe.decls {
            if pipe.is_assign {
                self.set_var(name, value.clone(), pipe)?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &Command, final_value: &Option<Data>) -> Exec<()> {
        if cmd.args.len() > 1 || final_value.is_some() {
            let first = &cmd.args[0];
            return Err(fail(
                first.pos,
                first,
                format!("can't give argument to non-function {first}"),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Data, cmd: &Command, final_value: Option<Data>) -> Exec<Data> {
        let first = &cmd.args[0];
        match &first.kind {
            ArgKind::Field(idents) => {
                self.eval_field_chain(dot.clone(), first, idents, cmd.args.len(), final_value)
            }
            ArgKind::Chain(node, idents) => {
                if matches!(node.kind, ArgKind::Nil) {
                    return Err(fail(
                        first.pos,
                        first,
                        format!("indirection through explicit nil in {first}"),
                    ));
                }
                let receiver = self.eval_arg(dot, node)?;
                let at = last_evaluated(node);
                self.eval_field_chain(receiver, at, idents, cmd.args.len(), final_value)
            }
            ArgKind::Variable(name, idents) => {
                let value = self.var(name, first)?;
                if idents.is_empty() {
                    self.not_a_function(cmd, &final_value)?;
                    return Ok(value);
                }
                self.eval_field_chain(value, first, idents, cmd.args.len(), final_value)
            }
            ArgKind::Ident(name) => self.eval_function(dot, first, name, cmd, final_value),
            ArgKind::Pipe(pipe) => {
                self.not_a_function(cmd, &final_value)?;
                self.eval_pipeline(dot, pipe)
            }
            ArgKind::Nil => Err(fail(first.pos, first, "nil is not a command")),
            _ => {
                self.not_a_function(cmd, &final_value)?;
                self.eval_arg(dot, first)
            }
        }
    }

    fn eval_field_chain(
        &mut self,
        mut receiver: Data,
        node: &Arg,
        idents: &[String],
        nargs: usize,
        final_value: Option<Data>,
    ) -> Exec<Data> {
        let last = idents.len() - 1;
        for (i, name) in idents.iter().enumerate() {
            let has_args = i == last && (nargs > 1 || final_value.is_some());
            receiver = self.eval_field(node, name, has_args, receiver)?;
        }
        Ok(receiver)
    }

    fn eval_field(&self, node: &Arg, name: &str, has_args: bool, receiver: Data) -> Exec<Data> {
        let err = |msg: String| Err(fail(node.pos, node, msg));
        match receiver {
            Data::NoValue => Ok(Data::NoValue),
            Data::Nil => err(format!("nil pointer evaluating interface {{}}.{name}")),
            Data::Unavailable(why) => err(why),
            Data::Struct(s) => match s.get(name) {
                Some(m) => {
                    if has_args {
                        return err(match m.kind {
                            MemberKind::Method => {
                                format!("wrong number of args for {name}: want 0 got 1")
                            }
                            MemberKind::Field { .. } => {
                                format!("{name} has arguments but cannot be invoked as function")
                            }
                        });
                    }
                    if let Data::Unavailable(why) = &m.value {
                        return err(why.clone());
                    }
                    Ok(m.value.clone())
                }
                None => err(format!(
                    "can't evaluate field {name} in type {}",
                    s.type_name
                )),
            },
            Data::Map(mut m) => {
                if has_args {
                    return err(format!("{name} is not a method but has arguments"));
                }
                Ok(m.remove(name).unwrap_or(Data::NoValue))
            }
            Data::NilMap => Ok(Data::NoValue),
            other => err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    /// An argument's value (Go's `evalEmptyInterface`).
    fn eval_arg(&mut self, dot: &Data, arg: &Arg) -> Exec<Data> {
        match &arg.kind {
            ArgKind::Field(idents) => self.eval_field_chain(dot.clone(), arg, idents, 1, None),
            ArgKind::Variable(name, idents) => {
                let value = self.var(name, arg)?;
                if idents.is_empty() {
                    return Ok(value);
                }
                self.eval_field_chain(value, arg, idents, 1, None)
            }
            ArgKind::Chain(node, idents) => {
                let receiver = self.eval_arg(dot, node)?;
                self.eval_field_chain(receiver, last_evaluated(node), idents, 1, None)
            }
            ArgKind::Pipe(pipe) => self.eval_pipeline(dot, pipe),
            ArgKind::Ident(name) => {
                let cmd = Command {
                    pos: arg.pos,
                    args: vec![arg.clone()],
                };
                self.eval_function(dot, arg, name, &cmd, None)
            }
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Data::Nil),
            ArgKind::Bool(b) => Ok(Data::Bool(*b)),
            ArgKind::Number(n) => n.value().map_err(|e| fail(arg.pos, arg, e)),
            ArgKind::Str { text, .. } => Ok(Data::Str(text.clone())),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Data,
        ident: &Arg,
        name: &str,
        cmd: &Command,
        final_value: Option<Data>,
    ) -> Exec<Data> {
        let arg_nodes = &cmd.args[1..];
        let count = arg_nodes.len() + usize::from(final_value.is_some());
        if name == "and" || name == "or" {
            if count == 0 {
                return Err(fail(
                    ident.pos,
                    ident,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Data::NoValue;
            let values = arg_nodes.iter().map(Some).chain(std::iter::once(None));
            for node in values {
                let value = match node {
                    Some(node) => self.eval_arg(dot, node)?,
                    None => match &final_value {
                        Some(v) => v.clone(),
                        None => break,
                    },
                };
                let truth = value.truth().unwrap_or(false);
                if (name == "and" && !truth) || (name == "or" && truth) {
                    return Ok(value);
                }
                last = value;
            }
            return Ok(last);
        }
        let mut nodes: Vec<&Arg> = Vec::with_capacity(count);
        let mut values: Vec<Data> = Vec::with_capacity(count);
        for node in arg_nodes {
            nodes.push(node);
            values.push(self.eval_arg(dot, node)?);
        }
        if let Some(value) = final_value {
            nodes.push(ident);
            values.push(value);
        }
        // A missing map key reaches a function as nil, as Go's `validateType` gives it.
        for value in &mut values {
            if *value == Data::NoValue {
                *value = Data::Nil;
            }
        }
        match self.call(name, &values) {
            Ok(v) => Ok(v),
            Err(CallError::Arity(msg)) => Err(fail(ident.pos, ident, msg)),
            Err(CallError::Type(i, msg)) => {
                let node = nodes.get(i).copied().unwrap_or(ident);
                Err(fail(node.pos, node, msg))
            }
            Err(CallError::Call(msg)) => {
                Err(fail(cmd.pos, cmd, format!("error calling {name}: {msg}")))
            }
        }
    }

    fn call(&self, name: &str, args: &[Data]) -> Result<Data, CallError> {
        let arity = |want: usize| -> Result<(), CallError> {
            if args.len() != want {
                return Err(CallError::Arity(format!(
                    "wrong number of args for {name}: want {want} got {}",
                    args.len()
                )));
            }
            Ok(())
        };
        let at_least = |want: usize| -> Result<(), CallError> {
            if args.len() < want {
                return Err(CallError::Arity(format!(
                    "wrong number of args for {name}: want at least {want} got {}",
                    args.len()
                )));
            }
            Ok(())
        };
        let header = self.mode == Mode::Header;
        match name {
            "not" => {
                arity(1)?;
                Ok(Data::Bool(!args[0].truth().unwrap_or(false)))
            }
            "len" => {
                arity(1)?;
                match &args[0] {
                    Data::Str(s) => Ok(Data::Int(s.len() as i64)),
                    Data::List(items) => Ok(Data::Int(items.len() as i64)),
                    Data::Map(m) => Ok(Data::Int(m.len() as i64)),
                    Data::NilList | Data::NilMap => Ok(Data::Int(0)),
                    Data::Nil => Err(CallError::Call("len of nil pointer".into())),
                    Data::Unavailable(why) => Err(CallError::Call(why.clone())),
                    other => Err(CallError::Call(format!(
                        "len of type {}",
                        other.type_name().trim_start_matches('*')
                    ))),
                }
            }
            "index" => {
                at_least(1)?;
                let mut item = args[0].clone();
                for key in &args[1..] {
                    item = index(&item, key).map_err(CallError::Call)?;
                }
                Ok(item)
            }
            "slice" => {
                at_least(1)?;
                slice(&args[0], &args[1..]).map_err(CallError::Call)
            }
            "html" | "js" | "urlquery" => {
                let text = match args {
                    [Data::Str(s)] => s.clone(),
                    _ => go_sprint(args),
                };
                Ok(Data::Str(match name {
                    "html" => html_escape(&text),
                    "js" => js_escape(&text),
                    _ => query_escape(&text),
                }))
            }
            "print" => Ok(Data::Str(go_sprint(args))),
            "println" => {
                let parts: Vec<String> = args.iter().map(go_print).collect();
                Ok(Data::Str(format!("{}\n", parts.join(" "))))
            }
            "printf" => {
                at_least(1)?;
                let Data::Str(format) = &args[0] else {
                    return Err(type_error(0, "string", &args[0]));
                };
                Ok(Data::Str(go_sprintf(format, &args[1..])))
            }
            "eq" => {
                at_least(1)?;
                if args.len() == 1 {
                    return Err(CallError::Call("missing argument for comparison".into()));
                }
                for other in &args[1..] {
                    if equal(&args[0], other).map_err(CallError::Call)? {
                        return Ok(Data::Bool(true));
                    }
                }
                Ok(Data::Bool(false))
            }
            "ne" => {
                arity(2)?;
                Ok(Data::Bool(
                    !equal(&args[0], &args[1]).map_err(CallError::Call)?,
                ))
            }
            "lt" | "le" | "gt" | "ge" => {
                arity(2)?;
                let ord = compare(&args[0], &args[1]).map_err(CallError::Call)?;
                use std::cmp::Ordering::*;
                Ok(Data::Bool(match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                }))
            }
            "json" if header => {
                arity(1)?;
                string_arg(args, 0).map(Data::Str)
            }
            "json" => {
                arity(1)?;
                let style = match self.tmpl.funcs {
                    Funcs::DockerCli => JsonStyle {
                        indent: false,
                        escape_html: false,
                    },
                    Funcs::Imagetools | Funcs::Builtins => JsonStyle {
                        indent: true,
                        escape_html: true,
                    },
                };
                let mut out = String::new();
                write_json(&mut out, &args[0], style, 0).map_err(CallError::Call)?;
                Ok(Data::Str(out))
            }
            "split" => {
                arity(2)?;
                let s = string_arg(args, 0)?;
                let sep = string_arg(args, 1)?;
                if header {
                    return Ok(Data::Str(s));
                }
                let parts: Vec<Data> = if sep.is_empty() {
                    s.chars().map(|c| Data::Str(c.to_string())).collect()
                } else {
                    s.split(sep.as_str()).map(Data::from).collect()
                };
                Ok(Data::List(parts))
            }
            "join" => {
                arity(2)?;
                let sep = string_arg(args, 1)?;
                if header {
                    return string_arg(args, 0).map(Data::Str);
                }
                let items: Vec<String> = match &args[0] {
                    Data::NilList => Vec::new(),
                    Data::List(items) => items
                        .iter()
                        .map(|i| match i {
                            Data::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect::<Option<_>>()
                        .ok_or_else(|| type_error(0, "[]string", &args[0]))?,
                    other => return Err(type_error(0, "[]string", other)),
                };
                Ok(Data::Str(items.join(&sep)))
            }
            "title" | "lower" | "upper" => {
                arity(1)?;
                let s = string_arg(args, 0)?;
                Ok(Data::Str(match (name, header) {
                    (_, true) => s,
                    ("lower", _) => s.to_lowercase(),
                    ("upper", _) => s.to_uppercase(),
                    _ => title(&s),
                }))
            }
            "pad" => {
                arity(3)?;
                let s = string_arg(args, 0)?;
                let prefix = int_arg(args, 1)?;
                let suffix = int_arg(args, 2)?;
                if s.is_empty() {
                    return Ok(Data::Str(s));
                }
                let (Ok(prefix), Ok(suffix)) = (usize::try_from(prefix), usize::try_from(suffix))
                else {
                    return Err(CallError::Call("strings: negative Repeat count".into()));
                };
                Ok(Data::Str(format!(
                    "{}{s}{}",
                    " ".repeat(prefix),
                    " ".repeat(suffix)
                )))
            }
            "truncate" => {
                arity(2)?;
                let s = string_arg(args, 0)?;
                let length = int_arg(args, 1)?;
                if header || (s.len() as i64) < length {
                    return Ok(Data::Str(s));
                }
                let Ok(mut end) = usize::try_from(length) else {
                    return Err(CallError::Call(format!(
                        "slice bounds out of range [:{length}]"
                    )));
                };
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                Ok(Data::Str(s[..end].to_owned()))
            }
            _ => Err(CallError::Call(format!(
                "{name:?} is not a defined function"
            ))),
        }
    }
}

/// The node Go's executor last visited in `arg`, where it reports an error in a field chain
/// on `(…)`: the last argument of the pipeline's last command.
fn last_evaluated(arg: &Arg) -> &Arg {
    match &arg.kind {
        ArgKind::Pipe(pipe) => pipe
            .cmds
            .last()
            .and_then(|c| c.args.last())
            .map_or(arg, last_evaluated),
        _ => arg,
    }
}

enum CallError {
    /// Wrong number of arguments (reported at the function's name).
    Arity(String),
    /// Argument `n` has the wrong type (reported at that argument).
    Type(usize, String),
    /// The function failed (reported at the command, after `error calling NAME:`).
    Call(String),
}

fn type_error(i: usize, want: &str, got: &Data) -> CallError {
    CallError::Type(
        i,
        format!(
            "wrong type for value; expected {want}; got {}",
            got.type_name()
        ),
    )
}

fn string_arg(args: &[Data], i: usize) -> Result<String, CallError> {
    match &args[i] {
        Data::Str(s) => Ok(s.clone()),
        Data::Nil => Err(CallError::Type(
            i,
            "invalid value; expected string".to_owned(),
        )),
        other => Err(type_error(i, "string", other)),
    }
}

fn int_arg(args: &[Data], i: usize) -> Result<i64, CallError> {
    match &args[i] {
        Data::Int(n) => Ok(*n),
        Data::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(type_error(i, "int", other)),
    }
}

/// `fmt.Sprint`: spaces between operands when neither is a string.
fn go_sprint(args: &[Data]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Data::Str(_)) && !matches!(args[i - 1], Data::Str(_)) {
            out.push(' ');
        }
        out.push_str(&go_print(a));
    }
    out
}

/// `strings.Title`.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn index(item: &Data, key: &Data) -> Result<Data, String> {
    match item {
        Data::List(items) => {
            let Data::Int(i) = key else {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    key.type_name()
                ));
            };
            usize::try_from(*i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        Data::NilList => match key {
            Data::Int(i) => Err(format!("index out of range: {i}")),
            _ => Err(format!(
                "cannot index slice/array with type {}",
                key.type_name()
            )),
        },
        Data::Map(m) => {
            let Data::Str(k) = key else {
                return Err(format!(
                    "value has type {}; should be string",
                    key.type_name()
                ));
            };
            Ok(m.get(k)
                .cloned()
                .unwrap_or_else(|| zero_of(m.values().next())))
        }
        Data::NilMap => match key {
            Data::Str(_) => Ok(Data::Str(String::new())),
            _ => Err(format!(
                "value has type {}; should be string",
                key.type_name()
            )),
        },
        Data::Nil | Data::NoValue => Err("index of untyped nil".into()),
        Data::Unavailable(why) => Err(why.clone()),
        other => Err(format!(
            "can't index item of type {}",
            other.type_name().trim_start_matches('*')
        )),
    }
}

/// The zero value of a map's element type, guessed from one of its values.
fn zero_of(sample: Option<&Data>) -> Data {
    match sample {
        None | Some(Data::Str(_)) => Data::Str(String::new()),
        Some(Data::Int(_)) => Data::Int(0),
        Some(Data::Float(_)) => Data::Float(0.0),
        Some(Data::Bool(_)) => Data::Bool(false),
        Some(Data::List(_) | Data::NilList) => Data::NilList,
        Some(Data::Map(_) | Data::NilMap) => Data::NilMap,
        Some(_) => Data::Nil,
    }
}

fn equal(a: &Data, b: &Data) -> Result<bool, String> {
    Ok(match (a, b) {
        (Data::Bool(x), Data::Bool(y)) => x == y,
        (Data::Int(x), Data::Int(y)) => x == y,
        (Data::Float(x), Data::Float(y)) => x == y,
        (Data::Str(x), Data::Str(y)) => x == y,
        (Data::Nil, Data::Nil) => true,
        (Data::Nil, _) | (_, Data::Nil) => false,
        (Data::Bool(_) | Data::Int(_) | Data::Float(_) | Data::Str(_), _)
            if matches!(
                b,
                Data::Bool(_) | Data::Int(_) | Data::Float(_) | Data::Str(_)
            ) =>
        {
            return Err(incompatible(a, b));
        }
        _ => {
            return Err(format!(
                "non-comparable types {}: {}, {}: {}",
                go_print(a),
                a.type_name(),
                b.type_name(),
                go_print(b)
            ));
        }
    })
}

fn compare(a: &Data, b: &Data) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Data::Int(x), Data::Int(y)) => Ok(x.cmp(y)),
        (Data::Float(x), Data::Float(y)) => Ok(x.total_cmp(y)),
        (Data::Str(x), Data::Str(y)) => Ok(x.cmp(y)),
        (
            Data::Int(_) | Data::Float(_) | Data::Str(_),
            Data::Int(_) | Data::Float(_) | Data::Str(_),
        ) => Err(incompatible(a, b)),
        _ => Err("invalid type for comparison".into()),
    }
}

fn incompatible(a: &Data, b: &Data) -> String {
    format!(
        "incompatible types for comparison: {} and {}",
        a.type_name(),
        b.type_name()
    )
}

/// `slice item [low [high [max]]]`: of a string (by bytes) or a list.
fn slice(item: &Data, indexes: &[Data]) -> Result<Data, String> {
    let mut bounds = Vec::with_capacity(indexes.len());
    for i in indexes {
        match i {
            Data::Int(n) => {
                bounds.push(usize::try_from(*n).map_err(|_| format!("index out of range: {n}"))?)
            }
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                ));
            }
        }
    }
    let len = match item {
        Data::Str(s) => s.len(),
        Data::List(items) => items.len(),
        Data::NilList => 0,
        Data::Nil | Data::NoValue => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if bounds.len() > 3 {
        return Err(format!("too many slice indexes: {}", bounds.len()));
    }
    if bounds.len() == 3 && matches!(item, Data::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let low = bounds.first().copied().unwrap_or(0);
    let high = bounds.get(1).copied().unwrap_or(len);
    let max = bounds.get(2).copied().unwrap_or(len);
    if let Some(b) = [low, high, max].into_iter().find(|b| *b > len) {
        return Err(format!("index out of range: {b}"));
    }
    if low > high {
        return Err(format!("invalid slice index: {low} > {high}"));
    }
    if high > max {
        return Err(format!("invalid slice index: {high} > {max}"));
    }
    Ok(match item {
        Data::Str(s) => Data::Str(String::from_utf8_lossy(&s.as_bytes()[low..high]).into_owned()),
        Data::List(items) => Data::List(items[low..high].to_vec()),
        _ => Data::NilList,
    })
}

/// `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// docker's CLI formatter
// ---------------------------------------------------------------------------------------------

/// A `--format` value as docker's CLI formatter (`formatter.Context`) reads it, for `ls` and
/// `du`: `table TEMPLATE` (a header row, then one row per value, in `text/tabwriter` columns),
/// `json` (`{{json .}}`), or a template printed once per value, each followed by a newline.
/// Literal `\t` and `\n` in the value become a tab and a newline.
#[derive(Debug, Clone)]
pub struct CliFormat {
    table: bool,
    template: Template,
}

impl CliFormat {
    /// Parses the value of `--format`; errors read `template parsing error: …` as docker's.
    pub fn parse(format: &str) -> Result<Self, TemplateError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None if format == "json" => (false, "{{json .}}"),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&body, Funcs::DockerCli)
            .map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
        Ok(CliFormat { table, template })
    }

    /// Whether this is a `table` format (values then add their table decorations).
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// The text for `rows`; a table's header comes from running the template on `header`
    /// (column names by field), where errors only cut the header short, as in docker.
    pub fn render(&self, rows: &[Data], header: &[(&str, &str)]) -> Result<String, TemplateError> {
        let mut body = String::new();
        for row in rows {
            self.template
                .execute_into(row, &mut body)
                .map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let header: BTreeMap<String, Data> = header
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Data::from(*v)))
            .collect();
        let mut text = String::new();
        let _ = self
            .template
            .run(&Data::Map(header), &mut text, Mode::Header);
        text.push('\n');
        text.push_str(&body);
        Ok(tabwriter::align(&text, 10, 3))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn cli(template: &str, data: &Data) -> Result<String, String> {
        let t = Template::parse(template, Funcs::DockerCli).map_err(|e| e.to_string())?;
        let mut out = String::new();
        t.execute_into(data, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The `ls` builder row of the `default` builder, as buildx's lsContext.
    fn ls_node() -> Data {
        let platform = |arch: &str, variant: &str| {
            Data::from(
                Struct::new("v1.Platform")
                    .tagged("Architecture", "architecture", false, arch)
                    .tagged("OS", "os", false, "linux")
                    .tagged("OSVersion", "os.version", true, "")
                    .tagged("OSFeatures", "os.features", true, Data::NilList)
                    .tagged("Variant", "variant", true, variant),
            )
        };
        let node = Struct::new("builder.Node")
            .field("Name", "default")
            .field("Version", "v0.8+unknown")
            .field("IDs", Data::strings(&["moby"]))
            .field(
                "Platforms",
                Data::List(vec![platform("amd64", ""), platform("arm", "v7")]),
            );
        let builder = Struct::new("*commands.lsBuilder")
            .field("Name", "default")
            .field("Current", true)
            .method("Nodes", Data::List(vec![node.into()]));
        Struct::new("*commands.lsContext")
            .field("Builder", builder)
            .method("Name", "default")
            .method("Status", "running")
            .method("Platforms", "linux/amd64, linux/arm/v7")
            .method("Error", "")
            .display("")
            .into()
    }

    #[test]
    fn fields_functions_and_literals_print_as_buildx_ls() {
        let d = ls_node();
        // Each expected text is what `docker buildx ls --format …` 0.29.1 printed for the
        // `default` node row.
        let cases = [
            ("{{.Builder.Name}}", "default"),
            ("{{.Builder.Current}}", "true"),
            ("[{{.Error}}]", "[]"),
            ("{{.}}", ""),
            (
                "{{.Name | json}}|{{printf \"%s-%d\" .Name 3}}|{{println .Name}}|{{print 1 2 \"a\" \"b\" 3}}",
                "\"default\"|default-3|default\n|1 2ab3",
            ),
            (
                "{{range .Builder.Nodes}}{{.Name}} {{.Version}} {{.Platforms}} {{.IDs}}{{end}}",
                "default v0.8+unknown [{amd64 linux  [] } {arm linux  [] v7}] [moby]",
            ),
            (
                "{{range .Builder.Nodes}}{{.Name}}{{else}}none{{end}}",
                "default",
            ),
            ("{{with .Error}}E{{else}}ok{{end}}", "ok"),
            ("{{len .Platforms}}", "25"),
            (
                "{{split \"a,b\" \",\"}} {{title \"ab cd\"}} {{pad \"x\" 1 2}}| {{truncate \"abcdef\" 3}}",
                "[a b] Ab Cd  x  | abc",
            ),
            (
                "{{eq .Name \"default\"}} {{ne 1 2}} {{lt 1 2}} {{and 1 0}} {{or 0 \"x\"}} {{not \"\"}}",
                "true true true 0 x true",
            ),
            ("{{.Name}} {{- \" x \" -}} {{.Status}}", "default x running"),
            ("{{/* c */}}a{{- /* d */ -}} b", "ab"),
            ("{{$n := .Name}}{{$n}}{{$n = \"z\"}}{{$n}}", "defaultz"),
            (
                "{{`raw`}} {{'a'}} {{1.5}} {{0x10}} {{1e3}} {{-2}} {{2.0}} {{1_000}} {{0o17}} {{0b11}}",
                "raw 97 1.5 16 1000 -2 2 1000 15 3",
            ),
            (
                "{{printf \"%v|%q|%5s|%-4d|%x|%t\" .Name .Name \"ab\" 7 255 true}}",
                "default|\"default\"|   ab|7   |ff|true",
            ),
            ("{{print nil}}", "<nil>"),
            (
                "{{range $i, $n := .Builder.Nodes}}{{$i}}={{$n.Name}}{{end}}",
                "0=default",
            ),
            (
                "{{if and .Builder.Current (eq .Status \"running\")}}yes{{else if .Builder.Current}}cur{{else}}no{{end}}",
                "yes",
            ),
            ("{{with $x := .Name}}{{$x}}{{end}}", "default"),
            ("{{range 3}}{{.}}{{end}}", "012"),
            ("{{ .Name -}}\n   x", "defaultx"),
            ("a {{- 3}}", "a3"),
            ("{{3 -}} b", "3b"),
            ("{{-3}}", "-3"),
            ("{{upper .Name}} {{lower \"ABC\"}}", "DEFAULT abc"),
            ("{{slice .Name 1}} {{slice .Name 1 3}}", "efault ef"),
            (
                "{{html \"<a href='x'>\"}} {{js \"it's <b>\"}} {{urlquery \"a b&c\"}}",
                "&lt;a href=&#39;x&#39;&gt; it\\'s \\u003Cb\\u003E a+b%26c",
            ),
            (
                "{{range .Builder.Nodes}}{{if true}}{{break}}{{end}}x{{end}}y",
                "y",
            ),
            ("{{index .Builder.Nodes 0 | printf \"%T\"}}", "builder.Node"),
        ];
        for (template, want) in cases {
            assert_eq!(cli(template, &d).as_deref(), Ok(want), "{template}");
        }
    }

    #[test]
    fn errors_read_as_go_words_them() {
        let d = ls_node();
        // `docker buildx ls --format …` 0.29.1, without its `template parsing error: `.
        let cases = [
            ("{{x}}", "template: :1: function \"x\" not defined"),
            ("{{.Name", "template: :1: unclosed action"),
            ("{{if}}", "template: :1: missing value for if"),
            ("{{end}}", "template: :1: unexpected {{end}}"),
            ("{{else}}", "template: :1: unexpected {{else}}"),
            ("{{if .Name}}x", "template: :1: unexpected EOF"),
            ("{{}}", "template: :1: missing value for command"),
            ("{{\"abc}}", "template: :1: unterminated quoted string"),
            ("{{#}}", "template: :1: unexpected \"#\" in command"),
            ("{{$x}}", "template: :1: undefined variable \"$x\""),
            ("{{(.Name}}", "template: :1: unclosed left paren"),
            ("{{.Name)}}", "template: :1: unexpected right paren"),
            ("{{break}}", "template: :1: {{break}} outside {{range}}"),
            (
                "{{.Current}}",
                "template: :1:2: executing \"\" at <.Current>: can't evaluate field Current in type *commands.lsContext",
            ),
            (
                "{{json}}",
                "template: :1:2: executing \"\" at <json>: wrong number of args for json: want 1 got 0",
            ),
            (
                "{{.Name.Foo}}",
                "template: :1:7: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type string",
            ),
            (
                "{{upper .Name}} {{lower \"ABC\"}} {{join .Builder.Nodes \",\"}}",
                "template: :1:47: executing \"\" at <.Builder.Nodes>: wrong type for value; expected []string; got []builder.Node",
            ),
            (
                "{{index .Builder \"x\"}}",
                "template: :1:2: executing \"\" at <index .Builder \"x\">: error calling index: can't index item of type commands.lsBuilder",
            ),
            (
                "{{.Builder.Nodes.Name}}",
                "template: :1:10: executing \"\" at <.Builder.Nodes.Name>: can't evaluate field Name in type []builder.Node",
            ),
            (
                "{{nil}}",
                "template: :1:2: executing \"\" at <nil>: nil is not a command",
            ),
            (
                "{{call .}}",
                "template: :1: function \"call\" is not supported by brix",
            ),
            (
                "{{eq .Name 1}}",
                "template: :1:2: executing \"\" at <eq .Name 1>: error calling eq: incompatible types for comparison: string and int",
            ),
            (
                "{{(1).Foo}}",
                "template: :1:3: executing \"\" at <1>: can't evaluate field Foo in type int",
            ),
        ];
        for (template, want) in cases {
            assert_eq!(cli(template, &d), Err(want.to_owned()), "{template}");
        }
    }

    #[test]
    fn json_follows_go_struct_order_omitempty_and_marshal_json() {
        let platform = Struct::new("*v1.Platform")
            .tagged("Architecture", "architecture", false, "arm64")
            .tagged("OS", "os", false, "linux")
            .tagged("Variant", "variant", true, "");
        let desc = Struct::new("v1.Descriptor")
            .tagged("MediaType", "mediaType", false, "x<y")
            .tagged("Size", "size", false, 3i64)
            .tagged("Annotations", "annotations", true, Data::NilMap)
            .tagged("Platform", "platform", true, platform);
        let d: Data = Struct::new("tplInput")
            .tagged("Name", "name", true, "n")
            .tagged("Manifest", "manifest", true, desc)
            .method("SBOM", Data::Map(BTreeMap::new()))
            .into();
        let t = Template::parse("{{json .}}", Funcs::Imagetools).unwrap();
        let mut out = String::new();
        t.execute_into(&d, &mut out).unwrap();
        assert_eq!(
            out,
            "{\n  \"name\": \"n\",\n  \"manifest\": {\n    \"mediaType\": \"x\\u003cy\",\n    \"size\": 3,\n    \"platform\": {\n      \"architecture\": \"arm64\",\n      \"os\": \"linux\"\n    }\n  }\n}"
        );
        let mut out = String::new();
        let t = Template::parse(
            "{{json .SBOM}}|{{.Manifest.Platform.Architecture}}",
            Funcs::Imagetools,
        )
        .unwrap();
        t.execute_into(&d, &mut out).unwrap();
        assert_eq!(out, "{}|arm64");
        // docker's json: compact, `<` left as is, but a MarshalJSON result escaped.
        let m: Data = Struct::new("*x")
            .method("A", "a<b")
            .marshal_json(Data::Map(BTreeMap::from([(
                "k".to_owned(),
                Data::from("<"),
            )])))
            .into();
        assert_eq!(
            cli("{{json .}} {{json .A}}", &m).unwrap(),
            "{\"k\":\"\\u003c\"} \"a<b\""
        );
        assert!(Template::parse("{{upper .}}", Funcs::Imagetools).is_err());
    }

    #[test]
    fn unavailable_values_fail_only_when_used() {
        let d: Data = Struct::new("tplInputs")
            .field("Name", "n")
            .field("Image", Data::Unavailable("no image configs".into()))
            .into();
        let t = Template::parse("{{.Name}} {{json .Image}}", Funcs::Imagetools).unwrap();
        let mut out = String::new();
        let err = t.execute_into(&d, &mut out).unwrap_err();
        assert_eq!(out, "n ");
        assert!(err.to_string().ends_with("no image configs"), "{err}");
        assert!(t.starts_with_field("Name"));
    }

    #[test]
    fn cli_tables_have_a_header_row_and_columns() {
        let rows: Vec<Data> = ["a", "bbbbbbbbbbbb"]
            .iter()
            .map(|n| {
                Struct::new("*c")
                    .method("Name", *n)
                    .method("Size", "1B")
                    .into()
            })
            .collect();
        let f = CliFormat::parse("table {{.Name}}\\t{{.Size}}\\t{{.Nope}}").unwrap();
        assert!(f.is_table());
        let err = f
            .render(&rows, &[("Name", "NAME"), ("Size", "SIZE")])
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("template parsing error: template: :1:"),
            "{err}"
        );
        let f = CliFormat::parse("table {{.Name}}\\t{{.Size}}").unwrap();
        assert_eq!(
            f.render(&rows, &[("Name", "NAME"), ("Size", "SIZE")])
                .unwrap(),
            "NAME           SIZE\na              1B\nbbbbbbbbbbbb   1B\n"
        );
        let f = CliFormat::parse("table {{.Name}}\t{{.Missing}}").unwrap();
        let header_only = f.render(&[], &[("Name", "NAME")]).unwrap();
        assert_eq!(header_only, "NAME      <no value>\n");
        let f = CliFormat::parse(" {{.Name}} ").unwrap();
        assert_eq!(f.render(&rows, &[]).unwrap(), "a\nbbbbbbbbbbbb\n");
        let e = CliFormat::parse("{{x}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1: function \"x\" not defined"
        );
    }

    #[test]
    fn go_numbers_and_quotes() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(
            go_sprintf(
                "%05d|%+d|%.2f|%e|%x|%X|%c|%U",
                &[
                    Data::Int(42),
                    Data::Int(3),
                    Data::Float(1.23456),
                    Data::Float(1500.0),
                    Data::Str("hi".into()),
                    Data::Int(255),
                    Data::Int(65),
                    Data::Int(65)
                ]
            ),
            "00042|+3|1.23|1.500000e+03|6869|FF|A|U+0041"
        );
        assert_eq!(
            go_sprintf("%d %s", &[Data::Str("x".into())]),
            "%!d(string=x) %!s(MISSING)"
        );
        assert_eq!(
            go_sprintf("%s", &[Data::Str("a".into()), Data::Int(1)]),
            "a%!(EXTRA int=1)"
        );
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(unquote("\"a\\tb\\x41\\u00e9\""), Some("a\tbA\u{e9}".into()));
        assert_eq!(parse_go_int("0x1F"), Some(31));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("0_17"), Some(15));
        assert_eq!(parse_go_int("1__0"), None);
        assert_eq!(parse_go_int("09"), None);
    }
}
