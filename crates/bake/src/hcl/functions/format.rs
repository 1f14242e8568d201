//! `format` and `formatlist`: cty's printf, whose verbs follow Go's fmt (`%s %d %v %#v %q
//! %f %.2f %5s %-5s %t %x %o %b %e %%`, argument indexes `%[2]s`) with cty's twists:
//! widths count grapheme clusters, `%v` prints JSON for anything but strings and numbers,
//! `%q` quotes as JSON, and unused arguments are an error.

use unicode_segmentation::UnicodeSegmentation;

use super::gofmt::float_text;
use super::json::encode_value;
use super::{Failure, Outcome, string, string_arg};
use crate::types::{Type, convert, go_quote};
use crate::value::Value;

/// One parsed verb: `%` flags width precision `[argument]` mode.
#[derive(Debug, Default)]
struct Verb {
    raw: String,
    offset: usize,
    arg_num: usize,
    mode: char,
    zero: bool,
    sharp: bool,
    plus: bool,
    minus: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// A Go rune quoted as `%q` quotes it (`'x'`).
fn quote_rune(c: char) -> String {
    if c == '\'' {
        return "'\\''".to_string();
    }
    let quoted = go_quote(&c.to_string());
    let inner = &quoted[1..quoted.len() - 1];
    let inner = if inner == "\\\"" { "\"" } else { inner };
    format!("'{inner}'")
}

/// Formats `format` with `args` as cty's `formatFSM` does.
fn format_values(format: &str, args: &[Value]) -> Result<String, Failure> {
    let bytes = format.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(format.len());
    let mut next_arg = 1usize;
    let mut highest = 0usize;
    let mut p = 0usize;
    let unrecognized = |p: usize| {
        let c = format[p..].chars().next().unwrap_or('\u{fffd}');
        Failure::call(format!(
            "unrecognized format character {} at offset {p}",
            quote_rune(c)
        ))
    };
    let unfinished =
        |p: usize| Failure::call(format!("invalid format string starting at offset {p}"));
    while p < bytes.len() {
        if bytes[p] != b'%' {
            out.push(bytes[p]);
            p += 1;
            continue;
        }
        if bytes.get(p + 1) == Some(&b'%') {
            out.push(b'%');
            p += 2;
            continue;
        }
        let start = p;
        let mut verb = Verb {
            arg_num: next_arg,
            offset: start,
            ..Verb::default()
        };
        p += 1;
        while let Some(&c) = bytes.get(p) {
            match c {
                b'0' => verb.zero = true,
                b'#' => verb.sharp = true,
                b'-' => verb.minus = true,
                b'+' => verb.plus = true,
                b' ' => verb.space = true,
                _ => break,
            }
            p += 1;
        }
        if matches!(bytes.get(p), Some(b'1'..=b'9')) {
            let mut width = 0usize;
            while let Some(&c @ b'0'..=b'9') = bytes.get(p) {
                width = width
                    .saturating_mul(10)
                    .saturating_add(usize::from(c - b'0'));
                p += 1;
            }
            verb.width = Some(width);
        }
        if bytes.get(p) == Some(&b'.') {
            p += 1;
            let mut precision = 0usize;
            while let Some(&c @ b'0'..=b'9') = bytes.get(p) {
                precision = precision
                    .saturating_mul(10)
                    .saturating_add(usize::from(c - b'0'));
                p += 1;
            }
            verb.precision = Some(precision);
        }
        if bytes.get(p) == Some(&b'[') {
            p += 1;
            match bytes.get(p) {
                Some(b'1'..=b'9') => {}
                Some(_) => return Err(unrecognized(p)),
                None => return Err(unfinished(p)),
            }
            let mut index = 0usize;
            while let Some(&c @ b'0'..=b'9') = bytes.get(p) {
                index = index
                    .saturating_mul(10)
                    .saturating_add(usize::from(c - b'0'));
                p += 1;
            }
            match bytes.get(p) {
                Some(b']') => p += 1,
                Some(_) => return Err(unrecognized(p)),
                None => return Err(unfinished(p)),
            }
            verb.arg_num = index;
        }
        match bytes.get(p) {
            Some(c) if c.is_ascii_alphabetic() => verb.mode = char::from(*c),
            Some(_) => return Err(unrecognized(p)),
            None => return Err(unfinished(p)),
        }
        p += 1;
        verb.raw = format[start..p].to_string();
        highest = highest.max(verb.arg_num);
        out.extend_from_slice(append_verb(&verb, args)?.as_bytes());
        next_arg = verb.arg_num + 1;
    }
    if highest < args.len() {
        let first_unused = highest + 1;
        let message = if highest == 0 {
            "too many arguments; no verbs in format string".to_string()
        } else {
            format!("too many arguments; only {highest} used by format string")
        };
        return Err(Failure::arg(first_unused, message));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The text for one verb.
fn append_verb(verb: &Verb, args: &[Value]) -> Result<String, Failure> {
    let Some(value) = verb.arg_num.checked_sub(1).and_then(|i| args.get(i)) else {
        return Err(Failure::call(format!(
            "not enough arguments for {} at {}: need index {} but have {} total",
            go_quote(&verb.raw),
            verb.offset,
            verb.arg_num,
            args.len()
        )));
    };
    let unsupported = |why: &str| {
        Failure::call(format!(
            "unsupported value for {} at {}: {why}",
            go_quote(&verb.raw),
            verb.offset
        ))
    };
    if verb.mode != 'v' && value.is_null() {
        return Err(unsupported("null value cannot be formatted"));
    }
    match verb.mode {
        'v' => {
            if !verb.sharp {
                match value {
                    Value::String(s) => return Ok(pad(verb, s)),
                    Value::Number(n) => return Ok(pad(verb, &float_text(*n, 'g', -1))),
                    _ => {}
                }
            }
            let json = encode_value(value).map_err(|e| unsupported(&e))?;
            Ok(pad(verb, &json))
        }
        't' => match convert(value, &Type::Bool) {
            Ok(Value::Bool(b)) => Ok(b.to_string()),
            Ok(_) => Err(unsupported("a bool is required")),
            Err(e) => Err(unsupported(&e.message)),
        },
        'b' | 'd' | 'o' | 'x' | 'X' | 'e' | 'E' | 'f' | 'g' | 'G' => {
            let n = match convert(value, &Type::Number) {
                Ok(Value::Number(n)) => n,
                Ok(_) => return Err(unsupported("a number is required")),
                Err(e) => return Err(unsupported(&e.message)),
            };
            if matches!(verb.mode, 'e' | 'E' | 'f' | 'g' | 'G') {
                return Ok(format_float(verb, n));
            }
            if n.fract() != 0.0 || !n.is_finite() {
                return Err(unsupported("an integer is required"));
            }
            Ok(format_integer(verb, n))
        }
        's' | 'q' => {
            let text = match convert(value, &Type::String) {
                Ok(Value::String(s)) => s,
                Ok(_) => return Err(unsupported("a string is required")),
                Err(e) => return Err(unsupported(&e.message)),
            };
            let text = match verb.precision {
                Some(precision) if precision > 0 => text.graphemes(true).take(precision).collect(),
                _ => text,
            };
            if verb.mode == 's' {
                Ok(pad(verb, &text))
            } else {
                Ok(pad(verb, &super::json::encode_string(&text)))
            }
        }
        mode => Err(Failure::call(format!(
            "unsupported format verb {} in {} at offset {}",
            quote_rune(mode),
            go_quote(&verb.raw),
            verb.offset
        ))),
    }
}

/// cty's padding to the verb's width, counted in grapheme clusters (`0` pads with zeros,
/// `-` on the right).
fn pad(verb: &Verb, text: &str) -> String {
    let Some(width) = verb.width else {
        return text.to_string();
    };
    let have = text.graphemes(true).count();
    if have >= width {
        return text.to_string();
    }
    let pads = if verb.zero { "0" } else { " " }.repeat(width - have);
    if verb.minus {
        format!("{text}{pads}")
    } else {
        format!("{pads}{text}")
    }
}

/// A float verb as Go's `big.Float.Format` writes it.
fn format_float(verb: &Verb, n: f64) -> String {
    let precision = match verb.precision {
        Some(p) => p as i32,
        None if matches!(verb.mode, 'g' | 'G') => -1,
        None => 6,
    };
    let text = float_text(n, verb.mode, precision);
    let (sign, digits) = if let Some(rest) = text.strip_prefix('-') {
        ("-", rest)
    } else if let Some(rest) = text.strip_prefix('+') {
        (if verb.space { " " } else { "+" }, rest)
    } else if verb.plus {
        ("+", text.as_str())
    } else if verb.space {
        (" ", text.as_str())
    } else {
        ("", text.as_str())
    };
    let length = sign.len() + digits.len();
    let padding = verb.width.map_or(0, |w| w.saturating_sub(length));
    // big.Float pads with zeros on the left whenever the flag is given, even with `-`
    if verb.zero && !n.is_infinite() {
        format!("{sign}{}{digits}", "0".repeat(padding))
    } else if verb.minus {
        format!("{sign}{digits}{}", " ".repeat(padding))
    } else {
        format!("{}{sign}{digits}", " ".repeat(padding))
    }
}

/// The digits of a whole number's magnitude in `base` (2, 8, 10 or 16), from the
/// number's decimal form so that large literals keep cty's exact value.
fn integer_digits(n: f64, base: u32) -> String {
    let decimal = super::gofmt::integer_digits(n);
    if base == 10 {
        return decimal;
    }
    // the decimal digits into 32-bit limbs, least significant first
    let mut limbs: Vec<u32> = vec![0];
    for digit in decimal.bytes() {
        let mut carry = u64::from(digit - b'0');
        for limb in &mut limbs {
            let value = u64::from(*limb) * 10 + carry;
            *limb = value as u32;
            carry = value >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let bits_per_digit = match base {
        2 => 1,
        8 => 3,
        _ => 4,
    };
    let total_bits = limbs.len() * 32;
    let bit = |i: usize| limbs.get(i / 32).is_some_and(|l| l >> (i % 32) & 1 == 1);
    let mut digits = String::new();
    let mut i = 0;
    while i < total_bits {
        let value = (0..bits_per_digit).fold(0u32, |v, k| v | u32::from(bit(i + k)) << k);
        digits.push(char::from_digit(value, base).unwrap_or('0'));
        i += bits_per_digit;
    }
    let digits: String = digits.chars().rev().collect();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// An integer verb as Go's `big.Int.Format` writes it.
fn format_integer(verb: &Verb, n: f64) -> String {
    let base = match verb.mode {
        'b' => 2,
        'o' => 8,
        'x' | 'X' => 16,
        _ => 10,
    };
    let mut digits = integer_digits(n, base);
    if verb.mode == 'X' {
        digits = digits.to_uppercase();
    }
    let sign = if n < 0.0 {
        "-"
    } else if verb.plus {
        "+"
    } else if verb.space {
        " "
    } else {
        ""
    };
    let prefix = match (verb.sharp, verb.mode) {
        (true, 'b') => "0b",
        (true, 'o') => "0",
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        _ => "",
    };
    let mut zeros = 0usize;
    if let Some(precision) = verb.precision {
        if digits.len() < precision {
            zeros = precision - digits.len();
        } else if digits == "0" && precision == 0 {
            return String::new();
        }
    }
    let length = sign.len() + prefix.len() + zeros + digits.len();
    let (mut left, mut right) = (0usize, 0usize);
    if let Some(width) = verb.width
        && length < width
    {
        let extra = width - length;
        if verb.minus {
            right = extra;
        } else if verb.zero && verb.precision.is_none() {
            zeros = extra;
        } else {
            left = extra;
        }
    }
    format!(
        "{}{sign}{prefix}{}{digits}{}",
        " ".repeat(left),
        "0".repeat(zeros),
        " ".repeat(right)
    )
}

/// `format(format, args...)`.
pub(super) fn format(args: &[Value]) -> Outcome {
    Ok(string(format_values(string_arg(args, 0)?, &args[1..])?))
}

/// `formatlist(format, args...)`: `format` applied element-wise; list arguments must have
/// the same length, other arguments repeat.
pub(super) fn format_list(args: &[Value]) -> Outcome {
    let format = string_arg(args, 0)?;
    let rest = &args[1..];
    if rest.is_empty() {
        return Ok(Value::List(vec![string(format_values(format, rest)?)]));
    }
    let mut length: Option<(usize, usize)> = None;
    for (i, value) in rest.iter().enumerate() {
        if let Value::List(items) | Value::Set(items) = value {
            match length {
                None => length = Some((items.len(), i)),
                Some((len, chooser)) if len != items.len() => {
                    return Err(Failure::arg(
                        i + 1,
                        format!(
                            "argument {} has length {}, which is inconsistent with argument {} of length {len}",
                            i + 1,
                            items.len(),
                            chooser + 1
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let iterations = length.map_or(1, |(len, _)| len);
    let mut results = Vec::with_capacity(iterations);
    for iteration in 0..iterations {
        let row: Vec<Value> = rest
            .iter()
            .map(|value| match value {
                Value::List(items) | Value::Set(items) => items[iteration].clone(),
                other => other.clone(),
            })
            .collect();
        let text = format_values(format, &row).map_err(|failure| {
            let message = match failure {
                Failure::Arg(_, m) | Failure::Call(m) => m,
            };
            Failure::call(format!("error on format iteration {iteration}: {message}"))
        })?;
        results.push(string(text));
    }
    Ok(Value::List(results))
}

#[cfg(test)]
// 3.14159 is a number the cty probes were run with, not an approximation of π
#[allow(clippy::approx_constant)]
mod tests {
    use super::super::tests::{b, fails, list, n, obj, ok, s, strs};
    use crate::value::Value;

    fn fmt(format: &str, args: Vec<Value>) -> Value {
        let mut all = vec![s(format)];
        all.extend(args);
        ok("format", all)
    }

    fn fmt_err(format: &str, args: Vec<Value>) -> String {
        let mut all = vec![s(format)];
        all.extend(args);
        fails("format", all)
    }

    #[test]
    fn verbs_match_cty() {
        assert_eq!(
            fmt(
                "%5s|%-5s|%q|%.2f|%v|%#v",
                vec![s("a"), s("b"), s("c"), n(3.14159), n(12.0), s("s")]
            ),
            s("    a|b    |\"c\"|3.14|12|\"s\"")
        );
        assert_eq!(
            fmt(
                "%.2f|%.2f|%.1f|%.0f|%.0f|%.1f",
                vec![n(3.145), n(2.675), n(0.25), n(0.5), n(1.5), n(0.35)]
            ),
            s("3.14|2.67|0.2|0|2|0.3")
        );
        assert_eq!(
            fmt(
                "%v|%v|%v|%v|%v",
                vec![n(123456789.0), n(1e21), n(0.0001), n(0.00001), n(1.5)]
            ),
            s("1.23456789e+08|1e+21|0.0001|1e-05|1.5")
        );
        assert_eq!(
            fmt(
                "%g|%e|%f|%G|%E",
                vec![
                    n(123456789.0),
                    n(123456789.0),
                    n(123456789.0),
                    n(1e-7),
                    n(1.5)
                ]
            ),
            s("1.23456789e+08|1.234568e+08|123456789.000000|1E-07|1.500000E+00")
        );
        assert_eq!(
            fmt(
                "%5.1f|%-8.3e|%+d|% d|%05d|%x|%X|%o|%b|%#x|%#o",
                vec![
                    n(3.14159),
                    n(1234.5),
                    n(5.0),
                    n(5.0),
                    n(-42.0),
                    n(255.0),
                    n(255.0),
                    n(8.0),
                    n(5.0),
                    n(255.0),
                    n(8.0)
                ]
            ),
            s("  3.1|1.234e+03|+5| 5|-0042|ff|FF|10|101|0xff|010")
        );
        assert_eq!(
            fmt(
                "%q|%#v|%v|%v|%v|%t",
                vec![
                    s("a\"b<"),
                    s("s"),
                    b(true),
                    Value::Null,
                    list(vec![n(1.0), s("a")]),
                    s("true")
                ]
            ),
            s("\"a\\\"b\\u003c\"|\"s\"|true|null|[1,\"a\"]|true")
        );
        assert_eq!(fmt("%[2]s %[1]s %s", vec![s("a"), s("b")]), s("b a b"));
        assert_eq!(fmt("%[3]s", vec![s("a"), s("b"), s("c")]), s("c"));
        assert_eq!(
            fmt(
                "%5s|%-5s|%.2s|%05s",
                vec![s("héllo"), s("ab"), s("héllo"), s("a")]
            ),
            s("héllo|ab   |hé|0000a")
        );
        assert_eq!(fmt("%v", vec![obj(&[("a", n(1.0))])]), s("{\"a\":1}"));
        assert_eq!(fmt("%d", vec![s("12")]), s("12"));
        assert_eq!(
            fmt("%.3g|%10.4f|%-10.2f|", vec![n(3.14159), n(3.14159), n(2.5)]),
            s("3.14|    3.1416|2.50      |")
        );
        assert_eq!(
            fmt("%#v|%#v", vec![n(1.5), obj(&[("b", list(vec![b(true)]))])]),
            s("1.5|{\"b\":[true]}")
        );
        assert_eq!(
            fmt(
                "%x|%e|%g|%g|%v|%v|%.3v",
                vec![
                    n(-255.0),
                    n(0.0),
                    n(100000.0),
                    n(1e6),
                    n(1e6),
                    n(123456.0),
                    n(3.14159)
                ]
            ),
            s("-ff|0.000000e+00|100000|1e+06|1e+06|123456|3.14159")
        );
        assert_eq!(fmt("%%|100%%", vec![]), s("%|100%"));
    }

    #[test]
    fn flags_and_widths_match_go() {
        assert_eq!(
            fmt(
                "%-05s|%-05d|%+ d|%#o|%#b|%.3d|%8.3x|%-8d|",
                vec![
                    s("a"),
                    n(3.0),
                    n(5.0),
                    n(0.0),
                    n(5.0),
                    n(7.0),
                    n(255.0),
                    n(-3.0)
                ]
            ),
            s("a0000|3    |+5|00|0b101|007|     0ff|-3      |")
        );
        assert_eq!(
            fmt(
                "%05.1f|%-8.2f|%+.1e|% f|%+f|%08.3f|%-08.3f|",
                vec![
                    n(-3.14159),
                    n(2.5),
                    n(12345.678),
                    n(1.5),
                    n(1.5),
                    n(-3.5),
                    n(3.5)
                ]
            ),
            s("-03.1|2.50    |+1.2e+04| 1.500000|+1.500000|-003.500|0003.500|")
        );
        assert_eq!(
            fmt(
                "%10v|%-10v|%010v|%.2v",
                vec![s("ab"), n(12.0), s("x"), s("abc")]
            ),
            s("        ab|12        |000000000x|abc")
        );
        assert_eq!(fmt("%5t", vec![b(true)]), s("true"));
        assert_eq!(fmt("%-+5d|", vec![n(3.0)]), s("+3   |"));
        assert_eq!(fmt("%.0d", vec![n(0.0)]), s(""));
        assert_eq!(
            fmt("%d|%x|%f", vec![n(1e30), n(1e30), n(1e30)]),
            s(
                "1000000000000000000000000000000|c9f2c9cd04674edea40000000|1000000000000000000000000000000.000000"
            )
        );
        assert_eq!(
            fmt("%.10f|%.20f", vec![n(0.1), n(0.1)]),
            s("0.1000000000|0.10000000000000000000")
        );
        assert_eq!(
            fmt(
                "%f|%5.1f|%-6.1f|%06.1f",
                vec![
                    n(f64::INFINITY),
                    n(f64::INFINITY),
                    n(f64::NEG_INFINITY),
                    n(f64::INFINITY)
                ]
            ),
            s("+Inf| +Inf|-Inf  |  +Inf")
        );
    }

    #[test]
    fn errors_match_cty() {
        let call = |m: &str| format!("Call to function \"format\" failed: {m}.");
        assert_eq!(
            fmt_err("%s", vec![list(vec![n(1.0)])]),
            call("unsupported value for \"%s\" at 0: string required")
        );
        assert_eq!(
            fmt_err("%d", vec![n(1.5)]),
            call("unsupported value for \"%d\" at 0: an integer is required")
        );
        assert_eq!(
            fmt_err("%s %s", vec![s("a")]),
            call("not enough arguments for \"%s\" at 3: need index 2 but have 1 total")
        );
        assert_eq!(
            fmt_err("%y", vec![n(1.0)]),
            call("unsupported format verb 'y' in \"%y\" at offset 0")
        );
        assert_eq!(
            fmt_err("abc%", vec![]),
            call("invalid format string starting at offset 4")
        );
        assert_eq!(
            fmt_err("abc%5", vec![]),
            call("invalid format string starting at offset 5")
        );
        assert_eq!(
            fmt_err("%[0]s", vec![n(1.0)]),
            call("unrecognized format character '0' at offset 2")
        );
        assert_eq!(
            fmt_err("%-%", vec![]),
            call("unrecognized format character '%' at offset 2")
        );
        assert_eq!(
            fmt_err("%1.2.3f", vec![n(1.0)]),
            call("unrecognized format character '.' at offset 4")
        );
        assert_eq!(
            fmt_err("%s", vec![Value::Null]),
            call("unsupported value for \"%s\" at 0: null value cannot be formatted")
        );
        assert_eq!(
            fmt_err("%f", vec![s("x")]),
            call("unsupported value for \"%f\" at 0: a number is required")
        );
        assert_eq!(
            fmt_err("%t", vec![n(1.0)]),
            call("unsupported value for \"%t\" at 0: bool required")
        );
        assert_eq!(
            fmt_err("%c", vec![]),
            call("not enough arguments for \"%c\" at 0: need index 1 but have 0 total")
        );
        assert_eq!(
            fmt_err("%x", vec![n(f64::INFINITY)]),
            call("unsupported value for \"%x\" at 0: an integer is required")
        );
        assert_eq!(
            fmt_err("%s", vec![s("a"), s("b")]),
            "Invalid value for \"args\" parameter: too many arguments; only 1 used by format string."
        );
        assert_eq!(
            fmt_err("x", vec![s("a")]),
            "Invalid value for \"args\" parameter: too many arguments; no verbs in format string."
        );
    }

    #[test]
    fn formatlist_iterates_lists() {
        assert_eq!(
            ok("formatlist", vec![s("%s-%s"), strs(&["a", "b"]), s("x")]),
            strs(&["a-x", "b-x"])
        );
        assert_eq!(ok("formatlist", vec![s("%s"), strs(&[])]), strs(&[]));
        assert_eq!(ok("formatlist", vec![s("x")]), strs(&["x"]));
        assert_eq!(
            fails(
                "formatlist",
                vec![s("%s-%s"), strs(&["a"]), strs(&["b", "c"])]
            ),
            "Invalid value for \"args\" parameter: argument 2 has length 2, which is inconsistent with argument 1 of length 1."
        );
        assert_eq!(
            fails("formatlist", vec![s("%s")]),
            "Call to function \"formatlist\" failed: not enough arguments for \"%s\" at 0: need index 1 but have 0 total."
        );
        assert_eq!(
            fails("formatlist", vec![s("%s"), strs(&["a"]), s("b")]),
            "Call to function \"formatlist\" failed: error on format iteration 0: too many arguments; only 1 used by format string."
        );
        assert_eq!(
            fails("formatlist", vec![s("%d"), strs(&["a"])]),
            "Call to function \"formatlist\" failed: error on format iteration 0: unsupported value for \"%d\" at 0: a number is required."
        );
    }
}
