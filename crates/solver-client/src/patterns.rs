//! Path patterns with `.dockerignore` syntax and the semantics of moby/patternmatcher.
//!
//! A pattern is a slash-separated glob: `*` matches any run of characters except `/`, `?` one
//! character except `/`, `[...]` a character class (`[^...]` negated), `\` escapes the next
//! character, and `**` matches any number of path segments (including none). A leading `!`
//! turns a pattern into an exception that re-includes what earlier patterns matched; later
//! patterns win. A pattern also matches every path *below* a directory it matches, so `docs`
//! excludes `docs/README.md`.
//!
//! Paths are matched as bytes so that non-UTF-8 file names work; invalid UTF-8 is matched as
//! U+FFFD, which is what Go's regexp does with the same bytes.

use std::borrow::Cow;

use regex::Regex;

/// A pattern that could not be compiled.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A lone `!` has nothing to re-include.
    #[error("illegal exclusion pattern \"!\": an exception needs a path after the `!`")]
    LoneExclamation,
    /// The glob syntax is malformed (Go's `filepath.ErrBadPattern`).
    #[error("syntax error in pattern {pattern:?}: check the `[...]` classes and `\\` escapes")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
    },
}

/// How one compiled pattern matches, chosen like patternmatcher does so that simple patterns
/// avoid a regex.
#[derive(Debug, Clone)]
enum MatchKind {
    /// The path equals the pattern.
    Exact,
    /// `prefix/**`: the path starts with the prefix (the pattern minus its trailing `**`).
    Prefix(String),
    /// `**suffix`: the path ends with the suffix, or `**/x` matches `x` itself.
    Suffix(String),
    /// Anything else.
    Regex(Regex),
}

/// One cleaned pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchKind,
}

impl Pattern {
    /// The pattern after cleaning (`./a//b/` becomes `a/b`), without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is an exception (`!pattern`).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(cleaned: String, exclusion: bool) -> Result<Self, PatternError> {
        validate_glob(&cleaned).map_err(|()| PatternError::BadPattern {
            pattern: cleaned.clone(),
        })?;
        let kind = compile_kind(&cleaned).map_err(|()| PatternError::BadPattern {
            pattern: cleaned.clone(),
        })?;
        Ok(Pattern {
            cleaned,
            exclusion,
            kind,
        })
    }

    /// Whether `path` (slash-separated, relative, cleaned) matches this pattern itself; parent
    /// directories are not considered here.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|without_slash| path == without_slash)
            }
            MatchKind::Regex(re) => re.is_match(path),
        }
    }

    /// The pattern without a trailing `/**` or `/*`, used to decide whether a directory can be
    /// skipped entirely (fsutil's `patternWithoutTrailingGlob`).
    pub(crate) fn without_trailing_glob(&self) -> &str {
        let p = self.cleaned.as_str();
        let p = p.strip_suffix("/**").unwrap_or(p);
        p.strip_suffix("/*").unwrap_or(p)
    }
}

/// Per-pattern results for a directory, handed to its children so that a pattern matching a
/// parent directory also counts for everything below it (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of patterns, evaluated like `.dockerignore` (moby/patternmatcher).
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles patterns. Surrounding whitespace is trimmed, empty patterns are dropped and
    /// each pattern is cleaned like Go's `filepath.Clean`.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut matcher = PatternMatcher::default();
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = clean_path(trimmed);
            let (exclusion, body) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::LoneExclamation),
                Some(rest) => (true, rest.to_owned()),
                None => (false, cleaned),
            };
            matcher.exclusions |= exclusion;
            matcher.patterns.push(Pattern::compile(body, exclusion)?);
        }
        Ok(matcher)
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exception (`!...`).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` or one of its parent directories matches, with exceptions applied in
    /// order (patternmatcher's `MatchesOrParentMatches`). `path` is relative and
    /// slash-separated.
    pub fn matches_or_parent_matches(&self, path: &[u8]) -> bool {
        self.matches_using_parent_results(path, &MatchInfo::default())
            .0
    }

    /// Whether `path` matches exactly one of the patterns, without looking at parents
    /// (patternmatcher's `MatchesExact`).
    pub fn matches_exact(&self, path: &[u8]) -> bool {
        let path = lossy(path);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(&path) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Matches `path` given the results of its parent directory, and returns the results to
    /// hand to `path`'s own children (patternmatcher's `MatchesUsingParentResults`). With an
    /// empty `parent` (top level, or unknown) every parent directory of `path` is checked.
    pub fn matches_using_parent_results(
        &self,
        path: &[u8],
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let path = lossy(path);
        let parent_known =
            parent.parent_matched.len() == self.patterns.len() && !self.patterns.is_empty();
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_known && parent.parent_matched[i];
            if !hit {
                // An inclusion cannot change a match and an exception cannot change a miss.
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(&path);
                if !hit && !parent_known {
                    hit = parent_dirs(&path).any(|dir| pattern.matches(dir));
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }
}

/// Reads `.dockerignore` content into patterns: `#` comment lines and blank lines are
/// skipped, surrounding whitespace trimmed, each pattern cleaned, a leading `/` dropped (the
/// context root is the only root), and `!` kept in front (moby/patternmatcher `ignorefile`).
pub fn parse_dockerignore(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    for line in content.lines() {
        // Comments only start at the beginning of a line, before trimming, as in Docker.
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push(cleaned);
    }
    out
}

/// Lexically cleans a slash-separated path like Go's `path.Clean`: collapses `//`, drops `.`
/// elements, resolves `..` against preceding elements, and turns an empty result into `.`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn lossy(path: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(path)
}

/// `a`, `a/b` for path `a/b/c`: every proper parent directory, shortest first.
fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Checks glob syntax the way Go's `filepath.Match` reports `ErrBadPattern`.
fn validate_glob(pattern: &str) -> Result<(), ()> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    let (_, next) = class_char(&chars, i)?;
                    i = next;
                    if chars.get(i) == Some(&'-') {
                        let (_, next) = class_char(&chars, i + 1)?;
                        i = next;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One (possibly escaped) character inside a `[...]` class; Go rejects a bare `-` or `]`.
fn class_char(chars: &[char], mut i: usize) -> Result<(char, usize), ()> {
    match chars.get(i) {
        None | Some('-') | Some(']') => Err(()),
        Some('\\') => {
            i += 1;
            chars.get(i).map(|c| (*c, i + 1)).ok_or(())
        }
        Some(c) => Ok((*c, i + 1)),
    }
}

/// Translates a cleaned pattern, like patternmatcher's `compile`.
fn compile_kind(pattern: &str) -> Result<MatchKind, ()> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut in_class = false;
    let mut i = 0;
    let mut token = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                // `**/` is the same as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    // A trailing `**` accepts everything, as in .gitignore.
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if token == 0 {
                    detected = Detected::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            detected = Detected::Regex;
        } else if ch == '\\' {
            if let Some(next) = chars.get(i) {
                i += 1;
                push_escaped(&mut re, *next);
                detected = Detected::Regex;
            } else {
                re.push_str("\\\\");
            }
        } else if ch == '[' && !in_class {
            re.push('[');
            in_class = true;
            detected = Detected::Regex;
            // A `^` right after `[` negates, as in Go's regexp; keep it unescaped.
            if chars.get(i) == Some(&'^') {
                re.push('^');
                i += 1;
            }
        } else if ch == ']' && in_class {
            re.push(']');
            in_class = false;
        } else if ch == '-' && in_class {
            re.push('-');
        } else {
            push_escaped(&mut re, ch);
        }
        token += 1;
    }
    Ok(match detected {
        Detected::Exact => MatchKind::Exact,
        Detected::Prefix => MatchKind::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Detected::Suffix => MatchKind::Suffix(pattern[2..].to_owned()),
        Detected::Regex => {
            re.push('$');
            MatchKind::Regex(Regex::new(&re).map_err(|_| ())?)
        }
    })
}

/// Appends `ch` as a literal (regex-escaped when needed).
fn push_escaped(re: &mut String, ch: char) {
    re.push_str(&regex::escape(ch.encode_utf8(&mut [0; 4])));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Want {
        Fail,
        Exact,
        Inexact,
    }
    use Want::*;

    /// patternmatcher's own `TestMatches` table.
    const CASES: &[(&str, &str, Want)] = &[
        ("**", "file", Exact),
        ("**", "file/", Exact),
        ("**/", "file", Exact),
        ("**/", "file/", Exact),
        ("**", "/", Exact),
        ("**/", "/", Exact),
        ("**", "dir/file", Exact),
        ("**/", "dir/file", Exact),
        ("**", "dir/file/", Exact),
        ("**/", "dir/file/", Exact),
        ("**/**", "dir/file", Exact),
        ("**/**", "dir/file/", Exact),
        ("dir/**", "dir/file", Exact),
        ("dir/**", "dir/file/", Exact),
        ("dir/**", "dir/dir2/file", Exact),
        ("dir/**", "dir/dir2/file/", Exact),
        ("**/dir", "dir", Exact),
        ("**/dir", "dir/file", Inexact),
        ("**/dir2/*", "dir/dir2/file", Exact),
        ("**/dir2/*", "dir/dir2/file/", Inexact),
        ("**/dir2/**", "dir/dir2/dir3/file", Exact),
        ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
        ("**file", "file", Exact),
        ("**file", "dir/file", Exact),
        ("**/file", "dir/file", Exact),
        ("**file", "dir/dir/file", Exact),
        ("**/file", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file", Exact),
        ("**/file*", "dir/dir/file.txt", Exact),
        ("**/file*txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt", "dir/dir/file.txt", Exact),
        ("**/file*.txt*", "dir/dir/file.txt", Exact),
        ("**/**/*.txt", "dir/dir/file.txt", Exact),
        ("**/**/*.txt2", "dir/dir/file.txt", Fail),
        ("**/*.txt", "file.txt", Exact),
        ("**/**/*.txt", "file.txt", Exact),
        ("a**/*.txt", "a/file.txt", Exact),
        ("a**/*.txt", "a/dir/file.txt", Exact),
        ("a**/*.txt", "a/dir/dir/file.txt", Exact),
        ("a/*.txt", "a/dir/file.txt", Fail),
        ("a/*.txt", "a/file.txt", Exact),
        ("a/*.txt**", "a/file.txt", Exact),
        ("a[b-d]e", "ae", Fail),
        ("a[b-d]e", "ace", Exact),
        ("a[b-d]e", "aae", Fail),
        ("a[^b-d]e", "aze", Exact),
        (".*", ".foo", Exact),
        (".*", "foo", Fail),
        ("abc.def", "abcdef", Fail),
        ("abc.def", "abc.def", Exact),
        ("abc.def", "abcZdef", Fail),
        ("abc?def", "abcZdef", Exact),
        ("abc?def", "abcdef", Fail),
        ("**/foo/bar", "foo/bar", Exact),
        ("**/foo/bar", "dir/foo/bar", Exact),
        ("**/foo/bar", "dir/dir2/foo/bar", Exact),
        ("abc/**", "abc", Fail),
        ("abc/**", "abc/def", Exact),
        ("abc/**", "abc/def/ghi", Exact),
        ("**/.foo", ".foo", Exact),
        ("**/.foo", "bar.foo", Fail),
        ("a(b)c/def", "a(b)c/def", Exact),
        ("a(b)c/def", "a(b)c/xyz", Fail),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Exact,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            Exact,
        ),
        ("a\\\\", "a\\", Exact),
        ("a\\*b", "a*b", Exact),
    ];

    const MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];

    fn pm(patterns: &[&str]) -> PatternMatcher {
        PatternMatcher::new(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
    }

    /// Walks the parents top-down the way the fsutil walker feeds the matcher.
    fn with_parent_results(m: &PatternMatcher, path: &str) -> bool {
        let mut info = MatchInfo::default();
        for dir in parent_dirs(path) {
            info = m.matches_using_parent_results(dir.as_bytes(), &info).1;
        }
        m.matches_using_parent_results(path.as_bytes(), &info).0
    }

    #[test]
    fn patternmatcher_table_exact() {
        for (pattern, text, want) in CASES {
            let m = pm(&[pattern]);
            assert_eq!(
                m.matches_exact(text.as_bytes()),
                *want == Exact,
                "{pattern:?} {text:?}"
            );
        }
    }

    #[test]
    fn patternmatcher_table_or_parent() {
        for (pattern, text, want) in CASES {
            let m = pm(&[pattern]);
            assert_eq!(
                m.matches_or_parent_matches(text.as_bytes()),
                *want != Fail,
                "{pattern:?} {text:?}"
            );
            assert_eq!(
                with_parent_results(&m, text),
                *want != Fail,
                "{pattern:?} {text:?}"
            );
        }
        for (patterns, text, want) in MULTI {
            let m = pm(patterns);
            assert_eq!(
                m.matches_or_parent_matches(text.as_bytes()),
                *want,
                "{patterns:?} {text:?}"
            );
            assert_eq!(
                with_parent_results(&m, text),
                *want,
                "{patterns:?} {text:?}"
            );
        }
    }

    #[test]
    fn simple_cases_from_patternmatcher_tests() {
        assert!(pm(&["*"]).matches_or_parent_matches(b"fileutils.go"));
        assert!(pm(&["*.go"]).matches_or_parent_matches(b"fileutils.go"));
        assert!(pm(&["!fileutils.go", "*.go"]).matches_or_parent_matches(b"fileutils.go"));
        assert!(!pm(&["docs", "!docs/README.md"]).matches_or_parent_matches(b"docs/README.md"));
        assert!(!pm(&["docs/", "!docs/README.md"]).matches_or_parent_matches(b"docs/README.md"));
        assert!(!pm(&["docs/*", "!docs/README.md"]).matches_or_parent_matches(b"docs/README.md"));
        assert!(!pm(&["*.go", "!fileutils.go"]).matches_or_parent_matches(b"fileutils.go"));
        assert!(!pm(&[]).matches_or_parent_matches(b"any/path"));
        assert!(pm(&["docs", "  !docs/README.md  "]).has_exclusions());
        assert_eq!(pm(&["docs", "config", ""]).patterns().len(), 2);
    }

    #[test]
    fn go_filepath_match_table() {
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(true)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[^a][^a][^a]b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "-", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[-x]", "x", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("*x", "xxx", Some(true)),
        ];
        for (pattern, text, want) in cases {
            match (PatternMatcher::new([pattern]), want) {
                (Ok(m), Some(want)) => {
                    assert_eq!(
                        m.matches_or_parent_matches(text.as_bytes()),
                        *want,
                        "{pattern:?} {text:?}"
                    )
                }
                (Err(PatternError::BadPattern { .. }), None) => {}
                (other, want) => panic!("{pattern:?} {text:?}: got {other:?}, want {want:?}"),
            }
        }
        assert_eq!(
            PatternMatcher::new(["!"]).expect_err("lone !"),
            PatternError::LoneExclamation
        );
    }

    #[test]
    fn non_utf8_paths_match_by_their_valid_parts() {
        let m = pm(&["dir/*.txt", "raw"]);
        assert!(m.matches_or_parent_matches(b"dir/\xff\xfe.txt"));
        assert!(m.matches_or_parent_matches(b"raw/\xff"));
        assert!(!m.matches_or_parent_matches(b"other/\xff.txt"));
    }

    #[test]
    fn cleans_patterns() {
        assert_eq!(clean_path("./a//b/"), "a/b");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path(""), ".");
        assert!(pm(&["./docs/"]).matches_or_parent_matches(b"docs/x"));
    }

    #[test]
    fn parses_dockerignore_like_docker() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_dockerignore(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert_eq!(
            parse_dockerignore("  # not a comment\r\n./x/../y\n"),
            ["# not a comment", "y"]
        );
    }
}
