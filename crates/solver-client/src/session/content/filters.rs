//! containerd's filter expressions, as `List` and `ListStatuses` receive them: each filter is
//! selectors joined by `,` (all must match), and an item is kept when any filter matches. A
//! selector is a field path (`ref`, `digest`, `labels."a.b"`), optionally followed by `==`,
//! `!=` or `~=` (a regular expression) and a value, bare or quoted with `"`, `/` or `|`. A
//! selector without an operator asks for the field to be present; a field the item does not
//! have never matches.

use regex::Regex;
use tonic::Status;

/// Filters parsed from a request: empty keeps everything.
#[derive(Debug, Default)]
pub(super) struct Filters {
    any_of: Vec<Vec<Selector>>,
}

#[derive(Debug)]
struct Selector {
    path: Vec<String>,
    test: Test,
}

#[derive(Debug)]
enum Test {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

impl Filters {
    /// Parses every filter of a request; InvalidArgument names the first malformed one.
    pub(super) fn parse(filters: &[String]) -> Result<Self, Status> {
        let mut any_of = Vec::new();
        for filter in filters {
            let selectors = parse_filter(filter).map_err(|reason| {
                Status::invalid_argument(format!("invalid filter {filter:?}: {reason}"))
            })?;
            // An empty filter selects everything, so the whole set does.
            if selectors.is_empty() {
                return Ok(Filters::default());
            }
            any_of.push(selectors);
        }
        Ok(Filters { any_of })
    }

    /// Whether an item passes: `field` gives its value at a field path, `None` when it has
    /// no such field.
    pub(super) fn matches(&self, field: impl Fn(&[String]) -> Option<String>) -> bool {
        self.any_of.is_empty()
            || self.any_of.iter().any(|selectors| {
                selectors.iter().all(|s| match (field(&s.path), &s.test) {
                    (None, _) => false,
                    (Some(_), Test::Present) => true,
                    (Some(v), Test::Equal(want)) => v == *want,
                    (Some(v), Test::NotEqual(want)) => v != *want,
                    (Some(v), Test::Matches(re)) => re.is_match(&v),
                })
            })
    }
}

/// A tiny scanner over one filter string.
struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// A quoted string if one starts here: `"…"` with backslash escapes, or `/…/` and `|…|`
    /// (regular expressions) where only the delimiter is escaped.
    fn quoted(&mut self) -> Result<Option<String>, String> {
        let Some(quote) = self
            .rest
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '/' | '|'))
        else {
            return Ok(None);
        };
        let mut out = String::new();
        let mut chars = self.rest[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.rest = &self.rest[1 + i + 1..];
                    return Ok(Some(out));
                }
                '\\' => match chars.next() {
                    Some((_, e)) if e == quote => out.push(e),
                    Some((_, e)) if quote == '"' => out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    }),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(format!("unterminated {quote}-quoted string"))
    }

    /// The longest prefix whose characters satisfy `keep`.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self
            .rest
            .char_indices()
            .find(|&(_, c)| !keep(c))
            .map_or(self.rest.len(), |(i, _)| i);
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }
}

fn parse_filter(filter: &str) -> Result<Vec<Selector>, String> {
    let mut scanner = Scanner { rest: filter };
    let mut selectors = Vec::new();
    scanner.skip_spaces();
    if scanner.rest.is_empty() {
        return Ok(selectors);
    }
    loop {
        selectors.push(parse_selector(&mut scanner)?);
        scanner.skip_spaces();
        if scanner.rest.is_empty() {
            return Ok(selectors);
        }
        if !scanner.eat(",") {
            return Err(format!("expected `,` before {:?}", scanner.rest));
        }
        scanner.skip_spaces();
    }
}

fn parse_selector(scanner: &mut Scanner<'_>) -> Result<Selector, String> {
    let mut path = Vec::new();
    loop {
        let field = match scanner.quoted()? {
            Some(quoted) => quoted,
            None => {
                let field = scanner.take_while(|c| c == '_' || c.is_ascii_alphanumeric());
                if field.is_empty() {
                    return Err(format!("expected a field name at {:?}", scanner.rest));
                }
                field.to_owned()
            }
        };
        path.push(field);
        if !scanner.eat(".") {
            break;
        }
    }
    scanner.skip_spaces();
    let operator = ["==", "!=", "~="].into_iter().find(|op| scanner.eat(op));
    let Some(operator) = operator else {
        return Ok(Selector {
            path,
            test: Test::Present,
        });
    };
    scanner.skip_spaces();
    let value = match scanner.quoted()? {
        Some(quoted) => quoted,
        None => scanner
            .take_while(|c| c != ',' && !c.is_whitespace())
            .to_owned(),
    };
    let test = match operator {
        "==" => Test::Equal(value),
        "!=" => Test::NotEqual(value),
        _ => Test::Matches(
            Regex::new(&value).map_err(|e| format!("invalid regular expression: {e}"))?,
        ),
    };
    Ok(Selector { path, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(filters: &[&str], fields: &[(&str, &str)]) -> bool {
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        Filters::parse(&filters)
            .expect("valid filters")
            .matches(|path| {
                let key = path.join(".");
                fields
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            })
    }

    #[test]
    fn selectors_and_within_a_filter_and_filters_or() {
        let item = [("ref", "layer-sha256:abc"), ("labels.a.b", "x y")];
        assert!(keeps(&[], &item));
        assert!(keeps(&[""], &item));
        assert!(keeps(&["ref==layer-sha256:abc"], &item));
        assert!(keeps(&["ref~=^layer-", "labels.\"a.b\"==\"x y\""], &item));
        assert!(!keeps(&["ref~=^layer-,ref!=layer-sha256:abc"], &item));
        assert!(keeps(&["ref==nope", "ref"], &item));
        assert!(!keeps(&["digest"], &item));
        assert!(!keeps(&["digest!=x"], &item), "absent fields never match");
        assert!(keeps(&["ref~=/sha256:[a-c]+$/"], &item));
    }

    #[test]
    fn malformed_filters_are_invalid_arguments() {
        for bad in ["==x", "ref==\"open", "ref~=(", "ref==a b"] {
            let err = Filters::parse(&[bad.to_owned()]).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
