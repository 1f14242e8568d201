//! `--call METHOD` and `--check`, as buildx 0.29 has them: instead of a build, the
//! Dockerfile frontend is asked a question — a subrequest, its `requestid` attribute
//! `frontend.outline`, `frontend.targets`, `frontend.lint` (`check`), … — in one solve that
//! exports nothing, called through the gateway API so that its answer (the result's metadata:
//! `result.json`, `result.txt`, `version`, `result.statuscode`) comes back. The answer goes
//! back to the caller ([`CallAnswer`]), which prints it as buildx prints it; the request's
//! `--iidfile` and `--metadata-file` are written here, as buildx writes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use brix_solver_client::gateway::{Fallback, call_frontend};
use serde_json::Value;

use crate::engine::{forward_progress, prepare, start_session};
use crate::error::Failure;
use crate::go::json_string;
use crate::nodes::BuildNode;
use crate::plan::PlannedBuild;
use crate::{CallAnswer, ProgressSink};

/// The Dockerfile frontend buildx calls instead when the daemon's own lacks a subrequest (it
/// uses this one, of its two fallback images, for every subrequest).
const FALLBACK_FRONTEND: &str = "docker/dockerfile:1.8.1@sha256:e87caa74dcb7d46cd820352bfea12591f3dba3ddc4285e19c7dcd13359f7cefd";

/// What `--call` asks for (buildx's `CallFunc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMethod {
    /// The subrequest without its `frontend.` prefix: `outline`, `targets`, `lint` (which
    /// `check` stands for), `subrequests.describe`, or any other name the frontend may know.
    pub name: String,
    /// `json`: the frontend's JSON as it is, instead of buildx's tables.
    pub format: String,
    /// `ignorestatus=true`: the exit code stays 0 whatever the frontend's status code.
    pub ignore_status: bool,
}

/// The method `--call` and `--check` ask for; `None` for a build (`--call build`, the
/// default). Refused here, before a daemon is asked, with buildx's words: fields other than
/// `format` and `ignorestatus`, two method names, and a `--check` value that is not a Go bool.
pub(crate) fn requested(call: &str, check: Option<&str>) -> anyhow::Result<Option<CallMethod>> {
    let mut value = call.to_owned();
    if let Some(check) = check {
        match crate::go::parse_bool(check) {
            Some(true) => value = "check".to_owned(),
            Some(false) => {}
            None => bail!(
                "invalid argument {check:?} for \"--check\" flag: strconv.ParseBool: parsing {check:?}: invalid syntax"
            ),
        }
    }
    parse_call(&value)
}

/// buildx's `ParseCallMethod`: CSV fields, one bare method name plus `format=` and
/// `ignorestatus=`; `check` is `lint` to the frontend, and `build` is no call at all.
fn parse_call(value: &str) -> anyhow::Result<Option<CallMethod>> {
    if value.is_empty() {
        return Ok(None);
    }
    let mut call = CallMethod {
        name: String::new(),
        format: String::new(),
        ignore_status: false,
    };
    for field in crate::cache::csv_fields(value)? {
        match field.split_once('=') {
            Some(("format", v)) => call.format = v.to_owned(),
            Some(("ignorestatus", v)) => {
                call.ignore_status = crate::go::parse_bool(v).with_context(|| {
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
fn add_call_attributes(attrs: &mut BTreeMap<String, String>, call: &CallMethod) {
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
/// Its progress is solve number `solve`; then the request's files are written.
pub(crate) async fn solve(
    plan: &PlannedBuild,
    nodes: &[BuildNode],
    progress: &Arc<dyn ProgressSink>,
    call: &CallMethod,
    solve: usize,
) -> Result<CallAnswer, Failure> {
    let (node_index, platforms) = if plan.platforms.is_empty() {
        (0, Vec::new())
    } else {
        let assignment =
            crate::nodes::assign_nodes(nodes, &plan.platforms, &mut vec![0; nodes.len()])?;
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

    let wrap = |e: anyhow::Error| Failure {
        solve: Some(solve),
        error: e,
    };
    let running = start_session(ps.session, node).await.map_err(wrap)?;
    let fallback = Fallback {
        applies: frontend_lacks_the_subrequest,
        attrs: BTreeMap::from([(
            "build-arg:BUILDKIT_SYNTAX".to_owned(),
            FALLBACK_FRONTEND.to_owned(),
        )]),
    };
    let result = forward_progress(progress, (solve, node_index), None, None, |tx| {
        call_frontend(&node.client, ps.spec, Some(fallback), running, tx)
    })
    .await
    .map_err(|e| wrap(e.into()))?;

    let mut response = result.exporter_response;
    for (key, value) in &result.metadata {
        response.insert(key.clone(), String::from_utf8_lossy(value).into_owned());
    }
    let answer = CallAnswer {
        method: call.clone(),
        response,
        dockerfile_name: dockerfile_name(plan),
    };
    // A call has no image: its image ID file is empty.
    let args = &plan.request;
    if let Some(path) = &args.iidfile {
        crate::files::write_atomically(path, b"")
            .with_context(|| format!("writing the image ID file {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        crate::files::write_atomically(path, answer.metadata_file_text().as_bytes())
            .with_context(|| format!("writing the metadata file {}", path.display()))?;
    }
    Ok(answer)
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

/// The name buildx gives the Dockerfile in check results (its `DockerfileMappingSrc`): `-f`
/// as given, `stdin` for `-f -`, else `CONTEXT/Dockerfile` (Go's `filepath.Join`; the
/// folder made for a Dockerfile read from stdin).
fn dockerfile_name(plan: &PlannedBuild) -> String {
    let args = &plan.request;
    match args.dockerfile.as_deref() {
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

/// The metadata file of a call as buildx writes it (`decodeExporterResponse` then
/// `json.MarshalIndent`): keys sorted; a value that is (or decodes from base64 to) a JSON
/// object, or a list of objects, is written as JSON — `result.json` as it is — and every other
/// value as a string, with Go's escaping.
pub(crate) fn metadata_json(response: &BTreeMap<String, String>) -> String {
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

    fn call(name: &str, format: &str) -> CallMethod {
        CallMethod {
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
}
