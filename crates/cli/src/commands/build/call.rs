//! `brix build --call METHOD` and `--check`: the frontend's answer (brix-build's
//! [`CallAnswer`]) printed on stdout as buildx prints it (`printResult` in buildx's
//! `commands/build.go`, over BuildKit's `frontend/subrequests` printers), and its status code
//! as the exit code.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use brix_build::{CallAnswer, CallMethod};
use serde_json::Value;

use crate::progress::source::print_source;
use crate::tabwriter;

/// The result versions buildx's printers know; a newer result is shown as the frontend's own
/// text (`result.txt`).
const OUTLINE_VERSION: &str = "1.0.0";
const TARGETS_VERSION: &str = "1.0.0";
const DESCRIBE_VERSION: &str = "1.0.0";
const LINT_VERSION: &str = "1.0.0";

/// After the progress: prints the answer on stdout and returns the exit code: the
/// frontend's status code (a check that found something: 1) unless `ignorestatus`; a check
/// whose Dockerfile did not even parse prints its error and exits 1.
pub(super) fn print_answer(answer: &CallAnswer) -> ExitCode {
    let mut out = String::new();
    let printed = print_result(
        &mut out,
        &answer.method,
        &answer.response,
        &answer.dockerfile_name,
    );
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not the call's failure.
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    match printed {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// buildx's `printResult`: the answer in `out`, and the exit code it asks for. An error is a
/// check's `buildError` (the message and its Dockerfile lines) or an answer that does not
/// decode; `out` then holds what was printed before it.
fn print_result(
    out: &mut String,
    call: &CallMethod,
    res: &BTreeMap<String, String>,
    dockerfile: &str,
) -> anyhow::Result<i64> {
    match call.name.as_str() {
        "outline" => print_value(out, print_outline, OUTLINE_VERSION, &call.format, res)?,
        "targets" => print_value(out, print_targets, TARGETS_VERSION, &call.format, res)?,
        "subrequests.describe" => {
            print_value(out, print_describe, DESCRIBE_VERSION, &call.format, res)?
        }
        "lint" => {
            let lint = match res.get("result.json") {
                Some(json) => Lint::parse(json.as_bytes())?,
                None => Lint::default(),
            };
            let count = lint.warnings.len();
            let text = call.format != "json";
            if text && count > 0 {
                if count == 1 {
                    out.push_str("Check complete, 1 warning has been found!\n");
                } else {
                    out.push_str(&format!(
                        "Check complete, {count} warnings have been found!\n"
                    ));
                }
            }
            print_value(
                out,
                |_, out| lint.print(out, dockerfile),
                LINT_VERSION,
                &call.format,
                res,
            )?;
            if let Some(error) = &lint.error {
                if text && count > 0 {
                    out.push('\n');
                }
                return Err(anyhow!(lint.error_text(error, dockerfile)));
            } else if count == 0 && text {
                out.push_str("Check complete, no warnings found.\n");
            }
        }
        _ => {
            if let (Some(json), "json") = (res.get("result.json"), call.format.as_str()) {
                out.push_str(json);
                out.push('\n');
            } else if let Some(txt) = res.get("result.txt") {
                out.push_str(txt);
            } else {
                out.push_str(&format!("{} {}\n", go_string(call), go_map(res)));
            }
        }
    }
    if !call.ignore_status
        && let Some(code) = res.get("result.statuscode")
        && let Ok(n) = code.parse::<i64>()
        && n != 0
    {
        return Ok(n);
    }
    Ok(0)
}

/// buildx's `CallFunc.String()`: `Name:"x" Format:"json" IgnoreStatus:true`.
fn go_string(call: &CallMethod) -> String {
    let mut parts = Vec::new();
    if !call.name.is_empty() {
        parts.push(format!("Name:{:?}", call.name));
    }
    if !call.format.is_empty() {
        parts.push(format!("Format:{:?}", call.format));
    }
    if call.ignore_status {
        parts.push("IgnoreStatus:true".to_owned());
    }
    parts.join(" ")
}

/// Go's `%+v` of a `map[string]string`: `map[k1:v1 k2:v2]`, keys sorted.
fn go_map(map: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

/// buildx's `printValue`: the JSON as it is for `format=json`; the frontend's own text when
/// its result is newer than the printer knows; else the printer over the JSON.
fn print_value(
    out: &mut String,
    printer: impl FnOnce(&[u8], &mut String) -> anyhow::Result<()>,
    version: &str,
    format: &str,
    res: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let json = res.get("result.json").map(String::as_str).unwrap_or("");
    if format == "json" {
        out.push_str(json);
        out.push('\n');
        return Ok(());
    }
    if let Some(theirs) = res.get("version")
        && !theirs.is_empty()
        && version_less(version, theirs)
        && let Some(txt) = res.get("result.txt").filter(|t| !t.is_empty())
    {
        out.push_str(txt);
        return Ok(());
    }
    printer(json.as_bytes(), out)
}

/// The Docker API's `versions.LessThan`: dotted numbers compared piece by piece (a piece that
/// is not a number counts as 0).
fn version_less(a: &str, b: &str) -> bool {
    let pieces = |v: &str| -> Vec<i64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (pieces(a), pieces(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
}

/// Parses a subrequest's JSON answer (Go's `json.Unmarshal` message for an empty one).
fn parse_json(dt: &[u8]) -> anyhow::Result<Value> {
    if dt.iter().all(u8::is_ascii_whitespace) {
        bail!("unexpected end of JSON input");
    }
    serde_json::from_slice(dt).context("decoding the frontend's answer")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// BuildKit's `outline.PrintOutline`: the target, then tables of build arguments, secrets and
/// SSH agents, each followed by an empty line.
fn print_outline(dt: &[u8], out: &mut String) -> anyhow::Result<()> {
    let o = parse_json(dt)?;
    let (name, description) = (text(&o, "name"), text(&o, "description"));
    if !name.is_empty() || !description.is_empty() {
        let name = if name.is_empty() { "(default)" } else { name };
        let mut table = format!("TARGET:\t{name}\n");
        if !description.is_empty() {
            table.push_str(&format!("DESCRIPTION:\t{description}\n"));
        }
        out.push_str(&tabwriter::align(&table, 0, 1));
        out.push('\n');
    }
    let args = list(&o, "args");
    if !args.is_empty() {
        let mut table = "BUILD ARG\tVALUE\tDESCRIPTION\n".to_owned();
        for a in args {
            table.push_str(&format!(
                "{}\t{}\t{}\n",
                text(a, "name"),
                text(a, "value"),
                text(a, "description")
            ));
        }
        out.push_str(&tabwriter::align(&table, 0, 3));
        out.push('\n');
    }
    for (key, heading) in [("secrets", "SECRET"), ("ssh", "SSH")] {
        let items = list(&o, key);
        if items.is_empty() {
            continue;
        }
        let mut table = format!("{heading}\tREQUIRED\n");
        for s in items {
            let required = if flag(s, "required") { "true" } else { "" };
            table.push_str(&format!("{}\t{required}\n", text(s, "name")));
        }
        out.push_str(&tabwriter::align(&table, 0, 3));
        out.push('\n');
    }
    Ok(())
}

/// BuildKit's `targets.PrintTargets`: one line per stage, the default one marked.
fn print_targets(dt: &[u8], out: &mut String) -> anyhow::Result<()> {
    let l = parse_json(dt)?;
    let mut table = "TARGET\tDESCRIPTION\n".to_owned();
    for t in list(&l, "targets") {
        let name = text(t, "name");
        let name = match (name.is_empty(), flag(t, "default")) {
            (true, true) => "(default)".to_owned(),
            (false, true) => format!("{name} (default)"),
            _ => name.to_owned(),
        };
        table.push_str(&format!("{name}\t{}\n", text(t, "description")));
    }
    out.push_str(&tabwriter::align(&table, 0, 1));
    Ok(())
}

/// BuildKit's `subrequests.PrintDescribe`: the subrequests the frontend knows.
fn print_describe(dt: &[u8], out: &mut String) -> anyhow::Result<()> {
    let requests = parse_json(dt)?;
    let mut table = "NAME\tVERSION\tDESCRIPTION\n".to_owned();
    for r in requests.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let name = text(r, "name");
        table.push_str(&format!(
            "{}\t{}\t{}\n",
            name.strip_prefix("frontend.").unwrap_or(name),
            text(r, "version"),
            text(r, "description")
        ));
    }
    out.push_str(&tabwriter::align(&table, 0, 1));
    Ok(())
}

/// A check's answer (BuildKit's `lint.LintResults`).
#[derive(Debug, Default)]
struct Lint {
    warnings: Vec<LintWarning>,
    /// The files the warnings point into; `None` for a `null` entry.
    sources: Vec<Option<LintSource>>,
    /// Why the Dockerfile could not be checked (`buildError`).
    error: Option<(String, LintLocation)>,
}

#[derive(Debug, Clone)]
struct LintWarning {
    rule: String,
    url: String,
    detail: String,
    location: LintLocation,
}

#[derive(Debug, Clone, Default)]
struct LintLocation {
    /// Index into the sources; negative for none.
    source: i64,
    /// 1-based (start, end) lines.
    ranges: Vec<(i32, i32)>,
}

#[derive(Debug, Clone)]
struct LintSource {
    filename: String,
    data: Vec<u8>,
}

impl Lint {
    fn parse(dt: &[u8]) -> anyhow::Result<Self> {
        use base64::Engine;
        let v = parse_json(dt)?;
        let location = |l: &Value| LintLocation {
            source: l.get("sourceIndex").and_then(Value::as_i64).unwrap_or(0),
            ranges: list(l, "ranges")
                .iter()
                .map(|r| {
                    let line = |p: &str| {
                        r.get(p)
                            .and_then(|p| p.get("line"))
                            .and_then(Value::as_i64)
                            .and_then(|l| i32::try_from(l).ok())
                            .unwrap_or(0)
                    };
                    (line("start"), line("end"))
                })
                .collect(),
        };
        let warnings = list(&v, "warnings")
            .iter()
            .map(|w| LintWarning {
                rule: text(w, "ruleName").to_owned(),
                url: text(w, "url").to_owned(),
                detail: text(w, "detail").to_owned(),
                location: w.get("location").map(location).unwrap_or_default(),
            })
            .collect();
        let sources = list(&v, "sources")
            .iter()
            .map(|s| {
                s.as_object().map(|_| LintSource {
                    filename: text(s, "filename").to_owned(),
                    data: base64::engine::general_purpose::STANDARD
                        .decode(text(s, "data"))
                        .unwrap_or_default(),
                })
            })
            .collect();
        let error = v.get("buildError").filter(|e| e.is_object()).map(|e| {
            (
                text(e, "message").to_owned(),
                e.get("location").map(location).unwrap_or_default(),
            )
        });
        Ok(Lint {
            warnings,
            sources,
            error,
        })
    }

    /// The source a location points into, named as buildx names the Dockerfile.
    fn source(&self, index: i64, dockerfile: &str) -> Option<LintSource> {
        let source = self.sources.get(usize::try_from(index).ok()?)?.clone()?;
        Some(LintSource {
            filename: if dockerfile.is_empty() {
                source.filename
            } else {
                dockerfile.to_owned()
            },
            ..source
        })
    }

    /// `LintResults.PrintTo`: every warning, sorted by file and line, with its rule, link,
    /// message and Dockerfile lines.
    fn print(&self, out: &mut String, dockerfile: &str) -> anyhow::Result<()> {
        for w in &self.warnings {
            let index = w.location.source;
            if index >= self.sources.len() as i64 {
                bail!("sourceIndex is out of range");
            }
            if index > 0 && self.sources[index as usize].is_none() {
                bail!("sourceIndex points to nil source");
            }
        }
        let mut warnings = self.warnings.clone();
        warnings.sort_by(|a, b| {
            if self.lint_less(a, b) {
                std::cmp::Ordering::Less
            } else if self.lint_less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        for w in &warnings {
            out.push_str(&format!("\nWARNING: {}", w.rule));
            if !w.url.is_empty() {
                out.push_str(&format!(" - {}", w.url));
            }
            out.push_str(&format!("\n{}\n", w.detail));
            if w.location.source < 0 {
                continue;
            }
            if let Some(source) = self.source(w.location.source, dockerfile) {
                out.push_str(&print_source(
                    &source.filename,
                    &source.data,
                    &w.location.ranges,
                ));
            }
        }
        Ok(())
    }

    /// The order of `LintResults.PrintTo`: warnings without a source first (by rule), then by
    /// file name, those without a range first (by rule), then by first line.
    fn lint_less(&self, a: &LintWarning, b: &LintWarning) -> bool {
        let (ia, ib) = (a.location.source, b.location.source);
        if ia < 0 && ib < 0 {
            return a.rule < b.rule;
        }
        if ia < 0 || ib < 0 {
            return ia < 0;
        }
        let name = |i: i64| {
            self.sources
                .get(i as usize)
                .and_then(Option::as_ref)
                .map(|s| s.filename.as_str())
                .unwrap_or("")
        };
        if name(ia) != name(ib) {
            return name(ia) < name(ib);
        }
        match (a.location.ranges.first(), b.location.ranges.first()) {
            (None, None) => a.rule < b.rule,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(ra), Some(rb)) => ra.0 < rb.0,
        }
    }

    /// `LintResults.PrintErrorTo`: the message, then its Dockerfile lines.
    fn error_text(&self, error: &(String, LintLocation), dockerfile: &str) -> String {
        let (message, location) = error;
        let mut text = format!("{message}\n");
        if let Some(source) = self.source(location.source, dockerfile) {
            text.push_str(&print_source(
                &source.filename,
                &source.data,
                &location.ranges,
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, format: &str) -> CallMethod {
        CallMethod {
            name: name.to_owned(),
            format: format.to_owned(),
            ignore_status: false,
        }
    }

    fn response(json: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("result.json".to_owned(), json.to_owned()),
            ("version".to_owned(), "1.0.0".to_owned()),
        ])
    }

    #[test]
    fn outline_prints_buildx_s_tables() {
        let json = r#"{"name":"final","args":[{"name":"VERSION","value":"1.0"},{"name":"FLAVOUR","description":"the flavour"}],
            "secrets":[{"name":"token","required":true}],"ssh":[{"name":"default"}]}"#;
        let mut out = String::new();
        let code = print_result(
            &mut out,
            &call("outline", ""),
            &response(json),
            "Dockerfile",
        )
        .expect("prints");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "TARGET: final\n\n\
             BUILD ARG   VALUE   DESCRIPTION\n\
             VERSION     1.0     \n\
             FLAVOUR             the flavour\n\n\
             SECRET   REQUIRED\n\
             token    true\n\n\
             SSH       REQUIRED\n\
             default   \n\n"
        );
    }

    #[test]
    fn targets_mark_the_default_stage() {
        let json = r#"{"targets":[{"name":"base","base":"busybox"},{"name":"final","default":true,"description":"the image"}]}"#;
        let mut out = String::new();
        print_result(&mut out, &call("targets", ""), &response(json), "").expect("prints");
        assert_eq!(
            out,
            "TARGET          DESCRIPTION\nbase            \nfinal (default) the image\n"
        );
    }

    #[test]
    fn json_is_printed_as_the_frontend_wrote_it() {
        let mut out = String::new();
        print_result(
            &mut out,
            &call("targets", "json"),
            &response("{\n  \"targets\": []\n}"),
            "",
        )
        .expect("prints");
        assert_eq!(out, "{\n  \"targets\": []\n}\n");
    }

    #[test]
    fn a_newer_result_is_shown_as_the_frontend_s_text() {
        let mut res = response(r#"{"targets":[]}"#);
        res.insert("version".into(), "1.1.0".into());
        res.insert("result.txt".into(), "their text\n".into());
        let mut out = String::new();
        print_result(&mut out, &call("targets", ""), &res, "").expect("prints");
        assert_eq!(out, "their text\n");
        assert!(version_less("1.0.0", "1.1.0") && !version_less("1.0.0", "1.0.0"));
        assert!(version_less("1.9", "1.10"));
    }

    const LINT: &str = r#"{
      "warnings": [
        {"ruleName": "MaintainerDeprecated", "url": "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
         "detail": "Maintainer instruction is deprecated in favor of using label",
         "location": {"ranges": [{"start": {"line": 2}, "end": {"line": 2}}]}},
        {"ruleName": "FromAsCasing", "url": "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
         "detail": "'as' and 'FROM' keywords' casing do not match",
         "location": {"ranges": [{"start": {"line": 1}, "end": {"line": 1}}]}}
      ],
      "sources": [{"filename": "Dockerfile", "data": "RlJPTSBidXN5Ym94IGFzIGJhc2UKTUFJTlRBSU5FUiBtZQo=", "language": "Dockerfile"}]
    }"#;

    #[test]
    fn check_prints_each_warning_with_its_lines_and_exits_with_the_status() {
        let mut res = response(LINT);
        res.insert("result.statuscode".into(), "1".into());
        let mut out = String::new();
        let code =
            print_result(&mut out, &call("lint", ""), &res, "ctx/Dockerfile").expect("prints");
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "Check complete, 2 warnings have been found!\n\
             \n\
             WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n\
             'as' and 'FROM' keywords' casing do not match\n\
             ctx/Dockerfile:1\n\
             --------------------\n\
             \x20  1 | >>> FROM busybox as base\n\
             \x20  2 |     MAINTAINER me\n\
             \x20  3 |     \n\
             --------------------\n\
             \n\
             WARNING: MaintainerDeprecated - https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/\n\
             Maintainer instruction is deprecated in favor of using label\n\
             ctx/Dockerfile:2\n\
             --------------------\n\
             \x20  1 |     FROM busybox as base\n\
             \x20  2 | >>> MAINTAINER me\n\
             \x20  3 |     \n\
             --------------------\n"
        );
        let ignoring = CallMethod {
            ignore_status: true,
            ..call("lint", "")
        };
        let mut out = String::new();
        assert_eq!(
            print_result(&mut out, &ignoring, &res, "").expect("prints"),
            0
        );
    }

    #[test]
    fn a_clean_check_says_so() {
        let mut out = String::new();
        let res = response(r#"{"warnings":[],"sources":[]}"#);
        assert_eq!(
            print_result(&mut out, &call("lint", ""), &res, "").expect("prints"),
            0
        );
        assert_eq!(out, "Check complete, no warnings found.\n");
        let mut out = String::new();
        print_result(&mut out, &call("lint", "json"), &res, "").expect("prints");
        assert_eq!(out, "{\"warnings\":[],\"sources\":[]}\n");
    }

    #[test]
    fn a_dockerfile_that_does_not_parse_is_an_error_with_its_lines() {
        let json = r#"{"warnings":[],"sources":[{"filename":"Dockerfile","data":"RlJPTSBhCkZPTyBiYXIK"}],
            "buildError":{"message":"dockerfile parse error on line 2: unknown instruction: FOO","location":{"ranges":[{"start":{"line":2},"end":{"line":2}}]}}}"#;
        let mut out = String::new();
        let err = print_result(&mut out, &call("lint", ""), &response(json), "Dockerfile")
            .expect_err("fails");
        assert_eq!(out, "");
        assert_eq!(
            err.to_string(),
            "dockerfile parse error on line 2: unknown instruction: FOO\n\
             Dockerfile:2\n\
             --------------------\n\
             \x20  1 |     FROM a\n\
             \x20  2 | >>> FOO bar\n\
             \x20  3 |     \n\
             --------------------\n"
        );
    }

    #[test]
    fn other_methods_print_the_frontend_s_text() {
        let res = BTreeMap::from([("result.txt".to_owned(), "hello\n".to_owned())]);
        let mut out = String::new();
        print_result(&mut out, &call("hello", ""), &res, "").expect("prints");
        assert_eq!(out, "hello\n");
        let mut out = String::new();
        print_result(&mut out, &call("hello", "json"), &BTreeMap::new(), "").expect("prints");
        assert_eq!(out, "Name:\"hello\" Format:\"json\" map[]\n");
    }
}
