//! Step 7: real buildx (the `docker buildx` CLI plugin), which the side-by-side tests
//! (`tests/tests/context_fidelity.rs`) run against the same BuildKit daemon as brix.
//!
//! The install itself is the bench's (`bench::setup::ensure_buildx`: Debian unstable's
//! `docker-buildx` 0.29 from a private apt list, copied to `~/.docker/cli-plugins/`); this
//! step only gives it a folder under `target/e2e/buildx/`. When `docker buildx version`
//! answers it does nothing.

use super::Workspace;
use crate::bench::BenchDirs;
use crate::bench::setup::{buildx_version, ensure_buildx};
use anyhow::Result;

/// Makes sure `docker buildx` runs; returns the step's summary.
pub fn ensure(ws: &Workspace) -> Result<String> {
    let root = ws.e2e_dir.join("buildx");
    // The install only uses `root` (its private apt state); `logs` is the bench's own.
    let dirs = BenchDirs {
        logs: root.join("logs"),
        root,
    };
    ensure_buildx(&dirs)
}

/// Whether `docker buildx` runs now; `cargo xtask e2e` passes `BRIX_E2E_BUILDX=1` to the
/// tests only then (with `--no-setup` the install step above does not run).
pub fn available() -> bool {
    buildx_version().is_some()
}
