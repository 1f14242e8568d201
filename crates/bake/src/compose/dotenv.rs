//! `.env` and `env_file` files as compose-go's `dotenv` parser reads them: `KEY=VALUE` or
//! `KEY: VALUE` lines, `export ` prefixes, `#` comments, single-quoted values literal,
//! double-quoted values with escapes and interpolation, unquoted values interpolated and cut
//! at ` #`; a bare `KEY` line inherits the variable from the lookup.

use std::collections::BTreeMap;

use super::template::{TemplateError, substitute};

/// Why a dotenv file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// A key holding a space.
    #[error("line {0}: key cannot contain a space")]
    KeySpace(usize),
    /// A character not allowed in a key.
    #[error("line {line}: unexpected character {} in variable name {}", crate::model::text::go_quote(.character), crate::model::text::go_quote(.statement))]
    KeyCharacter {
        /// The line.
        line: usize,
        /// The character.
        character: String,
        /// The statement's first line.
        statement: String,
    },
    /// A quoted value without its closing quote.
    #[error("line {line}: unterminated quoted value {value}")]
    Unterminated {
        /// The line.
        line: usize,
        /// The value as written up to the end of its line.
        value: String,
    },
    /// An interpolation failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Go's `unicode.IsSpace`.
fn is_unicode_space(c: char) -> bool {
    c.is_whitespace()
}

/// The dotenv parser's own notion of a space (no newline).
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// Parses a dotenv file into `out` (later keys win). `lookup` resolves variables in values
/// and bare keys before the file's own earlier keys are consulted.
pub fn parse_into(
    src: &str,
    out: &mut BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), DotenvError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut line = 1usize;
    let mut rest = src;
    loop {
        // Skip blank space and comment lines, counting newlines.
        loop {
            let Some(pos) = rest.find(|c: char| !is_unicode_space(c)) else {
                rest = "";
                break;
            };
            line += rest[..pos].matches('\n').count();
            rest = &rest[pos..];
            if !rest.starts_with('#') {
                break;
            }
            match rest.find('\n') {
                Some(nl) => rest = &rest[nl..],
                None => {
                    rest = "";
                    break;
                }
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        let (key, after, inherited) = locate_key(rest, &mut line)?;
        if key.contains(' ') {
            return Err(DotenvError::KeySpace(line));
        }
        if inherited {
            if let Some(value) = lookup(&key) {
                out.insert(key, value);
            }
            rest = after;
            continue;
        }
        let (value, after) = extract_value(after, out, lookup, &mut line)?;
        out.insert(key, value);
        rest = after;
    }
}

fn locate_key<'a>(src: &'a str, line: &mut usize) -> Result<(String, &'a str, bool), DotenvError> {
    let mut src = src;
    if let Some(after) = src.strip_prefix("export")
        && after.starts_with(is_unicode_space)
    {
        src = after.trim_start_matches(is_space);
    }
    let mut key_end = None;
    let mut inherited = false;
    for (i, c) in src.char_indices() {
        if is_space(c) {
            continue;
        }
        match c {
            '=' | ':' | '\n' => {
                key_end = Some(i);
                inherited = c == '\n';
                break;
            }
            '_' | '.' | '-' | '[' | ']' => {}
            c if c.is_alphanumeric() => {}
            c => {
                return Err(DotenvError::KeyCharacter {
                    line: *line,
                    character: c.to_string(),
                    statement: src.split('\n').next().unwrap_or_default().to_string(),
                });
            }
        }
    }
    // A last line without `=`, `:` or newline leaves compose-go's key empty and takes the
    // whole line as the value of the empty key.
    let (key, offset) = match key_end {
        Some(i) => (&src[..i], i + 1),
        None => ("", 0),
    };
    if inherited && !key.contains(' ') {
        *line += 1;
    }
    let key = key.trim_end_matches(is_unicode_space).to_string();
    let after = src[offset.min(src.len())..].trim_start_matches(is_space);
    Ok((key, after, inherited))
}

fn expand(
    value: &str,
    env: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DotenvError> {
    Ok(substitute(value, &|k| {
        lookup(k).or_else(|| env.get(k).cloned())
    })?)
}

/// Go's `strconv.UnquoteChar`-based escapes of double-quoted values (`\n`, `\t`, `\$`, …).
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('c') => {
                // `\c` is no valid Go escape: kept as written.
                out.push_str("\\c");
            }
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some('$') => out.push_str("$$"),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

fn extract_value<'a>(
    src: &'a str,
    env: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    line: &mut usize,
) -> Result<(String, &'a str), DotenvError> {
    let quote = match src.as_bytes().first() {
        Some(b'"') => b'"',
        Some(b'\'') => b'\'',
        _ => {
            let (value, rest) = src.split_once('\n').unwrap_or((src, ""));
            *line += 1;
            let value = value.split_once(" #").map_or(value, |(v, _)| v);
            let value = value.trim_end_matches(is_unicode_space);
            return Ok((expand(value, env, lookup)?, rest));
        }
    };
    let bytes = src.as_bytes();
    let mut previous_escape = false;
    let mut chars: Vec<u8> = Vec::new();
    for i in 1..bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            *line += 1;
        }
        if c != quote {
            if !previous_escape && c == b'\\' {
                previous_escape = true;
                continue;
            }
            if previous_escape {
                previous_escape = false;
                chars.push(b'\\');
            }
            chars.push(c);
            continue;
        }
        if previous_escape {
            previous_escape = false;
            chars.push(c);
            continue;
        }
        let mut value = String::from_utf8_lossy(&chars).into_owned();
        if quote == b'"' {
            value = expand(&expand_escapes(&value), env, lookup)?;
        }
        return Ok((value, &src[i + 1..]));
    }
    let end = src.find('\n').unwrap_or(src.len());
    Err(DotenvError::Unterminated {
        line: *line,
        value: src[..end].to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn parse(src: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        parse_into(src, &mut out, &|k| {
            (k == "SYSTEM").then(|| "sys".to_string())
        })
        .unwrap();
        out
    }

    #[test]
    fn reads_dotenv_like_compose_go() {
        let got = parse(
            "# comment\nFOO=bar\nexport BAZ=qux\nSP=a b # trailing\nQ='lit $FOO'\nD=\"x\\ny ${FOO}\"\nC: colon\nREF=${SYSTEM}-${FOO}\nSYSTEM\nEMPTY=\n",
        );
        assert_eq!(got["FOO"], "bar");
        assert_eq!(got["BAZ"], "qux");
        assert_eq!(got["SP"], "a b");
        assert_eq!(got["Q"], "lit $FOO");
        assert_eq!(got["D"], "x\ny bar");
        assert_eq!(got["C"], "colon");
        assert_eq!(got["REF"], "sys-bar");
        assert_eq!(got["SYSTEM"], "sys");
        assert_eq!(got["EMPTY"], "");
    }

    #[test]
    fn errors_like_compose_go() {
        let mut out = BTreeMap::new();
        assert_eq!(
            parse_into("A B=c\n", &mut out, &|_| None)
                .unwrap_err()
                .to_string(),
            "line 1: key cannot contain a space"
        );
        assert_eq!(
            parse_into("A=\"open\n", &mut out, &|_| None)
                .unwrap_err()
                .to_string(),
            "line 2: unterminated quoted value \"open"
        );
        assert!(parse_into("A$=1", &mut out, &|_| None).is_err());
    }
}
