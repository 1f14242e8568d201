//! `jsonencode` and `jsondecode`, as cty does them with Go's `encoding/json`: keys sorted,
//! numbers written as cty prints them, strings escaped HTML-safe; decoding reads the
//! document token by token as Go's `json.Decoder` does, with its error messages.

use std::collections::BTreeMap;

use super::{Failure, Outcome, arg, string, string_arg};
use crate::types::{Type, go_quote};
use crate::value::{Value, number_to_string};

/// A string as Go's `json.Marshal` writes it (HTML-safe: `<`, `>`, `&` escaped).
pub(super) fn encode_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value as cty's `json.Marshal` writes it.
pub(super) fn encode_value(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_infinite() => {
            return Err("cannot serialize infinity as JSON".to_string());
        }
        Value::Number(n) => out.push_str(&number_to_string(*n)),
        Value::String(s) => out.push_str(&encode_string(s)),
        Value::List(items) | Value::Set(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(attributes) => {
            out.push('{');
            for (i, (key, item)) in attributes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&encode_string(key));
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// `jsonencode(val)`.
pub(super) fn json_encode(args: &[Value]) -> Outcome {
    encode_value(arg(args, 0))
        .map(string)
        .map_err(Failure::call)
}

/// `jsondecode(str)`.
pub(super) fn json_decode(args: &[Value]) -> Outcome {
    decode(string_arg(args, 0)?).map_err(Failure::call)
}

/// Decodes a JSON document into a value (objects, arrays as lists, numbers, strings,
/// bools, null), failing as cty with Go's decoder fails.
pub(crate) fn decode(text: &str) -> Result<Value, String> {
    let mut decoder = Decoder {
        bytes: text.as_bytes(),
        pos: 0,
        state: State::TopValue,
        stack: Vec::new(),
    };
    let token = decoder.token()?;
    let value = decoder.value_for(token)?;
    if decoder.more() {
        return Err("extraneous data after JSON object".to_string());
    }
    Ok(value)
}

/// Go's `json.Decoder` token states.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    TopValue,
    ArrayStart,
    ArrayValue,
    ArrayComma,
    ObjectStart,
    ObjectKey,
    ObjectColon,
    ObjectValue,
    ObjectComma,
}

enum Token {
    Open(u8),
    Close(u8),
    Scalar(Value),
    Key(String),
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    state: State,
    stack: Vec<State>,
}

/// A byte quoted as Go's JSON errors quote it (`'x'`; bytes above ASCII read as Latin-1).
fn quote_byte(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            let quoted = go_quote(&char::from(c).to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {}{context}", quote_byte(c))
}

impl Decoder<'_> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.bytes.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                self.pos += 1;
            } else {
                return Some(c);
            }
        }
        None
    }

    fn value_allowed(&self) -> bool {
        matches!(
            self.state,
            State::TopValue | State::ArrayStart | State::ArrayValue | State::ObjectValue
        )
    }

    fn value_end(&mut self) {
        self.state = match self.state {
            State::ArrayStart | State::ArrayValue => State::ArrayComma,
            State::ObjectValue => State::ObjectComma,
            other => other,
        };
    }

    fn token_error(&self, c: u8) -> String {
        let context = match self.state {
            State::TopValue | State::ArrayStart | State::ArrayValue | State::ObjectValue => {
                " looking for beginning of value"
            }
            State::ArrayComma => " after array element",
            State::ObjectKey => " looking for beginning of object key string",
            State::ObjectColon => " after object key",
            State::ObjectComma => " after object key:value pair",
            State::ObjectStart => "",
        };
        invalid(c, context)
    }

    /// Go's `Decoder.Token`.
    fn token(&mut self) -> Result<Token, String> {
        loop {
            let Some(c) = self.peek() else {
                return Err("EOF".to_string());
            };
            match c {
                b'[' | b'{' => {
                    if !self.value_allowed() {
                        return Err(self.token_error(c));
                    }
                    self.pos += 1;
                    self.stack.push(self.state);
                    self.state = if c == b'[' {
                        State::ArrayStart
                    } else {
                        State::ObjectStart
                    };
                    return Ok(Token::Open(c));
                }
                b']' | b'}' => {
                    let allowed = if c == b']' {
                        matches!(self.state, State::ArrayStart | State::ArrayComma)
                    } else {
                        matches!(self.state, State::ObjectStart | State::ObjectComma)
                    };
                    if !allowed {
                        return Err(self.token_error(c));
                    }
                    self.pos += 1;
                    self.state = self.stack.pop().unwrap_or(State::TopValue);
                    self.value_end();
                    return Ok(Token::Close(c));
                }
                b':' => {
                    if self.state != State::ObjectColon {
                        return Err(self.token_error(c));
                    }
                    self.pos += 1;
                    self.state = State::ObjectValue;
                }
                b',' => match self.state {
                    State::ArrayComma => {
                        self.pos += 1;
                        self.state = State::ArrayValue;
                    }
                    State::ObjectComma => {
                        self.pos += 1;
                        self.state = State::ObjectKey;
                    }
                    _ => return Err(self.token_error(c)),
                },
                b'"' if matches!(self.state, State::ObjectStart | State::ObjectKey) => {
                    let key = self.scalar()?;
                    self.state = State::ObjectColon;
                    return match key {
                        Value::String(key) => Ok(Token::Key(key)),
                        _ => Err("expected string".to_string()),
                    };
                }
                _ => {
                    if !self.value_allowed() {
                        return Err(self.token_error(c));
                    }
                    let value = self.scalar()?;
                    self.value_end();
                    return Ok(Token::Scalar(value));
                }
            }
        }
    }

    /// Go's `Decoder.More`.
    fn more(&mut self) -> bool {
        self.peek().is_some_and(|c| c != b']' && c != b'}')
    }

    /// Builds the value a token starts (cty's implied type and unmarshalling in one).
    fn value_for(&mut self, token: Token) -> Result<Value, String> {
        match token {
            Token::Scalar(value) => Ok(value),
            Token::Open(b'[') => {
                let mut items = Vec::new();
                loop {
                    match self.token()? {
                        Token::Close(b']') => return Ok(Value::List(items)),
                        other => items.push(self.value_for(other)?),
                    }
                }
            }
            Token::Open(_) => {
                let mut attributes: BTreeMap<String, Value> = BTreeMap::new();
                loop {
                    let key = match self.token()? {
                        Token::Close(_) => return Ok(Value::Object(attributes)),
                        Token::Key(key) => key,
                        Token::Open(c) => {
                            return Err(format!("unexpected delimiter {}", quote_byte(c)));
                        }
                        Token::Scalar(_) => return Err("expected string".to_string()),
                    };
                    let token = self.token()?;
                    let value = self.value_for(token)?;
                    if let Some(existing) = attributes.get(&key)
                        && Type::of(existing) != Type::of(&value)
                    {
                        return Err(format!(
                            "duplicate {} property in JSON object",
                            go_quote(&key)
                        ));
                    }
                    attributes.insert(key, value);
                }
            }
            Token::Close(c) => Err(format!("unexpected token {}", quote_byte(c))),
            Token::Key(key) => Ok(Value::String(key)),
        }
    }

    /// Reads one string, number or literal as Go's scanner reads a top-level value.
    fn scalar(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let bytes = self.bytes;
        let at = |i: usize| bytes.get(i).copied();
        let eof = || "unexpected EOF".to_string();
        match at(start) {
            Some(b'"') => {
                let mut i = start + 1;
                let mut out: Vec<u8> = Vec::new();
                loop {
                    let Some(c) = at(i) else { return Err(eof()) };
                    match c {
                        b'"' => {
                            self.pos = i + 1;
                            return Ok(Value::String(String::from_utf8_lossy(&out).into_owned()));
                        }
                        b'\\' => {
                            let Some(e) = at(i + 1) else {
                                return Err(eof());
                            };
                            let simple = match e {
                                b'"' => Some(b'"'),
                                b'\\' => Some(b'\\'),
                                b'/' => Some(b'/'),
                                b'b' => Some(8),
                                b'f' => Some(12),
                                b'n' => Some(b'\n'),
                                b'r' => Some(b'\r'),
                                b't' => Some(b'\t'),
                                b'u' => None,
                                _ => return Err(invalid(e, " in string escape code")),
                            };
                            if let Some(byte) = simple {
                                out.push(byte);
                                i += 2;
                                continue;
                            }
                            let (unit, next) = hex4(bytes, i + 2)?;
                            i = next;
                            let c = if (0xd800..0xdc00).contains(&unit)
                                && at(i) == Some(b'\\')
                                && at(i + 1) == Some(b'u')
                            {
                                match hex4(bytes, i + 2) {
                                    Ok((low, after)) if (0xdc00..0xe000).contains(&low) => {
                                        i = after;
                                        char::from_u32(
                                            0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00),
                                        )
                                    }
                                    Ok(_) => None,
                                    Err(e) => return Err(e),
                                }
                            } else {
                                char::from_u32(unit)
                            };
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(
                                c.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes(),
                            );
                        }
                        c if c < 0x20 => return Err(invalid(c, " in string literal")),
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
            }
            Some(c @ (b't' | b'f' | b'n')) => {
                let (word, value) = match c {
                    b't' => ("true", Value::Bool(true)),
                    b'f' => ("false", Value::Bool(false)),
                    _ => ("null", Value::Null),
                };
                for (k, expected) in word.bytes().enumerate().skip(1) {
                    match at(start + k) {
                        None => return Err(eof()),
                        Some(got) if got != expected => {
                            return Err(invalid(
                                got,
                                &format!(" in literal {word} (expecting {})", quote_byte(expected)),
                            ));
                        }
                        Some(_) => {}
                    }
                }
                self.pos = start + word.len();
                Ok(value)
            }
            Some(b'-' | b'0'..=b'9') => {
                let mut i = start;
                if at(i) == Some(b'-') {
                    i += 1;
                    match at(i) {
                        None => return Err(eof()),
                        Some(b'0'..=b'9') => {}
                        Some(c) => return Err(invalid(c, " in numeric literal")),
                    }
                }
                if at(i) == Some(b'0') {
                    i += 1;
                } else {
                    while matches!(at(i), Some(b'0'..=b'9')) {
                        i += 1;
                    }
                }
                if at(i) == Some(b'.') {
                    i += 1;
                    match at(i) {
                        None => return Err(eof()),
                        Some(b'0'..=b'9') => {}
                        Some(c) => {
                            return Err(invalid(c, " after decimal point in numeric literal"));
                        }
                    }
                    while matches!(at(i), Some(b'0'..=b'9')) {
                        i += 1;
                    }
                }
                if matches!(at(i), Some(b'e' | b'E')) {
                    i += 1;
                    if matches!(at(i), Some(b'+' | b'-')) {
                        i += 1;
                    }
                    match at(i) {
                        None => return Err(eof()),
                        Some(b'0'..=b'9') => {}
                        Some(c) => return Err(invalid(c, " in exponent of numeric literal")),
                    }
                    while matches!(at(i), Some(b'0'..=b'9')) {
                        i += 1;
                    }
                }
                let literal = std::str::from_utf8(&bytes[start..i]).unwrap_or("0");
                self.pos = i;
                Ok(Value::Number(literal.parse::<f64>().unwrap_or(0.0)))
            }
            Some(c) => Err(invalid(c, " looking for beginning of value")),
            None => Err("EOF".to_string()),
        }
    }
}

/// Four hex digits of a `\u` escape at `start`: the code unit and the position after.
fn hex4(bytes: &[u8], start: usize) -> Result<(u32, usize), String> {
    let mut unit = 0u32;
    for i in start..start + 4 {
        let Some(&c) = bytes.get(i) else {
            return Err("unexpected EOF".to_string());
        };
        let digit = char::from(c)
            .to_digit(16)
            .ok_or_else(|| invalid(c, " in \\u hexadecimal character escape"))?;
        unit = unit * 16 + digit;
    }
    Ok((unit, start + 4))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, fails, list, n, obj, ok, s};
    use crate::value::Value;

    fn decode_err(text: &str) -> String {
        let detail = fails("jsondecode", vec![s(text)]);
        detail
            .strip_prefix("Call to function \"jsondecode\" failed: ")
            .and_then(|d| d.strip_suffix('.'))
            .unwrap_or(&detail)
            .to_string()
    }

    #[test]
    fn encoding_matches_cty() {
        assert_eq!(
            ok(
                "jsonencode",
                vec![obj(&[
                    ("b", n(1.0)),
                    ("a", list(vec![n(1.0), n(2.5), s("x")]))
                ])]
            ),
            s("{\"a\":[1,2.5,\"x\"],\"b\":1}")
        );
        assert_eq!(
            ok("jsonencode", vec![s("<&>\u{2028}")]),
            s("\"\\u003c\\u0026\\u003e\\u2028\"")
        );
        assert_eq!(
            ok("jsonencode", vec![s("\u{8}\u{c}\u{1}\n\"\\")]),
            s("\"\\b\\f\\u0001\\n\\\"\\\\\"")
        );
        assert_eq!(ok("jsonencode", vec![Value::Null]), s("null"));
        assert_eq!(ok("jsonencode", vec![b(true)]), s("true"));
        assert_eq!(
            ok("jsonencode", vec![Value::Set(vec![s("a"), s("b")])]),
            s("[\"a\",\"b\"]")
        );
        assert_eq!(ok("jsonencode", vec![n(1e21)]), s("1000000000000000000000"));
        assert_eq!(
            fails("jsonencode", vec![n(f64::INFINITY)]),
            "Call to function \"jsonencode\" failed: cannot serialize infinity as JSON."
        );
    }

    #[test]
    fn decoding_round_trips() {
        let doc = "{\"b\":[1,2.5,\"x\",true,null],\"a\":{\"c\":\"\\u00e9\\ud83c\\udf55\"}}";
        let value = ok("jsondecode", vec![s(doc)]);
        assert_eq!(
            value,
            obj(&[
                ("a", obj(&[("c", s("é🍕"))])),
                (
                    "b",
                    list(vec![n(1.0), n(2.5), s("x"), b(true), Value::Null])
                ),
            ])
        );
        assert_eq!(
            ok("jsonencode", vec![value]),
            s("{\"a\":{\"c\":\"é🍕\"},\"b\":[1,2.5,\"x\",true,null]}")
        );
        assert_eq!(ok("jsondecode", vec![s(" 42 ")]), n(42.0));
        assert_eq!(
            ok("jsondecode", vec![s("{\"a\":1,\"a\":2}")]),
            obj(&[("a", n(2.0))])
        );
        assert_eq!(ok("jsondecode", vec![s("1]")]), n(1.0));
        assert_eq!(ok("jsondecode", vec![s("[]")]), list(vec![]));
    }

    #[test]
    fn decoding_errors_match_go() {
        let cases = [
            ("", "EOF"),
            ("  ", "EOF"),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("1 2", "extraneous data after JSON object"),
            ("01", "extraneous data after JSON object"),
            ("tru", "unexpected EOF"),
            ("\"a", "unexpected EOF"),
            ("-", "unexpected EOF"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            ("{1:2}", "invalid character '1'"),
            ("nul", "unexpected EOF"),
            ("\"\\x\"", "invalid character 'x' in string escape code"),
            (
                "{\"a\":1,\"a\":\"x\"}",
                "duplicate \"a\" property in JSON object",
            ),
            ("[1,", "EOF"),
            (
                "{\"a\":1 \"b\":2}",
                "invalid character '\"' after object key:value pair",
            ),
            (
                "[tru]",
                "invalid character ']' in literal true (expecting 'e')",
            ),
            ("x", "invalid character 'x' looking for beginning of value"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            ("1e+", "unexpected EOF"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
        ];
        for (text, want) in cases {
            assert_eq!(decode_err(text), want, "{text:?}");
        }
    }
}
