//! `brix history logs`: a build's progress replayed from the daemon, as
//! `docker buildx history logs` prints it. The daemon replays a finished build's steps, their
//! output and their errors from the record's logs blob when asked for the build's `Status`
//! (and streams a running build live).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use brix_driver::NodeGroup;
use brix_solver_client::ControlClient;
use brix_solver_client::progress::{LogStream, ProgressEvent, VertexTable, events_from_status};

use super::{connect, one_record};
use crate::progress::printer::{Printer, ProgressMode};

/// Arguments of `brix history logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The build: a ref from `brix history ls`, or `^N` for the N-th newest (the newest if
    /// omitted).
    #[arg(value_name = "REF")]
    build_ref: Option<String>,
    /// Set type of progress output (`plain`, `rawjson`, `tty`).
    #[arg(long, value_enum, default_value = "plain")]
    progress: ProgressMode,
}

/// Replays the record's progress on stderr, then the failed steps' last output.
pub(super) async fn run(ng: &NodeGroup, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let nodes = connect(ng, false).await?;
    let rec = one_record(&nodes, args.build_ref.as_deref().unwrap_or("")).await?;
    let mode = match args.progress {
        ProgressMode::Auto => ProgressMode::Plain,
        other => other,
    };
    let printer = Printer::new(mode, None, String::new());
    let mut vertices = VertexTable::new();
    let displayed = matches!(printer.mode(), ProgressMode::Plain | ProgressMode::Tty);
    replay(&rec.node.client, rec.build_ref(), |mut events| {
        if displayed {
            in_print_order(&mut events);
        }
        for ev in &events {
            if let ProgressEvent::Vertex(v) = ev {
                vertices.apply(v);
            }
        }
        printer.solve_events(0, None, events);
    })
    .await?;
    printer.finish();
    if displayed {
        // As BuildKit's progress UI ends: each failed step with its last output.
        for v in vertices.failed() {
            if let Some((name, logs)) = printer.step_report(0, &v.digest) {
                eprintln!("------");
                eprintln!(" > {name}:");
                for l in &logs {
                    eprintln!("{l}");
                }
                eprintln!("------");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts a batch's step records in the order the plain display prints them (steps by the
/// time they finished, unfinished ones last), keeping each step's own records in order, so
/// that steps are numbered in print order as BuildKit's printer numbers them: a replay
/// delivers a whole build in one batch, with a step's first record anywhere in it.
/// Statuses, logs and warnings stay after the steps.
fn in_print_order(events: &mut [ProgressEvent]) {
    let steps = events
        .iter()
        .take_while(|e| matches!(e, ProgressEvent::Vertex(_)))
        .count();
    // Per step: when its last record says it finished, and where it first appears.
    let mut order: HashMap<String, (Option<SystemTime>, usize)> = HashMap::new();
    for (i, e) in events[..steps].iter().enumerate() {
        if let ProgressEvent::Vertex(v) = e {
            order
                .entry(v.digest.clone())
                .and_modify(|o| o.0 = v.completed)
                .or_insert((v.completed, i));
        }
    }
    events[..steps].sort_by_key(|e| match e {
        ProgressEvent::Vertex(v) => {
            let (completed, first) = order.get(&v.digest).copied().unwrap_or((None, 0));
            (completed.is_none(), completed, first)
        }
        _ => (true, None, usize::MAX),
    });
}

/// Reads the `Status` stream of build `build_ref` to its end, handing each batch of events to
/// `each`.
pub(super) async fn replay(
    client: &ControlClient,
    build_ref: &str,
    mut each: impl FnMut(Vec<ProgressEvent>),
) -> anyhow::Result<()> {
    let mut stream = client
        .status(build_ref)
        .await
        .with_context(|| format!("reading the progress of build {build_ref}"))?;
    while let Some(response) = stream
        .message()
        .await
        .map_err(|s| brix_solver_client::ClientError::from_status(client.endpoint(), "Status", s))
        .with_context(|| format!("reading the progress of build {build_ref}"))?
    {
        each(events_from_status(response));
    }
    Ok(())
}

/// The name and the last `limit` output lines of step `digest` of build `build_ref`, lines
/// joined across chunks per stream as buildx's `loadVertexLogs` does.
pub(super) async fn step_logs(
    client: &ControlClient,
    build_ref: &str,
    digest: &str,
    limit: usize,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut name = String::new();
    let mut lines: Vec<String> = Vec::new();
    // Per stream: the line still open (its index in `lines`), if any.
    let mut open: std::collections::HashMap<i64, Option<usize>> = Default::default();
    replay(client, build_ref, |events| {
        for ev in events {
            match ev {
                ProgressEvent::Vertex(v) if v.digest == digest => name = v.name,
                ProgressEvent::Log(l) if l.vertex == digest => {
                    let stream = match l.stream {
                        LogStream::Stdout => 1,
                        LogStream::Stderr => 2,
                        LogStream::Other(n) => n,
                    };
                    let text = String::from_utf8_lossy(&l.data).into_owned();
                    let parts: Vec<&str> = text.split('\n').collect();
                    for (i, part) in parts.iter().enumerate() {
                        let mut wrote = false;
                        if i == 0
                            && let Some(Some(idx)) = open.get(&stream)
                        {
                            lines[*idx].push_str(part);
                            wrote = true;
                        }
                        if !wrote {
                            if !part.is_empty() {
                                lines.push((*part).to_owned());
                            }
                            open.insert(stream, lines.len().checked_sub(1));
                        }
                        if i == parts.len() - 1 && part.is_empty() {
                            open.insert(stream, None);
                        }
                    }
                }
                _ => {}
            }
        }
    })
    .await?;
    if lines.len() > limit {
        lines.drain(..lines.len() - limit);
    }
    Ok((name, lines))
}
