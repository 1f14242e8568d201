//! The pieces of Go's standard library whose behaviour buildx's inputs and outputs follow:
//! how it reads a boolean and how its JSON encoder writes a string. Kept in one place so the
//! engine and the CLI's template evaluator write exactly the same bytes.

/// Go's `strconv.ParseBool`: `1 t T TRUE true True`, `0 f F FALSE false False`; anything
/// else is `None`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Appends `s` to `out` as Go's `encoding/json` writes a string: quoted, with its escapes;
/// `escape_html` also escapes `<`, `>` and `&` as `json.Marshal` does (`SetEscapeHTML(false)`
/// leaves them).
pub fn json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_go_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", " 1"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let mut out = String::new();
        json_string(&mut out, "a\"\\\n<&>\u{1}\u{2028}", true);
        assert_eq!(out, r#""a\"\\\n\u003c\u0026\u003e\u0001\u2028""#);
        let mut out = String::new();
        json_string(&mut out, "<b>", false);
        assert_eq!(out, r#""<b>""#);
    }
}
