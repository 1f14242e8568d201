//! One module per `brix` subcommand (or group of subcommands).

pub mod bake;
pub mod binfmt;
pub mod build;
pub mod config;
pub mod create;
pub mod dial_stdio;
pub mod du;
pub mod history;
pub mod imagetools;
pub mod inspect;
pub mod ls;
mod node_status;
pub mod prune;
pub mod rm;
pub mod stop;
pub mod use_;
pub mod version;
