//! Files the user names on the command line (`--metadata-file`, `--iidfile`, `history
//! export -o`): written whole or not at all, and only where the user said — brix-build's
//! [`files`](brix_build::files), shared with the build engine.

pub use brix_build::files::write_atomically;
