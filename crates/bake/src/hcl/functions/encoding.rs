//! `csvdecode` (Go's `encoding/csv` rules and errors), `base64encode`, `base64decode` and
//! `urlencode` (Go's `url.QueryEscape`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Failure, Outcome, string, string_arg};
use crate::types::go_quote;
use crate::value::Value;

/// A CSV syntax error as Go's `csv.ParseError` has it (cty reports the line and the
/// underlying error only).
struct CsvError {
    line: usize,
    message: &'static str,
}

const BARE_QUOTE: &str = "bare \" in non-quoted-field";
const QUOTE: &str = "extraneous or missing \" in quoted-field";
const FIELD_COUNT: &str = "wrong number of fields";

/// Go's `csv.Reader` with default settings, record by record.
struct CsvReader<'a> {
    input: &'a [u8],
    pos: usize,
    line: usize,
    fields_per_record: usize,
}

impl CsvReader<'_> {
    /// The next line, with `\r\n` read as `\n` (and a final `\r` dropped); None at the end.
    fn read_line(&mut self) -> Option<Vec<u8>> {
        if self.pos >= self.input.len() {
            return None;
        }
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let mut line = rest[..end].to_vec();
        self.pos += end;
        self.line += 1;
        let at_eof = self.pos >= self.input.len() && line.last() != Some(&b'\n');
        if at_eof && line.last() == Some(&b'\r') {
            line.pop();
        }
        let n = line.len();
        if n >= 2 && line[n - 2] == b'\r' && line[n - 1] == b'\n' {
            line.truncate(n - 1);
            line[n - 2] = b'\n';
        }
        Some(line)
    }

    /// The next record, None at the end of the input.
    fn read(&mut self) -> Option<Result<Vec<String>, CsvError>> {
        let mut line = loop {
            let line = self.read_line()?;
            if !line.is_empty() && line != b"\n" {
                break line;
            }
        };
        let record_line = self.line;
        // Go's position line: advanced only by continuation lines with data
        let mut position_line = self.line;
        let mut fields: Vec<Vec<u8>> = Vec::new();
        let mut at = 0usize;
        'fields: loop {
            if line.get(at) != Some(&b'"') {
                let rest = &line[at..];
                let comma = rest.iter().position(|&b| b == b',');
                let field = match comma {
                    Some(i) => &rest[..i],
                    None => rest.strip_suffix(b"\n").unwrap_or(rest),
                };
                if field.contains(&b'"') {
                    return Some(Err(CsvError {
                        line: self.line,
                        message: BARE_QUOTE,
                    }));
                }
                fields.push(field.to_vec());
                match comma {
                    Some(i) => at += i + 1,
                    None => break 'fields,
                }
                continue;
            }
            // a quoted field, possibly over several lines
            let mut field = Vec::new();
            at += 1;
            loop {
                let rest = &line[at..];
                if let Some(i) = rest.iter().position(|&b| b == b'"') {
                    field.extend_from_slice(&rest[..i]);
                    at += i + 1;
                    let tail = &line[at..];
                    match tail.first() {
                        Some(b'"') => {
                            field.push(b'"');
                            at += 1;
                        }
                        Some(b',') => {
                            at += 1;
                            fields.push(field);
                            continue 'fields;
                        }
                        _ if tail.is_empty() || tail == b"\n" => {
                            fields.push(field);
                            break 'fields;
                        }
                        _ => {
                            return Some(Err(CsvError {
                                line: self.line,
                                message: QUOTE,
                            }));
                        }
                    }
                } else if !rest.is_empty() {
                    field.extend_from_slice(rest);
                    line = self.read_line().unwrap_or_default();
                    if !line.is_empty() {
                        position_line = self.line;
                    }
                    at = 0;
                } else {
                    return Some(Err(CsvError {
                        line: position_line,
                        message: QUOTE,
                    }));
                }
            }
        }
        let record: Vec<String> = fields
            .into_iter()
            .map(|f| String::from_utf8_lossy(&f).into_owned())
            .collect();
        if self.fields_per_record == 0 {
            self.fields_per_record = record.len();
        } else if record.len() != self.fields_per_record {
            return Some(Err(CsvError {
                line: record_line,
                message: FIELD_COUNT,
            }));
        }
        Some(Ok(record))
    }
}

/// `csvdecode(str)`: a list of objects, one per row, keyed by the header row.
pub(super) fn csv_decode(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    let parse_error =
        |e: CsvError| Failure::call(format!("CSV parse error on line {}: {}", e.line, e.message));
    let mut reader = CsvReader {
        input: text.as_bytes(),
        pos: 0,
        line: 0,
        fields_per_record: 0,
    };
    let headers = match reader.read() {
        None => return Err(Failure::call("missing header line")),
        Some(Err(e)) => return Err(parse_error(e)),
        Some(Ok(headers)) => headers,
    };
    for (i, name) in headers.iter().enumerate() {
        if headers[..i].contains(name) {
            return Err(Failure::call(format!(
                "duplicate column name {}",
                go_quote(name)
            )));
        }
    }
    let mut rows = Vec::new();
    while let Some(record) = reader.read() {
        let record = record.map_err(parse_error)?;
        let row: BTreeMap<String, Value> = headers
            .iter()
            .cloned()
            .zip(record.into_iter().map(Value::String))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::List(rows))
}

/// `base64encode(str)`: standard base64 with padding.
pub(super) fn base64_encode(args: &[Value]) -> Outcome {
    Ok(string(
        base64::engine::general_purpose::STANDARD.encode(string_arg(args, 0)?),
    ))
}

/// Go's `base64.StdEncoding` decoder: padding required, stray trailing bits allowed,
/// newlines ignored.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// `base64decode(str)`: the decoded bytes, which must be UTF-8.
pub(super) fn base64_decode(args: &[Value]) -> Outcome {
    let text = string_arg(args, 0)?;
    let compact: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let bytes = GO_STD
        .decode(compact.as_bytes())
        .map_err(|_| Failure::call(format!("failed to decode base64 data '{text}'")))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        Failure::call("the result of decoding the the provided string is not valid UTF-8")
    })
}

/// `urlencode(str)`: Go's `url.QueryEscape` (space as `+`, unreserved characters kept).
pub(super) fn url_encode(args: &[Value]) -> Outcome {
    let mut out = String::new();
    for byte in string_arg(args, 0)?.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    Ok(string(out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, list, obj, ok, s};

    fn rows(rows: &[&[(&str, &str)]]) -> super::Value {
        list(
            rows.iter()
                .map(|r| obj(&r.iter().map(|(k, v)| (*k, s(v))).collect::<Vec<_>>()))
                .collect(),
        )
    }
    fn csv_err(text: &str) -> String {
        fails("csvdecode", vec![s(text)])
    }
    fn call_err(message: &str) -> String {
        format!("Call to function \"csvdecode\" failed: {message}.")
    }

    #[test]
    fn csv_decodes_as_go_reads_it() {
        assert_eq!(
            ok("csvdecode", vec![s("a,b\n1,2\n3,4\n")]),
            rows(&[&[("a", "1"), ("b", "2")], &[("a", "3"), ("b", "4")]])
        );
        assert_eq!(
            ok("csvdecode", vec![s("a,b\r\n1,2\r\n")]),
            rows(&[&[("a", "1"), ("b", "2")]])
        );
        assert_eq!(
            ok("csvdecode", vec![s("a,b\n\"multi\nline\",2\n")]),
            rows(&[&[("a", "multi\nline"), ("b", "2")]])
        );
        assert_eq!(
            ok("csvdecode", vec![s("a,b\n\n\n1,2")]),
            rows(&[&[("a", "1"), ("b", "2")]])
        );
        assert_eq!(
            ok("csvdecode", vec![s("a\n\"q\"\"x\"")]),
            rows(&[&[("a", "q\"x")]])
        );
        assert_eq!(ok("csvdecode", vec![s("a,b")]), list(vec![]));
        // a final lone \r is dropped, leaving an empty line that is skipped
        assert_eq!(
            ok("csvdecode", vec![s("h\n\n\nv\n\r")]),
            rows(&[&[("h", "v")]])
        );
        assert_eq!(
            ok("csvdecode", vec![s("a,b\n1,2\n\r3,\n\r")]),
            rows(&[&[("a", "1"), ("b", "2")], &[("a", "\r3"), ("b", "")]])
        );
    }

    #[test]
    fn csv_errors_match_cty() {
        assert_eq!(csv_err(""), call_err("missing header line"));
        assert_eq!(csv_err("a,a\n1,2"), call_err("duplicate column name \"a\""));
        assert_eq!(
            csv_err("a,b\n1,2,3"),
            call_err("CSV parse error on line 2: wrong number of fields")
        );
        assert_eq!(
            csv_err("a,b\n1\n"),
            call_err("CSV parse error on line 2: wrong number of fields")
        );
        assert_eq!(
            csv_err("a,b\n\"x\"y,2"),
            call_err("CSV parse error on line 2: extraneous or missing \" in quoted-field")
        );
        assert_eq!(
            csv_err("a,b\nx\"y,2"),
            call_err("CSV parse error on line 2: bare \" in non-quoted-field")
        );
        assert_eq!(
            csv_err("a,b\n\"x,2"),
            call_err("CSV parse error on line 2: extraneous or missing \" in quoted-field")
        );
        assert_eq!(
            csv_err("a,b\n1,\"2\"\n3,\"4\"x"),
            call_err("CSV parse error on line 3: extraneous or missing \" in quoted-field")
        );
        assert_eq!(
            csv_err("a,b\n\"1\nx\"y,2"),
            call_err("CSV parse error on line 3: extraneous or missing \" in quoted-field")
        );
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(ok("base64encode", vec![s("hello")]), s("aGVsbG8="));
        assert_eq!(ok("base64decode", vec![s("aGVsbG8=")]), s("hello"));
        assert_eq!(ok("base64decode", vec![s("aGVs\nbG8=")]), s("hello"));
        assert_eq!(ok("base64decode", vec![s("YR==")]), s("a"));
        assert_eq!(
            fails("base64decode", vec![s("aGVsbG8")]),
            "Call to function \"base64decode\" failed: failed to decode base64 data 'aGVsbG8'."
        );
        assert_eq!(
            fails("base64decode", vec![s("/w==")]),
            "Call to function \"base64decode\" failed: the result of decoding the the provided string is not valid UTF-8."
        );
    }

    #[test]
    fn urlencode_matches_query_escape() {
        assert_eq!(
            ok("urlencode", vec![s("a b&c=d/é~-_.!*'()")]),
            s("a+b%26c%3Dd%2F%C3%A9~-_.%21%2A%27%28%29")
        );
    }
}
