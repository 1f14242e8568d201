//! The build progress display: BuildKit's progress UI in its four shapes (`tty`, `plain`,
//! `rawjson`, `quiet`), fed by the typed events of any number of concurrent solves plus
//! client-side steps (booting a node, merging and pushing an index), all in one display.
//!
//! - plain: `#N name`, `#N <status> <cur> / <total> <secs>s done`, `#N <secs> <log line>`,
//!   `#N DONE 1.2s` / `#N CACHED` / `#N ERROR: …` / `#N CANCELED`, with `#N ...` when the output
//!   switches away from an unfinished step and a blank line between groups, as BuildKit's
//!   plain printer writes them.
//! - tty: a `[+] Building 3.2s (7/9)` block redrawn every 150 ms, one ` => name  1.2s` line per
//!   step, sub-steps as ` => => …`, and the last log lines of running steps as ` => => # …`.
//! - rawjson: one JSON status object per line on stderr.
//! - quiet: nothing.

use super::colors::paint;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use brix_driver::{BootstrapEvent, BootstrapSink};
use brix_solver_client::progress::{
    BuildWarning, LogStream, ProgressEvent, StatusUpdate, VertexState, VertexUpdate,
};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// A redrawn block on the terminal.
    Tty,
    /// `#N` lines, as BuildKit's plain printer.
    Plain,
    /// One JSON status per line.
    Rawjson,
    /// Nothing but the result.
    Quiet,
    /// Same as quiet (buildx's `none`).
    None,
}

impl ProgressMode {
    /// Resolves `auto` for the current stderr (and `BRIX_PROGRESS` / `BUILDKIT_PROGRESS`).
    pub fn resolve(self) -> ProgressMode {
        use std::io::IsTerminal;
        match self {
            ProgressMode::Auto => {
                let env = std::env::var("BRIX_PROGRESS")
                    .or_else(|_| std::env::var("BUILDKIT_PROGRESS"))
                    .unwrap_or_default();
                match env.as_str() {
                    "plain" => ProgressMode::Plain,
                    "tty" => ProgressMode::Tty,
                    "rawjson" => ProgressMode::Rawjson,
                    "quiet" | "none" => ProgressMode::Quiet,
                    _ if std::io::stderr().is_terminal() => ProgressMode::Tty,
                    _ => ProgressMode::Plain,
                }
            }
            ProgressMode::None => ProgressMode::Quiet,
            other => other,
        }
    }
}

/// Identifies a step: the node its solves ran on (or [`CLIENT`]), and the digest. A vertex
/// several solves on one node share (a daemon solves identical vertices of concurrent solves
/// once: the build context all of a bake's targets and platforms load) is one step, named
/// after the first solve that reported it, as buildx's display keys vertices by digest.
type Key = (usize, String);

/// Where client-side steps are kept.
const CLIENT: usize = usize::MAX;

/// Log lines kept per step for the tty display and error reports.
const LOG_TAIL: usize = 10;
/// Log lines shown under a running step on a terminal.
const TTY_LOG_LINES: usize = 6;

#[derive(Debug)]
struct StatusLine {
    update: StatusUpdate,
    dirty: bool,
    last_printed: Option<(i64, SystemTime)>,
}

#[derive(Debug)]
struct Vertex {
    index: usize,
    name: String,
    /// The solves that reported the vertex.
    solves: Vec<usize>,
    record: VertexUpdate,
    statuses: Vec<StatusLine>,
    /// Complete log lines not printed yet (plain), already formatted.
    pending_logs: Vec<String>,
    partial: Vec<u8>,
    /// The last log lines: (with their time, as in error reports; bare, for the tty).
    tail: VecDeque<(String, String)>,
    /// Plain: the name line has been printed since the last switch.
    printed_done: bool,
    /// The latest completion any solve reported: a vertex the daemon finished and re-opened
    /// (a local source's cache-key run before its transfer) is reported by every solve
    /// sharing it, and a lagging solve's earlier completion is old news.
    last_completed: Option<SystemTime>,
}

struct State {
    mode: ProgressMode,
    started: Instant,
    header: Option<String>,
    right_label: String,
    order: Vec<Key>,
    /// Vertices in the order they started (or finished, for ones never reported started):
    /// the order buildx's tty display lists them in.
    started_order: Vec<Key>,
    vertices: HashMap<Key, Vertex>,
    next_index: usize,
    current: Option<Key>,
    not_first: bool,
    drawn_lines: usize,
    warnings: Vec<(String, BuildWarning)>,
    /// Client-side notices kept for below the final tty block (plain shows them in place).
    notices: Vec<String>,
    client_counter: usize,
    finished: bool,
    /// The node each solve runs on, as the engine reported it (0 when it did not).
    solve_nodes: HashMap<usize, usize>,
}

/// The progress display of one command. Cheap to clone; clones share the display.
#[derive(Clone)]
pub struct Printer {
    state: Arc<Mutex<State>>,
}

impl Printer {
    /// A display in `mode` (already resolved). `header` is buildx's `#0 building with …`
    /// line (plain only, printed with the first step); `right_label` (e.g. `docker-container:mybuilder`) is shown at the
    /// right of the tty header.
    pub fn new(mode: ProgressMode, header: Option<String>, right_label: String) -> Self {
        Printer {
            state: Arc::new(Mutex::new(State {
                mode: mode.resolve(),
                started: Instant::now(),
                header,
                right_label,
                order: Vec::new(),
                started_order: Vec::new(),
                vertices: HashMap::new(),
                next_index: 1,
                current: None,
                not_first: false,
                drawn_lines: 0,
                warnings: Vec::new(),
                notices: Vec::new(),
                client_counter: 0,
                finished: false,
                solve_nodes: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic mid-draw elsewhere; keep drawing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resolved mode.
    pub fn mode(&self) -> ProgressMode {
        self.lock().mode
    }

    /// Applies one batch of events from solve number `solve`. `prefix` (a platform such as
    /// `linux/arm64`) is put into every step name, as buildx does for multi-platform builds.
    pub fn solve_events(&self, solve: usize, prefix: Option<&str>, events: Vec<ProgressEvent>) {
        let mut st = self.lock();
        if st.mode == ProgressMode::Rawjson {
            print_rawjson(&events, prefix);
        }
        let mut touched: Vec<Key> = Vec::new();
        for ev in events {
            let digest = match &ev {
                ProgressEvent::Vertex(v) => v.digest.clone(),
                ProgressEvent::Status(s) => s.vertex.clone(),
                ProgressEvent::Log(l) => l.vertex.clone(),
                ProgressEvent::Warning(w) => w.vertex.clone(),
            };
            let key = (st.node_of(solve), digest);
            if let Some(known) = st.vertices.get_mut(&key)
                && known.solves.first() != Some(&solve)
            {
                // Another solve's copy of a shared vertex: the same step. Its logs and
                // statuses repeat the first solve's, and its state may lag behind; only a
                // completion the first solve has not reported yet is news.
                if !known.solves.contains(&solve) {
                    known.solves.push(solve);
                }
                let news = match &ev {
                    ProgressEvent::Vertex(v) => {
                        v.completed.is_some()
                            && known.record.completed.is_none()
                            && v.completed > known.last_completed
                    }
                    ProgressEvent::Warning(_) => true,
                    ProgressEvent::Status(_) | ProgressEvent::Log(_) => false,
                };
                if !news {
                    continue;
                }
            }
            st.apply(key.clone(), ev, solve, prefix);
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        if st.mode == ProgressMode::Plain {
            st.print_plain(touched);
        }
    }

    /// Solve number `solve` runs on node number `node`.
    pub fn solve_node(&self, solve: usize, node: usize) {
        self.lock().solve_nodes.insert(solve, node);
    }

    /// Starts a client-side step shown like a BuildKit vertex.
    pub fn client_step(&self, name: impl Into<String>) -> ClientStep {
        let mut st = self.lock();
        st.client_counter += 1;
        let digest = format!("brix-client-{}", st.client_counter);
        let now = SystemTime::now();
        let record = VertexUpdate {
            digest: digest.clone(),
            inputs: Vec::new(),
            name: name.into(),
            started: Some(now),
            completed: None,
            cached: false,
            error: None,
            progress_group: None,
        };
        let key = (CLIENT, digest.clone());
        st.apply(key.clone(), ProgressEvent::Vertex(record), CLIENT, None);
        if st.mode == ProgressMode::Plain {
            st.print_plain(vec![key]);
        }
        drop(st);
        ClientStep {
            printer: self.clone(),
            digest,
        }
    }

    /// Spawns the tty redraw loop (every 150 ms); a no-op task in other modes.
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            if me.mode() != ProgressMode::Tty {
                return;
            }
            loop {
                {
                    let mut st = me.lock();
                    if st.finished {
                        return;
                    }
                    st.draw_tty(false);
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    }

    /// Marks every step still running as cancelled (the build was interrupted, or another
    /// platform's solve failed and this one was dropped), as BuildKit reports them.
    pub fn cancel_running(&self) {
        let mut st = self.lock();
        let now = SystemTime::now();
        let running: Vec<Key> = st
            .order
            .iter()
            .filter(|k| {
                st.vertices
                    .get(*k)
                    .is_some_and(|v| v.record.state() == VertexState::Running)
            })
            .cloned()
            .collect();
        for key in &running {
            if let Some(v) = st.vertices.get(key) {
                let mut record = v.record.clone();
                record.completed = Some(now);
                record.error = Some("context canceled".to_owned());
                st.apply(key.clone(), ProgressEvent::Vertex(record), CLIENT, None);
            }
        }
        if st.mode == ProgressMode::Plain && !running.is_empty() {
            st.print_plain(running);
        }
    }

    /// Draws the final state (tty), flushes partial log lines (plain) and prints the
    /// warnings summary.
    pub fn finish(&self) {
        let mut st = self.lock();
        if st.finished {
            return;
        }
        match st.mode {
            ProgressMode::Tty => {
                st.draw_tty(true);
                for n in std::mem::take(&mut st.notices) {
                    eprintln!("{n}");
                }
            }
            ProgressMode::Plain => {
                let keys: Vec<Key> = st.order.clone();
                let mut flush = Vec::new();
                for key in keys {
                    if let Some(v) = st.vertices.get_mut(&key)
                        && !v.partial.is_empty()
                    {
                        let line =
                            String::from_utf8_lossy(&std::mem::take(&mut v.partial)).into_owned();
                        v.push_log_line(line);
                        flush.push(key);
                    }
                }
                if !flush.is_empty() {
                    st.print_plain(flush);
                }
            }
            _ => {}
        }
        st.finished = true;
        if st.mode != ProgressMode::Quiet && st.mode != ProgressMode::Rawjson {
            let warnings = std::mem::take(&mut st.warnings);
            // The same warning from several platforms' solves is shown once.
            let mut shown: Vec<&BuildWarning> = Vec::new();
            for (_, w) in &warnings {
                if !shown
                    .iter()
                    .any(|s| s.short.trim_end() == w.short.trim_end())
                {
                    shown.push(w);
                }
            }
            if !shown.is_empty() {
                // As buildx: -D expands each warning (details, link, Dockerfile lines), and
                // the heading is yellow whatever the output.
                let expand = tracing::enabled!(tracing::Level::DEBUG);
                let mut heading = format!(
                    "{} warning{} found",
                    shown.len(),
                    if shown.len() == 1 { "" } else { "s" }
                );
                if !expand {
                    heading.push_str(" (use docker --debug to expand)");
                }
                eprint!("\n \x1b[33m{heading}:\n\x1b[0m");
                for w in shown {
                    eprintln!(" - {}", w.short.trim_end());
                    if !expand {
                        continue;
                    }
                    for d in &w.detail {
                        eprintln!("{d}");
                    }
                    if !w.url.is_empty() {
                        eprintln!("More info: {}", w.url);
                    }
                    if let Some(loc) = &w.location
                        && !w.ranges.is_empty()
                    {
                        let lines: Vec<(i32, i32)> =
                            w.ranges.iter().map(|r| (r.start.0, r.end.0)).collect();
                        eprint!(
                            "{}",
                            super::source::print_source(&loc.filename, &loc.data, &lines)
                        );
                    }
                    eprintln!();
                }
            }
        }
    }

    /// The last log lines of the step with `digest` in solve `solve` (for error reports),
    /// with its display name.
    pub fn step_report(&self, solve: usize, digest: &str) -> Option<(String, Vec<String>)> {
        let st = self.lock();
        let v = st
            .vertices
            .get(&(st.node_of(solve), digest.to_owned()))
            .filter(|v| v.solves.contains(&solve))?;
        Some((
            v.name.clone(),
            v.tail.iter().map(|(t, _)| t.clone()).collect(),
        ))
    }

    /// The first failed step of solve `solve`: its digest.
    pub fn failed_step(&self, solve: usize) -> Option<String> {
        let st = self.lock();
        st.order
            .iter()
            .filter_map(|k| st.vertices.get(k))
            .filter(|v| v.solves.contains(&solve))
            .find(|v| v.record.state() == VertexState::Failed)
            .map(|v| v.record.digest.clone())
    }
}

impl State {
    fn node_of(&self, solve: usize) -> usize {
        self.solve_nodes.get(&solve).copied().unwrap_or(0)
    }

    fn apply(&mut self, key: Key, ev: ProgressEvent, solve: usize, prefix: Option<&str>) {
        if let ProgressEvent::Vertex(update) = &ev {
            match self.vertices.get_mut(&key) {
                Some(v) => {
                    let started = match (v.record.started, update.started) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    // The daemon re-opens a finished vertex when it has more to do under it
                    // (the image exporter's push after "exporting manifest list"): its new
                    // statuses are shown, and DONE again at the end, as BuildKit's printer.
                    if update.completed.is_none() && v.record.completed.is_some() {
                        v.printed_done = false;
                    }
                    v.record = update.clone();
                    v.record.started = started;
                    v.last_completed = v.last_completed.max(update.completed);
                    if v.solves.first() == Some(&solve) {
                        v.name = step_name(&update.name, prefix);
                    }
                }
                None => {
                    let index = self.next_index;
                    self.next_index += 1;
                    self.order.push(key.clone());
                    self.vertices.insert(
                        key.clone(),
                        Vertex {
                            index,
                            name: step_name(&update.name, prefix),
                            solves: vec![solve],
                            record: update.clone(),
                            statuses: Vec::new(),
                            pending_logs: Vec::new(),
                            partial: Vec::new(),
                            tail: VecDeque::new(),
                            printed_done: false,
                            last_completed: update.completed,
                        },
                    );
                }
            }
            if let Some(v) = self.vertices.get(&key)
                && (v.record.started.is_some() || v.record.completed.is_some())
                && !self.started_order.contains(&key)
            {
                self.started_order.push(key.clone());
            }
            if let Some(v) = self.vertices.get_mut(&key)
                && v.record.completed.is_some()
                && !v.partial.is_empty()
            {
                let line = String::from_utf8_lossy(&std::mem::take(&mut v.partial)).into_owned();
                v.push_log_line(line);
            }
            return;
        }
        // Statuses and logs for a vertex not seen yet are dropped, as BuildKit's UI does.
        let Some(v) = self.vertices.get_mut(&key) else {
            if let ProgressEvent::Warning(w) = ev {
                self.warnings.push((String::new(), w));
            }
            return;
        };
        match ev {
            ProgressEvent::Status(s) => match v.statuses.iter_mut().find(|x| x.update.id == s.id) {
                Some(line) => {
                    line.update = s;
                    line.dirty = true;
                }
                None => v.statuses.push(StatusLine {
                    update: s,
                    dirty: true,
                    last_printed: None,
                }),
            },
            ProgressEvent::Log(l) => {
                let start = v.record.started;
                v.partial.extend_from_slice(&l.data);
                while let Some(pos) = v.partial.iter().position(|b| *b == b'\n') {
                    let rest = v.partial.split_off(pos + 1);
                    let mut line = std::mem::replace(&mut v.partial, rest);
                    line.pop();
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let secs = match (l.timestamp, start) {
                        (Some(t), Some(s)) => t.duration_since(s).unwrap_or_default().as_secs_f64(),
                        _ => 0.0,
                    };
                    let prec = if secs < 10.0 {
                        3
                    } else if secs < 100.0 {
                        2
                    } else {
                        1
                    };
                    let timed = format!("{secs:.prec$} {text}");
                    v.pending_logs.push(timed.clone());
                    v.tail.push_back((timed, text));
                    if v.tail.len() > LOG_TAIL {
                        v.tail.pop_front();
                    }
                }
            }
            ProgressEvent::Warning(w) => {
                let name = v.name.clone();
                self.warnings.push((name, w));
            }
            ProgressEvent::Vertex(_) => {}
        }
    }

    /// BuildKit's plain printer for the vertices touched by one batch: completed ones first
    /// (by completion time), then the others.
    fn print_plain(&mut self, touched: Vec<Key>) {
        // As buildx: the header comes with the first step, so a build refused before any
        // step (an exporter the driver lacks, a missing secret) prints only its error.
        if let Some(h) = self.header.take() {
            eprintln!("#0 {h}");
            self.not_first = true;
        }
        let (mut completed, rest): (Vec<Key>, Vec<Key>) = touched.into_iter().partition(|k| {
            self.vertices
                .get(k)
                .is_some_and(|v| v.record.completed.is_some())
        });
        completed.sort_by_key(|k| self.vertices.get(k).and_then(|v| v.record.completed));
        let mut out = String::new();
        for key in completed {
            self.print_vertex(&key, &mut out);
        }
        // Like BuildKit's printer, one unfinished step is shown at a time: the current one
        // if it has news, else the first with news; the others' lines wait until they get
        // the turn or complete.
        let current_open = self.current.as_ref().is_some_and(|c| {
            self.vertices
                .get(c)
                .is_some_and(|v| v.record.completed.is_none())
        });
        let pick = if current_open {
            rest.iter()
                .find(|k| Some(*k) == self.current.as_ref())
                .cloned()
        } else {
            rest.first().cloned()
        };
        if let Some(key) = pick {
            self.print_vertex(&key, &mut out);
        }
        if !out.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(out.as_bytes());
            let _ = err.flush();
        }
    }

    fn print_vertex(&mut self, key: &Key, out: &mut String) {
        use std::fmt::Write as _;
        let Some(v) = self.vertices.get(key) else {
            return;
        };
        if v.printed_done {
            return;
        }
        let has_news = v.statuses.iter().any(|s| s.dirty)
            || !v.pending_logs.is_empty()
            || v.record.completed.is_some()
            || v.record.started.is_some();
        if !has_news {
            return;
        }
        if self.current.as_ref() != Some(key) {
            if let Some(cur) = self.current.take()
                && let Some(old) = self.vertices.get(&cur)
                && old.record.completed.is_none()
            {
                let _ = writeln!(out, "#{} ...", old.index);
            }
            if self.not_first {
                out.push('\n');
            }
            self.not_first = true;
            let _ = writeln!(out, "#{} {}", v.index, v.name);
        }
        let Some(v) = self.vertices.get_mut(key) else {
            return;
        };
        let index = v.index;
        for s in v.statuses.iter_mut().filter(|s| s.dirty) {
            s.dirty = false;
            let u = &s.update;
            let now = u.timestamp.unwrap_or_else(SystemTime::now);
            if let Some((cur, at)) = s.last_printed
                && u.completed.is_none()
            {
                let delta = if u.total > 0 {
                    (u.current - cur) as f64 / u.total as f64
                } else {
                    0.0
                };
                if delta < 0.05
                    && now.duration_since(at).unwrap_or_default() < Duration::from_secs(5)
                {
                    continue;
                }
            }
            s.last_printed = Some((u.current, now));
            let _ = writeln!(out, "#{index} {}", status_text(u));
        }
        for line in v.pending_logs.drain(..) {
            let _ = writeln!(out, "#{index} {line}");
        }
        self.current = Some(key.clone());
        if v.record.completed.is_some() {
            self.current = None;
            v.printed_done = true;
            match v.record.state() {
                VertexState::Canceled => {
                    let _ = writeln!(out, "#{index} CANCELED");
                }
                VertexState::Failed => {
                    let _ = writeln!(
                        out,
                        "#{index} ERROR: {}",
                        v.record.error.as_deref().unwrap_or_default()
                    );
                }
                VertexState::Cached => {
                    let _ = writeln!(out, "#{index} CACHED");
                }
                _ => {
                    let tm = match (v.record.started, v.record.completed) {
                        (Some(s), Some(c)) => format!(
                            " {:.1}s",
                            c.duration_since(s).unwrap_or_default().as_secs_f64()
                        ),
                        _ => String::new(),
                    };
                    let _ = writeln!(out, "#{index} DONE{tm}");
                }
            }
        }
    }

    fn draw_tty(&mut self, last: bool) {
        let width = terminal_width();
        let now = SystemTime::now();
        let total = self.order.len();
        let done = self
            .order
            .iter()
            .filter_map(|k| self.vertices.get(k))
            .filter(|v| v.record.completed.is_some())
            .count();
        let all_done = last || (total > 0 && done == total);
        let elapsed = self.started.elapsed().as_secs_f64();
        let head = format!(
            "[+] Building {elapsed:.1}s ({done}/{total}){}",
            if all_done { " FINISHED" } else { "" }
        );
        let header = fit(&head, &self.right_label, width);
        // Each step with its status and log lines; whether it is done.
        let mut groups: Vec<(bool, Vec<String>)> = Vec::new();
        for key in &self.started_order {
            let Some(v) = self.vertices.get(key) else {
                continue;
            };
            let mut lines = Vec::new();
            let state = v.record.state();
            let prefix = match state {
                VertexState::Cached => "CACHED ",
                VertexState::Failed => "ERROR ",
                VertexState::Canceled => "CANCELED ",
                _ => "",
            };
            let dur = match v.record.started {
                Some(s) => v
                    .record
                    .completed
                    .unwrap_or(now)
                    .duration_since(s)
                    .unwrap_or_default()
                    .as_secs_f64(),
                None if v.record.completed.is_some() => 0.0,
                None => 0.0,
            };
            let timer = if v.record.started.is_some() || v.record.completed.is_some() {
                format!("{dur:.1}s")
            } else {
                String::new()
            };
            let colors = super::colors::TermColors::get();
            // As BuildKit's display: finished lines in colour, by how they ended.
            let step_color = match state {
                VertexState::Failed => colors.error.as_deref(),
                VertexState::Canceled => colors.cancel.as_deref(),
                _ if v.record.completed.is_some() => colors.run.as_deref(),
                _ => None,
            };
            lines.push(paint(
                fit(&format!(" => {prefix}{}", v.name), &timer, width),
                step_color,
            ));
            for s in &v.statuses {
                let u = &s.update;
                let d = match u.started {
                    Some(st) => u
                        .completed
                        .or(u.timestamp)
                        .unwrap_or(now)
                        .duration_since(st)
                        .unwrap_or_default()
                        .as_secs_f64(),
                    None => 0.0,
                };
                let done = u.completed.is_some() || v.record.completed.is_some();
                lines.push(paint(
                    fit(
                        &format!(" => => {}", status_body(u)),
                        &format!("{d:.1}s"),
                        width,
                    ),
                    if done {
                        step_color.or(colors.run.as_deref())
                    } else {
                        None
                    },
                ));
            }
            let show_logs = matches!(state, VertexState::Running | VertexState::Failed);
            if show_logs {
                let skip = v.tail.len().saturating_sub(TTY_LOG_LINES);
                for (_, l) in v.tail.iter().skip(skip) {
                    lines.push(paint(
                        fit(&format!(" => => # {l}"), "", width),
                        Some(super::colors::FAINT),
                    ));
                }
            }
            groups.push((v.record.completed.is_some(), lines));
        }
        // Cursor-up cannot reach above the screen: while redrawing, keep to its height, the
        // header always shown; the final frame shows everything.
        let room = terminal_height().saturating_sub(2).max(4);
        let lines = if last {
            std::iter::once(header)
                .chain(groups.into_iter().flat_map(|(_, l)| l))
                .collect()
        } else {
            fit_frame(header, groups, room)
        };
        let mut err = std::io::stderr().lock();
        let mut buf = String::new();
        if self.drawn_lines > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn_lines));
        }
        for l in &lines {
            buf.push('\r');
            buf.push_str(l);
            buf.push_str("\x1b[K\n");
        }
        // Nothing of an earlier, taller frame stays below this one.
        buf.push_str("\x1b[J");
        let _ = err.write_all(buf.as_bytes());
        let _ = err.flush();
        self.drawn_lines = lines.len();
    }
}

impl Vertex {
    fn push_log_line(&mut self, text: String) {
        let secs = match (self.record.started, self.record.completed) {
            (Some(s), Some(c)) => c.duration_since(s).unwrap_or_default().as_secs_f64(),
            _ => 0.0,
        };
        let timed = format!("{secs:.3} {text}");
        self.pending_logs.push(timed.clone());
        self.tail.push_back((timed, text));
        if self.tail.len() > LOG_TAIL {
            self.tail.pop_front();
        }
    }
}

/// A solve's vertex name with the solve's prefix (`linux/arm64`, `app linux/arm64`, `app`)
/// put in as buildx's display shows it. The steps BuildKit's frontend runs once for all
/// platforms of a build (loading the Dockerfile, `.dockerignore`, the build context and named
/// contexts) get no platform: brix solves each platform separately, and these steps are one
/// shared vertex of those solves, named as buildx's one multi-platform solve names them.
fn step_name(name: &str, prefix: Option<&str>) -> String {
    let Some(prefix) = prefix else {
        return name.to_owned();
    };
    if !for_all_platforms(name) {
        return prefixed(name, Some(prefix));
    }
    let without_platform: Vec<&str> = prefix.split(' ').filter(|p| !p.contains('/')).collect();
    if without_platform.is_empty() {
        name.to_owned()
    } else {
        prefixed(name, Some(&without_platform.join(" ")))
    }
}

/// Whether the frontend's step `name` is one it runs once for every platform.
fn for_all_platforms(name: &str) -> bool {
    (name.starts_with("[internal] load ") && !name.starts_with("[internal] load metadata"))
        || name.starts_with("[context ")
}

/// `[2/3] RUN x` → `[linux/arm64 2/3] RUN x`; names without a bracket get `[linux/arm64] `.
fn prefixed(name: &str, prefix: Option<&str>) -> String {
    match prefix {
        None => name.to_owned(),
        Some(p) => match name.strip_prefix('[') {
            Some(rest) => format!("[{p} {rest}"),
            None => format!("[{p}] {name}"),
        },
    }
}

/// `<id> <cur> / <total> <secs>s done`, as the plain printer writes a status.
fn status_text(u: &StatusUpdate) -> String {
    let mut s = u.id.clone();
    if u.total != 0 {
        s.push_str(&format!(" {} / {}", bytes(u.current), bytes(u.total)));
    } else if u.current != 0 {
        s.push_str(&format!(" {}", bytes(u.current)));
    }
    let end = u.completed.or(u.timestamp);
    // BuildKit's printer leaves the timer out of sub-tasks that took 10 ms or less.
    if let (Some(st), Some(end)) = (u.started, end) {
        let secs = end.duration_since(st).unwrap_or_default().as_secs_f64();
        if secs > 0.01 {
            s.push_str(&format!(" {secs:.1}s"));
        }
    }
    if u.completed.is_some() {
        s.push_str(" done");
    }
    s
}

/// The status text without its timer (tty shows the timer on the right).
fn status_body(u: &StatusUpdate) -> String {
    let mut s = u.id.clone();
    if u.total != 0 {
        s.push_str(&format!(" {} / {}", bytes(u.current), bytes(u.total)));
    } else if u.current != 0 {
        s.push_str(&format!(" {}", bytes(u.current)));
    }
    s
}

/// Decimal byte units as BuildKit prints them: `132B`, `1.03MB`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n.abs() < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut i = 0;
    while v.abs() >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.2}{}", UNITS[i])
}

/// The header, then as many steps as fit in `room` lines: steps that are done go first
/// (oldest first), so running ones stay visible, as buildx's display wraps; when running
/// steps alone do not fit, their oldest lines go.
fn fit_frame(header: String, mut groups: Vec<(bool, Vec<String>)>, room: usize) -> Vec<String> {
    let mut count: usize = groups.iter().map(|(_, l)| l.len()).sum();
    let mut i = 0;
    while count > room && i < groups.len() {
        if groups[i].0 {
            count -= groups.remove(i).1.len();
        } else {
            i += 1;
        }
    }
    let mut body: Vec<String> = groups.into_iter().flat_map(|(_, l)| l).collect();
    if body.len() > room {
        body.drain(..body.len() - room);
    }
    std::iter::once(header).chain(body).collect()
}

/// The terminal's size as stderr's terminal reports it (`COLUMNS`/`LINES` when it does
/// not), as buildx's console does.
fn terminal_size() -> (usize, usize) {
    let reported = rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .filter(|ws| ws.ws_col > 0 && ws.ws_row > 0)
        .map(|ws| (usize::from(ws.ws_col), usize::from(ws.ws_row)));
    reported.unwrap_or_else(|| {
        let env = |name: &str, fallback: usize| {
            std::env::var(name)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(fallback)
        };
        (env("COLUMNS", 80), env("LINES", 24))
    })
}

fn terminal_width() -> usize {
    terminal_size().0.max(20)
}

fn terminal_height() -> usize {
    terminal_size().1.max(5)
}

fn fit(left: &str, right: &str, w: usize) -> String {
    let room = w.saturating_sub(right.chars().count() + 1);
    let left: String = if left.chars().count() > room {
        left.chars().take(room).collect()
    } else {
        left.to_string()
    };
    let pad = w.saturating_sub(left.chars().count() + right.chars().count());
    format!("{left}{}{right}", " ".repeat(pad))
}

fn rfc3339(t: Option<SystemTime>) -> serde_json::Value {
    match t {
        Some(t) => serde_json::Value::String(brix_driver::timefmt::rfc3339_nano(t)),
        None => serde_json::Value::Null,
    }
}

/// One line of `rawjson`: the batch in the shape of BuildKit's `client.SolveStatus`, step
/// names carrying the solve's `prefix` as in the other modes (buildx names its vertexes
/// before any printer sees them: `[TARGET linux/amd64 2/2] COPY …` in bake).
fn print_rawjson(events: &[ProgressEvent], prefix: Option<&str>) {
    eprintln!("{}", rawjson_line(events, prefix));
}

fn rawjson_line(events: &[ProgressEvent], prefix: Option<&str>) -> serde_json::Value {
    use base64::Engine;
    use serde_json::json;
    let mut vertexes = Vec::new();
    let mut statuses = Vec::new();
    let mut logs = Vec::new();
    let mut warnings = Vec::new();
    for ev in events {
        match ev {
            ProgressEvent::Vertex(v) => {
                let mut o = json!({"digest": v.digest, "name": step_name(&v.name, prefix)});
                if !v.inputs.is_empty() {
                    o["inputs"] = json!(v.inputs);
                }
                if v.started.is_some() {
                    o["started"] = rfc3339(v.started);
                }
                if v.completed.is_some() {
                    o["completed"] = rfc3339(v.completed);
                }
                if v.cached {
                    o["cached"] = json!(true);
                }
                if let Some(e) = &v.error {
                    o["error"] = json!(e);
                }
                vertexes.push(o);
            }
            ProgressEvent::Status(s) => {
                let mut o =
                    json!({"id": s.id, "vertex": s.vertex, "timestamp": rfc3339(s.timestamp)});
                if !s.name.is_empty() {
                    o["name"] = json!(s.name);
                }
                if s.current != 0 {
                    o["current"] = json!(s.current);
                }
                if s.total != 0 {
                    o["total"] = json!(s.total);
                }
                if s.started.is_some() {
                    o["started"] = rfc3339(s.started);
                }
                if s.completed.is_some() {
                    o["completed"] = rfc3339(s.completed);
                }
                statuses.push(o);
            }
            ProgressEvent::Log(l) => {
                let stream = match l.stream {
                    LogStream::Stdout => 1,
                    LogStream::Stderr => 2,
                    LogStream::Other(n) => n,
                };
                logs.push(json!({
                    "vertex": l.vertex,
                    "stream": stream,
                    "data": base64::engine::general_purpose::STANDARD.encode(&l.data),
                    "timestamp": rfc3339(l.timestamp),
                }));
            }
            ProgressEvent::Warning(w) => {
                warnings.push(json!({
                    "vertex": w.vertex,
                    "level": w.level,
                    "short": base64::engine::general_purpose::STANDARD.encode(w.short.as_bytes()),
                    "url": w.url,
                }));
            }
        }
    }
    let mut o = serde_json::Map::new();
    if !vertexes.is_empty() {
        o.insert("vertexes".into(), json!(vertexes));
    }
    if !statuses.is_empty() {
        o.insert("statuses".into(), json!(statuses));
    }
    if !logs.is_empty() {
        o.insert("logs".into(), json!(logs));
    }
    if !warnings.is_empty() {
        o.insert("warnings".into(), json!(warnings));
    }
    serde_json::Value::Object(o)
}

/// A client-side step in the display; also a [`BootstrapSink`], so booting a node shows as
/// `[internal] booting buildkit` with its sub-steps.
pub struct ClientStep {
    printer: Printer,
    digest: String,
}

impl ClientStep {
    fn update(&self, f: impl FnOnce(&mut State, &Key)) {
        let mut st = self.printer.lock();
        let key = (CLIENT, self.digest.clone());
        f(&mut st, &key);
        if st.mode == ProgressMode::Plain {
            st.print_plain(vec![key]);
        }
    }

    /// Shows a sub-step (`pushing manifest for …`); `done` marks it finished.
    pub fn status(&self, id: &str, done: bool) {
        let now = SystemTime::now();
        self.update(|st, key| {
            let started = st
                .vertices
                .get(key)
                .and_then(|v| v.statuses.iter().find(|s| s.update.id == id))
                .and_then(|s| s.update.started)
                .unwrap_or(now);
            st.apply(
                key.clone(),
                ProgressEvent::Status(StatusUpdate {
                    vertex: key.1.clone(),
                    id: id.to_owned(),
                    name: String::new(),
                    current: 0,
                    total: 0,
                    timestamp: Some(now),
                    started: Some(started),
                    completed: done.then_some(now),
                }),
                CLIENT,
                None,
            );
        });
    }

    /// Adds a log line under the step.
    pub fn log(&self, line: &str) {
        let mut data = line.as_bytes().to_vec();
        data.push(b'\n');
        self.update(|st, key| {
            st.apply(
                key.clone(),
                ProgressEvent::Log(brix_solver_client::progress::LogChunk {
                    vertex: key.1.clone(),
                    stream: LogStream::Stdout,
                    data,
                    timestamp: Some(SystemTime::now()),
                }),
                CLIENT,
                None,
            );
        });
    }

    /// Ends the step, failed when `error` is given.
    pub fn done(&self, error: Option<String>) {
        self.update(|st, key| {
            if let Some(v) = st.vertices.get(key) {
                let mut record = v.record.clone();
                record.completed = Some(SystemTime::now());
                record.error = error;
                st.apply(key.clone(), ProgressEvent::Vertex(record), CLIENT, None);
            }
        });
    }
}

impl BootstrapSink for ClientStep {
    fn event(&self, ev: BootstrapEvent) {
        match ev {
            BootstrapEvent::StepStarted { step } => self.status(&step, false),
            BootstrapEvent::StepFinished { step, error } => {
                self.status(&step, true);
                if let Some(e) = error {
                    self.log(&format!("{step}: {e}"));
                }
            }
            BootstrapEvent::Notice { message } => {
                let mut st = self.printer.lock();
                if st.mode == ProgressMode::Tty {
                    // Shown in full below the final block: a log line under the step would
                    // be cut to the width and gone once the step is done.
                    st.notices.push(message);
                } else {
                    drop(st);
                    self.log(&message);
                }
            }
            BootstrapEvent::Log { line } => self.log(&line),
        }
    }
}

/// The build engine reports to the display: solves' events, client steps and warnings.
impl brix_build::ProgressSink for Printer {
    fn solve_events(&self, solve: usize, prefix: Option<&str>, events: Vec<ProgressEvent>) {
        Printer::solve_events(self, solve, prefix, events);
    }

    fn solve_node(&self, solve: usize, node: usize) {
        Printer::solve_node(self, solve, node);
    }

    fn client_step(&self, name: &str) -> Box<dyn brix_build::StepProgress> {
        Box::new(Printer::client_step(self, name))
    }

    fn warning(&self, message: &str) {
        // As buildx prints them, in place (not in the warnings summary).
        eprintln!("WARNING: {message}");
    }
}

impl brix_build::StepProgress for ClientStep {
    fn status(&self, id: &str, done: bool) {
        ClientStep::status(self, id, done);
    }

    fn log(&self, line: &str) {
        ClientStep::log(self, line);
    }

    fn done(&self, error: Option<String>) {
        ClientStep::done(self, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rawjson_vertex_names_carry_the_solves_prefix_as_buildx_writes_them() {
        let vertex = |name: &str| {
            ProgressEvent::Vertex(VertexUpdate {
                digest: "sha256:v".into(),
                inputs: Vec::new(),
                name: name.into(),
                started: None,
                completed: None,
                cached: false,
                error: None,
                progress_group: None,
            })
        };
        let line = rawjson_line(
            &[
                vertex("[2/2] COPY . /src"),
                vertex("[internal] load build context"),
            ],
            Some("part-1 linux/amd64"),
        );
        assert_eq!(
            line["vertexes"][0]["name"],
            "[part-1 linux/amd64 2/2] COPY . /src"
        );
        assert_eq!(
            line["vertexes"][1]["name"],
            "[part-1 internal] load build context"
        );
        let plain = rawjson_line(&[vertex("[2/2] COPY . /src")], None);
        assert_eq!(plain["vertexes"][0]["name"], "[2/2] COPY . /src");
    }

    #[test]
    fn names_get_the_platform_prefix() {
        assert_eq!(
            prefixed("[2/3] RUN uname -m", Some("linux/arm64")),
            "[linux/arm64 2/3] RUN uname -m"
        );
        assert_eq!(
            prefixed("[internal] load metadata", Some("linux/amd64")),
            "[linux/amd64 internal] load metadata"
        );
        assert_eq!(
            prefixed("exporting to image", Some("linux/amd64")),
            "[linux/amd64] exporting to image"
        );
        assert_eq!(prefixed("exporting to image", None), "exporting to image");
    }

    #[test]
    fn steps_run_once_for_all_platforms_get_no_platform() {
        let name = "[internal] load build context";
        assert_eq!(step_name(name, Some("linux/arm64")), name);
        assert_eq!(
            step_name(name, Some("app linux/arm64")),
            "[app internal] load build context"
        );
        assert_eq!(
            step_name("[context base] load from client", Some("app linux/amd64")),
            "[app context base] load from client"
        );
        assert_eq!(
            step_name(
                "[internal] load metadata for r/busybox",
                Some("app linux/amd64")
            ),
            "[app linux/amd64 internal] load metadata for r/busybox"
        );
        assert_eq!(
            step_name("[1/2] FROM r/busybox", Some("app linux/amd64")),
            "[app linux/amd64 1/2] FROM r/busybox"
        );
        assert_eq!(step_name(name, None), name);
    }

    #[test]
    fn a_shared_vertex_reopened_by_the_daemon_stays_open_until_its_last_completion() {
        let printer = Printer::new(ProgressMode::Quiet, None, String::new());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let vertex = |started: Option<SystemTime>, completed: Option<SystemTime>| {
            ProgressEvent::Vertex(VertexUpdate {
                digest: "sha256:ctx".into(),
                inputs: Vec::new(),
                name: "[internal] load build context".into(),
                started,
                completed,
                cached: false,
                error: None,
                progress_group: None,
            })
        };
        let key = (0, "sha256:ctx".to_owned());
        // Each solve sees the cache-key run finish, then the transfer open the vertex again.
        printer.solve_events(
            1,
            Some("a"),
            vec![vertex(at(0), at(1)), vertex(at(2), None)],
        );
        printer.solve_events(
            2,
            Some("b"),
            vec![vertex(at(0), at(1)), vertex(at(2), None)],
        );
        assert_eq!(
            printer.lock().vertices[&key].record.completed,
            None,
            "the second solve's report of the first run is old news"
        );
        // A solve that reports the end before the first one does is news.
        printer.solve_events(2, Some("b"), vec![vertex(at(2), at(1900))]);
        assert_eq!(printer.lock().vertices[&key].record.completed, at(1900));
        printer.solve_events(1, Some("a"), vec![vertex(at(2), at(1900))]);
        let st = printer.lock();
        let v = &st.vertices[&key];
        assert_eq!(v.record.completed, at(1900));
        assert_eq!(v.record.started, at(0));
        assert_eq!(v.name, "[a internal] load build context");
    }

    #[test]
    fn a_vertex_several_solves_share_is_one_step_named_by_the_first() {
        let printer = Printer::new(ProgressMode::Quiet, None, String::new());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let vertex = |completed: Option<SystemTime>| {
            ProgressEvent::Vertex(VertexUpdate {
                digest: "sha256:ctx".into(),
                inputs: Vec::new(),
                name: "[1/2] FROM r/busybox".into(),
                started: Some(t0),
                completed,
                cached: false,
                error: None,
                progress_group: None,
            })
        };
        let log = || {
            ProgressEvent::Log(brix_solver_client::progress::LogChunk {
                vertex: "sha256:ctx".into(),
                stream: LogStream::Stdout,
                data: b"line\n".to_vec(),
                timestamp: Some(t0),
            })
        };
        printer.solve_events(3, Some("a linux/amd64"), vec![vertex(None), log()]);
        printer.solve_events(5, Some("b linux/amd64"), vec![vertex(None), log()]);
        let done = Some(t0 + Duration::from_secs(1));
        printer.solve_events(5, Some("b linux/amd64"), vec![vertex(done)]);
        let st = printer.lock();
        assert_eq!(st.vertices.len(), 1);
        let v = &st.vertices[&(0, "sha256:ctx".to_owned())];
        assert_eq!(v.name, "[a linux/amd64 1/2] FROM r/busybox");
        assert_eq!(v.solves, [3, 5]);
        assert_eq!(
            v.tail.len(),
            1,
            "the second solve's copy of the log is not shown"
        );
        assert_eq!(
            v.record.completed, done,
            "a completion from either solve counts"
        );
        drop(st);
        assert_eq!(
            printer.step_report(5, "sha256:ctx").map(|(n, _)| n),
            Some("[a linux/amd64 1/2] FROM r/busybox".to_owned())
        );
        assert_eq!(printer.step_report(4, "sha256:ctx"), None);

        // On another node the same vertex is another daemon's work: its own step.
        printer.solve_node(7, 1);
        printer.solve_events(7, Some("c linux/amd64"), vec![vertex(None)]);
        assert_eq!(printer.lock().vertices.len(), 2);
    }

    #[test]
    fn tty_keeps_boot_notices_for_below_the_block() {
        let printer = Printer::new(ProgressMode::Tty, None, String::new());
        let step = printer.client_step("[internal] booting buildkit");
        step.event(BootstrapEvent::Notice {
            message: "recreated with a capability set".into(),
        });
        let st = printer.lock();
        assert_eq!(
            st.notices,
            vec!["recreated with a capability set".to_owned()]
        );
        let v = st.vertices.get(&(CLIENT, step.digest.clone()));
        assert!(v.is_some_and(|v| v.tail.is_empty()), "not also a log line");
    }

    #[test]
    fn plain_shows_boot_notices_as_log_lines() {
        let printer = Printer::new(ProgressMode::Quiet, None, String::new());
        let step = printer.client_step("[internal] booting buildkit");
        step.event(BootstrapEvent::Notice {
            message: "recreated with a capability set".into(),
        });
        let st = printer.lock();
        assert!(st.notices.is_empty());
        let v = st.vertices.get(&(CLIENT, step.digest.clone()));
        assert!(v.is_some_and(|v| {
            v.tail
                .iter()
                .any(|(_, l)| l == "recreated with a capability set")
        }));
    }

    #[test]
    fn steps_are_listed_in_the_order_they_started() {
        use brix_solver_client::progress::VertexUpdate;
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let vertex = |digest: &str, name: &str, started: Option<SystemTime>| {
            ProgressEvent::Vertex(VertexUpdate {
                digest: digest.into(),
                inputs: Vec::new(),
                name: name.into(),
                started,
                completed: None,
                cached: false,
                error: None,
                progress_group: None,
            })
        };
        let printer = Printer::new(ProgressMode::Quiet, None, String::new());
        let mut st = printer.lock();
        // BuildKit announces a solve's steps last first, before any has started.
        for (d, n) in [
            ("c", "[3/3] RUN c"),
            ("b", "[2/3] RUN b"),
            ("a", "[1/3] FROM a"),
        ] {
            st.apply((0, d.into()), vertex(d, n, None), 0, None);
        }
        assert!(st.started_order.is_empty(), "nothing started yet");
        for (i, (d, n)) in [
            ("a", "[1/3] FROM a"),
            ("b", "[2/3] RUN b"),
            ("c", "[3/3] RUN c"),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0 + Duration::from_secs(i as u64);
            st.apply((0, d.into()), vertex(d, n, Some(at)), 0, None);
        }
        let names: Vec<&str> = st
            .started_order
            .iter()
            .map(|k| st.vertices[k].name.as_str())
            .collect();
        assert_eq!(names, ["[1/3] FROM a", "[2/3] RUN b", "[3/3] RUN c"]);
    }

    #[test]
    fn a_frame_taller_than_the_terminal_keeps_the_header_and_running_steps() {
        let group = |done: bool, name: &str, n: usize| {
            (
                done,
                (0..n).map(|i| format!("{name}{i}")).collect::<Vec<_>>(),
            )
        };
        let frame = fit_frame(
            "HEADER".into(),
            vec![
                group(true, "old", 3),
                group(false, "run", 2),
                group(true, "new", 2),
            ],
            4,
        );
        assert_eq!(frame, ["HEADER", "run0", "run1", "new0", "new1"]);
        // Running steps alone too tall: their oldest lines go, never the header.
        let frame = fit_frame("HEADER".into(), vec![group(false, "run", 6)], 3);
        assert_eq!(frame, ["HEADER", "run3", "run4", "run5"]);
        // It fits: nothing goes.
        let frame = fit_frame("H".into(), vec![group(true, "a", 1)], 3);
        assert_eq!(frame, ["H", "a0"]);
    }

    #[test]
    fn a_reopened_vertex_shows_its_later_statuses_and_done_again() {
        use brix_solver_client::progress::{StatusUpdate, VertexUpdate};
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let vertex = |completed: Option<SystemTime>| {
            ProgressEvent::Vertex(VertexUpdate {
                digest: "sha256:exp".into(),
                inputs: Vec::new(),
                name: "exporting to image".into(),
                started: Some(t0),
                completed,
                cached: false,
                error: None,
                progress_group: None,
            })
        };
        let status = |id: &str| {
            ProgressEvent::Status(StatusUpdate {
                vertex: "sha256:exp".into(),
                id: id.into(),
                name: String::new(),
                current: 0,
                total: 0,
                timestamp: Some(t0),
                started: Some(t0),
                completed: Some(t0),
            })
        };
        let printer = Printer::new(ProgressMode::Quiet, None, String::new());
        let mut st = printer.lock();
        let key = (0, "sha256:exp".to_owned());
        let mut out = String::new();
        st.apply(key.clone(), vertex(Some(t0)), 0, None);
        st.print_vertex(&key, &mut out);
        assert!(out.ends_with("#1 DONE 0.0s\n"), "{out}");
        // Re-opened for the push, then done again.
        st.apply(key.clone(), vertex(None), 0, None);
        st.apply(key.clone(), status("pushing layers"), 0, None);
        st.apply(
            key.clone(),
            vertex(Some(t0 + Duration::from_millis(100))),
            0,
            None,
        );
        out.clear();
        st.print_vertex(&key, &mut out);
        assert!(out.contains("#1 pushing layers done\n"), "{out}");
        assert!(out.ends_with("#1 DONE 0.1s\n"), "{out}");
    }

    #[test]
    fn bytes_are_decimal_units() {
        assert_eq!(bytes(132), "132B");
        assert_eq!(bytes(1_030_000), "1.03MB");
        assert_eq!(bytes(2_500), "2.50kB");
    }

    #[test]
    fn status_text_matches_the_plain_printer() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let u = StatusUpdate {
            vertex: "v".into(),
            id: "transferring context:".into(),
            name: String::new(),
            current: 30,
            total: 0,
            timestamp: Some(t0),
            started: Some(t0),
            completed: Some(t0),
        };
        assert_eq!(status_text(&u), "transferring context: 30B done");
        let u = StatusUpdate {
            completed: Some(t0 + Duration::from_millis(30)),
            ..u
        };
        assert_eq!(status_text(&u), "transferring context: 30B 0.0s done");
    }
}
