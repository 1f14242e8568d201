//! `--cache-from` / `--cache-to`: buildx's syntax (CSV `type=…,key=value`, a bare reference
//! meaning `type=registry,ref=…`, repeatable), the attributes buildx fills from the
//! environment (GitHub Actions for `gha`, AWS for `s3`), and the checks BuildKit's client makes
//! before a solve, made here before anything is sent.
//!
//! How the entries reach the daemon: `registry`, `inline`, `gha`, `s3`, `azblob` are done by
//! the daemon from their attributes (registry credentials through the session's Auth
//! service). `local` goes through the client: the folder is served as a content store on the
//! session (`local:<dir>`), an import's tag is resolved to a digest from `index.json` first,
//! and an export's manifest is tagged in `index.json` afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use brix_exporter::{Descriptor, ImageReference, Registry};
use brix_solver_client::session::{LocalContentStore, Session};
use brix_solver_client::solve::{CacheOption, SolveSpec};

use crate::ProgressSink;
use crate::engine::Solved;
use crate::error::Failure;
use crate::nodes::BuildNode;

/// The exporter response key holding the exported cache manifest's descriptor (JSON).
const CACHE_MANIFEST: &str = "cache.manifest";

/// The cache backends buildx accepts.
const KNOWN_TYPES: &[&str] = &["registry", "inline", "local", "gha", "s3", "azblob"];

/// One `--cache-from` or `--cache-to` entry, as it goes into the solve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The backend (`registry`, `local`, ...).
    pub kind: String,
    /// Its attributes (`ref`, `mode`, `dest`, ...), keys lower-cased as buildx does.
    pub attrs: BTreeMap<String, String>,
}

impl CacheEntry {
    /// The `local` entry's folder: `src` for an import, `dest` for an export.
    pub fn local_dir(&self, export: bool) -> Option<PathBuf> {
        if self.kind != "local" {
            return None;
        }
        self.attrs
            .get(if export { "dest" } else { "src" })
            .map(PathBuf::from)
    }

    /// The content store ID the daemon names when it reads or writes this local cache: the
    /// folder exactly as the attribute spells it.
    fn store_id(&self, export: bool) -> Option<String> {
        let key = if export { "dest" } else { "src" };
        (self.kind == "local")
            .then(|| self.attrs.get(key))
            .flatten()
            .map(|dir| format!("local:{dir}"))
    }

    /// Whether the daemon writes this cache as a manifest it reports back (`cache.manifest`).
    fn is_content_export(&self) -> bool {
        matches!(self.kind.as_str(), "registry" | "local")
    }

    /// Where a registry or local export goes, for messages.
    fn target(&self) -> String {
        self.local_dir(true)
            .map(|d| d.display().to_string())
            .or_else(|| self.attrs.get("ref").cloned())
            .unwrap_or_default()
    }

    /// The settings that decide a content export's manifest bytes (with BuildKit's defaults).
    fn shape(&self) -> [String; 6] {
        let get = |key: &str, default: &str| {
            self.attrs
                .get(key)
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        [
            get("mode", "min"),
            get("image-manifest", "true"),
            get("oci-mediatypes", "true"),
            get("compression", "gzip"),
            get("compression-level", ""),
            get("force-compression", "false"),
        ]
    }

    fn to_option(&self) -> CacheOption {
        CacheOption {
            kind: self.kind.clone(),
            attrs: self.attrs.clone(),
        }
    }

    /// The tag of a local cache in its `index.json` (`latest` unless `tag=` says).
    pub fn local_tag(&self) -> &str {
        self.attrs.get("tag").map_or("latest", String::as_str)
    }

    /// `ignore-error=true`: a failed export is a warning.
    pub fn ignores_errors(&self) -> bool {
        self.attrs
            .get("ignore-error")
            .and_then(|v| crate::go::parse_bool(v))
            .unwrap_or(false)
    }
}

/// Resolves each `local` import's tag to a digest from the folder's `index.json`, as
/// BuildKit's client does: a folder or index that cannot be read is skipped with a warning
/// (the build runs without that cache, and `warn` says so); a tag the index lacks is an error.
pub fn resolve_local_imports(
    entries: Vec<CacheEntry>,
    warn: &dyn Fn(&str),
) -> anyhow::Result<Vec<CacheEntry>> {
    let mut out = Vec::new();
    for mut entry in entries {
        if let Some(src) = entry.local_dir(false)
            && !entry.attrs.contains_key("digest")
        {
            let unreadable = unreadable_index(&src);
            if let Some(why) = unreadable {
                warn(&format!(
                    "local cache import at {} not found due to err: {why}",
                    src.display()
                ));
                continue;
            }
            match brix_exporter::cache::read_tag(&src, entry.local_tag()) {
                Ok(Some(desc)) => {
                    entry.attrs.insert("digest".into(), desc.digest);
                }
                Ok(None) => bail!(
                    "failed to build: local cache importer requires either explicit digest, \"latest\" tag or custom tag on index.json"
                ),
                Err(e) => {
                    warn(&format!(
                        "local cache import at {} not found due to err: {e}",
                        src.display()
                    ));
                    continue;
                }
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Why BuildKit's client (`ociindex.Read`) cannot read the `index.json` of the layout `dir`,
/// in its words, or `None` when the file is there.
pub(crate) fn unreadable_index(dir: &std::path::Path) -> Option<String> {
    let (verb, file) = if !dir.is_dir() {
        ("lock", dir.join("index.json.lock"))
    } else if !dir.join("index.json").is_file() {
        ("read", dir.join("index.json"))
    } else {
        return None;
    };
    Some(format!(
        "could not {verb} {}: open {}: no such file or directory",
        file.display(),
        file.display()
    ))
}

/// buildx's refusal of cache exports a node cannot do (the engine's BuildKit on the classic
/// image store); `inline` is always possible.
pub fn check_nodes(exports: &[CacheEntry], nodes: &[BuildNode]) -> anyhow::Result<()> {
    if exports.iter().any(|e| e.kind != "inline")
        && let Some(node) = nodes.iter().find(|n| !n.features.cache_export)
    {
        let driver = if node.is_docker() { "docker" } else { "this" };
        return Err(crate::error::not_supported(
            "Cache export",
            driver,
            "https://docs.docker.com/go/build-cache-backends/",
        ));
    }
    Ok(())
}

/// Puts the caches into one solve: the entries into the request, and each local folder as a
/// content store on the solve's session (created for an export, as BuildKit's client does).
///
/// `platform` names the solve's platform (`linux_arm64`) when the build has one solve per
/// platform. Then an `s3` or `azblob` export also writes the manifest under
/// `NAME-<platform>` (BuildKit writes every `;`-separated name), and the import of `NAME`
/// reads that platform's manifest first: these backends keep one manifest per name that the
/// client cannot merge, so without it the last platform's export would replace the others'.
pub fn add_to_solve(
    imports: &[CacheEntry],
    exports: &[CacheEntry],
    spec: &mut SolveSpec,
    session: &mut Session,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let per_platform = |entry: &CacheEntry| -> Option<Vec<String>> {
        let platform = platform?;
        matches!(entry.kind.as_str(), "s3" | "azblob").then(|| {
            entry
                .attrs
                .get("name")
                .map_or("buildkit", String::as_str)
                .split(';')
                .map(|name| format!("{name}-{platform}"))
                .collect()
        })
    };
    spec.cache_imports = Vec::new();
    for entry in imports {
        if let Some(names) = per_platform(entry) {
            for name in names {
                let mut own = entry.to_option();
                own.attrs.insert("name".into(), name);
                spec.cache_imports.push(own);
            }
        }
        spec.cache_imports.push(entry.to_option());
    }
    spec.cache_exports = exports
        .iter()
        .map(|entry| {
            let mut option = entry.to_option();
            if let Some(names) = per_platform(entry) {
                let all = entry.attrs.get("name").map_or("buildkit", String::as_str);
                option
                    .attrs
                    .insert("name".into(), format!("{all};{}", names.join(";")));
            }
            option
        })
        .collect();
    for (entry, export) in imports
        .iter()
        .map(|e| (e, false))
        .chain(exports.iter().map(|e| (e, true)))
    {
        if let (Some(id), Some(dir)) = (entry.store_id(export), entry.local_dir(export)) {
            session.add_content_store(id, shared_store(&dir)?);
        }
    }
    Ok(())
}

/// One store per cache folder for the whole build, shared by every solve's session: a write
/// of a blob that another platform's solve is writing waits for it instead of moving the
/// same bytes again.
fn shared_store(dir: &std::path::Path) -> anyhow::Result<LocalContentStore> {
    static STORES: std::sync::OnceLock<std::sync::Mutex<BTreeMap<PathBuf, LocalContentStore>>> =
        std::sync::OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| anyhow::anyhow!("the local cache stores' lock is poisoned"))?;
    if let Some(store) = stores.get(dir) {
        return Ok(store.clone());
    }
    let store = LocalContentStore::open(dir)
        .with_context(|| format!("opening the local cache folder {}", dir.display()))?;
    stores.insert(dir.to_path_buf(), store.clone());
    Ok(store)
}

/// After the solves: tags each local export's manifest in its `index.json`, and, when several
/// solves (platforms) exported the same cache, merges their manifests into one so the cache
/// holds every platform's records (buildx keeps the last platform's only). BuildKit reports one
/// `cache.manifest` per solve, that of its last registry or local export, so that export is
/// the one merged; earlier ones keep what the daemon wrote.
pub async fn finish_exports(
    exports: &[CacheEntry],
    solved: &[Solved],
    registry: &Registry,
    progress: &dyn ProgressSink,
) -> Result<(), Failure> {
    let Some(last) = exports.iter().rfind(|e| e.is_content_export()) else {
        return Ok(());
    };
    let mut manifests: Vec<Descriptor> = Vec::new();
    for s in solved {
        if let Some(json) = s.result.exporter_response.get(CACHE_MANIFEST) {
            let desc: Descriptor = serde_json::from_str(json)
                .with_context(|| format!("the daemon's cache manifest descriptor {json:?}"))?;
            if !manifests.contains(&desc) {
                manifests.push(desc);
            }
        }
    }
    if manifests.is_empty() {
        // Nothing exported (an ignored error): nothing to tag.
        return Ok(());
    }
    // The descriptor is the last export's; an export written with the same settings holds the
    // same manifest (the daemon writes identical bytes), so it is merged too.
    let (same, other): (Vec<&CacheEntry>, Vec<&CacheEntry>) = exports
        .iter()
        .filter(|e| e.is_content_export())
        .partition(|e| e.shape() == last.shape());
    if !other.is_empty() && solved.len() > 1 {
        let names: Vec<String> = other.iter().map(|e| e.target()).collect();
        progress.warning(&format!(
            "BuildKit reports one cache manifest per solve, that of the last --cache-to: {} (written with other settings) keeps one platform's records; give every registry and local cache the same mode and media types",
            names.join(", ")
        ));
    }
    for entry in same {
        let merged = match merge(entry, &manifests, registry, progress).await {
            Ok(desc) => desc,
            Err(e) if entry.ignores_errors() => {
                progress.warning(&format!(
                    "failed to merge the platforms' caches (ignore-error=true): {e:#}"
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(dir) = entry.local_dir(true) {
            let tag = entry.local_tag().to_owned();
            let d = dir.clone();
            tokio::task::spawn_blocking(move || brix_exporter::cache::put_tag(&d, &merged, &tag))
                .await
                .context("tagging the local cache")?
                .with_context(|| format!("updating {}", dir.join("index.json").display()))?;
        }
    }
    Ok(())
}

/// One manifest over every solve's (the manifest itself when there is one).
async fn merge(
    entry: &CacheEntry,
    manifests: &[Descriptor],
    registry: &Registry,
    progress: &dyn ProgressSink,
) -> anyhow::Result<Descriptor> {
    if manifests.len() == 1 {
        return Ok(manifests[0].clone());
    }
    let target = entry.target();
    let step = progress.client_step(&format!(
        "merging the cache of {} platforms into {target} (brix; buildx keeps the last platform's)",
        manifests.len()
    ));
    let result = match entry.local_dir(true) {
        Some(dir) => {
            let manifests = manifests.to_vec();
            tokio::task::spawn_blocking(move || {
                brix_exporter::cache::merge_local_cache(&dir, &manifests)
            })
            .await
            .context("merging the local cache")?
            .map_err(anyhow::Error::from)
        }
        None => {
            let reference = ImageReference::parse(&target)?;
            registry
                .merge_cache(&reference, manifests)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    if let Ok(desc) = &result {
        step.status(&format!("writing cache manifest {}", desc.digest), true);
    }
    step.done(result.as_ref().err().map(|e| format!("{e:#}")));
    result.with_context(|| format!("merging the platforms' caches into {target}"))
}

/// Which flag an entry came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `--cache-from`.
    Import,
    /// `--cache-to`.
    Export,
}

/// Parses every value of one flag, fills the environment's attributes, drops the entries
/// buildx drops (a `gha` entry without a token and URL) and checks what BuildKit's client
/// checks. `env` reads an environment variable.
pub fn parse_entries(
    values: &[String],
    direction: Direction,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<CacheEntry>> {
    let mut entries = Vec::new();
    for value in values {
        if value.is_empty() {
            continue;
        }
        for mut entry in parse_value(value)? {
            add_github_attrs(&mut entry, env);
            add_aws_credentials(&mut entry, env);
            if !is_active(&entry) {
                tracing::debug!(kind = %entry.kind, "inactive cache entry skipped");
                continue;
            }
            check(&entry, direction)?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// One flag value: `REF[,REF…]` (each a registry entry) or `type=…,key=value,…`.
fn parse_value(value: &str) -> anyhow::Result<Vec<CacheEntry>> {
    let fields = csv_fields(value)?;
    if !value.contains('=') {
        return Ok(fields
            .into_iter()
            .map(|reference| CacheEntry {
                kind: "registry".to_owned(),
                attrs: BTreeMap::from([("ref".to_owned(), reference)]),
            })
            .collect());
    }
    let mut kind = String::new();
    let mut attrs = BTreeMap::new();
    for field in fields {
        let Some((key, v)) = field.split_once('=') else {
            bail!("invalid value {field}");
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = v.to_owned(),
            key => {
                attrs.insert(key.to_owned(), v.to_owned());
            }
        }
    }
    if kind.is_empty() {
        bail!("type required form> {value:?}");
    }
    Ok(vec![CacheEntry { kind, attrs }])
}

/// BuildKit client's checks (`client/solve.go` `parseCacheOptions`) and the registry
/// exporter's, with their wording, plus the type itself, which the daemon would refuse only
/// once the build has started.
fn check(entry: &CacheEntry, direction: Direction) -> anyhow::Result<()> {
    let role = match direction {
        Direction::Import => "importer",
        Direction::Export => "exporter",
    };
    // buildx's words: the client's checks fail its build ("failed to build: …"), the daemon's
    // its solve ("failed to build: failed to solve: …"); here both come before any solve.
    if !KNOWN_TYPES.contains(&entry.kind.as_str()) {
        bail!(
            "failed to build: failed to solve: unknown cache {role}: {:?}",
            entry.kind
        );
    }
    match (entry.kind.as_str(), direction) {
        ("registry", _) if entry.attrs.get("ref").is_none_or(String::is_empty) => {
            bail!("failed to build: registry cache {role} requires ref")
        }
        ("local", Direction::Export) if entry.attrs.get("dest").is_none_or(String::is_empty) => {
            bail!("failed to build: local cache exporter requires dest")
        }
        ("local", Direction::Import) if entry.attrs.get("src").is_none_or(String::is_empty) => {
            bail!("failed to build: local cache importer requires src")
        }
        _ => {}
    }
    if direction == Direction::Export && matches!(entry.kind.as_str(), "registry" | "local") {
        let flag = |key: &str| entry.attrs.get(key).and_then(|v| crate::go::parse_bool(v));
        if flag("image-manifest") == Some(true) && flag("oci-mediatypes") == Some(false) {
            bail!(
                "failed to build: failed to solve: invalid configuration for remote cache, OCI mediatypes are required for image-manifest cache format"
            );
        }
    }
    Ok(())
}

/// buildx's `addGithubToken`: `token`, `url` and `url_v2` from the Actions runner's
/// environment unless given, `version` 2 when `ACTIONS_CACHE_SERVICE_V2` is true.
fn add_github_attrs(entry: &mut CacheEntry, env: &dyn Fn(&str) -> Option<String>) {
    if entry.kind != "gha" {
        return;
    }
    let version = entry.attrs.get("version").cloned().or_else(|| {
        env("ACTIONS_CACHE_SERVICE_V2")
            .and_then(|v| crate::go::parse_bool(&v))
            .and_then(|v2| v2.then(|| "2".to_owned()))
    });
    let attrs = &mut entry.attrs;
    if !attrs.contains_key("token")
        && let Some(v) = env("ACTIONS_RUNTIME_TOKEN")
    {
        attrs.insert("token".into(), v);
    }
    if !attrs.contains_key("url_v2")
        && version.as_deref() == Some("2")
        && let Some(v) = env("ACTIONS_RESULTS_URL")
    {
        attrs.insert("url_v2".into(), v);
    }
    if !attrs.contains_key("url")
        && let Some(v) = env("ACTIONS_CACHE_URL").or_else(|| env("ACTIONS_RESULTS_URL"))
    {
        attrs.insert("url".into(), v);
    }
}

/// buildx's `addAwsCredentials`: the AWS SDK's environment credentials unless both keys are
/// given (the SDK's shared-files and instance-role chain are not read: set the variables).
fn add_aws_credentials(entry: &mut CacheEntry, env: &dyn Fn(&str) -> Option<String>) {
    if entry.kind != "s3" {
        return;
    }
    let attrs = &mut entry.attrs;
    let has_key = attrs.contains_key("access_key_id");
    let has_secret = attrs.contains_key("secret_access_key");
    if has_key && has_secret {
        return;
    }
    let (Some(key), Some(secret)) = (
        env("AWS_ACCESS_KEY_ID").or_else(|| env("AWS_ACCESS_KEY")),
        env("AWS_SECRET_ACCESS_KEY").or_else(|| env("AWS_SECRET_KEY")),
    ) else {
        return;
    };
    if !has_key && !key.is_empty() {
        attrs.insert("access_key_id".into(), key);
    }
    if !has_secret && !secret.is_empty() {
        attrs.insert("secret_access_key".into(), secret);
    }
    if !attrs.contains_key("session_token")
        && let Some(token) = env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty())
    {
        attrs.insert("session_token".into(), token);
    }
}

/// buildx's `isActive`: a `gha` entry needs a token and a URL; every other entry is used.
fn is_active(entry: &CacheEntry) -> bool {
    entry.kind != "gha"
        || (entry.attrs.get("token").is_some_and(|t| !t.is_empty())
            && (entry.attrs.get("url").is_some_and(|u| !u.is_empty())
                || entry.attrs.get("url_v2").is_some_and(|u| !u.is_empty())))
}

/// One CSV record as Go's `encoding/csv` reads it (what buildx's `csvvalue` follows): fields
/// split on commas, a field that starts with `"` is quoted (`""` inside is a quote), and a
/// quote anywhere else is an error, with Go's message.
pub fn csv_fields(record: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let chars: Vec<char> = record.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            let start = i;
            i += 1;
            loop {
                match chars.get(i) {
                    // csvvalue's column for an unterminated field: just after its opening quote.
                    None => bail!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        start + 2
                    ),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        match chars.get(i) {
                            None | Some(',') => break,
                            // The column of the closing quote.
                            Some(_) => bail!(
                                "parse error on line 1, column {i}: extraneous or missing \" in quoted-field"
                            ),
                        }
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                match c {
                    ',' => break,
                    '"' => bail!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        i + 1
                    ),
                    c => field.push(c),
                }
                i += 1;
            }
        }
        fields.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
        } else {
            break;
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(values: &[&str], direction: Direction) -> anyhow::Result<Vec<CacheEntry>> {
        let values: Vec<String> = values.iter().map(|s| (*s).to_owned()).collect();
        parse_entries(&values, direction, &no_env)
    }

    fn entry(kind: &str, attrs: &[(&str, &str)]) -> CacheEntry {
        CacheEntry {
            kind: kind.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn bare_references_are_registry_entries_one_per_field() {
        assert_eq!(
            parse(&["r.example/a:cache,r.example/b"], Direction::Import).expect("parsed"),
            vec![
                entry("registry", &[("ref", "r.example/a:cache")]),
                entry("registry", &[("ref", "r.example/b")]),
            ]
        );
    }

    #[test]
    fn csv_entries_keep_their_attributes_with_lowercased_keys() {
        let got = parse(
            &["type=registry,ref=r/x:c,MODE=max,image-manifest=true,oci-mediatypes=true"],
            Direction::Export,
        )
        .expect("parsed");
        assert_eq!(
            got,
            vec![entry(
                "registry",
                &[
                    ("ref", "r/x:c"),
                    ("mode", "max"),
                    ("image-manifest", "true"),
                    ("oci-mediatypes", "true")
                ]
            )]
        );
        // Repeats are one entry, as buildx's removeDupes makes them.
        assert_eq!(
            parse(&["type=inline", "type=inline"], Direction::Export)
                .expect("parsed")
                .len(),
            1
        );
    }

    #[test]
    fn bad_entries_get_buildkit_s_messages() {
        let err = |v: &str, d| parse(&[v], d).expect_err("refused").to_string();
        assert_eq!(
            err("type=registry", Direction::Export),
            "failed to build: registry cache exporter requires ref"
        );
        assert_eq!(
            err("type=registry,mode=max", Direction::Import),
            "failed to build: registry cache importer requires ref"
        );
        assert_eq!(
            err("type=local,src=x", Direction::Export),
            "failed to build: local cache exporter requires dest"
        );
        assert_eq!(
            err("type=local,dest=x", Direction::Import),
            "failed to build: local cache importer requires src"
        );
        assert_eq!(
            err("type=foo,ref=x", Direction::Export),
            "failed to build: failed to solve: unknown cache exporter: \"foo\""
        );
        assert_eq!(
            err("type=foo", Direction::Import),
            "failed to build: failed to solve: unknown cache importer: \"foo\""
        );
        assert_eq!(
            err(
                "type=registry,ref=r/x,image-manifest=true,oci-mediatypes=false",
                Direction::Export
            ),
            "failed to build: failed to solve: invalid configuration for remote cache, OCI mediatypes are required for image-manifest cache format"
        );
        // Parse errors as buildx words them (its `csvvalue` follows Go's encoding/csv).
        assert_eq!(
            err("ref=r/x", Direction::Export),
            "type required form> \"ref=r/x\""
        );
        assert_eq!(
            err("type=local,dest", Direction::Export),
            "invalid value dest"
        );
        assert_eq!(
            err("type=local,dest=\"x", Direction::Export),
            "parse error on line 1, column 17: bare \" in non-quoted-field"
        );
        assert_eq!(
            err("\"type=local,dest=x", Direction::Export),
            "parse error on line 1, column 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            err("type=local,\"dest=x\"y", Direction::Export),
            "parse error on line 1, column 19: extraneous or missing \" in quoted-field"
        );
    }

    #[test]
    fn csv_follows_go_s_reader() {
        assert_eq!(
            csv_fields("a,\"b,c\",\"d\"\"e\"").expect("parsed"),
            vec!["a", "b,c", "d\"e"]
        );
        assert_eq!(csv_fields("").expect("parsed"), vec![""]);
        assert!(
            csv_fields("a=b\"c")
                .expect_err("refused")
                .to_string()
                .contains("bare \"")
        );
    }

    #[test]
    fn gha_takes_the_runner_s_environment_or_is_dropped() {
        let runner = |k: &str| match k {
            "ACTIONS_RUNTIME_TOKEN" => Some("tok".to_owned()),
            "ACTIONS_CACHE_URL" => Some("https://cache/".to_owned()),
            "ACTIONS_RESULTS_URL" => Some("https://results/".to_owned()),
            "ACTIONS_CACHE_SERVICE_V2" => Some("True".to_owned()),
            _ => None,
        };
        let values = vec!["type=gha,scope=main".to_owned()];
        let got = parse_entries(&values, Direction::Export, &runner).expect("parsed");
        assert_eq!(
            got,
            vec![entry(
                "gha",
                &[
                    ("scope", "main"),
                    ("token", "tok"),
                    ("url", "https://cache/"),
                    ("url_v2", "https://results/")
                ]
            )]
        );
        // Given attributes win; v1 has no url_v2; without ACTIONS_CACHE_URL the results URL is
        // the url.
        let v1 = |k: &str| match k {
            "ACTIONS_RUNTIME_TOKEN" => Some("tok".to_owned()),
            "ACTIONS_RESULTS_URL" => Some("https://results/".to_owned()),
            _ => None,
        };
        let values = vec!["type=gha,token=mine".to_owned()];
        assert_eq!(
            parse_entries(&values, Direction::Import, &v1).expect("parsed"),
            vec![entry(
                "gha",
                &[("token", "mine"), ("url", "https://results/")]
            )]
        );
        // Outside Actions the entry is skipped, as buildx skips it.
        assert!(
            parse(&["type=gha"], Direction::Export)
                .expect("parsed")
                .is_empty()
        );
    }

    #[test]
    fn s3_takes_aws_credentials_unless_both_keys_are_given() {
        let aws = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIA".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
            "AWS_SESSION_TOKEN" => Some("session".to_owned()),
            _ => None,
        };
        let values = vec!["type=s3,bucket=b,region=us-east-1".to_owned()];
        let got = parse_entries(&values, Direction::Export, &aws).expect("parsed");
        assert_eq!(got[0].attrs["access_key_id"], "AKIA");
        assert_eq!(got[0].attrs["secret_access_key"], "secret");
        assert_eq!(got[0].attrs["session_token"], "session");
        let values = vec!["type=s3,bucket=b,access_key_id=k,secret_access_key=s".to_owned()];
        let got = parse_entries(&values, Direction::Export, &aws).expect("parsed");
        assert!(!got[0].attrs.contains_key("session_token"));
        assert_eq!(got[0].attrs["access_key_id"], "k");
    }

    #[test]
    fn s3_names_get_a_per_platform_manifest_when_each_platform_has_its_solve() {
        let s3 = entry("s3", &[("bucket", "b"), ("name", "main;v1")]);
        let mut spec = SolveSpec::dockerfile();
        let mut session = Session::new("k");
        add_to_solve(
            std::slice::from_ref(&s3),
            std::slice::from_ref(&s3),
            &mut spec,
            &mut session,
            Some("linux_arm64"),
        )
        .expect("added");
        assert_eq!(
            spec.cache_exports[0].attrs["name"],
            "main;v1;main-linux_arm64;v1-linux_arm64"
        );
        let imported: Vec<&str> = spec
            .cache_imports
            .iter()
            .map(|c| c.attrs["name"].as_str())
            .collect();
        assert_eq!(imported, ["main-linux_arm64", "v1-linux_arm64", "main;v1"]);
        // One solve for the build: the entries go as given.
        add_to_solve(
            std::slice::from_ref(&s3),
            &[],
            &mut spec,
            &mut session,
            None,
        )
        .expect("added");
        assert_eq!(spec.cache_imports.len(), 1);
        assert_eq!(spec.cache_imports[0].attrs["name"], "main;v1");
    }
}
