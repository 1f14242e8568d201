//! `brix history inspect [REF]` and `brix history inspect attachment`: one build record in
//! `docker buildx history inspect`'s layouts (`pretty` text, `json`), with its error details
//! (the failing step's output, the Dockerfile lines) and attachments (provenance, manifests)
//! read from the daemon's content store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use brix_driver::{NodeGroup, timefmt};
use brix_exporter::Platform;
use brix_exporter::descriptor::{annotation, media_type, validate_digest};
use brix_solver_client::ControlClient;
use brix_solver_client::history::decode_error_blob;
use brix_solver_client::progress::SourceLocation;
use brix_solver_client::proto::moby::buildkit::v1::Descriptor as RecordDescriptor;
use serde::Serialize;

use super::logs::step_logs;
use super::{
    Record, build_name, connect, desktop_url, format_duration, go_json_escape, grpc_code_name,
    one_record, relative_path,
};
use crate::commands::node_status::print_stdout;
use crate::gotemplate::{Funcs, Template};
use crate::tabwriter;

mod template;

/// The largest provenance or error blob read into memory.
const MAX_METADATA_BLOB: u64 = 16 << 20;
/// The largest attachment `inspect attachment` prints.
const MAX_ATTACHMENT_BLOB: u64 = 256 << 20;
/// Output lines of the failing step shown under its error.
const ERROR_LOG_LINES: usize = 16;

/// Arguments of `brix history inspect`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InspectArgs {
    #[command(subcommand)]
    command: Option<InspectCommand>,
    /// The build: a ref from `brix history ls`, or `^N` for the N-th newest (the newest if
    /// omitted).
    #[arg(value_name = "REF")]
    build_ref: Option<String>,
    /// Format the output: `pretty` (the default), `json`, or a Go template over buildx's
    /// record fields (`{{.Ref}}`, `{{.Status}}`, `{{.Duration}}`, …).
    #[arg(long, default_value = "pretty")]
    format: String,
}

#[derive(Debug, clap::Subcommand)]
enum InspectCommand {
    /// Inspect a build record attachment.
    Attachment(AttachmentArgs),
}

/// Arguments of `brix history inspect attachment`.
#[derive(Debug, clap::Args)]
struct AttachmentArgs {
    /// The build (as for `inspect`).
    #[arg(value_name = "REF")]
    build_ref: Option<String>,
    /// Print the blob with this digest.
    #[arg(value_name = "DIGEST")]
    digest: Option<String>,
    /// Type of attachment: `index`, `manifest`, `image`, `provenance`, `sbom`, or a media or
    /// predicate type.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Platform of attachment, e.g. `linux/arm64`.
    #[arg(long)]
    platform: Option<String>,
}

/// What `inspect --format json` prints: buildx's `inspectOutput`, field for field.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectOutput {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(rename = "Ref")]
    build_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    context: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dockerfile: String,
    #[serde(rename = "VCSRepository", skip_serializing_if = "String::is_empty")]
    vcs_repository: String,
    #[serde(rename = "VCSRevision", skip_serializing_if = "String::is_empty")]
    vcs_revision: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    platform: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    keep_git_dir: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    named_contexts: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    duration: u128,
    #[serde(skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOutput>,
    num_completed_steps: i32,
    num_total_steps: i32,
    num_cached_steps: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_args: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<KeyValue>,
    config: ConfigOutput,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    materials: Vec<Material>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<AttachmentOutput>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigOutput {
    #[serde(skip_serializing_if = "String::is_empty")]
    network: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    hostname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cgroup_parent: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_resolve_mode: String,
    #[serde(skip_serializing_if = "is_false")]
    multi_platform: bool,
    #[serde(skip_serializing_if = "is_false")]
    no_cache: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    shm_size: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ulimit: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    memory: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    memory_swap: String,
    #[serde(rename = "CPUShares", skip_serializing_if = "String::is_empty")]
    cpu_shares: String,
    #[serde(rename = "CPUPeriod", skip_serializing_if = "String::is_empty")]
    cpu_period: String,
    #[serde(rename = "CPUQuota", skip_serializing_if = "String::is_empty")]
    cpu_quota: String,
    #[serde(rename = "CPUSetCPUs", skip_serializing_if = "String::is_empty")]
    cpu_set_cpus: String,
    #[serde(rename = "CPUSetMems", skip_serializing_if = "String::is_empty")]
    cpu_set_mems: String,
    #[serde(rename = "CacheMountNS", skip_serializing_if = "String::is_empty")]
    cache_mount_ns: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dockerfile_check_config: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    source_date_epoch: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    sandbox_hostname: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rest_raw: Vec<KeyValue>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyValue {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Material {
    #[serde(rename = "URI", skip_serializing_if = "String::is_empty")]
    uri: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    digests: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AttachmentOutput {
    #[serde(skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    platform: String,
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    kind: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorOutput {
    #[serde(skip_serializing_if = "is_zero_i32")]
    code: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logs: Vec<String>,
    /// The printed source excerpts (base64 in JSON, as Go encodes `[]byte`).
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "as_base64")]
    sources: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u128) -> bool {
    *n == 0
}
fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}
fn as_base64<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(text))
}

/// Runs `inspect` or `inspect attachment`.
pub(super) async fn run(ng: &NodeGroup, args: InspectArgs) -> anyhow::Result<ExitCode> {
    if let Some(InspectCommand::Attachment(a)) = args.command {
        return attachment(ng, a).await;
    }
    let json = args.format == "json";
    // As buildx: anything else than pretty or json is a template (Go's builtins only),
    // parsed before any daemon is contacted.
    let custom = match args.format.as_str() {
        "pretty" | "json" => None,
        text => Some(
            Template::parse_named("inspect", text, Funcs::Builtins)
                .map_err(|e| anyhow::anyhow!("failed to parse format template: {e}"))?,
        ),
    };
    let reference = args.build_ref.unwrap_or_default();
    let nodes = connect(ng, true).await?;
    let rec = one_record(&nodes, &reference).await?;
    let out = inspect_output(&rec).await?;
    if let Some(template) = custom {
        let mut text = String::new();
        template
            .execute_into(&template::data(&out), &mut text)
            .map_err(|e| anyhow::anyhow!("failed to execute format template: {e}"))?;
        print_stdout(&format!("{text}\n"));
    } else if json {
        let text = serde_json::to_string_pretty(&out).context("encoding the record")?;
        print_stdout(&format!("{}\n", go_json_escape(&text)));
    } else {
        print_stdout(&render_pretty(&out, &rec, reference.is_empty()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads attribute `key` (removing it) when present: `parse` turns it into the field's value.
fn take_attr<T>(
    attrs: &mut BTreeMap<String, String>,
    key: &str,
    parse: impl FnOnce(&str) -> T,
) -> Option<T> {
    attrs.remove(key).map(|v| parse(&v))
}

/// Attributes under `prefix`, sorted by name (left in `attrs`).
fn key_values(attrs: &BTreeMap<String, String>, prefix: &str) -> Vec<KeyValue> {
    attrs
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix).map(|name| KeyValue {
                name: name.to_owned(),
                value: v.clone(),
            })
        })
        .collect()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A bool attribute as buildx reads it: an unparsable value is false and noted in `errors`.
fn bool_attr(v: &str, errors: &mut Vec<String>) -> bool {
    parse_go_bool(v).unwrap_or_else(|| {
        errors.push(format!(
            "failed to parse {v}: (strconv.ParseBool: parsing {v:?}: invalid syntax)"
        ));
        false
    })
}

/// Builds buildx's `inspectOutput` for `rec`, reading its error details and attachments.
async fn inspect_output(rec: &Record<'_>) -> anyhow::Result<InspectOutput> {
    let client = &rec.node.client;
    let record = &rec.entry.record;
    let st = rec.local_state();
    let mut attrs = record.frontend_attrs.clone();
    attrs.remove("frontend.caps");
    let mut out = InspectOutput::default();

    let (mut context, mut dockerfile) = (String::new(), String::new());
    if let Some(st) = &st {
        context = st.local_path.clone();
        dockerfile = st.dockerfile_path.clone();
        if !dockerfile.is_empty()
            && dockerfile != "-"
            && let Some(rel) =
                relative_path(&context, &dockerfile).filter(|r| !r.starts_with("../"))
        {
            dockerfile = rel;
        }
        if !context.is_empty()
            && let Ok(wd) = std::env::current_dir()
            && let Some(rel) =
                relative_path(&wd.to_string_lossy(), &context).filter(|r| !r.starts_with("../"))
        {
            context = rel;
        }
    }
    if context.is_empty()
        && let Some(v) = attrs.remove("context")
    {
        context = v;
    }
    if dockerfile.is_empty()
        && let Some(v) = attrs.get("filename")
    {
        dockerfile = match attrs.get("vcs:localdir:dockerfile") {
            Some(dir) => super::join_clean(dir, v),
            None => v.clone(),
        };
    }
    attrs.remove("filename");

    // As buildx, the name is computed from the attributes read so far (without `filename`).
    out.name = build_name(&attrs, st.as_ref());
    out.build_ref = record.r#ref.clone();
    out.context = context;
    out.dockerfile = dockerfile;
    if !attrs.contains_key("context") {
        out.vcs_repository = attrs.get("vcs:source").cloned().unwrap_or_default();
        out.vcs_revision = attrs.get("vcs:revision").cloned().unwrap_or_default();
    }
    out.target = attrs.remove("target").unwrap_or_default();
    let mut errors = Vec::new();
    if let Some(v) = attrs.remove("platform") {
        let mut platforms = Vec::new();
        for p in v.split(',') {
            match Platform::parse(p) {
                Ok(p) => platforms.push(p.to_string()),
                Err(e) => {
                    errors.push(format!("failed to parse {v}: ({e})"));
                    platforms.clear();
                    break;
                }
            }
        }
        out.platform = platforms;
    }
    if let Some(keep) = take_attr(&mut attrs, "build-arg:BUILDKIT_CONTEXT_KEEP_GIT_DIR", |v| {
        bool_attr(v, &mut errors)
    }) {
        out.keep_git_dir = keep;
    }
    out.named_contexts = key_values(&attrs, "context:");

    out.started_at = rec.entry.created_at().map(timefmt::rfc3339_nano);
    out.status = "running".into();
    if let Some(t) = rec.entry.completed_at() {
        out.completed_at = Some(timefmt::rfc3339_nano(t));
        out.status = "completed".into();
    }
    if let Some(e) = &record.error {
        out.status = if e.code == 1 { "canceled" } else { "failed" }.into();
    }
    out.error = error_output(client, rec).await?;
    out.duration = rec.duration().map(|d| d.as_nanos()).unwrap_or(0);
    out.num_completed_steps = record.num_completed_steps;
    out.num_total_steps = record.num_total_steps;
    out.num_cached_steps = record.num_cached_steps;
    out.build_args = key_values(&attrs, "build-arg:");
    out.labels = key_values(&attrs, "label:");

    let c = &mut out.config;
    let text = |attrs: &mut BTreeMap<String, String>, key: &str, field: &mut String| {
        if let Some(v) = attrs.remove(key) {
            *field = v;
        }
    };
    text(&mut attrs, "force-network-mode", &mut c.network);
    text(&mut attrs, "hostname", &mut c.hostname);
    text(&mut attrs, "cgroup-parent", &mut c.cgroup_parent);
    text(&mut attrs, "image-resolve-mode", &mut c.image_resolve_mode);
    for key in ["build-arg:BUILDKIT_MULTI_PLATFORM", "multi-platform"] {
        if let Some(v) = take_attr(&mut attrs, key, |v| bool_attr(v, &mut errors)) {
            c.multi_platform = v;
        }
    }
    // A bare `no-cache` means no cache at all; `no-cache=a,b` names stages, which buildx
    // reads after it has already removed the attribute, so it never shows them.
    if let Some(v) = attrs.remove("no-cache")
        && v.is_empty()
    {
        c.no_cache = true;
    }
    if let Some(v) = attrs.remove("add-hosts") {
        c.extra_hosts = v.split(',').map(str::to_owned).collect();
    }
    text(&mut attrs, "shm-size", &mut c.shm_size);
    text(&mut attrs, "ulimit", &mut c.ulimit);
    text(&mut attrs, "memory", &mut c.memory);
    text(&mut attrs, "memswap", &mut c.memory_swap);
    text(&mut attrs, "cpushares", &mut c.cpu_shares);
    text(&mut attrs, "cpuperiod", &mut c.cpu_period);
    text(&mut attrs, "cpuquota", &mut c.cpu_quota);
    text(&mut attrs, "cpusetcpus", &mut c.cpu_set_cpus);
    text(&mut attrs, "cpusetmems", &mut c.cpu_set_mems);
    text(
        &mut attrs,
        "build-arg:BUILDKIT_CACHE_MOUNT_NS",
        &mut c.cache_mount_ns,
    );
    text(
        &mut attrs,
        "build-arg:BUILDKIT_DOCKERFILE_CHECK",
        &mut c.dockerfile_check_config,
    );
    text(
        &mut attrs,
        "build-arg:SOURCE_DATE_EPOCH",
        &mut c.source_date_epoch,
    );
    text(
        &mut attrs,
        "build-arg:SANDBOX_HOSTNAME",
        &mut c.sandbox_hostname,
    );
    c.rest_raw = attrs
        .iter()
        .filter(|(k, _)| {
            !["vcs:", "build-arg:", "label:", "context:", "attest:"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| KeyValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();

    let attachments = all_attachments(client, rec).await?;
    if let Some(prov) = attachments
        .iter()
        .find(|a| a.kind().starts_with("https://slsa.dev/provenance/"))
    {
        let bytes = client
            .read_blob(&prov.descriptor.digest, MAX_METADATA_BLOB)
            .await
            .with_context(|| format!("failed to read provenance {}", prov.descriptor.digest))?;
        out.materials = provenance_materials(&bytes).with_context(|| {
            format!("failed to unmarshal provenance {}", prov.descriptor.digest)
        })?;
    }
    out.attachments = attachments
        .iter()
        .map(|a| AttachmentOutput {
            digest: a.descriptor.digest.clone(),
            platform: a
                .platform
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            kind: a.kind().to_owned(),
        })
        .collect();
    out.errors = errors;
    Ok(out)
}

/// The error block: code and message from the record, and from its external error blob the
/// source excerpts and the failing step's name and last output lines.
async fn error_output(
    client: &ControlClient,
    rec: &Record<'_>,
) -> anyhow::Result<Option<ErrorOutput>> {
    let record = &rec.entry.record;
    if record.error.is_none() && record.external_error.is_none() {
        return Ok(None);
    }
    let mut out = ErrorOutput::default();
    if let Some(e) = &record.error {
        out.code = e.code;
        out.message = e.message.clone();
    }
    let Some(ext) = &record.external_error else {
        return Ok(Some(out));
    };
    let bytes = client
        .read_blob(&ext.digest, MAX_METADATA_BLOB)
        .await
        .with_context(|| format!("failed to read external error {}", ext.digest))?;
    let failure = decode_error_blob(&bytes)
        .with_context(|| format!("failed to unmarshal external error {}", ext.digest))?;
    for loc in &failure.locations {
        out.sources.push_str(&print_source(loc));
        out.sources.push('\n');
    }
    if let Some(digest) = &failure.vertex {
        let (name, logs) = step_logs(client, rec.build_ref(), digest, ERROR_LOG_LINES)
            .await
            .with_context(|| format!("failed to load vertex logs {digest}"))?;
        out.name = name;
        out.logs = logs;
    }
    Ok(Some(out))
}

/// A source excerpt as BuildKit's `errdefs.Source.Print` writes it: `file:line`, a rule, the
/// lines around the range numbered with `>>>` on the range itself, a rule.
fn print_source(loc: &SourceLocation) -> String {
    let text = String::from_utf8_lossy(&loc.data);
    let lines: Vec<&str> = text.split('\n').collect();
    let Some(mut start) = loc.lines.iter().map(|r| r.0 as usize).min() else {
        return String::new();
    };
    let mut end = loc
        .lines
        .iter()
        .map(|r| r.1 as usize)
        .max()
        .unwrap_or(start);
    if start > lines.len() || start < 1 {
        return String::new();
    }
    end = end.min(lines.len());
    let pad = if end == start { 4 } else { 2 };
    let first = start;
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{}:{first}\n--------------------\n", loc.filename);
    for i in start..=end {
        let marked = loc
            .lines
            .iter()
            .any(|&(s, e)| (s as usize) <= i && i <= (e as usize).max(s as usize));
        let pfx = if marked { ">>>" } else { "   " };
        let _ = writeln!(out, " {i:>3} | {pfx} {}", lines[i - 1]);
    }
    out.push_str("--------------------\n");
    out
}

/// The text layout of `inspect`: Go tab-writer blocks (min width 1, tab stops of 8).
fn render_pretty(out: &InspectOutput, rec: &Record<'_>, no_ref_given: bool) -> String {
    let block = |text: &str| tabwriter::align_tabs(text, 1, 8, 1);
    let mut s = String::new();

    let mut t = String::new();
    let line = |t: &mut String, label: &str, value: &str| {
        if !value.is_empty() {
            let _ = writeln!(t, "{label}:\t{value}");
        }
    };
    line(&mut t, "Name", &out.name);
    if no_ref_given {
        line(&mut t, "Ref", &out.build_ref);
    }
    line(&mut t, "Context", &out.context);
    line(&mut t, "Dockerfile", &out.dockerfile);
    line(&mut t, "VCS Repository", &out.vcs_repository);
    line(&mut t, "VCS Revision", &out.vcs_revision);
    line(&mut t, "Target", &out.target);
    line(&mut t, "Platforms", &out.platform.join(", "));
    if out.keep_git_dir {
        line(&mut t, "Keep Git Dir", "true");
    }
    s.push_str(&block(&t));
    s.push('\n');
    s.push_str(&key_value_table(&out.named_contexts, "Named Context"));

    let mut t = String::new();
    let started = rec
        .entry
        .created_at()
        .map(|t| timefmt::go_default(t)[..19].to_owned())
        .unwrap_or_else(|| "0001-01-01 00:00:00".into());
    let _ = writeln!(t, "Started:\t{started}");
    let running = if out.status == "running" {
        " (running)"
    } else {
        ""
    };
    let _ = writeln!(
        t,
        "Duration:\t{}{running}",
        format_duration(Duration::from_nanos(out.duration as u64))
    );
    match (out.status.as_str(), &rec.entry.record.error) {
        ("failed", Some(e)) => {
            let _ = writeln!(t, "Error:\t{} {}", grpc_code_name(e.code), e.message);
        }
        ("canceled", _) => t.push_str("Status:\tCanceled\n"),
        _ => {}
    }
    let cached = f64::from(out.num_cached_steps) / f64::from(out.num_total_steps) * 100.0;
    let cached = if cached.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{cached:.0}")
    };
    let _ = writeln!(
        t,
        "Build Steps:\t{}/{} ({cached}% cached)",
        out.num_completed_steps, out.num_total_steps
    );
    s.push_str(&block(&t));
    s.push('\n');

    let c = &out.config;
    let mut t = String::new();
    line(&mut t, "Network", &c.network);
    line(&mut t, "Hostname", &c.hostname);
    line(&mut t, "Extra Hosts", &c.extra_hosts.join(", "));
    line(&mut t, "Cgroup Parent", &c.cgroup_parent);
    line(&mut t, "Image Resolve Mode", &c.image_resolve_mode);
    if c.multi_platform {
        line(&mut t, "Multi-Platform", "true");
    }
    if c.no_cache {
        line(&mut t, "No Cache", "true");
    }
    line(&mut t, "Shm Size", &c.shm_size);
    line(&mut t, "Resource Limits", &c.ulimit);
    line(&mut t, "Memory", &humanize_bytes(&c.memory));
    line(&mut t, "Memory Swap", &humanize_bytes(&c.memory_swap));
    line(&mut t, "CPU Shares", &c.cpu_shares);
    line(&mut t, "CPU Period", &c.cpu_period);
    line(&mut t, "CPU Quota", &c.cpu_quota);
    line(&mut t, "CPUSet CPUs", &c.cpu_set_cpus);
    line(&mut t, "CPUSet Mems", &c.cpu_set_mems);
    line(&mut t, "Cache Mount Namespace", &c.cache_mount_ns);
    line(
        &mut t,
        "Dockerfile Check Config",
        &c.dockerfile_check_config,
    );
    line(&mut t, "Source Date Epoch", &c.source_date_epoch);
    line(&mut t, "Sandbox Hostname", &c.sandbox_hostname);
    for kv in &c.rest_raw {
        let _ = writeln!(t, "{}:\t{}", kv.name, kv.value);
    }
    s.push_str(&block(&t));
    s.push('\n');

    s.push_str(&key_value_table(&out.build_args, "Build Arg"));
    s.push_str(&key_value_table(&out.labels, "Label"));

    if !out.materials.is_empty() {
        s.push_str("Materials:\n");
        let mut t = String::from("URI\tDIGEST\n");
        for m in &out.materials {
            let _ = writeln!(t, "{}\t{}", m.uri, m.digests.join(", "));
        }
        s.push_str(&block(&t));
        s.push('\n');
    }
    if !out.attachments.is_empty() {
        s.push_str("Attachments:\n");
        let mut t = String::from("DIGEST\tPLATFORM\tTYPE\n");
        for a in &out.attachments {
            let _ = writeln!(t, "{}\t{}\t{}", a.digest, a.platform, a.kind);
        }
        s.push_str(&block(&t));
        s.push('\n');
    }
    if let Some(e) = &out.error {
        s.push_str(&e.sources);
        if !e.logs.is_empty() {
            s.push_str("Logs:\n");
            let _ = writeln!(s, "> => {}:", e.name);
            for l in &e.logs {
                let _ = writeln!(s, "> {l}");
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "Print build logs: brix history logs {}", out.build_ref);
    let _ = writeln!(
        s,
        "View build in Docker Desktop: {}",
        desktop_url(&rec.full_ref())
    );
    s
}

/// buildx's `printTable`: `TITLE\tVALUE` and one row per pair, then a blank line.
fn key_value_table(kvs: &[KeyValue], title: &str) -> String {
    if kvs.is_empty() {
        return String::new();
    }
    let mut t = format!("{}\tVALUE\n", title.to_uppercase());
    for kv in kvs {
        let _ = writeln!(t, "{}\t{}", kv.name, kv.value);
    }
    tabwriter::align_tabs(&t, 1, 8, 1) + "\n"
}

/// A memory limit in bytes as buildx shows it (go-units binary size), or the text as given.
fn humanize_bytes(v: &str) -> String {
    if v.is_empty() {
        return String::new();
    }
    match v.parse::<i64>() {
        Ok(n) => brix_config::format_bytes_binary(n as f64),
        Err(_) => v.to_owned(),
    }
}

/// Material URIs and digests from a SLSA provenance predicate (v1 `resolvedDependencies`, or
/// v0.2 `materials`), either bare or inside an in-toto statement.
fn provenance_materials(bytes: &[u8]) -> anyhow::Result<Vec<Material>> {
    let doc: serde_json::Value = serde_json::from_slice(bytes)?;
    let pred = doc.get("predicate").unwrap_or(&doc);
    let list = pred
        .pointer("/buildDefinition/resolvedDependencies")
        .or_else(|| pred.get("materials"))
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(list
        .iter()
        .map(|m| {
            let digests = m
                .get("digest")
                .and_then(|d| d.as_object())
                .map(|d| {
                    d.iter()
                        .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            Material {
                uri: m
                    .get("uri")
                    .and_then(|u| u.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                digests,
            }
        })
        .collect())
}

/// An attachment of a record: an attestation, or an image manifest or index of a result.
struct Attachment {
    platform: Option<Platform>,
    descriptor: RecordDescriptor,
}

impl Attachment {
    /// buildx's `descrType`: the in-toto predicate type, else the media type.
    fn kind(&self) -> &str {
        self.descriptor
            .annotations
            .get("in-toto.io/predicate-type")
            .unwrap_or(&self.descriptor.media_type)
    }
}

/// Every attachment of `rec` as buildx's `allAttachments` finds them: attestations, and the
/// manifests and indexes of the results the content store still has, platform-less ones
/// first, then by platform and type.
async fn all_attachments(
    client: &ControlClient,
    rec: &Record<'_>,
) -> anyhow::Result<Vec<Attachment>> {
    let record = &rec.entry.record;
    let mut out = Vec::new();
    if let Some(result) = &record.result {
        for a in &result.attestations {
            out.push(Attachment {
                platform: None,
                descriptor: a.clone(),
            });
        }
        for d in result.results.values() {
            walk_attachments(client, d.clone(), None, &mut out, 0).await;
        }
    }
    for (key, result) in &record.results {
        let platform = Platform::parse(key)
            .with_context(|| format!("invalid platform {key:?} in the record"))?;
        for a in &result.attestations {
            out.push(Attachment {
                platform: Some(platform.clone()),
                descriptor: a.clone(),
            });
        }
        for d in result.results.values() {
            walk_attachments(client, d.clone(), Some(platform.clone()), &mut out, 0).await;
        }
    }
    out.sort_by(|a, b| {
        let pa = a.platform.as_ref().map(ToString::to_string);
        let pb = b.platform.as_ref().map(ToString::to_string);
        (pa.is_some(), pa, a.kind()).cmp(&(pb.is_some(), pb, b.kind()))
    });
    Ok(out)
}

/// Adds `desc` (unless it is an attestation manifest) and, for an index, its manifests.
/// Content the store no longer has is skipped, as buildx does.
fn walk_attachments<'a>(
    client: &'a ControlClient,
    desc: RecordDescriptor,
    platform: Option<Platform>,
    out: &'a mut Vec<Attachment>,
    depth: u8,
) -> futures_util::future::BoxFuture<'a, ()> {
    Box::pin(async move {
        if depth > 8 || !matches!(client.blob_info(&desc.digest).await, Ok(Some(_))) {
            return;
        }
        let is_index = media_type::is_index(&desc.media_type);
        let digest = desc.digest.clone();
        if desc
            .annotations
            .get(annotation::REFERENCE_TYPE)
            .map(String::as_str)
            != Some(annotation::ATTESTATION_MANIFEST)
        {
            out.push(Attachment {
                platform: platform.clone(),
                descriptor: desc,
            });
        }
        if !is_index {
            return;
        }
        let Ok(bytes) = client.read_blob(&digest, MAX_METADATA_BLOB).await else {
            return;
        };
        let Ok(index) = serde_json::from_slice::<brix_exporter::ImageIndex>(&bytes) else {
            return;
        };
        for m in index.manifests {
            let p = m.platform.clone().or_else(|| platform.clone());
            let child = RecordDescriptor {
                media_type: m.media_type,
                digest: m.digest,
                size: m.size as i64,
                annotations: m.annotations,
            };
            walk_attachments(client, child, p, out, depth + 1).await;
        }
    })
}

/// `inspect attachment`: the first attachment of the record matching `--type` and
/// `--platform` (or the blob `DIGEST`), written raw to stdout.
async fn attachment(ng: &NodeGroup, args: AttachmentArgs) -> anyhow::Result<ExitCode> {
    if let Some(d) = &args.digest {
        validate_digest(d).with_context(|| format!("invalid digest {d:?}"))?;
    }
    if args.digest.is_none() && args.platform.is_none() && args.kind.is_none() {
        bail!("at least one of --type, --platform or DIGEST must be specified");
    }
    let reference = args.build_ref.clone().unwrap_or_default();
    let nodes = connect(ng, true).await?;
    let rec = one_record(&nodes, &reference).await?;
    let client = &rec.node.client;
    if let Some(d) = &args.digest {
        return write_blob(client, d).await;
    }
    let types: Vec<String> = match args.kind.as_deref() {
        Some("index") => vec![media_type::OCI_INDEX.into()],
        Some("manifest") => vec![media_type::OCI_MANIFEST.into()],
        Some("image") => vec![media_type::OCI_CONFIG.into()],
        Some("provenance") => vec![
            "https://slsa.dev/provenance/v1".into(),
            "https://slsa.dev/provenance/v0.2".into(),
        ],
        Some("sbom") => vec!["https://spdx.dev/Document".into()],
        Some(other) => vec![other.to_owned()],
        None => Vec::new(),
    };
    for a in all_attachments(client, &rec).await? {
        if let Some(p) = &args.platform
            && a.platform.as_ref().map(ToString::to_string).as_ref() != Some(p)
        {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == a.kind()) {
            continue;
        }
        return write_blob(client, &a.descriptor.digest).await;
    }
    bail!("no matching attachment found for ref {reference:?}")
}

/// Writes blob `digest` of the daemon's content store to stdout.
async fn write_blob(client: &ControlClient, digest: &str) -> anyhow::Result<ExitCode> {
    let bytes = client
        .read_blob(digest, MAX_ATTACHMENT_BLOB)
        .await
        .with_context(|| format!("reading blob {digest}"))?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the attachment to stdout")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn sources_print_like_buildkit() {
        let loc = SourceLocation {
            filename: "Dockerfile".into(),
            data: b"FROM busybox\nRUN echo before\nRUN exit 3\n".to_vec(),
            lines: vec![(3, 3)],
        };
        assert_eq!(
            print_source(&loc),
            "Dockerfile:3\n--------------------\n   1 |     FROM busybox\n   2 |     RUN echo before\n   3 | >>> RUN exit 3\n   4 |     \n--------------------\n"
        );
        let empty = SourceLocation {
            filename: "x".into(),
            data: Vec::new(),
            lines: Vec::new(),
        };
        assert_eq!(print_source(&empty), "");
    }

    #[test]
    fn materials_come_from_either_provenance_version() {
        let v1 = br#"{"buildDefinition":{"resolvedDependencies":[{"uri":"pkg:docker/busybox","digest":{"sha256":"ab"}}]}}"#;
        let m = provenance_materials(v1).unwrap();
        assert_eq!(m[0].uri, "pkg:docker/busybox");
        assert_eq!(m[0].digests, ["sha256:ab"]);
        let v02 = br#"{"predicate":{"materials":[{"uri":"u","digest":{"sha256":"cd"}}]}}"#;
        assert_eq!(provenance_materials(v02).unwrap()[0].digests, ["sha256:cd"]);
    }

    #[test]
    fn json_keys_follow_buildx() {
        let out = InspectOutput {
            build_ref: "r".into(),
            status: "completed".into(),
            duration: 5,
            ..Default::default()
        };
        let text = serde_json::to_string(&out).unwrap();
        assert_eq!(
            text,
            r#"{"Ref":"r","Duration":5,"Status":"completed","NumCompletedSteps":0,"NumTotalSteps":0,"NumCachedSteps":0,"Config":{}}"#
        );
    }
}
