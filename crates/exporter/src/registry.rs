//! Registry access: fetch and inspect manifests, push blobs, manifests and indexes, copy
//! images between repositories — over brix's own Distribution API client
//! ([`crate::distribution`]).
//!
//! Pushes go bottom-up — blobs (concurrently, streamed from disk, `HEAD` first and mounted
//! from another repository of the same registry when possible), then manifests, then the
//! index by digest, and only then the tags — so no tag ever points at something half pushed.
//! Transient failures (5xx and 429 answers, dropped connections, timeouts) are retried with
//! backoff, honouring `Retry-After`; a registry that does not answer at all gives one
//! [`Error::RegistryUnreachable`], and a TLS certificate it cannot accept one
//! [`Error::Certificate`] that says where the CA goes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::auth::DockerConfig;
use crate::descriptor::{
    Descriptor, ImageConfigPlatform, ImageIndex, ImageManifest, detect_media_type, media_type,
    sha256_digest, validate_digest,
};
use crate::distribution::body::UploadBody;
use crate::distribution::tls::{DOCKER_CERTS_DIR, HostTls};
use crate::distribution::{ClientSettings, Mount, RegistryClient, registry_host};
use crate::error::{Error, Result};
use crate::index::{AssembledIndex, assemble_index};
use crate::layout::{OciLayout, children_of};

pub use crate::distribution::tls::{ClientKeyPair, PemFile, RegistryTls};

/// How a [`Registry`] connects and authenticates.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host` or `host:port`) to talk to over plain HTTP, beyond the loopback ones
    /// (`localhost`, `127.0.0.1`, `::1`), which always are. The CLI passes the hosts that the
    /// builder's `buildkitd.toml` marks `http = true`.
    pub plain_http_hosts: Vec<String>,
    /// The Docker config file to take credentials from; `None` for the default
    /// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// How many blobs to upload at once.
    pub max_concurrent_uploads: usize,
    /// How many times to try a request that failed transiently (5xx, 429, dropped
    /// connection, timeout).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one (a registry's `Retry-After`
    /// wins, up to 30 s).
    pub initial_backoff: Duration,
    /// TLS settings per registry (`host[:port]`, as references write it) beyond Docker's
    /// `certs.d` folder: what the builder's `buildkitd.toml` says
    /// ([`RegistryOptions::add_buildkitd_config`]).
    pub tls: BTreeMap<String, RegistryTls>,
    /// Docker's per-registry certificate folder: `DIR/HOST[:PORT]/` holds CA certificates
    /// (`*.crt`) and client certificates (`*.cert` with `*.key`). `/etc/docker/certs.d`.
    pub docker_certs_dir: PathBuf,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http_hosts: Vec::new(),
            docker_config: None,
            max_concurrent_uploads: 4,
            attempts: 4,
            initial_backoff: Duration::from_millis(200),
            tls: BTreeMap::new(),
            docker_certs_dir: PathBuf::from(DOCKER_CERTS_DIR),
        }
    }
}

/// Where buildx puts a builder's files in its daemon; its `buildkitd.toml` names them there.
const BUILDKIT_CONFIG_DIR: &str = "/etc/buildkit/";

impl RegistryOptions {
    /// Takes the registry settings of a builder node's `buildkitd.toml`, as buildx's
    /// `imagetools` does: `http = true` hosts are spoken to in plain HTTP, `insecure = true`
    /// ones over HTTPS without verification, and the `ca` and `keypair` files are trusted and
    /// presented. `files` are the node's stored files (`buildkitd.toml`, and the certificates
    /// it names under `/etc/buildkit/`, keyed by their path below it); a file it names that is
    /// not among them is skipped, as buildx skips it. A host already configured (by an earlier
    /// node) keeps its settings.
    pub fn add_buildkitd_config(&mut self, files: &BTreeMap<String, Vec<u8>>) {
        let Some(config) = files
            .get("buildkitd.toml")
            .and_then(|bytes| brix_config::ConfigFile::parse_bytes(bytes, "buildkitd.toml").ok())
        else {
            return;
        };
        let stored = |path: &str| -> Option<PemFile> {
            let relative = path.strip_prefix(BUILDKIT_CONFIG_DIR)?;
            let pem = files.get(relative)?.clone();
            Some(PemFile {
                origin: format!("{path} (the builder's copy)"),
                pem,
            })
        };
        for (host, registry) in &config.config.registry {
            if registry.http == Some(true) && !self.plain_http_hosts.contains(host) {
                self.plain_http_hosts.push(host.clone());
            }
            if self.tls.contains_key(host) {
                continue;
            }
            let mut tls = RegistryTls {
                skip_verify: registry.insecure == Some(true),
                ..Default::default()
            };
            for path in registry.ca.iter().flatten() {
                match stored(path) {
                    Some(file) => tls.ca.push(file),
                    None => tracing::debug!(host, path, "CA file not among the builder's files"),
                }
            }
            for pair in registry.keypair.iter().flatten() {
                let (Some(cert), Some(key)) = (pair.cert.as_deref(), pair.key.as_deref()) else {
                    continue;
                };
                match (stored(cert), stored(key)) {
                    (Some(cert), Some(key)) => tls.keypairs.push(ClientKeyPair { cert, key }),
                    _ => tracing::debug!(host, cert, "key pair not among the builder's files"),
                }
            }
            if tls != RegistryTls::default() {
                self.tls.insert(host.clone(), tls);
            }
        }
    }
}

/// A parsed image reference, `[registry/]repository[:tag][@digest]`, with Docker Hub's
/// defaults (`busybox` is `docker.io/library/busybox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference.
    pub fn parse(reference: &str) -> Result<Self> {
        let parts =
            crate::reference::parse(reference).map_err(|reason| Error::InvalidReference {
                reference: reference.to_owned(),
                reason: reason.to_owned(),
            })?;
        let crate::reference::Parts {
            registry,
            repository,
            tag,
            digest,
        } = parts;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as written (`localhost:5000`, `docker.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository at `digest`.
    pub fn with_digest(&self, digest: &str) -> Self {
        ImageReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_owned()),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> Self {
        ImageReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }

    /// What the registry's API names: the digest when there is one, else the tag.
    fn api_reference(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or("latest")
    }

    fn same_repository(&self, other: &ImageReference) -> bool {
        self.registry() == other.registry() && self.repository() == other.repository()
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageReference::parse(s)
    }
}

/// A manifest or index as the registry serves it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// What was asked for.
    pub reference: ImageReference,
    /// Media type, digest and size of `bytes`.
    pub descriptor: Descriptor,
    /// The exact bytes, as served.
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// The parsed index, if this is an index or manifest list.
    pub fn index(&self) -> Result<Option<ImageIndex>> {
        if !media_type::is_index(&self.descriptor.media_type) {
            return Ok(None);
        }
        serde_json::from_slice(&self.bytes)
            .map(Some)
            .map_err(|e| Error::json(self.reference.to_string(), e))
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// What the tags now point at.
    pub descriptor: Descriptor,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs the registry already had in the target repository.
    pub existing: usize,
    /// Blobs mounted from another repository of the same registry.
    pub mounted: usize,
    /// Manifests and indexes pushed.
    pub manifests: usize,
}

impl PushReport {
    /// The digest the tags point at.
    pub fn digest(&self) -> &str {
        &self.descriptor.digest
    }

    fn count(&mut self, outcome: BlobOutcome) {
        match outcome {
            BlobOutcome::Existed => self.existing += 1,
            BlobOutcome::Mounted => self.mounted += 1,
            BlobOutcome::Uploaded(bytes) => {
                self.uploaded += 1;
                self.uploaded_bytes += bytes;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BlobOutcome {
    Existed,
    Mounted,
    Uploaded(u64),
}

/// Where a blob's bytes come from when it has to be uploaded.
enum BlobSource<'a> {
    Layout(&'a OciLayout),
    Registry(&'a ImageReference),
}

/// A registry client for several registries at once (one connection pool each), with
/// credentials from the Docker config.
pub struct Registry {
    options: RegistryOptions,
    clients: tokio::sync::Mutex<HashMap<String, Arc<RegistryClient>>>,
    /// Blobs seen per registry, and a repository that holds each: the candidates for a
    /// cross-repository mount.
    known_blobs: Mutex<HashMap<(String, String), String>>,
}

impl Registry {
    /// A client with the given options. Nothing is contacted until the first request.
    pub fn new(options: RegistryOptions) -> Self {
        Registry {
            options,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            known_blobs: Mutex::new(HashMap::new()),
        }
    }

    /// Sets up the connection pool, credentials and TLS files for `registry` ahead of the
    /// first request (reading the Docker config and the system's root certificates takes a
    /// few milliseconds), so that it can overlap other work.
    pub async fn prepare(&self, registry: &str) -> Result<()> {
        self.client(registry).await?;
        if !self.uses_plain_http(registry) {
            let _ =
                tokio::task::spawn_blocking(crate::distribution::tls::preload_system_roots).await;
        }
        Ok(())
    }

    /// True if `registry` is spoken to over plain HTTP.
    pub fn uses_plain_http(&self, registry: &str) -> bool {
        let host = registry_host(registry);
        matches!(host, "localhost" | "127.0.0.1" | "::1")
            || self
                .options
                .plain_http_hosts
                .iter()
                .any(|h| h == registry || h == host)
    }

    /// The client for `registry`, made on first use.
    async fn client(&self, registry: &str) -> Result<Arc<RegistryClient>> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(registry) {
            return Ok(client.clone());
        }
        let docker_config = self.options.docker_config.clone();
        let lookup = registry.to_owned();
        let configured = self.options.tls.get(registry).cloned();
        let certs_dir = self.options.docker_certs_dir.clone();
        let (credentials, tls) = tokio::task::spawn_blocking(move || {
            let config = match docker_config {
                Some(path) => DockerConfig::load(&path)?,
                None => DockerConfig::load_default()?,
            };
            let credentials = config.credentials_for(&lookup)?;
            let tls =
                HostTls::load(&lookup, configured.as_ref(), &certs_dir).map_err(|reason| {
                    Error::Registry {
                        registry: lookup.clone(),
                        operation: "reading its TLS certificates".into(),
                        reason,
                    }
                })?;
            Ok::<_, Error>((credentials, tls))
        })
        .await
        .map_err(|e| Error::Registry {
            registry: registry.to_owned(),
            operation: "looking up credentials".into(),
            reason: e.to_string(),
        })??;
        let client = Arc::new(RegistryClient::new(
            registry,
            ClientSettings {
                plain_http: self.uses_plain_http(registry),
                credentials,
                tls,
                attempts: self.options.attempts,
                initial_backoff: self.options.initial_backoff,
                max_idle: self.options.max_concurrent_uploads,
            },
        )?);
        clients.insert(registry.to_owned(), client.clone());
        Ok(client)
    }

    /// Fetches a manifest or index (by tag or digest) as the registry serves it, checking the
    /// digest when the reference has one.
    pub async fn fetch_manifest(&self, reference: &ImageReference) -> Result<FetchedManifest> {
        let client = self.client(reference.registry()).await?;
        let what = || reference.to_string();
        let (bytes, digest) = client
            .get_manifest(
                reference.repository(),
                reference.api_reference(),
                media_type::ALL_MANIFESTS,
                &what,
            )
            .await?;
        let actual = sha256_digest(&bytes);
        if let Some(expected) = reference.digest().filter(|d| *d != actual) {
            return Err(Error::DigestMismatch {
                what: what(),
                expected: expected.into(),
                actual,
            });
        }
        if let Some(header) = digest.filter(|d| *d != actual) {
            tracing::debug!(reference = %reference, header, computed = actual, "registry digest header differs");
        }
        let media_type = detect_media_type(&bytes)?;
        let mut descriptor = Descriptor::of_bytes(media_type, &bytes);
        descriptor.digest = actual;
        Ok(FetchedManifest {
            reference: reference.clone(),
            descriptor,
            bytes,
        })
    }

    /// Fetches a small blob (a config) whole, verified against its digest.
    pub(crate) async fn fetch_blob(
        &self,
        reference: &ImageReference,
        digest: &str,
    ) -> Result<Vec<u8>> {
        validate_digest(digest)?;
        let client = self.client(reference.registry()).await?;
        let bytes = client.get_blob(reference.repository(), digest).await?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("fetching blob {digest} from {}", reference.name()),
                expected: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The image and attestation manifests behind `reference` (an index is expanded into its
    /// entries; a single manifest gets its platform from its config): what
    /// [`assemble_index`] takes. Each comes with the repository that holds it.
    pub async fn image_manifests(&self, reference: &ImageReference) -> Result<Vec<Descriptor>> {
        let fetched = self.fetch_manifest(reference).await?;
        self.expand(reference, fetched.descriptor, &fetched.bytes)
            .await
    }

    /// [`Registry::image_manifests`] for descriptors already known (e.g. from solve
    /// responses), all in repository `repository`.
    pub async fn resolve_descriptors(
        &self,
        repository: &ImageReference,
        descriptors: &[Descriptor],
    ) -> Result<Vec<Descriptor>> {
        for descriptor in descriptors {
            validate_digest(&descriptor.digest)?;
        }
        // One round trip for all: the manifests are fetched (and expanded) concurrently.
        let resolved =
            futures_util::future::try_join_all(descriptors.iter().map(|descriptor| async move {
                let fetched = self
                    .fetch_manifest(&repository.with_digest(&descriptor.digest))
                    .await?;
                let mut merged = descriptor.clone();
                if merged.media_type.is_empty() {
                    merged.media_type = fetched.descriptor.media_type.clone();
                }
                self.expand(repository, merged, &fetched.bytes).await
            }))
            .await?;
        Ok(resolved.into_iter().flatten().collect())
    }

    async fn expand(
        &self,
        reference: &ImageReference,
        descriptor: Descriptor,
        bytes: &[u8],
    ) -> Result<Vec<Descriptor>> {
        if media_type::is_index(&descriptor.media_type) {
            return children_of(&descriptor, bytes);
        }
        if descriptor.media_type == media_type::DOCKER_MANIFEST_V1
            || descriptor.media_type == media_type::DOCKER_MANIFEST_V1_SIGNED
        {
            return Err(Error::InvalidDescriptor {
                what: reference.to_string(),
                reason: "schema 1 manifests are not allowed in an index; re-push the image".into(),
            });
        }
        let mut descriptor = descriptor;
        if descriptor.platform.is_none() && !descriptor.is_attestation() {
            let manifest: ImageManifest =
                serde_json::from_slice(bytes).map_err(|e| Error::json(reference.to_string(), e))?;
            let config = self.fetch_blob(reference, &manifest.config.digest).await?;
            descriptor.platform = Some(ImageConfigPlatform::from_config_json(
                &manifest.config.digest,
                &config,
            )?);
        }
        Ok(vec![descriptor])
    }

    /// Uploads a small blob held in memory (a cache config) to `target`'s repository, unless
    /// the repository already has it.
    pub(crate) async fn push_blob_bytes(
        &self,
        target: &ImageReference,
        digest: &str,
        bytes: &[u8],
    ) -> Result<()> {
        validate_digest(digest)?;
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob for {}", target.name()),
                expected: digest.into(),
                actual,
            });
        }
        let client = self.client(target.registry()).await?;
        if !client.blob_exists(target.repository(), digest).await? {
            let body = UploadBody::Bytes(bytes::Bytes::copy_from_slice(bytes));
            client
                .upload_blob(target.repository(), digest, bytes.len() as u64, None, &body)
                .await?;
        }
        self.remember(target, digest);
        Ok(())
    }

    /// Pushes manifest or index bytes to `target` (a tag or a digest).
    pub(crate) async fn push_manifest_bytes(
        &self,
        target: &ImageReference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let client = self.client(target.registry()).await?;
        let content_type = http_header_value(media_type)?;
        let what = || format!("pushing manifest {target}");
        client
            .put_manifest(
                target.repository(),
                target.api_reference(),
                &content_type,
                bytes::Bytes::copy_from_slice(bytes),
                &what,
            )
            .await
    }

    /// Pushes an assembled index to `repository` under every tag (by digest first, then each
    /// tag). The manifests it lists must already be in the repository — BuildKit's
    /// `push-by-digest` puts them there.
    pub async fn push_index(
        &self,
        repository: &str,
        tags: &[String],
        index: &AssembledIndex,
    ) -> Result<PushReport> {
        let repository = ImageReference::parse(repository)?;
        self.push_manifest_and_tags(&repository, &index.descriptor, &index.bytes, tags)
            .await?;
        Ok(PushReport {
            descriptor: index.descriptor.clone(),
            manifests: 1,
            ..Default::default()
        })
    }

    /// The `--push` path of a multi-platform build: the per-platform descriptors BuildKit
    /// returned (`containerimage.descriptor` of each solve, pushed by digest into
    /// `repository`) are expanded (an index holding an image and its attestation manifest
    /// contributes both; a bare manifest gets its platform from its config), assembled into
    /// one index, and pushed under every tag. Returns the index for `--metadata-file`.
    pub async fn assemble_and_push_index(
        &self,
        repository: &str,
        tags: &[String],
        descriptors: &[Descriptor],
    ) -> Result<AssembledIndex> {
        let repo = ImageReference::parse(repository)?;
        let manifests = self.resolve_descriptors(&repo, descriptors).await?;
        let index = assemble_index(&manifests)?;
        self.push_manifest_and_tags(&repo, &index.descriptor, &index.bytes, tags)
            .await?;
        Ok(index)
    }

    async fn push_manifest_and_tags(
        &self,
        repository: &ImageReference,
        descriptor: &Descriptor,
        bytes: &[u8],
        tags: &[String],
    ) -> Result<()> {
        // A manifest pushed under a tag is also stored under its digest: the by-digest push
        // is only needed when there is no tag.
        if tags.is_empty() {
            self.push_manifest_bytes(
                &repository.with_digest(&descriptor.digest),
                &descriptor.media_type,
                bytes,
            )
            .await?;
        }
        for tag in tags {
            self.push_manifest_bytes(&repository.with_tag(tag), &descriptor.media_type, bytes)
                .await?;
        }
        Ok(())
    }

    /// Pushes everything in an OCI layout to `repository` (`registry/repo`, a tag in it is
    /// ignored) and tags it with every tag. If `index.json` names one index, that index is
    /// pushed byte for byte; one manifest is pushed as a single-platform image; several
    /// entries are assembled into a new index.
    pub async fn push_layout(
        &self,
        layout: &OciLayout,
        repository: &str,
        tags: &[String],
    ) -> Result<PushReport> {
        let target = ImageReference::parse(repository)?;
        let roots = layout.index()?.manifests;
        let (top, top_bytes) = match roots.as_slice() {
            [] => return Err(Error::layout(layout.root(), "index.json lists no images")),
            [single]
                if media_type::is_index(&single.media_type)
                    || media_type::is_manifest(&single.media_type) =>
            {
                let mut top = single.clone();
                top.annotations.clear();
                (top, layout.read_blob(&single.digest)?)
            }
            _ => {
                let index = assemble_index(&layout.image_manifests(&roots)?)?;
                layout.write_blob(&index.descriptor.media_type, &index.bytes)?;
                (index.descriptor, index.bytes)
            }
        };
        let all = layout.walk(std::slice::from_ref(&top))?;
        let (manifests, blobs): (Vec<Descriptor>, Vec<Descriptor>) =
            all.into_iter().partition(|d| {
                media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type)
            });

        let mut report = PushReport::default();
        for outcome in self
            .push_blobs(&target, &blobs, BlobSource::Layout(layout))
            .await?
        {
            report.count(outcome);
        }
        // `walk` lists children before parents, so each manifest's content is there first.
        for manifest in manifests.iter().filter(|m| m.digest != top.digest) {
            let bytes = layout.read_blob(&manifest.digest)?;
            self.push_manifest_bytes(
                &target.with_digest(&manifest.digest),
                &manifest.media_type,
                &bytes,
            )
            .await?;
            report.manifests += 1;
        }
        self.push_manifest_and_tags(&target, &top, &top_bytes, tags)
            .await?;
        report.manifests += 1;
        report.descriptor = top;
        Ok(report)
    }

    /// Pushes blobs concurrently; returns what happened to each.
    async fn push_blobs(
        &self,
        target: &ImageReference,
        blobs: &[Descriptor],
        source: BlobSource<'_>,
    ) -> Result<Vec<BlobOutcome>> {
        let source = &source;
        stream::iter(
            blobs
                .iter()
                .map(|blob| self.push_blob(target, blob, source)),
        )
        .buffer_unordered(self.options.max_concurrent_uploads.max(1))
        .try_collect()
        .await
    }

    async fn push_blob(
        &self,
        target: &ImageReference,
        blob: &Descriptor,
        source: &BlobSource<'_>,
    ) -> Result<BlobOutcome> {
        validate_digest(&blob.digest)?;
        let registry = target.registry();
        let client = self.client(registry).await?;
        let digest = blob.digest.as_str();
        let repository = target.repository();

        if client.blob_exists(repository, digest).await? {
            self.remember(target, digest);
            return Ok(BlobOutcome::Existed);
        }

        let mount_from = match source {
            BlobSource::Registry(from) if from.registry() == registry => {
                Some(from.repository().to_owned())
            }
            _ => self.known_repository(target, digest),
        };
        let mut session = None;
        if let Some(from) = mount_from.filter(|r| r != repository) {
            // A mount the registry declines (202, or an error) just means uploading instead;
            // a 202 opens the upload session the blob then goes to.
            match client.mount_blob(repository, digest, &from).await {
                Mount::Mounted => {
                    tracing::debug!(digest, from = %from, to = %target.name(), "mounted blob");
                    self.remember(target, digest);
                    return Ok(BlobOutcome::Mounted);
                }
                Mount::Upload(location) => session = Some(location),
                Mount::Declined => {}
            }
        }

        let size = blob.size;
        match source {
            BlobSource::Layout(layout) => {
                let path = layout.blob_path(digest)?;
                client
                    .upload_blob(repository, digest, size, session, &UploadBody::File(&path))
                    .await?;
            }
            BlobSource::Registry(from) => {
                let from_client = self.client(from.registry()).await?;
                let body = UploadBody::Registry {
                    client: &from_client,
                    repository: from.repository(),
                };
                client
                    .upload_blob(repository, digest, size, session, &body)
                    .await?;
            }
        }
        self.remember(target, digest);
        Ok(BlobOutcome::Uploaded(size))
    }

    fn remember(&self, target: &ImageReference, digest: &str) {
        if let Ok(mut known) = self.known_blobs.lock() {
            known.insert(
                (target.registry().to_owned(), digest.to_owned()),
                target.repository().to_owned(),
            );
        }
    }

    fn known_repository(&self, target: &ImageReference, digest: &str) -> Option<String> {
        let known = self.known_blobs.lock().ok()?;
        known
            .get(&(target.registry().to_owned(), digest.to_owned()))
            .cloned()
    }

    /// Makes the manifests `manifests` (from `source`'s repository) available in `target`'s
    /// repository: their blobs are mounted or copied, then the manifests pushed by digest.
    /// Nested indexes are copied with their children.
    pub async fn copy_manifests(
        &self,
        source: &ImageReference,
        target: &ImageReference,
        manifests: &[Descriptor],
    ) -> Result<PushReport> {
        let mut report = PushReport::default();
        if source.same_repository(target) {
            return Ok(report);
        }
        for manifest in manifests {
            self.copy_manifest(source, target, manifest, &mut report, 0)
                .await?;
        }
        Ok(report)
    }

    async fn copy_manifest(
        &self,
        source: &ImageReference,
        target: &ImageReference,
        manifest: &Descriptor,
        report: &mut PushReport,
        depth: u8,
    ) -> Result<()> {
        if depth > 8 {
            return Err(Error::InvalidDescriptor {
                what: manifest.digest.clone(),
                reason: "indexes nested too deep".into(),
            });
        }
        let fetched = self
            .fetch_manifest(&source.with_digest(&manifest.digest))
            .await?;
        let children = children_of(&fetched.descriptor, &fetched.bytes)?;
        if media_type::is_index(&fetched.descriptor.media_type) {
            for child in &children {
                Box::pin(self.copy_manifest(source, target, child, report, depth + 1)).await?;
            }
        } else {
            for outcome in self
                .push_blobs(target, &children, BlobSource::Registry(source))
                .await?
            {
                report.count(outcome);
            }
        }
        let media_type = if manifest.media_type.is_empty() {
            &fetched.descriptor.media_type
        } else {
            &manifest.media_type
        };
        self.push_manifest_bytes(
            &target.with_digest(&manifest.digest),
            media_type,
            &fetched.bytes,
        )
        .await?;
        report.manifests += 1;
        Ok(())
    }

    /// `imagetools create`: merges the images behind `sources` (single-platform images or
    /// indexes, in any repositories) into one index. The manifests are copied into the
    /// target's repository (unless `dry_run`), then the index is pushed under every tag of
    /// `targets` (all in one repository). With `append`, the index already at the first target
    /// is merged in too.
    pub async fn create_index(
        &self,
        sources: &[ImageReference],
        targets: &[ImageReference],
        append: bool,
        dry_run: bool,
    ) -> Result<AssembledIndex> {
        self.create_index_with(sources, targets, append, dry_run, &IndexEdits::default())
            .await
    }

    /// [`Registry::create_index`] with buildx's `imagetools create` options: source
    /// descriptors that live in the target's repository (`-f FILE`), a platform filter and
    /// annotations ([`IndexEdits`]).
    pub async fn create_index_with(
        &self,
        sources: &[ImageReference],
        targets: &[ImageReference],
        append: bool,
        dry_run: bool,
        edits: &IndexEdits,
    ) -> Result<AssembledIndex> {
        let first = targets.first().ok_or_else(|| Error::InvalidReference {
            reference: String::new(),
            reason: "at least one target tag is needed".into(),
        })?;
        if let Some(other) = targets.iter().find(|t| !t.same_repository(first)) {
            return Err(Error::InvalidReference {
                reference: other.to_string(),
                reason: format!("all tags must be in one repository ({})", first.name()),
            });
        }
        if let Some(single) = self.single_source(sources, first, append, edits).await? {
            return self.copy_single_source(single, targets, dry_run).await;
        }
        let mut parts: Vec<(ImageReference, Vec<Descriptor>)> = Vec::new();
        if append {
            parts.push((first.clone(), self.image_manifests(first).await?));
        }
        for source in sources {
            parts.push((source.clone(), self.image_manifests(source).await?));
        }
        if !edits.descriptors.is_empty() {
            parts.push((
                first.clone(),
                self.resolve_descriptors(first, &edits.descriptors).await?,
            ));
        }
        for (_, manifests) in &mut parts {
            *manifests = edits.apply(std::mem::take(manifests));
        }
        let all: Vec<Descriptor> = parts.iter().flat_map(|(_, d)| d.iter().cloned()).collect();
        // buildx keeps the sources' order (each source's entries as they were).
        let index = crate::index::assemble_index_ordered(
            &all,
            edits.index_annotations.clone(),
            crate::index::IndexOrder::AsGiven,
        )?;
        if dry_run {
            return Ok(index);
        }
        for (source, manifests) in &parts {
            self.copy_manifests(source, first, manifests).await?;
        }
        let tags: Vec<String> = targets
            .iter()
            .filter_map(|t| t.tag().map(str::to_owned))
            .collect();
        self.push_manifest_and_tags(first, &index.descriptor, &index.bytes, &tags)
            .await?;
        Ok(index)
    }
}

impl Registry {
    /// buildx's single-source rule for `imagetools create`: one source (an image, a `-f`
    /// descriptor or the appended target) and nothing to change is pushed as it is when it is
    /// an index, and when it is one manifest unless an index is preferred. The source's
    /// repository and manifest, or `None` when a new index is to be made.
    async fn single_source(
        &self,
        sources: &[ImageReference],
        first: &ImageReference,
        append: bool,
        edits: &IndexEdits,
    ) -> Result<Option<(ImageReference, FetchedManifest)>> {
        let count = sources.len() + edits.descriptors.len() + usize::from(append);
        let changes = !edits.index_annotations.is_empty()
            || !edits.descriptor_annotations.is_empty()
            || !edits.platforms.is_empty();
        if count != 1 || changes {
            return Ok(None);
        }
        let reference = match (sources.first(), edits.descriptors.first()) {
            (Some(source), _) => source.clone(),
            (None, Some(descriptor)) => first.with_digest(&descriptor.digest),
            (None, None) => first.clone(),
        };
        let fetched = self.fetch_manifest(&reference).await?;
        let keep = media_type::is_index(&fetched.descriptor.media_type) || edits.no_index_over_one;
        Ok(keep.then_some((reference, fetched)))
    }

    /// Pushes a single source's manifest or index byte for byte under every target tag, its
    /// content copied into the target's repository first.
    async fn copy_single_source(
        &self,
        (source, fetched): (ImageReference, FetchedManifest),
        targets: &[ImageReference],
        dry_run: bool,
    ) -> Result<AssembledIndex> {
        let index = fetched.index()?.unwrap_or_else(|| ImageIndex {
            schema_version: 2,
            media_type: String::new(),
            manifests: Vec::new(),
            annotations: Default::default(),
        });
        let assembled = AssembledIndex {
            bytes: fetched.bytes.clone(),
            descriptor: fetched.descriptor.clone(),
            index,
        };
        if dry_run {
            return Ok(assembled);
        }
        let first = &targets[0];
        self.copy_manifests(&source, first, std::slice::from_ref(&fetched.descriptor))
            .await?;
        let tags: Vec<String> = targets
            .iter()
            .filter_map(|t| t.tag().map(str::to_owned))
            .collect();
        self.push_manifest_and_tags(first, &fetched.descriptor, &fetched.bytes, &tags)
            .await?;
        Ok(assembled)
    }
}

/// What `imagetools create` changes on the way from the sources to the new index; also what
/// a multi-platform build adds to the index it assembles from its per-platform results.
#[derive(Debug, Clone, Default)]
pub struct IndexEdits {
    /// Sources given as descriptors (`-f FILE`), found in the target's repository.
    pub descriptors: Vec<Descriptor>,
    /// Keep only the manifests for these platforms (and the attestations of those); none:
    /// keep all.
    pub platforms: Vec<crate::Platform>,
    /// Annotations of the index itself (`index:KEY=VALUE`).
    pub index_annotations: std::collections::BTreeMap<String, String>,
    /// Annotations put on the index's manifest descriptors (`manifest-descriptor:KEY=VALUE`,
    /// or for one platform `manifest-descriptor[os/arch]:KEY=VALUE`), in order: a later one
    /// wins. One without a platform goes on every entry, attestations too.
    pub descriptor_annotations: Vec<(Option<crate::Platform>, String, String)>,
    /// Annotations of the index's own descriptor (`index-descriptor:KEY=VALUE`): where one
    /// is stored (an OCI layout's `index.json`) and in the build's metadata.
    pub index_descriptor_annotations: std::collections::BTreeMap<String, String>,
    /// `imagetools create --prefer-index=false`: a single source that is one manifest is
    /// pushed as that manifest rather than wrapped in an index.
    pub no_index_over_one: bool,
}

impl IndexEdits {
    /// The index a build makes over `manifests` (image and attestation manifests, nested
    /// indexes expanded: [`crate::assemble_index`]'s order) with the edits applied: entries
    /// filtered and annotated ([`IndexEdits::apply`]), the index annotated, and its descriptor
    /// carrying the index-descriptor annotations. The source descriptors (`descriptors`) are
    /// not read here.
    pub fn assemble(&self, manifests: Vec<Descriptor>) -> Result<AssembledIndex> {
        let mut index = crate::index::assemble_index_with_annotations(
            &self.apply(manifests),
            self.index_annotations.clone(),
        )?;
        index
            .descriptor
            .annotations
            .clone_from(&self.index_descriptor_annotations);
        Ok(index)
    }

    /// `manifests` (image and attestation manifests, nested indexes expanded) with the
    /// platform filter and the descriptor annotations applied.
    pub fn apply(&self, manifests: Vec<Descriptor>) -> Vec<Descriptor> {
        let same = |a: &crate::Platform, b: &crate::Platform| {
            a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
        };
        let kept: Vec<Descriptor> = if self.platforms.is_empty() {
            manifests
        } else {
            let images: Vec<String> = manifests
                .iter()
                .filter(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| self.platforms.iter().any(|w| same(w, p)))
                })
                .map(|d| d.digest.clone())
                .collect();
            manifests
                .into_iter()
                .filter(|d| {
                    images.contains(&d.digest)
                        || d.annotations
                            .get(crate::descriptor::annotation::REFERENCE_DIGEST)
                            .is_some_and(|r| images.contains(r))
                })
                .collect()
        };
        kept.into_iter()
            .map(|mut d| {
                for (platform, key, value) in &self.descriptor_annotations {
                    let applies = match (platform, &d.platform) {
                        (None, _) => true,
                        (Some(want), Some(have)) => same(want, have),
                        (Some(_), None) => false,
                    };
                    if applies {
                        d.annotations.insert(key.clone(), value.clone());
                    }
                }
                d
            })
            .collect()
    }
}

fn http_header_value(media_type: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(media_type).map_err(|_| Error::InvalidDescriptor {
        what: format!("media type {media_type:?}"),
        reason: "not a valid HTTP header value".into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_use_plain_http_and_others_only_when_listed() {
        let registry = Registry::new(RegistryOptions {
            plain_http_hosts: vec!["build.lan:5000".into(), "cache.lan".into()],
            ..Default::default()
        });
        assert!(registry.uses_plain_http("localhost:5000"));
        assert!(registry.uses_plain_http("127.0.0.1:5000"));
        assert!(registry.uses_plain_http("[::1]:5000"));
        assert!(registry.uses_plain_http("build.lan:5000"));
        assert!(registry.uses_plain_http("cache.lan:443"));
        assert!(!registry.uses_plain_http("build.lan:6000"));
        assert!(!registry.uses_plain_http("docker.io"));
    }

    #[test]
    fn references_get_docker_hub_defaults() {
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        let r = ImageReference::parse("localhost:5000/app:1").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/app:1");
        let digest = sha256_digest(b"x");
        assert_eq!(
            r.with_digest(&digest).to_string(),
            format!("localhost:5000/app@{digest}")
        );
        assert_eq!(r.with_digest(&digest).api_reference(), digest);
        let both = ImageReference::parse(&format!("localhost:5000/app:1@{digest}")).unwrap();
        assert_eq!(both.tag(), Some("1"));
        assert_eq!(both.api_reference(), digest, "the digest wins");
        let by_digest = ImageReference::parse(&format!("app@{digest}")).unwrap();
        assert_eq!(by_digest.tag(), None);
        assert!(ImageReference::parse("app!:1").is_err());
        assert!(ImageReference::parse("Upper").is_err());
    }

    #[test]
    fn a_builders_buildkitd_toml_gives_plain_http_insecure_and_tls_files() {
        let toml = r#"
[registry."plain.lan:5000"]
  http = true
[registry."skip.lan"]
  insecure = true
[registry."ca.lan:5443"]
  ca = ["/etc/buildkit/certs/ca.lan_5443/ca.pem", "/elsewhere/ca.pem"]
  [[registry."ca.lan:5443".keypair]]
    key = "/etc/buildkit/certs/ca.lan_5443/client.key"
    cert = "/etc/buildkit/certs/ca.lan_5443/client.cert"
"#;
        let files: BTreeMap<String, Vec<u8>> = [
            ("buildkitd.toml", toml.as_bytes()),
            ("certs/ca.lan_5443/ca.pem", b"CA".as_slice()),
            ("certs/ca.lan_5443/client.key", b"KEY".as_slice()),
            ("certs/ca.lan_5443/client.cert", b"CERT".as_slice()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect();
        let mut options = RegistryOptions::default();
        options.add_buildkitd_config(&files);
        assert_eq!(options.plain_http_hosts, ["plain.lan:5000"]);
        assert!(options.tls["skip.lan"].skip_verify);
        let ca = &options.tls["ca.lan:5443"];
        assert_eq!(
            ca.ca.len(),
            1,
            "a path outside /etc/buildkit/ is not the builder's"
        );
        assert_eq!(ca.ca[0].pem, b"CA");
        assert_eq!(
            ca.ca[0].origin,
            "/etc/buildkit/certs/ca.lan_5443/ca.pem (the builder's copy)"
        );
        assert_eq!(ca.keypairs.len(), 1);
        assert_eq!(ca.keypairs[0].key.pem, b"KEY");
        assert!(!options.tls.contains_key("plain.lan:5000"));

        // A second node's settings for the same host do not replace the first's.
        let other: BTreeMap<String, Vec<u8>> = [(
            "buildkitd.toml".to_owned(),
            b"[registry.\"skip.lan\"]\n  insecure = false\n".to_vec(),
        )]
        .into_iter()
        .collect();
        options.add_buildkitd_config(&other);
        assert!(options.tls["skip.lan"].skip_verify);
    }

    #[tokio::test]
    async fn a_registry_that_is_down_gives_one_clear_error() {
        // Bind and drop a listener: its port is then closed, so the connection is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let registry = Registry::new(RegistryOptions {
            initial_backoff: Duration::from_millis(1),
            docker_config: Some(PathBuf::from("/nonexistent/config.json")),
            ..Default::default()
        });
        let reference = ImageReference::parse(&format!("127.0.0.1:{port}/app:1")).unwrap();
        let err = registry.fetch_manifest(&reference).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry 127.0.0.1:{port} is not reachable: connection refused — is it running?"
            )
        );
    }
}
