//! brix-config: the `buildkitd.toml` model, BuildKit's disk-space and duration units, the
//! effective garbage-collection policy, lints, and the platform type shared by all brix crates.
