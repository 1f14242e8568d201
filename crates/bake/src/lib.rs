//! brix-bake: buildx's bake files read and evaluated into build targets.
//!
//! A bake definition is one or more files — HCL (`docker-bake.hcl`), JSON (`docker-bake.json`)
//! or compose (`compose.yaml`) — that declare variables, functions, groups and targets. This
//! crate does what buildx's `bake` package does before anything is built: find the files,
//! evaluate the HCL language with buildx's semantics (`hcl`), decode the blocks into
//! [`model`] targets and groups, apply `inherits`, `matrix` and `--set` overrides, and print
//! the result as buildx's `--print` JSON. It never builds: the build engine takes the
//! resolved targets.
//!
//! Layers: [`value`] the language's values; [`raw`] evaluated blocks before decoding (what
//! the HCL/JSON evaluator hands to the model); [`hcl`] the evaluator and its function library;
//! the model, compose reader, overrides and printing on top.

pub mod hcl;
pub mod raw;
pub mod types;
pub mod value;

/// One bake file as read: its name as the user gave it (shown in messages) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The file's name as given (`docker-bake.hcl`, `-` for stdin, a path).
    pub name: String,
    /// The file's contents.
    pub data: Vec<u8>,
}

pub mod api;
pub mod compose;
pub mod lookup;
pub mod model;
pub mod overrides;
pub mod print;
pub mod resolve;
#[cfg(test)]
mod testutil;

pub use api::{
    BakeError, Definition, ReadOptions, list, parse_files, print, read_targets, resolve_targets,
};
pub use resolve::Resolved;
