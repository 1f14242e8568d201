//! brix-solver-client: a client for a BuildKit daemon's gRPC API — control calls, sessions
//! (context sync, auth, secrets, outputs), per-platform solves, an LLB builder and progress events.

pub mod fsutil;
pub mod gateway;
pub mod history;
pub mod llb;
pub mod patterns;
pub mod progress;
pub mod proto;
pub mod session;
pub mod solve;

// Control API client (connect, control, workers) and tests of the generated code.
pub mod connect;
pub mod control;
pub mod workers;

#[cfg(test)]
mod proto_tests;

pub use connect::{DaemonAddress, TlsConfig};
pub use control::{ClientError, ControlClient};
