//! Progress display for booting builders, in the shape of BuildKit's progress UI:
//! a redrawn `[+] Building 5.1s (1/1) FINISHED` block on a terminal, `#N ...` lines otherwise.
//!
//! Each booting node is one vertex (`[internal] booting buildkit`); the driver's
//! [`BootstrapEvent`]s become its sub-steps (` => => creating container ...`).

pub mod printer;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use brix_driver::{BootstrapEvent, BootstrapSink};

#[derive(Debug)]
struct Step {
    text: String,
    started: Instant,
    finished: Option<Instant>,
    error: bool,
    /// A notice: shown without a timer.
    notice: bool,
}

#[derive(Debug)]
struct Vertex {
    id: usize,
    name: String,
    started: Instant,
    finished: Option<Instant>,
    error: Option<String>,
    steps: Vec<Step>,
    logs: Vec<String>,
}

#[derive(Debug)]
struct State {
    tty: bool,
    started: Instant,
    vertices: Vec<Vertex>,
    drawn_lines: usize,
    notices: Vec<String>,
}

/// A progress display shared by all nodes booting at once.
#[derive(Clone)]
pub struct BootProgress {
    state: Arc<Mutex<State>>,
}

impl BootProgress {
    /// Starts a display on stderr: redrawn on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal()
            && std::env::var("BRIX_PROGRESS").as_deref() != Ok("plain");
        Self {
            state: Arc::new(Mutex::new(State {
                tty,
                started: Instant::now(),
                vertices: Vec::new(),
                drawn_lines: 0,
                notices: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-draw; keep drawing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a vertex called `name` and returns the sink its driver reports to.
    pub fn vertex(&self, name: String) -> VertexSink {
        let mut st = self.lock();
        let id = st.vertices.len() + 1;
        st.vertices.push(Vertex {
            id,
            name: name.clone(),
            started: Instant::now(),
            finished: None,
            error: None,
            steps: Vec::new(),
            logs: Vec::new(),
        });
        if !st.tty {
            eprintln!("#{id} {name}");
        }
        drop(st);
        VertexSink {
            progress: self.clone(),
            index: id - 1,
        }
    }

    /// Redraws the terminal block (no-op in plain mode). Called by the ticker.
    pub fn redraw(&self) {
        let mut st = self.lock();
        if st.tty {
            draw(&mut st);
        }
    }

    /// Spawns a task that redraws every 100 ms until the returned handle is dropped/aborted.
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.redraw();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// Draws the final state and prints notices collected on a terminal.
    pub fn finish(&self) {
        let mut st = self.lock();
        if st.tty {
            draw(&mut st);
            for n in std::mem::take(&mut st.notices) {
                eprintln!("{n}");
            }
        }
    }
}

impl Default for BootProgress {
    fn default() -> Self {
        Self::new()
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(100)
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

fn draw(st: &mut State) {
    let now = Instant::now();
    let w = width();
    let total = st.vertices.len();
    let done = st.vertices.iter().filter(|v| v.finished.is_some()).count();
    let all_done = total > 0 && done == total;
    let end = if all_done {
        st.vertices
            .iter()
            .filter_map(|v| v.finished)
            .max()
            .unwrap_or(now)
    } else {
        now
    };
    let mut lines = vec![format!(
        "[+] Building {} ({done}/{total}){}",
        secs(end.duration_since(st.started)),
        if all_done { " FINISHED" } else { "" }
    )];
    for v in &st.vertices {
        let prefix = match (&v.error, v.finished) {
            (Some(_), _) => " => ERROR ",
            _ => " => ",
        };
        let dur = v.finished.unwrap_or(now).duration_since(v.started);
        lines.push(fit(&format!("{prefix}{}", v.name), &secs(dur), w));
        for s in &v.steps {
            if s.notice {
                // Printed in full below the block when it is done; a truncated copy here
                // would only repeat it.
                continue;
            } else {
                let d = s.finished.unwrap_or(now).duration_since(s.started);
                let pre = if s.error { " => => ERROR " } else { " => => " };
                lines.push(fit(&format!("{pre}{}", s.text), &secs(d), w));
            }
        }
        if v.error.is_some() {
            for l in &v.logs {
                lines.push(fit(&format!(" => => # {l}"), "", w));
            }
        }
    }
    let mut err = std::io::stderr().lock();
    if st.drawn_lines > 0 {
        let _ = write!(err, "\x1b[{}A", st.drawn_lines);
    }
    for l in &lines {
        let _ = writeln!(err, "\r{l}\x1b[K");
    }
    let _ = err.flush();
    st.drawn_lines = lines.len();
}

/// The sink one node's driver reports to; [`VertexSink::done`] closes the vertex.
pub struct VertexSink {
    progress: BootProgress,
    index: usize,
}

impl VertexSink {
    /// Marks the vertex finished, failed if `error` is set.
    pub fn done(&self, error: Option<String>) {
        let mut st = self.progress.lock();
        let tty = st.tty;
        let v = &mut st.vertices[self.index];
        let now = Instant::now();
        v.finished = Some(now);
        if !tty {
            match &error {
                Some(e) => eprintln!("#{} ERROR: {e}", v.id),
                None => eprintln!("#{} DONE {}", v.id, secs(now.duration_since(v.started))),
            }
        }
        v.error = error;
    }
}

impl BootstrapSink for VertexSink {
    fn event(&self, ev: BootstrapEvent) {
        let mut st = self.progress.lock();
        let tty = st.tty;
        let now = Instant::now();
        let mut notice_for_tty = None;
        let v = &mut st.vertices[self.index];
        let id = v.id;
        match ev {
            BootstrapEvent::StepStarted { step } => {
                if !tty {
                    eprintln!("#{id} {step}");
                }
                v.steps.push(Step {
                    text: step,
                    started: now,
                    finished: None,
                    error: false,
                    notice: false,
                });
            }
            BootstrapEvent::StepFinished { step, error } => {
                if let Some(s) = v
                    .steps
                    .iter_mut()
                    .rev()
                    .find(|s| s.text == step && s.finished.is_none())
                {
                    s.finished = Some(now);
                    s.error = error.is_some();
                    if !tty {
                        let d = secs(now.duration_since(s.started));
                        match &error {
                            Some(e) => eprintln!("#{id} {step} {d} ERROR: {e}"),
                            None => eprintln!("#{id} {step} {d} done"),
                        }
                    }
                }
            }
            BootstrapEvent::Notice { message } => {
                if tty {
                    notice_for_tty = Some(message.clone());
                } else {
                    eprintln!("#{id} {message}");
                }
                v.steps.push(Step {
                    text: message,
                    started: now,
                    finished: Some(now),
                    error: false,
                    notice: true,
                });
            }
            BootstrapEvent::Log { line } => {
                if !tty {
                    eprintln!("#{id} {line}");
                }
                v.logs.push(line);
            }
        }
        if let Some(n) = notice_for_tty {
            st.notices.push(n);
        }
    }
}
