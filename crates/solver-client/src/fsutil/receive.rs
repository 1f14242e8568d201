//! The receiving side of DiffCopy (fsutil `receive.go` with a disk writer): what the client
//! runs for a `local` output, where the daemon sends a tree and the client writes it under a
//! destination directory.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::beneath::{Beneath, BeneathError, finish_fd, safe_relative};
use super::mode;
use super::platform_folder::{FOLDER_MODE, PlatformFolder};
use super::wire::{Packet, PacketType, Stat};

/// Failure while receiving a tree.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The daemon sent an entry that would land outside the destination: an absolute name,
    /// `..`, a NUL byte, a parent that is a symbolic link or not a directory, or a hard link
    /// to such a path. Nothing is written for it, and the transfer stops.
    #[error("refusing {path:?} from the builder: {reason}")]
    Refused {
        /// The entry as the daemon named it.
        path: String,
        /// Why it was refused.
        reason: String,
    },
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

impl ReceiveError {
    fn beneath(entry: &[u8]) -> impl FnOnce(BeneathError) -> ReceiveError + use<> {
        let entry = String::from_utf8_lossy(entry).into_owned();
        move |e| match e {
            // The entry the daemon sent is named, even when a hard link's target or a
            // parent was the reason.
            BeneathError::Refused { reason, .. } => ReceiveError::Refused {
                path: entry,
                reason,
            },
            BeneathError::Io { path, source } => ReceiveError::Write { path, source },
        }
    }
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

/// Receives a tree into `dest` (created if missing, merged into if present): directories,
/// symlinks and hard links are created as their STATs arrive, each regular file is created
/// empty, requested with REQ and written from its DATA packets; after the last file a FIN is
/// sent and the sender's FIN awaited. Ownership is not copied (files belong to the caller, as
/// with buildx); modes and modification times are. Device nodes and FIFOs are skipped:
/// creating them needs privileges a build client does not have. A `dest` this creates gets
/// mode 0700, as with buildx.
///
/// Nothing lands outside `dest`: every entry is resolved beneath it without following
/// symbolic links ([`super::beneath`]). An entry below a link, whether the stream made it or
/// it was already in `dest`, is refused and fails the transfer; an entry that names an
/// existing link replaces the link, never its target.
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
    receive(dest, None, incoming, outgoing).await
}

/// As [`receive_into`], for one platform of a multi-platform `local` output: the tree lands
/// in `dest/<folder>` as BuildKit's own multi-platform export lays it out. The folder gets
/// mode 0755 and the folder's modification time, absolute symlink targets move under
/// `/<folder>` ([`PlatformFolder::symlink_target`]), and hard links stay inside the folder.
/// Entries are resolved beneath the folder, so one platform's tree cannot reach another's.
pub async fn receive_into_platform_folder<S>(
    dest: &Path,
    folder: &PlatformFolder,
    incoming: S,
    outgoing: mpsc::Sender<Packet>,
) -> Result<ReceiveSummary, ReceiveError>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin + Send + 'static,
{
    receive(dest, Some(folder.clone()), incoming, outgoing).await
}

async fn receive<S>(
    dest: &Path,
    folder: Option<PlatformFolder>,
    incoming: S,
    outgoing: mpsc::Sender<Packet>,
) -> Result<ReceiveSummary, ReceiveError>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin + Send + 'static,
{
    let dest = dest.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        receive_blocking(&dest, folder.as_ref(), incoming, &outgoing, &handle)
    })
    .await
    .map_err(|e| ReceiveError::Stream(format!("receiver stopped: {e}")))?
}

/// The platform folder's own entry, finished after everything in it.
struct FolderEntry {
    parent: Beneath,
    rel: PathBuf,
    mod_time: i64,
}

fn receive_blocking<S>(
    dest: &Path,
    folder: Option<&PlatformFolder>,
    mut incoming: S,
    outgoing: &mpsc::Sender<Packet>,
    handle: &tokio::runtime::Handle,
) -> Result<ReceiveSummary, ReceiveError>
where
    S: Stream<Item = Result<Packet, tonic::Status>> + Unpin,
{
    let mut top = Beneath::open(dest).map_err(ReceiveError::beneath(b""))?;
    let (mut tree, mut folder_entry) = match folder {
        None => (top, None),
        Some(f) => {
            let rel = PathBuf::from(f.name());
            let refused = || ReceiveError::beneath(f.name().as_bytes());
            top.ensure_dir(&rel).map_err(refused())?;
            let tree = top.subdir(&rel).map_err(refused())?;
            let entry = FolderEntry {
                parent: top,
                rel,
                mod_time: f.mod_time(),
            };
            (tree, Some(entry))
        }
    };

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
                        finish_dirs(&mut tree, &dirs, folder_entry.as_mut())?;
                        send(outgoing, Packet::of(PacketType::PacketFin))?;
                        fin_sent = true;
                    }
                    continue;
                };
                let id = next_id;
                next_id += 1;
                summary.entries += 1;
                let entry = stat.path.clone();
                let refused = ReceiveError::beneath;
                let rel = safe_relative(&entry).map_err(refused(&entry))?;
                check_order(previous.as_deref(), &entry)?;
                previous = Some(entry.clone());
                if stat.mode & mode::DIR != 0 {
                    tree.ensure_dir(&rel).map_err(refused(&entry))?;
                    dirs.push((rel, stat));
                } else if stat.mode & mode::SYMLINK != 0 {
                    let target = match folder {
                        Some(f) => Cow::Owned(f.symlink_target(&stat.linkname)),
                        None => Cow::Borrowed(&stat.linkname[..]),
                    };
                    tree.symlink(&rel, &target)
                        .and_then(|()| tree.set_mtime(&rel, stat.mod_time))
                        .map_err(refused(&entry))?;
                } else if mode::is_regular(stat.mode) && !stat.linkname.is_empty() {
                    // fsutil sends the second and later names of a file as hard links to
                    // the first, with no data of their own.
                    tree.hard_link(&rel, &stat.linkname)
                        .map_err(refused(&entry))?;
                } else if mode::is_regular(stat.mode) {
                    tree.create_file(&rel).map_err(refused(&entry))?;
                    pending.insert(
                        id,
                        PendingFile {
                            path: rel,
                            stat,
                            file: None,
                        },
                    );
                    let mut req = Packet::of(PacketType::PacketReq);
                    req.id = id;
                    send(outgoing, req)?;
                } else {
                    tracing::warn!(path = %tree.display_path(&rel).display(), "skipping device node or FIFO in local output");
                }
            }
            Some(PacketType::PacketData) => {
                let entry = pending
                    .get_mut(&packet.id)
                    .ok_or(ReceiveError::InvalidId(packet.id))?;
                if entry.file.is_none() {
                    let file = tree
                        .open_file(&entry.path)
                        .map_err(ReceiveError::beneath(&entry.stat.path))?;
                    entry.file = Some(file);
                }
                if packet.data.is_empty() {
                    let Some(done) = pending.remove(&packet.id) else {
                        return Err(ReceiveError::InvalidId(packet.id));
                    };
                    finish_file(&mut tree, done)?;
                    if stats_done && pending.is_empty() && !fin_sent {
                        finish_dirs(&mut tree, &dirs, folder_entry.as_mut())?;
                        send(outgoing, Packet::of(PacketType::PacketFin))?;
                        fin_sent = true;
                    }
                } else if let Some(file) = entry.file.as_mut() {
                    file.write_all(&packet.data)
                        .map_err(|source| ReceiveError::Write {
                            path: tree.display_path(&entry.path),
                            source,
                        })?;
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

/// The file's mode and time go on through its open handle (opened beneath the destination).
fn finish_file(tree: &mut Beneath, done: PendingFile) -> Result<(), ReceiveError> {
    let file = match done.file {
        Some(file) => file,
        None => tree
            .open_file(&done.path)
            .map_err(ReceiveError::beneath(&done.stat.path))?,
    };
    finish_fd(&file, unix_mode(done.stat.mode), done.stat.mod_time).map_err(|e| {
        ReceiveError::Write {
            path: tree.display_path(&done.path),
            source: e.into(),
        }
    })
}

/// Directory modes and times are applied last, deepest first (the platform folder after
/// everything in it), so that writing the children does not change them afterwards.
fn finish_dirs(
    tree: &mut Beneath,
    dirs: &[(PathBuf, Stat)],
    folder: Option<&mut FolderEntry>,
) -> Result<(), ReceiveError> {
    for (path, stat) in dirs.iter().rev() {
        tree.finish_dir(path, unix_mode(stat.mode), stat.mod_time)
            .map_err(ReceiveError::beneath(&stat.path))?;
    }
    if let Some(f) = folder {
        f.parent
            .finish_dir(&f.rel, FOLDER_MODE, f.mod_time)
            .map_err(ReceiveError::beneath(f.rel.as_os_str().as_bytes()))?;
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
        assert!(matches!(err, ReceiveError::Refused { .. }), "{err}");

        let (tx, _rx) = mpsc::channel(16);
        let packets = vec![Ok(stat("b", 0o644, 0)), Ok(stat("a", 0o644, 0))];
        let err = receive_into(dest.path(), futures_util::stream::iter(packets), tx)
            .await
            .expect_err("order");
        assert!(matches!(err, ReceiveError::OutOfOrder { .. }), "{err}");
    }

    /// What is under `root`, recursively: path, kind, content or link target.
    fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("lstat");
                let what = if meta.file_type().is_symlink() {
                    format!("link {:?}", std::fs::read_link(&path).expect("readlink"))
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    format!("dir {:o}", meta.mode() & 0o7777)
                } else {
                    format!(
                        "file {:o} {:?}",
                        meta.mode() & 0o7777,
                        std::fs::read(&path).expect("read")
                    )
                };
                out.push((path, what));
            }
        }
        out.sort();
        out
    }

    fn entry(path: &[u8], mode: u32, linkname: &[u8]) -> Packet {
        Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(Stat {
                path: path.to_vec(),
                mode,
                linkname: linkname.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A destination and, beside it, a folder with a file the daemon must never reach.
    struct Sandbox {
        _top: tempfile::TempDir,
        dest: PathBuf,
        outside: PathBuf,
    }

    impl Sandbox {
        fn new() -> Self {
            let top = tempfile::tempdir().expect("tempdir");
            let dest = top.path().join("dest");
            let outside = top.path().join("outside");
            std::fs::create_dir_all(&dest).expect("mkdir dest");
            std::fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
            std::fs::write(outside.join("passwd"), b"root:x:0:0").expect("write");
            Self {
                _top: top,
                dest,
                outside,
            }
        }

        /// Feeds `packets` (then the end of STATs, an empty DATA for every request and a
        /// FIN) and returns the result with the outside folder's state before and after.
        async fn receive(&self, packets: Vec<Packet>) -> Result<ReceiveSummary, ReceiveError> {
            self.receive_in(None, packets).await
        }

        /// As [`Sandbox::receive`], into a platform folder when one is given.
        async fn receive_in(
            &self,
            folder: Option<&PlatformFolder>,
            packets: Vec<Packet>,
        ) -> Result<ReceiveSummary, ReceiveError> {
            let before = snapshot(&self.outside);
            let requested: Vec<u32> = (0..)
                .zip(&packets)
                .filter_map(|(id, p)| {
                    let st = p.stat.as_ref()?;
                    (mode::is_regular(st.mode) && st.linkname.is_empty()).then_some(id)
                })
                .collect();
            let mut all = packets;
            all.push(Packet::of(PacketType::PacketStat));
            all.extend(requested.into_iter().map(|id| data(id, b"")));
            all.push(Packet::of(PacketType::PacketFin));
            let (tx, _rx) = mpsc::channel(64);
            let incoming = futures_util::stream::iter(all.into_iter().map(Ok));
            let result = match folder {
                Some(f) => receive_into_platform_folder(&self.dest, f, incoming, tx).await,
                None => receive_into(&self.dest, incoming, tx).await,
            };
            assert_eq!(
                snapshot(&self.outside),
                before,
                "the outside folder changed"
            );
            result
        }

        fn outside_bytes(&self) -> Vec<u8> {
            self.outside.as_os_str().as_bytes().to_vec()
        }
    }

    fn assert_refused(result: Result<ReceiveSummary, ReceiveError>, entry: &str) {
        match result {
            Err(ReceiveError::Refused { path, reason }) => {
                assert_eq!(path, entry, "refused {path:?} ({reason})");
                let line = ReceiveError::Refused { path, reason }.to_string();
                assert!(!line.contains('\n'), "one line: {line}");
                assert!(line.contains("from the builder"), "{line}");
            }
            other => panic!("expected {entry:?} to be refused, got {other:?}"),
        }
    }

    use std::os::unix::ffi::OsStrExt;

    #[tokio::test]
    async fn a_file_below_a_symlink_made_by_the_stream_is_refused() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![
                entry(b"x", mode::SYMLINK | 0o777, &sb.outside_bytes()),
                entry(b"x/passwd", 0o644, b""),
            ])
            .await;
        assert_refused(r, "x/passwd");
    }

    #[tokio::test]
    async fn a_directory_below_a_symlink_is_refused() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![
                entry(b"x", mode::SYMLINK | 0o777, &sb.outside_bytes()),
                entry(b"x/newdir", mode::DIR | 0o755, b""),
            ])
            .await;
        assert_refused(r, "x/newdir");
        let r = sb
            .receive(vec![
                entry(b"y", mode::SYMLINK | 0o777, &sb.outside_bytes()),
                entry(b"y/sub", mode::DIR | 0o700, b""),
            ])
            .await;
        assert_refused(r, "y/sub");
    }

    #[tokio::test]
    async fn a_symlink_to_dotdot_is_kept_but_never_followed() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![
                entry(b"up", mode::SYMLINK | 0o777, b".."),
                entry(b"up/outside/passwd", 0o644, b""),
            ])
            .await;
        assert_refused(r, "up/outside/passwd");
        assert_eq!(
            std::fs::read_link(sb.dest.join("up")).expect("the link itself is content"),
            Path::new("..")
        );
    }

    #[tokio::test]
    async fn hard_links_to_outside_are_refused() {
        let sb = Sandbox::new();
        let mut absolute = sb.outside_bytes();
        absolute.extend_from_slice(b"/passwd");
        for target in [&b"../outside/passwd"[..], &absolute, b"/etc/passwd"] {
            let r = sb.receive(vec![entry(b"h", 0o644, target)]).await;
            assert_refused(r, "h");
        }
        // Through a link the stream made, and through a link's last component.
        let r = sb
            .receive(vec![
                entry(b"a", mode::SYMLINK | 0o777, &sb.outside_bytes()),
                entry(b"b", 0o644, b"a/passwd"),
            ])
            .await;
        assert_refused(r, "b");
        assert!(!sb.dest.join("b").exists());
    }

    #[tokio::test]
    async fn a_hard_link_inside_the_destination_is_a_link() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![entry(b"a", 0o644, b""), entry(b"b", 0o644, b"a")])
            .await
            .expect("receive");
        assert_eq!(r.entries, 2);
        let (a, b) = (
            std::fs::metadata(sb.dest.join("a")).expect("a"),
            std::fs::metadata(sb.dest.join("b")).expect("b"),
        );
        assert_eq!(a.ino(), b.ino());
    }

    #[tokio::test]
    async fn a_name_with_a_nul_is_refused() {
        let sb = Sandbox::new();
        let r = sb.receive(vec![entry(b"a\0b", 0o644, b"")]).await;
        assert_refused(r, "a\0b");
        let r = sb
            .receive(vec![
                entry(b"l", mode::SYMLINK | 0o777, b"x"),
                entry(b"l\0/x", 0o644, b""),
            ])
            .await;
        assert_refused(r, "l\0/x");
    }

    #[tokio::test]
    async fn entries_below_an_absolute_symlink_are_refused() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![
                entry(b"etc", mode::SYMLINK | 0o777, &sb.outside_bytes()),
                entry(b"etc/passwd", 0o600, b""),
                entry(b"etc/sub", mode::SYMLINK | 0o777, b"/"),
            ])
            .await;
        assert_refused(r, "etc/passwd");
    }

    #[tokio::test]
    async fn an_existing_symlink_in_the_destination_is_replaced_or_refused_never_followed() {
        let sb = Sandbox::new();
        std::os::unix::fs::symlink(&sb.outside, sb.dest.join("x")).expect("link");
        // An entry below it: refused (the daemon never sent `x` itself).
        let r = sb.receive(vec![entry(b"x/passwd", 0o644, b"")]).await;
        assert_refused(r, "x/passwd");
        // A hard link to a file below it: refused.
        let r = sb.receive(vec![entry(b"h", 0o644, b"x/passwd")]).await;
        assert_refused(r, "h");
        // The link itself named as a directory: the link is replaced by a directory in
        // the destination, and its entries land there.
        sb.receive(vec![
            entry(b"x", mode::DIR | 0o755, b""),
            entry(b"x/passwd", 0o644, b""),
        ])
        .await
        .expect("receive");
        assert!(
            std::fs::symlink_metadata(sb.dest.join("x"))
                .expect("x")
                .is_dir()
        );
        assert!(sb.dest.join("x/passwd").is_file());
        // A directory holding a link to outside, replaced by a file: the tree is removed,
        // the link's target is not.
        std::fs::create_dir_all(sb.dest.join("t")).expect("mkdir");
        std::os::unix::fs::symlink(&sb.outside, sb.dest.join("t/out")).expect("link");
        sb.receive(vec![entry(b"t", 0o644, b"")])
            .await
            .expect("receive");
        assert!(sb.dest.join("t").is_file());
        // An existing link replaced by a file: the link goes, its target stays.
        std::os::unix::fs::symlink(sb.outside.join("passwd"), sb.dest.join("p")).expect("link");
        sb.receive(vec![entry(b"p", 0o600, b"")])
            .await
            .expect("receive");
        assert!(
            std::fs::symlink_metadata(sb.dest.join("p"))
                .expect("p")
                .is_file()
        );
    }

    #[tokio::test]
    async fn a_file_named_like_a_parent_that_is_a_file_is_refused() {
        let sb = Sandbox::new();
        let r = sb
            .receive(vec![entry(b"f", 0o644, b""), entry(b"f/g", 0o644, b"")])
            .await;
        assert_refused(r, "f/g");
    }

    fn linux_amd64() -> PlatformFolder {
        PlatformFolder::new("linux_amd64").expect("valid name")
    }

    #[tokio::test]
    async fn a_platform_folder_is_laid_out_as_buildkit_lays_it_out() {
        let sb = Sandbox::new();
        let dest = sb.dest.join("out");
        let sb = Sandbox { dest, ..sb };
        let link = |name: &[u8], target: &[u8]| entry(name, mode::SYMLINK | 0o777, target);
        sb.receive_in(
            Some(&linux_amd64()),
            vec![
                link(b"abs", b"/etc/hostname"),
                link(b"dangling", b"/nonexistent/x"),
                link(b"dotdot", b"/../../etc/passwd"),
                entry(b"file", 0o644, b""),
                entry(b"hard", 0o644, b"file"),
                link(b"rel", b"sub/f"),
                link(b"root", b"/"),
                entry(b"sub", mode::DIR | 0o700, b""),
                entry(b"tmp", mode::DIR | mode::STICKY | 0o777, b""),
                link(b"up", b"../.."),
            ],
        )
        .await
        .expect("receive");
        let dir = sb.dest.join("linux_amd64");
        let target = |name: &str| std::fs::read_link(dir.join(name)).expect("readlink");
        assert_eq!(target("abs"), Path::new("/linux_amd64/etc/hostname"));
        assert_eq!(target("dangling"), Path::new("/linux_amd64/nonexistent/x"));
        assert_eq!(target("dotdot"), Path::new("/linux_amd64/etc/passwd"));
        assert_eq!(target("rel"), Path::new("sub/f"));
        assert_eq!(target("root"), Path::new("/linux_amd64"));
        assert_eq!(target("up"), Path::new("../.."));
        let ino = |name: &str| std::fs::metadata(dir.join(name)).expect("stat").ino();
        assert_eq!(ino("file"), ino("hard"));
        let mode = |p: &Path| std::fs::symlink_metadata(p).expect("lstat").mode() & 0o7777;
        assert_eq!(mode(&sb.dest), 0o700, "a destination brix creates is 0700");
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(mode(&dir.join("sub")), 0o700);
        assert_eq!(mode(&dir.join("tmp")), 0o1777);
        let meta = std::fs::metadata(&dir).expect("stat");
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (0, 0));
    }

    #[tokio::test]
    async fn an_existing_platform_folder_gets_buildkits_mode_and_time() {
        let sb = Sandbox::new();
        std::fs::create_dir(sb.dest.join("linux_amd64")).expect("mkdir");
        std::fs::set_permissions(
            sb.dest.join("linux_amd64"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        std::fs::set_permissions(
            &sb.dest,
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .expect("chmod");
        let folder = linux_amd64().with_source_date_epoch(Some(1000));
        sb.receive_in(Some(&folder), vec![entry(b"f", 0o644, b"")])
            .await
            .expect("receive");
        let meta = std::fs::metadata(sb.dest.join("linux_amd64")).expect("stat");
        assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o755, 1000));
        let dest = std::fs::metadata(&sb.dest).expect("stat");
        assert_eq!(
            dest.mode() & 0o7777,
            0o750,
            "an existing destination is kept as is"
        );
    }

    #[tokio::test]
    async fn a_platform_folder_that_is_a_link_is_replaced_never_followed() {
        let sb = Sandbox::new();
        std::os::unix::fs::symlink(&sb.outside, sb.dest.join("linux_amd64")).expect("link");
        sb.receive_in(
            Some(&linux_amd64()),
            vec![
                entry(b"passwd", 0o644, b""),
                entry(b"sub", mode::DIR | 0o755, b""),
            ],
        )
        .await
        .expect("receive");
        let meta = std::fs::symlink_metadata(sb.dest.join("linux_amd64")).expect("lstat");
        assert!(meta.is_dir(), "the link was replaced by a folder");
        assert!(sb.dest.join("linux_amd64/passwd").is_file());
    }

    #[tokio::test]
    async fn a_platform_tree_cannot_reach_a_sibling_folder() {
        let sb = Sandbox::new();
        std::fs::create_dir_all(sb.dest.join("linux_arm64")).expect("mkdir");
        std::fs::write(sb.dest.join("linux_arm64/secret"), b"s").expect("write");
        let folder = linux_amd64();
        for (name, linkname) in [
            (&b"h"[..], &b"../linux_arm64/secret"[..]),
            (b"h", b"/linux_arm64/secret"),
            (b"../linux_arm64/x", b""),
            (b"/linux_arm64/x", b""),
        ] {
            let r = sb
                .receive_in(Some(&folder), vec![entry(name, 0o644, linkname)])
                .await;
            assert_refused(r, &String::from_utf8_lossy(name));
        }
        assert_eq!(
            std::fs::read_dir(sb.dest.join("linux_arm64"))
                .expect("read_dir")
                .count(),
            1
        );
        // A symlink pointing at the sibling is content: kept, moved under the folder.
        sb.receive_in(
            Some(&folder),
            vec![entry(
                b"l",
                mode::SYMLINK | 0o777,
                b"/../linux_arm64/secret",
            )],
        )
        .await
        .expect("receive");
        assert_eq!(
            std::fs::read_link(sb.dest.join("linux_amd64/l")).expect("readlink"),
            Path::new("/linux_amd64/linux_arm64/secret")
        );
    }

    #[tokio::test]
    async fn a_new_destination_and_its_parents_are_0700() {
        let sb = Sandbox::new();
        let dest = sb.dest.join("a/b");
        let sb = Sandbox { dest, ..sb };
        sb.receive(vec![entry(b"f", 0o644, b"")])
            .await
            .expect("receive");
        for p in [
            sb.dest.clone(),
            sb.dest.parent().expect("parent").to_path_buf(),
        ] {
            let mode = std::fs::metadata(&p).expect("stat").mode() & 0o7777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
    }

    #[test]
    fn order_is_component_wise() {
        assert!(check_order(Some(b"a/b"), b"a-b").is_ok());
        assert!(check_order(Some(b"a"), b"a/b").is_ok());
        assert!(check_order(Some(b"a-b"), b"a/b").is_err());
        assert!(check_order(Some(b"a"), b"a").is_err());
    }
}
