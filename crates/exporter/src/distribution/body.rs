//! Upload bodies: a blob streamed from disk (or from another registry) in 1 MiB chunks,
//! hashed on the way; the stream ends with an error instead of its last chunk when the
//! content does not hash to its digest, which aborts the upload before the registry can
//! complete it.

use std::path::Path;

use futures_util::{StreamExt as _, stream};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::retry::ContentMismatch;

/// What an upload stream fails with.
pub(crate) type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// Where an uploaded blob's bytes come from. Each try of an upload opens it again.
pub(crate) enum UploadBody<'a> {
    /// A file (an OCI layout's blob).
    File(&'a Path),
    /// Bytes in memory (a small config).
    Bytes(bytes::Bytes),
    /// The same blob in another repository (of any registry).
    Registry {
        /// The client of the registry that has it.
        client: &'a super::RegistryClient,
        /// The repository there.
        repository: &'a str,
    },
}

impl UploadBody<'_> {
    /// A fresh body for `digest`.
    pub(crate) async fn open(&self, digest: &str) -> crate::Result<reqwest::Body> {
        match self {
            UploadBody::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| crate::Error::io("cannot read", *path, e))?;
                Ok(reqwest::Body::wrap_stream(verified_file_stream(
                    file,
                    digest.to_owned(),
                )))
            }
            UploadBody::Bytes(bytes) => Ok(reqwest::Body::from(bytes.clone())),
            UploadBody::Registry { client, repository } => {
                let response = client.blob_response(repository, digest).await?;
                let chunks = response.bytes_stream();
                Ok(reqwest::Body::wrap_stream(verified_stream(
                    chunks,
                    digest.to_owned(),
                )))
            }
        }
    }
}

/// Streams a file in 1 MiB chunks, hashing as it goes.
pub(crate) fn verified_file_stream(
    file: tokio::fs::File,
    digest: String,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, StreamError>> + Send + 'static {
    let chunks = stream::try_unfold(file, |mut file| async move {
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        while buf.len() < (1 << 20) {
            if file.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        if buf.is_empty() {
            Ok::<_, std::io::Error>(None)
        } else {
            Ok(Some((buf.freeze(), file)))
        }
    });
    verified_stream(chunks, digest)
}

/// `chunks`, checked against `digest` before the last one is handed over.
pub(crate) fn verified_stream<S, E>(
    chunks: S,
    digest: String,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, StreamError>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Into<StreamError> + Send + 'static,
{
    use futures_util::Stream as _;
    use std::task::Poll;
    let mut hasher = Sha256::new();
    let mut chunks = Box::pin(chunks.peekable());
    // The chunk taken from `chunks` but not yet handed over: it waits here while peeking
    // for the end is still pending, so nothing is lost when the source is slow.
    let mut held: Option<bytes::Bytes> = None;
    let mut finished = false;
    stream::poll_fn(move |cx| {
        if finished {
            return Poll::Ready(None);
        }
        if held.is_none() {
            match futures_util::ready!(chunks.as_mut().poll_next(cx)) {
                None => {
                    finished = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    held = Some(chunk);
                }
            }
        }
        // Check the digest before handing over the last chunk, so a corrupt blob never
        // completes an upload.
        let at_end = futures_util::ready!(chunks.as_mut().poll_peek(cx)).is_none();
        let chunk = held.take().unwrap_or_default();
        if at_end {
            let actual = format!("sha256:{:x}", hasher.clone().finalize());
            if actual != digest {
                finished = true;
                return Poll::Ready(Some(Err(Box::new(ContentMismatch {
                    expected: digest.clone(),
                    actual,
                }) as StreamError)));
            }
        }
        Poll::Ready(Some(Ok(chunk)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::descriptor::sha256_digest;

    #[tokio::test]
    async fn a_stream_that_does_not_match_its_digest_fails_before_its_end() {
        let chunks = stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"ab")),
            Ok(bytes::Bytes::from_static(b"c")),
        ]);
        let good: Vec<_> = verified_stream(chunks, sha256_digest(b"abc"))
            .collect()
            .await;
        assert!(good.iter().all(|c| c.is_ok()));
        let chunks = stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"ab")),
            Ok(bytes::Bytes::from_static(b"c")),
        ]);
        let bad: Vec<_> = verified_stream(chunks, sha256_digest(b"abd"))
            .collect()
            .await;
        assert!(bad[0].is_ok());
        let err = bad[1].as_ref().unwrap_err();
        assert!(
            err.downcast_ref::<ContentMismatch>().is_some(),
            "the last chunk is replaced by the mismatch: {err}"
        );
    }

    #[tokio::test]
    async fn a_slow_source_loses_no_chunk() {
        // Each chunk arrives only after the task has yielded once, as a file read under load
        // does: the stream must hold the chunk it took while it waits for the next.
        let parts: Vec<&'static [u8]> = vec![b"ab", b"cd", b"e"];
        let slow = stream::unfold(parts.into_iter(), |mut parts| async move {
            tokio::task::yield_now().await;
            parts
                .next()
                .map(|p| (Ok::<_, std::io::Error>(bytes::Bytes::from_static(p)), parts))
        });
        let out: Vec<_> = verified_stream(slow, sha256_digest(b"abcde"))
            .collect()
            .await;
        let bytes: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"abcde");
    }

    #[tokio::test]
    async fn a_file_streams_in_chunks_and_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(3u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks: Vec<_> = verified_file_stream(file, sha256_digest(&data))
            .collect()
            .await;
        assert_eq!(chunks.len(), 4, "three full MiB and the rest");
        let total: usize = chunks.iter().map(|c| c.as_ref().unwrap().len()).sum();
        assert_eq!(total, data.len());
    }
}
