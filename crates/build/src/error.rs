//! Why a build failed: [`BuildError`], the one error the engine's public functions return,
//! and [`one_line`], an error as the user reads it.

use std::sync::Arc;

use brix_solver_client::solve::{SolveError, SolveFailure};

/// A failed build request (or a check of one that failed before any daemon was contacted).
///
/// Its message is buildx's where buildx has one (`failed to build: …`); its causes are kept
/// as sources. When one of the request's solves failed, [`BuildError::solve`] is the number
/// that solve's progress was reported under ([`ProgressSink::solve_events`]), so that a
/// renderer can show the failing step's last log lines, and [`BuildError::solve_failure`]
/// has what BuildKit said about it (the failing step, the Dockerfile lines).
///
/// Cheap to clone: several requests that fail for one reason (no node could be connected)
/// share it.
///
/// [`ProgressSink::solve_events`]: crate::ProgressSink::solve_events
#[derive(Clone)]
pub struct BuildError {
    solve: Option<usize>,
    error: Arc<anyhow::Error>,
    canceled: bool,
}

impl BuildError {
    /// A request stopped because another request of the same [`build`](crate::build) call
    /// failed (as buildx cancels the other targets of a failed bake).
    pub(crate) fn canceled() -> Self {
        BuildError {
            solve: None,
            error: Arc::new(anyhow::anyhow!(
                "canceled: another request of this build failed"
            )),
            canceled: true,
        }
    }

    /// Whether this request was stopped because another one failed, rather than failing
    /// itself: the error to show is the other one's.
    pub fn is_canceled(&self) -> bool {
        self.canceled
    }

    /// The progress number of the solve that failed, when a solve did.
    pub fn solve(&self) -> Option<usize> {
        self.solve
    }

    /// BuildKit's account of a failed solve (the failing step's digest, the source lines it
    /// points at), when the build itself failed in the daemon.
    pub fn solve_failure(&self) -> Option<&SolveFailure> {
        self.error
            .downcast_ref::<SolveError>()
            .and_then(SolveError::failure)
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:#}` shows the causes too, as anyhow's own errors do.
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

impl std::fmt::Debug for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildError")
            .field("solve", &self.solve)
            .field("error", &format_args!("{:#}", self.error))
            .finish()
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The message is the outermost one; its causes follow, as in anyhow's chain.
        (**self.error).source()
    }
}

/// A failure inside the engine: which solve failed (its progress number) and why. Any error
/// converts into one with `?`; [`BuildError`] is what leaves the crate.
pub(crate) struct Failure {
    pub(crate) solve: Option<usize>,
    pub(crate) error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            solve: None,
            error: e.into(),
        }
    }
}

impl From<Failure> for BuildError {
    fn from(f: Failure) -> Self {
        BuildError {
            solve: f.solve,
            error: Arc::new(f.error),
            canceled: false,
        }
    }
}

/// buildx's refusal of a `feature` the `driver` node cannot do (`notSupported` in its build
/// package), pointing at the docs page `docs`.
pub(crate) fn not_supported(feature: &str, driver: &str, docs: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "failed to build: {feature} is not supported for the {driver} driver.\nSwitch to a different driver, or turn on the containerd image store, and try again.\nLearn more at {docs}"
    )
}

/// `err` and its causes on one line, `outer: inner: …`, leaving out a cause whose text an
/// outer message already contains (library errors often say their source themselves), and
/// with line breaks inside messages turned into spaces. CI tools show only the last line of
/// stderr, so the error itself must be on it.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(err), |e| e.source()) {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_buildx_prints_them() {
        // buildx 0.29.1, `-o type=oci,dest=…` on the docker driver of dockerd 20.10.
        assert_eq!(
            not_supported(
                "OCI exporter",
                "docker",
                "https://docs.docker.com/go/build-exporters/"
            )
            .to_string(),
            "failed to build: OCI exporter is not supported for the docker driver.\n\
             Switch to a different driver, or turn on the containerd image store, and try again.\n\
             Learn more at https://docs.docker.com/go/build-exporters/"
        );
    }

    /// An error that says its source in its own message, as many library errors do.
    #[derive(Debug)]
    struct Outer {
        source: std::io::Error,
    }

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "cannot reach the engine at x: {}\n(is it running?)",
                self.source
            )
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("socket not found");
        let err = anyhow::Error::new(Outer { source: inner }).context("listing builders");
        assert_eq!(
            one_line(err.as_ref()),
            "listing builders: cannot reach the engine at x: socket not found (is it running?)"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(err.as_ref()), "outer: middle: inner");
    }

    #[test]
    fn a_build_error_reads_as_the_error_it_wraps() {
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        let expected = one_line(err.as_ref());
        let wrapped = BuildError::from(Failure::from(err));
        assert_eq!(one_line(&wrapped), expected);
        assert_eq!(format!("{wrapped:#}"), "outer: middle: inner");
        assert_eq!(wrapped.to_string(), "outer");
        // Through anyhow (what a caller's `?` does), the same line.
        assert_eq!(
            one_line(anyhow::Error::new(wrapped.clone()).as_ref()),
            expected
        );
    }
}
