//! The receiving side of DiffCopy (fsutil `receive.go` with a disk writer): what the client
//! runs for a `local` output, where the daemon sends a tree and the client writes it under a
//! destination directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use futures_util::{Stream, StreamExt};
use std::io::Write;
use tokio::sync::mpsc;

use super::mode;
use super::wire::{Packet, PacketType, Stat};

/// Failure while receiving a tree.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The sender named a path outside the destination (absolute, or with `..`).
    #[error("refusing unsafe path {0:?} from the daemon")]
    UnsafePath(String),
    /// Entries were not in fsutil order (parents first, siblings sorted, no duplicates).
    #[error("changes out of order: {path:?} after {previous:?}")]
    OutOfOrder {
        /// The offending path.
        path: String,
        /// The path before it.
        previous: String,
    },
    /// DATA for an ID that was not requested.
    #[error("invalid file request {0}")]
    InvalidId(u32),
    /// Writing to the destination failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The destination path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The sender reported an error.
    #[error("error from sender: {0}")]
    Sender(String),
    /// The stream failed or ended early.
    #[error("file receive stream failed: {0}")]
    Stream(String),
}

/// Counters of one completed transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveSummary {
    /// Entries received.
    pub entries: u32,
    /// Bytes of file contents written.
    pub bytes: u64,
}

struct PendingFile {
    path: PathBuf,
    stat: Stat,
    file: Option<std::fs::File>,
}

/// Receives a tree into `dest` (created if missing, merged into if present): directories and
/// symlinks are created as their STATs arrive, each regular file is requested with REQ and
/// written from its DATA packets; after the last file a FIN is sent and the sender's FIN
/// awaited. Ownership is not copied (files belong to the caller, as with buildx); modes and
/// modification times are. Device nodes and FIFOs are skipped: creating them needs
/// privileges a build client does not have.
///
/// The work runs on one blocking thread: it is a long sequence of small file system calls,
/// which would otherwise each hop to the blocking pool.
pub async fn receive_into<S>(
    dest: &Path,
    incoming: S,
    outgoing: mpsc::Sender<Packet>,
) -> Result<ReceiveSummary, ReceiveError>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin + Send + 'static,
{
    let dest = dest.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || receive_blocking(&dest, incoming, &outgoing, &handle))
        .await
        .map_err(|e| ReceiveError::Stream(format!("receiver stopped: {e}")))?
}

fn receive_blocking<S>(
    dest: &Path,
    mut incoming: S,
    outgoing: &mpsc::Sender<Packet>,
    handle: &tokio::runtime::Handle,
) -> Result<ReceiveSummary, ReceiveError>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    std::fs::create_dir_all(dest).map_err(write_err(dest))?;

    let mut summary = ReceiveSummary::default();
    let mut previous: Option<Vec<u8>> = None;
    let mut next_id: u32 = 0;
    let mut pending: HashMap<u32, PendingFile> = HashMap::new();
    let mut dirs: Vec<(PathBuf, Stat)> = Vec::new();
    let mut stats_done = false;
    let mut fin_sent = false;

    loop {
        let packet = match handle.block_on(incoming.next()) {
            Some(Ok(p)) => p,
            Some(Err(status)) => return Err(ReceiveError::Stream(status.message().to_owned())),
            None if fin_sent => break,
            None => {
                return Err(ReceiveError::Stream(
                    "sender closed the stream early".into(),
                ));
            }
        };
        match packet.kind() {
            Some(PacketType::PacketStat) => {
                let Some(stat) = packet.stat else {
                    stats_done = true;
                    if pending.is_empty() && !fin_sent {
                        finish_dirs(&dirs)?;
                        send(outgoing, Packet::of(PacketType::PacketFin))?;
                        fin_sent = true;
                    }
                    continue;
                };
                let id = next_id;
                next_id += 1;
                summary.entries += 1;
                check_order(previous.as_deref(), &stat.path)?;
                previous = Some(stat.path.clone());
                let target = dest.join(safe_relative(&stat.path)?);
                if stat.mode & mode::DIR != 0 {
                    ensure_dir(&target)?;
                    dirs.push((target, stat));
                } else if stat.mode & mode::SYMLINK != 0 {
                    remove_existing(&target)?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&stat.linkname), &target)
                        .map_err(write_err(&target))?;
                    set_mtime(&target, stat.mod_time)?;
                } else if mode::is_regular(stat.mode) {
                    remove_existing(&target)?;
                    pending.insert(
                        id,
                        PendingFile {
                            path: target,
                            stat,
                            file: None,
                        },
                    );
                    let mut req = Packet::of(PacketType::PacketReq);
                    req.id = id;
                    send(outgoing, req)?;
                } else {
                    tracing::warn!(path = %target.display(), "skipping device node or FIFO in local output");
                }
            }
            Some(PacketType::PacketData) => {
                let entry = pending
                    .get_mut(&packet.id)
                    .ok_or(ReceiveError::InvalidId(packet.id))?;
                if entry.file.is_none() {
                    entry.file =
                        Some(std::fs::File::create(&entry.path).map_err(write_err(&entry.path))?);
                }
                if packet.data.is_empty() {
                    let Some(done) = pending.remove(&packet.id) else {
                        return Err(ReceiveError::InvalidId(packet.id));
                    };
                    finish_file(done)?;
                    if stats_done && pending.is_empty() && !fin_sent {
                        finish_dirs(&dirs)?;
                        send(outgoing, Packet::of(PacketType::PacketFin))?;
                        fin_sent = true;
                    }
                } else if let Some(file) = entry.file.as_mut() {
                    file.write_all(&packet.data)
                        .map_err(write_err(&entry.path))?;
                    summary.bytes += packet.data.len() as u64;
                }
            }
            Some(PacketType::PacketFin) => break,
            Some(PacketType::PacketErr) => {
                return Err(ReceiveError::Sender(
                    String::from_utf8_lossy(&packet.data).into_owned(),
                ));
            }
            _ => {}
        }
    }
    if !pending.is_empty() {
        return Err(ReceiveError::Stream(format!(
            "sender finished with {} files not sent",
            pending.len()
        )));
    }
    Ok(summary)
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReceiveError + use<> {
    let path = path.to_path_buf();
    move |source| ReceiveError::Write { path, source }
}

fn send(outgoing: &mpsc::Sender<Packet>, packet: Packet) -> Result<(), ReceiveError> {
    outgoing
        .blocking_send(packet)
        .map_err(|_| ReceiveError::Stream("stream closed".into()))
}

/// fsutil's validator: each path must sort after the previous one in walk order, which for
/// byte strings means comparing component by component.
fn check_order(previous: Option<&[u8]>, path: &[u8]) -> Result<(), ReceiveError> {
    let Some(prev) = previous else { return Ok(()) };
    let ordered =
        prev.split(|b| *b == b'/').cmp(path.split(|b| *b == b'/')) == std::cmp::Ordering::Less;
    if ordered {
        Ok(())
    } else {
        Err(ReceiveError::OutOfOrder {
            path: String::from_utf8_lossy(path).into_owned(),
            previous: String::from_utf8_lossy(prev).into_owned(),
        })
    }
}

/// A relative path with only normal components.
fn safe_relative(path: &[u8]) -> Result<PathBuf, ReceiveError> {
    let p = Path::new(OsStr::from_bytes(path));
    let unsafe_path = || ReceiveError::UnsafePath(String::from_utf8_lossy(path).into_owned());
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(unsafe_path()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(unsafe_path());
    }
    Ok(out)
}

fn ensure_dir(target: &Path) -> Result<(), ReceiveError> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => remove_existing(target)?,
        Err(_) => {}
    }
    std::fs::create_dir(target).map_err(|source| ReceiveError::Write {
        path: target.to_path_buf(),
        source,
    })
}

/// Makes room for a new entry: an existing file or link is removed, and so is an existing
/// directory (the output replaces what was there).
fn remove_existing(target: &Path) -> Result<(), ReceiveError> {
    let result = match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(target),
        Ok(_) => std::fs::remove_file(target),
        Err(_) => return Ok(()),
    };
    result.map_err(|source| ReceiveError::Write {
        path: target.to_path_buf(),
        source,
    })
}

fn finish_file(done: PendingFile) -> Result<(), ReceiveError> {
    let err = |source| ReceiveError::Write {
        path: done.path.clone(),
        source,
    };
    let perms = std::fs::Permissions::from_mode(unix_mode(done.stat.mode));
    match done.file {
        Some(file) => file.set_permissions(perms).map_err(err)?,
        None => std::fs::set_permissions(&done.path, perms).map_err(err)?,
    }
    set_mtime(&done.path, done.stat.mod_time)
}

/// Directory modes and times are applied last, deepest first, so that writing the children
/// does not change them afterwards.
fn finish_dirs(dirs: &[(PathBuf, Stat)]) -> Result<(), ReceiveError> {
    for (path, stat) in dirs.iter().rev() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix_mode(stat.mode)))
            .map_err(|source| ReceiveError::Write {
                path: path.clone(),
                source,
            })?;
        set_mtime(path, stat.mod_time)?;
    }
    Ok(())
}

/// Go FileMode permission and special bits back to Unix `st_mode` bits.
fn unix_mode(go: u32) -> u32 {
    let mut m = go & mode::PERM;
    if go & mode::SETUID != 0 {
        m |= 0o4000;
    }
    if go & mode::SETGID != 0 {
        m |= 0o2000;
    }
    if go & mode::STICKY != 0 {
        m |= 0o1000;
    }
    m
}

fn set_mtime(path: &Path, nanos: i64) -> Result<(), ReceiveError> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let ts = Timespec {
        tv_sec: nanos.div_euclid(1_000_000_000),
        tv_nsec: nanos.rem_euclid(1_000_000_000) as _,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| ReceiveError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use bytes::Bytes;

    use super::*;

    fn stat(path: &str, mode: u32, mtime: i64) -> Packet {
        Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(Stat {
                path: path.as_bytes().to_vec(),
                mode,
                mod_time: mtime,
                linkname: if mode & mode::SYMLINK != 0 {
                    b"f".to_vec()
                } else {
                    Vec::new()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn data(id: u32, d: &'static [u8]) -> Packet {
        Packet {
            r#type: PacketType::PacketData as i32,
            id,
            data: Bytes::from_static(d),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn writes_tree_requests_files_and_sends_fin() {
        let dest = tempfile::tempdir().expect("tempdir");
        let t = 1_600_000_000_123_456_789;
        let packets = vec![
            stat("d", mode::DIR | 0o750, t),
            stat("d/f", 0o640, t),
            stat("d/l", mode::SYMLINK | 0o777, t),
            Packet::of(PacketType::PacketStat),
            data(1, b"hello "),
            data(1, b"world"),
            data(1, b""),
            Packet::of(PacketType::PacketFin),
        ];
        let (tx, mut rx) = mpsc::channel(16);
        let summary = receive_into(
            dest.path(),
            futures_util::stream::iter(packets.into_iter().map(Ok)),
            tx,
        )
        .await
        .expect("receive");
        assert_eq!(
            summary,
            ReceiveSummary {
                entries: 3,
                bytes: 11
            }
        );
        let req = rx.recv().await.expect("req");
        assert_eq!((req.kind(), req.id), (Some(PacketType::PacketReq), 1));
        assert_eq!(
            rx.recv().await.and_then(|p| p.kind()),
            Some(PacketType::PacketFin)
        );

        let f = dest.path().join("d/f");
        assert_eq!(std::fs::read(&f).expect("read"), b"hello world");
        let meta = std::fs::metadata(&f).expect("meta");
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            (1_600_000_000, 123_456_789)
        );
        assert_eq!(
            std::fs::read_link(dest.path().join("d/l")).expect("link"),
            Path::new("f")
        );
        let dmeta = std::fs::metadata(dest.path().join("d")).expect("meta");
        assert_eq!(dmeta.mode() & 0o777, 0o750);
        assert_eq!(dmeta.mtime(), 1_600_000_000);
    }

    #[tokio::test]
    async fn rejects_escaping_and_unordered_paths() {
        let dest = tempfile::tempdir().expect("tempdir");
        let (tx, _rx) = mpsc::channel(16);
        let err = receive_into(
            dest.path(),
            futures_util::stream::iter(vec![Ok(stat("../x", 0o644, 0))]),
            tx,
        )
        .await
        .expect_err("unsafe");
        assert!(matches!(err, ReceiveError::UnsafePath(_)), "{err}");

        let (tx, _rx) = mpsc::channel(16);
        let packets = vec![Ok(stat("b", 0o644, 0)), Ok(stat("a", 0o644, 0))];
        let err = receive_into(dest.path(), futures_util::stream::iter(packets), tx)
            .await
            .expect_err("order");
        assert!(matches!(err, ReceiveError::OutOfOrder { .. }), "{err}");
    }

    #[test]
    fn order_is_component_wise() {
        assert!(check_order(Some(b"a/b"), b"a-b").is_ok());
        assert!(check_order(Some(b"a"), b"a/b").is_ok());
        assert!(check_order(Some(b"a-b"), b"a/b").is_err());
        assert!(check_order(Some(b"a"), b"a").is_err());
    }
}
