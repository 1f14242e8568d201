//! brix-solver-client: a client for a BuildKit daemon's gRPC API — control calls, sessions
//! (context sync, auth, secrets, outputs), per-platform solves, an LLB builder and progress events.

pub mod patterns;
pub mod fsutil;
pub mod proto;
pub mod session;
pub mod llb;
