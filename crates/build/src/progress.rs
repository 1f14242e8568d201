//! Where the engine reports what it does. The engine draws nothing: solves' status streams,
//! the client-side steps it runs itself (booting a node, merging tarballs, pushing an index)
//! and its warnings all go to a [`ProgressSink`] the caller provides (the CLI's renderer).

use brix_driver::BootstrapSink;
use brix_solver_client::progress::ProgressEvent;

/// The receiver of a build's progress, shared by every request and solve of one
/// [`build`](crate::build) call (calls come from several tasks at once).
pub trait ProgressSink: Send + Sync {
    /// One batch of a solve's events. `solve` numbers the solve within the display (unique
    /// across the requests of one call; a [`BuildError`](crate::BuildError) names the one
    /// that failed); `prefix` (`linux/arm64`, or a request's name when several are built) goes
    /// into every step name as buildx puts it (`[linux/arm64 2/3] RUN …`).
    fn solve_events(&self, solve: usize, prefix: Option<&str>, events: Vec<ProgressEvent>);

    /// Solve `solve` runs on the builder's node number `node`; called before its first
    /// events. A daemon solves identical vertices of concurrent solves once, so a vertex
    /// (by digest) of two solves on one node is one step, and on two nodes two.
    fn solve_node(&self, solve: usize, node: usize) {
        let _ = (solve, node);
    }

    /// Starts a step the client runs itself, shown like a daemon's step; also the sink of a
    /// node's bootstrap events while it boots.
    fn client_step(&self, name: &str) -> Box<dyn StepProgress>;

    /// A warning that belongs to no step (a node that could not be used, a cache that could
    /// not be merged), without buildx's `WARNING: ` prefix.
    fn warning(&self, message: &str);
}

/// One client-side step started with [`ProgressSink::client_step`].
pub trait StepProgress: BootstrapSink {
    /// Shows a sub-step (`pushing manifest for …`); `done` marks it finished.
    fn status(&self, id: &str, done: bool);

    /// Adds a log line under the step.
    fn log(&self, line: &str);

    /// Ends the step, failed when `error` is given.
    fn done(&self, error: Option<String>);
}

/// The progress of one request among several: its name goes into its steps' names, as
/// buildx's `progress.WithPrefix` puts a bake target's.
pub(crate) struct NamedProgress {
    pub(crate) inner: std::sync::Arc<dyn ProgressSink>,
    pub(crate) name: String,
}

impl ProgressSink for NamedProgress {
    fn solve_events(&self, solve: usize, prefix: Option<&str>, events: Vec<ProgressEvent>) {
        let prefix = match prefix {
            // `[name linux/arm64 2/3] RUN …`: buildx prefixes the platform's name with the
            // target's.
            Some(p) => format!("{} {p}", self.name),
            None => self.name.clone(),
        };
        self.inner.solve_events(solve, Some(&prefix), events);
    }

    fn solve_node(&self, solve: usize, node: usize) {
        self.inner.solve_node(solve, node);
    }

    fn client_step(&self, name: &str) -> Box<dyn StepProgress> {
        self.inner.client_step(&prefixed(name, &self.name))
    }

    fn warning(&self, message: &str) {
        self.inner.warning(message);
    }
}

/// buildx's `addPrefix`: `[2/3] RUN x` → `[p 2/3] RUN x`, `name` → `[p] name`.
fn prefixed(name: &str, prefix: &str) -> String {
    match name.strip_prefix('[') {
        Some(rest) => format!("[{prefix} {rest}"),
        None => format!("[{prefix}] {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_s_name_goes_in_front_as_buildx_puts_it() {
        assert_eq!(prefixed("[2/3] RUN x", "app"), "[app 2/3] RUN x");
        assert_eq!(
            prefixed("merging manifest list r/a:1", "app"),
            "[app] merging manifest list r/a:1"
        );
    }
}
