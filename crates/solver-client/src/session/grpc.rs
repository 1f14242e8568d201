//! Small gRPC building blocks for the session services that are written by hand rather than
//! generated: FileSync and FileSend carry messages that the generated types cannot (byte
//! paths; `Packet`s on a method declared for `BytesMessage`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status, Streaming};

/// The daemon's session client allows 16 MiB messages (containerd's defaults); so do we.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A codec that hands message bytes through untouched, so one method can carry different
/// message types (BuildKit's FileSend sends `Packet`s to `local` outputs and `BytesMessage`s
/// to tar outputs on the same method).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encoder and decoder of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawCoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What a bidi-streaming handler returns: the response stream, or an error status.
pub type BidiResult<T> = Result<Response<ReceiverStream<Result<T, Status>>>, Status>;

/// A bidi-streaming method implemented by a session service.
pub trait BidiMethod<M>: Clone + Send + 'static {
    /// The response message type.
    type Out;
    /// Handles one call.
    fn handle(&self, req: Request<Streaming<M>>) -> BoxFuture<BidiResult<Self::Out>>;
}

/// Adapts a [`BidiMethod`] to tonic's streaming-service trait. (A named type rather than a
/// closure: closures returning boxed futures trip rustc's higher-ranked `Send` inference.)
#[derive(Clone)]
pub struct BidiHandler<H>(pub H);

impl<H, M> tower_service::Service<Request<Streaming<M>>> for BidiHandler<H>
where
    H: BidiMethod<M>,
{
    type Response = Response<ReceiverStream<Result<H::Out, Status>>>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Streaming<M>>) -> Self::Future {
        self.0.handle(req)
    }
}

/// The HTTP response for a method this service does not implement.
pub fn unimplemented_response() -> http::Response<tonic::body::Body> {
    Status::unimplemented("method not served by this session").into_http()
}

/// The response type of every session route.
pub type RouteResult = Result<http::Response<tonic::body::Body>, Infallible>;

/// Serves one session request: a call of `path` goes to the bidi-streaming `handler`, its
/// messages coded by `codec` (up to [`MAX_MESSAGE_SIZE`] each way); any other method of the
/// service is answered "unimplemented".
pub fn serve_bidi<C, H>(
    req: http::Request<tonic::body::Body>,
    path: &str,
    codec: C,
    handler: H,
) -> BoxFuture<RouteResult>
where
    C: Codec + Send + 'static,
    C::Decode: Send + 'static,
    C::Encode: Send + 'static,
    H: BidiMethod<C::Decode, Out = C::Encode>,
{
    if req.uri().path() != path {
        return Box::pin(async { Ok(unimplemented_response()) });
    }
    Box::pin(async move {
        let mut grpc = tonic::server::Grpc::new(codec)
            .apply_max_message_size_config(Some(MAX_MESSAGE_SIZE), Some(MAX_MESSAGE_SIZE));
        Ok(grpc.streaming(BidiHandler(handler), req).await)
    })
}
