//! String functions: cty's (`upper`, `substr`, `split`, `join`, `title`, …) and buildx's
//! (`basename`, `dirname`, `sanitize`). Lengths and offsets count grapheme clusters, as cty
//! counts them.

use unicode_segmentation::UnicodeSegmentation;

use super::{Failure, Outcome, arg, number_arg, string, string_arg, whole_number};
use crate::value::Value;

/// A character as Go's `unicode.ToUpper` maps it: the simple one-to-one mapping only
/// (`ß` stays `ß`, where Rust's full mapping would give `SS`).
fn upper_char(c: char) -> char {
    let mut mapped = c.to_uppercase();
    match (mapped.next(), mapped.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

/// As [`upper_char`], for `unicode.ToLower`.
fn lower_char(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut mapped = c.to_lowercase();
    match (mapped.next(), mapped.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

/// `upper(str)`.
pub(super) fn upper(args: &[Value]) -> Outcome {
    Ok(string(
        string_arg(args, 0)?
            .chars()
            .map(upper_char)
            .collect::<String>(),
    ))
}

/// `lower(str)`.
pub(super) fn lower(args: &[Value]) -> Outcome {
    Ok(string(
        string_arg(args, 0)?
            .chars()
            .map(lower_char)
            .collect::<String>(),
    ))
}

/// `reverse(str)`: grapheme clusters in reverse order.
pub(super) fn reverse(args: &[Value]) -> Outcome {
    Ok(string(
        string_arg(args, 0)?
            .graphemes(true)
            .rev()
            .collect::<String>(),
    ))
}

/// `strlen(str)`: the number of grapheme clusters.
pub(super) fn strlen(args: &[Value]) -> Outcome {
    Ok(Value::Number(
        string_arg(args, 0)?.graphemes(true).count() as f64
    ))
}

/// `substr(str, offset, length)`, with cty's rules: a negative offset counts from the
/// end, a negative length takes the rest.
pub(super) fn substr(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    let mut offset = whole_number(number_arg(args, 1)?).map_err(Failure::call)?;
    let length = whole_number(number_arg(args, 2)?).map_err(Failure::call)?;
    let clusters: Vec<&str> = text.graphemes(true).collect();
    if offset < 0 {
        offset += clusters.len() as i64;
    } else if length == 0 {
        return Ok(string(""));
    }
    let mut rest: &[&str] = &clusters;
    if offset > 0 {
        if offset as usize >= clusters.len() {
            return Ok(string(""));
        }
        rest = &clusters[offset as usize..];
    }
    if length < 0 {
        return Ok(string(rest.concat()));
    }
    // cty stops after `length` clusters; a length of zero (reached with a negative offset)
    // never matches its counter, so it takes the rest
    let take = if length == 0 {
        rest.len()
    } else {
        (length as usize).min(rest.len())
    };
    Ok(string(rest[..take].concat()))
}

/// `join(separator, lists...)`.
pub(super) fn join(args: &[Value]) -> Outcome {
    let separator = string_arg(args, 0)?;
    let lists = &args[1..];
    if lists.is_empty() {
        return Err(Failure::call("at least one list is required"));
    }
    let mut items = Vec::new();
    for (list_index, list) in lists.iter().enumerate() {
        let Value::List(elements) = list else {
            return Err(Failure::call("list of string required"));
        };
        for (element_index, element) in elements.iter().enumerate() {
            match element {
                Value::String(s) => items.push(s.as_str()),
                _ if lists.len() > 1 => {
                    return Err(Failure::arg(
                        list_index + 1,
                        format!(
                            "element {element_index} of list {} is null; cannot concatenate null values",
                            list_index + 1
                        ),
                    ));
                }
                _ => {
                    return Err(Failure::arg(
                        list_index + 1,
                        format!("element {element_index} is null; cannot concatenate null values"),
                    ));
                }
            }
        }
    }
    Ok(string(items.join(separator)))
}

/// `sort(list)`: strings in lexical (byte) order.
pub(super) fn sort(args: &[Value]) -> Outcome {
    let Value::List(elements) = arg(args, 0) else {
        return Err(Failure::call("list of string required"));
    };
    let mut items = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        match element {
            Value::String(s) => items.push(s.clone()),
            _ => {
                return Err(Failure::call(format!(
                    "given list element {index} is null; a null string cannot be sorted"
                )));
            }
        }
    }
    items.sort();
    Ok(Value::List(items.into_iter().map(Value::String).collect()))
}

/// `split(separator, str)`, as Go's `strings.Split`: empty pieces are kept, and an empty
/// separator splits into characters.
pub(super) fn split(args: &[Value]) -> Outcome {
    let separator = string_arg(args, 0)?;
    let text = string_arg(args, 1)?;
    let pieces: Vec<Value> = if separator.is_empty() {
        text.chars().map(|c| string(c.to_string())).collect()
    } else {
        text.split(separator).map(string).collect()
    };
    Ok(Value::List(pieces))
}

/// `chomp(str)`: trailing newlines (`\n`, `\r\n`, `\r`) removed.
pub(super) fn chomp(args: &[Value]) -> Outcome {
    Ok(string(string_arg(args, 0)?.trim_end_matches(['\r', '\n'])))
}

/// `indent(spaces, str)`: every line but the first prefixed with `spaces` spaces.
pub(super) fn indent(args: &[Value]) -> Outcome {
    let spaces = whole_number(number_arg(args, 0)?).map_err(Failure::call)?;
    let text = string_arg(args, 1)?;
    if spaces < 0 {
        return Err(Failure::call(
            "panic in function implementation: strings: negative Repeat count",
        ));
    }
    let pad = format!("\n{}", " ".repeat(spaces as usize));
    Ok(string(text.replace('\n', &pad)))
}

/// Go's `strings.Title` word boundary test.
fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphabetic() || c.is_numeric() {
        return false;
    }
    c.is_whitespace()
}

/// `title(str)`: the first letter of each word upper-cased, as Go's `strings.Title`.
pub(super) fn title(args: &[Value]) -> Outcome {
    let mut previous = ' ';
    let titled: String = string_arg(args, 0)?
        .chars()
        .map(|c| {
            let out = if is_separator(previous) {
                upper_char(c)
            } else {
                c
            };
            previous = c;
            out
        })
        .collect();
    Ok(string(titled))
}

/// `trimspace(str)`: leading and trailing Unicode white space removed.
pub(super) fn trim_space(args: &[Value]) -> Outcome {
    Ok(string(string_arg(args, 0)?.trim()))
}

/// `trim(str, cutset)`: leading and trailing characters found in `cutset` removed.
pub(super) fn trim(args: &[Value]) -> Outcome {
    let cutset = string_arg(args, 1)?;
    Ok(string(
        string_arg(args, 0)?.trim_matches(|c| cutset.contains(c)),
    ))
}

/// `trimprefix(str, prefix)`.
pub(super) fn trim_prefix(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    Ok(string(
        text.strip_prefix(string_arg(args, 1)?).unwrap_or(text),
    ))
}

/// `trimsuffix(str, suffix)`.
pub(super) fn trim_suffix(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    Ok(string(
        text.strip_suffix(string_arg(args, 1)?).unwrap_or(text),
    ))
}

/// `replace(str, substr, replace)`: every occurrence of a plain substring (an empty one
/// matches around every character, as in Go).
pub(super) fn replace(args: &[Value]) -> Outcome {
    Ok(string(
        string_arg(args, 0)?.replace(string_arg(args, 1)?, string_arg(args, 2)?),
    ))
}

/// Go's `path.Base`.
fn path_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

/// Go's `path.Dir`: everything before the last element, cleaned.
fn path_dir(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    crate::model::text::path_clean(dir)
}

/// `basename(path)` (buildx): the last element of a slash-separated path.
pub(super) fn basename(args: &[Value]) -> Outcome {
    Ok(string(path_base(string_arg(args, 0)?)))
}

/// `dirname(path)` (buildx): all but the last element of a slash-separated path.
pub(super) fn dirname(args: &[Value]) -> Outcome {
    Ok(string(path_dir(string_arg(args, 0)?)))
}

/// `sanitize(name)` (buildx): every character outside `[a-zA-Z0-9_-]` replaced by `_`,
/// leaving a valid target name.
pub(super) fn sanitize(args: &[Value]) -> Outcome {
    let sanitized: String = string_arg(args, 0)?
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(string(sanitized))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, list, n, ok, s, strs};
    use crate::value::Value;

    #[test]
    fn case_functions_map_as_go_does() {
        assert_eq!(ok("upper", vec![s("ßtraße é")]), s("ßTRAßE É"));
        assert_eq!(ok("lower", vec![s("ÀÉ İ")]), s("àé i"));
        assert_eq!(
            ok("title", vec![s("hello world-foo_bar baz.qux €uro 1st")]),
            s("Hello World-Foo_bar Baz.Qux €uro 1st")
        );
    }

    #[test]
    fn lengths_count_grapheme_clusters() {
        assert_eq!(ok("strlen", vec![s("héllo🍕👨‍👩‍👧")]), n(7.0));
        assert_eq!(ok("strlen", vec![s("")]), n(0.0));
        assert_eq!(ok("reverse", vec![s("héllo🍕")]), s("🍕olléh"));
    }

    #[test]
    fn substr_matches_cty() {
        let cases = [
            ("hello world", 1.0, 4.0, "ello"),
            ("hello", -3.0, 2.0, "ll"),
            ("hello", -1.0, 0.0, "o"),
            ("hello", 10.0, 2.0, ""),
            ("hello", 0.0, -1.0, "hello"),
            ("hello", 2.0, 100.0, "llo"),
            ("hello", -10.0, 2.0, "he"),
            ("héllo🍕x", 5.0, 1.0, "🍕"),
            ("", 0.0, 1.0, ""),
            ("hello", 1.0, 0.0, ""),
        ];
        for (text, offset, length, want) in cases {
            assert_eq!(
                ok("substr", vec![s(text), n(offset), n(length)]),
                s(want),
                "{text} {offset} {length}"
            );
        }
        assert_eq!(
            fails("substr", vec![s("hello"), n(1.5), n(1.0)]),
            "Call to function \"substr\" failed: value must be a whole number, between -9223372036854775808 and 9223372036854775807."
        );
    }

    #[test]
    fn split_and_join_match_go() {
        assert_eq!(
            ok("split", vec![s(","), s("a,,b,")]),
            strs(&["a", "", "b", ""])
        );
        assert_eq!(ok("split", vec![s(","), s("")]), strs(&[""]));
        assert_eq!(ok("split", vec![s(""), s("abc")]), strs(&["a", "b", "c"]));
        assert_eq!(ok("split", vec![s(""), s("")]), strs(&[]));
        assert_eq!(
            ok("join", vec![s(","), strs(&["a", "b"]), strs(&["c"])]),
            s("a,b,c")
        );
        assert_eq!(ok("join", vec![s(","), strs(&[])]), s(""));
        assert_eq!(
            ok("join", vec![s("-"), list(vec![n(1.0), n(2.0)])]),
            s("1-2")
        );
        assert_eq!(
            fails("join", vec![s(",")]),
            "Call to function \"join\" failed: at least one list is required."
        );
        assert_eq!(
            fails("join", vec![s(","), list(vec![s("a"), Value::Null])]),
            "Invalid value for \"lists\" parameter: element 1 is null; cannot concatenate null values."
        );
        assert_eq!(
            fails(
                "join",
                vec![s(","), strs(&["a"]), list(vec![s("b"), Value::Null])]
            ),
            "Invalid value for \"lists\" parameter: element 1 of list 2 is null; cannot concatenate null values."
        );
        assert_eq!(
            fails("join", vec![s(","), Value::Null]),
            "Invalid value for \"lists\" parameter: argument must not be null."
        );
    }

    #[test]
    fn sort_orders_strings_only() {
        assert_eq!(
            ok("sort", vec![strs(&["b", "a", "10", "9"])]),
            strs(&["10", "9", "a", "b"])
        );
        assert_eq!(
            ok("sort", vec![list(vec![n(3.0), n(10.0), n(2.0)])]),
            strs(&["10", "2", "3"])
        );
        assert_eq!(
            fails("sort", vec![list(vec![s("a"), Value::Null])]),
            "Call to function \"sort\" failed: given list element 1 is null; a null string cannot be sorted."
        );
    }

    #[test]
    fn trimming_matches_go() {
        assert_eq!(ok("trimspace", vec![s("  \t x \n ")]), s("x"));
        assert_eq!(ok("trim", vec![s("?!hello?!"), s("!?")]), s("hello"));
        assert_eq!(
            ok("trimprefix", vec![s("helloworld"), s("hello")]),
            s("world")
        );
        assert_eq!(ok("trimprefix", vec![s("hello"), s("x")]), s("hello"));
        assert_eq!(
            ok("trimsuffix", vec![s("helloworld"), s("world")]),
            s("hello")
        );
        assert_eq!(ok("chomp", vec![s("hello\n\r\n")]), s("hello"));
        assert_eq!(ok("chomp", vec![s("hello\r\r")]), s("hello"));
        assert_eq!(ok("indent", vec![n(2.0), s("a\nb\n")]), s("a\n  b\n  "));
        assert!(fails("indent", vec![n(-1.0), s("a\nb")]).contains("negative Repeat count"));
        assert_eq!(ok("replace", vec![s("hello"), s("l"), s("L")]), s("heLLo"));
        assert_eq!(ok("replace", vec![s("abc"), s(""), s("-")]), s("-a-b-c-"));
    }

    // buildx's TestBasename, TestDirname and TestSanitize
    #[test]
    fn basename_matches_buildx() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("/foo/bar", "bar"),
            ("foo/bar", "bar"),
            ("/foo/bar.", "bar."),
            ("/foo/bar..", "bar.."),
            ("/foo/bar...", "bar..."),
            ("/foo/bar/", "bar"),
            ("foo", "foo"),
        ];
        for (input, want) in cases {
            assert_eq!(ok("basename", vec![s(input)]), s(want), "{input}");
        }
    }

    #[test]
    fn dirname_matches_buildx() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("/foo/bar", "/foo"),
            ("foo/bar", "foo"),
            ("/foo/bar.", "/foo"),
            ("/foo/bar..", "/foo"),
            ("/foo/bar...", "/foo"),
            ("/foo/bar/", "/foo/bar"),
            ("foo", "."),
            ("/foo//bar/../baz/x", "/foo/baz"),
            ("a/./b/c", "a/b"),
            ("../x", ".."),
        ];
        for (input, want) in cases {
            assert_eq!(ok("dirname", vec![s(input)]), s(want), "{input}");
        }
    }

    #[test]
    fn sanitize_matches_buildx() {
        let cases = [
            ("", ""),
            ("foo/bar", "foo_bar"),
            ("foobar", "foobar"),
            ("foo/bar.", "foo_bar_"),
            ("foo/bar..", "foo_bar__"),
            ("foo/bar...", "foo_bar___"),
            ("foo/🍕bar", "foo__bar"),
            ("foo/bar!@(ba+z)", "foo_bar___ba_z_"),
        ];
        for (input, want) in cases {
            assert_eq!(ok("sanitize", vec![s(input)]), s(want), "{input}");
        }
    }
}
