//! `history inspect --format TEMPLATE`: the record as buildx hands it to Go's `text/template`
//! (its `inspectOutput` struct, every field present with Go's zero value, `Duration` a
//! `time.Duration`, `StartedAt`/`CompletedAt` `*time.Time`, `Error` a pointer).

use crate::gotemplate::{Data, Struct};

use super::{AttachmentOutput, ConfigOutput, ErrorOutput, InspectOutput, KeyValue, Material};

/// The record as the template sees it.
pub(super) fn data(out: &InspectOutput) -> Data {
    Struct::new("*history.inspectOutput")
        .field("Name", out.name.clone())
        .field("Ref", out.build_ref.clone())
        .field("Context", out.context.clone())
        .field("Dockerfile", out.dockerfile.clone())
        .field("VCSRepository", out.vcs_repository.clone())
        .field("VCSRevision", out.vcs_revision.clone())
        .field("Target", out.target.clone())
        .field("Platform", strings(&out.platform))
        .field("KeepGitDir", Data::Bool(out.keep_git_dir))
        .field("NamedContexts", key_values(&out.named_contexts))
        .field("StartedAt", time(out.started_at.as_deref()))
        .field("CompletedAt", time(out.completed_at.as_deref()))
        .field(
            "Duration",
            Struct::new("time.Duration")
                .display(go_duration(out.duration))
                .marshal_json(Data::Int(out.duration as i64)),
        )
        .field("Status", out.status.clone())
        .field("Error", out.error.as_ref().map_or(Data::Nil, error))
        .field(
            "NumCompletedSteps",
            Data::Int(out.num_completed_steps.into()),
        )
        .field("NumTotalSteps", Data::Int(out.num_total_steps.into()))
        .field("NumCachedSteps", Data::Int(out.num_cached_steps.into()))
        .field("BuildArgs", key_values(&out.build_args))
        .field("Labels", key_values(&out.labels))
        .field("Config", config(&out.config))
        .field("Materials", list(&out.materials, material))
        .field("Attachments", list(&out.attachments, attachment))
        .field("Errors", strings(&out.errors))
        .into()
}

fn strings(items: &[String]) -> Data {
    if items.is_empty() {
        Data::NilList
    } else {
        Data::strings(items)
    }
}

fn list<T>(items: &[T], each: impl Fn(&T) -> Data) -> Data {
    if items.is_empty() {
        Data::NilList
    } else {
        Data::List(items.iter().map(each).collect())
    }
}

fn key_values(items: &[KeyValue]) -> Data {
    list(items, |kv| {
        Struct::new("history.keyValueOutput")
            .field("Name", kv.name.clone())
            .field("Value", kv.value.clone())
            .into()
    })
}

fn material(m: &Material) -> Data {
    Struct::new("history.materialOutput")
        .field("URI", m.uri.clone())
        .field("Digests", strings(&m.digests))
        .into()
}

fn attachment(a: &AttachmentOutput) -> Data {
    Struct::new("history.attachmentOutput")
        .field("Digest", a.digest.clone())
        .field("Platform", a.platform.clone())
        .field("Type", a.kind.clone())
        .into()
}

fn error(e: &ErrorOutput) -> Data {
    Struct::new("*history.errorOutput")
        .field("Code", Data::Int(e.code.into()))
        .field("Message", e.message.clone())
        .field("Name", e.name.clone())
        .field("Logs", strings(&e.logs))
        .field("Sources", e.sources.clone())
        .into()
}

fn config(c: &ConfigOutput) -> Data {
    Struct::new("history.configOutput")
        .field("Network", c.network.clone())
        .field("ExtraHosts", strings(&c.extra_hosts))
        .field("Hostname", c.hostname.clone())
        .field("CgroupParent", c.cgroup_parent.clone())
        .field("ImageResolveMode", c.image_resolve_mode.clone())
        .field("MultiPlatform", Data::Bool(c.multi_platform))
        .field("NoCache", Data::Bool(c.no_cache))
        .field("ShmSize", c.shm_size.clone())
        .field("Ulimit", c.ulimit.clone())
        .field("Memory", c.memory.clone())
        .field("MemorySwap", c.memory_swap.clone())
        .field("CPUShares", c.cpu_shares.clone())
        .field("CPUPeriod", c.cpu_period.clone())
        .field("CPUQuota", c.cpu_quota.clone())
        .field("CPUSetCPUs", c.cpu_set_cpus.clone())
        .field("CPUSetMems", c.cpu_set_mems.clone())
        .field("CacheMountNS", c.cache_mount_ns.clone())
        .field("DockerfileCheckConfig", c.dockerfile_check_config.clone())
        .field("SourceDateEpoch", c.source_date_epoch.clone())
        .field("SandboxHostname", c.sandbox_hostname.clone())
        .field("RestRaw", key_values(&c.rest_raw))
        .into()
}

/// A `*time.Time` from the record's RFC 3339 time, printed as Go prints a UTC time
/// (`2006-01-02 15:04:05.999999999 +0000 UTC`); nil when there is none.
fn time(rfc3339: Option<&str>) -> Data {
    let Some(t) = rfc3339 else {
        return Data::Nil;
    };
    Struct::new("*time.Time")
        .display(go_time_string(t))
        .marshal_json(Data::Str(t.to_owned()))
        .into()
}

/// `2026-12-02T03:04:05.120Z` → `2026-12-02 03:04:05.12 +0000 UTC`.
fn go_time_string(rfc3339: &str) -> String {
    let t = rfc3339.trim_end_matches('Z');
    let (date, clock) = t.split_once('T').unwrap_or((t, ""));
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!("{date} {whole}{dot}{fraction} +0000 UTC")
}

/// Go's `time.Duration.String()` of `nanos` nanoseconds (`1.5s`, `2m3.04s`, `12.5ms`, `0s`).
fn go_duration(nanos: u128) -> String {
    let n = nanos as u64;
    if n == 0 {
        return "0s".to_owned();
    }
    let with_fraction = |whole: u64, frac: u64, digits: usize, unit: &str| {
        let frac = format!("{frac:0digits$}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{frac}{unit}")
        }
    };
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return with_fraction(n / 1_000, n % 1_000, 3, "µs");
    }
    if n < 1_000_000_000 {
        return with_fraction(n / 1_000_000, n % 1_000_000, 6, "ms");
    }
    let secs = n / 1_000_000_000;
    let sub = n % 1_000_000_000;
    let seconds = with_fraction(secs % 60, sub, 9, "s");
    let minutes = secs / 60;
    match (minutes / 60, minutes % 60) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gotemplate::{Funcs, Template};

    #[test]
    fn durations_and_times_print_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(12_500_000), "12.5ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(123_040_000_000), "2m3.04s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(
            go_time_string("2026-12-02T03:04:05.120Z"),
            "2026-12-02 03:04:05.12 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-12-02T03:04:05Z"),
            "2026-12-02 03:04:05 +0000 UTC"
        );
    }

    #[test]
    fn fields_have_go_zero_values_and_builtins_only() {
        let out = InspectOutput {
            build_ref: "abc".into(),
            status: "completed".into(),
            platform: vec!["linux/amd64".into(), "linux/arm64".into()],
            duration: 1_500_000_000,
            ..Default::default()
        };
        let render = |text: &str| {
            let t = Template::parse_named("inspect", text, Funcs::Builtins).expect("parses");
            let mut s = String::new();
            t.execute_into(&data(&out), &mut s).expect("runs");
            s
        };
        assert_eq!(
            render("{{.Ref}} {{.Status}} {{.Duration}} {{.Platform}}"),
            "abc completed 1.5s [linux/amd64 linux/arm64]"
        );
        assert_eq!(
            render("[{{.Name}}] {{.Error}} {{.StartedAt}}"),
            "[] <nil> <nil>"
        );
        assert_eq!(render("{{.Config.Network}}|{{len .Errors}}"), "|0");
        let err = Template::parse_named("inspect", "{{json .}}", Funcs::Builtins)
            .expect_err("no json function");
        assert_eq!(
            err.to_string(),
            "template: inspect:1: function \"json\" not defined"
        );
    }
}
