//! The whole session served over an in-memory pipe, with this test playing the daemon: an
//! HTTP/2 gRPC client that checks health, pulls a directory through FileSync (with the
//! fsutil receiver), pushes outputs through FileSend and asks for credentials.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::grpc::RawCodec;
use super::*;
use crate::fsutil::wire::Packet;
use crate::fsutil::{FileSyncSender, FilterOptions, receive_into};
use crate::proto::moby::filesync::v1::CredentialsRequest;
use crate::proto::moby::filesync::v1::auth_client::AuthClient;

/// hyper's HTTP/2 client handle as a tower service, so tonic clients can use it.
#[derive(Clone)]
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = grpc::BoxFuture<Result<Self::Response, hyper::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        // HTTP/2 needs :scheme and :authority; the daemon uses a dummy host too.
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        if let Ok(uri) = format!("http://session{path}").parse() {
            *req.uri_mut() = uri;
        }
        let fut = self.0.send_request(req);
        Box::pin(fut)
    }
}

async fn daemon_side(session: Session) -> (H2, RunningSession) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let running = session.serve(server_io);
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client_io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    (H2(send), running)
}

/// Calls a bidi method with raw frames: `outgoing` frames are sent, the response frames
/// returned as a stream.
async fn raw_call(
    h2: &H2,
    path: &'static str,
    metadata: &[(&'static str, &str)],
    outgoing: mpsc::Receiver<Bytes>,
) -> Result<tonic::Streaming<Bytes>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(h2.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let mut req = tonic::Request::new(ReceiverStream::new(outgoing));
    for (k, v) in metadata {
        req.metadata_mut().append(*k, v.parse().expect("ascii"));
    }
    let resp = grpc
        .streaming(req, http::uri::PathAndQuery::from_static(path), RawCodec)
        .await?;
    Ok(resp.into_inner())
}

fn packets(
    frames: tonic::Streaming<Bytes>,
) -> impl futures_util::Stream<Item = Result<Packet, tonic::Status>> + Unpin {
    frames.map(|f| {
        f.and_then(|b| Packet::decode(b).map_err(|e| tonic::Status::internal(e.to_string())))
    })
}

/// Forwards packets as encoded frames.
fn encode_packets(mut rx: mpsc::Receiver<Packet>) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if tx.send(Bytes::from(p.encode_to_vec())).await.is_err() {
                break;
            }
        }
    });
    out
}

fn context_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src/nested")).expect("mkdir");
    std::fs::write(dir.path().join("Dockerfile"), b"FROM scratch\n").expect("write");
    std::fs::write(dir.path().join("src/nested/main.rs"), vec![7u8; 200_000]).expect("write");
    std::fs::write(dir.path().join("secret.key"), b"nope").expect("write");
    std::fs::set_permissions(
        dir.path().join("Dockerfile"),
        std::fs::Permissions::from_mode(0o751),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("src/nested", dir.path().join("link")).expect("symlink");
    dir
}

#[tokio::test]
async fn daemon_can_check_health_pull_context_and_push_outputs() {
    let context = context_dir();
    let out = tempfile::tempdir().expect("tempdir");
    let mut session = Session::new("test");
    session.add_local("context", SyncedDir::new(context.path()));
    session.add_output(0, OutputTarget::Directory(out.path().join("local")));
    session.add_output(1, OutputTarget::File(out.path().join("image.tar")));
    session.set_auth(
        DockerConfigAuth::from_json(
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}"#,
        )
        .expect("config"),
    );
    let (h2, running) = daemon_side(session).await;

    // Health, as the daemon polls it.
    let mut health = tonic_health::pb::health_client::HealthClient::new(h2.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // FileSync: the daemon is the fsutil receiver.
    let pulled = tempfile::tempdir().expect("tempdir");
    let (req_tx, req_rx) = mpsc::channel::<Packet>(16);
    let frames = raw_call(
        &h2,
        "/moby.filesync.v1.FileSync/DiffCopy",
        &[("dir-name", "context"), ("exclude-patterns", "*.key")],
        encode_packets(req_rx),
    )
    .await
    .expect("diffcopy");
    let summary = receive_into(pulled.path(), packets(frames), req_tx)
        .await
        .expect("receive");
    assert_eq!(summary.entries, 5);
    assert_eq!(summary.bytes, 200_013);
    assert!(!pulled.path().join("secret.key").exists());
    assert_eq!(
        std::fs::read(pulled.path().join("src/nested/main.rs"))
            .expect("read")
            .len(),
        200_000
    );
    assert_eq!(
        std::fs::read_link(pulled.path().join("link")).expect("link"),
        Path::new("src/nested")
    );
    let src_meta = std::fs::metadata(context.path().join("Dockerfile")).expect("meta");
    let dst_meta = std::fs::metadata(pulled.path().join("Dockerfile")).expect("meta");
    assert_eq!(dst_meta.mode() & 0o777, 0o751);
    assert_eq!(
        (dst_meta.mtime(), dst_meta.mtime_nsec()),
        (src_meta.mtime(), src_meta.mtime_nsec())
    );

    // Unknown names are refused with NotFound.
    let (_tx, rx) = mpsc::channel::<Bytes>(1);
    let err = match raw_call(
        &h2,
        "/moby.filesync.v1.FileSync/DiffCopy",
        &[("dir-name", "other")],
        rx,
    )
    .await
    {
        Ok(mut frames) => frames.next().await.and_then(Result::err).expect("an error"),
        Err(e) => e,
    };
    assert_eq!(err.code(), tonic::Code::NotFound);

    // FileSend, local output: the daemon is the fsutil sender.
    let (frame_tx, frame_rx) = mpsc::channel::<Bytes>(16);
    let frames = raw_call(
        &h2,
        "/moby.filesync.v1.FileSend/DiffCopy",
        &[("buildkit-attachable-exporter-id", "0")],
        frame_rx,
    )
    .await
    .expect("filesend");
    let (pkt_tx, mut pkt_rx) = mpsc::channel::<Result<Packet, tonic::Status>>(16);
    tokio::spawn(async move {
        while let Some(Ok(p)) = pkt_rx.recv().await {
            if frame_tx.send(Bytes::from(p.encode_to_vec())).await.is_err() {
                break;
            }
        }
    });
    let sender = FileSyncSender::new(context.path(), &FilterOptions::default()).expect("sender");
    let sent = sender
        .run(packets(frames), pkt_tx)
        .await
        .expect("send output");
    assert_eq!(sent.files_sent, 3);
    assert_eq!(
        std::fs::read(out.path().join("local/secret.key")).expect("read"),
        b"nope"
    );

    // FileSend, tarball output: BytesMessage frames into a file.
    let (frame_tx, frame_rx) = mpsc::channel::<Bytes>(16);
    let mut frames = raw_call(
        &h2,
        "/moby.filesync.v1.FileSend/DiffCopy",
        &[("buildkit-attachable-exporter-id", "1")],
        frame_rx,
    )
    .await
    .expect("filesend tar");
    for chunk in [&b"tar-"[..], b"bytes"] {
        let msg = crate::proto::moby::buildkit::v1::BytesMessage {
            data: Bytes::copy_from_slice(chunk),
        };
        frame_tx
            .send(Bytes::from(msg.encode_to_vec()))
            .await
            .expect("send");
    }
    drop(frame_tx);
    assert!(
        frames.next().await.is_none(),
        "tar output ends without error"
    );
    assert_eq!(
        std::fs::read(out.path().join("image.tar")).expect("read"),
        b"tar-bytes"
    );

    // Auth: Docker Hub is asked for as registry-1.docker.io.
    let creds = AuthClient::new(h2.clone())
        .credentials(CredentialsRequest {
            host: "registry-1.docker.io".into(),
        })
        .await
        .expect("credentials")
        .into_inner();
    assert_eq!(
        (creds.username.as_str(), creds.secret.as_str()),
        ("hub", "pw")
    );

    drop(h2);
    running.close().await.expect("close");
}

/// Measures a full context pull of 10,000 files (100 directories × 100 files of 1 KiB)
/// through the session over an in-memory HTTP/2 pipe. Run with
/// `cargo test -p brix-solver-client --release -- --ignored --nocapture sync_10k`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn sync_10k_files() {
    let context = tempfile::tempdir().expect("tempdir");
    for d in 0..100 {
        let dir = context.path().join(format!("dir{d:03}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..100 {
            std::fs::write(dir.join(format!("file{f:03}.txt")), [b'x'; 1024]).expect("write");
        }
    }
    let walk_start = std::time::Instant::now();
    let walker =
        crate::fsutil::Walker::new(context.path(), &FilterOptions::default()).expect("walker");
    let mut n = 0;
    walker
        .walk(&mut |_| {
            n += 1;
            Ok(())
        })
        .expect("walk");
    let walk_time = walk_start.elapsed();

    let mut session = Session::new("bench");
    session.add_local("context", SyncedDir::new(context.path()));
    let (h2, running) = daemon_side(session).await;
    // A receiver that requests every file and drops the data: the sender's own cost.
    let start = std::time::Instant::now();
    let (req_tx, req_rx) = mpsc::channel::<Packet>(16);
    let mut frames = packets(
        raw_call(
            &h2,
            "/moby.filesync.v1.FileSync/DiffCopy",
            &[("dir-name", "context")],
            encode_packets(req_rx),
        )
        .await
        .expect("diffcopy"),
    );
    let (mut next_id, mut pending, mut stats_done, mut bytes) = (0u32, 0usize, false, 0usize);
    while let Some(p) = frames.next().await {
        let p = p.expect("packet");
        match p.kind() {
            Some(crate::fsutil::wire::PacketType::PacketStat) => match p.stat {
                Some(stat) => {
                    if crate::fsutil::mode::is_regular(stat.mode) {
                        let mut req = Packet::of(crate::fsutil::wire::PacketType::PacketReq);
                        req.id = next_id;
                        req_tx.send(req).await.expect("req");
                        pending += 1;
                    }
                    next_id += 1;
                }
                None => stats_done = true,
            },
            Some(crate::fsutil::wire::PacketType::PacketData) if p.data.is_empty() => pending -= 1,
            Some(crate::fsutil::wire::PacketType::PacketData) => bytes += p.data.len(),
            _ => break,
        }
        if stats_done && pending == 0 {
            req_tx
                .send(Packet::of(crate::fsutil::wire::PacketType::PacketFin))
                .await
                .expect("fin");
            stats_done = false;
        }
    }
    let send_time = start.elapsed();
    assert_eq!(bytes, 10_000 * 1024);

    let pulled = tempfile::tempdir().expect("tempdir");
    let start = std::time::Instant::now();
    let (req_tx, req_rx) = mpsc::channel::<Packet>(16);
    let frames = raw_call(
        &h2,
        "/moby.filesync.v1.FileSync/DiffCopy",
        &[("dir-name", "context")],
        encode_packets(req_rx),
    )
    .await
    .expect("diffcopy");
    let summary = receive_into(pulled.path(), packets(frames), req_tx)
        .await
        .expect("receive");
    let sync_time = start.elapsed();
    assert_eq!(n, 10_100);
    assert_eq!(summary.entries, 10_100);
    assert_eq!(summary.bytes, 10_000 * 1024);
    println!(
        "walk of {n} entries: {walk_time:?}; walk+send over HTTP/2 to a discarding receiver: {send_time:?}; \
         walk+send+receive to disk: {sync_time:?}"
    );
    drop(h2);
    running.close().await.expect("close");
}

#[tokio::test]
async fn the_daemon_pulls_an_upload_in_chunks_as_often_as_it_asks() {
    use crate::proto::moby::upload::v1::BytesMessage as UploadChunk;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("context.tar");
    // More than one 3 MiB chunk.
    let data: Vec<u8> = (0..(3 << 20) + 4096).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let mut session = Session::new("");
    let url = session.add_upload(&file);
    let id = url.strip_prefix(UPLOAD_URL_PREFIX).expect("an upload URL");
    assert!(session.methods().contains(&"/moby.upload.v1.Upload/Pull"));
    let (h2, running) = daemon_side(session).await;
    let url_path = format!("/{id}");
    for _ in 0..2 {
        let (_tx, rx) = mpsc::channel(1);
        let mut frames = raw_call(
            &h2,
            "/moby.upload.v1.Upload/Pull",
            &[("urlpath", &url_path), ("urlhost", "buildkit-session")],
            rx,
        )
        .await
        .expect("pull");
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(frame) = frames.next().await {
            let chunk = UploadChunk::decode(frame.expect("frame")).expect("decode");
            assert!(chunk.data.len() <= 3 << 20, "chunks of at most 3 MiB");
            got.extend_from_slice(&chunk.data);
            chunks += 1;
        }
        assert_eq!(chunks, 2);
        assert!(got == data, "the whole file, every time");
    }
    let (_tx, rx) = mpsc::channel(1);
    let err = match raw_call(
        &h2,
        "/moby.upload.v1.Upload/Pull",
        &[("urlpath", "/nope")],
        rx,
    )
    .await
    {
        Ok(mut frames) => frames
            .next()
            .await
            .expect("an answer")
            .expect_err("an unknown upload"),
        Err(status) => status,
    };
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message()
            .contains("no http response from session for nope")
    );
    running.close().await.expect("close");
}
