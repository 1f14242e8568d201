//! The Content service inside a whole session served over an in-memory pipe, with the test
//! playing the daemon: containerd's proxy store's calls (STAT with ref, total and expected;
//! WRITEs at the current offset; COMMIT with size and digest), made through the same
//! generated client brix uses for the daemon's own store.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request};

use super::*;
use crate::ControlClient;
use crate::control::RawContentClient;
use crate::session::{RunningSession, Session};

const STORE_ID: &str = "local:cache";

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Serves `session` over a pipe and returns the daemon's client of its Content service.
async fn daemon_side(session: Session) -> (RawContentClient, RunningSession) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let running = session.serve(server_io);
    let pipe = Arc::new(Mutex::new(Some(client_io)));
    let client = ControlClient::from_connector("session", move || {
        let io = pipe.lock().ok().and_then(|mut p| p.take());
        async move { io.ok_or_else(|| std::io::Error::other("the session pipe is in use")) }
    })
    .await
    .expect("connect to the session");
    (client.content(), running)
}

async fn session_with_store(root: &Path) -> (RawContentClient, RunningSession) {
    let store = LocalContentStore::open(root).expect("open store");
    let mut session = Session::new("test");
    session.add_content_store(STORE_ID, store);
    daemon_side(session).await
}

/// `message` with the store ID the daemon sends.
fn to_store<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(STORE_ID_KEY, STORE_ID.parse().expect("ascii"));
    request
}

/// A Write call driven one request at a time, as containerd's remote writer does.
struct Writer {
    requests: mpsc::Sender<pb::WriteContentRequest>,
    answers: Streaming<pb::WriteContentResponse>,
}

impl Writer {
    async fn open(client: &mut RawContentClient) -> Writer {
        let (requests, rx) = mpsc::channel(4);
        let answers = client
            .write(to_store(ReceiverStream::new(rx)))
            .await
            .expect("write call")
            .into_inner();
        Writer { requests, answers }
    }

    async fn send(
        &mut self,
        request: pb::WriteContentRequest,
    ) -> Result<pb::WriteContentResponse, Status> {
        self.requests.send(request).await.expect("request sent");
        match self.answers.message().await? {
            Some(answer) => Ok(answer),
            None => Err(Status::unknown("write stream ended without an answer")),
        }
    }

    async fn stat(
        &mut self,
        r#ref: &str,
        total: i64,
        expected: &str,
    ) -> Result<pb::WriteContentResponse, Status> {
        self.send(pb::WriteContentRequest {
            action: pb::WriteAction::Stat.into(),
            r#ref: r#ref.into(),
            total,
            expected: expected.into(),
            ..Default::default()
        })
        .await
    }

    async fn write(
        &mut self,
        offset: i64,
        data: &[u8],
    ) -> Result<pb::WriteContentResponse, Status> {
        self.send(pb::WriteContentRequest {
            action: pb::WriteAction::Write.into(),
            offset,
            data: data.to_vec(),
            ..Default::default()
        })
        .await
    }

    async fn commit(
        &mut self,
        offset: i64,
        total: i64,
        expected: &str,
    ) -> Result<pb::WriteContentResponse, Status> {
        self.send(pb::WriteContentRequest {
            action: pb::WriteAction::Commit.into(),
            offset,
            total,
            expected: expected.into(),
            ..Default::default()
        })
        .await
    }
}

/// Writes `data` as the daemon's content copy does: STAT, WRITE chunks, COMMIT.
async fn copy_in(
    client: &mut RawContentClient,
    r#ref: &str,
    data: &[u8],
) -> Result<String, Status> {
    let total = i64::try_from(data.len()).expect("size");
    let digest = digest_of(data);
    let mut writer = Writer::open(client).await;
    let mut offset = writer.stat(r#ref, total, &digest).await?.offset;
    assert_eq!(offset, 0);
    for chunk in data.chunks(64 << 10) {
        let answer = writer.write(offset, chunk).await?;
        assert_eq!(
            answer.offset - offset,
            i64::try_from(chunk.len()).expect("len")
        );
        offset = answer.offset;
    }
    let answer = writer.commit(offset, total, &digest).await?;
    assert_eq!(answer.offset, total);
    Ok(answer.digest)
}

async fn read_all(client: &mut RawContentClient, digest: &str, offset: i64, size: i64) -> Vec<u8> {
    let mut stream = client
        .read(to_store(pb::ReadContentRequest {
            digest: digest.into(),
            offset,
            size,
        }))
        .await
        .expect("read")
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        assert_eq!(
            chunk.offset,
            offset + i64::try_from(out.len()).expect("len")
        );
        assert!(chunk.data.len() <= store::READ_CHUNK);
        out.extend_from_slice(&chunk.data);
    }
    out
}

/// The names under `dir`, sorted, as `a/b` paths (files and empty folders).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        if entries.is_empty() && dir != base {
            out.push(format!(
                "{}/",
                dir.strip_prefix(base).expect("below").display()
            ));
        }
        for path in entries {
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .expect("below")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn blob(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

#[tokio::test]
async fn writes_a_blob_and_reads_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("cache");
    let (mut client, running) = session_with_store(&root).await;
    // Spans more than one read chunk.
    let data: Vec<u8> = (0..(store::READ_CHUNK + 4321))
        .map(|i| (i % 251) as u8)
        .collect();
    let digest = digest_of(&data);

    let committed = copy_in(&mut client, "layer-sha256:x", &data)
        .await
        .expect("write");
    assert_eq!(committed, digest);

    let info = client
        .info(to_store(pb::InfoRequest {
            digest: digest.clone(),
        }))
        .await
        .expect("info")
        .into_inner()
        .info
        .expect("an info");
    assert_eq!(info.digest, digest);
    assert_eq!(info.size, i64::try_from(data.len()).expect("size"));
    assert!(info.created_at.is_some() && info.updated_at.is_some());

    assert_eq!(read_all(&mut client, &digest, 0, 0).await, data);
    assert_eq!(read_all(&mut client, &digest, 10, 5).await, &data[10..15]);
    assert_eq!(
        read_all(&mut client, &digest, 100, 1 << 30).await,
        &data[100..]
    );
    let past = client
        .read(to_store(pb::ReadContentRequest {
            digest: digest.clone(),
            offset: i64::try_from(data.len()).expect("size") + 1,
            size: 0,
        }))
        .await;
    let past = match past {
        Ok(response) => response
            .into_inner()
            .message()
            .await
            .expect_err("past the end"),
        Err(status) => status,
    };
    assert_eq!(past.code(), Code::OutOfRange);

    // List and Update see it; Delete removes it.
    let mut listed = client
        .list(to_store(pb::ListContentRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let batch = listed.message().await.expect("batch").expect("one batch");
    assert_eq!(batch.info.len(), 1);
    assert_eq!(batch.info[0].digest, digest);
    assert!(listed.message().await.expect("end").is_none());
    let updated = client
        .update(to_store(pb::UpdateRequest {
            info: Some(pb::Info {
                digest: digest.clone(),
                labels: [("k".to_owned(), "v".to_owned())].into(),
                ..Default::default()
            }),
            update_mask: None,
        }))
        .await
        .expect("update is accepted")
        .into_inner();
    assert_eq!(updated.info.map(|i| i.size), Some(info.size));

    // The folder is containerd's local layout, nothing else.
    let hex = &digest["sha256:".len()..];
    assert_eq!(tree(&root), vec![blob(hex), "ingest/".to_owned()]);

    client
        .delete(to_store(pb::DeleteContentRequest {
            digest: digest.clone(),
        }))
        .await
        .expect("delete");
    let gone = client
        .info(to_store(pb::InfoRequest { digest }))
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);

    drop(client);
    running.close().await.expect("close");
}

#[tokio::test]
async fn an_existing_blob_is_already_exists_and_a_wrong_digest_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut client, running) = session_with_store(dir.path()).await;
    let digest = copy_in(&mut client, "config", b"{}")
        .await
        .expect("first write");

    // The daemon's copy treats this as "already there".
    let again = copy_in(&mut client, "config", b"{}")
        .await
        .expect_err("second write");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&digest), "{}", again.message());

    // Right size, wrong bytes: refused at commit, nothing left behind.
    let claimed = digest_of(b"the real thing");
    let mut writer = Writer::open(&mut client).await;
    writer.stat("bad", 14, &claimed).await.expect("stat");
    writer.write(0, b"something else").await.expect("write");
    let refused = writer.commit(14, 14, &claimed).await.expect_err("commit");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("unexpected commit digest"));
    // Wrong size: refused too.
    let mut writer = Writer::open(&mut client).await;
    writer.stat("short", 100, "").await.expect("stat");
    writer.write(0, b"abc").await.expect("write");
    let refused = writer.commit(3, 100, "").await.expect_err("commit");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let hex = &digest["sha256:".len()..];
    assert_eq!(tree(dir.path()), vec![blob(hex), "ingest/".to_owned()]);

    drop(client);
    running.close().await.expect("close");
}

#[tokio::test]
async fn writes_follow_containerds_offsets_and_refs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut client, running) = session_with_store(dir.path()).await;

    // The first message must name the write.
    let mut writer = Writer::open(&mut client).await;
    let err = writer.write(0, b"x").await.expect_err("no ref");
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut writer = Writer::open(&mut client).await;
    let stat = writer.stat("blob-1", 0, "").await.expect("stat");
    assert_eq!(
        (stat.offset, stat.digest.as_str()),
        (0, digest_of(b"").as_str())
    );
    writer.write(0, b"hello ").await.expect("write");
    let err = writer
        .write(3, b"x")
        .await
        .expect_err("not the current offset");
    assert_eq!(err.code(), Code::OutOfRange);

    // A ref is written by one stream at a time; the other is told to retry.
    let mut first = Writer::open(&mut client).await;
    first.stat("blob-2", 0, "").await.expect("stat");
    first.write(0, b"stale").await.expect("write");
    let mut second = Writer::open(&mut client).await;
    let locked = second.stat("blob-2", 0, "").await.expect_err("locked");
    assert_eq!(locked.code(), Code::Unavailable);

    // Status and ListStatuses see the write in progress; offset 0 starts it over.
    let status = client
        .status(to_store(pb::StatusRequest {
            r#ref: "blob-2".into(),
        }))
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("a status");
    assert_eq!(status.offset, 5);
    let statuses = client
        .list_statuses(to_store(pb::ListStatusesRequest {
            filters: vec!["ref~=^blob-".into()],
        }))
        .await
        .expect("list statuses")
        .into_inner()
        .statuses;
    assert_eq!(
        statuses
            .iter()
            .map(|s| s.r#ref.as_str())
            .collect::<Vec<_>>(),
        ["blob-2"]
    );
    let restarted = first.write(0, b"fresh").await.expect("restart");
    assert_eq!(restarted.offset, 5);
    let committed = first.commit(5, 5, "").await.expect("commit");
    assert_eq!(committed.digest, digest_of(b"fresh"));
    assert_eq!(committed.action, i32::from(pb::WriteAction::Commit));

    // Abort ends a write: its stream fails on the next message and its data is gone.
    let mut aborted = Writer::open(&mut client).await;
    aborted.stat("blob-3", 0, "").await.expect("stat");
    aborted.write(0, b"doomed").await.expect("write");
    client
        .abort(to_store(pb::AbortRequest {
            r#ref: "blob-3".into(),
        }))
        .await
        .expect("abort");
    let err = aborted.write(6, b"more").await.expect_err("aborted");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .abort(to_store(pb::AbortRequest {
            r#ref: "blob-3".into(),
        }))
        .await
        .expect_err("nothing to abort");
    assert_eq!(err.code(), Code::NotFound);

    // A stream the daemon drops midway leaves no ref and no data behind.
    let mut dropped = Writer::open(&mut client).await;
    dropped.stat("blob-4", 0, "").await.expect("stat");
    dropped.write(0, b"half").await.expect("write");
    drop(dropped);
    drop(writer);
    drop(second);
    let ingest = dir.path().join("ingest");
    for _ in 0..200 {
        if std::fs::read_dir(&ingest).expect("ingest").next().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        tree(dir.path()),
        vec![
            blob(&digest_of(b"fresh")["sha256:".len()..]),
            "ingest/".to_owned()
        ]
    );
    let err = client
        .status(to_store(pb::StatusRequest {
            r#ref: "blob-4".into(),
        }))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);

    drop(client);
    running.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_blob_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = digest_of(&data);
    // Two builds into one directory (two stores, two sessions), and two refs in each.
    let (a, running_a) = session_with_store(dir.path()).await;
    let (b, running_b) = session_with_store(dir.path()).await;
    let mut tasks = Vec::new();
    for (i, client) in [a.clone(), a, b.clone(), b].into_iter().enumerate() {
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            // Each writer interleaves its chunks with the others': no STAT with an expected
            // digest, so none of them stops early.
            let mut writer = Writer::open(&mut client).await;
            writer.stat(&format!("ref-{i}"), 0, "").await?;
            let mut offset = 0;
            for chunk in data.chunks(10_000) {
                offset = writer.write(offset, chunk).await?.offset;
                tokio::task::yield_now().await;
            }
            let total = i64::try_from(data.len()).expect("size");
            let done = writer.commit(offset, total, &digest_of(&data)).await;
            Ok::<_, Status>(done?.digest)
        }));
    }
    // A commit that finds the blob already stored answers AlreadyExists, which the daemon's
    // copy counts as success; at least one writer stores it.
    let mut stored = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(committed) => {
                assert_eq!(committed, digest);
                stored += 1;
            }
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status}"),
        }
    }
    assert!(stored >= 1);
    let hex = &digest["sha256:".len()..];
    assert_eq!(tree(dir.path()), vec![blob(hex), "ingest/".to_owned()]);
    assert_eq!(
        std::fs::read(dir.path().join(blob(hex))).expect("blob"),
        data
    );
    running_a.close().await.expect("close");
    running_b.close().await.expect("close");
}

#[tokio::test]
async fn refuses_invalid_digests_and_unknown_or_missing_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut client, running) = session_with_store(dir.path()).await;

    for bad in [
        "sha256:../../etc/passwd",
        "sha512:abcd",
        "SHA256:0000000000000000000000000000000000000000000000000000000000000000",
        "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000",
        "sha256:abc",
    ] {
        let err = client
            .info(to_store(pb::InfoRequest { digest: bad.into() }))
            .await
            .expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        let mut writer = Writer::open(&mut client).await;
        let err = writer.stat("w", 0, bad).await.expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }

    let missing = client
        .info(Request::new(pb::InfoRequest {
            digest: digest_of(b"x"),
        }))
        .await
        .expect_err("no store id");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().contains("request lacks metadata"));
    let mut other = Request::new(pb::ListStatusesRequest::default());
    other
        .metadata_mut()
        .insert(STORE_ID_KEY, "local:elsewhere".parse().expect("ascii"));
    let unknown = client
        .list_statuses(other)
        .await
        .expect_err("unknown store");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), "unknown store local:elsewhere");
    let (_requests, rx) = mpsc::channel::<pb::WriteContentRequest>(1);
    let err = match client.write(Request::new(ReceiverStream::new(rx))).await {
        Err(status) => status,
        Ok(answers) => answers
            .into_inner()
            .message()
            .await
            .expect_err("no store id"),
    };
    assert_eq!(err.code(), Code::InvalidArgument);

    drop(client);
    running.close().await.expect("close");
}

#[test]
fn every_content_method_is_announced_once_a_store_is_added() {
    let mut session = Session::new("k");
    assert!(
        !session
            .methods()
            .iter()
            .any(|m| m.starts_with("/containerd.services.content.v1.Content/"))
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalContentStore::open(dir.path()).expect("open");
    session.add_content_store(STORE_ID, store);
    let methods = session.methods();
    for method in METHODS {
        assert_eq!(
            methods.iter().filter(|m| **m == method).count(),
            1,
            "{method}"
        );
    }
    for rpc in [
        "Info",
        "Update",
        "List",
        "Delete",
        "Read",
        "Status",
        "ListStatuses",
        "Write",
        "Abort",
    ] {
        assert!(
            METHODS.contains(&format!("/containerd.services.content.v1.Content/{rpc}").as_str())
        );
    }
}
