//! `brix build --call METHOD` and `--check`, as buildx 0.29 has them: instead of a build, the
//! Dockerfile frontend is asked a question — a subrequest, its `requestid` attribute
//! `frontend.outline`, `frontend.targets`, `frontend.lint` (`check`), … — in one solve that
//! exports nothing, called through the gateway API so that its answer (the result's metadata:
//! `result.json`, `result.txt`, `version`, `result.statuscode`) comes back; the answer is then
//! printed on stdout as buildx prints it (`printResult` in buildx's `commands/build.go`, over
//! BuildKit's `frontend/subrequests` printers), and the status code becomes the exit code.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use brix_solver_client::gateway::{Fallback, FrontendResult, call_frontend};
use serde_json::Value;

use super::{BuildArgs, BuildFailure, Plan, nodes, prepare};
use crate::gotemplate::json_string;
use crate::progress::printer::Printer;
use crate::progress::source::print_source;
use crate::tabwriter;

/// The Dockerfile frontend buildx calls instead when the daemon's own lacks a subrequest (it
/// uses this one, of its two fallback images, for every subrequest).
const FALLBACK_FRONTEND: &str = "docker/dockerfile:1.8.1@sha256:e87caa74dcb7d46cd820352bfea12591f3dba3ddc4285e19c7dcd13359f7cefd";

/// The result versions buildx's printers know; a newer result is shown as the frontend's own
/// text (`result.txt`).
const OUTLINE_VERSION: &str = "1.0.0";
const TARGETS_VERSION: &str = "1.0.0";
const DESCRIBE_VERSION: &str = "1.0.0";
const LINT_VERSION: &str = "1.0.0";

/// What `--call` asks for (buildx's `CallFunc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallFunc {
    /// The subrequest without its `frontend.` prefix: `outline`, `targets`, `lint` (which
    /// `check` stands for), `subrequests.describe`, or any other name the frontend may know.
    name: String,
    /// `json`: the frontend's JSON as it is, instead of buildx's tables.
    format: String,
    /// `ignorestatus=true`: the exit code stays 0 whatever the frontend's status code.
    ignore_status: bool,
}

/// The method `--call` and `--check` ask for; `None` for a build (`--call build`, the
/// default). Refused here, before a daemon is asked, with buildx's words: fields other than
/// `format` and `ignorestatus`, two method names, and a `--check` value that is not a Go bool.
pub(super) fn requested(args: &BuildArgs) -> anyhow::Result<Option<CallFunc>> {
    let mut value = args.call.clone();
    if let Some(check) = &args.check {
        match super::parse_go_bool(check) {
            Some(true) => value = "check".to_owned(),
            Some(false) => {}
            None => bail!(
                "invalid argument {check:?} for \"--check\" flag: strconv.ParseBool: parsing {check:?}: invalid syntax"
            ),
        }
    }
    parse_call(&value)
}

/// buildx's `ParseCallFunc`: CSV fields, one bare method name plus `format=` and
/// `ignorestatus=`; `check` is `lint` to the frontend, and `build` is no call at all.
fn parse_call(value: &str) -> anyhow::Result<Option<CallFunc>> {
    if value.is_empty() {
        return Ok(None);
    }
    let mut call = CallFunc {
        name: String::new(),
        format: String::new(),
        ignore_status: false,
    };
    for field in super::cache::csv_fields(value)? {
        match field.split_once('=') {
            Some(("format", v)) => call.format = v.to_owned(),
            Some(("ignorestatus", v)) => {
                call.ignore_status = super::parse_go_bool(v).with_context(|| {
                    format!(
                        "invalid ignorestatus print value: {v}: strconv.ParseBool: parsing {v:?}: invalid syntax"
                    )
                })?;
            }
            Some(_) => bail!("invalid print field: {field}"),
            None if !call.name.is_empty() => bail!("invalid print value: {value}"),
            None => call.name = field,
        }
    }
    if call.name == "check" {
        call.name = "lint".to_owned();
    }
    if call.name == "build" {
        return Ok(None);
    }
    Ok(Some(call))
}

/// The frontend attributes that turn a build into the call: the subrequest's ID, and the
/// capability that lets a `# syntax=` frontend forward it.
fn add_call_attributes(attrs: &mut BTreeMap<String, String>, call: &CallFunc) {
    const CAP: &str = "moby.buildkit.frontend.subrequests+forward";
    attrs
        .entry("frontend.caps".to_owned())
        .and_modify(|caps| {
            caps.push(',');
            caps.push_str(CAP);
        })
        .or_insert_with(|| CAP.to_owned());
    attrs.insert("requestid".to_owned(), format!("frontend.{}", call.name));
}

/// Runs the call: one solve, as buildx sends it, on the node of the first platform and for the
/// platforms that node would build (every platform on a one-node builder), with the build's
/// context, arguments, secrets and SSH agents but no outputs or cache exports. It is an
/// internal build (not in the builder's history, no local state recorded), as buildx's are.
pub(super) async fn solve(
    plan: &Plan,
    ng: &brix_driver::NodeGroup,
    printer: &Printer,
    call: &CallFunc,
) -> Result<FrontendResult, BuildFailure> {
    let nodes = nodes::connect_nodes(ng, printer).await?;
    let (node_index, platforms) = if plan.platforms.is_empty() {
        (0, Vec::new())
    } else {
        let assignment = nodes::assign(&nodes, &plan.platforms)?;
        let first = assignment[0];
        let platforms: Vec<_> = plan
            .platforms
            .iter()
            .zip(&assignment)
            .filter(|(_, n)| **n == first)
            .map(|(p, _)| p.clone())
            .collect();
        (first, platforms)
    };
    let node = &nodes[node_index];
    let scratch = std::env::temp_dir();
    let mut ps = prepare(
        plan,
        node,
        node_index,
        0,
        platforms.first().cloned(),
        false,
        false,
        true,
        &scratch,
    )?;
    ps.spec.exporters.clear();
    ps.spec.cache_exports.clear();
    if platforms.len() > 1 {
        let joined: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        ps.spec
            .frontend_attrs
            .insert("platform".into(), joined.join(","));
    }
    add_call_attributes(&mut ps.spec.frontend_attrs, call);

    let wrap = |e: anyhow::Error| BuildFailure {
        solve: Some(0),
        error: e,
    };
    let running = super::start_session(ps.session, node).await.map_err(wrap)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events = printer.clone();
    let forward = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            events.solve_events(0, None, batch);
        }
    });
    let fallback = Fallback {
        applies: frontend_lacks_the_subrequest,
        attrs: BTreeMap::from([(
            "build-arg:BUILDKIT_SYNTAX".to_owned(),
            FALLBACK_FRONTEND.to_owned(),
        )]),
    };
    let result = call_frontend(&node.client, ps.spec, Some(fallback), running, tx).await;
    // All progress is shown before the result is.
    let _ = forward.await;
    result.map_err(|e| wrap(e.into()))
}

/// buildx's `fallbackPrintError`: the frontend does not know `outline`, `targets` or `lint`
/// (an older BuildKit's built-in one), so a newer frontend image is asked instead.
fn frontend_lacks_the_subrequest(failure: &brix_solver_client::solve::SolveFailure) -> bool {
    ["frontend.outline", "frontend.targets", "frontend.lint"]
        .iter()
        .any(|r| {
            failure
                .message
                .contains(&format!("unsupported request {r}"))
        })
}

/// After the progress: writes `--iidfile` (empty: a call has no image) and `--metadata-file`
/// (the answer's metadata, as buildx decodes it), prints the answer on stdout and returns the
/// exit code: the frontend's status code (a check that found something: 1) unless
/// `ignorestatus`; a check whose Dockerfile did not even parse prints its error and exits 1.
pub(super) fn finish(
    args: &BuildArgs,
    plan: &Plan,
    call: &CallFunc,
    result: &FrontendResult,
) -> anyhow::Result<ExitCode> {
    let mut response = result.exporter_response.clone();
    for (key, value) in &result.metadata {
        response.insert(key.clone(), String::from_utf8_lossy(value).into_owned());
    }
    if let Some(path) = &args.iidfile {
        crate::files::write_atomically(path, b"")
            .with_context(|| format!("writing the image ID file {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        crate::files::write_atomically(path, metadata_json(&response).as_bytes())
            .with_context(|| format!("writing the metadata file {}", path.display()))?;
    }
    let mut out = String::new();
    let printed = print_result(&mut out, call, &response, &dockerfile_name(args, plan));
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) is not the call's failure.
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    match printed {
        Ok(code) => Ok(ExitCode::from((code & 0xff) as u8)),
        Err(e) => {
            eprintln!("ERROR: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The name buildx gives the Dockerfile in check results (its `DockerfileMappingSrc`): `-f`
/// as given, `stdin` for `-f -`, else `CONTEXT/Dockerfile` (Go's `filepath.Join`; the
/// folder made for a Dockerfile read from stdin).
fn dockerfile_name(args: &BuildArgs, plan: &Plan) -> String {
    match args.file.as_deref() {
        Some("-") => "stdin".to_owned(),
        Some(f) => f.to_owned(),
        None if args.context == "-" => match plan.main.local_dir() {
            Some(dir) => dir.join("Dockerfile").display().to_string(),
            // A tarball context from stdin: buildx joins `-` itself.
            None => "-/Dockerfile".to_owned(),
        },
        None => brix_solver_client::patterns::clean_path(&format!("{}/Dockerfile", args.context)),
    }
}

/// buildx's `printResult`: the answer in `out`, and the exit code it asks for. An error is a
/// check's `buildError` (the message and its Dockerfile lines) or an answer that does not
/// decode; `out` then holds what was printed before it.
fn print_result(
    out: &mut String,
    call: &CallFunc,
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
                out.push_str(&format!("{} {}\n", call.go_string(), go_map(res)));
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

impl CallFunc {
    /// buildx's `CallFunc.String()`: `Name:"x" Format:"json" IgnoreStatus:true`.
    fn go_string(&self) -> String {
        let mut parts = Vec::new();
        if !self.name.is_empty() {
            parts.push(format!("Name:{:?}", self.name));
        }
        if !self.format.is_empty() {
            parts.push(format!("Format:{:?}", self.format));
        }
        if self.ignore_status {
            parts.push("IgnoreStatus:true".to_owned());
        }
        parts.join(" ")
    }
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

/// The metadata file of a call as buildx writes it (`decodeExporterResponse` then
/// `json.MarshalIndent`): keys sorted; a value that is (or decodes from base64 to) a JSON
/// object, or a list of objects, is written as JSON — `result.json` as it is — and every other
/// value as a string, with Go's escaping.
fn metadata_json(response: &BTreeMap<String, String>) -> String {
    if response.is_empty() {
        return "{}".to_owned();
    }
    let mut out = String::from("{");
    for (i, (key, value)) in response.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  ");
        json_string(&mut out, key, true);
        out.push_str(": ");
        match decoded_json(key, value) {
            Some(raw) => out.push_str(&indent_json(&raw, 1)),
            None => json_string(&mut out, value, true),
        }
    }
    out.push_str("\n}");
    out
}

/// buildx's decoding of one exporter-response value: the JSON it holds when it is a non-empty
/// object or a non-empty list of objects.
fn decoded_json(key: &str, value: &str) -> Option<String> {
    use base64::Engine;
    let bytes = if key == "result.json" {
        value.as_bytes().to_vec()
    } else {
        // Go's base64 decoder skips line breaks.
        let compact: String = value.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()?
    };
    let json: Value = serde_json::from_slice(&bytes).ok()?;
    let keep = match &json {
        Value::Object(m) => !m.is_empty(),
        Value::Array(items) => {
            !items.is_empty() && items.iter().all(|i| i.is_object() || i.is_null())
        }
        _ => false,
    };
    keep.then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Go's `json.Indent` of compact or indented JSON text nested `depth` levels deep (two spaces a
/// level), keeping its order, with `json.Marshal`'s HTML escaping inside strings.
fn indent_json(src: &str, depth: usize) -> String {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    let mut out = String::new();
    let mut depth = depth;
    let mut need_indent = false;
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        if need_indent && c != '}' && c != ']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                out.push('"');
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            out.push('\\');
                            if let Some(e) = chars.next() {
                                out.push(e);
                            }
                        }
                        '"' => {
                            out.push('"');
                            break;
                        }
                        '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                            out.push_str(&format!("\\u{:04x}", s as u32));
                        }
                        s => out.push(s),
                    }
                }
            }
            '{' | '[' => {
                need_indent = true;
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, format: &str) -> CallFunc {
        CallFunc {
            name: name.to_owned(),
            format: format.to_owned(),
            ignore_status: false,
        }
    }

    #[test]
    fn call_values_parse_as_buildx_parses_them() {
        assert_eq!(parse_call("").expect("ok"), None);
        assert_eq!(parse_call("build").expect("ok"), None);
        assert_eq!(parse_call("check").expect("ok"), Some(call("lint", "")));
        assert_eq!(
            parse_call("outline,format=json").expect("ok"),
            Some(call("outline", "json"))
        );
        assert_eq!(
            parse_call("format=json,targets").expect("ok"),
            Some(call("targets", "json"))
        );
        // Unknown methods go to the frontend, which refuses them.
        assert_eq!(parse_call("foo").expect("ok"), Some(call("foo", "")));
        let ignoring = parse_call("check,ignorestatus=true")
            .expect("ok")
            .expect("a call");
        assert!(ignoring.ignore_status);
        for (bad, message) in [
            ("check,foo=bar", "invalid print field: foo=bar"),
            ("check,outline", "invalid print value: check,outline"),
            (
                "check,ignorestatus=maybe",
                "invalid ignorestatus print value: maybe: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            ),
        ] {
            let err = parse_call(bad).expect_err(bad);
            assert_eq!(format!("{err:#}"), message, "{bad}");
        }
    }

    #[test]
    fn the_call_rides_on_the_frontend_s_attributes() {
        let mut attrs = BTreeMap::new();
        add_call_attributes(&mut attrs, &call("lint", ""));
        assert_eq!(attrs["requestid"], "frontend.lint");
        assert_eq!(
            attrs["frontend.caps"],
            "moby.buildkit.frontend.subrequests+forward"
        );
        let mut attrs = BTreeMap::from([(
            "frontend.caps".to_owned(),
            "moby.buildkit.frontend.contexts+forward".to_owned(),
        )]);
        add_call_attributes(&mut attrs, &call("outline", ""));
        assert_eq!(
            attrs["frontend.caps"],
            "moby.buildkit.frontend.contexts+forward,moby.buildkit.frontend.subrequests+forward"
        );
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
        let ignoring = CallFunc {
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
    fn the_metadata_file_holds_the_answer_as_buildx_writes_it() {
        let res = BTreeMap::from([
            (
                "result.json".to_owned(),
                "{\n  \"targets\": [\n    {\n      \"name\": \"a<b\"\n    }\n  ],\n  \"empty\": {}\n}".to_owned(),
            ),
            ("result.txt".to_owned(), "TARGET\n >>> x\n".to_owned()),
            ("result.statuscode".to_owned(), "1".to_owned()),
            ("version".to_owned(), "1.0.0".to_owned()),
        ]);
        assert_eq!(
            metadata_json(&res),
            "{\n  \"result.json\": {\n    \"targets\": [\n      {\n        \"name\": \"a\\u003cb\"\n      }\n    ],\n    \"empty\": {}\n  },\n  \
             \"result.statuscode\": \"1\",\n  \
             \"result.txt\": \"TARGET\\n \\u003e\\u003e\\u003e x\\n\",\n  \
             \"version\": \"1.0.0\"\n}"
        );
        assert_eq!(metadata_json(&BTreeMap::new()), "{}");
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
