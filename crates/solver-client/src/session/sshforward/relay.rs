//! One `ForwardAgent` stream: a build step's connection to the agent. The bytes are the
//! agent protocol (`draft-miller-ssh-agent`: a 4-byte big-endian length, then a message
//! whose first byte is its type), relayed one request and its answer at a time, in whatever
//! chunks the daemon sends them.
//!
//! BuildKit's provider serves the stream with its own agent in front of the user's, which
//! lists keys and signs but refuses to add, remove or lock keys and every extension; brix
//! keeps the same limits here: only key listing and signing reach the agent, every other
//! request is answered with a failure without it (`SSH_AGENT_EXTENSION_FAILURE` for
//! extensions, as BuildKit's answers). The stream ends, closing the agent connection, when
//! either side closes or breaks.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::proto::moby::sshforward::v1::BytesMessage;

/// Answers queued for the daemon before the relay waits for it.
pub(super) const REPLY_QUEUE: usize = 4;

/// Largest request or answer (x/crypto's agent limit, which BuildKit's provider applies).
const MAX_MESSAGE: usize = 16 << 20;
/// Bytes per message to the daemon (BuildKit's copy buffer).
const CHUNK: usize = 32 * 1024;

/// `SSH_AGENT_FAILURE`.
const AGENT_FAILURE: u8 = 5;
/// `SSH_AGENTC_REQUEST_IDENTITIES`.
const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENTC_SIGN_REQUEST`.
const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENTC_EXTENSION`.
const EXTENSION: u8 = 27;
/// `SSH_AGENT_EXTENSION_FAILURE`.
const EXTENSION_FAILURE: u8 = 28;

/// Relays requests from `incoming` to `agent` and its answers to `replies`, until either
/// side ends. A request the build may not make is answered here.
pub(super) async fn relay<A>(
    mut incoming: Streaming<BytesMessage>,
    mut agent: A,
    replies: mpsc::Sender<Result<BytesMessage, Status>>,
) where
    A: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = Vec::new();
    loop {
        // The daemon going away (its build step finished or was cancelled) ends the relay
        // even while it waits on the agent.
        let request = tokio::select! {
            r = next_request(&mut incoming, &mut pending) => r,
            () = replies.closed() => return,
        };
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                let _ = replies.send(Err(status)).await;
                return;
            }
        };
        let answer = match request.first() {
            Some(&(REQUEST_IDENTITIES | SIGN_REQUEST)) => {
                let exchanged = tokio::select! {
                    r = exchange(&mut agent, &request) => r,
                    () = replies.closed() => return,
                };
                match exchanged {
                    Ok(Some(answer)) => answer,
                    // The agent hung up: so does the stream.
                    Ok(None) => return,
                    Err(status) => {
                        let _ = replies.send(Err(status)).await;
                        return;
                    }
                }
            }
            Some(&EXTENSION) => vec![EXTENSION_FAILURE],
            _ => vec![AGENT_FAILURE],
        };
        if send_frame(&replies, &answer).await.is_err() {
            return;
        }
    }
}

/// The next whole request from the daemon, reading more chunks as needed; `None` when the
/// daemon has closed its side.
async fn next_request(
    incoming: &mut Streaming<BytesMessage>,
    pending: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, Status> {
    loop {
        if let Some(head) = pending.first_chunk::<4>() {
            let len = frame_len(*head).map_err(|e| Status::invalid_argument(e.to_owned()))?;
            if pending.len() >= 4 + len {
                let request = pending[4..4 + len].to_vec();
                pending.drain(..4 + len);
                return Ok(Some(request));
            }
        }
        match incoming.message().await? {
            Some(message) => pending.extend_from_slice(&message.data),
            None => return Ok(None),
        }
    }
}

/// Sends `request` to the agent and reads its answer; `None` when the agent closes first.
async fn exchange<A>(agent: &mut A, request: &[u8]) -> Result<Option<Vec<u8>>, Status>
where
    A: AsyncRead + AsyncWrite + Unpin,
{
    let broken = |e: std::io::Error| Status::unavailable(format!("ssh agent connection: {e}"));
    let len = u32::try_from(request.len()).map_err(|_| Status::invalid_argument("too large"))?;
    agent.write_all(&len.to_be_bytes()).await.map_err(broken)?;
    agent.write_all(request).await.map_err(broken)?;
    agent.flush().await.map_err(broken)?;
    let mut head = [0u8; 4];
    match agent.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(broken(e)),
    }
    let len = frame_len(head).map_err(|e| Status::unavailable(format!("ssh agent: {e}")))?;
    let mut answer = vec![0; len];
    match agent.read_exact(&mut answer).await {
        Ok(_) => Ok(Some(answer)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(broken(e)),
    }
}

/// The length in a frame header, within the protocol's limits.
fn frame_len(head: [u8; 4]) -> Result<usize, &'static str> {
    match usize::try_from(u32::from_be_bytes(head)) {
        Ok(0) => Err("agent: message size is 0"),
        Ok(len) if len <= MAX_MESSAGE => Ok(len),
        _ => Err("agent: message too large"),
    }
}

/// Sends one message, framed, in chunks the daemon takes.
async fn send_frame(
    replies: &mpsc::Sender<Result<BytesMessage, Status>>,
    message: &[u8],
) -> Result<(), ()> {
    let len = u32::try_from(message.len()).map_err(|_| ())?;
    let mut frame = Vec::with_capacity(4 + message.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    for chunk in frame.chunks(CHUNK) {
        replies
            .send(Ok(BytesMessage {
                data: chunk.to_vec(),
            }))
            .await
            .map_err(|_| ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_are_bounded() {
        assert_eq!(frame_len([0, 0, 0, 1]), Ok(1));
        assert!(frame_len([0, 0, 0, 0]).is_err());
        assert_eq!(frame_len([1, 0, 0, 0]), Ok(MAX_MESSAGE));
        assert!(frame_len([1, 0, 0, 1]).is_err());
    }
}
