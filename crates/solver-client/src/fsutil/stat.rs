//! Building `fsutil.types.Stat` from `lstat` results, as fsutil's `mkstat` does on Unix.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::mode;
use super::wire::Stat;

/// Converts Unix `st_mode` type and permission bits into Go `os.FileMode` bits.
/// The socket bit is cleared, as fsutil does, because tar cannot carry sockets.
pub fn go_file_mode(meta: &Metadata) -> u32 {
    let raw = meta.mode();
    let mut go = raw & mode::PERM;
    if raw & 0o4000 != 0 {
        go |= mode::SETUID;
    }
    if raw & 0o2000 != 0 {
        go |= mode::SETGID;
    }
    if raw & 0o1000 != 0 {
        go |= mode::STICKY;
    }
    let ft = meta.file_type();
    if ft.is_dir() {
        go |= mode::DIR;
    } else if ft.is_symlink() {
        go |= mode::SYMLINK;
    } else if ft.is_block_device() {
        go |= mode::DEVICE;
    } else if ft.is_char_device() {
        go |= mode::DEVICE | mode::CHAR_DEVICE;
    } else if ft.is_fifo() {
        go |= mode::NAMED_PIPE;
    }
    go
}

/// Builds the Stat sent for one entry. `rel` is the slash-separated path relative to the
/// synced root, `abs` where the entry is now (needed to read a symlink's target).
///
/// uid and gid are reset to 0, as BuildKit's Go client does for every local source, so the
/// caller's ownership does not leak into images. Extended attributes are not sent.
pub fn stat_from_metadata(abs: &Path, rel: &[u8], meta: &Metadata) -> std::io::Result<Stat> {
    let mut stat = Stat {
        path: rel.to_vec(),
        mode: go_file_mode(meta),
        mod_time: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        ..Default::default()
    };
    let ft = meta.file_type();
    if !ft.is_dir() {
        stat.size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
        if ft.is_symlink() {
            stat.linkname = std::fs::read_link(abs)?.as_os_str().as_bytes().to_vec();
        }
    }
    if ft.is_block_device() || ft.is_char_device() {
        let dev = meta.rdev();
        stat.devmajor = i64::from(rustix::fs::major(dev));
        stat.devminor = i64::from(rustix::fs::minor(dev));
    }
    Ok(stat)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn modes_sizes_and_times_follow_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        std::os::unix::fs::symlink("target/x", dir.path().join("l")).expect("symlink");

        let meta = std::fs::symlink_metadata(&file).expect("lstat");
        let stat = stat_from_metadata(&file, b"f", &meta).expect("stat");
        assert_eq!(stat.mode, 0o755 | mode::SETUID);
        assert_eq!(stat.size, 5);
        assert_eq!(
            stat.mod_time,
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
        );
        assert_eq!((stat.uid, stat.gid), (0, 0));

        let link = dir.path().join("l");
        let meta = std::fs::symlink_metadata(&link).expect("lstat");
        let stat = stat_from_metadata(&link, b"l", &meta).expect("stat");
        assert_eq!(stat.mode & mode::SYMLINK, mode::SYMLINK);
        assert_eq!(stat.linkname, b"target/x");
        assert_eq!(stat.size, 8);

        let meta = std::fs::symlink_metadata(dir.path()).expect("lstat");
        let stat = stat_from_metadata(dir.path(), b"d", &meta).expect("stat");
        assert_eq!(stat.mode & mode::DIR, mode::DIR);
        assert_eq!(stat.size, 0);
    }
}
