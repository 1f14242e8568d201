//! Variable interpolation in compose files as compose-go's `template.Substitute` does it:
//! `$VAR`, `${VAR}`, `${VAR:-default}` / `${VAR-default}` (empty-or-unset / unset),
//! `${VAR:+alt}` / `${VAR+alt}`, `${VAR:?message}` / `${VAR?message}`, `$$` for a dollar;
//! defaults are themselves interpolated.

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` not followed by a valid name and closing brace.
    #[error("Invalid template: {}", crate::model::text::go_quote(.0))]
    Invalid(String),
    /// `${VAR?message}` with the variable unset (or empty, for `:?`).
    #[error("required variable {variable} is missing a value{}", if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    MissingRequired {
        /// The variable.
        variable: String,
        /// The message given after `?`.
        reason: String,
    },
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Substitutes the variables of `template`, `lookup` giving a variable's value (`None`:
/// unset). An unset `$VAR` becomes the empty string.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        let next = bytes[i + 1];
        if next == b'$' {
            out.push_str(&template[literal_start..i]);
            out.push('$');
            i += 2;
            literal_start = i;
            continue;
        }
        if is_name_start(next) {
            let mut end = i + 2;
            while end < bytes.len() && is_name_char(bytes[end]) {
                end += 1;
            }
            out.push_str(&template[literal_start..i]);
            out.push_str(&lookup(&template[i + 1..end]).unwrap_or_default());
            i = end;
            literal_start = i;
            continue;
        }
        if next != b'{' {
            i += 1;
            continue;
        }
        out.push_str(&template[literal_start..i]);
        let (replacement, end) = braced(template, i, lookup)?;
        out.push_str(&replacement);
        i = end;
        literal_start = i;
    }
    out.push_str(&template[literal_start..]);
    Ok(out)
}

/// Substitutes the `${…}` starting at `start`; the text and the index just past what the
/// pattern consumed.
fn braced(
    template: &str,
    start: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, usize), TemplateError> {
    let bytes = template.as_bytes();
    let invalid = || TemplateError::Invalid(template.to_string());
    let name_start = start + 2;
    if name_start >= bytes.len() || !is_name_start(bytes[name_start]) {
        return Err(invalid());
    }
    let mut name_end = name_start + 1;
    while name_end < bytes.len() && is_name_char(bytes[name_end]) {
        name_end += 1;
    }
    let name = &template[name_start..name_end];
    match bytes.get(name_end) {
        Some(b'}') => return Ok((lookup(name).unwrap_or_default(), name_end + 1)),
        Some(b':') if matches!(bytes.get(name_end + 1), Some(b'-' | b'+' | b'?')) => {}
        Some(b'-' | b'+' | b'?') => {}
        _ => return Err(invalid()),
    }
    // The pattern's `(.*)}` is greedy up to the last `}` of the line; the substitution itself
    // ends at the brace closing `${`, and what lies between is substituted on its own.
    let line_end = template[name_end..]
        .find('\n')
        .map_or(template.len(), |n| name_end + n);
    let Some(last_brace) = template[name_end..line_end]
        .rfind('}')
        .map(|n| name_end + n)
    else {
        return Err(invalid());
    };
    let matched = &template[start..=last_brace];
    let closing = closing_brace(matched).unwrap_or(matched.len() - 1);
    let expression = &matched[2..closing];
    let rest = &matched[closing + 1..];
    let value = apply_modifier(expression, name, lookup)?;
    let rest = substitute(rest, lookup)?;
    Ok((value + &rest, last_brace + 1))
}

/// The index of the `}` closing the `${` at the start of `s`, counting nested `{`.
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut open = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'}' {
            open = open.saturating_sub(1);
            if open == 0 {
                return Some(i);
            }
        }
        if bytes[i] == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

/// Applies the `:-`, `-`, `:+`, `+`, `:?`, `?` in `expression` (`NAME<op>WORD`).
fn apply_modifier(
    expression: &str,
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let after = &expression[name.len()..];
    let (op, word) = if let Some(word) = after.strip_prefix(":-") {
        (":-", word)
    } else if let Some(word) = after.strip_prefix(":+") {
        (":+", word)
    } else if let Some(word) = after.strip_prefix(":?") {
        (":?", word)
    } else {
        after.split_at(1)
    };
    let word = substitute(word, lookup)?;
    let value = lookup(name);
    Ok(match op {
        ":-" => match value {
            Some(v) if !v.is_empty() => v,
            _ => word,
        },
        "-" => value.unwrap_or(word),
        ":+" => match value {
            Some(v) if !v.is_empty() => word,
            other => other.unwrap_or_default(),
        },
        "+" => match value {
            Some(_) => word,
            None => String::new(),
        },
        ":?" | "?" => match value {
            Some(v) if op == "?" || !v.is_empty() => v,
            _ => {
                return Err(TemplateError::MissingRequired {
                    variable: name.to_string(),
                    reason: word,
                });
            }
        },
        _ => value.unwrap_or_default(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("foo".to_string()),
            "EMPTY" => Some(String::new()),
            "BAR" => Some("bar".to_string()),
            _ => None,
        }
    }

    fn sub(s: &str) -> String {
        substitute(s, &env).unwrap()
    }

    #[test]
    fn substitutes_like_compose_go() {
        assert_eq!(sub("$FOO/${BAR}"), "foo/bar");
        assert_eq!(sub("${UNSET}x"), "x");
        assert_eq!(sub("$$FOO"), "$FOO");
        assert_eq!(sub("${UNSET:-def}"), "def");
        assert_eq!(sub("${EMPTY:-def}"), "def");
        assert_eq!(sub("${EMPTY-def}"), "");
        assert_eq!(sub("${UNSET-def}"), "def");
        assert_eq!(sub("${FOO:+alt}"), "alt");
        assert_eq!(sub("${EMPTY:+alt}"), "");
        assert_eq!(sub("${EMPTY+alt}"), "alt");
        assert_eq!(sub("${UNSET+alt}"), "");
        assert_eq!(sub("${UNSET:-${FOO}}"), "foo");
        assert_eq!(sub("${UNSET:-a}-${BAR}"), "a-bar");
        assert_eq!(sub("${FOO:-x} and ${BAR:-y}"), "foo and bar");
        assert_eq!(sub("a $1 b"), "a $1 b");
        assert_eq!(sub("end$"), "end$");
    }

    #[test]
    fn errors_like_compose_go() {
        assert_eq!(
            substitute("${UNSET:?need it}", &env)
                .unwrap_err()
                .to_string(),
            "required variable UNSET is missing a value: need it"
        );
        assert_eq!(
            substitute("${EMPTY:?}", &env).unwrap_err().to_string(),
            "required variable EMPTY is missing a value"
        );
        assert_eq!(sub("${EMPTY?}"), "");
        assert_eq!(
            substitute("a ${.x}", &env).unwrap_err().to_string(),
            r#"Invalid template: "a ${.x}""#
        );
        assert!(substitute("${FOO", &env).is_err());
    }
}
