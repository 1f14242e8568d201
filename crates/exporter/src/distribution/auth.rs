//! Registry authentication as Docker does it: the registry's `401` challenge
//! (`WWW-Authenticate: Bearer realm=…,service=…` or `Basic`) says how; a bearer token is
//! fetched from the realm (`GET` with the Docker config's basic credentials or anonymously,
//! or the OAuth2 `refresh_token` grant for an identity token) for the scopes a request needs,
//! kept until shortly before it expires, and reused for every request those scopes cover. A
//! `registrytoken` from the config is sent as it is.
//!
//! Credentials and tokens only ever live in [`HeaderValue`]s marked sensitive (so HTTP trace
//! logs print them as `Sensitive`) and in this module; no error or log line carries one.

use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderValue;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use super::retry::Failure;
use crate::auth::Credentials;

/// Access to one repository: pull, or pull and push.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Scope {
    repository: String,
    push: bool,
}

impl Scope {
    /// `repository:NAME:pull`.
    pub(crate) fn pull(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: false,
        }
    }

    /// `repository:NAME:pull,push`.
    pub(crate) fn push(repository: &str) -> Scope {
        Scope {
            repository: repository.to_owned(),
            push: true,
        }
    }

    fn covers(&self, wanted: &Scope) -> bool {
        self.repository == wanted.repository && (self.push || !wanted.push)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions = if self.push { "pull,push" } else { "pull" };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

/// What a registry said about authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Not asked yet, or the registry wants nothing.
    None,
    /// HTTP basic authentication.
    Basic,
    /// Bearer tokens from a token server.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The `service` to ask tokens for.
        service: Option<String>,
    },
}

/// The first usable challenge among a response's `WWW-Authenticate` headers (Bearer before
/// Basic, as Docker prefers it).
pub(crate) fn challenge_of(headers: &http::HeaderMap) -> Option<Challenge> {
    let mut basic = false;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        for (scheme, params) in parse_challenges(text) {
            if scheme.eq_ignore_ascii_case("bearer") {
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                };
                if let Some(realm) = get("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                    });
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// The challenges of one `WWW-Authenticate` value (RFC 7235: `scheme k=v, k="v", scheme2 …`),
/// each its scheme and its parameters (keys lowercased).
pub(crate) fn parse_challenges(header: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('=') {
            // A stray `=` (a parameter without a name): skipped.
            rest = after;
            continue;
        }
        let end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(value) = after.strip_prefix('=').filter(|_| !out.is_empty()) {
            // A parameter of the current challenge.
            let value = value.trim_start_matches([' ', '\t']);
            let (text, remaining) = if let Some(quoted) = value.strip_prefix('"') {
                let mut text = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                text.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => text.push(c),
                    }
                }
                (text, &quoted[end.min(quoted.len())..])
            } else {
                let end = value.find([',', ' ', '\t']).unwrap_or(value.len());
                (value[..end].to_owned(), &value[end..])
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_ascii_lowercase(), text));
            }
            rest = remaining;
        } else {
            // A new challenge's scheme.
            out.push((token.to_owned(), Vec::new()));
            rest = after;
        }
    }
    out
}

/// A token fetched for a set of scopes.
struct CachedToken {
    scopes: Vec<Scope>,
    header: HeaderValue,
    refresh_at: Instant,
}

/// One registry's authentication state: its credentials, the challenge it gave, the tokens
/// fetched.
pub(crate) struct Authenticator {
    registry: String,
    credentials: Option<Credentials>,
    challenge: std::sync::Mutex<Challenge>,
    tokens: std::sync::Mutex<Vec<CachedToken>>,
    /// One token fetch at a time: concurrent uploads that all need the same token wait for
    /// the first fetch instead of each making its own.
    fetching: tokio::sync::Mutex<()>,
}

/// Docker's floor for a token's lifetime, and its default when the server names none.
const MINIMUM_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl Authenticator {
    /// The state for `registry` with the credentials the Docker config has for it.
    pub(crate) fn new(registry: &str, credentials: Option<Credentials>) -> Self {
        Authenticator {
            registry: registry.to_owned(),
            credentials,
            challenge: std::sync::Mutex::new(Challenge::None),
            tokens: std::sync::Mutex::new(Vec::new()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes what the registry's `GET /v2/` (or any 401) said.
    pub(crate) fn set_challenge(&self, challenge: Challenge) {
        if let Ok(mut current) = self.challenge.lock() {
            *current = challenge;
        }
    }

    fn challenge(&self) -> Challenge {
        self.challenge
            .lock()
            .map(|c| c.clone())
            .unwrap_or(Challenge::None)
    }

    /// The `Authorization` header for a request needing `scopes`, fetching a token if none
    /// cached covers them.
    pub(crate) async fn authorization(
        &self,
        http: &reqwest::Client,
        scopes: &[Scope],
    ) -> Result<Option<HeaderValue>, Failure> {
        if let Some(Credentials::Bearer(token)) = &self.credentials {
            return Ok(Some(bearer(token)));
        }
        match self.challenge() {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match &self.credentials {
                Some(Credentials::Basic { username, password }) => Some(basic(username, password)),
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                if let Some(header) = self.cached(scopes) {
                    return Ok(Some(header));
                }
                let _one_at_a_time = self.fetching.lock().await;
                if let Some(header) = self.cached(scopes) {
                    return Ok(Some(header));
                }
                let (token, lifetime) =
                    self.fetch(http, &realm, service.as_deref(), scopes).await?;
                let header = bearer(&token);
                let lifetime = lifetime
                    .unwrap_or(MINIMUM_TOKEN_LIFETIME)
                    .max(MINIMUM_TOKEN_LIFETIME);
                let margin = (lifetime / 4).min(Duration::from_secs(10));
                if let Ok(mut tokens) = self.tokens.lock() {
                    let now = Instant::now();
                    tokens.retain(|t| t.refresh_at > now);
                    tokens.push(CachedToken {
                        scopes: scopes.to_vec(),
                        header: header.clone(),
                        refresh_at: now + lifetime - margin,
                    });
                }
                Ok(Some(header))
            }
        }
    }

    /// A 401: the token (or credentials) `used` no longer count, and the registry's new
    /// challenge is taken.
    pub(crate) fn rejected(&self, headers: &http::HeaderMap, used: Option<&HeaderValue>) {
        if let Some(challenge) = challenge_of(headers) {
            self.set_challenge(challenge);
        }
        if let (Some(used), Ok(mut tokens)) = (used, self.tokens.lock()) {
            tokens.retain(|t| t.header != *used);
        }
    }

    fn cached(&self, scopes: &[Scope]) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().ok()?;
        let now = Instant::now();
        tokens
            .iter()
            .filter(|t| t.refresh_at > now)
            .find(|t| scopes.iter().all(|w| t.scopes.iter().any(|h| h.covers(w))))
            .map(|t| t.header.clone())
    }

    /// A token from the realm for `scopes`, and how long it lasts.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<(String, Option<Duration>), Failure> {
        let scopes: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        tracing::debug!(
            registry = self.registry,
            realm,
            ?scopes,
            "fetching a registry token"
        );
        let response = match &self.credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                crate::identity_token::redeem(http, realm, service, &scopes, refresh).await?
            }
            credentials => {
                let mut url = reqwest::Url::parse(realm).map_err(|_| {
                    Failure::Fatal(format!("the registry's token realm {realm:?} is not a URL"))
                })?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                    if let Some(Credentials::Basic { username, .. }) = credentials {
                        query.append_pair("account", username);
                    }
                }
                let mut request = http.get(url);
                if let Some(Credentials::Basic { username, password }) = credentials {
                    request = request.header(AUTHORIZATION, basic(username, password));
                }
                request
                    .send()
                    .await
                    .map_err(|e| token_server_unreachable(realm, &e))?
            }
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = super::retry::retry_after(response.headers());
            return Err(match status.as_u16() {
                401 | 403 => Failure::Unauthorized(format!(
                    "the token server {realm} refused {} (HTTP {}): log in again (docker login {})",
                    match self.credentials {
                        Some(Credentials::IdentityToken(_)) =>
                            "the identity token from the Docker config",
                        Some(_) => "the credentials from the Docker config",
                        None => "an anonymous token",
                    },
                    status.as_u16(),
                    self.registry
                )),
                429 | 500..=599 => Failure::Transient {
                    reason: format!("the token server {realm} answered HTTP {}", status.as_u16()),
                    retry_after,
                },
                code => Failure::Fatal(format!("the token server {realm} answered HTTP {code}")),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| token_server_unreachable(realm, &e))?;
        parse_token(&body).ok_or_else(|| {
            Failure::Fatal(format!("the token server {realm} answered with no token"))
        })
    }
}

fn token_server_unreachable(realm: &str, err: &reqwest::Error) -> Failure {
    Failure::Transient {
        reason: format!(
            "the token server {realm} is not reachable: {}",
            super::retry::root_cause(err)
        ),
        retry_after: None,
    }
}

/// `token` (or OAuth2's `access_token`) and `expires_in` of a token server's answer.
fn parse_token(body: &[u8]) -> Option<(String, Option<Duration>)> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .or(answer.token.filter(|t| !t.is_empty()))?;
    Some((token, answer.expires_in.map(Duration::from_secs)))
}

fn sensitive(text: &str) -> HeaderValue {
    let mut value =
        HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    value.set_sensitive(true);
    value
}

fn bearer(token: &str) -> HeaderValue {
    sensitive(&format!("Bearer {token}"))
}

fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(&format!("Basic {encoded}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_as_registries_write_them() {
        let parsed = parse_challenges(
            r#"Bearer realm="http://127.0.0.1:5002/token/",service="brix-e2e-registry",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            parsed,
            [(
                "Bearer".to_owned(),
                vec![
                    (
                        "realm".to_owned(),
                        "http://127.0.0.1:5002/token/".to_owned()
                    ),
                    ("service".to_owned(), "brix-e2e-registry".to_owned()),
                    ("scope".to_owned(), "repository:a/b:pull".to_owned()),
                ]
            )]
        );
        let two = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm=https://auth.example/token, service="a \"b\"""#,
        );
        assert_eq!(two.len(), 2, "{two:?}");
        assert_eq!(two[0].0, "Basic");
        assert_eq!(
            two[0].1,
            [("realm".to_owned(), "Registry Realm".to_owned())]
        );
        assert_eq!(two[1].1[0].1, "https://auth.example/token");
        assert_eq!(two[1].1[1].1, "a \"b\"");
    }

    #[test]
    fn bearer_is_preferred_over_basic() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="https://t.example/token",service="reg""#),
        );
        assert_eq!(
            challenge_of(&headers),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: Some("reg".into())
            })
        );
        let mut basic_only = http::HeaderMap::new();
        basic_only.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"basic realm="x""#),
        );
        assert_eq!(challenge_of(&basic_only), Some(Challenge::Basic));
        assert_eq!(challenge_of(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_push_token_covers_pulls_of_the_same_repository_only() {
        let push = Scope::push("brix/app");
        assert!(push.covers(&Scope::pull("brix/app")));
        assert!(push.covers(&Scope::push("brix/app")));
        assert!(!Scope::pull("brix/app").covers(&push));
        assert!(!push.covers(&Scope::pull("brix/other")));
        assert_eq!(push.to_string(), "repository:brix/app:pull,push");
    }

    #[test]
    fn token_answers_in_both_spellings() {
        assert_eq!(
            parse_token(br#"{"token":"t","expires_in":300}"#),
            Some(("t".into(), Some(Duration::from_secs(300))))
        );
        assert_eq!(
            parse_token(br#"{"access_token":"a","token":"t"}"#),
            Some(("a".into(), None))
        );
        assert_eq!(parse_token(br#"{"token":""}"#), None);
        assert_eq!(parse_token(b"<html>"), None);
    }

    #[test]
    fn credentials_are_sensitive_headers() {
        let header = basic("brix", "pw");
        assert!(header.is_sensitive());
        assert_eq!(format!("{header:?}"), "Sensitive");
        assert!(bearer("t").is_sensitive());
    }

    #[tokio::test]
    async fn tokens_are_reused_for_the_scopes_they_cover_and_dropped_when_refused() {
        let auth = Authenticator::new("r.example", None);
        auth.set_challenge(Challenge::Bearer {
            realm: "http://127.0.0.1:9/token".into(),
            service: None,
        });
        let header = bearer("cached");
        auth.tokens.lock().unwrap().push(CachedToken {
            scopes: vec![Scope::push("a")],
            header: header.clone(),
            refresh_at: Instant::now() + Duration::from_secs(60),
        });
        let http = reqwest::Client::new();
        let got = auth
            .authorization(&http, &[Scope::pull("a")])
            .await
            .unwrap();
        assert_eq!(got.as_ref(), Some(&header));
        auth.rejected(&http::HeaderMap::new(), Some(&header));
        assert!(auth.cached(&[Scope::pull("a")]).is_none());
        // The registry's own token is used as it is, whatever the challenge.
        let fixed = Authenticator::new("r.example", Some(Credentials::Bearer("reg".into())));
        let got = fixed
            .authorization(&http, &[Scope::pull("a")])
            .await
            .unwrap();
        assert_eq!(got, Some(bearer("reg")));
    }
}
