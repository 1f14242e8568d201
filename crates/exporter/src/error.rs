//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while assembling, reading, writing or pushing images.
///
/// Messages name the input (a path, a digest, a registry) and, where there is one, say what to
/// do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A descriptor (from a solve response, a layout or a registry) is malformed.
    #[error("invalid descriptor {what}: {reason}")]
    InvalidDescriptor {
        /// Which descriptor (a digest, or where it came from).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image manifest handed to index assembly has no platform.
    #[error(
        "manifest {digest} has no platform: every manifest in an image index needs one \
         (resolve it from the image config first)"
    )]
    MissingPlatform {
        /// The manifest's digest.
        digest: String,
    },
    /// Two different manifests claim the same platform.
    #[error(
        "manifests {first} and {second} are both for platform {platform}: an index needs one image per platform"
    )]
    DuplicatePlatform {
        /// The platform, `os/arch[/variant]`.
        platform: String,
        /// The manifest seen first.
        first: String,
        /// The manifest seen second.
        second: String,
    },
    /// An attestation manifest refers to an image that is not in the index.
    #[error("attestation manifest {digest} refers to {subject}, which is not in the index")]
    DanglingAttestation {
        /// The attestation manifest's digest.
        digest: String,
        /// The digest it says it attests.
        subject: String,
    },
    /// Index assembly was given nothing.
    #[error("cannot assemble an image index from no manifests")]
    EmptyIndex,
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory or tarball is not a usable OCI layout.
    #[error("{path} is not a valid OCI layout: {reason}")]
    InvalidLayout {
        /// The layout directory or tarball.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Content did not hash to the digest it was stored or announced under.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (a path, a blob in a registry).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// JSON that should be an OCI object did not parse.
    #[error("cannot parse {what}: {source}")]
    Json {
        /// What was parsed.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The Docker config file (`config.json`) is unreadable or malformed.
    #[error("cannot use Docker config {path}: {reason}")]
    DockerConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `docker-credential-<name>` helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        /// The helper's name (the part after `docker-credential-`).
        helper: String,
        /// The registry whose credentials were asked for.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// An image reference does not parse.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The registry did not answer at all (refused, unresolvable, timed out).
    #[error("registry {registry} is not reachable: {reason} — is it running?")]
    RegistryUnreachable {
        /// `host[:port]` of the registry.
        registry: String,
        /// The root cause, e.g. `connection refused`.
        reason: String,
    },
    /// The TLS handshake with the registry failed: its certificate was not accepted, or it
    /// wanted a client certificate brix does not have (or refused the one it has).
    #[error("TLS with registry {registry} failed: {problem} — {remedy}")]
    Certificate {
        /// `host[:port]` of the registry.
        registry: String,
        /// What was wrong, e.g. `certificate signed by unknown authority`.
        problem: String,
        /// What to do, e.g. where the CA certificate goes.
        remedy: String,
    },
    /// The registry answered, but refused or failed the request.
    #[error("{operation} on registry {registry} failed: {reason}")]
    Registry {
        /// `host[:port]` of the registry.
        registry: String,
        /// What was attempted, e.g. `pushing blob sha256:…`.
        operation: String,
        /// The registry's answer.
        reason: String,
    },
    /// A manifest or index was not found in the registry.
    #[error("{reference} not found in the registry")]
    NotFound {
        /// The reference that was looked up.
        reference: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidLayout {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
