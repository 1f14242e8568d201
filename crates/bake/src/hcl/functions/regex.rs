//! `regex`, `regexall` and `regex_replace`, with Go's RE2 syntax.
//!
//! Go's `regexp` and Rust's `regex` share RE2's syntax and leftmost-first semantics; the
//! differences handled here, by rewriting the pattern before compiling it:
//! - `\d`, `\w`, `\s`, `\b` (and negations) are ASCII-only in Go, Unicode in Rust;
//! - `\Q…\E` quotes literally in Go, Rust has no such form;
//! - a `{` that does not start a valid repetition is a literal in Go, an error in Rust;
//! - Go rejects nested repetitions (`a**`) and counts above 1000, Rust does not;
//! - `[` inside a class is literal in Go (unless `[:name:]`), nested in Rust; `&&`, `--`,
//!   `~~` are set operations in Rust classes, literals in Go;
//! - octal escapes (`\101`) are on, as in Go.
//!
//! Pattern errors are worded with Go's error codes and the offending fragment.

use std::collections::BTreeMap;

use super::{Failure, Outcome, string, string_arg};
use crate::value::Value;

/// A pattern error as Go's `regexp/syntax.Error` has it: a code and the fragment.
#[derive(Debug, Clone, PartialEq)]
struct PatternError {
    code: &'static str,
    expr: String,
}

/// Rewrites a Go pattern into an equivalent Rust one, or finds the errors Go reports that
/// Rust would not.
fn translate(pattern: &str) -> Result<String, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let text = |from: usize, to: usize| chars[from..to.min(chars.len())].iter().collect::<String>();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    // whether the last thing is something a repetition may apply to
    let mut can_repeat = false;
    // where the previous repetition operator started, when nothing followed it yet
    let mut last_repeat: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(PatternError {
                        code: "trailing backslash at end of expression",
                        expr: String::new(),
                    });
                };
                if next == 'Q' {
                    let start = i + 2;
                    let mut end = start;
                    while end < chars.len()
                        && !(chars[end] == '\\' && chars.get(end + 1) == Some(&'E'))
                    {
                        end += 1;
                    }
                    for literal in &chars[start..end] {
                        out.push_str(&regex_syntax::escape(&literal.to_string()));
                    }
                    can_repeat = end > start;
                    last_repeat = None;
                    i = if end < chars.len() { end + 2 } else { end };
                    continue;
                }
                match next {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str("[\\t\\n\\f\\r ]"),
                    'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                        // \p{…} and \x{…} keep their braces
                        if matches!(next, 'p' | 'P' | 'x') && chars.get(i + 2) == Some(&'{') {
                            let mut j = i + 2;
                            while j < chars.len() && chars[j] != '}' {
                                out.push(chars[j]);
                                j += 1;
                            }
                            if j < chars.len() {
                                out.push('}');
                            }
                            i = j + 1;
                            can_repeat = true;
                            last_repeat = None;
                            continue;
                        }
                    }
                }
                can_repeat = true;
                last_repeat = None;
                i += 2;
            }
            '[' => {
                let end = translate_class(&chars, i, &mut out)?;
                can_repeat = true;
                last_repeat = None;
                i = end;
            }
            '*' | '+' | '?' | '{' => {
                let (end, valid) = if c == '{' {
                    repeat_braces(&chars, i)
                } else {
                    (i + 1, true)
                };
                if !valid {
                    // not a repetition: Go reads the brace literally
                    out.push_str("\\{");
                    can_repeat = true;
                    last_repeat = None;
                    i += 1;
                    continue;
                }
                let mut op_end = end;
                if chars.get(op_end) == Some(&'?') {
                    op_end += 1;
                }
                if let Some(start) = last_repeat {
                    return Err(PatternError {
                        code: "invalid nested repetition operator",
                        expr: text(start, op_end),
                    });
                }
                if !can_repeat {
                    return Err(PatternError {
                        code: "missing argument to repetition operator",
                        expr: text(i, op_end),
                    });
                }
                if c == '{' && !repeat_counts_valid(&text(i, end)) {
                    return Err(PatternError {
                        code: "invalid repeat count",
                        expr: text(i, end),
                    });
                }
                out.push_str(&text(i, op_end));
                last_repeat = Some(i);
                i = op_end;
            }
            '(' => {
                // a group opening, possibly with flags or a name, up to its ':' / ')' / '>'
                out.push('(');
                i += 1;
                if chars.get(i) == Some(&'?') {
                    while i < chars.len() {
                        let g = chars[i];
                        out.push(g);
                        i += 1;
                        if g == ':' || g == ')' || g == '>' {
                            break;
                        }
                    }
                }
                // neither a group's opening nor a bare flag group `(?i)` can be repeated
                can_repeat = false;
                last_repeat = None;
            }
            '|' => {
                out.push('|');
                can_repeat = false;
                last_repeat = None;
                i += 1;
            }
            ')' => {
                out.push(')');
                can_repeat = true;
                last_repeat = None;
                i += 1;
            }
            _ => {
                out.push(c);
                can_repeat = true;
                last_repeat = None;
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Copies the character class starting at `start` (`[`) into `out` as a Rust class;
/// returns the position after its `]`.
fn translate_class(chars: &[char], start: usize, out: &mut String) -> Result<usize, PatternError> {
    let unclosed = || PatternError {
        code: "missing closing ]",
        expr: chars[start..].iter().collect(),
    };
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    // a ']' right after the opening is a literal
    if chars.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                // a POSIX class [:name:], kept as is
                let Some(close) = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == ':' && chars[j + 1] == ']')
                else {
                    out.push_str("\\[");
                    i += 1;
                    continue;
                };
                out.extend(&chars[i..close + 2]);
                i = close + 2;
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str("\\-");
                i += 1;
            }
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(unclosed());
                };
                match next {
                    'd' => out.push_str("0-9"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("0-9A-Za-z_"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str("\\t\\n\\f\\r "),
                    'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                        if matches!(next, 'p' | 'P' | 'x') && chars.get(i + 2) == Some(&'{') {
                            let mut j = i + 2;
                            while j < chars.len() && chars[j] != '}' {
                                out.push(chars[j]);
                                j += 1;
                            }
                            if j < chars.len() {
                                out.push('}');
                            }
                            i = j + 1;
                            continue;
                        }
                    }
                }
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(unclosed())
}

/// Whether `{` at `start` begins Go's repetition syntax (`{n}`, `{n,}`, `{n,m}`), and
/// where it ends.
fn repeat_braces(chars: &[char], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return (start + 1, false);
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    if chars.get(i) == Some(&'}') {
        (i + 1, true)
    } else {
        (start + 1, false)
    }
}

/// Whether a `{n}`, `{n,}` or `{n,m}` is within Go's limits (at most 1000, min ≤ max).
fn repeat_counts_valid(braces: &str) -> bool {
    let inner = braces.trim_start_matches('{').trim_end_matches('}');
    let (min, max) = match inner.split_once(',') {
        Some((min, "")) => (min, None),
        Some((min, max)) => (min, Some(max)),
        None => (inner, Some(inner)),
    };
    let Ok(min) = min.parse::<u32>() else {
        return false;
    };
    let max = match max.map(str::parse::<u32>) {
        Some(Ok(max)) => Some(max),
        Some(Err(_)) => return false,
        None => None,
    };
    min <= 1000 && max.is_none_or(|max| max <= 1000 && min <= max)
}

/// Compiles a Go pattern.
fn compile(pattern: &str) -> Result<regex::Regex, PatternError> {
    let translated = translate(pattern)?;
    regex::RegexBuilder::new(&translated)
        .octal(true)
        .build()
        .map_err(|err| describe_error(&translated, &err))
}

/// Words a Rust compile error as Go would: its code and the fragment at fault.
fn describe_error(pattern: &str, err: &regex::Error) -> PatternError {
    use regex_syntax::ast::ErrorKind as Kind;
    let parsed = regex_syntax::ast::parse::ParserBuilder::new()
        .octal(true)
        .build()
        .parse(pattern);
    let Err(ast_err) = parsed else {
        let code = match err {
            regex::Error::CompiledTooBig(_) => "expression too large",
            _ => "invalid character class range",
        };
        return PatternError {
            code,
            expr: pattern.to_string(),
        };
    };
    let span = ast_err.span();
    let fragment = pattern
        .get(span.start.offset..span.end.offset)
        .unwrap_or("")
        .to_string();
    let from_start = pattern.get(span.start.offset..).unwrap_or("").to_string();
    let (code, expr) = match ast_err.kind() {
        Kind::GroupUnclosed => ("missing closing )", pattern.to_string()),
        Kind::GroupUnopened => ("unexpected )", pattern.to_string()),
        Kind::RepetitionMissing => ("missing argument to repetition operator", fragment),
        Kind::ClassUnclosed => ("missing closing ]", from_start),
        Kind::ClassRangeInvalid | Kind::ClassRangeLiteral | Kind::UnicodeClassInvalid => {
            ("invalid character class range", fragment)
        }
        Kind::EscapeUnexpectedEof => ("trailing backslash at end of expression", String::new()),
        Kind::RepetitionCountInvalid => ("invalid repeat count", fragment),
        Kind::GroupNameEmpty
        | Kind::GroupNameInvalid
        | Kind::GroupNameUnexpectedEof
        | Kind::GroupNameDuplicate { .. } => ("invalid named capture", fragment),
        Kind::FlagUnrecognized
        | Kind::FlagDanglingNegation
        | Kind::FlagRepeatedNegation { .. }
        | Kind::FlagDuplicate { .. }
        | Kind::FlagUnexpectedEof
        | Kind::UnsupportedLookAround => ("invalid or unsupported Perl syntax", fragment),
        Kind::CaptureLimitExceeded => ("expression too large", pattern.to_string()),
        _ => ("invalid escape sequence", fragment),
    };
    PatternError { code, expr }
}

/// What a pattern's matches are: the whole match (no groups), a tuple of its unnamed
/// groups, or an object of its named groups.
enum Shape {
    Whole,
    Unnamed,
    Named(Vec<String>),
}

fn shape(re: &regex::Regex) -> Result<Shape, Failure> {
    let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let named: Vec<String> = names.iter().flatten().map(|n| n.to_string()).collect();
    let unnamed = names.iter().filter(|n| n.is_none()).count();
    match (unnamed, named.len()) {
        (0, 0) => Ok(Shape::Whole),
        (_, 0) => Ok(Shape::Unnamed),
        (0, _) => Ok(Shape::Named(named)),
        _ => Err(Failure::arg(
            0,
            "invalid regexp pattern: cannot mix both named and unnamed capture groups",
        )),
    }
}

fn compile_for_match(pattern: &str) -> Result<(regex::Regex, Shape), Failure> {
    let re = compile(pattern).map_err(|e| {
        Failure::arg(
            0,
            format!("invalid regexp pattern: {} in {}", e.code, e.expr),
        )
    })?;
    let shape = shape(&re)?;
    Ok((re, shape))
}

fn match_value(captures: &regex::Captures<'_>, shape: &Shape) -> Value {
    let group = |m: Option<regex::Match<'_>>| m.map_or(Value::Null, |m| string(m.as_str()));
    match shape {
        Shape::Whole => group(captures.get(0)),
        Shape::Unnamed => Value::List(captures.iter().skip(1).map(group).collect()),
        Shape::Named(names) => Value::Object(
            names
                .iter()
                .map(|n| (n.clone(), group(captures.name(n))))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// `regex(pattern, string)`: the first match.
pub(super) fn regex(args: &[Value]) -> Outcome {
    let (re, shape) = compile_for_match(string_arg(args, 0)?)?;
    let text = string_arg(args, 1)?;
    let captures = re
        .captures(text)
        .ok_or_else(|| Failure::call("pattern did not match any part of the given string"))?;
    Ok(match_value(&captures, &shape))
}

/// `regexall(pattern, string)`: every match.
pub(super) fn regex_all(args: &[Value]) -> Outcome {
    let (re, shape) = compile_for_match(string_arg(args, 0)?)?;
    let text = string_arg(args, 1)?;
    Ok(Value::List(
        re.captures_iter(text)
            .map(|c| match_value(&c, &shape))
            .collect(),
    ))
}

/// `regex_replace(str, pattern, replace)`: every match replaced, `$1` / `${name}`
/// expanded as Go expands them.
pub(super) fn regex_replace(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    let re = compile(string_arg(args, 1)?)
        .map_err(|e| Failure::call(format!("error parsing regexp: {}: `{}`", e.code, e.expr)))?;
    Ok(string(re.replace_all(text, string_arg(args, 2)?)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, list, obj, ok, s, strs};
    use crate::value::Value;

    fn pattern_error(pattern: &str) -> String {
        fails("regex", vec![s(pattern), s("x")])
    }

    #[test]
    fn results_take_the_shape_of_the_groups() {
        assert_eq!(ok("regex", vec![s("b+"), s("abbbc")]), s("bbb"));
        assert_eq!(
            ok("regex", vec![s("a(b)?(c)"), s("ac")]),
            list(vec![Value::Null, s("c")])
        );
        assert_eq!(
            ok("regex", vec![s("(?P<first>a)(?P<second>b)?"), s("a")]),
            obj(&[("first", s("a")), ("second", Value::Null)])
        );
        assert_eq!(
            ok(
                "regex",
                vec![s("(?P<y>\\d{4})-(?P<m>\\d{2})"), s("2024-05")]
            ),
            obj(&[("m", s("05")), ("y", s("2024"))])
        );
        assert_eq!(
            fails("regex", vec![s("(a)(?P<n>b)"), s("ab")]),
            "Invalid value for \"pattern\" parameter: invalid regexp pattern: cannot mix both named and unnamed capture groups."
        );
        assert_eq!(
            fails("regex", vec![s("x"), s("abc")]),
            "Call to function \"regex\" failed: pattern did not match any part of the given string."
        );
    }

    #[test]
    fn regexall_lists_every_match() {
        assert_eq!(
            ok("regexall", vec![s("a*"), s("baaab")]),
            strs(&["", "aaa", ""])
        );
        assert_eq!(
            ok("regexall", vec![s("(a)(b)?"), s("a ab")]),
            list(vec![
                list(vec![s("a"), Value::Null]),
                list(vec![s("a"), s("b")])
            ])
        );
        assert_eq!(
            ok("regexall", vec![s(""), s("abc")]),
            strs(&["", "", "", ""])
        );
        assert_eq!(ok("regexall", vec![s("x"), s("abc")]), strs(&[]));
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert_eq!(
            ok("regexall", vec![s("\\d+"), s("a1b22c٣")]),
            strs(&["1", "22"])
        );
        assert_eq!(ok("regex", vec![s("\\w+"), s("héllo")]), s("h"));
        assert_eq!(ok("regex", vec![s("\\bfoo\\b"), s("a foo b")]), s("foo"));
        assert_eq!(ok("regex", vec![s("\\s+"), s("a\u{b}b c")]), s(" "));
        assert_eq!(ok("regex", vec![s("[\\d]+"), s("a12")]), s("12"));
        assert_eq!(ok("regex", vec![s("[^\\d]+"), s("12ab")]), s("ab"));
        assert_eq!(ok("regex", vec![s("(?i)HELLO"), s("hello")]), s("hello"));
        assert_eq!(ok("regex", vec![s("\\Qa.b\\E"), s("xa.b")]), s("a.b"));
        assert_eq!(ok("regex", vec![s("x{"), s("x{")]), s("x{"));
        assert_eq!(ok("regex", vec![s("\\101"), s("A")]), s("A"));
        assert_eq!(ok("regex", vec![s("[[:alpha:]]+"), s("1ab2")]), s("ab"));
        assert_eq!(ok("regex", vec![s("[[]+"), s("a[[b")]), s("[["));
        assert_eq!(ok("regex", vec![s("[a&&b]+"), s("x&b")]), s("&b"));
    }

    #[test]
    fn pattern_errors_are_worded_as_go_words_them() {
        let cases = [
            ("(abc", "missing closing ) in (abc"),
            ("abc)", "unexpected ) in abc)"),
            ("a**", "invalid nested repetition operator in **"),
            ("*a", "missing argument to repetition operator in *"),
            ("[a", "missing closing ] in [a"),
            ("[z-a]", "invalid character class range in z-a"),
            ("\\q", "invalid escape sequence in \\q"),
            ("a{2,1}", "invalid repeat count in {2,1}"),
            ("a{1001}", "invalid repeat count in {1001}"),
            ("(?P<n>a", "missing closing ) in (?P<n>a"),
            ("\\", "trailing backslash at end of expression in "),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                pattern_error(pattern),
                format!("Invalid value for \"pattern\" parameter: invalid regexp pattern: {want}."),
                "{pattern}"
            );
        }
        assert_eq!(
            fails("regex_replace", vec![s("abc"), s("(b"), s("x")]),
            "Call to function \"regex_replace\" failed: error parsing regexp: missing closing ): `(b`."
        );
    }

    #[test]
    fn replacements_expand_as_go_does() {
        assert_eq!(
            ok("regex_replace", vec![s("hello world"), s("(o)"), s("[$1]")]),
            s("hell[o] w[o]rld")
        );
        assert_eq!(
            ok(
                "regex_replace",
                vec![s("hello"), s("(?P<x>l+)"), s("<${x}>")]
            ),
            s("he<ll>o")
        );
        assert_eq!(
            ok("regex_replace", vec![s("hello"), s("(l)"), s("$1x")]),
            s("heo")
        );
        assert_eq!(
            ok("regex_replace", vec![s("hello"), s("(l)"), s("$$")]),
            s("he$$o")
        );
        assert_eq!(
            ok("regex_replace", vec![s("a.b.c"), s("\\."), s("-")]),
            s("a-b-c")
        );
    }
}
