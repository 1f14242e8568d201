//! The filtered directory walk of fsutil (`fs.go`, `filter.go`, `followlinks.go`).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::stat::stat_from_metadata;
use super::wire::Stat;
use crate::patterns::{MatchInfo, PatternError, PatternMatcher};

/// What to send of a directory: the `include-patterns`, `exclude-patterns` and `followpaths`
/// a daemon passes in DiffCopy metadata (or a caller sets for its own use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// When non-empty, only paths matching one of these (or below a match) are sent.
    pub include_patterns: Vec<String>,
    /// Paths matching these (`.dockerignore` semantics, `!` exceptions) are not sent.
    pub exclude_patterns: Vec<String>,
    /// Paths whose symlinks are resolved; each link and its target are added to the includes.
    pub follow_paths: Vec<String>,
}

/// A failed walk.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The root could not be resolved or is not a directory.
    #[error("cannot sync {root}: {source}")]
    Root {
        /// The directory that was asked for.
        root: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An include or exclude pattern is malformed.
    #[error("invalid {which} pattern: {source}")]
    Pattern {
        /// `include` or `exclude`.
        which: &'static str,
        /// The pattern error.
        source: PatternError,
    },
    /// Reading an entry failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The entry's path on disk.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The consumer of the walk stopped it.
    #[error("walk stopped: {0}")]
    Stopped(String),
}

/// One entry produced by the walk, in send order.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// The Stat to send.
    pub stat: Stat,
    /// Where the entry is on disk (to read a regular file's contents later).
    pub abs_path: PathBuf,
}

/// Walks a directory with fsutil's filter semantics. Construct once per DiffCopy call.
#[derive(Debug)]
pub struct Walker {
    root: PathBuf,
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    only_prefix_includes: bool,
    only_prefix_exclude_exceptions: bool,
}

/// A directory whose STAT has not necessarily been emitted yet: fsutil emits a parent only
/// when something below it is included.
struct OpenDir {
    abs: PathBuf,
    rel: Vec<u8>,
    meta: Metadata,
    emitted: bool,
}

/// What one walk carries from directory to directory.
#[derive(Default)]
struct WalkState {
    /// The enclosing directories, outermost first.
    open: Vec<OpenDir>,
    /// Hard links seen so far.
    hard_links: HardLinks,
}

/// The first sent path of every multiply-linked file, by (device, inode).
///
/// fsutil's sender (`stat_unix.go` `setUnixOpt`) sends the second and later names of a hard
/// link as a regular-file STAT with `linkname` = the first name's path; the receiver then
/// makes a hard link instead of requesting the data, and `COPY` keeps the link (real
/// buildx's output has a tar `Link` entry there). The size stays the file's real size:
/// `setUnixOpt` zeroes it, but `mkstat` sets `Size = fi.Size()` right after for every
/// non-directory (the status counter of "transferring context" matched buildx's to the byte
/// only this way). Only names that are actually
/// sent are remembered, so a link never points at a path the receiver does not have.
/// Symlinks keep their target as `linkname`, so they are left out.
#[derive(Debug, Default)]
struct HardLinks {
    first: HashMap<(u64, u64), Vec<u8>>,
}

impl HardLinks {
    fn link_if_seen(&mut self, meta: &Metadata, stat: &mut Stat) {
        if meta.is_dir() || meta.file_type().is_symlink() || meta.nlink() < 2 {
            return;
        }
        match self.first.entry((meta.dev(), meta.ino())) {
            std::collections::hash_map::Entry::Occupied(first) => {
                stat.linkname = first.get().clone();
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(stat.path.clone());
            }
        }
    }
}

/// Characters that make a pattern more than a plain path prefix (fsutil `patternChars`).
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

impl Walker {
    /// Resolves `root` (following symlinks, like fsutil's `NewFS`) and compiles the filters.
    /// `follow_paths` are resolved against the filesystem now.
    pub fn new(root: &Path, opts: &FilterOptions) -> Result<Self, WalkError> {
        let root_err = |source| WalkError::Root {
            root: root.to_path_buf(),
            source,
        };
        let resolved = std::fs::canonicalize(root).map_err(root_err)?;
        let meta = std::fs::metadata(&resolved).map_err(root_err)?;
        if !meta.is_dir() {
            return Err(root_err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }

        let mut includes = opts.include_patterns.clone();
        if !opts.follow_paths.is_empty() {
            let targets =
                follow_links(&resolved, &opts.follow_paths).map_err(|source| WalkError::Io {
                    path: resolved.clone(),
                    source,
                })?;
            if let Some(targets) = targets {
                includes.extend(targets);
                includes =
                    dedupe_paths(includes.into_iter().collect::<BTreeSet<_>>()).unwrap_or_default();
            }
        }

        let include = if includes.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(&includes).map_err(|source| WalkError::Pattern {
                    which: "include",
                    source,
                })?,
            )
        };
        let exclude = if opts.exclude_patterns.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(&opts.exclude_patterns).map_err(|source| {
                    WalkError::Pattern {
                        which: "exclude",
                        source,
                    }
                })?,
            )
        };
        let only_prefix_includes = include.as_ref().is_none_or(|m| {
            m.patterns()
                .iter()
                .all(|p| p.is_exclusion() || !p.without_trailing_glob().contains(PATTERN_CHARS))
        });
        let only_prefix_exclude_exceptions = exclude.as_ref().is_none_or(|m| {
            m.patterns()
                .iter()
                .all(|p| !p.is_exclusion() || !p.without_trailing_glob().contains(PATTERN_CHARS))
        });
        Ok(Walker {
            root: resolved,
            include,
            exclude,
            only_prefix_includes,
            only_prefix_exclude_exceptions,
        })
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Walks the tree and calls `emit` for each entry in fsutil send order. An error from
    /// `emit` stops the walk and is returned. This is blocking file system work: call it from
    /// a blocking thread in async code.
    pub fn walk(
        &self,
        emit: &mut dyn FnMut(WalkEntry) -> Result<(), WalkError>,
    ) -> Result<(), WalkError> {
        let mut state = WalkState::default();
        self.walk_dir(
            &self.root,
            &[],
            &MatchInfo::default(),
            &MatchInfo::default(),
            &mut state,
            emit,
        )
    }

    fn walk_dir(
        &self,
        dir_abs: &Path,
        dir_rel: &[u8],
        parent_include: &MatchInfo,
        parent_exclude: &MatchInfo,
        state: &mut WalkState,
        emit: &mut dyn FnMut(WalkEntry) -> Result<(), WalkError>,
    ) -> Result<(), WalkError> {
        let mut names: Vec<OsString> = match std::fs::read_dir(dir_abs) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(|source| WalkError::Io {
                    path: dir_abs.to_path_buf(),
                    source,
                })?,
            // The directory vanished between listing its parent and reading it.
            Err(e) if is_not_exist(&e) => return Ok(()),
            Err(source) => {
                return Err(WalkError::Io {
                    path: dir_abs.to_path_buf(),
                    source,
                });
            }
        };
        // Siblings go out in byte order of their names (Go's WalkDir sorts by name).
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

        for name in names {
            let abs = dir_abs.join(&name);
            let mut rel = Vec::with_capacity(dir_rel.len() + 1 + name.len());
            if !dir_rel.is_empty() {
                rel.extend_from_slice(dir_rel);
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());

            let meta = match std::fs::symlink_metadata(&abs) {
                Ok(meta) => meta,
                Err(e) if is_not_exist(&e) => continue,
                Err(source) => return Err(WalkError::Io { path: abs, source }),
            };
            let is_dir = meta.is_dir();
            let mut skip = false;

            let mut include_info = MatchInfo::default();
            if let Some(include) = &self.include {
                let (matched, info) = include.matches_using_parent_results(&rel, parent_include);
                include_info = info;
                if !matched {
                    if is_dir
                        && self.only_prefix_includes
                        && !prefix_may_match(include, &rel, false)
                    {
                        continue;
                    }
                    skip = true;
                }
            }

            let mut exclude_info = MatchInfo::default();
            if let Some(exclude) = &self.exclude {
                let (matched, info) = exclude.matches_using_parent_results(&rel, parent_exclude);
                exclude_info = info;
                if matched {
                    if is_dir
                        && self.only_prefix_exclude_exceptions
                        && (!exclude.has_exclusions() || !prefix_may_match(exclude, &rel, true))
                    {
                        continue;
                    }
                    skip = true;
                }
            }

            if !skip {
                self.emit_open_parents(&mut state.open, emit)?;
                let mut stat =
                    stat_from_metadata(&abs, &rel, &meta).map_err(|source| WalkError::Io {
                        path: abs.clone(),
                        source,
                    })?;
                state.hard_links.link_if_seen(&meta, &mut stat);
                emit(WalkEntry {
                    stat,
                    abs_path: abs.clone(),
                })?;
            }

            if is_dir {
                state.open.push(OpenDir {
                    abs: abs.clone(),
                    rel: rel.clone(),
                    meta,
                    emitted: !skip,
                });
                let result = self.walk_dir(&abs, &rel, &include_info, &exclude_info, state, emit);
                state.open.pop();
                result?;
            }
        }
        Ok(())
    }

    /// Emits every enclosing directory that was skipped by the filters but now has an
    /// included descendant.
    fn emit_open_parents(
        &self,
        open: &mut [OpenDir],
        emit: &mut dyn FnMut(WalkEntry) -> Result<(), WalkError>,
    ) -> Result<(), WalkError> {
        for dir in open.iter_mut().filter(|d| !d.emitted) {
            dir.emitted = true;
            let stat = stat_from_metadata(&dir.abs, &dir.rel, &dir.meta).map_err(|source| {
                WalkError::Io {
                    path: dir.abs.clone(),
                    source,
                }
            })?;
            emit(WalkEntry {
                stat,
                abs_path: dir.abs.clone(),
            })?;
        }
        Ok(())
    }
}

/// Whether a (non-)exception pattern of `matcher` names a path inside directory `rel`, so the
/// directory must still be walked (fsutil's prefix optimisation).
fn prefix_may_match(matcher: &PatternMatcher, rel: &[u8], exclusions: bool) -> bool {
    let mut dir_slash = rel.to_vec();
    dir_slash.push(b'/');
    matcher
        .patterns()
        .iter()
        .filter(|p| p.is_exclusion() == exclusions)
        .any(|p| {
            let mut pat = p.without_trailing_glob().as_bytes().to_vec();
            pat.push(b'/');
            pat.starts_with(&dir_slash)
        })
}

fn is_not_exist(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

/// Resolves symlinks along `paths` (relative to `root`, which must already be resolved) the
/// way fsutil's `FollowLinks` does: every symlink met on the way is kept and its target
/// (relative to the root, absolute targets counting from the root) is followed in turn; the
/// final path is kept too. A final component may be a glob. Returns the sorted, deduplicated
/// list, or `None` when one of the results is the root itself (then there is nothing to
/// filter).
pub fn follow_links(root: &Path, paths: &[String]) -> io::Result<Option<Vec<String>>> {
    let mut resolver = SymlinkResolver {
        root,
        resolved: BTreeSet::new(),
        depth: 0,
    };
    for p in paths {
        resolver.append(p)?;
    }
    Ok(dedupe_paths(resolver.resolved))
}

struct SymlinkResolver<'a> {
    root: &'a Path,
    resolved: BTreeSet<String>,
    /// Guards against symlink loops, which fsutil would follow forever.
    depth: usize,
}

impl SymlinkResolver<'_> {
    fn append(&mut self, p: &str) -> io::Result<()> {
        self.depth += 1;
        if self.depth > 255 {
            return Err(io::Error::other(format!(
                "too many levels of symbolic links at {p:?}"
            )));
        }
        let result = self.append_inner(p);
        self.depth -= 1;
        result
    }

    fn append_inner(&mut self, p: &str) -> io::Result<()> {
        let mut rest = p.to_owned();
        let mut current = String::from(".");
        loop {
            let (first, remainder) = match rest.split_once('/') {
                Some((a, b)) => (a.to_owned(), b.to_owned()),
                None => (rest.clone(), String::new()),
            };
            current = join_clean(&current, &first);
            let targets = self.read_symlink(&current, true)?;
            rest = remainder;
            if (rest.is_empty() || targets.is_some()) && self.resolved.contains(&current) {
                return Ok(());
            }
            if let Some(targets) = targets {
                self.resolved.insert(current.clone());
                for target in targets {
                    self.append(&join_clean(&target, &rest))?;
                }
                return Ok(());
            }
            if rest.is_empty() {
                self.resolved.insert(current);
                return Ok(());
            }
        }
    }

    /// The targets of `p` if it is a symlink (or, for a glob base name, of every matching
    /// entry that is one); `None` if it is not a link or does not exist.
    fn read_symlink(&self, p: &str, allow_wildcard: bool) -> io::Result<Option<Vec<String>>> {
        let real = self.root.join(p);
        let (dir, base) = match p.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => (".", p),
        };
        if allow_wildcard && contains_wildcards(base) {
            let Ok(glob) = PatternMatcher::new([base]) else {
                return Ok(None);
            };
            let entries = match std::fs::read_dir(self.root.join(dir)) {
                Ok(entries) => entries,
                Err(e) if is_not_exist(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut out: Option<Vec<String>> = None;
            for entry in entries {
                let name = entry?.file_name();
                if glob.matches_exact(name.as_bytes()) {
                    let child = join_clean(dir, &name.to_string_lossy());
                    if let Some(targets) = self.read_symlink(&child, false)? {
                        out.get_or_insert_with(Vec::new).extend(targets);
                    }
                }
            }
            return Ok(out);
        }
        let meta = match std::fs::symlink_metadata(&real) {
            Ok(meta) => meta,
            Err(e) if is_not_exist(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            return Ok(None);
        }
        let link = std::fs::read_link(&real)?;
        let link = String::from_utf8_lossy(&link.into_os_string().into_vec()).into_owned();
        let link = crate::patterns::clean_path(&link);
        if link.starts_with('/') {
            return Ok(Some(vec![link]));
        }
        Ok(Some(vec![crate::patterns::clean_path(&format!(
            "/{dir}/{link}"
        ))]))
    }
}

/// `filepath.Join(a, b)` for slash paths, made relative to the root (an absolute path names
/// a place inside the synced root).
fn join_clean(a: &str, b: &str) -> String {
    let joined = crate::patterns::clean_path(&format!("{a}/{b}"));
    match joined.strip_prefix('/') {
        Some("") => ".".to_owned(),
        Some(rel) => rel.to_owned(),
        None => joined,
    }
}

fn contains_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Drops paths below another listed path; `None` if the root (`.`) is listed.
fn dedupe_paths(sorted: BTreeSet<String>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in sorted {
        if s == "." {
            return None;
        }
        if out
            .last()
            .is_some_and(|last| s.starts_with(&format!("{last}/")))
        {
            continue;
        }
        out.push(s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::fsutil::mode;

    fn tree(entries: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for e in entries {
            let p = dir.path().join(e.trim_end_matches('/'));
            if e.ends_with('/') {
                std::fs::create_dir_all(&p).expect("mkdir");
            } else {
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(&p, e.as_bytes()).expect("write");
            }
        }
        dir
    }

    fn walk(dir: &Path, opts: FilterOptions) -> Vec<String> {
        let walker = Walker::new(dir, &opts).expect("walker");
        let mut out = Vec::new();
        walker
            .walk(&mut |e| {
                out.push(String::from_utf8_lossy(&e.stat.path).into_owned());
                Ok(())
            })
            .expect("walk");
        out
    }

    fn excludes(p: &[&str]) -> FilterOptions {
        FilterOptions {
            exclude_patterns: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn includes(p: &[&str]) -> FilterOptions {
        FilterOptions {
            include_patterns: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hard_links_after_the_first_name_point_at_it() {
        let dir = tree(&["a/one", "b/keep", "c"]);
        std::fs::hard_link(dir.path().join("a/one"), dir.path().join("b/two")).expect("link");
        std::fs::hard_link(dir.path().join("a/one"), dir.path().join("c2")).expect("link");
        let stats = |opts: FilterOptions| {
            let walker = Walker::new(dir.path(), &opts).expect("walker");
            let mut out = Vec::new();
            walker
                .walk(&mut |e| {
                    out.push(e.stat);
                    Ok(())
                })
                .expect("walk");
            out
        };
        let all = stats(FilterOptions::default());
        let find = |stats: &[Stat], path: &str| {
            stats
                .iter()
                .find(|s| s.path == path.as_bytes())
                .cloned()
                .unwrap_or_else(|| panic!("{path} not sent"))
        };
        let first = find(&all, "a/one");
        assert_eq!((first.linkname.as_slice(), first.size), (&b""[..], 5));
        for later in ["b/two", "c2"] {
            let s = find(&all, later);
            assert_eq!(s.linkname, b"a/one", "{later}");
            assert_eq!(s.size, 5, "{later} keeps its size, as fsutil's mkstat does");
            assert_eq!(s.mode & mode::SYMLINK, 0, "{later} is still a regular file");
        }
        // A file with one name is untouched.
        assert_eq!(find(&all, "c").linkname, b"");

        // With the first name excluded, the first *sent* name carries the data.
        let filtered = stats(excludes(&["a"]));
        let s = find(&filtered, "b/two");
        assert_eq!((s.linkname.as_slice(), s.size), (&b""[..], 5));
        assert_eq!(find(&filtered, "c2").linkname, b"b/two");
    }

    #[test]
    fn depth_first_with_siblings_by_name_not_full_path() {
        let dir = tree(&["a/b", "a-b", "a.c", "B", "a/c/d", "empty/"]);
        assert_eq!(
            walk(dir.path(), FilterOptions::default()),
            ["B", "a", "a/b", "a/c", "a/c/d", "a-b", "a.c", "empty"]
        );
    }

    #[test]
    fn excludes_with_exceptions_emit_parents_lazily() {
        let dir = tree(&[
            "docs/README.md",
            "docs/x.md",
            "docs/sub/y.md",
            "src/main.rs",
            "Dockerfile",
        ]);
        assert_eq!(
            walk(dir.path(), excludes(&["docs", "!docs/README.md"])),
            ["Dockerfile", "docs", "docs/README.md", "src", "src/main.rs"]
        );
        assert_eq!(
            walk(dir.path(), excludes(&["**/*.md", "!docs/sub/y.md"])),
            [
                "Dockerfile",
                "docs",
                "docs/sub",
                "docs/sub/y.md",
                "src",
                "src/main.rs"
            ]
        );
        assert_eq!(
            walk(dir.path(), excludes(&["*", "!src"])),
            ["src", "src/main.rs"]
        );
    }

    #[test]
    fn includes_select_subtrees_and_parents() {
        let dir = tree(&["a/b/c", "a/b/d", "a/e", "f", "g/h"]);
        assert_eq!(
            walk(dir.path(), includes(&["a/b"])),
            ["a", "a/b", "a/b/c", "a/b/d"]
        );
        assert_eq!(
            walk(dir.path(), includes(&["**/d", "f"])),
            ["a", "a/b", "a/b/d", "f"]
        );
        let both = FilterOptions {
            include_patterns: vec!["a".into()],
            exclude_patterns: vec!["a/b/c".into()],
            ..Default::default()
        };
        assert_eq!(walk(dir.path(), both), ["a", "a/b", "a/b/d", "a/e"]);
    }

    #[test]
    fn symlinks_are_sent_not_followed_and_followpaths_resolve_them() {
        let dir = tree(&["real/file", "other/x", "Dockerfile.real"]);
        symlink("real", dir.path().join("link")).expect("symlink");
        symlink("/Dockerfile.real", dir.path().join("Dockerfile")).expect("symlink");
        let all = walk(dir.path(), FilterOptions::default());
        assert_eq!(
            all,
            [
                "Dockerfile",
                "Dockerfile.real",
                "link",
                "other",
                "other/x",
                "real",
                "real/file"
            ]
        );

        let opts = FilterOptions {
            follow_paths: vec!["link/file".into(), "Dockerfile".into()],
            ..Default::default()
        };
        assert_eq!(
            walk(dir.path(), opts),
            ["Dockerfile", "Dockerfile.real", "link", "real", "real/file"]
        );
        assert_eq!(
            follow_links(dir.path(), &["link/file".into(), "missing".into()]).expect("follow"),
            Some(vec!["link".into(), "missing".into(), "real/file".into()])
        );
        assert_eq!(
            follow_links(dir.path(), &[".".into()]).expect("follow"),
            None
        );
    }

    #[test]
    fn symlink_stat_carries_link_text() {
        let dir = tree(&[]);
        symlink("../outside", dir.path().join("l")).expect("symlink");
        let walker = Walker::new(dir.path(), &FilterOptions::default()).expect("walker");
        let mut stats = Vec::new();
        walker
            .walk(&mut |e| {
                stats.push(e.stat);
                Ok(())
            })
            .expect("walk");
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].linkname, b"../outside");
        assert_eq!(stats[0].size, 10);
        assert_ne!(stats[0].mode & mode::SYMLINK, 0);
    }

    #[test]
    fn non_utf8_names_are_kept_as_bytes() {
        let dir = tree(&[]);
        let name = OsString::from_vec(b"caf\xe9".to_vec());
        std::fs::write(dir.path().join(&name), b"x").expect("write");
        let walker = Walker::new(dir.path(), &FilterOptions::default()).expect("walker");
        let mut paths = Vec::new();
        walker
            .walk(&mut |e| {
                paths.push(e.stat.path);
                Ok(())
            })
            .expect("walk");
        assert_eq!(paths, [b"caf\xe9".to_vec()]);
    }

    #[test]
    fn root_must_be_a_directory() {
        let dir = tree(&["f"]);
        let err =
            Walker::new(&dir.path().join("f"), &FilterOptions::default()).expect_err("file root");
        assert!(matches!(err, WalkError::Root { .. }), "{err}");
        let err = Walker::new(dir.path(), &excludes(&["["])).expect_err("bad pattern");
        assert!(err.to_string().contains("exclude"), "{err}");
    }
}
