//! The sending side of DiffCopy (fsutil `send.go`): what the client runs when the daemon
//! calls `FileSync.DiffCopy` to pull a build context.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::mode;
use super::walk::{FilterOptions, WalkEntry, WalkError, Walker};
use super::wire::{Packet, PacketType};

/// Chunk size for file contents, as fsutil's buffer pool (32 KiB).
const CHUNK: usize = 32 * 1024;
/// Files sent at the same time, as fsutil's four send workers.
const PARALLEL_FILES: usize = 4;
/// Files up to this size are read by one task on the runtime, one after the other, rather
/// than each on a blocking thread: a page-cache read of a few KiB costs less than the two
/// thread hand-offs of a blocking task, which dominated the client's CPU on contexts of
/// many small files.
const INLINE_MAX: u64 = 64 * 1024;

/// A requested regular file: where it is and the size the walk saw.
type FileTable = Arc<Mutex<HashMap<u32, (PathBuf, u64)>>>;

/// Failure while serving a DiffCopy as the sender.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Walking the directory failed; the receiver was sent an ERR packet.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// The receiver asked for an ID that is not a regular file or was already sent.
    #[error("receiver requested invalid file id {0}")]
    InvalidId(u32),
    /// The receiver reported an error.
    #[error("error from receiver: {0}")]
    Receiver(String),
    /// The stream failed or ended before FIN.
    #[error("file sync stream failed: {0}")]
    Stream(String),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Counters of one completed transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// STAT packets sent (entries).
    pub entries: u32,
    /// Files whose contents the receiver requested.
    pub files_sent: u32,
    /// Content bytes sent.
    pub bytes_sent: u64,
}

/// Serves one DiffCopy call as the sender: streams the filtered tree of a directory and
/// answers the receiver's file requests while the stats are still going out.
#[derive(Debug)]
pub struct FileSyncSender {
    walker: Arc<Walker>,
}

impl FileSyncSender {
    /// Prepares to send `root` with the given filters (resolving follow paths now).
    pub fn new(root: &Path, filter: &FilterOptions) -> Result<Self, SendError> {
        Ok(FileSyncSender {
            walker: Arc::new(Walker::new(root, filter)?),
        })
    }

    /// Runs the protocol until the receiver's FIN has been answered. `incoming` is the
    /// receiver's packets; packets for the receiver go to `outgoing`. On failure an ERR
    /// packet is sent when the walk failed (as fsutil does) and the error is returned; the
    /// caller decides how to end the RPC.
    pub async fn run<S>(
        self,
        mut incoming: S,
        outgoing: mpsc::Sender<Result<Packet, tonic::Status>>,
    ) -> Result<SendSummary, SendError>
    where
        S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
    {
        let files: FileTable = Arc::default();
        let mut stats_task = tokio::spawn(send_stats(
            Arc::clone(&self.walker),
            Arc::clone(&files),
            outgoing.clone(),
        ));
        let mut stats_done: Option<u32> = None;
        let permits = Arc::new(Semaphore::new(PARALLEL_FILES));
        let mut file_tasks: JoinSet<Result<u64, SendError>> = JoinSet::new();
        let mut summary = SendSummary::default();
        let (small_tx, small_rx) = mpsc::unbounded_channel::<(u32, PathBuf)>();
        let mut small_tx = Some(small_tx);
        let mut small_task = tokio::spawn(send_small_files(small_rx, outgoing.clone()));

        let result = loop {
            tokio::select! {
                stats = &mut stats_task, if stats_done.is_none() => {
                    match stats {
                        Ok(Ok(entries)) => stats_done = Some(entries),
                        Ok(Err(e)) => break Err(e),
                        Err(join) => break Err(SendError::Stream(format!("stat sender stopped: {join}"))),
                    }
                }
                small = &mut small_task => {
                    // Ends before FIN only on a failure (its sender is kept until then).
                    match small {
                        Ok(Ok(_)) => break Err(SendError::Stream("small-file sender stopped".into())),
                        Ok(Err(e)) => break Err(e),
                        Err(join) => break Err(SendError::Stream(format!("small-file sender stopped: {join}"))),
                    }
                }
                Some(done) = file_tasks.join_next(), if !file_tasks.is_empty() => {
                    match done {
                        Ok(Ok(bytes)) => {
                            summary.files_sent += 1;
                            summary.bytes_sent += bytes;
                        }
                        Ok(Err(e)) => break Err(e),
                        Err(join) => break Err(SendError::Stream(format!("file sender stopped: {join}"))),
                    }
                }
                packet = incoming.next() => {
                    let packet = match packet {
                        Some(Ok(p)) => p,
                        Some(Err(status)) => break Err(SendError::Stream(status.message().to_owned())),
                        None => break Err(SendError::Stream("receiver closed the stream before FIN".into())),
                    };
                    match packet.kind() {
                        Some(PacketType::PacketReq) => {
                            let path = files
                                .lock()
                                .map_err(|_| SendError::Stream("file table poisoned".into()))
                                .and_then(|mut f| f.remove(&packet.id).ok_or(SendError::InvalidId(packet.id)));
                            let (path, size) = match path {
                                Ok(p) => p,
                                Err(e) => break Err(e),
                            };
                            if size <= INLINE_MAX {
                                if let Some(tx) = &small_tx
                                    && tx.send((packet.id, path)).is_ok()
                                {
                                    continue;
                                }
                                break Err(SendError::Stream("small-file sender stopped".into()));
                            }
                            // Wait for a worker slot inside the task, so this loop keeps
                            // reading requests and can never block the receiver.
                            let permits = Arc::clone(&permits);
                            let out = outgoing.clone();
                            file_tasks.spawn(async move {
                                let _permit = permits
                                    .acquire_owned()
                                    .await
                                    .map_err(|_| SendError::Stream("file workers closed".into()))?;
                                send_file(packet.id, &path, &out).await
                            });
                        }
                        Some(PacketType::PacketFin) => {
                            // The receiver has everything; finish pending sends, then answer.
                            small_tx = None;
                            match (&mut small_task).await {
                                Ok(Ok((files, bytes))) => {
                                    summary.files_sent += files;
                                    summary.bytes_sent += bytes;
                                }
                                Ok(Err(e)) => return Err(e),
                                Err(join) => return Err(SendError::Stream(join.to_string())),
                            }
                            while let Some(done) = file_tasks.join_next().await {
                                match done {
                                    Ok(Ok(bytes)) => {
                                        summary.files_sent += 1;
                                        summary.bytes_sent += bytes;
                                    }
                                    Ok(Err(e)) => return Err(e),
                                    Err(join) => return Err(SendError::Stream(join.to_string())),
                                }
                            }
                            if stats_done.is_none() {
                                match (&mut stats_task).await {
                                    Ok(Ok(entries)) => stats_done = Some(entries),
                                    Ok(Err(e)) => return Err(e),
                                    Err(join) => return Err(SendError::Stream(join.to_string())),
                                }
                            }
                            if outgoing.send(Ok(Packet::of(PacketType::PacketFin))).await.is_err() {
                                break Err(SendError::Stream("stream closed before FIN".into()));
                            }
                            summary.entries = stats_done.unwrap_or_default();
                            break Ok(summary);
                        }
                        Some(PacketType::PacketErr) => {
                            break Err(SendError::Receiver(String::from_utf8_lossy(&packet.data).into_owned()));
                        }
                        // STAT and DATA are never sent to a sender; ignore like fsutil does.
                        _ => {}
                    }
                }
            }
        };
        if result.is_err() {
            stats_task.abort();
            small_task.abort();
            file_tasks.abort_all();
        }
        drop(small_tx);
        result
    }
}

/// Walks on a blocking thread and sends one STAT per entry, then the empty STAT. Returns the
/// number of entries.
async fn send_stats(
    walker: Arc<Walker>,
    files: FileTable,
    outgoing: mpsc::Sender<Result<Packet, tonic::Status>>,
) -> Result<u32, SendError> {
    let (entry_tx, mut entry_rx) = mpsc::channel::<WalkEntry>(256);
    let walk = tokio::task::spawn_blocking(move || {
        walker.walk(&mut |entry| {
            entry_tx
                .blocking_send(entry)
                .map_err(|_| WalkError::Stopped("stat sender went away".into()))
        })
    });

    let mut id: u32 = 0;
    while let Some(entry) = entry_rx.recv().await {
        if mode::is_regular(entry.stat.mode) {
            // Record before sending: a REQ can only follow its STAT.
            files
                .lock()
                .map_err(|_| SendError::Stream("file table poisoned".into()))?
                .insert(id, (entry.abs_path, entry.stat.size.max(0) as u64));
        }
        let packet = Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(entry.stat),
            ..Default::default()
        };
        if outgoing.send(Ok(packet)).await.is_err() {
            return Err(SendError::Stream(
                "stream closed while sending stats".into(),
            ));
        }
        id += 1;
    }

    match walk.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let mut err = Packet::of(PacketType::PacketErr);
            err.data = Bytes::from(e.to_string());
            let _ = outgoing.send(Ok(err)).await;
            return Err(e.into());
        }
        Err(join) => return Err(SendError::Stream(format!("walk stopped: {join}"))),
    }
    if outgoing
        .send(Ok(Packet::of(PacketType::PacketStat)))
        .await
        .is_err()
    {
        return Err(SendError::Stream(
            "stream closed before the last stat".into(),
        ));
    }
    Ok(id)
}

/// Sends the small files requested through `requests`, each read whole on this task (see
/// [`INLINE_MAX`]), until the sender side is dropped. Returns the files and bytes sent.
async fn send_small_files(
    mut requests: mpsc::UnboundedReceiver<(u32, PathBuf)>,
    outgoing: mpsc::Sender<Result<Packet, tonic::Status>>,
) -> Result<(u32, u64), SendError> {
    let closed = || SendError::Stream("stream closed while sending file data".into());
    let (mut files, mut bytes) = (0u32, 0u64);
    while let Some((id, path)) = requests.recv().await {
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "file vanished before it was sent; sending it empty");
                Vec::new()
            }
            Err(source) => return Err(SendError::Read { path, source }),
        };
        let mut data = Bytes::from(data);
        bytes += data.len() as u64;
        // A file that grew past a chunk since the walk still goes in fsutil's chunk size.
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(CHUNK));
            let packet = Packet {
                r#type: PacketType::PacketData as i32,
                id,
                data: chunk,
                ..Default::default()
            };
            outgoing.send(Ok(packet)).await.map_err(|_| closed())?;
        }
        let mut eof = Packet::of(PacketType::PacketData);
        eof.id = id;
        outgoing.send(Ok(eof)).await.map_err(|_| closed())?;
        files += 1;
    }
    Ok((files, bytes))
}

/// Sends a file as DATA chunks and the closing empty DATA. A file that vanished since the
/// walk is sent as empty, as fsutil does. The whole file is read on one blocking thread: one
/// hop to the blocking pool per file rather than one per read keeps small files cheap.
async fn send_file(
    id: u32,
    path: &Path,
    outgoing: &mpsc::Sender<Result<Packet, tonic::Status>>,
) -> Result<u64, SendError> {
    let path = path.to_path_buf();
    let outgoing = outgoing.clone();
    tokio::task::spawn_blocking(move || send_file_blocking(id, &path, &outgoing))
        .await
        .map_err(|e| SendError::Stream(format!("file reader stopped: {e}")))?
}

fn send_file_blocking(
    id: u32,
    path: &Path,
    outgoing: &mpsc::Sender<Result<Packet, tonic::Status>>,
) -> Result<u64, SendError> {
    use std::io::Read;
    let closed = || SendError::Stream("stream closed while sending file data".into());
    let read_err = |source| SendError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut total = 0u64;
    let mut size: Option<u64> = None;
    match std::fs::File::open(path) {
        Ok(mut file) => loop {
            // Sized to what is left of the file (most context files are smaller than a
            // chunk), and read without zeroing the buffer first.
            let size = *size.get_or_insert_with(|| file.metadata().map_or(0, |m| m.len()));
            let want = usize::try_from(size.saturating_sub(total))
                .unwrap_or(CHUNK)
                .clamp(1, CHUNK);
            let mut buf = Vec::with_capacity(want);
            let filled = match (&mut file).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err(read_err(e)),
            };
            if filled == 0 {
                break;
            }
            total += filled as u64;
            let packet = Packet {
                r#type: PacketType::PacketData as i32,
                id,
                data: Bytes::from(buf),
                ..Default::default()
            };
            outgoing.blocking_send(Ok(packet)).map_err(|_| closed())?;
            if filled < CHUNK {
                break;
            }
        },
        // A file removed since the walk is sent empty, as fsutil does; any other failure
        // (EACCES on a mode-0000 file) would silently ship an empty file, so it is an error
        // naming the path.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "file vanished before it was sent; sending it empty")
        }
        Err(e) => return Err(read_err(e)),
    }
    let mut eof = Packet::of(PacketType::PacketData);
    eof.id = id;
    outgoing.blocking_send(Ok(eof)).map_err(|_| closed())?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::wire::Stat;

    /// A receiver that requests every regular file as soon as its STAT arrives, collects the
    /// data and sends FIN after the last file, like the daemon.
    async fn receive_all(
        mut from_sender: mpsc::Receiver<Result<Packet, tonic::Status>>,
        to_sender: mpsc::Sender<Result<Packet, tonic::Status>>,
    ) -> (Vec<Stat>, HashMap<u32, Vec<u8>>) {
        let mut stats = Vec::new();
        let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut pending = 0usize;
        let mut stats_done = false;
        while let Some(Ok(p)) = from_sender.recv().await {
            match p.kind() {
                Some(PacketType::PacketStat) => match p.stat {
                    Some(stat) => {
                        let id = stats.len() as u32;
                        if mode::is_regular(stat.mode) {
                            pending += 1;
                            let mut req = Packet::of(PacketType::PacketReq);
                            req.id = id;
                            to_sender.send(Ok(req)).await.expect("send req");
                        }
                        stats.push(stat);
                    }
                    None => stats_done = true,
                },
                Some(PacketType::PacketData) => {
                    if p.data.is_empty() {
                        pending -= 1;
                    } else {
                        data.entry(p.id).or_default().extend_from_slice(&p.data);
                    }
                }
                Some(PacketType::PacketFin) => break,
                other => panic!("unexpected {other:?}"),
            }
            if stats_done && pending == 0 {
                to_sender
                    .send(Ok(Packet::of(PacketType::PacketFin)))
                    .await
                    .expect("fin");
                stats_done = false;
            }
        }
        (stats, data)
    }

    #[tokio::test]
    async fn small_files_read_on_the_runtime_still_go_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mid: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(dir.path().join("mid"), &mid).expect("write");
        let (tx, rx) = mpsc::unbounded_channel();
        let (out, mut packets) = mpsc::channel(16);
        tx.send((7, dir.path().join("mid"))).expect("queue");
        tx.send((8, dir.path().join("gone"))).expect("queue");
        drop(tx);
        let sent = send_small_files(rx, out).await.expect("send");
        assert_eq!(sent, (2, 50_000));
        let mut got = Vec::new();
        let mut eofs = Vec::new();
        while let Some(Ok(p)) = packets.recv().await {
            assert!(p.data.len() <= CHUNK, "a packet of {} bytes", p.data.len());
            if p.data.is_empty() {
                eofs.push(p.id);
            } else {
                assert_eq!(p.id, 7);
                got.extend_from_slice(&p.data);
            }
        }
        assert_eq!(got, mid);
        // A file gone since the walk is sent empty, as fsutil does.
        assert_eq!(eofs, [7, 8]);
    }

    #[tokio::test]
    async fn sends_stats_then_serves_requests_and_answers_fin() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("sub/big"), &big).expect("write");
        std::fs::write(dir.path().join("a"), b"hello").expect("write");
        std::fs::write(dir.path().join("empty"), b"").expect("write");
        std::os::unix::fs::symlink("a", dir.path().join("link")).expect("symlink");

        let sender = FileSyncSender::new(dir.path(), &FilterOptions::default()).expect("sender");
        let (to_recv, from_sender) = mpsc::channel(8);
        let (to_sender, from_recv) = mpsc::channel(8);
        let recv = tokio::spawn(receive_all(from_sender, to_sender));
        let summary = sender
            .run(
                tokio_stream::wrappers::ReceiverStream::new(from_recv),
                to_recv,
            )
            .await
            .expect("send");
        let (stats, data) = recv.await.expect("receiver");

        let paths: Vec<_> = stats
            .iter()
            .map(|s| String::from_utf8_lossy(&s.path).into_owned())
            .collect();
        assert_eq!(paths, ["a", "empty", "link", "sub", "sub/big"]);
        assert_eq!(data.get(&0).map(Vec::as_slice), Some(&b"hello"[..]));
        assert_eq!(data.get(&1), None);
        assert_eq!(data.get(&4), Some(&big));
        assert_eq!(
            summary,
            SendSummary {
                entries: 5,
                files_sent: 3,
                bytes_sent: 100_005
            }
        );
    }

    #[tokio::test]
    async fn rejects_requests_for_non_files_and_reports_receiver_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let sender = FileSyncSender::new(dir.path(), &FilterOptions::default()).expect("sender");
        let (to_recv, _from_sender) = mpsc::channel(8);
        let mut req = Packet::of(PacketType::PacketReq);
        req.id = 0;
        let err = sender
            .run(futures_util::stream::iter(vec![Ok(req)]), to_recv)
            .await
            .expect_err("dir id");
        assert!(matches!(err, SendError::InvalidId(0)), "{err}");

        let sender = FileSyncSender::new(dir.path(), &FilterOptions::default()).expect("sender");
        let (to_recv, _from_sender) = mpsc::channel(8);
        let mut bad = Packet::of(PacketType::PacketErr);
        bad.data = Bytes::from_static(b"disk full");
        let err = sender
            .run(futures_util::stream::iter(vec![Ok(bad)]), to_recv)
            .await
            .expect_err("receiver error");
        assert_eq!(err.to_string(), "error from receiver: disk full");
    }
}
