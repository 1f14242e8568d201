//! brix's build engine: Dockerfile builds on a builder's nodes, the way `docker buildx`
//! runs them, for any number of build requests at once.
//!
//! The shape is buildx's `build.Build(ctx, nodes, opts map[string]Options, …)`: a caller
//! (`brix build` with one request, `brix bake` with one per target) describes each build as
//! a [`BuildRequest`] — plain data, the values spelled as the command line's flags spell
//! them — checks it with [`PlannedBuild::new`] (every check buildx makes before it contacts a
//! daemon, with buildx's messages), and hands the planned requests to [`build`]. The engine
//! then, for all of them together:
//!
//! - boots (when needed) and connects every node of the builder once ([`nodes`]);
//! - gives each platform of each request the node that suits it best (native before pinned
//!   before emulated), with one solve per platform, or one multi-platform solve where the
//!   engine's own BuildKit stores multi-platform images;
//! - serves each local context once per node: the solves that read the same context folder
//!   and Dockerfile folder on one node share one session for them (`local-sessionid:`),
//!   whether they are platforms of one request or different requests;
//! - runs every solve concurrently, reporting progress to a [`ProgressSink`] (the CLI's
//!   renderer implements it; the engine never draws anything itself);
//! - puts each request's per-platform results together: one multi-platform tarball or OCI
//!   layout, one image index pushed under every tag, images loaded into or pushed from the
//!   Docker engine, the platforms' caches merged into one; and writes the request's
//!   `--metadata-file` and `--iidfile` as buildx writes them.
//!
//! Each request gets its own result: a [`BuildOutcome`] (image ID, the metadata buildx
//! reports, the build's warnings, or a `--call` method's answer) or a [`BuildError`] (with
//! the number of the solve that failed, so a renderer can show that step's last log lines).
//! A failed request does not stop the others.
//!
//! ```no_run
//! # async fn demo(
//! #     builder: &brix_driver::NodeGroup,
//! #     sink: std::sync::Arc<dyn brix_build::ProgressSink>,
//! # ) -> Result<(), brix_build::BuildError> {
//! use brix_build::{BuildRequest, PlannedBuild};
//!
//! let mut app = BuildRequest::new("./app");
//! app.tags = vec!["registry.example/app:1".to_owned()];
//! app.platforms = vec!["linux/amd64,linux/arm64".to_owned()];
//! app.push = true;
//! let planned = PlannedBuild::new(app, &|warning| eprintln!("WARNING: {warning}"))?;
//! for (name, result) in brix_build::build(builder, vec![("app".to_owned(), planned)], sink).await {
//!     println!("{name}: {:?}", result?.image_id);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Dependencies point one way: the engine uses brix-driver (builders and nodes),
//! brix-solver-client (solves and sessions), brix-exporter (indexes, layouts, registries)
//! and brix-config (platforms, `buildkitd.toml`), and none of them knows about it.

mod annotations;
mod attestations;
mod cache;
mod call;
mod contexts;
mod docker_session;
mod engine;
mod error;
pub mod files;
mod finish;
mod git_info;
pub mod go;
mod main_context;
mod metadata_provenance;
pub mod nodes;
mod options;
mod outcome;
mod outputs;
mod plan;
mod progress;
mod request;
mod ssh;

pub use call::CallMethod;
pub use engine::{build, build_named, build_one};
pub use error::{BuildError, one_line};
pub use options::{parse_shm_size, parse_ulimit};
pub use outcome::{BuildOutcome, CallAnswer};
pub use plan::PlannedBuild;
pub use progress::{ProgressSink, StepProgress};
pub use request::{BuildRequest, RunOptions};
