//! Sessions for the `docker` driver: dockerd does not tunnel sessions through
//! `Control.Session`; the client opens `POST /session` with the session's headers, gets
//! `101 Switching Protocols`, and then serves the session (HTTP/2, the daemon dialling in) on
//! the upgraded socket.

use brix_solver_client::session::{RunningSession, Session};

/// Opens dockerd's `/session` endpoint at `endpoint` (an address or a docker context's name)
/// and serves `session` on it.
pub async fn run_over_dockerd(session: Session, endpoint: &str) -> anyhow::Result<RunningSession> {
    let headers = session.headers();
    let io = brix_driver::docker_api::upgrade_h2c(endpoint, "/session", &headers).await?;
    Ok(session.serve(io))
}
