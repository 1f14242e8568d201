//! How a failed request is treated: what is retried (5xx, 429, 408, dropped connections,
//! timeouts), how long to wait (exponential backoff, or the registry's `Retry-After`, capped),
//! and the registry's own words for everything else.

use std::time::{Duration, SystemTime};

use super::tls::CertificateProblem;

/// The longest wait a `Retry-After` can ask for; a registry asking for more is waited on
/// this long.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a request failed, and so what to do next.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing answered (refused, unresolvable, timed out connecting): retried, then
    /// reported as an unreachable registry.
    Unreachable(String),
    /// Worth another try: a 5xx, 429 or 408 answer, a dropped connection, a timeout.
    Transient {
        /// What happened, for the error after the last try.
        reason: String,
        /// How long the registry asked to wait.
        retry_after: Option<Duration>,
    },
    /// The registry does not have it.
    NotFound(String),
    /// Credentials missing or refused.
    Unauthorized(String),
    /// The TLS handshake failed.
    Certificate(CertificateProblem),
    /// Content did not hash to its digest (a blob being uploaded).
    Content {
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// Anything else: reported at once.
    Fatal(String),
}

impl Failure {
    /// Whether another try may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Failure::Unreachable(_) | Failure::Transient { .. })
    }

    /// The wait the registry asked for, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The wait before try `n + 1` (`n` from 1): `initial` doubled per try, or the registry's
/// `Retry-After`; never more than [`MAX_RETRY_AFTER`].
pub(crate) fn delay(initial: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = initial.saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
    retry_after.unwrap_or(backoff).min(MAX_RETRY_AFTER)
}

/// `Retry-After` as a wait: delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What a non-success answer means. `body` is (the start of) the answer's body.
pub(crate) fn failure_of_status(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Failure {
    let code = status.as_u16();
    let envelope = registry_errors(body);
    let reason = if envelope.is_empty() {
        let text = String::from_utf8_lossy(body);
        let first = text.lines().map(str::trim).find(|l| !l.is_empty());
        match first {
            Some(line) if !line.starts_with('<') && line.len() <= 200 => {
                format!("HTTP {code}: {line}")
            }
            _ => format!(
                "HTTP {code}{}",
                status
                    .canonical_reason()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        }
    } else {
        envelope
            .iter()
            .map(|(code, message)| {
                let words = code.to_ascii_lowercase().replace('_', " ");
                if message.is_empty() {
                    words
                } else {
                    format!("{words}: {message}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let not_found = code == 404
        || envelope.iter().any(|(code, _)| {
            matches!(
                code.as_str(),
                "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND" | "BLOB_UNKNOWN"
            )
        });
    match code {
        408 | 429 | 500 | 502 | 503 | 504 | 507..=599 => Failure::Transient {
            reason,
            retry_after: retry_after(headers),
        },
        _ if not_found => Failure::NotFound(reason),
        401 => Failure::Unauthorized(reason),
        _ => Failure::Fatal(reason),
    }
}

/// The `errors` of distribution's error envelope, each `(code, message)`.
fn registry_errors(body: &[u8]) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .filter(|e| !e.code.is_empty() || !e.message.is_empty())
                .map(|e| (e.code, e.message))
                .collect()
        })
        .unwrap_or_default()
}

/// What a request that got no answer means.
pub(crate) fn failure_of_error(err: &reqwest::Error) -> Failure {
    if let Some(mismatch) = cause::<ContentMismatch>(err) {
        return Failure::Content {
            expected: mismatch.expected.clone(),
            actual: mismatch.actual.clone(),
        };
    }
    let reason = root_cause(err);
    if err.is_connect() {
        Failure::Unreachable(reason)
    } else if err.is_timeout() || err.is_request() || err.is_body() || err.is_decode() {
        Failure::Transient {
            reason,
            retry_after: None,
        }
    } else {
        Failure::Fatal(reason)
    }
}

/// A blob's content did not hash to its digest: the error a verifying upload stream ends
/// with.
#[derive(Debug)]
pub(crate) struct ContentMismatch {
    /// The digest the blob should have.
    pub expected: String,
    /// What it hashed to.
    pub actual: String,
}

impl std::fmt::Display for ContentMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blob content hashes to {}, not {}",
            self.actual, self.expected
        )
    }
}

impl std::error::Error for ContentMismatch {}

/// The first `T` in `err`'s chain of causes. An I/O error's `source` skips the error it
/// wraps (TLS errors come as an I/O error inside an I/O error), so the walk goes through
/// what it wraps instead.
pub(crate) fn cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The innermost cause of an error, in the words a person expects ("connection refused").
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = err;
    let mut message = without_url(current);
    while let Some(next) = current.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::TimedOut => return "connection timed out".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset by peer".into(),
                std::io::ErrorKind::BrokenPipe => return "connection closed (broken pipe)".into(),
                _ => {}
            }
        }
        message = without_url(next);
        current = next;
    }
    message
}

/// An error's message; reqwest's without the URL it names (upload URLs carry the
/// registry's session state, long and of no use to a reader).
fn without_url(err: &(dyn std::error::Error + 'static)) -> String {
    let text = err.to_string();
    match text.split_once(" for url (") {
        Some((head, _)) => head.to_owned(),
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_retry_after_wins_but_is_capped() {
        let initial = Duration::from_millis(200);
        assert_eq!(delay(initial, 1, None), Duration::from_millis(200));
        assert_eq!(delay(initial, 3, None), Duration::from_millis(800));
        assert_eq!(delay(initial, 40, None), MAX_RETRY_AFTER);
        assert_eq!(
            delay(initial, 1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            delay(initial, 1, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let soon = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            http::header::RETRY_AFTER,
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn answers_are_classified_with_the_registrys_words() {
        let none = http::HeaderMap::new();
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        match failure_of_status(http::StatusCode::NOT_FOUND, &none, body) {
            Failure::NotFound(reason) => assert_eq!(reason, "manifest unknown: manifest unknown"),
            other => panic!("{other:?}"),
        }
        let denied = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        match failure_of_status(http::StatusCode::FORBIDDEN, &none, denied) {
            Failure::Fatal(reason) => {
                assert_eq!(reason, "denied: requested access to the resource is denied")
            }
            other => panic!("{other:?}"),
        }
        let mut later = http::HeaderMap::new();
        later.insert(http::header::RETRY_AFTER, "1".parse().unwrap());
        let busy = failure_of_status(http::StatusCode::TOO_MANY_REQUESTS, &later, b"slow down\n");
        assert!(busy.is_retryable());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(1)));
        match failure_of_status(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &none,
            b"<html>503</html>",
        ) {
            Failure::Transient { reason, .. } => {
                assert_eq!(reason, "HTTP 503 (Service Unavailable)")
            }
            other => panic!("{other:?}"),
        }
        match failure_of_status(http::StatusCode::BAD_REQUEST, &none, b"bad digest\n") {
            Failure::Fatal(reason) => assert_eq!(reason, "HTTP 400: bad digest"),
            other => panic!("{other:?}"),
        }
        assert!(!failure_of_status(http::StatusCode::NOT_IMPLEMENTED, &none, b"").is_retryable());
    }

    #[test]
    fn a_cause_is_found_inside_io_errors() {
        let inner = ContentMismatch {
            expected: "sha256:a".into(),
            actual: "sha256:b".into(),
        };
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        let found = cause::<ContentMismatch>(&io).unwrap();
        assert_eq!(found.actual, "sha256:b");
    }
}
