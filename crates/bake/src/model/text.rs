//! Small text helpers with the exact behaviour of the Go functions buildx relies on: a CSV
//! record split as `go-csvvalue` splits it, `csvBuilder`'s quoting, Go's `%q`, `path.Match`,
//! `path.Clean` and `strconv.ParseBool`.

/// Why a CSV record did not split, worded as Go's `csv.ParseError` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// The input was empty (`io.EOF`).
    #[error("EOF")]
    Empty,
    /// A `"` inside a field that is not quoted.
    #[error("parse error on line 1, column {column}: bare \" in non-quoted-field")]
    BareQuote {
        /// 1-based byte column of the quote.
        column: usize,
    },
    /// A quoted field not closed, or followed by something other than a comma.
    #[error("parse error on line 1, column {column}: extraneous or missing \" in quoted-field")]
    Quote {
        /// 1-based byte column where the problem was found.
        column: usize,
    },
}

/// Splits one CSV record into fields as `csvvalue.Fields(input, nil)` does: `,` separates,
/// a field may be quoted with `"` (`""` inside stands for one quote), no space trimming.
pub fn csv_fields(input: &str) -> Result<Vec<String>, CsvError> {
    let mut line = input;
    if let Some(stripped) = line.strip_suffix('\n') {
        line = stripped.strip_suffix('\r').unwrap_or(stripped);
    }
    if line.is_empty() {
        return Err(CsvError::Empty);
    }
    let mut fields: Vec<String> = Vec::new();
    let mut pos = 0usize;
    'field: loop {
        if !line.starts_with('"') {
            let (field, rest) = match line.find(',') {
                Some(i) => (&line[..i], Some(&line[i + 1..])),
                None => (line, None),
            };
            if let Some(j) = field.find('"') {
                return Err(CsvError::BareQuote {
                    column: pos + j + 1,
                });
            }
            fields.push(field.to_string());
            match rest {
                Some(rest) => {
                    pos += field.len() + 1;
                    line = rest;
                    continue;
                }
                None => break,
            }
        }
        // A quoted field: read up to the closing quote, `""` standing for one quote.
        line = &line[1..];
        pos += 1;
        let mut half_open = false;
        loop {
            let Some(i) = line.find('"') else {
                return Err(CsvError::Quote { column: pos + 1 });
            };
            if half_open {
                if let Some(last) = fields.last_mut() {
                    last.push_str(&line[..i]);
                }
            } else {
                fields.push(line[..i].to_string());
            }
            line = &line[i + 1..];
            pos += i + 1;
            match line.chars().next() {
                Some('"') => {
                    if let Some(last) = fields.last_mut() {
                        last.push('"');
                    }
                    line = &line[1..];
                    pos += 1;
                    half_open = true;
                }
                Some(',') => {
                    line = &line[1..];
                    pos += 1;
                    continue 'field;
                }
                None => break 'field,
                Some(_) => return Err(CsvError::Quote { column: pos }),
            }
        }
    }
    Ok(fields)
}

/// Builds `key=value,key=value` strings as buildx's `csvBuilder` does: a pair holding a
/// comma or a quote is written as one quoted CSV field.
#[derive(Debug, Default)]
pub struct CsvBuilder {
    out: String,
}

impl CsvBuilder {
    /// Appends one `key=value` pair.
    pub fn write(&mut self, key: &str, value: &str) {
        if !self.out.is_empty() {
            self.out.push(',');
        }
        let pair = format!("{key}={value}");
        if pair.contains(',') || pair.contains('"') {
            let mut quoted = String::from("\"");
            quoted.push_str(&pair.replace('"', "\"\""));
            quoted.push('"');
            // csv.Writer's output is trimmed of surrounding space by buildx.
            self.out.push_str(quoted.trim());
        } else {
            self.out.push_str(&pair);
        }
    }

    /// Appends every pair of `attrs`, keys in lexical order.
    pub fn write_attributes<'a>(
        &mut self,
        attrs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        let mut sorted: Vec<(&String, &String)> = attrs.into_iter().collect();
        sorted.sort();
        for (key, value) in sorted {
            self.write(key, value);
        }
    }

    /// The string built so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A string quoted as Go's `%q` / `strconv.Quote` quotes it.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
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
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` for the characters bake names and values
/// carry: everything but control characters, the C1 range and a few invisible separators.
fn is_go_printable(c: char) -> bool {
    let code = c as u32;
    !(c.is_control()
        || (0x80..0xa0).contains(&code)
        || code == 0xad
        || (0x2028..=0x2029).contains(&code)
        || code == 0xfeff)
}

/// Parses a bool as Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false
/// False`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The message Go's `strconv.ParseBool` fails with.
pub fn parse_bool_error(s: &str) -> String {
    format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))
}

/// go-units' `RAMInBytes`: a number with an optional binary suffix (`128m`, `1.5GiB`,
/// `512 k`, `64`); the error is go-units' or strconv's message.
pub fn ram_in_bytes(size: &str) -> Result<i64, String> {
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{size}'"));
    };
    let (number, suffix) = if size.as_bytes()[sep] == b' ' {
        (&size[..sep], &size[sep + 1..])
    } else {
        (&size[..=sep], &size[sep + 1..])
    };
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(number)
        )
    })?;
    if value < 0.0 {
        return Err(format!("invalid size: '{size}'"));
    }
    if suffix.is_empty() {
        return Ok(value as i64);
    }
    let lower = suffix.to_lowercase();
    let bad = || format!("invalid suffix: '{lower}'");
    if lower.len() > 3 {
        return Err(bad());
    }
    let bytes = lower.as_bytes();
    if bytes[0] == b'b' {
        return if lower.len() > 1 {
            Err(bad())
        } else {
            Ok(value as i64)
        };
    }
    let multiplier: f64 = match bytes[0] {
        b'k' => 1024.0,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    match lower.len() {
        2 if bytes[1] != b'b' => return Err(bad()),
        3 if &lower[1..] != "ib" => return Err(bad()),
        _ => {}
    }
    Ok((value * multiplier) as i64)
}

/// The ulimit names docker knows.
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// go-units' `ParseUlimit`: `NAME=SOFT[:HARD]` checked and written back as `NAME=SOFT:HARD`.
pub fn parse_ulimit(value: &str) -> Result<String, String> {
    let Some((name, limits)) = value.split_once('=') else {
        return Err(format!("invalid ulimit argument: {value}"));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = parse(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = parse(hard)?;
            (parse(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(format!("{name}={soft}:{hard}"))
}

/// A malformed glob pattern (`path.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `path.Match`: `*` any run of non-`/` characters, `?` one non-`/` character,
/// `[…]` a class (`^` negates, `a-z` ranges, `\` escapes).
pub fn path_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern;
    let mut name = name;
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains('/'));
        }
        let (rest_name, ok, err) = match_chunk(chunk, name);
        if ok && (rest_name.is_empty() || !pattern.is_empty()) {
            name = rest_name;
            continue;
        }
        if let Some(err) = err {
            return Err(err);
        }
        if star {
            let bytes = name.as_bytes();
            let mut i = 0;
            while i < bytes.len() && bytes[i] != b'/' {
                if !name.is_char_boundary(i + 1) {
                    i += 1;
                    continue;
                }
                let (rest_name, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !rest_name.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = rest_name;
                    continue 'pattern;
                }
                if let Some(err) = err {
                    return Err(err);
                }
                i += 1;
            }
        }
        // No match: still report a malformed remainder of the pattern, as Go does.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if let (_, _, Some(err)) = match_chunk(chunk, "") {
                return Err(err);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the next `*`-prefixed chunk of a glob pattern.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let mut star = false;
    let mut pattern = pattern;
    while let Some(rest) = pattern.strip_prefix('*') {
        pattern = rest;
        star = true;
    }
    let bytes = pattern.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => return (star, &pattern[..i], &pattern[i..]),
            _ => {}
        }
        i += 1;
    }
    (star, pattern, "")
}

/// Matches one chunk (no `*`) at the start of `s`: the rest of `s`, whether it matched, and
/// a pattern error.
fn match_chunk<'a>(chunk: &str, s: &'a str) -> (&'a str, bool, Option<BadPattern>) {
    let mut chunk = chunk;
    let mut s = s;
    let mut failed = false;
    while let Some(first) = chunk.chars().next() {
        failed = failed || s.is_empty();
        match first {
            '[' => {
                let mut current = '\0';
                if !failed && let Some(c) = s.chars().next() {
                    current = c;
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if let Some(rest) = chunk.strip_prefix('^') {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0
                        && let Some(rest) = chunk.strip_prefix(']')
                    {
                        chunk = rest;
                        break;
                    }
                    let (lo, rest) = match get_escaped(chunk) {
                        Ok(v) => v,
                        Err(err) => return ("", false, Some(err)),
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        match get_escaped(rest) {
                            Ok((h, rest)) => {
                                hi = h;
                                chunk = rest;
                            }
                            Err(err) => return ("", false, Some(err)),
                        }
                    }
                    matched = matched || (lo <= current && current <= hi);
                    ranges += 1;
                }
                failed = failed || matched == negated;
            }
            '?' => {
                if !failed && let Some(c) = s.chars().next() {
                    failed = c == '/';
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if first == '\\' {
                    chunk = &chunk[1..];
                }
                // Go compares byte by byte; for valid UTF-8 that is comparing whole characters.
                let Some(literal) = chunk.chars().next() else {
                    return ("", false, Some(BadPattern));
                };
                if !failed {
                    failed = !s.starts_with(literal);
                    if !failed {
                        s = &s[literal.len_utf8()..];
                    }
                }
                chunk = &chunk[literal.len_utf8()..];
            }
        }
    }
    if failed {
        return ("", false, None);
    }
    (s, true, None)
}

/// One possibly `\`-escaped character of a class.
fn get_escaped(chunk: &str) -> Result<(char, &str), BadPattern> {
    if chunk.is_empty() || chunk.starts_with('-') || chunk.starts_with(']') {
        return Err(BadPattern);
    }
    let chunk = match chunk.strip_prefix('\\') {
        Some("") => return Err(BadPattern),
        Some(rest) => rest,
        None => chunk,
    };
    let c = chunk.chars().next().ok_or(BadPattern)?;
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

/// Go's `path.Clean`: the shortest equivalent slash path (`./a/../b/` → `b`, `` → `.`).
pub fn path_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn csv_splits_like_csvvalue() {
        assert_eq!(csv_fields("a,b").unwrap(), vec!["a", "b"]);
        assert_eq!(csv_fields("a,,b").unwrap(), vec!["a", "", "b"]);
        assert_eq!(csv_fields("a,").unwrap(), vec!["a", ""]);
        assert_eq!(csv_fields(r#""a,b=c",d"#).unwrap(), vec!["a,b=c", "d"]);
        assert_eq!(csv_fields(r#""x=a,b",y"#).unwrap(), vec!["x=a,b", "y"]);
        assert_eq!(csv_fields(r#""a""b""#).unwrap(), vec![r#"a"b"#]);
        assert_eq!(csv_fields("").unwrap_err().to_string(), "EOF");
        assert_eq!(
            csv_fields(r#"a"b"#).unwrap_err().to_string(),
            r#"parse error on line 1, column 2: bare " in non-quoted-field"#
        );
        assert_eq!(
            csv_fields(r#""ab"#).unwrap_err().to_string(),
            r#"parse error on line 1, column 2: extraneous or missing " in quoted-field"#
        );
    }

    #[test]
    fn csv_builder_quotes_pairs_with_commas() {
        let mut b = CsvBuilder::default();
        b.write("type", "local");
        b.write("src", "a,b");
        assert_eq!(b.finish(), r#"type=local,"src=a,b""#);
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
    }

    #[test]
    fn path_match_globs_like_go() {
        assert!(path_match("web*", "webapp").unwrap());
        assert!(path_match("*", "a").unwrap());
        assert!(!path_match("*", "a/b").unwrap());
        assert!(path_match("a?c", "abc").unwrap());
        assert!(path_match("[a-c]x", "bx").unwrap());
        assert!(!path_match("[^a-c]x", "bx").unwrap());
        assert!(path_match("foo-*", "foo-bar").unwrap());
        assert!(!path_match("foo-*", "foo").unwrap());
        assert!(path_match("*-b-*", "mtx-a-b-d").unwrap());
        assert!(path_match("\\*", "*").unwrap());
        assert_eq!(path_match("[", "a"), Err(BadPattern));
        assert_eq!(path_match("a[", "b"), Err(BadPattern));
    }

    #[test]
    fn path_clean_like_go() {
        assert_eq!(path_clean(""), ".");
        assert_eq!(path_clean("."), ".");
        assert_eq!(path_clean("./foo/../bar/"), "bar");
        assert_eq!(path_clean("../a"), "../a");
        assert_eq!(path_clean("/../a"), "/a");
        assert_eq!(path_clean("a//b/./c/.."), "a/b");
    }

    #[test]
    fn sizes_parse_like_go_units() {
        assert_eq!(ram_in_bytes("128m"), Ok(128 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1536 * 1024 * 1024));
        assert_eq!(ram_in_bytes("64 MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(ram_in_bytes("128"), Ok(128));
        assert_eq!(ram_in_bytes("10b"), Ok(10));
        assert_eq!(ram_in_bytes("abc"), Err("invalid size: 'abc'".to_string()));
        assert_eq!(ram_in_bytes("1x"), Err("invalid suffix: 'x'".to_string()));
        assert_eq!(ram_in_bytes("1kx"), Err("invalid suffix: 'kx'".to_string()));
    }

    #[test]
    fn ulimits_parse_like_go_units() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048"),
            Ok("nofile=1024:2048".to_string())
        );
        assert_eq!(
            parse_ulimit("nofile=1024"),
            Ok("nofile=1024:1024".to_string())
        );
        assert_eq!(
            parse_ulimit("foo=1"),
            Err("invalid ulimit type: foo".to_string())
        );
        assert_eq!(
            parse_ulimit("nofile"),
            Err("invalid ulimit argument: nofile".to_string())
        );
        assert_eq!(
            parse_ulimit("nofile=2:1"),
            Err("ulimit soft limit must be less than or equal to hard limit: 2 > 1".to_string())
        );
        assert_eq!(
            parse_ulimit("nofile=x"),
            Err(r#"strconv.ParseInt: parsing "x": invalid syntax"#.to_string())
        );
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("False"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
        assert_eq!(
            parse_bool_error("yes"),
            r#"strconv.ParseBool: parsing "yes": invalid syntax"#
        );
    }
}
