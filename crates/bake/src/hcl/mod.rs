//! The bake language: HCL (and HCL's JSON syntax) evaluated with buildx's semantics.

pub mod functions;
