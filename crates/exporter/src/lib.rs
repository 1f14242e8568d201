//! brix-exporter: OCI image index assembly, OCI image layouts (directories and tarballs), and
//! registry push and inspect.
//!
//! It knows nothing about builds: it takes descriptors (from a BuildKit solve response, a
//! layout or a registry) and turns them into indexes, layouts and pushed images.
//!
//! - [`assemble_index`]: per-platform manifest descriptors (and attestation manifests) to one
//!   OCI image index, as exact bytes and their digest.
//! - [`OciLayout`], [`merge_layout_tarballs`]: read and write OCI layouts and layout tarballs;
//!   merge per-platform tarballs into one multi-platform tarball.
//! - [`docker_archive::import_docker_archive`]: `docker save` tarballs (images built with the
//!   `docker` driver) to OCI images with gzip layers, ready to be indexed and pushed.
//! - [`Registry`]: push a layout or an index (blobs first, concurrently and streamed from disk,
//!   the index last), fetch and inspect manifests, and combine images across repositories
//!   (`imagetools create`), with credentials from the Docker config.
//!
//! ```no_run
//! # async fn demo() -> brix_exporter::Result<()> {
//! use brix_exporter::{OciLayout, Registry, RegistryOptions};
//! let layout = OciLayout::open("out/layout")?;
//! let registry = Registry::new(RegistryOptions::default());
//! let pushed = registry.push_layout(&layout, "localhost:5000/app", &["1".into()]).await?;
//! println!("{}", pushed.digest());
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cache;
pub mod descriptor;
mod distribution;
pub mod docker_archive;
pub mod engine_image;
mod error;
mod identity_token;
pub mod index;
pub mod layout;
mod reference;
pub mod registry;

pub use descriptor::{Descriptor, ImageIndex, ImageManifest, Platform};
pub use error::{Error, Result};
pub use index::{
    AssembledIndex, IndexOrder, assemble_index, assemble_index_ordered,
    assemble_index_with_annotations,
};
pub use layout::{OciLayout, merge_layout_tarballs, merge_layout_tarballs_with, merge_layouts};
pub use registry::{ImageReference, IndexEdits, Registry, RegistryOptions, RegistryTls};
