//! A destination directory in which every path is resolved beneath it, never through a
//! symbolic link: what the `local` output receiver writes with, so that a daemon (which may be
//! shared, buggy or compromised) cannot make brix write, replace or remove anything outside
//! the folder the user named.
//!
//! Every operation takes a relative path of normal components (checked by [`safe_relative`])
//! and walks it component by component from a handle on the destination, opening each parent
//! with `O_NOFOLLOW | O_DIRECTORY`: a parent that is a symbolic link (whether the same stream
//! created it a moment earlier, or it was already in the destination) or not a directory is
//! refused, never followed. The final component is created, replaced or removed relative to
//! its parent's handle, again without following it. The destination itself is the user's
//! choice and is opened as named.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

/// Why an operation beneath the destination failed.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The path may not be written: it leaves the destination or passes through a link.
    #[error("refusing {path:?}: {reason}")]
    Refused {
        /// The path as the daemon sent it.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A file system call failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path on disk.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A relative path with only normal components and no NUL byte: the only kind of path the
/// receiver accepts from a daemon.
pub fn safe_relative(path: &[u8]) -> Result<PathBuf, BeneathError> {
    let refuse = |reason: &str| BeneathError::Refused {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.to_owned(),
    };
    if path.contains(&0) {
        return Err(refuse("the name contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(path)).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is absolute"));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(refuse("the path is empty"));
    }
    Ok(out)
}

/// The destination directory, opened once; see the module doc.
pub struct Beneath {
    root: OwnedFd,
    root_path: PathBuf,
    /// The parent most recently resolved: entries arrive in walk order, so siblings reuse it.
    last_parent: Option<(PathBuf, OwnedFd)>,
}

impl Beneath {
    /// Creates `dest` if missing (as the user named it, links included) and opens it. A
    /// folder it creates, and any missing parent, gets mode 0700, as BuildKit's client
    /// creates an output folder (`os.MkdirAll(dest, 0700)`); an existing one is kept as is.
    pub fn open(dest: &Path) -> Result<Self, BeneathError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dest)
            .map_err(|source| BeneathError::Io {
                path: dest.to_path_buf(),
                source,
            })?;
        let root = rustix::fs::open(
            dest,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(dest.to_path_buf(), e))?;
        Ok(Self {
            root,
            root_path: dest.to_path_buf(),
            last_parent: None,
        })
    }

    /// The directory at `rel` (made by [`Beneath::ensure_dir`]) as a destination of its own:
    /// reached without following a link, and nothing resolved from it can leave it.
    pub fn subdir(&mut self, rel: &Path) -> Result<Beneath, BeneathError> {
        let (parent, name) = self.parent(rel)?;
        let root = rustix::fs::openat(
            &parent,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.parent_error(rel, rel, &parent, name, e))?;
        Ok(Beneath {
            root,
            root_path: self.root_path.join(rel),
            last_parent: None,
        })
    }

    /// `rel` on disk, for messages.
    pub fn display_path(&self, rel: &Path) -> PathBuf {
        self.root_path.join(rel)
    }

    /// Makes `rel` a directory: an existing directory is kept (the output is merged into
    /// it), anything else there is replaced.
    pub fn ensure_dir(&mut self, rel: &Path) -> Result<(), BeneathError> {
        let (parent, name) = self.parent(rel)?;
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(()),
            Ok(_) => remove_at(&parent, name, &self.root_path.join(rel))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(self.root_path.join(rel), e)),
        }
        rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755))
            .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Replaces whatever is at `rel` by a symbolic link to `target` (any target: the link is
    /// content, never followed here).
    pub fn symlink(&mut self, rel: &Path, target: &[u8]) -> Result<(), BeneathError> {
        let (parent, name) = self.replace(rel)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), &parent, name)
            .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Replaces whatever is at `rel` by a hard link to `target`, itself a path beneath the
    /// destination (resolved the same way; a link in its last component is linked, not
    /// followed).
    pub fn hard_link(&mut self, rel: &Path, target: &[u8]) -> Result<(), BeneathError> {
        let target_rel = safe_relative(target).map_err(|e| match e {
            BeneathError::Refused { reason, .. } => BeneathError::Refused {
                path: rel.to_string_lossy().into_owned(),
                reason: format!(
                    "hard link target {:?}: {reason}",
                    String::from_utf8_lossy(target)
                ),
            },
            other => other,
        })?;
        let (target_parent, target_name) = self.parent(&target_rel)?;
        let (parent, name) = self.replace(rel)?;
        rustix::fs::linkat(&target_parent, target_name, &parent, name, AtFlags::empty())
            .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Replaces whatever is at `rel` by a new empty regular file.
    pub fn create_file(&mut self, rel: &Path) -> Result<(), BeneathError> {
        let (parent, name) = self.replace(rel)?;
        rustix::fs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(drop)
        .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Opens the regular file at `rel` (made by [`Beneath::create_file`]) for writing.
    pub fn open_file(&mut self, rel: &Path) -> Result<std::fs::File, BeneathError> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(std::fs::File::from)
        .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Sets the permission bits and modification time of the directory at `rel`.
    pub fn finish_dir(
        &mut self,
        rel: &Path,
        mode: u32,
        mtime_nanos: i64,
    ) -> Result<(), BeneathError> {
        let (parent, name) = self.parent(rel)?;
        let dir = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(self.root_path.join(rel), e))?;
        finish_fd(&dir, mode, mtime_nanos).map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// Sets the modification time of the entry at `rel` itself (a link is not followed).
    pub fn set_mtime(&mut self, rel: &Path, mtime_nanos: i64) -> Result<(), BeneathError> {
        let (parent, name) = self.parent(rel)?;
        rustix::fs::utimensat(
            &parent,
            name,
            &timestamps(mtime_nanos),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(self.root_path.join(rel), e))
    }

    /// The parent of `rel` (resolved) with anything at `rel` removed.
    fn replace<'p>(&mut self, rel: &'p Path) -> Result<(OwnedFd, &'p OsStr), BeneathError> {
        let (parent, name) = self.parent(rel)?;
        remove_at(&parent, name, &self.root_path.join(rel))?;
        Ok((parent, name))
    }

    /// A handle on the parent directory of `rel`, reached without following any link, and
    /// the last component of `rel`.
    fn parent<'p>(&mut self, rel: &'p Path) -> Result<(OwnedFd, &'p OsStr), BeneathError> {
        let name = rel.file_name().ok_or_else(|| BeneathError::Refused {
            path: rel.to_string_lossy().into_owned(),
            reason: "the path has no file name".into(),
        })?;
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if let Some((cached, fd)) = &self.last_parent
            && cached == parent_rel
        {
            let fd = fd.try_clone().map_err(|source| BeneathError::Io {
                path: self.root_path.join(parent_rel),
                source,
            })?;
            return Ok((fd, name));
        }
        let mut dir = self.root.try_clone().map_err(|source| BeneathError::Io {
            path: self.root_path.clone(),
            source,
        })?;
        let mut walked = PathBuf::new();
        for component in parent_rel.components() {
            walked.push(component);
            dir = match rustix::fs::openat(
                &dir,
                component.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(next) => next,
                Err(e) => {
                    return Err(self.parent_error(rel, &walked, &dir, component.as_os_str(), e));
                }
            };
        }
        let kept = dir.try_clone().map_err(|source| BeneathError::Io {
            path: self.root_path.join(parent_rel),
            source,
        })?;
        self.last_parent = Some((parent_rel.to_path_buf(), kept));
        Ok((dir, name))
    }

    /// Why a parent could not be opened: a link or a non-directory is a refusal, anything
    /// else an I/O error.
    fn parent_error(
        &self,
        rel: &Path,
        walked: &Path,
        dir: &OwnedFd,
        component: &OsStr,
        err: Errno,
    ) -> BeneathError {
        let refuse = |what: &str| BeneathError::Refused {
            path: rel.to_string_lossy().into_owned(),
            reason: format!("its parent {:?} {what}", walked.to_string_lossy()),
        };
        match rustix::fs::statat(dir, component, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                refuse("is a symbolic link, which is never followed")
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                refuse("is not a directory")
            }
            _ => io_err(self.root_path.join(walked), err),
        }
    }
}

/// Applies permission bits and a modification time through an open handle.
pub fn finish_fd(fd: impl AsFd, mode: u32, mtime_nanos: i64) -> rustix::io::Result<()> {
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(&fd, &timestamps(mtime_nanos))
}

fn timestamps(nanos: i64) -> Timestamps {
    let ts = Timespec {
        tv_sec: nanos.div_euclid(1_000_000_000),
        tv_nsec: nanos.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

fn io_err(path: PathBuf, e: Errno) -> BeneathError {
    BeneathError::Io {
        path,
        source: e.into(),
    }
}

/// Removes `name` in `parent` if present: a file or link is unlinked (a link's target is
/// untouched), a directory is emptied through handles and removed.
fn remove_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<(), BeneathError> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err(shown.to_path_buf(), e)),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            remove_tree_at(parent, name).map_err(|e| io_err(shown.to_path_buf(), e))
        }
        Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty())
            .map_err(|e| io_err(shown.to_path_buf(), e)),
    }
}

fn remove_tree_at(parent: &OwnedFd, name: &OsStr) -> rustix::io::Result<()> {
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(child.to_vec());
        }
    }
    for child in children {
        let child = OsStr::from_bytes(&child);
        let st = rustix::fs::statat(&dir, child, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            remove_tree_at(&dir, child)?;
        } else {
            rustix::fs::unlinkat(&dir, child, AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_relative_refuses_escapes_and_nul() {
        assert_eq!(safe_relative(b"a/./b").expect("ok"), Path::new("a/b"));
        for bad in [
            &b"../x"[..],
            b"/etc/passwd",
            b"a/../../x",
            b"",
            b".",
            b"a\0b",
        ] {
            assert!(
                matches!(safe_relative(bad), Err(BeneathError::Refused { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn removing_a_tree_leaves_link_targets_alone() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), b"k").expect("write");
        let dest = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dest.path().join("d/sub")).expect("mkdir");
        std::os::unix::fs::symlink(outside.path(), dest.path().join("d/sub/out")).expect("link");
        let mut b = Beneath::open(dest.path()).expect("open");
        b.create_file(Path::new("d"))
            .expect("replace the tree by a file");
        assert!(dest.path().join("d").is_file());
        assert_eq!(
            std::fs::read(outside.path().join("keep")).expect("read"),
            b"k"
        );
    }
}
