//! Sessions for the `docker` driver: dockerd does not tunnel sessions through
//! `Control.Session`; the client opens `POST /session` with the session's headers, gets
//! `101 Switching Protocols`, and then serves the session (HTTP/2, the daemon dialling in) on
//! the upgraded socket.

use anyhow::{Context, anyhow, bail};
use hyper_util::rt::TokioIo;

use brix_solver_client::session::{RunningSession, Session};

/// Opens dockerd's `/session` endpoint at `endpoint` (`unix://…` or `tcp://…`) and serves
/// `session` on it.
pub async fn run_over_dockerd(session: Session, endpoint: &str) -> anyhow::Result<RunningSession> {
    let io = upgrade(endpoint, &session.headers()).await?;
    Ok(session.serve(io))
}

async fn upgrade(
    endpoint: &str,
    headers: &[(&'static str, String)],
) -> anyhow::Result<TokioIo<hyper::upgrade::Upgraded>> {
    let (io, host): (std::pin::Pin<Box<dyn brix_driver::DaemonIo>>, String) = match endpoint
        .split_once("://")
    {
        Some(("unix", path)) => (
            Box::pin(
                tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to the Docker engine at {endpoint}"))?,
            ),
            "docker".into(),
        ),
        Some(("tcp" | "http", hp)) => (
            Box::pin(
                tokio::net::TcpStream::connect(hp)
                    .await
                    .with_context(|| format!("connecting to the Docker engine at {endpoint}"))?,
            ),
            hp.to_string(),
        ),
        _ => bail!("unsupported Docker endpoint {endpoint:?}: use unix:// or tcp://"),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .with_context(|| format!("HTTP handshake with the Docker engine at {endpoint}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("docker /session connection ended: {e}");
        }
    });
    let mut req = http::Request::post("/session")
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| anyhow!("building the /session request: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .with_context(|| format!("POST /session to the Docker engine at {endpoint}"))?;
    if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        bail!(
            "the Docker engine at {endpoint} answered POST /session with {} instead of 101 Switching Protocols (is BuildKit enabled in the engine?)",
            res.status()
        );
    }
    let upgraded = hyper::upgrade::on(res)
        .await
        .with_context(|| format!("upgrading the /session connection to {endpoint}"))?;
    Ok(TokioIo::new(upgraded))
}
