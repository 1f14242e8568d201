//! One platform's folder of a multi-platform `local` or `tar` output, laid out as BuildKit lays
//! out its own: the daemon wraps each platform's tree in a folder with fsutil's `SubDirFS`
//! (`exporter/local/export.go`, `exporter/tar/export.go`), which names every entry
//! `<folder>/<path>`, points hard links at `<folder>/<target>` and moves absolute symlink
//! targets under `/<folder>`. brix solves each platform on its own, so the daemon sends the
//! bare tree and the client applies the same layout when it writes it.

/// Permission bits BuildKit gives a platform folder (`platformDirStat`: `os.ModeDir | 0755`).
pub const FOLDER_MODE: u32 = 0o755;

/// A platform folder name that is not one plain path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform folder name {0:?}: it must be one path component, not `.` or `..`")]
pub struct InvalidFolderName(pub String);

/// The folder one platform's tree is written under (`linux_amd64`), with the modification
/// time BuildKit gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFolder {
    name: String,
    mod_time: i64,
}

impl PlatformFolder {
    /// A folder named `name` (one path component, e.g. `linux_arm64`), dated at the Unix
    /// epoch, as BuildKit dates it when the build has no `SOURCE_DATE_EPOCH`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidFolderName> {
        let name = name.into();
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.bytes().any(|b| b == b'/' || b == 0);
        if !plain {
            return Err(InvalidFolderName(name));
        }
        Ok(Self { name, mod_time: 0 })
    }

    /// Dates the folder at the build's `SOURCE_DATE_EPOCH` (seconds), as BuildKit does when
    /// the frontend reports one (`epoch.ParseSource`); `None` keeps the Unix epoch.
    pub fn with_source_date_epoch(mut self, epoch_secs: Option<i64>) -> Self {
        self.mod_time = epoch_secs.map_or(0, |s| s.saturating_mul(1_000_000_000));
        self
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder's modification time in Unix nanoseconds.
    pub fn mod_time(&self) -> i64 {
        self.mod_time
    }

    /// A symlink target as it reads inside the folder. A relative target is kept. An absolute
    /// one is moved under `/<folder>`, cleaned as Go's `path.Join` cleans it
    /// (`/etc//x/` → `/linux_amd64/etc/x`, `/` → `/linux_amd64`).
    ///
    /// One case differs from BuildKit on purpose: BuildKit joins before cleaning, so a target
    /// that climbs above its root (`/../../etc/passwd`) eats the folder and comes out as
    /// `/etc/passwd`, outside the platform's tree. Here `..` stops at the target's own root,
    /// as it does inside the platform's file system, giving `/linux_amd64/etc/passwd`.
    pub fn symlink_target(&self, target: &[u8]) -> Vec<u8> {
        if target.first() != Some(&b'/') {
            return target.to_vec();
        }
        let cleaned = go_clean(target);
        let mut out = Vec::with_capacity(self.name.len() + cleaned.len() + 1);
        out.push(b'/');
        out.extend_from_slice(self.name.as_bytes());
        if cleaned != b"/" {
            out.extend_from_slice(&cleaned);
        }
        out
    }
}

impl TryFrom<String> for PlatformFolder {
    type Error = InvalidFolderName;

    /// [`PlatformFolder::new`]: the folder dated at the Unix epoch.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

/// Go's `path.Clean` on bytes: no empty or `.` components, `..` resolved lexically (and
/// dropped at the root of a rooted path), `.` for an empty result.
pub(crate) fn go_clean(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join(&b'/');
    match (rooted, joined.is_empty()) {
        (true, _) => [&b"/"[..], &joined].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> PlatformFolder {
        PlatformFolder::new("linux_amd64").expect("valid name")
    }

    #[test]
    fn absolute_targets_move_under_the_folder_as_buildkit_moves_them() {
        let f = folder();
        for (target, expected) in [
            (&b"/etc/hostname"[..], &b"/linux_amd64/etc/hostname"[..]),
            (b"/nonexistent/x", b"/linux_amd64/nonexistent/x"),
            (b"/", b"/linux_amd64"),
            (b"/etc/", b"/linux_amd64/etc"),
            (b"//etc//./x/../y", b"/linux_amd64/etc/y"),
            (b"/tgt\xff", b"/linux_amd64/tgt\xff"),
            (b"/a/b/..", b"/linux_amd64/a"),
        ] {
            assert_eq!(
                f.symlink_target(target),
                expected,
                "{}",
                target.escape_ascii()
            );
        }
    }

    #[test]
    fn relative_and_dangling_targets_are_kept_as_sent() {
        let f = folder();
        for target in [&b"sub/deep/f"[..], b"nope", b"../../..", b"./x/../y/", b""] {
            assert_eq!(f.symlink_target(target), target);
        }
    }

    #[test]
    fn dotdot_in_an_absolute_target_never_climbs_out_of_the_folder() {
        let f = folder();
        for (target, expected) in [
            (&b"/../../etc/passwd"[..], &b"/linux_amd64/etc/passwd"[..]),
            (b"/..", b"/linux_amd64"),
            (
                b"/a/../../../linux_arm64/secret",
                b"/linux_amd64/linux_arm64/secret",
            ),
            (b"/../../../../../../", b"/linux_amd64"),
        ] {
            let got = f.symlink_target(target);
            assert_eq!(got, expected, "{}", target.escape_ascii());
            assert!(
                got == b"/linux_amd64" || got.starts_with(b"/linux_amd64/"),
                "{} escaped: {}",
                target.escape_ascii(),
                got.escape_ascii()
            );
            assert!(!got.split(|b| *b == b'/').any(|c| c == b".."));
        }
    }

    #[test]
    fn folder_names_are_one_plain_component() {
        for bad in ["", ".", "..", "a/b", "/linux", "a\0b"] {
            assert_eq!(
                PlatformFolder::new(bad),
                Err(InvalidFolderName(bad.to_owned()))
            );
        }
        let f = PlatformFolder::new("linux_arm_v7").expect("valid");
        assert_eq!((f.name(), f.mod_time()), ("linux_arm_v7", 0));
        let dated = f.with_source_date_epoch(Some(1000));
        assert_eq!(dated.mod_time(), 1_000_000_000_000);
        assert_eq!(dated.with_source_date_epoch(None).mod_time(), 0);
    }

    #[test]
    fn clean_matches_go_path_clean() {
        // Cases from Go's path/path_test.go.
        for (input, expected) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ] {
            assert_eq!(
                String::from_utf8(go_clean(input.as_bytes())).expect("utf-8"),
                expected,
                "{input:?}"
            );
        }
    }
}
