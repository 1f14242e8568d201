//! [`LocalContentStore`]: a content store in a directory, in containerd's local layout (what
//! `buildctl --export-cache type=local` and buildx leave behind): committed blobs at
//! `blobs/sha256/<hex>`, writes in progress as temporary files under `ingest/`.
//!
//! What the daemon sends never becomes a path: blob files are named by validated digests, and
//! a write's ref (any string the daemon picks) only keys an in-memory table; its data goes to
//! a fresh, randomly named file. A blob appears under its digest only once it is complete,
//! synced and verified (a rename), so readers and other writers — another build into the
//! same directory, another ref of the same build — never see a partial blob.

use std::collections::HashMap;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

/// How often a write of a blob another stream is writing checks whether that one is done.
const WAIT_FOR_SAME_BLOB: std::time::Duration = std::time::Duration::from_millis(20);
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tonic::Status;

use super::filters::Filters;
use crate::proto::containerd::services::content::v1 as pb;

/// The largest `data` of one `ReadContentResponse` (containerd's server uses the same).
pub(super) const READ_CHUNK: usize = 1 << 20;

/// A failure to open a [`LocalContentStore`].
#[derive(Debug, thiserror::Error)]
pub enum ContentStoreError {
    /// The store's directory or its `ingest/` folder could not be created.
    #[error("cannot create the content store directory {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A content store in a local directory, served to the daemon through a session
/// ([`crate::session::Session::add_content_store`]) for `--cache-to`/`--cache-from
/// type=local` and OCI layout contexts. Cloning shares the store (and its writes in progress);
/// stores opened separately on one directory (two builds exporting to the same cache) share
/// only its files, which is safe: each write has its own file and blobs appear by rename.
#[derive(Debug, Clone)]
pub struct LocalContentStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    root: PathBuf,
    /// Writes in progress by ref. An entry is the ref's lock: one stream writes a ref at a time.
    ingests: Mutex<HashMap<String, IngestStatus>>,
    /// Tells an ingest apart from a later one under the same ref (after an abort).
    next_ingest: AtomicU64,
}

#[derive(Debug, Clone)]
struct IngestStatus {
    id: u64,
    file: PathBuf,
    started_at: SystemTime,
    updated_at: SystemTime,
    offset: i64,
    total: i64,
    expected: String,
}

impl LocalContentStore {
    /// Opens the store in `root`, creating `root` and `root/ingest` when missing (as
    /// containerd's local store does); existing blobs are served as they are. Only those two
    /// directories are touched here (a quick blocking call, like containerd's `NewStore`);
    /// everything else happens when the daemon calls.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ContentStoreError> {
        let root = root.into();
        let ingest = root.join("ingest");
        std::fs::create_dir_all(&ingest).map_err(|source| ContentStoreError::Create {
            path: ingest,
            source,
        })?;
        Ok(LocalContentStore {
            inner: Arc::new(StoreInner {
                root,
                ingests: Mutex::new(HashMap::new()),
                next_ingest: AtomicU64::new(0),
            }),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.inner.root.join("blobs").join("sha256")
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.blob_dir().join(hex)
    }

    fn ingests(&self) -> Result<MutexGuard<'_, HashMap<String, IngestStatus>>, Status> {
        self.inner
            .ingests
            .lock()
            .map_err(|_| Status::internal("content store ingest table poisoned"))
    }

    /// What the store knows about a committed blob; NotFound when it has none.
    pub(super) async fn info(&self, digest: &str) -> Result<pb::Info, Status> {
        let hex = blob_hex(digest)?;
        let path = self.blob_path(hex);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(info_of(digest.to_owned(), &meta)),
            Ok(_) => Err(not_found(digest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(digest)),
            Err(e) => Err(io_status("reading", &path, &e)),
        }
    }

    /// Every committed blob that passes `filters` (fields `digest`, `labels.<key>`; this
    /// store keeps no labels).
    pub(super) async fn list(&self, filters: &Filters) -> Result<Vec<pb::Info>, Status> {
        let dir = self.blob_dir();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_status("listing", &dir, &e)),
        };
        let mut infos = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_status("listing", &dir, &e))?
        {
            // Anything not named like a blob (a stray file, a name in other case) is not one.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let digest = format!("sha256:{name}");
            if blob_hex(&digest).is_err() {
                continue;
            }
            let meta = match entry.metadata().await {
                Ok(meta) if meta.is_file() => meta,
                // Deleted since the listing was read, or not a file.
                _ => continue,
            };
            let info = info_of(digest, &meta);
            if filters.matches(|path| match path {
                [field] if field == "digest" => Some(info.digest.clone()),
                [field, key] if field == "labels" => info.labels.get(key).cloned(),
                _ => None,
            }) {
                infos.push(info);
            }
        }
        infos.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(infos)
    }

    /// Removes a committed blob; NotFound when it has none.
    pub(super) async fn delete(&self, digest: &str) -> Result<(), Status> {
        let path = self.blob_path(blob_hex(digest)?);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(digest)),
            Err(e) => Err(io_status("deleting", &path, &e)),
        }
    }

    /// Opens a committed blob for reading from `offset` (clamped to the start), `size`
    /// bytes at most (zero or less: to the end). OutOfRange past its end.
    pub(super) async fn open_blob(
        &self,
        digest: &str,
        offset: i64,
        size: i64,
    ) -> Result<BlobReader, Status> {
        let hex = blob_hex(digest)?;
        let path = self.blob_path(hex);
        // Open and size in one blocking call: the daemon reads a blob in many small ranged
        // reads, so each read's cost is mostly these hops.
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)?;
                let len = file.metadata()?.len();
                Ok::<_, io::Error>((file, len))
            })
        }
        .await
        .map_err(|e| Status::internal(format!("reading {}: {e}", path.display())))?;
        let (file, actual) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(digest)),
            Err(e) => return Err(io_status("opening", &path, &e)),
        };
        // The open file is the blob even if it is replaced or deleted while it is read.
        let actual = i64::try_from(actual).unwrap_or(i64::MAX);
        let offset = offset.max(0);
        if offset > actual {
            return Err(Status::out_of_range(format!(
                "read past object length {actual} bytes"
            )));
        }
        let size = if size <= 0 || size > actual - offset {
            actual - offset
        } else {
            size
        };
        Ok(BlobReader {
            file: std::sync::Arc::new(file),
            path,
            offset,
            remaining: size,
        })
    }

    /// The state of the write in progress under `ref`; NotFound when there is none.
    pub(super) fn status(&self, r#ref: &str) -> Result<pb::Status, Status> {
        self.ingests()?
            .get(r#ref)
            .map(|status| status_of(r#ref, status))
            .ok_or_else(|| {
                Status::not_found(format!("could not get status for ref {ref:?}: not found"))
            })
    }

    /// The writes in progress whose ref passes `filters`, by ref.
    pub(super) fn list_statuses(&self, filters: &Filters) -> Result<Vec<pb::Status>, Status> {
        let mut statuses: Vec<pb::Status> = self
            .ingests()?
            .iter()
            .filter(|(r, _)| {
                filters.matches(|path| match path {
                    [field] if field == "ref" => Some((*r).clone()),
                    _ => None,
                })
            })
            .map(|(r, status)| status_of(r, status))
            .collect();
        statuses.sort_by(|a, b| a.r#ref.cmp(&b.r#ref));
        Ok(statuses)
    }

    /// Cancels the write in progress under `ref` and removes its data; the stream writing it
    /// fails on its next message. NotFound when there is none.
    pub(super) async fn abort(&self, r#ref: &str) -> Result<(), Status> {
        let removed = self.ingests()?.remove(r#ref);
        let status =
            removed.ok_or_else(|| Status::not_found(format!("ingest ref {ref:?}: not found")))?;
        remove_temp(&status.file).await;
        Ok(())
    }

    /// Starts a write under `ref`: Unavailable while another stream writes the same ref
    /// (writers retry), AlreadyExists when `expected` names a blob the store has.
    pub(super) async fn begin_write(
        &self,
        r#ref: &str,
        total: i64,
        expected: &str,
    ) -> Result<Ingest, Status> {
        if !expected.is_empty() {
            blob_hex(expected)?;
            // Another stream already writing this blob (two platforms' solves exporting the
            // same layer at once) is waited for: the blob is then there and this write ends
            // with AlreadyExists instead of moving the same bytes a second time. Should the
            // other write fail, this one goes ahead.
            while self
                .ingests()?
                .iter()
                .any(|(other, status)| other != r#ref && status.expected == expected)
            {
                tokio::time::sleep(WAIT_FOR_SAME_BLOB).await;
            }
        }
        let id = self.inner.next_ingest.fetch_add(1, Ordering::Relaxed);
        let file = self
            .inner
            .root
            .join("ingest")
            .join(format!("brix-{}", crate::solve::new_build_ref()));
        let now = SystemTime::now();
        {
            let mut ingests = self.ingests()?;
            if ingests.contains_key(r#ref) {
                return Err(Status::unavailable(format!("ref {ref} locked")));
            }
            ingests.insert(
                r#ref.to_owned(),
                IngestStatus {
                    id,
                    file: file.clone(),
                    started_at: now,
                    updated_at: now,
                    offset: 0,
                    total,
                    expected: expected.to_owned(),
                },
            );
        }
        // From here on, dropping the ingest releases the ref and removes the file.
        let mut ingest = Ingest {
            store: self.clone(),
            r#ref: r#ref.to_owned(),
            id,
            path: file,
            file: None,
            hasher: Sha256::new(),
            offset: 0,
            total,
            expected: String::new(),
            started_at: now,
            updated_at: now,
        };
        if !expected.is_empty()
            && let Err(status) = ingest.expect(expected).await
        {
            ingest.discard().await;
            return Err(status);
        }
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&ingest.path)
            .await
        {
            Ok(file) => {
                ingest.file = Some(file);
                Ok(ingest)
            }
            Err(e) => {
                let status = io_status("creating", &ingest.path, &e);
                // Whatever is at that name is not this write's to remove.
                ingest.path = PathBuf::new();
                ingest.discard().await;
                Err(status)
            }
        }
    }
}

/// A committed blob opened for reading, handing out chunks of at most [`READ_CHUNK`] bytes,
/// each read at its offset (`pread`) in one blocking call.
#[derive(Debug)]
pub(super) struct BlobReader {
    file: std::sync::Arc<std::fs::File>,
    path: PathBuf,
    offset: i64,
    remaining: i64,
}

impl BlobReader {
    /// The next chunk and the blob offset it starts at; `None` at the end of the range.
    pub(super) async fn next_chunk(&mut self) -> Result<Option<(i64, Vec<u8>)>, Status> {
        if self.remaining <= 0 {
            return Ok(None);
        }
        let len = usize::try_from(self.remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
        let offset = self.offset;
        let file = self.file.clone();
        let data = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt as _;
            let mut data = vec![0; len];
            file.read_exact_at(&mut data, offset.unsigned_abs())
                .map(|()| data)
        })
        .await
        .map_err(|e| Status::internal(format!("reading {}: {e}", self.path.display())))?
        .map_err(|e| io_status("reading", &self.path, &e))?;
        let read = i64::try_from(len).unwrap_or(i64::MAX);
        self.offset += read;
        self.remaining -= read;
        Ok(Some((offset, data)))
    }
}

/// One write in progress, owned by the stream that writes it. Dropping it without a commit
/// (an error, an abort, the daemon hanging up) releases the ref and removes its data.
#[derive(Debug)]
pub(super) struct Ingest {
    store: LocalContentStore,
    r#ref: String,
    id: u64,
    path: PathBuf,
    /// `None` while the ingest is being set up and once the write is over.
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    offset: i64,
    total: i64,
    expected: String,
    started_at: SystemTime,
    updated_at: SystemTime,
}

impl Ingest {
    /// Bytes written so far.
    pub(super) fn offset(&self) -> i64 {
        self.offset
    }

    /// `sha256:<hex>` of the bytes written so far.
    pub(super) fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }

    /// The size announced for the blob (zero: none).
    pub(super) fn total(&self) -> i64 {
        self.total
    }

    /// When the write began and when it last received data.
    pub(super) fn times(&self) -> (SystemTime, SystemTime) {
        (self.started_at, self.updated_at)
    }

    /// Announces the blob's size (checked at commit; zero or less changes nothing).
    pub(super) fn set_total(&mut self, total: i64) {
        if total > 0 {
            self.total = total;
            self.publish();
        }
    }

    /// Announces the blob's digest (checked at commit): InvalidArgument when it is not a
    /// sha256 digest, AlreadyExists when the store already has that blob (the write ends).
    pub(super) async fn expect(&mut self, expected: &str) -> Result<(), Status> {
        let hex = blob_hex(expected)?;
        match tokio::fs::metadata(self.store.blob_path(hex)).await {
            Ok(meta) if meta.is_file() => Err(Status::already_exists(format!(
                "blob with expected digest {expected} exists"
            ))),
            _ => {
                expected.clone_into(&mut self.expected);
                self.publish();
                Ok(())
            }
        }
    }

    /// Writes `data` at `offset`, which must be the current offset, or zero to start over
    /// (what was written is discarded). OutOfRange for any other offset.
    pub(super) async fn write_at(&mut self, offset: i64, data: &[u8]) -> Result<(), Status> {
        self.check_registered()?;
        if offset > 0 && offset != self.offset {
            return Err(Status::out_of_range(format!(
                "write @{offset} must occur at current offset {}",
                self.offset
            )));
        }
        let path = &self.path;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Status::failed_precondition("write on closed writer"))?;
        if offset == 0 && self.offset > 0 {
            file.set_len(0)
                .await
                .map_err(|e| io_status("truncating", path, &e))?;
            file.seek(SeekFrom::Start(0))
                .await
                .map_err(|e| io_status("truncating", path, &e))?;
            self.hasher = Sha256::new();
            self.offset = 0;
        }
        if !data.is_empty() {
            file.write_all(data)
                .await
                .map_err(|e| io_status("writing", path, &e))?;
            self.hasher.update(data);
            self.offset += i64::try_from(data.len()).unwrap_or(i64::MAX);
            self.updated_at = SystemTime::now();
        }
        self.publish();
        Ok(())
    }

    /// Stores what was written as a blob and returns its digest. FailedPrecondition (and
    /// nothing stored) when a size or digest was announced and the data does not match.
    /// The data is synced, then renamed to `blobs/sha256/<hex>`; when another writer stored
    /// the same blob first, that copy is kept.
    pub(super) async fn commit(mut self) -> Result<String, Status> {
        let stored = self.store_blob().await;
        // Stored or refused, the write is over: release the ref and remove the file (which
        // is already gone when it was renamed into place).
        self.discard().await;
        stored
    }

    /// Ends the write without storing anything: releases the ref and removes the data.
    pub(super) async fn discard(mut self) {
        self.release();
        self.file = None;
        let path = std::mem::take(&mut self.path);
        remove_temp(&path).await;
    }

    async fn store_blob(&mut self) -> Result<String, Status> {
        self.check_registered()?;
        let path = self.path.clone();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Status::failed_precondition("cannot commit on closed writer"))?;
        file.flush()
            .await
            .map_err(|e| io_status("writing", &path, &e))?;
        file.sync_all()
            .await
            .map_err(|e| io_status("syncing", &path, &e))?;
        let written = file
            .metadata()
            .await
            .map_err(|e| io_status("reading", &path, &e))?
            .len();
        drop(file);
        if u64::try_from(self.offset).ok() != Some(written) {
            return Err(Status::data_loss(format!(
                "ingest file holds {written} bytes, {} were written",
                self.offset
            )));
        }
        if self.total > 0 && self.total != self.offset {
            return Err(Status::failed_precondition(format!(
                "unexpected commit size {}, expected {}",
                self.offset, self.total
            )));
        }
        let digest = self.digest();
        if !self.expected.is_empty() && self.expected != digest {
            return Err(Status::failed_precondition(format!(
                "unexpected commit digest {digest}, expected {}",
                self.expected
            )));
        }
        let blob_dir = self.store.blob_dir();
        tokio::fs::create_dir_all(&blob_dir)
            .await
            .map_err(|e| io_status("creating", &blob_dir, &e))?;
        let target = self.store.blob_path(&digest["sha256:".len()..]);
        // Blobs are immutable: read-only, as containerd leaves them.
        set_read_only(&path).await?;
        let existing = tokio::fs::metadata(&target).await;
        // The same name means the same bytes; only a copy of another size (torn by a tool
        // that wrote it in place) is replaced.
        if !matches!(&existing, Ok(meta) if meta.is_file() && meta.len() == written) {
            tokio::fs::rename(&path, &target)
                .await
                .map_err(|e| io_status("storing", &target, &e))?;
            sync_dir(&blob_dir).await;
        }
        Ok(digest)
    }

    /// NotFound once the write was aborted (its entry removed or replaced).
    fn check_registered(&self) -> Result<(), Status> {
        match self.store.ingests()?.get(&self.r#ref) {
            Some(status) if status.id == self.id => Ok(()),
            _ => Err(Status::not_found(format!(
                "ingest ref {:?} was aborted",
                self.r#ref
            ))),
        }
    }

    /// Removes the write from the table (unless an abort already did), freeing its ref.
    fn release(&self) {
        if let Ok(mut ingests) = self.store.inner.ingests.lock()
            && ingests.get(&self.r#ref).is_some_and(|s| s.id == self.id)
        {
            ingests.remove(&self.r#ref);
        }
    }

    /// Copies the write's progress into the table that Status and ListStatuses read.
    fn publish(&self) {
        if let Ok(mut ingests) = self.store.ingests()
            && let Some(status) = ingests.get_mut(&self.r#ref)
            && status.id == self.id
        {
            status.offset = self.offset;
            status.total = self.total;
            status.updated_at = self.updated_at;
            status.expected.clone_from(&self.expected);
        }
    }
}

impl Drop for Ingest {
    /// A write dropped midway (the daemon hung up): the ref is released at once, the file
    /// removed in the background. Commit and discard leave nothing for this to do.
    fn drop(&mut self) {
        self.release();
        self.file = None;
        let path = std::mem::take(&mut self.path);
        if path.as_os_str().is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { remove_temp(&path).await });
            }
            Err(_) => {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished content store write");
                }
            }
        }
    }
}

/// The hex part of a `sha256:` digest of 64 lower-case hex digits; InvalidArgument for
/// anything else (other algorithms, other case, anything that could be a path).
pub(super) fn blob_hex(digest: &str) -> Result<&str, Status> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "{digest:?} failed validation: expected sha256: and 64 lower-case hex digits"
            ))
        })
}

fn not_found(digest: &str) -> Status {
    Status::not_found(format!("content digest {digest}: not found"))
}

fn io_status(action: &str, path: &Path, err: &io::Error) -> Status {
    Status::internal(format!("{action} {}: {err}", path.display()))
}

fn info_of(digest: String, meta: &std::fs::Metadata) -> pb::Info {
    let mtime = meta.modified().ok().map(prost_types::Timestamp::from);
    pb::Info {
        digest,
        size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
        created_at: mtime,
        updated_at: mtime,
        labels: Default::default(),
    }
}

fn status_of(r#ref: &str, status: &IngestStatus) -> pb::Status {
    pb::Status {
        started_at: Some(status.started_at.into()),
        updated_at: Some(status.updated_at.into()),
        r#ref: r#ref.to_owned(),
        offset: status.offset,
        total: status.total,
        expected: status.expected.clone(),
    }
}

async fn set_read_only(path: &Path) -> Result<(), Status> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
        .await
        .map_err(|e| io_status("storing", path, &e))
}

/// Makes a rename into `dir` durable; a failure only costs durability after a crash.
async fn sync_dir(dir: &Path) {
    let result = match tokio::fs::File::open(dir).await {
        Ok(handle) => handle.sync_all().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync the blob directory");
    }
}

/// Removes an unfinished write's file (which a commit may already have renamed).
async fn remove_temp(path: &Path) {
    if path.as_os_str().is_empty() {
        return;
    }
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished content store write");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(data))
    }

    async fn write(store: &LocalContentStore, r#ref: &str, data: &[u8]) -> Ingest {
        let mut ingest = store.begin_write(r#ref, 0, "").await.expect("begin");
        ingest.write_at(0, data).await.expect("write");
        ingest
    }

    #[tokio::test]
    async fn open_creates_the_root_and_ingest_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("a/b");
        let store = LocalContentStore::open(&root).expect("open");
        assert_eq!(store.root(), root);
        assert!(root.join("ingest").is_dir());
        assert!(
            !root.join("blobs").exists(),
            "blobs/ appears with the first blob"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write");
        let err = LocalContentStore::open(&file).expect_err("not a dir");
        assert!(err.to_string().contains("ingest"), "{err}");
    }

    #[test]
    fn only_sha256_digests_in_lower_case_hex_name_blobs() {
        let good = digest_of(b"x");
        assert_eq!(blob_hex(&good).expect("valid"), &good[7..]);
        for bad in [
            "",
            "sha256:",
            "sha256:../../../etc/passwd",
            "sha384:00",
            &good.to_uppercase(),
            &format!("{good}0"),
            &format!("{good}/"),
        ] {
            assert_eq!(
                blob_hex(bad).expect_err(bad).code(),
                tonic::Code::InvalidArgument
            );
        }
    }

    #[tokio::test]
    async fn a_second_commit_of_a_stored_blob_keeps_the_first_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Two stores on one folder: two builds exporting to the same cache.
        let a = LocalContentStore::open(dir.path()).expect("open");
        let b = LocalContentStore::open(dir.path()).expect("open");
        let first = write(&a, "same", b"blob").await;
        let second = write(&b, "same", b"blob").await;
        assert_eq!(first.commit().await.expect("first"), digest_of(b"blob"));
        let path = a.blob_path(&digest_of(b"blob")[7..]);
        let inode = std::fs::metadata(&path).expect("blob").ino();
        assert_eq!(second.commit().await.expect("second"), digest_of(b"blob"));
        let meta = std::fs::metadata(&path).expect("blob");
        assert_eq!(meta.ino(), inode);
        assert_eq!(meta.mode() & 0o777, 0o444);
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .expect("ingest")
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_stored_copy_of_the_wrong_size_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalContentStore::open(dir.path()).expect("open");
        let path = store.blob_path(&digest_of(b"whole blob")[7..]);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"whole").expect("torn copy");
        let ingest = write(&store, "r", b"whole blob").await;
        ingest.commit().await.expect("commit");
        assert_eq!(std::fs::read(&path).expect("blob"), b"whole blob");
    }

    #[tokio::test]
    async fn a_dropped_write_frees_its_ref_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalContentStore::open(dir.path()).expect("open");
        let ingest = write(&store, "r", b"partial").await;
        assert_eq!(store.status("r").expect("in progress").offset, 7);
        let locked = store.begin_write("r", 0, "").await.expect_err("locked");
        assert_eq!(locked.code(), tonic::Code::Unavailable);
        drop(ingest);
        // The ref is free at once; the file goes in the background.
        store
            .begin_write("r", 0, "")
            .await
            .expect("free")
            .discard()
            .await;
        for _ in 0..200 {
            if std::fs::read_dir(dir.path().join("ingest"))
                .expect("ingest")
                .next()
                .is_none()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the dropped write's file was not removed");
    }
}
