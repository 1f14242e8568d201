//! One module per `brix` subcommand (or group of subcommands).

pub mod binfmt;
pub mod config;
pub mod version;
