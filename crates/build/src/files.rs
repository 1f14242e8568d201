//! Files the user names on the command line (`--metadata-file`, `--iidfile`, `history
//! export -o`): written whole or not at all, and only where the user said.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file beside it, renamed into place: a reader
/// sees the old file or the whole new one, and a link at `path` is replaced, not written
/// through (as buildx's `AtomicWriteFile`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A device or FIFO the user named (`--metadata-file /dev/null`, `/dev/stdout`) is written
    // to, never replaced by a file.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(bytes);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".brix-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // buildx writes these files 0644.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_to_a_device_is_written_to_it_not_over_it() {
        write_atomically(Path::new("/dev/null"), b"{}").expect("write");
        let meta = std::fs::metadata("/dev/null").expect("meta");
        assert!(!meta.is_file(), "/dev/null was replaced by a file");
    }

    #[test]
    fn metadata_is_written_atomically_and_replaces_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep").expect("write");
        let path = dir.path().join("metadata.json");
        std::os::unix::fs::symlink(&outside, &path).expect("link");
        write_atomically(&path, b"{}").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{}");
        assert_eq!(std::fs::read(&outside).expect("read"), b"keep");
        assert!(
            !std::fs::symlink_metadata(&path)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".brix-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
