//! A byte pipe over the `Control.Session` bidi stream of `BytesMessage`s, as
//! `AsyncRead + AsyncWrite` for the HTTP/2 server that runs inside it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Bytes received from the daemon, one `BytesMessage.data` per item (no framing alignment:
/// HTTP/2 frames may be split or joined arbitrarily).
pub type IncomingChunks = Pin<Box<dyn Stream<Item = Result<Bytes, tonic::Status>> + Send>>;

/// Outgoing bytes are gathered up to this size before they become one `BytesMessage`: the
/// HTTP/2 server inside writes a frame header and its payload separately, and a context
/// transfer writes one 16 KiB frame at a time, so one message per write would cost a
/// message (an allocation, an encode and a channel hop) per 9-byte header.
const GATHER: usize = 256 * 1024;

/// The stream side of a session tunnel: reads concatenate incoming chunks, writes are gathered
/// and sent as one outgoing chunk when the writer flushes (or [`GATHER`] bytes are waiting),
/// and shutdown ends the outgoing stream (the gRPC CloseSend that ends the session on the
/// daemon).
pub struct StreamTunnel {
    incoming: IncomingChunks,
    pending: Bytes,
    incoming_done: bool,
    outgoing: PollSender<Bytes>,
    gathered: BytesMut,
}

impl StreamTunnel {
    /// Joins an incoming chunk stream with the sender of the outgoing chunks.
    pub fn new(incoming: IncomingChunks, outgoing: mpsc::Sender<Bytes>) -> Self {
        StreamTunnel {
            incoming,
            pending: Bytes::new(),
            incoming_done: false,
            outgoing: PollSender::new(outgoing),
            gathered: BytesMut::new(),
        }
    }

    /// Sends what has been gathered as one chunk.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.gathered.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.outgoing.poll_reserve(cx)).map_err(|_| closed())?;
        let chunk = self.gathered.split().freeze();
        self.outgoing.send_item(chunk).map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "session stream closed")
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.gathered.len() + len > GATHER {
            ready!(self.poll_send_gathered(cx))?;
        }
        self.gathered.reserve(len);
        for b in bufs {
            self.gathered.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_gathered(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_gathered(cx))?;
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
    async fn reads_concatenate_chunks_and_writes_are_gathered_until_a_flush() {
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
        tunnel.flush().await.expect("flush");
        tunnel.write_all(b"de").await.expect("write");
        tunnel.write_all(b"f").await.expect("write");
        tunnel.shutdown().await.expect("shutdown");
        let out: Vec<Bytes> = futures_util::StreamExt::collect(ReceiverStream::new(rx)).await;
        // A flush sends what was written since the last one; shutdown sends the rest.
        assert_eq!(
            out,
            [Bytes::from_static(b"abc"), Bytes::from_static(b"def")]
        );
    }

    #[tokio::test]
    async fn gathered_writes_never_exceed_the_limit_and_lose_nothing() {
        let (tx, rx) = mpsc::channel(64);
        let mut tunnel = StreamTunnel::new(Box::pin(futures_util::stream::empty()), tx);
        let frame = vec![7u8; 16 * 1024 + 9];
        for _ in 0..40 {
            tunnel.write_all(&frame).await.expect("write");
        }
        tunnel.shutdown().await.expect("shutdown");
        let out: Vec<Bytes> = futures_util::StreamExt::collect(ReceiverStream::new(rx)).await;
        assert!(out.len() > 1, "40 frames of 16 KiB do not fit one chunk");
        assert!(out.iter().all(|c| c.len() <= GATHER));
        assert_eq!(out.iter().map(Bytes::len).sum::<usize>(), 40 * frame.len());
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
