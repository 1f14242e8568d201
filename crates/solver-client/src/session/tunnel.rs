//! A byte pipe over the `Control.Session` bidi stream of `BytesMessage`s, as
//! `AsyncRead + AsyncWrite` for the HTTP/2 server that runs inside it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Bytes received from the daemon, one `BytesMessage.data` per item (no framing alignment:
/// HTTP/2 frames may be split or joined arbitrarily).
pub type IncomingChunks = Pin<Box<dyn Stream<Item = Result<Bytes, tonic::Status>> + Send>>;

/// The stream side of a session tunnel: reads concatenate incoming chunks, each write becomes
/// one outgoing chunk, and shutdown ends the outgoing stream (the gRPC CloseSend that ends the
/// session on the daemon).
pub struct StreamTunnel {
    incoming: IncomingChunks,
    pending: Bytes,
    incoming_done: bool,
    outgoing: PollSender<Bytes>,
}

impl StreamTunnel {
    /// Joins an incoming chunk stream with the sender of the outgoing chunks.
    pub fn new(incoming: IncomingChunks, outgoing: mpsc::Sender<Bytes>) -> Self {
        StreamTunnel {
            incoming,
            pending: Bytes::new(),
            incoming_done: false,
            outgoing: PollSender::new(outgoing),
        }
    }
}

impl AsyncRead for StreamTunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.incoming_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.incoming.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => self.pending = chunk,
                Some(Err(status)) => {
                    self.incoming_done = true;
                    // A cancelled stream is how the daemon hangs up; report it as EOF.
                    if status.code() == tonic::Code::Cancelled {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("session stream failed: {}", status.message()),
                    )));
                }
                None => self.incoming_done = true,
            }
        }
    }
}

impl AsyncWrite for StreamTunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "session stream closed");
        ready!(self.outgoing.poll_reserve(cx)).map_err(|_| closed())?;
        self.outgoing
            .send_item(Bytes::copy_from_slice(buf))
            .map_err(|_| closed())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    #[tokio::test]
    async fn reads_concatenate_chunks_and_writes_become_chunks() {
        let chunks = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"hel")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"lo")),
        ]);
        let (tx, rx) = mpsc::channel(4);
        let mut tunnel = StreamTunnel::new(Box::pin(chunks), tx);
        let mut all = String::new();
        tunnel.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello");

        tunnel.write_all(b"abc").await.expect("write");
        tunnel.write_all(b"de").await.expect("write");
        tunnel.shutdown().await.expect("shutdown");
        let out: Vec<Bytes> = futures_util::StreamExt::collect(ReceiverStream::new(rx)).await;
        assert_eq!(out, [Bytes::from_static(b"abc"), Bytes::from_static(b"de")]);
    }

    #[tokio::test]
    async fn stream_errors_surface_as_io_errors() {
        let chunks = futures_util::stream::iter(vec![Err(tonic::Status::internal("boom"))]);
        let (tx, _rx) = mpsc::channel(1);
        let mut tunnel = StreamTunnel::new(Box::pin(chunks), tx);
        let mut buf = [0u8; 4];
        let err = tunnel.read(&mut buf).await.expect_err("error");
        assert!(err.to_string().contains("boom"));
    }
}
