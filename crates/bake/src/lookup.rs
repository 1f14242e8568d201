//! Finding and reading the bake files (buildx's `ReadLocalFiles` and the CLI's file flags):
//! without `-f`, the default names that exist, in buildx's order; with `-f` (repeatable, or
//! `BUILDX_BAKE_FILE`), each file in order, `-` for standard input.

use std::io::Read;
use std::path::Path;

use crate::File;

/// The files bake reads when none is named, in this order (compose-go's default compose
/// names, then bake's own); every one that exists is read.
pub const DEFAULT_FILENAMES: [&str; 8] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "docker-bake.json",
    "docker-bake.hcl",
    "docker-bake.override.json",
    "docker-bake.override.hcl",
];

/// The environment variable naming the bake files when `-f` is not given.
pub const BAKE_FILE_ENV: &str = "BUILDX_BAKE_FILE";

/// The environment variable separating the names in [`BAKE_FILE_ENV`] (the OS path list
/// separator by default).
pub const BAKE_PATH_SEPARATOR_ENV: &str = "BUILDX_BAKE_PATH_SEPARATOR";

/// Why bake files could not be read, worded as Go's `os` errors are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Opening a file failed (`open NAME: no such file or directory`).
    #[error("open {name}: {reason}")]
    Open {
        /// The file as named.
        name: String,
        /// The OS's reason, as Go words it.
        reason: String,
    },
    /// Reading a file failed (`read NAME: is a directory`).
    #[error("read {name}: {reason}")]
    Read {
        /// The file as named.
        name: String,
        /// The OS's reason, as Go words it.
        reason: String,
    },
    /// A file named by `BUILDX_BAKE_FILE` does not exist.
    #[error("stat {name}: {reason}")]
    Stat {
        /// The file as named.
        name: String,
        /// The OS's reason, as Go words it.
        reason: String,
    },
    /// Reading standard input failed.
    #[error("read stdin: {0}")]
    Stdin(String),
    /// No file was found.
    #[error("couldn't find a bake definition")]
    NoDefinition,
}

/// An OS error as Go's `syscall.Errno` words it.
fn go_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => {
            // Rust appends " (os error N)"; Go does not, and lower-cases nothing else.
            let text = err.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

/// Reads the bake files as buildx's `ReadLocalFiles` does. With no names, the
/// [`DEFAULT_FILENAMES`] that exist in `dir`; otherwise each name in order (relative to
/// `dir`; `-` reads `stdin`; a `cwd://` prefix is dropped). A file that is empty is skipped,
/// as buildx skips it (it reads nothing from it).
pub fn read_local_files(
    names: &[String],
    dir: &Path,
    stdin: &mut dyn Read,
) -> Result<Vec<File>, LookupError> {
    let is_default = names.is_empty();
    let names: Vec<String> = if is_default {
        DEFAULT_FILENAMES.iter().map(|s| s.to_string()).collect()
    } else {
        names
            .iter()
            .map(|n| n.strip_prefix("cwd://").unwrap_or(n).to_string())
            .collect()
    };
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        if name == "-" {
            let mut data = Vec::new();
            stdin
                .read_to_end(&mut data)
                .map_err(|e| LookupError::Stdin(go_reason(&e)))?;
            files.push(File { name, data });
            continue;
        }
        let path = dir.join(&name);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if is_default && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(LookupError::Open {
                    name,
                    reason: go_reason(&e),
                });
            }
        };
        let mut data = Vec::new();
        if let Err(e) = file.read_to_end(&mut data) {
            return Err(LookupError::Read {
                name,
                reason: go_reason(&e),
            });
        }
        if data.is_empty() {
            continue;
        }
        files.push(File { name, data });
    }
    Ok(files)
}

/// The files `BUILDX_BAKE_FILE` names (split on `BUILDX_BAKE_PATH_SEPARATOR`, by default
/// `:`), blanks dropped, each checked to exist (relative to `dir`) except `-`. Empty when the
/// variable is unset.
pub fn bake_env_files(
    lookup_env: &dyn Fn(&str) -> Option<String>,
    dir: &Path,
) -> Result<Vec<String>, LookupError> {
    let separator = lookup_env(BAKE_PATH_SEPARATOR_ENV)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ":".to_string());
    let Some(value) = lookup_env(BAKE_FILE_ENV) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in value.split(separator.as_str()) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if name != "-"
            && let Err(e) = std::fs::metadata(dir.join(name))
        {
            return Err(LookupError::Stat {
                name: name.to_string(),
                reason: go_reason(&e),
            });
        }
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("brix-bake-lookup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir: {e}"));
        dir
    }

    fn names(files: &[File]) -> Vec<String> {
        files.iter().map(|f| f.name.clone()).collect()
    }

    #[test]
    fn default_files_in_buildx_order() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["abc.yml", "docker-compose.yml"], &["docker-compose.yml"]),
            (
                &["test.foo", "compose.yml", "docker-bake.hcl"],
                &["compose.yml", "docker-bake.hcl"],
            ),
            (
                &["docker-bake.hcl", "docker-compose.yml", "compose.yaml"],
                &["compose.yaml", "docker-compose.yml", "docker-bake.hcl"],
            ),
            (&["test.txt", "compsoe.yaml"], &[]),
            (
                &[
                    "docker-bake.override.hcl",
                    "docker-bake.json",
                    "docker-bake.override.json",
                ],
                &[
                    "docker-bake.json",
                    "docker-bake.override.json",
                    "docker-bake.override.hcl",
                ],
            ),
        ];
        for (i, (present, want)) in cases.iter().enumerate() {
            let dir = temp_dir(&format!("default{i}"));
            for name in *present {
                std::fs::write(dir.join(name), name).unwrap_or_else(|e| panic!("{e}"));
            }
            let files = read_local_files(&[], &dir, &mut std::io::empty()).unwrap();
            assert_eq!(names(&files), *want);
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn named_files_and_stdin() {
        let dir = temp_dir("named");
        std::fs::write(dir.join("b.hcl"), "b").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("empty.hcl"), "").unwrap_or_else(|e| panic!("{e}"));
        let mut stdin: &[u8] = b"from stdin";
        let files = read_local_files(
            &[
                "cwd://b.hcl".to_string(),
                "-".to_string(),
                "empty.hcl".to_string(),
            ],
            &dir,
            &mut stdin,
        )
        .unwrap();
        assert_eq!(names(&files), ["b.hcl", "-"]);
        assert_eq!(files[1].data, b"from stdin");
        assert_eq!(
            read_local_files(&["missing.hcl".to_string()], &dir, &mut std::io::empty())
                .unwrap_err()
                .to_string(),
            "open missing.hcl: no such file or directory"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bake_file_env() {
        let dir = temp_dir("env");
        std::fs::write(dir.join("a.hcl"), "a").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("b.hcl"), "b").unwrap_or_else(|e| panic!("{e}"));
        let env = |value: &'static str, sep: Option<&'static str>| {
            move |k: &str| match k {
                BAKE_FILE_ENV => Some(value.to_string()),
                BAKE_PATH_SEPARATOR_ENV => sep.map(str::to_string),
                _ => None,
            }
        };
        assert_eq!(
            bake_env_files(&env("a.hcl: b.hcl:", None), &dir).unwrap(),
            ["a.hcl", "b.hcl"]
        );
        assert_eq!(
            bake_env_files(&env("a.hcl;-", Some(";")), &dir).unwrap(),
            ["a.hcl", "-"]
        );
        assert_eq!(
            bake_env_files(&env("nope.hcl", None), &dir)
                .unwrap_err()
                .to_string(),
            "stat nope.hcl: no such file or directory"
        );
        assert!(bake_env_files(&|_| None, &dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
