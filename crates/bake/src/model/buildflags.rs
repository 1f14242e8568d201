//! The structured values buildx parses some target attributes into (its `util/buildflags`
//! package): cache imports/exports, secrets, SSH keys, outputs and attestations, with their
//! CSV forms, their string forms, their de-duplication and merge rules.

use std::collections::BTreeMap;
use std::fmt;

use super::text::{CsvBuilder, CsvError, csv_fields, go_quote, parse_bool_error, parse_go_bool};

/// Why a CSV value of a structured attribute did not parse, worded as buildx words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// The CSV record itself is malformed.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// A field without `=`.
    #[error("invalid value {0}")]
    InvalidValue(String),
    /// A cache entry without `type` (the input shown quoted, as buildx's `%q`).
    #[error("type required form> {}", go_quote(.0))]
    CacheTypeRequired(String),
    /// An output without `type`.
    #[error("type is required for output")]
    OutputTypeRequired,
    /// A secret's CSV could not be split.
    #[error("failed to parse csv secret: {0}")]
    SecretCsv(CsvError),
    /// A secret field without `=`.
    #[error("invalid field '{0}' must be a key=value pair")]
    SecretField(String),
    /// A secret `type` other than `file` and `env`.
    #[error("unsupported secret type {}", go_quote(.0))]
    SecretType(String),
    /// A key the entry does not know.
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey {
        /// The key, lower-cased.
        key: String,
        /// The whole field.
        field: String,
    },
    /// An attestation without `type`.
    #[error("attestation type not specified")]
    AttestTypeMissing,
    /// An attestation `disabled=` that is not a bool.
    #[error("invalid value {field}: {}", parse_bool_error(.value))]
    AttestDisabled {
        /// The whole field.
        field: String,
        /// The value after `=`.
        value: String,
    },
    /// An attestation's `disabled` attribute (object form) that is not a bool.
    #[error("{}", parse_bool_error(.0))]
    Bool(String),
}

/// Removes later duplicates the way buildx's `removeDupes` does: walking backwards, a later
/// equal element is swapped with the last one and dropped, so the survivors' order can change.
pub fn remove_dupes<T: PartialEq>(mut items: Vec<T>) -> Vec<T> {
    if items.len() < 2 {
        return items;
    }
    let mut i = items.len() - 1;
    while i > 0 {
        i -= 1;
        let mut j = i + 1;
        while j < items.len() {
            if items[i] == items[j] {
                let last = items.len() - 1;
                items.swap(j, last);
                items.truncate(last);
                break;
            }
            j += 1;
        }
    }
    items
}

/// Removes duplicates by a key, a later element replacing the earlier one in place (buildx's
/// `removeSecretDupes`, `removeSSHDupes`, `removeAttestDupes`).
fn dedupe_by_key<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let k = key(&item);
        match out.iter().position(|existing| key(existing) == k) {
            Some(i) => out[i] = item,
            None => out.push(item),
        }
    }
    out
}

/// `Normalize` of a list attribute: empty becomes absent (Go's nil), the rest de-duplicated.
pub fn normalize_list<T>(
    list: Option<Vec<T>>,
    dedupe: impl Fn(Vec<T>) -> Vec<T>,
) -> Option<Vec<T>> {
    match list {
        Some(items) if !items.is_empty() => Some(dedupe(items)),
        _ => None,
    }
}

/// `Merge` of two list attributes as buildx's buildflags types do it: absent other keeps the
/// receiver, absent receiver takes the other normalised, both are appended and normalised.
pub fn merge_list<T>(
    base: Option<Vec<T>>,
    other: Option<Vec<T>>,
    dedupe: impl Fn(Vec<T>) -> Vec<T> + Copy,
) -> Option<Vec<T>> {
    match (base, other) {
        (base, None) => base,
        (None, other) => normalize_list(other, dedupe),
        (Some(mut base), Some(other)) => {
            base.extend(other);
            normalize_list(Some(base), dedupe)
        }
    }
}

/// One `cache-from` / `cache-to` entry (`type=registry,ref=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheEntry {
    /// The cache backend (`registry`, `local`, `gha`, …).
    pub kind: String,
    /// Its other attributes.
    pub attrs: BTreeMap<String, String>,
}

impl CacheEntry {
    /// Parses one CSV entry (`CacheOptionsEntry.UnmarshalText`): a single field without `=`
    /// is a registry reference.
    pub fn parse(text: &str) -> Result<Self, FlagError> {
        let fields = csv_fields(text)?;
        if fields.len() == 1 && !fields[0].contains('=') {
            return Ok(CacheEntry {
                kind: "registry".to_string(),
                attrs: BTreeMap::from([("ref".to_string(), fields[0].clone())]),
            });
        }
        let mut entry = CacheEntry::default();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(FlagError::InvalidValue(field));
            };
            let key = key.to_lowercase();
            if key == "type" {
                entry.kind = value.to_string();
            } else {
                entry.attrs.insert(key, value.to_string());
            }
        }
        if entry.kind.is_empty() {
            return Err(FlagError::CacheTypeRequired(text.to_string()));
        }
        Ok(entry)
    }

    /// Parses a list of CSV entries as `ParseCacheEntry` does: empty ones skipped, a value
    /// without `=` is a CSV list of registry references, one entry each.
    pub fn parse_list(values: &[String]) -> Result<Option<Vec<Self>>, FlagError> {
        if values.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            if value.is_empty() {
                continue;
            }
            if !value.contains('=') {
                for field in csv_fields(value)? {
                    out.push(CacheEntry::parse(&field)?);
                }
                continue;
            }
            out.push(CacheEntry::parse(value)?);
        }
        Ok(Some(out))
    }

    /// De-duplicates a list as `CacheOptions.Normalize` does.
    pub fn dedupe(list: Vec<Self>) -> Vec<Self> {
        remove_dupes(list)
    }
}

impl fmt::Display for CacheEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == "registry"
            && self.attrs.len() == 1
            && let Some(reference) = self.attrs.get("ref")
        {
            return f.write_str(reference);
        }
        let mut b = CsvBuilder::default();
        if !self.kind.is_empty() {
            b.write("type", &self.kind);
        }
        b.write_attributes(&self.attrs);
        f.write_str(&b.finish())
    }
}

/// One `output` entry (`type=image,push=true`, or a bare path for a local export).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportEntry {
    /// The exporter (`image`, `registry`, `local`, `tar`, `docker`, `oci`, `cacheonly`).
    pub kind: String,
    /// Its attributes other than `type` and `dest`.
    pub attrs: BTreeMap<String, String>,
    /// `dest`, empty when not given.
    pub destination: String,
}

impl ExportEntry {
    /// Parses one CSV entry (`ExportEntry.UnmarshalText`): a lone value that is not
    /// `type=…` is a local destination (`-` a tar to stdout).
    pub fn parse(text: &str) -> Result<Self, FlagError> {
        let fields = csv_fields(text)?;
        let mut entry = ExportEntry::default();
        if fields.len() == 1 && fields[0] == text && !text.starts_with("type=") {
            if text != "-" {
                entry.kind = "local".to_string();
                entry.destination = text.to_string();
                return Ok(entry);
            }
            entry.kind = "tar".to_string();
            entry.destination = text.to_string();
        }
        if entry.kind.is_empty() {
            for field in fields {
                let Some((key, value)) = field.split_once('=') else {
                    return Err(FlagError::InvalidValue(field));
                };
                match key.trim().to_lowercase().as_str() {
                    "type" => entry.kind = value.to_string(),
                    "dest" => entry.destination = value.to_string(),
                    other => {
                        entry.attrs.insert(other.to_string(), value.to_string());
                    }
                }
            }
        }
        entry.validate()?;
        Ok(entry)
    }

    /// Checks the entry has a type.
    pub fn validate(&self) -> Result<(), FlagError> {
        if self.kind.is_empty() {
            return Err(FlagError::OutputTypeRequired);
        }
        Ok(())
    }

    /// Parses values as bake's `parseArrValue` does: empty ones skipped; the result is
    /// present (possibly empty) even when nothing was left.
    pub fn parse_list(values: &[String]) -> Result<Vec<Self>, FlagError> {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| ExportEntry::parse(v))
            .collect()
    }

    /// De-duplicates a list as `Exports.Normalize` does.
    pub fn dedupe(list: Vec<Self>) -> Vec<Self> {
        remove_dupes(list)
    }
}

impl fmt::Display for ExportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = CsvBuilder::default();
        if !self.kind.is_empty() {
            b.write("type", &self.kind);
        }
        if !self.destination.is_empty() {
            b.write("dest", &self.destination);
        }
        b.write_attributes(&self.attrs);
        f.write_str(&b.finish())
    }
}

/// One `secret` entry (`id=…,src=…` or `id=…,env=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secret {
    /// The secret's id.
    pub id: String,
    /// `src`/`source`: a file to read it from.
    pub file_path: String,
    /// `env`: an environment variable to read it from.
    pub env: String,
}

impl Secret {
    /// Parses one CSV entry (`Secret.UnmarshalText`).
    pub fn parse(text: &str) -> Result<Self, FlagError> {
        let fields = csv_fields(text).map_err(FlagError::SecretCsv)?;
        let mut secret = Secret::default();
        let mut kind = String::new();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(FlagError::SecretField(field));
            };
            let key = key.to_lowercase();
            match key.as_str() {
                "type" => {
                    if value != "file" && value != "env" {
                        return Err(FlagError::SecretType(value.to_string()));
                    }
                    kind = value.to_string();
                }
                "id" => secret.id = value.to_string(),
                "source" | "src" => secret.file_path = value.to_string(),
                "env" => secret.env = value.to_string(),
                _ => {
                    return Err(FlagError::UnexpectedKey {
                        key,
                        field: field.clone(),
                    });
                }
            }
        }
        if kind == "env" && secret.env.is_empty() {
            secret.env = std::mem::take(&mut secret.file_path);
        }
        Ok(secret)
    }

    /// Parses values as bake's `parseArrValue` does (empty ones skipped).
    pub fn parse_list(values: &[String]) -> Result<Vec<Self>, FlagError> {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| Secret::parse(v))
            .collect()
    }

    /// De-duplicates a list by id, a later secret replacing an earlier one in place.
    pub fn dedupe(list: Vec<Self>) -> Vec<Self> {
        dedupe_by_key(list, |s| s.id.clone())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = CsvBuilder::default();
        if !self.id.is_empty() {
            b.write("id", &self.id);
        }
        if !self.file_path.is_empty() {
            b.write("src", &self.file_path);
        }
        if !self.env.is_empty() {
            b.write("env", &self.env);
        }
        f.write_str(&b.finish())
    }
}

/// One `ssh` entry (`default`, `id=path,path`).
#[derive(Debug, Clone, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct SshKey {
    /// The key's id.
    pub id: String,
    /// Agent sockets or key files; empty for the default agent.
    pub paths: Vec<String>,
}

impl SshKey {
    /// Parses one entry (`SSH.UnmarshalText`): `ID[=PATH,PATH…]`. Never fails.
    pub fn parse(text: &str) -> Self {
        match text.split_once('=') {
            Some((id, paths)) => SshKey {
                id: id.to_string(),
                paths: paths.split(',').map(str::to_string).collect(),
            },
            None => SshKey {
                id: text.to_string(),
                paths: Vec::new(),
            },
        }
    }

    /// Parses values as bake's `parseArrValue` does (empty ones skipped).
    pub fn parse_list(values: &[String]) -> Vec<Self> {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| SshKey::parse(v))
            .collect()
    }

    /// De-duplicates a list by id, a later key replacing an earlier one in place.
    pub fn dedupe(list: Vec<Self>) -> Vec<Self> {
        dedupe_by_key(list, |s| s.id.clone())
    }
}

impl fmt::Display for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.paths.is_empty() {
            return f.write_str(&self.id);
        }
        let mut b = CsvBuilder::default();
        b.write(&self.id, &self.paths.join(","));
        f.write_str(&b.finish())
    }
}

/// One `attest` entry (`type=sbom`, `type=provenance,mode=max`, `type=sbom,disabled=true`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attest {
    /// The attestation kind (`sbom`, `provenance`).
    pub kind: String,
    /// Whether it is turned off.
    pub disabled: bool,
    /// Its other attributes.
    pub attrs: BTreeMap<String, String>,
}

impl Attest {
    /// Parses one CSV entry (`Attest.UnmarshalText`).
    pub fn parse(text: &str) -> Result<Self, FlagError> {
        let fields = csv_fields(text)?;
        let mut attest = Attest::default();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(FlagError::InvalidValue(field));
            };
            match key.trim().to_lowercase().as_str() {
                "type" => attest.kind = value.to_string(),
                "disabled" => {
                    attest.disabled =
                        parse_go_bool(value).ok_or_else(|| FlagError::AttestDisabled {
                            field: field.clone(),
                            value: value.to_string(),
                        })?;
                }
                // The key is kept as written (not lower-cased), as buildx does.
                _ => {
                    attest.attrs.insert(key.to_string(), value.to_string());
                }
            }
        }
        if attest.kind.is_empty() {
            return Err(FlagError::AttestTypeMissing);
        }
        Ok(attest)
    }

    /// Parses values as bake's `parseArrValue` does (empty ones skipped).
    pub fn parse_list(values: &[String]) -> Result<Vec<Self>, FlagError> {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| Attest::parse(v))
            .collect()
    }

    /// Parses values as `ParseAttests` does (compose's `sbom`/`provenance`): none skipped.
    pub fn parse_all(values: &[String]) -> Result<Option<Vec<Self>>, FlagError> {
        if values.is_empty() {
            return Ok(None);
        }
        values
            .iter()
            .map(|v| Attest::parse(v))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// De-duplicates a list by kind, a later attestation replacing an earlier one in place.
    pub fn dedupe(list: Vec<Self>) -> Vec<Self> {
        dedupe_by_key(list, |a| a.kind.clone())
    }

    /// `CanonicalizeAttest`: the `--sbom`/`--provenance` shorthand as an attest entry (`true`
    /// → `type=T,disabled=false`, other values appended to `type=T,`). Empty stays empty.
    pub fn canonicalize(kind: &str, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        match parse_go_bool(value) {
            Some(enabled) => format!("type={kind},disabled={}", !enabled),
            None => format!("type={kind},{value}"),
        }
    }
}

impl fmt::Display for Attest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = CsvBuilder::default();
        if !self.kind.is_empty() {
            b.write("type", &self.kind);
        }
        if self.disabled {
            b.write("disabled", "true");
        }
        b.write_attributes(&self.attrs);
        f.write_str(&b.finish())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cache_entries_parse_like_buildx() {
        let list = CacheEntry::parse_list(&strs(&["ref1,ref2", "type=local,src=x", ""]))
            .unwrap()
            .unwrap();
        assert_eq!(
            list.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["ref1", "ref2", "type=local,src=x"]
        );
        assert_eq!(
            CacheEntry::parse("src=x").unwrap_err().to_string(),
            r#"type required form> "src=x""#
        );
        assert_eq!(
            CacheEntry::parse("type=local,bad").unwrap_err().to_string(),
            "invalid value bad"
        );
        assert_eq!(CacheEntry::parse_list(&[]).unwrap(), None);
        // An upper-case key is lower-cased.
        assert_eq!(
            CacheEntry::parse("TYPE=gha,Scope=x").unwrap().to_string(),
            "type=gha,scope=x"
        );
    }

    #[test]
    fn exports_parse_like_buildx() {
        let e = ExportEntry::parse("out").unwrap();
        assert_eq!((e.kind.as_str(), e.destination.as_str()), ("local", "out"));
        let e = ExportEntry::parse("-").unwrap();
        assert_eq!((e.kind.as_str(), e.destination.as_str()), ("tar", "-"));
        assert_eq!(
            ExportEntry::parse("type=image,name=foo,push=true")
                .unwrap()
                .to_string(),
            "type=image,name=foo,push=true"
        );
        assert_eq!(
            ExportEntry::parse("dest=x,foo=bar")
                .unwrap_err()
                .to_string(),
            "type is required for output"
        );
        assert_eq!(
            ExportEntry::parse("type=local,dest=a,b")
                .unwrap_err()
                .to_string(),
            "invalid value b"
        );
    }

    #[test]
    fn secrets_parse_like_buildx() {
        let s = Secret::parse("id=a,src=b").unwrap();
        assert_eq!((s.id.as_str(), s.file_path.as_str()), ("a", "b"));
        let s = Secret::parse("type=env,id=a,src=B").unwrap();
        assert_eq!((s.env.as_str(), s.file_path.as_str()), ("B", ""));
        assert_eq!(
            Secret::parse("type=x,id=a").unwrap_err().to_string(),
            r#"unsupported secret type "x""#
        );
        assert_eq!(
            Secret::parse("id=a,foo=b").unwrap_err().to_string(),
            "unexpected key 'foo' in 'foo=b'"
        );
        assert_eq!(
            Secret::parse("id").unwrap_err().to_string(),
            "invalid field 'id' must be a key=value pair"
        );
        let merged = merge_list(
            Some(vec![Secret::parse("id=FOO,env=FOO").unwrap()]),
            Some(vec![
                Secret::parse("id=BAR,env=BAR").unwrap(),
                Secret::parse("id=FOO,env=X").unwrap(),
            ]),
            Secret::dedupe,
        )
        .unwrap();
        assert_eq!(
            merged.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ["id=FOO,env=X", "id=BAR,env=BAR"]
        );
    }

    #[test]
    fn ssh_keys_parse_like_buildx() {
        assert_eq!(SshKey::parse("default").to_string(), "default");
        let k = SshKey::parse("key=a,b");
        assert_eq!(k.paths, ["a", "b"]);
        assert_eq!(k.to_string(), r#""key=a,b""#);
    }

    #[test]
    fn attests_dedupe_by_type_keeping_the_first_position() {
        let list = Attest::parse_list(&strs(&[
            "type=sbom",
            "type=sbom,generator=custom",
            "type=sbom,foo=bar",
            "type=provenance,mode=max",
        ]))
        .unwrap();
        let list = Attest::dedupe(list);
        assert_eq!(
            list.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            ["type=sbom,foo=bar", "type=provenance,mode=max"]
        );
        assert_eq!(
            Attest::parse("type=sbom,disabled=maybe")
                .unwrap_err()
                .to_string(),
            r#"invalid value disabled=maybe: strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
        assert_eq!(
            Attest::parse("mode=max").unwrap_err().to_string(),
            "attestation type not specified"
        );
        assert_eq!(
            Attest::canonicalize("sbom", "true"),
            "type=sbom,disabled=false"
        );
        assert_eq!(
            Attest::canonicalize("provenance", "mode=max"),
            "type=provenance,mode=max"
        );
        assert_eq!(Attest::canonicalize("sbom", ""), "");
    }

    #[test]
    fn remove_dupes_swaps_like_buildx() {
        assert_eq!(remove_dupes(vec![1, 2, 1]), vec![1, 2]);
        assert_eq!(remove_dupes(vec![1, 1, 2]), vec![1, 2]);
        assert_eq!(remove_dupes(vec![1, 2, 1, 3]), vec![1, 2, 3]);
        // The swap reorders: the duplicate at index 2 is replaced by the last element.
        assert_eq!(remove_dupes(vec![1, 2, 2, 1, 3]), vec![1, 2, 3]);
        assert_eq!(remove_dupes(vec![1, 3, 1, 2]), vec![1, 3, 2]);
    }
}
